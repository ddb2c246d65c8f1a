"""carbonmeter alone, in a warm process: the figures docs/performance.md quotes in "Where our
time goes" beside `compare.py`'s, which runs CodeCarbon in between (and so measures colder caches).

Prints medians of:
- start()+stop() of a new tracker (built outside the timing), with and without the row's file;
- an epoch edge (`with tracker.epoch(): pass`) early in a run and after 20,000 windows, with and
  without the file (an edge must cost the same at any epoch);
- reading a thread's CPU clock against the monotonic clock, from Python (the call accounting
  moved from the first to the second);
- the CPU a fresh process's sampler and signal-watcher threads use to start, from their
  `schedstat`, on a powercap tree of counters only; and a bare Python thread's start and join.

Usage: python benches/warm.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from carbonmeter import OfflineEmissionsTracker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import fake_rapl_tree


def make(**kwargs: object) -> OfflineEmissionsTracker:
    return OfflineEmissionsTracker(country_iso_code="FRA", log_level="error", **kwargs)


def median_us(samples: list[float]) -> str:
    return f"{1e6 * statistics.median(samples):.1f} µs"


def start_stop(runs: int, **kwargs: object) -> list[float]:
    trackers = [make(**kwargs) for _ in range(runs + 5)]
    samples = []
    for tracker in trackers:
        started = time.perf_counter()
        tracker.start()
        tracker.stop()
        samples.append(time.perf_counter() - started)
    return samples[5:]


def epoch_edges(edges: int, skip: int, **kwargs: object) -> tuple[list[float], list[float]]:
    """Edges timed at the start of a run, and again after `skip` more windows."""
    tracker = make(**kwargs)
    tracker.start()

    def timed() -> list[float]:
        samples = []
        for _ in range(edges):
            started = time.perf_counter()
            with tracker.epoch():
                pass
            samples.append(time.perf_counter() - started)
        return samples

    for _ in range(5):
        with tracker.epoch():
            pass
    early = timed()
    for _ in range(skip):
        with tracker.epoch():
            pass
    late = timed()
    tracker.stop()
    return early, late


def clock_reads(reads: int) -> tuple[list[float], list[float]]:
    def timed(clock: object) -> list[float]:
        samples = []
        for _ in range(reads):
            started = time.perf_counter()
            clock()  # type: ignore[operator]
            samples.append(time.perf_counter() - started)
        return samples

    return timed(time.thread_time), timed(time.monotonic)


THREADS_PROBE = """
import os, sys, time
from carbonmeter import OfflineEmissionsTracker

def cpu_ns():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        name = open(f"/proc/self/task/{tid}/comm").read().strip()
        out[name] = int(open(f"/proc/self/task/{tid}/schedstat").read().split()[0])
    return out

tracker = OfflineEmissionsTracker(country_iso_code="FRA", log_level="error", save_to_file=False)
tracker.start()
time.sleep(1.0)
threads = cpu_ns()
tracker.stop()
print(threads.get("carbonmeter-sam", 0), threads.get("carbonmeter-sig", 0))
"""


def thread_starts(runs: int) -> tuple[list[float], list[float]]:
    sampler, watcher = [], []
    with tempfile.TemporaryDirectory() as root:
        env = {**os.environ, "CARBONMETER_POWERCAP_ROOT": fake_rapl_tree(Path(root))}
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, "-c", THREADS_PROBE], env=env, capture_output=True, text=True
            )
            if out.returncode != 0:
                raise RuntimeError(out.stderr)
            sampler_ns, watcher_ns = out.stdout.split()
            sampler.append(int(sampler_ns) / 1e9)
            watcher.append(int(watcher_ns) / 1e9)
    return sampler, watcher


def python_thread_starts(runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.process_time()
        thread = threading.Thread(target=lambda: None)
        thread.start()
        thread.join()
        samples.append(time.process_time() - started)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (CI)")
    quick = parser.parse_args().quick
    runs, edges, skip = (20, 50, 200) if quick else (400, 500, 20_000)
    with tempfile.TemporaryDirectory() as output_dir:
        print("start()+stop() again, no file:", median_us(start_stop(runs, save_to_file=False)))
        print(
            "start()+stop() again, with file:", median_us(start_stop(runs, output_dir=output_dir))
        )
        for label, kwargs in (
            ("no file", {"save_to_file": False}),
            ("with file", {"output_dir": output_dir}),
        ):
            early, late = epoch_edges(edges, skip, **kwargs)
            print(f"epoch edge, {label}: {median_us(early)}; after {skip} more: {median_us(late)}")
    cpu_clock, monotonic = clock_reads(10 * edges)
    print(f"time.thread_time(): {median_us(cpu_clock)}; time.monotonic(): {median_us(monotonic)}")
    sampler, watcher = thread_starts(3 if quick else 9)
    print(
        f"fresh process, counters only: sampler thread {median_us(sampler)} of CPU, "
        f"signal watcher {median_us(watcher)} (schedstat, 1 s after start())"
    )
    print("bare Python thread start+join:", median_us(python_thread_starts(runs)), "of CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
