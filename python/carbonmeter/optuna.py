"""Optuna studies measured trial by trial: each trial's kg CO2eq, energy and duration as its user
attributes, the study's running total, a study-wide carbon budget, and kg as an objective.

Example:
    >>> import optuna  # doctest: +SKIP
    >>> from carbonmeter.optuna import CO2Budget, measured
    >>> @measured(country_iso_code="FRA")  # doctest: +SKIP
    ... def objective(trial):
    ...     return train(lr=trial.suggest_float("lr", 1e-4, 1e-1, log=True))
    >>> study = optuna.create_study(direction="maximize")  # doctest: +SKIP
    >>> study.optimize(objective, n_trials=20, callbacks=[CO2Budget(0.5)])  # doctest: +SKIP

Optuna's `study.optimize(callbacks=...)` run after a trial, so they cannot measure it: the
objective itself is wrapped (`measured`), and each call runs in a tracker of its own. The trial
is an epoch window of phase `trial` numbered by the trial, in a run whose experiment is the
study (`experiment_name` = the study's name, `experiment_id` derived from it), so `carbonmeter
report` puts a study's trials in one group with its total, and the objective's value is the
row's `metric_value` (the report's trade-off and Pareto front read it).
"""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

import optuna

from carbonmeter._core import EmissionsData, EmissionsTracker

#: The user attributes a measured trial gets.
CO2_KG = "co2_kg"
ENERGY_KWH = "energy_kwh"
DURATION_S = "duration_s"
RUN_ID = "carbonmeter_run_id"

# Namespaces the experiment ids of studies: one study name, one experiment, in every process.
_STUDY_NAMESPACE = uuid.UUID("6f1e7f0c-5b1a-4a44-9a43-3c6d7e0a9b21")

Objective = TypeVar("Objective", bound=Callable[..., Any])


def study_experiment_id(study_name: str) -> str:
    """The `experiment_id` of a study's runs: the same for every trial and every process (a
    distributed study's workers share it), different per study name."""
    return str(uuid.uuid5(_STUDY_NAMESPACE, f"optuna:{study_name}"))


def _mode(study: optuna.Study) -> str:
    """How the first objective improves, as the row's metric records it."""
    return "max" if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else "min"


def _first_value(value: Any) -> float | None:
    """The value recorded in the row: the objective's, or the first of several."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        value = value[0] if value else None
    try:
        number = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    # A NaN objective (a diverged trial) is no metric; the trial is still measured.
    return number if number is not None and math.isfinite(number) else None


def _measure(
    objective: Callable[..., Any],
    trial: optuna.Trial,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    tracker_kwargs: dict[str, Any],
    metric_name: str,
) -> tuple[Any, EmissionsData | None]:
    """Runs `objective(trial)` in a tracker of its own; returns its value and the run's row."""
    study = trial.study
    settings = {
        "experiment_name": study.study_name,
        "experiment_id": study_experiment_id(study.study_name),
        **tracker_kwargs,
    }
    tracker = EmissionsTracker(**settings)
    tracker.start()
    try:
        with tracker.epoch(trial.number, phase="trial") as window:
            value = objective(trial, *args, **kwargs)
            recorded = _first_value(value)
            if recorded is not None:
                window.record(metric_name, recorded, mode=_mode(study))
    finally:
        # A pruned or failed trial is measured too: its kg were spent all the same.
        tracker.stop()
        data = tracker.final_emissions_data
        if data is not None:
            trial.set_user_attr(CO2_KG, data.emissions)
            trial.set_user_attr(ENERGY_KWH, data.energy_consumed)
            trial.set_user_attr(DURATION_S, data.duration)
            trial.set_user_attr(RUN_ID, data.run_id)
    return value, data


@overload
def measured(objective: Objective, /) -> Objective: ...
@overload
def measured(
    objective: None = None,
    /,
    *,
    co2_objective: bool = False,
    metric_name: str = "objective",
    **tracker_kwargs: Any,
) -> Callable[[Objective], Objective]: ...


def measured(
    objective: Callable[..., Any] | None = None,
    /,
    *,
    co2_objective: bool = False,
    metric_name: str = "objective",
    **tracker_kwargs: Any,
) -> Any:
    """Wraps an Optuna objective so each trial is measured: used bare (`@measured`), with
    settings (`@measured(country_iso_code="FRA")`) or called (`measured(objective)`).

    Args:
        objective: the objective, taking the trial first.
        co2_objective: also return the trial's kg CO2eq as the last objective, for a study
            with `directions=[..., "minimize"]` (the Pareto front of metric against carbon).
        metric_name: what the trial row calls the objective's value (`metric_name`).
        **tracker_kwargs: `EmissionsTracker` settings for each trial's tracker
            (`experiment_name` and `experiment_id` default to the study's).

    Returns:
        The objective, measured: each trial gets the user attributes `co2_kg`, `energy_kwh`,
        `duration_s` and `carbonmeter_run_id`, pruned and failed trials included.
    """

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(trial: optuna.Trial, *args: Any, **kwargs: Any) -> Any:
            value, data = _measure(function, trial, args, kwargs, tracker_kwargs, metric_name)
            if not co2_objective:
                return value
            co2_kg = data.emissions if data is not None else float("nan")
            if isinstance(value, Sequence) and not isinstance(value, str):
                return (*value, co2_kg)
            return value, co2_kg

        return wrapper

    return wrap if objective is None else wrap(objective)


def study_co2_kg(study: optuna.Study) -> float:
    """The kg CO2eq of the study's measured trials so far (finished, pruned and failed)."""
    return sum(
        float(trial.user_attrs.get(CO2_KG, 0.0)) for trial in study.get_trials(deepcopy=False)
    )


class CO2Budget:
    """A `study.optimize(callbacks=[...])` callback keeping the study's running total and
    stopping the study once it reaches `co2_budget_kg` (after the trial that crossed it, which
    Optuna lets finish; trials running beside it in other workers finish too).

    Args:
        co2_budget_kg: the study's carbon budget, kg CO2eq; `None` keeps the total only.

    Example:
        >>> budget = CO2Budget(0.5)
        >>> budget.co2_kg_total
        0.0
    """

    def __init__(self, co2_budget_kg: float | None = None) -> None:
        if co2_budget_kg is not None and not co2_budget_kg > 0:
            raise ValueError(f"invalid co2_budget_kg {co2_budget_kg!r}: expected kg CO2eq > 0")
        self.co2_budget_kg = co2_budget_kg
        self.co2_kg_total = 0.0
        self.stopped_after: int | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        # Read back from the storage, so a resumed or distributed study counts every trial.
        self.co2_kg_total = study_co2_kg(study)
        study.set_user_attr("co2_kg_total", self.co2_kg_total)
        if self.co2_budget_kg is not None and self.co2_kg_total >= self.co2_budget_kg:
            if self.stopped_after is None:
                self.stopped_after = trial.number
                optuna.logging.get_logger("carbonmeter").warning(
                    "carbonmeter: the study's trials emitted %.4g kg CO2eq, reaching "
                    "co2_budget_kg=%g after trial %d: the study stops",
                    self.co2_kg_total,
                    self.co2_budget_kg,
                    trial.number,
                )
            study.stop()


__all__ = [
    "CO2_KG",
    "DURATION_S",
    "ENERGY_KWH",
    "RUN_ID",
    "CO2Budget",
    "measured",
    "study_co2_kg",
    "study_experiment_id",
]
