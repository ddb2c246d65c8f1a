"""Hardware TDPs for `carbonmeter estimate`: the GPU table, then the CPU load model's lookup."""

from __future__ import annotations

import csv
import difflib
import io
import re
from dataclasses import dataclass
from functools import cache

from carbonmeter._core import TABLES, lookup_cpu_tdp


@dataclass(frozen=True)
class Device:
    """One device's TDP with where it comes from."""

    model: str
    kind: str
    tdp_w: float
    source: str


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", name.casefold())


@cache
def _gpu_table() -> tuple[Device, ...]:
    rows = csv.DictReader(io.StringIO(TABLES["gpu_tdp.csv"]))
    return tuple(
        Device(row["model"], row["kind"], float(row["tdp_w"]), f"{row['source']}, {row['year']}")
        for row in rows
    )


@cache
def _cpu_names() -> tuple[str, ...]:
    return tuple(row["model"] for row in csv.DictReader(io.StringIO(TABLES["cpu_tdp.csv"])))


def find(name: str) -> Device:
    """The device named `name` (any case, spaces and dashes ignored), else a ValueError.

    GPU table first (exact, then a unique entry containing the name, so `a10g` or `k80`), then
    the CPU table through the core's own CPU-model matching (`lookup_cpu_tdp`).
    """
    wanted = _key(name)
    if not wanted:
        raise ValueError(f"invalid --hardware {name!r}: expected a GPU or CPU model, e.g. T4")
    gpus = _gpu_table()
    exact = [d for d in gpus if _key(d.model) == wanted]
    if exact:
        return exact[0]
    partial = [d for d in gpus if wanted in _key(d.model)]
    if len(partial) == 1:
        return partial[0]
    if len(partial) > 1:
        names = ", ".join(repr(d.model) for d in partial[:6])
        raise ValueError(f"ambiguous --hardware {name!r}: did you mean one of {names}?")
    cpu = lookup_cpu_tdp(name)
    if cpu is not None:
        model, tdp_w = cpu
        source = "data/cpu_tdp.csv: manufacturers' published specifications (Intel ARK, AMD)"
        return Device(model, "cpu", tdp_w, source)
    known = [d.model for d in gpus] + list(_cpu_names())
    by_key = {_key(n): n for n in known}
    close = difflib.get_close_matches(wanted, list(by_key), n=3, cutoff=0.6)
    hint = ", ".join(repr(by_key[k]) for k in close) if close else "'T4', 'A100 SXM4 80 GB'"
    raise ValueError(
        f"unknown --hardware {name!r}: not in the GPU table (48 models) nor the CPU table; "
        f"did you mean {hint}? (carbonmeter estimate --help)"
    )
