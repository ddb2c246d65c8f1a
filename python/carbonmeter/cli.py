"""The `carbonmeter` command line: measure a command, watch a machine, report and estimate.

Thin over the core: `run` and `monitor` drive a real `EmissionsTracker`, `intensity` and
`estimate` read the core's tables, `report` reads emissions CSVs (ours or CodeCarbon's).
Bad input prints one line naming the value and what is allowed, and exits 2.

Example:
    $ carbonmeter run --country-iso-code FRA -- python train.py
    $ carbonmeter report runs/ -o report.html
    $ carbonmeter estimate --hardware "A100 SXM4 80 GB" --count 8 --hours 24 --country FRA
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from carbonmeter._core import (
    CPU_TDP_MODEL_COUNT,
    GPU_TDP_ALIASES,
    SETTINGS,
    UNSERVED_SETTINGS,
    EmissionsData,
    EmissionsTracker,
    __version__,
    estimate_co2,
    gpu_tdp_table,
    lookup_hardware,
)
from carbonmeter._format import co2, energy, seconds
from carbonmeter.intensity import lookup

FORMATS = ("text", "json", "markdown", "latex")


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


# Settings that are not flags: the Python-object `loggers`, a token alias, and CodeCarbon's
# options for services carbonmeter does not offer (accepted by the tracker with a warning).
_NOT_FLAGS = {"loggers", "co2_signal_api_token", *UNSERVED_SETTINGS}
# The type of each setting that is not a string; the core checks every value's range.
_FLOAT = {
    "measure_power_secs",
    "pue",
    "wue",
    "force_cpu_power",
    "force_ram_power",
    "force_carbon_intensity_g_co2e_kwh",
    "default_cpu_power",
    "gpu_poll_secs",
}
_INT = {"rank"}
_BOOL = {
    "save_to_file",
    "force_mode_cpu_load",
    "rapl_include_dram",
    "rapl_prefer_psys",
    "allow_multiple_runs",
}
_CHOICES = {
    "tracking_mode": ("machine", "process"),
    "on_csv_write": ("append", "update"),
    "sync": ("none", "torch"),
    "log_level": ("debug", "info", "warning", "error", "critical"),
}
_LIST = {"gpu_ids"}
TRACKER_FLAGS = [name for name in SETTINGS if name not in _NOT_FLAGS]


def _number(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {what}") from None

    parse.__name__ = kind.__name__
    return parse


def _add_tracker_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "tracker options", "EmissionsTracker keyword arguments (see the README's Settings)"
    )
    for name in TRACKER_FLAGS:
        flag = "--" + name.replace("_", "-")
        if name in _BOOL:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction)
        elif name in _FLOAT:
            group.add_argument(flag, dest=name, type=_number(float), metavar="X")
        elif name in _INT:
            group.add_argument(flag, dest=name, type=_number(int), metavar="N")
        elif name in _CHOICES:
            group.add_argument(flag, dest=name, choices=_CHOICES[name])
        elif name in _LIST:
            group.add_argument(flag, dest=name, metavar="ID[,ID...]")
        else:
            group.add_argument(flag, dest=name, metavar=name.split("_")[-1].upper())


def _tracker_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs = {}
    for name in TRACKER_FLAGS:
        value = getattr(args, name, None)
        if value is None:
            continue
        if name in _LIST:
            value = [item.strip() for item in value.split(",") if item.strip()]
        kwargs[name] = value
    return kwargs


def _parse_cloud(text: str) -> tuple[str, str]:
    provider, sep, region = text.partition(":")
    if not sep or not provider or not region:
        raise UsageError(
            f"invalid --cloud {text!r}: expected PROVIDER:REGION, e.g. gcp:europe-west1"
        )
    return provider, region


def _location(args: argparse.Namespace) -> dict[str, str]:
    if getattr(args, "cloud", None):
        provider, region = _parse_cloud(args.cloud)
        return {"cloud_provider": provider, "cloud_region": region}
    if getattr(args, "region", None):
        return {"region": args.region}
    if getattr(args, "country", None):
        return {"country": args.country}
    return {}


def _summary(data: EmissionsData) -> str:
    parts = [
        f"{energy(data.energy_consumed)}",
        f"(CPU {energy(data.cpu_energy)}, GPU {energy(data.gpu_energy)}, "
        f"RAM {energy(data.ram_energy)})",
        f"{co2(data.emissions)} CO2eq at {data.intensity_g_per_kwh:.0f} g/kWh",
        f"({data.intensity_zone}, {data.intensity_source}"
        + (f", {data.intensity_year})" if data.intensity_year else ")"),
    ]
    return " ".join(parts)


# --- run ---------------------------------------------------------------------------------------


def _terminal_signalled_group() -> bool:
    """Whether we are in the terminal's foreground group: its Ctrl-C reached the child too."""
    for fd in (0, 1, 2):
        try:
            return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False


def cmd_run(args: argparse.Namespace) -> int:
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
    tracker = EmissionsTracker(**_tracker_kwargs(args))
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
            f"carbonmeter: {name} ({how}) {seconds(data.duration)}: {_summary(data)}{where}",
            file=sys.stderr,
        )
    return code


# --- monitor -----------------------------------------------------------------------------------


def cmd_monitor(args: argparse.Namespace) -> int:
    if not args.interval > 0:
        raise UsageError(f"invalid --interval {args.interval}: expected seconds > 0")
    tracker = EmissionsTracker(**_tracker_kwargs(args))
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
        print(f"carbonmeter: monitored {seconds(data.duration)}: {_summary(data)}{where}")
    return 0


# --- intensity ---------------------------------------------------------------------------------


def cmd_intensity(args: argparse.Namespace) -> int:
    grid = lookup(**_location(args))
    record = {
        "g_per_kwh": grid.g_per_kwh,
        "zone": grid.zone,
        "country_name": grid.country_name,
        "source": grid.source,
        "year": grid.year,
        "method": grid.method,
    }
    if args.format == "json":
        print(json.dumps(record, indent=2))
    elif args.format == "markdown":
        print("| zone | g CO2eq/kWh | year | source |\n|---|---|---|---|")
        print(f"| {grid.zone} | {grid.g_per_kwh:g} | {grid.year or ''} | {grid.source} |")
    else:
        name = f" ({grid.country_name})" if grid.country_name else ""
        print(f"{grid.g_per_kwh:g} g CO2eq/kWh  {grid.zone}{name}")
        print(f"source: {grid.source}" + (f" ({grid.year})" if grid.year else ""))
    return 0


# --- estimate ----------------------------------------------------------------------------------


def cmd_estimate(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise UsageError(f"invalid --count {args.count}: expected an integer >= 1")
    if not args.hours > 0:
        raise UsageError(f"invalid --hours {args.hours}: expected hours > 0")
    if not args.pue >= 1.0:
        raise UsageError(f"invalid --pue {args.pue}: expected a PUE >= 1.0 (1.0 = no overhead)")
    device = lookup_hardware(args.hardware)
    grid = lookup(**_location(args))
    energy_kwh, co2_kg = estimate_co2(
        device.tdp_w, args.count, args.hours, args.pue, grid.g_per_kwh
    )
    tdp_source = f"{device.source}, {device.year} (data/{device.table})"
    result = {
        "hardware": device.model,
        "kind": device.kind,
        "tdp_w": device.tdp_w,
        "tdp_source": tdp_source,
        "count": args.count,
        "hours": args.hours,
        "pue": args.pue,
        "energy_kwh": energy_kwh,
        "intensity_g_per_kwh": grid.g_per_kwh,
        "intensity_zone": grid.zone,
        "intensity_source": grid.source,
        "intensity_year": grid.year,
        "co2_kg": co2_kg,
        "method": "TDP x count x hours x PUE x grid intensity (ML CO2 Impact calculator)",
    }
    formula = (
        f"{device.tdp_w:g} W x {args.count} x {args.hours:g} h x PUE {args.pue:g} "
        f"= {energy(energy_kwh)}; x {grid.g_per_kwh:g} g/kWh = {co2(co2_kg)} CO2eq"
    )
    if args.format == "json":
        print(json.dumps(result, indent=2))
    elif args.format == "markdown":
        print(f"**Estimate**: {args.count} x {device.model} for {args.hours:g} h in {grid.zone}\n")
        print("| energy | emissions | TDP | PUE | intensity |\n|---|---|---|---|---|")
        print(
            f"| {energy(energy_kwh)} | {co2(co2_kg)} CO2eq | {device.tdp_w:g} W | "
            f"{args.pue:g} | {grid.g_per_kwh:g} g/kWh |"
        )
        print(f"\n{formula}. TDP: {tdp_source}. Intensity: {grid.source} ({grid.year}).")
    elif args.format == "latex":
        from carbonmeter.report.text import latex_escape

        print(
            latex_escape(
                f"We estimate that {args.hours:g} hours on {args.count} {device.model} "
                f"{'device' if args.count == 1 else 'devices'} ({device.tdp_w:g} W TDP each) "
                f"with a PUE of {args.pue:g} used {energy(energy_kwh)} and emitted "
                f"{co2(co2_kg)} CO2eq at {grid.g_per_kwh:g} g CO2eq/kWh ({grid.zone}; "
                f"{grid.source}, {grid.year}), following the ML CO2 Impact calculator "
                f"(Lacoste et al., 2019): TDP x devices x hours x PUE x grid intensity. "
                f"Estimated with carbonmeter {__version__}."
            )
        )
    else:
        what = f"{device.model} ({device.kind}, {device.tdp_w:g} W)"
        print(f"{args.count} x {what} for {args.hours:g} h")
        print(formula)
        print(f"TDP source: {tdp_source}")
        print(f"intensity: {grid.zone}, {grid.source}" + (f" ({grid.year})" if grid.year else ""))
    return 0


# --- report ------------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    from carbonmeter import report

    paths = args.paths or ["emissions.csv"]
    data = report.load([Path(p) for p in paths])
    zones = args.compare.split(",") if args.compare is not None else None
    if zones is not None:
        report.what_if(data, zones)  # a bad zone fails here, before anything is written
    if args.diff:
        result = report.diff(data, *args.diff)
        if args.format == "json":
            print(json.dumps(result, indent=2))
        elif args.format == "html":
            Path(args.output).write_text(report.html.render_diff(result, data), encoding="utf-8")
            print(f"carbonmeter: comparison written to {args.output}", file=sys.stderr)
        else:
            print(report.text.diff_markdown(result))
        return 0
    if args.format == "json":
        print(json.dumps(report.to_json(data, zones), indent=2))
    elif args.format == "markdown":
        print(report.text.markdown(data, zones))
    elif args.format == "latex":
        print(report.text.latex(data))
    else:
        out = Path(args.output)
        out.write_text(report.html.render(data, zones), encoding="utf-8")
        runs = report.model.plural(len(data.runs), "run")
        print(f"carbonmeter: report of {runs} written to {out}", file=sys.stderr)
    return 0


# --- parser ------------------------------------------------------------------------------------


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"carbonmeter: {record.levelname.lower()}: {record.getMessage()}"


class _ListHardware(argparse.Action):
    """`estimate --list`: the names `--hardware` takes, then exit (like `--version`)."""

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> NoReturn:
        for device in gpu_tdp_table():
            memory = f", {device.memory_gb:g} GB" if device.memory_gb else ""
            print(f"{device.model}  ({device.kind}, {device.tdp_w:g} W{memory}, {device.year})")
        for alias, model in GPU_TDP_ALIASES:
            print(f"{alias}  (nvidia-smi's name for {model})")
        print(
            f"... and {CPU_TDP_MODEL_COUNT} CPU models (data/cpu_tdp.csv), found by brand string "
            'such as "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"'
        )
        parser.exit()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def _add_location(parser: argparse.ArgumentParser, required: bool) -> None:
    where = parser.add_mutually_exclusive_group(required=required)
    where.add_argument("--country", help="ISO 3166-1 alpha-3 or alpha-2 code, or English name")
    where.add_argument("--region", help="US-CA, CA-QC, CN-GD, SE3, or a region's English name")
    where.add_argument("--cloud", metavar="PROVIDER:REGION", help="e.g. gcp:europe-west1")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="carbonmeter",
        description="Energy and CO2 of ML training: measure, monitor, report, estimate.",
    )
    parser.add_argument("--version", action="version", version=f"carbonmeter {__version__}")
    commands = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run a command and measure it",
        description="Runs CMD, measures it (its process tree with --tracking-mode process, the "
        "machine otherwise), writes the row and exits with CMD's exit code (128+N if killed by "
        "signal N). Ctrl-C and SIGTERM are passed to CMD; the row is still written.",
    )
    _add_tracker_options(run)
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    run.set_defaults(handler=cmd_run)

    monitor = commands.add_parser(
        "monitor",
        help="measure the machine until stopped",
        description="Measures the machine until Ctrl-C or SIGTERM, writing a row every "
        "interval; a live status line on a terminal, one line per interval otherwise.",
    )
    monitor.add_argument(
        "--interval", type=_number(float), default=15.0, metavar="S", help="seconds (15)"
    )
    _add_tracker_options(monitor)
    monitor.set_defaults(handler=cmd_monitor)

    report = commands.add_parser(
        "report",
        help="an HTML report (or LaTeX, JSON, Markdown) of emissions CSVs",
        description="Reads emissions CSVs (carbonmeter's or CodeCarbon's; folders are searched "
        "for *.csv) and writes one self-contained HTML page, or prints --format latex, json or "
        "markdown.",
    )
    report.add_argument("paths", nargs="*", metavar="CSV_OR_FOLDER")
    report.add_argument("-o", "--output", default="report.html", help="HTML file (report.html)")
    report.add_argument("--format", choices=("html", "json", "markdown", "latex"), default="html")
    report.add_argument(
        "--compare",
        metavar="ZONES",
        help="restate the total at these grids, comma-separated (FRA,USA,SPNO,gcp:europe-west1); "
        "by default the grids used, the cleanest and dirtiest countries, a few others and World",
    )
    report.add_argument(
        "--diff",
        nargs=2,
        metavar=("RUN_A", "RUN_B"),
        help="compare two runs (run ids, 8+ characters of one, or experiment names)",
    )
    report.set_defaults(handler=cmd_report)

    estimate = commands.add_parser(
        "estimate",
        help="estimate a run from hardware, hours and location (ML CO2 Impact)",
        description="TDP x count x hours x PUE x grid intensity, as the ML CO2 Impact "
        "calculator does; TDPs from carbonmeter's GPU and CPU tables.",
    )
    estimate.add_argument(
        "--hardware", required=True, help='e.g. "NVIDIA A100-SXM4-80GB", T4 (see --list)'
    )
    estimate.add_argument(
        "--list", action=_ListHardware, nargs=0, help="list the hardware names known, then exit"
    )
    estimate.add_argument("--count", type=_number(int), default=1, metavar="N")
    estimate.add_argument("--hours", type=_number(float), required=True, metavar="H")
    estimate.add_argument("--pue", type=_number(float), default=1.0, metavar="P")
    _add_location(estimate, required=True)
    estimate.add_argument("--format", choices=FORMATS, default="text")
    estimate.set_defaults(handler=cmd_estimate)

    intensity = commands.add_parser(
        "intensity",
        help="a grid's carbon intensity with its source and year",
        description="The table intensity of a location (the world average without one).",
    )
    _add_location(intensity, required=False)
    intensity.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    intensity.set_defaults(handler=cmd_intensity)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `carbonmeter` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # The core's warnings (an unknown CPU model, a sensor fault) as one line each on stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    logging.getLogger("carbonmeter").addHandler(handler)
    parser = build_parser()
    prog = "carbonmeter"
    try:
        # `run [options] -- CMD`: everything after the first `--` is the command, untouched.
        if argv[:1] == ["run"] and "--" in argv:
            split = argv.index("--")
            args = parser.parse_args(argv[:split])
            args.command = argv[split + 1 :]
        else:
            args = parser.parse_args(argv)
        prog = f"carbonmeter {args.command_name}"
        return int(args.handler(args))
    except UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, TypeError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `carbonmeter report --format json | head`: the reader left.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
