"""One rank of a test job measured by plain `EmissionsTracker`s, as users write them under DDP.

Usage: ddp_plain.py CONFIG_JSON, launched by torchrun (or with RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT set by hand). The config names the output folder, the epochs and
their length, per rank the `host` setting, its powercap tree and its NVML stand-in, and:
`pattern`: `rank0` (rank 0 alone runs a tracker over every epoch; `rank1`: rank 1 alone), `every`
(each rank does) or
`per_epoch` (each rank starts and stops one every epoch, the seed W&B loop); `pg`: whether the
ranks call `init_process_group`; `late`: epochs rank 1 starts its tracker late; `leave`: the
epoch after which rank 1 stops its tracker; `kill`: the epoch in which rank 1 SIGKILLs itself;
`twice`: rank 0 runs a second tracker beside its first for a moment.
Without a process group the ranks line their epochs up on files in the output folder. Each rank
writes `result-<rank>.json`: what its stops returned and how long they took.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

import torch.distributed as dist

from carbonmeter import EmissionsTracker

config = json.loads(sys.argv[1])
rank = int(os.environ["RANK"])
world = int(os.environ["WORLD_SIZE"])
out = Path(config["output_dir"])
if config["pg"]:
    dist.init_process_group("gloo")
host = config["hosts"][rank]
kwargs = {
    "output_dir": str(out),
    "country_iso_code": "FRA",
    "measure_power_secs": 0.5,
    "powercap_root": host["powercap"],
    "nvml_library": host["nvml"],
    "job_wait_secs": config.get("wait_s", 10),
}
if config.get("set_host"):
    kwargs["host"] = host["name"]
pattern = config["pattern"]
tracks = {"rank0": rank == 0, "rank1": rank == 1}.get(pattern, True)
kill = config.get("kill")


def barrier(name: str) -> None:
    """What a DDP step's all-reduce does: the ranks' epochs line up."""
    if kill is not None and name != "start":
        return  # rank 1 dies: nobody to wait for, and it must not wait for rank 0
    if config["pg"]:
        dist.barrier()
        return
    (out / f"barrier-{name}-{rank}").touch()
    deadline = time.monotonic() + 60
    while not all((out / f"barrier-{name}-{r}").exists() for r in range(world)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"rank {rank}: the other ranks never reached {name}")
        time.sleep(0.002)


results: list[dict[str, object]] = []


def stop(tracker: EmissionsTracker) -> None:
    started = time.monotonic()
    returned = tracker.stop()
    # getattr: the same script measures the build before the attribute existed.
    own = getattr(tracker, "rank_emissions_data", None)
    final = tracker.final_emissions_data
    results.append(
        {
            "returned": returned,
            "stop_s": time.monotonic() - started,
            "final_scope": final.scope if final is not None else None,
            "final_emissions": tracker.final_emissions,
            "own_emissions": own.emissions if own is not None else None,
        }
    )


tracker = None
barrier("start")
for epoch in range(config["epochs"]):
    starts_now = tracks and (
        pattern == "per_epoch"
        or (epoch == 0 and not (rank == 1 and config.get("late")))
        or (rank == 1 and epoch == config.get("late"))
    )
    if starts_now:
        tracker = EmissionsTracker(**kwargs)
        tracker.start()
        if config.get("twice") and rank == 0 and epoch == 0:
            # A second tracker of the same rank counts its parts again: said once.
            with EmissionsTracker(**kwargs):
                time.sleep(0.1)
    end = time.monotonic() + config["epoch_s"]
    while time.monotonic() < end:
        if rank == 1 and epoch == kill and time.monotonic() > end - config["epoch_s"] / 2:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.01)
    last = epoch == config["epochs"] - 1
    leaves = rank == 1 and epoch == config.get("leave")
    ends_now = tracker is not None and (pattern == "per_epoch" or last or leaves)
    if ends_now:
        stop(tracker)
        tracker = None
    barrier(f"epoch-{epoch}")
(out / f"result-{rank}.json").write_text(json.dumps(results), encoding="utf-8")
if config["pg"] and kill is None:
    dist.destroy_process_group()
