"""`carbonmeter estimate`: TDP x count x hours x PUE x grid intensity (ML CO2 Impact), then the
devices' embodied carbon and the water of that energy (docs/footprint.md)."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from carbonmeter._core import (
    CPU_TDP_MODEL_COUNT,
    GPU_TDP_ALIASES,
    SETTINGS,
    __version__,
    estimate_co2,
    estimate_footprint,
    gpu_tdp_table,
    lookup_hardware,
)
from carbonmeter._format import co2, co2_band, energy, litres
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
SETTING_NAMES = ("pue", "wue", "hardware_lifetime_years")
_PUE = next(setting for setting in SETTINGS if setting.name == "pue")
_LIFETIME = next(setting for setting in SETTINGS if setting.name == "hardware_lifetime_years")


class _ListHardware(argparse.Action):
    """`estimate --list`: the names `--hardware` takes, then exit (like `--version`)."""

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> NoReturn:
        for device in gpu_tdp_table():
            memory = f", {device.memory_gb:g} GB" if device.memory_gb else ""
            note = f"; {device.note}" if device.note else ""
            print(
                f"{device.model}  ({device.kind}, {device.tdp_w:g} W{memory}, {device.year}{note})"
            )
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
    if device.note:
        # The vendor's figure replaced the ML CO2 Impact calculator's: say what it was.
        tdp_source += f"; {device.note}"
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
    lifetime_years = float(args.settings.get("hardware_lifetime_years", _LIFETIME.default))
    wue = args.settings.get("wue")
    footprint = estimate_footprint(
        device.model,
        args.count,
        args.hours,
        energy_kwh,
        pue,
        lifetime_years,
        wue=None if wue is None else float(wue),
        country_iso3=grid.country_iso_code,
        cloud_provider=grid.cloud_provider,
        cloud_region=grid.cloud_region,
    )
    result.update(footprint_result(footprint, lifetime_years))
    formula = (
        f"{device.tdp_w:g} W x {args.count} x {args.hours:g} h x PUE {pue:g} "
        f"= {energy(energy_kwh)}; x {grid.g_per_kwh:g} g/kWh = {co2(co2_kg)} CO2eq"
    )
    lines = footprint_lines(footprint, device.model, args.count, args.hours, lifetime_years)
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
        print("\n" + "\n".join(f"- {line}" for line in lines))
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
                f"{paper_footprint(footprint)}"
                f"Estimated with carbonmeter {__version__}."
            )
        )
    else:
        what = f"{device.model} ({device.kind}, {device.tdp_w:g} W)"
        print(f"{args.count} x {what} for {args.hours:g} h")
        print(formula)
        print(f"TDP source: {tdp_source}")
        print(f"intensity: {grid.zone}, {grid.source}" + (f" ({grid.year})" if grid.year else ""))
        print("\n".join(lines))
    return 0


def footprint_result(footprint: dict[str, Any], lifetime_years: float) -> dict[str, Any]:
    """The JSON keys of the embodied and water lines."""
    return {
        "hardware_lifetime_years": lifetime_years,
        "embodied_kg": footprint["embodied_kg"],
        "embodied_kg_low": footprint["embodied_kg_low"],
        "embodied_kg_high": footprint["embodied_kg_high"],
        "embodied_source": footprint.get("embodied_source"),
        "water_onsite_l": footprint["water_onsite_l"],
        "water_onsite_source": footprint["water_onsite_source"],
        "water_offsite_l": footprint["water_offsite_l"],
        "water_offsite_source": footprint["water_offsite_source"],
    }


def footprint_lines(
    footprint: dict[str, Any], model: str, count: int, hours: float, lifetime_years: float
) -> list[str]:
    """The embodied line and the water line, each with its arithmetic and source."""
    if footprint["embodied_kg"] is None:
        embodied = (
            f"embodied: no sourced figure for {model} in data/embodied_carbon.csv (left out, not 0)"
        )
    else:
        bound = (
            " (BoaviztAPI's model: an upper bound)"
            if footprint["embodied_upper_bound_only"]
            else ""
        )
        embodied = (
            f"embodied: {footprint['embodied_kg_per_device']:g} kg per device{bound} x {count} x "
            f"{hours:g} h / ({lifetime_years:g} y x 8,766 h) = "
            + co2_band(
                footprint["embodied_kg"],
                footprint["embodied_kg_low"],
                footprint["embodied_kg_high"],
            )
            + f" CO2eq (the devices only; {footprint['embodied_device']}, "
            f"{footprint['embodied_basis']}, {footprint['embodied_year']})"
        )
    offsite = litres(footprint["water_offsite_l"])
    water = f"water off-site: {offsite} ({footprint['water_offsite_source']})"
    if footprint["water_onsite_l"] is None:
        water += "; on-site: not known (set --wue or a cloud region)"
    else:
        water += (
            f"; on-site: {litres(footprint['water_onsite_l'])} ({footprint['water_onsite_source']})"
        )
    return [embodied, water]


def paper_footprint(footprint: dict[str, Any]) -> str:
    """The sentence the LaTeX paragraph adds: embodied carbon and water, or what is unknown."""
    embodied = (
        "no sourced embodied figure for this device"
        if footprint["embodied_kg"] is None
        else f"{co2(footprint['embodied_kg'])} CO2eq embodied in the devices"
    )
    water = litres(footprint["water_offsite_l"]) + " of water off-site"
    if footprint["water_onsite_l"] is not None:
        water += f" and {litres(footprint['water_onsite_l'])} on-site"
    return f"Besides, {embodied}; {water}. "
