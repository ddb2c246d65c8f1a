"""Trackers built on the core's `EmissionsTracker`."""

from __future__ import annotations

from typing import Any

from carbonmeter._core import EmissionsTracker, InvalidValueError


class OfflineEmissionsTracker(EmissionsTracker):
    """An `EmissionsTracker` that must be told where it runs, as CodeCarbon's.

    carbonmeter never goes online to locate a run, so this class only adds a check: a location
    (`country_iso_code`, `region` or `cloud_provider`/`cloud_region`, from a keyword argument,
    the environment or `.codecarbon.config`) must be set, so the emissions use that grid and not
    the world average nor a guess from the time zone.

    Example:
        >>> from carbonmeter import OfflineEmissionsTracker
        >>> tracker = OfflineEmissionsTracker(country_iso_code="SWE", save_to_file=False)
        >>> tracker.country_iso_code
        'SWE'
    """

    def __init__(self, **kwargs: Any) -> None:
        if self.location_source == "none" or self.location_source.startswith("timezone:"):
            raise InvalidValueError(
                "invalid country_iso_code=None: OfflineEmissionsTracker needs the country of "
                'the grid, e.g. country_iso_code="FRA" (or CARBONMETER_COUNTRY_ISO_CODE)'
            )
