"""`TensorBoardLogger`: carbonmeter's figures as TensorBoard scalars.

Example:
    >>> from torch.utils.tensorboard import SummaryWriter  # doctest: +SKIP
    >>> writer = SummaryWriter("runs/bert")  # doctest: +SKIP
    >>> tracker = EmissionsTracker(loggers=[TensorBoardLogger(writer)])  # doctest: +SKIP
"""

from __future__ import annotations

import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from carbonmeter.loggers import EmissionsLogger

# The summary's text entries (provenance) go to one text summary under this tag.
PROVENANCE_TAG = "carbonmeter/provenance"


class EventWriter:
    """TensorBoard's own event-file writer (the `tensorboard` package, no TensorFlow or torch
    needed), with the two calls this logger makes of a `SummaryWriter`."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = str(log_dir)
        self._events = EventFileWriter(self.log_dir)

    def add_scalar(self, tag: str, scalar_value: float, global_step: int) -> None:
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(scalar_value))])
        self._events.add_event(Event(summary=summary, step=global_step, wall_time=time.time()))

    def add_text(self, tag: str, text_string: str, global_step: int) -> None:
        # The text plugin reads a string tensor with its plugin name in the metadata.
        metadata = SummaryMetadata(
            plugin_data=SummaryMetadata.PluginData(plugin_name="text", content=b"")
        )
        tensor = TensorProto(
            dtype="DT_STRING",
            string_val=[text_string.encode("utf-8")],
            tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]),
        )
        summary = Summary(value=[Summary.Value(tag=tag, metadata=metadata, tensor=tensor)])
        self._events.add_event(Event(summary=summary, step=global_step, wall_time=time.time()))

    def flush(self) -> None:
        self._events.flush()

    def close(self) -> None:
        self._events.close()


def default_log_dir() -> Path:
    """`runs/<date>_<time>_<host>-carbonmeter`, beside the `runs/<date>_<time>_<host>` folders
    of torch's `SummaryWriter`, so `tensorboard --logdir runs` shows both."""
    stamp = datetime.now().strftime("%b%d_%H-%M-%S")
    return Path("runs") / f"{stamp}_{socket.gethostname()}-carbonmeter"


class TensorBoardLogger(EmissionsLogger):
    """Writes each epoch's figures as scalars with the epoch as step, and when the run stops its
    totals as scalars and their provenance as one text summary (`carbonmeter/provenance`).

    Args:
        writer: a writer to share, anything with `add_scalar(tag, value, step)` (torch's
            `SummaryWriter`, tensorboardX's, Lightning's `TensorBoardLogger.experiment`); it is
            flushed, never closed, here.
        log_dir: the folder of the event file written otherwise, through TensorBoard's own
            writer (default: `default_log_dir()`, made at the first value).
    """

    name = "tensorboard"

    def __init__(self, writer: Any = None, log_dir: str | Path | None = None) -> None:
        super().__init__()
        if writer is not None and log_dir is not None:
            raise TypeError("pass either writer= or log_dir=, not both")
        self._writer = writer
        self._log_dir = log_dir
        self._last_step = 0

    @property
    def writer(self) -> Any:
        """The writer in use: the one passed, else ours, made on first use."""
        if self._writer is None:
            self._writer = EventWriter(self._log_dir or default_log_dir())
        return self._writer

    def _scalars(self, metrics: dict[str, float], step: int) -> None:
        writer = self.writer
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, step)
        # Each value on disk when logged: a killed run keeps its epochs.
        writer.flush()

    def log_epoch(self, metrics: dict[str, float], epoch: int) -> None:
        self._last_step = epoch
        self._scalars(metrics, epoch)

    def log_window(self, name: str, metrics: dict[str, float], index: int) -> None:
        self._scalars(metrics, index)

    def log_summary(self, summary: dict[str, Any]) -> None:
        numbers = {
            key: float(value)
            for key, value in summary.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        text = {key: value for key, value in summary.items() if isinstance(value, str)}
        if hasattr(self.writer, "add_text") and text:
            table = "\n".join(f"| {key} | {value} |" for key, value in text.items())
            self.writer.add_text(PROVENANCE_TAG, f"| | |\n|---|---|\n{table}", self._last_step)
        self._scalars(numbers, self._last_step)
