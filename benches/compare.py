"""Costs of carbonmeter and CodeCarbon side by side, measured interleaved in one run.

Every figure is a cost (lower is better), measured for both trackers in alternating order on the
same workload, so both see the same machine and the same noise:

- cold import: fresh interpreters, minus a bare interpreter's start;
- a new tracker and its first start()+stop() in a fresh process (CodeCarbon probes the hardware
  then, once per process), and start()+stop() again in a warm process; with no file, and with a
  file in a temporary folder;
- the epoch boundary: `with tracker.epoch(): pass` against CodeCarbon's start_task()+stop_task();
- sampler CPU seconds per wall second while the main thread sleeps (fresh processes), beside a
  bare Python thread waking at 10 Hz: the floor under any sampler at that rate;
- RSS added by the import and by a started tracker (fresh processes, VmRSS);
- slowdown of a fixed numpy matmul loop with each tracker sampling at 1 Hz, against no tracker,
  in paired rounds, and the CPU each tracker spent over the loop's CPU time.

The last column is issue 21's target for the figure, and whether this run met it.

Both trackers run offline with country_iso_code="FRA" and log level "error": CodeCarbon as its
OfflineEmissionsTracker with save_to_api=False. Every process that runs a tracker refuses internet
sockets and DNS, so neither can touch the network; a refused attempt is reported.

Needs `pip install '.[bench]'` (CodeCarbon and numpy); installs nothing. Run
`python benches/compare.py [--quick] [--output PATH]`; it prints one Markdown table and writes
the same figures, every sample included, as JSON (default: benches/results/compare.json, or
benches/results/compare-quick.json, git-ignored, with --quick).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

OURS = "carbonmeter"
THEIRS = "codecarbon"
TRACKERS = (OURS, THEIRS)
RESULTS_DIR = Path(__file__).resolve().parent / "results"

# CodeCarbon logs its configuration before `log_level=` applies; its environment setting is read
# first. Children inherit it.
os.environ["CODECARBON_LOG_LEVEL"] = "error"

# Python source shared by this process and the fresh interpreters. GUARD refuses internet
# sockets and name lookups and records each attempt in `_attempts`; it runs before any tracker.
GUARD = """
import socket as _socket

_attempts = []
_connect = _socket.socket.connect
_connect_ex = _socket.socket.connect_ex


def _refuse(address):
    _attempts.append(repr(address))
    raise OSError(f"benches/compare.py allows no network access (tried {address!r})")


def _guarded_connect(self, address):
    if self.family in (_socket.AF_INET, _socket.AF_INET6):
        _refuse(address)
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family in (_socket.AF_INET, _socket.AF_INET6):
        _refuse(address)
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    _refuse(host)


_socket.socket.connect = _guarded_connect
_socket.socket.connect_ex = _guarded_connect_ex
_socket.getaddrinfo = _guarded_getaddrinfo
"""

# `make(**kwargs)`: the tracker of each side, offline, quiet, with the grid of France.
MAKERS = {
    OURS: """
from carbonmeter import OfflineEmissionsTracker


def make(**kwargs):
    return OfflineEmissionsTracker(country_iso_code="FRA", log_level="error", **kwargs)
""",
    THEIRS: """
from codecarbon import OfflineEmissionsTracker


def make(**kwargs):
    return OfflineEmissionsTracker(
        country_iso_code="FRA", log_level="error", save_to_api=False, **kwargs
    )
""",
}

# Defines `makers`: tracker name -> its `make`.
LOAD_MAKERS = f"""
makers = {{}}
for _name, _source in {MAKERS!r}.items():
    _namespace = {{}}
    exec(_source, _namespace)
    makers[_name] = _namespace["make"]
"""

IMPORTS = {OURS: "import carbonmeter", THEIRS: "import codecarbon"}

# Children print one line `RESULT <figures...> <network attempts>` after the tracker's output.
FRESH_START_PROBE = """
import sys
import time

kwargs = {"save_to_file": False} if len(sys.argv) < 2 else {"output_dir": sys.argv[1]}
started = time.perf_counter()
tracker = make(**kwargs)
tracker.start()
tracker.stop()
print("RESULT", time.perf_counter() - started, len(_attempts))
"""

# Process CPU per wall second while the main thread sleeps, over the whole sleep and over the
# part after its first second: a fresh process's threads start within that second (their CPU is
# in benches/warm.py), the rest is the steady state.
SAMPLER_PROBE = """
import sys
import time

tracker = make(save_to_file=False, measure_power_secs=float(sys.argv[1]))
tracker.start()
cpu_s, wall_s = time.process_time(), time.perf_counter()
time.sleep(1.0)
steady_cpu_s, steady_wall_s = time.process_time(), time.perf_counter()
time.sleep(float(sys.argv[2]) - 1.0)
end_cpu_s, end_wall_s = time.process_time(), time.perf_counter()
tracker.stop()
print(
    "RESULT",
    (end_cpu_s - cpu_s) / (end_wall_s - wall_s),
    (end_cpu_s - steady_cpu_s) / (end_wall_s - steady_wall_s),
    len(_attempts),
)
"""

# The process sleeping as SAMPLER_PROBE does after its first second, with no tracker:
# the floor under that figure (the kernel charges a sleeping process's wake-up some CPU).
IDLE_PROBE = """
import sys
import time

time.sleep(1.0)
cpu_s, wall_s = time.process_time(), time.perf_counter()
time.sleep(float(sys.argv[1]) - 1.0)
print("RESULT", (time.process_time() - cpu_s) / (time.perf_counter() - wall_s), 0)
"""

# Paired rounds of the same matmul loop with no tracker and with each, in rotating order; prints
# the ratios and, per run, the CPU the tracker spent (its threads during the loop, plus start()
# and stop() on the main thread) over the loop's own CPU time, in %.
MATMUL_PROBE = """
import sys
import time

import numpy as np

rounds, target_s = int(sys.argv[1]), float(sys.argv[2])
rng = np.random.default_rng(0)
a, b = rng.random((256, 256)), rng.random((256, 256))


def loop(count):
    started, cpu_s, main_s = time.perf_counter(), time.process_time(), time.thread_time()
    for _ in range(count):
        np.matmul(a, b)
    main_s = time.thread_time() - main_s
    others_s = time.process_time() - cpu_s - main_s
    return time.perf_counter() - started, main_s, others_s


loop(20)
count = max(10, round(target_s * 50 / loop(50)[0]))
names = ["none", *makers]
ratios = {name: [] for name in makers}
shares = {name: [] for name in names}
# carbonmeter's own account of its cost (its rows' tracker_cpu_seconds) over the same loop CPU.
own_shares = []
for index in range(rounds):
    seconds = {}
    for name in names[index % len(names) :] + names[: index % len(names)]:
        edges_s = time.thread_time()
        tracker = None if name == "none" else makers[name](save_to_file=False, measure_power_secs=1)
        if tracker is not None:
            tracker.start()
        edges_s = time.thread_time() - edges_s
        seconds[name], main_s, others_s = loop(count)
        stop_s = time.thread_time()
        if tracker is not None:
            tracker.stop()
        edges_s += time.thread_time() - stop_s
        shares[name].append(100 * (others_s + edges_s) / main_s)
        if name == "carbonmeter":
            own_shares.append(100 * tracker.final_emissions_data.tracker_cpu_seconds / main_s)
    for name in makers:
        ratios[name].append(seconds[name] / seconds["none"])
print(
    "RESULT",
    count,
    *(ratio for name in makers for ratio in ratios[name]),
    *(share for name in names for share in shares[name]),
    *own_shares,
    len(_attempts),
)
"""

# A thread that does nothing but wake every period: the floor under any sampler at that rate
# on this machine (the wake-up itself, the scheduler and the futex), in the same units.
FLOOR_PROBE = """
import sys
import threading
import time

period_s, wall_s = float(sys.argv[1]), float(sys.argv[2])
stop = threading.Event()


def wake():
    while not stop.wait(period_s):
        pass


thread = threading.Thread(target=wake)
thread.start()
cpu_s, started_s = time.process_time(), time.perf_counter()
time.sleep(wall_s)
cpu_s, wall_s = time.process_time() - cpu_s, time.perf_counter() - started_s
stop.set()
thread.join()
print("RESULT", cpu_s / wall_s, 0)
"""

RSS_BEFORE = """
import sys
import time


def rss_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


bare = rss_kib()
"""

RSS_AFTER = """
imported = rss_kib()
tracker = make(save_to_file=False, measure_power_secs=1)
tracker.start()
time.sleep(float(sys.argv[1]))
running = rss_kib()
tracker.stop()
print("RESULT", imported - bare, running - imported, len(_attempts))
"""


@dataclass(frozen=True)
class Plan:
    """How many samples of each figure; --quick only makes them fewer and shorter."""

    import_runs: int
    fresh_start_runs: int
    warm_start_runs: int
    epoch_rounds: int
    epochs_per_round: int
    sampler_runs: int
    sampler_wall_s: float
    sampler_default_wall_s: float
    rss_runs: int
    rss_running_s: float
    matmul_rounds: int
    matmul_target_s: float


FULL = Plan(
    import_runs=15,
    fresh_start_runs=9,
    warm_start_runs=21,
    epoch_rounds=5,
    epochs_per_round=100,
    sampler_runs=3,
    sampler_wall_s=15.0,
    sampler_default_wall_s=45.0,
    rss_runs=5,
    rss_running_s=2.5,
    matmul_rounds=41,
    matmul_target_s=0.3,
)
QUICK = Plan(
    import_runs=3,
    fresh_start_runs=2,
    warm_start_runs=5,
    epoch_rounds=2,
    epochs_per_round=20,
    sampler_runs=1,
    sampler_wall_s=2.0,
    sampler_default_wall_s=2.0,
    rss_runs=2,
    rss_running_s=1.5,
    matmul_rounds=3,
    matmul_target_s=0.2,
)


@dataclass
class Figure:
    """One row of the table: samples per tracker, in the unit shown."""

    key: str
    label: str
    unit: str
    samples: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""

    def summary(self, tracker: str) -> dict[str, Any] | None:
        values = self.samples.get(tracker)
        if not values:
            return None
        return {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "samples": values,
        }

    def ratio(self) -> float | None:
        """CodeCarbon's median over ours: above 1, carbonmeter costs less."""
        ours, theirs = self.summary(OURS), self.summary(THEIRS)
        if ours is None or theirs is None or ours["median"] <= 0:
            return None
        return theirs["median"] / ours["median"]


@dataclass
class Session:
    """Figures measured so far and every network attempt refused on the way."""

    figures: list[Figure] = field(default_factory=list)
    network_attempts: list[str] = field(default_factory=list)
    in_process_attempts: list[str] = field(default_factory=list)

    def all_network_attempts(self) -> list[str]:
        return [*self.network_attempts, *(f"{a} in this process" for a in self.in_process_attempts)]

    def figure(self, key: str, label: str, unit: str, note: str = "") -> Figure:
        figure = Figure(key, label, unit, {tracker: [] for tracker in TRACKERS}, note)
        self.figures.append(figure)
        return figure

    def child(self, source: str, *args: str, env: dict[str, str] | None = None) -> list[float]:
        """Runs `source` in a fresh interpreter and returns the figures of its RESULT line."""
        completed = subprocess.run(
            [sys.executable, "-c", source, *args], capture_output=True, text=True, env=env
        )
        if completed.returncode != 0:
            raise RuntimeError(f"a probe failed ({completed.returncode}):\n{completed.stderr}")
        lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
        if not lines:
            raise RuntimeError(f"no RESULT line from a probe; stderr:\n{completed.stderr}")
        *figures, attempts = lines[-1].split()[1:]
        if int(attempts):
            self.network_attempts.append(f"{int(attempts)} in a fresh process")
        return [float(value) for value in figures]


def rotated(items: Sequence[str], round_index: int) -> list[str]:
    """`items` starting at a different one each round, so no tracker always goes first."""
    shift = round_index % len(items)
    return [*items[shift:], *items[:shift]]


def tracker_source(tracker: str, probe: str) -> str:
    return GUARD + MAKERS[tracker] + probe


def measure_imports(session: Session, plan: Plan) -> None:
    figure = session.figure("import_ms", "cold import", "ms")

    def run(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - started

    for code in ("pass", *IMPORTS.values()):  # compile .pyc files and warm the page cache
        run(code)
    bare: list[float] = []
    loaded: dict[str, list[float]] = {tracker: [] for tracker in TRACKERS}
    for index in range(plan.import_runs):
        for name in rotated(["bare", *TRACKERS], index):
            if name == "bare":
                bare.append(run("pass"))
            else:
                loaded[name].append(run(IMPORTS[name]))
    baseline_s = statistics.median(bare)
    for tracker in TRACKERS:
        figure.samples[tracker] = [1e3 * (sample - baseline_s) for sample in loaded[tracker]]
    figure.note = f"bare interpreter: {1e3 * baseline_s:.1f} ms"


def measure_fresh_starts(session: Session, plan: Plan) -> None:
    no_file = session.figure(
        "fresh_start_stop_no_file_ms", "new tracker + first start()+stop(), no file", "ms"
    )
    with_file = session.figure(
        "fresh_start_stop_file_ms", "new tracker + first start()+stop(), with file", "ms"
    )
    with tempfile.TemporaryDirectory() as output_root:
        for index in range(plan.fresh_start_runs):
            for tracker in rotated(TRACKERS, index):
                output_dir = Path(output_root, tracker)
                output_dir.mkdir(exist_ok=True)
                source = tracker_source(tracker, FRESH_START_PROBE)
                (elapsed_s,) = session.child(source)
                no_file.samples[tracker].append(1e3 * elapsed_s)
                (elapsed_s,) = session.child(source, str(output_dir))
                with_file.samples[tracker].append(1e3 * elapsed_s)


def measure_samplers(session: Session, plan: Plan) -> None:
    settings = [
        ("sampler_1hz", "sampler CPU, 1 Hz", {OURS: 1.0, THEIRS: 1.0}, plan.sampler_wall_s),
        (
            "sampler_10hz",
            "sampler CPU, 10 Hz (CodeCarbon not run)",
            {OURS: 0.1},
            plan.sampler_wall_s,
        ),
        (
            "sampler_default",
            "sampler CPU, default period (15 s)",
            {OURS: 15.0, THEIRS: 15.0},
            plan.sampler_default_wall_s,
        ),
    ]
    figures = {key: session.figure(key, label, "CPU ms/s") for key, label, _, _ in settings}
    counters = session.figure(
        "sampler_default_counters",
        "sampler CPU, default period, RAPL counters only (CodeCarbon not run)",
        "CPU ms/s",
    )
    counters_steady = session.figure(
        "sampler_default_counters_steady",
        "the same, after its first second (the threads' start-up left out)",
        "CPU ms/s",
    )
    idle = session.figure(
        "idle_process_steady",
        "a process sleeping the same way, no tracker (the floor of the figure above)",
        "CPU ms/s",
    )
    floor = session.figure(
        "thread_floor_10hz",
        "bare Python thread waking at 10 Hz (the floor; no tracker)",
        "CPU ms/s",
    )
    for index in range(plan.sampler_runs):
        (cpu_per_wall,) = session.child(FLOOR_PROBE, "0.1", str(plan.sampler_wall_s))
        floor.samples[OURS].append(1e3 * cpu_per_wall)
        for key, _, periods, wall_s in settings:
            for tracker in rotated(list(periods), index):
                source = tracker_source(tracker, SAMPLER_PROBE)
                cpu_per_wall, _ = session.child(source, str(periods[tracker]), str(wall_s))
                figures[key].samples[tracker].append(1e3 * cpu_per_wall)
        with tempfile.TemporaryDirectory() as root:
            environment = {**os.environ, "CARBONMETER_POWERCAP_ROOT": fake_rapl_tree(Path(root))}
            source = tracker_source(OURS, SAMPLER_PROBE)
            wall_s = str(plan.sampler_default_wall_s)
            whole, steady = session.child(source, "15", wall_s, env=environment)
            counters.samples[OURS].append(1e3 * whole)
            counters_steady.samples[OURS].append(1e3 * steady)
        (cpu_per_wall,) = session.child(IDLE_PROBE, str(plan.sampler_default_wall_s))
        idle.samples[OURS].append(1e3 * cpu_per_wall)
    counters.note = (
        f"{plan.sampler_default_wall_s:g} s of sleep per sample; this VM has no RAPL, so the "
        "zones are a powercap tree in a temporary folder with an Intel package's counter range "
        "and power limit (the real code path; a real zone's read adds the kernel's MSR access)"
    )
    counters_steady.note = (
        "CPU over the same sleep after its first second: a fresh process's sampler and signal "
        "threads start within that second"
    )
    idle.note = "shown in carbonmeter's column"
    for key, _, _, wall_s in settings:
        figures[key].note = f"{wall_s:g} s of sleep per sample"
    floor.note = "threading.Event().wait(0.1) in a loop, shown in carbonmeter's column"


def fake_rapl_tree(root: Path) -> str:
    """A powercap tree with one package zone and its DRAM subzone, as a Skylake-SP server's
    (`max_energy_range_uj` 262143328850, a 205 W package limit), made by the tests' own
    `FakePowercap`: the tracker then measures by counters alone. Returns its root."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from fixtures.powercap import FakePowercap

    tree = FakePowercap(root)
    tree.add_zone("intel-rapl:0", "package-0", 1_000_000, max_power_uw=205_000_000)
    tree.add_zone("intel-rapl:0:0", "dram", 1_000_000)
    return str(root)


def measure_rss(session: Session, plan: Plan) -> None:
    imported = session.figure("rss_import_mib", "RSS added by import", "MiB")
    running = session.figure("rss_tracker_mib", "RSS added by a started tracker", "MiB")
    for index in range(plan.rss_runs):
        for tracker in rotated(TRACKERS, index):
            source = RSS_BEFORE + GUARD + MAKERS[tracker] + RSS_AFTER
            import_kib, running_kib = session.child(source, str(plan.rss_running_s))
            imported.samples[tracker].append(import_kib / 1024)
            running.samples[tracker].append(running_kib / 1024)
    imported.note = "the network guard (socket) is loaded before the import is measured"
    running.note = f"sampling at 1 Hz, read {plan.rss_running_s:g} s after start()"


def in_process_makers(session: Session) -> dict[str, Callable[..., Any]]:
    """The same `make` functions as the children's, in this process, behind the guard."""
    namespace: dict[str, Any] = {}
    exec(GUARD + LOAD_MAKERS, namespace)
    session.in_process_attempts = namespace["_attempts"]
    return namespace["makers"]


def measure_warm_starts(session: Session, plan: Plan, makers: dict[str, Callable]) -> None:
    no_file = session.figure("warm_start_stop_no_file_ms", "start()+stop() again, no file", "ms")
    with_file = session.figure("warm_start_stop_file_ms", "start()+stop() again, with file", "ms")
    with tempfile.TemporaryDirectory() as output_root:
        variants = {}
        for tracker in TRACKERS:
            output_dir = Path(output_root, tracker)
            output_dir.mkdir()
            variants[tracker] = [
                (no_file, {"save_to_file": False}),
                (with_file, {"output_dir": str(output_dir)}),
            ]
        for index in range(-1, plan.warm_start_runs):  # round -1 warms up, untimed
            for tracker in rotated(TRACKERS, index):
                for figure, kwargs in variants[tracker]:
                    instance = makers[tracker](**kwargs)
                    started = time.perf_counter()
                    instance.start()
                    instance.stop()
                    if index >= 0:
                        figure.samples[tracker].append(1e3 * (time.perf_counter() - started))
    no_file.note = with_file.note = "a new tracker each time, constructed outside the timing"


def boundary(tracker: str, instance: Any) -> None:
    """One epoch edge pair: our epoch window, CodeCarbon's task."""
    if tracker == OURS:
        with instance.epoch():
            pass
    else:
        instance.start_task()
        instance.stop_task()


def measure_epochs(session: Session, plan: Plan, makers: dict[str, Callable]) -> None:
    no_file = session.figure(
        "epoch_boundary_us", "epoch boundary (epoch() / start_task()+stop_task()), no file", "µs"
    )
    with_file = session.figure(
        "epoch_boundary_file_us", "epoch boundary, with the row written", "µs"
    )
    with tempfile.TemporaryDirectory() as output_root:
        variants = [(no_file, {"save_to_file": False}), (with_file, {"output_dir": output_root})]
        for index in range(plan.epoch_rounds):
            for tracker in rotated(TRACKERS, index):
                for figure, kwargs in variants:
                    instance = makers[tracker](**kwargs)
                    instance.start()
                    for _ in range(3):
                        boundary(tracker, instance)
                    for _ in range(plan.epochs_per_round):
                        started = time.perf_counter()
                        boundary(tracker, instance)
                        figure.samples[tracker].append(1e6 * (time.perf_counter() - started))
                    instance.stop()
    no_file.note = "tracker running, no file; each boundary timed alone"
    with_file.note = "tracker running, rows to a file in a temporary folder"


def measure_matmul(session: Session, plan: Plan) -> None:
    figure = session.figure("matmul_slowdown", "matmul loop time, tracker at 1 Hz / none", "x")
    # One BLAS thread: on a small shared machine, BLAS threads contending with other processes
    # vary run times by tens of percent and would drown the trackers' cost.
    single_blas = {
        name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    }
    share = session.figure(
        "tracker_cpu_share", "tracker CPU / loop CPU, tracker at 1 Hz (none: noise floor)", "%"
    )
    count, *values = session.child(
        GUARD + LOAD_MAKERS + MATMUL_PROBE,
        str(plan.matmul_rounds),
        str(plan.matmul_target_s),
        env={**os.environ, **single_blas},
    )
    rounds = plan.matmul_rounds
    figure.samples[OURS] = values[:rounds]
    figure.samples[THEIRS] = values[rounds : 2 * rounds]
    share.samples[OURS] = values[3 * rounds : 4 * rounds]
    share.samples[THEIRS] = values[4 * rounds : 5 * rounds]
    noise = values[2 * rounds : 3 * rounds]
    own = session.figure(
        "tracker_cpu_share_own",
        "tracker_cpu_seconds / loop CPU, tracker at 1 Hz",
        "%",
        "what carbonmeter's rows say it cost (its per-thread CPU clocks) over the same runs; "
        "compare with the measured share above",
    )
    own.samples[OURS] = values[5 * rounds : 6 * rounds]
    # The paired design's resolution: the 95 % half-width of the mean per-round ratio.
    half_widths = {
        tracker: 1.96
        * statistics.stdev(figure.samples[tracker])
        / len(figure.samples[tracker]) ** 0.5
        for tracker in TRACKERS
        if len(figure.samples[tracker]) > 1
    }
    figure.note = (
        f"{count:.0f} matmuls of 256x256 float64 per run (~{plan.matmul_target_s:g} s, one BLAS "
        f"thread), {rounds} paired rounds in rotating order, each divided by the no-tracker run "
        "of the same round; 95 % half-width of the mean ratio: "
        + ", ".join(f"{tracker} ±{100 * width:.2f} %" for tracker, width in half_widths.items())
    )
    share.note = (
        "CPU of the process's other threads during the loop plus start() and stop() on the "
        "main thread, over the loop's main-thread CPU; with no tracker the same sum is "
        f"{statistics.median(noise):.3g} % (median)"
    )


@dataclass(frozen=True)
class Target:
    """Issue 21's budget for a figure: carbonmeter's median at most `most`, and CodeCarbon's
    median over it at least `ratio` where one is set; or at most `of_floor` times the median of
    the figure `floor`."""

    text: str
    most: float | None = None
    ratio: float | None = None
    floor: str | None = None
    of_floor: float | None = None


TARGETS = {
    "import_ms": Target("≤ 5 ms (≥ 15x)", most=5.0, ratio=15.0),
    "fresh_start_stop_no_file_ms": Target("≤ 5 ms (≥ 250x)", most=5.0, ratio=250.0),
    "fresh_start_stop_file_ms": Target("≤ 5 ms (≥ 250x)", most=5.0, ratio=250.0),
    "warm_start_stop_file_ms": Target("≤ 0.1 ms (≥ 40x)", most=0.1, ratio=40.0),
    "epoch_boundary_file_us": Target("≤ 10 µs", most=10.0),
    "sampler_default_counters": Target("≤ 0.005 CPU ms/s", most=0.005),
    "sampler_10hz": Target("≤ 1.2x the bare thread", floor="thread_floor_10hz", of_floor=1.2),
    "rss_tracker_mib": Target("≤ 4 MiB", most=4.0),
    "tracker_cpu_share": Target("≤ 0.05 %", most=0.05),
}


def verdict(figure: Figure, figures: list[Figure]) -> str:
    """The target of `figure` and whether this run met it."""
    target = TARGETS.get(figure.key)
    ours = figure.summary(OURS)
    if target is None:
        return ""
    if ours is None:
        return f"{target.text}: not measured"
    met = target.most is None or ours["median"] <= target.most
    ratio = figure.ratio()
    if target.ratio is not None:
        met = met and ratio is not None and ratio >= target.ratio
    if target.floor is not None and target.of_floor is not None:
        floor = next((f.summary(OURS) for f in figures if f.key == target.floor), None)
        if floor is None:
            return f"{target.text}: floor not measured"
        times = ours["median"] / floor["median"] if floor["median"] > 0 else float("inf")
        met = times <= target.of_floor
        return f"{target.text}: {number(times)}x, {'met' if met else 'missed'}"
    return f"{target.text}: {'met' if met else 'missed'}"


def read_first(path: str, prefix: str) -> str:
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip() if ":" in line else line
    except OSError:
        pass
    return "unknown"


def machine() -> dict[str, Any]:
    mem_kib = read_first("/proc/meminfo", "MemTotal").split()[0]
    return {
        "nproc": os.cpu_count(),
        "cpu_model": read_first("/proc/cpuinfo", "model name"),
        "ram_gib": round(int(mem_kib) / 2**20, 1) if mem_kib.isdigit() else None,
        "os": read_first("/etc/os-release", "PRETTY_NAME=").split("=", 1)[-1].strip().strip('"'),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in (OURS, THEIRS, "numpy")}


def number(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def cell(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return "n/a"
    return f"{number(summary['median'])} [{number(summary['min'])}-{number(summary['max'])}]"


def table(figures: list[Figure]) -> str:
    rows = [
        "| figure | unit | carbonmeter median [min-max] | CodeCarbon median [min-max] "
        "| CodeCarbon / carbonmeter | target (issue 21) |",
        "|---|---|---|---|---|---|",
    ]
    for figure in figures:
        ratio = figure.ratio()
        rows.append(
            f"| {figure.label} | {figure.unit} | {cell(figure.summary(OURS))} "
            f"| {cell(figure.summary(THEIRS))} | {'n/a' if ratio is None else number(ratio)} "
            f"| {verdict(figure, figures)} |"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="few, short samples (CI)")
    parser.add_argument("--output", type=Path, help="where to write the JSON")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    output = args.output or RESULTS_DIR / ("compare-quick.json" if args.quick else "compare.json")
    try:
        found = versions()
    except metadata.PackageNotFoundError as missing:
        parser.error(f"{missing.name} is not installed: pip install '.[bench]'")

    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    session = Session()
    makers = in_process_makers(session)
    print(
        f"carbonmeter {found[OURS]} vs CodeCarbon {found[THEIRS]}, "
        f"{'quick' if args.quick else 'full'} run",
        file=sys.stderr,
    )
    steps: list[tuple[str, Callable[[], None]]] = [
        ("cold imports", lambda: measure_imports(session, plan)),
        ("first start()+stop() in fresh processes", lambda: measure_fresh_starts(session, plan)),
        ("warm start()+stop()", lambda: measure_warm_starts(session, plan, makers)),
        ("epoch boundaries", lambda: measure_epochs(session, plan, makers)),
        ("samplers", lambda: measure_samplers(session, plan)),
        ("RSS", lambda: measure_rss(session, plan)),
        ("matmul slowdown", lambda: measure_matmul(session, plan)),
    ]
    # The 1-minute load average after each step says how busy the machine was meanwhile.
    step_log = []
    for name, step in steps:
        step_started = time.perf_counter()
        step()
        seconds = time.perf_counter() - step_started
        step_log.append(
            {"step": name, "s": round(seconds, 1), "load_1min": round(os.getloadavg()[0], 2)}
        )
        print(f"  {name}: {seconds:.0f} s", file=sys.stderr)
    loads = [load_before[0], *(entry["load_1min"] for entry in step_log)]
    figures = session.figures
    finished = datetime.datetime.now(datetime.timezone.utc)
    result = {
        "started_utc": started.isoformat(timespec="seconds"),
        "wall_s": round((finished - started).total_seconds()),
        "quick": args.quick,
        "machine": machine(),
        "versions": found,
        "load_average_before": [round(load, 2) for load in load_before],
        "load_average_after": [round(load, 2) for load in os.getloadavg()],
        "steps": step_log,
        "plan": plan.__dict__,
        "ratio": "CodeCarbon median / carbonmeter median; every figure is a cost, so above 1 "
        "carbonmeter is lighter",
        "network_attempts": session.all_network_attempts(),
        "figures": [
            {
                "key": figure.key,
                "figure": figure.label,
                "unit": figure.unit,
                "note": figure.note,
                OURS: figure.summary(OURS),
                THEIRS: figure.summary(THEIRS),
                "ratio": figure.ratio(),
                "target": verdict(figure, figures),
            }
            for figure in figures
        ],
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")

    info = result["machine"]
    print(
        f"{started:%Y-%m-%d %H:%M} UTC, {info['nproc']} CPUs ({info['cpu_model']}), "
        f"{info['ram_gib']} GiB, {info['os']}, Python {info['python']}; carbonmeter "
        f"{found[OURS]}, CodeCarbon {found[THEIRS]}, numpy {found['numpy']}; 1-min load "
        f"average {load_before[0]:.2f} before, {min(loads):.2f}-{max(loads):.2f} over the steps\n"
    )
    print(table(figures))
    print(
        "\nLower is better for every figure; the last column is CodeCarbon's median over "
        "carbonmeter's (above 1: carbonmeter is lighter).\nNotes: "
        + "; ".join(f"{figure.key}: {figure.note}" for figure in figures if figure.note)
    )
    print(f"\nJSON: {output}")
    if session.all_network_attempts():
        print(f"network access refused: {session.all_network_attempts()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
