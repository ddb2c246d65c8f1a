"""What `import carbonmeter` loads: the standard library modules a training script would bring
anyway are still not ours to import (their cost is the figure benches/compare.py measures)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Modules `import carbonmeter` once loaded that it has no need of at import.
HEAVY = ("typing", "functools", "re", "logging", "platform", "subprocess", "inspect")


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_loads_none_of_the_heavy_modules() -> None:
    bare = loaded_after("pass")
    heavy = [name for name in HEAVY if name not in bare]
    if not heavy:
        pytest.skip("this interpreter loads every one of them at start-up")
    loaded = loaded_after("import carbonmeter")
    assert sorted(set(heavy) & loaded) == []


def test_track_emissions_is_still_importable_by_name() -> None:
    loaded = loaded_after(
        "from carbonmeter import track_emissions\n"
        "import carbonmeter\n"
        "assert carbonmeter.track_emissions is track_emissions\n"
        "assert 'track_emissions' in carbonmeter.__all__"
    )
    assert "carbonmeter.decorators" in loaded
