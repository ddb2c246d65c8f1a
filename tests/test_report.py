"""`carbonmeter report`: the overview table in every format, what if, diff, equivalents at every
scale, escaping, and the page in headless Chromium for 1 and for 25 runs."""

from __future__ import annotations

import csv
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CHROMIUM_FLAGS, rows_of

from carbonmeter import EmissionsTracker, report
from carbonmeter._format import co2, litres
from carbonmeter.intensity import lookup
from carbonmeter.report import html as report_html
from carbonmeter.report.model import equivalents, extreme_countries
from carbonmeter.report.text import markdown_escape

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "carbonmeter.cli"]
ARTIFACTS = Path(os.environ.get("CARBONMETER_TEST_ARTIFACTS", REPO / "target" / "test-artifacts"))


def carbonmeter(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, check=False)


def measure(folder: Path, epochs: int = 0, work: int = 20_000, **kwargs: object) -> None:
    """One real run (forced powers, so the figures do not depend on this machine's load)."""
    if not {"country_iso_code", "region"} & set(kwargs):
        kwargs["country_iso_code"] = "FRA"
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    tracker = EmissionsTracker(
        output_dir=str(folder),
        measure_power_secs=0.05,
        force_cpu_power=40.0,
        force_ram_power=5.0,
        **kwargs,  # type: ignore[arg-type]
    )
    tracker.start()
    for _ in range(epochs):
        with tracker.epoch():
            sum(i * i for i in range(work))
    sum(i * i for i in range(work))
    tracker.stop()


def spread_over_days(path: Path, days: int) -> None:
    """Moves each run's rows to its own time over `days` days (runs made in one second would
    stack on one date), keeping every measured figure as written."""
    rows = rows_of(path)
    run_ids = list(dict.fromkeys(r["run_id"] for r in rows))
    start = datetime.datetime(2026, 11, 2, 9, 0)
    step = datetime.timedelta(days=days) / max(len(run_ids), 1)
    for row in rows:
        when = start + step * run_ids.index(row["run_id"])
        row["timestamp"] = when.strftime("%Y-%m-%dT%H:%M:%S")
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def three_experiments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("three")
    for name, count in (("text-classification", 2), ("summarization", 1), ("translation", 3)):
        for _ in range(count):
            measure(folder, epochs=2, project_name="tiny-models", experiment_name=name)
    return folder / "emissions.csv"


def last_run_rows(path: Path) -> dict[str, dict[str, str]]:
    last: dict[str, dict[str, str]] = {}
    for row in rows_of(path):
        if not row["window"]:
            last[row["run_id"]] = row
    return last


# --- the overview ------------------------------------------------------------------------------


def test_experiment_name_is_a_column(three_experiments: Path) -> None:
    names = {r["experiment_name"] for r in rows_of(three_experiments)}
    assert names == {"text-classification", "summarization", "translation"}


def test_overview_has_one_line_per_experiment_with_its_sums(three_experiments: Path) -> None:
    lines = report.overview(report.load([three_experiments]))
    by_name = {line["experiment"]: line for line in lines}
    assert list(by_name) == ["text-classification", "summarization", "translation"]
    runs = last_run_rows(three_experiments).values()
    for name, line in by_name.items():
        mine = [r for r in runs if r["experiment_name"] == name]
        assert line["project"] == "tiny-models"
        assert (
            line["runs"] == len(mine) == {"text-classification": 2, "summarization": 1}.get(name, 3)
        )
        assert line["duration_min"] == pytest.approx(sum(float(r["duration"]) for r in mine) / 60)
        assert line["energy_kwh"] == pytest.approx(sum(float(r["energy_consumed"]) for r in mine))
        assert line["co2_g"] == pytest.approx(sum(float(r["emissions"]) for r in mine) * 1000)


def measure_evaluation(folder: Path, experiment_id: str) -> None:
    """A run with one `evaluate` epoch row and no training, as an evaluate after fit writes."""
    tracker = EmissionsTracker(
        output_dir=str(folder),
        experiment_id=experiment_id,
        country_iso_code="FRA",
        force_cpu_power=40.0,
        force_ram_power=5.0,
    )
    tracker.start()
    with tracker.epoch(None, "evaluate"):
        sum(i * i for i in range(20_000))
    tracker.stop()


def test_an_evaluation_only_run_is_a_phase_of_its_experiments_training(tmp_path: Path) -> None:
    trained = "5b0fa12a-3dd7-45bb-9766-000000000001"
    evaluated = "5b0fa12a-3dd7-45bb-9766-000000000002"
    measure(tmp_path, epochs=1, experiment_id=trained)
    measure_evaluation(tmp_path, trained)
    measure_evaluation(tmp_path, trained)
    measure_evaluation(tmp_path, evaluated)
    measure_evaluation(tmp_path, evaluated)
    loaded = report.load([tmp_path])
    lines = {line["experiment_id"]: line for line in report.overview(loaded)}
    run_rows = [row for row in rows_of(tmp_path / "emissions.csv") if row["window"] == ""]
    # Training plus two evaluations: one run; evaluations alone: each is a run (issue 32).
    assert (lines[trained]["runs"], lines[evaluated]["runs"]) == (1, 2)
    for experiment_id, line in lines.items():
        mine = [r for r in run_rows if r["experiment_id"] == experiment_id]
        assert line["energy_kwh"] == pytest.approx(sum(float(r["energy_consumed"]) for r in mine))
    assert report.totals(loaded.runs)["runs"] == 3
    # The page's runs table heads each experiment as the overview counts it.
    page = report_html.render(loaded)
    assert ": 1 run and 2 evaluations, " in page
    assert ": 2 runs, " in page


def test_overview_comes_first_in_every_format(three_experiments: Path) -> None:
    data = json.loads(carbonmeter("report", str(three_experiments), "--format", "json").stdout)
    assert next(iter(data)) == "overview"
    assert [line["experiment"] for line in data["overview"]] == [
        "text-classification",
        "summarization",
        "translation",
    ]

    md = carbonmeter("report", str(three_experiments), "--format", "markdown").stdout
    table = md.split("\n\n")[1].splitlines()
    assert table[0] == (
        "| Project | Experiment | Runs | Duration (min) | Energy (kWh) | CO2eq (g) "
        "| CO2eq band (g) |"
    )
    assert table[1] == "|---|---|---:|---:|---:|---:|---:|"
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[:3] == ["tiny-models", "text-classification", "2"]
    assert float(cells[5]) == pytest.approx(data["overview"][0]["co2_g"], rel=5e-3)
    # The error band beside it, holding the figure.
    low, high = (float(x) for x in cells[6].split("-"))
    first = data["overview"][0]
    assert first["co2_low_g"] <= first["co2_g"] <= first["co2_high_g"]
    assert low == pytest.approx(first["co2_low_g"], rel=5e-3)
    assert high == pytest.approx(first["co2_high_g"], rel=5e-3)
    assert "e-" not in table[2]  # positional figures, as in a paper

    latex = carbonmeter("report", str(three_experiments), "--format", "latex").stdout
    assert latex.startswith("\\begin{table}")
    assert (
        latex.index("Duration (min)")
        < latex.index("text-classification")
        < latex.index("reported here")
    )

    out = three_experiments.parent / "report.html"
    assert carbonmeter("report", str(three_experiments), "-o", str(out)).returncode == 0
    page = out.read_text(encoding="utf-8")
    assert page.index('class="overview"') < page.index('class="cards"')
    assert page.index("Energy (kWh)") < page.index("CO2eq emitted")


# --- what if ----------------------------------------------------------------------------------


def test_what_if_is_energy_times_each_grids_intensity(three_experiments: Path) -> None:
    zones = ["FRA", "USA", "SWE", "gcp:europe-west1", "SPNO", "US-CA", "World"]
    result = carbonmeter(
        "report", str(three_experiments), "--format", "json", "--compare", ",".join(zones)
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    energy = sum(float(r["energy_consumed"]) for r in last_run_rows(three_experiments).values())
    assert [w["zone"] for w in data["what_if"]] == zones
    for line in data["what_if"]:
        assert set(line) == {"zone", "g_per_kwh", "emissions_kg", "source", "year"}
        zone = line["zone"]
        if ":" in zone:
            provider, region = zone.split(":")
            grid = lookup(cloud_provider=provider, cloud_region=region)
        elif zone == "World":
            grid = lookup()
        elif len(zone) == 3:
            grid = lookup(country=zone)
        else:
            grid = lookup(region=zone)
        assert line["g_per_kwh"] == grid.g_per_kwh
        assert (line["source"], line["year"]) == (grid.source, grid.year)
        assert line["emissions_kg"] == pytest.approx(energy * grid.g_per_kwh / 1000, rel=1e-12)
    spno = next(w for w in data["what_if"] if w["zone"] == "SPNO")
    assert spno["g_per_kwh"] == 393.6 and spno["year"] == 2023


def test_what_if_by_default_the_grid_used_the_extremes_and_the_world(
    three_experiments: Path,
) -> None:
    data = report.to_json(report.load([three_experiments]))
    zones = [w["zone"] for w in data["what_if"]]
    cleanest, dirtiest = extreme_countries()
    assert zones[0] == "FRA"  # the grid the runs used
    assert {cleanest, dirtiest, "World"} <= set(zones)
    assert 5 <= len(zones) <= 10
    figures = {w["zone"]: w["g_per_kwh"] for w in data["what_if"]}
    assert figures[cleanest] == min(figures.values())
    assert figures[dirtiest] == max(figures.values())
    page = report_html.render(report.load([three_experiments]))
    assert "What if it ran elsewhere" in page
    assert page.count("<rect") >= len(zones)


def test_a_bad_compare_zone_is_one_line(three_experiments: Path) -> None:
    result = carbonmeter("report", str(three_experiments), "--compare", "FRA,Atlantis")
    assert result.returncode == 2
    assert "Atlantis" in result.stderr and "Traceback" not in result.stderr


# --- diff -------------------------------------------------------------------------------------


def test_diff_by_experiment_name_and_by_id(three_experiments: Path) -> None:
    runs = last_run_rows(three_experiments)
    summarization = next(r for r in runs.values() if r["experiment_name"] == "summarization")
    translation = [r for r in runs.values() if r["experiment_name"] == "translation"][-1]
    result = carbonmeter(
        "report", str(three_experiments), "--format", "json", "--diff", "summarization",
        translation["run_id"][:8],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["a"]["run_id"], data["b"]["run_id"]) == (
        summarization["run_id"],
        translation["run_id"],
    )
    figures = {f["figure"]: f for f in data["figures"]}
    assert figures["co2_kg"]["a"] == float(summarization["emissions"])
    assert figures["co2_kg"]["ratio"] == pytest.approx(
        float(translation["emissions"]) / float(summarization["emissions"])
    )
    assert figures["gpu_kwh"]["ratio"] is None  # no GPU in either: no ratio, not infinity
    assert len(data["epochs"]["a"]) == len(data["epochs"]["b"]) == 2
    md = carbonmeter(
        "report", str(three_experiments), "--format", "markdown", "--diff", "summarization",
        "translation",
    )  # fmt: skip
    assert "| CO2eq (kg) |" in md.stdout and "B / A" in md.stdout
    out = three_experiments.parent / "diff.html"
    page = carbonmeter(
        "report", str(three_experiments), "--format", "html", "-o", str(out), "--diff",
        "summarization", "translation",
    )  # fmt: skip
    assert page.returncode == 0, page.stderr
    assert out.read_text(encoding="utf-8").count("<svg") == 1  # both runs on one scale
    bad = carbonmeter("report", str(three_experiments), "--diff", "summarization", "nope")
    assert bad.returncode == 2 and "nope" in bad.stderr and "translation" in bad.stderr


# --- words and numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("co2_kg", "energy_kwh", "expected"),
    [
        (4e-5, 1e-4, {"car_km": "cm", "tv_hours": "s", "smartphone_charges": "% of a full charge"}),
        (0.004, 0.01, {"car_km": "m", "tv_hours": "min", "household_days": "s"}),
        (2.0, 5.0, {"car_km": "km", "tv_hours": "h", "household_days": "h"}),
        (400.0, 1000.0, {"car_km": "km", "tv_hours": "days", "household_days": "days"}),
    ],
)
def test_equivalents_read_in_a_unit_that_fits(
    co2_kg: float, energy_kwh: float, expected: dict[str, str]
) -> None:
    factors = {e.key: e for e in equivalents()}
    assert set(factors) >= {"car_km", "tv_hours", "household_days", "smartphone_charges"}
    for key, unit in expected.items():
        text = factors[key].amount(co2_kg, energy_kwh)
        number, _, got = text.partition(" ")
        assert got == unit, text
        assert "e" not in number, text
    assert factors["tv_hours"].source and factors["tv_hours"].year == "2020"


def test_one_run_with_no_location_reads_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "UTC")  # no country from the time zone: the world average
    measure(tmp_path, project_name="solo", country_iso_code=None, region=None)
    rows = rows_of(tmp_path / "emissions.csv")
    assert rows[-1]["location_source"] == "none"
    data = report.load([tmp_path])
    md = report.text.markdown(data)
    page = report_html.render(data)
    latex = report.text.latex(data)
    for text in (md, page, latex):
        assert "unknown" not in text
        assert "1 runs" not in text
    assert "1 run," in md and "at an unspecified location, world-average intensity" in md


def test_json_is_strict_and_an_unmeasured_gpu_is_null_not_nan(tmp_path: Path) -> None:
    """A run whose GPU reported neither energy nor power writes `NaN` to the CSV; the JSON report
    must still parse as strict JSON (jq, JavaScript), with that figure `null`, never 0."""
    measure(tmp_path)
    path = tmp_path / "emissions.csv"
    rows = rows_of(path)
    for row in rows:
        row.update(gpu_energy="NaN", gpu_power="NaN", gpu_method="unmeasured", gpu_count="1")
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = carbonmeter("report", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr

    def refuse(constant: str) -> float:
        raise AssertionError(f"{constant} in the JSON report")

    data = json.loads(result.stdout, parse_constant=refuse)
    (run,) = data["projects"][0]["experiments"][0]["runs"]
    assert run["gpu_kwh"] is None and data["totals"]["gpu_kwh"] is None
    assert run["energy_kwh"] == pytest.approx(float(rows[-1]["energy_consumed"]))


def test_markdown_escapes_project_and_experiment_names(tmp_path: Path) -> None:
    hostile = "a|b *bold* _x_ <img src=x> [link](http://e) `code` # not a heading"
    measure(tmp_path, project_name=hostile, experiment_name="exp|one")
    md = report.text.markdown(report.load([tmp_path]))
    row = md.splitlines()[4]
    cells = re.split(r"(?<!\\)\|", row.strip().strip("|"))
    assert len(cells) == 7, row  # no cell split by a | in a name
    assert markdown_escape(hostile) in row
    assert not re.search(r"(?<!\\)<img", md) and "\\<img" in md
    assert "\\*bold\\*" in md and "exp\\|one" in md
    assert "\n## " + markdown_escape(hostile) in md
    assert markdown_escape("# title").startswith("\\#")
    assert markdown_escape("two\nlines") == "two lines"


def unescaped_cells(line: str) -> list[str]:
    """The cells of a Markdown table line, split at every `|` not escaped."""
    return re.split(r"(?<!\\)\|", line.strip().strip("|"))


def test_markdown_escapes_phase_run_id_and_timestamp(tmp_path: Path) -> None:
    for name in ("a", "b"):
        measure(tmp_path, epochs=1, project_name="p", experiment_name=name)
    path = tmp_path / "emissions.csv"
    rows = rows_of(path)
    hostile = "val|<b>*x*</b>"
    for row in rows:
        # A file edited by hand, or written by another tool: any text may be in any cell.
        row["run_id"] = "|<i>_" + row["run_id"]
        row["timestamp"] = "2026|" + row["timestamp"]
        if row["window"]:
            row["phase"] = hostile
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    data = report.load([tmp_path])
    md = report.text.markdown(data)
    diff_md = report.text.diff_markdown(report.diff(data, "a", "b"))
    # Main's build: the phase and the run id were written raw, so `|` split their cells and
    # `<b>` / `<i>` reached the page as tags.
    for text in (md, diff_md):
        assert not re.search(r"(?<!\\)<[bi]>", text), text
    # An unreadable time: no start is made up ("?"), the end is the cell as written, escaped.
    runs_table = [line for line in md.splitlines() if line.startswith("| ? | 2026\\|")]
    assert len(runs_table) == 2 and all(len(unescaped_cells(r)) == 9 for r in runs_table)
    epoch_lines = [line for line in md.splitlines() if line.startswith("| val")]
    assert len(epoch_lines) == 2 and all(len(unescaped_cells(r)) == 4 for r in epoch_lines)
    assert markdown_escape(hostile) in epoch_lines[0]
    diff_lines = [line for line in diff_md.splitlines() if line.startswith("| val")]
    assert len(diff_lines) == 1 and len(unescaped_cells(diff_lines[0])) == 5


def test_project_colours_stay_distinct_beyond_seven() -> None:
    colours = [report_html.project_colour(i) for i in range(24)]
    assert len(set(colours)) == 24


# --- the report at scale (issue 33) ---------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[str], list[str]]:
    """The header, an epoch row and a run row of one real run, to copy into many runs."""
    folder = tmp_path_factory.mktemp("template")
    measure(folder, epochs=1, project_name="team", experiment_name="base")
    with (folder / "emissions.csv").open(encoding="utf-8", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    window = header.index("window")
    return header, next(r for r in rows if r[window]), next(r for r in rows if not r[window])


def write_copies(
    path: Path,
    template: tuple[list[str], list[str], list[str]],
    runs: list[dict[str, str]],
    phases: dict[str, int],
) -> None:
    """One run per item of `runs` (its cells over the template's run row, and its names over
    its epoch rows'), each with `phases[phase]` epoch rows of each phase; energy and CO2 vary
    by epoch."""
    header, epoch_row, run_row = template
    at = {name: i for i, name in enumerate(header)}
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for cells in runs:
            for phase, count in phases.items():
                for epoch in range(count):
                    row = list(epoch_row)
                    for name, value in cells.items():
                        if name not in ("timestamp", "duration", "energy_consumed", "emissions"):
                            row[at[name]] = value
                    row[at["phase"]] = phase
                    row[at["epoch"]] = str(epoch)
                    row[at["window"]] = f"{phase}-epoch-{epoch}"
                    row[at["energy_consumed"]] = repr(1e-6 * (1 + epoch % 7))
                    row[at["emissions"]] = repr(5e-8 * (1 + epoch % 7))
                    writer.writerow(row)
            row = list(run_row)
            for name, value in cells.items():
                row[at[name]] = value
            writer.writerow(row)


def test_past_the_threshold_epochs_are_summarised_not_listed(
    tmp_path: Path, template: tuple[list[str], list[str], list[str]]
) -> None:
    runs = [{"run_id": f"{n:08d}-0000-0000-0000-000000000000"} for n in range(5)]
    path = tmp_path / "emissions.csv"
    write_copies(path, template, runs, {"train": 500, "validation": 100})
    data = report.load([path])
    assert sum(len(r.series) for r in data.runs) == 3000 > report.model.EPOCH_DETAIL
    page = report_html.render(data)
    # Main's build: a table row and a bar per epoch, 3,000 of each (0.87 MB for 3,000 epochs,
    # 268 MB for a million). Now a line per run and phase, and curves of 60 steps at most.
    assert page.count("<tr>") < 60, page.count("<tr>")
    assert len(page.encode()) < 300_000, len(page.encode())
    assert "3,000" not in page and "500 epochs and 100 validations" in page
    run = report.to_json(data)["projects"][0]["experiments"][0]["runs"][0]
    assert run["epochs"] == []
    train = run["epoch_summary"]["train"]
    assert train["epochs"] == 500
    assert train["energy_kwh"] == pytest.approx(sum(1e-6 * (1 + e % 7) for e in range(500)))
    assert (train["co2_min_kg"], train["co2_max_kg"]) == (5e-8, 5e-8 * 7)
    markdown = report.text.markdown(data)
    assert len(markdown.splitlines()) < 100


def test_epochs_are_held_as_numbers_not_objects(
    tmp_path: Path, template: tuple[list[str], list[str], list[str]]
) -> None:
    import tracemalloc

    runs = [{"run_id": f"{n:08d}-0000-0000-0000-000000000000"} for n in range(10)]
    path = tmp_path / "emissions.csv"
    write_copies(path, template, runs, {"train": 2000})
    tracemalloc.start()
    try:
        data = report.load([path])
        peak_b = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(data.runs) == 10 and len(data.runs[0].series) == 2000
    # Main's build: 20,000 Epoch objects, 7.5 MB at the peak; now 0.8 MB, arrays of numbers.
    assert peak_b < 3_000_000, peak_b


def test_the_quick_cut_reads_every_cell_as_csv_does(
    tmp_path: Path, template: tuple[list[str], list[str], list[str]]
) -> None:
    # Names that need quoting: a comma, quotes, a line break, a lone quote, a formula guard.
    names = ["a,b", 'say "hi"', "two\nlines", '"', "plain", "'=1+2", ""]
    runs = [
        {"run_id": f"eeeeeeee-000{n}", "project_name": name, "experiment_name": f"x,{name}"}
        for n, name in enumerate(names)
    ]
    path = tmp_path / "emissions.csv"
    write_copies(path, template, runs, {"train": 3})
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # The phase of one epoch row quoted too: two quoted cells on one line.
    rows[1]["phase"] = "val,idation"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    data = report.load([path])
    assert sorted(r.project for r in data.runs) == sorted(
        [n.removeprefix("'") if n.startswith("'=") else n for n in names[:-1]] + ["(no project)"]
    )
    by_id = {r.run_id: r for r in data.runs}
    for row in rows:
        if row["window"]:
            (epoch,) = [
                e
                for e in by_id[row["run_id"]].epochs
                if (e.phase, e.epoch) == (row["phase"], int(row["epoch"]))
            ]
            assert epoch.energy_kwh == float(row["energy_consumed"])
            assert epoch.co2_kg == float(row["emissions"])
    assert not data.warnings


def test_a_repeated_epoch_row_replaces_the_earlier() -> None:
    series = report.model.EpochSeries()
    for epoch in (0, 1, 2):
        series.add("train", epoch, 1.0, 1.0, 1.0)
    series.add("validation", 0, 1.0, 1.0, 1.0)
    series.add("train", 1, 2.0, 5.0, 7.0)  # the same epoch again (a copied file)
    assert series.counts() == {"train": 3, "validation": 1}
    assert [e.co2_kg for e in series.epochs() if e.phase == "train"] == [1.0, 7.0, 1.0]


def test_skip_warnings_go_to_stderr_and_never_into_the_output(
    tmp_path: Path, template: tuple[list[str], list[str], list[str]]
) -> None:
    path = tmp_path / "emissions.csv"
    write_copies(path, template, [{"run_id": "aaaaaaaa-0000"}], {"train": 2})
    with path.open("a", encoding="utf-8") as handle:
        handle.write("a,row,with,too,few,fields\n")
    data = report.load([path])
    (warning,) = data.warnings
    assert "skipped 1 row" in warning
    for text in (
        json.dumps(report.to_json(data)),
        report.text.markdown(data),
        report.text.latex(data),
        report_html.render(data),
    ):
        assert "skipped" not in text and "field count" not in text
    out = tmp_path / "page.html"
    result = carbonmeter("report", str(path), "-o", str(out))
    assert "skipped 1 row" in result.stderr and "skipped" not in out.read_text()


# --- the report's small lies (issue 32) -------------------------------------------------------


def test_runs_show_their_start_and_end_not_the_rows_time(
    tmp_path: Path, template: tuple[list[str], list[str], list[str]]
) -> None:
    path = tmp_path / "emissions.csv"
    run = {"run_id": "bbbbbbbb-0000", "timestamp": "2026-12-07T16:20:00", "duration": "150.0"}
    write_copies(path, template, [run], {"train": 1})
    data = report.load([path])
    (only,) = data.runs
    assert (only.started, only.ended) == (
        datetime.datetime(2026, 12, 7, 16, 17, 30),
        datetime.datetime(2026, 12, 7, 16, 20, 0),
    )
    # Main's build: "started" read 2026-12-07T16:20:00, the end.
    (line,) = [x for x in report.text.markdown(data).splitlines() if "bbbbbbbb" in x and "|" in x]
    assert line.startswith("| 2026-12-07 16:17:30 | 2026-12-07 16:20:00 |"), line
    page = report_html.render(data)
    # The year once the runs span years, the end's date once it is not the start's: the runs
    # table stays one line a run.
    assert "<td>12-07 16:17:30&ndash;16:20:00</td>" in page
    exported = report.to_json(data)["projects"][0]["experiments"][0]["runs"][0]
    assert (exported["started"], exported["ended"]) == (
        "2026-12-07T16:17:30",
        "2026-12-07T16:20:00",
    )


def chart_labels(page: str, title: str) -> list[str]:
    """The x-axis labels of the page's bar chart titled `title` (those below the plot: the
    y axis's tick labels are right-aligned)."""
    svg = page.split(f"<title>{title}</title>", 1)[1].split("</svg>", 1)[0]
    return re.findall(r'<text x="[^"]+" y="[^"]+" text-anchor="(?:middle|start)">([^<]*)<', svg)


def test_time_labels_follow_the_span_the_runs_cover(
    tmp_path: Path, template: tuple[list[str], list[str], list[str]]
) -> None:
    # Four runs within one minute, in two projects: main labelled each "12-07 16:18".
    runs = [
        {
            "run_id": f"cccccccc-000{n}",
            "project_name": f"p{n % 2}",
            "timestamp": f"2026-12-07T16:18:{10 + 12 * n:02d}",
            "duration": "5.0",
        }
        for n in range(4)
    ]
    path = tmp_path / "emissions.csv"
    write_copies(path, template, runs, {})
    page = report_html.render(report.load([path]))
    assert chart_labels(page, "CO2eq per run over time") == [
        "16:18:05",
        "16:18:17",
        "16:18:29",
        "16:18:41",
    ]
    at = datetime.datetime(2026, 12, 7, 16, 0)
    day = datetime.timedelta(days=1)
    assert report.model.time_labels([at, at + datetime.timedelta(hours=2)]) == ["16:00", "18:00"]
    assert report.model.time_labels([at, at + 3 * day]) == ["12-07", "12-10"]
    assert report.model.time_labels([at, at + 400 * day]) == ["2026-12-07", "2028-01-11"]


def test_epochs_are_counted_by_phase(
    tmp_path: Path, template: tuple[list[str], list[str], list[str]]
) -> None:
    path = tmp_path / "emissions.csv"
    write_copies(path, template, [{"run_id": "dddddddd-0000"}], {"train": 3, "validation": 3})
    data = report.load([path])
    # Main's build: "6 epochs".
    assert data.runs[0].epoch_words() == "3 epochs and 3 validations"
    assert "3 epochs and 3 validations" in report_html.render(data)
    assert "(3 epochs and 3 validations)" in report.text.markdown(data)


def test_compare_keeps_the_grid_used(three_experiments: Path) -> None:
    data = report.load([three_experiments])
    zones = [w["zone"] for w in report.to_json(data, ["USA", "SWE"])["what_if"]]
    # Main's build: ["USA", "SWE"], the grid the runs used (FRA) gone.
    assert zones == ["FRA", "USA", "SWE"]


# --- a team's view over many files (issue 28) -------------------------------------------------

CODECARBON_3_CSV = REPO / "tests" / "fixtures" / "codecarbon_3.3.2_emissions.csv"


@pytest.fixture
def team(tmp_path: Path, template: tuple[list[str], list[str], list[str]]) -> Path:
    """3 folders of 10 runs (ada's and lin's, on two hosts, over 10 days), a copy of the first
    folder's file in the third, and a CodeCarbon 3.x CSV."""
    for f, folder in enumerate(("alpha", "beta", "gamma")):
        (tmp_path / folder).mkdir()
        runs = [
            {
                "run_id": f"{f}{n}000000-0000-0000-0000-000000000000",
                "project_name": "vision" if n % 3 else "nlp",
                "user": "ada" if (f + n) % 2 else "lin",
                "host": f"node{f}",
                "timestamp": f"2026-12-{1 + n:02d}T10:00:00",
                "energy_consumed": f"{0.001 * (f + 1)}",
                "emissions": f"{0.0001 * (f + 1)}",
            }
            for n in range(10)
        ]
        write_copies(tmp_path / folder / "emissions.csv", template, runs, {"train": 2})
    shutil.copy(tmp_path / "alpha" / "emissions.csv", tmp_path / "gamma" / "copy-of-alpha.csv")
    nested = tmp_path / "gamma" / "codecarbon"
    nested.mkdir()
    shutil.copy(CODECARBON_3_CSV, nested / "emissions.csv")
    return tmp_path


def test_team_report_over_folders_globs_and_duplicates(team: Path) -> None:
    paths = [team / "alpha", team / "beta", team / "gamma", team / "alpha" / "emissions.csv"]
    data = report.load(paths)
    # 30 runs of ours and CodeCarbon's one; the copied file and the path named twice add none.
    assert len(data.runs) == 31
    assert len(data.files) == 5
    assert report.totals(data.runs)["energy_kwh"] == pytest.approx(
        10 * (0.001 + 0.002 + 0.003) + 0.00011479692571040037
    )
    assert {r.writer for r in data.runs} >= {"CodeCarbon 3.3.2"}
    # A quoted glob, as a shell leaves it, reads the same files.
    assert len(report.load([str(team / "**" / "*.csv")]).runs) == 31
    by_user = {line["user"]: line for line in report.model.groups(data, "user")}
    assert {k: v["runs"] for k, v in by_user.items()} == {"ada": 15, "lin": 15, "(none)": 1}
    ada = report.model.select(data, {"user": ["ada"], "host": ["node1"]})
    assert {(r.user, r.host) for r in ada.runs} == {("ada", "node1")} and len(ada.runs) == 5
    # --until names a day and keeps its runs.
    since = report.model.parse_when("2026-12-05")
    until = report.model.parse_when("2026-12-06", end=True)
    recent = report.model.select(data, {"project": ["vision"]}, since, until)
    assert {r.ended.day for r in recent.runs if r.ended} == {5, 6}
    assert len(recent.runs) == 6


def test_team_report_cli_filters_and_groups(team: Path) -> None:
    result = carbonmeter(
        "report",
        str(team / "alpha"),
        str(team / "beta"),
        str(team / "gamma"),
        "--user",
        "ada",
        "--since",
        "2026-12-05",
        "--group-by",
        "host",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["groups"]["by"] == "host"
    hosts = {line["host"]: line["runs"] for line in data["groups"]["lines"]}
    assert hosts == {"node0": 3, "node1": 3, "node2": 3}
    markdown = carbonmeter("report", str(team), "--group-by", "user", "--format", "markdown").stdout
    assert "## By user" in markdown and "| ada | 15 |" in markdown


def test_a_run_row_names_its_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "grace")
    for folder in ("login", "named", "blank"):
        (tmp_path / folder).mkdir()
    measure(tmp_path / "login", project_name="u")
    measure(tmp_path / "named", project_name="u", user="ada")
    measure(tmp_path / "blank", project_name="u", user="-")
    users = [
        rows_of(tmp_path / f / "emissions.csv")[-1]["user"] for f in ("login", "named", "blank")
    ]
    assert users == ["grace", "ada", ""]


# --- the page in a browser --------------------------------------------------------------------

# Injected into a copy of the page (the report itself has no script): measures the folded page,
# then unfolds everything and checks every SVG's text boxes, in the SVG's own units.
PROBE = """
<script>
const folded = document.documentElement.scrollHeight;
document.querySelectorAll("details").forEach((d) => { d.open = true; });
const problems = [];
let texts = 0;
document.querySelectorAll("svg").forEach((svg, n) => {
  const vb = svg.viewBox.baseVal;
  const boxes = [...svg.querySelectorAll("text")].map((t) => [t.textContent, t.getBBox()]);
  texts += boxes.length;
  boxes.forEach(([label, b], i) => {
    const outside = b.x + b.width > vb.width + 0.5 || b.y + b.height > vb.height + 0.5;
    if (b.x < -0.5 || b.y < -0.5 || outside)
      problems.push(`svg ${n}: "${label}" clipped at ${b.x.toFixed(1)},${b.y.toFixed(1)}`);
    boxes.slice(i + 1).forEach(([other, c]) => {
      const w = Math.min(b.x + b.width, c.x + c.width) - Math.max(b.x, c.x);
      const h = Math.min(b.y + b.height, c.y + c.height) - Math.max(b.y, c.y);
      if (w > 0.5 && h > 0.5) problems.push(`svg ${n}: "${label}" overlaps "${other}"`);
    });
  });
});
const pre = document.createElement("pre");
pre.id = "probe";
pre.textContent = JSON.stringify({folded, texts, svgs: document.querySelectorAll("svg").length,
  problems});
document.body.appendChild(pre);
</script>
"""

# Nothing may load: the page is self-contained.
CHROMIUM = [*CHROMIUM_FLAGS, "--proxy-server=http://127.0.0.1:9"]


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    browser = shutil.which("chromium")
    assert browser is not None
    return subprocess.run(
        [browser, *CHROMIUM, f"--user-data-dir={profile}", "--window-size=1100,1400", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def check_in_chromium(page: Path, shot: Path, max_height: int) -> dict[str, object]:
    profile = page.parent / "chromium-profile"
    plain = chromium(profile, "--dump-dom", page.as_uri())
    assert plain.returncode == 0, plain.stderr[-2000:]
    console = [line for line in plain.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console
    probe_page = page.with_name(page.stem + "-probe.html")
    probe_page.write_text(
        page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8"
    )
    probed = chromium(profile, "--dump-dom", probe_page.as_uri())
    assert probed.returncode == 0, probed.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', probed.stdout, re.DOTALL)
    assert found, probed.stdout[-2000:]
    import html

    result: dict[str, object] = json.loads(html.unescape(found.group(1)))
    assert result["problems"] == [], result["problems"]
    assert int(result["texts"]) > 10  # type: ignore[call-overload]
    height = int(result["folded"])  # type: ignore[call-overload]
    assert height <= max_height, f"page is {height} px high folded, bound {max_height}"
    print(f"{page.name}: {height} px folded, {result['svgs']} charts, {result['texts']} labels")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    taken = chromium(
        profile,
        f"--screenshot={shot}",
        f"--window-size=1100,{min(height, 2400)}",
        "--hide-scrollbars",
        page.as_uri(),
    )
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.stat().st_size > 10_000
    return result


needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("CARBONMETER_REQUIRE_CHROMIUM"),
    reason="Debian's chromium is not installed (.ci/run installs it and requires this test)",
)


@pytest.mark.slow
@needs_chromium
def test_one_run_page_in_chromium(tmp_path: Path) -> None:
    measure(
        tmp_path,
        epochs=4,
        work=1_000_000,
        project_name="bert-base",
        experiment_name="sst2",
        region="SPNO",
    )
    page = tmp_path / "report.html"
    assert carbonmeter("report", str(tmp_path), "-o", str(page)).returncode == 0
    text = page.read_text(encoding="utf-8")
    assert "1 run in 1 project" in text and "1 runs" not in text
    assert "All runs over time" not in text  # one project: no second chart of the same runs
    result = check_in_chromium(page, ARTIFACTS / "report-1-run.png", max_height=3200)
    # energy split, what if, the world map, the US states (SPNO is in the US), the run's epochs
    assert result["svgs"] == 5


@pytest.mark.slow
@needs_chromium
def test_twenty_five_runs_in_ten_projects_in_chromium(tmp_path: Path) -> None:
    tasks = ("classification", "ner", "qa", "lm", "summarization", "translation")
    grids = ({"country_iso_code": "FRA"}, {"region": "SPNO"}, {"country_iso_code": "DEU"})
    for i in range(25):
        measure(
            tmp_path,
            epochs=3,
            work=100_000,
            project_name=f"project-{i % 10:02d}",
            experiment_name=tasks[i % len(tasks)],
            **grids[i % len(grids)],
        )
    spread_over_days(tmp_path / "emissions.csv", days=12)
    data = report.load([tmp_path])
    assert (len(data.runs), len(data.projects())) == (25, 10)
    page = tmp_path / "report.html"
    assert carbonmeter("report", str(tmp_path), "-o", str(page)).returncode == 0
    text = page.read_text(encoding="utf-8")
    # Per-epoch charts folded by default, one fold per project with all its runs' curves.
    assert text.count("<details class='fold'><summary>Per epoch") == 10
    assert text.count('aria-label="CO2eq per epoch of run') == 25
    assert "<details class='fold' open" not in text
    legend = text.split("All runs over time", 1)[1].split("What if", 1)[0]
    colours = re.findall(r'class="swatch" style="background:([^"]+)"', legend)
    assert len(colours) == len(set(colours)) == 10  # one colour per project, none twice
    # 9,000 before each run's end was shown beside its start (issue 32): ~230 px more.
    check_in_chromium(page, ARTIFACTS / "report-25-runs.png", max_height=9400)


# --- the paper's table, from examples/ --------------------------------------------------------


@pytest.mark.slow
def test_hf_tasks_example_prints_the_papers_table(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "hf_tasks_table.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout[result.stdout.index("| Project |") :].strip().splitlines()
    # The HF callback counts the samples it trains on, so J/sample joins the table.
    assert table[0] == (
        "| Project | Experiment | Runs | Duration (min) | Energy (kWh) | CO2eq (g) "
        "| CO2eq band (g) | J/sample |"
    )
    lines = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    assert [line[1] for line in lines] == [
        "text classification",
        "token classification",
        "extractive question answering",
        "causal language modeling",
        "summarization",
        "translation",
    ]
    runs = last_run_rows(tmp_path / "emissions.csv")
    assert len(runs) == 6
    for row in runs.values():
        assert (row["intensity_zone"], row["region"], row["intensity_g_per_kwh"]) == (
            "SPNO",
            "SPNO",
            "393.6",
        )
        assert float(row["energy_consumed"]) > 0
    by_task = {r["experiment_name"]: r for r in runs.values()}
    for line in lines:
        row = by_task[line[1]]
        assert line[0] == row["project_name"] and line[2] == "1"
        assert float(line[5]) == pytest.approx(float(row["emissions"]) * 1000, rel=5e-3)
    # The same table as `carbonmeter report --format markdown` opens with.
    md = carbonmeter("report", str(tmp_path / "emissions.csv"), "--format", "markdown").stdout
    assert "\n".join(table) in md
    epochs = [r for r in rows_of(tmp_path / "emissions.csv") if r["epoch"]]
    assert len(epochs) == 12  # two epochs of each task, measured by the HF callback


def test_the_paragraph_gives_electricity_embodied_and_water_side_by_side(tmp_path: Path) -> None:
    """Issue 30: "X kg CO2eq from electricity, Y kg embodied, Z L of water", the run row's own
    figures, in every format; with an on-site WUE the water is the total, without it off-site."""
    for name, wue in (("wet", 1.8), ("dry", None)):
        (tmp_path / name).mkdir()
        measure(tmp_path / name, project_name=name, wue=wue)
    for folder, water_column in (("wet", "water_total"), ("dry", "water_offsite")):
        [row] = last_run_rows(tmp_path / folder / "emissions.csv").values()
        data = report.load([tmp_path / folder])
        sentence = report.text.footprint_sentence(data.runs)
        assert float(row["embodied_emissions"]) > 0
        expected = (
            f" In all: {co2(float(row['emissions']))} CO2eq from electricity, "
            f"{co2(float(row['embodied_emissions']))} embodied in the hardware"
        )
        assert sentence.startswith(expected), sentence
        assert litres(float(row[water_column])) in sentence, sentence
        for text in (
            report.text.markdown(data),
            report.text.latex(data),
            report_html.render(data),
        ):
            assert "embodied in the hardware" in text
    assert "(on-site water not known" in sentence
    # The JSON totals carry the same sums (None where a figure is not known, never 0).
    footprint = report.to_json(data)["totals"]["footprint"]
    assert footprint["embodied_kg"] == pytest.approx(float(row["embodied_emissions"]))
    assert footprint["water_offsite_l"] == pytest.approx(float(row["water_offsite"]))
    assert footprint["water_l"] is None
