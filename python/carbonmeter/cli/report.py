"""`carbonmeter report`: glue from the command line to `carbonmeter.report`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from carbonmeter.cli._common import to_json
from carbonmeter.report.model import RUN_KEYS

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
        help="restate the total at these grids, comma-separated (FRA,USA,SPNO,gcp:europe-west1); "
        "by default the grids used, the cleanest and dirtiest countries, a few others and World",
    )
    for key, what in (
        ("project", "projects"),
        ("experiment", "experiments (names or ids)"),
        ("host", "hosts"),
        ("user", "users"),
        ("job", "job ids"),
    ):
        parser.add_argument(
            f"--{key}",
            action="append",
            metavar=key.upper() + "S",
            help=f"only the runs of these {what}, comma-separated (repeatable)",
        )
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


def main(args: argparse.Namespace) -> int:
    from carbonmeter import report

    paths = args.paths or ["emissions.csv"]
    since = report.model.parse_when(args.since) if args.since else None
    until = report.model.parse_when(args.until, end=True) if args.until else None
    data = report.load([Path(p) for p in paths])
    for warning in data.warnings:
        # Said before any output, so a total that leaves rows out never reads as complete.
        print(f"carbonmeter: warning: {warning}", file=sys.stderr)
    where = {
        key: [v.strip() for value in getattr(args, key) for v in value.split(",") if v.strip()]
        for key in ("project", "experiment", "host", "user", "job")
        if getattr(args, key)
    }
    if where or since or until:
        data = report.model.select(data, where, since, until)
    zones = args.compare.split(",") if args.compare is not None else None
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
        print(to_json(report.to_json(data, zones, args.group_by)))
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
