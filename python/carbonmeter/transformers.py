"""`EmissionsCallback` for the Hugging Face `Trainer`: energy and kg CO2eq of every epoch and
evaluation.

Example:
    >>> from carbonmeter.transformers import EmissionsCallback  # doctest: +SKIP
    >>> trainer = Trainer(model, args, callbacks=[EmissionsCallback()])  # doctest: +SKIP

Each epoch's figures (`co2_kg`, `energy_kwh`, `cpu_energy_kwh`, `gpu_energy_kwh`,
`ram_energy_kwh`; `eval_...` for evaluations) are appended to `state.log_history` and added to
the `logs` of the next `on_log`. Importing this module also registers the name `"carbonmeter"`
for `TrainingArguments(report_to=[...])`: listed before `"wandb"`, `"comet_ml"`, `"mlflow"` or
`"tensorboard"`, it runs first and those integrations receive `co2_kg` with the loss (a callback
passed in `callbacks=` runs after the integrations, so they would not see it). Use one way or the
other, not both.
"""

from __future__ import annotations

import logging
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from carbonmeter._core import EmissionsTracker
from carbonmeter._epochs import EpochMeter, MeasuredCallback

logger = logging.getLogger(__name__)

REPORT_TO_NAME = "carbonmeter"


class EmissionsCallback(MeasuredCallback, TrainerCallback):
    """Measures each epoch and evaluation in windows of a tracker it owns or shares.

    Args:
        tracker: an `EmissionsTracker` to share (started if idle, never stopped here); by
            default the callback makes one from `tracker_kwargs` when training begins.
        **tracker_kwargs: `EmissionsTracker` keyword arguments for the owned tracker.
    """

    def __init__(self, tracker: EmissionsTracker | None = None, **tracker_kwargs: Any) -> None:
        self._epochs = EpochMeter(tracker, tracker_kwargs)
        self._pending_logs: dict[str, float] = {}

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._epochs.begin_run(rank=args.process_index)

    def on_epoch_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        total = state.num_train_epochs or args.num_train_epochs
        self._epochs.begin_epoch(round(state.epoch or 0), "train", total=int(total) or None)

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._publish(state, self._epochs.end_epoch("train"))
        if self._epochs.stop_reason is not None:
            # co2_budget_kg crossed with stop_over_budget=True: the Trainer's own way to stop.
            control.should_training_stop = True

    def on_prediction_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # The Trainer has no evaluation-begin hook: the first prediction step opens the window.
        if not self._epochs.is_open("eval"):
            self._epochs.begin_epoch(round(state.epoch or 0), "eval")

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        metrics = self._epochs.end_epoch("eval", prefix="eval_")
        evaluation = kwargs.get("metrics")
        if metrics is not None and isinstance(evaluation, dict):
            evaluation.update(metrics)
        self._publish(state, metrics)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs is not None and self._pending_logs:
            logs.update(self._pending_logs)
            self._pending_logs.clear()

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._epochs.end_run()

    def _publish(self, state: TrainerState, metrics: dict[str, float] | None) -> None:
        if metrics is None:
            return
        state.log_history.append({**metrics, "epoch": state.epoch, "step": state.global_step})
        self._pending_logs.update(metrics)


def register_report_to() -> bool:
    """Adds `"carbonmeter"` to the Trainer's `report_to` names; False if this transformers
    version keeps them elsewhere (then pass `callbacks=[EmissionsCallback()]`)."""
    try:
        from transformers.integrations import integration_utils
    except ImportError:
        return False
    table = getattr(integration_utils, "INTEGRATION_TO_CALLBACK", None)
    if not isinstance(table, dict):
        logger.warning(
            "this transformers version has no INTEGRATION_TO_CALLBACK table: "
            "report_to=['carbonmeter'] is unavailable, pass callbacks=[EmissionsCallback()]"
        )
        return False
    table.setdefault(REPORT_TO_NAME, EmissionsCallback)
    return True


register_report_to()
