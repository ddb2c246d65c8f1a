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
    charts them by epoch whatever else the run logs per step. They join the step the user logs
    next (`commit=False`) rather than adding steps of their own; only when nobody committed a
    step since our last values are those committed first, so no epoch overwrites another. With
    no active run it warns once and logs nothing; it never starts a run itself.
    """

    name = "wandb"

    def __init__(self, run: Any = None) -> None:
        super().__init__()
        self._run = run
        self._declared: set[str] = set()
        # The run's step when our last values were left uncommitted; None when none are.
        self._pending_step: int | None = None

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
        self._commit_pending(run)
        run.log({"epoch": epoch, **metrics}, commit=False)
        self._pending_step = run.step

    def log_window(self, name: str, metrics: dict[str, float], index: int) -> None:
        """A named window's figures join the user's next step, as an epoch's do."""
        run = self._target()
        if run is None:
            return
        self._commit_pending(run)
        run.log(metrics, commit=False)
        self._pending_step = run.step

    def log_summary(self, summary: dict[str, Any]) -> None:
        run = self._target()
        if run is not None:
            self._commit_pending(run)
            run.summary.update({key: value for key, value in summary.items() if value is not None})

    def _commit_pending(self, run: Any) -> None:
        """Commits our last values if the user logged no step since (a Keras fit, or a loop that
        logs nothing of its own), so the next `commit=False` does not overwrite them."""
        if self._pending_step is not None and run.step == self._pending_step:
            run.log({})
        self._pending_step = None
