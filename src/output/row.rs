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

/// Declares the row struct, its column list and `for_each_row_field!` from one list of fields,
/// so a column is one field here: the CSV header, `EmissionsData`'s getters and its `as_dict`
/// all follow. The `$d` argument is a literal `$`, which a macro-made macro needs for its own
/// metavariables.
macro_rules! emissions_row {
    (($d:tt) $( $(#[doc = $doc:literal])* $field:ident : $ty:ty, )*) => {
        /// One measured window. Units as CodeCarbon: seconds, kg CO2eq, kWh, W, litres, GB.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
        #[serde(default)]
        pub struct EmissionsRow {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        /// Every column of the CSV, in order: the struct's fields.
        pub const COLUMNS: &[&str] = &[$(stringify!($field)),*];

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
    /// `project_name` setting.
    project_name: String,
    /// UUID of the run (one per `start()`).
    run_id: String,
    /// `experiment_id` setting.
    experiment_id: String,
    /// Seconds measured.
    duration: f64,
    /// kg CO2eq.
    emissions: f64,
    /// kg CO2eq per second.
    emissions_rate: f64,
    /// Mean CPU power over the window, W (PUE included).
    cpu_power: f64,
    /// Mean GPU power, W.
    gpu_power: f64,
    /// Mean RAM power, W.
    ram_power: f64,
    /// CPU energy, kWh.
    cpu_energy: f64,
    /// GPU energy, kWh.
    gpu_energy: f64,
    /// RAM energy, kWh.
    ram_energy: f64,
    /// CPU + GPU + RAM, kWh.
    energy_consumed: f64,
    /// Litres of water: energy × WUE.
    water_consumed: f64,
    /// Country of the grid, when known.
    country_name: Option<String>,
    /// ISO 3166-1 alpha-3 of the grid, when known.
    country_iso_code: Option<String>,
    /// Region setting.
    region: Option<String>,
    /// Cloud provider setting.
    cloud_provider: Option<String>,
    /// Cloud region setting.
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
    /// GPUs measured.
    gpu_count: u32,
    /// GPU names.
    gpu_model: String,
    /// Not located: empty.
    longitude: Option<f64>,
    /// Not located: empty.
    latitude: Option<f64>,
    /// GB installed.
    ram_total_size: f64,
    /// `machine` or `process`.
    tracking_mode: String,
    /// Mean CPU utilisation of the tracked processes, percent.
    cpu_utilization_percent: f64,
    /// Mean GPU utilisation, percent.
    gpu_utilization_percent: f64,
    /// Mean RAM in use, percent of installed.
    ram_utilization_percent: f64,
    /// Mean RAM in use, GB.
    ram_used_gb: f64,
    /// `Y` or `N`.
    on_cloud: String,
    /// Power usage effectiveness applied.
    pue: f64,
    /// Water usage effectiveness applied, L/kWh.
    wue: f64,
    /// Version of carbonmeter that wrote the row.
    carbonmeter_version: String,
    /// `rapl`, `load_tdp`, `constant` or `none`.
    cpu_method: String,
    /// `rapl`, `model`, `constant` or `none`.
    ram_method: String,
    /// `counter`, `polled`, `mixed` or `none` (see the README).
    gpu_method: String,
    /// RAPL zones read, `+`-joined (`package-0+dram-0`).
    rapl_zones: String,
    /// RAPL `psys` energy, kWh: the whole platform, overlapping CPU and RAM, never added in.
    psys_energy: f64,
    /// g CO2eq per kWh used.
    intensity_g_per_kwh: f64,
    /// Where that figure comes from.
    intensity_source: String,
    /// Year that figure is for.
    intensity_year: Option<u16>,
    /// `table`, `forced` or `live_hourly` (Electricity Maps, energy-weighted hour by hour).
    intensity_method: String,
    /// Name of the window this row measures; empty for a run row (from `start()`).
    window: Option<String>,
    /// Epoch number, for epoch windows.
    epoch: Option<u32>,
    /// `train`, `validation`, ... for epoch windows of frameworks that tell them apart.
    phase: Option<String>,
    /// Distributed rank of the process that wrote the row, when known.
    rank: Option<u32>,
    /// Grid zone of that figure: `FRA`, `US-CA`, `gcp:europe-west1`, `World`, or the
    /// Electricity Maps zone (`FR`) for live figures.
    intensity_zone: String,
    /// How the location was chosen: `cloud`, `region`, `country`, `timezone:<IANA zone>` or
    /// `none` (world average).
    location_source: String,
    /// `experiment_name` setting: a readable label for the experiment (empty when unset).
    experiment_name: String,
    /// Per GPU, a JSON list of {index, uuid, name, energy_kwh, method}.
    gpu_devices: String,
    /// Lowest plausible `energy_consumed`, kWh, from the error model of each method
    /// (`data/uncertainty.csv`; the README's "Sensors and accuracy").
    energy_consumed_low: f64,
    /// Highest plausible `energy_consumed`, kWh; empty when a component is unbounded.
    energy_consumed_high: Option<f64>,
    /// Lowest plausible `emissions`, kg CO2eq: the energy band times the grid intensity's range.
    emissions_low: f64,
    /// Highest plausible `emissions`, kg CO2eq; empty when unbounded.
    emissions_high: Option<f64>,
    /// CPU + GPU + RAM energy at the plug, kWh: divided by `psu_efficiency`, PUE not applied;
    /// empty without that setting.
    wall_energy: Option<f64>,
    /// CPU seconds carbonmeter spent in the row's span: its sampler thread and its calls on the
    /// user's thread, from per-thread CPU clocks.
    tracker_cpu_seconds: f64,
    /// Epoch rows, when the number of epochs is known: the whole run's energy, kWh.
    projected_energy_consumed: Option<f64>,
    /// ... the whole run's emissions, kg CO2eq.
    projected_emissions: Option<f64>,
    /// ... its lowest plausible emissions (epochs' spread and measurement band), kg CO2eq.
    projected_emissions_low: Option<f64>,
    /// ... its highest plausible emissions, kg CO2eq.
    projected_emissions_high: Option<f64>,
    /// ... its duration, s.
    projected_duration: Option<f64>,
    /// Why training was asked to stop after this row (`co2_budget`), if it was.
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
    /// Ranks whose figures never reached rank 0, comma-separated (job rows only).
    missing_ranks: Option<String>,
    /// Samples counted (`tracker.count(samples=...)`, the callbacks); empty when none were.
    samples: Option<u64>,
    /// Tokens counted; empty when none were.
    tokens: Option<u64>,
    /// Requests counted (a shared window counts 1); empty when none were.
    requests: Option<u64>,
    /// `time_share` for a shared window (its energy is its share of the stretches it overlapped
    /// other shared windows, see the README); empty for a window measured from its own edges.
    attribution: Option<String>,
    /// kWh (PUE included) measured while no shared window was open, on run and flush rows of a
    /// run that had shared windows: the idle energy no request is charged; empty otherwise.
    unattributed_energy: Option<f64>,
}

/// The header line of our CSV, column names in order.
pub fn columns() -> Vec<&'static str> {
    COLUMNS.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

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
