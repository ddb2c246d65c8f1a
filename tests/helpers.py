"""What several test files share: a tracker on a fake tree and exact µJ, a child process's
environment, reading rows back, log lines, and the stand-in vendor libraries built from
`tests/fixtures/*.c`."""

from __future__ import annotations

import csv
import fcntl
import json
import math
import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures.powercap import FakePowercap

from carbonmeter import EmissionsTracker

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"
UJ_PER_KWH = 3.6e12
#: A CodeCarbon 3.3.2 file, whose header ours extends.
CODECARBON_CSV = FIXTURES / "codecarbon_3.3.2_emissions.csv"
#: The zones `add_two_socket_server` gives, as a row's `rapl_zones` names them.
SERVER_ZONES = "package-0+dram-0+package-1+psys"

#: Variables that would reach a tracker besides its keyword arguments: the `isolated` fixture
#: clears them in this process, `child_env` in a child's.
SETTING_PREFIXES = ("CARBONMETER_", "CODECARBON_", "OTEL_EXPORTER_OTLP_")
#: What picks or drives a GPU (the stand-in NVML's control file, CUDA's device list): a child
#: finds the GPUs its test gives it, not the ones of the shell that ran pytest.
GPU_PREFIXES = ("FAKE_NVML", "CUDA_VISIBLE")
#: Headless Chromium for the pages we render (the HTML report, the docs site): no sandbox (CI
#: runs as root), none of Chromium's own services, console lines on stderr. The caller adds
#: `--user-data-dir` and a proxy: every page must load nothing from another host.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--enable-logging=stderr",
    "--v=0",
)


def child_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment for a child, less every setting and GPU selection, with
    `HOME` at `home` (so no `~/.codecarbon.config` applies) and `extra` on top."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(SETTING_PREFIXES + GPU_PREFIXES)
    }
    env["HOME"] = str(home)
    env.update(extra)
    return env


def to_uj(kwh: float, pue: float = 1.0) -> int:
    """kWh back to whole µJ: the core is exact to the µJ, so this gives back what was written.

    Tests advance counters by known µJ between the tracker's reads (start, flush, stop, sampler
    ticks), so every RAPL figure in a row is known exactly: 1 kWh = 3.6e12 µJ.
    """
    return round(kwh / pue * UJ_PER_KWH)


def assert_kwh(kwh: float, energy_uj: int, pue: float = 1.0) -> None:
    assert to_uj(kwh, pue) == energy_uj
    assert math.isclose(kwh, energy_uj / UJ_PER_KWH * pue, rel_tol=1e-14, abs_tol=0.0)


def make_tracker(tree: FakePowercap | None = None, **kwargs: Any) -> EmissionsTracker:
    """A tracker in France that writes no file and ticks once a minute (so the rows hold only
    what the test advanced between its own reads), on `tree` when given."""
    settings: dict[str, Any] = {
        "country_iso_code": "FRA",
        "save_to_file": False,
        "measure_power_secs": 60,
    }
    if tree is not None:
        settings["powercap_root"] = str(tree.root)
    settings.update(kwargs)
    return EmissionsTracker(**settings)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The file's header and its rows as dicts."""
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def rows_of(path: Path) -> list[dict[str, str]]:
    """The file's rows as dicts, keyed by its header."""
    return read_csv(path)[1]


def idle_after(work: Callable[[], object], idle_s: float = 1.0) -> float:
    """Runs `work`, then idles `idle_s` (other work of the user's); returns the work's seconds."""
    began = time.monotonic()
    work()
    work_s = time.monotonic() - began
    time.sleep(idle_s)
    return work_s


def check_run_ended_with_work(path: Path, work_s: float, idle_s: float = 1.0) -> dict[str, str]:
    """The CSV at `path`, read while idling after work of `work_s`, ends with that work's run row,
    whose duration is the work's, not the idle time after it (issue 32); returns the row."""
    rows = rows_of(path)
    assert rows and rows[-1]["window"] == "", [(r["window"], r["duration"]) for r in rows]
    duration_s = float(rows[-1]["duration"])
    assert duration_s <= work_s + 0.05 < idle_s, (duration_s, work_s)
    return rows[-1]


def carbonmeter_messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """What carbonmeter's loggers said at exactly `level`."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("carbonmeter") and record.levelno == level
    ]


def eventually(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Waits for `condition`, an event the test cannot be told of; `timeout_s` bounds only a
    hang, so a loaded machine is slower here, never wrong."""
    give_up = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > give_up:
            pytest.fail(f"waited {timeout_s} s for {what}")
        time.sleep(0.005)


def build_stand_in(source: str, folder: Path, *defines: str) -> Path:
    """`tests/fixtures/<source>` compiled with the system `cc` into a `.so` in `folder`.

    Warnings fail the build (as in tests/common/mod.rs), and so does a missing compiler: a test
    that needs a stand-in library fails rather than skips.
    """
    compiler = shutil.which("cc")
    if compiler is None:
        pytest.fail(f"a C compiler (cc) is needed to build the stand-in {source}")
    library = folder / f"lib{Path(source).stem}.so"
    flags = ["-shared", "-fPIC", "-O1", "-Wall", "-Werror", *defines]
    subprocess.run([compiler, *flags, "-o", str(library), str(FIXTURES / source)], check=True)
    return library


def wait_ready(child: subprocess.Popen[str], timeout_s: float = 60.0) -> None:
    """Waits for a child's `READY` line; fails with what it said instead."""
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], timeout_s)
    assert ready, "the child never said READY"
    line = child.stdout.readline()
    assert line.strip() == "READY", line + (child.stderr.read() if child.stderr else "")


class Page:
    """A page in headless Chromium, driven over the DevTools protocol on a pipe
    (`--remote-debugging-pipe`: NUL-terminated JSON on fds 3 and 4, no port, no websocket): real
    mouse clicks at an element's centre, page-side reads, and every console message and
    uncaught exception the page produced (`problems`). Use as a context manager."""

    def __init__(self, profile: Path, *flags: str, width: int = 1100, height: int = 1400) -> None:
        browser = shutil.which("chromium")
        assert browser is not None
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()

        def wire() -> None:  # runs in the child: the protocol's fds are 3 and 4
            # Moved above 10 first, so neither end is overwritten by the other's dup2.
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.process = subprocess.Popen(
            [
                browser,
                *CHROMIUM_FLAGS,
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                *flags,
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Kept open past the child's closing of other fds: `wire` has made them the pipes.
            pass_fds=(3, 4),
            preexec_fn=wire,
        )
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next_id = 0
        self.problems: list[str] = []
        self.events: list[dict[str, Any]] = []
        targets = self.send("Target.getTargets")["targetInfos"]
        target = next(t["targetId"] for t in targets if t["type"] == "page")
        attached = self.send("Target.attachToTarget", targetId=target, flatten=True)
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=True)

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (OSError, AssertionError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._write, self._read):
            try:
                os.close(fd)
            except OSError:
                pass

    def _message(self, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._read], [], [], max(left, 0))
            assert ready, "Chromium did not answer in time"
            chunk = os.read(self._read, 1 << 16)
            assert chunk, "Chromium closed the protocol pipe"
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        method = message.get("method", "")
        params = message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.problems.append(f"console.{params['type']}: {args}")
        elif method == "Runtime.exceptionThrown":
            self.problems.append(f"exception: {params['exceptionDetails']}")
        elif method == "Log.entryAdded":
            self.problems.append(f"log {params['entry']['level']}: {params['entry']['text']}")
        if method:
            self.events.append(message)
        return message

    def send(
        self, method: str, session: bool = False, timeout_s: float = 30.0, **params: Any
    ) -> Any:
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            command["sessionId"] = self.session
        os.write(self._write, json.dumps(command).encode() + b"\0")
        while True:
            message = self._message(timeout_s)
            if message.get("id") == self._next_id:
                assert "error" not in message, (method, message["error"])
                return message.get("result", {})

    def open(self, url: str) -> None:
        """Loads `url` and waits for its load event."""
        self.events.clear()
        self.send("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")

    def reload(self) -> None:
        """Reloads the page (its address as it is now, hash included) and waits for it."""
        self.events.clear()
        self.send("Page.reload", session=True)
        self.wait_for("Page.loadEventFired")

    def wait_for(self, method: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """The next protocol event named `method` (one already seen since `open` counts)."""
        for event in self.events:
            if event["method"] == method:
                self.events.remove(event)
                return event
        deadline = time.monotonic() + timeout_s
        while True:
            message = self._message(max(deadline - time.monotonic(), 0.01))
            if message.get("method") == method:
                self.events.remove(message)
                return message

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a page-side expression."""
        result = self.send(
            "Runtime.evaluate", session=True, expression=expression, returnByValue=True
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real left click (pressed, released) at the centre of the element `selector` finds,
        scrolled into view first."""
        box = self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " if (!el) return null; el.scrollIntoView({block: 'center'});"
            " const r = el.getBoundingClientRect();"
            " return {x: r.x + r.width / 2, y: r.y + r.height / 2, w: r.width}; })()"
        )
        assert box is not None and box["w"] > 0, f"nothing visible to click at {selector!r}"
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                session=True,
                type=kind,
                x=box["x"],
                y=box["y"],
                button="left",
                clickCount=1,
            )
