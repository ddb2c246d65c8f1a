"""`carbonmeter monitor`: measure the machine until stopped, a row every interval."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from typing import Any

from carbonmeter._core import EmissionsData, EmissionsTracker
from carbonmeter._format import co2, energy, seconds
from carbonmeter.cli._common import UsageError, make_output_dir, number, summary

HELP = "measure the machine until stopped"
DESCRIPTION = (
    "Measures the machine until Ctrl-C or SIGTERM, writing a row every interval; a live status "
    "line on a terminal, one line per interval otherwise."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interval", type=number(float), default=15.0, metavar="S", help="seconds (15)"
    )


def main(args: argparse.Namespace) -> int:
    if not 0 < args.interval < math.inf:
        raise UsageError(
            f"invalid --interval {args.interval}: expected a finite number of seconds > 0"
        )
    make_output_dir(args.settings)
    tracker = EmissionsTracker(**args.settings)
    stop = threading.Event()

    def request_stop(_signum: int, _frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    tty = sys.stdout.isatty()
    tracker.start()
    last: EmissionsData | None = None
    try:
        while not stop.wait(args.interval):
            data = tracker.flush_data()
            if data is None:
                break
            # Power over the last interval, from the core's energies at both ends.
            watts = data.power_w_since(last)
            last = data
            line = (
                f"{time.strftime('%H:%M:%S')}  CPU {watts[0]:.1f} W  GPU {watts[1]:.1f} W  "
                f"RAM {watts[2]:.1f} W  |  {seconds(data.duration)}  "
                f"{energy(data.energy_consumed)}  {co2(data.emissions)} CO2eq"
            )
            if tty:
                sys.stdout.write("\r\x1b[2K" + line)
            else:
                sys.stdout.write(line + "\n")
            sys.stdout.flush()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        tracker.stop()
    if tty:
        sys.stdout.write("\n")
    data = tracker.final_emissions_data
    if data is not None:
        where = f" -> {tracker.output_path}" if tracker.output_path else ""
        print(f"carbonmeter: monitored {seconds(data.duration)}: {summary(data)}{where}")
    return 0
