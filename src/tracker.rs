//! The tracker: start, flush and stop a run, pure Rust.

use std::sync::Arc;
use std::time::Duration;

use chrono::Local;
use parking_lot::Mutex;

use crate::config::Config;
use crate::error::Result;
use crate::intensity::{self, Intensity, IntensityMethod};
use crate::meter::{Interval, Meter, MeterDescription, Snapshot};
use crate::output::EmissionsRow;
use crate::output::csv::CsvSink;
use crate::sampler::Sampler;

const J_PER_KWH: f64 = 3.6e6;

/// The version written in every row.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Facts about the interpreter that only the caller knows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Identity {
    /// `platform.platform()`.
    pub os: String,
    /// `platform.python_version()`.
    pub python_version: String,
}

struct Run {
    id: String,
    meter: Arc<Mutex<Meter>>,
    sampler: Sampler,
    start: Snapshot,
}

/// A run's state, as shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackerState {
    /// Not started, or stopped.
    Idle,
    /// Measuring.
    Running,
}

/// Measures energy between `start()` and `stop()` and writes one row per `flush()`/`stop()`.
pub struct Tracker {
    config: Config,
    identity: Identity,
    intensity: Intensity,
    sink: Option<CsvSink>,
    run: Mutex<Option<Run>>,
    last_row: Mutex<Option<EmissionsRow>>,
    description: Mutex<Option<MeterDescription>>,
}

impl Tracker {
    /// A tracker for `config`; resolves the grid intensity now so a bad country fails here.
    pub fn new(config: Config, identity: Identity) -> Result<Self> {
        for key in &config.unserved {
            crate::once::warn_once(&format!(
                "{key} is a CodeCarbon option for a service carbonmeter does not offer: ignored"
            ));
        }
        for (key, origin) in &config.origins {
            log::debug!("setting {key} from {origin}");
        }
        let intensity = resolve_intensity(&config)?;
        let sink = config
            .output_path
            .clone()
            .map(|path| CsvSink::new(path, config.on_csv_write));
        Ok(Self {
            config,
            identity,
            intensity,
            sink,
            run: Mutex::new(None),
            last_row: Mutex::new(None),
            description: Mutex::new(None),
        })
    }

    /// The validated settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The grid intensity applied.
    pub fn intensity(&self) -> &Intensity {
        &self.intensity
    }

    /// Idle or running.
    pub fn state(&self) -> TrackerState {
        if self.run.lock().is_some() {
            TrackerState::Running
        } else {
            TrackerState::Idle
        }
    }

    /// Sensors chosen at the last `start()`, if any.
    pub fn description(&self) -> Option<MeterDescription> {
        self.description.lock().clone()
    }

    /// The row of the last `stop()`.
    pub fn last_row(&self) -> Option<EmissionsRow> {
        self.last_row.lock().clone()
    }

    /// Starts a run with a new run id. Starting a running tracker only warns, as in CodeCarbon.
    pub fn start(&self) -> Result<()> {
        let mut run = self.run.lock();
        if run.is_some() {
            log::warn!("Already started tracking");
            return Ok(());
        }
        let (mut meter, warnings) = Meter::discover(&self.config.meter);
        for warning in warnings {
            crate::once::warn_once(&warning);
        }
        let start = meter.read();
        let full_period_s = self
            .config
            .measure_power_secs
            .min(meter.max_read_interval_s() / 2.0);
        // Polled GPU power needs faster ticks; those read only the GPUs (Meter::tick).
        let period_s = full_period_s.min(meter.gpu_poll_interval_s());
        *self.description.lock() = Some(meter.description().clone());
        let meter = Arc::new(Mutex::new(meter));
        let sampled = Arc::clone(&meter);
        let sampler = Sampler::spawn(
            "carbonmeter-sampler",
            Duration::from_secs_f64(period_s),
            move || {
                sampled.lock().tick(full_period_s);
            },
        )
        .map_err(|err| crate::error::Error::io("carbonmeter-sampler thread", err))?;
        *run = Some(Run {
            id: uuid::Uuid::new_v4().to_string(),
            meter,
            sampler,
            start,
        });
        Ok(())
    }

    /// Writes a row with the totals so far and keeps running. `None` when not running.
    pub fn flush(&self) -> Option<EmissionsRow> {
        let run = self.run.lock();
        let Some(run) = run.as_ref() else {
            log::error!("You first need to start the tracker.");
            return None;
        };
        let now = read_and_report(&run.meter);
        let row = self.row(&run.id, &now.since(&run.start));
        self.write(&row);
        Some(row)
    }

    /// Ends the run, writes its row and returns it. Stopping an idle tracker warns and returns
    /// the last run's row, as CodeCarbon does.
    pub fn stop(&self) -> Option<EmissionsRow> {
        let Some(mut run) = self.run.lock().take() else {
            log::warn!("Tracker already stopped or never started.");
            return self.last_row();
        };
        run.sampler.stop();
        let end = read_and_report(&run.meter);
        let row = self.row(&run.id, &end.since(&run.start));
        self.write(&row);
        *self.last_row.lock() = Some(row.clone());
        Some(row)
    }

    fn write(&self, row: &EmissionsRow) {
        if let Some(sink) = &self.sink {
            // Losing the file must not lose the user's training: the row is still returned.
            if let Err(err) = sink.write(row) {
                log::error!("could not write the emissions row: {err}");
            }
        }
    }

    fn row(&self, run_id: &str, interval: &Interval) -> EmissionsRow {
        let config = &self.config;
        let description = self.description().unwrap_or_else(|| MeterDescription {
            cpu_method: crate::sensors::Method::None,
            ram_method: crate::sensors::Method::None,
            gpu_method: crate::sensors::Method::None,
            rapl_zones: String::new(),
            host: crate::sensors::host::HostInfo::default(),
        });
        let kwh = |energy_j: f64| energy_j / J_PER_KWH * config.pue;
        let mean_w = |energy_j: f64| {
            if interval.duration_s > 0.0 {
                energy_j / interval.duration_s * config.pue
            } else {
                0.0
            }
        };
        let energy = interval.energy;
        let energy_consumed = kwh(energy.cpu_j) + kwh(energy.ram_j) + kwh(energy.gpu_j);
        let emissions = energy_consumed * self.intensity.g_per_kwh / 1000.0;
        let intensity = &self.intensity;
        let intensity_source =
            if intensity.country_iso_code.is_none() && intensity.method == IntensityMethod::Table {
                format!("world average, no country set ({})", intensity.source)
            } else {
                intensity.source.clone()
            };
        EmissionsRow {
            timestamp: Local::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
            project_name: config.project_name.clone(),
            run_id: run_id.to_owned(),
            experiment_id: config.experiment_id.clone(),
            duration: interval.duration_s,
            emissions,
            emissions_rate: if interval.duration_s > 0.0 {
                emissions / interval.duration_s
            } else {
                0.0
            },
            cpu_power: mean_w(energy.cpu_j),
            gpu_power: mean_w(energy.gpu_j),
            ram_power: mean_w(energy.ram_j),
            cpu_energy: kwh(energy.cpu_j),
            gpu_energy: kwh(energy.gpu_j),
            ram_energy: kwh(energy.ram_j),
            energy_consumed,
            water_consumed: energy_consumed * config.wue,
            country_name: intensity.country_name.clone(),
            country_iso_code: intensity.country_iso_code.clone(),
            region: config.region.clone(),
            cloud_provider: config.cloud_provider.clone(),
            cloud_region: config.cloud_region.clone(),
            os: self.identity.os.clone(),
            python_version: self.identity.python_version.clone(),
            codecarbon_version: String::new(),
            cpu_count: u32::try_from(description.host.cpu_count).unwrap_or(u32::MAX),
            cpu_model: description.host.cpu_model.clone(),
            gpu_count: interval.gpu.count(),
            gpu_model: interval.gpu.model(),
            longitude: None,
            latitude: None,
            ram_total_size: description.host.ram_total_bytes as f64 / 1e9,
            tracking_mode: config.meter.tracking_mode.as_str().to_owned(),
            cpu_utilization_percent: interval.cpu_utilization_percent,
            gpu_utilization_percent: interval.gpu.utilization_percent,
            ram_utilization_percent: interval.ram_utilization_percent,
            ram_used_gb: interval.ram_used_gb,
            on_cloud: if config.cloud_provider.is_some() {
                "Y"
            } else {
                "N"
            }
            .to_owned(),
            pue: config.pue,
            wue: config.wue,
            carbonmeter_version: VERSION.to_owned(),
            cpu_method: description.cpu_method.as_str().to_owned(),
            ram_method: description.ram_method.as_str().to_owned(),
            gpu_method: interval.gpu.method().as_str().to_owned(),
            rapl_zones: description.rapl_zones.clone(),
            psys_energy: energy.psys_j / J_PER_KWH,
            intensity_g_per_kwh: intensity.g_per_kwh,
            intensity_source,
            intensity_year: intensity.year,
            intensity_method: intensity.method.as_str().to_owned(),
            gpu_devices: interval.gpu.breakdown_json(config.pue),
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        // A tracker dropped while running (an abandoned run, interpreter exit) writes its row
        // rather than losing the energy measured.
        if self.run.get_mut().is_some() {
            self.stop();
        }
    }
}

/// Reads every sensor now and logs what the sampler found wrong since the last edge: the
/// sampler thread itself never logs, so it never waits on the logging machinery.
fn read_and_report(meter: &Mutex<Meter>) -> Snapshot {
    let (snapshot, warnings) = {
        let mut meter = meter.lock();
        (meter.read(), meter.take_warnings())
    };
    for warning in warnings {
        log::warn!("{warning}");
    }
    snapshot
}

fn resolve_intensity(config: &Config) -> Result<Intensity> {
    let located = match &config.country {
        Some(country) => Some(intensity::country_intensity("country_iso_code", country)?),
        None => None,
    };
    if let Some(g_per_kwh) = config.force_carbon_intensity_g_per_kwh {
        return Ok(Intensity {
            g_per_kwh,
            source: "force_carbon_intensity_g_co2e_kwh".to_owned(),
            year: None,
            zone: located
                .as_ref()
                .map_or_else(String::new, |l| l.zone.clone()),
            method: IntensityMethod::Forced,
            country_name: located.as_ref().and_then(|l| l.country_name.clone()),
            country_iso_code: located.and_then(|l| l.country_iso_code),
        });
    }
    Ok(located.unwrap_or_else(|| {
        let world = intensity::world_intensity();
        crate::once::warn_once(&format!(
            "no country set: emissions use the world average of {} g CO2eq/kWh ({}, {}); set \
             country_iso_code (e.g. \"FRA\") or CARBONMETER_COUNTRY_ISO_CODE for your grid",
            world.g_per_kwh,
            world.source,
            world.year.map_or_else(String::new, |y| y.to_string())
        ));
        world
    }))
}
