"""Units of work: counts by hand, per-unit figures, and shared (request) windows, exact on a
fake powercap tree and under concurrent Python threads."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import pytest
from fixtures.powercap import FakePowercap
from helpers import rows_of

from carbonmeter import EmissionsTracker, InvalidValueError, TrackerStateError, report

pytestmark = pytest.mark.usefixtures("isolated")

ZONE = "intel-rapl:0"


def tracker_on(tree: FakePowercap, out: Path | None = None, **kwargs: object) -> EmissionsTracker:
    files: dict[str, object] = (
        {"output_dir": str(out), "project_name": "serve"} if out else {"save_to_file": False}
    )
    return EmissionsTracker(
        powercap_root=str(tree.root),
        country_iso_code="FRA",
        measure_power_secs=60,
        **files,
        **kwargs,
    )


def uj(kwh: float) -> int:
    return round(kwh * 3.6e12)


@pytest.fixture
def package(powercap: FakePowercap) -> FakePowercap:
    powercap.add_zone(ZONE, "package-0")
    return powercap


def test_counts_by_hand_reach_the_open_windows_the_run_and_the_csv(
    package: FakePowercap, tmp_path: Path
) -> None:
    tracker = tracker_on(package, tmp_path)
    tracker.start()
    tracker.count(samples=10)
    with tracker.epoch() as epoch:
        for _ in range(3):
            tracker.count(samples=32, tokens=512)
            package.advance(ZONE, 2_000_000)
    with tracker.window("eval", samples=5) as evaluation:
        package.advance(ZONE, 1_000_000)
    tracker.stop()
    assert epoch.data is not None and evaluation.data is not None
    assert (epoch.data.samples, epoch.data.tokens, epoch.data.requests) == (96, 1536, None)
    assert (evaluation.data.samples, evaluation.data.tokens) == (5, None)
    run = tracker.final_emissions_data
    assert run is not None and (run.samples, run.tokens) == (111, 1536)
    for data, samples in ((epoch.data, 96), (evaluation.data, 5), (run, 111)):
        assert data.joules_per_sample == pytest.approx(data.energy_consumed * 3.6e6 / samples)
        assert data.joules_per_request is None
    assert epoch.data.joules_per_token == pytest.approx(epoch.data.energy_consumed * 3.6e6 / 1536)
    assert epoch.data.co2_g_per_1k_tokens == pytest.approx(epoch.data.emissions * 1e6 / 1536)
    assert evaluation.data.joules_per_token is None
    rows = rows_of(tmp_path / "emissions.csv")
    assert [(r["window"], r["samples"], r["tokens"], r["requests"]) for r in rows] == [
        ("train-epoch-0", "96", "1536", ""),
        ("eval", "5", "", ""),
        ("", "111", "1536", ""),
    ]
    assert {r["attribution"] for r in rows} == {""}
    assert rows[-1]["unattributed_energy"] == ""


def test_nothing_counted_is_empty_never_zero(package: FakePowercap) -> None:
    tracker = tracker_on(package)
    with tracker.epoch() as epoch:
        package.advance(ZONE, 1_000_000)
    tracker.stop()
    assert epoch.data is not None
    assert (epoch.data.samples, epoch.data.tokens, epoch.data.requests) == (None, None, None)
    assert epoch.data.joules_per_sample is None and epoch.data.co2_g_per_1k_tokens is None
    assert epoch.data.as_dict()["samples"] is None


def test_bad_counts_name_the_unit_and_a_stopped_tracker_only_warns(
    package: FakePowercap, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = tracker_on(package)
    tracker.start()
    with pytest.raises(InvalidValueError, match=r"invalid tokens=-1: expected a count >= 0"):
        tracker.count(tokens=-1)
    with pytest.raises(InvalidValueError, match="samples=-2"):
        tracker.window("w", samples=-2)
    tracker.stop()
    tracker.count(samples=1)
    assert "count() on a tracker that is not running" in caplog.text
    window = tracker.window("late")
    with pytest.raises(TrackerStateError, match="count\\(\\) inside its with-block"):
        window.count(samples=1)


def test_overlapping_requests_share_each_stretch_and_idle_energy_is_unattributed(
    package: FakePowercap, tmp_path: Path
) -> None:
    tracker = tracker_on(package, tmp_path)
    tracker.start()
    package.advance(ZONE, 1_000_000)  # idle: nobody's
    with tracker.window("serve") as serving:  # an enclosing window, measured whole
        first = tracker.window("request", tokens=10, shared=True)
        first.__enter__()
        package.advance(ZONE, 2_000_000)  # first alone
        with tracker.window("request", tokens=30, shared=True) as second:
            package.advance(ZONE, 4_000_000)  # both: 2 J each
            first.__exit__(None, None, None)
            package.advance(ZONE, 6_000_000)  # second alone
            second.count(tokens=2)
        package.advance(ZONE, 8_000_000)  # idle again
    tracker.stop()
    a, b, run = first.data, second.data, tracker.final_emissions_data
    assert a is not None and b is not None and run is not None and serving.data is not None
    assert (first.name, second.name) == ("request-0", "request-1")
    assert (uj(a.cpu_energy), uj(b.cpu_energy)) == (4_000_000, 8_000_000)
    assert uj(serving.data.cpu_energy) == 20_000_000
    assert uj(run.cpu_energy) == 21_000_000
    assert (a.tokens, a.requests, b.tokens, b.requests) == (10, 1, 32, 1)
    # A request's tokens count in the run and the enclosing window, never in the other request.
    assert (serving.data.tokens, serving.data.requests, run.tokens, run.requests) == (42, 2, 42, 2)
    assert (a.attribution, b.attribution, run.attribution) == ("time_share", "time_share", None)
    # The model's RAM energy is shared the same way: the shares and the idle energy add up.
    assert run.unattributed_energy is not None
    total = a.energy_consumed + b.energy_consumed + run.unattributed_energy
    assert total == pytest.approx(run.energy_consumed, rel=1e-9)
    assert a.joules_per_token == pytest.approx(a.energy_consumed * 3.6e6 / 10)
    assert b.joules_per_request == pytest.approx(b.energy_consumed * 3.6e6)
    rows = rows_of(tmp_path / "emissions.csv")
    assert [r["window"] for r in rows] == ["request-0", "request-1", "serve", ""]
    assert float(rows[-1]["unattributed_energy"]) == pytest.approx(run.unattributed_energy)


def test_concurrent_request_threads_add_up_to_the_run(
    package: FakePowercap, tmp_path: Path
) -> None:
    tracker = tracker_on(package, tmp_path)
    tracker.start()
    stop = threading.Event()

    def power() -> None:  # the machine draws while requests come and go
        while not stop.is_set():
            package.advance(ZONE, 50_000)
            time.sleep(0.0005)

    def client(index: int, results: list[tuple[int, str | None]]) -> None:
        rng = random.Random(index)
        for turn in range(5):
            with tracker.window("request", tokens=index + 1, shared=True) as request:
                time.sleep(rng.uniform(0.0, 0.004))
                request.count(tokens=turn)
            results.append((index, request.name))

    results: list[tuple[int, str | None]] = []
    drawer = threading.Thread(target=power)
    drawer.start()
    clients = [threading.Thread(target=client, args=(i, results)) for i in range(8)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    stop.set()
    drawer.join()
    tracker.stop()

    rows = rows_of(tmp_path / "emissions.csv")
    requests = [r for r in rows if r["window"]]
    run = rows[-1]
    assert len(requests) == 40 == len({r["window"] for r in requests}) == len(results)
    assert {r["requests"] for r in requests} == {"1"} and run["requests"] == "40"
    # Client i sends i + 1 tokens, then 0..4 more over its 5 turns.
    assert int(run["tokens"]) == sum(5 * (i + 1) + 10 for i in range(8))
    assert sum(int(r["tokens"]) for r in requests) == int(run["tokens"])
    shared = sum(float(r["energy_consumed"]) for r in requests)
    idle = float(run["unattributed_energy"])
    assert shared > 0 and idle >= 0
    assert shared + idle == pytest.approx(float(run["energy_consumed"]), rel=1e-9)
    # Measured whole, 8 overlapping requests would add up to several times the run.
    assert max(float(r["energy_consumed"]) for r in requests) < float(run["energy_consumed"]) / 2


def test_the_json_report_gives_per_unit_figures_per_project_and_experiment(
    package: FakePowercap, tmp_path: Path
) -> None:
    for experiment, samples, tokens in (("a", 100, None), ("b", 50, 4000)):
        tracker = tracker_on(package, tmp_path, experiment_id=experiment)
        tracker.start()
        package.advance(ZONE, 3_000_000)
        tracker.count(samples=samples, tokens=tokens)
        tracker.stop()
    tracker = tracker_on(package, tmp_path, experiment_id="c")  # counted nothing
    tracker.start()
    package.advance(ZONE, 1_000_000)
    tracker.stop()

    data = report.to_json(report.load([tmp_path / "emissions.csv"]))
    json.dumps(data)
    (project,) = data["projects"]
    experiments = {e["experiment_id"]: e for e in project["experiments"]}
    runs = {key: e["runs"][0] for key, e in experiments.items()}
    a, b, c = (experiments[k]["totals"] for k in "abc")
    assert a["j_per_sample"] == pytest.approx(runs["a"]["energy_kwh"] * 3.6e6 / 100)
    assert a["j_per_token"] is None
    assert b["j_per_token"] == pytest.approx(runs["b"]["energy_kwh"] * 3.6e6 / 4000)
    assert b["co2_g_per_1k_tokens"] == pytest.approx(runs["b"]["co2_kg"] * 1e6 / 4000)
    assert (c["j_per_sample"], c["j_per_token"]) == (None, None)
    # The project's figure is over the runs that counted samples: a and b, not c.
    counted_j = (runs["a"]["energy_kwh"] + runs["b"]["energy_kwh"]) * 3.6e6
    assert project["totals"]["j_per_sample"] == pytest.approx(counted_j / 150)
    assert data["totals"]["j_per_token"] == pytest.approx(b["j_per_token"])
    # The overview gains the per-unit columns because something was counted, empty where not.
    lines = {line["experiment_id"]: line for line in data["overview"]}
    assert lines["b"]["j_per_token"] == pytest.approx(b["j_per_token"])
    assert (lines["c"]["j_per_sample"], lines["c"]["j_per_token"]) == (None, None)
    loaded = report.load([tmp_path / "emissions.csv"])
    table = report.text.overview_markdown(loaded)
    assert "| J/sample | J/token | g CO2eq/1k tokens |" in table.splitlines()[0] + "|"
    assert report.model.figure(b["j_per_token"]) in table
    assert "J/token" in report.html.render(loaded)
    assert "J/token" in report.text.latex(loaded)


def test_the_overview_has_no_per_unit_columns_when_nothing_was_counted(
    package: FakePowercap, tmp_path: Path
) -> None:
    tracker = tracker_on(package, tmp_path)
    tracker.start()
    package.advance(ZONE, 1_000_000)
    tracker.stop()
    loaded = report.load([tmp_path / "emissions.csv"])
    assert "J/sample" not in report.text.overview_markdown(loaded)
    assert report.to_json(loaded)["totals"]["j_per_sample"] is None


@pytest.mark.slow
def test_the_serving_example_counts_every_request_and_token(tmp_path: Path) -> None:
    pytest.importorskip("transformers", reason="the serving example needs transformers")
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "examples" / "serve_tiny_gpt2.py"
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = rows_of(tmp_path / "emissions.csv")
    requests, run = rows[:-1], rows[-1]
    assert len(requests) == 8 and {r["attribution"] for r in requests} == {"time_share"}
    # 8 prompt tokens and 16 generated per request.
    assert {r["tokens"] for r in requests} == {"24"} and run["tokens"] == "192"
    assert run["requests"] == "8"
    shared = sum(float(r["energy_consumed"]) for r in requests)
    total = shared + float(run["unattributed_energy"])
    assert total == pytest.approx(float(run["energy_consumed"]), rel=1e-9)
    j_per_token = float(run["energy_consumed"]) * 3.6e6 / 192
    assert f"{j_per_token:.4g} J/token" in result.stdout
