"""Prints what carbonmeter costs: import, start()+stop(), sampler CPU, and memory.

Medians over repeated runs in one process (or fresh subprocesses for imports), so the figures
are comparable within one run; run `python benches/overhead.py [--quick]`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def median_range(samples: list[float]) -> str:
    return f"{statistics.median(samples):.4g} [{min(samples):.4g}-{max(samples):.4g}]"


def cold_import_s(module: str, runs: int) -> list[float]:
    """Wall time of `import module` in fresh interpreters, minus a bare interpreter's start."""

    def run(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - started

    bare = [run("pass") for _ in range(runs)]
    loaded = [run(f"import {module}") for _ in range(runs)]
    baseline = statistics.median(bare)
    return [sample - baseline for sample in loaded]


def start_stop_s(runs: int, **kwargs: object) -> list[float]:
    from carbonmeter import EmissionsTracker

    samples = []
    for _ in range(runs):
        tracker = EmissionsTracker(country_iso_code="FRA", **kwargs)
        started = time.perf_counter()
        tracker.start()
        tracker.stop()
        samples.append(time.perf_counter() - started)
    return samples


def sampler_cpu_per_s(measure_power_secs: float, wall_s: float) -> float:
    """Process CPU seconds per wall second while the main thread sleeps."""
    from carbonmeter import EmissionsTracker

    tracker = EmissionsTracker(
        country_iso_code="FRA", save_to_file=False, measure_power_secs=measure_power_secs
    )
    tracker.start()
    cpu_before = time.process_time()
    wall_before = time.perf_counter()
    time.sleep(wall_s)
    cpu = time.process_time() - cpu_before
    wall = time.perf_counter() - wall_before
    tracker.stop()
    return cpu / wall


RSS_PROBE = """
import time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
bare = rss()
from carbonmeter import EmissionsTracker
imported = rss()
tracker = EmissionsTracker(country_iso_code="FRA", save_to_file=False, measure_power_secs=0.05)
tracker.start()
time.sleep(0.3)
running = rss()
tracker.stop()
print(imported - bare, running - imported)
"""


def rss_added_kib() -> tuple[float, float]:
    """VmRSS added by `import carbonmeter`, then by a started tracker, in a fresh process."""
    output = subprocess.run(
        [sys.executable, "-c", RSS_PROBE], check=True, capture_output=True, text=True
    ).stdout
    imported, running = output.split()
    return float(imported), float(running)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    runs = 5 if args.quick else 21
    wall_s = 2.0 if args.quick else 10.0

    print(f"carbonmeter overhead, {runs} runs per figure, python {sys.version.split()[0]}")
    imports = cold_import_s("carbonmeter", runs)
    print(f"cold import (s, minus bare interpreter): {median_range(imports)}")
    print(f"start()+stop(), no file (s): {median_range(start_stop_s(runs, save_to_file=False))}")
    with tempfile.TemporaryDirectory() as output_dir:
        with_file = start_stop_s(runs, output_dir=output_dir)
    print(f"start()+stop(), with file (s): {median_range(with_file)}")
    for period_s in (1.0, 0.1):
        per_s = [sampler_cpu_per_s(period_s, wall_s) for _ in range(3)]
        print(f"sampler CPU s per wall s at {1 / period_s:g} Hz: {median_range(per_s)}")
    rss = [rss_added_kib() for _ in range(3)]
    print(f"RSS added by import (KiB): {median_range([r[0] for r in rss])}")
    print(f"RSS added by a started tracker (KiB): {median_range([r[1] for r in rss])}")


if __name__ == "__main__":
    main()
