"""The core's settings table, and everything generated from it or checked against it: the
parser's ranges and choices, the `.pyi` constructor, the docs' Settings list and the CLI flags."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import carbonmeter
from carbonmeter import EmissionsTracker, InvalidValueError
from carbonmeter._core import SETTINGS, UNSERVED_SETTINGS, Setting

REPO = Path(__file__).resolve().parent.parent
STUB = REPO / "python" / "carbonmeter" / "_core.pyi"
CLI = [sys.executable, "-m", "carbonmeter.cli"]
BY_NAME = {setting.name: setting for setting in SETTINGS}
SERVED = [setting.name for setting in SETTINGS if setting.served]
NUMBERS = [s for s in SETTINGS if s.kind in ("float", "int")]
CHOICES = [s for s in SETTINGS if s.kind == "choice"]

# The Python type of each kind, as the stub spells it.
STUB_TYPES = {
    "str": "str | None",
    "secret": "str | None",
    "path": "str | PathLike[str] | None",
    "float": "float | None",
    "int": "int | None",
    "bool": "bool | None",
    "choice": "str | None",
    "list": "Sequence[int | str] | None",
    "object": "Sequence[Any] | None",
    "any": "Any",
}
# Python's logging takes numeric levels too (logging.DEBUG), and so does `log_level`.
STUB_EXCEPTIONS = {"log_level": "str | int | None"}


def carbonmeter_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )


def test_the_table_is_well_formed() -> None:
    assert len(BY_NAME) == len(SETTINGS), "a name twice"
    assert [s.name for s in SETTINGS if not s.served] == UNSERVED_SETTINGS
    for setting in SETTINGS:
        assert isinstance(setting, Setting)
        assert setting.doc, setting.name
        assert setting.kind in STUB_TYPES, setting.name
        assert bool(setting.choices) == (setting.kind == "choice"), setting.name
        assert (setting.minimum is not None) == (setting.kind in ("float", "int")), setting.name
        assert setting.alias_of is None or setting.alias_of in BY_NAME, setting.name
        assert setting.trust in ("any", "trusted_source_only"), setting.name
        assert (setting.max_chars is None) == (setting.kind in ("object", "any")), setting.name
        if setting.kind == "path":  # a path is read, written or loaded
            assert setting.trust == "trusted_source_only", setting.name


def test_every_setting_a_tracker_reads_is_in_the_table() -> None:
    # carbonmeter's own tracker names, plus CodeCarbon's unserved options, no more.
    for name in ("pue", "measure_power_secs", "country_iso_code", "loggers", "save_to_api"):
        assert name in BY_NAME
    with pytest.raises(TypeError, match="colour"):
        EmissionsTracker(colour=1, save_to_file=False)  # type: ignore[call-arg]


@pytest.mark.parametrize("setting", NUMBERS, ids=lambda s: s.name)
def test_ranges_are_what_the_parser_enforces(isolated: Path, setting: Setting) -> None:
    assert setting.minimum is not None
    inside = setting.minimum if setting.minimum_inclusive else setting.minimum + 1
    outside = setting.minimum - 1 if setting.minimum_inclusive else setting.minimum
    EmissionsTracker(save_to_file=False, **{setting.name: inside})
    with pytest.raises(InvalidValueError, match=f"{setting.name}="):
        EmissionsTracker(save_to_file=False, **{setting.name: outside})
    if setting.maximum is not None:
        EmissionsTracker(save_to_file=False, **{setting.name: setting.maximum})
        with pytest.raises(InvalidValueError, match=f"{setting.name}="):
            EmissionsTracker(save_to_file=False, **{setting.name: setting.maximum * 1.5})
    if isinstance(setting.default, float):
        EmissionsTracker(save_to_file=False, **{setting.name: setting.default})


@pytest.mark.parametrize("setting", CHOICES, ids=lambda s: s.name)
def test_choices_are_what_the_parser_accepts(isolated: Path, setting: Setting) -> None:
    for choice in setting.choices:
        EmissionsTracker(save_to_file=False, **{setting.name: choice.upper()})
    with pytest.raises(InvalidValueError) as caught:
        EmissionsTracker(save_to_file=False, **{setting.name: "bogus"})
    message = str(caught.value)
    assert f'{setting.name}="bogus"' in message
    assert all(choice in message for choice in setting.choices), message


def test_defaults_are_what_a_tracker_uses(isolated: Path) -> None:
    tracker = EmissionsTracker(country_iso_code="FRA")
    assert tracker.project_name == BY_NAME["project_name"].default
    folder, name = BY_NAME["output_dir"].default, BY_NAME["output_file"].default
    assert tracker.output_path == os.path.join(str(folder), str(name))


# What a tracker is given beside each setting: no CSV, and what must be on for it to be read.
READ_WITH: dict[str, dict[str, object]] = {
    "prometheus_url": {"save_to_prometheus": True, "save_to_file": False},
    "save_to_file": {},
}
BOUNDED = [s for s in SETTINGS if s.max_chars is not None and s.served]


@pytest.mark.parametrize("setting", BOUNDED, ids=lambda s: s.name)
def test_size_bounds_are_what_the_parser_enforces(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, setting: Setting
) -> None:
    assert setting.max_chars is not None
    monkeypatch.setenv(f"CARBONMETER_{setting.name.upper()}", "7" * (setting.max_chars + 1))
    with pytest.raises(InvalidValueError) as caught:
        EmissionsTracker(**READ_WITH.get(setting.name, {"save_to_file": False}))
    message = str(caught.value)
    assert f"{setting.name}=" in message, message
    assert f"at most {setting.max_chars} characters" in message, message
    assert len(message) < 300, message


def test_a_name_of_the_longest_size_is_kept(isolated: Path) -> None:
    longest = "n" * (BY_NAME["project_name"].max_chars or 0)
    assert EmissionsTracker(save_to_file=False, project_name=longest).project_name == longest


# --- the stub ----------------------------------------------------------------------------------


def _constructor_keywords() -> dict[str, str]:
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    tracker = next(
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name == "EmissionsTracker"
    )
    new = next(
        node
        for node in tracker.body
        if isinstance(node, ast.FunctionDef) and node.name == "__new__"
    )
    assert new.args.vararg is None and new.args.kwarg is None, "no *args or **kwargs"
    assert [arg.arg for arg in new.args.args] == ["cls"], "keyword-only settings"
    keywords = {}
    for arg in new.args.kwonlyargs:
        assert arg.annotation is not None, arg.arg
        keywords[arg.arg] = ast.unparse(arg.annotation)
    return keywords


def test_stub_constructor_matches_the_table() -> None:
    keywords = _constructor_keywords()
    assert list(keywords) == [setting.name for setting in SETTINGS]
    for setting in SETTINGS:
        expected = STUB_EXCEPTIONS.get(setting.name, STUB_TYPES[setting.kind])
        assert keywords[setting.name] == expected, setting.name


@pytest.mark.slow
def test_mypy_rejects_a_wrong_type_and_an_unknown_name(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "from carbonmeter import EmissionsTracker\n"
        'EmissionsTracker(country_iso_code="FRA", measure_power_secs=1.5, pue=1, gpu_ids=[0])\n'
        'EmissionsTracker(measure_power_secs="fast")\n'
        "EmissionsTracker(colour=1)\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--show-error-codes",
            "--no-error-summary",
            str(snippet),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["3", "4"], result.stdout
    assert '"measure_power_secs"' in errors[0] and "[arg-type]" in errors[0], errors[0]
    assert '"colour"' in errors[1] and "[call-arg]" in errors[1], errors[1]


# --- the docs' Settings page ---------------------------------------------------------------------


def test_docs_list_every_served_setting_and_nothing_else() -> None:
    page = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    section = page.split("# Settings\n", 1)[1].split("\n## ", 1)[0]
    items = [line for line in section.splitlines() if line.startswith("- `")]
    listed = [line.split("`")[1] for line in items]
    assert listed == SERVED
    for name, line in zip(listed, items, strict=True):
        guarded = BY_NAME[name].trust == "trusted_source_only"
        assert ("trusted sources only" in line) == guarded, line
    sizes = page.split("\n## Config files\n", 1)[1]
    for bound in {s.max_chars for s in SETTINGS if s.max_chars is not None}:
        assert f"{bound} " in sizes, bound


# --- the command line --------------------------------------------------------------------------


def test_every_flag_setting_is_a_run_flag_with_its_doc() -> None:
    result = carbonmeter_cli("run", "--help")
    assert result.returncode == 0, result.stderr
    help_text = " ".join(result.stdout.split())  # argparse wraps lines
    for setting in SETTINGS:
        flag = "--" + setting.name.replace("_", "-")
        if setting.served and setting.kind != "object" and setting.alias_of is None:
            assert flag in help_text, flag
            assert " ".join(setting.doc.split()) in help_text, setting.name
        else:
            assert flag + " " not in help_text, flag


@pytest.mark.parametrize("flag", ["--country-iso-code", "--country"])
def test_location_flags_are_spelled_the_same_in_every_command(flag: str) -> None:
    intensity = carbonmeter_cli("intensity", flag, "FRA", "--format", "json")
    assert intensity.returncode == 0, intensity.stderr
    assert '"zone": "FRA"' in intensity.stdout
    estimate = carbonmeter_cli("estimate", "--hardware", "T4", "--hours", "1", flag, "FRA")
    assert estimate.returncode == 0, estimate.stderr
    assert "FRA" in estimate.stdout
    cloud = carbonmeter_cli(
        "intensity", "--cloud-provider", "gcp", "--cloud-region", "europe-west1"
    )
    assert cloud.returncode == 0 and "gcp:europe-west1" in cloud.stdout, cloud.stderr
    both = carbonmeter_cli("intensity", flag, "FRA", "--region", "US-CA")
    assert both.returncode == 2 and "not allowed with" in both.stderr, both.stderr


@pytest.mark.slow
def test_run_creates_the_output_dir(isolated: Path) -> None:
    result = carbonmeter_cli(
        "run",
        "--country-iso-code",
        "FRA",
        "--output-dir",
        "runs/today",
        "--",
        sys.executable,
        "-c",
        "pass",
        cwd=isolated,
    )
    assert result.returncode == 0, result.stderr
    assert (isolated / "runs" / "today" / "emissions.csv").is_file()


def test_console_script_entry_point_is_the_package() -> None:
    from carbonmeter import cli

    assert callable(cli.main)
    assert Path(cli.__file__).name == "__init__.py"
    assert carbonmeter.__version__
