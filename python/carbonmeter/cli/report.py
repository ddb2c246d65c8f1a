"""`carbonmeter report`: glue from the command line to `carbonmeter.report`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from carbonmeter.cli._common import to_json

HELP = "an HTML report (or LaTeX, JSON, Markdown) of emissions CSVs"
DESCRIPTION = (
    "Reads emissions CSVs (carbonmeter's or CodeCarbon's; folders are searched for *.csv) and "
    "writes one self-contained HTML page, or prints --format latex, json or markdown."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="CSV_OR_FOLDER")
    parser.add_argument("-o", "--output", default="report.html", help="HTML file (report.html)")
    parser.add_argument("--format", choices=("html", "json", "markdown", "latex"), default="html")
    parser.add_argument(
        "--compare",
        metavar="ZONES",
        help="restate the total at these grids, comma-separated (FRA,USA,SPNO,gcp:europe-west1); "
        "by default the grids used, the cleanest and dirtiest countries, a few others and World",
    )
    parser.add_argument(
        "--diff",
        nargs=2,
        metavar=("RUN_A", "RUN_B"),
        help="compare two runs (run ids, 8+ characters of one, or experiment names)",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="serve the HTML report over HTTP instead of writing it, reloading it while runs "
        "append (no database, no login)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="--serve's address (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="--serve's port (8000; 0: any)")
    parser.add_argument(
        "--refresh",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how often a served page checks the files (5; at least 1)",
    )


def main(args: argparse.Namespace) -> int:
    from carbonmeter import report

    paths = args.paths or ["emissions.csv"]
    zones = args.compare.split(",") if args.compare is not None else None
    if args.serve:
        return _serve(args, paths, zones)
    data = report.load([Path(p) for p in paths])
    for warning in data.warnings:
        # Said before any output, so a total that leaves rows out never reads as complete.
        print(f"carbonmeter: warning: {warning}", file=sys.stderr)
    if zones is not None:
        report.what_if(data, zones)  # a bad zone fails here, before anything is written
    if args.diff:
        result = report.diff(data, *args.diff)
        if args.format == "json":
            print(to_json(result))
        elif args.format == "html":
            Path(args.output).write_text(report.html.render_diff(result, data), encoding="utf-8")
            print(f"carbonmeter: comparison written to {args.output}", file=sys.stderr)
        else:
            print(report.text.diff_markdown(result))
        return 0
    if args.format == "json":
        print(
            to_json({**report.to_json(data, zones), "tradeoff": report.tradeoff.to_json(data.runs)})
        )
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


def _serve(args: argparse.Namespace, paths: list[str], zones: list[str] | None) -> int:
    from carbonmeter.report import model, serve

    if args.refresh < 1:
        raise ValueError(f"--refresh {args.refresh:g}: expected at least 1 second")
    if args.diff or args.format != "html":
        raise ValueError("--serve serves the HTML report: drop --diff and --format")
    for zone in zones or []:
        model.grid(zone)  # a bad zone fails here, before the server starts
    return serve.serve(paths, zones, args.host, args.port, args.refresh)
