"""What carbonmeter costs a process that does nothing else, measured beside one that only
sleeps, in the same run (issue 34, "the last microseconds" and "the first tracker").

The machine these run on is shared and its wall-clock timings are noisy, so every figure is
CPU time the kernel charged (getrusage, `/proc/<pid>/task/*/schedstat`) or a count of events
(wake-ups as voluntary context switches, system calls under `strace -c -f`), medians of fresh
processes started side by side:

- **sampler**: CPU per wall second of a process with a started tracker at the default period
  against one that only sleeps, over `--seconds` (60 by default), the marginal CPU above the
  sleeper and the ratio; each thread's wake-ups;
- **own account**: the tracker's `tracker_cpu_seconds` against the CPU its process spent
  beyond a bare one's over the same calls (start, sleep, stop), from getrusage;
- **warm start/stop**: the system calls of one `start()`+`stop()` of a new tracker after the
  first (sigaction, failed opens), from strace where it is installed;
- **import**: the CPU a fresh interpreter spends on `import carbonmeter` beyond a bare one
  (wait4) and the RSS import adds.

Usage: python benches/quiet.py [--seconds 60] [--runs 5] [--only sampler,own,warm,import]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# Prints "RESULT cpu_s wall_s <thread name>=<wake-ups>,...": process CPU (getrusage, every
# thread, exited ones too) over the sleep after `start()`, and each thread's wake-ups.
SAMPLER_CHILD = """
import os, resource, sys, time
seconds, track = float(sys.argv[1]), sys.argv[2] == "1"
if track:
    from carbonmeter import OfflineEmissionsTracker
    tracker = OfflineEmissionsTracker(country_iso_code="FRA", log_level="error", save_to_file=False)
    tracker.start()
def cpu_s():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
def wakes():
    # Wake-ups (voluntary context switches) and CPU µs (schedstat) of each thread, by name.
    out = {}
    for tid in os.listdir("/proc/self/task"):
        name = open(f"/proc/self/task/{tid}/comm").read().strip()
        for line in open(f"/proc/self/task/{tid}/status"):
            if line.startswith("voluntary_ctxt_switches"):
                out[name] = out.get(name, 0) + int(line.split()[1])
        cpu_us = int(open(f"/proc/self/task/{tid}/schedstat").read().split()[0]) // 1000
        out[name + ":us"] = out.get(name + ":us", 0) + cpu_us
    return out
before, wall = cpu_s(), time.monotonic()
woke = wakes()
time.sleep(seconds)
spent, wall = cpu_s() - before, time.monotonic() - wall
now = wakes()
if track:
    tracker.stop()
print("RESULT", spent, wall, ",".join(f"{k}={now[k] - woke.get(k, 0)}" for k in sorted(now)))
"""

# Prints "RESULT outside_s own_s": CPU of start + sleep + stop beyond a bare process's sleep, and
# the tracker's own account of the same run.
OWN_CHILD = """
import resource, sys, time
seconds, period = float(sys.argv[1]), float(sys.argv[2])
from carbonmeter import OfflineEmissionsTracker
def cpu_s():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
tracker = OfflineEmissionsTracker(
    country_iso_code="FRA", log_level="error", save_to_file=False, measure_power_secs=period
)
bare = cpu_s()
time.sleep(seconds)
bare = cpu_s() - bare
before = cpu_s()
tracker.start()
time.sleep(seconds)
tracker.stop()
outside = cpu_s() - before - bare
print("RESULT", outside, tracker.final_emissions_data.tracker_cpu_seconds)
"""

WARM_CHILD = """
from carbonmeter import OfflineEmissionsTracker
trackers = [
    OfflineEmissionsTracker(country_iso_code="FRA", log_level="error", save_to_file=False)
    for _ in range(11)
]
trackers[0].start(); trackers[0].stop()
open("/dev/null", "rb").read(0)  # a marker in the trace: warm starts follow
for tracker in trackers[1:]:
    tracker.start(); tracker.stop()
"""

RSS_CHILD = """
def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
bare = rss_kib()
import carbonmeter
print("RESULT", rss_kib() - bare, 0)
"""


def child(source: str, *args: str, python: str = sys.executable) -> subprocess.Popen[str]:
    return subprocess.Popen([python, "-c", source, *args], stdout=subprocess.PIPE, text=True)


def result(process: subprocess.Popen[str]) -> list[str]:
    out, _ = process.communicate()
    for line in out.splitlines():
        if line.startswith("RESULT"):
            return line.split()[1:]
    raise RuntimeError(f"no RESULT from a child: {out!r}")


def sampler(seconds: float, runs: int, baseline: str | None) -> None:
    """`runs` sleepers and `runs` trackers at once (and `runs` of the baseline's build): the
    same load on all."""
    kinds = {"sleeping process": (sys.executable, "0"), "tracker started": (sys.executable, "1")}
    if baseline:
        kinds["baseline tracker"] = (baseline, "1")
    processes = [
        (kind, child(SAMPLER_CHILD, str(seconds), track, python=python))
        for _ in range(runs)
        for kind, (python, track) in kinds.items()
    ]
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    wakes: dict[str, dict[str, list[int]]] = {kind: {} for kind in kinds}
    for kind, process in processes:
        spent, wall, threads = result(process)
        cpu[kind].append(1e3 * float(spent) / float(wall))
        for pair in threads.split(","):
            name, count = pair.split("=")
            wakes[kind].setdefault(name, []).append(int(count))
    idle = statistics.median(cpu["sleeping process"])
    print(f"sampler, default period, {seconds:g} s, medians of {runs} side by side:")
    for kind, samples in cpu.items():
        figure = statistics.median(samples)
        print(
            f"  {kind:<18} {figure:.4f} CPU ms/s {sorted(round(x, 4) for x in samples)}; "
            f"marginal {figure - idle:.4f}, ratio {figure / idle:.2f}x"
        )
        counts = wakes[kind]
        waking = ", ".join(
            f"{name} {statistics.median(n):g}"
            for name, n in sorted(counts.items())
            if ":" not in name
        )
        spent = ", ".join(
            f"{name[:-3]} {statistics.median(n):g} µs"
            for name, n in sorted(counts.items())
            if ":" in name
        )
        print(f"    wake-ups per thread: {waking}; CPU per thread (schedstat): {spent}")


def own_account(seconds: float, runs: int) -> None:
    for period in (15.0, 0.01):
        pairs = [result(child(OWN_CHILD, str(seconds), str(period))) for _ in range(runs)]
        outside = statistics.median(float(a) for a, _ in pairs)
        own = statistics.median(float(b) for _, b in pairs)
        print(
            f"own account, {seconds:g} s run, period {period:g} s: outside {1e3 * outside:.3f} "
            f"CPU ms, tracker_cpu_seconds {1e3 * own:.3f} ms (medians of {runs})"
        )


def warm_syscalls() -> None:
    if shutil.which("strace") is None:
        print("warm start/stop: strace not installed")
        return
    with tempfile.TemporaryDirectory() as root:
        trace = Path(root) / "trace"
        subprocess.run(
            ["strace", "-f", "-o", str(trace), sys.executable, "-c", WARM_CHILD], check=True
        )
        lines = trace.read_text().splitlines()
    marker = next(i for i, line in enumerate(lines) if '"/dev/null"' in line)
    counts: dict[str, int] = {}
    for line in lines[marker + 1 :]:
        match = re.match(r"\d+\s+(\w+)\(", line)
        if match:
            name = match.group(1)
            failed = " = -1 " in line
            key = f"{name} (failed)" if failed else name
            counts[key] = counts.get(key, 0) + 1
    # The last few calls are the interpreter's exit, not a start/stop.
    shown = ", ".join(f"{k} {v / 10:g}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    print(f"warm start()+stop(), system calls per pair (10 pairs, all threads): {shown}")


def child_cpu_s(python: str, code: str) -> float:
    """CPU (user + system) a fresh interpreter running `code` used, from wait4."""
    process = subprocess.Popen([python, "-c", code])
    _, _, usage = os.wait4(process.pid, 0)
    return usage.ru_utime + usage.ru_stime


def import_cost(runs: int, baseline: str | None) -> None:
    """CPU a fresh interpreter spends to import carbonmeter beyond a bare one, interleaved."""
    pythons = {"this build": sys.executable}
    if baseline:
        pythons["baseline"] = baseline
    for label, python in pythons.items():
        bare, imported = [], []
        for _ in range(runs):
            bare.append(child_cpu_s(python, "pass"))
            imported.append(child_cpu_s(python, "import carbonmeter"))
        added_ms = 1e3 * (statistics.median(imported) - statistics.median(bare))
        rss = [float(result(child(RSS_CHILD, python=python))[0]) for _ in range(max(3, runs // 3))]
        print(
            f"import carbonmeter ({label}): {added_ms:.2f} CPU ms over a bare interpreter "
            f"(medians of {runs} interleaved), RSS added {statistics.median(rss) / 1024:.2f} MiB"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default="sampler,own,warm,import")
    parser.add_argument("--baseline", help="another build's python, run beside this one")
    args = parser.parse_args()
    only = set(args.only.split(","))
    os.environ.setdefault("CARBONMETER_LOG_LEVEL", "error")
    if "import" in only:
        import_cost(max(args.runs, 21), args.baseline)
    if "warm" in only:
        warm_syscalls()
    if "own" in only:
        own_account(min(args.seconds, 1.0), args.runs)
    if "sampler" in only:
        sampler(args.seconds, args.runs, args.baseline)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
