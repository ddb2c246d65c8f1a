"""The report's trade-off (`report/tradeoff.py`): metric against CO2 per run and per sweep, on
rows written by a real Optuna study and a hand loop."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from fixtures import plateau
from helpers import CHROMIUM_FLAGS

from carbonmeter import EmissionsTracker, report
from carbonmeter.report import tradeoff

optuna = pytest.importorskip("optuna", reason="the sweep tests need the [optuna] extra")

from carbonmeter.optuna import measured  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)

FORCED: dict[str, Any] = {
    "country_iso_code": "FRA",
    "force_cpu_power": 1000,
    "force_ram_power": 0,
    "force_carbon_intensity_g_co2e_kwh": 1000,
}


def two_objective_study(folder: Path) -> Any:
    """8 tiny trials of a study minimising a quadratic and its kg CO2eq: longer trials cost
    more, whatever their value, so the front has several runs."""

    @measured(co2_objective=True, output_dir=str(folder), **FORCED)
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -4, 4)
        time.sleep(trial.suggest_float("seconds", 0.01, 0.08))
        return (x - 1) ** 2

    study = optuna.create_study(
        study_name="quad-sweep",
        directions=["minimize", "minimize"],
        sampler=optuna.samplers.RandomSampler(seed=3),
    )
    study.optimize(objective, n_trials=8)
    return study


def test_a_two_objective_studys_pareto_trials_are_the_reports_front(tmp_path: Path) -> None:
    study = two_objective_study(tmp_path)
    data = report.load([tmp_path])
    [sweep] = tradeoff.sweeps(data.runs)
    assert sweep.label == "quad-sweep" and len(sweep.runs) == 8
    front = {curve.run.run_id for curve in sweep.front}
    assert front == {trial.user_attrs["carbonmeter_run_id"] for trial in study.best_trials}
    assert 1 <= len(front) < 8
    # The study minimises its objective: the rows say so, and the report judges it that way.
    assert {curve.upwards for curve in sweep.curves} == {False}
    total = sum(trial.user_attrs["co2_kg"] for trial in study.trials)
    assert sweep.total_co2_kg == pytest.approx(total)
    on_front = sum(trial.user_attrs["co2_kg"] for trial in study.best_trials)
    assert sweep.dominated_co2_kg == pytest.approx(total - on_front)
    best = min(study.trials, key=lambda trial: (trial.values[0], trial.values[1]))
    assert sweep.best.run.run_id == best.user_attrs["carbonmeter_run_id"]

    [line] = tradeoff.to_json(data.runs)
    assert line["total_co2_kg"] == pytest.approx(total) and set(line["front"]) == front
    sentence = tradeoff.search_sentence(data.runs)
    assert "the best run (objective" in sentence and "the whole search of 8 runs cost" in sentence
    assert sentence in report.text.paragraph(data.runs, "codecarbon")
    assert "### Trade-off: quad-sweep" in report.text.markdown(data)


def test_a_runs_curve_shows_where_it_flattened(tmp_path: Path) -> None:
    tracker = EmissionsTracker(output_dir=str(tmp_path), experiment_name="plateau", **FORCED)
    for epoch in range(8):
        with tracker.epoch(epoch, total=8) as window:
            time.sleep(0.02)
            window.record("val_accuracy", plateau.score(epoch))
    tracker.stop()
    data = report.load([tmp_path])
    [sweep] = tradeoff.sweeps(data.runs)
    [curve] = sweep.curves
    assert [point.value for point in curve.points] == [plateau.score(e) for e in range(8)]
    # 0.5 to 0.8: 95 % of the gain is first reached at the plateau's first epoch.
    assert curve.flattened.epoch == plateau.PLATEAU_EPOCH
    spent = sum(e.co2_kg for e in data.runs[0].epochs[: plateau.PLATEAU_EPOCH + 1])
    assert curve.flattened.co2_kg == pytest.approx(spent)
    assert curve.co2_after_flat_kg == pytest.approx(data.runs[0].co2_kg - spent)
    # Four of the eight epochs came after it.
    assert curve.co2_after_flat_kg > 0.3 * data.runs[0].co2_kg


def test_a_report_without_metrics_has_no_tradeoff(tmp_path: Path) -> None:
    tracker = EmissionsTracker(output_dir=str(tmp_path), **FORCED)
    with tracker.epoch():
        time.sleep(0.01)
    tracker.stop()
    data = report.load([tmp_path])
    assert tradeoff.sweeps(data.runs) == []
    assert tradeoff.html_section(data.runs) == "" and tradeoff.search_sentence(data.runs) == ""


SHOTS = Path(os.environ.get("CARBONMETER_TEST_ARTIFACTS", "target/test-artifacts"))


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("CARBONMETER_REQUIRE_CHROMIUM"),
    reason="Debian's chromium is not installed (.ci/run installs it and requires this test)",
)
def test_the_tradeoff_charts_in_headless_chromium(tmp_path: Path) -> None:
    rows = tmp_path / "rows"
    rows.mkdir()
    two_objective_study(rows)
    page = tmp_path / "report.html"
    page.write_text(report.html.render(report.load([rows])), encoding="utf-8")
    common = ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    [chart] = re.findall(r'<svg class="tradeoff pareto".*?</svg>', dom.stdout, re.DOTALL)
    # Every run drawn, the front marked and joined, the axes labelled.
    assert chart.count('class="front"') + chart.count('class="run"') == 8
    assert 'class="front"' in chart and "<polyline" in chart
    assert "CO2eq of the run" in chart and ">objective<" in chart
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / "tradeoff.png"
    shot.unlink(missing_ok=True)
    result = subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1100,2800", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.stat().st_size > 10_000
