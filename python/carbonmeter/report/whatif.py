"""Which grids a run could have used instead, and how each one reads (issue 32).

A run on a cloud region is compared with its provider's other regions; a run on a US state,
Canadian or Chinese province or Nordic bidding zone with the other regions of its country; a run
on an eGRID subregion with the other subregions; a run on a country that has regions in the
tables with those regions. Everything comes from the embedded tables (`TABLES`), the ones the
core looks intensities up in, so a figure here is the figure a run there would have used.

Only `carbonmeter._core` is imported: model.py asks this module for peers, never the reverse.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass

from carbonmeter._core import TABLES


def _rows(table: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(TABLES[table])))


@dataclass(frozen=True)
class Grid:
    """One grid of the tables: its zone as the CSV writes it, a name a person reads, and where
    it is (ISO 3166-1 alpha-3)."""

    zone: str
    name: str
    country_iso3: str
    g_per_kwh: float


@functools.cache
def _grids() -> dict[str, dict[str, list[Grid]]]:
    """Peer groups by kind: `cloud` by provider, `region` by country, `egrid` as one group."""
    cloud: dict[str, list[Grid]] = {}
    for r in _rows("cloud_regions.csv"):
        if r["region"]:  # a provider-wide row (no region) is no place to move to
            zone = f"{r['provider']}:{r['region']}"
            grid = Grid(zone, r["location"], r["country_iso3"], float(r["g_per_kwh"]))
            cloud.setdefault(r["provider"], []).append(grid)
    region: dict[str, list[Grid]] = {}
    for r in _rows("region_intensity.csv"):
        grid = Grid(r["region"], r["name"], r["country_iso3"], float(r["g_per_kwh"]))
        region.setdefault(r["country_iso3"], []).append(grid)
    egrid = [
        Grid(r["subregion"], r["name"], "USA", float(r["g_per_kwh"]))
        for r in _rows("egrid_subregions.csv")
    ]
    return {"cloud": cloud, "region": region, "egrid": {"USA": egrid}}


@functools.cache
def names() -> dict[str, str]:
    """zone -> a name a person reads: `Hamina, Finland`, `Kansas`, `SPP North`, `France`."""
    out = {r["iso3"]: r["name"] for r in _rows("country_intensity.csv")}
    for groups in _grids().values():
        for grids in groups.values():
            out.update({g.zone: g.name for g in grids})
    out["World"] = "world average"
    return out


@functools.cache
def country_of() -> dict[str, str]:
    """zone -> ISO 3166-1 alpha-3 of the country it is in (countries map to themselves)."""
    out = {r["iso3"]: r["iso3"] for r in _rows("country_intensity.csv")}
    for groups in _grids().values():
        for grids in groups.values():
            out.update({g.zone: g.country_iso3 for g in grids})
    return out


@dataclass(frozen=True)
class Peers:
    """The grids a run on `zone` could have used instead (it included), and what they are."""

    zone: str
    title: str
    grids: list[Grid]


def peers(zone: str) -> Peers | None:
    """The group `zone` belongs to (cloud provider, country's regions, eGRID), None for a
    country without regions in the tables, the world average or an unknown zone."""
    groups = _grids()
    if ":" in zone:
        provider = zone.partition(":")[0]
        found = groups["cloud"].get(provider, [])
        return Peers(zone, f"{provider}'s regions", found) if len(found) > 1 else None
    if any(g.zone == zone for g in groups["egrid"]["USA"]):
        return Peers(zone, "US EPA eGRID subregions", groups["egrid"]["USA"])
    country = country_of().get(zone)
    regions = groups["region"].get(country or "", [])
    if len(regions) > 1:
        return Peers(zone, f"the regions of {names().get(country or '', country)}", regions)
    return None


def peer_zones(used: list[str]) -> list[str]:
    """The zones to compare runs on `used` with: each used zone's peers, cleanest first; empty
    when no used zone has any (the caller then compares with countries)."""
    out: list[str] = []
    for zone in used:
        found = peers(zone)
        if found is not None:
            out.extend(g.zone for g in sorted(found.grids, key=lambda g: (g.g_per_kwh, g.zone)))
    return list(dict.fromkeys(out))


def country_intensities() -> dict[str, tuple[str, float]]:
    """iso3 -> (name, g CO2eq/kWh) of every country in the table, for the world map."""
    return {r["iso3"]: (r["name"], float(r["g_per_kwh"])) for r in _rows("country_intensity.csv")}


def boundaries() -> list[tuple[str, str, str]]:
    """(iso3, name, SVG path) of each country outline, in the map's 1000-wide frame."""
    return [(r["iso3"], r["name"], r["path"]) for r in _rows("world_boundaries.csv")]


def regions_of(country: str) -> list[Grid]:
    """The regions of `country` (ISO alpha-3) in region_intensity.csv, not eGRID's."""
    return list(_grids()["region"].get(country, []))


def region_of(zone: str) -> str | None:
    """The table region a grid lies in: itself for a region, the region a cloud region's city
    is in (`gcp:us-central1`, "Council Bluffs, Iowa, USA", is in `US-IA`), else None."""
    if ":" not in zone:
        return (
            zone
            if any(zone in (g.zone for g in gs) for gs in _grids()["region"].values())
            else None
        )
    country = country_of().get(zone, "")
    parts = {part.strip() for part in names().get(zone, "").split(",")}
    found = [g.zone for g in regions_of(country) if g.name in parts]
    return found[0] if len(found) == 1 else None
