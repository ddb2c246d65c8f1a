"""What the subcommands share: the usage error, number parsing, JSON output and the one-line
summary."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from carbonmeter._core import EmissionsData
from carbonmeter._format import co2, energy


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


def number(kind: type[float] | type[int]) -> Callable[[str], float]:
    """An argparse `type` naming the bad text and what was expected."""

    def parse(text: str) -> float:
        try:
            return kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {what}") from None

    parse.__name__ = kind.__name__
    return parse


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def to_json(value: Any) -> str:
    """Strict JSON, as jq and JavaScript read it: a figure that was not measured (NaN, an
    `unmeasured` GPU's energy) is `null`, never the `NaN` that Python's json would write."""
    return json.dumps(_finite(value), indent=2, allow_nan=False)


def make_output_dir(settings: dict[str, object]) -> None:
    """Creates `--output-dir` when rows are saved, so `run --output-dir runs` works anywhere."""
    folder = settings.get("output_dir")
    if folder is None or settings.get("save_to_file") is False:
        return
    try:
        Path(str(folder)).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create --output-dir {str(folder)!r}: {err.strerror}") from None


def summary(data: EmissionsData) -> str:
    """Energy by component and CO2 with the grid it was computed at, on one line."""
    parts = [
        f"{energy(data.energy_consumed)}",
        f"(CPU {energy(data.cpu_energy)}, GPU {energy(data.gpu_energy)}, "
        f"RAM {energy(data.ram_energy)})",
        f"{co2(data.emissions)} CO2eq at {data.intensity_g_per_kwh:.0f} g/kWh",
        f"({data.intensity_zone}, {data.intensity_source}"
        + (f", {data.intensity_year})" if data.intensity_year else ")"),
    ]
    return " ".join(parts)
