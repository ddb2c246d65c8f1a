"""Apple Silicon (IOReport) and Windows (EMI) through the public API, on stand-in libraries built
from `tests/fixtures/` whose energies follow the clock: a tracker run reads the scripted powers."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from helpers import build_stand_in

from carbonmeter import EmissionsTracker, InvalidValueError


@pytest.fixture(scope="module")
def ioreport_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`CPU Energy` 5 W and `GPU Energy` 12 W, counted from when the subscription is made."""
    folder = tmp_path_factory.mktemp("ioreport")
    return build_stand_in("fake_ioreport.c", folder, "-DCHIP=0", "-DCLOCKED")


@pytest.fixture(scope="module")
def emi_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two interfaces mirroring one meter: package 10 W, DRAM 2 W, counted from the open."""
    folder = tmp_path_factory.mktemp("emi")
    return build_stand_in("fake_emi.c", folder, "-DCLOCKED")


def settings(isolated: Path, **more: object) -> dict[str, object]:
    """Only the stand-in under test measures: no GPU library, an empty hwmon tree."""
    (isolated / "hwmon").mkdir(exist_ok=True)
    return {
        "nvml_library": str(isolated / "no-libnvidia-ml.so.1"),
        "amdsmi_library": str(isolated / "no-libamd_smi.so"),
        "hwmon_root": str(isolated / "hwmon"),
        "country_iso_code": "FRA",
        "save_to_file": False,
        **more,
    }


def run_for(seconds: float, **kwargs: object) -> object:
    with EmissionsTracker(**kwargs) as tracker:
        time.sleep(seconds)
    data = tracker.final_emissions_data
    assert data is not None
    return data


def test_an_apple_run_reads_5_w_of_cpu_and_12_w_of_gpu(
    isolated: Path, ioreport_library: Path
) -> None:
    data = run_for(0.5, **settings(isolated, ioreport_library=str(ioreport_library)))
    assert (data.cpu_method, data.gpu_method) == ("ioreport", "counter")
    # The stand-in's clock and the tracker's are read a few µs apart at each edge.
    assert data.cpu_power == pytest.approx(5.0, rel=0.01)
    assert data.gpu_power == pytest.approx(12.0, rel=0.01)
    (device,) = json.loads(data.gpu_devices)
    assert (device["vendor"], device["method"]) == ("apple", "counter")


def test_a_windows_run_reads_the_package_and_dram_once(isolated: Path, emi_library: Path) -> None:
    data = run_for(0.5, **settings(isolated, emi_library=str(emi_library)))
    assert (data.cpu_method, data.ram_method) == ("emi", "emi")
    # 10 W, not 20: the second interface mirrors the first; PP0 and PP1 are inside the package.
    assert data.cpu_power == pytest.approx(10.0, rel=0.01)
    assert data.ram_power == pytest.approx(2.0, rel=0.01)


@pytest.mark.parametrize("setting", ["ioreport_library", "emi_library"])
def test_a_config_file_another_user_can_write_may_not_name_a_platform_library(
    isolated: Path, ioreport_library: Path, setting: str
) -> None:
    config = isolated / ".codecarbon.config"
    config.write_text(f"[codecarbon]\n{setting} = {ioreport_library}\n", encoding="utf-8")
    os.chmod(config, 0o666)
    with pytest.raises(InvalidValueError, match=setting):
        tracker = EmissionsTracker(**settings(isolated))
        tracker.start()
        tracker.stop()
