"""Settings layers: keyword arguments over CARBONMETER_* over CODECARBON_* variables over
the working folder's config file over the home one, as CodeCarbon reads them.

Figures are exact to the µJ (see `helpers.to_uj`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fixtures.powercap import FakePowercap, run_unprivileged
from helpers import carbonmeter_messages, make_tracker, read_csv, to_uj

from carbonmeter import EmissionsTracker

pytestmark = pytest.mark.usefixtures("isolated")


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
