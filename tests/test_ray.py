"""The Ray Tune integration: 4 tiny trials on the local backend (slow: Ray starts a cluster)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from helpers import rows_of

ray = pytest.importorskip("ray", reason="Ray Tune tests need the [ray] extra")
tune = pytest.importorskip("ray.tune")

from carbonmeter.ray import CO2Callback, CO2Stopper, measured, report  # noqa: E402

# 1 kW at 1 kg per kWh: a report of t seconds emits t / 3600 kg, whatever the machine.
SETTINGS: dict[str, Any] = {
    "country_iso_code": "FRA",
    "force_cpu_power": 1000,
    "force_ram_power": 0,
    "force_carbon_intensity_g_co2e_kwh": 1000,
}


@pytest.fixture(scope="module")
def local_ray() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def run_tuner(tmp_path: Path, stopper: CO2Stopper | None, iterations: int) -> Any:
    out = tmp_path / "rows"
    out.mkdir()

    @measured(metric="score", output_dir=str(out), **SETTINGS)
    def trainable(config: dict[str, Any]) -> None:
        for step in range(iterations):
            time.sleep(0.05)
            report({"score": config["lr"] * (step + 1)})

    callback = CO2Callback()
    tuner = tune.Tuner(
        trainable,
        param_space={"lr": tune.grid_search([0.1, 0.2, 0.3, 0.4])},
        tune_config=tune.TuneConfig(max_concurrent_trials=1),
        run_config=tune.RunConfig(
            name="sweep",
            storage_path=str(tmp_path / "tune"),
            callbacks=[callback],
            stop=stopper,
            verbose=0,
        ),
    )
    return tuner.fit(), callback


@pytest.mark.slow
def test_trials_report_their_carbon_and_the_total_is_the_rows_sum(
    local_ray: Any, tmp_path: Path
) -> None:
    results, callback = run_tuner(tmp_path, None, iterations=3)
    assert len(results) == 4
    rows = rows_of(tmp_path / "rows" / "emissions.csv")
    runs = [row for row in rows if row["window"] == ""]
    assert len(runs) == 4
    assert {row["experiment_name"] for row in runs} == {"sweep"}
    # Three reports and the stretch after the last one, per trial.
    epochs = [row for row in rows if row["phase"] == "trial"]
    assert len(epochs) == 4 * 4
    assert sum(1 for row in epochs if row["metric_name"] == "score") == 4 * 3
    reported = sum(float(row["emissions"]) for row in epochs if row["metric_name"])
    assert callback.co2_kg_total == pytest.approx(reported)
    for result in results:
        assert result.metrics["co2_kg_total"] > 0


@pytest.mark.slow
# Tune leaves a trial's result.json open when stop_all() ends the experiment (Ray's own file).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_stopper_ends_the_experiment_at_its_budget(local_ray: Any, tmp_path: Path) -> None:
    # A trial of 5 reports of at least 50 ms emits at least 7e-5 kg: the budget ends the
    # experiment within its first two trials.
    budget_kg = 1.0e-4
    stopper = CO2Stopper(budget_kg)
    _results, callback = run_tuner(tmp_path, stopper, iterations=5)
    assert stopper.co2_kg_total >= budget_kg
    runs = [row for row in rows_of(tmp_path / "rows" / "emissions.csv") if row["window"] == ""]
    assert len(runs) < 4
    assert callback.co2_kg_total == pytest.approx(stopper.co2_kg_total)
