"""`track_emissions`: bare and with arguments, a raising function, a coroutine.

Figures are exact to the µJ (see `helpers.to_uj`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fixtures.powercap import FakePowercap
from helpers import read_csv, to_uj

from carbonmeter import track_emissions

pytestmark = pytest.mark.usefixtures("isolated")


def test_bare_decorator_writes_to_the_working_folder(
    server: FakePowercap, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARBONMETER_POWERCAP_ROOT", str(server.root))

    @track_emissions
    def train(steps: int) -> str:
        server.advance("intel-rapl:0", steps)
        return "done"

    assert train.__name__ == "train"
    assert train(1_100_000) == "done"
    _, rows = read_csv(isolated / "emissions.csv")
    [row] = rows
    assert row["cpu_method"] == "rapl"
    assert to_uj(float(row["cpu_energy"])) == 1_100_000
    assert row["intensity_source"].startswith("world average")


def test_decorator_with_arguments_measures_each_call(server: FakePowercap, tmp_path: Path) -> None:
    @track_emissions(
        project_name="decorated",
        output_dir=str(tmp_path),
        country_iso_code="DEU",
        powercap_root=str(server.root),
    )
    def step(energy_uj: int) -> int:
        server.advance("intel-rapl:0", energy_uj)
        return energy_uj

    assert step(1_000) == 1_000
    assert step(20_000) == 20_000
    _, rows = read_csv(tmp_path / "emissions.csv")
    assert [row["project_name"] for row in rows] == ["decorated", "decorated"]
    assert [row["country_iso_code"] for row in rows] == ["DEU", "DEU"]
    assert rows[0]["run_id"] != rows[1]["run_id"]
    assert [to_uj(float(row["cpu_energy"])) for row in rows] == [1_000, 20_000]


def test_decorator_writes_a_row_when_the_function_raises(tmp_path: Path) -> None:
    @track_emissions(output_dir=str(tmp_path), offline=True, country_iso_code="FRA")
    def fails() -> None:
        raise KeyError("missing batch")

    with pytest.raises(KeyError, match="missing batch"):
        fails()
    _, rows = read_csv(tmp_path / "emissions.csv")
    [row] = rows
    assert row["country_iso_code"] == "FRA"


def test_decorator_measures_a_coroutine_until_it_finishes(
    server: FakePowercap, tmp_path: Path
) -> None:
    @track_emissions(
        output_dir=str(tmp_path), country_iso_code="FRA", powercap_root=str(server.root)
    )
    async def fetch() -> str:
        await asyncio.sleep(0.01)
        server.advance("intel-rapl:0", 3_300_000)
        return "fetched"

    assert asyncio.run(fetch()) == "fetched"
    _, rows = read_csv(tmp_path / "emissions.csv")
    [row] = rows
    assert to_uj(float(row["cpu_energy"])) == 3_300_000
    assert float(row["duration"]) >= 0.01


def test_experiment_name_labels_each_row_and_the_last_call_is_read_back(
    server: FakePowercap, tmp_path: Path
) -> None:
    @track_emissions(
        experiment_name="sweep-3",
        output_dir=str(tmp_path),
        country_iso_code="FRA",
        powercap_root=str(server.root),
    )
    def step(energy_uj: int) -> None:
        server.advance("intel-rapl:0", energy_uj)
        if energy_uj > 10_000:
            raise RuntimeError("diverged")

    assert step.last_emissions_data is None  # type: ignore[attr-defined]
    step(4_000)
    first = step.last_emissions_data  # type: ignore[attr-defined]
    assert first is not None and to_uj(first.cpu_energy) == 4_000
    # A call that raises still leaves its own data, not the previous call's.
    with pytest.raises(RuntimeError, match="diverged"):
        step(50_000)
    data = step.last_emissions_data  # type: ignore[attr-defined]
    assert to_uj(data.cpu_energy) == 50_000
    _, rows = read_csv(tmp_path / "emissions.csv")
    assert [row["experiment_name"] for row in rows] == ["sweep-3", "sweep-3"]
    assert data.run_id == rows[1]["run_id"] and data.experiment_name == "sweep-3"


def test_a_coroutine_leaves_its_last_emissions_data(tmp_path: Path) -> None:
    @track_emissions(output_dir=str(tmp_path), country_iso_code="DEU")
    async def fetch() -> str:
        await asyncio.sleep(0.01)
        return "fetched"

    assert fetch.last_emissions_data is None  # type: ignore[attr-defined]
    assert asyncio.run(fetch()) == "fetched"
    data = fetch.last_emissions_data  # type: ignore[attr-defined]
    _, [row] = read_csv(tmp_path / "emissions.csv")
    assert data.run_id == row["run_id"] and data.duration >= 0.01
