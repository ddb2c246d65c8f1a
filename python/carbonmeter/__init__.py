"""Energy and carbon of ML training, measured by a Rust core, with CodeCarbon's API.

Example:
    >>> from carbonmeter import EmissionsTracker
    >>> with EmissionsTracker(country_iso_code="FRA", save_to_file=False) as tracker:
    ...     _ = sum(range(10_000))
    >>> tracker.final_emissions >= 0
    True
"""

from typing import Any

from carbonmeter._core import (
    CSV_COLUMNS,
    CarbonmeterError,
    EmissionsData,
    EmissionsTracker,
    InvalidValueError,
    TrackerStateError,
    __version__,
)
from carbonmeter._dropin import use_as_codecarbon
from carbonmeter.decorators import track_emissions
from carbonmeter.trackers import OfflineEmissionsTracker

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
