"""The seam between the core and its package: Python registers what the core calls back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import carbonmeter
from carbonmeter import EmissionsData, EmissionsTracker, _core

pytestmark = pytest.mark.usefixtures("isolated")


class Recorder:
    """A row listener that keeps what the core hands it."""

    def __init__(self, spec: Any, log_metrics: list[str] | None) -> None:
        self.spec = spec
        self.log_metrics = log_metrics
        self.calls: list[tuple[str, str | None]] = []

    def window_closed(self, data: EmissionsData) -> None:
        self.calls.append(("window_closed", data.window))

    def run_stopped(self, data: EmissionsData) -> None:
        self.calls.append(("run_stopped", data.window))


@pytest.fixture
def recorders() -> Iterator[list[Recorder]]:
    made: list[Recorder] = []

    def factory(spec: Any, log_metrics: list[str] | None) -> Recorder:
        made.append(Recorder(spec, log_metrics))
        return made[-1]

    _core.register_row_listener(factory)
    try:
        yield made
    finally:
        _core.register_row_listener(carbonmeter._logger_set)


def test_the_core_calls_the_listener_python_registered(recorders: list[Recorder]) -> None:
    tracker = EmissionsTracker(save_to_file=False, loggers=["anything"])
    assert [recorder.spec for recorder in recorders] == [["anything"]]
    # The log_metrics setting comes with it, resolved by the core (None: the default figures).
    assert recorders[0].log_metrics is None
    EmissionsTracker(save_to_file=False, loggers=["anything"], log_metrics="co2_kg, power_w")
    assert recorders[1].log_metrics == ["co2_kg", "power_w"]
    tracker.start()
    tracker.start_window("load")
    tracker.end_window("load")
    with tracker.epoch(0):
        pass
    tracker.stop()
    assert recorders[0].calls == [
        ("window_closed", "load"),
        ("window_closed", "train-epoch-0"),
        ("run_stopped", None),
    ]


def test_no_loggers_builds_no_listener(recorders: list[Recorder]) -> None:
    for loggers in (None, "absent"):
        kwargs = {} if loggers == "absent" else {"loggers": loggers}
        with EmissionsTracker(save_to_file=False, **kwargs):
            pass
    assert recorders == []


def test_the_package_registers_the_logger_set_and_a_non_callable_is_refused() -> None:
    # The name is refused by carbonmeter.loggers.LoggerSet, which import carbonmeter registered.
    with pytest.raises(carbonmeter.InvalidValueError, match="'nope'"):
        EmissionsTracker(save_to_file=False, loggers=["nope"])
    with pytest.raises(TypeError, match="expects a callable, got 42"):
        _core.register_row_listener(42)  # type: ignore[arg-type]
