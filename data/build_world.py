#!/usr/bin/env python3
"""Build data/world_boundaries.csv: one simplified SVG outline per country, for the report's map.

Usage:
    python data/build_world.py SHAPEFILE          # rewrite data/world_boundaries.csv
    python data/build_world.py SHAPEFILE --check  # exit 1 if the committed file differs

SHAPEFILE is Natural Earth's 1:110m "Admin 0 - Countries" (public domain) as geopandas 0.14.4
ships it (`geopandas/datasets/naturalearth_lowres/naturalearth_lowres.shp`, with its `.dbf`
beside it; geopandas dropped the file in 1.0, so take it from that wheel: `pip download
--no-deps geopandas==0.14.4`). Only the standard library is needed: the shapefile and its dBASE
table are read here, each ring is simplified (Douglas-Peucker) and drawn in the Equal Earth
projection (Savric, Patterson and Jenny 2018), an equal-area projection, so a country's colour
covers its real share of the map. See data/README.md ("world_boundaries.csv").
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import struct
import sys
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
OUTPUT = DATA_DIR / "world_boundaries.csv"
# The map's width in SVG units; the height follows from the projection (about 0.49 of it).
WIDTH = 1000.0
# Douglas-Peucker tolerance in degrees: 0.2 degree keeps every country recognisable at 1000 px
# wide and the table under 100 kB.
TOLERANCE_DEG = 0.2
# Natural Earth leaves Kosovo's ISO code at -99; the country table uses the user-assigned XKX.
CODE_OVERRIDES = {"Kosovo": "XKX"}
# Antarctica is left out: no grid, and at the bottom of the map it takes a sixth of its height.
LEFT_OUT = {"ATA"}
SOURCE = (
    "Natural Earth 1:110m Admin 0 - Countries (public domain; naturalearthdata.com), as shipped "
    "in geopandas 0.14.4 (datasets/naturalearth_lowres), simplified and projected by "
    "data/build_world.py"
)
YEAR = 2024  # the geopandas release the copy was taken from; the file states no data year

# Equal Earth's coefficients (Savric et al., Int. J. Geographical Information Science, 2018).
A1, A2, A3, A4 = 1.340264, -0.081106, 0.000893, 0.003796
M = math.sqrt(3) / 2


def equal_earth(lon: float, lat: float) -> tuple[float, float]:
    """(x, y) of a point in the unit Equal Earth plane, y up."""
    lam, phi = math.radians(lon), math.radians(lat)
    theta = math.asin(M * math.sin(phi))
    t2 = theta * theta
    t6 = t2 * t2 * t2
    x = (2 * math.sqrt(3) * lam * math.cos(theta)) / (
        3 * (9 * A4 * t6 * t2 + 7 * A3 * t6 + 3 * A2 * t2 + A1)
    )
    y = theta * (A1 + A2 * t2 + t6 * (A3 + A4 * t2))
    return x, y


def read_dbf(path: Path) -> list[dict[str, str]]:
    # The text encoding is named in the `.cpg` file beside it (geopandas' copy: ISO-8859-1).
    cpg = path.with_suffix(".cpg")
    encoding = cpg.read_text(encoding="ascii").strip() if cpg.exists() else "utf-8"
    raw = path.read_bytes()
    count, header_len, record_len = struct.unpack("<IHH", raw[4:12])
    fields = []
    for at in range(32, header_len - 1, 32):
        name = raw[at : at + 11].split(b"\0")[0].decode("ascii")
        fields.append((name, raw[at + 16]))
    records = []
    for index in range(count):
        offset = header_len + index * record_len + 1  # one byte: the deletion flag
        row = {}
        for name, length in fields:
            row[name] = raw[offset : offset + length].decode(encoding).strip()
            offset += length
        records.append(row)
    return records


def read_polygons(path: Path) -> list[list[list[tuple[float, float]]]]:
    """Each record's rings as (lon, lat) lists (shape types 5, polygon, only)."""
    raw = path.read_bytes()
    at, shapes = 100, []
    while at < len(raw):
        _, words = struct.unpack(">II", raw[at : at + 8])
        body = raw[at + 8 : at + 8 + 2 * words]
        at += 8 + 2 * words
        (kind,) = struct.unpack("<i", body[:4])
        if kind != 5:
            raise ValueError(f"{path}: shape type {kind}, expected 5 (polygon)")
        parts, points = struct.unpack("<ii", body[36:44])
        starts = [*struct.unpack(f"<{parts}i", body[44 : 44 + 4 * parts]), points]
        base = 44 + 4 * parts
        coords = [
            struct.unpack("<dd", body[base + 16 * i : base + 16 * i + 16]) for i in range(points)
        ]
        shapes.append([coords[starts[i] : starts[i + 1]] for i in range(parts)])
    return shapes


def simplify(points: list[tuple[float, float]], tolerance: float) -> list[tuple[float, float]]:
    """Douglas-Peucker, iterative (rings of thousands of points would overflow recursion)."""
    if len(points) < 3:
        return points
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        (x1, y1), (x2, y2) = points[first], points[last]
        dx, dy = x2 - x1, y2 - y1
        norm = math.hypot(dx, dy)
        worst, index = 0.0, -1
        for i in range(first + 1, last):
            px, py = points[i]
            if norm == 0:
                dist = math.hypot(px - x1, py - y1)
            else:
                dist = abs(dy * px - dx * py + x2 * y1 - y2 * x1) / norm
            if dist > worst:
                worst, index = dist, i
        if index >= 0 and worst > tolerance:
            keep[index] = True
            stack.extend([(first, index), (index, last)])
    return [p for p, kept in zip(points, keep, strict=True) if kept]


def build(shapefile: Path) -> str:
    records = read_dbf(shapefile.with_suffix(".dbf"))
    shapes = read_polygons(shapefile)
    scale = WIDTH / 2 / equal_earth(180, 0)[0]
    top = equal_earth(0, 84)[1] * scale  # Natural Earth's land ends north of Greenland
    rows = []
    for record, rings in zip(records, shapes, strict=True):
        iso3 = CODE_OVERRIDES.get(record["name"], record["iso_a3"])
        if iso3 in LEFT_OUT:
            continue
        if len(iso3) != 3 or not iso3.isalpha():
            raise ValueError(f"{record['name']}: ISO code {iso3!r}")
        parts = []
        for ring in rings:
            kept = simplify(ring, TOLERANCE_DEG)
            if len(kept) < 4:  # an islet that simplifies to a line
                continue
            xy = []
            for lon, lat in kept[:-1]:  # the closing point repeats the first: Z closes it
                x, y = equal_earth(lon, lat)
                xy.append(f"{x * scale + WIDTH / 2:.1f} {top - y * scale:.1f}")
            parts.append("M" + " ".join(xy) + "Z")
        if not parts:  # every ring too small at this tolerance: keep the largest unsimplified
            ring = max(rings, key=len)
            xy = [
                f"{equal_earth(lon, lat)[0] * scale + WIDTH / 2:.1f} "
                f"{top - equal_earth(lon, lat)[1] * scale:.1f}"
                for lon, lat in ring[:-1]
            ]
            parts.append("M" + " ".join(xy) + "Z")
        rows.append((iso3, record["name"], "".join(parts)))
    rows.sort()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["iso3", "name", "path", "year", "source"])
    for iso3, name, path in rows:
        writer.writerow([iso3, name, path, YEAR, SOURCE])
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shapefile", type=Path, help="naturalearth_lowres.shp (see the doc)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the table differs")
    args = parser.parse_args(argv)
    text = build(args.shapefile)
    if args.check:
        same = OUTPUT.read_text(encoding="utf-8") == text
        print("world_boundaries.csv is up to date" if same else "world_boundaries.csv differs")
        return 0 if same else 1
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(text)} bytes, {text.count(chr(10)) - 1} countries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
