"""Per-epoch measurement of a hand-written distributed training loop, counted once per job.

Example:
    >>> from carbonmeter.distributed import JobTracker  # doctest: +SKIP
    >>> job = JobTracker(country_iso_code="FRA")  # after torch.distributed.init_process_group
    >>> job.start()  # doctest: +SKIP
    >>> for epoch in range(3):  # doctest: +SKIP
    ...     with job.epoch() as figures:
    ...         train_one_epoch()
    ...     print(figures["co2_kg"])  # the job's on rank 0, this rank's elsewhere
    >>> job.stop()  # doctest: +SKIP

What the Lightning and Hugging Face callbacks do, for a loop of your own: each rank measures its
share of the job and writes `scope=rank` rows; global rank 0 gathers them at every epoch edge
and at `stop()` through the process group's key-value store and writes the `scope=job` rows.
Without an initialised process group it is a plain per-epoch tracker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from carbonmeter._core import EmissionsData, EmissionsTracker
from carbonmeter._distributed import _torch_distributed
from carbonmeter._epochs import EpochMeter, MeasuredCallback


class JobTracker(MeasuredCallback):
    """Epoch windows of a tracker that is one rank of a job.

    Args:
        tracker: an `EmissionsTracker` to share (joined to the job only if still idle).
        **tracker_kwargs: `EmissionsTracker` keyword arguments for the owned tracker.
    """

    def __init__(self, tracker: EmissionsTracker | None = None, **tracker_kwargs: Any) -> None:
        self._epochs = EpochMeter(tracker, tracker_kwargs)

    def start(self) -> EmissionsTracker:
        """Joins the job (when a process group is initialised) and starts measuring."""
        dist = _torch_distributed()
        rank = dist.get_rank() if dist is not None else int(os.environ.get("RANK", "0"))
        return self._epochs.begin_run(rank=rank)

    @contextmanager
    def epoch(
        self, epoch: int | None = None, phase: str = "train", total: int | None = None
    ) -> Iterator[dict[str, float]]:
        """Measures one epoch; the dict yielded is filled with its figures when it ends.
        `total`, the run's number of epochs, adds the job's projection."""
        figures: dict[str, float] = {}
        self._epochs.begin_epoch(epoch, phase, total=total)
        try:
            yield figures
        finally:
            figures.update(self._epochs.end_epoch(phase) or {})

    def record(self, name: str, value: float, phase: str = "train", mode: str = "auto") -> None:
        """Records metric `name` = `value` in the open epoch of `phase` (inside `epoch()`): its
        row gets `metric_name`, `metric_value` and the gain per kg. `min_gain_per_kg` judges it
        in a single process; in a job it is not judged yet (a warning says so once)."""
        self._epochs.record(phase, name, value, mode)

    @property
    def stop_reason(self) -> str | None:
        """`co2_budget` once the job crossed `co2_budget_kg` with `stop_over_budget=True`: every
        rank sees it after the same epoch, so each leaves its loop there; `min_gain_per_kg` once
        the recorded metric stopped paying (a single process)."""
        return self._epochs.stop_reason

    def stop(self) -> EmissionsData | None:
        """Ends the run: the job's run row on rank 0, this rank's elsewhere."""
        return self._epochs.end_run()
