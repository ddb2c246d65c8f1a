"""The report's trade-off: a recorded metric (`metric_name`, `metric_value` of the epoch rows)
against the CO2 it cost, per run and per experiment (a sweep: an Optuna study, a Tune experiment,
a W&B sweep's runs sharing an experiment).

- Per run, the metric against cumulative CO2 of its training epochs (phases `train` and
  `trial`), where it flattened (the first epoch that reached 95 % of the run's whole gain) and
  how much CO2 came after that.
- Per experiment, every run's final metric against its CO2, the Pareto front (no other run is
  at least as good on both and better on one), the total of the whole experiment (runs without
  a metric included), and what the dominated runs cost.
- The sentence the paper paragraph ends with: "the best run cost X; the whole search cost Y".

Nothing is measured here: the figures are the rows' own. Epoch metrics are read back from the
runs' own files (the run rows `model.load` kept do not carry them), so this module adds to the
report without changing how runs are loaded. Imports run model <- tradeoff <- text <- html.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from carbonmeter._format import co2
from carbonmeter.report import blocks
from carbonmeter.report.model import REQUIRED, Run, plural, unprefix

#: Phases whose epochs are the training's cost; a metric recorded in another phase (an
#: evaluation after each epoch) is set against what these emitted up to it.
COST_PHASES = ("train", "trial")
#: The columns read from a row's head before it is read whole.
WANTED = ("epoch", "metric_name")
#: A run has flattened at the first epoch that reached this share of its whole gain.
FLAT_SHARE = 0.95


@dataclass
class Point:
    """The metric at the end of one epoch, and the training CO2 emitted up to it."""

    epoch: int
    phase: str
    value: float
    co2_kg: float


@dataclass
class Curve:
    """One run's metric against its cumulative CO2."""

    run: Run
    metric: str
    upwards: bool
    points: list[Point]

    @property
    def final(self) -> float:
        """The metric at the run's last recorded epoch."""
        return self.points[-1].value

    def better(self, a: float, b: float) -> bool:
        """Whether `a` is strictly better than `b`."""
        return a > b if self.upwards else a < b

    @property
    def flattened(self) -> Point:
        """The first epoch that reached `FLAT_SHARE` of the run's gain (the first epoch of a
        run that gained nothing)."""
        sign = 1.0 if self.upwards else -1.0
        first = self.points[0].value
        best = max(sign * (p.value - first) for p in self.points)
        if best <= 0:
            return self.points[0]
        best_so_far = -math.inf
        for point in self.points:
            best_so_far = max(best_so_far, sign * (point.value - first))
            if best_so_far >= FLAT_SHARE * best:
                return point
        return self.points[-1]

    @property
    def co2_after_flat_kg(self) -> float:
        """The run's CO2 after it flattened (its whole total counts, evaluations included)."""
        return max(self.run.co2_kg - self.flattened.co2_kg, 0.0)


@dataclass
class Sweep:
    """One experiment's runs: their final metric against their CO2."""

    project: str
    label: str
    runs: list[Run]
    curves: list[Curve]
    front: list[Curve] = field(default_factory=list)

    @property
    def total_co2_kg(self) -> float:
        """Every run of the experiment, with or without a metric."""
        return sum(run.co2_kg for run in self.runs)

    @property
    def best(self) -> Curve:
        """The run with the best final metric (the cheaper of equals)."""
        best = self.curves[0]
        for curve in self.curves[1:]:
            if best.better(curve.final, best.final) or (
                curve.final == best.final and curve.run.co2_kg < best.run.co2_kg
            ):
                best = curve
        return best

    @property
    def dominated_co2_kg(self) -> float:
        """What the runs off the Pareto front cost."""
        on_front = {id(curve) for curve in self.front}
        return sum(c.run.co2_kg for c in self.curves if id(c) not in on_front)


def _key(run_id: str, rank: str) -> tuple[str, str]:
    return run_id, rank


def _metric_rows(files: set[str]) -> dict[tuple[str, str], list[dict[str, str]]]:
    """Every epoch row of `files`, in file order, by (run_id, rank)."""
    found: dict[tuple[str, str], list[dict[str, str]]] = {}
    for file in sorted(files):
        path = Path(file)
        if not path.is_file():
            continue
        for block, head, record, _ in blocks.rows(path, REQUIRED, blocks.Skipped(file), WANTED):
            # Only epoch rows of files that record metrics are read whole.
            if "metric_name" not in block.at or not block.wanted(head)[0].strip():
                continue
            row = block.cells(record)
            found.setdefault(_key(row.get("run_id") or "", row.get("rank") or ""), []).append(row)
    return found


def _float(text: str | None) -> float | None:
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _curve(run: Run, rows: list[dict[str, str]]) -> Curve | None:
    """The run's monitored metric (its first named one) against cumulative training CO2."""
    named = [row for row in rows if unprefix(row.get("metric_name") or "")]
    if not named:
        return None
    metric = unprefix(named[0]["metric_name"])
    costed = any(unprefix(row.get("phase") or "") in COST_PHASES for row in rows)
    spent_kg = 0.0
    points: list[Point] = []
    upwards = True
    for row in rows:
        phase = unprefix(row.get("phase") or "") or "train"
        if phase in COST_PHASES or not costed:
            spent_kg += _float(row.get("emissions")) or 0.0
        value = _float(row.get("metric_value"))
        if unprefix(row.get("metric_name") or "") != metric or value is None:
            continue
        upwards = (row.get("metric_direction") or "max") != "min"
        points.append(Point(int(row["epoch"]), phase, value, spent_kg))
    return Curve(run, metric, upwards, points) if points else None


def _pareto(curves: list[Curve]) -> list[Curve]:
    """The runs no other run dominates (at least as good a final metric for at most the CO2,
    strictly better on one), cheapest first."""

    def dominates(a: Curve, b: Curve) -> bool:
        no_worse = not a.better(b.final, a.final) and a.run.co2_kg <= b.run.co2_kg
        return no_worse and (a.better(a.final, b.final) or a.run.co2_kg < b.run.co2_kg)

    front = [c for c in curves if not any(dominates(o, c) for o in curves if o is not c)]
    return sorted(front, key=lambda curve: curve.run.co2_kg)


def sweeps(runs: list[Run]) -> list[Sweep]:
    """The experiments of `runs` with a recorded metric, with their curves and Pareto front."""
    rows = _metric_rows({run.file for run in runs if run.file})
    grouped: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        grouped.setdefault((run.project, run.experiment_id, run.experiment_name), []).append(run)
    out = []
    for (project, experiment_id, name), members in grouped.items():
        curves = [
            curve
            for run in members
            if (curve := _curve(run, rows.get(_key(run.run_id, run.rank), []))) is not None
        ]
        if not curves:
            continue
        metric = curves[0].metric
        # Runs of one experiment are compared on one metric: the first run's.
        same = [curve for curve in curves if curve.metric == metric]
        sweep = Sweep(project, name or experiment_id[:8] or "(no experiment)", members, same)
        sweep.front = _pareto(same)
        out.append(sweep)
    return out


def search_sentence(runs: list[Run]) -> str:
    """ " The best run cost X; the whole search cost Y." for the paper paragraph of `runs` (one
    sentence per experiment with a metric and several runs); empty without one."""
    sentences = []
    for sweep in sweeps(runs):
        if len(sweep.runs) < 2:
            continue
        best = sweep.best
        sentences.append(
            f" In {sweep.label}, the best run ({best.metric} {best.final:.4g}) cost "
            f"{co2(best.run.co2_kg)} CO2eq; the whole search of {plural(len(sweep.runs), 'run')} "
            f"cost {co2(sweep.total_co2_kg)}."
        )
    return "".join(sentences)


def _curve_json(curve: Curve, front: list[Curve]) -> dict[str, Any]:
    flat = curve.flattened
    return {
        "run_id": curve.run.run_id,
        "label": curve.run.label,
        "metric": curve.metric,
        "direction": "max" if curve.upwards else "min",
        "final": curve.final,
        "co2_kg": curve.run.co2_kg,
        "on_front": any(curve is other for other in front),
        "flattened_epoch": flat.epoch if len(curve.points) > 1 else None,
        "co2_after_flat_kg": curve.co2_after_flat_kg if len(curve.points) > 1 else None,
        "points": [
            {"epoch": p.epoch, "phase": p.phase, "value": p.value, "co2_kg": p.co2_kg}
            for p in curve.points
        ],
    }


def to_json(runs: list[Run]) -> list[dict[str, Any]]:
    """Each experiment's trade-off, for `carbonmeter report --format json` (`tradeoff`)."""
    return [
        {
            "project": sweep.project,
            "experiment": sweep.label,
            "runs": len(sweep.runs),
            "total_co2_kg": sweep.total_co2_kg,
            "best_run_id": sweep.best.run.run_id,
            "best_co2_kg": sweep.best.run.co2_kg,
            "dominated_co2_kg": sweep.dominated_co2_kg,
            "front": [curve.run.run_id for curve in sweep.front],
            "curves": [_curve_json(curve, sweep.front) for curve in sweep.curves],
        }
        for sweep in sweeps(runs)
    ]


def _flat_note(curve: Curve) -> str:
    """Where a run of several epochs flattened and what came after; empty for one point."""
    if len(curve.points) < 2:
        return ""
    return (
        f"{curve.metric} flattened at epoch {curve.flattened.epoch}; "
        f"{co2(curve.co2_after_flat_kg)} CO2eq came after"
    )


def _summary(sweep: Sweep) -> str:
    best = sweep.best
    if len(sweep.curves) == 1:
        note = _flat_note(best)
        return f"{plural(len(sweep.runs), 'run')}, {co2(sweep.total_co2_kg)} CO2eq in all" + (
            f"; {note}." if note else "."
        )
    return (
        f"{plural(len(sweep.runs), 'run')}, {co2(sweep.total_co2_kg)} CO2eq in all; the best "
        f"({best.metric} {best.final:.4g}) cost {co2(best.run.co2_kg)}; "
        f"{plural(len(sweep.front), 'run')} on the Pareto front; the "
        f"{plural(len(sweep.curves) - len(sweep.front), 'dominated run')} cost "
        f"{co2(sweep.dominated_co2_kg)}."
    )


def markdown(runs: list[Run]) -> str:
    """The trade-off of each experiment with a metric, as Markdown (empty without one)."""
    lines: list[str] = []
    for sweep in sweeps(runs):
        lines.append(f"\n### Trade-off: {sweep.label}\n\n{_summary(sweep)}\n")
        lines.append(
            f"| run | final {sweep.curves[0].metric} | CO2eq | Pareto front | flattened at "
            "epoch | CO2eq after |\n|---|---|---|---|---|---|"
        )
        for curve in sweep.curves:
            mark = "yes" if any(curve is c for c in sweep.front) else ""
            # A run of one point (an Optuna trial) has no curve to flatten.
            flat, after = (
                (str(curve.flattened.epoch), co2(curve.co2_after_flat_kg))
                if len(curve.points) > 1
                else ("", "")
            )
            lines.append(
                f"| {curve.run.label} | {curve.final:.4g} | {co2(curve.run.co2_kg)} | {mark} | "
                f"{flat} | {after} |"
            )
    return "\n".join(lines)


# --- HTML: inline SVG, as html.py draws its charts ------------------------------------------

_W, _H, _PAD_L, _PAD_R, _PAD_T, _PAD_B = 640, 300, 64, 20, 16, 44
FRONT_COLOUR = "#dc2626"
RUN_COLOUR = "#2563eb"


def _scale(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if high == low:
        pad = abs(high) * 0.05 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.06
    return low - pad, high + pad


def _axes(
    x_range: tuple[float, float], y_range: tuple[float, float], x_label: str, y_label: str
) -> list[str]:
    parts = []
    for i in range(5):
        fy = i / 4
        y = _PAD_T + (_H - _PAD_T - _PAD_B) * (1 - fy)
        value = y_range[0] + (y_range[1] - y_range[0]) * fy
        parts.append(
            f'<line x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{_PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.3g}</text>'
        )
        x = _PAD_L + (_W - _PAD_L - _PAD_R) * fy
        kg = x_range[0] + (x_range[1] - x_range[0]) * fy
        # The last tick's label ends at the plot's edge, so it is never cut off.
        anchor = "end" if i == 4 else "middle"
        parts.append(
            f'<text x="{x:.1f}" y="{_H - _PAD_B + 16}" text-anchor="{anchor}">'
            f"{escape(co2(max(kg, 0.0)))}</text>"
        )
    parts.append(
        f'<text x="{(_W + _PAD_L) / 2:.1f}" y="{_H - 6}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text x="14" y="{_PAD_T + (_H - _PAD_T - _PAD_B) / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {_PAD_T + (_H - _PAD_T - _PAD_B) / 2:.1f})">'
        f"{escape(y_label)}</text>"
    )
    return parts


def _xy(
    kg: float, value: float, xr: tuple[float, float], yr: tuple[float, float]
) -> tuple[float, float]:
    x = _PAD_L + (_W - _PAD_L - _PAD_R) * (kg - xr[0]) / (xr[1] - xr[0])
    y = _PAD_T + (_H - _PAD_T - _PAD_B) * (1 - (value - yr[0]) / (yr[1] - yr[0]))
    return x, y


def pareto_chart(sweep: Sweep) -> str:
    """Every run's final metric against its CO2, the Pareto front joined and marked in red."""
    metric = sweep.curves[0].metric
    title = f"{sweep.label}: final {metric} against CO2eq per run (Pareto front in red)"
    xr = _scale([0.0, *(c.run.co2_kg for c in sweep.curves)])
    xr = (0.0, xr[1])
    yr = _scale([c.final for c in sweep.curves])
    parts = [
        f'<svg class="tradeoff pareto" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        *_axes(xr, yr, "CO2eq of the run", metric),
    ]
    front = [_xy(c.run.co2_kg, c.final, xr, yr) for c in sweep.front]
    if len(front) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in front)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{FRONT_COLOUR}" stroke-width="2" '
            'stroke-dasharray="5 3"/>'
        )
    for curve in sweep.curves:
        x, y = _xy(curve.run.co2_kg, curve.final, xr, yr)
        on_front = any(curve is c for c in sweep.front)
        colour = FRONT_COLOUR if on_front else RUN_COLOUR
        tip = f"{curve.run.label}: {metric} {curve.final:.4g}, {co2(curve.run.co2_kg)} CO2eq"
        tip += " (Pareto front)" if on_front else ""
        parts.append(
            f'<circle class="{"front" if on_front else "run"}" cx="{x:.1f}" cy="{y:.1f}" '
            f'r="{6 if on_front else 4.5}" fill="{colour}" fill-opacity="0.85">'
            f"<title>{escape(tip)}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def curve_chart(curve: Curve) -> str:
    """One run's metric against its cumulative CO2; the epoch where it flattened marked."""
    title = f"{curve.run.label}: {curve.metric} against cumulative CO2eq"
    points = curve.points
    xr = (0.0, _scale([0.0, curve.run.co2_kg, *(p.co2_kg for p in points)])[1])
    yr = _scale([p.value for p in points])
    parts = [
        f'<svg class="tradeoff curve" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        *_axes(xr, yr, "cumulative CO2eq of training", curve.metric),
    ]
    xy = [_xy(p.co2_kg, p.value, xr, yr) for p in points]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    parts.append(f'<polyline points="{path}" fill="none" stroke="{RUN_COLOUR}" stroke-width="2"/>')
    flat = curve.flattened
    fx, fy = _xy(flat.co2_kg, flat.value, xr, yr)
    parts.append(
        f'<line x1="{fx:.1f}" x2="{fx:.1f}" y1="{_PAD_T}" y2="{_H - _PAD_B}" '
        f'stroke="{FRONT_COLOUR}" stroke-dasharray="4 3"/>'
        f'<circle cx="{fx:.1f}" cy="{fy:.1f}" r="5" fill="{FRONT_COLOUR}">'
        f"<title>flattened at epoch {flat.epoch}: {co2(curve.co2_after_flat_kg)} CO2eq came "
        "after</title></circle>"
        f'<text x="{min(fx + 6, _W - 150):.1f}" y="{_PAD_T + 12}" fill="{FRONT_COLOUR}">'
        f"flat from epoch {flat.epoch}</text>"
    )
    for (x, y), point in zip(xy, points, strict=True):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{RUN_COLOUR}"><title>epoch '
            f"{point.epoch}: {curve.metric} {point.value:.4g} after {co2(point.co2_kg)}"
            "</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def html_section(runs: list[Run]) -> str:
    """The trade-off of each experiment of `runs` with a metric, for the HTML page (empty
    without one)."""
    parts = []
    for sweep in sweeps(runs):
        parts.append(
            f'<h3>Trade-off: {escape(sweep.label)}</h3><p class="sub">{escape(_summary(sweep))}</p>'
        )
        if len(sweep.curves) > 1:
            parts.append(pareto_chart(sweep))
        multi_epoch = [curve for curve in sweep.curves if len(curve.points) > 1]
        for curve in multi_epoch[:1] if len(sweep.curves) > 3 else multi_epoch:
            parts.append(curve_chart(curve))
        if len(sweep.curves) > 3 and len(multi_epoch) > 1:
            # Many runs: the best one's curve shown, the rest one click away.
            parts.append(
                "<details class='fold'><summary>Metric against CO2eq of every run</summary>"
                + "".join(curve_chart(curve) for curve in multi_epoch[1:])
                + "</details>"
            )
    return "".join(parts)
