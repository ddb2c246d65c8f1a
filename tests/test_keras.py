"""The Keras callback on a real `model.fit` (torch backend, tiny model, synthetic data)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures import budget, plateau
from helpers import check_run_ended_with_work, idle_after, rows_of

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="Keras tests need the [keras] extra")
np = pytest.importorskip("numpy")

from carbonmeter._epochs import ALL_METRICS, DEFAULT_METRICS  # noqa: E402
from carbonmeter.keras import EmissionsCallback  # noqa: E402

SCRIPTS = Path(__file__).parent / "scripts"


def tiny_model() -> keras.Model:
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    return model


class LogsRecorder(keras.callbacks.Callback):
    """Stands for any logger placed after ours (CSVLogger, W&B): records what it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seen.append(dict(logs or {}))


def test_three_epochs_give_three_epoch_rows_a_run_row_and_logs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    callback = EmissionsCallback(output_dir=str(tmp_path), country_iso_code="FRA")
    recorder = LogsRecorder()
    history = tiny_model().fit(
        x,
        y,
        epochs=3,
        batch_size=32,
        verbose=0,
        callbacks=[callback, recorder],
    )
    rows = rows_of(tmp_path / "emissions.csv")
    assert [row["window"] for row in rows] == [
        "train-epoch-0",
        "train-epoch-1",
        "train-epoch-2",
        "",
    ]
    assert [row["epoch"] for row in rows] == ["0", "1", "2", ""]
    assert history.history["co2_kg"] == pytest.approx([float(r["emissions"]) for r in rows[:3]])
    assert history.history["energy_kwh"] == pytest.approx(
        [float(r["energy_consumed"]) for r in rows[:3]]
    )
    epochs_kwh = sum(float(row["energy_consumed"]) for row in rows[:3])
    assert 0 < epochs_kwh <= float(rows[3]["energy_consumed"])
    assert [logs["co2_kg"] for logs in recorder.seen] == history.history["co2_kg"]
    # The default figures only (issue 32: 18 keys per epoch were too many).
    for logs in recorder.seen:
        assert {"loss", "co2_kg", "energy_kwh", "co2_kg_total"} <= set(logs)
        assert set(logs) - {"loss"} <= set(DEFAULT_METRICS)
    assert history.history["co2_kg_total"][-1] == pytest.approx(sum(history.history["co2_kg"]))
    assert callback.tracker is not None and not callback.tracker.running


def test_log_metrics_all_puts_every_figure_in_the_logs(tmp_path: Path) -> None:
    x = np.ones((64, 8), dtype="float32")
    callback = EmissionsCallback(
        output_dir=str(tmp_path), country_iso_code="FRA", log_metrics="all"
    )
    history = tiny_model().fit(
        x, x[:, :1], epochs=2, validation_split=0.25, verbose=0, callbacks=[callback]
    )
    rows = rows_of(tmp_path / "emissions.csv")
    train_rows = [row for row in rows if row["phase"] == "train"]
    assert history.history["ram_energy_kwh"] == pytest.approx(
        [float(row["ram_energy"]) for row in train_rows]
    )
    # Every figure the windows have: no per-token or per-request figure without their counts.
    counted_only = {"j_per_token", "j_per_request", "co2_g_per_1k_tokens"}
    ours = set(ALL_METRICS) - counted_only
    assert ours <= set(history.history)
    validation = {f"val_{name}" for name in ours - {"co2_kg_total", "j_per_sample"}}
    validation -= {f"val_{name}" for name in ALL_METRICS if name.startswith("co2_kg_projected")}
    assert validation <= set(history.history)


def test_a_shared_tracker_is_started_but_not_stopped(tmp_path: Path) -> None:
    from carbonmeter import EmissionsTracker

    tracker = EmissionsTracker(output_dir=str(tmp_path), country_iso_code="FRA")
    x = np.ones((32, 8), dtype="float32")
    tiny_model().fit(x, x[:, :1], epochs=2, verbose=0, callbacks=[EmissionsCallback(tracker)])
    assert tracker.running
    tracker.stop()
    windows = [row["window"] for row in rows_of(tmp_path / "emissions.csv")]
    assert windows == ["train-epoch-0", "train-epoch-1", ""]


def test_a_shared_trackers_log_metrics_choose_the_figures(tmp_path: Path) -> None:
    from carbonmeter import EmissionsTracker

    tracker = EmissionsTracker(save_to_file=False, country_iso_code="FRA", log_metrics="co2_kg")
    x = np.ones((32, 8), dtype="float32")
    history = tiny_model().fit(
        x, x[:, :1], epochs=2, verbose=0, callbacks=[EmissionsCallback(tracker)]
    )
    tracker.stop()
    assert set(history.history) == {"loss", "co2_kg"}


def test_passing_a_tracker_and_kwargs_is_refused() -> None:
    from carbonmeter import EmissionsTracker

    with pytest.raises(TypeError, match="either tracker"):
        EmissionsCallback(EmissionsTracker(save_to_file=False), pue=1.2)


@pytest.mark.slow
def test_an_exception_mid_epoch_leaves_the_partial_epoch_and_the_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "crash_mid_epoch.py"), "keras", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "KERAS_BACKEND": "torch"},
    )
    assert result.returncode != 0
    assert "RuntimeError: boom in epoch 1" in result.stderr
    rows = rows_of(tmp_path / "emissions.csv")
    assert [row["window"] for row in rows] == ["train-epoch-0", "train-epoch-1", ""]


class EpochFloor(keras.callbacks.Callback):
    """Holds each epoch open a little, so its cost does not depend on the machine's speed."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        time.sleep(budget.EPOCH_FLOOR_S)


def test_the_budget_stops_fit_after_the_crossing_epoch(tmp_path: Path) -> None:
    x = np.ones((64, 8), dtype="float32")
    callback = EmissionsCallback(output_dir=str(tmp_path), **budget.SETTINGS)
    recorder = LogsRecorder()
    history = tiny_model().fit(
        x,
        x[:, :1],
        epochs=budget.MAX_EPOCHS,
        verbose=0,
        callbacks=[callback, EpochFloor(), recorder],
    )
    ran = budget.check_stopped_after_the_crossing_epoch(rows_of(tmp_path / "emissions.csv"))
    assert len(history.history["loss"]) == ran
    # Every epoch's logs carry the band and the run's projection.
    assert all(
        {"co2_kg_low", "co2_kg_high", "co2_kg_projected"} <= set(logs) for logs in recorder.seen
    )


# Keras 3.15's torch predict hands numpy arrays to torch's tree_map (not ours).
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_validation_nests_in_its_epoch_and_evaluate_and_predict_are_phases(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(128, 8)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    callback = EmissionsCallback(output_dir=str(tmp_path), country_iso_code="FRA")
    recorder = LogsRecorder()
    model = tiny_model()
    history = model.fit(
        x,
        y,
        epochs=2,
        batch_size=32,
        validation_data=(x[:32], y[:32]),
        verbose=0,
        callbacks=[callback, recorder],
    )
    after_fit = callback.final_emissions
    model.evaluate(x, y, batch_size=32, verbose=0, callbacks=[callback])
    model.predict(x, batch_size=32, verbose=0, callbacks=[callback])

    rows = rows_of(tmp_path / "emissions.csv")
    assert [(row["phase"], row["epoch"]) for row in rows] == [
        ("validation", "0"),
        ("train", "0"),
        ("validation", "1"),
        ("train", "1"),
        ("", ""),
        ("evaluate", "0"),
        ("", ""),
        ("predict", "0"),
        ("", ""),
    ]
    validation = [row for row in rows if row["phase"] == "validation"]
    train = [row for row in rows if row["phase"] == "train"]
    assert history.history["val_co2_kg"] == pytest.approx(
        [float(row["emissions"]) for row in validation]
    )
    assert all("val_loss" in logs and "val_energy_kwh" in logs for logs in recorder.seen)
    for inner, outer in zip(validation, train, strict=True):
        assert float(inner["duration"]) <= float(outer["duration"])
    assert after_fit == pytest.approx(float(rows[4]["emissions"]))
    assert callback.last_evaluation is not None
    assert callback.last_evaluation["co2_kg"] == pytest.approx(float(rows[5]["emissions"]))
    # The training's figure stays the callback's, whatever ran after it (issue 32).
    assert callback.final_emissions == pytest.approx(after_fit)
    assert callback.last_prediction is not None
    assert callback.last_prediction["co2_kg"] == pytest.approx(float(rows[7]["emissions"]))


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_fit_evaluate_predict_are_one_training_for_the_callback_and_the_report(
    tmp_path: Path,
) -> None:
    """fit + evaluate + predict: `final_emissions` is fit's and the report's overview counts one
    run for the experiment, the evaluation's energy in its sums (issue 32)."""
    from carbonmeter.report.model import load, overview

    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    callback = EmissionsCallback(output_dir=str(tmp_path), country_iso_code="FRA")
    model = tiny_model()
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[callback])
    model.evaluate(x, y, verbose=0, callbacks=[callback])
    model.predict(x, verbose=0, callbacks=[callback])

    rows = rows_of(tmp_path / "emissions.csv")
    run_rows = [row for row in rows if row["window"] == ""]
    assert len(run_rows) == 3  # fit, evaluate, predict: each run ends with its call
    assert len({row["experiment_id"] for row in run_rows}) == 1
    assert callback.final_emissions == pytest.approx(float(run_rows[0]["emissions"]))
    data = callback.final_emissions_data
    assert data is not None and data.run_id == run_rows[0]["run_id"]
    (line,) = overview(load([tmp_path]))
    assert line["runs"] == 1
    assert line["energy_kwh"] == pytest.approx(
        sum(float(row["energy_consumed"]) for row in run_rows)
    )


def test_the_samples_of_every_batch_are_counted_per_epoch_and_run(tmp_path: Path) -> None:
    # 250 samples in batches of 32: seven full batches and one of 26, every epoch.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(250, 8)).astype("float32")
    callback = EmissionsCallback(
        output_dir=str(tmp_path), country_iso_code="FRA", log_metrics=["default", "j_per_sample"]
    )
    history = tiny_model().fit(
        x, x.sum(axis=1, keepdims=True), epochs=2, batch_size=32, verbose=0, callbacks=[callback]
    )
    rows = rows_of(tmp_path / "emissions.csv")
    assert [row["samples"] for row in rows] == ["250", "250", "500"]
    assert [row["tokens"] for row in rows] == ["", "", ""]
    per_sample = [float(r["energy_consumed"]) * 3.6e6 / 250 for r in rows[:2]]
    assert history.history["j_per_sample"] == pytest.approx(per_sample)
    assert "j_per_token" not in history.history
    data = callback.final_emissions_data
    assert data is not None and data.samples == 500
    assert data.joules_per_sample == pytest.approx(data.energy_consumed * 3.6e6 / 500)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_evaluate_and_predict_after_fit_end_their_runs_with_their_work(tmp_path: Path) -> None:
    """Fit, then evaluate, predict, each followed by other work (issue 32)."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    callback = EmissionsCallback(output_dir=str(tmp_path), country_iso_code="FRA")
    model = tiny_model()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[callback])
    csv_path = tmp_path / "emissions.csv"
    work_s = idle_after(lambda: model.evaluate(x, y, verbose=0, callbacks=[callback]))
    assert check_run_ended_with_work(csv_path, work_s)["window"] == ""
    work_s = idle_after(lambda: model.predict(x, verbose=0, callbacks=[callback]))
    check_run_ended_with_work(csv_path, work_s)


class ScriptedScore(keras.callbacks.Callback):
    """Puts the synthetic plateauing metric into each epoch's logs, before carbonmeter's."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["val_score"] = plateau.score(epoch)


def test_training_stops_once_the_metric_gains_too_little_per_kg(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    x = np.ones((64, 8), dtype="float32")
    callback = EmissionsCallback(output_dir=str(tmp_path), monitor="val_score", **plateau.SETTINGS)
    recorder = LogsRecorder()
    history = tiny_model().fit(
        x,
        x[:, :1],
        epochs=plateau.MAX_EPOCHS,
        verbose=0,
        callbacks=[ScriptedScore(), callback, EpochFloor(), recorder],
    )
    saved = plateau.check_stopped_paying(rows_of(tmp_path / "emissions.csv"), "train", "val_score")
    assert len(history.history["loss"]) == plateau.STOP_EPOCH + 1
    assert saved > 0.7, saved
    # The gain per kg since the first epoch reaches the logs (and so History and the loggers).
    assert "val_score_per_kg" not in recorder.seen[0]
    assert all("val_score_per_kg" in logs for logs in recorder.seen[1:])
    [line] = [r.getMessage() for r in caplog.records if "stopped paying" in r.getMessage()]
    assert f"epoch {plateau.STOP_EPOCH}" in line and "stopping saves about" in line


def test_min_gain_per_kg_needs_the_metric_it_judges() -> None:
    with pytest.raises(TypeError, match="monitor="):
        EmissionsCallback(min_gain_per_kg=1.0)
