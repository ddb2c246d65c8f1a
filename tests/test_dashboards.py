"""The Grafana dashboard (dashboards/): the committed files are what dashboards/build.py
writes, and every panel's query, read from the JSON, returns the series its legend names from a
real Prometheus scraping a real Pushgateway that a run and a two-rank job pushed to. (No Grafana
server is installed here: the queries are what can be proven.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures import prometheus as prom
from fixtures.nvml import FakeNvml, devices
from helpers import child_env
from test_export import Stack, settings, stack, train

from carbonmeter import EmissionsTracker

__all__ = ["stack"]  # the Prometheus + Pushgateway fixture of test_export, shared

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "dashboards" / "carbonmeter.json"
RANK_SCRIPT = Path(__file__).resolve().parent / "scripts" / "dashboard_rank.py"
PROJECT = "dashboards"


def load_build() -> object:
    pytest.importorskip("grafana_foundation_sdk", reason="pip install 'carbonmeter[dashboards]'")
    sys.path.insert(0, str(REPO / "dashboards"))
    try:
        import build  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(REPO / "dashboards"))
    return build


def test_committed_files_are_what_build_py_writes() -> None:
    build = load_build()
    for path, text in build.outputs().items():  # type: ignore[attr-defined]
        assert path.read_text(encoding="utf-8") == text, f"{path}: run python dashboards/build.py"


def targets() -> list[tuple[str, dict[str, object]]]:
    """(panel title, target) of every query in the committed JSON."""
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return [
        (panel["title"], target)
        for panel in panels
        if panel["type"] != "row"
        for target in panel.get("targets", [])
    ]


def labels_needed(target: dict[str, object]) -> set[str]:
    """The labels a target's legend (`{{label}}`) or, for a table, its `by (...)` shows."""
    legend = str(target.get("legendFormat", ""))
    named = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
    if target.get("format") == "table":
        grouped = re.search(r"by \(([^)]*)\)", str(target["expr"]))
        assert grouped, target
        named |= {label.strip() for label in grouped.group(1).split(",")}
    return named


def test_every_panel_names_its_labels_and_filters_by_the_variables() -> None:
    found = targets()
    assert len(found) >= 12
    for title, target in found:
        expr = str(target["expr"])
        assert "$project" in expr and "$experiment" in expr, title
        assert labels_needed(target), title


def push_job(stack: Stack, folder: Path) -> None:
    """Two ranks, each its own host, push to the gateway as a job (`job_id` dash-job)."""
    port = prom.free_port()
    config = {
        "output_dir": str(folder),
        "gateway": f"127.0.0.1:{stack.gateway.port}",
        "project": PROJECT,
    }
    ranks = []
    for rank in range(2):
        env = child_env(
            folder,
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            RANK=str(rank),
            LOCAL_RANK="0",
            WORLD_SIZE="2",
            LOCAL_WORLD_SIZE="1",
            TORCHELASTIC_RUN_ID="dash-job",
            OMP_NUM_THREADS="1",
        )
        ranks.append(
            subprocess.Popen(
                [sys.executable, str(RANK_SCRIPT), json.dumps(config)],
                cwd=folder,
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for child in ranks:
        _, stderr = child.communicate(timeout=180)
        assert child.returncode == 0, stderr[-4000:]


@pytest.mark.slow
def test_every_panel_query_returns_the_series_its_legend_names(
    stack: Stack, isolated: Path, fake_nvml: FakeNvml
) -> None:
    # One run with a GPU (its `device`), phases; then a job of two hosts (`host`, `rank`, `job_id`).
    fake_nvml.set(devices(1, p="power 0 200000"))
    train(
        EmissionsTracker(
            **settings(
                isolated,
                project_name=PROJECT,
                nvml_library=str(fake_nvml.library),
                save_to_prometheus=True,
                prometheus_url=f"127.0.0.1:{stack.gateway.port}",
            )
        )
    )
    push_job(stack, isolated)
    checked = []
    for title, target in targets():
        promql = str(target["expr"]).replace("$project", PROJECT).replace("$experiment", ".*")
        needed = labels_needed(target)
        deadline = time.monotonic() + 20
        series = prom.query(stack.prometheus, promql)
        while not series and time.monotonic() < deadline:
            time.sleep(0.25)
            series = prom.query(stack.prometheus, promql)
        assert series, f"{title}: no series for {promql}"
        for one in series:
            labels = one["metric"]
            assert isinstance(labels, dict)
            missing = {label for label in needed if not labels.get(label)}
            assert not missing, f"{title}: {labels} lacks {missing}"
        checked.append((title, len(series), sorted(needed)))
    by_title = {title: count for title, count, _ in checked}
    assert by_title["Energy by host"] == 2, checked
    assert by_title["Energy by rank"] == 2, checked
    assert by_title["GPU power by device"] >= 1, checked
