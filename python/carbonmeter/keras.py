"""`EmissionsCallback` for Keras 3: energy and kg CO2eq of every epoch of `fit`, of its
validation, and of each `evaluate` and `predict`.

Example:
    >>> import keras  # doctest: +SKIP
    >>> from carbonmeter.keras import EmissionsCallback  # doctest: +SKIP
    >>> callback = EmissionsCallback(country_iso_code="FRA")  # doctest: +SKIP
    >>> model.fit(x, y, epochs=3, validation_split=0.2, callbacks=[callback])  # doctest: +SKIP
    >>> model.evaluate(x, y, callbacks=[callback])  # doctest: +SKIP

Each epoch's figures are put into the epoch's `logs` (by default `co2_kg`, `co2_kg_low`,
`co2_kg_high`, `energy_kwh`, `co2_kg_total` and `co2_kg_projected`; `val_co2_kg`, ... for its
validation; `EmissionsCallback(log_metrics="all")` adds the energies per component, `power_w` and
`j_per_sample` from the samples of the training batches seen, counted on the torch backend), so
`History`, `CSVLogger`, progress bars and logger callbacks see them. Keras hands one `logs` dict to
the callbacks in list order: put this callback before the loggers that should receive its values.

Validation inside `fit` is the phase `validation`, numbered by its epoch and nested in that
epoch's window (as in Lightning); a standalone `evaluate` or `predict` is the phase `evaluate` or
`predict`, numbered from 0 per phase, with its own row.

Each call is measured in a run that ends with the call (so no idle time between calls is
counted), all under the experiment of the callback's tracker: the report counts an
evaluation-only run as a phase of its experiment's training, not as a run of its own.
`final_emissions` and `final_emissions_data` stay the training's (`fit`'s) run, whatever ran
after it; `last_evaluation` and `last_prediction` hold the later calls' figures.
"""

from __future__ import annotations

import logging
from typing import Any

import keras

from carbonmeter._core import EmissionsData, EmissionsTracker
from carbonmeter._epochs import EpochMeter, MeasuredCallback, Monitor, batch_samples

logger = logging.getLogger(__name__)


class EmissionsCallback(MeasuredCallback, keras.callbacks.Callback):
    """Measures each epoch of `fit`, its validation, and each `evaluate` / `predict` in windows
    of a tracker it owns or shares.

    Args:
        tracker: an `EmissionsTracker` to share (started if idle, never stopped here); by
            default the callback makes one from `tracker_kwargs` and stops it after training.
        monitor: a metric of the epoch's `logs` (`"val_accuracy"`, as `EarlyStopping` names
            it) to record in each epoch row, with its gain per kg CO2eq (`<monitor>_per_kg`).
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
        self._epoch: int | None = None  # the fit epoch in progress; None outside fit
        self._counting: tuple[Any, Any] | None = None  # (our wrapper, the model's step)
        # The last fit's run: the callback's figure, not the evaluate or predict after it.
        self._training: EmissionsData | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._epochs.begin_run()
        self._count_batches()

    def _count_batches(self) -> None:
        """Counts the samples of every batch `fit` trains on. Keras hands callbacks no batch,
        so the model's step function is wrapped: on the torch backend it is called eagerly
        once per batch with that batch. Other backends trace it, so nothing is counted there
        (samples stay empty rather than wrong)."""
        step = getattr(self.model, "train_function", None)
        if step is None or getattr(step, "_carbonmeter_counted", False):
            return
        if keras.backend.backend() != "torch":
            logger.warning(
                "carbonmeter counts Keras samples on the torch backend only; with %r the rows "
                "have no samples (call tracker.count(samples=...) yourself)",
                keras.backend.backend(),
            )
            return
        epochs = self._epochs

        def counted(data: Any, *args: Any, **kwargs: Any) -> Any:
            epochs.count(samples=batch_samples(data))
            return step(data, *args, **kwargs)

        counted._carbonmeter_counted = True  # type: ignore[attr-defined]
        self.model.train_function = counted
        self._counting = (counted, step)

    def _stop_counting(self) -> None:
        """Puts the model's own step function back, so a later `fit` counts for its own
        callbacks only."""
        if self._counting is None:
            return
        counted, step = self._counting
        self._counting = None
        if getattr(self.model, "train_function", None) is counted:
            self.model.train_function = step

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch
        total = self.params.get("epochs") if self.params else None
        self._epochs.begin_epoch(epoch, total=total if isinstance(total, int) else None)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = None
        metrics = self._epochs.end_epoch(metric=self._monitor.metric(logs))
        if metrics is not None and logs is not None:
            logs.update(metrics)
            # Keras copies the logs it hands to on_test_end, so validation's figures are added
            # here, under the val_ prefix fit gives the validation metrics.
            logs.update(self._epochs.last_epoch.pop("validation", {}))
        if self._epochs.stop_reason is not None and self.model is not None:
            # co2_budget_kg crossed with stop_over_budget=True, or the monitored metric stopped
            # paying (min_gain_per_kg): Keras's own way to stop.
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._stop_counting()
        self._training = self._epochs.end_run()

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self._epoch is not None:
            self._epochs.begin_epoch(self._epoch, "validation")
        else:
            self._begin_standalone("evaluate")

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._epochs.is_open("validation"):
            self._epochs.end_epoch("validation", prefix="val_")
        else:
            self._end_standalone("evaluate")

    def on_predict_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._begin_standalone("predict")

    def on_predict_end(self, logs: dict[str, Any] | None = None) -> None:
        self._end_standalone("predict")

    def _begin_standalone(self, phase: str) -> None:
        # Outside fit, an owned tracker measures the call as a run of its own (its run row and
        # summaries written at the end); a shared one only gets the window.
        self._epochs.begin_run()
        self._epochs.begin_epoch(None, phase)

    def _end_standalone(self, phase: str) -> None:
        self._epochs.end_epoch(phase)
        self._epochs.end_run()

    @property
    def final_emissions(self) -> float | None:
        """The last `fit`'s kg CO2eq once it has ended (issue 32: not the `evaluate` or
        `predict` after it); without a `fit`, as `EmissionsTracker.final_emissions`."""
        data = self.final_emissions_data
        return data.emissions if data is not None else None

    @property
    def final_emissions_data(self) -> EmissionsData | None:
        """The last `fit`'s run once it has ended; without a `fit` (or with a shared tracker,
        whose run is the caller's), the tracker's last run."""
        return self._training or super().final_emissions_data

    @property
    def last_evaluation(self) -> dict[str, float] | None:
        """The figures of the last standalone `evaluate` (`co2_kg`, `energy_kwh`, ...)."""
        return self._epochs.last_epoch.get("evaluate")

    @property
    def last_prediction(self) -> dict[str, float] | None:
        """The figures of the last `predict` (`co2_kg`, `energy_kwh`, ...)."""
        return self._epochs.last_epoch.get("predict")
