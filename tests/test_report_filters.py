"""The team view on the static page (issue 28): project and experiment selectors that filter in
the browser, clicked in headless Chromium; without the script the page is the whole report."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import Page
from test_report import measure

from carbonmeter import report
from carbonmeter.report import html as report_html

# Two projects of a team, one with two experiments: five runs.
RUNS = (("bert", "sst2"), ("bert", "sst2"), ("bert", "mnli"), ("gpt", "lm"), ("gpt", "lm"))


@pytest.fixture(scope="module")
def page_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("team")
    for project, experiment in RUNS:
        measure(folder, project_name=project, experiment_name=experiment)
    path = folder / "report.html"
    path.write_text(report_html.render(report.load([folder])), encoding="utf-8")
    return path


def test_the_bar_is_hidden_until_its_script_shows_it(page_path: Path) -> None:
    page = page_path.read_text(encoding="utf-8")
    assert '<nav id="filters" class="filters" hidden' in page
    assert page.count("<script>") == 1 and "<script src" not in page
    for project in ("bert", "gpt"):
        assert f'data-filter="project" data-value="{project}"' in page
    for experiment in ("sst2", "mnli", "lm"):
        assert f'data-filter="experiment" data-value="{experiment}"' in page


def test_one_experiment_gets_no_bar(tmp_path: Path) -> None:
    measure(tmp_path, project_name="solo", experiment_name="one")
    page = report_html.render(report.load([tmp_path]))
    assert 'id="filters"' not in page and "<script" not in page


needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("CARBONMETER_REQUIRE_CHROMIUM"),
    reason="Debian's chromium is not installed (.ci/run installs it and requires this test)",
)

# What is on screen: the projects' sections, the run rows and overview rows not hidden, the
# summary line, and which buttons are pressed.
SHOWN = """(() => {
  const visible = (el) => el.offsetParent !== null;
  return {
    sections: [...document.querySelectorAll("section.project")].filter(visible)
      .map((s) => s.dataset.project),
    runs: [...document.querySelectorAll("tr.run")].filter(visible)
      .map((r) => `${r.dataset.project}/${r.dataset.experiment}`),
    overview: [...document.querySelectorAll("table.overview tr[data-project]")].filter(visible)
      .map((r) => `${r.dataset.project}/${r.dataset.experiment}`),
    pressed: [...document.querySelectorAll('#filters button[aria-pressed="true"]')]
      .map((b) => b.textContent),
    experiments: [...document.querySelectorAll('#filters button[data-filter="experiment"]')]
      .filter(visible).map((b) => b.textContent),
    summary: document.getElementById("selection").textContent,
    bar: visible(document.getElementById("filters")),
    hash: location.hash,
  };
})()"""


@pytest.mark.slow
@needs_chromium
def test_selectors_filter_the_page_when_clicked(page_path: Path, tmp_path: Path) -> None:
    data = report.load([page_path.parent])
    by = {key: [r for r in data.runs if (r.project, r.experiment_name) == key] for key in set(RUNS)}
    with Page(tmp_path / "profile", "--proxy-server=http://127.0.0.1:9") as page:
        page.open(page_path.as_uri())
        start = page.evaluate(SHOWN)
        assert start["bar"] and start["pressed"] == ["all projects", "all experiments"]
        assert start["sections"] == ["bert", "gpt"] and len(start["runs"]) == 5
        assert start["experiments"] == []  # two projects: pick one first
        assert start["summary"].startswith("Showing everything: 5 runs")

        page.click('#filters button[data-filter="project"][data-value="gpt"]')
        gpt = page.evaluate(SHOWN)
        assert gpt["sections"] == ["gpt"]
        assert gpt["runs"] == ["gpt/lm", "gpt/lm"] and gpt["overview"] == ["gpt/lm"]
        assert gpt["pressed"] == ["gpt", "all experiments"]
        assert gpt["experiments"] == ["all experiments", "lm"]
        co2_g = sum(r.co2_kg for r in by["gpt", "lm"]) * 1000
        assert gpt["summary"].startswith("Showing gpt: 2 runs")
        shown_mg = float(gpt["summary"].split(", ")[1].split(" ")[0])
        unit = gpt["summary"].split(", ")[1].split(" ")[1]
        assert shown_mg * {"mg": 1e-3, "g": 1.0, "kg": 1e3}[unit] == pytest.approx(co2_g, rel=5e-3)

        page.click('#filters button[data-filter="project"][data-value="bert"]')
        page.click('#filters button[data-filter="experiment"][data-value="mnli"]')
        mnli = page.evaluate(SHOWN)
        assert mnli["sections"] == ["bert"]
        assert mnli["runs"] == ["bert/mnli"] and mnli["overview"] == ["bert/mnli"]
        assert mnli["pressed"] == ["bert", "mnli"]
        assert mnli["summary"].startswith("Showing bert / mnli: 1 run,")
        assert mnli["hash"] == "#project=bert&experiment=mnli"

        # A reload (as a served page refreshing itself) keeps the choice.
        page.reload()
        assert page.evaluate(SHOWN)["runs"] == ["bert/mnli"]

        page.click('#filters button[data-filter="project"][data-value=""]')
        back = page.evaluate(SHOWN)
        assert back["sections"] == ["bert", "gpt"] and len(back["runs"]) == 5
        assert page.problems == []


@pytest.mark.slow
@needs_chromium
def test_without_script_the_page_is_the_whole_report(page_path: Path, tmp_path: Path) -> None:
    with Page(
        tmp_path / "profile",
        "--proxy-server=http://127.0.0.1:9",
        "--blink-settings=scriptEnabled=false",
    ) as page:
        page.open(page_path.as_uri())
        # Runtime.evaluate still runs with page scripts off: it reads what the reader sees.
        seen = page.evaluate(
            SHOWN.replace('document.getElementById("selection").textContent', '""')
        )
    assert not seen["bar"]
    assert seen["sections"] == ["bert", "gpt"] and len(seen["runs"]) == 5
