"""`codecarbon`, as served by carbonmeter (see `carbonmeter.use_as_codecarbon`).

The names CodeCarbon's users and integrations import: `EmissionsTracker` (with `start`, `stop`,
`start_task`, `stop_task`, `flush`, `final_emissions_data`), `OfflineEmissionsTracker`,
`track_emissions` and `EmissionsData`; trackers write carbonmeter's CSV (CodeCarbon's columns
first) to `output_dir` as CodeCarbon does.
"""

from carbonmeter import (
    EmissionsData,
    EmissionsTracker,
    OfflineEmissionsTracker,
    __version__,
    track_emissions,
)

__carbonmeter__ = True

__all__ = [
    "EmissionsData",
    "EmissionsTracker",
    "OfflineEmissionsTracker",
    "__version__",
    "track_emissions",
]
