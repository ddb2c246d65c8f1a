"""What every framework callback shares: a tracker owned or borrowed, and epoch windows on it.

Framework modules only translate their hooks into `begin_run` / `begin_epoch` / `end_epoch` /
`end_run`; all measuring happens in the core's windows.
"""

from __future__ import annotations

import atexit
import math
import weakref
from collections.abc import Iterable
from typing import Any

from carbonmeter._core import (
    EmissionsData,
    EmissionsTracker,
    EpochWindow,
    InvalidValueError,
    TrackerStateError,
    _warn_once,
)
from carbonmeter._distributed import JobLink


def per_unit_metrics(data: EmissionsData, prefix: str = "") -> dict[str, float]:
    """`j_per_sample`, `j_per_token`, `j_per_request` and `co2_g_per_1k_tokens` of a window,
    only those whose unit was counted (an uncounted unit has no figure, never a zero)."""
    figures = {
        "j_per_sample": data.joules_per_sample,
        "j_per_token": data.joules_per_token,
        "j_per_request": data.joules_per_request,
        "co2_g_per_1k_tokens": data.co2_g_per_1k_tokens,
    }
    return {f"{prefix}{key}": value for key, value in figures.items() if value is not None}


# What users read of an epoch (issue 32: 18 keys per Keras epoch were too many): sent unless
# `log_metrics` asks for more or other figures.
DEFAULT_METRICS = (
    "co2_kg",
    "co2_kg_low",
    "co2_kg_high",
    "energy_kwh",
    "co2_kg_total",
    "co2_kg_projected",
)
# Every figure a window can give, in the order they are sent.
ALL_METRICS = (
    *DEFAULT_METRICS,
    "co2_kg_projected_low",
    "co2_kg_projected_high",
    "cpu_energy_kwh",
    "gpu_energy_kwh",
    "ram_energy_kwh",
    "power_w",
    "j_per_sample",
    "j_per_token",
    "j_per_request",
    "co2_g_per_1k_tokens",
)


def chosen_metrics(log_metrics: str | Iterable[str] | None) -> frozenset[str]:
    """The figures the `log_metrics` setting asks for: the default ones when unset, every one
    for `"all"`, else the names listed (`"default"` among them stands for the default ones).

    Raises:
        InvalidValueError: a name that is no figure, with the names allowed.
    """
    if log_metrics is None:
        return frozenset(DEFAULT_METRICS)
    names = log_metrics.split(",") if isinstance(log_metrics, str) else list(log_metrics)
    chosen: set[str] = set()
    for raw in names:
        name = str(raw).strip()
        if name == "all":
            return frozenset(ALL_METRICS)
        if name == "default":
            chosen.update(DEFAULT_METRICS)
        elif name in ALL_METRICS:
            chosen.add(name)
        elif name:
            allowed = ", ".join(ALL_METRICS)
            raise InvalidValueError(
                f'invalid log_metrics entry {name!r}: expected "all", "default" or '
                f"figure names among {allowed}"
            )
    return frozenset(chosen)


def epoch_metrics(
    data: EmissionsData,
    prefix: str = "",
    chosen: frozenset[str] | None = None,
    co2_kg_total: float | None = None,
) -> dict[str, float]:
    """The figures a callback or logger sends for one window, under stable names, the phase's
    `prefix` before each: those of `chosen` (default: `DEFAULT_METRICS`) that the window has.
    `co2_kg` with its band (`co2_kg_low`, `co2_kg_high` when bounded), the run's projection
    (`co2_kg_projected`) when the epoch count is known, the cumulative `co2_kg_total` of the
    train epochs when given; on request the energies, power and per-unit figures."""
    figures = {
        "co2_kg": data.emissions,
        "co2_kg_low": data.emissions_low,
        "co2_kg_high": data.emissions_high,
        "energy_kwh": data.energy_consumed,
        "co2_kg_total": co2_kg_total,
        "co2_kg_projected": data.projected_emissions,
        "co2_kg_projected_low": data.projected_emissions_low,
        "co2_kg_projected_high": data.projected_emissions_high,
        "cpu_energy_kwh": data.cpu_energy,
        "gpu_energy_kwh": data.gpu_energy,
        "ram_energy_kwh": data.ram_energy,
        "power_w": data.cpu_power + data.gpu_power + data.ram_power,
        **per_unit_metrics(data),
    }
    wanted = frozenset(DEFAULT_METRICS) if chosen is None else chosen
    metrics = {
        f"{prefix}{key}": value
        for key, value in figures.items()
        if key in wanted and value is not None
    }
    if data.metric_name is not None and data.metric_gain_per_kg is not None:
        # The monitored metric's gain since the first epoch per kg after it, always sent (the
        # user named that metric): `val_accuracy_per_kg`. Its name already carries its phase
        # (`val_`, `eval_`), so no prefix is added.
        metrics[f"{data.metric_name}_per_kg"] = data.metric_gain_per_kg
    return metrics


class Monitor:
    """The metric a callback records in its epoch rows (`monitor=`, as the frameworks'
    `EarlyStopping` names it) and which way it improves (`mode`)."""

    def __init__(self, monitor: str | None, mode: str, tracker_kwargs: dict[str, Any]) -> None:
        if mode not in ("auto", "max", "min"):
            raise ValueError(f'invalid mode {mode!r}: expected "auto", "max" or "min"')
        if monitor is None and tracker_kwargs.get("min_gain_per_kg") is not None:
            raise TypeError(
                "min_gain_per_kg needs the metric it judges: pass monitor=<metric name> "
                '(such as monitor="val_accuracy")'
            )
        self.name = monitor
        self.mode = mode

    def value(self, logs: Any) -> float | None:
        """The monitored metric in `logs` (a dict of numbers or 0-d tensors), warning once
        when it is missing (as `EarlyStopping` does); None then."""
        if self.name is None:
            return None
        value = logs.get(self.name) if logs is not None else None
        if value is None:
            available = ", ".join(sorted(str(key) for key in (logs or {})))
            _warn_once(
                f"monitor/{self.name}",
                f"monitored metric {self.name!r} is not in the epoch's metrics "
                f"({available or 'none'}): the rows have no metric_value and "
                "min_gain_per_kg cannot judge them",
            )
            return None
        number = float(value.item() if hasattr(value, "item") else value)
        if not math.isfinite(number):
            # A diverged run's NaN loss: not a figure to judge, and never a crash in training.
            _warn_once(
                f"monitor/{self.name}/finite",
                f"monitored metric {self.name!r} is {number}: that epoch's row has no metric_value",
            )
            return None
        return number

    def metric(self, logs: Any) -> tuple[str, float, str] | None:
        """What `EpochMeter.end_epoch` records: (name, value, mode), or None."""
        value = self.value(logs)
        if self.name is None or value is None:
            return None
        return self.name, value, self.mode


def batch_samples(batch: Any) -> int | None:
    """The samples in a batch: the leading dimension of its first array or tensor, looked for
    in tuples, lists and dicts; None when it has none (then nothing is counted, never a guess)."""
    pending = [batch]
    while pending:
        item = pending.pop(0)
        shape = getattr(item, "shape", None)
        if shape is not None and len(shape) >= 1:
            return int(shape[0])
        if isinstance(item, dict):
            pending[:0] = list(item.values())
        elif isinstance(item, (list, tuple)):
            pending[:0] = list(item)
    return None


def _end_run_at_exit(reference: weakref.ref[EpochMeter]) -> None:
    meter = reference()
    if meter is not None:
        meter.end_run()


class EpochMeter:
    """A tracker (owned, or passed in and shared) with one open epoch window per phase.

    An owned tracker is created at `begin_run`, so a callback can add what it only learns then
    (the distributed rank), and stopped at `end_run`. A shared tracker is started if idle and left
    running. An epoch window opened while no run is (an evaluation or prediction after training,
    or alone) starts the run and ends it when it closes, so its run row ends with its work, not
    when the interpreter exits. If training dies before `end_run` (an exception the framework
    does not report to callbacks), the open epoch and the run are still written at exit.
    """

    def __init__(self, tracker: EmissionsTracker | None, tracker_kwargs: dict[str, Any]) -> None:
        if tracker is not None and tracker_kwargs:
            raise TypeError(
                "pass either tracker=<EmissionsTracker> or tracker keyword arguments, not both "
                f"(got {', '.join(sorted(tracker_kwargs))})"
            )
        self._tracker = tracker
        self._tracker_kwargs = tracker_kwargs
        self._owned = tracker is None
        self._stop_at_end = False
        self._job: JobLink | None = None
        self._windows: dict[str, EpochWindow] = {}
        # The phase whose window started the run (outside training): the run ends with it.
        self._run_ends_with: str | None = None
        self.last_epoch: dict[str, dict[str, float]] = {}
        self.co2_kg_total = 0.0
        # The figures published: the tracker's log_metrics setting, read when the run begins.
        self._chosen = frozenset(DEFAULT_METRICS)
        # Set by the core on the epoch row that crossed co2_budget_kg (stop_over_budget=True)
        # or whose metric stopped paying (min_gain_per_kg): the framework callback then stops
        # training its own way.
        self.stop_reason: str | None = None

    @property
    def tracker(self) -> EmissionsTracker | None:
        """The tracker measured with, once the run has begun (or the one passed in)."""
        return self._tracker

    def begin_run(self, **owned_defaults: Any) -> EmissionsTracker:
        """Creates the owned tracker if needed (user kwargs win over `owned_defaults`) and
        starts it if idle."""
        if self._tracker is None:
            self._tracker = EmissionsTracker(**{**owned_defaults, **self._tracker_kwargs})
        # A shared tracker's setting too: the figures are the tracker's choice, however made.
        self._chosen = chosen_metrics(self._tracker.log_metrics)
        if not self._tracker.running:
            # Before start: the tracker then measures only this rank's share of the job.
            self._job = JobLink.join(self._tracker)
            self._tracker.start()
            if self._owned:
                self._stop_at_end = True
                atexit.register(_end_run_at_exit, weakref.ref(self))
        return self._tracker

    def begin_epoch(
        self,
        epoch: int | None,
        phase: str = "train",
        total: int | None = None,
        **owned_defaults: Any,
    ) -> None:
        """Opens the epoch window of `phase`, closing one left open by a skipped hook; `total`,
        the run's number of epochs when the framework knows it, adds the projection. Where no
        run is going on, one is begun (with `owned_defaults`, as `begin_run`) and ends when this
        window closes."""
        # A window after the run stopped (an evaluation after training) starts it again, owned
        # as at begin_run, and stops it when it closes (issue 32: a standalone evaluate's run
        # stayed open, counting the idle time after it, until the interpreter exited).
        tracker = self._tracker
        if tracker is None or not tracker.running:
            tracker = self.begin_run(**owned_defaults)
            self._run_ends_with = phase
        if phase in self._windows:
            self.end_epoch(phase)
        # HF says sys.maxsize epochs when only max_steps bounds an unsized dataset: unknown.
        known = total is not None and 0 < total < 2**32
        window = tracker.epoch(epoch, phase, total=total if known else None)
        window.__enter__()
        self._windows[phase] = window

    def end_epoch(
        self,
        phase: str = "train",
        prefix: str = "",
        metric: tuple[str, float, str] | None = None,
    ) -> dict[str, float] | None:
        """Closes the epoch window of `phase` (its row is written, with `metric`: name, value
        and mode, when given) and returns its metrics."""
        window = self._windows.pop(phase, None)
        if window is None:
            return None
        if metric is not None:
            name, value, mode = metric
            window.record(name, value, mode=mode)
        window.__exit__(None, None, None)
        try:
            return self._publish(phase, window.data, prefix)
        finally:
            if self._run_ends_with == phase:
                self.end_run()

    def _publish(
        self, phase: str, data: EmissionsData | None, prefix: str
    ) -> dict[str, float] | None:
        """The metrics of a closed window of `phase` (the job's on rank 0 of a job)."""
        if data is None:
            return None
        if self._job is not None:
            # Rank 0 publishes the job's figures, the other ranks their own.
            data = self._job.edge(data) or data
        total = None
        if phase == "train":
            self.co2_kg_total += data.emissions
            total = self.co2_kg_total
        if data.stop_reason is not None:
            self.stop_reason = data.stop_reason
        metrics = epoch_metrics(data, prefix, self._chosen, co2_kg_total=total)
        self.last_epoch[phase] = metrics
        return metrics

    def record(self, phase: str, name: str, value: float, mode: str = "auto") -> None:
        """Records metric `name` = `value` in the open epoch window of `phase`."""
        window = self._windows.get(phase)
        if window is None:
            raise TrackerStateError(
                f"metric {name!r} not recorded: no {phase} epoch is open (record inside it)"
            )
        window.record(name, value, mode=mode)

    def count(self, samples: int | None = None, tokens: int | None = None) -> None:
        """Counts work done in the open windows and the run (nothing before the run begins)."""
        if self._tracker is not None and (samples is not None or tokens is not None):
            self._tracker.count(samples=samples, tokens=tokens)

    def is_open(self, phase: str) -> bool:
        return phase in self._windows

    def end_run(self) -> EmissionsData | None:
        """Writes any partial epoch, then stops the tracker if it is owned."""
        self._run_ends_with = None
        for phase in list(self._windows):
            self.end_epoch(phase)
        if self._tracker is None or not self._stop_at_end:
            return None
        self._stop_at_end = False
        self._tracker.stop()
        data = self._tracker.final_emissions_data
        if self._job is not None and data is not None:
            job, self._job = self._job, None
            return job.edge(data, run=True) or data
        return data


class MeasuredCallback:
    """What every framework callback exposes about its measurement; mixed in beside the
    framework's own base class, whose hooks call `self._epochs`."""

    _epochs: EpochMeter

    @property
    def tracker(self) -> EmissionsTracker | None:
        """The tracker measured with (None before training begins, for an owned one)."""
        return self._epochs.tracker

    @property
    def final_emissions(self) -> float | None:
        """The run's kg CO2eq once training has ended, as `EmissionsTracker.final_emissions`."""
        tracker = self._epochs.tracker
        return tracker.final_emissions if tracker is not None else None

    @property
    def final_emissions_data(self) -> EmissionsData | None:
        """The run's measurement, once training has ended."""
        tracker = self._epochs.tracker
        return tracker.final_emissions_data if tracker is not None else None
