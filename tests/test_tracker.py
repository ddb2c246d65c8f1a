"""End to end: the Python API over the Rust core, measuring a fake powercap tree.

Counters are advanced by known µJ between the tracker's reads (start, flush, stop, sampler ticks),
so every RAPL figure in a row is known exactly: 1 kWh = 3.6e12 µJ.
"""

from __future__ import annotations

import asyncio
import csv
import gc
import json
import logging
import math
import platform
import re
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fixtures.powercap import (
    DEFAULT_RANGE_UJ,
    FakePowercap,
    add_two_socket_server,
    run_unprivileged,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import carbonmeter
from carbonmeter import CSV_COLUMNS, EmissionsTracker, track_emissions

pytestmark = pytest.mark.usefixtures("isolated")

UJ_PER_KWH = 3.6e12
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CODECARBON_CSV = FIXTURES / "codecarbon_3.3.2_emissions.csv"
SERVER_ZONES = "package-0+dram-0+package-1+psys"


def to_uj(kwh: float, pue: float = 1.0) -> int:
    """kWh back to whole µJ: the core is exact to the µJ, so this gives back what was written."""
    return round(kwh / pue * UJ_PER_KWH)


def assert_kwh(kwh: float, energy_uj: int, pue: float = 1.0) -> None:
    assert to_uj(kwh, pue) == energy_uj
    assert math.isclose(kwh, energy_uj / UJ_PER_KWH * pue, rel_tol=1e-14, abs_tol=0.0)


def make_tracker(tree: FakePowercap | None = None, **kwargs: Any) -> EmissionsTracker:
    settings: dict[str, Any] = {
        "country_iso_code": "FRA",
        "save_to_file": False,
        "measure_power_secs": 60,
    }
    if tree is not None:
        settings["powercap_root"] = str(tree.root)
    settings.update(kwargs)
    return EmissionsTracker(**settings)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def carbonmeter_messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("carbonmeter") and record.levelno == level
    ]


# --- RAPL accounting ------------------------------------------------------------------------


def test_rapl_row_counts_packages_and_dram_exactly_and_psys_apart(server: FakePowercap) -> None:
    # package-1 sits just below its range: its advance wraps mid-run.
    server.set_energy("intel-rapl:1", DEFAULT_RANGE_UJ - 1_000)
    tracker = make_tracker(server)
    tracker.start()
    server.advance("intel-rapl:0", 123_456_789)
    server.advance("intel-rapl:1", 5_000_001)
    server.advance("intel-rapl:0:2", 7_654_321)
    server.advance("intel-rapl:2", 999_999_999)
    server.advance("intel-rapl-mmio:0", 50_000_000_000)  # a copy of package-0: never counted
    assert server.energy("intel-rapl:1") == 5_000_001 - 1_000
    emissions = tracker.stop()

    data = tracker.final_emissions_data
    assert data is not None
    assert_kwh(data.cpu_energy, 123_456_789 + 5_000_001)
    assert_kwh(data.ram_energy, 7_654_321)
    assert_kwh(data.psys_energy, 999_999_999)
    assert data.gpu_energy == 0.0
    assert math.isclose(data.energy_consumed, data.cpu_energy + data.ram_energy, rel_tol=1e-15)
    assert (data.cpu_method, data.ram_method, data.gpu_method) == ("rapl", "rapl", "none")
    assert data.rapl_zones == SERVER_ZONES
    assert emissions == data.emissions == tracker.final_emissions


def test_counters_advanced_by_a_thread_while_the_sampler_reads(server: FakePowercap) -> None:
    server.set_energy("intel-rapl:0", DEFAULT_RANGE_UJ - 10_000_000)  # wraps during the run
    tracker = make_tracker(server, measure_power_secs=0.002)
    steps = [(1_000_000 + 7_919 * i, 300_000 + 13 * i) for i in range(40)]

    def work() -> None:
        for package_uj, dram_uj in steps:
            server.advance("intel-rapl:0", package_uj)
            server.advance("intel-rapl:1", 2 * package_uj)
            server.advance("intel-rapl:0:2", dram_uj)
            time.sleep(0.001)

    tracker.start()
    writer = threading.Thread(target=work)
    writer.start()
    writer.join()
    tracker.stop()

    data = tracker.final_emissions_data
    assert data is not None
    assert server.energy("intel-rapl:0") < DEFAULT_RANGE_UJ - 10_000_000, "meant to wrap"
    assert_kwh(data.cpu_energy, 3 * sum(package for package, _ in steps))
    assert_kwh(data.ram_energy, sum(dram for _, dram in steps))


def test_mmio_zone_alone_is_the_package(powercap: FakePowercap) -> None:
    powercap.add_zone("intel-rapl-mmio:0", "package-0", energy_uj=10)
    tracker = make_tracker(powercap)
    tracker.start()
    powercap.advance("intel-rapl-mmio:0", 4_000_000)
    tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    assert (data.cpu_method, data.rapl_zones) == ("rapl", "package-0")
    assert_kwh(data.cpu_energy, 4_000_000)


def test_rapl_include_dram_false_models_ram(server: FakePowercap) -> None:
    tracker = make_tracker(server, rapl_include_dram=False)
    tracker.start()
    server.advance("intel-rapl:0", 1_000_000)
    server.advance("intel-rapl:0:2", 9_000_000_000)
    tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    assert (data.cpu_method, data.ram_method) == ("rapl", "model")
    assert data.rapl_zones == "package-0+package-1+psys"
    assert_kwh(data.cpu_energy, 1_000_000)
    assert to_uj(data.ram_energy) != 9_000_000_000


def test_rapl_prefer_psys_takes_cpu_energy_from_psys(server: FakePowercap) -> None:
    tracker = make_tracker(server, rapl_prefer_psys=True)
    tracker.start()
    server.advance("intel-rapl:0", 1_000_000)
    server.advance("intel-rapl:1", 2_000_000)
    server.advance("intel-rapl:2", 30_000_000)
    server.advance("intel-rapl:0:2", 400_000)
    tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    # psys covers the whole platform, memory included: dram is not added beside it.
    assert (data.cpu_method, data.ram_method) == ("rapl", "in_cpu")
    assert data.rapl_zones == "psys"
    assert_kwh(data.cpu_energy, 30_000_000)
    assert data.ram_energy == 0
    assert_kwh(data.energy_consumed, 30_000_000)


def test_rapl_prefer_psys_without_psys_uses_the_packages(powercap: FakePowercap) -> None:
    powercap.add_zone("intel-rapl:0", "package-0")
    tracker = make_tracker(powercap, rapl_prefer_psys=True)
    tracker.start()
    powercap.advance("intel-rapl:0", 8_000_000)
    tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    assert (data.cpu_method, data.rapl_zones) == ("rapl", "package-0")
    assert_kwh(data.cpu_energy, 8_000_000)


def test_pue_multiplies_every_component_energy_and_power(server: FakePowercap) -> None:
    tracker = make_tracker(server, pue=1.5)
    tracker.start()
    server.advance("intel-rapl:0", 60_000_000)
    server.advance("intel-rapl:0:2", 6_000_000)
    tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    assert data.pue == 1.5
    assert_kwh(data.cpu_energy, 60_000_000, pue=1.5)
    assert_kwh(data.ram_energy, 6_000_000, pue=1.5)
    assert math.isclose(data.energy_consumed, 66_000_000 * 1.5 / UJ_PER_KWH, rel_tol=1e-14)
    assert math.isclose(data.cpu_power, 60.0 * 1.5 / data.duration, rel_tol=1e-12)
    assert math.isclose(data.ram_power, 6.0 * 1.5 / data.duration, rel_tol=1e-12)


def test_counter_drop_beyond_peak_power_is_a_reset_not_a_wrap(powercap: FakePowercap) -> None:
    # 100 W peak: a wrap from the middle of the range would be ~131 kJ in well under a second.
    powercap.add_zone(
        "intel-rapl:0", "package-0", energy_uj=DEFAULT_RANGE_UJ // 2, max_power_uw=100_000_000
    )
    tracker = make_tracker(powercap)
    tracker.start()
    powercap.advance("intel-rapl:0", 2_000_000)
    tracker.flush()
    powercap.set_energy("intel-rapl:0", 1_000)  # driver reload: the counter restarts from zero
    tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    assert_kwh(data.cpu_energy, 2_000_000 + 1_000)


def test_wrap_within_peak_power_is_counted(powercap: FakePowercap) -> None:
    powercap.add_zone(
        "intel-rapl:0",
        "package-0",
        energy_uj=DEFAULT_RANGE_UJ - 40_000_000,
        max_power_uw=100_000_000,
    )
    tracker = make_tracker(powercap)
    tracker.start()
    powercap.advance("intel-rapl:0", 50_000_000)
    tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    assert_kwh(data.cpu_energy, 50_000_000)


def test_zone_that_stops_answering_keeps_its_energy_and_warns_once(
    server: FakePowercap, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = make_tracker(server)
    tracker.start()
    server.advance("intel-rapl:0", 1_000_000)
    server.advance("intel-rapl:1", 2_000_000)
    tracker.flush()
    server.remove_counter("intel-rapl:1")
    server.advance("intel-rapl:0", 3_000_000)
    tracker.flush()
    server.advance("intel-rapl:0", 4_000_000)
    tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    assert_kwh(data.cpu_energy, 1_000_000 + 2_000_000 + 3_000_000 + 4_000_000)
    about_package_1 = [m for m in carbonmeter_messages(caplog, logging.WARNING) if "package-1" in m]
    assert len(about_package_1) == 1, about_package_1


UNREADABLE_SCRIPT = """
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append((record.name, record.levelname, record.getMessage()))
logging.getLogger().addHandler(Keep())
tracker = carbonmeter.EmissionsTracker(
    save_to_file=False, country_iso_code="FRA", default_cpu_power=50, powercap_root=POWERCAP_ROOT
)
tracker.start()
tracker.stop()
data = tracker.final_emissions_data
print(json.dumps({"row": data.as_dict(), "records": records}))
"""


@pytest.mark.parametrize("readable", [True, False], ids=["readable", "root-only"])
def test_unreadable_rapl_falls_back_to_the_load_model_with_a_fix_it_warning(
    public_powercap: FakePowercap, readable: bool
) -> None:
    add_two_socket_server(public_powercap)
    if not readable:
        public_powercap.make_unreadable("intel-rapl:1")
    result = run_unprivileged(
        UNREADABLE_SCRIPT.replace("POWERCAP_ROOT", repr(str(public_powercap.root))),
        cwd=public_powercap.root.parent,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    row, records = report["row"], report["records"]
    warnings = [message for name, level, message in records if level == "WARNING"]
    if readable:
        assert (row["cpu_method"], row["rapl_zones"]) == ("rapl", SERVER_ZONES)
        assert not [w for w in warnings if "cannot be read" in w]
        return
    assert (row["cpu_method"], row["ram_method"]) == ("load_tdp", "model")
    assert row["rapl_zones"] == ""
    [warning] = [w for w in warnings if "cannot be read" in w]
    assert str(public_powercap.zone_dir("intel-rapl:1") / "energy_uj") in warning
    assert "chmod" in warning


# --- Rows: columns, units, one per flush/stop -------------------------------------------------


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


def test_tracker_dropped_while_running_writes_its_row(server: FakePowercap, tmp_path: Path) -> None:
    tracker = make_tracker(server, save_to_file=True, output_dir=str(tmp_path))
    tracker.start()
    server.advance("intel-rapl:0", 9_000_000)
    del tracker
    gc.collect()
    _, rows = read_csv(tmp_path / "emissions.csv")
    [row] = rows
    assert to_uj(float(row["cpu_energy"])) == 9_000_000


# --- Context manager and decorator ------------------------------------------------------------


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


def test_bare_decorator_writes_to_the_working_folder(
    server: FakePowercap, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARBONMETER_POWERCAP_ROOT", str(server.root))

    @track_emissions
    def train(steps: int) -> str:
        server.advance("intel-rapl:0", steps)
        return "done"

    assert train.__name__ == "train"
    assert train(1_100_000) == "done"
    _, rows = read_csv(isolated / "emissions.csv")
    [row] = rows
    assert row["cpu_method"] == "rapl"
    assert to_uj(float(row["cpu_energy"])) == 1_100_000
    assert row["intensity_source"].startswith("world average")


def test_decorator_with_arguments_measures_each_call(server: FakePowercap, tmp_path: Path) -> None:
    @track_emissions(
        project_name="decorated",
        output_dir=str(tmp_path),
        country_iso_code="DEU",
        powercap_root=str(server.root),
    )
    def step(energy_uj: int) -> int:
        server.advance("intel-rapl:0", energy_uj)
        return energy_uj

    assert step(1_000) == 1_000
    assert step(20_000) == 20_000
    _, rows = read_csv(tmp_path / "emissions.csv")
    assert [row["project_name"] for row in rows] == ["decorated", "decorated"]
    assert [row["country_iso_code"] for row in rows] == ["DEU", "DEU"]
    assert rows[0]["run_id"] != rows[1]["run_id"]
    assert [to_uj(float(row["cpu_energy"])) for row in rows] == [1_000, 20_000]


def test_decorator_writes_a_row_when_the_function_raises(tmp_path: Path) -> None:
    @track_emissions(output_dir=str(tmp_path), offline=True, country_iso_code="FRA")
    def fails() -> None:
        raise KeyError("missing batch")

    with pytest.raises(KeyError, match="missing batch"):
        fails()
    _, rows = read_csv(tmp_path / "emissions.csv")
    [row] = rows
    assert row["country_iso_code"] == "FRA"


def test_decorator_measures_a_coroutine_until_it_finishes(
    server: FakePowercap, tmp_path: Path
) -> None:
    @track_emissions(
        output_dir=str(tmp_path), country_iso_code="FRA", powercap_root=str(server.root)
    )
    async def fetch() -> str:
        await asyncio.sleep(0.01)
        server.advance("intel-rapl:0", 3_300_000)
        return "fetched"

    assert asyncio.run(fetch()) == "fetched"
    _, rows = read_csv(tmp_path / "emissions.csv")
    [row] = rows
    assert to_uj(float(row["cpu_energy"])) == 3_300_000
    assert float(row["duration"]) >= 0.01


# --- Other sensors ----------------------------------------------------------------------------


def test_forced_powers_are_constant_methods(server: FakePowercap) -> None:
    tracker = make_tracker(server, force_cpu_power=40, force_ram_power=10)
    tracker.start()
    server.advance("intel-rapl:0", 999_000_000)
    time.sleep(0.05)
    tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    assert (data.cpu_method, data.ram_method) == ("constant", "constant")
    assert data.rapl_zones == ""
    assert math.isclose(data.cpu_power, 40.0, rel_tol=1e-9)
    assert math.isclose(data.ram_power, 10.0, rel_tol=1e-9)
    assert math.isclose(data.cpu_energy, 40.0 * data.duration / 3.6e6, rel_tol=1e-9)
    assert math.isclose(data.ram_energy, 10.0 * data.duration / 3.6e6, rel_tol=1e-9)


def test_forced_cpu_power_keeps_rapl_dram(server: FakePowercap) -> None:
    tracker = make_tracker(server, force_cpu_power=25.5)
    tracker.start()
    server.advance("intel-rapl:0:2", 4_400_000)
    tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    assert (data.cpu_method, data.ram_method) == ("constant", "rapl")
    assert data.rapl_zones == "dram-0+psys"
    assert_kwh(data.ram_energy, 4_400_000)
    assert math.isclose(data.cpu_power, 25.5, rel_tol=1e-9)


def test_force_mode_cpu_load_uses_the_load_model_beside_rapl_dram(server: FakePowercap) -> None:
    tracker = make_tracker(server, force_mode_cpu_load=True, default_cpu_power=120)
    tracker.start()
    server.advance("intel-rapl:0", 10**9)
    server.advance("intel-rapl:0:2", 5_000)
    tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    assert (data.cpu_method, data.ram_method) == ("load_tdp", "rapl")
    assert_kwh(data.ram_energy, 5_000)


def test_process_mode_uses_the_models_consistently(server: FakePowercap) -> None:
    tracker = make_tracker(server, tracking_mode="process", default_cpu_power=64)
    tracker.start()
    server.advance("intel-rapl:0", 10**9)
    deadline = time.perf_counter() + 0.05
    while time.perf_counter() < deadline:
        sum(range(1000))
    tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    assert data.tracking_mode == "process"
    assert (data.cpu_method, data.ram_method) == ("load_tdp", "model")
    assert (data.rapl_zones, data.psys_energy) == ("", 0.0)
    assert 0 <= data.cpu_utilization_percent <= 100
    # The load model and the utilisation column read the same samples: they agree.
    assert math.isclose(
        data.cpu_power, 64 * data.cpu_utilization_percent / 100, rel_tol=1e-9, abs_tol=1e-12
    )
    assert data.ram_used_gb > 0
    assert math.isclose(data.ram_power, data.ram_used_gb * 3 / 8, rel_tol=1e-9)


# --- Settings layers ----------------------------------------------------------------------------


def test_settings_from_environment_variables(
    server: FakePowercap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODECARBON_PROJECT_NAME", "from-codecarbon-env")
    monkeypatch.setenv("CODECARBON_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setenv("CODECARBON_COUNTRY_ISO_CODE", "SWE")
    monkeypatch.setenv("CARBONMETER_PUE", "1.25")
    monkeypatch.setenv("CARBONMETER_POWERCAP_ROOT", str(server.root))
    monkeypatch.setenv("CODECARBON_ON_CSV_WRITE", "update")
    tracker = EmissionsTracker()
    assert (tracker.project_name, tracker.country_iso_code) == ("from-codecarbon-env", "SWE")
    tracker.start()
    server.advance("intel-rapl:0", 8_000_000)
    tracker.flush()
    tracker.stop()
    _, rows = read_csv(tmp_path / "emissions.csv")
    [row] = rows  # update mode
    assert row["project_name"] == "from-codecarbon-env"
    assert row["country_iso_code"] == "SWE"
    assert float(row["pue"]) == 1.25
    assert to_uj(float(row["cpu_energy"]), pue=1.25) == 8_000_000


def test_kwarg_beats_carbonmeter_env_beats_codecarbon_env(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="carbonmeter")
    monkeypatch.setenv("CODECARBON_PROJECT_NAME", "codecarbon-env")
    assert make_tracker().project_name == "codecarbon-env"
    monkeypatch.setenv("CARBONMETER_PROJECT_NAME", "carbonmeter-env")
    assert make_tracker().project_name == "carbonmeter-env"
    assert any("CARBONMETER_PROJECT_NAME" in m for m in carbonmeter_messages(caplog, logging.DEBUG))
    assert make_tracker(project_name="kwarg").project_name == "kwarg"
    monkeypatch.setenv("CARBONMETER_SAVE_TO_FILE", "no")
    assert EmissionsTracker(country_iso_code="FRA").output_path is None


def test_settings_from_codecarbon_config_in_the_working_folder(
    server: FakePowercap, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARBONMETER_POWERCAP_ROOT")  # the environment would beat the file
    out = tmp_path / "out"
    out.mkdir()
    (isolated / ".codecarbon.config").write_text(
        "[other]\nproject_name = not-this-section\n\n"
        "[codecarbon]\n"
        "# a comment\n"
        "project_name = from-file\n"
        f"output_dir = {out}\n"
        "country_iso_code: NOR\n"
        "pue = 1.1\n"
        f"powercap_root = {server.root}\n",
        encoding="utf-8",
    )
    tracker = EmissionsTracker()
    assert (tracker.project_name, tracker.country_iso_code) == ("from-file", "NOR")
    tracker.start()
    server.advance("intel-rapl:0", 1_000_000)
    tracker.stop()
    _, rows = read_csv(out / "emissions.csv")
    [row] = rows
    assert float(row["pue"]) == 1.1
    assert to_uj(float(row["cpu_energy"]), pue=1.1) == 1_000_000

    monkeypatch.setenv("CODECARBON_PROJECT_NAME", "env-wins")
    assert EmissionsTracker(save_to_file=False).project_name == "env-wins"


def test_home_config_applies_below_the_working_folder_config(
    isolated: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / ".codecarbon.config").write_text(
        "[carbonmeter]\nproject_name = from-home\nexperiment_name = home-experiment\n"
        "country_iso_code = ESP\nsave_to_file = false\n",
        encoding="utf-8",
    )
    assert EmissionsTracker().project_name == "from-home"
    (isolated / ".codecarbon.config").write_text(
        "[codecarbon]\nproject_name = from-cwd\n", encoding="utf-8"
    )
    tracker = EmissionsTracker()
    assert (tracker.project_name, tracker.country_iso_code) == ("from-cwd", "ESP")
    assert tracker.output_path is None


def test_unreadable_config_file_is_ignored_as_in_codecarbon(
    public_powercap: FakePowercap,
) -> None:
    """CodeCarbon reads its config files with configparser, which skips files it cannot open.

    A job whose HOME holds a `.codecarbon.config` it may not read must still be measured.
    """
    home = public_powercap.root.parent / "home"
    home.mkdir(mode=0o755)
    config = home / ".codecarbon.config"
    config.write_text("[codecarbon]\nproject_name = secret\n", encoding="utf-8")
    config.chmod(0o000)
    result = run_unprivileged(
        "tracker = carbonmeter.EmissionsTracker(save_to_file=False, country_iso_code='FRA')\n"
        "print(tracker.project_name)\n",
        cwd=public_powercap.root.parent,
        env={"HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "codecarbon"


# --- Property: the energy reported is the energy written -------------------------------------

RANGES = {"intel-rapl:0": DEFAULT_RANGE_UJ, "intel-rapl:1": 1_000_003, "intel-rapl:0:2": 2**32}


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    starts=st.tuples(*(st.integers(0, limit - 1) for limit in RANGES.values())),
    steps=st.lists(
        st.tuples(*(st.integers(0, limit - 1) for limit in RANGES.values())), max_size=12
    ),
)
def test_reported_energy_is_the_sum_written(
    starts: tuple[int, int, int], steps: list[tuple[int, int, int]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        tree = FakePowercap(Path(folder))
        names = {"intel-rapl:0": "package-0", "intel-rapl:1": "package-1"}
        for (zone, limit), start in zip(RANGES.items(), starts, strict=True):
            # A zone that could draw its whole range in a second: any one step is plausible.
            tree.add_zone(
                zone, names.get(zone, "dram"), start, max_energy_range_uj=limit, max_power_uw=limit
            )
        tracker = make_tracker(tree)
        tracker.start()
        unread = dict.fromkeys(RANGES, 0)
        for step in steps:
            # Between two reads a counter may wrap once, never twice: read before it could.
            if any(unread[z] + d >= RANGES[z] for z, d in zip(RANGES, step, strict=True)):
                tracker.flush()
                unread = dict.fromkeys(RANGES, 0)
            for zone, delta in zip(RANGES, step, strict=True):
                tree.advance(zone, delta)
                unread[zone] += delta
        tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    assert to_uj(data.cpu_energy) == sum(s[0] + s[1] for s in steps)
    assert to_uj(data.ram_energy) == sum(s[2] for s in steps)


def sampler_wakeups() -> int:
    """Times the process's sampler thread has been scheduled (`schedstat`'s third field)."""
    for task in Path("/proc/self/task").iterdir():
        try:
            if (task / "comm").read_text().strip() == "carbonmeter-sam":
                return int((task / "schedstat").read_text().split()[2])
        except OSError:
            continue
    return 0


@pytest.mark.parametrize(
    ("zone_kwargs", "tracker_kwargs", "wakeups"),
    [
        # Counters only, a wrap decades away: no tick at measure_power_secs.
        ({}, {}, range(0, 4)),
        # Counters only, a wrap every 0.2 s at the zone's peak: a tick every 0.1 s.
        ({"max_energy_range_uj": 2_000_000, "max_power_uw": 10_000_000}, {}, range(2, 8)),
        # A modelled CPU beside the counter: a tick every measure_power_secs, as before.
        ({}, {"force_cpu_power": 30}, range(15, 80)),
    ],
    ids=["counters", "counters-wrapping", "modelled-cpu"],
)
def test_a_run_of_counters_ticks_only_to_catch_a_wrap(
    powercap: FakePowercap,
    zone_kwargs: dict[str, int],
    tracker_kwargs: dict[str, Any],
    wakeups: range,
) -> None:
    powercap.add_zone("intel-rapl:0", "package-0", energy_uj=1_000_000, **zone_kwargs)
    powercap.add_zone("intel-rapl:0:0", "dram", energy_uj=1_000_000, **zone_kwargs)
    tracker = EmissionsTracker(
        powercap_root=str(powercap.root),
        save_to_file=False,
        country_iso_code="FRA",
        measure_power_secs=0.01,
        **tracker_kwargs,
    )
    tracker.start()
    before = sampler_wakeups()
    time.sleep(0.4)
    woken = sampler_wakeups() - before
    tracker.stop()
    assert woken in wakeups
    data = tracker.final_emissions_data
    assert data is not None and data.ram_method == "rapl"
