"""What `tracker.count()` costs a training loop per call, from Python: the median of several
`timeit` repeats with one epoch window open, beside an empty Python method call.

Run: `python benches/count_overhead.py` (after `maturin develop --release` for release figures).
"""

from __future__ import annotations

import statistics
import timeit

from carbonmeter import EmissionsTracker

CALLS = 200_000


class Empty:
    def count(self, samples: int | None = None, tokens: int | None = None) -> None:
        return None


def per_call_ns(statement: str, namespace: dict[str, object]) -> float:
    runs = timeit.repeat(statement, globals=namespace, number=CALLS, repeat=7)
    return statistics.median(runs) / CALLS * 1e9


def main() -> None:
    tracker = EmissionsTracker(country_iso_code="FRA", save_to_file=False, measure_power_secs=60)
    with tracker.epoch():
        count_ns = per_call_ns("tracker.count(samples=32, tokens=4096)", {"tracker": tracker})
        empty_ns = per_call_ns("empty.count(samples=32, tokens=4096)", {"empty": Empty()})
    tracker.stop()
    print(f"tracker.count(samples=32, tokens=4096): {count_ns:.0f} ns per call")
    print(f"an empty Python method, same arguments: {empty_ns:.0f} ns per call")


if __name__ == "__main__":
    main()
