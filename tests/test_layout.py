"""The core's layering, read from its source: no pyo3 outside the bindings, no import circle.

A core module names another through `use crate::...` (or `super::` from a top-level file) and
through inline paths such as `crate::runtime::warn_once`; each top-level module of `src/` (a file
or a folder) is a node. Test modules (`#[cfg(test)] mod tests`) are left out: a test may reach
across layers to build its inputs.
"""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
# The only files that may speak Python: the extension module and the bindings layer.
PYTHON_LAYER = ("lib", "bindings")

_TESTS = re.compile(r"^#\[cfg\(test\)\]\s*\n\s*mod tests\b", re.MULTILINE)
_GROUP = re.compile(r"\bcrate::\{([^}]*)\}")
_PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
_SUPER = re.compile(r"\bsuper::([a-z_][a-z0-9_]*)")
_PYO3 = re.compile(r"\bpyo3\b")


def _code(path: Path) -> str:
    """The file without its test module and comments (a doc line may name any path); a test
    module in a file of its own (`tests.rs`, declared `#[cfg(test)] mod tests;`) has none."""
    if path.name == "tests.rs":
        return ""
    text = path.read_text(encoding="utf-8")
    tests = _TESTS.search(text)
    if tests:
        text = text[: tests.start()]
    return "\n".join(line.split("//")[0] for line in text.splitlines())


def _module(src: Path, path: Path) -> tuple[str, ...]:
    parts = path.relative_to(src).with_suffix("").parts
    return parts[:-1] if parts[-1] == "mod" else parts


def core_files(src: Path) -> dict[tuple[str, ...], str]:
    """Module path -> code, for every core file (not lib.rs, not bindings/)."""
    files = {}
    for path in sorted(src.rglob("*.rs")):
        module = _module(src, path)
        if module and module[0] not in PYTHON_LAYER:
            files[module] = _code(path)
    return files


def module_graph(src: Path) -> dict[str, set[str]]:
    """Top-level core module -> the other top-level modules its code names."""
    graph: dict[str, set[str]] = {}
    for module, code in core_files(src).items():
        named = set(_PATH.findall(code))
        for group in _GROUP.findall(code):
            named.update(re.findall(r"(?:^|,)\s*([a-z_][a-z0-9_]*)", group))
        if len(module) == 1:
            # `super::` in a top-level file is the crate root.
            named.update(_SUPER.findall(code))
        graph.setdefault(module[0], set()).update(named - {module[0]})
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (`a -> b -> a`), or None when the graph is acyclic."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph.get(node, ())):
            circle = visit(target)
            if circle:
                return circle
        path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        circle = visit(node)
        if circle:
            return circle
    return None


def python_users(src: Path) -> list[str]:
    """Core files whose code names pyo3."""
    return ["::".join(module) for module, code in core_files(src).items() if _PYO3.search(code)]


def test_no_core_module_uses_pyo3() -> None:
    assert python_users(SRC) == []


def test_the_core_never_imports_its_own_package() -> None:
    # Python registers what the core calls back (`_core.register_row_listener`).
    importers = [
        str(path.relative_to(SRC))
        for path in sorted(SRC.rglob("*.rs"))
        if re.search(r"""import\(\s*"carbonmeter""", _code(path))
    ]
    assert importers == []


def test_core_modules_import_in_one_direction() -> None:
    graph = module_graph(SRC)
    assert {"run", "meter", "intensity", "error"} <= set(graph), sorted(graph)
    assert "error" in graph["run"]
    assert find_circle(graph) is None, " -> ".join(find_circle(graph) or [])


def test_the_jobs_plan_is_pure() -> None:
    # Who measures what is decided from the ranks' facts alone (`job`), so the settings can read
    # the launcher's environment with it; the tracker's part in a job lives in `run`.
    graph = module_graph(SRC)
    assert graph["job"] <= {"output", "error"}, sorted(graph["job"])
    assert not any("run" in graph[module] for module in ("config", "job", "output"))


def test_the_payoff_rule_is_pure() -> None:
    # Whether training still pays is arithmetic on the epochs' figures: no clock, no I/O, and
    # nothing of the crate, so the run judges it and the table tests pin it.
    graph = module_graph(SRC)
    assert graph["payoff"] == set(), sorted(graph["payoff"])
    assert not re.search(r"\b(std::fs|Instant|SystemTime|File)\b", _code(SRC / "payoff.rs"))


def test_the_reports_tradeoff_sits_between_model_and_text() -> None:
    # model <- tradeoff <- text <- html: the trade-off reads runs, and text and html render it.
    tradeoff = SRC.parent / "python" / "carbonmeter" / "report" / "tradeoff.py"
    imports = re.findall(
        r"^from carbonmeter\.report(?:\.(\w+))? import (\w+)", tradeoff.read_text(), re.M
    )
    assert imports and {module or name for module, name in imports} <= {"blocks", "model"}


def test_the_footprint_is_pure_arithmetic_on_tables() -> None:
    # Embodied carbon and water (issue 30) are computed from the embodied tables, the GPU name
    # lookup and the carbon arithmetic alone: no clock, sensor, row or I/O, so the row builder,
    # the export and `estimate` all call the same figures.
    graph = module_graph(SRC)
    assert graph["footprint"] <= {"hardware", "runtime", "carbon"}, sorted(graph["footprint"])


def test_the_checks_see_a_circle_and_a_pyo3_use(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "mod.rs").write_text("pub mod inner;\nuse crate::{b::Thing, error};\n")
    (tmp_path / "a" / "inner.rs").write_text("use super::Other;\n")
    (tmp_path / "b.rs").write_text(
        "// crate::c is only named in a comment\nfn f() { crate::a::inner::g() }\n"
        "#[cfg(test)]\nmod tests {\n    use crate::c::Fixture;\n}\n"
    )
    (tmp_path / "c.rs").write_text("use super::error::Error;\nuse pyo3::prelude::*;\n")
    (tmp_path / "error.rs").write_text("")
    (tmp_path / "lib.rs").write_text("use pyo3::prelude::*;\n")
    (tmp_path / "bindings").mkdir()
    (tmp_path / "bindings" / "mod.rs").write_text("use crate::a;\nuse pyo3::prelude::*;\n")
    graph = module_graph(tmp_path)
    assert graph == {"a": {"b", "error"}, "b": {"a"}, "c": {"error"}, "error": set()}
    assert find_circle(graph) == ["a", "b", "a"]
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert python_users(tmp_path) == ["c"]


# A source only enumerates and reads: the policy is written once elsewhere. Counter wraps,
# implausible readings and how many failures a quantity gets live in the integrator
# (`EnergyTrack`, `CounterAccumulator`); the choice of CPU/RAM sources in `sensors::plan`;
# GPU selection and claims in `gpu::select::choose`, sticky faults in the GPU accounting.
SOURCES = (
    ("sensors", "rapl"),
    ("sensors", "procfs"),
    ("sensors", "cpu_load"),
    ("sensors", "ram"),
    ("sensors", "constant"),
    ("sensors", "procfs_portable"),
    ("sensors", "ioreport"),
    ("sensors", "cf"),
    ("sensors", "emi"),
    ("sensors", "win32"),
    ("sensors", "grace"),
    ("gpu", "nvml"),
    ("gpu", "amdsmi"),
    ("gpu", "hwmon"),
    ("gpu", "apple"),
)
POLICY = re.compile(
    r"\b(EnergyTrack|CounterAccumulator|counter_delta_uj|select_rocm|select::select|"
    r"is_claimed|same_device|plan::)\b"
)


def policy_in_sources(src: Path) -> dict[str, list[str]]:
    """Source files (module path) -> the policy names their code uses."""
    files = core_files(src)
    found = {
        "::".join(module): sorted(set(POLICY.findall(files[module])))
        for module in SOURCES
        if module in files
    }
    return {module: names for module, names in found.items() if names}


def test_sources_only_enumerate_and_read() -> None:
    assert set(SOURCES) <= set(core_files(SRC)), "a source file moved: update SOURCES"
    assert policy_in_sources(SRC) == {}


def test_the_source_check_sees_policy(tmp_path: Path) -> None:
    (tmp_path / "gpu").mkdir()
    (tmp_path / "gpu" / "nvml.rs").write_text(
        "fn f() { select::select(&all); }\n#[cfg(test)]\nmod tests {\n    EnergyTrack\n}\n"
    )
    assert policy_in_sources(tmp_path) == {"gpu::nvml": ["select::select"]}


def test_the_choice_of_sources_does_no_io() -> None:
    plan = _code(SRC / "sensors" / "plan.rs")
    assert not re.search(
        r"\b(std::fs|read_dir|Instant|File|HostProbe|RaplSensor|IoReportSensor|EmiSensor|GraceSensor)\b",
        plan,
    )


# --- The tests' own layout: what several test files share is written once --------------------

TESTS = Path(__file__).resolve().parent
# Helpers and compiler calls that tests/helpers.py, tests/conftest.py and tests/common/mod.rs
# hold for every test file; a copy elsewhere drifts from them (three copies of child_env did).
_SHARED = re.compile(
    r"^def (child_env|rows_of|read_csv|make_tracker|to_uj)\("
    r"|shutil\.which\(\"cc\"\)|Command::new\(\"cc\"\)",
    re.MULTILINE,
)
# Their homes, and this file, which names them.
_SHARED_HOMES = {"helpers.py", "conftest.py", Path(__file__).name}


def copied_helpers(tests: Path) -> list[str]:
    """`file: what` for each copy of a shared test helper outside its home."""
    found = []
    for path in sorted([*tests.glob("*.py"), *tests.glob("*.rs"), *tests.glob("scripts/*.py")]):
        name = path.relative_to(tests).as_posix()
        if name not in _SHARED_HOMES:
            text = path.read_text(encoding="utf-8")
            found += [f"{name}: {match.group(0)}" for match in _SHARED.finditer(text)]
    return found


def test_shared_test_helpers_are_not_copied(tmp_path: Path) -> None:
    assert copied_helpers(TESTS) == []
    (tmp_path / "helpers.py").write_text("def rows_of(path):\n    pass\n")
    (tmp_path / "test_x.py").write_text('def rows_of(path):\n    return shutil.which("cc")\n')
    (tmp_path / "y.rs").write_text('fn f() { Command::new("cc"); }\n')
    assert copied_helpers(tmp_path) == [
        "test_x.py: def rows_of(",
        'test_x.py: shutil.which("cc")',
        'y.rs: Command::new("cc")',
    ]


# Process-wide state lives in `runtime/`: a lock declared as a bare `static` would be missed by
# the at-fork handler, and a thread spawned elsewhere would bypass `runtime::spawn`.
RUNTIME = "runtime"
_BARE_STATIC_LOCK = re.compile(
    r"^\s*(?:pub(?:\([a-z]+\))?\s+)?static\s+([A-Z_][A-Z0-9_]*)\s*:[^=]*\b(?:Mutex|RwLock)\b",
    re.MULTILINE,
)
_SPAWN = re.compile(r"\bthread::(?:Builder|spawn)\b")


def runtime_bypasses(src: Path) -> list[str]:
    """`file: what` for each process-wide lock or thread made outside `runtime/`."""
    found = []
    for path in sorted(src.rglob("*.rs")):
        module = _module(src, path)
        if module and module[0] == RUNTIME:
            continue
        code = _code(path)
        name = str(path.relative_to(src))
        found += [f"{name}: static {lock}" for lock in _BARE_STATIC_LOCK.findall(code)]
        found += [f"{name}: {spawn}" for spawn in _SPAWN.findall(code)]
    return found


def test_process_wide_locks_and_threads_go_through_the_runtime() -> None:
    assert runtime_bypasses(SRC) == []


def test_the_runtime_depends_on_no_other_module() -> None:
    graph = module_graph(SRC)
    assert graph[RUNTIME] == set(), sorted(graph[RUNTIME])


def test_the_runtime_check_sees_a_bare_lock_and_a_spawn(tmp_path: Path) -> None:
    (tmp_path / "runtime").mkdir()
    (tmp_path / "runtime" / "mod.rs").write_text(
        "static REGISTRY: Mutex<()> = Mutex::new(());\nfn f() { std::thread::Builder::new(); }\n"
    )
    (tmp_path / "a.rs").write_text(
        "static SEEN: parking_lot::Mutex<u8> = parking_lot::Mutex::new(0);\n"
        "pub(crate) static KEPT: ProcessLock<Vec<u8>> = ProcessLock::new(Vec::new());\n"
        "static CACHE: LazyLock<Mutex<Vec<u8>>> = LazyLock::new(Default::default);\n"
        "fn g() { std::thread::spawn(|| ()); }\n"
        "#[cfg(test)]\nmod tests {\n    fn h() { std::thread::spawn(|| ()); }\n}\n"
    )
    assert runtime_bypasses(tmp_path) == [
        "a.rs: static SEEN",
        "a.rs: static CACHE",
        "a.rs: thread::spawn",
    ]


# The report's modules import one way (model <- text <- html; whatif and maps below model and
# html): a module-level import circle would make one of them half-initialised when imported.
REPORT = SRC.parent / "python" / "carbonmeter" / "report"
# The grids compared and the map's shapes come from the embedded tables only.
_TABLE_READERS = {"whatif": {"carbonmeter._core"}}


def report_graph(folder: Path) -> dict[str, set[str]]:
    """report module -> what it imports from carbonmeter at module level: report modules by
    their short name (`model`), others in full (`carbonmeter._core`)."""
    import ast

    graph: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found: set[str] = set()
        for node in tree.body:
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            if node.module == "carbonmeter.report":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("carbonmeter.report."):
                found.add(node.module.rsplit(".", 1)[1])
            elif node.module.startswith("carbonmeter"):
                found.add(node.module)
        graph[path.stem] = found
    return graph


def test_report_modules_import_in_one_direction() -> None:
    graph = report_graph(REPORT)
    local = {name: {t for t in targets if t in graph} for name, targets in graph.items()}
    assert find_circle({k: v for k, v in local.items() if k != "__init__"}) is None
    for module, allowed in _TABLE_READERS.items():
        assert graph[module] <= allowed, (module, graph[module])
    assert "whatif" in local["model"] and "model" not in local["whatif"]
