"""`carbonmeter run [options] -- CMD`: measure a command, forwarding the signals it should get."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from typing import Any

from carbonmeter._core import EmissionsTracker
from carbonmeter._format import seconds
from carbonmeter.cli._common import UsageError, make_output_dir, summary
from carbonmeter.cli.wait import add_greener_arguments, wait_for_start

HELP = "run a command and measure it"
DESCRIPTION = (
    "Runs CMD, measures it (its process tree with --tracking-mode process, the machine "
    "otherwise), writes the row and exits with CMD's exit code (128+N if killed by signal N). "
    "Ctrl-C and SIGTERM are passed to CMD; the row is still written."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--when-greener",
        action="store_true",
        help="first wait for the cleanest start in the grid's forecast (see carbonmeter wait); "
        "needs --duration and --within",
    )
    add_greener_arguments(parser, required=False)
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")


def _terminal_signalled_group() -> bool:
    """Whether we are in the terminal's foreground group: its Ctrl-C reached the child too."""
    for fd in (0, 1, 2):
        try:
            return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False


def main(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("no command given: expected carbonmeter run [options] -- CMD [ARGS...]")
    program = command[0]
    if shutil.which(program) is None:
        # As env(1) and timeout(1): 127 for a command not found, 126 for one not executable.
        found = os.sep in program and os.path.exists(program)
        why = "is not executable" if found else "not found"
        print(f"carbonmeter run: error: command {program!r} {why}", file=sys.stderr)
        return 126 if found else 127
    make_output_dir(args.settings)
    tracker = EmissionsTracker(**args.settings)
    if args.when_greener:
        if args.duration is None or args.within is None:
            raise UsageError("--when-greener needs --duration and --within")
        try:
            # After the tracker's settings were checked, before it starts: its run records
            # the start it waited for.
            wait_for_start(args)
        except KeyboardInterrupt:
            print("carbonmeter run: interrupted before the start", file=sys.stderr)
            return 130
    elif args.duration is not None or args.within is not None:
        raise UsageError("--duration and --within go with --when-greener")
    child: subprocess.Popen[bytes] | None = None
    received: list[int] = []

    def deliver(signum: int) -> None:
        if child is None or child.poll() is not None:
            return
        if signum in (signal.SIGINT, signal.SIGQUIT) and _terminal_signalled_group():
            return  # the terminal sent it to the child's process group already
        child.send_signal(signum)

    def forward(signum: int, _frame: Any) -> None:
        received.append(signum)
        deliver(signum)

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
    previous = {signum: signal.signal(signum, forward) for signum in handled}
    try:
        tracker.start()
        if received:  # stopped before the command started: do not start it
            returncode = -received[0]
        else:
            try:
                child = subprocess.Popen(command)
            except OSError as err:
                print(f"carbonmeter run: error: cannot run {program!r}: {err}", file=sys.stderr)
                return 126
            for signum in received:  # arrived while the child was being started
                deliver(signum)
            returncode = child.wait()
    finally:
        # Our handlers stay until the row is written, so a second Ctrl-C cannot lose it.
        tracker.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    code = 128 - returncode if returncode < 0 else returncode
    data = tracker.final_emissions_data
    if data is not None:
        where = f" -> {tracker.output_path}" if tracker.output_path else ""
        how = f"killed by signal {-returncode}" if returncode < 0 else f"exit {returncode}"
        name = os.path.basename(program)
        print(
            f"carbonmeter: {name} ({how}) {seconds(data.duration)}: {summary(data)}{where}",
            file=sys.stderr,
        )
    return code
