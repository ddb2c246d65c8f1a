"""Distributed jobs measured once: real torchrun / gloo process groups on fake powercap trees and
the stand-in NVML library (tests/fixtures/fake_nvml.c), each advanced at a known power."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures.powercap import FakePowercap
from helpers import child_env, rows_of

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
RANK_SCRIPT = HERE / "scripts" / "ddp_job.py"
CPU_W, RAM_W, GPU_W = 30.0, 6.0, 50.0
J_PER_KWH = 3.6e6


@dataclass
class Host:
    """One machine of a test job: a powercap tree (a package and its DRAM) and `gpus` GPUs."""

    name: str
    powercap: FakePowercap
    nvml: Path
    gpus: int

    def settings(self) -> dict[str, str]:
        return {"name": self.name, "powercap": str(self.powercap.root), "nvml": str(self.nvml)}

    def power_w(self) -> float:
        return CPU_W + RAM_W + GPU_W * self.gpus


def make_host(root: Path, name: str, gpus: int, library: Path) -> Host:
    folder = root / name
    folder.mkdir()
    powercap = FakePowercap(folder / "powercap")
    powercap.add_zone("intel-rapl:0", "package-0")
    powercap.add_zone("intel-rapl:0:0", "dram")
    nvml = folder / "libnvidia-ml.so.1"
    shutil.copy(library, nvml)
    # The library reads `<its path>.ctl`: a constant power from now on, its energy exact.
    now = time.time()
    control = f"count {gpus}\n" + "".join(
        f"name {i} NVIDIA H100 80GB HBM3\nuuid {i} GPU-{name}{i}0000000-0000-0000-0000-0000000{i}\n"
        f"ramp {i} {now:.6f} {GPU_W * 1000:.0f} 0\n"
        for i in range(gpus)
    )
    Path(f"{nvml}.ctl").write_text(control, encoding="utf-8")
    return Host(name, powercap, nvml, gpus)


@contextmanager
def advancing(hosts: list[Host]) -> Iterator[None]:
    """Advances every host's counters at CPU_W and RAM_W, from now until the block ends."""
    stop = threading.Event()
    start = time.monotonic()

    def run() -> None:
        while not stop.is_set():
            elapsed_s = time.monotonic() - start
            for host in {id(h.powercap): h for h in hosts}.values():
                host.powercap.set_energy("intel-rapl:0", int(CPU_W * elapsed_s * 1e6))
                host.powercap.set_energy("intel-rapl:0:0", int(RAM_W * elapsed_s * 1e6))
            stop.wait(0.002)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def job_env(tmp_path: Path) -> dict[str, str]:
    """A rank's environment: one thread, this folder's scripts importable, wandb offline."""
    return child_env(
        tmp_path,
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(HERE),
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_CONFIG_DIR=str(tmp_path / "wandb-config"),
        WANDB_CACHE_DIR=str(tmp_path / "wandb-cache"),
        WANDB_DATA_DIR=str(tmp_path / "wandb-data"),
    )


def energy_j(row: dict[str, str]) -> float:
    return float(row["energy_consumed"]) * J_PER_KWH


def run_torchrun(
    tmp_path: Path, processes: int, config: dict[str, object], script: Path = RANK_SCRIPT
) -> subprocess.CompletedProcess[str]:
    """The job of `processes` ranks of `script` under torchrun; asserts it succeeded."""
    config = {"output_dir": str(tmp_path), **config}
    result = subprocess.run(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--standalone"),
            *(f"--nproc-per-node={processes}", str(script), json.dumps(config)),
        ],
        cwd=tmp_path,
        env=job_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def torchrun(tmp_path: Path, processes: int, config: dict[str, object]) -> list[dict[str, str]]:
    run_torchrun(tmp_path, processes, config)
    return rows_of(tmp_path / "emissions.csv")


def launch_by_hand(
    tmp_path: Path, config: dict[str, object], piped: int, script: Path = RANK_SCRIPT
) -> list[subprocess.Popen[str]]:
    """Two ranks of RANK_SCRIPT started by hand, not torchrun, whose agent would stop the others
    when one dies: rank 0 then hosts the job's TCPStore. Rank `piped`'s stderr is piped."""
    port = str(free_port())
    ranks = []
    for rank in range(2):
        env = job_env(tmp_path)
        env.update(
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE="2",
            LOCAL_WORLD_SIZE="2",
        )
        ranks.append(
            subprocess.Popen(
                [sys.executable, str(script), json.dumps(config)],
                cwd=tmp_path,
                env=env,
                stderr=subprocess.PIPE if rank == piped else subprocess.DEVNULL,
                text=True,
            )
        )
    return ranks


def check_job(
    rows: list[dict[str, str]], hosts: list[Host], epochs: int, world: int, aligned: bool = True
) -> list[float]:
    """The job's rows are the truth within 3 %, its ranks' rows add up to them, and there is one
    job row per epoch and one for the run; returns the job/truth ratios.

    The truth is each part's known power over the window of the rank that measured it; with
    `aligned` edges (the ranks' windows open and close together) it is also every host's power
    over the job row's span.
    """
    job = [row for row in rows if row["scope"] == "job"]
    ranks = [row for row in rows if row["scope"] == "rank"]
    assert sorted(row["window"] for row in job) == sorted(
        [f"train-epoch-{e}" for e in range(epochs)] + [""]
    )
    assert {row["job_id"] for row in rows} == {job[0]["job_id"]} and job[0]["job_id"]
    assert {row["world_size"] for row in rows} == {str(world)}
    assert {row["missing_ranks"] for row in job} == {""}
    truth_w = sum(host.power_w() for host in hosts)
    ratios = []
    for row in job:
        of_window = [r for r in ranks if r["window"] == row["window"]]
        assert sorted(int(r["rank"]) for r in of_window) == list(range(world))
        assert sum(energy_j(r) for r in of_window) == pytest.approx(energy_j(row), rel=1e-9)
        truth_j = sum(
            (CPU_W + RAM_W if r["cpu_method"] == "rapl" else 0.0) * float(r["duration"])
            + GPU_W * int(r["gpu_count"]) * float(r["duration"])
            for r in of_window
        )
        ratio = energy_j(row) / truth_j
        assert ratio == pytest.approx(1.0, abs=0.03), (row["window"], ratio)
        if aligned:
            ratio = energy_j(row) / (truth_w * float(row["duration"]))
            assert ratio == pytest.approx(1.0, abs=0.03), (row["window"], ratio)
        ratios.append(round(ratio, 4))
        assert int(row["gpu_count"]) == sum(host.gpus for host in hosts)
    # Each host's CPU and RAM by one rank, each GPU by one rank.
    run_rows = [r for r in ranks if r["window"] == ""]
    assert sum(r["cpu_method"] == "rapl" for r in run_rows) == len(hosts)
    assert sum(int(r["gpu_count"]) for r in run_rows) == sum(host.gpus for host in hosts)
    return ratios


def test_two_ranks_on_one_host_with_two_gpus_count_the_host_once(
    tmp_path: Path, fake_nvml_library: Path
) -> None:
    host = make_host(tmp_path, "node", 2, fake_nvml_library)
    with advancing([host]):
        rows = torchrun(tmp_path, 2, {"hosts": [host.settings()] * 2, "epochs": 2, "epoch_s": 1.0})
    ratios = check_job(rows, [host], epochs=2, world=2)
    print(f"job/truth, 2 ranks, 1 host: {ratios}")
    rank_run = {r["rank"]: r for r in rows if r["scope"] == "rank" and r["window"] == ""}
    assert (rank_run["0"]["cpu_method"], rank_run["1"]["cpu_method"]) == ("rapl", "other_rank")
    assert rank_run["0"]["gpu_count"] == rank_run["1"]["gpu_count"] == "1"
    assert {r["host"] for r in rows if r["scope"] == "rank"} == {socket.gethostname()}
    # The report counts the job once: its job run row, not also its ranks'.
    from carbonmeter import report

    (job_run,) = [r for r in rows if r["scope"] == "job" and r["window"] == ""]
    totals = report.to_json(report.load([tmp_path / "emissions.csv"]))["totals"]
    assert totals["energy_kwh"] == pytest.approx(float(job_run["energy_consumed"]), rel=1e-9)
    assert totals["runs"] == 1


def test_four_ranks_on_two_hosts_count_each_host_and_gpu_once(
    tmp_path: Path, fake_nvml_library: Path
) -> None:
    hosts = [make_host(tmp_path, name, 1, fake_nvml_library) for name in ("a", "b")]
    with advancing(hosts):
        rows = torchrun(
            tmp_path,
            4,
            {
                "hosts": [hosts[0].settings()] * 2 + [hosts[1].settings()] * 2,
                "set_host": True,
                "epochs": 2,
                "epoch_s": 1.0,
            },
        )
    ratios = check_job(rows, hosts, epochs=2, world=4)
    print(f"job/truth, 4 ranks, 2 hosts: {ratios}")
    measuring = {
        r["rank"]: (r["host"], r["cpu_method"], r["gpu_count"])
        for r in rows
        if r["scope"] == "rank" and r["window"] == ""
    }
    assert measuring == {
        "0": ("a", "rapl", "1"),
        "1": ("a", "other_rank", "0"),
        "2": ("b", "rapl", "1"),
        "3": ("b", "other_rank", "0"),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_by_hand(
    tmp_path: Path, library: Path, kill: int, gpus: int = 0
) -> tuple[list[subprocess.Popen[str]], str, float]:
    """A job of two ranks on one host with `gpus` GPUs, launched by hand, whose rank `kill`
    SIGKILLs itself in epoch 1 of 3; returns the ranks, the other rank's stderr and how long it
    ran, in s."""
    host = make_host(tmp_path, "node", gpus, library)
    config = {
        "output_dir": str(tmp_path),
        "hosts": [host.settings()] * 2,
        "epochs": 3,
        "epoch_s": 0.6,
        "kill": kill,
        "wait_s": 2,
    }
    survivor = 1 - kill
    ranks = launch_by_hand(tmp_path, config, piped=survivor)
    with advancing([host]):
        started = time.monotonic()
        _, stderr = ranks[survivor].communicate(timeout=120)
        finished_s = time.monotonic() - started
        ranks[kill].wait(timeout=60)
    assert ranks[kill].returncode == -9
    assert ranks[survivor].returncode == 0, stderr[-4000:]
    return ranks, stderr, finished_s


def test_a_rank_killed_mid_epoch_is_reported_missing_and_nothing_hangs(
    tmp_path: Path, fake_nvml_library: Path
) -> None:
    _, stderr, finished_s = run_by_hand(tmp_path, fake_nvml_library, kill=1)
    job = {r["window"]: r for r in rows_of(tmp_path / "emissions.csv") if r["scope"] == "job"}
    assert job["train-epoch-0"]["missing_ranks"] == ""
    assert job["train-epoch-1"]["missing_ranks"] == "1"
    assert job["train-epoch-2"]["missing_ranks"] == job[""]["missing_ranks"] == "1"
    # One bounded wait (2 s) for the dead rank, not one per edge.
    assert stderr.count("sent no figures") == 1, stderr[-4000:]
    print(f"rank 0 of a job missing rank 1 finished in {finished_s:.1f} s")


def test_a_killed_ranks_gpu_goes_back_to_rank_zero_under_job_tracker(
    tmp_path: Path, fake_nvml_library: Path
) -> None:
    _, stderr, _ = run_by_hand(tmp_path, fake_nvml_library, kill=1, gpus=2)
    own = {r["window"]: r for r in rows_of(tmp_path / "emissions.csv") if r["rank"] == "0"}
    # Epoch 1, in which rank 1 died, leaves its GPU to it; from epoch 2 on rank 0 counts it.
    assert (own["train-epoch-0"]["gpu_count"], own["train-epoch-2"]["gpu_count"]) == ("1", "2")
    gpu_w = float(own["train-epoch-2"]["gpu_power"])
    print(f"rank 0's GPU power in the epoch after rank 1 died: {gpu_w:.1f} W of {2 * GPU_W} W")
    assert gpu_w == pytest.approx(2 * GPU_W, rel=0.03)
    assert stderr.count("ended without releasing") == 1, stderr[-4000:]


def test_rank_zero_dying_with_the_store_costs_the_others_one_warning_not_their_training(
    tmp_path: Path, fake_nvml_library: Path
) -> None:
    # Launched by hand, rank 0 hosts the job's TCPStore: its death takes the store with it.
    _, stderr, _ = run_by_hand(tmp_path, fake_nvml_library, kill=0)
    assert stderr.count("key-value store failed") == 1, stderr[-4000:]
    # Rank 1 kept measuring its share: every epoch and the run, in its own rows.
    own = [r["window"] for r in rows_of(tmp_path / "emissions.csv") if r["rank"] == "1"]
    assert own == ["train-epoch-0", "train-epoch-1", "train-epoch-2", ""]


def wandb_co2_kg(root: Path) -> list[float]:
    """Every `co2_kg` value the offline W&B run received (`train/co2_kg` from the HF Trainer),
    in order."""
    from fixtures.offline_runs import wandb_history

    (path,) = root.glob("**/offline-run-*/run-*.wandb")
    return [
        value
        for record in wandb_history(path)
        for key, value in record.items()
        if key.split("/")[-1] == "co2_kg"
    ]


@pytest.mark.parametrize("framework", ["lightning", "transformers"])
def test_framework_ddp_writes_one_job_row_per_epoch_and_wandb_gets_the_jobs_figure(
    tmp_path: Path, fake_nvml_library: Path, framework: str
) -> None:
    host = make_host(tmp_path, "node", 2, fake_nvml_library)
    config = {
        "output_dir": str(tmp_path),
        "hosts": [host.settings()],
        "epochs": 2,
        "step_s": 0.25,
    }
    script = str(HERE / "scripts" / "ddp_frameworks.py")
    launch = (
        [sys.executable, script]
        if framework == "lightning"
        else [
            *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"),
            script,
        ]
    )
    with advancing([host]):
        result = subprocess.run(
            [*launch, framework, json.dumps(config)],
            cwd=tmp_path,
            env=job_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-4000:]
    rows = rows_of(tmp_path / "emissions.csv")
    # A framework's epoch edges reach its ranks apart (rank 0 also starts W&B and logs), so
    # each part is compared over the window of the rank that measured it.
    ratios = check_job(rows, [host], epochs=2, world=2, aligned=False)
    print(f"job/truth, {framework} DDP, 2 ranks: {ratios}")
    job = sorted(
        (int(r["epoch"]), float(r["emissions"])) for r in rows if r["scope"] == "job" and r["epoch"]
    )
    # One value per epoch, the job's, from rank 0 only.
    assert wandb_co2_kg(tmp_path) == pytest.approx([emissions for _, emissions in job], rel=1e-9)
    if framework == "transformers":
        # The Trainer counts tokens over both processes (64 examples x 16 tokens an epoch): the
        # ranks' rows share them, so the job's row counts each token once.
        epochs = [r for r in rows if r["epoch"] and r["phase"] == "train"]
        job_tokens = [r["tokens"] for r in epochs if r["scope"] == "job"]
        rank_tokens = sum(int(r["tokens"]) for r in epochs if r["scope"] == "rank")
        assert job_tokens == ["1024", "1024"]
        assert rank_tokens == 2048


# Rank 0 measures CPU, RAM and a GPU (86 W), rank 1 a GPU (50 W): the job 136 W. The budget is
# judged on the projection's low end, about half the figure with these sensors' bands and the
# intensity's range (rank 0 about 43 W, the job 63 W): a budget at 53 W lies between.
LOW_BUDGET_W = 53.0


def budget_kg_at(power_w: float, seconds: float) -> float:
    """kg CO2eq of `power_w` for `seconds` at the budget tests' 1 kg per kWh."""
    return power_w * seconds / J_PER_KWH


def epochs_of(rows: list[dict[str, str]], scope: str, rank: str = "") -> list[dict[str, str]]:
    return sorted(
        (r for r in rows if r["scope"] == scope and r["epoch"] and r["rank"] == rank),
        key=lambda r: int(r["epoch"]),
    )


def check_stopped_together(
    rows: list[dict[str, str]],
    budget_kg: float,
    world: int,
    max_epochs: int,
    shares_under: bool = True,
) -> int:
    """Asserts every rank and the job stopped after the same epoch, the first whose job
    projection's low end exceeded the budget (with `shares_under`, while no rank's own share
    did); returns the epochs run."""
    job = epochs_of(rows, "job")
    ran = len(job)
    assert 1 <= ran < max_epochs, [r["stop_reason"] for r in job]
    expected = [""] * (ran - 1) + ["co2_budget"]
    assert [r["stop_reason"] for r in job] == expected
    assert float(job[-1]["projected_emissions_low"]) > budget_kg
    assert all(float(r["projected_emissions_low"]) <= budget_kg for r in job[:-1])
    for rank in map(str, range(world)):
        own = epochs_of(rows, "rank", rank)
        assert [r["stop_reason"] for r in own] == expected, rank
        if shares_under:
            # A rank's share alone would never have stopped it.
            assert all(float(r["projected_emissions_low"]) < budget_kg for r in own), rank
    run_rows = [r for r in rows if r["window"] == ""]
    assert len(run_rows) == world + 1
    assert {r["stop_reason"] for r in run_rows} == {"co2_budget"}
    return ran


def test_the_jobs_budget_stops_every_rank_after_the_same_epoch(
    tmp_path: Path, fake_nvml_library: Path
) -> None:
    host = make_host(tmp_path, "node", 2, fake_nvml_library)
    epochs, epoch_s = 4, 0.5
    budget_kg = budget_kg_at(LOW_BUDGET_W, epochs * epoch_s)
    config = {"hosts": [host.settings()] * 2, "epochs": epochs, "epoch_s": epoch_s}
    with advancing([host]):
        rows = torchrun(tmp_path, 2, {**config, "budget_kg": budget_kg})
    ran = check_stopped_together(rows, budget_kg, world=2, max_epochs=epochs)
    print(f"the job's budget stopped both ranks after {ran} of {epochs} epochs")


def test_a_budget_above_the_jobs_projection_stops_nobody(
    tmp_path: Path, fake_nvml_library: Path
) -> None:
    host = make_host(tmp_path, "node", 2, fake_nvml_library)
    epochs, epoch_s = 3, 0.3
    budget_kg = budget_kg_at(3 * 136.0, epochs * epoch_s)
    config = {"hosts": [host.settings()] * 2, "epochs": epochs, "epoch_s": epoch_s}
    with advancing([host]):
        rows = torchrun(tmp_path, 2, {**config, "budget_kg": budget_kg})
    for scope, rank in (("job", ""), ("rank", "0"), ("rank", "1")):
        assert [r["stop_reason"] for r in epochs_of(rows, scope, rank)] == [""] * epochs
    assert {r["stop_reason"] for r in rows if r["window"] == ""} == {""}


def test_a_stalled_rank_zero_costs_one_bounded_wait_and_stops_nobody(
    tmp_path: Path, fake_nvml_library: Path
) -> None:
    host = make_host(tmp_path, "node", 0, fake_nvml_library)
    epochs = 4
    config = {
        "hosts": [host.settings()] * 2,
        "epochs": epochs,
        "epoch_s": 0.2,
        "budget_kg": budget_kg_at(1000.0, 60.0),
        "wait_s": 1,
        # Past the other rank's wait for rank 0's decision (twice job_wait_secs).
        "stall": 0,
        "stall_s": 3,
    }
    result = run_torchrun(tmp_path, 2, config)
    # One warning, on rank 1, and no wait at the later edges.
    assert result.stderr.count("sent no decision on the job's carbon budget") == 1, result.stderr
    rows = rows_of(tmp_path / "emissions.csv")
    for scope, rank in (("job", ""), ("rank", "0"), ("rank", "1")):
        assert [r["stop_reason"] for r in epochs_of(rows, scope, rank)] == [""] * epochs


def test_lightning_ddp_stops_both_ranks_after_the_same_epoch_on_the_jobs_budget(
    tmp_path: Path, fake_nvml_library: Path
) -> None:
    host = make_host(tmp_path, "node", 2, fake_nvml_library)
    # Four steps of 0.25 s a rank and epoch, about 1.1 s with Lightning's own time. At the
    # projection's low end rank 0's share is about 48 W, rank 1's 27 W: a budget at 37 W lies
    # between them, so ranks judging their own shares would part (rank 0 leaving rank 1 in its
    # next all-reduce); the job's 75 W crosses it for both.
    epochs = 4
    budget_kg = budget_kg_at(37.0, epochs * 1.1)
    config = {
        "output_dir": str(tmp_path),
        "hosts": [host.settings()],
        "epochs": epochs,
        "step_s": 0.25,
        "budget_kg": budget_kg,
    }
    argument = json.dumps(config)
    with advancing([host]):
        result = subprocess.run(
            [sys.executable, str(HERE / "scripts" / "ddp_frameworks.py"), "lightning", argument],
            cwd=tmp_path,
            env=job_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-4000:]
    rows = [r for r in rows_of(tmp_path / "emissions.csv") if r["phase"] in ("train", "")]
    ran = check_stopped_together(rows, budget_kg, world=2, max_epochs=epochs, shares_under=False)
    assert result.stderr.count("carbon budget exceeded") == 1, result.stderr[-4000:]
    print(f"Lightning DDP: the job's budget stopped both ranks after {ran} of {epochs} epochs")


# Plain `EmissionsTracker`s under DDP (issue 26): whoever tracks, each part is counted once.
PLAIN_SCRIPT = HERE / "scripts" / "ddp_plain.py"


def plain_job(
    tmp_path: Path, library: Path, pattern: str, pg: bool, **extra: object
) -> tuple[Host, list[dict[str, str]], list[list[dict[str, object]]]]:
    """Two ranks of PLAIN_SCRIPT on one host with two GPUs under torchrun; returns the host,
    the rows and each rank's results (what its stops returned)."""
    host = make_host(tmp_path, "node", 2, library)
    config = {"hosts": [host.settings()] * 2, "pattern": pattern, "pg": pg, **extra}
    config.setdefault("epochs", 3)
    config.setdefault("epoch_s", 1.0)
    with advancing([host]):
        run_torchrun(tmp_path, 2, config, script=PLAIN_SCRIPT)
    results = [
        json.loads((tmp_path / f"result-{rank}.json").read_text(encoding="utf-8"))
        for rank in range(2)
    ]
    return host, rows_of(tmp_path / "emissions.csv"), results


def counted_ratio(runs: list[dict[str, str]], host: Host, span_s: float) -> float:
    """What `runs` (rank rows of one span) counted over the host's known power for `span_s`."""
    return round(sum(energy_j(r) for r in runs) / (host.power_w() * span_s), 4)


def check_rank_zero_gives_the_job(
    rows: list[dict[str, str]], results: list[list[dict[str, object]]], runs: int
) -> None:
    """Rank 0's stops return the job's rows (one per run of its tracker), each the sum of the
    ranks' rows of that run; `rank_emissions_data` is rank 0's own row."""
    job = [r for r in rows if r["scope"] == "job"]
    own = [r for r in rows if r["scope"] == "rank" and r["rank"] == "0"]
    assert len(job) == len(own) == len(results[0]) == runs
    for job_row, own_row, result in zip(job, own, results[0], strict=True):
        assert result["final_scope"] == "job"
        assert result["returned"] == pytest.approx(float(job_row["emissions"]), rel=1e-9)
        assert result["final_emissions"] == result["returned"]
        assert result["own_emissions"] == pytest.approx(float(own_row["emissions"]), rel=1e-9)
    for result in results[1]:
        assert result["final_scope"] == "rank"
        assert result["returned"] == result["own_emissions"]


@pytest.mark.parametrize("pg", [True, False], ids=["process_group", "environment"])
def test_rank_zero_alone_counts_the_whole_host_and_waits_for_nobody(
    tmp_path: Path, fake_nvml_library: Path, pg: bool
) -> None:
    host, rows, results = plain_job(tmp_path, fake_nvml_library, "rank0", pg)
    (own,) = [r for r in rows if r["scope"] == "rank"]
    ratio = counted_ratio([own], host, float(own["duration"]))
    print(f"counted/true, rank 0 alone ({'process group' if pg else 'environment'}): {ratio}")
    assert ratio == pytest.approx(1.0, abs=0.03)
    assert own["gpu_count"] == "2" and own["cpu_method"] == "rapl"
    assert results[1] == []
    # Alone, rank 0 waits for no rank: its stop() returns within 1 s.
    assert results[0][0]["stop_s"] < 1.0
    if pg:
        check_rank_zero_gives_the_job(rows, results, runs=1)
        (job,) = [r for r in rows if r["scope"] == "job"]
        assert job["missing_ranks"] == ""
    else:
        assert not [r for r in rows if r["scope"] == "job"]


def test_a_host_whose_measuring_rank_runs_no_tracker_says_what_nobody_counted(
    tmp_path: Path, fake_nvml_library: Path
) -> None:
    host = make_host(tmp_path, "node", 2, fake_nvml_library)
    config = {"hosts": [host.settings()] * 2, "pattern": "rank1", "pg": False, "epochs": 2}
    with advancing([host]):
        result = run_torchrun(tmp_path, 2, {**config, "epoch_s": 1.0}, script=PLAIN_SCRIPT)
    (own,) = [r for r in rows_of(tmp_path / "emissions.csv") if r["scope"] == "rank"]
    assert (own["rank"], own["gpu_count"], own["cpu_method"]) == ("1", "1", "other_rank")
    assert result.stderr.count("counted by nobody") == 1, result.stderr[-4000:]


def test_two_trackers_counting_one_part_say_so_once(
    tmp_path: Path, fake_nvml_library: Path
) -> None:
    host = make_host(tmp_path, "node", 2, fake_nvml_library)
    config = {"hosts": [host.settings()] * 2, "pattern": "every", "pg": False, "twice": True}
    with advancing([host]):
        result = run_torchrun(tmp_path, 2, {**config, "epochs": 1, "epoch_s": 0.5}, PLAIN_SCRIPT)
    assert result.stderr.count("counted twice") == 1, result.stderr[-4000:]


@pytest.mark.parametrize("pg", [True, False], ids=["process_group", "environment"])
def test_every_rank_tracking_counts_each_part_once(
    tmp_path: Path, fake_nvml_library: Path, pg: bool
) -> None:
    host, rows, results = plain_job(tmp_path, fake_nvml_library, "every", pg)
    ranks = {r["rank"]: r for r in rows if r["scope"] == "rank"}
    span_s = max(float(r["duration"]) for r in ranks.values())
    ratio = counted_ratio(list(ranks.values()), host, span_s)
    print(f"counted/true, every rank ({'process group' if pg else 'environment'}): {ratio}")
    assert ratio == pytest.approx(1.0, abs=0.03)
    # Rank 1 counts its GPU; rank 0 counts it only in the moments rank 1's tracker was not yet
    # (or no longer) running.
    assert ranks["1"]["gpu_count"] == "1"
    if pg:
        check_rank_zero_gives_the_job(rows, results, runs=1)
        (job,) = [r for r in rows if r["scope"] == "job"]
        assert energy_j(job) == pytest.approx(sum(map(energy_j, ranks.values())), rel=1e-9)


@pytest.mark.parametrize("pg", [True, False], ids=["process_group", "environment"])
def test_a_tracker_per_epoch_on_every_rank_counts_each_epoch_once(
    tmp_path: Path, fake_nvml_library: Path, pg: bool
) -> None:
    host, rows, results = plain_job(tmp_path, fake_nvml_library, "per_epoch", pg)
    own = [[r for r in rows if r["scope"] == "rank" and r["rank"] == str(k)] for k in range(2)]
    ratios = []
    for epoch in zip(*own, strict=True):
        span_s = max(float(r["duration"]) for r in epoch)
        ratios.append(counted_ratio(list(epoch), host, span_s))
    mode = "process group" if pg else "environment"
    print(f"counted/true, a tracker per epoch ({mode}): {ratios}")
    assert ratios == pytest.approx([1.0] * 3, abs=0.03)
    if pg:
        check_rank_zero_gives_the_job(rows, results, runs=3)


@pytest.mark.parametrize(
    ("change", "pg"),
    [("late", True), ("leave", True), ("late", False), ("leave", False)],
)
def test_a_rank_starting_late_or_leaving_early_leaves_its_gpu_to_the_measuring_rank(
    tmp_path: Path, fake_nvml_library: Path, change: str, pg: bool
) -> None:
    # `late`: rank 1 starts its tracker in epoch 1; `leave`: it stops it after epoch 0.
    epoch = 1 if change == "late" else 0
    host, rows, results = plain_job(tmp_path, fake_nvml_library, "every", pg, **{change: epoch})
    ranks = {r["rank"]: r for r in rows if r["scope"] == "rank"}
    ratio = counted_ratio(list(ranks.values()), host, float(ranks["0"]["duration"]))
    print(f"counted/true, rank 1 {change} ({'process group' if pg else 'environment'}): {ratio}")
    assert ratio == pytest.approx(1.0, abs=0.03)
    # Rank 0 counted GPU 1 while rank 1 had no tracker.
    assert ranks["0"]["gpu_count"] == "2"
    if pg:
        check_rank_zero_gives_the_job(rows, results, runs=1)


def test_a_killed_ranks_gpu_goes_back_to_the_measuring_rank_with_one_warning(
    tmp_path: Path, fake_nvml_library: Path
) -> None:
    host = make_host(tmp_path, "node", 2, fake_nvml_library)
    config = {
        "output_dir": str(tmp_path),
        "hosts": [host.settings()] * 2,
        "pattern": "per_epoch",
        "pg": False,
        "epochs": 3,
        "epoch_s": 0.8,
        "kill": 1,
    }
    ranks = launch_by_hand(tmp_path, config, piped=0, script=PLAIN_SCRIPT)
    with advancing([host]):
        _, stderr = ranks[0].communicate(timeout=120)
        ranks[1].wait(timeout=60)
    assert ranks[1].returncode == -9
    assert ranks[0].returncode == 0, stderr[-4000:]
    own = [r for r in rows_of(tmp_path / "emissions.csv") if r["rank"] == "0"]
    # Epoch 1, in which rank 1 died, is its own; from epoch 2 on its GPU is rank 0's.
    assert len(own) == 3 and own[2]["gpu_count"] == "2"
    ratio = counted_ratio([own[2]], host, float(own[2]["duration"]))
    print(f"counted/true, the epoch after rank 1 was killed: {ratio}")
    assert ratio == pytest.approx(1.0, abs=0.03)
    assert stderr.count("ended without releasing") == 1, stderr[-4000:]


@pytest.mark.parametrize("pg", [True, False], ids=["process_group", "environment"])
def test_every_rank_of_two_hosts_tracking_counts_each_host_once(
    tmp_path: Path, fake_nvml_library: Path, pg: bool
) -> None:
    # Two torchrun agents, one per host, meet at one rendezvous: ranks 0-1 on one, 2-3 on the
    # other, each with its own LOCAL_RANK (the environment's split, without a process group).
    hosts = [make_host(tmp_path, name, 1, fake_nvml_library) for name in ("a", "b")]
    config = {
        "output_dir": str(tmp_path),
        "hosts": [hosts[0].settings()] * 2 + [hosts[1].settings()] * 2,
        "set_host": True,
        "pattern": "every",
        "pg": pg,
        "epochs": 2,
        "epoch_s": 1.0,
    }
    endpoint = f"127.0.0.1:{free_port()}"
    agents = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "torch.distributed.run", "--nnodes=2"),
                *("--nproc-per-node=2", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}"),
                *("--rdzv-id=two-hosts", str(PLAIN_SCRIPT), json.dumps(config)),
            ],
            cwd=tmp_path,
            env=job_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in hosts
    ]
    with advancing(hosts):
        errors = [agent.communicate(timeout=240)[1] for agent in agents]
    assert [agent.returncode for agent in agents] == [0, 0], errors[0][-3000:] + errors[1][-3000:]
    rows = rows_of(tmp_path / "emissions.csv")
    ranks = {r["rank"]: r for r in rows if r["scope"] == "rank"}
    measuring = {rank: (r["host"], r["cpu_method"], r["gpu_count"]) for rank, r in ranks.items()}
    assert measuring == {
        "0": ("a", "rapl", "1"),
        "1": ("a", "other_rank", "0"),
        "2": ("b", "rapl", "1"),
        "3": ("b", "other_rank", "0"),
    }
    span_s = max(float(r["duration"]) for r in ranks.values())
    truth_j = sum(host.power_w() for host in hosts) * span_s
    ratio = round(sum(map(energy_j, ranks.values())) / truth_j, 4)
    mode = "process group" if pg else "environment"
    print(f"counted/true, every rank of two hosts ({mode}): {ratio}")
    assert ratio == pytest.approx(1.0, abs=0.03)
    if pg:
        (job,) = [r for r in rows if r["scope"] == "job"]
        assert energy_j(job) == pytest.approx(sum(map(energy_j, ranks.values())), rel=1e-9)
