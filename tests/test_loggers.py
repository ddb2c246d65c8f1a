"""W&B and Comet loggers, driven through the real clients offline and read back from disk."""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

wandb = pytest.importorskip("wandb", reason="logger tests need wandb")
comet_ml = pytest.importorskip("comet_ml", reason="logger tests need comet_ml")

from fixtures.offline_runs import (  # noqa: E402
    comet_metrics,
    comet_others,
    wandb_history,
    wandb_summary,
)
from fixtures.tiny_models import hf_tiny_bert, lightning_tiny  # noqa: E402

from carbonmeter import EmissionsTracker, InvalidValueError  # noqa: E402
from carbonmeter._epochs import ALL_METRICS, DEFAULT_METRICS  # noqa: E402
from carbonmeter.loggers.comet import CometLogger  # noqa: E402
from carbonmeter.loggers.wandb import WandbLogger  # noqa: E402


@pytest.fixture
def offline_clients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """wandb and Comet offline, quiet, writing only under tmp_path."""
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
        "WANDB_DATA_DIR": str(tmp_path / "wandb-data"),
        "COMET_LOGGING_CONSOLE": "ERROR",
        "COMET_AUTO_LOG_CO2": "false",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def epoch_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return [row for row in csv.DictReader(file) if row["epoch"]]


def csv_rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "emissions.csv").open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def run_row(path: Path, run_id: str | None = None) -> dict[str, str]:
    """The last run row of the file, or of the run `run_id`."""
    with path.open(encoding="utf-8", newline="") as file:
        rows = [row for row in csv.DictReader(file) if not row["window"]]
    return [row for row in rows if run_id in (None, row["run_id"])][-1]


def wandb_file(root: Path) -> Path:
    (path,) = root.glob("wandb/offline-run-*/run-*.wandb")
    return path


def per_epoch(history: list[dict[str, Any]], key: str) -> dict[int, float]:
    values: dict[int, float] = {}
    for row in history:
        if key in row and "epoch" in row:
            values.setdefault(int(row["epoch"]), row[key])
    return values


def train_three_epochs(tracker: EmissionsTracker, log: Any = None) -> None:
    for epoch in range(3):
        with tracker.epoch():
            sum(i * i for i in range(50_000))
        if log is not None:
            log({"loss": 1.0 / (epoch + 1)})
    tracker.stop()


def test_wandb_gets_each_epoch_and_the_run_summary(offline_clients: Path) -> None:
    run = wandb.init(project="carbonmeter-test", dir=str(offline_clients), mode="offline")
    tracker = EmissionsTracker(
        output_dir=str(offline_clients), country_iso_code="FRA", loggers=["wandb"]
    )
    train_three_epochs(tracker, run.log)
    run.finish()
    wandb.teardown()

    path = wandb_file(offline_clients)
    history = wandb_history(path)
    rows = epoch_rows(offline_clients / "emissions.csv")
    expected = {int(row["epoch"]): float(row["emissions"]) for row in rows}
    assert per_epoch(history, "co2_kg") == pytest.approx(expected)
    totals = per_epoch(history, "co2_kg_total")
    assert totals[2] == pytest.approx(sum(expected.values()))
    # The default figures only (issue 32): power and per-component energies on request.
    assert per_epoch(history, "power_w") == {}
    assert per_epoch(history, "ram_energy_kwh") == {}
    assert [row["loss"] for row in history if "loss" in row][:3] == pytest.approx([1, 0.5, 1 / 3])
    # Our values join the user's steps (commit=False) instead of adding steps of their own.
    steps = [row for row in history if "loss" in row or "co2_kg" in row]
    assert len(steps) == 3
    assert all("loss" in row and "co2_kg" in row for row in steps)
    summary = wandb_summary(path)
    run_data = run_row(offline_clients / "emissions.csv")
    assert summary["run_co2_kg"] == pytest.approx(float(run_data["emissions"]))
    assert summary["intensity_source"] == run_data["intensity_source"]
    assert summary["country_iso_code"] == "FRA"
    assert summary["cpu_method"] == run_data["cpu_method"]


def test_comet_gets_each_epoch_and_the_run_summary(offline_clients: Path) -> None:
    # log_env_host=False: comet_ml 3.58 opens a UDP socket to find the host's address there and
    # never closes it.
    experiment = comet_ml.OfflineExperiment(
        offline_directory=str(offline_clients / "comet"),
        project_name="carbonmeter-test",
        log_env_host=False,
    )
    tracker = EmissionsTracker(
        output_dir=str(offline_clients), country_iso_code="FRA", loggers=[CometLogger(experiment)]
    )
    train_three_epochs(tracker)
    experiment.end()

    (archive,) = (offline_clients / "comet").glob("*.zip")
    rows = epoch_rows(offline_clients / "emissions.csv")
    expected = {int(row["epoch"]): float(row["emissions"]) for row in rows}
    assert comet_metrics(archive, "co2_kg") == pytest.approx(expected)
    assert comet_metrics(archive, "co2_kg_total")[2] == pytest.approx(sum(expected.values()))
    assert comet_metrics(archive, "ram_energy_kwh") == {}  # the default figures only
    others = comet_others(archive)
    run_data = run_row(offline_clients / "emissions.csv")
    assert float(others["run_co2_kg"]) == pytest.approx(float(run_data["emissions"]))
    assert others["intensity_method"] == "table"


def test_named_windows_reach_comet_under_their_name(offline_clients: Path) -> None:
    experiment = comet_ml.OfflineExperiment(
        offline_directory=str(offline_clients / "comet"),
        project_name="carbonmeter-test",
        log_env_host=False,
    )
    tracker = EmissionsTracker(
        output_dir=str(offline_clients), country_iso_code="FRA", loggers=[CometLogger(experiment)]
    )
    tracker.start()
    for _ in range(2):
        with tracker.window("data"):
            sum(i * i for i in range(20_000))
    tracker.stop()
    experiment.end()

    (archive,) = (offline_clients / "comet").glob("*.zip")
    windows = [float(r["emissions"]) for r in csv_rows(offline_clients) if r["window"] == "data"]
    assert sorted(comet_metrics(archive, "window/data/co2_kg").values()) == pytest.approx(
        sorted(windows)
    )


def test_without_an_active_run_the_logger_warns_once_and_logs_nothing(
    offline_clients: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert wandb.run is None
    tracker = EmissionsTracker(save_to_file=False, country_iso_code="FRA", loggers=["wandb"])
    with caplog.at_level(logging.WARNING, logger="carbonmeter.loggers"):
        train_three_epochs(tracker)
    warnings = [r for r in caplog.records if "no active W&B run" in r.getMessage()]
    assert len(warnings) == 1
    assert not list(offline_clients.glob("wandb/offline-run-*"))


def test_a_client_that_raises_warns_once_and_training_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class ClosedRun:
        def __init__(self) -> None:
            self.summary: dict[str, Any] = {}

        def define_metric(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("run is finished")

        def log(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("run is finished")

    tracker = EmissionsTracker(
        save_to_file=False, country_iso_code="FRA", loggers=[WandbLogger(ClosedRun())]
    )
    with caplog.at_level(logging.WARNING, logger="carbonmeter.loggers"):
        train_three_epochs(tracker)
    failures = [r for r in caplog.records if "log_epoch failed" in r.getMessage()]
    assert len(failures) == 1
    assert tracker.final_emissions is not None


# What W&B keeps beside the figures of a step.
WANDB_OWN_KEYS = {"epoch", "loss", "_step", "_timestamp", "_runtime"}


def test_wandb_gets_the_default_figures_only_and_all_on_request(offline_clients: Path) -> None:
    """Issue 32: 12 W&B panels of ours were too many; the default is the figures users read,
    `log_metrics="all"` sends every one."""
    keys: dict[str, set[str]] = {}
    for choice in (None, "all"):
        folder = offline_clients / str(choice)
        folder.mkdir()
        run = wandb.init(project="carbonmeter-test", dir=str(folder), mode="offline")
        tracker = EmissionsTracker(
            output_dir=str(folder), country_iso_code="FRA", loggers=["wandb"], log_metrics=choice
        )
        for epoch in range(2):
            with tracker.epoch(total=2):
                sum(i * i for i in range(20_000))
            run.log({"loss": 1.0 / (epoch + 1)})
        tracker.stop()
        run.finish()
        wandb.teardown()
        history = wandb_history(wandb_file(folder))
        keys[str(choice)] = {key for row in history for key in row} - WANDB_OWN_KEYS
    assert keys["None"] == set(DEFAULT_METRICS)
    assert keys["all"] == set(ALL_METRICS) - {
        "j_per_sample",
        "j_per_token",
        "j_per_request",
        "co2_g_per_1k_tokens",
    }


def test_an_unknown_log_metrics_name_is_refused_at_construction() -> None:
    with pytest.raises(InvalidValueError, match=r"'co2'.*co2_kg, co2_kg_low"):
        EmissionsTracker(save_to_file=False, loggers=["wandb"], log_metrics=["co2"])


def test_named_windows_reach_wandb_under_their_name(offline_clients: Path) -> None:
    run = wandb.init(project="carbonmeter-test", dir=str(offline_clients), mode="offline")
    tracker = EmissionsTracker(
        output_dir=str(offline_clients), country_iso_code="FRA", loggers=["wandb"]
    )
    tracker.start()
    with tracker.window("data"):
        sum(i * i for i in range(20_000))
    run.log({"loss": 1.0})
    tracker.start_window("eval")
    tracker.end_window("eval")
    tracker.stop()
    run.finish()
    wandb.teardown()

    history = wandb_history(wandb_file(offline_clients))
    windows = {r["window"]: float(r["emissions"]) for r in csv_rows(offline_clients) if r["window"]}
    assert [row["window/data/co2_kg"] for row in history if "window/data/co2_kg" in row] == (
        pytest.approx([windows["data"]])
    )
    # Joined to the user's step, as epochs are.
    assert all("loss" in row for row in history if "window/data/co2_kg" in row)
    assert [row["window/eval/co2_kg"] for row in history if "window/eval/co2_kg" in row] == (
        pytest.approx([windows["eval"]])
    )


def test_unknown_logger_name_is_refused_at_construction() -> None:
    with pytest.raises(InvalidValueError, match="'neptune'"):
        EmissionsTracker(save_to_file=False, loggers=["neptune"])


@pytest.mark.slow
def test_keras_callback_logs_each_epoch_once_to_wandb(offline_clients: Path) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    import numpy as np

    from carbonmeter.keras import EmissionsCallback

    run = wandb.init(project="carbonmeter-test", dir=str(offline_clients), mode="offline")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((32, 4), dtype="float32")
    callback = EmissionsCallback(
        output_dir=str(offline_clients), country_iso_code="FRA", loggers=["wandb"]
    )
    history = model.fit(x, x[:, :1], epochs=3, verbose=0, callbacks=[callback])
    run.finish()
    wandb.teardown()

    logged = per_epoch(wandb_history(wandb_file(offline_clients)), "co2_kg")
    assert list(logged.values()) == pytest.approx(history.history["co2_kg"])


@pytest.mark.slow
def test_lightning_wandb_logger_receives_co2_once_per_epoch(offline_clients: Path) -> None:
    pl = pytest.importorskip("lightning.pytorch")
    pytest.importorskip("torch")
    from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger

    from carbonmeter.lightning import EmissionsCallback

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    module, data = lightning_tiny()
    # The Lightning route: our callback logs through pl_module.log, Lightning's WandbLogger
    # forwards it; no loggers= here, or W&B would get every value twice.
    trainer = pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=LightningWandbLogger(offline=True, save_dir=str(offline_clients)),
        callbacks=[EmissionsCallback(output_dir=str(offline_clients), country_iso_code="FRA")],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    trainer.fit(module, data)
    wandb.finish()
    wandb.teardown()

    path = wandb_file(offline_clients)
    history = wandb_history(path)
    co2_values = [row["co2_kg"] for row in history if "co2_kg" in row]
    expected = [float(row["emissions"]) for row in epoch_rows(offline_clients / "emissions.csv")]
    assert sorted(set(co2_values)) == pytest.approx(sorted(expected))
    assert len(set(co2_values)) == 3
    # The run's totals reach the summary too, beside the last epoch's co2_kg.
    summary = wandb_summary(path)
    run_data = run_row(offline_clients / "emissions.csv")
    assert summary["run_co2_kg"] == pytest.approx(float(run_data["emissions"]))
    assert summary["run_energy_kwh"] == pytest.approx(float(run_data["energy_consumed"]))
    assert summary["intensity_source"] == run_data["intensity_source"]
    assert summary["cpu_method"] == run_data["cpu_method"]


@pytest.mark.slow
def test_hf_report_to_carbonmeter_then_wandb_logs_co2_once_per_epoch(
    offline_clients: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also: evaluations land in the step of their eval/loss, a standalone evaluate() reaches
    W&B, train and eval rows of an epoch share its number, the summary holds the run totals."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("torch")
    import carbonmeter.transformers  # noqa: F401  (registers report_to="carbonmeter")

    monkeypatch.setenv("CARBONMETER_COUNTRY_ISO_CODE", "FRA")
    run = wandb.init(project="carbonmeter-test", dir=str(offline_clients), mode="offline")
    model, data = hf_tiny_bert(32)
    args = transformers.TrainingArguments(
        output_dir=str(offline_clients / "hf"),
        num_train_epochs=3,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        logging_strategy="epoch",
        eval_strategy="epoch",
        save_strategy="no",
        report_to=["carbonmeter", "wandb"],
        run_name="bert-tiny",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=data, eval_dataset=data[:16]
    )
    trainer.train()
    final = trainer.evaluate()
    run.finish()
    wandb.teardown()

    path = wandb_file(offline_clients)
    history = wandb_history(path)
    rows = epoch_rows(offline_clients / "emissions.csv")
    train_rows = [row for row in rows if row["phase"] == "train"]
    eval_rows = [row for row in rows if row["phase"] == "eval"]
    logged = [row["train/co2_kg"] for row in history if "train/co2_kg" in row]
    assert logged == pytest.approx([float(row["emissions"]) for row in train_rows])
    eval_steps = [row for row in history if "eval/loss" in row]
    assert len(eval_steps) == 4  # three in training, one standalone
    assert [row["eval/co2_kg"] for row in eval_steps] == pytest.approx(
        [float(row["emissions"]) for row in eval_rows]
    )
    assert final["eval_co2_kg"] == pytest.approx(float(eval_rows[-1]["emissions"]))
    assert [row["epoch"] for row in train_rows] == ["0", "1", "2"]
    assert [row["epoch"] for row in eval_rows] == ["0", "1", "2", "2"]
    summary = wandb_summary(path)
    # train() is a run and the standalone evaluate() after it another, each ended with its
    # work: the summary holds the training's totals.
    run_data = run_row(offline_clients / "emissions.csv", train_rows[0]["run_id"])
    assert run_row(offline_clients / "emissions.csv")["run_id"] == eval_rows[-1]["run_id"]
    assert eval_rows[-1]["run_id"] != run_data["run_id"]
    assert summary["run_co2_kg"] == pytest.approx(float(run_data["emissions"]))
    assert summary["intensity_method"] == run_data["intensity_method"]
    assert summary["gpu_method"] == run_data["gpu_method"]


@pytest.mark.slow
def test_hf_report_to_comet_gets_the_run_totals(
    offline_clients: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("torch")
    import carbonmeter.transformers  # noqa: F401  (registers report_to="carbonmeter")

    monkeypatch.setenv("CARBONMETER_COUNTRY_ISO_CODE", "FRA")
    experiment = comet_ml.OfflineExperiment(
        offline_directory=str(offline_clients / "comet"),
        project_name="carbonmeter-test",
        log_env_host=False,
    )
    model, data = hf_tiny_bert(16)
    args = transformers.TrainingArguments(
        output_dir=str(offline_clients / "hf"),
        num_train_epochs=2,
        per_device_train_batch_size=8,
        logging_strategy="epoch",
        save_strategy="no",
        report_to=["carbonmeter", "comet_ml"],
        disable_tqdm=True,
        use_cpu=True,
    )
    transformers.Trainer(model=model, args=args, train_dataset=data).train()
    experiment.end()

    (archive,) = (offline_clients / "comet").glob("*.zip")
    others = comet_others(archive)
    run_data = run_row(offline_clients / "emissions.csv")
    assert float(others["run_co2_kg"]) == pytest.approx(float(run_data["emissions"]))
    assert others["intensity_source"] == run_data["intensity_source"]


def test_the_loggers_import_from_the_package_and_lazily() -> None:
    code = """
import sys
import carbonmeter.loggers
before = sorted({"wandb", "comet_ml"} & set(sys.modules))
from carbonmeter.loggers import WandbLogger
after_wandb = sorted({"wandb", "comet_ml"} & set(sys.modules))
from carbonmeter.loggers import CometLogger
from carbonmeter.loggers.comet import CometLogger as Comet
from carbonmeter.loggers.wandb import WandbLogger as Wandb
print(before, after_wandb, WandbLogger is Wandb and CometLogger is Comet)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "['wandb']", "True"]
    import carbonmeter.loggers

    with pytest.raises(AttributeError, match="NeptuneLogger"):
        _ = carbonmeter.loggers.NeptuneLogger


def test_wandb_gets_the_per_unit_figures_beside_co2(offline_clients: Path) -> None:
    run = wandb.init(project="carbonmeter-test", dir=str(offline_clients), mode="offline")
    tracker = EmissionsTracker(
        output_dir=str(offline_clients),
        country_iso_code="FRA",
        loggers=["wandb"],
        log_metrics=["default", "j_per_sample", "j_per_token", "co2_g_per_1k_tokens"],
    )
    for _ in range(2):
        with tracker.epoch():
            for _ in range(4):
                sum(i * i for i in range(20_000))
                tracker.count(samples=8, tokens=256)
    tracker.stop()
    run.finish()
    wandb.teardown()

    path = wandb_file(offline_clients)
    history = wandb_history(path)
    rows = epoch_rows(offline_clients / "emissions.csv")
    assert [(row["samples"], row["tokens"]) for row in rows] == [("32", "1024")] * 2
    energy_j = {int(r["epoch"]): float(r["energy_consumed"]) * 3.6e6 for r in rows}
    assert per_epoch(history, "j_per_sample") == pytest.approx(
        {epoch: j / 32 for epoch, j in energy_j.items()}
    )
    assert per_epoch(history, "j_per_token") == pytest.approx(
        {epoch: j / 1024 for epoch, j in energy_j.items()}
    )
    co2_g = {int(r["epoch"]): float(r["emissions"]) * 1000 for r in rows}
    assert per_epoch(history, "co2_g_per_1k_tokens") == pytest.approx(
        {epoch: g / 1.024 for epoch, g in co2_g.items()}
    )
    assert set(per_epoch(history, "co2_kg")) == {0, 1}
    assert per_epoch(history, "power_w") == {}  # not listed in log_metrics
    summary = wandb_summary(path)
    run_data = run_row(offline_clients / "emissions.csv")
    assert (summary["run_samples"], summary["run_tokens"]) == (64, 2048)
    assert summary["run_j_per_token"] == pytest.approx(
        float(run_data["energy_consumed"]) * 3.6e6 / 2048
    )
    assert "run_j_per_request" not in summary


def test_the_readmes_custom_logger_receives_each_epochs_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The block as the README shows it (test_readme.py runs it too): a tracker we do not ship.
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    [block] = [
        block
        for block in readme.split("```python\n")[1:]
        if "(EmissionsLogger)" in block.split("```")[0]
    ]
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(block.split("```")[0], "README.md", "exec"), namespace)
    logger = namespace["logger"]
    assert [epoch for epoch, _, _ in logger.epochs] == [0, 1, 2]
    assert all(co2_kg > 0 and energy_kwh > 0 for _, co2_kg, energy_kwh in logger.epochs)
    total = sum(co2_kg for _, co2_kg, _ in logger.epochs)
    assert logger.summary["run_co2_kg"] >= total * 0.999
    assert logger.summary["country_iso_code"] == "FRA"
    # The whole footprint (issue 30): electricity, embodied carbon and water side by side.
    summary = logger.summary
    assert summary["run_embodied_co2_kg"] > 0
    assert summary["run_total_co2_kg"] == pytest.approx(
        summary["run_co2_kg"] + summary["run_embodied_co2_kg"]
    )
    # France (WRI: 3.6737 L/kWh) x the energy drawn.
    assert summary["run_water_offsite_l"] == pytest.approx(summary["run_energy_kwh"] * 3.6737)
    assert summary["hardware_lifetime_years"] == 4
    # France, no cloud, no wue: off-site only; the unknown on-site term is left out, not 0.
    assert "run_water_onsite_l" not in logger.summary and "run_water_l" not in logger.summary
