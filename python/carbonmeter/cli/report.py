"""`carbonmeter report`: glue from the command line to `carbonmeter.report`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "an HTML report (or LaTeX, JSON, Markdown) of emissions CSVs"
DESCRIPTION = (
    "Reads emissions CSVs (carbonmeter's or CodeCarbon's; folders are searched for *.csv) and "
    "writes one self-contained HTML page, or prints --format latex, json or markdown."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="CSV_OR_FOLDER")
    parser.add_argument("-o", "--output", default="report.html", help="HTML file (report.html)")
    parser.add_argument("--format", choices=("html", "json", "markdown", "latex"), default="html")


def main(args: argparse.Namespace) -> int:
    from carbonmeter import report

    paths = args.paths or ["emissions.csv"]
    data = report.load([Path(p) for p in paths])
    if args.format == "json":
        print(json.dumps(report.to_json(data), indent=2))
    elif args.format == "markdown":
        print(report.text.markdown(data))
    elif args.format == "latex":
        print(report.text.latex(data))
    else:
        out = Path(args.output)
        out.write_text(report.html.render(data), encoding="utf-8")
        print(f"carbonmeter: report of {len(data.runs)} runs written to {out}", file=sys.stderr)
    return 0
