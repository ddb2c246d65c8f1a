"""The carbon-aware start (`carbonmeter wait`, `run --when-greener`, `wait_for_greener`)
against local servers answering with NESO's and Electricity Maps' documented shapes."""

from __future__ import annotations

import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from helpers import child_env, rows_of

from carbonmeter import EmissionsTracker, wait_for_greener
from carbonmeter.cli import main
from carbonmeter.forecast import describe, parse_duration, plan, sleep_until

TOKEN = "forecast-token-1234"
HALF_HOUR_S = 1800


def _stamp(unix_s: float, neso: bool) -> str:
    at = datetime.fromtimestamp(unix_s, tz=timezone.utc)
    if neso:  # NESO's own form: minutes, no seconds
        return at.strftime("%Y-%m-%dT%H:%MZ")
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeForecasts(ThreadingHTTPServer):
    """NESO's `/intensity/{from}/fw48h` and `/regional/intensity/{from}/fw48h/postcode/{pc}`,
    and Electricity Maps' `/v3/carbon-intensity/forecast?zone=Z`, canned: period `i` from the
    one in progress has `figures[i]` (half hours for NESO, hours for Electricity Maps)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, figures: list[float], mode: str = "ok") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.figures = figures
        self.mode = mode
        self.requests: list[tuple[str, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def neso(self, path: str) -> dict[str, object]:
        parts = path.strip("/").split("/")
        start = parts.index("intensity") + 1
        at = datetime.strptime(parts[start], "%Y-%m-%dT%H:%MZ").replace(tzinfo=timezone.utc)
        first = math.floor(at.timestamp() / HALF_HOUR_S) * HALF_HOUR_S
        periods = [
            {
                "from": _stamp(first + i * HALF_HOUR_S, neso=True),
                "to": _stamp(first + (i + 1) * HALF_HOUR_S, neso=True),
                "intensity": {"forecast": figure, "actual": None, "index": "moderate"},
            }
            for i, figure in enumerate(self.figures)
        ]
        if "postcode" in parts:
            region = {
                "regionid": 12,
                "dnoregion": "SSE South",
                "shortname": "South England",
                "postcode": parts[-1],
                "data": [dict(period, generationmix=[]) for period in periods],
            }
            return {"data": region}
        return {"data": periods}

    def electricitymaps(self, zone: str) -> dict[str, object]:
        first = math.floor(time.time() / 3600) * 3600
        forecast = [
            {"carbonIntensity": figure, "datetime": _stamp(first + i * 3600, neso=False)}
            for i, figure in enumerate(self.figures)
        ]
        return {"zone": zone, "forecast": forecast, "updatedAt": _stamp(first, neso=False)}


class _Handler(BaseHTTPRequestHandler):
    server: FakeForecasts

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        self.server.requests.append((self.path, self.headers.get("auth-token")))
        if self.server.mode == "slow":
            time.sleep(3)
        if self.server.mode == "garbage":
            return self._reply(200, b"<html>maintenance</html>")
        if self.server.mode == "elsewhere":  # the same server, named otherwise: another host
            port = self.server.server_address[1]
            return self._reply(302, b"", location=f"http://localhost:{port}{self.path}")
        if url.path.startswith("/v3/"):
            if self.headers.get("auth-token") != TOKEN:
                return self._reply(401, b'{"error":"unauthorized"}')
            zone = parse_qs(url.query).get("zone", [""])[0]
            body = self.server.electricitymaps(zone)
        else:
            body = self.server.neso(url.path)
        self._reply(200, json.dumps(body).encode())

    def _reply(self, status: int, body: bytes, location: str | None = None) -> None:
        self.send_response(status)
        if location is not None:
            self.send_header("Location", location)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out first
            pass


@pytest.fixture
def forecasts(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeForecasts]]:
    """Starts servers with `serve()`; no proxy, a 0.5 s timeout, and no token from the shell."""
    monkeypatch.delenv("ELECTRICITYMAPS_API_TOKEN", raising=False)
    monkeypatch.setenv("CARBONMETER_LIVE_TIMEOUT_S", "0.5")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    servers: list[FakeForecasts] = []
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def serve(servers: list[FakeForecasts], figures: list[float], mode: str = "ok") -> FakeForecasts:
    server = FakeForecasts(figures, mode)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    servers.append(server)
    return server


#: By hand: a 1 h run is two half hours; the pairs' means from the half hour in progress are
#: 250, 200, 125, 75, 100, 200, 250, so the cleanest starts 1.5 h after it began, at 75 g/kWh.
BY_HAND = [300.0, 200.0, 200.0, 50.0, 100.0, 100.0, 300.0, 200.0]


def half_hour_start(unix_s: float) -> float:
    return math.floor(unix_s / HALF_HOUR_S) * HALF_HOUR_S


def test_neso_best_window_is_the_one_found_by_hand(forecasts: list[FakeForecasts]) -> None:
    server = serve(forecasts, BY_HAND)
    chosen = plan("1h", "4h", country_iso_code="GBR", neso_base_url=server.url)
    assert chosen.reason is None
    assert chosen.start_unix_s == half_hour_start(chosen.now_unix_s) + 3 * HALF_HOUR_S
    assert chosen.best_g_per_kwh == pytest.approx(75.0)
    assert chosen.source == "NESO Carbon Intensity API, Great Britain"
    # Asked a minute into the half hour in progress, for 48 h, nationally.
    (path, token), *_ = server.requests
    assert re.fullmatch(r"/intensity/\d{4}-\d\d-\d\dT\d\d:(01|31)Z/fw48h", path), path
    assert token is None


def test_a_forecast_is_fetched_once_a_half_hour(forecasts: list[FakeForecasts]) -> None:
    server = serve(forecasts, BY_HAND)
    first = plan("1h", "4h", country_iso_code="GBR", neso_base_url=server.url)
    if half_hour_start(time.time()) != half_hour_start(first.now_unix_s):
        pytest.skip("the half hour turned between the two plans")
    second = plan("2h", "6h", country_iso_code="GBR", neso_base_url=server.url)
    assert len(server.requests) == 1
    # Four half hours: 187.5, 137.5, 112.5 (200, 50, 100, 100 from 1 h), 137.5, 175.
    assert second.best_g_per_kwh == pytest.approx(112.5)


def test_neso_by_postcode_reads_the_regional_shape(forecasts: list[FakeForecasts]) -> None:
    server = serve(forecasts, BY_HAND)
    chosen = plan("1h", "4h", postcode="ox1 3qd", neso_base_url=server.url)
    assert chosen.source == "NESO Carbon Intensity API, postcode OX1"
    assert chosen.best_g_per_kwh == pytest.approx(75.0)
    assert server.requests[0][0].endswith("/fw48h/postcode/OX1")
    with pytest.raises(ValueError, match="postcode"):
        plan("1h", "4h", postcode="not a postcode", neso_base_url=server.url)


def test_electricitymaps_forecast_with_its_token(forecasts: list[FakeForecasts]) -> None:
    # Hours from the one in progress: the cleanest 1 h run is the 4th hour's.
    server = serve(forecasts, [400.0, 300.0, 350.0, 90.0, 380.0, 400.0])
    chosen = plan(
        "1h",
        "5h",
        country_iso_code="DEU",
        electricitymaps_api_token=TOKEN,
        electricitymaps_base_url=f"{server.url}/v3",
    )
    assert chosen.reason is None, chosen.reason
    assert chosen.start_unix_s == math.floor(chosen.now_unix_s / 3600) * 3600 + 3 * 3600
    assert chosen.best_g_per_kwh == pytest.approx(90.0)
    assert chosen.source == "Electricity Maps forecast, zone DE"
    path, token = server.requests[0]
    assert path == "/v3/carbon-intensity/forecast?zone=DE" and token == TOKEN


def test_a_refused_token_starts_now_and_is_never_shown(forecasts: list[FakeForecasts]) -> None:
    server = serve(forecasts, [400.0, 90.0])
    chosen = plan(
        "1h",
        "5h",
        country_iso_code="DEU",
        electricitymaps_api_token="wrong-token-5678",
        electricitymaps_base_url=f"{server.url}/v3",
    )
    assert chosen.start_unix_s == chosen.now_unix_s
    assert chosen.reason is not None and "HTTP 401" in chosen.reason
    assert "wrong-token-5678" not in chosen.reason + repr(chosen)


def test_a_redirect_to_another_host_is_not_followed(forecasts: list[FakeForecasts]) -> None:
    server = serve(forecasts, [400.0, 90.0], mode="elsewhere")
    chosen = plan(
        "1h",
        "5h",
        country_iso_code="DEU",
        electricitymaps_api_token=TOKEN,
        electricitymaps_base_url=f"{server.url}/v3",
    )
    assert chosen.reason is not None
    assert "redirected to another host (localhost:" in chosen.reason
    assert len(server.requests) == 1, "the token went to one host, once"


def test_a_slow_source_times_out_and_starts_now(forecasts: list[FakeForecasts]) -> None:
    server = serve(forecasts, BY_HAND, mode="slow")
    began = time.monotonic()
    chosen = plan("1h", "4h", country_iso_code="GBR", neso_base_url=server.url)
    assert time.monotonic() - began < 2.5
    assert chosen.reason is not None and "timed out" in chosen.reason
    assert chosen.start_unix_s == chosen.now_unix_s


def test_garbage_starts_now_and_says_why(forecasts: list[FakeForecasts]) -> None:
    server = serve(forecasts, BY_HAND, mode="garbage")
    chosen = plan("1h", "4h", country_iso_code="GBR", neso_base_url=server.url)
    assert chosen.reason is not None and "unreadable answer" in chosen.reason
    assert chosen.best_g_per_kwh is None


def test_flat_forecast_deadline_and_early_end(forecasts: list[FakeForecasts]) -> None:
    flat = serve(forecasts, [180.0] * 96)
    chosen = plan("3h", "24h", country_iso_code="GBR", neso_base_url=flat.url)
    assert chosen.start_unix_s == chosen.now_unix_s and chosen.reason is None
    assert chosen.best_g_per_kwh == chosen.now_g_per_kwh == pytest.approx(180.0)
    short = serve(forecasts, BY_HAND)
    chosen = plan("2h", "1h", country_iso_code="GBR", neso_base_url=short.url)
    assert chosen.reason is not None and "deadline (within 1h) is shorter" in chosen.reason
    early = serve(forecasts, [300.0, 300.0, 100.0, 100.0])
    chosen = plan("3h", "12h", country_iso_code="GBR", neso_base_url=early.url)
    assert chosen.reason is not None and "the forecast ends" in chosen.reason
    assert chosen.start_unix_s == chosen.now_unix_s


def test_no_forecast_for_this_zone(forecasts: list[FakeForecasts]) -> None:
    chosen = plan("1h", "4h", country_iso_code="FRA")
    assert chosen.source == "none"
    assert chosen.reason is not None
    assert chosen.reason.startswith("no forecast for this zone (FRA)")
    assert describe(chosen, 3600).startswith("starting now: no forecast for this zone (FRA)")


def test_print_forms_are_slurm_begin_and_at_t(
    forecasts: list[FakeForecasts], capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(forecasts, BY_HAND)
    common = ["-d", "1h", "--within", "4h", "--country", "GBR", "--neso-base-url", server.url]
    printed = {}
    for form in ("iso", "slurm", "at"):
        assert main(["wait", *common, "--print", form]) == 0
        out, err = capsys.readouterr()
        printed[form] = out.strip()
        assert "75 g/kWh forecast over the 1h00m run vs" in err
    start = datetime.fromtimestamp(half_hour_start(time.time()) + 3 * HALF_HOUR_S).astimezone()
    # Slurm's --begin: YYYY-MM-DD[THH:MM[:SS]]; at -t: [[CC]YY]MMDDhhmm[.ss]; both local time.
    assert printed["slurm"] == start.strftime("%Y-%m-%dT%H:%M:%S")
    assert printed["at"] == start.strftime("%Y%m%d%H%M.%S")
    assert datetime.fromisoformat(printed["iso"]) == start
    assert main(["wait", *common, "--print"]) == 0
    assert capsys.readouterr().out.strip() == printed["iso"]


def test_the_saving_is_priced_from_power_or_a_previous_run(
    forecasts: list[FakeForecasts], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(forecasts, BY_HAND)
    common = ["-d", "1h", "--within", "4h", "--country", "GBR", "--neso-base-url", server.url]
    main(["wait", *common, "--power-w", "1000", "--print"])
    err = capsys.readouterr().err
    now_g = float(re.search(r"vs (\d+) g/kWh", err).group(1))  # type: ignore[union-attr]
    # 1 kW for 1 h is 1 kWh: saved (now - 75) g.
    saved = re.search(r"saves (\S+) kg CO2eq on 1 kWh", err)
    assert saved and float(saved.group(1)) == pytest.approx((now_g - 75) / 1000, rel=0.01)
    previous = tmp_path / "emissions.csv"
    previous.write_text("run_id,energy_consumed,window\na,9,\nb,2,\nb,1,epoch-0\n")
    main(["wait", *common, "--like", str(previous), "--print"])
    assert "on 2 kWh" in capsys.readouterr().err


def test_sleep_never_passes_the_deadline_and_counts_down() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    began = time.monotonic()
    sleep_until(time.time() + 3600, time.time() + 0.3, stream=stream)
    assert 0.25 < time.monotonic() - began < 1.5
    assert "starting in" in stream.getvalue()
    quiet = io.StringIO()
    sleep_until(time.time() - 10, time.time() + 10, stream=quiet)
    assert quiet.getvalue() == ""


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration("1d") == 86_400
    assert parse_duration("45s") == 45
    for bad in ("", "2x", "h", "1h 2q"):
        with pytest.raises(ValueError, match="expected a duration"):
            parse_duration(bad)


def test_the_run_that_follows_records_what_it_waited_for(
    forecasts: list[FakeForecasts],
) -> None:
    server = serve(forecasts, [180.0] * 96)
    stream = io.StringIO()
    chosen = wait_for_greener(
        "1h", "4h", country_iso_code="GBR", neso_base_url=server.url, stream=stream
    )
    assert "start " in stream.getvalue() and "(now)" in stream.getvalue()
    with EmissionsTracker(country_iso_code="GBR", save_to_file=False) as tracker:
        pass
    data = tracker.final_emissions_data
    assert data is not None
    assert data.scheduled_intensity_g_per_kwh == pytest.approx(180.0)
    assert data.submitted_intensity_g_per_kwh == pytest.approx(180.0)
    expected = datetime.fromtimestamp(round(chosen.start_unix_s), tz=timezone.utc)
    assert data.scheduled_start == expected.strftime("%Y-%m-%dT%H:%M:%SZ")
    # Taken by that run: the next one did not wait.
    with EmissionsTracker(country_iso_code="GBR", save_to_file=False) as later:
        pass
    assert later.final_emissions_data is not None
    assert later.final_emissions_data.scheduled_start is None


def test_run_when_greener_writes_the_schedule_in_its_row(
    forecasts: list[FakeForecasts], isolated: Path
) -> None:
    server = serve(forecasts, [150.0] * 96)
    code = main(
        [
            "run",
            "--when-greener",
            "-d",
            "30m",
            "--within",
            "2h",
            "--country",
            "GBR",
            "--neso-base-url",
            server.url,
            "--output-dir",
            str(isolated),
            "--",
            sys.executable,
            "-c",
            "pass",
        ]
    )
    assert code == 0
    (row,) = rows_of(isolated / "emissions.csv")
    assert float(row["scheduled_intensity_g_per_kwh"]) == pytest.approx(150.0)
    assert row["scheduled_start"].endswith("Z")
    assert main(["run", "--when-greener", "--", "true"]) == 2
    assert main(["run", "-d", "1h", "--", "true"]) == 2


def test_the_report_says_what_waiting_saved(
    forecasts: list[FakeForecasts], isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(forecasts, [150.0] * 96)
    wait_for_greener(
        "1h", "4h", country_iso_code="GBR", neso_base_url=server.url, stream=io.StringIO()
    )
    with EmissionsTracker(
        country_iso_code="GBR", output_dir=str(isolated), force_cpu_power=3600.0
    ) as tracker:
        time.sleep(0.2)
    # The forecast at submission read 250 (a row as a wait that chose a later start writes it).
    path = isolated / "emissions.csv"
    path.write_text(path.read_text().replace(",150.0,150.0", ",150.0,250.0"), encoding="utf-8")
    (row,) = rows_of(path)
    assert row["submitted_intensity_g_per_kwh"] == "250.0"
    assert main(["report", str(path), "--format", "json"]) == 0
    (waited,) = json.loads(capsys.readouterr().out)["what_if_when"]
    energy_kwh = float(row["energy_consumed"])
    assert waited["saved_kg"] == pytest.approx(energy_kwh * 100 / 1000)
    assert waited["run_id"] == tracker.final_emissions_data.run_id  # type: ignore[union-attr]
    assert main(["report", str(path), "--format", "markdown"]) == 0
    assert "## What waiting for a cleaner start saved" in capsys.readouterr().out


@pytest.mark.slow
def test_sigint_during_the_wait_exits_130_without_running(
    forecasts: list[FakeForecasts], tmp_path: Path
) -> None:
    server = serve(forecasts, BY_HAND)
    marker = tmp_path / "ran"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "carbonmeter.cli",
            "wait",
            "-d",
            "1h",
            "--within",
            "4h",
            "--country",
            "GBR",
            "--neso-base-url",
            server.url,
            "--",
            sys.executable,
            "-c",
            f"open({str(marker)!r}, 'w')",
        ],
        env=child_env(tmp_path, NO_PROXY="127.0.0.1", no_proxy="127.0.0.1"),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stderr is not None
    with child.stderr:
        line = child.stderr.readline()
        assert "start " in line and "in " in line, line
        time.sleep(0.3)
        began = time.monotonic()
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=10) == 130
        assert time.monotonic() - began < 5
        assert "interrupted before the start" in child.stderr.read()
    assert not marker.exists()


@pytest.mark.slow
def test_the_decorator_in_a_script(forecasts: list[FakeForecasts], tmp_path: Path) -> None:
    server = serve(forecasts, [120.0] * 96)
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from carbonmeter import greener, track_emissions

            @greener("30m", "2h", country_iso_code="GBR", neso_base_url={server.url!r})
            @track_emissions(country_iso_code="GBR", output_dir={str(tmp_path)!r})
            def train():
                return 42

            print(train())
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        env=child_env(tmp_path, NO_PROXY="127.0.0.1", no_proxy="127.0.0.1"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
    assert "carbonmeter: start " in done.stderr
    (row,) = rows_of(tmp_path / "emissions.csv")
    assert float(row["scheduled_intensity_g_per_kwh"]) == pytest.approx(120.0)
    assert float(row["submitted_intensity_g_per_kwh"]) == pytest.approx(120.0)
    assert os.path.exists(tmp_path / "emissions.csv")
