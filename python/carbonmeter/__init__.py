"""Energy and carbon of ML training, measured by a Rust core, with CodeCarbon's API.

Example:
    >>> from carbonmeter import EmissionsTracker
    >>> with EmissionsTracker(country_iso_code="FRA", save_to_file=False) as tracker:
    ...     _ = sum(range(10_000))
    >>> tracker.final_emissions >= 0
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from carbonmeter._core import (
    CSV_COLUMNS,
    CarbonmeterError,
    EmissionsData,
    EmissionsTracker,
    InvalidValueError,
    TrackerStateError,
    __version__,
    register_row_listener,
)
from carbonmeter._dropin import use_as_codecarbon
from carbonmeter.decorators import track_emissions
from carbonmeter.trackers import OfflineEmissionsTracker

if TYPE_CHECKING:
    from carbonmeter.loggers import LoggerSet


def _logger_set(loggers: Any) -> LoggerSet:
    """The row listener of a tracker given `loggers=`: a `carbonmeter.loggers.LoggerSet`.

    Imported on first use, so `import carbonmeter` does not pay for `logging`.
    """
    from carbonmeter.loggers import LoggerSet

    return LoggerSet(loggers)


# The core calls back into this package only through what it registers here.
register_row_listener(_logger_set)

__all__ = [
    "CSV_COLUMNS",
    "CarbonmeterError",
    "EmissionsData",
    "EmissionsTracker",
    "InvalidValueError",
    "OfflineEmissionsTracker",
    "TrackerStateError",
    "__version__",
    "track_emissions",
    "use_as_codecarbon",
]


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext carbonmeter`: the `%%carbonmeter` and `%carbonmeter` magics (see
    `carbonmeter.notebook`)."""
    from carbonmeter.notebook import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext carbonmeter`: stops a session measurement left running."""
    from carbonmeter.notebook import unload_ipython_extension as unload

    unload(ipython)
