"""Energy and carbon of ML training, measured by a Rust core, with CodeCarbon's API.

Example:
    >>> from carbonmeter import EmissionsTracker
    >>> with EmissionsTracker(country_iso_code="FRA", save_to_file=False) as tracker:
    ...     _ = sum(range(10_000))
    >>> tracker.final_emissions >= 0
    True
"""

from carbonmeter._core import (
    CSV_COLUMNS,
    CarbonmeterError,
    EmissionsData,
    EmissionsTracker,
    InvalidValueError,
    TrackerStateError,
    __version__,
)
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
]
