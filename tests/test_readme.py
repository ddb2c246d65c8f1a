"""The Python blocks of the README and of the docs pages run as written, the README opens with
the two commands and its links resolve, and the docs site builds strictly with every page in its
nav; where Chromium is installed, every built page renders in it."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import CHROMIUM_FLAGS

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
BLOCKS = [
    (page, index, block)
    for page in PAGES
    for index, block in enumerate(
        re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)
    )
]
FRAGMENT = "# Fragment: the whole script is "
LINK = re.compile(r"\]\(([^)\s]+)\)")
os.environ.setdefault("KERAS_BACKEND", "torch")


def test_readme_opens_with_install_and_test_commands() -> None:
    first_block = README.read_text(encoding="utf-8").split("```bash\n", 1)[1].split("```")[0]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands[0].startswith("pip install .")
    assert commands[1] == "make test-all"
    makefile = (README.parent / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"(?m)^test-all:", makefile)


def test_readme_links_resolve() -> None:
    # GitHub renders the README from the repository root; mkdocs never sees it.
    targets = LINK.findall(README.read_text(encoding="utf-8"))
    local = [t.split("#", 1)[0] for t in targets if not t.startswith(("http://", "https://", "#"))]
    assert any(t.startswith("docs/") for t in local)
    missing = [t for t in local if not (REPO / t).exists()]
    assert not missing, missing


@pytest.mark.parametrize(
    "page, block",
    [(page, block) for page, _, block in BLOCKS],
    ids=[f"{page.relative_to(REPO)}:{index}" for page, index, _ in BLOCKS],
)
def test_python_block_runs(
    page: Path,
    block: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    code = compile(block, str(page), "exec")
    if block.startswith(FRAGMENT):
        # Fragments name a model and data they do not build; the example they point to runs
        # whole in test_examples.py and must exist.
        example = block[len(FRAGMENT) :].split(".py", 1)[0] + ".py"
        assert (REPO / example).is_file(), example
        return
    for module in ("keras", "lightning", "transformers", "wandb", "comet_ml", "mlflow"):
        if f"import {module}" in block or f"carbonmeter.{module}" in block:
            pytest.importorskip(module, reason=f"this block of {page.name} needs {module}")
    exec(code, {"__name__": "readme"})
    if "wandb" in sys.modules:
        # The block leaves W&B's process-wide settings behind; later tests start their own.
        sys.modules["wandb"].teardown()
    assert not list(tmp_path.glob("*.csv")), f"{page.name} blocks should not litter the working dir"


# --- the docs site -----------------------------------------------------------------------------


def nav_pages() -> dict[str, str]:
    """File name -> title of every page in mkdocs.yml's nav, sections flattened."""
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with mkdocs (pip install '.[docs]')")
    found: dict[str, str] = {}

    def walk(entries: list[object]) -> None:
        for entry in entries:
            assert isinstance(entry, dict) and len(entry) == 1, entry
            ((title, target),) = entry.items()
            if isinstance(target, list):
                walk(target)
            else:
                found[str(target)] = str(title)

    walk(yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))["nav"])
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def test_docs_site_builds_strictly_with_every_page_in_its_nav(site: Path) -> None:
    pages = nav_pages()
    assert sorted(pages) == sorted(p.name for p in DOCS.glob("*.md"))
    for name in pages:
        built = site / ("index.html" if name == "index.md" else f"{name[:-3]}/index.html")
        assert built.is_file(), built


class _Site(http.server.SimpleHTTPRequestHandler):
    """Serves the built site and records every request's status, as a host would see them."""

    statuses: list[tuple[str, int]]

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.statuses.append((self.path, int(code)))

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(site: Path) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    statuses: list[tuple[str, int]] = []
    handler = type("Handler", (_Site,), {"statuses": statuses})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(site))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", statuses
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("CARBONMETER_REQUIRE_CHROMIUM"),
    reason="Debian's chromium is not installed (.ci/run installs it and requires this test)",
)
def test_every_docs_page_renders_in_headless_chromium(
    served: tuple[str, list[tuple[str, int]]], tmp_path: Path
) -> None:
    root, statuses = served
    browser = shutil.which("chromium")
    assert browser is not None
    for name, title in nav_pages().items():
        path = "/" if name == "index.md" else f"/{name[:-3]}/"
        statuses.clear()
        dom = subprocess.run(
            [
                browser,
                *CHROMIUM_FLAGS,
                # Loopback goes direct; anything else would hit a closed port: the site loads
                # nothing from another host.
                "--proxy-server=http://127.0.0.1:9",
                f"--user-data-dir={tmp_path / 'chromium-profile'}",
                "--dump-dom",
                root + path,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert dom.returncode == 0, (name, dom.stderr[-2000:])
        console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
        assert not console, (name, console)
        failed = [(p, status) for p, status in statuses if status >= 400]
        assert not failed, (name, failed)
        assert (path, 200) in statuses, (name, statuses)
        shown = re.search(r"<title>(.*?)</title>", dom.stdout)
        assert shown, (name, dom.stdout[:2000])
        assert shown.group(1).endswith("carbonmeter"), (name, shown.group(1))
        if name != "index.md":
            assert shown.group(1).startswith(title.replace("&", "&amp;")), (name, shown.group(1))
        article = re.search(r'<article class="md-content__inner.*?</article>', dom.stdout, re.S)
        assert article and "<h1" in article.group(0), name
        assert len(re.sub(r"<[^>]+>", "", article.group(0))) > 200, name
