"""Windows, tasks and epochs through the Python API, exact on a fake powercap tree."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from fixtures.powercap import FakePowercap

from carbonmeter import EmissionsTracker, InvalidValueError, TrackerStateError

pytestmark = pytest.mark.usefixtures("isolated")


def tracker_on(tree: FakePowercap, **kwargs: object) -> EmissionsTracker:
    return EmissionsTracker(
        powercap_root=str(tree.root),
        country_iso_code="FRA",
        measure_power_secs=60,
        **{"save_to_file": False, **kwargs},
    )


def uj(kwh: float) -> int:
    return round(kwh * 3.6e12)


@pytest.fixture
def package(powercap: FakePowercap) -> FakePowercap:
    powercap.add_zone("intel-rapl:0", "package-0")
    return powercap


def test_nested_and_overlapping_windows_measure_their_own_edges(package: FakePowercap) -> None:
    tracker = tracker_on(package)
    tracker.start_window("outer")
    package.advance("intel-rapl:0", 1_000_000)
    tracker.start_window("inner")
    package.advance("intel-rapl:0", 2_000_000)
    assert tracker.open_windows == ["outer", "inner"]
    outer = tracker.end_window("outer")
    package.advance("intel-rapl:0", 4_000_000)
    inner = tracker.end_window("inner")
    run = tracker.stop()
    assert (uj(outer.cpu_energy), uj(inner.cpu_energy)) == (3_000_000, 6_000_000)
    assert (outer.window, inner.window, outer.epoch) == ("outer", "inner", None)
    assert run is not None and uj(tracker.final_emissions_data.cpu_energy) == 7_000_000


def test_a_window_starts_an_idle_tracker(package: FakePowercap) -> None:
    tracker = tracker_on(package)
    assert not tracker.running
    tracker.start_window("w")
    assert tracker.running
    tracker.stop()


def test_window_misuse_raises_tracker_state_error_naming_the_window(
    package: FakePowercap,
) -> None:
    tracker = tracker_on(package)
    tracker.start_window("a")
    with pytest.raises(TrackerStateError, match='window "a" is already open'):
        tracker.start_window("a")
    with pytest.raises(TrackerStateError, match='window "b" is not open; open windows: "a"'):
        tracker.end_window("b")
    tracker.stop()
    with pytest.raises(TrackerStateError, match="not running"):
        tracker.end_window("a")


def test_codecarbon_tasks_are_windows(
    package: FakePowercap, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = tracker_on(package)
    tracker.start()
    tracker.start_task("load")
    package.advance("intel-rapl:0", 5_000_000)
    data = tracker.stop_task()
    assert data is not None and data.window == "load"
    assert uj(data.cpu_energy) == 5_000_000
    assert tracker.stop_task() is None
    assert "No active task to stop" in caplog.text
    tracker.start_task()
    (unnamed,) = tracker.open_windows
    assert unnamed.startswith("task-")
    tracker.stop()


def test_epochs_number_per_phase_and_write_rows(package: FakePowercap, tmp_path: Path) -> None:
    tracker = tracker_on(package, save_to_file=True, output_dir=str(tmp_path))
    energies = []
    for _ in range(2):
        with tracker.epoch() as train:
            package.advance("intel-rapl:0", 2_000_000)
            with tracker.epoch(phase="validation") as validation:
                package.advance("intel-rapl:0", 500_000)
        energies.append((uj(train.data.cpu_energy), uj(validation.data.cpu_energy)))
    with tracker.epoch(epoch=10):
        pass
    tracker.stop()
    assert energies == [(2_500_000, 500_000)] * 2
    with (tmp_path / "emissions.csv").open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["window"], r["epoch"], r["phase"]) for r in rows] == [
        ("validation-epoch-0", "0", "validation"),
        ("train-epoch-0", "0", "train"),
        ("validation-epoch-1", "1", "validation"),
        ("train-epoch-1", "1", "train"),
        ("train-epoch-10", "10", "train"),
        ("", "", ""),
    ]


def test_an_epoch_body_that_raises_still_writes_its_row(package: FakePowercap) -> None:
    tracker = tracker_on(package)
    with pytest.raises(KeyError), tracker.epoch() as window:
        package.advance("intel-rapl:0", 1_000_000)
        raise KeyError("boom")
    assert window.data is not None and uj(window.data.cpu_energy) == 1_000_000
    tracker.stop()


def test_sync_torch_is_accepted_and_other_values_are_refused(package: FakePowercap) -> None:
    pytest.importorskip("torch", reason="sync='torch' needs torch")
    tracker = tracker_on(package, sync="torch")
    with tracker.epoch() as window:
        package.advance("intel-rapl:0", 1_000)
    assert window.data is not None
    tracker.stop()
    with pytest.raises(InvalidValueError, match='sync="cuda"'):
        tracker_on(package, sync="cuda")
