"""An Optuna study measured trial by trial, stopped at a carbon budget, then a two-objective study
of its metric against its kg CO2eq. Writes emissions.csv; `carbonmeter report .` shows the
trade-off."""

from __future__ import annotations

import time

import optuna

from carbonmeter.optuna import CO2Budget, measured

optuna.logging.set_verbosity(optuna.logging.WARNING)


def train(lr: float, epochs: int) -> float:
    """Stands for a training: a validation loss, and time spent in proportion to `epochs`."""
    time.sleep(0.02 * epochs)
    return (lr - 0.01) ** 2 * 1e4 + 1.0 / epochs


@measured(country_iso_code="FRA", metric_name="val_loss")
def objective(trial: optuna.Trial) -> float:
    return train(trial.suggest_float("lr", 1e-4, 1e-1, log=True), trial.suggest_int("epochs", 1, 5))


budget = CO2Budget(co2_budget_kg=1e-7)  # a laptop reaches it within a few trials
study = optuna.create_study(study_name="lr-sweep", direction="minimize")
study.optimize(objective, n_trials=20, callbacks=[budget])
print(f"{len(study.trials)} trials, {budget.co2_kg_total:.3g} kg CO2eq in all")
for trial in study.trials[:3]:
    print(trial.number, trial.value, trial.user_attrs["co2_kg"], trial.user_attrs["energy_kwh"])

# The metric against carbon: best_trials is the Pareto front the report marks.
both = optuna.create_study(study_name="lr-vs-co2", directions=["minimize", "minimize"])
both.optimize(
    measured(co2_objective=True, country_iso_code="FRA")(objective.__wrapped__), n_trials=8
)
print("Pareto front:", [(t.number, t.values) for t in both.best_trials])
