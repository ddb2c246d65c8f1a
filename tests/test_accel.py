"""GPUs other than NVIDIA's through the public API: an Intel card on a fake hwmon tree."""

from __future__ import annotations

import csv
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from carbonmeter import EmissionsTracker
from carbonmeter.cli._common import summary
from tests.fixtures.hwmon import FakeHwmon


@pytest.fixture
def hwmon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHwmon:
    for variable in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CARBONMETER_NVML_LIBRARY"):
        monkeypatch.delenv(variable, raising=False)
    return FakeHwmon(tmp_path / "sys")


def settings(hwmon: FakeHwmon, tmp_path: Path) -> dict[str, object]:
    return {
        "hwmon_root": str(hwmon.root),
        "nvml_library": str(tmp_path / "no-libnvidia-ml.so.1"),
        "amdsmi_library": str(tmp_path / "no-libamd_smi.so"),
        "country_iso_code": "FRA",
        "output_dir": str(tmp_path),
    }


def test_an_intel_card_counts_its_card_channel(
    hwmon: FakeHwmon, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    card = hwmon.add_xe_card(card_uj=5_000_000, pkg_uj=1_000_000)
    caplog.set_level(logging.WARNING, logger="carbonmeter")
    with EmissionsTracker(**settings(hwmon, tmp_path)) as tracker:
        hwmon.set(card, "energy1_input", 5_000_000 + 36_000_000)
        hwmon.set(card, "energy2_input", 1_000_000 + 30_000_000)
    data = tracker.final_emissions_data
    assert data is not None
    # 36 J on the card counter, exactly: the pkg channel inside it is not added.
    assert data.gpu_energy == pytest.approx(1e-5, rel=1e-12)
    assert (data.gpu_count, data.gpu_model, data.gpu_method) == (1, "1 x Intel Arc B580", "counter")
    (device,) = json.loads(data.gpu_devices)
    assert (device["vendor"], device["name"], device["method"]) == (
        "intel",
        "Intel Arc B580",
        "counter",
    )
    assert device["uuid"] == "pci-0000:03:00.0"
    # The libraries named missing warn; the card's measurement gives none. Its embodied carbon
    # has no sourced figure (issue 30): one line names it.
    card_warnings = [r.getMessage() for r in caplog.records if "B580" in r.getMessage()]
    embodied = [message for message in card_warnings if "embodied carbon" in message]
    assert len(embodied) == 1
    assert [message for message in card_warnings if message not in embodied] == []


def test_a_card_with_neither_energy_nor_power_is_unmeasured_never_zero(
    hwmon: FakeHwmon, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hwmon.add_chip("xe", {"temp1_input": 40_000}, pci=("0000:03:00.0", "0x8086", "0xe20b"))
    caplog.set_level(logging.WARNING, logger="carbonmeter")
    with EmissionsTracker(**settings(hwmon, tmp_path)) as tracker:
        pass
    data = tracker.final_emissions_data
    assert data is not None
    assert data.gpu_method == "unmeasured"
    assert data.gpu_energy != data.gpu_energy  # NaN: unknown, not a measured 0
    assert data.energy_consumed == pytest.approx(data.cpu_energy + data.ram_energy)
    (device,) = json.loads(data.gpu_devices)
    assert (device["method"], device["energy_kwh"]) == ("unmeasured", None)
    unmeasured = [r.getMessage() for r in caplog.records if "reports neither" in r.getMessage()]
    assert len(unmeasured) == 1, unmeasured
    assert "Intel Arc B580" in unmeasured[0]
    with (tmp_path / "emissions.csv").open(encoding="utf-8", newline="") as file:
        (row,) = list(csv.DictReader(file))
    assert (row["gpu_method"], row["gpu_energy"], row["gpu_power"]) == ("unmeasured", "NaN", "NaN")
    assert "GPU unmeasured" in summary(data)
    csv_path = tmp_path / "emissions.csv"
    report = subprocess.run(
        [sys.executable, "-m", "carbonmeter.cli", "report", str(csv_path), "--format", "markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "GPU unmeasured" in report
    assert "GPUs found report neither energy nor power" in report


def test_bad_hwmon_root_measures_no_gpu_quietly(tmp_path: Path) -> None:
    with EmissionsTracker(
        hwmon_root=str(tmp_path / "missing"),
        nvml_library=str(tmp_path / "no-libnvidia-ml.so.1"),
        country_iso_code="FRA",
        save_to_file=False,
    ) as tracker:
        pass
    data = tracker.final_emissions_data
    assert data is not None
    assert data.gpu_method == "none"
