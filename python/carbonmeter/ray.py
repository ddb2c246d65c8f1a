"""Ray Tune trials measured where they run: each trial's kg CO2eq in its results, the
experiment's running total on the driver, and a `Stopper` that ends the experiment at a carbon
budget.

Example:
    >>> from ray import tune  # doctest: +SKIP
    >>> from carbonmeter.ray import CO2Callback, CO2Stopper, measured, report
    >>> @measured(metric="accuracy", country_iso_code="FRA")  # doctest: +SKIP
    ... def trainable(config):
    ...     for epoch in range(10):
    ...         report({"accuracy": train_one_epoch(config)})
    >>> tuner = tune.Tuner(  # doctest: +SKIP
    ...     trainable,
    ...     run_config=tune.RunConfig(callbacks=[CO2Callback()], stop=CO2Stopper(0.5)),
    ... )

Tune's callbacks run on the driver, away from the trials' processes, so the trainable itself is
wrapped (`measured`): each trial runs a tracker of its own in its worker, whose experiment is
Tune's (`experiment_name` = the experiment's name), and every `report` here closes an epoch
window (phase `trial`, one row per report, the metric named by `metric=` recorded in it) and adds
`co2_kg` (that report's), `co2_kg_total` and `energy_kwh_total` (the trial's so far) to the
metrics before handing them to `ray.tune.report`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from ray import tune

from carbonmeter._core import EmissionsTracker, EpochWindow

#: What `report` adds to a trial's results.
CO2_KG = "co2_kg"
CO2_KG_TOTAL = "co2_kg_total"
ENERGY_KWH_TOTAL = "energy_kwh_total"


class _TrialMeter:
    """The tracker of the trial running in this worker, with its open epoch window."""

    current: _TrialMeter | None = None

    def __init__(self, metric: str | None, mode: str, tracker_kwargs: dict[str, Any]) -> None:
        context = tune.get_context()
        settings = {"experiment_name": context.get_experiment_name(), **tracker_kwargs}
        self.tracker = EmissionsTracker(**settings)
        self.metric = metric
        self.mode = mode
        self.co2_kg_total = 0.0
        self.energy_kwh_total = 0.0
        self._epoch = 0
        self._window: EpochWindow | None = None

    def open(self) -> None:
        self._window = self.tracker.epoch(self._epoch, phase="trial")
        self._window.__enter__()

    def close(self, metrics: dict[str, Any]) -> dict[str, float]:
        """Closes the open window (recording the metric) and returns what `report` adds."""
        window, self._window = self._window, None
        if window is None:
            return {}
        value = metrics.get(self.metric) if self.metric is not None else None
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        # A NaN metric (a diverged trial) is no figure; the report still goes to Tune.
        if number is not None and math.isfinite(number):
            window.record(str(self.metric), float(number), mode=self.mode)
        window.__exit__(None, None, None)
        self._epoch += 1
        data = window.data
        if data is None:
            return {}
        self.co2_kg_total += data.emissions
        self.energy_kwh_total += data.energy_consumed
        return {
            CO2_KG: data.emissions,
            CO2_KG_TOTAL: self.co2_kg_total,
            ENERGY_KWH_TOTAL: self.energy_kwh_total,
        }


def report(metrics: dict[str, Any], **kwargs: Any) -> None:
    """`ray.tune.report` with the trial's carbon added (inside a `measured` trainable; outside
    one, it only reports)."""
    meter = _TrialMeter.current
    if meter is None:
        tune.report(metrics, **kwargs)
        return
    measured_metrics = {**metrics, **meter.close(metrics)}
    try:
        tune.report(measured_metrics, **kwargs)
    finally:
        # Also after a report that raised (Tune stopping the trial): the rest is measured.
        meter.open()


def measured(
    trainable: Callable[[dict[str, Any]], Any] | None = None,
    /,
    *,
    metric: str | None = None,
    mode: str = "auto",
    **tracker_kwargs: Any,
) -> Any:
    """Wraps a function trainable so its trial is measured in its worker; used bare
    (`@measured`), with settings (`@measured(metric="accuracy")`) or called.

    Args:
        trainable: the function trainable, `trainable(config)`, reporting with this module's
            `report`.
        metric: the reported metric recorded in each epoch row (`metric_value`).
        mode: which way it improves: `"max"`, `"min"` or `"auto"` (from the name).
        **tracker_kwargs: `EmissionsTracker` settings for each trial's tracker.
    """

    def wrap(function: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        @functools.wraps(function)
        def wrapper(config: dict[str, Any]) -> Any:
            meter = _TrialMeter(metric, mode, tracker_kwargs)
            meter.tracker.start()
            _TrialMeter.current = meter
            meter.open()
            try:
                return function(config)
            finally:
                _TrialMeter.current = None
                # The stretch after the last report (teardown, a final save) gets its row too.
                meter.close({})
                meter.tracker.stop()

        return wrapper

    return wrap if trainable is None else wrap(trainable)


def _trial_totals(totals: dict[str, float], trial_id: str, result: dict[str, Any]) -> None:
    value = result.get(CO2_KG_TOTAL)
    if isinstance(value, (int, float)):
        totals[trial_id] = float(value)


class CO2Callback(tune.Callback):
    """Keeps the experiment's running total of the measured trials' kg CO2eq on the driver
    (`co2_kg_total`, and per trial `co2_kg_by_trial`), from the results `report` sent."""

    def __init__(self) -> None:
        self.co2_kg_by_trial: dict[str, float] = {}

    @property
    def co2_kg_total(self) -> float:
        """kg CO2eq the experiment's trials reported so far."""
        return sum(self.co2_kg_by_trial.values())

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        _trial_totals(self.co2_kg_by_trial, str(trial.trial_id), result)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        last = getattr(trial, "last_result", None) or {}
        _trial_totals(self.co2_kg_by_trial, str(trial.trial_id), last)


class CO2Stopper(tune.Stopper):
    """Stops the whole experiment once its trials reported `co2_budget_kg` in all (and, with
    `trial_co2_budget_kg`, a trial once it alone reported that much).

    Args:
        co2_budget_kg: the experiment's carbon budget, kg CO2eq.
        trial_co2_budget_kg: a budget per trial, kg CO2eq; `None` for none.
    """

    def __init__(self, co2_budget_kg: float, trial_co2_budget_kg: float | None = None) -> None:
        for name, value in (("co2_budget_kg", co2_budget_kg), ("trial", trial_co2_budget_kg)):
            if value is not None and not value > 0:
                raise ValueError(f"invalid {name} {value!r}: expected kg CO2eq > 0")
        self.co2_budget_kg = co2_budget_kg
        self.trial_co2_budget_kg = trial_co2_budget_kg
        self.co2_kg_by_trial: dict[str, float] = {}

    @property
    def co2_kg_total(self) -> float:
        """kg CO2eq the experiment's trials reported so far."""
        return sum(self.co2_kg_by_trial.values())

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        _trial_totals(self.co2_kg_by_trial, trial_id, result)
        limit = self.trial_co2_budget_kg
        return limit is not None and self.co2_kg_by_trial.get(trial_id, 0.0) >= limit

    def stop_all(self) -> bool:
        return self.co2_kg_total >= self.co2_budget_kg


__all__ = [
    "CO2_KG",
    "CO2_KG_TOTAL",
    "ENERGY_KWH_TOTAL",
    "CO2Callback",
    "CO2Stopper",
    "measured",
    "report",
]
