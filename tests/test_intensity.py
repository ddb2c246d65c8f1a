"""Grid intensity: table lookups, time-zone inference, and the Electricity Maps live source
against a real HTTP server on 127.0.0.1 (no other network)."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

import carbonmeter
from carbonmeter import EmissionsData, EmissionsTracker, InvalidValueError
from carbonmeter.intensity import Intensity, lookup

DATA = Path(__file__).resolve().parent.parent / "data"
TOKEN = "tok-SECRET-4242-do-not-log"


def table(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


COUNTRIES = {row["iso3"]: row for row in table("country_intensity.csv")}
REGIONS = {row["region"]: row for row in table("region_intensity.csv")}
CLOUD = {(row["provider"], row["region"]): row for row in table("cloud_regions.csv")}
WORLD = table("world_intensity.csv")[0]


# --- lookup ---------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["FRA", "fra", "FR", "fr", "France", "FRANCE"])
def test_country_by_alpha3_alpha2_or_name(given: str) -> None:
    grid = lookup(country=given)
    assert isinstance(grid, Intensity)
    assert (grid.zone, grid.method, grid.country_iso_code) == ("FRA", "table", "FRA")
    assert grid.g_per_kwh == float(COUNTRIES["FRA"]["g_per_kwh"])
    assert grid.year == int(COUNTRIES["FRA"]["year"])
    assert grid.source == COUNTRIES["FRA"]["source"]


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("US-CA", "US-CA"),
        ("california", "US-CA"),
        ("CA-QC", "CA-QC"),
        ("Québec", "CA-QC"),
        ("quebec", "CA-QC"),
        ("SE3", "SE3"),
        ("se-se3", "SE3"),
        ("NO4", "NO4"),
        ("CN-GD", "CN-GD"),
    ],
)
def test_region_by_code_name_or_bidding_zone(given: str, code: str) -> None:
    grid = lookup(region=given)
    row = REGIONS[code]
    assert (grid.zone, grid.region) == (code, code)
    assert grid.g_per_kwh == float(row["g_per_kwh"])
    assert grid.country_iso_code == row["country_iso3"]
    assert grid.year == int(row["year"])


def test_cloud_region_and_precedence() -> None:
    row = CLOUD["gcp", "europe-west1"]
    grid = lookup(cloud_provider="GCP", cloud_region="europe-west1")
    assert grid.zone == "gcp:europe-west1"
    assert grid.g_per_kwh == float(row["g_per_kwh"])
    assert grid.country_iso_code == row["country_iso3"] == "BEL"
    # cloud > region > country
    both = lookup(country="USA", region="US-CA", cloud_provider="gcp", cloud_region="europe-west1")
    assert both.zone == "gcp:europe-west1"
    assert lookup(country="USA", region="US-CA").zone == "US-CA"
    assert lookup(country="USA", region="CA").zone == "US-CA"
    world = lookup()
    assert (world.zone, world.g_per_kwh) == ("World", float(WORLD["g_per_kwh"]))


def test_intensity_is_frozen_and_prints_its_fields() -> None:
    grid = lookup(region="US-CA")
    with pytest.raises(AttributeError):
        grid.g_per_kwh = 0.0  # type: ignore[misc]
    assert "US-CA" in repr(grid) and "table" in repr(grid)


@pytest.mark.parametrize(
    ("kwargs", "named", "suggested"),
    [
        ({"country": "Frnace"}, 'country="Frnace"', '"France"'),
        ({"region": "californa"}, 'region="californa"', '"California"'),
        ({"cloud_provider": "gpc", "cloud_region": "x"}, 'cloud_provider="gpc"', '"gcp"'),
        (
            {"cloud_provider": "gcp", "cloud_region": "europe-west99"},
            'cloud_region="europe-west99"',
            '"europe-west9"',
        ),
    ],
)
def test_unknown_values_suggest_three_names(
    kwargs: dict[str, str], named: str, suggested: str
) -> None:
    with pytest.raises(InvalidValueError) as caught:
        lookup(**kwargs)
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert named in message and suggested in message
    assert message.split("did you mean ")[1].count(", ") == 2


# --- rows -----------------------------------------------------------------------------------


def run_row(**kwargs: object) -> dict[str, object]:
    kwargs.setdefault("save_to_file", False)
    kwargs.setdefault("measure_power_secs", 0.05)
    kwargs.setdefault("force_cpu_power", 50.0)
    kwargs.setdefault("force_ram_power", 10.0)
    with EmissionsTracker(**kwargs) as tracker:
        time.sleep(0.1)
    data = tracker.final_emissions_data
    assert data is not None
    return data.as_dict()


def test_cloud_row_columns() -> None:
    row = run_row(cloud_provider="gcp", cloud_region="europe-west1", pue=1.5)
    assert row["country_name"] == "Belgium"
    assert row["country_iso_code"] == "BEL"
    assert (row["cloud_provider"], row["cloud_region"], row["on_cloud"]) == (
        "gcp",
        "europe-west1",
        "Y",
    )
    assert row["region"] is None
    assert row["pue"] == 1.5
    assert row["intensity_g_per_kwh"] == 122
    assert row["intensity_year"] == 2023
    assert row["intensity_method"] == "table"
    assert row["intensity_zone"] == "gcp:europe-west1"
    assert row["location_source"] == "cloud"
    assert "cloud.google.com" in str(row["intensity_source"])


def test_region_row_and_pue_multiplies_energy() -> None:
    plain = run_row(region="US-CA")
    assert (plain["region"], plain["country_iso_code"], plain["on_cloud"]) == ("US-CA", "USA", "N")
    assert plain["intensity_g_per_kwh"] == float(REGIONS["US-CA"]["g_per_kwh"])
    assert plain["location_source"] == "region"
    row = run_row(region="US-CA", pue=2.0)
    parts = float(row["cpu_energy"]) + float(row["ram_energy"]) + float(row["gpu_energy"])  # type: ignore[arg-type]
    assert math.isclose(float(row["energy_consumed"]), parts)  # type: ignore[arg-type]
    # 60 W forced, times PUE 2: the mean powers include the PUE.
    assert math.isclose(float(row["cpu_power"]), 100.0, rel_tol=1e-6)  # type: ignore[arg-type]
    expected = float(row["energy_consumed"]) * float(REGIONS["US-CA"]["g_per_kwh"]) / 1000  # type: ignore[arg-type]
    assert math.isclose(float(row["emissions"]), expected, rel_tol=1e-9)  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match=r"pue=0\.9"):
        EmissionsTracker(pue=0.9, save_to_file=False)


def test_new_columns_follow_codecarbons_and_are_in_the_csv(tmp_path: Path) -> None:
    ours = carbonmeter.CSV_COLUMNS[38:]
    assert ours.index("location_source") == ours.index("intensity_zone") + 1
    run_row(country_iso_code="SE", output_dir=str(tmp_path), save_to_file=True)
    with (tmp_path / "emissions.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["intensity_zone"] == "SWE"
    assert rows[0]["country_name"] == "Sweden"


def test_offline_tracker_wants_a_location_not_a_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Paris")
    with pytest.raises(InvalidValueError, match="needs the country"):
        carbonmeter.OfflineEmissionsTracker(save_to_file=False)
    tracker = carbonmeter.OfflineEmissionsTracker(region="SE3", save_to_file=False)
    assert (tracker.location_source, tracker.country_iso_code) == ("region", "SWE")


# --- time-zone inference --------------------------------------------------------------------

SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
from carbonmeter import EmissionsTracker
with EmissionsTracker(save_to_file=False, measure_power_secs=0.05) as tracker:
    pass
d = tracker.final_emissions_data
print(d.country_iso_code, d.intensity_zone, d.location_source, sep="|")
print(d.intensity_source)
"""


def run_with_tz(tz: str, tmp_path: Path) -> tuple[list[str], str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CARBONMETER_", "CODECARBON_", "ELECTRICITYMAPS_"))
    }
    env.update(TZ=tz, HOME=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.splitlines(), result.stderr


@pytest.mark.slow
def test_time_zone_names_the_country(tmp_path: Path) -> None:
    lines, log = run_with_tz("Europe/Paris", tmp_path)
    assert lines[0] == "FRA|FRA|timezone:Europe/Paris"
    assert "time zone Europe/Paris" in lines[1]
    said = [line for line in log.splitlines() if "time zone Europe/Paris" in line]
    assert len(said) == 1 and said[0].startswith("INFO"), log


@pytest.mark.slow
@pytest.mark.parametrize("tz", ["UTC", "Etc/GMT-1", "CET"])
def test_utc_or_multi_country_zone_gives_world(tz: str, tmp_path: Path) -> None:
    lines, log = run_with_tz(tz, tmp_path)
    assert lines[0] == "None|World|none"
    assert lines[1].startswith("world average")
    warnings = [line for line in log.splitlines() if "world average" in line]
    assert len(warnings) == 1 and warnings[0].startswith("WARNING"), log
    assert "country_iso_code" in warnings[0]


# --- live source ----------------------------------------------------------------------------


class FakeElectricityMaps(ThreadingHTTPServer):
    """Electricity Maps' v3 carbon-intensity endpoints, canned: each hour (of `hour_s`
    seconds) has its own figure, `figures[hour % len(figures)]`."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self, hour_s: float, figures: tuple[float, ...], mode: str = "ok", host: str = "127.0.0.1"
    ) -> None:
        super().__init__((host, 0), Handler)
        self.hour_s = hour_s
        self.figures = figures
        self.mode = mode
        self.requests: list[tuple[str, str, str | None]] = []
        # "tarpit": every request hangs until `release` is set (`released_at`, monotonic s).
        self.release = threading.Event()
        self.released_at = math.inf
        # "redirect": each request is sent on to `redirect_to` (default: this server)/moved/...
        self.redirect_to: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}/v3"

    def let_go(self) -> None:
        """Ends the tarpit: hung requests are answered, and new ones at once."""
        if not self.release.is_set():
            self.released_at = time.monotonic()
            self.release.set()

    def point(self, hour: int) -> dict[str, object]:
        at = datetime.fromtimestamp(hour * self.hour_s, tz=timezone.utc)
        return {
            "zone": "FR",
            "carbonIntensity": self.figures[hour % len(self.figures)],
            "datetime": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "updatedAt": at.isoformat().replace("+00:00", "Z"),
            "emissionFactorType": "lifecycle",
            "isEstimated": False,
        }


class Handler(BaseHTTPRequestHandler):
    server: FakeElectricityMaps

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        zone = parse_qs(url.query).get("zone", [""])[0]
        self.server.requests.append((url.path, zone, self.headers.get("auth-token")))
        mode = self.server.mode
        if mode == "timeout":
            time.sleep(1.5)
        if mode == "tarpit":
            self.server.release.wait()
        if mode == "redirect" and not url.path.startswith("/moved/"):
            target = self.server.redirect_to or self.server.base_url.removesuffix("/v3")
            return self.reply(302, b"", location=f"{target}/moved{url.path}?{url.query}")
        now_hour = math.floor(time.time() / self.server.hour_s)
        if self.headers.get("auth-token") != TOKEN or mode == "401":
            return self.reply(401, b'{"error":"unauthorized"}')
        if mode == "500" or (mode == "odd_hours_fail" and now_hour % 2 == 1):
            return self.reply(500, b"internal error")
        if mode == "garbage":
            return self.reply(200, b"<html>not json")
        hour = math.floor(time.time() / self.server.hour_s)
        if mode == "lagging":  # no figure yet for the hour in progress
            hour -= 1
        if url.path.endswith("/carbon-intensity/latest"):
            body: dict[str, object] = self.server.point(hour)
        elif url.path.endswith("/carbon-intensity/history"):
            body = {
                "zone": zone,
                "history": [self.server.point(h) for h in range(hour - 23, hour + 1)],
            }
        else:
            return self.reply(404, b"{}")
        self.reply(200, json.dumps(body).encode())

    def reply(self, status: int, body: bytes, location: str | None = None) -> None:
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


def serve(
    hour_s: float, figures: tuple[float, ...], mode: str = "ok", host: str = "127.0.0.1"
) -> FakeElectricityMaps:
    server = FakeElectricityMaps(hour_s, figures, mode, host)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def live_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith(("CARBONMETER_", "CODECARBON_", "ELECTRICITYMAPS_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CARBONMETER_LIVE_TIMEOUT_S", "0.5")
    # ureq honours *_PROXY like curl: the local server must be reached directly.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,127.0.0.2,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,127.0.0.2,localhost")
    yield


def live_tracker(server: FakeElectricityMaps, tmp_path: Path, **kwargs: object) -> EmissionsTracker:
    settings: dict[str, object] = {
        "country_iso_code": "FRA",
        "electricitymaps_api_token": TOKEN,
        "electricitymaps_base_url": server.base_url,
        "output_dir": str(tmp_path),
        "measure_power_secs": 0.05,
        "force_cpu_power": 100.0,
        "force_ram_power": 0.0,
        "log_level": "debug",
    }
    settings.update(kwargs)
    return EmissionsTracker(**settings)


def short_live_run(server: FakeElectricityMaps, tmp_path: Path) -> EmissionsData:
    """A 0.1 s run with a flush against `server`, which is shut down after it: the run's data."""
    try:
        tracker = live_tracker(server, tmp_path)
        tracker.start()
        time.sleep(0.1)
        tracker.flush()
        tracker.stop()
    finally:
        server.shutdown()
        server.server_close()
    data = tracker.final_emissions_data
    assert data is not None
    return data


def assert_token_nowhere(tmp_path: Path, *texts: str) -> None:
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(encoding="utf-8", errors="replace"), path
    for text in texts:
        assert TOKEN not in text


def test_live_figure_is_used_and_token_stays_in_the_header(
    live_env: None, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="carbonmeter")
    server = serve(3600.0, (123.0,))
    try:
        with live_tracker(server, tmp_path) as tracker:
            time.sleep(0.2)
    finally:
        server.shutdown()
        server.server_close()
    data = tracker.final_emissions_data
    assert data is not None
    assert data.intensity_method == "live_hourly"
    assert data.intensity_g_per_kwh == pytest.approx(123.0)
    assert data.intensity_zone == "FR"
    assert "Electricity Maps zone FR" in data.intensity_source
    assert data.emissions == pytest.approx(data.energy_consumed * 123.0 / 1000, rel=1e-9)
    paths = {path for path, _, _ in server.requests}
    assert paths == {"/v3/carbon-intensity/latest"}
    assert all(token == TOKEN and zone == "FR" for _, zone, token in server.requests)
    out = capfd.readouterr()
    assert_token_nowhere(tmp_path, caplog.text, out.out, out.err)


HOUR_LINE = re.compile(
    r"hour (-?\d+) \(unix [\d.e+]+\): ([\d.e+-]+) kWh x ([\d.]+) g/kWh \((\w+)\)"
)


@pytest.mark.slow
def test_run_across_two_hours_is_split_and_weighted(
    live_env: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An "hour" of 1 s (the hidden CARBONMETER_HOUR_S setting), so the run crosses hours.
    hour_s = 1.0
    monkeypatch.setenv("CARBONMETER_HOUR_S", str(hour_s))
    caplog.set_level(logging.DEBUG, logger="carbonmeter")
    figures = (100.0, 400.0)
    server = serve(hour_s, figures)
    # Start in the first quarter of an hour, so the run covers two hours or more.
    while (time.time() / hour_s) % 1 > 0.25:
        time.sleep(0.01)
    try:
        tracker = live_tracker(server, tmp_path)
        # The run begins inside `starts` and ends inside `stops`, however long the calls take.
        starts = [time.time()]
        tracker.start()
        starts.append(time.time())
        time.sleep(1.2)
        stops = [time.time()]
        tracker.stop()
        stops.append(time.time())
    finally:
        server.shutdown()
        server.server_close()
    data = tracker.final_emissions_data
    assert data is not None
    assert data.intensity_method == "live_hourly"
    assert "time-weighted" in data.intensity_source

    # The core's split, from its debug line: parts add up to the row, each at its hour's figure.
    details = [r.getMessage() for r in caplog.records if "hourly intensity:" in r.getMessage()]
    parts = [
        (int(h), float(kwh), float(g), origin)
        for h, kwh, g, origin in HOUR_LINE.findall(details[-1])
    ]
    assert len(parts) >= 2
    assert all(origin == "live" for *_, origin in parts)
    assert all(g == figures[h % 2] for h, _, g, _ in parts)
    assert sum(kwh for _, kwh, _, _ in parts) == pytest.approx(data.energy_consumed, rel=1e-6)
    weighted_kg = sum(kwh * g / 1000 for _, kwh, g, _ in parts)
    assert data.emissions == pytest.approx(weighted_kg, rel=1e-6)
    assert data.intensity_g_per_kwh == pytest.approx(data.emissions * 1000 / data.energy_consumed)

    # Independently: constant power, so each hour's share is its share of the wall time.
    def time_weighted(started: float, stopped: float) -> float:
        seconds: dict[int, float] = {}
        t = started
        while t < stopped:
            hour = math.floor(t / hour_s)
            end = min((hour + 1) * hour_s, stopped)
            seconds[hour] = seconds.get(hour, 0.0) + end - t
            t = end
        return sum(s * figures[h % 2] for h, s in seconds.items()) / (stopped - started)

    def corners(bracket: list[float]) -> list[float]:
        """The bracket's ends and the hour boundaries inside it: the figure is monotone in the
        run's start (and end) between them, so its extremes over the bracket are among these."""
        inside = range(math.floor(bracket[0] / hour_s) + 1, math.ceil(bracket[1] / hour_s))
        return [*bracket, *(hour * hour_s for hour in inside)]

    possible = [time_weighted(a, b) for a in corners(starts) for b in corners(stops)]
    # 1e-4: the core's clock and Python's are read microseconds apart.
    assert min(possible) * (1 - 1e-4) <= data.intensity_g_per_kwh <= max(possible) * (1 + 1e-4)
    assert 100.0 < data.intensity_g_per_kwh < 400.0
    assert_token_nowhere(tmp_path, caplog.text)


@pytest.mark.slow
def test_hours_without_live_data_take_the_table_figure(
    live_env: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hour_s = 1.0
    monkeypatch.setenv("CARBONMETER_HOUR_S", str(hour_s))
    caplog.set_level(logging.DEBUG, logger="carbonmeter")
    server = serve(hour_s, (100.0,), "odd_hours_fail")
    # Start early in an even hour (answered), run into the odd one (HTTP 500).
    while not (math.floor(time.time()) % 2 == 0 and time.time() % 1 < 0.25):
        time.sleep(0.01)
    try:
        with live_tracker(server, tmp_path) as tracker:
            time.sleep(1.2)
    finally:
        server.shutdown()
        server.server_close()
    data = tracker.final_emissions_data
    assert data is not None
    assert data.intensity_method == "live_hourly"
    assert "from the table (HTTP 500)" in data.intensity_source
    details = [r.getMessage() for r in caplog.records if "hourly intensity:" in r.getMessage()]
    parts = HOUR_LINE.findall(details[-1])
    fra = float(COUNTRIES["FRA"]["g_per_kwh"])
    assert parts[0][2:] == ("100", "live")
    assert any(float(g) == fra and origin == "table" for *_, g, origin in parts)
    weighted_kg = sum(float(kwh) * float(g) / 1000 for _, kwh, g, _ in parts)
    assert data.emissions == pytest.approx(weighted_kg, rel=1e-6)
    assert fra < data.intensity_g_per_kwh < 100.0
    warnings = [r for r in caplog.records if "Electricity Maps data unavailable" in r.getMessage()]
    assert len(warnings) == 1


def test_latest_figure_stands_in_for_an_hour_without_one(live_env: None, tmp_path: Path) -> None:
    server = serve(3600.0, (200.0, 300.0), "lagging")
    try:
        with live_tracker(server, tmp_path) as tracker:
            time.sleep(0.1)
    finally:
        server.shutdown()
        server.server_close()
    data = tracker.final_emissions_data
    assert data is not None
    assert data.intensity_method == "live_hourly"
    previous_hour = math.floor(time.time() / 3600.0) - 1
    assert data.intensity_g_per_kwh == (200.0, 300.0)[previous_hour % 2]
    paths = [path for path, _, _ in server.requests]
    assert paths == ["/v3/carbon-intensity/latest", "/v3/carbon-intensity/history"]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("timeout", "timed out"), ("401", "HTTP 401"), ("500", "HTTP 500"), ("garbage", "unreadable")],
)
def test_live_failure_falls_back_to_the_table_with_one_warning(
    mode: str,
    reason: str,
    live_env: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="carbonmeter")
    server = serve(3600.0, (999.0,), mode)
    data = short_live_run(server, tmp_path)
    assert data.intensity_method == "table"
    assert data.intensity_g_per_kwh == float(COUNTRIES["FRA"]["g_per_kwh"])
    assert data.intensity_zone == "FRA"
    assert "Electricity Maps unavailable" in data.intensity_source
    assert reason in data.intensity_source
    expected = data.energy_consumed * float(COUNTRIES["FRA"]["g_per_kwh"]) / 1000
    assert data.emissions == pytest.approx(expected, rel=1e-9)
    warnings = [r for r in caplog.records if "Electricity Maps data unavailable" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    with (tmp_path / "emissions.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    assert all("Electricity Maps unavailable" in row["intensity_source"] for row in rows)
    out = capfd.readouterr()
    assert_token_nowhere(tmp_path, caplog.text, out.out, out.err)


@pytest.mark.slow
def test_edges_never_wait_for_a_hung_server(
    live_env: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Hours of 0.5 s; a tarpit holds every request for 8 s, within the 30 s request timeout.
    # An edge that waited for the network would return only after the tarpit let go.
    hour_s = 0.5
    monkeypatch.setenv("CARBONMETER_HOUR_S", str(hour_s))
    monkeypatch.setenv("CARBONMETER_LIVE_TIMEOUT_S", "30")
    caplog.set_level(logging.DEBUG, logger="carbonmeter")
    figures = (100.0, 400.0)
    server = serve(hour_s, figures, "tarpit")
    timer = threading.Timer(8.0, server.let_go)
    timer.start()
    edges: list[tuple[float, float, str]] = []  # (called, returned, intensity_source)
    try:
        tracker = live_tracker(server, tmp_path)
        tracker.start()
        tracker.start_window("step")
        first_hour = math.floor(time.time() / hour_s)
        # Edges over two hour boundaries, every one of them while the server hangs.
        while math.floor(time.time() / hour_s) < first_hour + 3:
            time.sleep(0.02)
            called = time.monotonic()
            row = tracker.end_window("step")
            tracker.start_window("step")
            edges.append((called, time.monotonic(), row.intensity_source))
        timer.join()
        tracker.stop()
    finally:
        timer.cancel()
        server.let_go()
        server.shutdown()
        server.server_close()
    edge_s = [returned - called for called, returned, _ in edges]
    print(f"edges: {len(edges)}, max edge {max(edge_s):.3f} s")
    # Every edge returned before the server answered anything.
    late = [returned for _, returned, _ in edges if returned >= server.released_at]
    assert late == [], f"{len(late)} of {len(edges)} edges waited for the server"
    assert len(edges) >= 3
    # Their rows say their figure is provisional; the tarpit's hours are no failure.
    assert all("provisional" in source for *_, source in edges)
    assert not [r for r in caplog.records if "Electricity Maps data unavailable" in r.getMessage()]
    # The run row, computed at stop(), has the answers: every hour live.
    data = tracker.final_emissions_data
    assert data is not None
    assert data.intensity_method == "live_hourly"
    assert "provisional" not in data.intensity_source
    details = [r.getMessage() for r in caplog.records if "hourly intensity:" in r.getMessage()]
    parts = HOUR_LINE.findall(details[-1])
    assert len(parts) >= 3
    assert all(origin == "live" and float(g) == figures[int(h) % 2] for h, _, g, origin in parts)
    assert 100.0 < data.intensity_g_per_kwh < 400.0


@pytest.mark.parametrize("elsewhere", [True, False])
def test_a_redirect_never_carries_the_token_to_another_host(
    elsewhere: bool, live_env: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="carbonmeter")
    server = serve(3600.0, (123.0,), "redirect")
    other = serve(3600.0, (456.0,), host="127.0.0.2")
    if elsewhere:
        server.redirect_to = other.base_url.removesuffix("/v3")
    try:
        with live_tracker(server, tmp_path) as tracker:
            time.sleep(0.1)
    finally:
        for each in (server, other):
            each.shutdown()
            each.server_close()
    data = tracker.final_emissions_data
    assert data is not None
    if elsewhere:
        # The other host is never asked, so never sees the token; the table is used.
        assert other.requests == []
        assert data.intensity_method == "table"
        assert f"redirected to another host (127.0.0.2:{other.server_address[1]})" in (
            data.intensity_source
        )
        warnings = [
            r for r in caplog.records if "Electricity Maps data unavailable" in r.getMessage()
        ]
        assert len(warnings) == 1
    else:
        # A redirect on the same host is followed, token and all.
        assert data.intensity_method == "live_hourly"
        assert data.intensity_g_per_kwh == 123.0
        assert [path for path, _, _ in server.requests] == [
            "/v3/carbon-intensity/latest",
            "/moved/v3/carbon-intensity/latest",
        ]
        assert all(token == TOKEN for _, _, token in server.requests)


def test_an_absurd_figure_falls_back_to_the_table_with_one_warning(
    live_env: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="carbonmeter")
    server = serve(3600.0, (1e308,))
    data = short_live_run(server, tmp_path)
    fra = float(COUNTRIES["FRA"]["g_per_kwh"])
    assert (data.intensity_method, data.intensity_g_per_kwh) == ("table", fra)
    assert "implausible figure 1e308 g CO2eq/kWh" in data.intensity_source
    assert data.emissions == pytest.approx(data.energy_consumed * fra / 1000, rel=1e-9)
    warnings = [r for r in caplog.records if "Electricity Maps data unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "implausible" in warnings[0].getMessage()


def test_no_token_or_no_zone_means_no_request(
    live_env: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(3600.0, (1.0,))
    try:
        run_row(country_iso_code="FRA", electricitymaps_base_url=server.base_url)
        caplog.set_level(logging.WARNING, logger="carbonmeter")
        row = run_row(
            region="US-TX",
            electricitymaps_api_token=TOKEN,
            electricitymaps_base_url=server.base_url,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert server.requests == []
    assert row["intensity_method"] == "table"
    assert any("electricitymaps_zone" in r.getMessage() for r in caplog.records)


def test_alias_token_and_env_token_work(
    live_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(3600.0, (77.0,))
    try:
        alias = run_row(
            region="SE3",
            co2_signal_api_token=TOKEN,
            electricitymaps_base_url=server.base_url,
        )
        monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", TOKEN)
        env = run_row(
            cloud_provider="gcp",
            cloud_region="europe-west1",
            electricitymaps_base_url=server.base_url,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert (alias["intensity_method"], alias["intensity_zone"]) == ("live_hourly", "SE-SE3")
    assert (env["intensity_method"], env["intensity_zone"]) == ("live_hourly", "BE")
    assert {zone for _, zone, _ in server.requests} == {"SE-SE3", "BE"}


@pytest.mark.slow
def test_import_never_fetches(tmp_path: Path) -> None:
    server = serve(3600.0, (1.0,))
    env = dict(os.environ)
    env.update(
        ELECTRICITYMAPS_API_TOKEN=TOKEN,
        CARBONMETER_ELECTRICITYMAPS_BASE_URL=server.base_url,
        CARBONMETER_COUNTRY_ISO_CODE="FRA",
    )
    try:
        subprocess.run(
            [sys.executable, "-c", "import carbonmeter, carbonmeter.intensity"],
            cwd=tmp_path,
            env=env,
            check=True,
            timeout=60,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert server.requests == []
