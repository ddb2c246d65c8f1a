"""A process that dies mid-run leaves every row it reported, whole and parseable."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.powercap import FakePowercap
from helpers import UJ_PER_KWH, child_env, read_csv, wait_ready

from carbonmeter import CSV_COLUMNS

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent

PRELUDE = f"""
import sys, time
sys.path.insert(0, {str(TESTS)!r})
from fixtures.powercap import FakePowercap
from carbonmeter import EmissionsTracker
tree = FakePowercap(sys.argv[1])
tracker = EmissionsTracker(
    output_dir=sys.argv[2], powercap_root=sys.argv[1], country_iso_code="FRA",
    measure_power_secs=0.05,
)
"""

FLUSH_TWICE_THEN_HANG = """
tracker.start()
tree.advance("intel-rapl:0", 1_000_000)
tracker.flush()
tree.advance("intel-rapl:0", 2_000_000)
tracker.flush()
print("READY", flush=True)
time.sleep(120)
"""

RAISE_INSIDE_WITH = """
with tracker:
    tree.advance("intel-rapl:0", 5_000_000)
    raise RuntimeError("boom inside the with block")
"""

EXIT_WITHOUT_STOP = """
tracker.start()
tree.advance("intel-rapl:0", 6_000_000)
print("leaving without stop()")
"""


# The common snippet that routes logging through tqdm.write, at the top of a script that imports
# logging first: whether the tracker was dropped (and its row written) during the interpreter's
# teardown depended on that order and on the class in `__main__`.
HANDLER_CLASS_FIRST = """
import logging, sys
class TqdmLoggingHandler(logging.Handler):
    def emit(self, record):
        try:
            print(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)
logging.getLogger().addHandler(TqdmLoggingHandler())
"""

CRASH_MID_RUN = """
tracker.start()
tree.advance("intel-rapl:0", 7_000_000)
raise RuntimeError("crash mid-run")
"""


FLUSH_IN_A_LOOP = """
tracker.start()
for i in range(1_000_000):
    tree.advance("intel-rapl:0", 1_000)
    tracker.flush()
    if i == 10:
        print("READY", flush=True)
"""


def command(body: str, tree: FakePowercap, out: Path) -> list[str]:
    return [sys.executable, "-c", PRELUDE + body, str(tree.root), str(out)]


def kill_when_ready(child: subprocess.Popen[str], delay_s: float = 0.0) -> None:
    """Waits for the child's READY line, then SIGKILLs it (after `delay_s`)."""
    wait_ready(child, 30)
    time.sleep(delay_s)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def test_sigkill_after_two_flushes_leaves_two_whole_rows(
    server: FakePowercap, out: Path, tmp_path: Path
) -> None:
    with subprocess.Popen(
        command(FLUSH_TWICE_THEN_HANG, server, out),
        cwd=tmp_path,
        env=child_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            kill_when_ready(child)
        finally:
            if child.poll() is None:
                child.kill()

    text = (out / "emissions.csv").read_text(encoding="utf-8")
    assert text.endswith("\n")
    header, rows = read_csv(out / "emissions.csv")
    assert header == CSV_COLUMNS
    assert len(rows) == 2
    assert all(None not in row and None not in row.values() for row in rows)
    assert rows[0]["run_id"] == rows[1]["run_id"]
    cpu_uj = [round(float(row["cpu_energy"]) * UJ_PER_KWH) for row in rows]
    assert cpu_uj == [1_000_000, 3_000_000]
    assert 0 <= float(rows[0]["duration"]) <= float(rows[1]["duration"])


def test_sigkill_while_flushing_never_leaves_a_torn_row(
    server: FakePowercap, out: Path, tmp_path: Path
) -> None:
    with subprocess.Popen(
        command(FLUSH_IN_A_LOOP, server, out),
        cwd=tmp_path,
        env=child_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            kill_when_ready(child, delay_s=0.1)
        finally:
            if child.poll() is None:
                child.kill()

    text = (out / "emissions.csv").read_text(encoding="utf-8")
    assert text.endswith("\n")
    header, rows = read_csv(out / "emissions.csv")
    assert header == CSV_COLUMNS
    assert len(rows) > 11
    assert all(None not in row and None not in row.values() for row in rows)
    cpu_uj = [round(float(row["cpu_energy"]) * UJ_PER_KWH) for row in rows]
    assert cpu_uj == [1_000 * (i + 1) for i in range(len(rows))]


def test_exception_inside_with_exits_non_zero_and_leaves_its_row(
    server: FakePowercap, out: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        command(RAISE_INSIDE_WITH, server, out),
        cwd=tmp_path,
        env=child_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "RuntimeError: boom inside the with block" in result.stderr
    header, rows = read_csv(out / "emissions.csv")
    assert header == CSV_COLUMNS
    [row] = rows
    assert round(float(row["cpu_energy"]) * UJ_PER_KWH) == 5_000_000


def test_interpreter_exit_without_stop_writes_the_run(
    server: FakePowercap, out: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        command(EXIT_WITHOUT_STOP, server, out),
        cwd=tmp_path,
        env=child_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    _, rows = read_csv(out / "emissions.csv")
    [row] = rows
    assert round(float(row["cpu_energy"]) * UJ_PER_KWH) == 6_000_000


def test_a_crash_in_a_script_with_a_handler_class_writes_the_run(
    server: FakePowercap, out: Path, tmp_path: Path
) -> None:
    script = HANDLER_CLASS_FIRST + PRELUDE + CRASH_MID_RUN
    result = subprocess.run(
        [sys.executable, "-c", script, str(server.root), str(out)],
        cwd=tmp_path,
        env=child_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "RuntimeError: crash mid-run" in result.stderr
    assert (out / "emissions.csv").exists(), "no row: the run was never stopped"
    [row] = read_csv(out / "emissions.csv")[1]
    assert round(float(row["cpu_energy"]) * UJ_PER_KWH) == 7_000_000
