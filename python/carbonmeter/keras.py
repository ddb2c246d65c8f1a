"""`EmissionsCallback` for Keras 3 `model.fit`: energy and kg CO2eq of every epoch.

Example:
    >>> import keras  # doctest: +SKIP
    >>> from carbonmeter.keras import EmissionsCallback  # doctest: +SKIP
    >>> callback = EmissionsCallback(country_iso_code="FRA")  # doctest: +SKIP
    >>> model.fit(x, y, epochs=3, callbacks=[callback])  # doctest: +SKIP

Each epoch's figures are put into the epoch's `logs` (`co2_kg`, `co2_kg_low`, `co2_kg_high`,
`co2_kg_projected`, `energy_kwh`, `cpu_energy_kwh`, `gpu_energy_kwh`, `ram_energy_kwh`), so
`History`, `CSVLogger`, progress bars and logger callbacks see them. Keras hands one `logs` dict to
the callbacks in list order: put this callback before the loggers that should receive its values.
"""

from __future__ import annotations

from typing import Any

import keras

from carbonmeter._core import EmissionsTracker
from carbonmeter._epochs import EpochMeter, MeasuredCallback


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

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        total = self.params.get("epochs") if self.params else None
        self._epochs.begin_epoch(epoch, total=total if isinstance(total, int) else None)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = self._epochs.end_epoch()
        if metrics is not None and logs is not None:
            logs.update(metrics)
        if self._epochs.stop_reason is not None and self.model is not None:
            # co2_budget_kg crossed with stop_over_budget=True: Keras's own way to stop.
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._epochs.end_run()
