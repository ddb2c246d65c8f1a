//! One line of `emissions.csv`: CodeCarbon 3.3.2's columns in its order and units, then ours.

use serde::Serialize;

/// CodeCarbon 3.3.2's `emissions.csv` columns, in order. Ours follow them, so readers written
/// for CodeCarbon find every column they know where they expect it.
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

/// One measured window. Units as CodeCarbon: seconds, kg CO2eq, kWh, W, litres, GB.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct EmissionsRow {
    /// Local time the row was made, `YYYY-MM-DDTHH:MM:SS`.
    pub timestamp: String,
    /// `project_name` setting.
    pub project_name: String,
    /// UUID of the run (one per `start()`).
    pub run_id: String,
    /// `experiment_id` setting.
    pub experiment_id: String,
    /// Seconds measured.
    pub duration: f64,
    /// kg CO2eq.
    pub emissions: f64,
    /// kg CO2eq per second.
    pub emissions_rate: f64,
    /// Mean CPU power over the window, W (PUE included).
    pub cpu_power: f64,
    /// Mean GPU power, W.
    pub gpu_power: f64,
    /// Mean RAM power, W.
    pub ram_power: f64,
    /// CPU energy, kWh.
    pub cpu_energy: f64,
    /// GPU energy, kWh.
    pub gpu_energy: f64,
    /// RAM energy, kWh.
    pub ram_energy: f64,
    /// CPU + GPU + RAM, kWh.
    pub energy_consumed: f64,
    /// Litres of water: energy × WUE.
    pub water_consumed: f64,
    /// Country of the grid, when known.
    pub country_name: Option<String>,
    /// ISO 3166-1 alpha-3 of the grid, when known.
    pub country_iso_code: Option<String>,
    /// Region setting.
    pub region: Option<String>,
    /// Cloud provider setting.
    pub cloud_provider: Option<String>,
    /// Cloud region setting.
    pub cloud_region: Option<String>,
    /// `platform.platform()`.
    pub os: String,
    /// `platform.python_version()`.
    pub python_version: String,
    /// Left empty: this row was not written by CodeCarbon (see `carbonmeter_version`).
    pub codecarbon_version: String,
    /// Logical CPUs.
    pub cpu_count: u32,
    /// CPU brand string.
    pub cpu_model: String,
    /// GPUs measured.
    pub gpu_count: u32,
    /// GPU names.
    pub gpu_model: String,
    /// Not located: empty.
    pub longitude: Option<f64>,
    /// Not located: empty.
    pub latitude: Option<f64>,
    /// GB installed.
    pub ram_total_size: f64,
    /// `machine` or `process`.
    pub tracking_mode: String,
    /// Mean CPU utilisation of the tracked processes, percent.
    pub cpu_utilization_percent: f64,
    /// Mean GPU utilisation, percent.
    pub gpu_utilization_percent: f64,
    /// Mean RAM in use, percent of installed.
    pub ram_utilization_percent: f64,
    /// Mean RAM in use, GB.
    pub ram_used_gb: f64,
    /// `Y` or `N`.
    pub on_cloud: String,
    /// Power usage effectiveness applied.
    pub pue: f64,
    /// Water usage effectiveness applied, L/kWh.
    pub wue: f64,
    /// Version of carbonmeter that wrote the row.
    pub carbonmeter_version: String,
    /// `rapl`, `load_tdp`, `constant` or `none`.
    pub cpu_method: String,
    /// `rapl`, `model`, `constant` or `none`.
    pub ram_method: String,
    /// `counter`, `polled`, `mixed` or `none` (see the README).
    pub gpu_method: String,
    /// RAPL zones read, `+`-joined (`package-0+dram-0`).
    pub rapl_zones: String,
    /// RAPL `psys` energy, kWh: the whole platform, overlapping CPU and RAM, never added in.
    pub psys_energy: f64,
    /// g CO2eq per kWh used.
    pub intensity_g_per_kwh: f64,
    /// Where that figure comes from.
    pub intensity_source: String,
    /// Year that figure is for.
    pub intensity_year: Option<u16>,
    /// `table`, `forced` or `live_hourly` (Electricity Maps, energy-weighted hour by hour).
    pub intensity_method: String,
    /// Name of the window this row measures; empty for a run row (from `start()`).
    pub window: Option<String>,
    /// Epoch number, for epoch windows.
    pub epoch: Option<u32>,
    /// `train`, `validation`, ... for epoch windows of frameworks that tell them apart.
    pub phase: Option<String>,
    /// Distributed rank of the process that wrote the row, when known.
    pub rank: Option<u32>,
    /// Grid zone of that figure: `FRA`, `US-CA`, `gcp:europe-west1`, `World`, or the
    /// Electricity Maps zone (`FR`) for live figures.
    pub intensity_zone: String,
    /// How the location was chosen: `cloud`, `region`, `country`, `timezone:<IANA zone>` or
    /// `none` (world average).
    pub location_source: String,
    /// `experiment_name` setting: a readable label for the experiment (empty when unset).
    pub experiment_name: String,
    /// Per GPU, a JSON list of {index, uuid, name, energy_kwh, method}.
    pub gpu_devices: String,
}

/// The header line of our CSV, column names in order.
pub fn columns() -> Vec<&'static str> {
    let mut columns = CODECARBON_COLUMNS.to_vec();
    columns.extend([
        "carbonmeter_version",
        "cpu_method",
        "ram_method",
        "gpu_method",
        "rapl_zones",
        "psys_energy",
        "intensity_g_per_kwh",
        "intensity_source",
        "intensity_year",
        "intensity_method",
        "window",
        "epoch",
        "phase",
        "rank",
        "intensity_zone",
        "location_source",
        "experiment_name",
        "gpu_devices",
    ]);
    columns
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
