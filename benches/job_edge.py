"""Rank 0's cost at one edge of a big job: 64, 256 and 1,024 simulated ranks, one real TCPStore.

The ranks are simulated: a few client threads put every rank's row (a real run row's JSON, its
`rank` changed) under the keys `carbonmeter._distributed.JobLink` uses, then rank 0 does what its
edge does, timed: one bounded `store.wait` on every rank's key, one `multi_get` (a `get` each on
older torch), and the core's job row made of the rows. `--per-host H` times the other layout:
each host's lowest rank first sums its `H` ranks' rows (untimed, done on every host at once) and
puts one key, so rank 0 reads one key per host. Figures are medians in ms over `--edges` edges.

Run `python benches/job_edge.py [--ranks 64 256 1024] [--per-host 8] [--edges 10]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from datetime import timedelta
from typing import Any

from torch.distributed import TCPStore

from carbonmeter import EmissionsTracker


def template_row() -> dict[str, Any]:
    tracker = EmissionsTracker(
        save_to_file=False, country_iso_code="FRA", force_cpu_power=100, log_level="error"
    )
    tracker.start()
    tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    return dict(json.loads(data._json()))


def put_all(port: int, prefix: str, rows: list[str], clients: int = 8) -> None:
    """Every simulated rank's row, put by `clients` threads with a store client each."""

    def put(part: list[tuple[int, str]]) -> None:
        store = TCPStore("127.0.0.1", port, is_master=False, timeout=timedelta(seconds=30))
        for rank, row in part:
            store.set(f"{prefix}/{rank}", row)

    items = list(enumerate(rows))
    threads = [threading.Thread(target=put, args=(items[i::clients],)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def rank_zero_edge(
    store: Any, prefix: str, count: int, tracker: EmissionsTracker
) -> tuple[float, float]:
    """One edge on rank 0 (all rows sent): wait and read every key, then make the job's row;
    the two parts' times in ms."""
    started = time.perf_counter()
    keys = [f"{prefix}/{rank}" for rank in range(count)]
    store.wait(keys, timedelta(seconds=30))
    values = store.multi_get(keys) if hasattr(store, "multi_get") else [store.get(k) for k in keys]
    read = time.perf_counter()
    job = tracker._job().row([value.decode() for value in values], [], True)
    assert job is not None
    return (read - started) * 1000.0, (time.perf_counter() - read) * 1000.0


def rows_of(template: dict[str, Any], ranks: range) -> list[str]:
    return [json.dumps({**template, "rank": rank, "scope": "rank"}) for rank in ranks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--per-host", type=int, default=8)
    parser.add_argument("--edges", type=int, default=10)
    args = parser.parse_args()
    server = TCPStore("127.0.0.1", 0, is_master=True, timeout=timedelta(seconds=30))
    port = server.port
    rank_zero = TCPStore("127.0.0.1", port, is_master=False, timeout=timedelta(seconds=30))
    template = template_row()
    tracker = EmissionsTracker(save_to_file=False, country_iso_code="FRA", log_level="error")
    print(
        "| ranks | every rank: store, ms | every rank: job row, ms "
        f"| one key per host of {args.per_host}: store, ms | per host: job row, ms |"
    )
    print("|---:|---:|---:|---:|---:|")
    for count in args.ranks:
        flat, hosts = [], []
        for edge in range(args.edges):
            prefix = f"flat/{count}/{edge}"
            put_all(port, prefix, rows_of(template, range(count)))
            flat.append(rank_zero_edge(rank_zero, prefix, count, tracker))
            # Per host: each host's lowest rank sums its ranks (on every host at once, so
            # untimed here) and puts one row; rank 0 reads one key per host.
            per_host = []
            for first in range(0, count, args.per_host):
                ranks = rows_of(template, range(first, min(first + args.per_host, count)))
                host_row = tracker._job().row(ranks, [], True)
                assert host_row is not None
                per_host.append(host_row._json())
            prefix = f"hosts/{count}/{edge}"
            put_all(port, prefix, per_host)
            hosts.append(rank_zero_edge(rank_zero, prefix, len(per_host), tracker))
        cells = [
            statistics.median(part[i] for part in parts) for parts in (flat, hosts) for i in (0, 1)
        ]
        print(f"| {count} | " + " | ".join(f"{cell:.2f}" for cell in cells) + " |")


if __name__ == "__main__":
    main()
