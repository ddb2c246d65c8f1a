"""Four processes writing one emissions.csv at the same instant, trial after trial.

Usage: shared_csv.py append|update ROOT TRIALS. Each trial has its own folder ROOT/trial-N. The
workers start their trackers, meet at a barrier, then write at once: in append mode one run row
each, in update mode three rewrites of their own run's row. Prints nothing; the caller reads the
files.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

WORKERS = 4


def work(mode: str, root: str, trials: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    from carbonmeter import EmissionsTracker

    for trial in range(trials):
        folder = Path(root) / f"trial-{trial}"
        folder.mkdir(exist_ok=True)
        tracker = EmissionsTracker(
            output_dir=str(folder),
            on_csv_write=mode,
            country_iso_code="FRA",
            default_cpu_power=50,
            measure_power_secs=60,
        )
        tracker.start()
        barrier.wait()
        if mode == "update":
            tracker.flush()
            tracker.flush()
        tracker.stop()


def main() -> None:
    mode, root, trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    workers = [
        context.Process(target=work, args=(mode, root, trials, barrier)) for _ in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            sys.exit(f"a worker ended with {worker.exitcode}")


if __name__ == "__main__":
    main()
