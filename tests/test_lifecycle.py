"""A tracker's life: start, flush, stop, restart, misuse (twice, out of order), a tracker dropped
while running, and the context manager.

Figures are exact to the µJ (see `helpers.to_uj`).
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import pytest
from fixtures.powercap import FakePowercap
from helpers import assert_kwh, carbonmeter_messages, make_tracker, read_csv, to_uj

pytestmark = pytest.mark.usefixtures("isolated")


def test_flush_writes_cumulative_rows_and_stop_one_more(
    server: FakePowercap, tmp_path: Path
) -> None:
    tracker = make_tracker(server, save_to_file=True, output_dir=str(tmp_path))
    tracker.start()
    server.advance("intel-rapl:0", 1_000_000)
    first = tracker.flush()
    server.advance("intel-rapl:0", 2_000_000)
    second = tracker.flush()
    assert "running" in repr(tracker)
    assert tracker.final_emissions is None  # flush is not a stop
    server.advance("intel-rapl:0", 4_000_000)
    last = tracker.stop()
    assert "idle" in repr(tracker)

    _, rows = read_csv(tmp_path / "emissions.csv")
    assert len(rows) == 3
    assert len({row["run_id"] for row in rows}) == 1
    assert [to_uj(float(row["cpu_energy"])) for row in rows] == [
        1_000_000,
        3_000_000,
        7_000_000,
    ]
    assert [float(row["emissions"]) for row in rows] == [first, second, last]
    durations = [float(row["duration"]) for row in rows]
    assert durations == sorted(durations)


def test_flush_before_start_returns_none_and_logs_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = make_tracker(save_to_file=True, output_dir=str(tmp_path))
    assert tracker.flush() is None
    assert any("start" in m for m in carbonmeter_messages(caplog, logging.ERROR))
    assert not (tmp_path / "emissions.csv").exists()


def test_restart_after_stop_is_a_new_run(server: FakePowercap, tmp_path: Path) -> None:
    tracker = make_tracker(server, save_to_file=True, output_dir=str(tmp_path))
    tracker.start()
    server.advance("intel-rapl:0", 5_000_000)
    tracker.stop()
    server.advance("intel-rapl:0", 70_000_000)  # between runs: in neither
    tracker.start()
    server.advance("intel-rapl:0", 600_000)
    tracker.stop()
    _, rows = read_csv(tmp_path / "emissions.csv")
    assert len(rows) == 2
    assert rows[0]["run_id"] != rows[1]["run_id"]
    assert [to_uj(float(row["cpu_energy"])) for row in rows] == [5_000_000, 600_000]
    data = tracker.final_emissions_data
    assert data is not None
    assert data.run_id == rows[1]["run_id"]


def test_start_twice_warns_and_keeps_the_first_start(
    server: FakePowercap, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = make_tracker(server, save_to_file=True, output_dir=str(tmp_path))
    tracker.start()
    server.advance("intel-rapl:0", 1_000_000)
    tracker.start()
    server.advance("intel-rapl:0", 2_000_000)
    tracker.stop()
    assert any(
        "already started" in m.lower() for m in carbonmeter_messages(caplog, logging.WARNING)
    )
    _, rows = read_csv(tmp_path / "emissions.csv")
    [row] = rows
    assert to_uj(float(row["cpu_energy"])) == 3_000_000


def test_log_level_quiets_the_carbonmeter_logger(
    server: FakePowercap, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = make_tracker(server, log_level="error")
    assert logging.getLogger("carbonmeter").level == logging.ERROR
    tracker.start()
    tracker.start()
    tracker.stop()
    assert carbonmeter_messages(caplog, logging.WARNING) == []


def test_stop_before_start_warns_and_writes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = make_tracker(save_to_file=True, output_dir=str(tmp_path))
    assert tracker.stop() is None
    assert tracker.final_emissions_data is None
    assert any("started" in m for m in carbonmeter_messages(caplog, logging.WARNING))
    assert not (tmp_path / "emissions.csv").exists()


def test_second_stop_warns_returns_the_run_and_writes_no_row(
    server: FakePowercap, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = make_tracker(server, save_to_file=True, output_dir=str(tmp_path))
    tracker.start()
    server.advance("intel-rapl:0", 1_000_000)
    first = tracker.stop()
    caplog.clear()
    assert tracker.stop() == first
    assert any("stopped" in m for m in carbonmeter_messages(caplog, logging.WARNING))
    _, rows = read_csv(tmp_path / "emissions.csv")
    assert len(rows) == 1


def test_tracker_dropped_while_running_writes_its_row(server: FakePowercap, tmp_path: Path) -> None:
    tracker = make_tracker(server, save_to_file=True, output_dir=str(tmp_path))
    tracker.start()
    server.advance("intel-rapl:0", 9_000_000)
    del tracker
    gc.collect()
    _, rows = read_csv(tmp_path / "emissions.csv")
    [row] = rows
    assert to_uj(float(row["cpu_energy"])) == 9_000_000


def test_context_manager_writes_a_row(server: FakePowercap, tmp_path: Path) -> None:
    tracker = make_tracker(server, save_to_file=True, output_dir=str(tmp_path))
    with tracker as entered:
        assert entered is tracker
        server.advance("intel-rapl:0", 2_500_000)
    data = tracker.final_emissions_data
    assert data is not None
    assert_kwh(data.cpu_energy, 2_500_000)
    _, rows = read_csv(tmp_path / "emissions.csv")
    assert [row["run_id"] for row in rows] == [data.run_id]


def test_context_manager_writes_a_row_when_the_body_raises(
    server: FakePowercap, tmp_path: Path
) -> None:
    tracker = make_tracker(server, save_to_file=True, output_dir=str(tmp_path))
    error = RuntimeError("training diverged")
    with pytest.raises(RuntimeError) as raised, tracker:
        server.advance("intel-rapl:0", 700_000)
        raise error
    assert raised.value is error
    _, rows = read_csv(tmp_path / "emissions.csv")
    [row] = rows
    assert to_uj(float(row["cpu_energy"])) == 700_000
    assert "idle" in repr(tracker)
