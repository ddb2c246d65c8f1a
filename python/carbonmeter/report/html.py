"""The report as one self-contained HTML page: inline CSS and SVG charts, no script, no network.

The only links are the citations of the sources (equivalence factors, grid intensities).
"""

from __future__ import annotations

import datetime
import math
import re
from html import escape
from typing import TYPE_CHECKING

from carbonmeter._core import __version__
from carbonmeter._format import co2, count, energy, seconds
from carbonmeter.report.text import latex_escape, paragraph

if TYPE_CHECKING:
    from carbonmeter.report import Report, Run

COMPONENTS = (
    ("CPU", "cpu_kwh", "#2563eb"),
    ("GPU", "gpu_kwh", "#16a34a"),
    ("RAM", "ram_kwh", "#f59e0b"),
)
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


def bar_chart(
    bars: list[tuple[str, float, str, str]], kind: str, title: str, height: int = 220
) -> str:
    """Vertical bars: (label, value, colour, tooltip) each; y axis in a readable unit."""
    width, left, bottom, top_pad = 960, 64, 42, 14
    factor, unit = _unit([b[1] for b in bars], kind)
    values = [b[1] / factor for b in bars]
    step = _nice_step(max(values, default=0.0))
    top = step * max(1, math.ceil(max(values, default=0.0) / step - 1e-9))
    plot_h = height - bottom - top_pad
    plot_w = width - left - 10
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    tick = 0.0
    while tick <= top + 1e-9:
        y = top_pad + plot_h - plot_h * tick / top
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{tick:g} {unit}</text>'
        )
        tick += step
    n = max(len(bars), 1)
    slot = plot_w / n
    bar_w = max(min(slot * 0.7, 60), 1.5)
    every = max(1, math.ceil(n / 16))
    for i, ((label, _, colour, tip), value) in enumerate(zip(bars, values, strict=True)):
        h = plot_h * value / top if top else 0
        x = left + slot * i + (slot - bar_w) / 2
        y = top_pad + plot_h - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{max(h, 0.5):.1f}" '
            f'rx="2" fill="{colour}"><title>{escape(tip)}</title></rect>'
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - bottom + 16}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append(
        f'<line x1="{left}" x2="{width - 10}" y1="{top_pad + plot_h}" y2="{top_pad + plot_h}" '
        'stroke="#9ca3af"/></svg>'
    )
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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _amount(value: float) -> str:
    """An everyday quantity; a tiny one as 2.6 x 10^-5 rather than 2.63e-05."""
    if value == 0 or value >= 0.01:
        return escape(count(value))
    exponent = math.floor(math.log10(value))
    return f"{value / 10**exponent:.2g} &times; 10<sup>{exponent}</sup>"


def _card(value: str, key: str, extra: str = "") -> str:
    return f'<div class="card{extra}"><div class="v">{value}</div><div class="k">{key}</div></div>'


def _runs_table(runs: list[Run]) -> str:
    rows = []
    for r in runs:
        hw = escape(r.cpu_model or "?") + (
            f" + {r.gpu_count} &times; {escape(r.gpu_model)}" if r.gpu_count else ""
        )
        rows.append(
            f"<tr><td>{escape(r.timestamp[:19].replace('T', ' '))}</td>"
            f"<td><code>{escape(r.run_id[:8])}</code>"
            + (f" rank {escape(r.rank)}" if r.rank else "")
            + "</td>"
            f'<td class="n">{seconds(r.duration_s)}</td><td class="n">{energy(r.energy_kwh)}</td>'
            f'<td class="n">{co2(r.co2_kg)}</td>'
            f'<td class="n">{r.intensity_g_per_kwh:.0f}</td><td>{escape(r.location)}</td>'
            f"<td>{hw}</td></tr>"
        )
    return (
        '<table><tr><th>started</th><th>run</th><th class="n">duration</th>'
        '<th class="n">energy</th><th class="n">CO2eq</th><th class="n">g/kWh</th>'
        "<th>location</th><th>hardware</th></tr>" + "".join(rows) + "</table>"
    )


def _epochs(run: Run) -> str:
    phases = sorted({e.phase for e in run.epochs}, key=lambda p: (p != "train", p))
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
    legend = "".join(
        f'<span><span class="swatch" style="background:{PHASE_COLORS.get(p, "#0f766e")}">'
        f"</span>{escape(p)}</span>"
        for p in phases
    )
    rows = "".join(
        f"<tr><td>{escape(e.phase)}</td><td class='n'>{e.epoch}</td>"
        f"<td class='n'>{seconds(e.duration_s)}</td><td class='n'>{energy(e.energy_kwh)}</td>"
        f"<td class='n'>{co2(e.co2_kg)}</td></tr>"
        for e in run.epochs
    )
    return (
        f"<h3>Per epoch, run <code>{escape(run.run_id[:8])}</code></h3>"
        + bar_chart(bars, "co2", f"CO2eq per epoch of run {run.run_id[:8]}", height=200)
        + f'<div class="legend">{legend}</div>'
        + "<details><summary class='note'>epoch table</summary><table><tr><th>phase</th>"
        "<th class='n'>epoch</th><th class='n'>duration</th><th class='n'>energy</th>"
        f"<th class='n'>CO2eq</th></tr>{rows}</table></details>"
    )


def _per_unit_table(report: Report) -> str:
    """J/sample, J/token and g CO2eq per 1k tokens per project and experiment; empty when
    nothing was counted."""
    from carbonmeter.report import per_unit_rows

    rows = per_unit_rows(report)
    if not rows:
        return ""

    def cell(value: float | None) -> str:
        return "<td>-</td>" if value is None else f'<td class="num">{value:.4g}</td>'

    head = (
        "<h3>Energy per unit of work</h3><table><tr><th>project</th><th>experiment</th>"
        "<th>J/sample</th><th>J/token</th><th>g CO2eq/1k tokens</th><th>J/request</th></tr>"
    )
    lines = [
        f"<tr><td>{escape(project)}</td><td>{escape(experiment[:8])}</td>"
        + "".join(
            cell(f[k])
            for k in ("j_per_sample", "j_per_token", "co2_g_per_1k_tokens", "j_per_request")
        )
        + "</tr>"
        for project, experiment, f in rows
    ]
    return head + "".join(lines) + "</table>"


def render(report: Report) -> str:
    """The whole page."""
    from carbonmeter.report import equivalents, totals

    links: list[str] = []
    grand = totals(report.runs)
    factors = equivalents()
    projects = report.projects()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        "<main><header><h1>Emissions report</h1>",
        f'<p class="sub">{_plural(len(report.runs), "run")} in {_plural(len(projects), "project")}'
        f", from {_plural(len(report.files), 'file')}; written {now} by "
        f"carbonmeter {escape(__version__)}</p></header>",
        '<section class="cards">',
        _card(f"{co2(grand['co2_kg'])}", "CO2eq emitted", " main"),
        _card(energy(grand["energy_kwh"]), "electricity used (PUE included)"),
        _card(seconds(grand["duration_s"]), "measured"),
        _card(str(grand["runs"]), "runs"),
        "</section>",
        '<p class="note">That is about as much as</p><section class="cards equiv">',
    ]
    for i, e in enumerate(factors, start=1):
        amount = _amount(e.of(grand["co2_kg"], grand["energy_kwh"]))
        body.append(_card(f'{amount}<sup><a href="#src-{i}">[{i}]</a></sup>', escape(e.label)))
    body.append("</section>")
    body.append(_per_unit_table(report))
    if len(report.runs) > 1:
        body.append("<h3>All runs over time (CO2eq per run, oldest first)</h3>")
        colour = {p: PROJECT_COLORS[i % len(PROJECT_COLORS)] for i, p in enumerate(projects)}
        bars = [
            (
                r.timestamp[5:16].replace("T", " "),
                r.co2_kg,
                colour[r.project],
                f"{r.project} {r.run_id[:8]} {r.timestamp[:16]}: {co2(r.co2_kg)} CO2eq, "
                f"{energy(r.energy_kwh)}",
            )
            for r in report.runs
        ]
        body.append(bar_chart(bars, "co2", "CO2eq per run over time"))
        legend = "".join(
            f'<span><span class="swatch" style="background:{c}"></span>{escape(p)}</span>'
            for p, c in colour.items()
        )
        body.append(f'<div class="legend">{legend}</div>')
    for project, experiments in projects.items():
        runs = [r for rs in experiments.values() for r in rs]
        t = totals(runs)
        body.append(f"<section><h2>{escape(project)}</h2>")
        body.append(
            f'<p class="sub">{_plural(len(runs), "run")}, '
            f"{_plural(len(experiments), 'experiment')}: "
            f"<b>{co2(t['co2_kg'])} CO2eq</b>, {energy(t['energy_kwh'])}, "
            f"{seconds(t['duration_s'])}</p>"
        )
        body.append("<h3>Energy by component</h3>")
        body.append(stacked_bar([(label, t[key], colour) for label, key, colour in COMPONENTS]))
        if len(runs) > 1:
            body.append("<h3>Runs over time (CO2eq per run)</h3>")
            bars = [
                (
                    r.timestamp[5:16].replace("T", " "),
                    r.co2_kg,
                    "#0f766e",
                    f"{r.run_id[:8]}: {co2(r.co2_kg)} CO2eq, {energy(r.energy_kwh)}",
                )
                for r in runs
            ]
            body.append(bar_chart(bars, "co2", f"CO2eq per run of {project}", height=200))
        for experiment, exp_runs in experiments.items():
            label = f"experiment <code>{escape(experiment)}</code>" if experiment else "runs"
            et = totals(exp_runs)
            body.append(
                f"<h3>{label}</h3><p class='note'>{_plural(len(exp_runs), 'run')}, "
                f"{co2(et['co2_kg'])} CO2eq, {energy(et['energy_kwh'])}</p>"
            )
            body.append(_runs_table(exp_runs))
        for run in runs:
            if run.epochs:
                body.append(_epochs(run))
        body.append("<h3>Grid intensity used</h3><ul>")
        seen = set()
        for r in runs:
            key = (
                r.location,
                round(r.intensity_g_per_kwh, 3),
                r.intensity_source,
                r.intensity_year,
            )
            if key in seen:
                continue
            seen.add(key)
            year = f", {escape(r.intensity_year)}" if r.intensity_year else ""
            body.append(
                f"<li>{escape(r.location)}: <b>{r.intensity_g_per_kwh:.0f} g CO2eq/kWh</b> "
                f"({_linked(r.intensity_source, links)}{year})</li>"
            )
        body.append("</ul>")
        body.append(
            "<h3>For your paper</h3><p class='note'>Copy-ready LaTeX "
            "(<code>carbonmeter report --format latex</code> prints it alone):</p>"
        )
        body.append(
            f"<textarea readonly>{escape(latex_escape(paragraph(runs, project)))}</textarea>"
        )
        body.append("</section>")
    body.append('<footer><h3>Sources of the equivalents</h3><ol class="sources">')
    for i, e in enumerate(factors, start=1):
        unit = "kg CO2eq" if e.basis == "co2_kg" else "kWh"
        body.append(
            f'<li id="src-{i}">{escape(e.label)}: {e.per_unit:g} {unit} each; '
            f"{_linked(e.source, links)} ({escape(e.year)})</li>"
        )
    body.append("</ol>")
    files = ", ".join(escape(f) for f in report.files)
    body.append(f'<p class="note">Files: {files}</p></footer></main>')
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>carbonmeter: {co2(grand['co2_kg'])} CO2eq over {grand['runs']} runs</title>"
        f"<style>{CSS}</style></head><body>" + "".join(body) + "</body></html>\n"
    )
