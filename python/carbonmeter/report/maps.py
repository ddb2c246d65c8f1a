"""The report's maps as inline SVG: the same energy's CO2eq in every country (a choropleth of
Natural Earth's public-domain outlines, data/world_boundaries.csv) and across the regions of the
US, Canada, Norway and Sweden (tile grids: one square per region, placed as on a map; no
outlines of regions ship with us).

No script draws them and nothing loads: each shape is a `<path>` or `<rect>` with its colour,
its figures in `data-` attributes and a `<title>` tooltip; the legend is HTML beside it.
"""

from __future__ import annotations

from html import escape

from carbonmeter._format import co2
from carbonmeter.report import whatif

# g CO2eq/kWh bin edges and their colours, clean (green) to dirty (red): ColorBrewer RdYlGn,
# 8 classes, reversed. The CO2eq of the same energy is proportional to g/kWh, so one scale of
# intensity colours both maps; the legend restates each bin in CO2eq of the report's energy.
EDGES_G_PER_KWH = (50, 150, 250, 350, 450, 550, 700)
COLOURS = ("#1a9850", "#66bd63", "#a6d96a", "#d9ef8b", "#fee08b", "#fdae61", "#f46d43", "#d73027")
NO_DATA = "#e5e7eb"
# The frame of world_boundaries.csv: 1000 wide, Equal Earth from 84 N down to Tierra del Fuego.
WORLD_VIEWBOX = "0 0 1000 432"


def colour(g_per_kwh: float) -> str:
    """The bin colour of an intensity."""
    for edge, fill in zip(EDGES_G_PER_KWH, COLOURS, strict=False):
        if g_per_kwh < edge:
            return fill
    return COLOURS[-1]


def legend(energy_kwh: float) -> str:
    """The colour scale as HTML, in g CO2eq/kWh, and what 100 g/kWh is in CO2eq of
    `energy_kwh` (the CO2eq of the same energy is proportional to the intensity)."""
    lows = (0, *EDGES_G_PER_KWH)
    items = ["<span>g CO2eq/kWh:</span>"]
    for i, fill in enumerate(COLOURS):
        span = f"{lows[i]}-{lows[i + 1]}" if i + 1 < len(lows) else f"{lows[i]}+"
        items.append(f'<span><span class="swatch" style="background:{fill}"></span>{span}</span>')
    items.append(f'<span><span class="swatch" style="background:{NO_DATA}"></span>no figure</span>')
    per_100 = co2(energy_kwh * 100 / 1000.0)
    items.append(f"<span>(100 g/kWh: {per_100} here)</span>")
    return f'<div class="legend map-legend">{"".join(items)}</div>'


def world_map(energy_kwh: float, used: set[str]) -> str:
    """Every country coloured by the CO2eq `energy_kwh` would emit on its grid's yearly
    average, the countries in `used` (ISO alpha-3) outlined; the legend is `legend`'s."""
    figures = whatif.country_intensities()
    shapes, on_top = [], []
    for iso3, outline_name, path in whatif.boundaries():
        found = figures.get(iso3)
        name = found[0] if found else outline_name
        if found is None:
            attrs = f'fill="{NO_DATA}" data-iso3="{iso3}"'
            tip = f"{name}: no intensity in the table"
        else:
            g = found[1]
            kg = energy_kwh * g / 1000.0
            attrs = (
                f'fill="{colour(g)}" data-iso3="{iso3}" data-g-per-kwh="{g:g}" '
                f'data-co2-kg="{kg:.6g}"'
            )
            tip = f"{name}: {co2(kg)} CO2eq at {g:.0f} g CO2eq/kWh"
        if iso3 in used:
            on_top.append(
                f'<path d="{path}" {attrs} class="used-country" stroke="#111827" '
                f'stroke-width="1.6"><title>{escape(tip)} (used)</title></path>'
            )
        else:
            shapes.append(f'<path d="{path}" {attrs}><title>{escape(tip)}</title></path>')
    return (
        f'<svg class="map world" viewBox="{WORLD_VIEWBOX}" role="img" '
        'aria-label="CO2eq of the same energy by country">'
        "<title>CO2eq of the same energy by country</title>"
        f'<g stroke="#ffffff" stroke-width="0.4">{"".join(shapes)}</g>{"".join(on_top)}</svg>'
    )


# Each state's (column, row) on a 12 x 8 grid, roughly where it lies (NPR's tile layout).
US_TILES = {
    "US-AK": (0, 0), "US-ME": (10, 0),
    "US-WI": (5, 1), "US-VT": (9, 1), "US-NH": (10, 1),
    "US-WA": (0, 2), "US-ID": (1, 2), "US-MT": (2, 2), "US-ND": (3, 2), "US-MN": (4, 2),
    "US-IL": (5, 2), "US-MI": (6, 2), "US-NY": (8, 2), "US-MA": (9, 2),
    "US-OR": (0, 3), "US-NV": (1, 3), "US-WY": (2, 3), "US-SD": (3, 3), "US-IA": (4, 3),
    "US-IN": (5, 3), "US-OH": (6, 3), "US-PA": (7, 3), "US-NJ": (8, 3), "US-CT": (9, 3),
    "US-RI": (10, 3),
    "US-CA": (0, 4), "US-UT": (1, 4), "US-CO": (2, 4), "US-NE": (3, 4), "US-MO": (4, 4),
    "US-KY": (5, 4), "US-WV": (6, 4), "US-VA": (7, 4), "US-MD": (8, 4), "US-DE": (9, 4),
    "US-AZ": (1, 5), "US-NM": (2, 5), "US-KS": (3, 5), "US-AR": (4, 5), "US-TN": (5, 5),
    "US-NC": (6, 5), "US-SC": (7, 5), "US-DC": (8, 5),
    "US-OK": (3, 6), "US-LA": (4, 6), "US-MS": (5, 6), "US-AL": (6, 6), "US-GA": (7, 6),
    "US-HI": (0, 7), "US-TX": (3, 7), "US-FL": (8, 7),
}  # fmt: skip
CANADA_TILES = {
    "CA-YT": (0, 0), "CA-NT": (1, 0), "CA-NU": (2, 0), "CA-NL": (6, 0),
    "CA-BC": (0, 1), "CA-AB": (1, 1), "CA-SK": (2, 1), "CA-MB": (3, 1), "CA-ON": (4, 1),
    "CA-QC": (5, 1), "CA-PE": (6, 1),
    "CA-NB": (5, 2), "CA-NS": (6, 2),
}  # fmt: skip
# The Nordic bidding zones, north to south.
NORWAY_TILES = {"NO4": (1, 0), "NO3": (0, 1), "NO5": (0, 2), "NO1": (1, 2), "NO2": (0, 3)}
SWEDEN_TILES = {"SE1": (0, 0), "SE2": (0, 1), "SE3": (0, 2), "SE4": (0, 3)}
TILE, GAP = 44, 4
# A tile grid is drawn at most this fraction of its own units wide (about 26 px a tile), so a
# country of four tiles stays small beside the world map.
TILE_SCALE = 0.6
# The tiles are drawn about 330 px wide: html.py's CSS sets their labels at 16 units, which
# read at the page's small print size; this centres them.
TILE_FONT = 16
# Countries with a tile layout. China's 30 provinces are compared in the chart, not mapped: no
# outline of them ships with us, and no tile layout of them is settled enough to read.
REGION_MAPS = {"USA": US_TILES, "CAN": CANADA_TILES, "NOR": NORWAY_TILES, "SWE": SWEDEN_TILES}


def region_map(country: str, energy_kwh: float, used: set[str]) -> str:
    """`country`'s regions as tiles coloured like the world map, the used ones outlined; "" for
    a country without a layout."""
    layout = REGION_MAPS.get(country)
    if layout is None:
        return ""
    grids = {g.zone: g for g in whatif.regions_of(country)}
    cols = 1 + max(c for c, _ in layout.values())
    rows = 1 + max(r for _, r in layout.values())
    step = TILE + GAP
    tiles = []
    for zone, (col, row) in sorted(layout.items()):
        grid = grids.get(zone)
        x, y = col * step + 1, row * step + 1
        code = zone.split("-", 1)[-1]
        if grid is None:
            fill, tip, data = NO_DATA, f"{zone}: no intensity in the table", ""
        else:
            kg = energy_kwh * grid.g_per_kwh / 1000.0
            fill = colour(grid.g_per_kwh)
            tip = f"{grid.name}: {co2(kg)} CO2eq at {grid.g_per_kwh:.0f} g CO2eq/kWh"
            data = f' data-g-per-kwh="{grid.g_per_kwh:g}" data-co2-kg="{kg:.6g}"'
        stroke = ' stroke="#111827" stroke-width="2.5"' if zone in used else ""
        tiles.append(
            f'<g data-region="{zone}"{data}><rect x="{x}" y="{y}" width="{TILE}" '
            f'height="{TILE}" rx="4" fill="{fill}"{stroke}/>'
            f'<text x="{x + TILE / 2}" y="{y + TILE / 2 + TILE_FONT / 3}" text-anchor="middle" '
            f'class="tile">{code}</text><title>{escape(tip)}</title></g>'
        )
    width, height = cols * step + 2, rows * step + 2
    return (
        f'<svg class="map tiles" viewBox="0 0 {width} {height}" role="img" '
        f'style="max-width: {width * TILE_SCALE:.0f}px" '
        f'aria-label="CO2eq of the same energy by region">'
        f"<title>CO2eq of the same energy by region</title>{''.join(tiles)}</svg>"
    )
