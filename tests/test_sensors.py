"""Sensors other than RAPL beside it: forced powers, the load model, process mode.

Figures are exact to the µJ (see `helpers.to_uj`).
"""

from __future__ import annotations

import math
import time

import pytest
from fixtures.powercap import FakePowercap
from helpers import assert_kwh, make_tracker

pytestmark = pytest.mark.usefixtures("isolated")


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
    time.sleep(0.02)  # over a tick of the CPU counters: a shorter run reads load_tdp_short
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
