//! The row builder: an [`EmissionsRow`] from a plain [`RowContext`], no clock, lock or sensor of
//! its own, so every column can be checked on a hand-made interval.

use crate::carbon;
use crate::gpu::Vendor;
use crate::intensity::Intensity;
use crate::intensity::weighted::Weighted;
use crate::meter::{ComponentEnergy, Interval, MeterDescription};
use crate::output::EmissionsRow;
use crate::output::row::VERSION;
use crate::sensors::Method;
use crate::uncertainty::{self, Part};
use crate::work::Counts;

/// Facts about the interpreter that only the caller knows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Identity {
    /// `platform.platform()`.
    pub os: String,
    /// `platform.python_version()`.
    pub python_version: String,
}

/// `platform.python_version()` from `sys.version_info`'s fields (`3.13.0rc1`), without
/// importing `platform`.
pub fn python_version(major: u32, minor: u32, micro: u32, level: &str, serial: u32) -> String {
    let suffix = match level {
        "alpha" => format!("a{serial}"),
        "beta" => format!("b{serial}"),
        "candidate" => format!("rc{serial}"),
        _ => String::new(),
    };
    format!("{major}.{minor}.{micro}{suffix}")
}

/// What a window's row says about it besides its name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WindowLabels {
    /// Epoch number, for epoch windows.
    pub epoch: Option<u32>,
    /// `train`, `validation`, ... where the framework tells them apart.
    pub phase: Option<String>,
}

/// The settings a row repeats, copied from the validated configuration once per tracker.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RowSettings {
    /// `project_name` setting.
    pub project_name: String,
    /// `experiment_id` setting.
    pub experiment_id: String,
    /// `experiment_name` setting.
    pub experiment_name: String,
    /// `machine` or `process`.
    pub tracking_mode: String,
    /// Power usage effectiveness applied to every energy.
    pub pue: f64,
    /// Water usage effectiveness, L/kWh, when set (CodeCarbon's `water_consumed` reads 0
    /// without it; the on-site water then comes from the cloud region, if any).
    pub wue: Option<f64>,
    /// Years the hardware's embodied carbon is spread over.
    pub hardware_lifetime_years: f64,
    /// Distributed rank, when known.
    pub rank: Option<u32>,
    /// Share of the plug's energy the PSU delivers to the components, when set.
    pub psu_efficiency: Option<f64>,
    /// Who ran it (`user` column), when known and not blanked.
    pub user: Option<String>,
}

/// Everything one row is made of.
#[derive(Debug, Clone, Copy)]
pub struct RowContext<'a> {
    /// Local time of the row, `YYYY-MM-DDTHH:MM:SS`.
    pub timestamp: &'a str,
    /// UUID of the run.
    pub run_id: &'a str,
    /// The interpreter's facts.
    pub identity: &'a Identity,
    /// The settings a row repeats.
    pub settings: &'a RowSettings,
    /// The grid intensity of the tracker (the table's or a forced figure).
    pub intensity: &'a Intensity,
    /// How the location was chosen.
    pub location_source: &'a str,
    /// The sensors in use.
    pub description: &'a MeterDescription,
    /// What was measured.
    pub interval: &'a Interval,
    /// The window's name and labels; `None` for a run row.
    pub window: Option<(&'a str, &'a WindowLabels)>,
    /// Hour-by-hour live figures, when on: they replace the emissions and the intensity.
    pub hourly: Option<&'a Weighted>,
    /// CPU seconds carbonmeter spent over the interval.
    pub tracker_cpu_s: f64,
    /// The samples, tokens and requests counted in the interval.
    pub counts: Counts,
    /// Whether `interval` holds a shared window's share of the energy.
    pub shared: bool,
    /// The energy no shared window was charged, for a run row of a run that had some.
    pub unattributed: Option<ComponentEnergy>,
}

/// The backend name a GPU's `data/uncertainty.csv` row is looked up by.
fn gpu_backend(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Nvidia => "nvml",
        // Intel cards are read only through the kernel's hwmon; AMD boards through amd-smi or
        // amdgpu's hwmon, whose assumed bounds are the same, so "any" states them.
        Vendor::Intel => "hwmon",
        Vendor::Amd => "any",
        Vendor::Apple => "ioreport",
    }
}

/// How the CPU energy of `interval` was measured: the meter's method, marked `load_tdp_short`
/// where the window is shorter than one tick of the counters its utilisation comes from.
fn cpu_method(description: &MeterDescription, interval: &Interval) -> Method {
    if description.cpu_method == Method::LoadTdp && interval.duration_s < description.cpu_tick_s {
        Method::LoadTdpShort
    } else {
        description.cpu_method
    }
}

/// The band of `row`, from the methods and figures of `interval`.
fn set_band(row: &mut EmissionsRow, description: &MeterDescription, interval: &Interval) {
    let energy = &interval.energy;
    let mut parts = vec![
        Part {
            quantity: "cpu",
            method: cpu_method(description, interval).as_str(),
            backend: "any",
            energy_j: energy.cpu_j,
            // Utilisation is a difference of counters in whole ticks: off by a few ticks at
            // most, however short the window (issue 32).
            sampling_bound_j: description.cpu_resolution_j,
        },
        Part {
            quantity: "ram",
            method: description.ram_method.as_str(),
            backend: "any",
            energy_j: energy.ram_j,
            sampling_bound_j: 0.0,
        },
    ];
    parts.extend(interval.gpu.devices.iter().map(|device| Part {
        quantity: "gpu",
        method: device.method.as_str(),
        backend: gpu_backend(device.info.vendor),
        energy_j: device.energy_j,
        sampling_bound_j: device.sampling_bound_j,
    }));
    let band = uncertainty::row_band(
        uncertainty::energy_band(&parts, interval.duration_s),
        row.pue,
        row.energy_consumed,
        row.emissions,
        &row.intensity_method,
    );
    row.energy_consumed_low = band.energy_low_kwh;
    row.energy_consumed_high = band.energy_high_kwh;
    row.emissions_low = band.emissions_low_kg;
    row.emissions_high = band.emissions_high_kg;
}

/// Energy per unit of work, from a row's energy, emissions and counts; `None` where the unit
/// was not counted.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PerUnit {
    /// J per sample.
    pub joules_per_sample: Option<f64>,
    /// J per token.
    pub joules_per_token: Option<f64>,
    /// J per request.
    pub joules_per_request: Option<f64>,
    /// g CO2eq per 1000 tokens.
    pub co2_g_per_1k_tokens: Option<f64>,
}

/// The per-unit figures of `energy_kwh` and `co2_kg` spent on `counts`: what `EmissionsData`
/// shows for one row and the report for a sum of rows.
pub fn per_unit(energy_kwh: f64, co2_kg: f64, counts: Counts) -> PerUnit {
    PerUnit {
        joules_per_sample: carbon::joules_per_unit(energy_kwh, counts.samples),
        joules_per_token: carbon::joules_per_unit(energy_kwh, counts.tokens),
        joules_per_request: carbon::joules_per_unit(energy_kwh, counts.requests),
        co2_g_per_1k_tokens: carbon::co2_g_per_1k_units(co2_kg, counts.tokens),
    }
}

impl EmissionsRow {
    /// The samples, tokens and requests of this row.
    pub fn counts(&self) -> Counts {
        Counts {
            samples: self.samples,
            tokens: self.tokens,
            requests: self.requests,
        }
    }

    /// This row's energy and emissions per unit of work.
    pub fn per_unit(&self) -> PerUnit {
        per_unit(self.energy_consumed, self.emissions, self.counts())
    }
}

/// CodeCarbon's `on_cloud`: `Y` when a cloud provider located the grid.
fn on_cloud(intensity: &Intensity) -> String {
    if intensity.cloud_provider.is_some() {
        "Y"
    } else {
        "N"
    }
    .to_owned()
}

/// The row of `context`.
pub fn build_row(context: &RowContext<'_>) -> EmissionsRow {
    let RowContext {
        settings,
        intensity,
        description,
        interval,
        ..
    } = *context;
    let pue = settings.pue;
    let energy = interval.energy;
    let duration_s = interval.duration_s;
    let kwh = |energy_j: f64| carbon::kwh_at_pue(energy_j, pue);
    let mean_w = |energy_j: f64| carbon::mean_power_w(energy_j, duration_s, pue);
    let energy_consumed = energy.counted(kwh);
    let mut row = EmissionsRow {
        timestamp: context.timestamp.to_owned(),
        project_name: settings.project_name.clone(),
        run_id: context.run_id.to_owned(),
        experiment_id: settings.experiment_id.clone(),
        duration: duration_s,
        emissions: 0.0,
        emissions_rate: 0.0,
        cpu_power: mean_w(energy.cpu_j),
        gpu_power: mean_w(energy.gpu_j),
        ram_power: mean_w(energy.ram_j),
        cpu_energy: kwh(energy.cpu_j),
        gpu_energy: kwh(energy.gpu_j),
        ram_energy: kwh(energy.ram_j),
        energy_consumed,
        water_consumed: energy_consumed * settings.wue.unwrap_or(0.0),
        country_name: intensity.country_name.clone(),
        country_iso_code: intensity.country_iso_code.clone(),
        region: intensity.region.clone(),
        cloud_provider: intensity.cloud_provider.clone(),
        cloud_region: intensity.cloud_region.clone(),
        os: context.identity.os.clone(),
        python_version: context.identity.python_version.clone(),
        codecarbon_version: String::new(),
        cpu_count: u32::try_from(description.host.cpu_count).unwrap_or(u32::MAX),
        cpu_model: description.host.cpu_model.clone(),
        gpu_count: interval.gpu.count(),
        gpu_model: interval.gpu.model(),
        longitude: None,
        latitude: None,
        ram_total_size: description.host.ram_total_bytes as f64 / 1e9,
        tracking_mode: settings.tracking_mode.clone(),
        cpu_utilization_percent: interval.cpu_utilization_percent,
        gpu_utilization_percent: interval.gpu.utilization_percent,
        ram_utilization_percent: interval.ram_utilization_percent,
        ram_used_gb: interval.ram_used_gb,
        on_cloud: on_cloud(intensity),
        pue,
        wue: settings.wue.unwrap_or(0.0),
        carbonmeter_version: VERSION.to_owned(),
        cpu_method: cpu_method(description, interval).as_str().to_owned(),
        ram_method: description.ram_method.as_str().to_owned(),
        gpu_method: interval.gpu.method().as_str().to_owned(),
        rapl_zones: description.rapl_zones.clone(),
        psys_energy: kwh(energy.psys_j),
        intensity_g_per_kwh: intensity.g_per_kwh,
        intensity_source: intensity.source.clone(),
        intensity_year: intensity.year,
        intensity_method: intensity.method.as_str().to_owned(),
        window: context.window.map(|(name, _)| name.to_owned()),
        epoch: context.window.and_then(|(_, labels)| labels.epoch),
        phase: context.window.and_then(|(_, labels)| labels.phase.clone()),
        rank: settings.rank,
        intensity_zone: intensity.zone.clone(),
        location_source: context.location_source.to_owned(),
        experiment_name: settings.experiment_name.clone(),
        gpu_devices: interval.gpu.breakdown_json(pue),
        wall_energy: settings
            .psu_efficiency
            .map(|efficiency| carbon::kwh(energy.counted_j()) / efficiency),
        tracker_cpu_seconds: context.tracker_cpu_s,
        samples: context.counts.samples,
        tokens: context.counts.tokens,
        requests: context.counts.requests,
        attribution: context.shared.then(|| "time_share".to_owned()),
        unattributed_energy: context.unattributed.map(|idle| idle.counted(kwh)),
        user: settings.user.clone(),
        ..EmissionsRow::default()
    };
    if interval.gpu.method() == crate::sensors::Method::Unmeasured {
        // Every GPU found reports neither energy nor power: their energy is unknown, so the
        // GPU columns say NaN (the CSV's `NaN`), never a measured 0; the totals are CPU + RAM.
        row.gpu_energy = f64::NAN;
        row.gpu_power = f64::NAN;
    }
    row.emissions = carbon::co2_kg(energy_consumed, intensity.g_per_kwh);
    if let Some(weighted) = context.hourly {
        set_hourly(&mut row, weighted);
    }
    row.emissions_rate = carbon::rate_per_s(row.emissions, duration_s);
    set_band(&mut row, description, interval);
    crate::output::footprint::set_footprint(&mut row, context);
    row
}

/// The emissions and grid figure of `row` weighed hour by hour, in place of the one figure.
fn set_hourly(row: &mut EmissionsRow, weighted: &Weighted) {
    row.emissions = weighted.emissions_kg;
    row.intensity_g_per_kwh = weighted.g_per_kwh;
    row.intensity_source.clone_from(&weighted.source);
    row.intensity_year = weighted.year;
    weighted
        .method
        .as_str()
        .clone_into(&mut row.intensity_method);
    row.intensity_zone.clone_from(&weighted.zone);
}

/// Mean CPU, GPU and RAM power between two rows of one run, W, PUE included as in the rows.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ComponentPower {
    /// CPU, W.
    pub cpu_w: f64,
    /// GPU, W.
    pub gpu_w: f64,
    /// RAM, W.
    pub ram_w: f64,
}

/// The power from `earlier` (the run's start when `None`) to `later`, two cumulative rows of one
/// run (`flush()` rows): what `carbonmeter monitor` shows for each interval.
pub fn power_between(earlier: Option<&EmissionsRow>, later: &EmissionsRow) -> ComponentPower {
    let start = earlier.cloned().unwrap_or_default();
    // A floor rather than a zero: two flushes within one clock tick still give a finite figure.
    let span_s = (later.duration - start.duration).max(1e-9);
    let power_w = |before: f64, after: f64| carbon::power_w_of_kwh(after - before, span_s);
    ComponentPower {
        cpu_w: power_w(start.cpu_energy, later.cpu_energy),
        gpu_w: power_w(start.gpu_energy, later.gpu_energy),
        ram_w: power_w(start.ram_energy, later.ram_energy),
    }
}

#[cfg(test)]
#[allow(
    clippy::float_cmp,
    reason = "the values compared are exact: copied, or products of small binary-exact figures"
)]
mod tests {
    use super::*;
    use crate::gpu::GpuInterval;
    use crate::intensity::{Basis, IntensityMethod};
    use crate::meter::ComponentEnergy;
    use crate::sensors::Method;
    use crate::sensors::host::HostInfo;

    fn intensity() -> Intensity {
        Intensity {
            g_per_kwh: 50.0,
            source: "a table".to_owned(),
            year: Some(2024),
            zone: "FRA".to_owned(),
            method: IntensityMethod::Table,
            basis: Basis::Country,
            country_name: Some("France".to_owned()),
            country_iso_code: Some("FRA".to_owned()),
            region: None,
            cloud_provider: None,
            cloud_region: None,
        }
    }

    fn description() -> MeterDescription {
        MeterDescription {
            cpu_method: Method::Rapl,
            ram_method: Method::Model,
            gpu_method: Method::None,
            rapl_zones: "package-0".to_owned(),
            cpu_resolution_j: 0.0,
            cpu_tick_s: 0.0,
            host: HostInfo {
                cpu_model: "Xeon".to_owned(),
                cpu_count: 8,
                socket_count: 1,
                ram_total_bytes: 16_000_000_000,
            },
        }
    }

    fn settings() -> RowSettings {
        RowSettings {
            project_name: "bert".to_owned(),
            experiment_id: "exp".to_owned(),
            experiment_name: "sst2".to_owned(),
            tracking_mode: "machine".to_owned(),
            pue: 1.5,
            wue: Some(2.0),
            hardware_lifetime_years: 4.0,
            rank: Some(3),
            psu_efficiency: Some(0.8),
            user: Some("ada".to_owned()),
        }
    }

    /// 100 s at 40 W CPU, 10 W RAM, 0 W GPU, 30 W psys.
    fn interval() -> Interval {
        Interval {
            duration_s: 100.0,
            energy: ComponentEnergy {
                cpu_j: 4000.0,
                ram_j: 1000.0,
                gpu_j: 0.0,
                psys_j: 3000.0,
            },
            cpu_utilization_percent: 25.0,
            ram_used_gb: 4.0,
            ram_utilization_percent: 25.0,
            gpu: GpuInterval::default(),
        }
    }

    fn row_of(
        interval: &Interval,
        window: Option<(&str, &WindowLabels)>,
        hourly: Option<&Weighted>,
    ) -> EmissionsRow {
        build_row(&RowContext {
            timestamp: "2026-01-02T03:04:05",
            run_id: "run-1",
            identity: &Identity {
                os: "Linux".to_owned(),
                python_version: "3.12.1".to_owned(),
            },
            settings: &settings(),
            intensity: &intensity(),
            location_source: "country",
            description: &description(),
            interval,
            window,
            hourly,
            tracker_cpu_s: 0.25,
            counts: Counts::default(),
            shared: false,
            unattributed: None,
        })
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-300)
    }

    #[test]
    fn energies_powers_and_emissions_follow_from_the_interval() {
        let row = row_of(&interval(), None, None);
        // 4000 J x PUE 1.5 = 6000 J = 1/600 kWh; 1000 J x 1.5 = 1/2400 kWh.
        assert!(close(row.cpu_energy, 6000.0 / 3.6e6), "{}", row.cpu_energy);
        assert!(close(row.ram_energy, 1500.0 / 3.6e6), "{}", row.ram_energy);
        assert_eq!(row.gpu_energy, 0.0);
        assert!(close(row.energy_consumed, 7500.0 / 3.6e6));
        assert!(close(row.psys_energy, 4500.0 / 3.6e6));
        assert_eq!(
            (row.cpu_power, row.ram_power, row.gpu_power),
            (60.0, 15.0, 0.0)
        );
        assert!(close(row.emissions, 7500.0 / 3.6e6 * 50.0 / 1000.0));
        assert!(close(row.emissions_rate, row.emissions / 100.0));
        assert!(close(row.water_consumed, row.energy_consumed * 2.0));
        assert_eq!(row.duration, 100.0);
    }

    #[test]
    fn the_footprint_is_hand_arithmetic_on_the_rows_energy() {
        // 100 s of a host (900 kg over 4 y = 35,064 h), no GPU, in France at PUE 1.5, wue 2.
        let row = row_of(&interval(), None, None);
        let host_kg = 900.0 * 100.0 / (35_064.0 * 3600.0);
        assert!(close(row.embodied_emissions.unwrap_or(0.0), host_kg));
        assert!(close(
            row.total_emissions.unwrap_or(0.0),
            row.emissions + host_kg
        ));
        assert_eq!(
            (row.embodied_missing.as_deref(), row.hardware_lifetime_years),
            (None, 4.0)
        );
        // Water: IT energy (7500 J / 1.5) x wue 2 on-site, drawn energy x 3.6737 L/kWh off-site;
        // CodeCarbon's water_consumed is the drawn energy x wue.
        let onsite = 5000.0 / 3.6e6 * 2.0;
        assert!(close(row.water_onsite.unwrap_or(0.0), onsite));
        assert!(close(row.water_offsite, 7500.0 / 3.6e6 * 3.6737));
        assert!(close(
            row.water_total.unwrap_or(0.0),
            onsite + row.water_offsite
        ));
        assert!(close(row.water_consumed, 1.5 * onsite));
        assert_eq!(
            row.water_onsite_source.as_deref(),
            Some("wue setting 2 L/kWh")
        );
        // Process tracking: the host at the processes' CPU share (25 %); no wue: no on-site.
        let process = RowSettings {
            tracking_mode: "process".to_owned(),
            wue: None,
            ..settings()
        };
        let row = build_row(&RowContext {
            settings: &process,
            timestamp: "",
            run_id: "",
            identity: &Identity::default(),
            intensity: &intensity(),
            location_source: "country",
            description: &description(),
            interval: &interval(),
            window: None,
            hourly: None,
            tracker_cpu_s: 0.0,
            counts: Counts::default(),
            shared: false,
            unattributed: None,
        });
        assert!(close(row.embodied_emissions.unwrap_or(0.0), host_kg * 0.25));
        assert_eq!(
            (row.water_onsite, row.water_total, row.wue),
            (None, None, 0.0)
        );
        assert_eq!(row.water_consumed, 0.0);
    }

    #[test]
    fn the_band_is_the_error_models_and_wall_energy_divides_by_the_psu() {
        let row = row_of(&interval(), None, None);
        let rapl = uncertainty::lookup("cpu", "rapl", "any").expect("row");
        let model = uncertainty::lookup("ram", "model", "any").expect("row");
        let table = uncertainty::lookup("intensity", "table", "any").expect("row");
        // RAPL at 40 W over 100 s: edges 2 x edge_s x 40 W; the RAM model has no random part.
        let edges_j = 2.0 * rapl.edge_s * 40.0;
        let low_j = rapl.low * 4000.0 + model.low * 1000.0 - edges_j;
        let high_j = rapl.high * 4000.0 + model.high * 1000.0 + edges_j;
        assert!(
            close(row.energy_consumed_low, low_j * 1.5 / 3.6e6),
            "{row:?}"
        );
        let high_kwh = row.energy_consumed_high.expect("bounded");
        assert!(close(high_kwh, high_j * 1.5 / 3.6e6), "{row:?}");
        assert!(row.energy_consumed_low < row.energy_consumed && row.energy_consumed < high_kwh);
        assert!(close(
            row.emissions_low,
            low_j * 1.5 / 3.6e6 * 0.05 * table.low
        ));
        let high_kg = row.emissions_high.expect("bounded");
        assert!(close(high_kg, high_j * 1.5 / 3.6e6 * 0.05 * table.high));
        assert!(close(
            row.wall_energy.expect("psu set"),
            5000.0 / 3.6e6 / 0.8
        ));
        assert_eq!(row.tracker_cpu_seconds, 0.25);
        assert_eq!(
            (row.projected_emissions, row.stop_reason.as_deref()),
            (None, None)
        );
    }

    #[test]
    fn a_load_window_under_one_tick_is_marked_and_its_band_spans_the_rounding() {
        let load = MeterDescription {
            cpu_method: Method::LoadTdp,
            cpu_resolution_j: 2.5,
            cpu_tick_s: 0.01,
            ..description()
        };
        let blink = Interval {
            duration_s: 0.005,
            energy: ComponentEnergy::default(),
            ..interval()
        };
        assert_eq!(cpu_method(&load, &blink), Method::LoadTdpShort);
        assert_eq!(cpu_method(&load, &interval()), Method::LoadTdp);
        let mut row = row_of(&blink, None, None);
        set_band(&mut row, &load, &blink);
        // Nothing counted, yet up to the counters' rounding may have been used: never [0, 0].
        assert_eq!(row.energy_consumed_low, 0.0);
        let high_kwh = row.energy_consumed_high.expect("bounded");
        assert!(close(high_kwh, 2.5 * 1.5 / 3.6e6), "{row:?}");
    }

    #[test]
    fn identity_settings_and_provenance_are_copied() {
        let row = row_of(&interval(), None, None);
        assert_eq!(row.timestamp, "2026-01-02T03:04:05");
        assert_eq!(
            (row.run_id.as_str(), row.project_name.as_str()),
            ("run-1", "bert")
        );
        assert_eq!(
            (row.os.as_str(), row.python_version.as_str()),
            ("Linux", "3.12.1")
        );
        assert_eq!((row.cpu_count, row.cpu_model.as_str()), (8, "Xeon"));
        assert_eq!(row.ram_total_size, 16.0);
        assert_eq!((row.pue, row.wue, row.rank), (1.5, 2.0, Some(3)));
        assert_eq!(
            (row.cpu_method.as_str(), row.ram_method.as_str()),
            ("rapl", "model")
        );
        assert_eq!(row.gpu_method, "none");
        assert_eq!(row.user.as_deref(), Some("ada"));
        assert_eq!((row.gpu_count, row.gpu_devices.as_str()), (0, "[]"));
        assert_eq!(row.intensity_g_per_kwh, 50.0);
        assert_eq!(row.intensity_year, Some(2024));
        assert_eq!(row.intensity_method, "table");
        assert_eq!(
            (row.intensity_zone.as_str(), row.location_source.as_str()),
            ("FRA", "country")
        );
        assert_eq!(row.country_iso_code.as_deref(), Some("FRA"));
        assert_eq!(row.on_cloud, "N");
        assert_eq!(row.codecarbon_version, "");
        assert_eq!(row.carbonmeter_version, VERSION);
        assert_eq!(
            (row.window.as_deref(), row.epoch, row.phase.as_deref()),
            (None, None, None)
        );
    }

    #[test]
    fn window_rows_carry_their_labels() {
        let labels = WindowLabels {
            epoch: Some(2),
            phase: Some("validation".to_owned()),
        };
        let row = row_of(&interval(), Some(("validation-epoch-2", &labels)), None);
        assert_eq!(row.window.as_deref(), Some("validation-epoch-2"));
        assert_eq!(
            (row.epoch, row.phase.as_deref()),
            (Some(2), Some("validation"))
        );
    }

    #[test]
    fn an_empty_interval_has_zero_rates_not_nan() {
        let empty = Interval {
            duration_s: 0.0,
            ..interval()
        };
        let row = row_of(&empty, None, None);
        assert_eq!(
            (row.cpu_power, row.ram_power, row.emissions_rate),
            (0.0, 0.0, 0.0)
        );
        assert!(row.emissions > 0.0);
    }

    #[test]
    fn power_between_two_flushes_is_their_energy_over_their_time() {
        let first = row_of(&interval(), None, None);
        let longer = Interval {
            duration_s: 300.0,
            energy: ComponentEnergy {
                cpu_j: 4000.0 + 200.0 * 10.0,
                ram_j: 1000.0 + 200.0 * 5.0,
                gpu_j: 200.0 * 100.0,
                psys_j: 0.0,
            },
            ..interval()
        };
        let second = row_of(&longer, None, None);
        let power = power_between(Some(&first), &second);
        // 10, 5 and 100 W over the last 200 s, times PUE 1.5.
        assert!(close(power.cpu_w, 15.0), "{power:?}");
        assert!(close(power.ram_w, 7.5), "{power:?}");
        assert!(close(power.gpu_w, 150.0), "{power:?}");
        let since_start = power_between(None, &first);
        assert!(close(since_start.cpu_w, first.cpu_power), "{since_start:?}");
    }

    #[test]
    fn counts_give_per_unit_figures_and_uncounted_units_stay_empty() {
        let mut row = row_of(&interval(), None, None);
        assert_eq!((row.samples, row.tokens, row.requests), (None, None, None));
        assert_eq!(row.per_unit(), PerUnit::default());
        let counts = Counts {
            samples: Some(100),
            tokens: Some(0),
            requests: None,
        };
        let (identity, settings, intensity) = (Identity::default(), settings(), intensity());
        let (description, interval) = (description(), interval());
        row = build_row(&RowContext {
            timestamp: "2026-01-02T03:04:05",
            run_id: "run-1",
            identity: &identity,
            settings: &settings,
            intensity: &intensity,
            location_source: "country",
            description: &description,
            interval: &interval,
            window: None,
            hourly: None,
            tracker_cpu_s: 0.0,
            counts,
            shared: false,
            unattributed: Some(ComponentEnergy {
                cpu_j: 400.0,
                ..ComponentEnergy::default()
            }),
        });
        assert_eq!((row.samples, row.tokens), (Some(100), Some(0)));
        // 7500 J at the plug over 100 samples; zero tokens give no figure, not a division by 0.
        let per_unit = row.per_unit();
        assert!(close(per_unit.joules_per_sample.expect("counted"), 75.0));
        assert_eq!(
            (per_unit.joules_per_token, per_unit.joules_per_request),
            (None, None)
        );
        assert!(close(row.unattributed_energy.expect("set"), 600.0 / 3.6e6));
        assert_eq!(row.attribution, None);
    }

    #[test]
    fn hourly_figures_replace_the_tables() {
        let weighted = Weighted {
            emissions_kg: 0.5,
            g_per_kwh: 120.0,
            source: "Electricity Maps".to_owned(),
            year: Some(2026),
            method: IntensityMethod::LiveHourly,
            zone: "FR".to_owned(),
            warning: None,
            detail: String::new(),
        };
        let row = row_of(&interval(), None, Some(&weighted));
        assert_eq!((row.emissions, row.emissions_rate), (0.5, 0.005));
        assert_eq!(row.intensity_g_per_kwh, 120.0);
        assert_eq!(row.intensity_source, "Electricity Maps");
        assert_eq!(
            (row.intensity_year, row.intensity_zone.as_str()),
            (Some(2026), "FR")
        );
        assert_eq!(row.intensity_method, "live_hourly");
        // The energies are the meter's, whatever the grid.
        assert!(close(row.energy_consumed, 7500.0 / 3.6e6));
    }
}
