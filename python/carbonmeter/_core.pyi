"""Type stubs of the Rust extension `carbonmeter._core` (hand-written; checked by stubtest)."""

from types import TracebackType
from typing import Any, Final, final

from typing_extensions import Self, disjoint_base

__all__ = [
    "CSV_COLUMNS",
    "SETTINGS",
    "CarbonmeterError",
    "EmissionsData",
    "EmissionsTracker",
    "InvalidValueError",
    "TrackerStateError",
    "__version__",
]

__version__: Final[str]
SETTINGS: Final[list[str]]
CSV_COLUMNS: Final[list[str]]

class CarbonmeterError(Exception):
    """Base class of every exception carbonmeter raises."""

class TrackerStateError(CarbonmeterError):
    """A tracker was used out of order."""

class InvalidValueError(CarbonmeterError, ValueError):
    """A setting has a value outside what is allowed; the message names both."""

@final
class EmissionsData:
    """The measurements of one run, with CodeCarbon's `EmissionsData` field names."""

    @property
    def timestamp(self) -> str: ...
    @property
    def project_name(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def experiment_id(self) -> str: ...
    @property
    def duration(self) -> float:
        """Seconds measured."""
    @property
    def emissions(self) -> float:
        """kg CO2eq."""
    @property
    def emissions_rate(self) -> float:
        """kg CO2eq per second."""
    @property
    def cpu_power(self) -> float:
        """Mean CPU power over the run, W (PUE included)."""
    @property
    def gpu_power(self) -> float: ...
    @property
    def ram_power(self) -> float: ...
    @property
    def cpu_energy(self) -> float:
        """kWh."""
    @property
    def gpu_energy(self) -> float: ...
    @property
    def ram_energy(self) -> float: ...
    @property
    def energy_consumed(self) -> float:
        """CPU + GPU + RAM, kWh."""
    @property
    def water_consumed(self) -> float:
        """Litres: energy_consumed * wue."""
    @property
    def country_name(self) -> str | None: ...
    @property
    def country_iso_code(self) -> str | None: ...
    @property
    def region(self) -> str | None: ...
    @property
    def cloud_provider(self) -> str | None: ...
    @property
    def cloud_region(self) -> str | None: ...
    @property
    def os(self) -> str: ...
    @property
    def python_version(self) -> str: ...
    @property
    def codecarbon_version(self) -> str: ...
    @property
    def cpu_count(self) -> int: ...
    @property
    def cpu_model(self) -> str: ...
    @property
    def gpu_count(self) -> int: ...
    @property
    def gpu_model(self) -> str: ...
    @property
    def longitude(self) -> float | None: ...
    @property
    def latitude(self) -> float | None: ...
    @property
    def ram_total_size(self) -> float: ...
    @property
    def tracking_mode(self) -> str: ...
    @property
    def cpu_utilization_percent(self) -> float: ...
    @property
    def gpu_utilization_percent(self) -> float: ...
    @property
    def ram_utilization_percent(self) -> float: ...
    @property
    def ram_used_gb(self) -> float: ...
    @property
    def on_cloud(self) -> str: ...
    @property
    def pue(self) -> float: ...
    @property
    def wue(self) -> float: ...
    @property
    def carbonmeter_version(self) -> str: ...
    @property
    def cpu_method(self) -> str:
        """rapl, load_tdp, constant or none."""
    @property
    def ram_method(self) -> str:
        """rapl, model, constant or none."""
    @property
    def gpu_method(self) -> str:
        """counter, polled, mixed or none."""
    @property
    def rapl_zones(self) -> str: ...
    @property
    def psys_energy(self) -> float: ...
    @property
    def intensity_g_per_kwh(self) -> float: ...
    @property
    def intensity_source(self) -> str: ...
    @property
    def intensity_year(self) -> int | None: ...
    @property
    def intensity_method(self) -> str: ...
    @property
    def gpu_devices(self) -> str:
        """JSON list, one object per GPU: index, uuid, name, energy_kwh, method."""
    @property
    def values(self) -> dict[str, Any]:
        """CodeCarbon's name for `as_dict()`."""
    def as_dict(self) -> dict[str, Any]:
        """The row as a dict, keys in CSV column order."""

@disjoint_base
class EmissionsTracker:
    """Measures the energy and emissions of the code between `start()` and `stop()`.

    Takes CodeCarbon's keyword arguments (see the README); each resolves from the argument, then
    `CARBONMETER_<KEY>` / `CODECARBON_<KEY>`, then `.codecarbon.config` in the working and home
    directories.

    Example:
        >>> from carbonmeter import EmissionsTracker
        >>> with EmissionsTracker(country_iso_code="FRA", save_to_file=False) as tracker:
        ...     _ = sum(range(1000))
        >>> tracker.final_emissions_data.country_iso_code
        'FRA'
    """

    def __new__(cls, **kwargs: Any) -> Self: ...
    def start(self) -> None:
        """Starts measuring; a second call on a running tracker only warns."""
    def stop(self) -> float | None:
        """Stops, writes the run's row, returns its kg CO2eq (None if it never ran)."""
    def flush(self) -> float | None:
        """Writes a row with the totals so far and returns the kg CO2eq so far."""
    @property
    def final_emissions(self) -> float | None: ...
    @property
    def final_emissions_data(self) -> EmissionsData | None: ...
    @property
    def project_name(self) -> str: ...
    @property
    def country_iso_code(self) -> str | None: ...
    @property
    def cloud_provider(self) -> str | None: ...
    @property
    def output_path(self) -> str | None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        _exc_type: type[BaseException] | None = None,
        _exc_value: BaseException | None = None,
        _traceback: TracebackType | None = None,
    ) -> bool: ...
