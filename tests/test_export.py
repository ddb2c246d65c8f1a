"""Fleet export for real: Debian's Pushgateway, node_exporter and Prometheus on local ports, read
back through Prometheus's query API; OTLP/HTTP decoded with the official opentelemetry-proto
messages by a local receiver. The binaries' tests skip without them (see fixtures/prometheus.py).
"""

from __future__ import annotations

import csv
import http.server
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fixtures import prometheus as prom

from carbonmeter import EmissionsTracker

J_PER_KWH = 3.6e6
SECRET = "Bearer s3cret-otlp-token-0042"


def settings(folder: Path, **extra: Any) -> dict[str, Any]:
    return {
        "output_dir": str(folder),
        "country_iso_code": "FRA",
        "force_cpu_power": 40.0,
        "force_ram_power": 5.0,
        "measure_power_secs": 0.1,
        "project_name": "fleet",
        **extra,
    }


def train(tracker: EmissionsTracker, epochs: int = 3, epoch_s: float = 0.3) -> str:
    """Runs `epochs` training epochs and a validation one; returns the run id."""
    with tracker:
        for _ in range(epochs):
            with tracker.epoch():
                time.sleep(epoch_s)
        with tracker.epoch(phase="validation"):
            time.sleep(epoch_s / 2)
    data = tracker.final_emissions_data
    assert data is not None
    return data.run_id


def csv_run_row(folder: Path, run_id: str) -> dict[str, str]:
    with (folder / "emissions.csv").open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["run_id"] == run_id and not r["window"]]
    assert len(rows) == 1, rows
    return rows[0]


def warnings_of(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("carbonmeter")
        and record.levelno >= logging.WARNING
        and text in record.getMessage()
    ]


# ---- Prometheus ---------------------------------------------------------------------------


@dataclass
class Stack:
    gateway: prom.Service
    node: prom.Service
    prometheus: prom.Service
    textfile_dir: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("prometheus")
    textfile_dir = folder / "textfile"
    textfile_dir.mkdir()
    gateway = prom.pushgateway(folder)
    node = prom.node_exporter(folder, textfile_dir)
    server = prom.prometheus(folder, gateway, node)
    started: list[prom.Service] = []
    try:
        for service in (gateway, node, server):
            service.start()
            started.append(service)
        yield Stack(gateway, node, server, textfile_dir)
    finally:
        for service in reversed(started):
            service.stop()


def energy_query(run_id: str, job: str) -> str:
    return f'sum(carbonmeter_energy_joules_total{{run_id="{run_id}",job="{job}"}})'


@pytest.mark.slow
def test_pushgateway_counters_reach_prometheus_and_equal_the_csv(
    stack: Stack, isolated: Path
) -> None:
    tracker = EmissionsTracker(
        **settings(
            isolated, save_to_prometheus=True, prometheus_url=f"127.0.0.1:{stack.gateway.port}"
        )
    )
    run_id = train(tracker)
    row = csv_run_row(isolated, run_id)
    energy_j = float(row["energy_consumed"]) * J_PER_KWH
    got = prom.wait_for_value(
        stack.prometheus, energy_query(run_id, "carbonmeter"), energy_j, rel=0.005
    )
    assert got == pytest.approx(energy_j, rel=0.005)
    emissions_g = float(row["emissions"]) * 1000
    got = prom.wait_for_value(
        stack.prometheus,
        f'sum(carbonmeter_emissions_grams_total{{run_id="{run_id}"}})',
        emissions_g,
        rel=0.005,
    )
    assert got == pytest.approx(emissions_g, rel=0.005)
    # Energy is split by the phase it was spent in; the phases add up to the run.
    by_phase = prom.query(
        stack.prometheus,
        f'sum by (phase, component) (carbonmeter_energy_joules_total{{run_id="{run_id}"}})',
    )
    seen = {(s["metric"].get("phase", ""), s["metric"]["component"]) for s in by_phase}  # type: ignore[union-attr]
    assert {("train", "cpu"), ("validation", "cpu"), ("train", "ram")} <= seen
    power = prom.query(
        stack.prometheus, f'carbonmeter_power_watts{{run_id="{run_id}",component="cpu"}}'
    )
    assert float(power[0]["value"][1]) == pytest.approx(40.0, rel=0.05)  # type: ignore[index]
    intensity = prom.query(
        stack.prometheus, f'carbonmeter_intensity_grams_per_kwh{{run_id="{run_id}"}}'
    )
    assert float(intensity[0]["value"][1]) == pytest.approx(float(row["intensity_g_per_kwh"]))  # type: ignore[index]
    labels = by_phase[0]["metric"]
    assert isinstance(labels, dict)
    series = prom.query(stack.prometheus, f'carbonmeter_energy_joules_total{{run_id="{run_id}"}}')
    assert series[0]["metric"]["project"] == "fleet"  # type: ignore[index]
    assert series[0]["metric"]["experiment"] == row["experiment_id"]  # type: ignore[index]


@pytest.mark.slow
def test_textfile_counters_reach_prometheus_through_node_exporter(
    stack: Stack, isolated: Path
) -> None:
    tracker = EmissionsTracker(
        **settings(isolated, prometheus_textfile_dir=str(stack.textfile_dir), rank=3)
    )
    run_id = train(tracker)
    energy_j = float(csv_run_row(isolated, run_id)["energy_consumed"]) * J_PER_KWH
    got = prom.wait_for_value(stack.prometheus, energy_query(run_id, "node"), energy_j, rel=0.005)
    assert got == pytest.approx(energy_j, rel=0.005)
    names = sorted(p.name for p in stack.textfile_dir.iterdir() if run_id in p.name)
    # Written whole through a rename: no temporary file is left behind.
    assert names == [f"carbonmeter-{run_id}-rank3.prom"]
    ranked = prom.query(
        stack.prometheus, f'carbonmeter_energy_joules_total{{run_id="{run_id}",rank="3"}}'
    )
    assert ranked


@pytest.mark.slow
def test_gateway_down_mid_run_then_back_receives_the_total(
    stack: Stack, isolated: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="carbonmeter")
    tracker = EmissionsTracker(
        **settings(
            isolated, save_to_prometheus=True, prometheus_url=f"127.0.0.1:{stack.gateway.port}"
        )
    )
    with tracker:
        with tracker.epoch():
            time.sleep(0.3)
        stack.gateway.stop()
        for _ in range(3):
            with tracker.epoch():
                time.sleep(0.4)
        stack.gateway.start()
        with tracker.epoch():
            time.sleep(0.3)
    data = tracker.final_emissions_data
    assert data is not None
    energy_j = float(csv_run_row(isolated, data.run_id)["energy_consumed"]) * J_PER_KWH
    got = prom.wait_for_value(
        stack.prometheus, energy_query(data.run_id, "carbonmeter"), energy_j, rel=0.005
    )
    assert got == pytest.approx(energy_j, rel=0.005)
    # One warning per cause: a pooled connection is reset by the stop, new ones are refused.
    faults = warnings_of(caplog, "Pushgateway")
    assert len(faults) == len(set(faults)), faults
    assert 1 <= len(faults) <= 2, faults
    assert any("connection refused" in fault for fault in faults), faults


# ---- OTLP ---------------------------------------------------------------------------------


class Receiver:
    """An OTLP/HTTP receiver on a thread: decodes each request with opentelemetry-proto."""

    def __init__(self, status: int = 200) -> None:
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

        self.requests: list[Any] = []
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = metrics_service_pb2.ExportMetricsServiceRequest()
                request.ParseFromString(body)
                receiver.requests.append((self.path, self.headers["Content-Type"], request))
                receiver.headers.append(dict(self.headers))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def last_points(self, metric: str) -> dict[tuple[tuple[str, str], ...], float]:
        """The last value of each series (its attributes) of `metric` over all requests."""
        last: dict[tuple[tuple[str, str], ...], float] = {}
        for _path, _type, request in self.requests:
            for resource in request.resource_metrics:
                for scope in resource.scope_metrics:
                    for found in scope.metrics:
                        if found.name != metric:
                            continue
                        points = found.sum.data_points or found.gauge.data_points
                        for point in points:
                            key = tuple(
                                sorted((a.key, a.value.string_value) for a in point.attributes)
                            )
                            last[key] = point.as_double
        return last


@pytest.fixture
def otlp_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("CARBONMETER_EXPORT_TIMEOUT_S", "0.5")
    return monkeypatch


def test_otlp_last_points_equal_the_csv_and_credentials_stay_out(
    isolated: Path, otlp_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="carbonmeter")
    receiver = Receiver()
    try:
        otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        otlp_env.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization={SECRET.replace(' ', '%20')}")
        otlp_env.setenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-team=ml")
        tracker = EmissionsTracker(**settings(isolated, log_level="debug"))
        run_id = train(tracker)
        text = repr(tracker)
    finally:
        receiver.close()
    row = csv_run_row(isolated, run_id)
    energy = receiver.last_points("carbonmeter.energy")
    total_j = sum(v for k, v in energy.items() if ("run_id", run_id) in k)
    assert total_j == pytest.approx(float(row["energy_consumed"]) * J_PER_KWH, rel=0.005)
    emissions = receiver.last_points("carbonmeter.emissions")
    assert sum(emissions.values()) == pytest.approx(float(row["emissions"]) * 1000, rel=0.005)
    phases = {dict(k).get("phase") for k in energy}
    assert phases == {"train", "validation", None}
    # The whole footprint (issue 30): embodied carbon and off-site water, as the run row has
    # them; no on-site point without a WUE (never a 0).
    [embodied_g] = receiver.last_points("carbonmeter.embodied").values()
    assert embodied_g == pytest.approx(float(row["embodied_emissions"]) * 1000, rel=0.005)
    water = {dict(k)["term"]: v for k, v in receiver.last_points("carbonmeter.water").items()}
    assert set(water) == {"offsite"}
    assert water["offsite"] == pytest.approx(float(row["water_offsite"]), rel=0.005)
    path, content_type, request = receiver.requests[-1]
    assert (path, content_type) == ("/v1/metrics", "application/x-protobuf")
    resource = request.resource_metrics[0]
    assert resource.resource.attributes[0].value.string_value == "carbonmeter"
    metrics = {m.name: m for m in resource.scope_metrics[0].metrics}
    assert metrics["carbonmeter.energy"].unit == "J"
    assert metrics["carbonmeter.energy"].sum.is_monotonic
    assert metrics["carbonmeter.energy"].sum.aggregation_temporality == 2  # CUMULATIVE
    assert metrics["carbonmeter.emissions"].unit == "g"
    assert metrics["carbonmeter.power"].unit == "W"
    point = metrics["carbonmeter.energy"].sum.data_points[0]
    assert 0 < point.start_time_unix_nano < point.time_unix_nano
    assert {"project", "experiment", "run_id", "component"} <= {a.key for a in point.attributes}
    assert receiver.headers[-1]["authorization"] == SECRET
    assert receiver.headers[-1]["x-team"] == "ml"
    # The credential reaches the receiver only.
    assert SECRET not in text and "s3cret" not in text
    assert "s3cret" not in caplog.text
    assert "s3cret" not in (isolated / "emissions.csv").read_text(encoding="utf-8")


def test_otlp_receiver_answering_500_warns_once_and_the_csv_is_written(
    isolated: Path, otlp_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="carbonmeter")
    receiver = Receiver(status=500)
    try:
        otlp_env.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization={SECRET.replace(' ', '%20')}")
        tracker = EmissionsTracker(**settings(isolated, otlp_endpoint=receiver.url))
        run_id = train(tracker, epochs=4)
    finally:
        receiver.close()
    assert len(receiver.requests) >= 2
    refused = warnings_of(caplog, "OTLP endpoint")
    assert len(refused) == 1, refused
    assert "HTTP 500" in refused[0]
    assert "s3cret" not in caplog.text
    assert float(csv_run_row(isolated, run_id)["energy_consumed"]) > 0


def test_otlp_receiver_that_never_answers_does_not_hold_stop(
    isolated: Path, otlp_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="carbonmeter")
    # Accepts connections (the kernel's backlog) and never reads or answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1/metrics"
        otlp_env.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", url)
        tracker = EmissionsTracker(**settings(isolated))
        tracker.start()
        for _ in range(3):
            with tracker.epoch():
                time.sleep(0.2)
        started = time.monotonic()
        tracker.stop()
        stop_s = time.monotonic() - started
    # One request timeout (0.5 s here) and a little: the bound, not a speed target.
    assert stop_s < 2.0, stop_s
    assert warnings_of(caplog, "timed out"), caplog.text
    data = tracker.final_emissions_data
    assert data is not None
    assert float(csv_run_row(isolated, data.run_id)["energy_consumed"]) > 0


def test_bad_export_settings_name_the_value_and_keep_secrets(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match=r"prometheus_textfile_dir=.*no-such.*existing folder"):
        EmissionsTracker(prometheus_textfile_dir=str(isolated / "no-such"), save_to_file=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization: s3cret")
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_HEADERS") as raised:
        EmissionsTracker(save_to_file=False)
    assert "s3cret" not in str(raised.value)
    assert "key=value" in str(raised.value)
