"""Reads emissions CSVs (carbonmeter's or CodeCarbon's) into runs, for `carbonmeter report`.

A run is the last run row of its `run_id` (flush rows share the id, so the last one is the
total). Run rows have an empty `window`; CodeCarbon CSVs have no `window` column, so every row
is a run row there. Epoch rows are rows with `window` and `epoch` set. Nothing is measured here:
figures are the CSV's own, only summed across runs.

Example:
    >>> from carbonmeter import report
    >>> data = report.load(["emissions.csv"])  # doctest: +SKIP
    >>> report.to_json(data)["totals"]["co2_kg"]  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carbonmeter._core import TABLES, per_unit

# The columns every CodeCarbon 2.x/3.x emissions.csv has (and ours, a superset).
REQUIRED = (
    "timestamp",
    "project_name",
    "run_id",
    "duration",
    "emissions",
    "cpu_energy",
    "gpu_energy",
    "ram_energy",
    "energy_consumed",
)


@dataclass
class Epoch:
    """One epoch row."""

    epoch: int
    phase: str
    duration_s: float
    energy_kwh: float
    co2_kg: float


@dataclass
class Run:
    """One run: its last run row, and its epoch rows."""

    run_id: str
    project: str
    experiment_id: str
    timestamp: str
    duration_s: float
    co2_kg: float
    energy_kwh: float
    cpu_kwh: float
    gpu_kwh: float
    ram_kwh: float
    pue: float
    cpu_model: str
    cpu_count: int
    gpu_model: str
    gpu_count: int
    location: str
    intensity_g_per_kwh: float
    intensity_source: str
    intensity_year: str
    cpu_method: str
    ram_method: str
    gpu_method: str
    tracking_mode: str
    rank: str
    writer: str
    file: str
    samples: int | None = None
    tokens: int | None = None
    requests: int | None = None
    epochs: list[Epoch] = field(default_factory=list)


@dataclass
class Report:
    """Runs in time order, grouped by project then experiment when rendered."""

    runs: list[Run]
    files: list[str]

    def projects(self) -> dict[str, dict[str, list[Run]]]:
        """project -> experiment_id -> runs, each in time order."""
        out: dict[str, dict[str, list[Run]]] = {}
        for run in self.runs:
            out.setdefault(run.project, {}).setdefault(run.experiment_id, []).append(run)
        return out


@dataclass(frozen=True)
class Equivalent:
    """An everyday quantity: a run's kg CO2eq or kWh divided by `per_unit`."""

    key: str
    basis: str
    per_unit: float
    label: str
    year: str
    source: str

    def of(self, co2_kg: float, energy_kwh: float) -> float:
        """How many units `co2_kg` or `energy_kwh` (per `basis`) amount to."""
        return (co2_kg if self.basis == "co2_kg" else energy_kwh) / self.per_unit


def equivalents() -> list[Equivalent]:
    """The factors of data/equivalents.csv, each with its source and year."""
    rows = csv.DictReader(io.StringIO(TABLES["equivalents.csv"]))
    return [
        Equivalent(r["key"], r["basis"], float(r["per_unit"]), r["label"], r["year"], r["source"])
        for r in rows
    ]


def _float(row: dict[str, str], key: str) -> float:
    text = (row.get(key) or "").strip()
    try:
        return float(text) if text else 0.0
    except ValueError:
        return 0.0


def _int(row: dict[str, str], key: str) -> int:
    return int(_float(row, key))


def _count(row: dict[str, str], key: str) -> int | None:
    """A count column: None when empty or absent (not counted), never 0 for that."""
    text = (row.get(key) or "").strip()
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _location(row: dict[str, str]) -> str:
    if row.get("cloud_provider") and row.get("cloud_region"):
        return f"{row['cloud_provider']} {row['cloud_region']}"
    parts = [row.get("region") or "", row.get("country_name") or row.get("country_iso_code") or ""]
    return ", ".join(p for p in parts if p) or "unknown"


def _csv_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.rglob("*.csv"))
            if not found:
                raise ValueError(f"no *.csv file in folder {str(path)!r}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"no such file or folder {str(path)!r}: expected emissions CSVs")
    return files


def _run(row: dict[str, str], ours: bool, file: str) -> Run:
    energy = _float(row, "energy_consumed")
    co2_kg = _float(row, "emissions")
    if ours:
        intensity = _float(row, "intensity_g_per_kwh")
        source = row.get("intensity_source") or ""
        year = row.get("intensity_year") or ""
        methods = (row.get("cpu_method"), row.get("ram_method"), row.get("gpu_method"))
    else:
        # CodeCarbon writes no intensity: the figure it used is emissions / energy.
        intensity = co2_kg / energy * 1000.0 if energy > 0 else 0.0
        source = "CodeCarbon (emissions / energy; its source is not in the CSV)"
        year = ""
        methods = ("not recorded", "not recorded", "not recorded")
    return Run(
        run_id=row.get("run_id") or "",
        project=row.get("project_name") or "(no project)",
        experiment_id=row.get("experiment_id") or "",
        timestamp=row.get("timestamp") or "",
        duration_s=_float(row, "duration"),
        co2_kg=co2_kg,
        energy_kwh=energy,
        cpu_kwh=_float(row, "cpu_energy"),
        gpu_kwh=_float(row, "gpu_energy"),
        ram_kwh=_float(row, "ram_energy"),
        pue=_float(row, "pue") or 1.0,
        cpu_model=row.get("cpu_model") or "",
        cpu_count=_int(row, "cpu_count"),
        gpu_model=row.get("gpu_model") or "",
        gpu_count=_int(row, "gpu_count"),
        location=_location(row),
        intensity_g_per_kwh=intensity,
        intensity_source=source,
        intensity_year=year,
        cpu_method=methods[0] or "",
        ram_method=methods[1] or "",
        gpu_method=methods[2] or "",
        tracking_mode=row.get("tracking_mode") or "",
        rank=row.get("rank") or "",
        writer=f"carbonmeter {row.get('carbonmeter_version', '')}".strip()
        if ours
        else f"CodeCarbon {row.get('codecarbon_version', '')}".strip(),
        file=file,
        samples=_count(row, "samples"),
        tokens=_count(row, "tokens"),
        requests=_count(row, "requests"),
    )


def load(paths: list[Path]) -> Report:
    """Reads every CSV (folders searched for *.csv) into runs; a ValueError for a bad file."""
    runs: dict[tuple[str, str, str], Run] = {}
    epochs: dict[tuple[str, str, str], dict[tuple[str, int], Epoch]] = {}
    files = _csv_files([Path(p) for p in paths])
    for path in files:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise ValueError(
                    f"{str(path)!r} is not a carbonmeter or CodeCarbon emissions CSV: no "
                    f"{', '.join(missing)} column{'s' if len(missing) > 1 else ''}"
                )
            ours = "carbonmeter_version" in header
            for row in reader:
                # Ranks of a distributed run write their own rows: each is a run of its own.
                key = (
                    row.get("project_name") or "",
                    row.get("run_id") or "",
                    row.get("rank") or "",
                )
                window = (row.get("window") or "").strip()
                if not window:
                    runs.pop(key, None)  # the last run row of a run_id is its total
                    runs[key] = _run(row, ours, str(path))
                elif (row.get("epoch") or "").strip():
                    phase = row.get("phase") or "train"
                    number = _int(row, "epoch")
                    epochs.setdefault(key, {})[phase, number] = Epoch(
                        number,
                        phase,
                        _float(row, "duration"),
                        _float(row, "energy_consumed"),
                        _float(row, "emissions"),
                    )
    for key, run in runs.items():
        run.epochs = sorted(epochs.get(key, {}).values(), key=lambda e: (e.phase, e.epoch))
    ordered = sorted(runs.values(), key=lambda r: (r.timestamp, r.run_id, r.rank))
    return Report(ordered, [str(f) for f in files])


def totals(runs: list[Run]) -> dict[str, float]:
    """Sums over runs: kg CO2eq, kWh (and per component), seconds, and the run count."""
    return {
        "runs": len(runs),
        "co2_kg": sum(r.co2_kg for r in runs),
        "energy_kwh": sum(r.energy_kwh for r in runs),
        "cpu_kwh": sum(r.cpu_kwh for r in runs),
        "gpu_kwh": sum(r.gpu_kwh for r in runs),
        "ram_kwh": sum(r.ram_kwh for r in runs),
        "duration_s": sum(r.duration_s for r in runs),
    }


# Each unit of work, and the report keys of its figures in `per_unit`'s result.
PER_UNIT_KEYS = {
    "samples": ("j_per_sample",),
    "tokens": ("j_per_token", "co2_g_per_1k_tokens"),
    "requests": ("j_per_request",),
}


def per_unit_totals(runs: list[Run]) -> dict[str, float | None]:
    """J per sample, per token and per request, and g CO2eq per 1k tokens, of `runs`: the
    energy and emissions of the runs that counted a unit over their counts (the core's formula);
    None for a unit no run counted."""
    out: dict[str, float | None] = {}
    for unit, keys in PER_UNIT_KEYS.items():
        counted = [(r, getattr(r, unit)) for r in runs if getattr(r, unit) is not None]
        figures = per_unit(
            sum(r.energy_kwh for r, _ in counted),
            sum(r.co2_kg for r, _ in counted),
            **({unit: sum(n for _, n in counted)} if counted else {}),
        )
        for key in keys:
            out[key] = figures[key]
    return out


def per_unit_rows(report: Report) -> list[tuple[str, str, dict[str, float | None]]]:
    """(project, experiment, figures) for every experiment that counted any unit of work."""
    rows = []
    for project, experiments in report.projects().items():
        for experiment, runs in experiments.items():
            figures = per_unit_totals(runs)
            if any(value is not None for value in figures.values()):
                rows.append((project, experiment, figures))
    return rows


def to_json(report: Report) -> dict[str, Any]:
    """The report as plain data: totals, then projects -> experiments -> runs (with epochs)."""
    factors = equivalents()

    def with_equivalents(sums: dict[str, float], runs: list[Run]) -> dict[str, Any]:
        return {
            **sums,
            **per_unit_totals(runs),
            "equivalents": {e.key: e.of(sums["co2_kg"], sums["energy_kwh"]) for e in factors},
        }

    projects = []
    for project, experiments in report.projects().items():
        project_runs = [r for runs in experiments.values() for r in runs]
        projects.append(
            {
                "project_name": project,
                "totals": with_equivalents(totals(project_runs), project_runs),
                "experiments": [
                    {
                        "experiment_id": experiment,
                        "totals": _with_per_unit(runs),
                        "runs": [_run_json(r) for r in runs],
                    }
                    for experiment, runs in experiments.items()
                ],
            }
        )
    return {
        "files": report.files,
        "totals": with_equivalents(totals(report.runs), report.runs),
        "projects": projects,
        "equivalent_factors": [e.__dict__ for e in factors],
    }


def _with_per_unit(runs: list[Run]) -> dict[str, Any]:
    sums: dict[str, Any] = dict(totals(runs))
    sums.update(per_unit_totals(runs))
    return sums


def _run_json(run: Run) -> dict[str, Any]:
    out = {k: v for k, v in run.__dict__.items() if k != "epochs"}
    out["epochs"] = [e.__dict__ for e in run.epochs]
    return out


from carbonmeter.report import html, text  # noqa: E402  (submodules use the names above)

__all__ = [
    "Epoch",
    "Equivalent",
    "Report",
    "Run",
    "equivalents",
    "html",
    "load",
    "per_unit_rows",
    "per_unit_totals",
    "text",
    "to_json",
]
