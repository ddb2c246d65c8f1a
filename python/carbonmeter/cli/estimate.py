"""`carbonmeter estimate`: TDP x count x hours x PUE x grid intensity (ML CO2 Impact)."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from carbonmeter._core import (
    CPU_TDP_MODEL_COUNT,
    GPU_TDP_ALIASES,
    SETTINGS,
    __version__,
    estimate_co2,
    gpu_tdp_table,
    lookup_hardware,
)
from carbonmeter._format import co2, energy
from carbonmeter.cli._common import UsageError, number, to_json
from carbonmeter.intensity import lookup

HELP = "estimate a run from hardware, hours and location (ML CO2 Impact)"
DESCRIPTION = (
    "TDP x count x hours x PUE x grid intensity, as the ML CO2 Impact calculator does; TDPs "
    "from carbonmeter's GPU and CPU tables."
)
LOCATION_REQUIRED = True
FORMATS = ("text", "json", "markdown", "latex")
# The tracker settings this command reads besides the location.
SETTING_NAMES = ("pue",)
_PUE = next(setting for setting in SETTINGS if setting.name == "pue")


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hardware", required=True, help='e.g. "NVIDIA A100-SXM4-80GB", T4 (see --list)'
    )
    parser.add_argument(
        "--list", action=_ListHardware, nargs=0, help="list the hardware names known, then exit"
    )
    parser.add_argument("--count", type=number(int), default=1, metavar="N")
    parser.add_argument("--hours", type=number(float), required=True, metavar="H")
    parser.add_argument("--format", choices=FORMATS, default="text")


def main(args: argparse.Namespace) -> int:
    pue = float(args.settings.get("pue", _PUE.default))
    if args.count < 1:
        raise UsageError(f"invalid --count {args.count}: expected an integer >= 1")
    if not args.hours > 0:
        raise UsageError(f"invalid --hours {args.hours}: expected hours > 0")
    if _PUE.minimum is not None and not pue >= _PUE.minimum:
        raise UsageError(f"invalid --pue {pue}: expected a PUE >= {_PUE.minimum} ({_PUE.doc})")
    device = lookup_hardware(args.hardware)
    grid = lookup(**args.location)
    energy_kwh, co2_kg = estimate_co2(device.tdp_w, args.count, args.hours, pue, grid.g_per_kwh)
    tdp_source = f"{device.source}, {device.year} (data/{device.table})"
    result = {
        "hardware": device.model,
        "kind": device.kind,
        "tdp_w": device.tdp_w,
        "tdp_source": tdp_source,
        "count": args.count,
        "hours": args.hours,
        "pue": pue,
        "energy_kwh": energy_kwh,
        "intensity_g_per_kwh": grid.g_per_kwh,
        "intensity_zone": grid.zone,
        "intensity_source": grid.source,
        "intensity_year": grid.year,
        "co2_kg": co2_kg,
        "method": "TDP x count x hours x PUE x grid intensity (ML CO2 Impact calculator)",
    }
    formula = (
        f"{device.tdp_w:g} W x {args.count} x {args.hours:g} h x PUE {pue:g} "
        f"= {energy(energy_kwh)}; x {grid.g_per_kwh:g} g/kWh = {co2(co2_kg)} CO2eq"
    )
    if args.format == "json":
        print(to_json(result))
    elif args.format == "markdown":
        print(f"**Estimate**: {args.count} x {device.model} for {args.hours:g} h in {grid.zone}\n")
        print("| energy | emissions | TDP | PUE | intensity |\n|---|---|---|---|---|")
        print(
            f"| {energy(energy_kwh)} | {co2(co2_kg)} CO2eq | {device.tdp_w:g} W | "
            f"{pue:g} | {grid.g_per_kwh:g} g/kWh |"
        )
        print(f"\n{formula}. TDP: {tdp_source}. Intensity: {grid.source} ({grid.year}).")
    elif args.format == "latex":
        from carbonmeter.report.text import latex_escape

        print(
            latex_escape(
                f"We estimate that {args.hours:g} hours on {args.count} {device.model} "
                f"{'device' if args.count == 1 else 'devices'} ({device.tdp_w:g} W TDP each) "
                f"with a PUE of {pue:g} used {energy(energy_kwh)} and emitted "
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
