"""The Optuna integration on real in-memory studies of tiny trials."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from helpers import rows_of

optuna = pytest.importorskip("optuna", reason="Optuna tests need the [optuna] extra")

from carbonmeter.optuna import CO2Budget, measured, study_co2_kg, study_experiment_id  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)

# 1 kW at 1 kg per kWh: a trial of t seconds emits t / 3600 kg, whatever the machine.
SETTINGS: dict[str, Any] = {
    "country_iso_code": "FRA",
    "force_cpu_power": 1000,
    "force_ram_power": 0,
    "force_carbon_intensity_g_co2e_kwh": 1000,
}


def tiny_objective(trial: optuna.Trial) -> float:
    """A quadratic with its best at x = 2, costing time in proportion to `epochs`."""
    x = trial.suggest_float("x", -10, 10)
    epochs = trial.suggest_int("epochs", 1, 4)
    time.sleep(0.01 * epochs)
    return (x - 2) ** 2


def study_rows(path: Path) -> list[dict[str, str]]:
    return [row for row in rows_of(path / "emissions.csv") if row["window"] == ""]


def test_each_trial_is_measured_and_the_study_total_is_the_rows_sum(tmp_path: Path) -> None:
    objective = measured(output_dir=str(tmp_path), **SETTINGS)(tiny_objective)
    budget = CO2Budget()
    study = optuna.create_study(study_name="quad", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=8, callbacks=[budget])

    runs = study_rows(tmp_path)
    assert len(runs) == 8
    by_run = {row["run_id"]: row for row in runs}
    for trial in study.trials:
        attrs = trial.user_attrs
        row = by_run[attrs["carbonmeter_run_id"]]
        assert attrs["co2_kg"] == pytest.approx(float(row["emissions"]))
        assert attrs["energy_kwh"] == pytest.approx(float(row["energy_consumed"]))
        assert attrs["duration_s"] == pytest.approx(float(row["duration"]))
        assert attrs["co2_kg"] > 0
    total = sum(float(row["emissions"]) for row in runs)
    assert budget.co2_kg_total == pytest.approx(total)
    assert study_co2_kg(study) == pytest.approx(total)
    assert study.user_attrs["co2_kg_total"] == pytest.approx(total)
    # One experiment: the study's, named after it, so the report groups its trials.
    assert {row["experiment_name"] for row in runs} == {"quad"}
    assert {row["experiment_id"] for row in runs} == {study_experiment_id("quad")}
    trial_rows = [row for row in rows_of(tmp_path / "emissions.csv") if row["phase"] == "trial"]
    assert [int(row["epoch"]) for row in trial_rows] == list(range(8))
    assert [float(row["metric_value"]) for row in trial_rows] == pytest.approx(
        [trial.value for trial in study.trials]
    )


def test_the_budget_stops_the_study_after_the_crossing_trial(tmp_path: Path) -> None:
    objective = measured(output_dir=str(tmp_path), **SETTINGS)(tiny_objective)
    # Every trial sleeps at least 10 ms, so emits at least 2.8e-6 kg: three trials reach it.
    budget_kg = 3 * 0.01 / 3600
    budget = CO2Budget(budget_kg)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(objective, n_trials=8, callbacks=[budget])

    totals = []
    for trial in study.trials:
        totals.append(sum(t.user_attrs["co2_kg"] for t in study.trials[: trial.number + 1]))
    assert 1 <= len(study.trials) < 8
    assert budget.stopped_after == study.trials[-1].number
    # The last trial crossed the budget; none before it did.
    assert totals[-1] >= budget_kg
    assert all(total < budget_kg for total in totals[:-1])
    assert len(study_rows(tmp_path)) == len(study.trials)


def test_a_pruned_trial_is_measured_too(tmp_path: Path) -> None:
    @measured(output_dir=str(tmp_path), **SETTINGS)
    def pruned(trial: optuna.Trial) -> float:
        time.sleep(0.01)
        raise optuna.TrialPruned()

    study = optuna.create_study()
    study.optimize(pruned, n_trials=2)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert all(t.user_attrs["co2_kg"] > 0 for t in study.trials)
    assert len(study_rows(tmp_path)) == 2


def test_kg_as_an_objective_gives_the_pareto_front_of_metric_and_carbon(tmp_path: Path) -> None:
    objective = measured(output_dir=str(tmp_path), co2_objective=True, **SETTINGS)(tiny_objective)
    study = optuna.create_study(
        directions=["minimize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=2)
    )
    study.optimize(objective, n_trials=8)
    for trial in study.trials:
        assert trial.values[1] == pytest.approx(trial.user_attrs["co2_kg"])
    assert 1 <= len(study.best_trials) <= 8
