"""Checks on the committed data tables (data/*.csv) built by data/build.py."""

from __future__ import annotations

import csv
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
REFERENCE = REPO.parent / "shared" / "reference"

TABLES = sorted(DATA.glob("*.csv"))
EXPECTED = {
    "country_intensity.csv",
    "world_intensity.csv",
    "region_intensity.csv",
    "egrid_subregions.csv",
    "cloud_regions.csv",
    "source_factors.csv",
    "cpu_tdp.csv",
    "gpu_tdp.csv",
    "equivalents.csv",
    "uncertainty.csv",
}


def read(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_expected_tables_exist() -> None:
    assert EXPECTED <= {p.name for p in TABLES}


@pytest.mark.parametrize("path", TABLES, ids=lambda p: p.name)
def test_every_row_has_source_and_year(path: Path) -> None:
    rows = read(path.name)
    assert rows, f"{path.name} is empty"
    for i, row in enumerate(rows, start=2):
        assert row.get("source", "").strip(), f"{path.name}:{i} has no source"
        year = row.get("year", "")
        assert re.fullmatch(r"\d{4}", year), f"{path.name}:{i} year {year!r}"
        assert 1990 <= int(year) <= 2030, f"{path.name}:{i} year {year}"


INTENSITY_TABLES = [path for path in TABLES if "g_per_kwh" in read(path.name)[0]]


@pytest.mark.parametrize("path", INTENSITY_TABLES, ids=lambda p: p.name)
def test_intensities_are_finite_and_plausible(path: Path) -> None:
    rows = read(path.name)
    for i, row in enumerate(rows, start=2):
        value = float(row["g_per_kwh"])
        assert math.isfinite(value), f"{path.name}:{i}"
        assert 0 <= value <= 2000, f"{path.name}:{i} g_per_kwh {value}"


@pytest.mark.parametrize("path", TABLES, ids=lambda p: p.name)
def test_files_are_clean_utf8_with_lf(path: Path) -> None:
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    assert not text.startswith("\ufeff")
    assert b"\r" not in raw
    assert text.endswith("\n")
    assert all(line == line.rstrip() for line in text.splitlines())


def test_country_codes() -> None:
    rows = read("country_intensity.csv")
    iso3 = [r["iso3"] for r in rows]
    assert all(re.fullmatch(r"[A-Z]{3}", c) for c in iso3), iso3
    assert len(iso3) == len(set(iso3))
    assert not any(c.startswith("OWID") for c in iso3)
    assert "World" not in {r["name"] for r in rows}
    iso2 = [r["iso2"] for r in rows if r["iso2"]]
    assert all(re.fullmatch(r"[A-Z]{2}", c) for c in iso2), iso2
    assert len(iso2) == len(set(iso2))


def test_world_table_has_one_row() -> None:
    rows = read("world_intensity.csv")
    assert len(rows) == 1
    assert rows[0]["zone"] == "World"


def test_region_and_cloud_keys() -> None:
    regions = read("region_intensity.csv")
    assert len({r["region"] for r in regions}) == len(regions)
    assert all(re.fullmatch(r"[A-Z]{3}", r["country_iso3"]) for r in regions)
    code = re.compile(r"[A-Z]{2}-[A-Z0-9]{1,3}|SE[1-4]|NO[1-5]|FI")
    assert all(code.fullmatch(r["region"]) for r in regions), [r["region"] for r in regions]
    cloud = read("cloud_regions.csv")
    assert len({(r["provider"], r["region"]) for r in cloud}) == len(cloud)
    assert all(re.fullmatch(r"[A-Z]{3}", r["country_iso3"]) for r in cloud)
    kinds = [r["source_kind"] for r in read("source_factors.csv")]
    assert len(kinds) == len(set(kinds))


def test_cpu_tdp() -> None:
    rows = read("cpu_tdp.csv")
    assert list(rows[0]) == ["model", "tdp_w", "source", "year"]
    models = [r["model"] for r in rows]
    assert all(m and m == m.strip() for m in models)
    assert len(models) == len(set(models))
    assert len({m.casefold() for m in models}) == len(models)
    for row in rows:
        tdp = float(row["tdp_w"])
        assert 0 < tdp <= 1000, row


def test_uncertainty_rows_bracket_the_figure_and_say_their_basis() -> None:
    rows = read("uncertainty.csv")
    keys = [(r["quantity"], r["method"], r["backend"]) for r in rows]
    assert len(keys) == len(set(keys))
    for row in rows:
        low = float(row["low"])
        high = float(row["high"]) if row["high"] else math.inf
        assert 0 < low <= 1 <= high, row
        assert float(row["edge_s"]) >= 0, row
        assert row["basis"] in {"stated", "measured", "assumed"}, row
        if row["basis"] == "assumed":
            assert (
                "assumed" in row["source"]
                or "no energy" in row["source"]
                or ("not measured" in row["source"])
            ), row
    # Every method the row columns can name has a bound.
    for quantity, method in [
        ("cpu", "rapl"),
        ("cpu", "load_tdp"),
        ("cpu", "load_tdp_short"),
        ("cpu", "constant"),
        ("ram", "rapl"),
        ("ram", "model"),
        ("ram", "constant"),
        ("ram", "in_cpu"),
        ("gpu", "counter"),
        ("gpu", "polled"),
        ("gpu", "mixed"),
        ("gpu", "unmeasured"),
        ("intensity", "table"),
        ("intensity", "forced"),
        ("intensity", "live_hourly"),
    ]:
        assert (quantity, method, "any") in keys or (quantity, method, "nvml") in keys


def test_readme_mentions_every_table() -> None:
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in TABLES if p.name not in readme]
    assert not missing, f"data/README.md does not mention {missing}"


def test_build_check_is_clean() -> None:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference tables not present at {REFERENCE}")
    result = subprocess.run(
        [sys.executable, str(DATA / "build.py"), "--check", "--reference", str(REFERENCE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
