"""The README's Python blocks run as written, and its first lines are the two commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_readme_opens_with_install_and_test_commands() -> None:
    first_block = README.read_text(encoding="utf-8").split("```bash\n", 1)[1].split("```")[0]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands[0].startswith("pip install .")
    assert commands[1] == "make test"


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_python_block_runs(
    block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    assert not list(tmp_path.glob("*.csv")), "README blocks should not litter the working dir"
