"""Cost of one epoch edge's gather in a distributed job, at 2, 4 and 8 ranks on one machine.

Each rank runs a real gloo process group and `carbonmeter.distributed.JobTracker` beside a plain
`EmissionsTracker` (no job); before every edge the ranks meet at a barrier (outside the timing),
as a DDP step's all-reduce lines them up. Timed on global rank 0, which waits for the others'
rows and writes the job's row: `with job.epoch(): pass` (the edge with the gather) against
`with tracker.epoch(): pass` (the edge without it). Figures are medians in ms; the gather's cost
is their difference. Target: <= 1 ms at 8 ranks.

Run `python benches/gather.py [--ranks 2 4 8] [--edges 40] [--output PATH]`; it prints one
Markdown table and writes every sample as JSON (default: benches/results/gather.json).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(edges: int, output: Path) -> None:
    import torch.distributed as dist

    from carbonmeter import EmissionsTracker
    from carbonmeter.distributed import JobTracker

    dist.init_process_group("gloo")
    quiet = {
        "save_to_file": False,
        "country_iso_code": "FRA",
        "measure_power_secs": 60,
        "powercap_root": "/nonexistent",
        "nvml_library": "/nonexistent/libnvidia-ml.so.1",
        "log_level": "error",
    }
    job = JobTracker(**quiet)
    job.start()
    plain = EmissionsTracker(**quiet)
    plain.start()
    with_gather, without = [], []
    for _ in range(edges):
        dist.barrier()
        started = time.perf_counter()
        with job.epoch():
            pass
        with_gather.append((time.perf_counter() - started) * 1e3)
        dist.barrier()
        started = time.perf_counter()
        with plain.epoch():
            pass
        without.append((time.perf_counter() - started) * 1e3)
    plain.stop()
    job.stop()
    if dist.get_rank() == 0:
        output.write_text(json.dumps({"with_gather_ms": with_gather, "without_ms": without}))
    dist.barrier()
    dist.destroy_process_group()


def run(ranks: int, edges: int) -> dict[str, object]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "rank0.json"
        processes = []
        for rank in range(ranks):
            env = {
                **os.environ,
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(ranks),
                "LOCAL_WORLD_SIZE": str(ranks),
                "OMP_NUM_THREADS": "1",
            }
            command = [sys.executable, __file__, "--worker", str(edges), str(output)]
            processes.append(subprocess.Popen(command, env=env, cwd=folder))
        for process in processes:
            if process.wait(timeout=600) != 0:
                raise SystemExit(f"a rank of the {ranks}-rank run failed")
        samples = json.loads(output.read_text())
    with_ms = statistics.median(samples["with_gather_ms"])
    without_ms = statistics.median(samples["without_ms"])
    return {
        "ranks": ranks,
        "edges": edges,
        "with_gather_median_ms": with_ms,
        "without_median_ms": without_ms,
        "gather_ms": with_ms - without_ms,
        **samples,
    }


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--edges", type=int, default=40)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "gather.json")
    args = parser.parse_args()
    results = [run(ranks, args.edges) for ranks in args.ranks]
    print("| ranks | edge with gather (ms) | edge without (ms) | gather (ms) |")
    print("|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['ranks']} | {r['with_gather_median_ms']:.3f} | {r['without_median_ms']:.3f} "
            f"| {r['gather_ms']:.3f} |"
        )
    machine = {"cpus": os.cpu_count(), "load_1min": os.getloadavg()[0]}
    args.output.write_text(json.dumps({"machine": machine, "runs": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
