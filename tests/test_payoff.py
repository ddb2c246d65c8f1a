"""The metric of a hand loop's epochs (`epoch.record`) and `min_gain_per_kg` on it."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import pytest
from fixtures import plateau
from helpers import carbonmeter_messages, make_tracker, rows_of

import carbonmeter
import carbonmeter.loggers
from carbonmeter._epochs import Monitor
from carbonmeter.distributed import JobTracker


def test_a_hand_loop_stops_paying_at_the_plateau(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="carbonmeter")
    tracker = make_tracker(save_to_file=True, output_dir=str(tmp_path), **plateau.SETTINGS)
    for epoch in range(plateau.MAX_EPOCHS):
        with tracker.epoch(epoch, total=plateau.MAX_EPOCHS) as window:
            time.sleep(plateau.EPOCH_FLOOR_S)
            window.record("val_score", plateau.score(epoch))
        assert window.data is not None
        if window.data.stop_reason is not None:
            break
    tracker.stop()
    saved = plateau.check_stopped_paying(rows_of(tmp_path / "emissions.csv"), "train", "val_score")
    assert saved > 0.7, saved
    assert {row["metric_direction"] for row in rows_of(tmp_path / "emissions.csv")} >= {"max"}
    [line] = [m for m in carbonmeter_messages(caplog, logging.WARNING) if "stopped paying" in m]
    assert "val_score gained 0.0000 over the last 2 epoch(s)" in line
    assert "stopping saves about" in line and "% of the projected" in line


def test_a_loss_improves_downwards_and_mode_overrides_the_name() -> None:
    tracker = make_tracker()
    rows = []
    for epoch, (name, value, mode) in enumerate(
        [("val_loss", 2.0, "auto"), ("val_loss", 1.0, "auto"), ("score", 3.0, "min")]
    ):
        with tracker.epoch(epoch) as window:
            window.record(name, value, mode=mode)
        assert window.data is not None
        rows.append(window.data)
    tracker.stop()
    assert [row.metric_direction for row in rows] == ["min", "min", "min"]
    # The loss fell: a gain, positive per kg.
    assert rows[1].metric_gain_per_kg is not None and rows[1].metric_gain_per_kg > 0


def test_record_refuses_what_is_no_metric() -> None:
    tracker = make_tracker()
    window = tracker.epoch()
    with pytest.raises(carbonmeter.TrackerStateError, match="inside the epoch's with-block"):
        window.record("acc", 0.5)
    with window:
        with pytest.raises(ValueError, match="finite"):
            window.record("acc", math.nan)
        with pytest.raises(ValueError, match='"max", "min" or "auto"'):
            window.record("acc", 0.5, mode="best")
    tracker.stop()


def test_a_nan_metric_is_left_out_with_a_warning_not_a_crash() -> None:
    monitor = Monitor("val_loss", "auto", {})
    assert monitor.metric({"val_loss": math.nan}) is None
    assert monitor.metric({"val_loss": 0.25}) == ("val_loss", 0.25, "auto")
    assert monitor.metric({"loss": 0.25}) is None
    with pytest.raises(TypeError, match="monitor="):
        Monitor(None, "auto", {"min_gain_per_kg": 1.0})
    with pytest.raises(ValueError, match="mode"):
        Monitor("acc", "up", {})


class Recorder(carbonmeter.loggers.EmissionsLogger):
    """A logger that keeps what it is sent."""

    name = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[dict[str, float]] = []

    def log_epoch(self, metrics: dict[str, float], epoch: int) -> None:
        self.epochs.append(metrics)

    def log_summary(self, summary: dict[str, object]) -> None:
        pass


def test_the_loggers_get_the_gain_per_kg_since_the_first_epoch() -> None:
    recorder = Recorder()
    tracker = make_tracker(loggers=[recorder], force_cpu_power=100)
    for epoch in range(3):
        with tracker.epoch(epoch) as window:
            time.sleep(0.01)
            window.record("val_accuracy", 0.5 + 0.1 * epoch)
    tracker.stop()
    assert "val_accuracy_per_kg" not in recorder.epochs[0]
    assert window.data is not None
    assert recorder.epochs[2]["val_accuracy_per_kg"] == pytest.approx(
        window.data.metric_gain_per_kg
    )
    assert recorder.epochs[2]["val_accuracy_per_kg"] > 0


def test_a_job_tracker_outside_a_job_stops_paying_too(tmp_path: Path) -> None:
    job = JobTracker(output_dir=str(tmp_path), **plateau.SETTINGS)
    job.start()
    with pytest.raises(carbonmeter.TrackerStateError, match="no train epoch is open"):
        job.record("val_score", 0.5)
    for epoch in range(plateau.MAX_EPOCHS):
        with job.epoch(epoch, total=plateau.MAX_EPOCHS):
            time.sleep(plateau.EPOCH_FLOOR_S)
            job.record("val_score", plateau.score(epoch))
        if job.stop_reason is not None:
            break
    job.stop()
    saved = plateau.check_stopped_paying(rows_of(tmp_path / "emissions.csv"), "train", "val_score")
    assert saved > 0.7, saved
