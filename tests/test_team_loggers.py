"""MLflow and TensorBoard loggers (issue 28), driven through the real clients offline: an MLflow
sqlite store read back with `MlflowClient`, TensorBoard event files read back with
`EventAccumulator`; also through Lightning's `MLFlowLogger` / `TensorBoardLogger`, HF's
`report_to=["mlflow"]` and the Keras callback's `loggers=`."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

mlflow = pytest.importorskip("mlflow", reason="these tests need mlflow")
pytest.importorskip("tensorboard", reason="these tests need tensorboard")

from helpers import rows_of  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

from carbonmeter import EmissionsTracker  # noqa: E402
from carbonmeter._epochs import DEFAULT_METRICS  # noqa: E402
from carbonmeter.loggers.mlflow import MlflowLogger  # noqa: E402
from carbonmeter.loggers.tensorboard import PROVENANCE_TAG, TensorBoardLogger  # noqa: E402


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow sqlite store for the module (the file store is in maintenance mode): making
    its tables takes seconds, so the tests share it and tell their runs apart by id."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def store(store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The store's client, with no active run before or after."""
    uri = store_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    # The fluent API remembers the experiment last set (HF's MLflowCallback sets one): each
    # test names its own, in the store it uses.
    mlflow.set_experiment(f"test-{tmp_path.name}")
    try:
        yield mlflow.MlflowClient(uri)
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
        # mlflow has no public call to forget the experiment set; a later test's store has no
        # such experiment.
        mlflow.tracking.fluent._active_experiment_id = None


def history(client: Any, run_id: str, key: str) -> dict[int, float]:
    return {metric.step: metric.value for metric in client.get_metric_history(run_id, key)}


def all_runs(client: Any) -> list[str]:
    experiments = [each.experiment_id for each in client.search_experiments()]
    return sorted(run.info.run_id for run in client.search_runs(experiments))


def epoch_rows(path: Path, phase: str = "train") -> list[dict[str, str]]:
    return [row for row in rows_of(path) if row["epoch"] and row["phase"] == phase]


def run_row(path: Path) -> dict[str, str]:
    return [row for row in rows_of(path) if not row["window"]][-1]


def three_epochs(tracker: EmissionsTracker) -> None:
    for _ in range(3):
        with tracker.epoch(total=3):
            sum(i * i for i in range(50_000))
    tracker.stop()


def scalars(log_dir: Path, tag: str) -> dict[int, float]:
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {event.step: event.value for event in events.Scalars(tag)}


def scalar_tags(log_dir: Path) -> set[str]:
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return set(events.Tags()["scalars"])


def test_mlflow_gets_each_epoch_the_totals_and_the_provenance_once(
    store: Any, tmp_path: Path
) -> None:
    with mlflow.start_run() as run:
        tracker = EmissionsTracker(
            output_dir=str(tmp_path), country_iso_code="FRA", loggers=["mlflow"]
        )
        three_epochs(tracker)
    run_id = run.info.run_id
    rows = epoch_rows(tmp_path / "emissions.csv")
    expected = {int(row["epoch"]): float(row["emissions"]) for row in rows}
    assert history(store, run_id, "co2_kg") == pytest.approx(expected)
    assert history(store, run_id, "co2_kg_total")[2] == pytest.approx(sum(expected.values()))
    assert history(store, run_id, "co2_kg_projected").keys() == {0, 1, 2}
    assert history(store, run_id, "energy_kwh") == pytest.approx(
        {int(row["epoch"]): float(row["energy_consumed"]) for row in rows}
    )
    data = store.get_run(run_id).data
    # The default figures only (issue 32): no per-component energies, no power.
    # The run's summary: totals, the grid, PUE and the lifetime the embodied figure assumes.
    summary_keys = ("run_", "intensity", "pue", "hardware_lifetime_years")
    per_epoch = {key for key in data.metrics if not key.startswith(summary_keys)}
    assert per_epoch == set(DEFAULT_METRICS)
    total = run_row(tmp_path / "emissions.csv")
    assert data.metrics["run_co2_kg"] == pytest.approx(float(total["emissions"]))
    assert data.metrics["run_energy_kwh"] == pytest.approx(float(total["energy_consumed"]))
    assert len(store.get_metric_history(run_id, "run_co2_kg")) == 1
    tags = data.tags
    assert tags["carbonmeter.intensity_source"] == total["intensity_source"]
    assert tags["carbonmeter.intensity_year"] == total["intensity_year"]
    assert tags["carbonmeter.cpu_method"] == total["cpu_method"]
    assert tags["carbonmeter.country_iso_code"] == "FRA"
    assert tags["carbonmeter.carbonmeter_version"] == total["carbonmeter_version"]


def test_mlflow_without_an_active_run_warns_once_and_creates_none(
    store: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert mlflow.active_run() is None
    runs_before = all_runs(store)
    tracker = EmissionsTracker(save_to_file=False, country_iso_code="FRA", loggers=["mlflow"])
    with caplog.at_level(logging.WARNING, logger="carbonmeter"):
        three_epochs(tracker)
    warnings = [r for r in caplog.records if "no active MLflow run" in r.getMessage()]
    assert len(warnings) == 1
    assert mlflow.active_run() is None
    assert all_runs(store) == runs_before


def test_mlflow_logs_to_the_run_id_given_without_starting_one(store: Any, tmp_path: Path) -> None:
    experiment_id = store.create_experiment(f"run-id-{tmp_path.name}")
    run_id = store.create_run(experiment_id).info.run_id
    tracker = EmissionsTracker(
        output_dir=str(tmp_path), country_iso_code="FRA", loggers=[MlflowLogger(run_id)]
    )
    three_epochs(tracker)
    assert mlflow.active_run() is None
    expected = [float(row["emissions"]) for row in epoch_rows(tmp_path / "emissions.csv")]
    assert list(history(store, run_id, "co2_kg").values()) == pytest.approx(expected)
    assert len(store.search_runs([experiment_id])) == 1


def test_named_windows_reach_mlflow_and_tensorboard_under_their_name(
    store: Any, tmp_path: Path
) -> None:
    with mlflow.start_run() as run:
        log_dir = tmp_path / "tb"
        tracker = EmissionsTracker(
            output_dir=str(tmp_path),
            country_iso_code="FRA",
            loggers=["mlflow", TensorBoardLogger(log_dir=log_dir)],
        )
        tracker.start()
        for _ in range(2):
            with tracker.window("data"):
                sum(i * i for i in range(20_000))
        tracker.start_window("eval")
        sum(i * i for i in range(20_000))
        tracker.end_window("eval")
        tracker.stop()
    rows = {
        (row["window"], index): float(row["emissions"])
        for index, row in enumerate(r for r in rows_of(tmp_path / "emissions.csv") if r["window"])
    }
    data_kg = [kg for (name, _), kg in rows.items() if name == "data"]
    eval_kg = [kg for (name, _), kg in rows.items() if name == "eval"]
    run_id = run.info.run_id
    assert list(history(store, run_id, "window/data/co2_kg").values()) == pytest.approx(data_kg)
    assert history(store, run_id, "window/eval/co2_kg") == pytest.approx({0: eval_kg[0]})
    assert history(store, run_id, "window/eval/energy_kwh").keys() == {0}
    assert scalars(log_dir, "window/data/co2_kg") == pytest.approx(
        dict(enumerate(data_kg)), rel=1e-6
    )
    assert scalars(log_dir, "window/eval/co2_kg") == pytest.approx({0: eval_kg[0]}, rel=1e-6)


def test_a_servers_shared_windows_are_one_series_under_their_name(tmp_path: Path) -> None:
    log_dir = tmp_path / "tb"
    tracker = EmissionsTracker(
        output_dir=str(tmp_path),
        country_iso_code="FRA",
        loggers=[TensorBoardLogger(log_dir=log_dir)],
    )
    tracker.start()
    with tracker.window("request", shared=True), tracker.window("request", shared=True):
        sum(i * i for i in range(20_000))
    tracker.stop()
    windows = [row for row in rows_of(tmp_path / "emissions.csv") if row["window"]]
    assert sorted(row["window"] for row in windows) == ["request-0", "request-1"]
    tags = {tag for tag in scalar_tags(log_dir) if tag.startswith("window/")}
    assert {"window/request/co2_kg", "window/request/energy_kwh"} <= tags
    assert all(tag.startswith("window/request/") for tag in tags)
    assert sorted(scalars(log_dir, "window/request/co2_kg").values()) == pytest.approx(
        sorted(float(row["emissions"]) for row in windows), rel=1e-6
    )


def test_a_logger_without_log_window_says_once_that_windows_are_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from carbonmeter.loggers import EmissionsLogger

    class EpochsOnly(EmissionsLogger):
        def __init__(self) -> None:
            super().__init__()
            self.epochs: list[int] = []

        def log_epoch(self, metrics: dict[str, float], epoch: int) -> None:
            self.epochs.append(epoch)

        def log_summary(self, summary: dict[str, Any]) -> None:
            pass

    logger = EpochsOnly()
    tracker = EmissionsTracker(save_to_file=False, country_iso_code="FRA", loggers=[logger])
    with caplog.at_level(logging.WARNING, logger="carbonmeter"):
        tracker.start()
        for name in ("data", "data", "eval"):
            with tracker.window(name):
                pass
        with tracker.epoch():
            pass
        tracker.stop()
    said = [r for r in caplog.records if "named windows" in r.getMessage()]
    assert len(said) == 1 and "'data'" in said[0].getMessage()
    assert logger.epochs == [0]


def test_tensorboard_writes_each_epoch_and_the_totals_with_its_own_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tracker = EmissionsTracker(
        output_dir=str(tmp_path), country_iso_code="FRA", loggers=["tensorboard"]
    )
    three_epochs(tracker)
    (log_dir,) = (tmp_path / "runs").iterdir()
    assert log_dir.name.endswith("-carbonmeter")
    rows = epoch_rows(tmp_path / "emissions.csv")
    expected = {int(row["epoch"]): float(row["emissions"]) for row in rows}
    assert scalars(log_dir, "co2_kg") == pytest.approx(expected, rel=1e-6)
    assert scalars(log_dir, "co2_kg_total")[2] == pytest.approx(sum(expected.values()), rel=1e-6)
    total = run_row(tmp_path / "emissions.csv")
    assert scalars(log_dir, "run_co2_kg") == pytest.approx({2: float(total["emissions"])}, rel=1e-6)
    assert {"cpu_energy_kwh", "power_w"}.isdisjoint(scalar_tags(log_dir))
    events = EventAccumulator(str(log_dir))
    events.Reload()
    (text,) = events.Tensors(PROVENANCE_TAG)
    provenance = text.tensor_proto.string_val[0].decode()
    assert f"| intensity_source | {total['intensity_source']} |" in provenance
    assert f"| cpu_method | {total['cpu_method']} |" in provenance


@pytest.mark.slow  # torch's SummaryWriter imports torch
def test_tensorboard_writes_into_the_writer_passed_with_all_figures(tmp_path: Path) -> None:
    torch_tensorboard = pytest.importorskip("torch.utils.tensorboard")
    writer = torch_tensorboard.SummaryWriter(str(tmp_path / "tb"))
    tracker = EmissionsTracker(
        output_dir=str(tmp_path),
        country_iso_code="FRA",
        loggers=[TensorBoardLogger(writer)],
        log_metrics="all",
    )
    three_epochs(tracker)
    writer.close()
    rows = epoch_rows(tmp_path / "emissions.csv")
    assert scalars(tmp_path / "tb", "co2_kg") == pytest.approx(
        {int(row["epoch"]): float(row["emissions"]) for row in rows}, rel=1e-6
    )
    assert scalars(tmp_path / "tb", "ram_energy_kwh") == pytest.approx(
        {int(row["epoch"]): float(row["ram_energy"]) for row in rows}, rel=1e-6
    )
    assert {"power_w", "co2_kg_projected_high", "run_co2_kg"} <= scalar_tags(tmp_path / "tb")


def fit_lightning(tmp_path: Path, logger: Any, **callback_kwargs: Any) -> None:
    """Three epochs of the tiny module with our callback and `logger`."""
    pl = pytest.importorskip("lightning.pytorch")
    from fixtures.tiny_models import lightning_tiny

    from carbonmeter.lightning import EmissionsCallback

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    module, data = lightning_tiny()
    callback = EmissionsCallback(
        output_dir=str(tmp_path), country_iso_code="FRA", **callback_kwargs
    )
    trainer = pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        default_root_dir=tmp_path,
        logger=logger,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    trainer.fit(module, data)


@pytest.mark.slow
def test_lightning_mlflow_logger_gets_our_epochs_and_the_run_totals(
    store: Any, tmp_path: Path
) -> None:
    pl_loggers = pytest.importorskip("lightning.pytorch.loggers")
    logger = pl_loggers.MLFlowLogger(
        experiment_name="lightning", tracking_uri=os.environ["MLFLOW_TRACKING_URI"]
    )
    fit_lightning(tmp_path, logger)
    run_id = logger.run_id
    rows = epoch_rows(tmp_path / "emissions.csv")
    logged = [metric.value for metric in store.get_metric_history(run_id, "co2_kg")]
    assert logged == pytest.approx([float(row["emissions"]) for row in rows])
    data = store.get_run(run_id).data
    total = run_row(tmp_path / "emissions.csv")
    assert data.metrics["run_co2_kg"] == pytest.approx(float(total["emissions"]))
    assert data.tags["carbonmeter.intensity_source"] == total["intensity_source"]
    assert "ram_energy_kwh" not in data.metrics
    assert mlflow.active_run() is None


@pytest.mark.slow
def test_lightning_tensorboard_logger_gets_our_epochs_and_the_run_totals(
    tmp_path: Path,
) -> None:
    pl_loggers = pytest.importorskip("lightning.pytorch.loggers")
    logger = pl_loggers.TensorBoardLogger(str(tmp_path), name="tb", version=0)
    fit_lightning(tmp_path, logger, log_metrics="all")
    log_dir = tmp_path / "tb" / "version_0"
    rows = epoch_rows(tmp_path / "emissions.csv")
    logged = scalars(log_dir, "co2_kg")
    assert sorted(logged.values()) == pytest.approx(
        sorted(float(row["emissions"]) for row in rows), rel=1e-6
    )
    assert "ram_energy_kwh" in scalar_tags(log_dir)
    total = run_row(tmp_path / "emissions.csv")
    (run_co2,) = scalars(log_dir, "run_co2_kg").values()
    assert run_co2 == pytest.approx(float(total["emissions"]), rel=1e-6)


@pytest.mark.slow
def test_hf_report_to_mlflow_gets_co2_at_the_loss_steps_and_the_run_totals(
    store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transformers = pytest.importorskip("transformers")
    from fixtures.tiny_models import hf_tiny_bert

    import carbonmeter.transformers  # noqa: F401  (registers report_to="carbonmeter")

    monkeypatch.setenv("CARBONMETER_COUNTRY_ISO_CODE", "FRA")
    monkeypatch.setenv("CARBONMETER_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "hf-report-to")
    model, data = hf_tiny_bert(16)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        num_train_epochs=2,
        per_device_train_batch_size=8,
        logging_strategy="epoch",
        save_strategy="no",
        report_to=["carbonmeter", "mlflow"],
        disable_tqdm=True,
        use_cpu=True,
    )
    transformers.Trainer(model=model, args=args, train_dataset=data).train()

    experiment = store.get_experiment_by_name("hf-report-to")
    (run,) = store.search_runs([experiment.experiment_id])
    run_id = run.info.run_id
    rows = epoch_rows(tmp_path / "emissions.csv")
    co2 = store.get_metric_history(run_id, "co2_kg")
    assert [metric.value for metric in co2] == pytest.approx([float(r["emissions"]) for r in rows])
    losses = store.get_metric_history(run_id, "loss")
    assert [metric.step for metric in co2] == [metric.step for metric in losses]
    total = run_row(tmp_path / "emissions.csv")
    assert run.data.metrics["run_co2_kg"] == pytest.approx(float(total["emissions"]))
    assert run.data.tags["carbonmeter.intensity_source"] == total["intensity_source"]


@pytest.mark.slow
def test_keras_callback_loggers_tensorboard_writes_our_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keras' own TensorBoard callback writes through TensorFlow, which the test venv does not
    # have; the Keras route is the callback's loggers=.
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    import numpy as np

    from carbonmeter.keras import EmissionsCallback

    monkeypatch.chdir(tmp_path)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((32, 4), dtype="float32")
    log_dir = tmp_path / "tb"
    callback = EmissionsCallback(
        output_dir=str(tmp_path),
        country_iso_code="FRA",
        loggers=[TensorBoardLogger(log_dir=log_dir)],
    )
    history = model.fit(x, x[:, :1], epochs=3, verbose=0, callbacks=[callback])
    assert list(scalars(log_dir, "co2_kg").values()) == pytest.approx(
        history.history["co2_kg"], rel=1e-6
    )
    assert scalars(log_dir, "co2_kg_total")[2] == pytest.approx(
        history.history["co2_kg_total"][2], rel=1e-6
    )
