"""Trackers built on the core's `EmissionsTracker`."""

from __future__ import annotations

from typing import Any

from carbonmeter._core import EmissionsTracker, InvalidValueError


class OfflineEmissionsTracker(EmissionsTracker):
    """An `EmissionsTracker` that must be told where it runs, as CodeCarbon's.

    carbonmeter never goes online to locate a run, so this class only adds a check: a country
    (`country_iso_code`, from a keyword argument, the environment or `.codecarbon.config`) or a
    cloud provider must be set, so the emissions use that grid and not the world average.

    Example:
        >>> from carbonmeter import OfflineEmissionsTracker
        >>> tracker = OfflineEmissionsTracker(country_iso_code="SWE", save_to_file=False)
        >>> tracker.country_iso_code
        'SWE'
    """

    def __init__(self, **kwargs: Any) -> None:
        if self.country_iso_code is None and self.cloud_provider is None:
            raise InvalidValueError(
                "invalid country_iso_code=None: OfflineEmissionsTracker needs the country of "
                'the grid, e.g. country_iso_code="FRA" (or CARBONMETER_COUNTRY_ISO_CODE)'
            )
