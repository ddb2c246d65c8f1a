"""US EPA eGRID subregions: every one resolves, with its figure, source and year, as the shared
reference gives them; a US state keeps the state's own figure."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import pytest

from carbonmeter import EmissionsTracker, InvalidValueError
from carbonmeter.intensity import lookup

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO.parent / "shared" / "reference" / "egrid_subregions.csv"
COMMITTED = REPO / "data" / "egrid_subregions.csv"


def subregions() -> list[dict[str, str]]:
    """The reference's rows when it is here (the ground truth), else the committed table's."""
    if REFERENCE.is_file():
        with REFERENCE.open(encoding="utf-8", newline="") as handle:
            return [
                {
                    "code": r["subregion"],
                    "name": r["name"],
                    "g_per_kwh": r["gco2e_per_kwh"],
                    "year": r["data_year"],
                    "edition": r["edition"],
                }
                for r in csv.DictReader(handle)
            ]
    with COMMITTED.open(encoding="utf-8", newline="") as handle:
        return [
            {
                "code": r["subregion"],
                "name": r["name"],
                "g_per_kwh": r["g_per_kwh"],
                "year": r["year"],
                "edition": "eGRID2023rev2",
            }
            for r in csv.DictReader(handle)
        ]


SUBREGIONS = subregions()


def test_all_27_subregions_are_there() -> None:
    assert len(SUBREGIONS) == 27
    assert "SPNO" in {r["code"] for r in SUBREGIONS}


@pytest.mark.parametrize("row", SUBREGIONS, ids=lambda r: r["code"])
def test_every_subregion_by_acronym_and_by_name(row: dict[str, str]) -> None:
    for given in (row["code"], row["code"].lower(), row["name"]):
        grid = lookup(region=given)
        assert (grid.zone, grid.region, grid.country_iso_code) == (row["code"],) * 2 + ("USA",)
        assert grid.g_per_kwh == float(row["g_per_kwh"])
        assert grid.year == int(row["year"])
        assert "EPA" in grid.source and row["edition"] in grid.source
        assert "epa.gov/egrid" in grid.source
        assert grid.method == "table"


def test_a_subregion_within_the_usa_and_not_elsewhere() -> None:
    assert lookup(country="USA", region="SPNO").zone == "SPNO"
    with pytest.raises(InvalidValueError, match=r"SPNO.*USA.*FRA"):
        lookup(country="FRA", region="SPNO")


def test_a_state_stays_the_states_figure() -> None:
    with (REPO / "data" / "region_intensity.csv").open(encoding="utf-8", newline="") as handle:
        states = {r["region"]: r for r in csv.DictReader(handle)}
    for given, code in (("US-CA", "US-CA"), ("california", "US-CA"), ("kansas", "US-KS")):
        grid = lookup(region=given)
        assert grid.zone == code
        assert grid.g_per_kwh == float(states[code]["g_per_kwh"])
    # California's state rate is not its subregion's (CAMX covers more than the state).
    assert lookup(region="US-CA").g_per_kwh != lookup(region="CAMX").g_per_kwh


def test_a_typo_suggests_a_subregion() -> None:
    with pytest.raises(InvalidValueError, match=r"SPNX.*SPNO"):
        lookup(region="SPNX")


def test_a_run_in_spno_writes_the_subregion(tmp_path: Path) -> None:
    with EmissionsTracker(
        region="SPNO",
        save_to_file=False,
        measure_power_secs=0.05,
        force_cpu_power=50.0,
        force_ram_power=10.0,
    ) as tracker:
        time.sleep(0.1)
    row = tracker.final_emissions_data
    assert row is not None
    assert (row.intensity_zone, row.region, row.country_iso_code) == ("SPNO", "SPNO", "USA")
    assert row.location_source == "region"
    assert row.intensity_g_per_kwh == 393.6
    assert row.intensity_year == 2023
    assert math.isclose(row.emissions, row.energy_consumed * 393.6 / 1000, rel_tol=1e-9)
