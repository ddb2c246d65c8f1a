"""`carbonmeter intensity`: a grid's carbon intensity with its source and year."""

from __future__ import annotations

import argparse

from carbonmeter.cli._common import to_json
from carbonmeter.intensity import lookup

HELP = "a grid's carbon intensity with its source and year"
DESCRIPTION = "The table intensity of a location (the world average without one)."
LOCATION_REQUIRED = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text")


def main(args: argparse.Namespace) -> int:
    grid = lookup(**args.location)
    record = {
        "g_per_kwh": grid.g_per_kwh,
        "zone": grid.zone,
        "country_name": grid.country_name,
        "source": grid.source,
        "year": grid.year,
        "method": grid.method,
    }
    if args.format == "json":
        print(to_json(record))
    elif args.format == "markdown":
        print("| zone | g CO2eq/kWh | year | source |\n|---|---|---|---|")
        print(f"| {grid.zone} | {grid.g_per_kwh:g} | {grid.year or ''} | {grid.source} |")
    else:
        name = f" ({grid.country_name})" if grid.country_name else ""
        print(f"{grid.g_per_kwh:g} g CO2eq/kWh  {grid.zone}{name}")
        print(f"source: {grid.source}" + (f" ({grid.year})" if grid.year else ""))
    return 0
