"""`EmissionsCallback` for PyTorch Lightning: energy and kg CO2eq of every train epoch and
validation pass, logged through Lightning's own logging so every Lightning logger receives them.

Example:
    >>> import lightning.pytorch as pl  # doctest: +SKIP
    >>> from carbonmeter.lightning import EmissionsCallback  # doctest: +SKIP
    >>> trainer = pl.Trainer(max_epochs=3, callbacks=[EmissionsCallback()])  # doctest: +SKIP

Train epochs are logged as `co2_kg`, `energy_kwh`, ... (the samples of every training batch are
counted, for `j_per_sample`); validation passes (which run inside the train epoch, so their window
nests in it) as `val_co2_kg`, ... The callback subclasses `lightning.pytorch.Callback` (the
`lightning` package), or `pytorch_lightning.Callback` when only `pytorch_lightning` is installed.

Which figures are logged is the `log_metrics` setting's choice (by default `co2_kg`, its band,
`energy_kwh`, `co2_kg_total` and the projection; `log_metrics="all"` for the energies per
component, power and per-sample figures too), as in `carbonmeter.loggers`.

When training ends, the run's totals (`run_co2_kg`, `run_energy_kwh`, the intensity with its
source, the methods) go to the summary of each Lightning `WandbLogger` (`run.summary`) and
`CometLogger` (`log_others`) of the trainer, as metrics and tags of each `MLFlowLogger`'s run,
and as scalars and a text summary of each `TensorBoardLogger`, under the names
`carbonmeter.loggers` uses.

In a DDP run each rank measures only its share (its host's CPU and RAM on the lowest local rank,
each GPU on one rank) and writes its rows with `scope=rank`; global rank 0 gathers them into the
job's rows (`scope=job`) and logs the job's figures, so Lightning's loggers receive each epoch's
figure for the whole job once.
"""

from __future__ import annotations

from typing import Any

try:
    import lightning.pytorch as pl
except ImportError:  # only the older stand-alone package is installed
    import pytorch_lightning as pl  # type: ignore[no-redef]

from carbonmeter._core import EmissionsTracker
from carbonmeter._epochs import EpochMeter, MeasuredCallback, Monitor, batch_samples
from carbonmeter.loggers import EmissionsLogger, LoggerSet


class EmissionsCallback(MeasuredCallback, pl.Callback):
    """Measures each train epoch and validation pass in windows of a tracker it owns or shares.

    Args:
        tracker: an `EmissionsTracker` to share (started if idle, never stopped here); by
            default the callback makes one from `tracker_kwargs` when fitting begins.
        monitor: a metric the module logs (`"val_acc"`, as `EarlyStopping` names it), read from
            `trainer.callback_metrics` at each train epoch's end and recorded in its row with its
            gain per kg CO2eq (`<monitor>_per_kg`).
        mode: which way it improves: `"max"`, `"min"` or `"auto"` (from the name).
        **tracker_kwargs: `EmissionsTracker` keyword arguments for the owned tracker; with
            `min_gain_per_kg=` (and `patience=`) training stops once the monitored metric gains
            less than that per kg CO2eq over the last `patience` epochs.
    """

    def __init__(
        self,
        tracker: EmissionsTracker | None = None,
        *,
        monitor: str | None = None,
        mode: str = "auto",
        **tracker_kwargs: Any,
    ) -> None:
        super().__init__()
        self._monitor = Monitor(monitor, mode, tracker_kwargs)
        self._epochs = EpochMeter(tracker, tracker_kwargs)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._epochs.begin_run(rank=trainer.global_rank)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epochs.begin_epoch(trainer.current_epoch, "train", total=trainer.max_epochs)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._epochs.count(samples=batch_samples(batch))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Validation ran before this hook (Lightning 2), so its metrics are in callback_metrics.
        metric = self._monitor.metric(trainer.callback_metrics)
        self._log(trainer, pl_module, self._epochs.end_epoch("train", metric=metric))
        if self._epochs.stop_reason is not None:
            # co2_budget_kg crossed with stop_over_budget=True, or the monitored metric stopped
            # paying (min_gain_per_kg): Lightning's own way to stop.
            trainer.should_stop = True

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._epochs.begin_epoch(trainer.current_epoch, "validation")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._log(trainer, pl_module, self._epochs.end_epoch("validation", prefix="val_"))

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._end_run(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._end_run(trainer)

    def _end_run(self, trainer: pl.Trainer) -> None:
        data = self._epochs.end_run()
        if data is None:
            return
        # Lightning loggers take only numbers per step; the run's totals and their provenance
        # go to the clients' own summaries, through the loggers carbonmeter.loggers has.
        summary_loggers: list[EmissionsLogger] = []
        for each in trainer.loggers:
            if isinstance(each, pl.loggers.WandbLogger):
                from carbonmeter.loggers.wandb import WandbLogger

                summary_loggers.append(WandbLogger(each.experiment))
            elif isinstance(each, pl.loggers.CometLogger):
                from carbonmeter.loggers.comet import CometLogger

                summary_loggers.append(CometLogger(each.experiment))
            elif isinstance(each, pl.loggers.MLFlowLogger) and each.run_id is not None:
                from carbonmeter.loggers.mlflow import MlflowLogger

                summary_loggers.append(MlflowLogger(each.run_id, client=each.experiment))
            elif isinstance(each, pl.loggers.TensorBoardLogger):
                from carbonmeter.loggers.tensorboard import TensorBoardLogger

                summary_loggers.append(TensorBoardLogger(each.experiment))
        if summary_loggers:
            LoggerSet(summary_loggers).run_stopped(data)

    @staticmethod
    def _log(
        trainer: pl.Trainer, pl_module: pl.LightningModule, metrics: dict[str, float] | None
    ) -> None:
        # Rank 0 holds the job's figures; the other ranks' shares are in their rows only.
        if trainer.world_size > 1 and trainer.global_rank != 0:
            return
        for name, value in (metrics or {}).items():
            pl_module.log(
                name, value, on_step=False, on_epoch=True, sync_dist=False, rank_zero_only=True
            )
