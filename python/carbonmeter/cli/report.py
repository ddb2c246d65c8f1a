"""`carbonmeter report`: glue from the command line to `carbonmeter.report`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from carbonmeter.cli._common import to_json
from carbonmeter.report.model import RUN_KEYS, Report

# The filters: a `RUN_KEYS` key and its flag's destination.
FILTERS = {
    "project": "project",
    "experiment": "experiment",
    "host": "hostname",
    "user": "user",
    "job": "job",
}

HELP = "an HTML report (or LaTeX, JSON, Markdown) of emissions CSVs"
DESCRIPTION = (
    "Reads emissions CSVs (carbonmeter's or CodeCarbon's; folders are searched for *.csv, "
    "globs such as 'runs/**/emissions*.csv' expanded; a file or run found twice counts once) "
    "and writes one self-contained HTML page, or prints --format latex, json or markdown. "
    "Warnings about skipped rows go to stderr only."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="CSV_OR_FOLDER")
    parser.add_argument("-o", "--output", default="report.html", help="HTML file (report.html)")
    parser.add_argument("--format", choices=("html", "json", "markdown", "latex"), default="html")
    parser.add_argument(
        "--compare",
        metavar="ZONES",
        help="restate the total at these grids, comma-separated (FRA,USA,SPNO,gcp:europe-west1), "
        "the grids used always first; by default a cloud run's provider regions, a region's "
        "country regions or the eGRID subregions, else a few countries and World",
    )
    for key, what in (
        ("project", "projects"),
        ("experiment", "experiments (names or ids)"),
        ("hostname", "hosts"),
        ("user", "users"),
        ("job", "job ids"),
    ):
        parser.add_argument(
            f"--{key}",
            action="append",
            metavar=key.upper() + "S",
            help=f"only the runs of these {what}, comma-separated (repeatable)",
        )
    # (`--hostname` filters by the `host` column: `--host` is --serve's address.)
    parser.add_argument("--since", metavar="DATE", help="only runs started on or after DATE")
    parser.add_argument("--until", metavar="DATE", help="only runs started on or before DATE")
    parser.add_argument(
        "--group-by",
        choices=tuple(RUN_KEYS),
        help="add a table of the runs' sums by project, experiment, host, user, job, date or month",
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
    since = report.model.parse_when(args.since) if args.since else None
    until = report.model.parse_when(args.until, end=True) if args.until else None
    where = {
        key: [v.strip() for value in getattr(args, flag) for v in value.split(",") if v.strip()]
        for key, flag in FILTERS.items()
        if getattr(args, flag)
    }
    zones = args.compare.split(",") if args.compare is not None else None
    if args.serve:

        def render(data: report.Report, zones: list[str] | None) -> str:
            if where or since or until:
                data = report.model.select(data, where, since, until)
            return report.html.render(data, zones, args.group_by)

        return _serve(args, paths, zones, render)
    data = report.load([Path(p) for p in paths])
    for warning in data.warnings:
        # Said before any output, so a total that leaves rows out never reads as complete.
        print(f"carbonmeter: warning: {warning}", file=sys.stderr)
    if where or since or until:
        data = report.model.select(data, where, since, until)
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
            to_json(
                {
                    **report.to_json(data, zones, args.group_by),
                    "tradeoff": report.tradeoff.to_json(data.runs),
                }
            )
        )
    elif args.format == "markdown":
        print(report.text.markdown(data, zones, args.group_by))
    elif args.format == "latex":
        print(report.text.latex(data))
    else:
        out = Path(args.output)
        out.write_text(report.html.render(data, zones, args.group_by), encoding="utf-8")
        runs = report.model.plural(len(data.runs), "run")
        print(f"carbonmeter: report of {runs} written to {out}", file=sys.stderr)
    return 0


def _serve(
    args: argparse.Namespace,
    paths: list[str],
    zones: list[str] | None,
    render: Callable[[Report, list[str] | None], str],
) -> int:
    from carbonmeter.report import model, serve

    if args.refresh < 1:
        raise ValueError(f"--refresh {args.refresh:g}: expected at least 1 second")
    if args.diff or args.format != "html":
        raise ValueError("--serve serves the HTML report: drop --diff and --format")
    for zone in zones or []:
        model.grid(zone)  # a bad zone fails here, before the server starts
    return serve.serve(paths, zones, args.host, args.port, args.refresh, render)
