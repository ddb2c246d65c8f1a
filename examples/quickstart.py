"""Measure a CPU-bound job and append its row to ./emissions.csv.

No network and no GPU needed: the grid intensity comes from the tables embedded in carbonmeter
(pass a country as the first argument, e.g. `python examples/quickstart.py FRA`; without one the
world average is used and a warning says how to set yours).
"""

from __future__ import annotations

import sys
import time

from carbonmeter import EmissionsTracker


def train(seconds: float) -> int:
    """Stands in for a training loop: keeps one core busy for `seconds`."""
    deadline = time.perf_counter() + seconds
    steps = 0
    while time.perf_counter() < deadline:
        sum(i * i for i in range(10_000))
        steps += 1
    return steps


def main() -> None:
    country = sys.argv[1] if len(sys.argv) > 1 else None
    with EmissionsTracker(
        project_name="quickstart", country_iso_code=country, measure_power_secs=0.5
    ) as tracker:
        steps = train(seconds=2.0)
    data = tracker.final_emissions_data
    assert data is not None
    print(
        f"{steps} steps in {data.duration:.2f} s: {data.energy_consumed * 1000:.4f} Wh "
        f"(CPU {data.cpu_energy * 1000:.4f} Wh by {data.cpu_method}, "
        f"RAM {data.ram_energy * 1000:.4f} Wh by {data.ram_method}), "
        f"{data.emissions * 1000:.4f} g CO2eq at {data.intensity_g_per_kwh:g} g/kWh "
        f"({data.country_name or 'world average'}, {data.intensity_year})"
    )
    print(f"row appended to {tracker.output_path}")


if __name__ == "__main__":
    main()
