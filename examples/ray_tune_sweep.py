"""A Ray Tune experiment of 4 trials measured in their workers, with the experiment's total on
the driver and a carbon budget. Writes emissions.csv in the working directory."""

from __future__ import annotations

import os
import time
from typing import Any

import ray
from ray import tune

from carbonmeter.ray import CO2Callback, CO2Stopper, measured, report

# Tune runs trials in other processes and folders: name this one for their rows.
HERE = os.getcwd()


@measured(metric="accuracy", country_iso_code="FRA", output_dir=HERE)
def trainable(config: dict[str, Any]) -> None:
    for epoch in range(3):
        time.sleep(0.05)  # stands for an epoch of training
        report({"accuracy": 1 - config["lr"] / (epoch + 1)})


ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
callback = CO2Callback()
tuner = tune.Tuner(
    trainable,
    param_space={"lr": tune.grid_search([0.1, 0.2, 0.3, 0.4])},
    tune_config=tune.TuneConfig(max_concurrent_trials=1),
    run_config=tune.RunConfig(
        name="lr-sweep",
        storage_path=os.path.join(HERE, "tune"),
        callbacks=[callback],
        stop=CO2Stopper(co2_budget_kg=1.0),
        verbose=0,
    ),
)
results = tuner.fit()
print(f"{len(results)} trials, {callback.co2_kg_total:.3g} kg CO2eq in all")
ray.shutdown()
