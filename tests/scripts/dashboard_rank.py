"""One rank of a two-rank job pushing to a Pushgateway, for the dashboard's queries.

Usage: dashboard_rank.py CONFIG_JSON with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT set by hand; the config names the output folder, the gateway and the project. Each
rank is its own host (`host-<rank>`), so the job's series carry `job_id`, `host` and `rank`.
"""

import json
import sys
import time

import torch.distributed as dist

from carbonmeter.distributed import JobTracker

config = json.loads(sys.argv[1])
dist.init_process_group("gloo")
rank = dist.get_rank()
job = JobTracker(
    output_dir=config["output_dir"],
    project_name=config["project"],
    country_iso_code="FRA",
    force_cpu_power=40.0,
    force_ram_power=5.0,
    measure_power_secs=0.1,
    host=f"host-{rank}",
    save_to_prometheus=True,
    prometheus_url=config["gateway"],
    job_wait_secs=10,
)
job.start()
for phase in ("train", "train", "validation"):
    dist.barrier()
    with job.epoch(phase=phase):
        time.sleep(0.3)
job.stop()
dist.destroy_process_group()
