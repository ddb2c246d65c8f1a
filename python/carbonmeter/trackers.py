"""Trackers built on the core's `EmissionsTracker`.

`OfflineEmissionsTracker` lives in the core, which holds its location rule; it is re-exported
here for the import path CodeCarbon users know.

Example:
    >>> from carbonmeter import OfflineEmissionsTracker
    >>> tracker = OfflineEmissionsTracker(country_iso_code="SWE", save_to_file=False)
    >>> tracker.country_iso_code
    'SWE'
"""

from carbonmeter._core import OfflineEmissionsTracker

__all__ = ["OfflineEmissionsTracker"]
