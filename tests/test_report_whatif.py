"""The report's comparisons (issue 32): a run's energy restated on the grids it could have used
instead (its cloud provider's regions, its country's regions, the eGRID subregions), the
cleanest named, the grid used kept; the world map and the US states' tiles coloured by CO2eq;
the page in headless Chromium."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
from pathlib import Path

import pytest
from helpers import Page
from test_report import measure

from carbonmeter import report
from carbonmeter._core import TABLES
from carbonmeter.intensity import lookup
from carbonmeter.report import html as report_html
from carbonmeter.report import maps, whatif
from carbonmeter.report.model import extreme_countries


def table(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(TABLES[name])))


# The four runs, and the grids each must be compared with by default.
CASES = {
    "gcp:us-central1": {"cloud_provider": "gcp", "cloud_region": "us-central1"},
    "aws:us-east-1": {"cloud_provider": "aws", "cloud_region": "us-east-1"},
    "US-KS": {"region": "US-KS"},
    "SPNO": {"region": "SPNO"},
}


def expected_peers(zone: str) -> set[str]:
    if ":" in zone:
        provider = zone.split(":")[0]
        return {
            f"{provider}:{r['region']}"
            for r in table("cloud_regions.csv")
            if r["provider"] == provider and r["region"]
        }
    if zone in {r["subregion"] for r in table("egrid_subregions.csv")}:
        return {r["subregion"] for r in table("egrid_subregions.csv")}
    country = lookup(region=zone).country_iso_code
    return {r["region"] for r in table("region_intensity.csv") if r["country_iso3"] == country}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real run per case, each in its own folder."""
    folders = {}
    for zone, location in CASES.items():
        folder = tmp_path_factory.mktemp(zone.replace(":", "-"))
        measure(folder, project_name="peers", experiment_name=zone, **location)
        folders[zone] = folder
    return folders


@pytest.mark.parametrize("zone", CASES)
def test_by_default_a_run_is_compared_with_its_peers(runs: dict[str, Path], zone: str) -> None:
    data = report.load([runs[zone]])
    assert [r.intensity_zone for r in data.runs] == [zone]
    lines = report.what_if(data)
    zones = [w["zone"] for w in lines]
    peers = expected_peers(zone)
    assert len(peers) > 10
    assert zones[0] == zone  # the grid used, kept, first
    assert set(zones) == peers | {zone}
    energy = data.runs[0].energy_kwh
    for line in lines:
        table_figure = report.model.grid(line["zone"]).g_per_kwh
        assert line["g_per_kwh"] == table_figure
        assert line["emissions_kg"] == pytest.approx(energy * table_figure / 1000, rel=1e-12)
    # Peers clean to dirty after the grid used.
    figures = [w["g_per_kwh"] for w in lines[1:]]
    assert figures == sorted(figures)


@pytest.mark.parametrize("zone", CASES)
def test_the_page_names_the_cleanest_peer(runs: dict[str, Path], zone: str) -> None:
    data = report.load([runs[zone]])
    lines = report.what_if(data)
    page = report_html.render(data)
    best = min(lines, key=lambda w: w["g_per_kwh"])
    found = re.search(r"<p class='recommend' id='recommended' data-zone='([^']+)'>", page)
    assert found, "no recommended grid"
    assert found.group(1) == best["zone"]
    assert best["zone"] != zone  # none of the four is its group's cleanest
    recommendation = page[found.end() : page.index("</p>", found.end())]
    assert report_html.co2(best["emissions_kg"]) in recommendation
    # The chart keeps the grid used, the cleanest and the dirtiest, however many peers there are.
    chart = page.split("CO2eq of the same energy on other grids", 1)[1].split("</svg>", 1)[0]
    dirtiest = max(lines, key=lambda w: w["g_per_kwh"])
    for kept in (zone, best["zone"], dirtiest["zone"]):
        assert f">{kept}" in chart, kept
    assert chart.count("<rect") == report_html.CUT_BARS


def test_a_country_without_regions_keeps_the_telling_countries(tmp_path: Path) -> None:
    measure(tmp_path, project_name="fr", country_iso_code="FRA")
    zones = [w["zone"] for w in report.what_if(report.load([tmp_path]))]
    cleanest, dirtiest = extreme_countries()
    assert zones[0] == "FRA" and {cleanest, dirtiest, "World"} <= set(zones)
    assert whatif.peers("FRA") is None and whatif.peers("World") is None


def test_a_country_with_regions_is_compared_with_them() -> None:
    assert {g.zone for g in whatif.peers("USA").grids} == expected_peers("US-KS")  # type: ignore[union-attr]
    assert {g.zone for g in whatif.peers("SE3").grids} == {"SE1", "SE2", "SE3", "SE4"}  # type: ignore[union-attr]
    assert whatif.peers("FI") is None  # Finland is one bidding zone: no peer to move to


def test_explicit_compare_is_kept_as_given(runs: dict[str, Path]) -> None:
    data = report.load([runs["SPNO"]])
    zones = ["FRA", "gcp:europe-west1", "World"]
    # After the grid the runs used, which --compare always keeps (issue 32).
    assert [w["zone"] for w in report.what_if(data, zones)] == ["SPNO", *zones]


def test_map_colours_follow_the_intensity_bins() -> None:
    assert maps.colour(0) == maps.COLOURS[0]
    assert maps.colour(49.9) == maps.COLOURS[0]
    assert maps.colour(50) == maps.COLOURS[1]
    assert maps.colour(5000) == maps.COLOURS[-1]
    bins = [maps.COLOURS.index(maps.colour(g)) for g in range(0, 1200, 10)]
    assert bins == sorted(bins) and len(set(bins)) == len(maps.COLOURS)


def test_every_outline_is_a_closed_path_in_the_frame() -> None:
    rows = table("world_boundaries.csv")
    assert len(rows) >= 170
    assert len({r["iso3"] for r in rows}) == len(rows)
    width, height = (float(v) for v in maps.WORLD_VIEWBOX.split()[2:])
    for row in rows:
        assert re.fullmatch(r"(M[-\d. ]+Z)+", row["path"]), row["iso3"]
        numbers = [float(v) for v in re.findall(r"-?\d+\.?\d*", row["path"])]
        xs, ys = numbers[0::2], numbers[1::2]
        assert 0 <= min(xs) and max(xs) <= width and 0 <= min(ys) and max(ys) <= height
    countries = {r["iso3"] for r in table("country_intensity.csv")}
    drawn = {r["iso3"] for r in rows}
    # All the large grids have an outline: the map leaves out islands, not countries.
    for iso3 in ("USA", "CHN", "IND", "FRA", "DEU", "BRA", "AUS", "ZAF", "CAN", "RUS", "NOR"):
        assert iso3 in drawn and iso3 in countries


needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("CARBONMETER_REQUIRE_CHROMIUM"),
    reason="Debian's chromium is not installed (.ci/run installs it and requires this test)",
)

# Read from the page as the browser draws it: the recommendation, the map's countries with the
# colour Chromium computed for each, the tiles, and the chart's labels.
READ_PAGE = """(() => {
  const fills = [...document.querySelectorAll("svg.world path[data-iso3]")].map((p) => ({
    iso3: p.dataset.iso3, g: p.dataset.gPerKwh === undefined ? null : Number(p.dataset.gPerKwh),
    co2: p.dataset.co2Kg === undefined ? null : Number(p.dataset.co2Kg),
    fill: getComputedStyle(p).fill, used: p.classList.contains("used-country"),
    box: p.getBBox().width }));
  const tiles = [...document.querySelectorAll("svg.tiles g[data-region]")].map((g) => ({
    region: g.dataset.region, fill: getComputedStyle(g.querySelector("rect")).fill }));
  const chart = document.querySelector('svg[aria-label="CO2eq of the same energy on other grids"]');
  return { recommended: document.getElementById("recommended").innerText,
    zone: document.getElementById("recommended").dataset.zone, fills, tiles,
    labels: [...chart.querySelectorAll("text")].map((t) => t.textContent),
    legend: document.querySelector(".map-legend").innerText };
})()"""


def rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("zone", ["gcp:us-central1", "SPNO"])
def test_comparisons_in_chromium(runs: dict[str, Path], zone: str, tmp_path: Path) -> None:
    data = report.load([runs[zone]])
    lines = report.what_if(data)
    best = min(lines, key=lambda w: w["g_per_kwh"])
    page_path = tmp_path / "report.html"
    page_path.write_text(report_html.render(data), encoding="utf-8")
    with Page(tmp_path / "profile", "--proxy-server=http://127.0.0.1:9") as page:
        page.open(page_path.as_uri())
        seen = page.evaluate(READ_PAGE)
        assert page.problems == []  # no console message, no exception
    assert seen["zone"] == best["zone"]
    assert best["zone"] in seen["recommended"] and "Cleanest of these" in seen["recommended"]
    assert any(label.startswith(zone) for label in seen["labels"])
    assert any(label.startswith(best["zone"]) for label in seen["labels"])
    # Every country with a figure is drawn in the colour of its bin, and a dirtier grid never
    # in a cleaner colour; the CO2eq is the run's energy at that country's intensity.
    energy = data.runs[0].energy_kwh
    coloured = [f for f in seen["fills"] if f["g"] is not None]
    assert len(coloured) >= 170
    for country in coloured:
        assert country["fill"] == rgb(maps.colour(country["g"])), country
        assert country["co2"] == pytest.approx(energy * country["g"] / 1000, rel=1e-5)
        assert country["box"] > 0
    order = [
        maps.COLOURS.index(maps.colour(c["g"])) for c in sorted(coloured, key=lambda c: c["co2"])
    ]
    assert order == sorted(order)
    assert len({c["fill"] for c in coloured}) == len(maps.COLOURS)
    assert [f["iso3"] for f in seen["fills"] if f["used"]] == ["USA"]
    for grey in (f for f in seen["fills"] if f["g"] is None):
        assert grey["fill"] == rgb(maps.NO_DATA)
    # The US states' tiles, in the same colours.
    states = {g.zone: g.g_per_kwh for g in whatif.regions_of("USA")}
    assert len(seen["tiles"]) == 51
    for tile in seen["tiles"]:
        assert tile["fill"] == rgb(maps.colour(states[tile["region"]])), tile
    assert "g CO2eq/kWh" in seen["legend"]


def test_the_tiles_outline_the_state_a_run_was_in(runs: dict[str, Path]) -> None:
    assert whatif.region_of("gcp:us-central1") == "US-IA"  # "Council Bluffs, Iowa, USA"
    assert whatif.region_of("US-KS") == "US-KS"
    assert whatif.region_of("SPNO") is None  # a subregion crosses state lines
    for zone, state in (("gcp:us-central1", "US-IA"), ("US-KS", "US-KS")):
        page = report_html.render(report.load([runs[zone]]))
        outlined = re.findall(r'<g data-region="(US-[A-Z]{2})"[^>]*><rect [^>]*stroke=', page)
        assert outlined == [state], zone


@pytest.mark.parametrize("country", sorted(maps.REGION_MAPS))
def test_every_region_of_a_mapped_country_has_one_tile(country: str) -> None:
    layout = maps.REGION_MAPS[country]
    assert set(layout) == {g.zone for g in whatif.regions_of(country)}
    assert len(set(layout.values())) == len(layout)  # no two regions on one square


def test_a_nordic_zone_gets_its_countrys_tiles(tmp_path: Path) -> None:
    measure(tmp_path, project_name="nordic", region="SE3")
    page = report_html.render(report.load([tmp_path]))
    tiles = re.findall(r'<g data-region="([^"]+)"', page)
    assert tiles == ["SE1", "SE2", "SE3", "SE4"]
    assert "each region of Sweden" in page
    assert re.search(r'<g data-region="SE3"[^>]*><rect [^>]*stroke=', page)
