"""End to end over a fake powercap tree: RAPL accounting (packages, DRAM, psys, PUE, wraps
and resets, zones that fail), and the property that the energy reported is the energy written.

Figures are exact to the µJ (see `helpers.to_uj`).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import threading
import time
from pathlib import Path

import pytest
from fixtures.powercap import (
    DEFAULT_RANGE_UJ,
    FakePowercap,
    add_two_socket_server,
    run_unprivileged,
)
from helpers import SERVER_ZONES, UJ_PER_KWH, assert_kwh, carbonmeter_messages, make_tracker, to_uj
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.usefixtures("isolated")


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
# Over a tick of the CPU time counters (10 ms): a shorter run's method reads load_tdp_short.
import time
time.sleep(0.02)
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
