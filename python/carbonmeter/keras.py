"""`EmissionsCallback` for Keras 3 `model.fit`: energy and kg CO2eq of every epoch.

Example:
    >>> import keras  # doctest: +SKIP
    >>> from carbonmeter.keras import EmissionsCallback  # doctest: +SKIP
    >>> callback = EmissionsCallback(country_iso_code="FRA")  # doctest: +SKIP
    >>> model.fit(x, y, epochs=3, callbacks=[callback])  # doctest: +SKIP

Each epoch's figures are put into the epoch's `logs` (`co2_kg`, `energy_kwh`, `cpu_energy_kwh`,
`gpu_energy_kwh`, `ram_energy_kwh`, and `j_per_sample` from the samples of the batches seen,
counted on the torch backend), so `History`, `CSVLogger`, progress bars and logger
callbacks see them. Keras hands one `logs` dict to the callbacks in list order: put this callback
before the loggers that should receive its values.
"""

from __future__ import annotations

import logging
from typing import Any

import keras

from carbonmeter._core import EmissionsTracker
from carbonmeter._epochs import EpochMeter, MeasuredCallback, batch_samples

logger = logging.getLogger(__name__)


class EmissionsCallback(MeasuredCallback, keras.callbacks.Callback):
    """Measures each epoch of `fit` in a window of a tracker it owns or shares.

    Args:
        tracker: an `EmissionsTracker` to share (started if idle, never stopped here); by
            default the callback makes one from `tracker_kwargs` and stops it after training.
        **tracker_kwargs: `EmissionsTracker` keyword arguments for the owned tracker.
    """

    def __init__(self, tracker: EmissionsTracker | None = None, **tracker_kwargs: Any) -> None:
        super().__init__()
        self._epochs = EpochMeter(tracker, tracker_kwargs)

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

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epochs.begin_epoch(epoch)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = self._epochs.end_epoch()
        if metrics is not None and logs is not None:
            logs.update(metrics)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._epochs.end_run()
