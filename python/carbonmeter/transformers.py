"""`EmissionsCallback` for the Hugging Face `Trainer`: energy and kg CO2eq of every epoch and
evaluation.

Example:
    >>> from carbonmeter.transformers import EmissionsCallback  # doctest: +SKIP
    >>> trainer = Trainer(model, args, callbacks=[EmissionsCallback()])  # doctest: +SKIP

Each epoch's figures (by default `co2_kg`, its band, `energy_kwh`, `co2_kg_total` and the
projection; with the `log_metrics` setting also the energies per component, `power_w`,
`j_per_sample`, and `j_per_token` with `co2_g_per_1k_tokens` when `include_num_input_tokens_seen`
is on) are added to the `logs` of the next `on_log` and join the epoch's own `state.log_history`
entry (with `logging_strategy="epoch"`); only where the Trainer logs nothing at the epoch's end do
they get an entry of their own. An evaluation's window closes in the `on_log` that carries its
metrics (the Trainer logs them before `on_evaluate`), so `eval_co2_kg`, ... land in that same
`logs` dict, its `log_history` entry and the metrics `evaluate()` returns; it is numbered by the
train epoch it follows, so train and eval rows of one epoch share its number. Outside training,
an evaluation or prediction is a run of its own, which ends with it. Importing this module also
registers the name `"carbonmeter"` for `TrainingArguments(report_to=[...])`: listed before
`"wandb"`, `"comet_ml"`, `"mlflow"` or `"tensorboard"`, it runs first and those integrations
receive `co2_kg` with the loss (a callback passed in `callbacks=` runs after the integrations, so
they would not see it). Use one way or the other, not both. Built from that name, the callback
takes its settings from `CARBONMETER_*` variables and `.codecarbon.config`, and
`TrainingArguments.run_name` as its `experiment_name`. When training ends, the run's totals go
to the summary of the W&B run and Comet experiment of `report_to`, and as metrics and tags to its
MLflow run.
"""

from __future__ import annotations

import logging
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from carbonmeter._core import EmissionsTracker
from carbonmeter._epochs import EpochMeter, MeasuredCallback, Monitor
from carbonmeter.loggers import EmissionsLogger, LoggerSet

logger = logging.getLogger(__name__)

REPORT_TO_NAME = "carbonmeter"


class EmissionsCallback(MeasuredCallback, TrainerCallback):
    """Measures each epoch and evaluation in windows of a tracker it owns or shares.

    Args:
        tracker: an `EmissionsTracker` to share (started if idle, never stopped here); by
            default the callback makes one from `tracker_kwargs` when training begins.
        monitor: an evaluation metric (`"accuracy"` or `"eval_accuracy"`) recorded in each
            evaluation's row with its gain per kg CO2eq (`eval_<metric>_per_kg`); by default the
            Trainer's `metric_for_best_model`, judged the way its `greater_is_better` says.
        mode: which way it improves: `"max"`, `"min"` or `"auto"` (the Trainer's
            `greater_is_better` where it is set, else from the name).
        **tracker_kwargs: `EmissionsTracker` keyword arguments for the owned tracker; with
            `min_gain_per_kg=` (and `patience=`) training stops once the monitored metric gains
            less than that per kg CO2eq of the training epochs over the last `patience`
            evaluations.
    """

    def __init__(
        self,
        tracker: EmissionsTracker | None = None,
        *,
        monitor: str | None = None,
        mode: str = "auto",
        **tracker_kwargs: Any,
    ) -> None:
        # The Trainer's metric_for_best_model is only known at on_train_begin: checked there.
        self._monitor = Monitor(monitor, mode, {})
        self._gated = tracker_kwargs.get("min_gain_per_kg") is not None
        self._epochs = EpochMeter(tracker, tracker_kwargs)
        self._pending_logs: dict[str, float] = {}
        self._train_epoch: int | None = None  # the last train epoch begun
        self._last_eval: dict[str, float] = {}
        # The step whose log entry the last epoch's figures wait to join; None when none wait.
        self._joining: int | None = None
        self._tokens_seen = 0
        self._epoch_samples = 0

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._epochs.begin_run(**_owned_defaults(args))
        self._tokens_seen = state.num_input_tokens_seen or 0
        self._monitor = _eval_monitor(self._monitor, args, self._gated)

    def on_epoch_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._train_epoch = round(state.epoch or 0)
        total = state.num_train_epochs or args.num_train_epochs
        self._epochs.begin_epoch(self._train_epoch, "train", total=int(total) or None)
        self._epoch_samples = 0

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # The Trainer hands callbacks no batch: an optimizer step is `gradient_accumulation_steps`
        # batches of `train_batch_size` (this process's), and an epoch's last batch is cut to
        # what the dataset has left.
        samples = args.train_batch_size * args.gradient_accumulation_steps
        dataset = getattr(kwargs.get("train_dataloader"), "dataset", None)
        if dataset is not None and hasattr(dataset, "__len__"):
            per_process = -(-len(dataset) // max(args.world_size, 1))
            samples = max(min(samples, per_process - self._epoch_samples), 0)
        self._epoch_samples += samples
        tokens = None
        # Counted by the Trainer itself when this option is on, summed over processes: each
        # process is credited an equal share (the remainder to process 0), so a job's rows count
        # every token once and its job row adds them up to the Trainer's figure.
        if args.include_num_input_tokens_seen not in (False, "no", None):
            seen = state.num_input_tokens_seen or 0
            job_tokens, self._tokens_seen = seen - self._tokens_seen, seen
            processes = max(args.world_size, 1)
            tokens = job_tokens // processes
            if args.process_index == 0:
                tokens += job_tokens % processes
        self._epochs.count(samples=samples, tokens=tokens)

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._publish(state, control, self._epochs.end_epoch("train"))
        if self._epochs.stop_reason is not None:
            # co2_budget_kg crossed with stop_over_budget=True: the Trainer's own way to stop.
            control.should_training_stop = True

    def on_prediction_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # The Trainer has no evaluation-begin hook: the first prediction step opens the window.
        # Outside training it begins a run of its own, which ends with the window: in the
        # on_log of the evaluation's metrics, or at on_predict.
        if not self._epochs.is_open("eval"):
            self._epochs.begin_epoch(self._train_epoch, "eval", **_owned_defaults(args))

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # Normally closed by the on_log of the evaluation's metrics; this is for a Trainer
        # subclass whose evaluate() logs nothing.
        metrics = self._end_eval({})
        evaluation = kwargs.get("metrics")
        if isinstance(evaluation, dict):
            evaluation.update(metrics or self._last_eval)
        self._last_eval = {}

    def on_predict(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # predict() logs nothing, so without this its window would stay open until the next
        # on_log and be closed with a training log's figures.
        measured = self._end_eval(metrics or {})
        if measured and isinstance(metrics, dict):
            metrics.update(measured)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs is None:
            return
        if self._pending_logs:
            logs.update(self._pending_logs)
            joined = self._joining is not None and state.log_history
            if joined and state.log_history[-1].get("step") == self._joining:
                state.log_history[-1].update(self._pending_logs)
            elif self._joining is not None:
                self._add_own_entry(state)
            self._joining = None
            self._pending_logs.clear()
        if self._epochs.is_open("eval"):
            # Only an evaluation logs while its window is open: these are its metrics, handed
            # to the integrations after this callback (W&B's eval/loss step).
            metrics = self._end_eval(logs, self._monitor.metric(logs))
            if self._epochs.stop_reason is not None:
                # The evaluation's metric stopped paying (min_gain_per_kg): the Trainer checks
                # this after its evaluation, before the next epoch.
                control.should_training_stop = True
            if metrics:
                logs.update(metrics)
                if state.log_history and state.log_history[-1].get("step") == state.global_step:
                    state.log_history[-1].update(metrics)
                self._last_eval = metrics

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._joining is not None:
            # The log the figures waited for never came: they get their own entry.
            self._add_own_entry(state)
            self._pending_logs.clear()
        data = self._epochs.end_run()
        if data is None:
            return
        # The integrations log per step: the run's totals go to their summaries here.
        summary_loggers: list[EmissionsLogger] = []
        # A list once TrainingArguments has expanded "all" and split a single name.
        report_to = args.report_to if isinstance(args.report_to, list) else [args.report_to]
        if "wandb" in report_to:
            from carbonmeter.loggers.wandb import WandbLogger

            summary_loggers.append(WandbLogger())
        if "comet_ml" in report_to:
            from carbonmeter.loggers.comet import CometLogger

            summary_loggers.append(CometLogger())
        if "mlflow" in report_to:
            # HF's MLflowCallback ends its run after this callback's on_train_end when
            # "carbonmeter" is listed first, so the run is still the active one here.
            from carbonmeter.loggers.mlflow import MlflowLogger

            summary_loggers.append(MlflowLogger())
        if summary_loggers:
            LoggerSet(summary_loggers).run_stopped(data)

    def _end_eval(
        self, logs: dict[str, Any], metric: tuple[str, float, str] | None = None
    ) -> dict[str, float] | None:
        """Closes the evaluation window (recording `metric` in its row); its figures take the
        prefix of the metrics logged (`eval_` unless `evaluate(metric_key_prefix=...)` says
        otherwise)."""
        runtime = next((key for key in logs if key.endswith("_runtime")), "eval_runtime")
        prefix = runtime.removesuffix("runtime")
        return self._epochs.end_epoch("eval", prefix=prefix, metric=metric)

    def _publish(
        self, state: TrainerState, control: TrainerControl, metrics: dict[str, float] | None
    ) -> None:
        if metrics is None:
            return
        self._pending_logs.update(metrics)
        if control.should_log:
            # The Trainer logs the epoch's loss right after on_epoch_end: the figures join that
            # entry of log_history (issue 32: no CO2-only entry of our own beside it).
            self._joining = state.global_step
        else:
            self._add_own_entry(state)

    def _add_own_entry(self, state: TrainerState) -> None:
        """An entry of our own in log_history, where no log of the Trainer's follows."""
        self._joining = None
        own = {**self._pending_logs, "epoch": state.epoch, "step": state.global_step}
        state.log_history.append(own)


def _eval_monitor(monitor: Monitor, args: TrainingArguments, gated: bool) -> Monitor:
    """The evaluation metric to record: `monitor=` or the Trainer's `metric_for_best_model`,
    under the `eval_` prefix the Trainer logs it with (as its own best-model check does)."""
    name = monitor.name or args.metric_for_best_model
    mode = monitor.mode
    if monitor.name is None and mode == "auto" and args.greater_is_better is not None:
        mode = "max" if args.greater_is_better else "min"
    if name is None:
        if gated:
            raise TypeError(
                "min_gain_per_kg needs the metric it judges: pass monitor=<metric name> or set "
                "TrainingArguments(metric_for_best_model=...)"
            )
        return monitor
    if not name.startswith("eval_"):
        name = f"eval_{name}"
    return Monitor(name, mode, {})


def _owned_defaults(args: TrainingArguments) -> dict[str, Any]:
    defaults: dict[str, Any] = {"rank": args.process_index}
    if args.run_name:
        defaults["experiment_name"] = args.run_name
    return defaults


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
            "carbonmeter: this transformers version has no INTEGRATION_TO_CALLBACK table: "
            "report_to=['carbonmeter'] is unavailable, pass callbacks=[EmissionsCallback()]"
        )
        return False
    table.setdefault(REPORT_TO_NAME, EmissionsCallback)
    return True


register_report_to()
