"""`carbonmeter report` at scale (issue 33): 1,000 runs of 999 epochs, 1,000,000 rows in one
file, written from a real tracker's rows; prints the report's wall time, its peak resident
memory and the size of the page it writes. Targets: under 5 s, under 300 MB, a page under 5 MB.

Run: `python benches/report_scale.py` (after `maturin develop`). `--python` runs the report with
another interpreter (another checkout's venv, for a before/after), `--runs` and `--epochs`
change the size, `--format json` times another output.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from carbonmeter import EmissionsTracker

TARGET_S = 5.0
TARGET_RSS_MB = 300.0
TARGET_PAGE_MB = 5.0


def template_rows(folder: Path) -> tuple[list[str], list[str], list[str]]:
    """The header, one epoch row and one run row, as a real tracker writes them."""
    tracker = EmissionsTracker(
        output_dir=str(folder),
        project_name="scale",
        experiment_name="a-thousand-runs",
        country_iso_code="FRA",
        measure_power_secs=60,
        force_cpu_power=40.0,
        force_ram_power=5.0,
        log_level="error",
    )
    tracker.start()
    with tracker.epoch():
        sum(i * i for i in range(10_000))
    tracker.stop()
    with (folder / "emissions.csv").open(encoding="utf-8", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    window = header.index("window")
    epoch_row = next(r for r in rows if r[window])
    run_row = next(r for r in rows if not r[window])
    return header, epoch_row, run_row


def write_file(path: Path, runs: int, epochs: int) -> int:
    """`runs` runs of `epochs` epoch rows and one run row each; returns the rows written."""
    with tempfile.TemporaryDirectory() as scratch:
        header, epoch_row, run_row = template_rows(Path(scratch))
    at = {name: i for i, name in enumerate(header)}
    written = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for n in range(runs):
            run_id = str(uuid.UUID(int=n + 1))
            # A run a minute from 2026-12-01: the page's time labels span days, as a team's do.
            minute = n * 7
            stamp = f"2026-12-{1 + minute // 1440:02d}T{minute // 60 % 24:02d}:{minute % 60:02d}"
            rows = []
            for epoch in range(epochs):
                row = list(epoch_row)
                row[at["run_id"]] = run_id
                row[at["timestamp"]] = f"{stamp}:{epoch % 60:02d}"
                row[at["epoch"]] = str(epoch)
                row[at["window"]] = f"train-epoch-{epoch}"
                row[at["energy_consumed"]] = repr(1e-4 * (1 + (epoch * 7 + n) % 13 / 13))
                rows.append(row)
            last = list(run_row)
            last[at["run_id"]] = run_id
            last[at["timestamp"]] = f"{stamp}:59"
            rows.append(last)
            writer.writerows(rows)
            written += len(rows)
    return written


def measure(
    python: str, path: Path, out: Path, output_format: str
) -> tuple[float, float, float, int]:
    """Runs the report once: wall and CPU seconds, peak RSS in MB, bytes of its output."""
    args = [python, "-m", "carbonmeter.cli", "report", str(path), "--format", output_format]
    if output_format == "html":
        args += ["-o", str(out)]
    started = time.perf_counter()
    with out.with_suffix(".stdout").open("wb") as stdout:
        child = subprocess.Popen(args, stdout=stdout, stderr=subprocess.PIPE, cwd=path.parent)
        _, status, usage = os.wait4(child.pid, 0)
    wall_s = time.perf_counter() - started
    stderr = child.stderr.read().decode() if child.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"report failed: {stderr}")
    written = out if output_format == "html" else out.with_suffix(".stdout")
    # ru_maxrss is in KiB on Linux.
    cpu_s = usage.ru_utime + usage.ru_stime
    return wall_s, cpu_s, usage.ru_maxrss / 1024, written.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=999)
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs it")
    parser.add_argument("--format", default="html", choices=("html", "json", "markdown"))
    parser.add_argument("--file", type=Path, help="reuse (or keep) the generated CSV here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = args.file or Path(scratch) / "emissions.csv"
        if not path.exists():
            started = time.perf_counter()
            rows = write_file(path, args.runs, args.epochs)
            print(
                f"wrote {rows:,} rows ({path.stat().st_size / 1e6:.0f} MB) in "
                f"{time.perf_counter() - started:.1f} s"
            )
        out = Path(scratch) / "report.html"
        wall_s, cpu_s, rss_mb, size = measure(args.python, path, out, args.format)
    # CPU time too: on a shared machine the wall time says more about the neighbours.
    print(
        f"report --format {args.format}: {wall_s:.2f} s wall, {cpu_s:.2f} s CPU "
        f"(target < {TARGET_S:g} s)"
    )
    print(f"peak RSS: {rss_mb:.0f} MB (target < {TARGET_RSS_MB:g} MB)")
    print(f"output: {size / 1e6:.2f} MB (target < {TARGET_PAGE_MB:g} MB)")


if __name__ == "__main__":
    main()
