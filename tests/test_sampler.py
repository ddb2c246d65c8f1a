"""The sampler thread as a run sees it: a run of counters ticks only to catch a wrap."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fixtures.powercap import FakePowercap

from carbonmeter import EmissionsTracker

pytestmark = pytest.mark.usefixtures("isolated")


def sampler_wakeups() -> int:
    """Times the process's sampler thread has been scheduled (`schedstat`'s third field)."""
    for task in Path("/proc/self/task").iterdir():
        try:
            if (task / "comm").read_text().strip() == "carbonmeter-sam":
                return int((task / "schedstat").read_text().split()[2])
        except OSError:
            continue
    return 0


@pytest.mark.parametrize(
    ("zone_kwargs", "tracker_kwargs", "wakeups"),
    [
        # Counters only, a wrap decades away: no tick at measure_power_secs.
        ({}, {}, range(0, 4)),
        # Counters only, a wrap every 0.2 s at the zone's peak: a tick every 0.1 s.
        ({"max_energy_range_uj": 2_000_000, "max_power_uw": 10_000_000}, {}, range(2, 8)),
        # A modelled CPU beside the counter: a tick every measure_power_secs, as before.
        ({}, {"force_cpu_power": 30}, range(15, 80)),
    ],
    ids=["counters", "counters-wrapping", "modelled-cpu"],
)
def test_a_run_of_counters_ticks_only_to_catch_a_wrap(
    powercap: FakePowercap,
    zone_kwargs: dict[str, int],
    tracker_kwargs: dict[str, Any],
    wakeups: range,
) -> None:
    powercap.add_zone("intel-rapl:0", "package-0", energy_uj=1_000_000, **zone_kwargs)
    powercap.add_zone("intel-rapl:0:0", "dram", energy_uj=1_000_000, **zone_kwargs)
    tracker = EmissionsTracker(
        powercap_root=str(powercap.root),
        save_to_file=False,
        country_iso_code="FRA",
        measure_power_secs=0.01,
        **tracker_kwargs,
    )
    tracker.start()
    before = sampler_wakeups()
    time.sleep(0.4)
    woken = sampler_wakeups() - before
    tracker.stop()
    assert woken in wakeups
    data = tracker.final_emissions_data
    assert data is not None and data.ram_method == "rapl"
