"""The report as Markdown, and the LaTeX paragraph for papers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from carbonmeter._format import co2, count, energy, seconds

if TYPE_CHECKING:
    from carbonmeter.report import Report, Run

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

CPU_METHODS = {
    "rapl": "read from the processor's RAPL energy counters",
    "load_tdp": "estimated as CPU utilisation times the processor's TDP",
    "constant": "set to a constant power",
    "none": "not measured",
}
RAM_METHODS = {
    "rapl": "read from the RAPL DRAM energy counters",
    "model": "estimated at 0.375 W per GB of memory in use",
    "in_cpu": "included in the CPU figure (RAPL platform counter)",
    "constant": "set to a constant power",
    "none": "not measured",
}
GPU_METHODS = {
    "counter": "read from the GPUs' NVML energy counters",
    "polled": "integrated from NVML power readings",
    "mixed": "read from NVML energy counters, and power readings where the counter failed",
}


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
        gpu = f"{run.gpu_count} x {run.gpu_model}" if run.gpu_count and run.gpu_model else ""
        parts.append(cpu + (f" with {gpu}" if gpu else ""))
    return _join(parts)


def _methods(runs: list[Run]) -> str:
    if all(r.cpu_method == "not recorded" for r in runs):
        return (
            "The rows were written by CodeCarbon, which does not record how each figure was "
            "measured."
        )
    cpu = _join([CPU_METHODS.get(r.cpu_method, r.cpu_method) for r in runs])
    ram = _join([RAM_METHODS.get(r.ram_method, r.ram_method) for r in runs])
    gpu = _join([GPU_METHODS[r.gpu_method] for r in runs if r.gpu_method in GPU_METHODS])
    text = f"CPU energy was {cpu}; memory energy was {ram}"
    text += f"; GPU energy was {gpu}." if gpu else "; no GPU was measured."
    return text


def _intensities(runs: list[Run]) -> str:
    seen = []
    for run in runs:
        year = f", {run.intensity_year}" if run.intensity_year else ""
        seen.append(f"{run.intensity_g_per_kwh:.0f} g CO2eq/kWh ({run.intensity_source}{year})")
    return _join(seen)


def paragraph(runs: list[Run], project: str) -> str:
    """A plain-text paragraph for a paper; `latex()` escapes it."""
    energy_kwh = sum(r.energy_kwh for r in runs)
    co2_kg = sum(r.co2_kg for r in runs)
    duration_s = sum(r.duration_s for r in runs)
    pues = _join([f"{r.pue:g}" for r in runs])
    writers = _join([r.writer for r in runs])
    n = len(runs)
    return (
        f"The {n} run{'s' if n != 1 else ''} of {project} reported here took "
        f"{seconds(duration_s)} on {hardware(runs)} in {_join([r.location for r in runs])}. "
        f"They used {energy(energy_kwh)} of electricity, including a power usage effectiveness "
        f"(PUE) of {pues}, and emitted {co2(co2_kg)} CO2eq, at a grid carbon intensity of "
        f"{_intensities(runs)}. {_methods(runs)} Measured with {writers}."
    )


def latex(report: Report) -> str:
    """One LaTeX paragraph per project, ready to paste into a paper."""
    return "\n\n".join(
        latex_escape(paragraph([r for runs in experiments.values() for r in runs], project))
        for project, experiments in report.projects().items()
    )


def markdown(report: Report) -> str:
    """Totals, a runs table per project, equivalents and sources, as Markdown."""
    from carbonmeter.report import equivalents, totals

    lines = []
    grand = totals(report.runs)
    lines.append(
        f"# Emissions report\n\n{grand['runs']} runs, {energy(grand['energy_kwh'])}, "
        f"**{co2(grand['co2_kg'])} CO2eq**, {seconds(grand['duration_s'])} measured.\n"
    )
    factors = equivalents()
    lines.append("| equivalent | amount | source |\n|---|---|---|")
    for e in factors:
        amount = count(e.of(grand["co2_kg"], grand["energy_kwh"]))
        lines.append(f"| {e.label} | {amount} | {e.source} ({e.year}) |")
    lines.extend(per_unit_table(report))
    for project, experiments in report.projects().items():
        runs = [r for rs in experiments.values() for r in rs]
        t = totals(runs)
        lines.append(
            f"\n## {project}\n\n{len(runs)} runs: {energy(t['energy_kwh'])} (CPU "
            f"{energy(t['cpu_kwh'])}, GPU {energy(t['gpu_kwh'])}, RAM {energy(t['ram_kwh'])}), "
            f"{co2(t['co2_kg'])} CO2eq.\n"
        )
        lines.append(
            "| started | run | experiment | duration | energy | CO2eq | g/kWh | location |\n"
            "|---|---|---|---|---|---|---|---|"
        )
        for r in runs:
            lines.append(
                f"| {r.timestamp} | {r.run_id[:8]} | {r.experiment_id[:8]} | "
                f"{seconds(r.duration_s)} | {energy(r.energy_kwh)} | {co2(r.co2_kg)} | "
                f"{r.intensity_g_per_kwh:.0f} | {r.location} |"
            )
        for r in runs:
            if r.epochs:
                lines.append(
                    f"\nEpochs of run {r.run_id[:8]}:\n\n| phase | epoch | energy | CO2eq |\n"
                    "|---|---|---|---|"
                )
                for ep in r.epochs:
                    lines.append(
                        f"| {ep.phase} | {ep.epoch} | {energy(ep.energy_kwh)} | {co2(ep.co2_kg)} |"
                    )
        lines.append(f"\n> {paragraph(runs, project)}")
    return "\n".join(lines)


def _figure(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}g}"


def per_unit_table(report: Report) -> list[str]:
    """J/sample, J/token and g CO2eq per 1k tokens per project and experiment, as Markdown
    lines; none when nothing was counted."""
    from carbonmeter.report import per_unit_rows

    rows = per_unit_rows(report)
    if not rows:
        return []
    lines = [
        "\n## Energy per unit of work\n\n"
        "| project | experiment | J/sample | J/token | g CO2eq/1k tokens | J/request |\n"
        "|---|---|---|---|---|---|"
    ]
    for project, experiment, f in rows:
        lines.append(
            f"| {project} | {experiment[:8]} | {_figure(f['j_per_sample'])} | "
            f"{_figure(f['j_per_token'])} | {_figure(f['co2_g_per_1k_tokens'])} | "
            f"{_figure(f['j_per_request'])} |"
        )
    return lines
