"""`WandbLogger`: carbonmeter's figures in a Weights & Biases run.

Example:
    >>> import wandb  # doctest: +SKIP
    >>> run = wandb.init(project="bert")  # doctest: +SKIP
    >>> tracker = EmissionsTracker(loggers=["wandb"])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import wandb

from carbonmeter.loggers import EmissionsLogger


class WandbLogger(EmissionsLogger):
    """Logs each epoch to `run` (default: the active `wandb.run`) and the totals to its summary.

    Epoch figures are logged against the metric `epoch` (declared with `define_metric`), so W&B
    charts them by epoch whatever else the run logs per step. With no active run it warns once
    and logs nothing; it never starts a run itself.
    """

    name = "wandb"

    def __init__(self, run: Any = None) -> None:
        super().__init__()
        self._run = run
        self._declared: set[str] = set()

    def _target(self) -> Any:
        run = self._run if self._run is not None else wandb.run
        if run is None:
            self.warn_once(
                "no-run", "no active W&B run (call wandb.init() first): nothing is logged"
            )
        return run

    def log_epoch(self, metrics: dict[str, float], epoch: int) -> None:
        run = self._target()
        if run is None:
            return
        for key in metrics.keys() - self._declared:
            run.define_metric(key, step_metric="epoch")
            self._declared.add(key)
        run.log({"epoch": epoch, **metrics})

    def log_summary(self, summary: dict[str, Any]) -> None:
        run = self._target()
        if run is not None:
            run.summary.update({key: value for key, value in summary.items() if value is not None})
