"""`MlflowLogger`: carbonmeter's figures in an MLflow run.

Example:
    >>> import mlflow  # doctest: +SKIP
    >>> with mlflow.start_run():  # doctest: +SKIP
    ...     tracker = EmissionsTracker(loggers=["mlflow"])  # doctest: +SKIP
"""

from __future__ import annotations

import time
from typing import Any

import mlflow
from mlflow.entities import Metric, RunTag

from carbonmeter.loggers import EmissionsLogger

# The summary's entries that say where a figure comes from: tags (text), not metrics.
PROVENANCE = (
    "intensity_source",
    "intensity_year",
    "intensity_method",
    "country_name",
    "country_iso_code",
    "region",
    "cpu_method",
    "ram_method",
    "gpu_method",
    "carbonmeter_version",
)
# Tags are namespaced so they never overwrite one of the user's.
TAG_PREFIX = "carbonmeter."


class MlflowLogger(EmissionsLogger):
    """Logs each epoch as metrics of an MLflow run with the epoch as step, and when the run
    stops its totals as metrics and their provenance as tags (`carbonmeter.intensity_source`,
    ...), once.

    Args:
        run_id: the run to log to; by default the active run (`mlflow.active_run()`) at each
            call. With neither it warns once and logs nothing: MLflow's fluent calls would
            start a run of their own, so this logger never uses them.
        client: an `MlflowClient` (Lightning's `MLFlowLogger.experiment`); by default one for
            the current tracking URI.
    """

    name = "mlflow"

    def __init__(self, run_id: str | None = None, client: Any = None) -> None:
        super().__init__()
        self._run_id = run_id
        self._client = client
        self._last_step = 0

    def _target(self) -> tuple[Any, str] | None:
        run_id = self._run_id
        if run_id is None:
            run = mlflow.active_run()
            if run is None:
                self.warn_once(
                    "no-run",
                    "no active MLflow run (call mlflow.start_run() first, or pass run_id): "
                    "nothing is logged",
                )
                return None
            run_id = run.info.run_id
        client = self._client if self._client is not None else mlflow.MlflowClient()
        return client, run_id

    def _log(self, metrics: dict[str, float], step: int) -> None:
        target = self._target()
        if target is None:
            return
        client, run_id = target
        now_ms = int(time.time() * 1000)
        batch = [Metric(key, float(value), now_ms, step) for key, value in metrics.items()]
        client.log_batch(run_id, metrics=batch, synchronous=True)

    def log_epoch(self, metrics: dict[str, float], epoch: int) -> None:
        self._last_step = epoch
        self._log(metrics, epoch)

    def log_window(self, name: str, metrics: dict[str, float], index: int) -> None:
        self._log(metrics, index)

    def log_summary(self, summary: dict[str, Any]) -> None:
        target = self._target()
        if target is None:
            return
        client, run_id = target
        present = {key: value for key, value in summary.items() if value is not None}
        tags = {f"{TAG_PREFIX}{key}": str(present[key]) for key in PROVENANCE if key in present}
        now_ms = int(time.time() * 1000)
        # Numbers only: the summary's text is provenance, in the tags.
        totals = [
            Metric(key, float(value), now_ms, self._last_step)
            for key, value in present.items()
            if key not in PROVENANCE and isinstance(value, (int, float))
        ]
        client.log_batch(
            run_id,
            metrics=totals,
            tags=[RunTag(key, value) for key, value in tags.items()],
            synchronous=True,
        )
