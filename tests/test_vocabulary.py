"""The row's vocabulary the core serves (`_core.COLUMNS`, `_core.METHODS`), and everything made
from it or checked against it: `docs/columns.md`, the `.pyi` getters of `EmissionsData` and the
report's wording of the methods, as `test_settings.py` does for the settings table."""

from __future__ import annotations

import ast
import csv
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from carbonmeter import CSV_COLUMNS, EmissionsTracker, _docs, report
from carbonmeter._core import COLUMNS, METHODS, Column, Method, g_per_kwh_of
from carbonmeter.report.model import Run
from carbonmeter.report.text import paragraph

REPO = Path(__file__).resolve().parent.parent
STUB = REPO / "python" / "carbonmeter" / "_core.pyi"
PAGE = REPO / "docs" / "columns.md"
BY_NAME = {column.name: column for column in COLUMNS}
METHOD_COLUMNS = [c.name for c in COLUMNS if c.name.endswith("_method")]
# The Python types a column may have, as the stub spells them.
TYPES = {"str", "float", "int"} | {f"{t} | None" for t in ("str", "float", "int")}


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_the_columns_are_the_header_well_formed() -> None:
    assert [column.name for column in COLUMNS] == CSV_COLUMNS
    for column in COLUMNS:
        assert isinstance(column, Column)
        assert column.type in TYPES, column.name
        assert column.doc and column.doc == _flat(column.doc), column.name
        assert column.unit == column.unit.strip(), column.name
    energies = [c.name for c in COLUMNS if c.name.endswith("_energy") and c.name != "wall_energy"]
    assert energies and all(BY_NAME[name].unit == "kWh" for name in energies)
    assert BY_NAME["duration"].unit == "s" and BY_NAME["cpu_power"].unit == "W"


def test_the_methods_are_well_formed_and_each_column_lists_its_own() -> None:
    names = [method.name for method in METHODS]
    assert len(names) == len(set(names))
    for method in METHODS:
        assert isinstance(method, Method)
        assert method.meaning and not method.meaning.endswith("."), method.name
        assert set(method.columns) <= set(METHOD_COLUMNS), method.name
    assert METHOD_COLUMNS == ["cpu_method", "ram_method", "gpu_method", "intensity_method"]
    for name in METHOD_COLUMNS:
        values = [m.name for m in METHODS if name in m.columns]
        assert values, name
        # The column's doc names every value the core may write in it, and no other.
        named = [m.name for m in METHODS if f"`{m.name}`" in BY_NAME[name].doc]
        assert named == values, name


def test_a_run_writes_only_methods_the_core_serves(isolated: Path) -> None:
    with EmissionsTracker(
        country_iso_code="FRA", save_to_file=False, force_cpu_power=10.0
    ) as tracker:
        pass
    data = tracker.final_emissions_data
    assert data is not None
    for name in METHOD_COLUMNS:
        value = getattr(data, name)
        assert any(m.name == value and name in m.columns for m in METHODS), (name, value)


def test_the_implied_intensity_is_the_inverse_of_emissions() -> None:
    assert g_per_kwh_of(0.5, 2.0) == pytest.approx(250.0)
    assert g_per_kwh_of(1.0, 0.0) is None


# --- the stub ----------------------------------------------------------------------------------


def _stub_getters() -> dict[str, tuple[str, str]]:
    """EmissionsData's properties in the stub: name -> (return type, docstring)."""
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    data = next(
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name == "EmissionsData"
    )
    getters = {}
    for node in data.body:
        if isinstance(node, ast.FunctionDef) and any(
            isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list
        ):
            assert node.returns is not None, node.name
            getters[node.name] = (ast.unparse(node.returns), ast.get_docstring(node) or "")
    return getters


def test_stub_getters_are_typed_and_documented_as_the_core_serves() -> None:
    getters = _stub_getters()
    listed = [name for name in getters if name in BY_NAME]
    assert listed == CSV_COLUMNS, "every column, in order"
    for column in COLUMNS:
        python_type, doc = getters[column.name]
        assert python_type == column.type, column.name
        assert _flat(doc) == column.doc, column.name


# --- the generated files -----------------------------------------------------------------------


def test_generated_files_are_what_the_core_serves() -> None:
    # Run `python -m carbonmeter._docs` after changing a column or a method.
    assert _docs.stale(REPO) == []


def test_the_page_lists_every_column_and_method_in_order() -> None:
    text = PAGE.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    listed = [row.split("`")[1] for row in rows]
    assert listed == CSV_COLUMNS + [method.name for method in METHODS]
    for row, column in zip(rows, COLUMNS, strict=False):
        assert row.endswith(f"| {column.doc.replace('|', chr(92) + '|')} |"), column.name


def test_the_check_fails_on_a_stale_page_and_the_writer_mends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / _docs.COLUMNS_PAGE
    stub = tmp_path / _docs.STUB
    page.parent.mkdir(parents=True)
    stub.parent.mkdir(parents=True)
    page.write_text(PAGE.read_text(encoding="utf-8").replace("| `duration` |", "| `dur` |"))
    stub.write_text(STUB.read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    assert _docs.main(["--check"]) == 1
    assert _docs.main(["--root", str(tmp_path)]) == 0
    assert _docs.stale(tmp_path) == []
    assert page.read_text(encoding="utf-8") == PAGE.read_text(encoding="utf-8")


def test_outside_a_checkout_the_tool_says_where_to_run_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # An installed package has no docs/ beside it: the tool must not guess a path.
    monkeypatch.chdir(tmp_path)
    assert _docs.main(["--check"]) == 2
    assert "--root" in capsys.readouterr().err


def test_the_check_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "carbonmeter._docs", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- the report --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("run")
    with EmissionsTracker(
        country_iso_code="FRA",
        output_dir=str(folder),
        force_cpu_power=40.0,
        force_ram_power=5.0,
        measure_power_secs=0.05,
    ):
        pass
    [run] = report.load([folder]).runs
    return run


@pytest.mark.parametrize("part", ["cpu", "ram", "gpu"])
def test_the_report_words_every_method_as_the_core_means_it(one_run: Run, part: str) -> None:
    for method in METHODS:
        if f"{part}_method" not in method.columns:
            continue
        run = dataclasses.replace(one_run, **{f"{part}_method": method.name})
        text = paragraph([run], "p")
        if part == "gpu" and method.name == "none":
            assert "no GPU was measured" in text
        else:
            assert method.meaning in text, (part, method.name)
        # Never the bare name ("CPU energy was other_rank").
        assert f"was {method.name}" not in text, (part, method.name)


def test_the_report_counts_gpus_once(tmp_path: Path) -> None:
    # `gpu_model` counts its GPUs itself, in a rank's row and a job's (`2 x NVIDIA H100`), as
    # CodeCarbon's does: the report shows it as written, never "2 x 2 x NVIDIA H100".
    with EmissionsTracker(country_iso_code="FRA", output_dir=str(tmp_path), force_cpu_power=4.0):
        pass
    path = tmp_path / "emissions.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row.update(gpu_count="2", gpu_model="2 x NVIDIA H100")
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    data = report.load([path])
    for text in (report.text.markdown(data), report.html.render(data), report.text.latex(data)):
        assert "2 x 2" not in text and "2 &times; 2" not in text and r"2 $\times$ 2" not in text
    assert "with 2 x NVIDIA H100" in report.text.markdown(data)
