"""What exporting costs the training process, export off against on, measured interleaved.

- the epoch boundary on the caller's thread: `with tracker.epoch(): pass` (each edge hands a
  sample to the exporter thread; the push itself happens there);
- stop() of a run that exported (it waits for its last push, bounded by one request timeout);
- RSS added by a started tracker that pushes every 0.1 s (fresh processes, VmRSS).

Pushes go to a local OTLP/HTTP sink (a thread of this script answering 200 at once) and to a
textfile folder; with --pushgateway HOST:PORT, to that gateway too. The cost of one push itself
(encode + HTTP round trip) is in the criterion bench: `cargo bench --bench export`.

Run `python benches/export.py [--quick]`; prints medians in a Markdown table.
"""

from __future__ import annotations

import argparse
import http.server
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from carbonmeter import EmissionsTracker


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


RSS_CHILD = """
import sys, time
def rss_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")
from carbonmeter import EmissionsTracker
kwargs = eval(sys.argv[1])
tracker = EmissionsTracker(**kwargs)
before = rss_kib()
tracker.start()
time.sleep(2.0)
after = rss_kib()
tracker.stop()
print("RESULT", after - before)
"""


def rss_added_kib(kwargs: dict[str, Any]) -> int:
    result = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, repr(kwargs)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
    return int(line.split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few samples (CI)")
    parser.add_argument("--pushgateway", help="also push to this gateway (HOST:PORT)")
    args = parser.parse_args()
    edges = 200 if args.quick else 2000
    runs = 2 if args.quick else 7

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    folder = tempfile.mkdtemp(prefix="carbonmeter-export-bench-")
    base = {
        "save_to_file": False,
        "country_iso_code": "FRA",
        "log_level": "error",
        "measure_power_secs": 0.1,
    }
    exporting = {
        **base,
        "otlp_endpoint": f"http://127.0.0.1:{server.server_address[1]}",
        "prometheus_textfile_dir": folder,
    }
    if args.pushgateway:
        exporting |= {"save_to_prometheus": True, "prometheus_url": args.pushgateway}
    modes = {"off": base, "on": exporting}

    edge_us: dict[str, list[float]] = {mode: [] for mode in modes}
    stop_ms: dict[str, list[float]] = {mode: [] for mode in modes}
    rss_kib: dict[str, list[int]] = {mode: [] for mode in modes}
    for _ in range(runs):
        for mode, kwargs in modes.items():
            tracker = EmissionsTracker(**kwargs)
            tracker.start()
            for _ in range(edges):
                started = time.perf_counter()
                with tracker.epoch():
                    pass
                edge_us[mode].append((time.perf_counter() - started) * 1e6)
            started = time.perf_counter()
            tracker.stop()
            stop_ms[mode].append((time.perf_counter() - started) * 1e3)
            rss_kib[mode].append(rss_added_kib(kwargs))
    server.shutdown()

    print("| figure | export off | export on |")
    print("|---|---|---|")
    for name, values, unit in (
        ("epoch boundary (caller's thread)", edge_us, "µs"),
        ("stop()", stop_ms, "ms"),
    ):
        off, on = (statistics.median(values[m]) for m in modes)
        print(f"| {name}, median | {off:.1f} {unit} | {on:.1f} {unit} |")
    off, on = (statistics.median(rss_kib[m]) / 1024 for m in modes)
    print(f"| RSS added by a started tracker, median | {off:.2f} MiB | {on:.2f} MiB |")
    print(f"\n{runs} runs x {edges} epochs per mode, interleaved; CPU count {os.cpu_count()}")


if __name__ == "__main__":
    main()
