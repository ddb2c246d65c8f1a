"""One rank of a test job: a few busy epochs measured by `carbonmeter.distributed.JobTracker`.

Usage: ddp_job.py CONFIG_JSON, launched by torchrun (or with RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT set by hand). The config names the output folder, the epochs and
their length, and per rank the `host` setting, its powercap tree and its NVML stand-in; `kill`
names a rank that SIGKILLs itself in the middle of epoch 1, `loggers` turns on W&B offline;
`budget_kg` sets the job's carbon budget (stop_over_budget, 1 kg per kWh) and the epochs'
total, and the loop leaves after the epoch the job says to stop at; `stall` names a rank that
sleeps `stall_s` more in epoch 1.
"""

import json
import os
import signal
import sys
import time

import torch.distributed as dist

from carbonmeter.distributed import JobTracker

config = json.loads(sys.argv[1])
dist.init_process_group("gloo")
rank = dist.get_rank()
host = config["hosts"][rank]
kwargs = {
    "output_dir": config["output_dir"],
    "country_iso_code": "FRA",
    "measure_power_secs": 0.5,
    "powercap_root": host["powercap"],
    "nvml_library": host["nvml"],
    "job_wait_secs": config.get("wait_s", 10),
}
budget_kg = config.get("budget_kg")
if budget_kg is not None:
    kwargs.update(
        co2_budget_kg=budget_kg,
        stop_over_budget=True,
        force_carbon_intensity_g_co2e_kwh=1000,
    )
if config.get("set_host"):
    kwargs["host"] = host["name"]
run = None
if config.get("wandb") and rank == 0:
    import wandb

    run = wandb.init(project="carbonmeter-ddp", dir=config["output_dir"], mode="offline")
    kwargs["loggers"] = ["wandb"]
job = JobTracker(**kwargs)
job.start()
killing = config.get("kill")
for epoch in range(config["epochs"]):
    if killing is None:
        dist.barrier()  # what a DDP step's all-reduce does: the ranks' epochs line up
    with job.epoch(total=config["epochs"] if budget_kg is not None else None):
        end = time.monotonic() + config["epoch_s"]
        while time.monotonic() < end:
            if epoch == 1 and rank == killing and time.monotonic() > end - config["epoch_s"] / 2:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.01)
        if epoch == 1 and rank == config.get("stall"):
            time.sleep(config["stall_s"])
    if job.stop_reason is not None:
        break
job.stop()
if run is not None:
    run.finish()
if killing is None:
    dist.destroy_process_group()
