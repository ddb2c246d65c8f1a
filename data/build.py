#!/usr/bin/env python3
"""Build carbonmeter's embedded data tables (data/*.csv) from the public reference files.

Usage:
    python data/build.py                   # rewrite the tables in data/
    python data/build.py --check           # rebuild in memory, exit 1 if a committed file differs
    python data/build.py --reference DIR   # read the reference CSVs from DIR

The reference directory defaults to ``<repo>/../shared/reference``. Only the standard library is
required. ``pycountry`` is used when importable to fill ISO 3166-1 alpha-2 codes; without it the
codes already committed in ``data/country_intensity.csv`` are reused, so the runtime (and a rebuild
on a machine without pycountry) never needs it. See data/README.md for sources and choices.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
REPO_ROOT = DATA_DIR.parent
DEFAULT_REFERENCE = REPO_ROOT.parent / "shared" / "reference"
DEFAULT_ZONEINFO = Path("/usr/share/zoneinfo")
TIMEZONE_TABLE = "timezone_countries.csv"

YEAR_MIN, YEAR_MAX = 1990, 2030
G_PER_KWH_MAX = 2000.0

# ISO 3166-1 alpha-2 codes that pycountry does not know (user-assigned or transitional codes).
ISO2_OVERRIDES = {
    "XKX": "XK",  # Kosovo: user-assigned code used by the EU, IMF, CLDR and most data providers
}

# Country-file rows that are not countries. Rows named "World" go to world_intensity.csv.
AGGREGATE_NAMES = {
    "world",
    "africa",
    "asia",
    "europe",
    "oceania",
    "north america",
    "south america",
    "european union (27)",
    "high-income countries",
    "low-income countries",
    "lower-middle-income countries",
    "upper-middle-income countries",
}

# Google Cloud rows: the figures equal, region for region, Google's published grid carbon
# intensity for 2023 (GoogleCloudPlatform/region-carbon-info, data/yearly/2023.csv).
GCP_YEAR = 2023
# ML CO2 Impact calculator rows whose source text names no year: the dataset was compiled for
# Lacoste et al., "Quantifying the Carbon Emissions of Machine Learning" (2019).
MLCO2_DEFAULT_YEAR = 2019
# Fix for a misspelt region name in the reference (Google's own data says me-central1, Doha).
CLOUD_REGION_FIXES = {("gcp", "me-cenrtal1"): "me-central1"}

# source_factors.csv gives no year. Year per source_kind, with the reason in data/README.md.
SOURCE_FACTOR_YEARS = {
    "world_average": 2018,  # IEA Global Energy & CO2 Status Report 2019: figure for 2018
    "coal": 2019,  # energy-usage package (Lottick et al. 2019): publication year
    "petroleum": 2019,
    "natural_gas": 2019,
    "fossil": 2019,  # eGRID, edition not named: year of the companion fossil factors
    "geothermal": 2011,  # WNA "Comparison of lifecycle GHG emissions" report, 2011
    "hydroelectricity": 2011,
    "nuclear": 2011,
    "solar": 2011,
    "wind": 2011,
    "biomass": 2014,  # IPCC AR5 WG3 Annex III (2014)
    "biofuel": 2014,  # same factor as biomass
    "waste": 2014,  # same factor as biomass
}
WORLD_FALLBACK_KIND = "world_average"

# Sub-national codes kept in region_intensity.csv: ISO 3166-2, or a Nordic bidding zone.
REGION_CODE = re.compile(r"[A-Z]{2}-[A-Z0-9]{1,3}|SE[1-4]|NO[1-5]|FI")

# cpu_tdp.csv gives neither source per row nor year. Source from the reference README; year: the
# newest parts in the list (AMD EPYC 4005, Threadripper PRO 9000WX, Apple M3 Ultra) came out in
# 2025, so the list was compiled in 2025 or later.
CPU_TDP_SOURCE = "Manufacturers' published specifications (Intel ARK, AMD product pages)"
CPU_TDP_YEAR = 2025
CPU_TDP_MAX_W = 1000.0

# Backward links (old zone names) that the tz database points at a zone of another country, so
# the link's target says nothing of the country the old name meant: left out (world average).
TZ_CROSS_COUNTRY_LINKS = {
    "Africa/Asmera",  # Eritrea -> Africa/Nairobi (KE)
    "Africa/Timbuktu",  # Mali -> Africa/Abidjan (CI)
    "America/Coral_Harbour",  # Canada -> America/Panama (PA)
    "Antarctica/South_Pole",  # Antarctica -> Pacific/Auckland (NZ)
    "Atlantic/Jan_Mayen",  # Svalbard and Jan Mayen -> Europe/Berlin (DE)
    "Pacific/Ponape",  # Micronesia -> Pacific/Guadalcanal (SB)
    "Pacific/Truk",  # Micronesia -> Pacific/Port_Moresby (PG)
    "Pacific/Yap",  # Micronesia -> Pacific/Port_Moresby (PG)
}

ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def clean(text: str) -> str:
    """Drop zero-width characters, turn any whitespace run (NBSP included) into one space."""
    return " ".join(text.translate(ZERO_WIDTH).split())


def fmt_number(value: float) -> str:
    """Shortest round-trip text; integral values without a trailing '.0'."""
    if value.is_integer():
        return str(int(value))
    return repr(value)


def parse_g_per_kwh(text: str, where: str) -> float:
    value = float(text)
    if not math.isfinite(value) or not 0.0 <= value <= G_PER_KWH_MAX:
        raise ValueError(f"{where}: g/kWh {text!r} outside [0, {G_PER_KWH_MAX}]")
    return value


def check_year(year: int, where: str) -> int:
    if not YEAR_MIN <= year <= YEAR_MAX:
        raise ValueError(f"{where}: year {year} outside [{YEAR_MIN}, {YEAR_MAX}]")
    return year


def read_reference(ref: Path, name: str) -> list[dict[str, str]]:
    with (ref / name).open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def to_csv(header: list[str], rows: Iterable[Iterable[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
    return out.getvalue()


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, message: str) -> None:
        self.lines.append(message)


def iso2_lookup(report: Report) -> Callable[[str], str]:
    """alpha-3 -> alpha-2, from pycountry if importable, else from the committed table."""
    try:
        import pycountry
    except ImportError:
        committed: dict[str, str] = {}
        path = DATA_DIR / "country_intensity.csv"
        if path.exists():
            with path.open(encoding="utf-8", newline="") as handle:
                committed = {row["iso3"]: row["iso2"] for row in csv.DictReader(handle)}
        report(f"pycountry not importable: iso2 reused from {path.name} ({len(committed)} codes)")
        return lambda iso3: ISO2_OVERRIDES.get(iso3) or committed.get(iso3, "")

    from importlib.metadata import PackageNotFoundError, version

    try:
        report(f"iso2 from pycountry {version('pycountry')}")
    except PackageNotFoundError:
        report("iso2 from pycountry (version unknown)")

    def lookup(iso3: str) -> str:
        if iso3 in ISO2_OVERRIDES:
            return ISO2_OVERRIDES[iso3]
        country = pycountry.countries.get(alpha_3=iso3)
        return country.alpha_2 if country is not None else ""

    return lookup


def is_aggregate(iso3: str, name: str) -> bool:
    return (
        not re.fullmatch(r"[A-Z]{3}", iso3)
        or iso3.startswith("OWID")
        or name.lower() in AGGREGATE_NAMES
    )


def build_country_and_world(ref: Path, report: Report) -> tuple[str, str]:
    rows = read_reference(ref, "country_intensity.csv")
    iso2_of = iso2_lookup(report)
    countries: dict[str, list[str]] = {}
    world: list[str] | None = None
    for i, row in enumerate(rows, start=2):
        where = f"country_intensity.csv:{i}"
        iso3, name = clean(row["iso3"]), clean(row["country"])
        value = parse_g_per_kwh(row["gco2_per_kwh"], where)
        year = check_year(int(row["year"]), where)
        source = clean(row["source"])
        if is_aggregate(iso3, name):
            if name.lower() == "world":
                world = ["World", fmt_number(value), str(year), source]
                report(f"country_intensity: World row ({iso3 or 'no code'}) moved to world table")
            else:
                report(f"country_intensity: aggregate {iso3!r} {name!r} dropped")
            continue
        if iso3 in countries:
            report(f"country_intensity: duplicate {iso3} dropped (first kept)")
            continue
        iso2 = iso2_of(iso3)
        if not iso2:
            report(f"country_intensity: no alpha-2 code for {iso3} {name}")
        countries[iso3] = [iso3, iso2, name, fmt_number(value), str(year), source]
    iso2s = [r[1] for r in countries.values() if r[1]]
    if len(iso2s) != len(set(iso2s)):
        raise ValueError("country_intensity: duplicate alpha-2 codes")
    country_csv = to_csv(
        ["iso3", "iso2", "name", "g_per_kwh", "year", "source"],
        (countries[k] for k in sorted(countries)),
    )
    report(f"country_intensity.csv: {len(countries)} rows")

    if world is None:
        factors = {r["source_kind"]: r for r in read_reference(ref, "source_factors.csv")}
        row = factors[WORLD_FALLBACK_KIND]
        value = parse_g_per_kwh(row["gco2_per_kwh"], "source_factors.csv world_average")
        year = SOURCE_FACTOR_YEARS[WORLD_FALLBACK_KIND]
        world = ["World", fmt_number(value), str(year), clean(row["reference"])]
        report("world_intensity.csv: no World row in country file, from source_factors.csv")
    world_csv = to_csv(["zone", "g_per_kwh", "year", "source"], [world])
    return country_csv, world_csv


def build_regions(ref: Path, report: Report) -> str:
    out: dict[str, list[str]] = {}
    for i, row in enumerate(read_reference(ref, "region_intensity.csv"), start=2):
        where = f"region_intensity.csv:{i}"
        region = clean(row["region"])
        if not REGION_CODE.fullmatch(region):
            name = clean(row["name"])
            report(f"region_intensity: {region!r} ({name}) dropped: not a sub-national code")
            continue
        if region in out:
            report(f"region_intensity: duplicate {region} dropped (first kept)")
            continue
        out[region] = [
            clean(row["iso3"]),
            region,
            clean(row["name"]),
            fmt_number(parse_g_per_kwh(row["gco2_per_kwh"], where)),
            str(check_year(int(row["year"]), where)),
            clean(row["source"]),
        ]
    rows = sorted(out.values(), key=lambda r: (r[0], r[1]))
    report(f"region_intensity.csv: {len(rows)} rows")
    return to_csv(["country_iso3", "region", "name", "g_per_kwh", "year", "source"], rows)


# eGRID subregion acronyms: four capitals (SPNO, CAMX, NYCW). Never an ISO 3166-2 code, so they
# share the region lookup with the states without ambiguity.
EGRID_CODE = re.compile(r"[A-Z]{4}")


def build_egrid(ref: Path, report: Report) -> str:
    """US EPA eGRID subregions: the CO2e output rate (g/kWh), its edition and data year."""
    out: dict[str, list[str]] = {}
    for i, row in enumerate(read_reference(ref, "egrid_subregions.csv"), start=2):
        where = f"egrid_subregions.csv:{i}"
        code = clean(row["subregion"])
        if not EGRID_CODE.fullmatch(code):
            raise ValueError(f"{where}: subregion {code!r} is not a four-letter eGRID acronym")
        if clean(row["gas"]) != "co2e":
            raise ValueError(f"{where}: gas {row['gas']!r}, expected co2e")
        if code in out:
            report(f"egrid_subregions: duplicate {code} dropped (first kept)")
            continue
        g_per_kwh = parse_g_per_kwh(row["gco2e_per_kwh"], where)
        lb_per_mwh = float(row["co2e_lb_per_mwh"])
        # The reference converts with 1 lb = 453.59237 g, rounded to 3 decimals: hold it to that.
        if abs(lb_per_mwh * 0.45359237 - g_per_kwh) > 5e-4:
            raise ValueError(f"{where}: {g_per_kwh} g/kWh is not {lb_per_mwh} lb/MWh")
        edition = clean(row["edition"])
        source = clean(row["source"]).removesuffix("; see README").strip()
        out[code] = [
            code,
            clean(row["name"]),
            fmt_number(g_per_kwh),
            fmt_number(lb_per_mwh),
            str(check_year(int(row["data_year"]), where)),
            f"{source}, {edition}" if edition not in source else source,
        ]
    report(f"egrid_subregions.csv: {len(out)} rows")
    return to_csv(
        ["subregion", "name", "g_per_kwh", "co2e_lb_per_mwh", "year", "source"],
        (out[k] for k in sorted(out)),
    )


def cloud_year(provider: str, source: str) -> int:
    """Year the figure is for: named in the source text, else the provider dataset's year."""
    if provider == "gcp":
        return GCP_YEAR
    # A fiscal year such as "2016-17" (Australia's NGER, July 2016 - June 2017): its end year.
    fiscal = re.search(r"(?<!\d)((?:19|20)\d{2})-(\d{2})(?!\d)", source)
    if fiscal:
        return int(fiscal.group(1)[:2] + fiscal.group(2))
    years = [int(y) for y in re.findall(r"(?<!\d)(?:19|20)\d{2}(?!\d)", source)]
    return max(years) if years else MLCO2_DEFAULT_YEAR


def build_cloud(ref: Path, report: Report) -> str:
    out: dict[tuple[str, str], list[str]] = {}
    for i, row in enumerate(read_reference(ref, "cloud_regions.csv"), start=2):
        where = f"cloud_regions.csv:{i}"
        provider, region = clean(row["provider"]), clean(row["region"])
        fixed = CLOUD_REGION_FIXES.get((provider, region))
        if fixed:
            report(f"cloud_regions: {provider} region {region!r} renamed {fixed!r}")
            region = fixed
        if not region:
            report(f"cloud_regions: {provider} row has no region code (kept, empty region)")
        if (provider, region) in out:
            report(f"cloud_regions: duplicate {provider}/{region} dropped (first kept)")
            continue
        source = clean(row["source"])
        out[provider, region] = [
            provider,
            region,
            clean(row["iso3"]),
            clean(row["location"]),
            fmt_number(parse_g_per_kwh(row["gco2_per_kwh"], where)),
            str(check_year(cloud_year(provider, source), where)),
            source,
        ]
    rows = [out[k] for k in sorted(out)]
    report(f"cloud_regions.csv: {len(rows)} rows")
    return to_csv(
        ["provider", "region", "country_iso3", "location", "g_per_kwh", "year", "source"], rows
    )


def build_source_factors(ref: Path, report: Report) -> str:
    out: dict[str, list[str]] = {}
    for i, row in enumerate(read_reference(ref, "source_factors.csv"), start=2):
        where = f"source_factors.csv:{i}"
        kind = clean(row["source_kind"])
        if kind not in SOURCE_FACTOR_YEARS:
            raise ValueError(f"{where}: no year known for source_kind {kind!r}; add it")
        if kind in out:
            report(f"source_factors: duplicate {kind} dropped (first kept)")
            continue
        out[kind] = [
            kind,
            fmt_number(parse_g_per_kwh(row["gco2_per_kwh"], where)),
            str(check_year(SOURCE_FACTOR_YEARS[kind], where)),
            clean(row["reference"]),
        ]
    report(f"source_factors.csv: {len(out)} rows")
    return to_csv(["source_kind", "g_per_kwh", "year", "source"], (out[k] for k in sorted(out)))


def build_cpu_tdp(ref: Path, report: Report) -> str:
    rows = read_reference(ref, "cpu_tdp.csv")
    out: dict[str, list[str]] = {}
    raw_names: dict[str, str] = {}
    renamed = exact_dups = normalised_dups = bad_tdp = 0
    for i, row in enumerate(rows, start=2):
        raw = row["model"]
        model = clean(raw)
        renamed += model != raw
        text = row["tdp_w"].strip()
        if not re.fullmatch(r"\d+(?:\.\d+)?", text) or not 0 < float(text) <= CPU_TDP_MAX_W:
            bad_tdp += 1
            report(f"cpu_tdp: line {i} {model!r} dropped: tdp_w {text!r} not in (0, 1000] W")
            continue
        tdp = fmt_number(float(text))
        key = model.casefold()
        if key in out:
            kept = out[key]
            if raw_names[key] == raw:
                exact_dups += 1
            else:
                normalised_dups += 1
            note = "" if kept[1] == tdp else f" (TDP {tdp} differs from kept {kept[1]})"
            report(f"cpu_tdp: line {i} {raw!r} duplicates {raw_names[key]!r}, dropped{note}")
            continue
        out[key] = [model, tdp, CPU_TDP_SOURCE, str(CPU_TDP_YEAR)]
        raw_names[key] = raw
    report(
        f"cpu_tdp.csv: {len(out)} rows from {len(rows)}: {exact_dups} exact duplicates, "
        f"{normalised_dups} duplicates after whitespace/case normalisation, "
        f"{bad_tdp} unusable TDPs dropped; {renamed} names had whitespace cleaned"
    )
    ordered = sorted(out.values(), key=lambda r: (r[0].casefold(), r[0]))
    return to_csv(["model", "tdp_w", "source", "year"], ordered)


# gpu_tdp.csv: the ML CO2 Impact calculator's hardware list gives no year. Its newest parts
# (L40S, H100 NVL) came out in 2023, so the list as given was compiled in 2023 at the earliest.
GPU_TDP_YEAR = 2023
GPU_TDP_KINDS = {"gpu", "tpu", "cpu"}


# Accelerators the reference list lacks, from their makers' spec pages: (model, tdp_w,
# memory_gb, year the part was launched, source). Board power (TBP/TDP) as each page states it;
# the MI250X figure is the air-cooled TBP (560 W peak is the liquid-cooled limit).
GPU_TDP_ADDED = [
    (
        "AMD Instinct MI250X",
        500,
        128,
        2021,
        "https://www.amd.com/en/products/accelerators/instinct/mi200/mi250x.html (AMD spec page)",
    ),
    (
        "AMD Instinct MI300X",
        750,
        192,
        2023,
        "https://www.amd.com/en/products/accelerators/instinct/mi300/mi300x.html (AMD spec page)",
    ),
    (
        "AMD Instinct MI325X",
        1000,
        256,
        2024,
        "https://www.amd.com/en/products/accelerators/instinct/mi300/mi325x.html (AMD spec page)",
    ),
    (
        "AMD Radeon PRO W7900",
        295,
        48,
        2023,
        "https://www.amd.com/en/products/graphics/workstations/radeon-pro/w7900.html "
        "(AMD spec page)",
    ),
    (
        "Intel Data Center GPU Max 1550",
        600,
        128,
        2023,
        "https://www.intel.com/content/www/us/en/products/details/discrete-gpus/data-center-gpu/"
        "max-series.html (Intel spec page)",
    ),
    (
        "Intel Arc B580",
        190,
        12,
        2024,
        "https://www.intel.com/content/www/us/en/products/details/discrete-gpus/arc/"
        "arc-b-series.html (Intel spec page)",
    ),
    (
        "Intel Gaudi2",
        600,
        96,
        2022,
        "https://www.intel.com/content/www/us/en/products/details/processors/ai-accelerators/"
        "gaudi2.html (Intel spec page, HL-225H mezzanine card)",
    ),
    (
        "Intel Gaudi3",
        900,
        128,
        2024,
        "https://www.intel.com/content/www/us/en/products/details/processors/ai-accelerators/"
        "gaudi3.html (Intel spec page, HL-325L OAM, air-cooled)",
    ),
]


def build_gpu_tdp(ref: Path, report: Report) -> str:
    out: dict[str, list[str]] = {}
    for i, row in enumerate(read_reference(ref, "gpu_tdp.csv"), start=2):
        where = f"gpu_tdp.csv:{i}"
        model, kind = clean(row["model"]), clean(row["kind"]).lower()
        if kind not in GPU_TDP_KINDS:
            raise ValueError(f"{where}: kind {kind!r} not one of {sorted(GPU_TDP_KINDS)}")
        memory, source = clean(row["memory_gb"] or ""), clean(row["source"] or "")
        if not source and memory.startswith("http"):
            # A10G: the URL sits in memory_gb and source is empty (a shifted column).
            report(f"gpu_tdp: line {i} {model!r}: source was in memory_gb, moved")
            source, memory = memory, ""
        if memory.lower() == "nan":
            memory = ""
        tdp = float(row["tdp_w"])
        if not 0 < tdp <= CPU_TDP_MAX_W:
            raise ValueError(f"{where}: tdp_w {tdp} not in (0, 1000] W")
        if model.casefold() in out:
            report(f"gpu_tdp: duplicate {model!r} dropped (first kept)")
            continue
        out[model.casefold()] = [
            model,
            kind,
            fmt_number(tdp),
            fmt_number(float(memory)) if memory else "",
            str(GPU_TDP_YEAR),
            f"{source} (via ML CO2 Impact calculator data)",
        ]
    for model, tdp, memory_gb, year, source in GPU_TDP_ADDED:
        if model.casefold() in out:
            raise ValueError(f"gpu_tdp: added {model!r} is already in the reference list")
        out[model.casefold()] = [
            model,
            "gpu",
            fmt_number(float(tdp)),
            fmt_number(float(memory_gb)),
            str(year),
            source,
        ]
    out = apply_gpu_tdp_corrections(ref, out, report)
    rows = sorted(out.values(), key=lambda r: (r[1], r[0].casefold()))
    report(f"gpu_tdp.csv: {len(rows)} rows ({len(GPU_TDP_ADDED)} added from spec pages)")
    return to_csv(["model", "kind", "tdp_w", "memory_gb", "year", "source", "note"], rows)


# gpu_tdp_corrections.csv (issue 30): where the calculator's figure disagrees with the vendor's
# datasheet, the row takes the vendor's figure and keeps the calculator's as a `note`. The one
# "A100 PCIe 40/80GB" row is right for the 40 GB card only, so it becomes two rows.
GPU_TDP_SPLIT = {
    "A100 PCIe 40/80GB": ("A100 PCIe 40GB", 40.0),
}
# Correction names that are not a row's name: the model the row is written under, and its memory.
GPU_TDP_CORRECTION_ROWS = {
    "A100 PCIe 40/80GB (80 GB variant)": ("A100 PCIe 80GB", 80.0),
    "H100 PCIe (missing from file)": ("H100 PCIe", 80.0),
    "A100 SXM4 40 GB (missing from file)": ("A100 SXM4 40 GB", 40.0),
    "H200 SXM 141GB (missing from file)": ("H200 SXM", 141.0),
    "B200 (HGX, missing from file)": ("B200", 180.0),
    "A10 (missing from file; A10G row exists)": ("A10", 24.0),
    "AMD Instinct MI300X (missing from file)": ("AMD Instinct MI300X", 192.0),
}
# Memory the correction states for an existing row (GTX 750: a 1 GB card, the list says 24).
GPU_MEMORY_CORRECTIONS = {"GTX 750": 1.0}


def apply_gpu_tdp_corrections(
    ref: Path, out: dict[str, list[str]], report: Report
) -> dict[str, list[str]]:
    """Vendor figures over the calculator's; rows gain a `note` column (empty where none)."""
    for model, (renamed, memory_gb) in GPU_TDP_SPLIT.items():
        row = out.pop(model.casefold())
        calculator_w = row[2]
        row[0], row[3] = renamed, fmt_number(memory_gb)
        row.append(f"ML CO2 Impact calculator: one row {model!r}, {calculator_w} W, for both cards")
        out[renamed.casefold()] = row
    for row in out.values():
        if len(row) == 6:
            row.append("")
    for i, ref_row in enumerate(read_reference(ref, "gpu_tdp_corrections.csv"), start=2):
        where = f"gpu_tdp_corrections.csv:{i}"
        name, vendor_w = clean(ref_row["name"]), float(ref_row["vendor_w"])
        current = clean(ref_row["current_w"] or "")
        source, year = clean(ref_row["source"]), check_year(int(ref_row["year"]), where)
        if not source:
            raise ValueError(f"{where}: {name!r} has no source")
        if name in GPU_TDP_CORRECTION_ROWS:
            model, memory_gb = GPU_TDP_CORRECTION_ROWS[name]
            existing = out.get(model.casefold())
            if existing is not None:
                if float(existing[2]) != vendor_w:
                    raise ValueError(f"{where}: {model!r} is {existing[2]} W, vendor {vendor_w}")
                report(f"gpu_tdp: {model!r} already at the vendor's {vendor_w:g} W")
                continue
            note = f"ML CO2 Impact calculator: {current} W" if current else ""
            if not current:
                note = "not in the ML CO2 Impact calculator's list"
            out[model.casefold()] = [
                model,
                "gpu",
                fmt_number(vendor_w),
                fmt_number(memory_gb),
                str(year),
                source,
                note,
            ]
            report(f"gpu_tdp: {model!r} {vendor_w:g} W from the vendor ({note})")
            continue
        row = out.get(name.casefold())
        if row is None:
            raise ValueError(f"{where}: {name!r} is not a row of gpu_tdp.csv")
        if float(row[2]) != float(current):
            raise ValueError(f"{where}: {name!r} is {row[2]} W, the correction says {current}")
        row[6] = f"ML CO2 Impact calculator: {row[2]} W ({row[5]})"
        row[2], row[4], row[5] = fmt_number(vendor_w), str(year), source
        if name in GPU_MEMORY_CORRECTIONS:
            row[3] = fmt_number(GPU_MEMORY_CORRECTIONS[name])
        report(f"gpu_tdp: {name!r} {current} W -> vendor {vendor_w:g} W")
    return out


# embodied_carbon.csv (issue 30): what each reference row is used for. `model` is the row of
# gpu_tdp.csv it belongs to (the name the GPU lookup resolves nvidia-smi's names to), `server`
# for the host, empty where carbonmeter charges nothing with it. `use`: `figure` (the one the
# run is charged: a vendor PCF beats a teardown LCA beats a model), `band` (another sourced
# figure for the same device: widens the band), `upper_bound` (BoaviztAPI's model, 2-5x above
# the PCFs where both exist: only ever a band's top, or the figure where nothing else exists),
# `none` (a baseboard, an instance share with its host inside, a component factor, a device
# carbonmeter does not meter).
EMBODIED_USE = {
    "NVIDIA HGX H100 baseboard (8x H100 SXM5 80GB, NVSwitch)": ("", "none"),
    "NVIDIA H100 SXM5 80GB": ("H100 SXM", "figure"),
    "NVIDIA HGX B200 baseboard (8x B200)": ("", "none"),
    "NVIDIA B200": ("B200", "figure"),
    "NVIDIA A100 SXM4 40GB": ("A100 SXM4 40 GB", "band"),
    "NVIDIA A100 (share of an 8-GPU cloud instance)": ("", "none"),
    "Google TPU v6e (Trillium) chip": ("", "none"),
    "Google TPU v6e host server (without accelerators)": ("", "none"),
    "NVIDIA H100 80GB (EcoLogits 0.11 default)": ("H100 SXM", "band"),
    "NVIDIA A100 SXM4 40GB (ADEME LCA)": ("A100 SXM4 40 GB", "figure"),
    "NVIDIA A100 PCIe 40GB (ADEME LCA)": ("A100 PCIe 40GB", "figure"),
    "NVIDIA H100 PCIe 80GB (ADEME LCA)": ("H100 PCIe", "figure"),
    "NVIDIA GH200 (ADEME LCA)": ("", "none"),
    "NVIDIA L4 (ADEME LCA)": ("L4", "figure"),
    "NVIDIA Tesla P100 PCIe 16GB (ADEME LCA)": ("Tesla P100", "figure"),
    "NVIDIA TITAN RTX (ADEME LCA)": ("Titan RTX", "figure"),
    "NVIDIA RTX A4500 (ADEME LCA)": ("", "none"),
    "NVIDIA GeForce GTX 1080 Ti (ADEME LCA)": ("GTX 1080 Ti", "figure"),
    "NVIDIA A100 PCIe 40GB (ADEME/Hubblo parametric model)": ("A100 PCIe 40GB", "band"),
    "NVIDIA H100 SXM 80GB (BoaviztAPI model)": ("H100 SXM", "upper_bound"),
    "NVIDIA A100 SXM4 40GB (BoaviztAPI model)": ("A100 SXM4 40 GB", "upper_bound"),
    "NVIDIA L4 (BoaviztAPI model)": ("L4", "upper_bound"),
    "NVIDIA B200 180GB (BoaviztAPI model)": ("B200", "upper_bound"),
    "AMD Instinct MI300X 192GB (BoaviztAPI model)": ("AMD Instinct MI300X", "upper_bound"),
    "NVIDIA L40S 48GB (BoaviztAPI model)": ("L40S", "upper_bound"),
    "NVIDIA T4 (BoaviztAPI model)": ("T4", "upper_bound"),
    "NVIDIA A10 (BoaviztAPI model)": ("A10", "upper_bound"),
    "2-socket rack server, BoaviztAPI archetype platform_compute_low": ("server", "band"),
    "2-socket rack server, BoaviztAPI archetype platform_compute_medium": ("server", "figure"),
    "2-socket rack server, BoaviztAPI archetype platform_compute_high": ("server", "band"),
    "2-socket rack server, BoaviztAPI archetype dellR740": ("server", "band"),
    "AWS p5.48xlarge host without its 8 GPUs": ("server", "band"),
    "AWS p4d.24xlarge host without its 8 GPUs": ("server", "band"),
    "Dell PowerEdge R740 (manufacturer PCF)": ("server", "band"),
    "Dell PowerEdge R640 (manufacturer PCF)": ("server", "band"),
    "Dell PowerEdge R6525 (manufacturer PCF)": ("server", "band"),
    "HPE ProLiant DL380 Gen10 (manufacturer PCF)": ("server", "band"),
    "HPE ProLiant DL385 Gen10 (manufacturer PCF)": ("server", "band"),
}
EMBODIED_KINDS = {"gpu", "accelerator", "server", "cpu", "dram_per_gb", "ssd_per_tb"}
EMBODIED_BASES = {"vendor", "peer-reviewed", "dataset", "secondary", "assumed"}
EMBODIED_USES = {"figure", "band", "upper_bound", "none"}
EMBODIED_KG_MAX = 20_000.0


def build_embodied(ref: Path, gpu_models: set[str], report: Report) -> str:
    rows = []
    for i, row in enumerate(read_reference(ref, "embodied_carbon.csv"), start=2):
        where = f"embodied_carbon.csv:{i}"
        device, kind = clean(row["device"]), clean(row["kind"])
        basis, source = clean(row["basis"]), clean(row["source"])
        year = check_year(int(row["year"]), where)
        if kind not in EMBODIED_KINDS or basis not in EMBODIED_BASES:
            raise ValueError(f"{where}: kind {kind!r} or basis {basis!r} unknown")
        if not source:
            raise ValueError(f"{where}: {device!r} has no source")
        kg = float(row["kgco2e"])
        if not 0 < kg <= EMBODIED_KG_MAX:
            raise ValueError(f"{where}: kgco2e {kg} not in (0, {EMBODIED_KG_MAX:g}]")
        model, use = EMBODIED_USE.get(device, ("", "none"))
        if model and model != "server" and model not in gpu_models:
            raise ValueError(f"{where}: {device!r} -> {model!r}, not a row of gpu_tdp.csv")
        rows.append(
            [
                model,
                use,
                device,
                kind,
                fmt_number(kg),
                clean(row["per"]),
                clean(row["boundary"]),
                basis,
                str(year),
                source,
            ]
        )
    figures: dict[str, int] = {}
    for model, use, *_ in rows:
        if use == "figure":
            figures[model] = figures.get(model, 0) + 1
    for model, use, device, *_ in rows:
        if model and figures.get(model, 0) > 1:
            raise ValueError(f"embodied: {model!r} has {figures[model]} figures")
        if model and use not in EMBODIED_USES:
            raise ValueError(f"embodied: {device!r} use {use!r}")
    rows.sort(key=lambda r: (r[0] == "", r[0].casefold(), r[1], r[2].casefold()))
    charged = len({r[0] for r in rows if r[0]})
    report(f"embodied_carbon.csv: {len(rows)} rows, {charged} devices charged")
    return to_csv(
        ["model", "use", "device", "kind", "kgco2e", "per", "boundary", "basis", "year", "source"],
        rows,
    )


WATER_L_PER_KWH_MAX = 100.0


def build_water_intensity(ref: Path, report: Report) -> str:
    rows = []
    for i, row in enumerate(read_reference(ref, "water_intensity.csv"), start=2):
        where = f"water_intensity.csv:{i}"
        iso3, litres = clean(row["country_iso_code"]), float(row["l_per_kwh"])
        if not re.fullmatch(r"[A-Z]{3}", iso3):
            raise ValueError(f"{where}: code {iso3!r} is not ISO 3166-1 alpha-3")
        if not 0 <= litres <= WATER_L_PER_KWH_MAX:
            raise ValueError(f"{where}: {litres} L/kWh outside [0, {WATER_L_PER_KWH_MAX:g}]")
        source, year = clean(row["source"]), check_year(int(row["year"]), where)
        if not source:
            raise ValueError(f"{where}: {iso3} has no source")
        rows.append(
            [
                iso3,
                clean(row["country_name"]),
                fmt_number(litres),
                clean(row["scope"]),
                clean(row["basis"]),
                str(year),
                source,
            ]
        )
    rows.sort(key=lambda r: r[0])
    report(f"water_intensity.csv: {len(rows)} rows")
    return to_csv(["iso3", "name", "l_per_kwh", "scope", "basis", "year", "source"], rows)


# datacenter_wue.csv: Azure's 2022 fact sheets file Finland under `northeurope` beside Ireland;
# Azure's North Europe region is Ireland, so the Finland row is left out.
WUE_DROPPED = {("azure", "northeurope", "Finland")}
WUE_SCOPES = {"withdrawal", "consumption", "not stated"}


def build_datacenter_wue(ref: Path, report: Report) -> str:
    rows = []
    for i, row in enumerate(read_reference(ref, "datacenter_wue.csv"), start=2):
        where = f"datacenter_wue.csv:{i}"
        provider, region = clean(row["provider"]).lower(), clean(row["region"])
        location = clean(row["location"])
        if (provider, region, location) in WUE_DROPPED:
            report(f"datacenter_wue: {provider}/{region} {location!r} dropped (another country)")
            continue
        litres, scope = float(row["l_per_kwh"]), clean(row["scope"])
        if not 0 <= litres <= WATER_L_PER_KWH_MAX or scope not in WUE_SCOPES:
            raise ValueError(f"{where}: {litres} L/kWh or scope {scope!r} out of range")
        source, year = clean(row["source"]), check_year(int(row["year"]), where)
        if not source:
            raise ValueError(f"{where}: {provider}/{region} has no source")
        rows.append(
            [
                provider,
                region,
                location,
                fmt_number(litres),
                scope,
                clean(row["period"]),
                clean(row["basis"]),
                str(year),
                source,
            ]
        )
    rows.sort(key=lambda r: (r[0], r[1], -int(r[7])))
    report(f"datacenter_wue.csv: {len(rows)} rows")
    return to_csv(
        [
            "provider",
            "region",
            "location",
            "l_per_kwh",
            "scope",
            "period",
            "basis",
            "year",
            "source",
        ],
        rows,
    )


# equivalents.csv is not built from the references: these few factors are cited here, each with
# its source and year (see data/README.md). basis: what the factor divides, kg CO2eq or kWh.
# The label follows the amount and its unit, which the report picks to fit ("16 cm driven by").
EQUIVALENTS = [
    [
        "car_km",
        "co2_kg",
        "0.24855",
        "driven by a typical US passenger car",
        "2023",
        "US EPA, Greenhouse Gas Emissions from a Typical Passenger Vehicle (EPA-420-F-23-014, "
        "June 2023): about 400 g CO2 per mile, / 1.609344 km per mile; "
        "https://www.epa.gov/greenvehicles/greenhouse-gas-emissions-typical-passenger-vehicle",
    ],
    [
        "household_days",
        "energy_kwh",
        "29.276",
        "of an average US household's electricity",
        "2020",
        "US EIA, How much electricity does an American home use? (FAQ): 10,715 kWh per "
        "residential customer in 2020, / 366 days; https://www.eia.gov/tools/faqs/faq.php?id=97&t=3",
    ],
    [
        "smartphone_charges",
        "energy_kwh",
        "0.019",
        "of a smartphone battery",
        "2024",
        "US EPA, Greenhouse Gas Equivalencies Calculator: Calculations and References (2024 "
        "revision): 0.019 kWh per smartphone charge; "
        "https://www.epa.gov/energy/greenhouse-gas-equivalencies-calculator-calculations-and-references",
    ],
    [
        "tv_hours",
        "co2_kg",
        "0.097",
        "of a 32-inch LCD TV switched on",
        "2020",
        "CodeCarbon carbonboard (codecarbon/viz/data.py, get_tv_time, 2020): 0.097 kg CO2 per "
        "hour of a 32-inch LCD flat-screen TV, as carbonboard shows it (it names no source); "
        "https://github.com/mlco2/codecarbon/blob/master/codecarbon/viz/data.py",
    ],
]


def build_equivalents(report: Report) -> str:
    report(f"equivalents.csv: {len(EQUIVALENTS)} rows (cited in build.py)")
    return to_csv(["key", "basis", "per_unit", "label", "year", "source"], EQUIVALENTS)


# Issue 27's sources (docs/platforms.md): no vendor states an accuracy for them.
_IOREPORT_BASIS = (
    "assumed +/-10 %: IOReport's Energy Model group is Apple's on-chip estimate of each "
    "block's energy, not a meter; Apple publishes no accuracy or update period for it and we "
    "cite no study bounding it (the update period assumed 0.1 s at each edge, as for NVML)"
)
_EMI_BASIS = (
    "assumed as for the RAPL zones (+/-5 %): Windows' Energy Meter Interface serves the same "
    "RAPL counters (RAPL_Package0_PKG, RAPL_Package0_DRAM) in picowatt-hours; Microsoft "
    "states no accuracy for it and we cite no study bounding it"
)
_HWMON_BASIS = (
    "assumed +/-5 %: NVIDIA states no accuracy for Grace's ACPI power meters (power1_average)"
    " in the documentation we read; the +/-5 % it states for its GPU power readings is taken "
    "for them; plus the sampling bound of the trapezoid (polled power)"
)


# uncertainty.csv is not built from the references: each bound is cited here with its basis
# (`stated` by the vendor, `measured` by a study, or `assumed`, with the reason in the source).
# low/high: the true energy lies between figure x low and figure x high (systematic, added across
# components); high empty: unbounded. edge_s: how often the counter updates, so each edge of a
# window may miss up to edge_s of energy (random, in quadrature). See data/README.md.
NVML_POWER_DOC = (
    "NVIDIA NVML API reference, nvmlDeviceGetPowerUsage: 'On Fermi and Kepler GPUs the reading "
    "is accurate to within +/- 5% of current power draw'; on Ampere (except GA100) and newer, "
    "power averaged over 1 s"
)
ASSUMED_AS_NVML = (
    "assumed: no accuracy is stated for it in the vendor documentation we read; the +/-5 % NVIDIA "
    "states for its power readings is taken for it too"
)
UNCERTAINTY = [
    [
        "cpu",
        "rapl",
        "any",
        "0.95",
        "1.05",
        "0.001",
        "assumed",
        "2015",
        "assumed +/-5 %: RAPL energy has been measured on the die, not modelled, since Haswell "
        "(Hackenberg et al., An Energy Efficiency Feature Survey of the Intel Haswell Processor, "
        "IPDPSW 2015), but we cite no study giving a bound for it; the counter updates about "
        "every 1 ms (Intel SDM vol. 3B, MSR_PKG_ENERGY_STATUS). It covers the package only, not "
        "the PSU or board (see psu_efficiency)",
    ],
    [
        "ram",
        "rapl",
        "any",
        "0.95",
        "1.05",
        "0.001",
        "assumed",
        "2015",
        "assumed as for the RAPL package zone (same counter, same update period); no study bound "
        "is cited for the dram zone",
    ],
    [
        "ram",
        "in_cpu",
        "any",
        "1",
        "1",
        "0",
        "assumed",
        "2025",
        "no energy of its own: memory is inside the RAPL psys figure counted as CPU, whose bound "
        "covers it",
    ],
    [
        "cpu",
        "load_tdp",
        "any",
        "0.7299",
        "11.11",
        "0",
        "measured",
        "2025",
        "Fischer 2025 (arXiv 2509.22092): on the 318 runs published with it, static TDP "
        "estimates err from -91 % to +37 % against the wall meter (computed from their data in "
        "carbonmeter issue 15); the truth is the figure / (1 + error): x 1/1.37 to x 1/0.09",
    ],
    [
        "cpu",
        "load_tdp_short",
        "any",
        "0.7299",
        "11.11",
        "0",
        "measured",
        "2025",
        "as load_tdp (Fischer 2025) over a window shorter than one tick of the kernel's CPU time "
        "counters (USER_HZ, 10 ms): the figure is whole ticks, possibly none; every load_tdp row's "
        "band also adds the counters' rounding (5 busy fields, a tick of one CPU each)",
    ],
    [
        "cpu",
        "constant",
        "any",
        "0.5",
        "2",
        "0",
        "assumed",
        "2025",
        "assumed: a power fixed by the user (force_cpu_power) cannot follow the load; a factor "
        "of 2 either way is our assumption, no study bounds a user's figure",
    ],
    [
        "ram",
        "constant",
        "any",
        "0.5",
        "2",
        "0",
        "assumed",
        "2025",
        "assumed: a power fixed by the user (force_ram_power); a factor of 2 either way, as for "
        "the CPU",
    ],
    [
        "ram",
        "model",
        "any",
        "0.5",
        "2",
        "0",
        "assumed",
        "2025",
        "assumed: 3 W per 8 GB in use (CodeCarbon 2.x, after Crucial's 'How much power does "
        "memory use?'); DRAM power per GB differs across generations and with activity, and no "
        "study validating the model is cited, so a factor of 2 either way",
    ],
    [
        "gpu",
        "counter",
        "nvml",
        "0.95",
        "1.05",
        "0.1",
        "assumed",
        "2024",
        f"{NVML_POWER_DOC}; nvmlDeviceGetTotalEnergyConsumption states no accuracy: the power "
        "figure's +/-5 % assumed for the counter, updated with the power (20 to 100 ms, assumed "
        "0.1 s at each edge)",
    ],
    [
        "gpu",
        "polled",
        "nvml",
        "0.95",
        "1.05",
        "0",
        "stated",
        "2024",
        f"{NVML_POWER_DOC} (stated for Fermi and Kepler, assumed for newer boards); plus the "
        "sampling bound of the trapezoid, computed per row: sum of |change of power| x poll "
        "interval / 2",
    ],
    ["gpu", "counter", "amdsmi", "0.95", "1.05", "0.1", "assumed", "2025", ASSUMED_AS_NVML],
    [
        "gpu",
        "polled",
        "amdsmi",
        "0.95",
        "1.05",
        "0",
        "assumed",
        "2025",
        f"{ASSUMED_AS_NVML}; plus the sampling bound of the trapezoid, computed per row",
    ],
    ["gpu", "counter", "hwmon", "0.95", "1.05", "0.1", "assumed", "2025", ASSUMED_AS_NVML],
    [
        "gpu",
        "polled",
        "hwmon",
        "0.95",
        "1.05",
        "0",
        "assumed",
        "2025",
        f"{ASSUMED_AS_NVML}; plus the sampling bound of the trapezoid, computed per row",
    ],
    ["gpu", "counter", "any", "0.95", "1.05", "0.1", "assumed", "2025", ASSUMED_AS_NVML],
    [
        "gpu",
        "polled",
        "any",
        "0.95",
        "1.05",
        "0",
        "assumed",
        "2025",
        f"{ASSUMED_AS_NVML}; plus the sampling bound of the trapezoid, computed per row",
    ],
    [
        "gpu",
        "mixed",
        "any",
        "0.95",
        "1.05",
        "0.1",
        "assumed",
        "2025",
        "a device whose counter failed within the window and was polled after it: the counter's "
        "edge and the polled rows' range, assumed as for either",
    ],
    [
        "gpu",
        "unmeasured",
        "any",
        "1",
        "",
        "0",
        "assumed",
        "2025",
        "a device seen but not measured: its energy is unknown, so the band has no upper bound",
    ],
    [
        "cpu",
        "ioreport",
        "any",
        "0.9",
        "1.1",
        "0.1",
        "assumed",
        "2025",
        _IOREPORT_BASIS,
    ],
    [
        "ram",
        "ioreport",
        "any",
        "0.9",
        "1.1",
        "0.1",
        "assumed",
        "2025",
        _IOREPORT_BASIS,
    ],
    [
        "gpu",
        "counter",
        "ioreport",
        "0.9",
        "1.1",
        "0.1",
        "assumed",
        "2025",
        _IOREPORT_BASIS,
    ],
    [
        "cpu",
        "emi",
        "any",
        "0.95",
        "1.05",
        "0.001",
        "assumed",
        "2025",
        _EMI_BASIS,
    ],
    [
        "ram",
        "emi",
        "any",
        "0.95",
        "1.05",
        "0.001",
        "assumed",
        "2025",
        _EMI_BASIS,
    ],
    [
        "cpu",
        "hwmon",
        "any",
        "0.95",
        "1.05",
        "0",
        "assumed",
        "2025",
        _HWMON_BASIS,
    ],
    [
        "intensity",
        "table",
        "any",
        "0.7",
        "1.3",
        "0",
        "assumed",
        "2025",
        "assumed +/-30 %: a yearly average applied to the hours actually run, while a grid's "
        "hourly intensity moves around its yearly mean with demand and weather; no study bound "
        "is cited. Live hourly figures (intensity_method live_hourly) are narrower",
    ],
    [
        "intensity",
        "forced",
        "any",
        "0.7",
        "1.3",
        "0",
        "assumed",
        "2025",
        "assumed as for a table figure: a fixed intensity given by the user is most often a yearly "
        "figure",
    ],
    [
        "intensity",
        "live_hourly",
        "any",
        "0.9",
        "1.1",
        "0",
        "assumed",
        "2025",
        "assumed +/-10 %: Electricity Maps' hourly figures are estimates (flows between zones, "
        "lifecycle factors) published without an error bound",
    ],
]
UNCERTAINTY_HEADER = [
    "quantity",
    "method",
    "backend",
    "low",
    "high",
    "edge_s",
    "basis",
    "year",
    "source",
]


def build_uncertainty(report: Report) -> str:
    for row in UNCERTAINTY:
        low, high = float(row[3]), float(row[4]) if row[4] else math.inf
        if not (0 < low <= 1 <= high) or row[6] not in {"stated", "measured", "assumed"}:
            raise ValueError(f"uncertainty.csv: bad row {row[:7]}")
    report(f"uncertainty.csv: {len(UNCERTAINTY)} rows (cited in build.py)")
    return to_csv(UNCERTAINTY_HEADER, UNCERTAINTY)


def tz_version(zoneinfo: Path) -> str | None:
    """The tz database release of a zoneinfo directory ("2025b"), from tzdata.zi or +VERSION."""
    zi = zoneinfo / "tzdata.zi"
    if zi.is_file():
        with zi.open(encoding="utf-8") as handle:
            match = re.match(r"# version (\S+)", handle.readline())
        if match:
            return match.group(1)
    version = zoneinfo / "+VERSION"
    if version.is_file():
        return version.read_text(encoding="utf-8").strip() or None
    return None


def committed_tz_version() -> str | None:
    path = DATA_DIR / TIMEZONE_TABLE
    if not path.exists():
        return None
    with path.open(encoding="utf-8", newline="") as handle:
        first = next(csv.DictReader(handle), None)
    match = re.search(r"IANA tz database (\d{4}[a-z]*)", first["source"]) if first else None
    return match.group(1) if match else None


def build_timezones(zoneinfo: Path, report: Report) -> str | None:
    """IANA zone name -> the one country it is in, from zone.tab (one country per zone).

    zone1970.tab is not used: it merges zones that agree since 1970 across countries
    (Europe/Paris is "FR,MC", Europe/Berlin "DE,DK,NO,SE,SJ"), so it cannot name one country.
    Backward links with a slash in their name (US/Pacific, Asia/Calcutta) are added with their
    target's country, except those pointing across a border (TZ_CROSS_COUNTRY_LINKS). Names
    without a slash (CET, EST5EDT, Japan, GB) and Etc/* are left out: many are multi-country.
    Returns None when the zoneinfo directory has no zone.tab.
    """
    zone_tab = zoneinfo / "zone.tab"
    version = tz_version(zoneinfo)
    if not zone_tab.is_file() or version is None:
        report(f"{TIMEZONE_TABLE}: no zone.tab or version under {zoneinfo}, table not rebuilt")
        return None
    year = check_year(int(version[:4]), f"tz version {version}")
    source = f"IANA tz database {version}"
    zones: dict[str, list[str]] = {}
    with zone_tab.open(encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("#") or not line.strip():
                continue
            code, _coordinates, zone = line.rstrip("\n").split("\t")[:3]
            if not re.fullmatch(r"[A-Z]{2}", code):
                raise ValueError(f"zone.tab: {zone} has country {code!r}")
            zones[zone] = [zone, code, str(year), f"{source}, zone.tab"]
    links = 0
    zi = zoneinfo / "tzdata.zi"
    if zi.is_file():
        with zi.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.startswith("L "):
                    continue
                _, target, name = line.split()
                if name in zones or "/" not in name or name.startswith("Etc/"):
                    continue
                if name in TZ_CROSS_COUNTRY_LINKS or target not in zones:
                    report(f"{TIMEZONE_TABLE}: link {name} -> {target} left out")
                    continue
                code = zones[target][1]
                zones[name] = [name, code, str(year), f"{source}, backward link to {target}"]
                links += 1
    report(f"{TIMEZONE_TABLE}: {len(zones) - links} zones from zone.tab + {links} links ({source})")
    return to_csv(["zone", "iso2", "year", "source"], (zones[k] for k in sorted(zones)))


def build_all(ref: Path, report: Report) -> dict[str, str]:
    country, world = build_country_and_world(ref, report)
    gpu_tdp = build_gpu_tdp(ref, report)
    gpu_models = {row["model"] for row in csv.DictReader(io.StringIO(gpu_tdp))}
    return {
        "country_intensity.csv": country,
        "world_intensity.csv": world,
        "region_intensity.csv": build_regions(ref, report),
        "egrid_subregions.csv": build_egrid(ref, report),
        "cloud_regions.csv": build_cloud(ref, report),
        "source_factors.csv": build_source_factors(ref, report),
        "cpu_tdp.csv": build_cpu_tdp(ref, report),
        "gpu_tdp.csv": gpu_tdp,
        "embodied_carbon.csv": build_embodied(ref, gpu_models, report),
        "water_intensity.csv": build_water_intensity(ref, report),
        "datacenter_wue.csv": build_datacenter_wue(ref, report),
        "equivalents.csv": build_equivalents(report),
        "uncertainty.csv": build_uncertainty(report),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reference",
        type=Path,
        default=DEFAULT_REFERENCE,
        help=f"directory of the reference CSVs (default: {DEFAULT_REFERENCE})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="rebuild in memory; exit 1 if any committed table differs",
    )
    parser.add_argument(
        "--zoneinfo",
        type=Path,
        default=DEFAULT_ZONEINFO,
        help=f"tz database directory with zone.tab and tzdata.zi (default: {DEFAULT_ZONEINFO})",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print no build notes")
    args = parser.parse_args(argv)

    if not args.reference.is_dir():
        print(f"reference directory not found: {args.reference}", file=sys.stderr)
        return 2
    report = Report()
    tables = build_all(args.reference, report)
    timezones = build_timezones(args.zoneinfo, report)
    if timezones is not None:
        built_version = tz_version(args.zoneinfo)
        if args.check and built_version != committed_tz_version():
            # Another tz release on this machine: not a stale table, only a different system.
            print(
                f"{TIMEZONE_TABLE}: system tz {built_version} differs from committed, not checked"
            )
        else:
            tables[TIMEZONE_TABLE] = timezones
    if not args.quiet and not args.check:
        print("\n".join(report.lines))

    if args.check:
        stale = []
        for name, text in tables.items():
            path = DATA_DIR / name
            current = path.read_bytes() if path.exists() else None
            if current != text.encode("utf-8"):
                stale.append(name)
        if stale:
            print(f"out of date: {', '.join(stale)} (run python data/build.py)", file=sys.stderr)
            return 1
        print(f"{len(tables)} tables up to date")
        return 0

    for name, text in tables.items():
        (DATA_DIR / name).write_bytes(text.encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
