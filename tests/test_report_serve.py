"""`carbonmeter report --serve` (issue 28): the same page from a local folder, rendered again only
when the CSVs change, reloading itself in the browser while runs append; nothing else served."""

from __future__ import annotations

import http.client
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import Page, child_env, eventually
from test_report import measure

from carbonmeter.report import serve

CLI = [sys.executable, "-m", "carbonmeter.cli"]


def test_the_page_is_rendered_again_only_when_the_files_change(tmp_path: Path) -> None:
    measure(tmp_path, project_name="team", experiment_name="a")
    board = serve.Board([str(tmp_path)], None, interval_s=1.0, stamp_every_s=0.0)
    first = board.page()
    assert board.renders == 1 and "1 run in 1 project" in first
    assert f'const seen = "{board.version()}"' in first  # the page knows its version
    assert board.page() == first and board.renders == 1  # nothing changed: no render
    version = board.version()
    measure(tmp_path, project_name="team", experiment_name="b")  # appends to emissions.csv
    assert board.version() != version
    second = board.page()
    assert board.renders == 2 and "2 runs in 1 project" in second
    (tmp_path / "more").mkdir()
    measure(tmp_path / "more", project_name="other")  # a new file in a subfolder
    assert "3 runs in 2 projects" in board.page()


def test_the_stamp_is_computed_at_most_once_per_period(tmp_path: Path) -> None:
    measure(tmp_path)
    board = serve.Board([str(tmp_path)], None, interval_s=1.0, stamp_every_s=3600.0)
    version = board.version()
    measure(tmp_path)
    assert board.version() == version  # within the period: the cached stamp
    assert serve.stamp([str(tmp_path)]) != version


def test_a_folder_without_runs_yet_says_so_and_waits(tmp_path: Path) -> None:
    board = serve.Board([str(tmp_path)], None, interval_s=2.0, stamp_every_s=0.0)
    page = board.page()
    assert "No report yet" in page and "no *.csv file in folder" in page
    assert "setInterval" in page and ", 2000)" in page
    measure(tmp_path, project_name="late")
    assert "1 run in 1 project" in board.page()


def test_bad_serve_arguments_are_one_line(tmp_path: Path) -> None:
    for args, needle in (
        (["--refresh", "0.1"], "--refresh 0.1"),
        (["--format", "json"], "--serve serves the HTML report"),
        (["--compare", "Atlantis"], "Atlantis"),
    ):
        result = subprocess.run(
            [*CLI, "report", str(tmp_path), "--serve", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0 and needle in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": f"{host}:{port}"})
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("CARBONMETER_REQUIRE_CHROMIUM"),
    reason="Debian's chromium is not installed (.ci/run installs it and requires this test)",
)


@pytest.mark.slow
@needs_chromium
def test_served_page_reloads_while_runs_append(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    measure(folder, project_name="team", experiment_name="first")
    child = subprocess.Popen(
        [*CLI, "report", str(folder), "--serve", "--port", "0", "--refresh", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(tmp_path),
    )
    try:
        assert child.stderr is not None
        ready, _, _ = select.select([child.stderr], [], [], 60)
        assert ready, "the server said nothing"
        line = child.stderr.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found, line
        port = int(found.group(1))
        # Only the page and its version: no file of the folder, no other host's name.
        assert get(port, "/emissions.csv")[0] == 404
        assert get(port, "/../runs/emissions.csv")[0] == 404
        assert get(port, "/", host="attacker.example")[0] == 403
        status, body = get(port, "/")
        assert status == 200 and b"1 run in 1 project" in body
        # The proxy refuses every other host; loopback, the server's, bypasses it.
        with Page(tmp_path / "profile", "--proxy-server=http://127.0.0.1:9") as page:
            page.open(f"http://127.0.0.1:{port}/")
            assert page.evaluate("document.querySelectorAll('tr.run').length") == 1
            started = time.monotonic()
            measure(folder, project_name="team", experiment_name="second")
            page.wait_for("Page.loadEventFired", timeout_s=20)  # the page reloaded itself
            waited_s = time.monotonic() - started
            eventually(
                lambda: page.evaluate("document.querySelectorAll('tr.run').length") == 2,
                "the reloaded page shows the new run",
                timeout_s=10,
            )
            assert page.evaluate("document.getElementById('filters') !== null")
            assert page.problems == []
        print(f"reloaded {waited_s:.1f} s after the run began")
    finally:
        child.terminate()
        child.communicate(timeout=20)  # and closes its stderr
