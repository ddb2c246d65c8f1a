"""The report as Markdown, and LaTeX for papers (the overview table, then a paragraph per
project), rendered from `model`."""

from __future__ import annotations

from typing import Any

from carbonmeter._core import METHODS
from carbonmeter._format import co2, co2_band, energy, energy_band, litres, seconds
from carbonmeter.report import tradeoff
from carbonmeter.report.model import (
    EPOCH_DETAIL,
    Report,
    Run,
    band_totals,
    equivalents,
    figure,
    footprint_totals,
    group_columns,
    groups,
    overview,
    overview_columns,
    plural,
    totals,
    what_if,
    what_if_when,
    when_text,
)

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}

# What each `*_method` value means, served by the core (`_core.METHODS`): the paragraph's words
# for the methods are never kept here, so a method the core adds is worded too.
MEANINGS = {method.name: method.meaning for method in METHODS}


# Characters that Markdown reads as syntax inside a line or a table cell: `|` ends a cell, `*`
# and `_` start emphasis, `<` a tag, `[` a link, a backtick code; a leading `#` makes a heading.
_MARKDOWN_SPECIAL = set("\\`*_[]<>|~")


def markdown_escape(text: str) -> str:
    """Backslash-escapes Markdown's inline syntax, and turns newlines into spaces, so any project
    or experiment name reads as written, inside a table cell too."""
    flat = " ".join(text.splitlines())
    escaped = "".join(f"\\{c}" if c in _MARKDOWN_SPECIAL else c for c in flat)
    return "\\" + escaped if escaped.startswith("#") else escaped


def latex_escape(text: str) -> str:
    """Escapes LaTeX's special characters; writes CO2 as CO$_2$."""
    escaped = "".join(_LATEX_SPECIAL.get(c, c) for c in text)
    return escaped.replace("CO2", "CO$_2$").replace(" x ", r" $\times$ ")


def _join(items: list[str]) -> str:
    items = [i for i in dict.fromkeys(items) if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def hardware(runs: list[Run]) -> str:
    """`2 x AMD EPYC 7763 (128 logical CPUs) and 4 x NVIDIA A100` over the runs."""
    parts = []
    for run in runs:
        cpu = f"{run.cpu_model or 'an unknown CPU'}" + (
            f" ({run.cpu_count} logical CPUs)" if run.cpu_count else ""
        )
        # `gpu_model` counts the GPUs itself (`4 x NVIDIA A100`), as CodeCarbon's does.
        gpu = run.gpu_model if run.gpu_count else ""
        parts.append(cpu + (f" with {gpu}" if gpu else ""))
    return _join(parts)


def _methods(runs: list[Run]) -> str:
    if all(r.cpu_method == "not recorded" for r in runs):
        return (
            "The rows were written by CodeCarbon, which does not record how each figure was "
            "measured."
        )
    cpu = _join([MEANINGS.get(r.cpu_method, r.cpu_method) for r in runs])
    ram = _join([MEANINGS.get(r.ram_method, r.ram_method) for r in runs])
    gpus = [r.gpu_method for r in runs if r.gpu_method in MEANINGS and r.gpu_method != "none"]
    gpu = _join([MEANINGS[method] for method in gpus])
    text = f"CPU energy was {cpu}; memory energy was {ram}"
    text += f"; GPU energy was {gpu}." if gpu else "; no GPU was measured."
    return text


def _intensities(runs: list[Run]) -> str:
    seen = []
    for run in runs:
        year = f", {run.intensity_year}" if run.intensity_year else ""
        seen.append(f"{run.intensity_g_per_kwh:.0f} g CO2eq/kWh ({run.intensity_source}{year})")
    return _join(seen)


def _bands_note(band: dict[str, float | None]) -> str:
    if band["energy_low_kwh"] is None:
        return ""
    note = (
        " Ranges in brackets are carbonmeter's error bands: each measurement method's stated, "
        "measured or assumed accuracy (its data/uncertainty.csv), combined with the grid "
        "intensity's."
    )
    if band["tracker_cpu_s"] is not None:
        note += f" carbonmeter itself used {band['tracker_cpu_s']:.3g} CPU-seconds."
    return note


def footprint_sentence(runs: list[Run]) -> str:
    """`X kg CO2eq from electricity, Y kg embodied in the hardware, Z L of water`, or what of it
    is known (docs/footprint.md); empty for runs that carry none of it (CodeCarbon's)."""
    found = footprint_totals(runs)
    if found["water_offsite_l"] is None:
        return ""
    parts = [f"{co2(sum(r.co2_kg for r in runs))} CO2eq from electricity"]
    if found["embodied_kg"] is None:
        parts.append("embodied carbon not counted (a device has no sourced figure)")
    else:
        parts.append(f"{co2(found['embodied_kg'])} embodied in the hardware")
    if found["water_l"] is None:
        offsite = litres(found["water_offsite_l"])
        parts.append(
            f"{offsite} of water off-site (on-site water not known: no wue or cloud region)"
        )
    else:
        parts.append(f"{litres(found['water_l'])} of water")
    return f" In all: {_join(parts)}."


def paragraph(runs: list[Run], project: str) -> str:
    """A plain-text paragraph for a paper; `latex()` escapes it."""
    energy_kwh = sum(r.energy_kwh for r in runs)
    co2_kg = sum(r.co2_kg for r in runs)
    band = band_totals(runs)
    duration_s = sum(r.duration_s for r in runs)
    pues = _join([f"{r.pue:g}" for r in runs])
    writers = _join([r.writer for r in runs])
    n = len(runs)
    return (
        f"The {plural(n, 'run')} of {project} reported here took "
        f"{seconds(duration_s)} on {hardware(runs)} {_join([r.where for r in runs])}. "
        f"They used {energy_band(energy_kwh, band['energy_low_kwh'], band['energy_high_kwh'])}"
        f" of electricity, including a power usage effectiveness (PUE) of {pues}, and emitted "
        f"{co2_band(co2_kg, band['co2_low_kg'], band['co2_high_kg'])} CO2eq, at a grid carbon "
        f"intensity of {_intensities(runs)}. {_methods(runs)} Measured with {writers}."
        f"{_bands_note(band)}{footprint_sentence(runs)}{tradeoff.search_sentence(runs)}"
    )


def overview_cells(report: Report) -> tuple[list[str], list[list[str]]]:
    """The overview's headings and its lines as text, in `overview_columns` order (the
    per-unit columns only where something was counted)."""
    lines = overview(report)
    columns = overview_columns(lines)
    headings = [c.heading for c in columns]
    cells = [[c.text(line[c.key]) for c in columns] for line in lines]
    return headings, cells


def latex_overview(report: Report) -> str:
    """The overview as a LaTeX table (booktabs), ready for a paper."""
    headings, cells = overview_cells(report)
    columns = overview_columns(overview(report))
    align = "".join("r" if c.numeric else "l" for c in columns)
    lines = [
        r"\begin{table}[h]",
        r"% needs \usepackage{booktabs}",
        r"\centering",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in headings) + r" \\",
        r"\midrule",
        *(" & ".join(latex_escape(c) for c in row) + r" \\" for row in cells),
        r"\bottomrule",
        r"\end{tabular}",
        r"\caption{Energy and emissions per experiment, measured with carbonmeter.}",
        r"\end{table}",
    ]
    return "\n".join(lines)


def latex(report: Report) -> str:
    """The overview table, then one LaTeX paragraph per project, ready to paste into a paper."""
    paragraphs = [
        latex_escape(paragraph(runs, project)) for project, runs in report.project_runs().items()
    ]
    return "\n\n".join([latex_overview(report), *paragraphs])


def _md_table(headings: list[str], rows: list[list[str]], numeric: list[bool]) -> list[str]:
    out = ["| " + " | ".join(headings) + " |"]
    out.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    out.extend("| " + " | ".join(row) + " |" for row in rows)
    return out


def overview_markdown(report: Report) -> str:
    """The overview as a Markdown table: the paper's Table I (Model | Task | ...)."""
    headings, cells = overview_cells(report)
    columns = overview_columns(overview(report))
    for row in cells:
        for i, column in enumerate(columns):
            if not column.numeric:
                row[i] = markdown_escape(row[i])
    return "\n".join(_md_table(headings, cells, [c.numeric for c in columns]))


def groups_markdown(report: Report, by: str) -> str:
    """`--group-by`'s table: a line per project, user, host, ... with its runs' sums."""
    columns = group_columns(by)
    cells = [
        [
            markdown_escape(c.text(line[c.key])) if not c.numeric else c.text(line[c.key])
            for c in columns
        ]
        for line in groups(report, by)
    ]
    table = _md_table([c.heading for c in columns], cells, [c.numeric for c in columns])
    return f"## By {by}\n\n" + "\n".join(table)


def markdown(report: Report, zones: list[str] | None = None, group_by: str | None = None) -> str:
    """The overview table first (then `--group-by`'s), then totals, equivalents, what if, and
    a section per project."""
    esc = markdown_escape
    lines = ["# Emissions report", "", overview_markdown(report)]
    if group_by:
        lines += ["", groups_markdown(report, group_by)]
    grand = totals(report.runs)
    lines.append(
        f"\n{plural(int(grand['runs']), 'run')}, {energy(grand['energy_kwh'])}, "
        f"**{co2(grand['co2_kg'])} CO2eq**, {seconds(grand['duration_s'])} measured."
        f"{footprint_sentence(report.runs)}\n"
    )
    lines.append("| equivalent | source |\n|---|---|")
    for e in equivalents():
        amount = e.amount(grand["co2_kg"], grand["energy_kwh"])
        lines.append(f"| {amount} {e.label} | {e.source} ({e.year}) |")
    lines.append("\n## What if it ran elsewhere\n")
    lines += _md_table(
        ["grid", "g CO2eq/kWh", "CO2eq (g)", "source"],
        [_what_if_cells(w) for w in what_if(report, zones)],
        [False, True, True, False],
    )
    waited = what_if_when(report)
    if waited:
        lines.append("\n## What waiting for a cleaner start saved\n")
        lines += _md_table(
            ["run", "started", "g/kWh at submission", "g/kWh waited for", "saved (g CO2eq)"],
            [
                [
                    esc(w["run_id"][:8]),
                    esc(w["scheduled_start"]),
                    f"{w['submitted_g_per_kwh']:.0f}",
                    f"{w['scheduled_g_per_kwh']:.0f}",
                    f"{w['saved_kg'] * 1000:.3g}",
                ]
                for w in waited
            ],
            [False, False, True, True, True],
        )
    for project, runs in report.project_runs().items():
        t = totals(runs)
        lines.append(
            f"\n## {esc(project)}\n\n{plural(len(runs), 'run')}: {energy(t['energy_kwh'])} (CPU "
            f"{energy(t['cpu_kwh'])}, GPU {energy(t['gpu_kwh'])}, RAM {energy(t['ram_kwh'])}), "
            f"{co2(t['co2_kg'])} CO2eq.\n"
        )
        lines.append(
            "| started | ended | run | experiment | duration | energy | CO2eq | g/kWh | "
            "location |\n|---|---|---|---|---|---|---|---|---|"
        )
        for r in runs:
            experiment = r.experiment_name or r.experiment_id[:8]
            where = r.location or "unspecified (world average)"
            lines.append(
                f"| {when_text(r.started)} | "
                f"{when_text(r.ended) if r.ended else esc(r.timestamp)} | "
                f"{esc(r.run_id[:8])} | "
                f"{esc(experiment)} | "
                f"{seconds(r.duration_s)} | "
                f"{energy_band(r.energy_kwh, r.energy_low_kwh, r.energy_high_kwh)} | "
                f"{co2_band(r.co2_kg, r.co2_low_kg, r.co2_high_kg)} | "
                f"{r.intensity_g_per_kwh:.0f} | {esc(where)} |"
            )
        lines += _epochs_markdown(runs, report.detailed)
        lines.append(tradeoff.markdown(runs))
        lines.append(f"\n> {esc(paragraph(runs, project))}")
    return "\n".join(lines)


def _epochs_markdown(runs: list[Run], detailed: bool) -> list[str]:
    """Each epoch of each run; past `EPOCH_DETAIL` epochs in the report, a line per run and
    phase instead (epochs, their sums, the least and most CO2eq of one epoch)."""
    esc = markdown_escape
    lines: list[str] = []
    if not detailed:
        with_epochs = [r for r in runs if len(r.series)]
        if with_epochs:
            lines.append(
                f"\nEpochs, summarised (more than {EPOCH_DETAIL:,} in the report):\n\n"
                "| run | phase | epochs | energy | CO2eq | CO2eq per epoch (least-most) |\n"
                "|---|---|---:|---:|---:|---:|"
            )
        for r in with_epochs:
            for phase, s in r.series.summary().items():
                lines.append(
                    f"| {esc(r.label)} | {esc(phase)} | {int(s['epochs'])} | "
                    f"{energy(s['energy_kwh'])} | {co2(s['co2_kg'])} | "
                    f"{co2(s['co2_min_kg'])}-{co2(s['co2_max_kg'])} |"
                )
        return lines
    for r in runs:
        if len(r.series):
            lines.append(
                f"\nEpochs of run {esc(r.label)} ({esc(r.epoch_words())}):\n\n"
                "| phase | epoch | energy | CO2eq |\n|---|---|---|---|"
            )
            for ep in r.epochs:
                lines.append(
                    f"| {esc(ep.phase)} | {ep.epoch} | {energy(ep.energy_kwh)} | {co2(ep.co2_kg)} |"
                )
    return lines


def _what_if_cells(line: dict[str, Any]) -> list[str]:
    year = f", {line['year']}" if line["year"] else ""
    return [
        markdown_escape(line["zone"]),
        f"{line['g_per_kwh']:.0f}",
        figure(line["emissions_kg"] * 1000.0),
        markdown_escape(f"{line['source']}{year}"),
    ]


def diff_markdown(result: dict[str, Any]) -> str:
    """`carbonmeter report --diff A B` as Markdown: each figure, both runs, and B / A."""
    a, b = result["a"], result["b"]
    lines = [
        f"# {markdown_escape(a['label'])} (A) vs {markdown_escape(b['label'])} (B)",
        "",
        "| figure | A | B | B / A |",
        "|---|---:|---:|---:|",
    ]
    for f in result["figures"]:
        ratio = "n/a" if f["ratio"] is None else f"{f['ratio']:.3g}"
        lines.append(f"| {f['heading']} | {figure(f['a'])} | {figure(f['b'])} | {ratio} |")
    epochs_a = {(e["phase"], e["epoch"]): e for e in result["epochs"]["a"]}
    epochs_b = {(e["phase"], e["epoch"]): e for e in result["epochs"]["b"]}
    keys = sorted(set(epochs_a) | set(epochs_b))
    if keys:
        lines += [
            "",
            "| phase | epoch | CO2eq A (g) | CO2eq B (g) | B / A |",
            "|---|---:|---:|---:|---:|",
        ]
        for key in keys:
            ga = epochs_a[key]["co2_kg"] * 1000 if key in epochs_a else None
            gb = epochs_b[key]["co2_kg"] * 1000 if key in epochs_b else None
            ratio = f"{gb / ga:.3g}" if ga and gb is not None else "n/a"
            cell_a = figure(ga) if ga is not None else "-"
            cell_b = figure(gb) if gb is not None else "-"
            phase = markdown_escape(key[0])
            lines.append(f"| {phase} | {key[1]} | {cell_a} | {cell_b} | {ratio} |")
    return "\n".join(lines)
