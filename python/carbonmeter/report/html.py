"""The report as one self-contained HTML page: inline CSS and SVG charts and maps, no network.

The only links are the citations of the sources (equivalence factors, grid intensities). The one
script is the selectors' (`filters.py`), inline; the page reads the same without it.
"""

from __future__ import annotations

import datetime
import math
import re
from html import escape
from typing import Any

from carbonmeter._core import __version__
from carbonmeter._format import co2, co2_band, energy, energy_band, seconds
from carbonmeter.report import filters, maps, tradeoff, whatif
from carbonmeter.report.model import (
    CURVE_POINTS,
    EPOCH_DETAIL,
    Experiment,
    Report,
    Run,
    band_totals,
    end_text,
    equivalents,
    figure,
    group_columns,
    groups,
    overview,
    overview_columns,
    plural,
    run_count,
    start_text,
    time_labels,
    totals,
    what_if,
)
from carbonmeter.report.text import footprint_sentence, latex_escape, paragraph

COMPONENTS = (
    ("CPU", "cpu_kwh", "#2563eb"),
    ("GPU", "gpu_kwh", "#16a34a"),
    ("RAM", "ram_kwh", "#f59e0b"),
)
# Past EPOCH_DETAIL epochs, the curves of this many runs (those that emitted most) are drawn.
CURVE_RUNS = 10
PHASE_COLORS = {"train": "#0f766e", "validation": "#7c3aed", "eval": "#db2777"}
URL = re.compile(r"https?://[^\s,;)\"'<>]+")

CSS = """
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --card: #f9fafb; --accent: #0f766e; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: #fff; }
main { max-width: 1040px; margin: 0 auto; padding: 32px 24px 48px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 40px 0 4px; padding-top: 16px; border-top: 2px solid var(--line); }
h3 { font-size: 16px; margin: 24px 0 8px; }
.sub, .note { color: var(--muted); font-size: 13px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap: 12px;
         margin: 20px 0; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
        padding: 14px 16px; }
.card .v { font-size: 26px; font-weight: 650; line-height: 1.2; }
.card .k { color: var(--muted); font-size: 13px; }
.card.main { background: #ecfdf5; border-color: #a7f3d0; }
.card.main .v { color: var(--accent); }
.equiv .v { font-size: 22px; }
sup a { color: var(--muted); text-decoration: none; margin-left: 4px; font-size: 12px; }
.legend { display: flex; gap: 18px; flex-wrap: wrap; font-size: 13px; margin: 6px 0 0; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
          margin-right: 6px; vertical-align: baseline; }
svg { display: block; width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: var(--muted); }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 8px 0; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 12px; }
textarea { width: 100%; min-height: 110px; font: 12px/1.45 ui-monospace, monospace;
           padding: 10px; border: 1px solid var(--line); border-radius: 8px;
           background: var(--card); color: var(--ink); resize: vertical; }
ol.sources { font-size: 12px; color: var(--muted); padding-left: 20px; }
ol.sources a { color: var(--muted); word-break: break-all; }
footer { margin-top: 40px; }
details.fold { margin: 6px 0; border: 1px solid var(--line); border-radius: 8px;
               padding: 4px 10px; }
details.fold > summary { cursor: pointer; font-size: 13px; color: var(--muted); }
table.overview td, table.overview th { font-size: 14px; }
.used { font-weight: 650; }
tr.group td { background: var(--card); font-size: 13px; }
.recommend { background: #f0fdf4; border: 1px solid #bbf7d0; border-radius: 8px;
             padding: 8px 12px; margin: 10px 0; }
.maps { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.maps figure { margin: 0; }
figure.world { flex: 1 1 560px; }
figure.region { flex: 0 1 340px; }
svg text.tile { fill: #111827; font-weight: 600; font-size: 16px; }
.map-legend { font-size: 12px; }
"""


def _nice_step(top: float) -> float:
    if top <= 0:
        return 1.0
    raw = top / 4
    power = 10.0 ** math.floor(math.log10(raw))
    for step in (1, 2, 2.5, 5, 10):
        if raw <= step * power:
            return step * power
    return 10 * power


def _unit(values: list[float], kind: str) -> tuple[float, str]:
    """A divisor and unit so the largest value reads well (g or kg, Wh or kWh)."""
    top = max(values, default=0.0)
    if kind == "co2":
        for factor, unit in ((1e3, "t"), (1.0, "kg"), (1e-3, "g")):
            if top >= factor:
                return factor, unit
        return 1e-6, "mg"
    for factor, unit in ((1e3, "MWh"), (1.0, "kWh"), (1e-3, "Wh")):
        if top >= factor:
            return factor, unit
    return 1e-6, "mWh"


# Width of one character of the 11 px chart font, generous, so thinned labels never touch.
CHAR_W = 6.6


def _text_w(text: str) -> float:
    return len(text) * CHAR_W


def bar_chart(
    bars: list[tuple[str, float, str, str]], kind: str, title: str, height: int = 220
) -> str:
    """Vertical bars: (label, value, colour, tooltip) each; y axis in a readable unit. The left
    margin fits the widest tick label, and x labels are thinned to every k-th so none collide."""
    width, bottom, top_pad, right = 960, 42, 14, 16
    factor, unit = _unit([b[1] for b in bars], kind)
    values = [b[1] / factor for b in bars]
    step = _nice_step(max(values, default=0.0))
    top = step * max(1, math.ceil(max(values, default=0.0) / step - 1e-9))
    ticks = []
    tick = 0.0
    while tick <= top + 1e-9:
        ticks.append((tick, f"{tick:g} {unit}"))
        tick += step
    left = 14 + max(_text_w(t) for _, t in ticks)
    plot_h = height - bottom - top_pad
    plot_w = width - left - right
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for tick, text in ticks:
        y = top_pad + plot_h - plot_h * tick / top
        parts.append(
            f'<line x1="{left:.1f}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#e5e7eb"/><text x="{left - 8:.1f}" y="{y + 4:.1f}" '
            f'text-anchor="end">{escape(text)}</text>'
        )
    n = max(len(bars), 1)
    slot = plot_w / n
    bar_w = max(min(slot * 0.7, 60), 1.5)
    label_w = max((_text_w(b[0]) for b in bars), default=0.0) + 10
    every = max(1, math.ceil(label_w / slot))
    for i, ((label, _, colour, tip), value) in enumerate(zip(bars, values, strict=True)):
        h = plot_h * value / top if top else 0
        x = left + slot * i + (slot - bar_w) / 2
        y = top_pad + plot_h - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{max(h, 0.5):.1f}" '
            f'rx="2" fill="{colour}"><title>{escape(tip)}</title></rect>'
        )
        centre = x + bar_w / 2
        # Keep the first and last labels inside the chart: anchor them at their edge.
        half = _text_w(label) / 2
        anchor, at = "middle", centre
        if centre - half < 2:
            anchor, at = "start", max(centre - 4, 2)
        elif centre + half > width - 2:
            anchor, at = "end", min(centre + 4, width - 2)
        if i % every == 0:
            parts.append(
                f'<text x="{at:.1f}" y="{height - bottom + 20}" '
                f'text-anchor="{anchor}">{escape(label)}</text>'
            )
    parts.append(
        f'<line x1="{left:.1f}" x2="{width - right}" y1="{top_pad + plot_h}" '
        f'y2="{top_pad + plot_h}" stroke="#9ca3af"/></svg>'
    )
    return "".join(parts)


def hbar_chart(bars: list[tuple[str, float, str, str, str]], title: str) -> str:
    """Horizontal bars, one line each: (label, kg CO2eq, colour, value text, tooltip)."""
    width, row_h, pad = 960, 26, 6
    left = 16 + max((_text_w(b[0]) for b in bars), default=40.0)
    value_w = 8 + max((_text_w(b[3]) for b in bars), default=40.0)
    plot_w = width - left - value_w
    height = pad * 2 + row_h * len(bars)
    top = max((b[1] for b in bars), default=0.0)
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, value, colour, text, tip) in enumerate(bars):
        y = pad + row_h * i
        w = plot_w * value / top if top > 0 else 0
        parts.append(
            f'<text x="{left - 8:.1f}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect x="{left:.1f}" y="{y + 4:.1f}" width="{max(w, 0.5):.1f}" '
            f'height="{row_h - 8}" rx="2" fill="{colour}"><title>{escape(tip)}</title></rect>'
            f'<text x="{left + max(w, 0.5) + 6:.1f}" y="{y + row_h / 2 + 4:.1f}">'
            f"{escape(text)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def stacked_bar(parts: list[tuple[str, float, str]]) -> str:
    """One horizontal bar split by component, with a legend of values and shares."""
    total = sum(v for _, v, _ in parts)
    svg = ['<svg viewBox="0 0 1000 26" role="img" aria-label="energy by component">']
    x = 0.0
    for label, value, colour in parts:
        w = 1000 * value / total if total > 0 else 0
        if w > 0:
            svg.append(
                f'<rect x="{x:.2f}" y="0" width="{w:.2f}" height="26" fill="{colour}">'
                f"<title>{label}: {energy(value)}</title></rect>"
            )
        x += w
    if total <= 0:
        svg.append('<rect x="0" y="0" width="1000" height="26" fill="#e5e7eb"/>')
    svg.append("</svg>")
    legend = "".join(
        f'<span><span class="swatch" style="background:{colour}"></span>{label} '
        f"{energy(value)} ({100 * value / total if total > 0 else 0:.0f} %)</span>"
        for label, value, colour in parts
    )
    return "".join(svg) + f'<div class="legend">{legend}</div>'


def _linked(text: str, links: list[str]) -> str:
    """Escapes `text`, turning its URLs into links (and remembering them)."""
    out, last = [], 0
    for match in URL.finditer(text):
        url = match.group(0).rstrip(".")
        links.append(url)
        out.append(escape(text[last : match.start()]))
        out.append(f'<a href="{escape(url)}">{escape(url)}</a>')
        last = match.start() + len(url)
    out.append(escape(text[last:]))
    return "".join(out)


PROJECT_COLORS = ("#0f766e", "#2563eb", "#d97706", "#7c3aed", "#db2777", "#65a30d", "#0891b2")


def project_colour(i: int) -> str:
    """The i-th project's colour: seven hand-picked, then hues a golden angle apart (so no two
    of any number of projects share a colour), alternating in lightness."""
    if i < len(PROJECT_COLORS):
        return PROJECT_COLORS[i]
    hue = (i * 137.508) % 360
    return f"hsl({hue:.0f}, 65%, {38 if i % 2 else 50}%)"


def _card(value: str, key: str, extra: str = "") -> str:
    return f'<div class="card{extra}"><div class="v">{value}</div><div class="k">{key}</div></div>'


def _runs_table(experiments: list[Experiment]) -> str:
    """One table of a project's runs, a heading line per experiment with its sums."""
    rows = []
    # The year only where the runs span more than one: the table stays one line a run.
    years = {r.started.year for e in experiments for r in e.runs if r.started}
    year = len(years) > 1
    for experiment in experiments:
        et = totals(experiment.runs)
        # Counted as the overview counts them: evaluations after a training are its phases.
        runs = run_count(experiment.runs)
        evaluations = len(experiment.runs) - runs
        counted = plural(runs, "run") + (
            f" and {plural(evaluations, 'evaluation')}" if evaluations else ""
        )
        tag = filters.attrs(experiment.project, experiment.label)
        rows.append(
            f"<tr class='group'{tag}><td colspan='8'><b>{escape(experiment.label)}</b>: "
            f"{counted}, {co2(et['co2_kg'])} CO2eq, "
            f"{energy(et['energy_kwh'])}</td></tr>"
        )
        for r in experiment.runs:
            # `gpu_model` counts the GPUs itself (`2 x NVIDIA A100`), as CodeCarbon's does.
            hw = escape(r.cpu_model or "?") + (
                f" + {escape(r.gpu_model)}" if r.gpu_count and r.gpu_model else ""
            )
            rows.append(
                f"<tr class='run'{tag} data-co2-kg='{r.co2_kg:.9g}' "
                f"data-kwh='{r.energy_kwh:.9g}'>"
                f"<td>{escape(start_text(r, year))}&ndash;{end_text(r)}</td>"
                f"<td><code>{escape(r.run_id[:8])}</code>"
                + (f" rank {escape(r.rank)}" if r.rank else "")
                + "</td>"
                f'<td class="n">{seconds(r.duration_s)}</td>'
                f'<td class="n">{energy_band(r.energy_kwh, r.energy_low_kwh, r.energy_high_kwh)}'
                "</td>"
                f'<td class="n">{co2_band(r.co2_kg, r.co2_low_kg, r.co2_high_kg)}</td>'
                f'<td class="n">{r.intensity_g_per_kwh:.0f}</td>'
                f"<td>{escape(r.location or 'unspecified: world average')}</td>"
                f"<td>{hw}</td></tr>"
            )
    return (
        '<table><tr><th>started&ndash;ended</th><th>run</th><th class="n">duration</th>'
        '<th class="n">energy</th><th class="n">CO2eq</th><th class="n">g/kWh</th>'
        "<th>location</th><th>hardware</th></tr>" + "".join(rows) + "</table>"
    )


def epoch_chart(run: Run, height: int = 200, detailed: bool = True) -> str:
    """CO2eq per epoch of one run, train first, with a legend of its phases; not `detailed`,
    the mean of each step of its curve (`EpochSeries.curve`)."""
    phases = list(run.series.counts())
    if detailed:
        bars = [
            (
                f"{e.epoch}" if len(phases) == 1 else f"{e.phase[:1]}{e.epoch}",
                e.co2_kg,
                PHASE_COLORS.get(e.phase, "#0f766e"),
                f"{e.phase} epoch {e.epoch}: {co2(e.co2_kg)} CO2eq, {energy(e.energy_kwh)}, "
                f"{seconds(e.duration_s)}",
            )
            for phase in phases
            for e in run.epochs
            if e.phase == phase
        ]
    else:
        bars = [
            (
                f"{first}" if len(phases) == 1 else f"{phase[:1]}{first}",
                mean_kg,
                PHASE_COLORS.get(phase, "#0f766e"),
                f"{phase} epochs {first}-{last}: {co2(mean_kg)} CO2eq per epoch (mean)",
            )
            for phase, first, last, mean_kg in run.series.curve()
        ]
    legend = "".join(
        f'<span><span class="swatch" style="background:{PHASE_COLORS.get(p, "#0f766e")}">'
        f"</span>{escape(p)}</span>"
        for p in phases
    )
    return bar_chart(bars, "co2", f"CO2eq per epoch of run {run.label}", height=height) + (
        f'<div class="legend">{legend}</div>'
    )


def _epoch_summaries(runs: list[Run]) -> str:
    """A line per run and phase: epochs, sums, the least and most CO2eq of one epoch; then the
    curves of the runs that emitted most (issue 33: not a table row per epoch)."""
    rows = "".join(
        f"<tr><td>{escape(r.label)}</td><td>{escape(phase)}</td>"
        f"<td class='n'>{int(s['epochs'])}</td><td class='n'>{seconds(s['duration_s'])}</td>"
        f"<td class='n'>{energy(s['energy_kwh'])}</td><td class='n'>{co2(s['co2_kg'])}</td>"
        f"<td class='n'>{co2(s['co2_min_kg'])}-{co2(s['co2_max_kg'])}</td></tr>"
        for r in runs
        for phase, s in r.series.summary().items()
    )
    largest = sorted(runs, key=lambda r: -r.co2_kg)[:CURVE_RUNS]
    curves = "".join(
        f"<h3>Run {escape(r.label)}: {escape(r.epoch_words())}</h3>"
        + epoch_chart(r, detailed=False)
        for r in largest
    )
    return (
        f"<p class='note'>More than {EPOCH_DETAIL:,} epochs in the report: each run's are "
        f"summarised, and the curves of the {plural(len(largest), 'run')} that emitted most "
        f"are drawn in at most {CURVE_POINTS} steps (<code>--format json</code> has every "
        "run's summary).</p><table><tr><th>run</th><th>phase</th><th class='n'>epochs</th>"
        "<th class='n'>duration</th><th class='n'>energy</th><th class='n'>CO2eq</th>"
        f"<th class='n'>CO2eq per epoch (least-most)</th></tr>{rows}</table>{curves}"
    )


def _epochs(run: Run) -> str:
    rows = "".join(
        f"<tr><td>{escape(e.phase)}</td><td class='n'>{e.epoch}</td>"
        f"<td class='n'>{seconds(e.duration_s)}</td><td class='n'>{energy(e.energy_kwh)}</td>"
        f"<td class='n'>{co2(e.co2_kg)}</td></tr>"
        for e in run.epochs
    )
    return (
        f"<h3>Run {escape(run.label)}: {escape(run.epoch_words())}, "
        f"{co2(sum(e.co2_kg for e in run.epochs))} CO2eq</h3>"
        + epoch_chart(run)
        + "<details class='fold'><summary>epoch table</summary><table><tr><th>phase</th>"
        "<th class='n'>epoch</th><th class='n'>duration</th><th class='n'>energy</th>"
        f"<th class='n'>CO2eq</th></tr>{rows}</table></details>"
    )


def _overview_table(report: Report) -> str:
    lines = overview(report)
    columns = overview_columns(lines)
    head = "".join(
        f'<th class="n">{escape(c.heading)}</th>' if c.numeric else f"<th>{escape(c.heading)}</th>"
        for c in columns
    )
    rows = []
    for line in lines:
        cells = "".join(
            f'<td class="n">{escape(c.text(line[c.key]))}</td>'
            if c.numeric
            else f"<td>{escape(c.text(line[c.key]))}</td>"
            for c in columns
        )
        rows.append(f"<tr{filters.attrs(line['project'], line['experiment'])}>{cells}</tr>")
    return f'<table class="overview"><tr>{head}</tr>{"".join(rows)}</table>'


# The what-if chart shows every grid up to WHAT_IF_BARS (the default set of countries fits);
# past that, CUT_BARS of them: the ones used, the cleanest, the dirtiest. A provider's forty
# regions are all in the list folded under it.
WHAT_IF_BARS = 10
CUT_BARS = 8


def _grid_label(zone: str) -> str:
    """`gcp:europe-north1 (Hamina, Finland)`, `US-KS (Kansas)`, `FRA (France)`, `World`."""
    name = whatif.names().get(zone, "")
    return f"{zone} ({name})" if name and name != zone and zone != "World" else zone


def _charted(lines: list[dict[str, Any]], used: set[str]) -> list[dict[str, Any]]:
    """The lines the chart shows: all of them, in the order given, up to WHAT_IF_BARS; else
    CUT_BARS: the used grids, then the cleanest others and the dirtiest, clean to dirty."""
    if len(lines) <= WHAT_IF_BARS:
        return lines
    mine = [w for w in lines if w["zone"] in used]
    others = sorted((w for w in lines if w["zone"] not in used), key=lambda w: w["g_per_kwh"])
    room = max(CUT_BARS - 1 - len(mine), 1)
    return [*mine, *others[:room], others[-1]]


def _recommendation(lines: list[dict[str, Any]], used: set[str]) -> str:
    """One line naming the cleanest grid compared, and what the energy would have emitted
    there beside what it emitted on the grid used."""
    if not lines:
        return ""
    best = min(lines, key=lambda w: (w["g_per_kwh"], w["zone"] not in used))
    label = escape(_grid_label(best["zone"]))
    if best["zone"] in used:
        return (
            f"<p class='recommend' id='recommended' data-zone='{escape(best['zone'])}'>"
            f"<b>{label}</b>, the grid used, is already the cleanest of these "
            f"({best['g_per_kwh']:.0f} g CO2eq/kWh).</p>"
        )
    here = [w for w in lines if w["zone"] in used]
    versus = ""
    if here:
        now = here[0]
        saved = 1 - best["emissions_kg"] / now["emissions_kg"] if now["emissions_kg"] else 0.0
        versus = (
            f" instead of {co2(now['emissions_kg'])} on {escape(now['zone'])}"
            f" ({100 * saved:.3g} % less)"
        )
    return (
        f"<p class='recommend' id='recommended' data-zone='{escape(best['zone'])}'>"
        f"Cleanest of these: <b>{label}</b>, {best['g_per_kwh']:.0f} g CO2eq/kWh: the same "
        f"energy would have emitted {co2(best['emissions_kg'])} CO2eq there{versus}.</p>"
    )


def _what_if(report: Report, zones: list[str] | None, links: list[str]) -> str:
    lines = what_if(report, zones)
    used = {r.intensity_zone for r in report.runs}
    best = min(lines, key=lambda w: (w["g_per_kwh"], w["zone"] not in used), default=None)
    shown = _charted(lines, used)

    def bar_colour(zone: str) -> str:
        if zone in used:
            return "#0f766e"
        return "#65a30d" if best is not None and zone == best["zone"] else "#9ca3af"

    bars = [
        (
            _grid_label(w["zone"]),
            w["emissions_kg"],
            bar_colour(w["zone"]),
            f"{co2(w['emissions_kg'])} at {w['g_per_kwh']:.0f} g/kWh",
            f"{w['zone']}: {w['g_per_kwh']:.0f} g CO2eq/kWh ({w['source']}"
            + (f", {w['year']})" if w["year"] else ")"),
        )
        for w in shown
    ]
    sources = "".join(
        f"<li{' class=used' if w['zone'] in used else ''}>{escape(_grid_label(w['zone']))}: "
        f"{w['g_per_kwh']:.0f} g CO2eq/kWh, {co2(w['emissions_kg'])} CO2eq, "
        f"{_linked(w['source'], links)}" + (f" ({w['year']})" if w["year"] else "") + "</li>"
        for w in lines
    )
    peer_titles = [p.title for p in map(whatif.peers, sorted(used)) if p is not None]
    among = (
        f", beside {', '.join(dict.fromkeys(peer_titles))}" if zones is None and peer_titles else ""
    )
    energy_kwh = sum(r.energy_kwh for r in report.runs)
    countries = {whatif.country_of().get(z, "") for z in used} - {""}
    mapped = [c for c in sorted(countries) if c in maps.REGION_MAPS]
    # A cloud region's state is outlined too: its grid is that state's.
    places = used | {r for r in map(whatif.region_of, used) if r is not None}
    region = "".join(maps.region_map(c, energy_kwh, places) for c in mapped)
    mapped_names = ", ".join(whatif.names().get(c, c) for c in mapped)
    return (
        "<h2>What if it ran elsewhere</h2><p class='sub'>The same "
        f"{energy(energy_kwh)} at each grid's yearly average{among}: the grids used in colour, "
        "the cleanest in green; <code>--compare</code> picks others</p>"
        + _recommendation(lines, used)
        + hbar_chart(bars, "CO2eq of the same energy on other grids")
        + f"<details class='fold'><summary>all {plural(len(lines), 'grid')} compared, with "
        f"their sources</summary><ul class='note'>{sources}</ul></details>"
        + "<h3>The same energy in every country"
        + (f" and each region of {escape(mapped_names)}" if region else "")
        + "</h3><div class='maps'><figure class='world'>"
        + maps.world_map(energy_kwh, countries)
        + "</figure>"
        + (
            f"<figure class='region'>{region}<figcaption class='note'>{escape(mapped_names)}, "
            "one square per region</figcaption></figure>"
            if region
            else ""
        )
        + f"</div>{maps.legend(energy_kwh)}"
        + "<p class='note'>Outlines: Natural Earth 1:110m (public domain), simplified.</p>"
    )


def _intensities_used(report: Report, links: list[str]) -> str:
    """Each grid figure the runs used, once, with its source and year and the projects."""
    used: dict[tuple[str, float, str, str], list[str]] = {}
    for r in report.runs:
        key = (r.location, round(r.intensity_g_per_kwh, 3), r.intensity_source, r.intensity_year)
        projects = used.setdefault(key, [])
        if r.project not in projects:
            projects.append(r.project)
    items = []
    for (location, g_per_kwh, source, year), projects in used.items():
        place = escape(location) if location else "An unspecified location"
        when = f", {escape(year)}" if year else ""
        who = f" <span class='note'>({escape(', '.join(projects))})</span>" if len(used) > 1 else ""
        items.append(
            f"<li>{place}: <b>{g_per_kwh:.0f} g CO2eq/kWh</b> "
            f"({_linked(source, links)}{when}){who}</li>"
        )
    return f"<h2>Grid intensity used</h2><ul>{''.join(items)}</ul>"


def _groups_table(report: Report, by: str) -> str:
    """`--group-by`'s table: a line per value with its runs' sums."""
    columns = group_columns(by)
    head = "".join(
        f'<th class="n">{escape(c.heading)}</th>' if c.numeric else f"<th>{escape(c.heading)}</th>"
        for c in columns
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{escape(c.text(line[c.key]))}</td>'
            if c.numeric
            else f"<td>{escape(c.text(line[c.key]))}</td>"
            for c in columns
        )
        + "</tr>"
        for line in groups(report, by)
    )
    return f'<h3>By {escape(by)}</h3><table class="overview"><tr>{head}</tr>{rows}</table>'


def _footprint(report: Report) -> str:
    return footprint_sentence(report.runs).strip()


def render(report: Report, zones: list[str] | None = None, group_by: str | None = None) -> str:
    """The whole page: the overview table first (then `group_by`'s), then totals, what if and
    each project."""
    links: list[str] = []
    grand = totals(report.runs)
    band = band_totals(report.runs)
    factors = equivalents()
    projects = report.projects()
    project_runs = report.project_runs()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    bar = filters.selector_bar(report)
    body = [
        "<main><header><h1>Emissions report</h1>",
        f'<p class="sub">{plural(len(report.runs), "run")} in {plural(len(projects), "project")}'
        f", from {plural(len(report.files), 'file')}; written {now} by "
        f"carbonmeter {escape(__version__)}</p></header>",
        bar,
        _overview_table(report),
        _groups_table(report, group_by) if group_by else "",
        '<section class="cards">',
        _card(
            co2_band(grand["co2_kg"], band["co2_low_kg"], band["co2_high_kg"]),
            "CO2eq emitted (error band)" if band["co2_low_kg"] is not None else "CO2eq emitted",
            " main",
        ),
        _card(
            energy_band(grand["energy_kwh"], band["energy_low_kwh"], band["energy_high_kwh"]),
            "electricity used (PUE included)",
        ),
        _card(seconds(grand["duration_s"]), "measured"),
        _card(str(int(grand["runs"])), "run" if grand["runs"] == 1 else "runs"),
        "</section>",
        # Electricity, embodied carbon and water side by side; nothing for CodeCarbon's rows.
        f'<p class="note">{escape(footprint)}</p>' if (footprint := _footprint(report)) else "",
        '<p class="note">That is about as much as</p><section class="cards equiv">',
    ]
    for i, e in enumerate(factors, start=1):
        amount = escape(e.amount(grand["co2_kg"], grand["energy_kwh"]))
        body.append(_card(f'{amount}<sup><a href="#src-{i}">[{i}]</a></sup>', escape(e.label)))
    body.append("</section>")
    colour = {p: project_colour(i) for i, p in enumerate(projects)}
    if len(projects) > 1:
        body.append("<h3>All runs over time (CO2eq per run, oldest first)</h3>")
        bars = [
            (
                label,
                r.co2_kg,
                colour[r.project],
                f"{r.project} {r.label} {r.timestamp[:16]}: {co2(r.co2_kg)} CO2eq, "
                f"{energy(r.energy_kwh)}",
            )
            for r, label in zip(
                report.runs, time_labels([r.started for r in report.runs]), strict=True
            )
        ]
        body.append(bar_chart(bars, "co2", "CO2eq per run over time"))
        legend = "".join(
            f'<span><span class="swatch" style="background:{c}"></span>{escape(p)}</span>'
            for p, c in colour.items()
        )
        body.append(f'<div class="legend">{legend}</div>')
    body.append(_what_if(report, zones, links))
    for project, experiments in projects.items():
        runs = project_runs[project]
        t = totals(runs)
        body.append(f"<section class='project'{filters.attrs(project)}><h2>{escape(project)}</h2>")
        body.append(
            f'<p class="sub">{plural(len(runs), "run")}, '
            f"{plural(len(experiments), 'experiment')}: "
            f"<b>{co2(t['co2_kg'])} CO2eq</b>, {energy(t['energy_kwh'])}, "
            f"{seconds(t['duration_s'])}</p>"
        )
        body.append("<p class='note'>Energy by component</p>")
        body.append(stacked_bar([(label, t[key], c) for label, key, c in COMPONENTS]))
        if len(runs) > 1:
            bars = [
                (
                    label,
                    r.co2_kg,
                    colour[project],
                    f"{r.label}: {co2(r.co2_kg)} CO2eq, {energy(r.energy_kwh)}",
                )
                for r, label in zip(runs, time_labels([r.started for r in runs]), strict=True)
            ]
            chart = bar_chart(bars, "co2", f"CO2eq per run of {project}", height=200)
            if len(projects) == 1:
                body.append(f"<h3>Runs over time (CO2eq per run)</h3>{chart}")
            else:
                # The chart of all runs above shows these too: this one is a click away.
                body.append(
                    "<details class='fold'><summary>Runs of this project over time</summary>"
                    f"{chart}</details>"
                )
        body.append("<h3>Runs, by experiment</h3>")
        body.append(_runs_table(experiments))
        body.append(tradeoff.html_section(runs))
        with_epochs = [run for run in runs if len(run.series)]
        if with_epochs:
            # Folded past a few runs: a report of many stays a page to scroll, each curve one
            # click away.
            unfold = " open" if len(report.runs) <= 3 else ""
            body.append(
                f"<details class='fold'{unfold}><summary>Per epoch: CO2eq of each epoch of "
                f"{plural(len(with_epochs), 'run')}</summary>"
                + (
                    "".join(_epochs(run) for run in with_epochs)
                    if report.detailed
                    else _epoch_summaries(with_epochs)
                )
                + "</details>"
            )
        body.append(
            "<details class='fold'><summary>For your paper: copy-ready LaTeX "
            "(<code>carbonmeter report --format latex</code> prints it alone)</summary>"
        )
        body.append(
            f"<textarea readonly>{escape(latex_escape(paragraph(runs, project)))}</textarea>"
            "</details>"
        )
        body.append("</section>")
    body.append(_intensities_used(report, links))
    body.append('<footer><h3>Sources of the equivalents</h3><ol class="sources">')
    for i, e in enumerate(factors, start=1):
        unit = "kg CO2eq" if e.basis == "co2_kg" else "kWh"
        body.append(
            f'<li id="src-{i}">{escape(e.key.replace("_", " "))}: {e.per_unit:g} {unit} each; '
            f"{_linked(e.source, links)} ({escape(e.year)})</li>"
        )
    body.append("</ol>")
    files = ", ".join(escape(f) for f in report.files)
    body.append(f'<p class="note">Files: {files}</p></footer></main>')
    title = f"carbonmeter: {co2(grand['co2_kg'])} CO2eq over {plural(len(report.runs), 'run')}"
    # The selectors' script only where there is a bar for it to show.
    return _page(title, body, filters.SCRIPT if bar else "")


def waiting_page(reason: str) -> str:
    """What `--serve` shows before there is a report to show: why, and that it will reload."""
    return _page(
        "carbonmeter: waiting for runs",
        [
            "<main><h1>Emissions report</h1><p class='sub'>No report yet: "
            f"{escape(reason)}.</p><p class='note'>This page reloads when the files change.</p>"
            "</main>"
        ],
    )


def _page(title: str, body: list[str], script: str = "") -> str:
    tail = f"<script>{script}</script>" if script else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        f"<style>{CSS}{filters.CSS}</style></head><body>"
        + "".join(body)
        + tail
        + "</body></html>\n"
    )


def render_diff(result: dict[str, Any], report: Report) -> str:
    """`carbonmeter report --diff A B` as a page: the figures side by side, B / A, and both
    runs' per-epoch curves next to each other."""
    a, b = result["a"], result["b"]
    runs = {r.run_id: r for r in report.runs}
    rows = "".join(
        f"<tr><td>{escape(f['heading'])}</td><td class='n'>{figure(f['a'])}</td>"
        f"<td class='n'>{figure(f['b'])}</td><td class='n'>"
        + ("n/a" if f["ratio"] is None else f"{f['ratio']:.3g} &times;")
        + "</td></tr>"
        for f in result["figures"]
    )
    # One chart on one scale, A and B side by side per epoch: two charts with their own axes
    # would make a small run look as large as a big one.
    sides = (("A", a, "#0f766e"), ("B", b, "#7c3aed"))
    epochs = {
        which: {(e.phase, e.epoch): e for e in runs[side["run_id"]].epochs}
        for which, side, _ in sides
    }
    keys = sorted(set(epochs["A"]) | set(epochs["B"]), key=lambda k: (k[0] != "train", k))
    phases = {phase for phase, _ in keys}
    bars = [
        (
            f"{epoch} {which}" if len(phases) == 1 else f"{phase[:1]}{epoch} {which}",
            epochs[which][phase, epoch].co2_kg,
            colour,
            f"{which}, {phase} epoch {epoch}: {co2(epochs[which][phase, epoch].co2_kg)} CO2eq",
        )
        for phase, epoch in keys
        for which, _, colour in sides
        if (phase, epoch) in epochs[which]
    ]
    legend = "".join(
        f'<span><span class="swatch" style="background:{colour}"></span>{which}: '
        f"{escape(side['label'])}</span>"
        for which, side, colour in sides
    )
    curves = (
        "<h3>CO2eq per epoch</h3>"
        + bar_chart(bars, "co2", "CO2eq per epoch of A and B", height=240)
        + f'<div class="legend">{legend}</div>'
        if bars
        else "<p class='note'>Neither run has epoch rows.</p>"
    )
    body = [
        f"<main><h1>{escape(a['label'])} vs {escape(b['label'])}</h1>",
        "<table class='overview'><tr><th>figure</th><th class='n'>A</th><th class='n'>B</th>"
        f"<th class='n'>B / A</th></tr>{rows}</table>",
        curves,
        "</main>",
    ]
    return _page(f"carbonmeter: {a['label']} vs {b['label']}", body)
