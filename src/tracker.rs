//! The tracker: start, flush and stop a run, pure Rust.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Local;
use parking_lot::Mutex;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::export::{Exporter, RunExport, RunLabels};
use crate::intensity::resolve::Resolved;
use crate::intensity::weighted::{HourlyRun, Weighted};
use crate::intensity::{self, Intensity};
use crate::meter::{ComponentEnergy, Meter, MeterDescription, Snapshot};
use crate::output::EmissionsRow;
use crate::output::build::{RowContext, RowSettings, build_row};
use crate::output::csv::CsvSink;
use crate::sampler::Sampler;
use crate::work::{Counts, Sharing, shared_interval};

pub use crate::output::build::{Identity, WindowLabels};
/// The version written in every row.
pub use crate::output::row::VERSION;

struct OpenWindow {
    name: String,
    labels: WindowLabels,
    start: Snapshot,
    counts: Counts,
    /// The energy split to this window so far, for a shared window.
    share: Option<ComponentEnergy>,
}

/// How a window is opened besides its name and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowOptions {
    /// The window's own work, counted in it and in the run at its opening.
    pub counts: Counts,
    /// A shared window (a request): numbered `<name>-<n>` in the run, and charged only its share
    /// of the energy while it overlaps other shared windows (see `crate::work`).
    pub shared: bool,
}

struct Run {
    id: String,
    meter: Arc<Mutex<Meter>>,
    sampler: Sampler,
    start: Snapshot,
    hourly: Option<Arc<HourlyRun>>,
    windows: Vec<OpenWindow>,
    next_epoch: BTreeMap<String, u32>,
    next_shared: BTreeMap<String, u32>,
    counts: Counts,
    sharing: Sharing,
    export: Option<Arc<RunExport>>,
}

impl Run {
    /// Hands an edge's totals to the exporter (phase: the innermost open epoch's) and logs what
    /// the exporter found wrong since the last edge. Returns the push's sequence number.
    fn export_edge(&self, snapshot: &Snapshot, last: bool) -> Option<u64> {
        let export = self.export.as_ref()?;
        let phase = self
            .windows
            .iter()
            .rev()
            .find_map(|window| window.labels.phase.as_deref());
        let seq = export.edge(snapshot, phase, last);
        for warning in export.exporter().take_warnings() {
            crate::once::warn_once(&warning);
        }
        Some(seq)
    }

    fn window_names(&self) -> String {
        let names: Vec<String> = self
            .windows
            .iter()
            .map(|w| format!("{:?}", w.name))
            .collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    }

    /// Splits the energy up to `now` among the shared windows open until now.
    fn settle(&mut self, now: &Snapshot) {
        let open = self
            .windows
            .iter_mut()
            .filter_map(|window| window.share.as_mut());
        self.sharing.settle(now.energy, open);
    }

    /// Adds `counts` to the run and to the open windows: all of them, or with `only`, that
    /// window and the open windows that are not shared (an enclosing batch or epoch), so one
    /// request's tokens are never counted in another request.
    fn add_counts(&mut self, counts: Counts, only: Option<&str>) {
        self.counts.add(counts);
        for window in &mut self.windows {
            let chosen = match only {
                None => true,
                Some(name) => window.name == name || window.share.is_none(),
            };
            if chosen {
                window.counts.add(counts);
            }
        }
    }
}

/// A row to write once the run lock is released.
struct Closed {
    run_id: String,
    start: Snapshot,
    end: Snapshot,
    window: Option<(String, WindowLabels)>,
    hourly: Option<Arc<HourlyRun>>,
    counts: Counts,
    share: Option<ComponentEnergy>,
    unattributed: Option<ComponentEnergy>,
}

/// What `stop_run` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Stopped {
    /// Rows of the windows still open at the stop, oldest first.
    pub windows: Vec<EmissionsRow>,
    /// The run's row.
    pub run: EmissionsRow,
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
    row_settings: RowSettings,
    intensity: Intensity,
    located: Resolved,
    sink: Option<CsvSink>,
    run: Mutex<Option<Run>>,
    last_row: Mutex<Option<EmissionsRow>>,
    description: Mutex<Option<MeterDescription>>,
    exporter: Option<Arc<Exporter>>,
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
        let located = intensity::resolve::resolve(&config.intensity, std::path::Path::new("/"))?;
        let intensity = located.intensity.clone();
        let sink = config
            .output
            .path
            .clone()
            .map(|path| CsvSink::new(path, config.output.on_csv_write));
        let exporter = Exporter::spawn(&config.export)?;
        let row_settings = RowSettings {
            project_name: config.project_name.clone(),
            experiment_id: config.experiment_id.clone(),
            experiment_name: config.experiment_name.clone(),
            tracking_mode: config.meter.tracking_mode.as_str().to_owned(),
            pue: config.pue,
            wue: config.wue,
            rank: config.rank,
        };
        Ok(Self {
            config,
            identity,
            row_settings,
            intensity,
            located,
            sink,
            run: Mutex::new(None),
            last_row: Mutex::new(None),
            description: Mutex::new(None),
            exporter,
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

    /// How the grid was chosen: `cloud`, `region`, `country`, `timezone:<zone>` or `none`.
    pub fn location_source(&self) -> &str {
        &self.located.location_source
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
        let hourly = self.start_hourly(&start);
        let full_period_s = self
            .config
            .measure_power_secs
            .min(meter.max_read_interval_s() / 2.0);
        // Polled GPU power needs faster ticks; those read only the GPUs (Meter::tick).
        let period_s = full_period_s.min(meter.gpu_poll_interval_s());
        *self.description.lock() = Some(meter.description().clone());
        let meter = Arc::new(Mutex::new(meter));
        let sampled = Arc::clone(&meter);
        let sampled_hourly = hourly.clone();
        let run_id = uuid::Uuid::new_v4().to_string();
        let export = self.exporter.as_ref().map(|exporter| {
            let labels = RunLabels {
                project: self.config.project_name.clone(),
                experiment: self.config.experiment_id.clone(),
                run_id: run_id.clone(),
                rank: self.config.rank,
                ..RunLabels::default()
            };
            let g_per_kwh = self.intensity.g_per_kwh;
            Arc::new(RunExport::new(
                Arc::clone(exporter),
                labels,
                &start,
                self.config.pue,
                g_per_kwh,
            ))
        });
        let sampled_export = export.clone();
        let sampler = Sampler::spawn(
            "carbonmeter-sampler",
            Duration::from_secs_f64(period_s),
            move || {
                let mut meter = sampled.lock();
                // GPU-only ticks change no hour's ledger: it reads the next full snapshot.
                if let Some(snapshot) = meter.tick(full_period_s) {
                    if let Some(hourly) = &sampled_hourly {
                        hourly.observe(&snapshot);
                    }
                    if let Some(export) = &sampled_export {
                        export.tick(&snapshot);
                    }
                }
            },
        )
        .map_err(|err| crate::error::Error::io("carbonmeter-sampler thread", err))?;
        *run = Some(Run {
            id: run_id,
            meter,
            sampler,
            sharing: Sharing::new(start.energy),
            start,
            hourly,
            windows: Vec::new(),
            next_epoch: BTreeMap::new(),
            next_shared: BTreeMap::new(),
            counts: Counts::default(),
            export,
        });
        Ok(())
    }

    /// Opens a named window at this instant (starting the run if needed). Windows may nest and
    /// overlap; each is measured from its own edges, read from the sensors at once.
    pub fn start_window(&self, name: &str, labels: WindowLabels) -> Result<()> {
        self.open_window(name, labels, WindowOptions::default())
            .map(drop)
    }

    /// Opens a window like [`Tracker::start_window`], with its counts and sharing. Returns the
    /// window's name: `name` itself, or `<name>-<n>` for a shared window.
    pub fn open_window(
        &self,
        name: &str,
        labels: WindowLabels,
        options: WindowOptions,
    ) -> Result<String> {
        if self.state() == TrackerState::Idle {
            self.start()?;
        }
        let mut guard = self.run.lock();
        let run = guard.as_mut().ok_or_else(|| {
            Error::State(format!(
                "window {name:?} not opened: the tracker was stopped"
            ))
        })?;
        let name = if options.shared {
            let next = run.next_shared.entry(name.to_owned()).or_insert(0);
            let numbered = format!("{name}-{next}");
            *next = next.saturating_add(1);
            numbered
        } else {
            name.to_owned()
        };
        if run.windows.iter().any(|window| window.name == name) {
            return Err(Error::State(format!(
                "window {name:?} is already open; open windows: {}",
                run.window_names()
            )));
        }
        let start = read_and_report(&run.meter, run.hourly.as_deref());
        if options.shared {
            run.settle(&start);
            run.sharing.start_using();
        }
        run.windows.push(OpenWindow {
            name: name.clone(),
            labels,
            start: start.clone(),
            counts: Counts::default(),
            share: options.shared.then(ComponentEnergy::default),
        });
        // After the push: from this edge on, energy counts toward the new window's phase.
        run.export_edge(&start, false);
        if !options.counts.is_empty() {
            run.add_counts(options.counts, Some(&name));
        }
        Ok(name)
    }

    /// Adds `counts` to the run and every open window. Cheap (one lock, a few additions): it is
    /// meant to be called once per batch. On an idle tracker it only warns, once.
    pub fn count(&self, counts: Counts) {
        self.count_in(counts, None);
    }

    /// Adds `counts` to window `name`, the run and the open windows that are not shared.
    pub fn count_window(&self, name: &str, counts: Counts) -> Result<()> {
        let mut guard = self.run.lock();
        let run = guard.as_mut().ok_or_else(|| {
            Error::State(format!(
                "window {name:?} is not open: the tracker is not running"
            ))
        })?;
        if !run.windows.iter().any(|window| window.name == name) {
            return Err(Error::State(format!(
                "window {name:?} is not open; open windows: {}",
                run.window_names()
            )));
        }
        run.add_counts(counts, Some(name));
        Ok(())
    }

    fn count_in(&self, counts: Counts, only: Option<&str>) {
        match self.run.lock().as_mut() {
            Some(run) => run.add_counts(counts, only),
            // Counting is bookkeeping beside the user's loop: a warning, never an exception.
            None => crate::once::warn_once(
                "count() on a tracker that is not running: not counted (start it first)",
            ),
        }
    }

    /// Opens the window of an epoch of `phase`, numbered `epoch` or one more than the last
    /// epoch of that phase in this run (from 0). Returns the window's name.
    pub fn start_epoch(&self, epoch: Option<u32>, phase: &str) -> Result<String> {
        if self.state() == TrackerState::Idle {
            self.start()?;
        }
        let number = {
            let mut guard = self.run.lock();
            let run = guard
                .as_mut()
                .ok_or_else(|| Error::State("epoch not opened: the tracker was stopped".into()))?;
            let next = run.next_epoch.entry(phase.to_owned()).or_insert(0);
            let number = epoch.unwrap_or(*next);
            *next = number.saturating_add(1);
            number
        };
        let name = format!("{phase}-epoch-{number}");
        self.start_window(
            &name,
            WindowLabels {
                epoch: Some(number),
                phase: Some(phase.to_owned()),
            },
        )?;
        Ok(name)
    }

    /// Closes a window: reads the sensors now, writes the window's row and returns it.
    pub fn end_window(&self, name: &str) -> Result<EmissionsRow> {
        let closed = {
            let mut guard = self.run.lock();
            let run = guard.as_mut().ok_or_else(|| {
                Error::State(format!(
                    "window {name:?} is not open: the tracker is not running"
                ))
            })?;
            let index = run
                .windows
                .iter()
                .position(|window| window.name == name)
                .ok_or_else(|| {
                    Error::State(format!(
                        "window {name:?} is not open; open windows: {}",
                        run.window_names()
                    ))
                })?;
            let end = read_and_report(&run.meter, run.hourly.as_deref());
            if run.windows[index].share.is_some() {
                run.settle(&end);
            }
            let window = run.windows.remove(index);
            run.export_edge(&end, false);
            Closed {
                run_id: run.id.clone(),
                start: window.start,
                end,
                window: Some((window.name, window.labels)),
                hourly: run.hourly.clone(),
                counts: window.counts,
                share: window.share,
                unattributed: None,
            }
        };
        Ok(self.write_closed(&closed))
    }

    /// Names of the open windows, oldest first.
    pub fn open_windows(&self) -> Vec<String> {
        self.run
            .lock()
            .as_ref()
            .map(|run| run.windows.iter().map(|w| w.name.clone()).collect())
            .unwrap_or_default()
    }

    /// Writes a row with the totals so far and keeps running. `None` when not running.
    pub fn flush(&self) -> Option<EmissionsRow> {
        let closed = {
            let mut run = self.run.lock();
            let Some(run) = run.as_mut() else {
                log::error!("You first need to start the tracker.");
                return None;
            };
            let end = read_and_report(&run.meter, run.hourly.as_deref());
            run.settle(&end);
            run.export_edge(&end, false);
            Closed {
                run_id: run.id.clone(),
                start: run.start.clone(),
                end,
                window: None,
                hourly: run.hourly.clone(),
                counts: run.counts,
                share: None,
                unattributed: run.sharing.unattributed(),
            }
        };
        Some(self.write_closed(&closed))
    }

    /// Ends the run, writes its row and returns it. Stopping an idle tracker warns and returns
    /// the last run's row, as CodeCarbon does.
    pub fn stop(&self) -> Option<EmissionsRow> {
        match self.stop_run() {
            Some(stopped) => Some(stopped.run),
            None => self.last_row(),
        }
    }

    /// Ends the run like [`Tracker::stop`], and also returns the rows of the windows it had to
    /// close. `None` (with a warning) when no run was in progress.
    pub fn stop_run(&self) -> Option<Stopped> {
        let Some(mut run) = self.run.lock().take() else {
            log::warn!("Tracker already stopped or never started.");
            return None;
        };
        run.sampler.stop();
        let end = read_and_report(&run.meter, run.hourly.as_deref());
        run.settle(&end);
        // Queued before the rows are written, so the last push overlaps the CSV write.
        let last_push = run.export_edge(&end, true);
        // Windows still open (an epoch cut short by an exception) get their partial row first.
        let windows = run
            .windows
            .drain(..)
            .map(|window| {
                self.write_closed(&Closed {
                    run_id: run.id.clone(),
                    start: window.start,
                    end: end.clone(),
                    window: Some((window.name, window.labels)),
                    hourly: run.hourly.clone(),
                    counts: window.counts,
                    share: window.share,
                    unattributed: None,
                })
            })
            .collect();
        let row = self.write_closed(&Closed {
            run_id: run.id.clone(),
            start: run.start.clone(),
            end,
            window: None,
            hourly: run.hourly.clone(),
            counts: run.counts,
            share: None,
            unattributed: run.sharing.unattributed(),
        });
        if let Some(hourly) = &run.hourly {
            hourly.stop();
        }
        if let (Some(seq), Some(exporter)) = (last_push, &self.exporter) {
            // Bounded: a slow or hung endpoint delays stop() by one request timeout at most.
            if !exporter.wait(seq) {
                crate::once::warn_once(
                    "the last export push did not finish in time; the CSV has the run's totals",
                );
            }
            for warning in exporter.take_warnings() {
                crate::once::warn_once(&warning);
            }
        }
        *self.last_row.lock() = Some(row.clone());
        Some(Stopped { windows, run: row })
    }

    fn write_closed(&self, closed: &Closed) -> EmissionsRow {
        let description = self.description().unwrap_or_else(|| MeterDescription {
            cpu_method: crate::sensors::Method::None,
            ram_method: crate::sensors::Method::None,
            gpu_method: crate::sensors::Method::None,
            rapl_zones: String::new(),
            host: crate::sensors::host::HostInfo::default(),
        });
        let weighted = closed
            .hourly
            .as_deref()
            .map(|hourly| self.weigh_hourly(hourly, &closed.start, &closed.end));
        let mut weighted = weighted;
        let measured = closed.end.since(&closed.start);
        let interval = match closed.share {
            Some(share) => {
                // Hour-by-hour emissions follow the window's edges: charge the same share.
                let whole_j = measured.energy.cpu_j + measured.energy.ram_j + measured.energy.gpu_j;
                let share_j = share.cpu_j + share.ram_j + share.gpu_j;
                if let Some(weighted) = weighted.as_mut() {
                    weighted.emissions_kg *= if whole_j > 0.0 {
                        share_j / whole_j
                    } else {
                        0.0
                    };
                }
                shared_interval(measured, share)
            }
            None => measured,
        };
        let timestamp = Local::now().format("%Y-%m-%dT%H:%M:%S").to_string();
        let row = build_row(&RowContext {
            timestamp: &timestamp,
            run_id: &closed.run_id,
            identity: &self.identity,
            settings: &self.row_settings,
            intensity: &self.intensity,
            location_source: &self.located.location_source,
            description: &description,
            interval: &interval,
            window: closed
                .window
                .as_ref()
                .map(|(name, labels)| (name.as_str(), labels)),
            hourly: weighted.as_ref(),
            counts: closed.counts,
            shared: closed.share.is_some(),
            unattributed: closed.unattributed,
        });
        if let Some(sink) = &self.sink {
            // Losing the file must not lose the user's training: the row is still returned.
            if let Err(err) = sink.write(&row) {
                log::error!("could not write the emissions row: {err}");
            }
        }
        row
    }

    /// Starts the live source for a run, when a token and a zone are set.
    fn start_hourly(&self, start: &Snapshot) -> Option<Arc<HourlyRun>> {
        let (zone, token) = self.located.live.clone()?;
        let wall_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        match HourlyRun::start(&self.config.intensity.live, token, &zone, start, wall_s) {
            Ok(hourly) => Some(Arc::new(hourly)),
            Err(err) => {
                crate::once::warn_once(&format!(
                    "cannot start the Electricity Maps thread ({err}): the table's figure is used"
                ));
                None
            }
        }
    }

    /// The hour-by-hour live figures of a window, its warning and detail logged.
    fn weigh_hourly(&self, hourly: &HourlyRun, start: &Snapshot, end: &Snapshot) -> Weighted {
        let weighted = hourly.weigh(start, end, self.config.pue, &self.intensity);
        if let Some(warning) = &weighted.warning {
            log::warn!("{warning}");
        }
        log::debug!("hourly intensity: {}", weighted.detail);
        weighted
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
fn read_and_report(meter: &Mutex<Meter>, hourly: Option<&HourlyRun>) -> Snapshot {
    let (snapshot, warnings) = {
        let mut meter = meter.lock();
        let snapshot = meter.read();
        // Under the meter's lock, so the ledger sees reads in order.
        if let Some(hourly) = hourly {
            hourly.observe(&snapshot);
        }
        (snapshot, meter.take_warnings())
    };
    for warning in warnings {
        log::warn!("{warning}");
    }
    snapshot
}
