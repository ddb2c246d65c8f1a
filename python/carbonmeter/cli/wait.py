"""`carbonmeter wait --duration 2h --within 12h [-- CMD]`: start when the grid is cleaner.

Finds the start in the grid's forecast that minimises the mean intensity over the run, prints
it with the saving, then sleeps until then (Ctrl-C stops it) and runs CMD if one is given. With
`--print` it only prints the time, for a scheduler to do the waiting:

    sbatch --begin=$(carbonmeter wait -d 2h --within 12h --country GBR --print slurm) job.sh
    at -t $(carbonmeter wait -d 2h --within 12h --country GBR --print at) -f job.sh
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path
from typing import Any

from carbonmeter._core import GreenerPlan
from carbonmeter.cli._common import UsageError, number

HELP = "wait for the cleanest start in the grid's forecast (then run CMD)"
DESCRIPTION = (
    "Finds the start that minimises the forecast's mean intensity over a run of --duration "
    "that must finish within --within: NESO's forecast for Great Britain (no key), Electricity "
    "Maps' with a token, none elsewhere (then it starts now and says why). Prints the start and "
    "the saving, then waits (Ctrl-C stops it) and runs CMD; --print only prints the start."
)
# The settings besides the location that the plan reads, as flags.
SETTING_NAMES = (
    "electricitymaps_api_token",
    "electricitymaps_base_url",
    "electricitymaps_zone",
    "neso_base_url",
)
# The forms of `--print`: ISO 8601, Slurm's `sbatch --begin`, `at -t`.
PRINT_FORMS = ("iso", "slurm", "at")


def _duration(text: str) -> float:
    from carbonmeter.forecast import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: expected more than 0")
    return seconds


def add_greener_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    """The flags `wait` and `run --when-greener` share."""
    group = parser.add_argument_group("carbon-aware start")
    group.add_argument(
        "-d",
        "--duration",
        type=_duration,
        required=required,
        metavar="TIME",
        help="expected duration of the run: 90m, 2h, 1h30m",
    )
    group.add_argument(
        "--within",
        type=_duration,
        required=required,
        metavar="TIME",
        help="the run must finish within this time from now: 12h, 1d",
    )
    group.add_argument(
        "--postcode", help="a postcode in Great Britain: NESO's forecast for its region"
    )
    group.add_argument(
        "--power-w",
        type=number(float),
        metavar="W",
        help="expected mean power of the run, for the kg CO2eq saved",
    )
    group.add_argument(
        "--energy-kwh",
        type=number(float),
        metavar="KWH",
        help="expected energy of the run (a previous run's), for the kg CO2eq saved",
    )
    group.add_argument(
        "--like",
        type=Path,
        metavar="CSV",
        help="take the expected energy from the last run row of this emissions CSV",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_greener_arguments(parser, required=True)
    parser.add_argument(
        "--print",
        nargs="?",
        const="iso",
        choices=PRINT_FORMS,
        dest="print_form",
        help="print only the start (iso, default; slurm: sbatch --begin; at: at -t) and exit",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")


def _last_run_energy_kwh(path: Path) -> float:
    try:
        with path.open(newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if not row.get("window")]
    except OSError as err:
        raise UsageError(f"cannot read --like {str(path)!r}: {err.strerror}") from None
    for row in reversed(rows):
        try:
            return float(row["energy_consumed"])
        except (KeyError, ValueError):
            continue
    raise UsageError(f"--like {str(path)!r} has no run row with energy_consumed")


def _plan_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings the plan reads: where the grid is, and the live and forecast sources."""
    names = (
        "country_iso_code",
        "country_2letter_iso_code",
        "region",
        "cloud_provider",
        "cloud_region",
        *SETTING_NAMES,
    )
    return {name: settings[name] for name in names if name in settings}


def wait_for_start(args: argparse.Namespace, wait: bool = True) -> GreenerPlan:
    """Plans from the flags, prints the plan's line and (with `wait`) sleeps until its start;
    the next tracker of this process records it."""
    from carbonmeter.forecast import describe, sleep_until
    from carbonmeter.forecast import plan as make_plan

    energy_kwh = args.energy_kwh
    if args.like is not None:
        if energy_kwh is not None or args.power_w is not None:
            raise UsageError("--like not allowed with --energy-kwh or --power-w")
        energy_kwh = _last_run_energy_kwh(args.like)
    chosen = make_plan(
        args.duration,
        args.within,
        postcode=args.postcode,
        **_plan_settings(args.settings),
    )
    line = describe(chosen, args.duration, power_w=args.power_w, energy_kwh=energy_kwh)
    print(f"carbonmeter: {line}", file=sys.stderr, flush=True)
    if wait:
        sleep_until(chosen.start_unix_s, chosen.now_unix_s + args.within)
        from carbonmeter._core import _schedule_next_run

        _schedule_next_run(chosen)
    return chosen


def main(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if args.print_form is not None:
        if command:
            raise UsageError("--print not allowed with a command: the scheduler runs it")
        chosen = wait_for_start(args, wait=False)
        form = {"iso": chosen.start_iso, "slurm": chosen.start_slurm, "at": chosen.start_at}
        print(form[args.print_form])
        return 0
    try:
        wait_for_start(args)
    except KeyboardInterrupt:
        print("carbonmeter wait: interrupted before the start", file=sys.stderr)
        return 130
    if not command:
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        # Replaced by CMD: its exit code and signals are its own, as with env(1).
        os.execvp(command[0], command)
    except OSError as err:
        print(f"carbonmeter wait: error: cannot run {command[0]!r}: {err}", file=sys.stderr)
        return 126 if isinstance(err, PermissionError) else 127
    return 0  # not reached: execvp returns only by raising
