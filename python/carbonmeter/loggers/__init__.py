"""Experiment-tracker loggers: `co2_kg` per epoch in W&B, Comet, MLflow and TensorBoard, next
to the loss.

Attach them with `EmissionsTracker(loggers=["wandb", "comet", "mlflow", "tensorboard"])` (or
logger objects such as `WandbLogger(run)`, `CometLogger(experiment)`, `MlflowLogger(run_id)` and
`TensorBoardLogger(writer)`, all importable from here), or the same `loggers=` argument of any
framework callback. Each epoch window's figures join the user's own step, with the epoch beside
them. By default those users read: `co2_kg` (that epoch) with its band `co2_kg_low` /
`co2_kg_high`, `energy_kwh`, `co2_kg_total` (cumulative) and `co2_kg_projected` (the whole run,
when the epoch count is known). The `log_metrics` setting asks for others (`"all"`, or a list
of names among `carbonmeter._epochs.ALL_METRICS`: the projection's band, `cpu_energy_kwh`,
`gpu_energy_kwh`, `ram_energy_kwh`, `power_w` and, where samples or tokens were counted,
`j_per_sample`, `j_per_token`, `j_per_request` and `co2_g_per_1k_tokens`). Validation and
evaluation epochs get their phase as prefix (`validation_co2_kg`); a named window
(`start_window("eval")`, `window("data")`) is sent as `window/<name>/co2_kg`, .... When the
run stops, its totals (`run_co2_kg`, `run_energy_kwh`, ..., `run_j_per_token` where counted),
the grid intensity with its source, the location and the methods go to the run's summary (all
of them, whatever `log_metrics` says). A logger that fails warns once per cause and never stops
training. Importing this package imports no client: `WandbLogger` imports `wandb` when first
named.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from carbonmeter._core import EmissionsData, InvalidValueError, _warn_once
from carbonmeter._epochs import chosen_metrics, epoch_metrics, per_unit_metrics

# Numbers the loggers of the process: each logger's causes are its own.
_LOGGERS = itertools.count()


class EmissionsLogger(ABC):
    """Base of the loggers: sends epoch metrics and a run summary to one experiment tracker.

    Subclasses implement `log_epoch` and `log_summary`; the base warns once per cause when the
    client raises, so a closed run or a network fault never reaches the training loop.
    """

    name = "logger"

    def __init__(self) -> None:
        self._causes = f"loggers/{next(_LOGGERS)}"

    @abstractmethod
    def log_epoch(self, metrics: dict[str, float], epoch: int) -> None:
        """Logs one epoch's figures with `epoch` as step."""

    @abstractmethod
    def log_summary(self, summary: dict[str, Any]) -> None:
        """Records the finished run's totals and provenance."""

    def log_window(self, name: str, metrics: dict[str, float], index: int) -> None:
        """Logs a named window's figures (`window/<name>/co2_kg`, ...); `index` counts the
        windows of that name from 0. This base says once that it does not, so a logger of
        the user's that only knows epochs is not silently partial."""
        self.warn_once(
            "windows",
            f"named windows such as {name!r} are not logged by {type(self).__name__} "
            "(their rows are in the CSV); implement log_window to log them",
        )

    def warn_once(self, cause: str, message: str) -> None:
        """Logs `message` unless this logger already warned about `cause`."""
        _warn_once(f"{self._causes}/{cause}", f"{self.name} logger: {message}")

    def safely(self, method: str, *args: Any) -> None:
        try:
            getattr(self, method)(*args)
        except Exception as err:
            self.warn_once(
                f"{method}:{type(err).__name__}",
                f"{method} failed ({type(err).__name__}: {err}); training goes on, "
                "later values are still tried",
            )


def _logger_named(name: str) -> EmissionsLogger:
    if name == "wandb":
        from carbonmeter.loggers.wandb import WandbLogger

        return WandbLogger()
    if name in ("comet", "comet_ml"):
        from carbonmeter.loggers.comet import CometLogger

        return CometLogger()
    if name == "mlflow":
        from carbonmeter.loggers.mlflow import MlflowLogger

        return MlflowLogger()
    if name == "tensorboard":
        from carbonmeter.loggers.tensorboard import TensorBoardLogger

        return TensorBoardLogger()
    raise InvalidValueError(
        f'invalid loggers entry {name!r}: expected "wandb", "comet", "mlflow", "tensorboard" '
        "or an EmissionsLogger"
    )


def run_summary(data: EmissionsData) -> dict[str, Any]:
    """What a finished run reports to an experiment tracker's summary."""
    return {
        "run_co2_kg": data.emissions,
        "run_co2_kg_low": data.emissions_low,
        "run_co2_kg_high": data.emissions_high,
        "run_tracker_cpu_seconds": data.tracker_cpu_seconds,
        "run_energy_kwh": data.energy_consumed,
        "run_cpu_energy_kwh": data.cpu_energy,
        "run_gpu_energy_kwh": data.gpu_energy,
        "run_ram_energy_kwh": data.ram_energy,
        "run_duration_s": data.duration,
        "intensity_g_per_kwh": data.intensity_g_per_kwh,
        "intensity_source": data.intensity_source,
        "intensity_year": data.intensity_year,
        "intensity_method": data.intensity_method,
        "country_name": data.country_name,
        "country_iso_code": data.country_iso_code,
        "region": data.region,
        "cpu_method": data.cpu_method,
        "ram_method": data.ram_method,
        "gpu_method": data.gpu_method,
        "pue": data.pue,
        "carbonmeter_version": data.carbonmeter_version,
        **{
            f"run_{key}": value
            for key, value in {"samples": data.samples, "tokens": data.tokens}.items()
            if value is not None
        },
        **per_unit_metrics(data, "run_"),
        **footprint_summary(data),
    }


def footprint_summary(data: EmissionsData) -> dict[str, Any]:
    """The run's embodied carbon and water (docs/footprint.md); a figure left empty (a device
    without an embodied figure, an unknown on-site WUE) is left out, never logged as 0."""
    figures = {
        "run_embodied_co2_kg": data.embodied_emissions,
        "run_embodied_co2_kg_low": data.embodied_emissions_low,
        "run_embodied_co2_kg_high": data.embodied_emissions_high,
        "run_total_co2_kg": data.total_emissions,
        "run_water_l": data.water_total,
        "run_water_onsite_l": data.water_onsite,
        "run_water_offsite_l": data.water_offsite,
        "hardware_lifetime_years": data.hardware_lifetime_years,
    }
    return {key: value for key, value in figures.items() if value is not None}


class LoggerSet:
    """The loggers of one tracker; the core calls it when a window closes and when the run
    stops.

    Args:
        loggers: names (`"wandb"`, `"comet"`, `"mlflow"`, `"tensorboard"`) or logger objects.
        log_metrics: the tracker's `log_metrics` setting (None: the default figures).
    """

    def __init__(
        self,
        loggers: str | EmissionsLogger | Iterable[str | EmissionsLogger],
        log_metrics: str | Iterable[str] | None = None,
    ) -> None:
        if isinstance(loggers, (str, EmissionsLogger)):
            specs: list[str | EmissionsLogger] = [loggers]
        else:
            try:
                specs = list(loggers)
            except TypeError:
                kind = type(loggers).__name__
                raise TypeError(
                    f"loggers must be a name, a logger or a list of them, got a {kind}"
                ) from None
        self._chosen = chosen_metrics(log_metrics)
        self.loggers = [
            spec if isinstance(spec, EmissionsLogger) else _logger_named(str(spec))
            for spec in specs
        ]
        self.co2_kg_total = 0.0
        self._windows_seen: dict[str, int] = {}

    def window_closed(self, data: EmissionsData) -> None:
        if data.epoch is None:
            self._named_window_closed(data)
            return
        phase = data.phase or "train"
        prefix = "" if phase == "train" else f"{phase}_"
        total = None
        if phase == "train":
            self.co2_kg_total += data.emissions
            total = self.co2_kg_total
        metrics = epoch_metrics(data, prefix, self._chosen, co2_kg_total=total)
        for each in self.loggers:
            each.safely("log_epoch", metrics, data.epoch)

    def _named_window_closed(self, data: EmissionsData) -> None:
        """A `start_window` / `window()` row: sent as `window/<name>/...` (issue 28: such rows
        used to be written and logged nowhere, silently)."""
        name = data.window
        if not name:
            return
        base, _, number = name.rpartition("-")
        if data.attribution is not None and base and number.isdigit():
            # A server's shared windows are `<name>-<n>`: one series under `<name>`, not one
            # metric name per request.
            name = base
        index = self._windows_seen.get(name, 0)
        self._windows_seen[name] = index + 1
        metrics = epoch_metrics(data, f"window/{name}/", self._chosen)
        for each in self.loggers:
            each.safely("log_window", name, metrics, index)

    def run_stopped(self, data: EmissionsData) -> None:
        summary = run_summary(data)
        for each in self.loggers:
            each.safely("log_summary", summary)


# Each client is imported only when its logger is first named (PEP 562).
_LAZY = {
    "WandbLogger": "carbonmeter.loggers.wandb",
    "CometLogger": "carbonmeter.loggers.comet",
    "MlflowLogger": "carbonmeter.loggers.mlflow",
    "TensorBoardLogger": "carbonmeter.loggers.tensorboard",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "CometLogger",
    "EmissionsLogger",
    "LoggerSet",
    "MlflowLogger",
    "TensorBoardLogger",
    "WandbLogger",
    "run_summary",
]
