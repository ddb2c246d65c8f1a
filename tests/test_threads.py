"""Trackers at once: two windows over one tree, and trackers flushing from threads into one file.

Figures are exact to the µJ (see `helpers.to_uj`).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fixtures.powercap import FakePowercap
from helpers import make_tracker, read_csv, to_uj

from carbonmeter import CSV_COLUMNS, EmissionsTracker

pytestmark = pytest.mark.usefixtures("isolated")


def test_two_trackers_at_once_each_write_their_window(server: FakePowercap, tmp_path: Path) -> None:
    first = make_tracker(server, save_to_file=True, output_dir=str(tmp_path), project_name="a")
    second = make_tracker(server, save_to_file=True, output_dir=str(tmp_path), project_name="b")
    first.start()
    server.advance("intel-rapl:0", 1_000_000)
    second.start()
    server.advance("intel-rapl:0", 20_000_000)
    first.stop()
    server.advance("intel-rapl:0", 300_000_000)
    second.stop()

    text = (tmp_path / "emissions.csv").read_text(encoding="utf-8")
    assert text.count("timestamp,project_name") == 1
    _, rows = read_csv(tmp_path / "emissions.csv")
    assert [row["project_name"] for row in rows] == ["a", "b"]
    assert rows[0]["run_id"] != rows[1]["run_id"]
    assert [to_uj(float(row["cpu_energy"])) for row in rows] == [21_000_000, 320_000_000]


def test_trackers_flushing_from_threads_never_tear_the_file(
    server: FakePowercap, tmp_path: Path
) -> None:
    trackers = [
        make_tracker(server, save_to_file=True, output_dir=str(tmp_path), project_name=f"t{i}")
        for i in range(4)
    ]

    def run(tracker: EmissionsTracker) -> None:
        tracker.start()
        for _ in range(15):
            tracker.flush()
        tracker.stop()

    threads = [threading.Thread(target=run, args=(tracker,)) for tracker in trackers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    header, rows = read_csv(tmp_path / "emissions.csv")
    assert header == CSV_COLUMNS
    assert len(rows) == 4 * 16
    assert all(len(row) == len(CSV_COLUMNS) and None not in row for row in rows)
    assert {row["project_name"] for row in rows} == {"t0", "t1", "t2", "t3"}
