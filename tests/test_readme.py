"""The README's Python blocks run as written, and its first lines are the two commands."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
FRAGMENT = "# Fragment: the whole script is "
os.environ.setdefault("KERAS_BACKEND", "torch")


def test_readme_opens_with_install_and_test_commands() -> None:
    first_block = README.read_text(encoding="utf-8").split("```bash\n", 1)[1].split("```")[0]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands[0].startswith("pip install .")
    # `make test` (slow tests deselected) or `make test-all`: a target the Makefile has.
    assert re.fullmatch(r"make (test|test-all)", commands[1]), commands[1]
    target = commands[1].removeprefix("make ")
    makefile = (README.parent / "Makefile").read_text(encoding="utf-8")
    assert re.search(rf"(?m)^{target}:", makefile), target


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_python_block_runs(
    block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    code = compile(block, str(README), "exec")
    if block.startswith(FRAGMENT):
        # Fragments name a model and data they do not build; the example they point to runs
        # whole in test_examples.py and must exist.
        example = block[len(FRAGMENT) :].split(".py", 1)[0] + ".py"
        assert (README.parent / example).is_file(), example
        return
    for module in ("keras", "lightning", "transformers", "wandb", "comet_ml"):
        if f"import {module}" in block or f"carbonmeter.{module}" in block:
            pytest.importorskip(module, reason=f"this README block needs {module}")
    exec(code, {"__name__": "readme"})
    if "wandb" in sys.modules:
        # The block leaves W&B's process-wide settings behind; later tests start their own.
        sys.modules["wandb"].teardown()
    assert not list(tmp_path.glob("*.csv")), "README blocks should not litter the working dir"
