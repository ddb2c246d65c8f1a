"""Type stubs of the Rust extension `carbonmeter._core` (hand-written; checked by stubtest)."""

from collections.abc import Callable, Sequence
from os import PathLike
from types import TracebackType
from typing import Any, Final, Protocol, final

from typing_extensions import Self, disjoint_base

__all__ = [
    "CSV_COLUMNS",
    "FORMULA_STARTS",
    "CarbonmeterError",
    "Column",
    "EmissionsData",
    "EmissionsTracker",
    "EpochWindow",
    "GreenerPlan",
    "HardwareTdp",
    "Intensity",
    "InvalidValueError",
    "Method",
    "OfflineEmissionsTracker",
    "Setting",
    "TrackerStateError",
    "Window",
    "_JobHandle",
    "__getattr__",
    "__version__",
    "_plan_greener",
    "_register_job_hook",
    "_schedule_next_run",
    "_stop_all",
    "_warn_once",
    "estimate_co2",
    "estimate_footprint",
    "g_per_kwh_of",
    "gpu_tdp_table",
    "lookup_cpu_tdp",
    "lookup_hardware",
    "lookup_intensity",
    "per_unit",
    "register_row_listener",
]

__version__: Final[str]

# SETTINGS, UNSERVED_SETTINGS, COLUMNS, METHODS, TABLES, GPU_TDP_ALIASES and
# CPU_TDP_MODEL_COUNT are built on first use by the module's `__getattr__` (PEP 562), so they
# are declared below but not in `__all__` (not in the module's namespace until read).
def __getattr__(name: str) -> object: ...

SETTINGS: Final[tuple[Setting, ...]]
"""Every setting `EmissionsTracker` accepts (served ones, then CodeCarbon's unserved ones)."""
UNSERVED_SETTINGS: Final[list[str]]
CSV_COLUMNS: Final[list[str]]
"""The CSV header: every column's name, in order."""
FORMULA_STARTS: Final[str]
"""Characters that start a spreadsheet formula: a text cell starting with them (after any `'`s)
is written with one `'` in front, which a reader takes off."""
COLUMNS: Final[tuple[Column, ...]]
"""Every column of the CSV row, in order, with its type, unit and doc (the row struct's)."""
METHODS: Final[tuple[Method, ...]]
"""Every value of the `*_method` columns, with the columns it appears in and what it means."""
TABLES: Final[dict[str, str]]
"""Embedded CSV text of the reporting tables by file name: gpu_tdp.csv, cpu_tdp.csv,
equivalents.csv, country_intensity.csv, uncertainty.csv, world_boundaries.csv, and the intensity
tables the report compares grids with (cloud_regions.csv, region_intensity.csv,
egrid_subregions.csv)."""
GPU_TDP_ALIASES: Final[list[tuple[str, str]]]
"""Names nvidia-smi prints that the GPU table spells otherwise: (name, table model)."""
CPU_TDP_MODEL_COUNT: Final[int]
"""How many CPU models data/cpu_tdp.csv holds."""

@final
class Setting:
    """One row of the core's settings table (`carbonmeter/src/config/schema.rs`).

    Example:
        >>> from carbonmeter._core import SETTINGS
        >>> pue = next(s for s in SETTINGS if s.name == "pue")
        >>> pue.kind, pue.default, pue.minimum, pue.minimum_inclusive
        ('float', 1.0, 1.0, True)
    """

    @property
    def name(self) -> str:
        """The keyword argument (`CARBONMETER_<NAME>` in the environment)."""
    @property
    def kind(self) -> str:
        """`str`, `path`, `secret`, `float`, `int`, `bool`, `choice`, `list`, `object` or `any`."""
    @property
    def default(self) -> str | float | bool | None:
        """The value used when no layer sets it, or None."""
    @property
    def doc(self) -> str:
        """One line of documentation."""
    @property
    def choices(self) -> tuple[str, ...]:
        """The allowed values of a `choice`, empty otherwise."""
    @property
    def minimum(self) -> float | None:
        """The lower bound of a number, or None."""
    @property
    def minimum_inclusive(self) -> bool:
        """Whether `minimum` itself is allowed."""
    @property
    def maximum(self) -> float | None:
        """The (inclusive) upper bound of a number, or None."""
    @property
    def alias_of(self) -> str | None:
        """The setting this one is another name for, or None."""
    @property
    def served(self) -> bool:
        """False for a CodeCarbon option accepted with a warning and otherwise ignored."""
    @property
    def trust(self) -> str:
        """`any`, or `trusted_source_only`: set by keyword arguments, the environment, or a
        config file the user owns that no one else can write."""
    @property
    def max_chars(self) -> int | None:
        """The longest value accepted, in characters, or None for a setting that is not text."""

@final
class Column:
    """One column of the CSV row, from the row struct (`carbonmeter/src/output/row.rs`).

    Example:
        >>> from carbonmeter._core import COLUMNS
        >>> energy = next(c for c in COLUMNS if c.name == "energy_consumed")
        >>> energy.type, energy.unit
        ('float', 'kWh')
    """

    @property
    def name(self) -> str:
        """The header's name, and `EmissionsData`'s attribute."""
    @property
    def type(self) -> str:
        """The Python type of its values, as the stub spells it (`float | None`)."""
    @property
    def unit(self) -> str:
        """The unit of its values (`kWh`), empty for text, counts and ratios."""
    @property
    def doc(self) -> str:
        """What it holds, one paragraph."""

@final
class Method:
    """One value of the `*_method` columns (`carbonmeter/src/output/methods.rs`).

    Example:
        >>> from carbonmeter._core import METHODS
        >>> rapl = next(m for m in METHODS if m.name == "rapl")
        >>> rapl.columns
        ('cpu_method', 'ram_method')
    """

    @property
    def name(self) -> str:
        """As written in the row."""
    @property
    def columns(self) -> tuple[str, ...]:
        """The columns it may appear in."""
    @property
    def meaning(self) -> str:
        """What it means, worded to follow "CPU energy was" in a sentence."""

class CarbonmeterError(Exception):
    """Base class of every exception carbonmeter raises."""

class TrackerStateError(CarbonmeterError):
    """A tracker was used out of order."""

class InvalidValueError(CarbonmeterError, ValueError):
    """A setting has a value outside what is allowed; the message names both."""

@final
class EmissionsData:
    """The measurements of one run, with CodeCarbon's `EmissionsData` field names."""

    # begin: the columns, generated by `python -m carbonmeter._docs` from _core.COLUMNS
    @property
    def timestamp(self) -> str:
        """Local time the row was made, `YYYY-MM-DDTHH:MM:SS`."""
    @property
    def project_name(self) -> str:
        """The `project_name` setting."""
    @property
    def run_id(self) -> str:
        """UUID of the run (one per `start()`)."""
    @property
    def experiment_id(self) -> str:
        """The `experiment_id` setting."""
    @property
    def duration(self) -> float:
        """Time measured."""
    @property
    def emissions(self) -> float:
        """`energy_consumed` x the grid's intensity / 1000; with live figures, the sum over the
        hours of each hour's energy x that hour's intensity."""
    @property
    def emissions_rate(self) -> float:
        """`emissions` per second of `duration`."""
    @property
    def cpu_power(self) -> float:
        """Mean CPU power over the row's window, PUE included (CodeCarbon writes the last
        sample)."""
    @property
    def gpu_power(self) -> float:
        """Mean GPU power over the row's window, PUE included; `NaN` when the GPUs found report
        neither energy nor power."""
    @property
    def ram_power(self) -> float:
        """Mean RAM power over the row's window, PUE included."""
    @property
    def cpu_energy(self) -> float:
        """CPU energy, PUE included."""
    @property
    def gpu_energy(self) -> float:
        """GPU energy, PUE included; `NaN` when the GPUs found report neither energy nor power,
        never a measured 0."""
    @property
    def ram_energy(self) -> float:
        """RAM energy, PUE included."""
    @property
    def energy_consumed(self) -> float:
        """CPU + GPU + RAM energy, PUE included (`psys_energy` is never added in)."""
    @property
    def water_consumed(self) -> float:
        """CodeCarbon's water: `energy_consumed` x `wue` (on-site only, 0 without a `wue`); the
        whole water, on-site and off-site, is `water_total`."""
    @property
    def country_name(self) -> str | None:
        """Country of the grid used, when known."""
    @property
    def country_iso_code(self) -> str | None:
        """ISO 3166-1 alpha-3 code of the grid's country, when known."""
    @property
    def region(self) -> str | None:
        """The `region` setting: the grid's region (its ISO 3166-2 code)."""
    @property
    def cloud_provider(self) -> str | None:
        """The `cloud_provider` setting."""
    @property
    def cloud_region(self) -> str | None:
        """The `cloud_region` setting."""
    @property
    def os(self) -> str:
        """`platform.platform()`."""
    @property
    def python_version(self) -> str:
        """`platform.python_version()`."""
    @property
    def codecarbon_version(self) -> str:
        """Left empty: this row was not written by CodeCarbon (see `carbonmeter_version`)."""
    @property
    def cpu_count(self) -> int:
        """Logical CPUs."""
    @property
    def cpu_model(self) -> str:
        """CPU brand string."""
    @property
    def gpu_count(self) -> int:
        """GPUs measured (GPUs found that report neither energy nor power are not counted)."""
    @property
    def gpu_model(self) -> str:
        """The GPUs measured, counted by name in order of appearance: `2 x NVIDIA H100 80GB HBM3`
        (the counts add up to `gpu_count`)."""
    @property
    def longitude(self) -> float | None:
        """Not located: empty."""
    @property
    def latitude(self) -> float | None:
        """Not located: empty."""
    @property
    def ram_total_size(self) -> float:
        """Memory installed."""
    @property
    def tracking_mode(self) -> str:
        """The `tracking_mode` setting: `machine` or `process`."""
    @property
    def cpu_utilization_percent(self) -> float:
        """Mean CPU utilisation of the tracked processes."""
    @property
    def gpu_utilization_percent(self) -> float:
        """Time-weighted mean utilisation of the measured GPUs."""
    @property
    def ram_utilization_percent(self) -> float:
        """Mean memory in use, as a share of that installed."""
    @property
    def ram_used_gb(self) -> float:
        """Mean memory in use."""
    @property
    def on_cloud(self) -> str:
        """`Y` when a cloud provider is set, `N` otherwise."""
    @property
    def pue(self) -> float:
        """Power usage effectiveness applied: it multiplies every component's energy and power."""
    @property
    def wue(self) -> float:
        """The `wue` setting (0 when unset, as CodeCarbon writes it)."""
    @property
    def carbonmeter_version(self) -> str:
        """Version of carbonmeter that wrote the row."""
    @property
    def cpu_method(self) -> str:
        """How the CPU energy was measured. One of `rapl`, `load_tdp`, `load_tdp_short`,
        `constant`, `mixed`, `other_rank`, `none`, `ioreport`, `emi` or `hwmon` (see the
        methods)."""
    @property
    def ram_method(self) -> str:
        """How the memory energy was measured. One of `rapl`, `model`, `constant`, `in_cpu`,
        `mixed`, `other_rank`, `none`, `ioreport` or `emi` (see the methods)."""
    @property
    def gpu_method(self) -> str:
        """How the GPU energy was measured (each GPU's method is in `gpu_devices`). One of
        `counter`, `polled`, `mixed`, `unmeasured` or `none` (see the methods)."""
    @property
    def rapl_zones(self) -> str:
        """RAPL zones read, `+`-joined (`package-0+dram-0`)."""
    @property
    def psys_energy(self) -> float:
        """Energy of the RAPL `psys` (platform) zone: the whole platform, overlapping CPU and
        RAM, so reported apart and never added in."""
    @property
    def intensity_g_per_kwh(self) -> float:
        """Grid intensity used; with live figures, the energy-weighted mean (`emissions /
        energy_consumed`)."""
    @property
    def intensity_source(self) -> str:
        """Where that figure comes from (see `data/README.md`)."""
    @property
    def intensity_year(self) -> int | None:
        """Year that figure is for."""
    @property
    def intensity_method(self) -> str:
        """How that figure was chosen. One of `table`, `forced` or `live_hourly` (see the
        methods)."""
    @property
    def window(self) -> str | None:
        """Name of the window this row measures (`train-epoch-0`, a task name); empty for a run
        row (from `start()`)."""
    @property
    def epoch(self) -> int | None:
        """Epoch number, for epoch windows."""
    @property
    def phase(self) -> str | None:
        """`train`, `validation`, `eval`, ... for epoch windows of frameworks that tell them
        apart."""
    @property
    def rank(self) -> int | None:
        """Distributed rank of the process that wrote the row, when known (the Lightning and HF
        callbacks set it)."""
    @property
    def intensity_zone(self) -> str:
        """Grid zone of that figure: `FRA`, `US-CA`, `SPNO`, `SE3`, `gcp:europe-west1`, `World`,
        or the Electricity Maps zone (`FR`) for live figures."""
    @property
    def location_source(self) -> str:
        """How the location was chosen: `cloud`, `region`, `country`, `timezone:<IANA zone>` or
        `none` (world average)."""
    @property
    def experiment_name(self) -> str:
        """The `experiment_name` setting: a readable label for the experiment, by which the
        report groups runs (empty when unset)."""
    @property
    def gpu_devices(self) -> str:
        """Per GPU, a JSON list of `{vendor, index, uuid, name, energy_kwh, method}`: `vendor` is
        `nvidia`, `amd` or `intel`; `energy_kwh` includes PUE, as `gpu_energy` does, and is
        `null` for an `unmeasured` GPU."""
    @property
    def energy_consumed_low(self) -> float:
        """Lowest plausible `energy_consumed`, from the error model of each method
        (`data/uncertainty.csv`)."""
    @property
    def energy_consumed_high(self) -> float | None:
        """Highest plausible `energy_consumed`; empty when a component is unbounded."""
    @property
    def emissions_low(self) -> float:
        """Lowest plausible `emissions`: the energy band times the grid intensity's range."""
    @property
    def emissions_high(self) -> float | None:
        """Highest plausible `emissions`; empty when unbounded."""
    @property
    def wall_energy(self) -> float | None:
        """CPU + GPU + RAM energy at the plug, to compare with a wall meter: divided by
        `psu_efficiency`, PUE not applied; empty without that setting."""
    @property
    def tracker_cpu_seconds(self) -> float:
        """CPU seconds carbonmeter spent in the row's span: its sampler thread and its calls on
        the user's thread, from per-thread CPU clocks."""
    @property
    def projected_energy_consumed(self) -> float | None:
        """Epoch rows, when the number of epochs is known: the whole run's projected energy."""
    @property
    def projected_emissions(self) -> float | None:
        """Epoch rows, when the number of epochs is known: the whole run's projected emissions."""
    @property
    def projected_emissions_low(self) -> float | None:
        """The lowest plausible projected emissions (epochs' spread and measurement band)."""
    @property
    def projected_emissions_high(self) -> float | None:
        """The highest plausible projected emissions."""
    @property
    def projected_duration(self) -> float | None:
        """Epoch rows, when the number of epochs is known: the whole run's projected duration."""
    @property
    def stop_reason(self) -> str | None:
        """Why training was asked to stop after this row (`co2_budget`, or `min_gain_per_kg` when
        the monitored metric stopped paying for its emissions), if it was."""
    @property
    def scope(self) -> str | None:
        """`rank` (one rank's share of a distributed job) or `job` (the whole job, written by
        rank 0); empty for a single process."""
    @property
    def job_id(self) -> str | None:
        """The distributed job: SLURM's job id, else an id shared by its ranks."""
    @property
    def host(self) -> str | None:
        """The `host` setting of the rank (`+`-joined hosts in a job row)."""
    @property
    def local_rank(self) -> int | None:
        """Rank on its host."""
    @property
    def world_size(self) -> int | None:
        """Ranks in the job."""
    @property
    def missing_ranks(self) -> str | None:
        """Job rows: the ranks whose figures never reached rank 0 within `job_wait_secs`,
        comma-separated."""
    @property
    def samples(self) -> int | None:
        """Samples counted (`tracker.count(samples=...)`, the callbacks); empty when none were."""
    @property
    def tokens(self) -> int | None:
        """Tokens counted; empty when none were."""
    @property
    def requests(self) -> int | None:
        """Requests counted (a shared window counts 1); empty when none were."""
    @property
    def attribution(self) -> str | None:
        """`time_share` for a shared window (its energy is its share of the stretches it
        overlapped other shared windows); empty for a window measured from its own edges."""
    @property
    def unattributed_energy(self) -> float | None:
        """Energy (PUE included) measured while no shared window was open, on run and flush rows
        of a run that had shared windows: the idle energy no request is charged; empty otherwise."""
    @property
    def scheduled_start(self) -> str | None:
        """The start a carbon-aware wait (`carbonmeter wait`, `run --when-greener`,
        `wait_for_greener`) chose for this run, UTC `YYYY-MM-DDTHH:MM:SSZ`; empty without one."""
    @property
    def scheduled_intensity_g_per_kwh(self) -> float | None:
        """The forecast's mean intensity over the run from `scheduled_start`; empty when the wait
        had no forecast."""
    @property
    def submitted_intensity_g_per_kwh(self) -> float | None:
        """The forecast's mean intensity over the run had it started when the wait began: against
        `scheduled_intensity_g_per_kwh`, what waiting saved."""
    @property
    def embodied_emissions(self) -> float | None:
        """Embodied carbon of the hardware used: each device's manufacturing figure
        (`data/embodied_carbon.csv`) x `duration` / `hardware_lifetime_years`, each GPU counted
        whole and the host at its share (all of it under `machine` tracking, the CPU share
        measured under `process`); empty, never 0, when a device has no figure
        (`embodied_missing`). Not in `emissions`, which stays electricity only."""
    @property
    def embodied_emissions_low(self) -> float | None:
        """Lowest plausible `embodied_emissions`: each device's lowest sourced figure over a life
        1.5 x the setting (6 years at the default 4)."""
    @property
    def embodied_emissions_high(self) -> float | None:
        """Highest plausible `embodied_emissions`: each device's highest figure (BoaviztAPI's
        model, an upper bound, where it has one) over a life 0.75 x the setting (3 years)."""
    @property
    def embodied_missing(self) -> str | None:
        """The devices (as their driver names them) with no embodied figure, comma-separated;
        empty when every device has one."""
    @property
    def total_emissions(self) -> float | None:
        """`emissions` + `embodied_emissions`; empty when the embodied figure is."""
    @property
    def hardware_lifetime_years(self) -> float:
        """The `hardware_lifetime_years` setting the embodied figures are spread over."""
    @property
    def water_onsite(self) -> float | None:
        """On-site (data-centre cooling) water: IT energy (`energy_consumed` / `pue`) x the
        on-site WUE: the `wue` setting when set, else the cloud region's published WUE, else its
        provider's fleet figure; empty when none is known. (`water_consumed` keeps CodeCarbon's
        `energy_consumed` x `wue`, on-site only.)"""
    @property
    def water_onsite_low(self) -> float | None:
        """Lowest plausible `water_onsite`: the energy band; 0 for a WUE that counts water
        withdrawn (consumption is at most the withdrawal)."""
    @property
    def water_onsite_high(self) -> float | None:
        """Highest plausible `water_onsite`; empty when the energy is unbounded."""
    @property
    def water_onsite_source(self) -> str | None:
        """Where the on-site WUE comes from (`wue setting 1.8 L/kWh`, `aws:us-east-1 0.06 L/kWh
        (withdrawal, ...)`); empty when none is known."""
    @property
    def water_offsite(self) -> float:
        """Off-site water, consumed generating the electricity: `energy_consumed` (PUE included)
        x the grid country's L/kWh (`data/water_intensity.csv`, WRI 2020), else WRI's average."""
    @property
    def water_offsite_low(self) -> float:
        """Lowest plausible `water_offsite`: the energy band, and for the average the lowest
        country's factor."""
    @property
    def water_offsite_high(self) -> float | None:
        """Highest plausible `water_offsite`; empty when the energy is unbounded."""
    @property
    def water_offsite_source(self) -> str:
        """Which off-site factor was used, and why when it is the average."""
    @property
    def water_total(self) -> float | None:
        """`water_onsite` + `water_offsite`; empty when the on-site WUE is unknown."""
    @property
    def water_total_low(self) -> float:
        """Lowest plausible `water_total` (an unknown on-site term counts 0)."""
    @property
    def water_total_high(self) -> float | None:
        """Highest plausible `water_total`; empty when a term is unknown or unbounded."""
    @property
    def user(self) -> str | None:
        """The `user` setting, else the login name (`$USER`, `$LOGNAME`, `$USERNAME`): whose run
        it is, for a team's report; empty when the setting is `-` or no name is known."""
    @property
    def metric_name(self) -> str | None:
        """The metric recorded in the epoch (`monitor=` of the callbacks, `epoch.record(name,
        value)`), such as `val_accuracy`; empty when none was."""
    @property
    def metric_value(self) -> float | None:
        """That metric's value at the end of the epoch."""
    @property
    def metric_direction(self) -> str | None:
        """Which way the metric improves: `max` or `min` (as recorded, or guessed from its name:
        a loss, error or perplexity improves downwards)."""
    @property
    def metric_gain_per_kg(self) -> float | None:
        """The metric's improvement since the run's first epoch per kg CO2eq emitted after it
        (negative when it got worse); empty before the second epoch or when nothing was emitted."""
    # end: the columns
    def _json(self) -> str: ...
    @property
    def joules_per_sample(self) -> float | None:
        """J per sample: energy_consumed in J over samples; None when not counted."""
    @property
    def joules_per_token(self) -> float | None:
        """J per token; None when not counted."""
    @property
    def joules_per_request(self) -> float | None:
        """J per request; None when not counted."""
    @property
    def co2_g_per_1k_tokens(self) -> float | None:
        """g CO2eq per 1000 tokens; None when not counted."""
    @property
    def values(self) -> dict[str, Any]:
        """CodeCarbon's name for `as_dict()`."""
    def as_dict(self) -> dict[str, Any]:
        """The row as a dict, keys in CSV column order."""
    def power_w_since(self, earlier: EmissionsData | None = None) -> tuple[float, float, float]:
        """Mean (CPU, GPU, RAM) power in W since `earlier`, a flush of the same run (its start
        when None), PUE included as in the rows."""

@disjoint_base
class EmissionsTracker:
    """Measures the energy and emissions of the code between `start()` and `stop()`.

    Takes CodeCarbon's keyword arguments (see `docs/settings.md`); each resolves from the
    argument, then `CARBONMETER_<KEY>` / `CODECARBON_<KEY>`, then `.codecarbon.config` in the
    working and home directories.

    Example:
        >>> from carbonmeter import EmissionsTracker
        >>> with EmissionsTracker(country_iso_code="FRA", save_to_file=False) as tracker:
        ...     _ = sum(range(1000))
        >>> tracker.final_emissions_data.country_iso_code
        'FRA'
    """

    def __new__(
        cls,
        *,
        project_name: str | None = ...,
        experiment_id: str | None = ...,
        experiment_name: str | None = ...,
        measure_power_secs: float | None = ...,
        output_dir: str | PathLike[str] | None = ...,
        output_file: str | None = ...,
        save_to_file: bool | None = ...,
        log_level: str | int | None = ...,
        tracking_mode: str | None = ...,
        gpu_ids: Sequence[int | str] | None = ...,
        country_iso_code: str | None = ...,
        country_2letter_iso_code: str | None = ...,
        region: str | None = ...,
        cloud_provider: str | None = ...,
        cloud_region: str | None = ...,
        pue: float | None = ...,
        wue: float | None = ...,
        on_csv_write: str | None = ...,
        force_cpu_power: float | None = ...,
        force_ram_power: float | None = ...,
        force_carbon_intensity_g_co2e_kwh: float | None = ...,
        force_mode_cpu_load: bool | None = ...,
        rapl_include_dram: bool | None = ...,
        rapl_prefer_psys: bool | None = ...,
        allow_multiple_runs: bool | None = ...,
        default_cpu_power: float | None = ...,
        powercap_root: str | PathLike[str] | None = ...,
        rank: int | None = ...,
        host: str | None = ...,
        job_wait_secs: float | None = ...,
        sync: str | None = ...,
        electricitymaps_api_token: str | None = ...,
        co2_signal_api_token: str | None = ...,
        electricitymaps_base_url: str | None = ...,
        electricitymaps_zone: str | None = ...,
        nvml_library: str | PathLike[str] | None = ...,
        gpu_poll_secs: float | None = ...,
        psu_efficiency: float | None = ...,
        co2_budget_kg: float | None = ...,
        stop_over_budget: bool | None = ...,
        save_to_prometheus: bool | None = ...,
        prometheus_url: str | None = ...,
        prometheus_textfile_dir: str | PathLike[str] | None = ...,
        otlp_endpoint: str | None = ...,
        amdsmi_library: str | PathLike[str] | None = ...,
        hwmon_root: str | PathLike[str] | None = ...,
        loggers: Sequence[Any] | None = ...,
        neso_base_url: str | None = ...,
        hardware_lifetime_years: float | None = ...,
        user: str | None = ...,
        api_call_interval: Any = ...,
        api_endpoint: Any = ...,
        api_key: Any = ...,
        output_methods: Any = ...,
        save_to_api: Any = ...,
        save_to_logger: Any = ...,
        logging_logger: Any = ...,
        save_to_logfire: Any = ...,
        output_handlers: Any = ...,
        emissions_endpoint: Any = ...,
        logger_preamble: Any = ...,
        metadata: Any = ...,
        log_metrics: Sequence[int | str] | None = ...,
        min_gain_per_kg: float | None = ...,
        patience: int | None = ...,
        ioreport_library: str | PathLike[str] | None = ...,
        emi_library: str | PathLike[str] | None = ...,
    ) -> Self: ...
    def start(self) -> None:
        """Starts measuring; a second call on a running tracker only warns."""
    def stop(self) -> float | None:
        """Stops, writes the run's row, returns its kg CO2eq (None if it never ran)."""
    def flush(self) -> float | None:
        """Writes a row with the totals so far and returns the kg CO2eq so far."""
    def flush_data(self) -> EmissionsData | None:
        """Like `flush()`, but returns the row written (None when not running)."""
    def start_window(self, name: str) -> None:
        """Opens a named window now (starting the tracker if needed); windows nest and overlap."""
    def end_window(self, name: str) -> EmissionsData:
        """Closes a window, writes its row (with `window` set) and returns what it measured."""
    def start_task(self, task_name: str | None = None) -> None:
        """CodeCarbon's name for `start_window`."""
    def stop_task(self, task_name: str | None = None) -> EmissionsData | None:
        """CodeCarbon's name for `end_window`; without a name, the last task opened."""
    def epoch(
        self, epoch: int | None = None, phase: str = "train", total: int | None = None
    ) -> EpochWindow:
        """A context manager measuring one epoch; epochs are numbered from 0 per phase. With
        `total` (the run's number of epochs), epoch rows carry the run's projection."""
    def count(
        self, samples: int | None = None, tokens: int | None = None, requests: int | None = None
    ) -> None:
        """Adds to the open windows and the run; cheap enough to call once per batch."""
    def window(
        self,
        name: str,
        *,
        samples: int | None = None,
        tokens: int | None = None,
        requests: int | None = None,
        shared: bool = False,
    ) -> Window:
        """A context manager measuring a window with its counts; `shared=True` for the
        overlapping requests of a server (named `<name>-<n>`, charged their share)."""
    @property
    def open_windows(self) -> list[str]: ...
    @property
    def running(self) -> bool:
        """Whether a run is in progress (between `start()` and `stop()`)."""
    @property
    def final_emissions(self) -> float | None: ...
    @property
    def final_emissions_data(self) -> EmissionsData | None:
        """The last stopped run's figures; on rank 0 of a job whose process group is
        initialised, the job's (`scope` "job"), gathered from every rank that ran a tracker."""
    @property
    def rank_emissions_data(self) -> EmissionsData | None:
        """This rank's own share of the last stopped run: `final_emissions_data`, except on
        rank 0 of a job, where that is the job's."""
    @property
    def project_name(self) -> str: ...
    @property
    def country_iso_code(self) -> str | None: ...
    @property
    def location_source(self) -> str:
        """cloud, region, country, timezone:<IANA zone> or none (world average)."""
    @property
    def cloud_provider(self) -> str | None: ...
    @property
    def log_metrics(self) -> list[str] | None:
        """The figures chosen for callbacks and loggers, None for the default ones."""
    @property
    def output_path(self) -> str | None: ...
    def _job(self) -> _JobHandle:
        """The handle `carbonmeter._distributed` speaks to this tracker's job through."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        _exc_type: type[BaseException] | None = None,
        _exc_value: BaseException | None = None,
        _traceback: TracebackType | None = None,
    ) -> bool: ...

class OfflineEmissionsTracker(EmissionsTracker):
    """An `EmissionsTracker` that must be told where it runs, as CodeCarbon's.

    carbonmeter never goes online to locate a run, so this class only adds a check: a location
    (`country_iso_code`, `region` or `cloud_provider`/`cloud_region`, from a keyword argument,
    the environment or `.codecarbon.config`) must be set, so the emissions use that grid and not
    the world average nor a guess from the time zone; otherwise `InvalidValueError`.

    Example:
        >>> from carbonmeter import OfflineEmissionsTracker
        >>> tracker = OfflineEmissionsTracker(country_iso_code="SWE", save_to_file=False)
        >>> tracker.country_iso_code
        'SWE'
    """

@final
class EpochWindow:
    """One epoch's window, from `EmissionsTracker.epoch()`.

    Example:
        >>> from carbonmeter import EmissionsTracker
        >>> tracker = EmissionsTracker(country_iso_code="FRA", save_to_file=False)
        >>> with tracker.epoch() as epoch:
        ...     _ = sum(range(1000))
        >>> epoch.data.epoch
        0
        >>> _ = tracker.stop()
    """

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        _exc_type: type[BaseException] | None = None,
        _exc_value: BaseException | None = None,
        _traceback: TracebackType | None = None,
    ) -> bool: ...
    @property
    def data(self) -> EmissionsData | None:
        """What the epoch measured, once it has ended."""
    def record(self, name: str, value: float, *, mode: str = "auto") -> None:
        """Records the metric `name` = `value` in this epoch's row (`metric_name`,
        `metric_value`, `metric_gain_per_kg`); call it inside the with-block. `mode` is "max",
        "min" or "auto" (a name with loss, error or perplexity in it improves downwards). With
        `min_gain_per_kg`, the run stops paying when it gains too little per kg CO2eq.

        Example:
            >>> from carbonmeter import EmissionsTracker
            >>> tracker = EmissionsTracker(country_iso_code="FRA", save_to_file=False)
            >>> with tracker.epoch() as epoch:
            ...     epoch.record("val_accuracy", 0.75)
            >>> epoch.data.metric_name, epoch.data.metric_value
            ('val_accuracy', 0.75)
            >>> _ = tracker.stop()
        """

@final
class Window:
    """A named window with its counts, from `EmissionsTracker.window()`.

    Example:
        >>> from carbonmeter import EmissionsTracker
        >>> tracker = EmissionsTracker(country_iso_code="FRA", save_to_file=False)
        >>> with tracker.window("request", tokens=12, shared=True) as request:
        ...     request.count(tokens=30)
        >>> (request.name, request.data.tokens, request.data.requests)
        ('request-0', 42, 1)
        >>> _ = tracker.stop()
    """

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        _exc_type: type[BaseException] | None = None,
        _exc_value: BaseException | None = None,
        _traceback: TracebackType | None = None,
    ) -> bool: ...
    def count(
        self, samples: int | None = None, tokens: int | None = None, requests: int | None = None
    ) -> None:
        """Adds to this window, the run and the open windows that are not shared."""
    @property
    def name(self) -> str | None:
        """The window's name in its rows (`request-3` for a shared one), once opened."""
    @property
    def data(self) -> EmissionsData | None:
        """What the window measured, once it has ended."""

@final
class _JobHandle:
    """A tracker seen as a rank of a distributed job (private: `EmissionsTracker._job()`)."""

    def member(self, rank: int, current_gpu: str | None = None) -> str:
        """This process's facts as rank `rank`, as JSON for the other ranks."""
    def join(self, members: list[str], rank: int, world_size: int) -> None:
        """Takes rank `rank`'s share of the job whose ranks published `members`."""
    @property
    def ownership(self) -> tuple[bool, list[str]] | None:
        """What this rank measures: (host CPU and RAM, GPU UUIDs), once it has a job share."""
    @property
    def wait_secs(self) -> float:
        """The `job_wait_secs` setting."""
    @property
    def stop_over_budget(self) -> bool:
        """The `stop_over_budget` setting."""
    def row(self, rows: list[str], missing: list[int], run: bool = False) -> EmissionsData | None:
        """Writes the job's row of a window (or of the run) from its ranks' rows."""
    def decision(self, stop: bool) -> EmissionsData | None:
        """Writes this rank's epoch row held for rank 0's decision on the job's budget."""

@final
class Intensity:
    """A grid's carbon intensity, as looked up in carbonmeter's embedded tables.

    Example:
        >>> from carbonmeter.intensity import lookup
        >>> lookup(country="FR").zone
        'FRA'
    """

    @property
    def g_per_kwh(self) -> float:
        """g CO2eq per kWh."""
    @property
    def source(self) -> str:
        """Where the figure comes from."""
    @property
    def year(self) -> int | None:
        """Year the figure is for."""
    @property
    def zone(self) -> str:
        """FRA, US-CA, gcp:europe-west1 or World."""
    @property
    def method(self) -> str:
        """table (lookups never go online)."""
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

def lookup_intensity(
    country: str | None = None,
    region: str | None = None,
    cloud_provider: str | None = None,
    cloud_region: str | None = None,
) -> Intensity:
    """The table intensity of a location: cloud region over region over country.

    With nothing given, the world average. Unknown values raise `InvalidValueError` naming the
    value and the three closest known names.

    Example:
        >>> from carbonmeter.intensity import lookup
        >>> lookup(region="US-CA").country_iso_code
        'USA'
    """

def lookup_cpu_tdp(cpu_model: str) -> tuple[str, float] | None:
    """The TDP the CPU load model uses for a model name: (table name, W per package), or None.

    Example:
        >>> from carbonmeter._core import lookup_cpu_tdp
        >>> lookup_cpu_tdp("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz")
        ('Intel Xeon Gold 6248', 150.0)
    """

@final
class HardwareTdp:
    """One device's TDP with where it comes from."""

    @property
    def model(self) -> str:
        """The table's name for the model."""
    @property
    def kind(self) -> str:
        """`cpu`, `gpu` or `tpu`."""
    @property
    def tdp_w(self) -> float:
        """Thermal design power of one device (one package for CPUs), W."""
    @property
    def memory_gb(self) -> float | None: ...
    @property
    def source(self) -> str: ...
    @property
    def year(self) -> int: ...
    @property
    def table(self) -> str:
        """`gpu_tdp.csv` or `cpu_tdp.csv`."""
    @property
    def note(self) -> str | None:
        """Where the vendor's figure replaced the ML CO2 Impact calculator's, the calculator's."""

def lookup_hardware(name: str) -> HardwareTdp:
    """The device `name` means: the GPU table, then the CPU table by brand string.

    Reads nvidia-smi's names and short forms; raises `InvalidValueError` naming the value and
    the nearest entries on a miss or an ambiguous name.

    Example:
        >>> from carbonmeter._core import lookup_hardware
        >>> lookup_hardware("NVIDIA A100-SXM4-80GB").tdp_w
        400.0
    """

def gpu_tdp_table() -> list[HardwareTdp]:
    """Every entry of the GPU table (data/gpu_tdp.csv), in order."""

def estimate_co2(
    tdp_w: float, count: int, hours: float, pue: float, g_per_kwh: float
) -> tuple[float, float]:
    """`(energy_kwh, co2_kg)` of `count` devices of `tdp_w` W for `hours` at `pue` on a grid of
    `g_per_kwh`: the ML CO2 Impact calculator's formula, as `carbonmeter estimate` uses it."""

def estimate_footprint(
    model: str,
    count: int,
    hours: float,
    energy_kwh: float,
    pue: float,
    lifetime_years: float,
    wue: float | None = None,
    country_iso3: str | None = None,
    cloud_provider: str | None = None,
    cloud_region: str | None = None,
) -> dict[str, Any]:
    """The embodied carbon of `count` devices of `model` (a `gpu_tdp.csv` model) over `hours`
    at `lifetime_years`, and the water of `energy_kwh` drawn at `pue` (on-site from `wue` or the
    cloud region, off-site from the country): `embodied_kg` (+ `_low`, `_high`; `None` without
    a figure), `embodied_kg_per_device`, `embodied_device`, `embodied_basis`, `embodied_year`,
    `embodied_source`, `embodied_upper_bound_only`, `water_onsite_l` (`None` without a WUE),
    `water_onsite_source`, `water_offsite_l` (+ `_low`, `_high`), `water_offsite_source`."""

class _RowListener(Protocol):
    """What the registered factory returns for a tracker's `loggers=` argument."""

    def window_closed(self, data: EmissionsData, /) -> None: ...
    def run_stopped(self, data: EmissionsData, /) -> None: ...

def per_unit(
    energy_kwh: float,
    co2_kg: float,
    samples: int | None = None,
    tokens: int | None = None,
    requests: int | None = None,
) -> dict[str, float | None]:
    """`j_per_sample`, `j_per_token`, `j_per_request` and `co2_g_per_1k_tokens` of an energy and
    emissions spent on the counts given (None where not counted)."""

def g_per_kwh_of(co2_kg: float, energy_kwh: float) -> float | None:
    """The grid intensity, g CO2eq/kWh, that `co2_kg` emitted for `energy_kwh` implies; None
    for no energy."""

@final
class GreenerPlan:
    """When to start a run so its mean forecast intensity is lowest (`carbonmeter.forecast`)."""

    @property
    def start_unix_s(self) -> float:
        """Unix time to start at, s (`now_unix_s` when starting now)."""
    @property
    def now_unix_s(self) -> float:
        """Unix time the plan was made, s."""
    @property
    def best_g_per_kwh(self) -> float | None:
        """Mean forecast intensity over the run from `start_unix_s`, g CO2eq/kWh."""
    @property
    def now_g_per_kwh(self) -> float | None:
        """Mean forecast intensity over the run started now, g CO2eq/kWh."""
    @property
    def searched_until_unix_s(self) -> float | None:
        """Unix time the forecast was searched until (the deadline or its end)."""
    @property
    def reason(self) -> str | None:
        """Why the run starts now without the forecast choosing it, or None."""
    @property
    def source(self) -> str:
        """The forecast's source (`none` when no source covers the grid)."""
    @property
    def zone(self) -> str:
        """The grid's zone, as the tables name it."""
    @property
    def start_iso(self) -> str:
        """The start, local time, ISO 8601 with its offset."""
    @property
    def start_slurm(self) -> str:
        """The start in Slurm's `sbatch --begin` form, local time."""
    @property
    def start_at(self) -> str:
        """The start in `at -t`'s form, `CCYYMMDDhhmm.SS`, local time."""

def _plan_greener(
    duration_s: float,
    within_s: float,
    now_unix_s: float,
    postcode: str | None = None,
    **settings: Any,
) -> GreenerPlan:
    """Plans a carbon-aware start for the grid that the tracker `settings` locate (see
    `carbonmeter.forecast.plan`)."""

def _schedule_next_run(plan: GreenerPlan) -> None:
    """The next tracker started in this process records `plan` in its rows."""

def _stop_all() -> None:
    """Stops every running tracker of the process, writing its rows: the package's `atexit`
    hook, so a run still going at the interpreter's exit is written before modules are torn
    down."""

def _warn_once(cause: str, message: str, /) -> bool:
    """Logs `message` as a warning on the `carbonmeter` logger unless this process already
    said something for `cause` (in Python or in the core); returns whether it logged."""

def _register_job_hook(hook: Callable[[_JobHandle], Any], /) -> None:
    """Registers what the core calls with a plain tracker's `_JobHandle` when its run starts as
    a rank of a job: it returns the run's link (with `stopped(data)`), or `None`."""

def register_row_listener(factory: Callable[[Any, list[str] | None], _RowListener], /) -> None:
    """Registers what the core calls with a tracker's `loggers=` argument and its
    `log_metrics` setting at construction.

    The object it returns gets `window_closed(data)` when a window closes and
    `run_stopped(data)` when the run stops. `import carbonmeter` registers
    `carbonmeter.loggers.LoggerSet`; a later call replaces it for trackers made afterwards.
    """
