"""GPUs through the public API, on the stand-in NVML library (tests/fixtures/fake_nvml.c)."""

from __future__ import annotations

import csv
import ctypes.util
import json
import logging
import math
import os
import time
from pathlib import Path

import pytest
from fixtures.nvml import NAME, FakeNvml, devices, uuid
from helpers import eventually

import carbonmeter
from carbonmeter import EmissionsTracker


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("carbonmeter") and record.levelno >= logging.WARNING
    ]


def test_gpu_ids_just_work(fake_nvml: FakeNvml) -> None:
    fake_nvml.set(devices(2, e0="energy 0 1000", e1="energy 1 5000", u0="util 0 60 5"))
    tracker = EmissionsTracker(
        gpu_ids=[0],
        nvml_library=str(fake_nvml.library),
        country_iso_code="FRA",
        save_to_file=False,
    )
    tracker.start()
    fake_nvml.set(devices(2, e0="energy 0 3601000", e1="energy 1 9999999", u0="util 0 60 5"))
    tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    assert data.gpu_energy == pytest.approx(0.001, rel=1e-12)
    assert data.gpu_count == 1
    assert data.gpu_model == f"1 x {NAME}"
    assert data.gpu_method == "counter"
    assert data.gpu_utilization_percent == pytest.approx(60.0)
    assert data.gpu_power == pytest.approx(3600.0 / data.duration, rel=1e-9)
    assert json.loads(data.gpu_devices) == [
        {
            "vendor": "nvidia",
            "index": 0,
            "uuid": uuid(0),
            "name": NAME,
            "energy_kwh": pytest.approx(0.001, rel=1e-12),
            "method": "counter",
        }
    ]
    assert 'gpu="counter"' in repr(tracker)


def test_polled_power_from_the_environment_library_setting(
    fake_nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARBONMETER_NVML_LIBRARY", str(fake_nvml.library))
    fake_nvml.set(devices(1, e="energy_error 0 3", p="power 0 200000"))
    with EmissionsTracker(
        country_iso_code="FRA", save_to_file=False, gpu_poll_secs=0.05
    ) as tracker:
        # Long enough that 1 % of it (6 ms) covers a loaded machine's thread wake-ups.
        time.sleep(0.6)
    data = tracker.final_emissions_data
    assert data is not None
    assert data.gpu_method == "polled"
    # The GPUs are stamped at their own read, a fraction of a millisecond after the window's edge.
    assert data.gpu_power == pytest.approx(200.0, rel=1e-2)
    assert data.gpu_energy == pytest.approx(200.0 * data.duration / 3.6e6, rel=1e-2)


def test_empty_cuda_visible_devices_means_no_gpu_and_no_warning(
    fake_nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake_nvml.set(devices(2, e0="energy 0 1", e1="energy 1 1"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    caplog.set_level(logging.DEBUG, logger="carbonmeter")
    with EmissionsTracker(
        nvml_library=str(fake_nvml.library), country_iso_code="FRA", save_to_file=False
    ) as tracker:
        pass
    data = tracker.final_emissions_data
    assert data is not None
    assert (data.gpu_count, data.gpu_model, data.gpu_method) == (0, "", "none")
    assert data.gpu_devices == "[]"
    assert warnings_of(caplog) == []


def test_cuda_visible_devices_with_a_mig_instance_warns_once(
    fake_nvml: FakeNvml,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mig = f"MIG-{tmp_path.name[-8:]:0>8}-1111-5a1b-9c2d-aaaabbbbcccc"
    fake_nvml.set(devices(4, m="mig 2 1", u=f"mig_uuid 2 {mig}", e="energy 2 7"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", mig)
    caplog.set_level(logging.WARNING, logger="carbonmeter")
    with EmissionsTracker(
        nvml_library=str(fake_nvml.library), country_iso_code="FRA", save_to_file=False
    ) as tracker:
        pass
    data = tracker.final_emissions_data
    assert data is not None
    assert data.gpu_count == 1
    assert [d["index"] for d in json.loads(data.gpu_devices)] == [2]
    mig_warnings = [w for w in warnings_of(caplog) if "is a MIG instance" in w]
    assert len(mig_warnings) == 1, warnings_of(caplog)
    assert mig in mig_warnings[0]


def test_a_missing_named_library_is_one_warning_and_no_gpu(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "libnvidia-ml.so.1"
    caplog.set_level(logging.WARNING, logger="carbonmeter")
    with EmissionsTracker(
        nvml_library=str(missing), country_iso_code="FRA", save_to_file=False
    ) as tracker:
        pass
    data = tracker.final_emissions_data
    assert data is not None
    assert data.gpu_method == "none"
    assert len([w for w in warnings_of(caplog) if str(missing) in w]) == 1


@pytest.mark.skipif(
    ctypes.util.find_library("nvidia-ml") is not None, reason="this machine has an NVIDIA driver"
)
def test_no_driver_is_quiet(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("CARBONMETER_NVML_LIBRARY", raising=False)
    caplog.set_level(logging.WARNING, logger="carbonmeter")
    with EmissionsTracker(country_iso_code="FRA", save_to_file=False) as tracker:
        pass
    data = tracker.final_emissions_data
    assert data is not None
    assert (data.gpu_count, data.gpu_method) == (0, "none")
    assert not [w for w in warnings_of(caplog) if "NVML" in w or "GPU" in w]


def test_process_mode_counts_only_gpus_running_this_process(fake_nvml: FakeNvml) -> None:
    pid = os.getpid()
    before = devices(3, e0="energy 0 0", e1="energy 1 0", e2="energy 2 0", p=f"procs 1 {pid}")
    fake_nvml.set(before)
    tracker = EmissionsTracker(
        tracking_mode="process",
        nvml_library=str(fake_nvml.library),
        country_iso_code="FRA",
        save_to_file=False,
    )
    tracker.start()
    fake_nvml.set(
        before.replace("energy 1 0", "energy 1 3600000").replace("energy 2 0", "energy 2 99")
    )
    tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    assert data.gpu_count == 1
    assert data.gpu_energy == pytest.approx(0.001, rel=1e-12)
    methods = [d["method"] for d in json.loads(data.gpu_devices)]
    assert methods == ["none", "counter", "none"]


def test_csv_has_the_gpu_breakdown(fake_nvml: FakeNvml, tmp_path: Path) -> None:
    fake_nvml.set(devices(1, e="energy 0 0"))
    with EmissionsTracker(
        nvml_library=str(fake_nvml.library), country_iso_code="FRA", output_dir=str(tmp_path)
    ):
        pass
    with (tmp_path / "emissions.csv").open(encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    assert reader.fieldnames is not None
    assert list(reader.fieldnames) == list(carbonmeter.CSV_COLUMNS)
    assert "gpu_devices" in reader.fieldnames
    assert json.loads(rows[0]["gpu_devices"])[0]["uuid"] == uuid(0)
    assert rows[0]["gpu_method"] == "counter"


@pytest.mark.parametrize("seconds", [0, -1, 11, "fast"])
def test_bad_gpu_poll_secs_is_refused(seconds: object) -> None:
    with pytest.raises(carbonmeter.InvalidValueError, match="gpu_poll_secs"):
        EmissionsTracker(gpu_poll_secs=seconds, save_to_file=False)


def test_a_board_answering_not_supported_is_unmeasured_with_one_warning(
    fake_nvml: FakeNvml, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Jetson Orin, DGX Spark / GB10: NVML initialises, power and energy answer NotSupported.
    fake_nvml.set(devices(1, e="energy_error 0 3", p="power_error 0 3"))
    caplog.set_level(logging.WARNING, logger="carbonmeter")
    with EmissionsTracker(
        nvml_library=str(fake_nvml.library),
        hwmon_root=str(tmp_path / "no-hwmon"),
        country_iso_code="FRA",
        save_to_file=False,
    ) as tracker:
        pass
    data = tracker.final_emissions_data
    assert data is not None
    assert data.gpu_method == "unmeasured"
    assert math.isnan(data.gpu_energy) and math.isnan(data.gpu_power)
    (device,) = json.loads(data.gpu_devices)
    assert (device["vendor"], device["method"], device["energy_kwh"]) == (
        "nvidia",
        "unmeasured",
        None,
    )
    unmeasured = [w for w in warnings_of(caplog) if "reports neither energy nor power" in w]
    assert len(unmeasured) == 1, unmeasured
    assert unmeasured[0].endswith(
        f"nvidia GPU 0 ({NAME}) reports neither energy nor power: not measured; its rows say "
        "gpu_method=unmeasured and its energy is left out, not counted as 0"
    )


def test_a_blocking_nvml_call_stalls_no_edge_and_no_stop(
    fake_nvml: FakeNvml, caplog: pytest.LogCaptureFixture
) -> None:
    """A call that blocks (a GPU off the bus) costs an edge or stop() the edge deadline: each
    returns while the call still blocks, a minute before it would end by itself."""
    fake_nvml.set(devices(1, e0="energy 0 1000"))
    tracker = EmissionsTracker(
        nvml_library=str(fake_nvml.library),
        country_iso_code="FRA",
        save_to_file=False,
        measure_power_secs=0.05,
    )
    tracker.start()
    fake_nvml.set(devices(1, e0="energy 0 1000", b0="block 0 60"))
    try:
        # The sampler enters the blocking call, so the edges meet a held meter too.
        eventually(fake_nvml.blocking.exists, "the sampler to enter the blocking call")
        for number in range(3):
            with tracker.epoch(number):
                pass
            assert fake_nvml.blocking.exists(), "an epoch's edges waited for the blocking call"
        tracker.stop()
        assert fake_nvml.blocking.exists(), "stop() waited for the blocking call"
    finally:
        # Ends the blocking calls now, so no later test meets a stuck sampler.
        fake_nvml.set(devices(1, e0="energy 0 1000"))
        eventually(lambda: not fake_nvml.blocking.exists(), "the blocking calls to end")
    stuck = [m for m in warnings_of(caplog) if "did not finish within" in m]
    assert len(stuck) == 1, warnings_of(caplog)
    assert tracker.final_emissions_data is not None


def test_a_read_stuck_for_one_run_holds_up_no_other_runs_edges(fake_nvml: FakeNvml) -> None:
    """Runs share the process's edge thread; another thread takes over while one is stuck."""
    fake_nvml.set(devices(1, e0="energy 0 1000"))
    stuck = EmissionsTracker(
        nvml_library=str(fake_nvml.library), country_iso_code="FRA", save_to_file=False
    )
    stuck.start()
    fake_nvml.set(devices(1, e0="energy 0 1000", b0="block 0 60"))
    try:
        with stuck.epoch(0):
            pass
        assert fake_nvml.blocking.exists(), "the epoch's edges waited for the blocking call"
        other = EmissionsTracker(country_iso_code="FRA", save_to_file=False, default_cpu_power=50)
        other.start()
        time.sleep(0.05)
        other.stop()
        assert fake_nvml.blocking.exists()
    finally:
        fake_nvml.set(devices(1, e0="energy 0 1000"))
        eventually(lambda: not fake_nvml.blocking.exists(), "the blocking calls to end")
    # Read at its stop, not the fallback of a start reading: the run has a length.
    assert other.final_emissions_data is not None
    assert other.final_emissions_data.duration >= 0.05
    stuck.stop()
