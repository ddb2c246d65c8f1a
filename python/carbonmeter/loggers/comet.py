"""`CometLogger`: carbonmeter's figures in a Comet experiment.

Example:
    >>> import comet_ml  # doctest: +SKIP
    >>> experiment = comet_ml.start(project_name="bert")  # doctest: +SKIP
    >>> tracker = EmissionsTracker(loggers=["comet"])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import comet_ml

from carbonmeter.loggers import EmissionsLogger


class CometLogger(EmissionsLogger):
    """Logs each epoch as metrics of `experiment` (default: Comet's running experiment) at the
    user's current step with the epoch as epoch, and the run's totals as `log_others`. Without a
    step of the user's, the epoch is the step.

    With no experiment it warns once and logs nothing; it never creates one itself.
    """

    name = "comet"

    def __init__(self, experiment: Any = None) -> None:
        super().__init__()
        self._experiment = experiment
        # The step we last logged at ourselves (not the user's); None after joining theirs.
        self._own_step: int | None = None

    def _target(self) -> Any:
        experiment = self._experiment
        if experiment is None:
            experiment = comet_ml.get_running_experiment()
        if experiment is None:
            self.warn_once(
                "no-experiment",
                "no running Comet experiment (call comet_ml.start() first): nothing is logged",
            )
        return experiment

    def _step(self, experiment: Any, own: int) -> int:
        """The user's current step, else `own` (the epoch, or the window's index)."""
        # Comet keeps the last step logged as its current one, ours included: a step we set
        # ourselves is not the user's.
        current: int | None = getattr(experiment, "curr_step", None)
        if current is not None and current != self._own_step:
            self._own_step = None
            return current
        self._own_step = own
        return own

    def log_epoch(self, metrics: dict[str, float], epoch: int) -> None:
        experiment = self._target()
        if experiment is not None:
            experiment.log_metrics(metrics, step=self._step(experiment, epoch), epoch=epoch)

    def log_window(self, name: str, metrics: dict[str, float], index: int) -> None:
        """A named window's figures at the user's current step, else at `index`."""
        experiment = self._target()
        if experiment is not None:
            experiment.log_metrics(metrics, step=self._step(experiment, index))

    def log_summary(self, summary: dict[str, Any]) -> None:
        experiment = self._target()
        if experiment is not None:
            present = {key: value for key, value in summary.items() if value is not None}
            experiment.log_others(present)
