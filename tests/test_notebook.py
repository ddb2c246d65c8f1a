"""The IPython extension on IPython's real `InteractiveShell` (no Jupyter): `%load_ext
carbonmeter`, the `%%carbonmeter` cell magic and `%carbonmeter start` / `stop`."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import rows_of

pytest.importorskip("IPython", reason="notebook tests need the [notebook] extra")

from IPython.core.interactiveshell import InteractiveShell

# Threads carbonmeter starts once per process and keeps for every later run (names as the OS
# truncates them to 15 bytes).
PROCESS_WIDE = {"carbonmeter-sam", "carbonmeter-edg", "carbonmeter-sig", "carbonmeter-fsy"}


def os_threads() -> int:
    """Threads of this process as the OS counts them (the sampler is a Rust thread, which
    `threading` does not list), less carbonmeter's process-wide ones: what a run leaves."""
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            name = Path(f"/proc/self/task/{task}/comm").read_text().strip()
        except OSError:
            continue  # ended since it was listed
        count += name not in PROCESS_WIDE
    return count


def threads_settle_at(count: int) -> bool:
    """Whether the thread count comes back to `count`: a thread a run left running never
    would."""
    deadline = time.monotonic() + 5
    while os_threads() > count and time.monotonic() < deadline:
        time.sleep(0.02)
    return os_threads() == count


@pytest.fixture
def shell(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("CARBONMETER_COUNTRY_ISO_CODE", "FRA")
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "carbonmeter")
    try:
        yield ip
    finally:
        ip.run_line_magic("unload_ext", "carbonmeter")
        InteractiveShell.clear_instance()


def test_the_cell_magic_measures_each_run_and_prints_one_line(
    shell: Any, isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    threads = os_threads()
    for _ in range(2):
        result = shell.run_cell("%%carbonmeter\ntotal = sum(i * i for i in range(200_000))\ntotal")
        assert result.success
        assert result.result == sum(i * i for i in range(200_000))
    lines = [line for line in capsys.readouterr().out.splitlines() if "carbonmeter:" in line]
    rows = rows_of(isolated / "emissions.csv")
    assert len(lines) == 2 and len(rows) == 2
    for line, row in zip(lines, rows, strict=True):
        assert line.startswith("carbonmeter: cell ")
        assert "Wh" in line and "CO2eq at 56 g/kWh (FRA" in line
        assert float(row["emissions"]) > 0
    assert shell.user_ns["total"] == sum(i * i for i in range(200_000))
    assert threads_settle_at(threads)


def test_an_interrupted_cell_writes_its_row_and_the_interrupt_is_reported(
    shell: Any, isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    threads = os_threads()
    result = shell.run_cell("%%carbonmeter\nx = 1\nraise KeyboardInterrupt")
    assert not result.success
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    out = capsys.readouterr().out
    assert "carbonmeter: cell (interrupted) " in out
    assert len(rows_of(isolated / "emissions.csv")) == 1
    # The shell goes on: the next measured cell runs as usual.
    assert shell.run_cell("%%carbonmeter\ny = x + 1").success
    assert shell.user_ns["y"] == 2
    assert len(rows_of(isolated / "emissions.csv")) == 2
    assert threads_settle_at(threads)


def test_a_session_starts_and_stops_twice(
    shell: Any, isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    threads = os_threads()
    for _ in range(2):
        shell.run_cell("%carbonmeter start")
        shell.run_cell("%carbonmeter start")
        shell.run_cell("z = sum(range(100_000))")
        shell.run_cell("%carbonmeter stop")
        shell.run_cell("%carbonmeter stop")
    out = capsys.readouterr().out
    assert out.count("carbonmeter: measuring this session") == 2
    assert out.count("already measuring") == 2
    assert out.count("carbonmeter: session ") == 2
    assert out.count("not measuring") == 2
    assert len(rows_of(isolated / "emissions.csv")) == 2
    assert threads_settle_at(threads)


def test_unloading_stops_a_running_session_and_bad_commands_say_what_is_allowed(
    shell: Any, isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run_cell("%carbonmeter start")
    shell.run_line_magic("unload_ext", "carbonmeter")
    assert "carbonmeter: session " in capsys.readouterr().out
    assert len(rows_of(isolated / "emissions.csv")) == 1
    shell.run_line_magic("load_ext", "carbonmeter")
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match=r"'pause'.*start.*stop"):
        shell.run_line_magic("carbonmeter", "pause")


def test_the_magics_take_the_trackers_settings_as_flags(
    shell: Any, isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The flags win over CARBONMETER_COUNTRY_ISO_CODE=FRA, as `carbonmeter run`'s do.
    cell = "%%carbonmeter --country-iso-code DEU --experiment-name 'cell one'\nx = 2\nx * 3"
    result = shell.run_cell(cell)
    assert result.success and result.result == 6
    shell.run_cell("%carbonmeter start --country-iso-code SWE --project-name sess")
    shell.run_cell("%carbonmeter stop")
    lines = [line for line in capsys.readouterr().out.splitlines() if "g/kWh" in line]
    assert "(DEU" in lines[0] and "(SWE" in lines[1]
    cell_row, session_row = rows_of(isolated / "emissions.csv")
    assert (cell_row["country_iso_code"], cell_row["experiment_name"]) == ("DEU", "cell one")
    assert (session_row["country_iso_code"], session_row["project_name"]) == ("SWE", "sess")


@pytest.mark.parametrize(
    "flags, named",
    [
        ("--country-iso-code XXX", 'country_iso_code="XXX"'),
        ("--pue abc", "'abc'"),
        ("--tracking-mode nope", "'nope'"),
        ("--no-such-flag", "--no-such-flag"),
    ],
)
def test_a_bad_flag_or_value_is_named_and_the_cell_does_not_run(
    shell: Any, isolated: Path, flags: str, named: str
) -> None:
    from IPython.core.error import UsageError

    result = shell.run_cell(f"%%carbonmeter {flags}\nran = True")
    assert isinstance(result.error_in_exec, UsageError)
    assert named in str(result.error_in_exec)
    assert "ran" not in shell.user_ns
    assert not (isolated / "emissions.csv").exists()
    with pytest.raises(UsageError, match=re.escape(named)):
        shell.run_line_magic("carbonmeter", f"start {flags}")
    assert shell.run_cell("%carbonmeter stop").success  # nothing was started
