"""What `import carbonmeter` loads: the standard library modules a training script would bring
anyway are still not ours to import (their cost is the figure benches/compare.py measures)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Modules `import carbonmeter` once loaded that it has no need of at import.
HEAVY = ("typing", "functools", "re", "logging", "platform", "subprocess", "inspect", "__future__")


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


def run_fresh(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)


def test_a_quiet_tracker_never_imports_logging() -> None:
    if "logging" in loaded_after("pass"):
        pytest.skip("this interpreter loads logging at start-up")
    done = run_fresh(
        "import sys\n"
        "from carbonmeter import EmissionsTracker\n"
        "tracker = EmissionsTracker(country_iso_code='FRA', save_to_file=False, "
        "log_level='error', default_cpu_power=10)\n"
        "tracker.start()\n"
        "tracker.start()\n"  # a warning, below the level
        "tracker.stop()\n"
        "print('logging' in sys.modules)\n"
        "import logging\n"
        "print(logging.getLevelName(logging.getLogger('carbonmeter').level))\n"
        "tracker = EmissionsTracker(country_iso_code='FRA', save_to_file=False)\n"
        "print(logging.getLevelName(logging.getLogger('carbonmeter').level))\n"
    )
    # The level is Python's once the bridge connects: here, at the next tracker after `logging`
    # is loaded (the first record that passes the level would connect it too).
    assert done.stdout.split() == ["False", "NOTSET", "ERROR"]
    assert "Already started" not in done.stderr


def test_the_first_record_that_passes_imports_logging_and_is_shown() -> None:
    done = run_fresh(
        "import sys\n"
        "from carbonmeter import EmissionsTracker\n"
        "tracker = EmissionsTracker(country_iso_code='FRA', save_to_file=False, "
        "default_cpu_power=10)\n"
        "tracker.start()\n"
        "tracker.start()\n"
        "tracker.stop()\n"
        "print('logging' in sys.modules)\n"
    )
    assert done.stdout.split() == ["True"]
    assert "carbonmeter: Already started tracking" in done.stderr
