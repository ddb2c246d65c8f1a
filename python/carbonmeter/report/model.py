"""The report's data: runs read from emissions CSVs, and every figure the renderers show.

A run is the last run row of its `run_id` (flush rows share the id, so the last one is the
total). Run rows have an empty `window`; CodeCarbon CSVs have no `window` column, so every row
is a run row there. Epoch rows are rows with `window` and `epoch` set. Nothing is measured here:
figures are the CSV's own, summed across runs, or restated at another grid's intensity.

`html.py` and `text.py` render from this module and nothing renders here, so the imports run one
way: model <- text <- html, and `report/__init__.py` only re-exports.
"""

from __future__ import annotations

import csv
import datetime
import glob
import io
import itertools
import math
import os
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carbonmeter._core import FORMULA_STARTS, TABLES, g_per_kwh_of, per_unit
from carbonmeter.intensity import Intensity, lookup
from carbonmeter.report import blocks, whatif

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

# What a run whose location was not set is said to be at (never "in unknown").
UNSPECIFIED_LOCATION = "an unspecified location, world-average intensity"


@dataclass
class Epoch:
    """One epoch row."""

    epoch: int
    phase: str
    duration_s: float
    energy_kwh: float
    co2_kg: float


# A report of more epoch rows than this lists none of them: each run's epochs are summarised by
# phase and drawn as a curve of at most CURVE_POINTS points (issue 33: a million epoch rows made
# a 268 MB page). Below it every epoch is a table row and a bar, as before.
EPOCH_DETAIL = 2_000
CURVE_POINTS = 60

# How a phase's epochs are counted in words: "3 epochs and 3 validations".
PHASE_WORDS = {"train": "epoch", "validation": "validation", "eval": "evaluation"}


def phase_count(phase: str, n: int) -> str:
    """`3 epochs`, `1 validation`, `2 test epochs`."""
    return plural(n, PHASE_WORDS[phase]) if phase in PHASE_WORDS else plural(n, f"{phase} epoch")


@dataclass
class EpochSeries:
    """Every epoch row of one run, in arrays of numbers (a million epochs take ~30 MB, not the
    ~1 GB of a million objects). A later row of the same phase and epoch replaces the earlier,
    as a run's last row is its total."""

    phases: list[str] = field(default_factory=list)
    phase: array[int] = field(default_factory=lambda: array("H"))
    epoch: array[int] = field(default_factory=lambda: array("q"))
    duration_s: array[float] = field(default_factory=lambda: array("d"))
    energy_kwh: array[float] = field(default_factory=lambda: array("d"))
    co2_kg: array[float] = field(default_factory=lambda: array("d"))
    # The last epoch of each phase: epochs arrive in order, so only a repeat needs `_where`.
    _last: dict[int, int] = field(default_factory=dict)
    _index: dict[str, int] = field(default_factory=dict)
    _where: dict[tuple[int, int], int] | None = None

    def __len__(self) -> int:
        return len(self.epoch)

    def add(self, phase: str, number: int, duration_s: float, energy: float, co2: float) -> None:
        """One epoch row."""
        p = self._index.get(phase)
        if p is None:
            p = self._index[phase] = len(self.phases)
            self.phases.append(phase)
        if number > self._last.get(p, -(2**63)):
            self._last[p] = number
            if self._where is not None:
                self._where[p, number] = len(self.epoch)
        else:
            if self._where is None:
                self._where = {
                    key: i for i, key in enumerate(zip(self.phase, self.epoch, strict=True))
                }
            i = self._where.get((p, number))
            if i is not None:
                self.duration_s[i], self.energy_kwh[i], self.co2_kg[i] = duration_s, energy, co2
                return
            self._where[p, number] = len(self.epoch)
        self.phase.append(p)
        self.epoch.append(number)
        self.duration_s.append(duration_s)
        self.energy_kwh.append(energy)
        self.co2_kg.append(co2)

    def _order(self) -> list[int]:
        return sorted(range(len(self)), key=lambda i: (self.phases[self.phase[i]], self.epoch[i]))

    def epochs(self) -> list[Epoch]:
        """Every epoch, by phase then number."""
        return [
            Epoch(
                self.epoch[i],
                self.phases[self.phase[i]],
                self.duration_s[i],
                self.energy_kwh[i],
                self.co2_kg[i],
            )
            for i in self._order()
        ]

    def counts(self) -> dict[str, int]:
        """Epochs per phase, train first."""
        out = {name: 0 for name in sorted(self.phases, key=lambda p: (p != "train", p))}
        for p in self.phase:
            out[self.phases[p]] += 1
        return out

    def summary(self) -> dict[str, dict[str, float]]:
        """Per phase: epochs, their total duration, energy and CO2eq, and the least and most
        CO2eq of one epoch."""
        out: dict[str, dict[str, float]] = {}
        for phase, count in self.counts().items():
            p = self.phases.index(phase)
            co2s = [c for q, c in zip(self.phase, self.co2_kg, strict=True) if q == p]
            out[phase] = {
                "epochs": count,
                "duration_s": sum(
                    d for q, d in zip(self.phase, self.duration_s, strict=True) if q == p
                ),
                "energy_kwh": sum(
                    e for q, e in zip(self.phase, self.energy_kwh, strict=True) if q == p
                ),
                "co2_kg": sum(co2s),
                "co2_min_kg": min(co2s),
                "co2_max_kg": max(co2s),
            }
        return out

    def curve(self, points: int = CURVE_POINTS) -> list[tuple[str, int, int, float]]:
        """CO2eq per epoch in at most `points` steps per phase, train first: (phase, first and
        last epoch of the step, mean kg CO2eq of its epochs). A run of no more epochs than
        `points` gives one step per epoch."""
        out = []
        for phase in self.counts():
            p = self.phases.index(phase)
            pairs = sorted(
                (e, c)
                for q, e, c in zip(self.phase, self.epoch, self.co2_kg, strict=True)
                if q == p
            )
            size = math.ceil(len(pairs) / points)
            for start in range(0, len(pairs), size):
                step = pairs[start : start + size]
                out.append((phase, step[0][0], step[-1][0], sum(c for _, c in step) / len(step)))
        return out


@dataclass
class Run:
    """One run: its last run row, and its epoch rows."""

    run_id: str
    project: str
    experiment_id: str
    experiment_name: str
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
    intensity_zone: str
    intensity_g_per_kwh: float
    intensity_source: str
    intensity_year: str
    intensity_method: str
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
    series: EpochSeries = field(default_factory=EpochSeries, repr=False)
    # The error band (None for CodeCarbon rows; a None high is unbounded) and our own cost.
    energy_low_kwh: float | None = None
    energy_high_kwh: float | None = None
    co2_low_kg: float | None = None
    co2_high_kg: float | None = None
    tracker_cpu_s: float | None = None
    scope: str = ""
    job_id: str = ""
    host: str = ""
    user: str = ""
    # The whole footprint (docs/footprint.md); None for CodeCarbon rows and unknown figures.
    embodied_kg: float | None = None
    water_l: float | None = None
    water_offsite_l: float | None = None
    # A carbon-aware wait's forecast figures (carbonmeter wait): at the start it chose, and had
    # it started at submission; None without one.
    scheduled_start: str = ""
    scheduled_g_per_kwh: float | None = None
    submitted_g_per_kwh: float | None = None

    @property
    def epochs(self) -> list[Epoch]:
        """Every epoch row of the run, by phase then number."""
        return self.series.epochs()

    @property
    def ended(self) -> datetime.datetime | None:
        """When the run ended: its last row's `timestamp` (None when unreadable)."""
        try:
            return datetime.datetime.fromisoformat(self.timestamp)
        except ValueError:
            return None

    @property
    def started(self) -> datetime.datetime | None:
        """When the run started: its end less its duration (the row is written at the end)."""
        ended = self.ended
        if ended is None or not math.isfinite(self.duration_s):
            return None
        return ended - datetime.timedelta(seconds=max(self.duration_s, 0.0))

    def epoch_words(self) -> str:
        """Its epochs counted by phase: `3 epochs and 3 validations`."""
        words = [phase_count(phase, n) for phase, n in self.series.counts().items()]
        return (
            " and ".join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else "".join(words)
        )

    @property
    def label(self) -> str:
        """The run as a person names it: experiment name and short id (and rank)."""
        short = self.run_id[:8]
        rank = f" rank {self.rank}" if self.rank else ""
        return f"{self.experiment_name} {short}{rank}" if self.experiment_name else short + rank

    @property
    def evaluation_only(self) -> bool:
        """A run of epoch rows none of which is training: an `evaluate` or `predict` after (or
        without) a training, measured as a run that ends with its work (issue 32)."""
        return len(self.series) > 0 and "train" not in self.series.phases

    @property
    def where(self) -> str:
        """`in France`, or `at an unspecified location, world-average intensity`."""
        if self.location:
            return f"in {self.location}"
        if self.intensity_method == "forced":
            return "at an unspecified location, at the intensity it was given"
        return f"at {UNSPECIFIED_LOCATION}"


@dataclass
class Experiment:
    """The runs of one experiment of one project, in time order."""

    project: str
    experiment_id: str
    name: str
    label: str
    runs: list[Run]


@dataclass
class Report:
    """Runs in time order, grouped by project then experiment when rendered."""

    runs: list[Run]
    files: list[str]
    # Rows left out, one line per file that had some (`blocks.Skipped.message`): for stderr,
    # never written into a report's output.
    warnings: list[str] = field(default_factory=list)

    @property
    def detailed(self) -> bool:
        """Whether every epoch is listed (else each run's are summarised, `EPOCH_DETAIL`)."""
        return sum(len(r.series) for r in self.runs) <= EPOCH_DETAIL

    def projects(self) -> dict[str, list[Experiment]]:
        """project -> its experiments (by experiment id and name), each with runs in time order."""
        grouped: dict[str, dict[tuple[str, str], list[Run]]] = {}
        for run in self.runs:
            key = (run.experiment_id, run.experiment_name)
            grouped.setdefault(run.project, {}).setdefault(key, []).append(run)
        out: dict[str, list[Experiment]] = {}
        for project, experiments in grouped.items():
            names = [name for _, name in experiments]
            out[project] = [
                Experiment(project, exp_id, name, _experiment_label(exp_id, name, names), runs)
                for (exp_id, name), runs in experiments.items()
            ]
        return out

    def project_runs(self) -> dict[str, list[Run]]:
        """project -> its runs in time order."""
        return {
            project: [r for e in experiments for r in e.runs]
            for project, experiments in self.projects().items()
        }


def _experiment_label(experiment_id: str, name: str, names: list[str]) -> str:
    short = experiment_id[:8]
    if not name:
        return short or "(no experiment)"
    # Two experiments of one project may share a name (CodeCarbon's default "base").
    return f"{name} ({short})" if names.count(name) > 1 and short else name


# --- everyday equivalents -------------------------------------------------------------------

# Units each equivalent is shown in, largest first: (units of the table's quantity, name). The
# first that gives at least 1 is used, so a milligram reads in cm driven, not 1.6e-4 km.
SCALES: dict[str, list[tuple[float, str]]] = {
    "car_km": [(1.0, "km"), (1e-3, "m"), (1e-5, "cm"), (1e-6, "mm")],
    "tv_hours": [(24.0, "days"), (1.0, "h"), (1 / 60, "min"), (1 / 3600, "s")],
    "household_days": [(1.0, "days"), (1 / 24, "h"), (1 / 1440, "min"), (1 / 86400, "s")],
    "smartphone_charges": [(1.0, "full charges"), (0.01, "% of a full charge")],
}


def scaled(value: float, scale: list[tuple[float, str]]) -> tuple[float, str]:
    """`value` in the largest unit of `scale` that gives at least 1 (else the smallest)."""
    for factor, unit in scale:
        if value >= factor:
            return value / factor, unit
    factor, unit = scale[-1]
    return value / factor, unit


def figure(value: float) -> str:
    """Three significant digits, never in exponent form: `0.0000123`, `12.3`, `12,345`."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


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

    def amount(self, co2_kg: float, energy_kwh: float) -> str:
        """The amount in a unit that fits it: `16 cm`, `2.1 min`, `3 % of a charge`."""
        value = self.of(co2_kg, energy_kwh)
        scale = SCALES.get(self.key)
        if scale is None:
            return figure(value)
        number, unit = scaled(value, scale)
        return f"{figure(number)} {unit}"


def equivalents() -> list[Equivalent]:
    """The factors of data/equivalents.csv, each with its source and year."""
    rows = csv.DictReader(io.StringIO(TABLES["equivalents.csv"]))
    return [
        Equivalent(r["key"], r["basis"], float(r["per_unit"]), r["label"], r["year"], r["source"])
        for r in rows
    ]


# --- reading CSVs ---------------------------------------------------------------------------


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


def unprefix(cell: str) -> str:
    """A text cell of ours back to its value: carbonmeter writes a cell that would start a
    spreadsheet formula (after any `'`s) with one `'` in front (docs/columns.md, "Formulas")."""
    rest = cell.lstrip("'")
    if cell.startswith("'") and rest and rest[0] in FORMULA_STARTS:
        return cell[1:]
    return cell


def _location(row: dict[str, str], cell: Callable[[str], str]) -> str:
    """Where the grid is, or "" when the row names no location (the world average)."""
    if (row.get("location_source") or "") == "none":
        return ""
    if row.get("cloud_provider") and row.get("cloud_region"):
        return f"{cell(row['cloud_provider'])} {cell(row['cloud_region'])}"
    parts = [row.get("region") or "", row.get("country_name") or row.get("country_iso_code") or ""]
    return ", ".join(cell(p) for p in parts if p)


def _csv_files(paths: list[Path]) -> list[Path]:
    """The CSVs named: files, folders (searched recursively for *.csv) and globs (`**` too),
    each file once however many paths name it."""
    files: dict[str, Path] = {}
    for path in paths:
        if path.is_dir():
            found = sorted(path.rglob("*.csv"))
            if not found:
                raise ValueError(f"no *.csv file in folder {str(path)!r}")
        elif path.is_file():
            found = [path]
        elif glob.has_magic(str(path)):
            matched = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            found = [f for m in matched for f in (sorted(m.rglob("*.csv")) if m.is_dir() else [m])]
            if not found:
                raise ValueError(f"no file matches {str(path)!r}")
        else:
            raise ValueError(f"no such file or folder {str(path)!r}: expected emissions CSVs")
        for file in found:
            files.setdefault(os.path.realpath(file), file)
    return list(files.values())


def _optional(row: dict[str, str], key: str) -> float | None:
    text = (row.get(key) or "").strip()
    return float(text) if text else None


def _run(row: dict[str, str], ours: bool, file: str) -> Run:
    # Names read back as they were set; CodeCarbon writes them raw.
    cell = unprefix if ours else str
    energy = _float(row, "energy_consumed")
    co2_kg = _float(row, "emissions")
    if ours:
        intensity = _float(row, "intensity_g_per_kwh")
        source = row.get("intensity_source") or ""
        year = row.get("intensity_year") or ""
        methods = (row.get("cpu_method"), row.get("ram_method"), row.get("gpu_method"))
    else:
        # CodeCarbon writes no intensity: the figure it used is emissions / energy.
        implied = g_per_kwh_of(co2_kg, energy)
        intensity = 0.0 if implied is None else implied
        source = "CodeCarbon (emissions / energy; its source is not in the CSV)"
        year = ""
        methods = ("not recorded", "not recorded", "not recorded")
    return Run(
        run_id=row.get("run_id") or "",
        project=cell(row.get("project_name") or "") or "(no project)",
        experiment_id=cell(row.get("experiment_id") or ""),
        experiment_name=cell(row.get("experiment_name") or ""),
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
        location=_location(row, cell),
        intensity_zone=row.get("intensity_zone") or row.get("country_iso_code") or "",
        intensity_g_per_kwh=intensity,
        intensity_source=source,
        intensity_year=year,
        intensity_method=(row.get("intensity_method") or "") if ours else "",
        cpu_method=methods[0] or "",
        ram_method=methods[1] or "",
        gpu_method=methods[2] or "",
        tracking_mode=row.get("tracking_mode") or "",
        rank=row.get("rank") or "",
        writer=f"carbonmeter {row.get('carbonmeter_version', '')}".strip()
        if ours
        else f"CodeCarbon {row.get('codecarbon_version', '')}".strip(),
        file=file,
        energy_low_kwh=_optional(row, "energy_consumed_low"),
        energy_high_kwh=_optional(row, "energy_consumed_high"),
        co2_low_kg=_optional(row, "emissions_low"),
        co2_high_kg=_optional(row, "emissions_high"),
        tracker_cpu_s=_optional(row, "tracker_cpu_seconds"),
        scope=row.get("scope") or "",
        job_id=row.get("job_id") or "",
        samples=_count(row, "samples"),
        tokens=_count(row, "tokens"),
        requests=_count(row, "requests"),
        host=cell(row.get("host") or ""),
        user=cell(row.get("user") or ""),
        embodied_kg=_optional(row, "embodied_emissions"),
        water_l=_optional(row, "water_total"),
        water_offsite_l=_optional(row, "water_offsite"),
        scheduled_start=row.get("scheduled_start") or "",
        scheduled_g_per_kwh=_optional(row, "scheduled_intensity_g_per_kwh"),
        submitted_g_per_kwh=_optional(row, "submitted_intensity_g_per_kwh"),
    )


# The columns an epoch row is read by (the rest of a row is read only for run rows).
EPOCH_COLUMNS = (
    "project_name",
    "run_id",
    "rank",
    "window",
    "epoch",
    "phase",
    "duration",
    "energy_consumed",
    "emissions",
)


def _number(text: bytes) -> float:
    try:
        return float(text) if text.strip() else 0.0
    except ValueError:
        return 0.0


def load(paths: Iterable[Path | str]) -> Report:
    """Reads every CSV (folders searched for *.csv, globs expanded) into runs; a ValueError for
    a bad file. Files are streamed: no row is kept, only each run's last run row and its epochs'
    figures (`EpochSeries`).

    Each block of a file is read by its own header (`blocks.rows`); rows that fit no header
    are left out and said in `Report.warnings`. A file named twice is read once, and a run
    found in two files (a copied file) counts once: its rows are keyed by project, run id and
    rank, and the last row read wins."""
    # Keyed by the cells as bytes: epoch rows are never decoded (`blocks.Row`).
    runs: dict[tuple[bytes, bytes, bytes], Run] = {}
    series: dict[tuple[bytes, bytes, bytes], EpochSeries] = {}
    phases: dict[bytes, str] = {}
    warnings: list[str] = []
    files = _csv_files([Path(p) for p in paths])
    for path in files:
        skipped = blocks.Skipped(str(path))
        for block, head, record, _ in blocks.rows(path, REQUIRED, skipped, EPOCH_COLUMNS):
            # This loop runs once per row (a million in issue 33's file): plain indexing only.
            project, run_id, rank, window, epoch, phase, duration, energy, co2 = block.wanted(head)
            # Ranks of a distributed run write their own rows: each is a run of its own.
            key = (project, run_id, rank)
            if not window.strip():
                ours = "carbonmeter_version" in block.at
                runs.pop(key, None)  # the last run row of a run_id is its total
                runs[key] = _run(block.cells(record), ours, str(path))
            elif epoch.strip():
                runs_epochs = series.get(key)
                if runs_epochs is None:
                    runs_epochs = series[key] = EpochSeries()
                name = phases.get(phase)
                if name is None:
                    name = phases[phase] = unprefix(phase.decode("utf-8", "replace")) or "train"
                try:
                    number, figures = int(epoch), (float(duration), float(energy), float(co2))
                except ValueError:
                    number = int(_number(epoch))
                    figures = (_number(duration), _number(energy), _number(co2))
                runs_epochs.add(name, number, *figures)
        if skipped.lines:
            warnings.append(skipped.message())
    for key, run in runs.items():
        run.series = series.get(key, run.series)
    # A distributed job counts once: by its rank 0's scope=job rows where it wrote them (the
    # ranks' own rows then stay out); without them, by its ranks' rows, each part measured once.
    gathered = {run.job_id for run in runs.values() if run.scope == "job"}
    counted = [r for r in runs.values() if not (r.scope == "rank" and r.job_id in gathered)]
    # Stable: runs of one second keep the order their files wrote them in.
    ordered = sorted(counted, key=lambda r: r.timestamp)
    return Report(ordered, [str(f) for f in files], warnings)


def run_count(runs: list[Run]) -> int:
    """The runs a person ran: an evaluation-only run (Keras `evaluate` / `predict`, HF
    `evaluate()` after training) is a phase of its experiment's training, counted with it; only
    where none trained is each counted as a run. Its energy stays in the sums."""
    experiments: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        key = (run.project, run.experiment_id, run.experiment_name)
        experiments.setdefault(key, []).append(run)
    count = 0
    for group in experiments.values():
        trainings = [r for r in group if not r.evaluation_only]
        count += len(trainings or group)
    return count


def totals(runs: list[Run]) -> dict[str, float]:
    """Sums over runs: kg CO2eq, kWh (and per component), seconds, and the run count (as
    `run_count`)."""
    return {
        "runs": run_count(runs),
        "co2_kg": sum(r.co2_kg for r in runs),
        "energy_kwh": sum(r.energy_kwh for r in runs),
        "cpu_kwh": sum(r.cpu_kwh for r in runs),
        "gpu_kwh": sum(r.gpu_kwh for r in runs),
        "ram_kwh": sum(r.ram_kwh for r in runs),
        "duration_s": sum(r.duration_s for r in runs),
    }


def footprint_totals(runs: list[Run]) -> dict[str, float | None]:
    """Sums of the runs' embodied carbon (kg) and water (L, total and off-site): None where a
    run lacks the figure (a CodeCarbon row, a device without an embodied figure, an unknown
    on-site WUE), never a partial sum."""

    def total(values: list[float | None]) -> float | None:
        return sum(v for v in values if v is not None) if None not in values else None

    return {
        "embodied_kg": total([r.embodied_kg for r in runs]),
        "water_l": total([r.water_l for r in runs]),
        "water_offsite_l": total([r.water_offsite_l for r in runs]),
    }


def band_totals(runs: list[Run]) -> dict[str, float | None]:
    """Sums of the runs' bands: None when a run has no band (low) or an unbounded one (high)."""

    def total(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return sum(known) if values and len(known) == len(values) else None

    lows_known = all(r.energy_low_kwh is not None for r in runs)
    return {
        "energy_low_kwh": total([r.energy_low_kwh for r in runs]),
        "energy_high_kwh": total([r.energy_high_kwh for r in runs]) if lows_known else None,
        "co2_low_kg": total([r.co2_low_kg for r in runs]),
        "co2_high_kg": total([r.co2_high_kg for r in runs]) if lows_known else None,
        "tracker_cpu_s": total([r.tracker_cpu_s for r in runs]),
    }


def _g_band(line: dict[str, Any]) -> str:
    """`1.60-3.01`: the CO2eq error band in g; empty for rows without one (CodeCarbon's)."""
    low, high = line["co2_low_g"], line["co2_high_g"]
    if low is None:
        return ""
    return f"{figure(low)}-{figure(high) if high is not None else 'unbounded'}"


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


def _with_per_unit(sums: dict[str, float], runs: list[Run]) -> dict[str, Any]:
    out: dict[str, Any] = dict(sums)
    out.update(per_unit_totals(runs))
    return out


def when_text(when: datetime.datetime | None) -> str:
    """`2026-12-07 16:18:05`, or `?` when the row's time was unreadable."""
    return "?" if when is None else when.strftime("%Y-%m-%d %H:%M:%S")


def start_text(run: Run, year: bool = True) -> str:
    """When `run` started: `2026-12-07 16:17:30`, or `12-07 16:17:30` without the `year`."""
    if run.started is None:
        return when_text(None)
    return run.started.strftime("%Y-%m-%d %H:%M:%S" if year else "%m-%d %H:%M:%S")


def end_text(run: Run) -> str:
    """When `run` ended, short: `16:20:00` on the day it started, else as `when_text`."""
    started, ended = run.started, run.ended
    if started is not None and ended is not None and started.date() == ended.date():
        return ended.strftime("%H:%M:%S")
    return when_text(ended)


# Label formats from coarse to fine, for runs within a day, within a year, and beyond.
_LABEL_FORMATS = (
    (datetime.timedelta(days=1), ("%H:%M", "%H:%M:%S")),
    (datetime.timedelta(days=365), ("%m-%d", "%m-%d %H:%M", "%m-%d %H:%M:%S")),
    (datetime.timedelta.max, ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")),
)


def time_labels(times: list[datetime.datetime | None]) -> list[str]:
    """Labels of points in time by the span they cover: `16:18:05` for runs of one minute,
    `12-07 16:18` for runs of some days, `2026-12-07` across years; the coarsest format that
    tells each point from the one before it (issue 32: not `12-07 16:18` four times)."""
    known = [t for t in times if t is not None]
    if not known:
        return ["?" for _ in times]
    first, last = min(known), max(known)
    span = last - first
    formats = next(f for limit, f in _LABEL_FORMATS if span < limit)
    if span < datetime.timedelta(days=1) and first.date() != last.date():
        formats = _LABEL_FORMATS[1][1][1:]  # past midnight: the date tells the hours apart
    for fmt in formats:
        labels = ["?" if t is None else t.strftime(fmt) for t in times]
        if all(a != b for a, b in itertools.pairwise(labels)):
            return labels
    return labels


def plural(n: int, word: str) -> str:
    """`1 run`, `2 runs`."""
    return f"{n} {word}{'' if n == 1 else 's'}"


# --- the overview table ---------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of the overview: its key in the JSON line, its heading, how it is written."""

    key: str
    heading: str
    text: Callable[[Any], str]
    numeric: bool = True


# Every format writes these columns in this order: renderers iterate this tuple.
OVERVIEW_COLUMNS = (
    Column("project", "Project", str, numeric=False),
    Column("experiment", "Experiment", str, numeric=False),
    Column("runs", "Runs", str),
    Column("duration_min", "Duration (min)", figure),
    Column("energy_kwh", "Energy (kWh)", figure),
    Column("co2_g", "CO2eq (g)", figure),
    # Beside the figure, so the paper's columns stay plain numbers; the JSON line also keeps
    # `co2_low_g` and `co2_high_g` as numbers.
    Column("co2_band_g", "CO2eq band (g)", str),
)


def _per_unit_figure(value: float | None) -> str:
    return "" if value is None else figure(value)


# Shown after OVERVIEW_COLUMNS when some experiment counted that unit (`overview_columns`).
PER_UNIT_COLUMNS = (
    Column("j_per_sample", "J/sample", _per_unit_figure),
    Column("j_per_token", "J/token", _per_unit_figure),
    Column("co2_g_per_1k_tokens", "g CO2eq/1k tokens", _per_unit_figure),
)


def overview_columns(lines: list[dict[str, Any]]) -> tuple[Column, ...]:
    """The overview's columns for `lines`: the per-unit ones only where something was counted."""
    counted = tuple(c for c in PER_UNIT_COLUMNS if any(line[c.key] is not None for line in lines))
    return OVERVIEW_COLUMNS + counted


def overview(report: Report) -> list[dict[str, Any]]:
    """One line per project and experiment: the paper's table (Model | Task | ...)."""
    lines = []
    for experiments in report.projects().values():
        for experiment in experiments:
            sums = totals(experiment.runs)
            band = band_totals(experiment.runs)
            line: dict[str, Any] = {
                "project": experiment.project,
                "experiment": experiment.label,
                "experiment_id": experiment.experiment_id,
                "experiment_name": experiment.name,
                "runs": int(sums["runs"]),
                "duration_min": sums["duration_s"] / 60.0,
                "energy_kwh": sums["energy_kwh"],
                "co2_g": sums["co2_kg"] * 1000.0,
                "co2_low_g": None if band["co2_low_kg"] is None else band["co2_low_kg"] * 1e3,
                "co2_high_g": None if band["co2_high_kg"] is None else band["co2_high_kg"] * 1e3,
            }
            line.update(per_unit_totals(experiment.runs))
            line["co2_band_g"] = _g_band(line)
            lines.append(line)
    return lines


# --- a team's view: filters and groups -------------------------------------------------------


def _experiment_of(run: Run) -> str:
    return run.experiment_name or run.experiment_id[:8]


# What a run is filtered and grouped by: `--project`, `--group-by user`, ...
RUN_KEYS: dict[str, Callable[[Run], str]] = {
    "project": lambda r: r.project,
    "experiment": _experiment_of,
    "host": lambda r: r.host,
    "user": lambda r: r.user,
    "job": lambda r: r.job_id,
    "date": lambda r: r.started.date().isoformat() if r.started else "",
    "month": lambda r: r.started.strftime("%Y-%m") if r.started else "",
}


def parse_when(text: str, end: bool = False) -> datetime.datetime:
    """`2026-12-07` or `2026-12-07T16:00`; a bare date as `end` is the end of that day (so
    `--until 2026-12-07` keeps the runs of the 7th). A ValueError naming the format otherwise."""
    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None
    if end and len(text.strip()) == 10:
        when += datetime.timedelta(days=1)
    return when.replace(tzinfo=None)


def select(
    report: Report,
    where: dict[str, list[str]] | None = None,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
) -> Report:
    """The runs of `report` whose `RUN_KEYS` values are among `where`'s (an experiment by name
    or id), that started at or after `since` and before `until`."""
    kept = []
    for run in report.runs:
        ok = all(
            RUN_KEYS[key](run) in values or (key == "experiment" and run.experiment_id in values)
            for key, values in (where or {}).items()
        )
        started = run.started
        if since is not None and (started is None or started < since):
            ok = False
        if until is not None and (started is None or started >= until):
            ok = False
        if ok:
            kept.append(run)
    return Report(kept, report.files, report.warnings)


def groups(report: Report, by: str) -> list[dict[str, Any]]:
    """One line per value of `by` (a `RUN_KEYS` key): runs, duration, energy and CO2eq, largest
    CO2eq first; runs without that value are under "(none)"."""
    key = RUN_KEYS[by]
    grouped: dict[str, list[Run]] = {}
    for run in report.runs:
        grouped.setdefault(key(run) or "(none)", []).append(run)
    lines = []
    for value, runs in grouped.items():
        sums = totals(runs)
        band = band_totals(runs)
        line: dict[str, Any] = {
            by: value,
            "runs": int(sums["runs"]),
            "duration_min": sums["duration_s"] / 60.0,
            "energy_kwh": sums["energy_kwh"],
            "co2_g": sums["co2_kg"] * 1000.0,
            "co2_low_g": None if band["co2_low_kg"] is None else band["co2_low_kg"] * 1e3,
            "co2_high_g": None if band["co2_high_kg"] is None else band["co2_high_kg"] * 1e3,
        }
        line["co2_band_g"] = _g_band(line)
        lines.append(line)
    return sorted(lines, key=lambda line: -line["co2_g"])


def group_columns(by: str) -> tuple[Column, ...]:
    """The columns of `groups(report, by)`: the group, then the overview's figures."""
    return (Column(by, by.capitalize(), str, numeric=False), *OVERVIEW_COLUMNS[2:])


# --- what if it ran elsewhere ---------------------------------------------------------------

# Grids shown beside the one used when --compare is not given, with the cleanest and dirtiest
# countries of the embedded table and the world average.
DEFAULT_COMPARE = ("FRA", "SWE", "USA", "CHN", "IND")


def grid(zone: str) -> Intensity:
    """The table figure of a zone as the CSV writes it: `FRA`, `US-CA`, `SPNO`, `SE3`,
    `gcp:europe-west1`, `World`; a ValueError naming the zone and the closest ones otherwise."""
    zone = zone.strip()
    if not zone:
        raise ValueError("--compare: an empty zone; expected e.g. FRA,USA,gcp:europe-west1")
    if ":" in zone:
        provider, _, region = zone.partition(":")
        return lookup(cloud_provider=provider, cloud_region=region or None)
    if zone.lower() in ("world", "world average"):
        return lookup()
    try:
        return lookup(country=zone)
    except ValueError:
        return lookup(region=zone)


def extreme_countries() -> tuple[str, str]:
    """The cleanest and dirtiest countries of the embedded table; a 0 g/kWh row (a country whose
    few GWh are all hydro) is left out, as it tells nothing about a grid one could run on."""
    rows = [r for r in csv.DictReader(io.StringIO(TABLES["country_intensity.csv"]))]
    rows = [r for r in rows if float(r["g_per_kwh"]) > 0]
    rows.sort(key=lambda r: float(r["g_per_kwh"]))
    return rows[0]["iso3"], rows[-1]["iso3"]


def used_zones(report: Report) -> list[str]:
    """The grids the runs used, those the tables know, as the tables spell them."""
    used = []
    for zone in dict.fromkeys(r.intensity_zone for r in report.runs if r.intensity_zone):
        try:
            used.append(grid(zone).zone)
        except ValueError:
            continue  # a zone of another writer's spelling: the report still shows the rest
    return used


def default_zones(report: Report) -> list[str]:
    """The grids the runs used (those the tables know), then their peers (`whatif.peers`), or
    where they have none a handful of telling countries."""
    used = used_zones(report)
    # A run on a cloud region, a region or an eGRID subregion is compared with the grids it
    # could have moved to: its provider's other regions, its country's (issue 32).
    peers = whatif.peer_zones(used)
    if peers:
        return list(dict.fromkeys([*used, *peers]))
    cleanest, dirtiest = extreme_countries()
    return list(dict.fromkeys([*used, cleanest, *DEFAULT_COMPARE, dirtiest, "World"]))


def what_if(report: Report, zones: list[str] | None = None) -> list[dict[str, Any]]:
    """The report's total energy restated at each grid's table intensity (energy x g/kWh): the
    grids used first, always (issue 32: `--compare` kept only the grids it named), then `zones`
    (by default `default_zones`)."""
    energy_kwh = sum(r.energy_kwh for r in report.runs)
    out = []
    named = default_zones(report) if zones is None else [grid(z).zone for z in zones]
    for zone in dict.fromkeys([*used_zones(report), *named]):
        found = grid(zone)
        out.append(
            {
                "zone": found.zone,
                "g_per_kwh": found.g_per_kwh,
                "emissions_kg": energy_kwh * found.g_per_kwh / 1000.0,
                "source": found.source,
                "year": found.year,
            }
        )
    return out


def what_if_when(report: Report) -> list[dict[str, Any]]:
    """For each run that waited for a cleaner start (`carbonmeter wait`): its energy at the
    forecast's figure for the window it waited for and at the figure had it started at
    submission, and the difference, what waiting is expected to have saved."""
    out = []
    for run in report.runs:
        scheduled, submitted = run.scheduled_g_per_kwh, run.submitted_g_per_kwh
        if scheduled is None or submitted is None:
            continue
        out.append(
            {
                "run_id": run.run_id,
                "scheduled_start": run.scheduled_start,
                "energy_kwh": run.energy_kwh,
                "scheduled_g_per_kwh": scheduled,
                "submitted_g_per_kwh": submitted,
                "saved_kg": run.energy_kwh * (submitted - scheduled) / 1000.0,
            }
        )
    return out


# --- comparing two runs ---------------------------------------------------------------------


def find_run(report: Report, name: str) -> Run:
    """A run by its id (or an id prefix of 8+ characters) or by its experiment name (the last
    run of that name); a ValueError listing what there is otherwise."""
    by_id = [r for r in report.runs if r.run_id == name]
    if not by_id and len(name) >= 8:
        by_id = [r for r in report.runs if r.run_id.startswith(name)]
    if by_id:
        if len({r.run_id for r in by_id}) > 1:
            ids = ", ".join(sorted({r.run_id for r in by_id}))
            raise ValueError(f"--diff {name!r} matches several runs ({ids}): give more of the id")
        return by_id[-1]
    by_name = [r for r in report.runs if r.experiment_name == name]
    if by_name:
        return by_name[-1]
    names = sorted({r.experiment_name for r in report.runs if r.experiment_name})
    known = ", ".join(names[:8]) if names else "none"
    raise ValueError(
        f"--diff {name!r}: no run with that id or experiment name; experiment names: {known}; "
        f"ids: {', '.join(r.run_id[:8] for r in report.runs[:8])}"
    )


def _ratio(b: float, a: float) -> float | None:
    """b / a; None when a is zero (no ratio, never a made-up infinity)."""
    return b / a if a else None


DIFF_FIGURES = (
    ("duration_s", "Duration (s)"),
    ("energy_kwh", "Energy (kWh)"),
    ("cpu_kwh", "CPU (kWh)"),
    ("gpu_kwh", "GPU (kWh)"),
    ("ram_kwh", "RAM (kWh)"),
    ("co2_kg", "CO2eq (kg)"),
)


def diff(report: Report, first: str, second: str) -> dict[str, Any]:
    """Two runs side by side: each figure, B / A, and both runs' per-epoch curves."""
    a, b = find_run(report, first), find_run(report, second)
    return {
        "a": {"run_id": a.run_id, "label": a.label, "project": a.project},
        "b": {"run_id": b.run_id, "label": b.label, "project": b.project},
        "figures": [
            {
                "figure": key,
                "heading": heading,
                "a": getattr(a, key),
                "b": getattr(b, key),
                "ratio": _ratio(getattr(b, key), getattr(a, key)),
            }
            for key, heading in DIFF_FIGURES
        ],
        "epochs": {"a": [e.__dict__ for e in a.epochs], "b": [e.__dict__ for e in b.epochs]},
    }


# --- JSON -----------------------------------------------------------------------------------


def to_json(
    report: Report, zones: list[str] | None = None, group_by: str | None = None
) -> dict[str, Any]:
    """The report as plain data: the overview first (and `groups` by `group_by`), totals, what
    if, then the projects."""
    factors = equivalents()

    def with_equivalents(sums: dict[str, float], runs: list[Run]) -> dict[str, Any]:
        return {
            **_with_per_unit(sums, runs),
            "equivalents": {e.key: e.of(sums["co2_kg"], sums["energy_kwh"]) for e in factors},
            "footprint": footprint_totals(runs),
        }

    projects = []
    for project, experiments in report.projects().items():
        project_runs = [r for e in experiments for r in e.runs]
        projects.append(
            {
                "project_name": project,
                "totals": with_equivalents(totals(project_runs), project_runs),
                "experiments": [
                    {
                        "experiment_id": e.experiment_id,
                        "experiment_name": e.name,
                        "label": e.label,
                        "totals": _with_per_unit(totals(e.runs), e.runs),
                        "runs": [_run_json(r, report.detailed) for r in e.runs],
                    }
                    for e in experiments
                ],
            }
        )
    return {
        "overview": overview(report),
        **({"groups": {"by": group_by, "lines": groups(report, group_by)}} if group_by else {}),
        "files": report.files,
        "totals": with_equivalents(totals(report.runs), report.runs),
        "what_if": what_if(report, zones),
        "what_if_when": what_if_when(report),
        "projects": projects,
        "equivalent_factors": [e.__dict__ for e in factors],
    }


def _iso(when: datetime.datetime | None) -> str | None:
    return None if when is None else when.isoformat(timespec="seconds")


def _run_json(run: Run, detailed: bool) -> dict[str, Any]:
    """A run's figures; its epochs listed when the report lists them (`Report.detailed`), and
    summarised by phase always."""
    out = {k: v for k, v in run.__dict__.items() if k != "series"}
    out["label"] = run.label
    out["started"] = _iso(run.started)
    out["ended"] = _iso(run.ended)
    out["epochs"] = [e.__dict__ for e in run.epochs] if detailed else []
    out["epoch_summary"] = run.series.summary()
    return out
