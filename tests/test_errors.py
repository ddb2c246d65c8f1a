"""Bad input raises the documented exception; the message names the value and what is allowed."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import carbonmeter
from carbonmeter import (
    CarbonmeterError,
    EmissionsTracker,
    InvalidValueError,
    OfflineEmissionsTracker,
    TrackerStateError,
    track_emissions,
)

pytestmark = pytest.mark.usefixtures("isolated")

# (keyword arguments, text the message must contain: the setting=value, then what is allowed)
BAD_VALUES: list[tuple[dict[str, Any], list[str]]] = [
    ({"pue": 0.5}, ["pue=0.5", ">= 1.0"]),
    ({"pue": "high"}, ['pue="high"', ">= 1.0"]),
    ({"pue": float("nan")}, ["pue=NaN", ">= 1.0"]),
    ({"wue": -1.0}, ["wue=-1", ">= 0"]),
    ({"country_iso_code": "XXX"}, ['country_iso_code="XXX"', "alpha-3", "did you mean"]),
    ({"measure_power_secs": -1}, ["measure_power_secs=-1", "> 0"]),
    ({"measure_power_secs": 0}, ["measure_power_secs=0", "> 0"]),
    ({"tracking_mode": "gpu"}, ['tracking_mode="gpu"', '"machine"', '"process"']),
    ({"on_csv_write": "x"}, ['on_csv_write="x"', '"append"', '"update"']),
    (
        {"output_dir": "/does/not/exist", "save_to_file": True},
        ['output_dir="/does/not/exist"', "existing folder"],
    ),
    ({"log_level": "loud"}, ['log_level="loud"', "debug, info, warning, error, critical"]),
    ({"log_level": 15}, ["log_level=15", "debug, info, warning, error, critical"]),
    ({"save_to_file": "maybe"}, ['save_to_file="maybe"', "True or False"]),
    ({"force_cpu_power": -5}, ["force_cpu_power=-5", ">= 0"]),
    ({"default_cpu_power": 0}, ["default_cpu_power=0", "> 0"]),
    ({"force_carbon_intensity_g_co2e_kwh": -1}, ["force_carbon_intensity_g_co2e_kwh=-1"]),
    ({"project_name": object()}, ["project_name=<object object", "expected a str"]),
]


@pytest.mark.parametrize(
    ("kwargs", "expected"), BAD_VALUES, ids=[next(iter(kw)) for kw, _ in BAD_VALUES]
)
def test_bad_value_raises_invalid_value_error_naming_value_and_allowed(
    kwargs: dict[str, Any], expected: list[str]
) -> None:
    with pytest.raises(InvalidValueError) as raised:
        EmissionsTracker(**{"save_to_file": False, "country_iso_code": "FRA", **kwargs})
    message = str(raised.value)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_bad_output_dir_is_checked_only_when_saving() -> None:
    EmissionsTracker(output_dir="/does/not/exist", save_to_file=False, country_iso_code="FRA")
    with pytest.raises(InvalidValueError, match="output_dir"):
        EmissionsTracker(output_dir="/does/not/exist", country_iso_code="FRA")


def test_unknown_country_suggests_close_names() -> None:
    with pytest.raises(InvalidValueError) as raised:
        EmissionsTracker(country_iso_code="FRX", save_to_file=False)
    assert '"FRA"' in str(raised.value).split("did you mean", 1)[1]


def test_bad_country_2letter_code_names_the_setting_given() -> None:
    with pytest.raises(InvalidValueError) as raised:
        EmissionsTracker(country_2letter_iso_code="ZZ", save_to_file=False)
    assert 'country_2letter_iso_code="ZZ"' in str(raised.value)


def test_bad_value_from_the_environment_raises_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODECARBON_PUE", "0.5")
    with pytest.raises(InvalidValueError, match=r'pue="0\.5"'):
        EmissionsTracker(save_to_file=False)


def test_bad_value_from_a_config_file_raises_too(isolated: Path) -> None:
    (isolated / ".codecarbon.config").write_text(
        "[codecarbon]\ntracking_mode = gpu\n", encoding="utf-8"
    )
    with pytest.raises(InvalidValueError, match=r'tracking_mode="gpu"'):
        EmissionsTracker(save_to_file=False)


def test_invalid_value_error_is_a_value_error_and_a_carbonmeter_error() -> None:
    assert issubclass(InvalidValueError, ValueError)
    assert issubclass(InvalidValueError, CarbonmeterError)
    assert issubclass(TrackerStateError, CarbonmeterError)
    assert issubclass(CarbonmeterError, Exception)
    assert not issubclass(CarbonmeterError, ValueError)
    assert InvalidValueError.__module__ == "carbonmeter"
    with pytest.raises(ValueError, match=r"pue=0\.5"):
        EmissionsTracker(pue=0.5, save_to_file=False)
    with pytest.raises(CarbonmeterError, match=r"pue=0\.5"):
        EmissionsTracker(pue=0.5, save_to_file=False)
    try:
        EmissionsTracker(pue=0.5, save_to_file=False)
    except ValueError as err:
        assert type(err) is InvalidValueError


def test_unknown_keyword_argument_is_a_type_error_listing_the_known_ones() -> None:
    with pytest.raises(TypeError) as raised:
        EmissionsTracker(colour=1)
    message = str(raised.value)
    assert "colour" in message
    assert "project_name" in message and "measure_power_secs" in message
    assert not isinstance(raised.value, CarbonmeterError)


def test_track_emissions_refuses_unknown_keyword_at_decoration() -> None:
    with pytest.raises(TypeError, match="colour"):
        track_emissions(colour=1)
    with pytest.raises(TypeError, match="colour"):
        track_emissions(offline=True, colour=1)


def test_track_emissions_bad_value_raises_at_call_before_the_body_runs() -> None:
    calls: list[int] = []

    @track_emissions(pue=0.5, save_to_file=False)
    def body() -> None:
        calls.append(1)

    with pytest.raises(InvalidValueError, match=r"pue=0\.5"):
        body()
    assert calls == []


def test_offline_tracker_needs_a_country() -> None:
    with pytest.raises(InvalidValueError) as raised:
        OfflineEmissionsTracker(save_to_file=False)
    assert "country_iso_code" in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_offline_tracker_with_a_country_measures() -> None:
    tracker = OfflineEmissionsTracker(country_iso_code="SWE", save_to_file=False)
    assert isinstance(tracker, EmissionsTracker)
    assert tracker.country_iso_code == "SWE"
    tracker.start()
    tracker.stop()
    data = tracker.final_emissions_data
    assert data is not None
    assert (data.country_iso_code, data.country_name) == ("SWE", "Sweden")
    assert "OfflineEmissionsTracker" in repr(tracker)


def test_offline_tracker_takes_the_country_from_the_environment_or_2letter_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert OfflineEmissionsTracker(country_2letter_iso_code="FR", save_to_file=False)
    monkeypatch.setenv("CARBONMETER_COUNTRY_ISO_CODE", "NOR")
    assert OfflineEmissionsTracker(save_to_file=False).country_iso_code == "NOR"


def test_offline_decorator_without_a_country_raises_before_the_body_runs() -> None:
    calls: list[int] = []

    @track_emissions(offline=True, save_to_file=False)
    def body() -> None:
        calls.append(1)

    with pytest.raises(InvalidValueError, match="country_iso_code"):
        body()
    assert calls == []


UNSERVED_SCRIPT = """
import json, logging
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append((record.name, record.levelname, record.getMessage()))
logging.getLogger().addHandler(Keep())
import carbonmeter
emissions = []
for _ in range(3):
    tracker = carbonmeter.EmissionsTracker(
        save_to_api=True, api_key="secret", logging_logger=logging.getLogger("x"),
        save_to_file=False, country_iso_code="FRA",
    )
    tracker.start()
    emissions.append(tracker.stop())
print(json.dumps({"records": records, "emissions": emissions}))
"""


def test_unserved_codecarbon_option_warns_once_per_process_and_works(isolated: Path) -> None:
    # Warned once per process: a fresh interpreter, so no earlier test has said it already.
    result = subprocess.run(
        [sys.executable, "-c", UNSERVED_SCRIPT],
        cwd=isolated,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert all(isinstance(e, float) and e >= 0 for e in report["emissions"])
    for option in ("save_to_api", "api_key", "logging_logger"):
        about = [r for r in report["records"] if option in r[2]]
        assert len(about) == 1, (option, about)
        name, level, _ = about[0]
        assert name.startswith("carbonmeter")
        assert level == "WARNING"
    assert "secret" not in json.dumps(report["records"])


def test_unserved_option_is_accepted_in_process() -> None:
    tracker = EmissionsTracker(save_to_api=True, save_to_file=False, country_iso_code="FRA")
    tracker.start()
    assert isinstance(tracker.stop(), float)


def test_losing_the_output_folder_does_not_lose_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    tracker = EmissionsTracker(output_dir=str(out), country_iso_code="FRA")
    tracker.start()
    out.rmdir()
    emissions = tracker.stop()
    assert isinstance(emissions, float)
    assert tracker.final_emissions == emissions
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("carbonmeter") and r.levelno == logging.ERROR
    ]
    assert any("emissions.csv" in message for message in errors), errors


def test_public_names() -> None:
    for name in carbonmeter.__all__:
        assert hasattr(carbonmeter, name), name
    assert {"EmissionsTracker", "OfflineEmissionsTracker", "track_emissions"} <= set(
        carbonmeter.__all__
    )
