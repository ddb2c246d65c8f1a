"""Energy and carbon of ML training, measured by a Rust core, with CodeCarbon's API.

Example:
    >>> from carbonmeter import EmissionsTracker
    >>> with EmissionsTracker(country_iso_code="FRA", save_to_file=False) as tracker:
    ...     _ = sum(range(10_000))
    >>> tracker.final_emissions >= 0
    True
"""

import atexit

from carbonmeter._core import (
    CSV_COLUMNS,
    FORMULA_STARTS,
    CarbonmeterError,
    EmissionsData,
    EmissionsTracker,
    InvalidValueError,
    TrackerStateError,
    __version__,
    _register_job_hook,
    _stop_all,
    register_row_listener,
)
from carbonmeter._dropin import use_as_codecarbon
from carbonmeter.trackers import OfflineEmissionsTracker

# Not `typing.TYPE_CHECKING`: importing `typing` (with `re`, `functools`, `collections`) was
# most of `import carbonmeter`; type checkers read this name the same way. Annotations naming
# what only type checkers import are quoted, without `from __future__ import annotations`,
# which imports the `__future__` module at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from carbonmeter.decorators import track_emissions
    from carbonmeter.forecast import greener, wait_for_greener
    from carbonmeter.loggers import LoggerSet


def __getattr__(name: str) -> "Any":
    """`track_emissions`, `wait_for_greener` and `greener` on first use: their modules need
    `typing` and `functools` (PEP 562)."""
    if name == "track_emissions":
        from carbonmeter.decorators import track_emissions

        globals()[name] = track_emissions
        return track_emissions
    if name in ("wait_for_greener", "greener"):
        from carbonmeter import forecast as module

        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'carbonmeter' has no attribute {name!r}")


def _logger_set(loggers: "Any", log_metrics: "list[str] | None" = None) -> "LoggerSet":
    """The row listener of a tracker given `loggers=` (and its `log_metrics` setting): a
    `carbonmeter.loggers.LoggerSet`.

    Imported on first use, so `import carbonmeter` does not pay for `logging`.
    """
    from carbonmeter.loggers import LoggerSet

    return LoggerSet(loggers, log_metrics)


def _link_job_run(handle: "Any") -> "Any":
    """A plain tracker's run on a rank of a job, linked to the job's other trackers through the
    process group's store (`carbonmeter._distributed.TrackerLink`); `None` where torch was never
    imported, without importing anything."""
    import sys

    if "torch" not in sys.modules:
        return None
    from carbonmeter._distributed import link_run

    return link_run(handle)


# The core calls back into this package only through what it registers here.
register_row_listener(_logger_set)
_register_job_hook(_link_job_run)

# A run still going when the interpreter exits (an uncaught exception, `sys.exit`) is stopped,
# and its rows written, before the interpreter tears modules down. Left to the tracker's
# finaliser, the row depended on garbage collection order: a class defined in `__main__` (the
# common tqdm `logging.Handler` snippet) keeps the module's globals, the tracker among them,
# alive past the end, and no row was written.
atexit.register(_stop_all)

__all__ = [
    "CSV_COLUMNS",
    "FORMULA_STARTS",
    "CarbonmeterError",
    "EmissionsData",
    "EmissionsTracker",
    "InvalidValueError",
    "OfflineEmissionsTracker",
    "TrackerStateError",
    "__version__",
    "greener",
    "track_emissions",
    "use_as_codecarbon",
    "wait_for_greener",
]


def load_ipython_extension(ipython: "Any") -> None:
    """`%load_ext carbonmeter`: the `%%carbonmeter` and `%carbonmeter` magics (see
    `carbonmeter.notebook`)."""
    from carbonmeter.notebook import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: "Any") -> None:
    """`%unload_ext carbonmeter`: stops a session measurement left running."""
    from carbonmeter.notebook import unload_ipython_extension as unload

    unload(ipython)
