//! One line of `emissions.csv`: CodeCarbon 3.3.2's columns in its order and units, then ours.

use serde::{Deserialize, Serialize};

/// CodeCarbon 3.3.2's `emissions.csv` columns, in order. Ours follow them, so readers written
/// for CodeCarbon find every column they know where they expect it. The row struct is the
/// header's one source; this copy is what a test checks it against.
#[cfg(test)]
pub const CODECARBON_COLUMNS: [&str; 38] = [
    "timestamp",
    "project_name",
    "run_id",
    "experiment_id",
    "duration",
    "emissions",
    "emissions_rate",
    "cpu_power",
    "gpu_power",
    "ram_power",
    "cpu_energy",
    "gpu_energy",
    "ram_energy",
    "energy_consumed",
    "water_consumed",
    "country_name",
    "country_iso_code",
    "region",
    "cloud_provider",
    "cloud_region",
    "os",
    "python_version",
    "codecarbon_version",
    "cpu_count",
    "cpu_model",
    "gpu_count",
    "gpu_model",
    "longitude",
    "latitude",
    "ram_total_size",
    "tracking_mode",
    "cpu_utilization_percent",
    "gpu_utilization_percent",
    "ram_utilization_percent",
    "ram_used_gb",
    "on_cloud",
    "pue",
    "wue",
];

/// The version of carbonmeter written in every row.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Python type of a column's values, as `_core.pyi` spells it (`float | None`).
pub trait ColumnType {
    /// The type's name.
    const PYTHON: &'static str;
}

macro_rules! column_types {
    ($($rust:ty => $python:literal),* $(,)?) => {
        $(impl ColumnType for $rust {
            const PYTHON: &'static str = $python;
        })*
    };
}

column_types! {
    String => "str",
    f64 => "float",
    u16 => "int",
    u32 => "int",
    u64 => "int",
    Option<String> => "str | None",
    Option<f64> => "float | None",
    Option<u16> => "int | None",
    Option<u32> => "int | None",
    Option<u64> => "int | None",
}

/// One column of the row: what `_core.COLUMNS` serves and `docs/columns.md` is generated from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// The CSV header's name, and `EmissionsData`'s attribute.
    pub name: &'static str,
    /// The Python type of its values (`float | None` for a column that may be empty).
    pub python_type: &'static str,
    /// The unit of its values (`kWh`), empty for text, counts and ratios.
    pub unit: &'static str,
    /// The field's doc comment, one line per line of the comment.
    doc_lines: &'static str,
}

impl Column {
    /// What the column holds, one paragraph; a `*_method` column names its values too (from
    /// [`super::methods::methods`], so no list of them is kept here by hand).
    pub fn doc(&self) -> String {
        let mut doc = self
            .doc_lines
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let values: Vec<String> = super::methods::methods()
            .iter()
            .filter(|method| method.columns.contains(&self.name))
            .map(|method| format!("`{}`", method.name))
            .collect();
        if let Some((last, rest)) = values.split_last() {
            let listed = if rest.is_empty() {
                last.clone()
            } else {
                format!("{} or {last}", rest.join(", "))
            };
            doc.push_str(" One of ");
            doc.push_str(&listed);
            doc.push_str(" (see the methods).");
        }
        doc
    }
}

/// The unit given to a field, or none.
macro_rules! unit_of {
    () => {
        ""
    };
    ($unit:literal) => {
        $unit
    };
}

/// Declares the row struct, its columns and `for_each_row_field!` from one list of fields, so a
/// column is one field here: the CSV header, `EmissionsData`'s getters and its `as_dict`, and
/// `_core.COLUMNS` (name, type, unit, doc) all follow. A field's doc comment is its column's
/// doc; `#[unit = "kWh"]` after it gives the unit. The `$d` argument is a literal `$`, which a
/// macro-made macro needs for its own metavariables.
macro_rules! emissions_row {
    (($d:tt) $(
        $(#[doc = $doc:literal])* $(#[unit = $unit:literal])? $field:ident : $ty:ty,
    )*) => {
        /// One measured window. Units as CodeCarbon: seconds, kg CO2eq, kWh, W, litres, GB.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
        #[serde(default)]
        pub struct EmissionsRow {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        /// Every column of the CSV, in order: the struct's fields, their types, units and docs.
        pub const COLUMNS: &[Column] = &[$(Column {
            name: stringify!($field),
            python_type: <$ty as ColumnType>::PYTHON,
            unit: unit_of!($($unit)?),
            doc_lines: concat!($($doc, "\n"),*),
        }),*];

        /// Calls `$callback!(field, field, ...)` with every column's field name, in order.
        macro_rules! for_each_row_field {
            ($d callback:ident) => {
                $d callback!($($field),*);
            };
        }
        pub(crate) use for_each_row_field;
    };
}

emissions_row! {($)
    /// Local time the row was made, `YYYY-MM-DDTHH:MM:SS`.
    timestamp: String,
    /// The `project_name` setting.
    project_name: String,
    /// UUID of the run (one per `start()`).
    run_id: String,
    /// The `experiment_id` setting.
    experiment_id: String,
    /// Time measured.
    #[unit = "s"]
    duration: f64,
    /// `energy_consumed` x the grid's intensity / 1000; with live figures, the sum over the
    /// hours of each hour's energy x that hour's intensity.
    #[unit = "kg CO2eq"]
    emissions: f64,
    /// `emissions` per second of `duration`.
    #[unit = "kg CO2eq/s"]
    emissions_rate: f64,
    /// Mean CPU power over the row's window, PUE included (CodeCarbon writes the last sample).
    #[unit = "W"]
    cpu_power: f64,
    /// Mean GPU power over the row's window, PUE included; `NaN` when the GPUs found report
    /// neither energy nor power.
    #[unit = "W"]
    gpu_power: f64,
    /// Mean RAM power over the row's window, PUE included.
    #[unit = "W"]
    ram_power: f64,
    /// CPU energy, PUE included.
    #[unit = "kWh"]
    cpu_energy: f64,
    /// GPU energy, PUE included; `NaN` when the GPUs found report neither energy nor power,
    /// never a measured 0.
    #[unit = "kWh"]
    gpu_energy: f64,
    /// RAM energy, PUE included.
    #[unit = "kWh"]
    ram_energy: f64,
    /// CPU + GPU + RAM energy, PUE included (`psys_energy` is never added in).
    #[unit = "kWh"]
    energy_consumed: f64,
    /// CodeCarbon's water: `energy_consumed` x `wue` (on-site only, 0 without a `wue`); the
    /// whole water, on-site and off-site, is `water_total`.
    #[unit = "L"]
    water_consumed: f64,
    /// Country of the grid used, when known.
    country_name: Option<String>,
    /// ISO 3166-1 alpha-3 code of the grid's country, when known.
    country_iso_code: Option<String>,
    /// The `region` setting: the grid's region (its ISO 3166-2 code).
    region: Option<String>,
    /// The `cloud_provider` setting.
    cloud_provider: Option<String>,
    /// The `cloud_region` setting.
    cloud_region: Option<String>,
    /// `platform.platform()`.
    os: String,
    /// `platform.python_version()`.
    python_version: String,
    /// Left empty: this row was not written by CodeCarbon (see `carbonmeter_version`).
    codecarbon_version: String,
    /// Logical CPUs.
    cpu_count: u32,
    /// CPU brand string.
    cpu_model: String,
    /// GPUs measured (GPUs found that report neither energy nor power are not counted).
    gpu_count: u32,
    /// The GPUs measured, counted by name in order of appearance: `2 x NVIDIA H100 80GB HBM3`
    /// (the counts add up to `gpu_count`).
    gpu_model: String,
    /// Not located: empty.
    #[unit = "degrees"]
    longitude: Option<f64>,
    /// Not located: empty.
    #[unit = "degrees"]
    latitude: Option<f64>,
    /// Memory installed.
    #[unit = "GB"]
    ram_total_size: f64,
    /// The `tracking_mode` setting: `machine` or `process`.
    tracking_mode: String,
    /// Mean CPU utilisation of the tracked processes.
    #[unit = "%"]
    cpu_utilization_percent: f64,
    /// Time-weighted mean utilisation of the measured GPUs.
    #[unit = "%"]
    gpu_utilization_percent: f64,
    /// Mean memory in use, as a share of that installed.
    #[unit = "%"]
    ram_utilization_percent: f64,
    /// Mean memory in use.
    #[unit = "GB"]
    ram_used_gb: f64,
    /// `Y` when a cloud provider is set, `N` otherwise.
    on_cloud: String,
    /// Power usage effectiveness applied: it multiplies every component's energy and power.
    pue: f64,
    /// The `wue` setting (0 when unset, as CodeCarbon writes it).
    #[unit = "L/kWh"]
    wue: f64,
    /// Version of carbonmeter that wrote the row.
    carbonmeter_version: String,
    /// How the CPU energy was measured.
    cpu_method: String,
    /// How the memory energy was measured.
    ram_method: String,
    /// How the GPU energy was measured (each GPU's method is in `gpu_devices`).
    gpu_method: String,
    /// RAPL zones read, `+`-joined (`package-0+dram-0`).
    rapl_zones: String,
    /// Energy of the RAPL `psys` (platform) zone: the whole platform, overlapping CPU and RAM,
    /// so reported apart and never added in.
    #[unit = "kWh"]
    psys_energy: f64,
    /// Grid intensity used; with live figures, the energy-weighted mean
    /// (`emissions / energy_consumed`).
    #[unit = "g CO2eq/kWh"]
    intensity_g_per_kwh: f64,
    /// Where that figure comes from (see `data/README.md`).
    intensity_source: String,
    /// Year that figure is for.
    intensity_year: Option<u16>,
    /// How that figure was chosen.
    intensity_method: String,
    /// Name of the window this row measures (`train-epoch-0`, a task name); empty for a run
    /// row (from `start()`).
    window: Option<String>,
    /// Epoch number, for epoch windows.
    epoch: Option<u32>,
    /// `train`, `validation`, `eval`, ... for epoch windows of frameworks that tell them apart.
    phase: Option<String>,
    /// Distributed rank of the process that wrote the row, when known (the Lightning and HF
    /// callbacks set it).
    rank: Option<u32>,
    /// Grid zone of that figure: `FRA`, `US-CA`, `SPNO`, `SE3`, `gcp:europe-west1`, `World`, or
    /// the Electricity Maps zone (`FR`) for live figures.
    intensity_zone: String,
    /// How the location was chosen: `cloud`, `region`, `country`, `timezone:<IANA zone>` or
    /// `none` (world average).
    location_source: String,
    /// The `experiment_name` setting: a readable label for the experiment, by which the report
    /// groups runs (empty when unset).
    experiment_name: String,
    /// Per GPU, a JSON list of `{vendor, index, uuid, name, energy_kwh, method}`: `vendor` is
    /// `nvidia`, `amd` or `intel`; `energy_kwh` includes PUE, as `gpu_energy` does, and is
    /// `null` for an `unmeasured` GPU.
    gpu_devices: String,
    /// Lowest plausible `energy_consumed`, from the error model of each method
    /// (`data/uncertainty.csv`).
    #[unit = "kWh"]
    energy_consumed_low: f64,
    /// Highest plausible `energy_consumed`; empty when a component is unbounded.
    #[unit = "kWh"]
    energy_consumed_high: Option<f64>,
    /// Lowest plausible `emissions`: the energy band times the grid intensity's range.
    #[unit = "kg CO2eq"]
    emissions_low: f64,
    /// Highest plausible `emissions`; empty when unbounded.
    #[unit = "kg CO2eq"]
    emissions_high: Option<f64>,
    /// CPU + GPU + RAM energy at the plug, to compare with a wall meter: divided by
    /// `psu_efficiency`, PUE not applied; empty without that setting.
    #[unit = "kWh"]
    wall_energy: Option<f64>,
    /// CPU seconds carbonmeter spent in the row's span: its sampler thread and its calls on the
    /// user's thread, from per-thread CPU clocks.
    #[unit = "s"]
    tracker_cpu_seconds: f64,
    /// Epoch rows, when the number of epochs is known: the whole run's projected energy.
    #[unit = "kWh"]
    projected_energy_consumed: Option<f64>,
    /// Epoch rows, when the number of epochs is known: the whole run's projected emissions.
    #[unit = "kg CO2eq"]
    projected_emissions: Option<f64>,
    /// The lowest plausible projected emissions (epochs' spread and measurement band).
    #[unit = "kg CO2eq"]
    projected_emissions_low: Option<f64>,
    /// The highest plausible projected emissions.
    #[unit = "kg CO2eq"]
    projected_emissions_high: Option<f64>,
    /// Epoch rows, when the number of epochs is known: the whole run's projected duration.
    #[unit = "s"]
    projected_duration: Option<f64>,
    /// Why training was asked to stop after this row (`co2_budget`, or `min_gain_per_kg` when
    /// the monitored metric stopped paying for its emissions), if it was.
    stop_reason: Option<String>,
    /// `rank` (one rank's share of a distributed job) or `job` (the whole job, written by
    /// rank 0); empty for a single process.
    scope: Option<String>,
    /// The distributed job: SLURM's job id, else an id shared by its ranks.
    job_id: Option<String>,
    /// The `host` setting of the rank (`+`-joined hosts in a job row).
    host: Option<String>,
    /// Rank on its host.
    local_rank: Option<u32>,
    /// Ranks in the job.
    world_size: Option<u32>,
    /// Job rows: the ranks whose figures never reached rank 0 within `job_wait_secs`,
    /// comma-separated.
    missing_ranks: Option<String>,
    /// Samples counted (`tracker.count(samples=...)`, the callbacks); empty when none were.
    samples: Option<u64>,
    /// Tokens counted; empty when none were.
    tokens: Option<u64>,
    /// Requests counted (a shared window counts 1); empty when none were.
    requests: Option<u64>,
    /// `time_share` for a shared window (its energy is its share of the stretches it overlapped
    /// other shared windows); empty for a window measured from its own edges.
    attribution: Option<String>,
    /// Energy (PUE included) measured while no shared window was open, on run and flush rows of
    /// a run that had shared windows: the idle energy no request is charged; empty otherwise.
    #[unit = "kWh"]
    unattributed_energy: Option<f64>,
    /// The start a carbon-aware wait (`carbonmeter wait`, `run --when-greener`,
    /// `wait_for_greener`) chose for this run, UTC `YYYY-MM-DDTHH:MM:SSZ`; empty without one.
    scheduled_start: Option<String>,
    /// The forecast's mean intensity over the run from `scheduled_start`; empty when the wait
    /// had no forecast.
    #[unit = "g CO2eq/kWh"]
    scheduled_intensity_g_per_kwh: Option<f64>,
    /// The forecast's mean intensity over the run had it started when the wait began: against
    /// `scheduled_intensity_g_per_kwh`, what waiting saved.
    #[unit = "g CO2eq/kWh"]
    submitted_intensity_g_per_kwh: Option<f64>,
    /// Embodied carbon of the hardware used: each device's manufacturing figure
    /// (`data/embodied_carbon.csv`) x `duration` / `hardware_lifetime_years`, each GPU counted
    /// whole and the host at its share (all of it under `machine` tracking, the CPU share
    /// measured under `process`); empty, never 0, when a device has no figure
    /// (`embodied_missing`). Not in `emissions`, which stays electricity only.
    #[unit = "kg CO2eq"]
    embodied_emissions: Option<f64>,
    /// Lowest plausible `embodied_emissions`: each device's lowest sourced figure over a life
    /// 1.5 x the setting (6 years at the default 4).
    #[unit = "kg CO2eq"]
    embodied_emissions_low: Option<f64>,
    /// Highest plausible `embodied_emissions`: each device's highest figure (BoaviztAPI's
    /// model, an upper bound, where it has one) over a life 0.75 x the setting (3 years).
    #[unit = "kg CO2eq"]
    embodied_emissions_high: Option<f64>,
    /// The devices (as their driver names them) with no embodied figure, comma-separated;
    /// empty when every device has one.
    embodied_missing: Option<String>,
    /// `emissions` + `embodied_emissions`; empty when the embodied figure is.
    #[unit = "kg CO2eq"]
    total_emissions: Option<f64>,
    /// The `hardware_lifetime_years` setting the embodied figures are spread over.
    #[unit = "years"]
    hardware_lifetime_years: f64,
    /// On-site (data-centre cooling) water: IT energy (`energy_consumed` / `pue`) x the
    /// on-site WUE: the `wue` setting when set, else the cloud region's published WUE, else
    /// its provider's fleet figure; empty when none is known. (`water_consumed` keeps
    /// CodeCarbon's `energy_consumed` x `wue`, on-site only.)
    #[unit = "L"]
    water_onsite: Option<f64>,
    /// Lowest plausible `water_onsite`: the energy band; 0 for a WUE that counts water
    /// withdrawn (consumption is at most the withdrawal).
    #[unit = "L"]
    water_onsite_low: Option<f64>,
    /// Highest plausible `water_onsite`; empty when the energy is unbounded.
    #[unit = "L"]
    water_onsite_high: Option<f64>,
    /// Where the on-site WUE comes from (`wue setting 1.8 L/kWh`, `aws:us-east-1 0.06 L/kWh
    /// (withdrawal, ...)`); empty when none is known.
    water_onsite_source: Option<String>,
    /// Off-site water, consumed generating the electricity: `energy_consumed` (PUE included)
    /// x the grid country's L/kWh (`data/water_intensity.csv`, WRI 2020), else WRI's average.
    #[unit = "L"]
    water_offsite: f64,
    /// Lowest plausible `water_offsite`: the energy band, and for the average the lowest
    /// country's factor.
    #[unit = "L"]
    water_offsite_low: f64,
    /// Highest plausible `water_offsite`; empty when the energy is unbounded.
    #[unit = "L"]
    water_offsite_high: Option<f64>,
    /// Which off-site factor was used, and why when it is the average.
    water_offsite_source: String,
    /// `water_onsite` + `water_offsite`; empty when the on-site WUE is unknown.
    #[unit = "L"]
    water_total: Option<f64>,
    /// Lowest plausible `water_total` (an unknown on-site term counts 0).
    #[unit = "L"]
    water_total_low: f64,
    /// Highest plausible `water_total`; empty when a term is unknown or unbounded.
    #[unit = "L"]
    water_total_high: Option<f64>,
    /// The `user` setting, else the login name (`$USER`, `$LOGNAME`, `$USERNAME`): whose run it
    /// is, for a team's report; empty when the setting is `-` or no name is known.
    user: Option<String>,
    /// The metric recorded in the epoch (`monitor=` of the callbacks, `epoch.record(name,
    /// value)`), such as `val_accuracy`; empty when none was.
    metric_name: Option<String>,
    /// That metric's value at the end of the epoch.
    metric_value: Option<f64>,
    /// Which way the metric improves: `max` or `min` (as recorded, or guessed from its name:
    /// a loss, error or perplexity improves downwards).
    metric_direction: Option<String>,
    /// The metric's improvement since the run's first epoch per kg CO2eq emitted after it
    /// (negative when it got worse); empty before the second epoch or when nothing was emitted.
    #[unit = "metric units/kg CO2eq"]
    metric_gain_per_kg: Option<f64>,
}

/// The header line of our CSV, column names in order.
pub fn columns() -> Vec<&'static str> {
    COLUMNS.iter().map(|column| column.name).collect()
}

/// The `timestamp` column's format.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// The span of wall clock readings written as they are, in unix seconds: years 0001 to 9999
/// (the column's four digits), a day in from each end so any time zone's offset stays inside.
const WRITTEN_UNIX_S: std::ops::RangeInclusive<i64> =
    -62_135_596_800 + 86_400..=253_402_300_799 - 86_400;

/// The wall clock reading `now` in whole unix seconds, rounded down, negative before 1970.
fn unix_s(now: std::time::SystemTime) -> i64 {
    match now.duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let before = before.duration();
            let whole_s = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            0_i64
                .saturating_sub(whole_s)
                .saturating_sub(i64::from(before.subsec_nanos() > 0))
        }
    }
}

/// The `timestamp` column for a row made at wall clock time `now`: local time,
/// `YYYY-MM-DDTHH:MM:SS`. Total, unlike chrono's `Local::now()`, which panics on a clock before
/// 1970: such a clock is written as it reads (`1969-07-20T20:17:40`), and one beyond the years
/// 0001-9999 as the nearest end of that span, so the row is written either way.
pub fn timestamp_at(now: std::time::SystemTime) -> String {
    let clamped_s = unix_s(now).clamp(*WRITTEN_UNIX_S.start(), *WRITTEN_UNIX_S.end());
    chrono::DateTime::from_timestamp(clamped_s, 0).map_or_else(
        || "1970-01-01T00:00:00".to_owned(),
        |utc| {
            utc.with_timezone(&chrono::Local)
                .format(TIMESTAMP_FORMAT)
                .to_string()
        },
    )
}

/// The `timestamp` column for a row made now; says once when the wall clock reads before 1970
/// or beyond 9999, where rows' timestamps are the clock's (or clamped), not the true time.
pub fn timestamp_now() -> String {
    let now = std::time::SystemTime::now();
    let unix_s = unix_s(now);
    let timestamp = timestamp_at(now);
    if !(0..=*WRITTEN_UNIX_S.end()).contains(&unix_s) {
        crate::runtime::warn_once_for(
            "wall clock out of range",
            &format!(
                "the wall clock reads {unix_s} s from 1970 (written {timestamp}): rows' \
                 `timestamp` follows it; durations and energy are timed on the monotonic clock, \
                 unaffected (set the system clock)"
            ),
        );
    }
    timestamp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// `timestamp_at` in UTC, whatever the machine's zone: its text less its local offset.
    fn utc_of(now: std::time::SystemTime) -> String {
        chrono::NaiveDateTime::parse_from_str(&timestamp_at(now), TIMESTAMP_FORMAT)
            .expect("the column's format")
            .and_local_timezone(chrono::Local)
            .earliest()
            .expect("a local time")
            .naive_utc()
            .to_string()
    }

    #[test]
    fn a_clock_before_1970_is_written_as_it_reads() {
        // Apollo 11's landing, 1969-07-20T20:17:40Z, and half a second before the epoch.
        let landing = UNIX_EPOCH - Duration::from_secs(14_182_940);
        assert_eq!(utc_of(landing), "1969-07-20 20:17:40");
        let just_before = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(utc_of(just_before), "1969-12-31 23:59:59");
        assert_eq!(unix_s(just_before), -1);
        assert_eq!(unix_s(UNIX_EPOCH + Duration::from_millis(500)), 0);
    }

    #[test]
    fn a_clock_beyond_the_columns_years_is_clamped_not_a_panic() {
        let far_past = UNIX_EPOCH - Duration::from_secs(i64::MAX.unsigned_abs());
        let far_future = UNIX_EPOCH + Duration::from_secs(i64::MAX.unsigned_abs());
        assert_eq!(&timestamp_at(far_past)[..4], "0001");
        assert_eq!(&timestamp_at(far_future)[..4], "9999");
        for text in [timestamp_at(far_past), timestamp_at(far_future)] {
            assert_eq!(text.len(), "YYYY-MM-DDTHH:MM:SS".len(), "{text}");
        }
    }

    #[test]
    fn serialised_header_is_the_column_list() {
        let mut writer = ::csv::Writer::from_writer(Vec::new());
        writer
            .serialize(EmissionsRow::default())
            .expect("serialise");
        let text = String::from_utf8(writer.into_inner().expect("flush")).expect("utf8");
        let header = text.lines().next().expect("header");
        assert_eq!(header, columns().join(","));
    }

    #[test]
    fn codecarbon_columns_come_first_in_order() {
        assert_eq!(&columns()[..CODECARBON_COLUMNS.len()], &CODECARBON_COLUMNS);
    }
}
