//! The tracker: start, flush and stop a run, pure Rust.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use chrono::Local;
use parking_lot::Mutex;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::export::{Exporter, RunExport, RunLabels};
use crate::intensity::resolve::Resolved;
use crate::intensity::weighted::{HourlyRun, Weighted};
use crate::intensity::{self, Intensity};
use crate::meter::{Meter, MeterDescription, Snapshot};
use crate::output::EmissionsRow;
use crate::output::build::{RowContext, RowSettings, build_row};
use crate::output::csv::CsvSink;
use crate::sampler::Sampler;

pub use crate::output::build::{Identity, WindowLabels};
/// The version written in every row.
pub use crate::output::row::VERSION;

struct OpenWindow {
    name: String,
    labels: WindowLabels,
    start: Snapshot,
}

struct Run {
    id: String,
    edges: EdgeReader,
    sampler: Sampler,
    start: Snapshot,
    hourly: Option<Arc<HourlyRun>>,
    windows: Vec<OpenWindow>,
    next_epoch: BTreeMap<String, u32>,
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
}

/// A row to write once the run lock is released.
struct Closed {
    run_id: String,
    start: Snapshot,
    end: Snapshot,
    window: Option<(String, WindowLabels)>,
    hourly: Option<Arc<HourlyRun>>,
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
            .map(|path| CsvSink::new(path, config.output.on_csv_write))
            .transpose()?;
        let exporter = Exporter::spawn(&config.export)?;
        let row_settings = RowSettings {
            project_name: config.project_name.clone(),
            experiment_id: config.experiment_id.clone(),
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

    /// A tracker for `config` that a SIGTERM or a fork can find (see [`crate::lifecycle`]): what
    /// the Python class holds.
    pub fn shared(config: Config, identity: Identity) -> Result<Arc<Self>> {
        let tracker = Arc::new(Self::new(config, identity)?);
        let managed: Arc<dyn crate::lifecycle::Managed> = tracker.clone();
        crate::lifecycle::register(&managed);
        Ok(tracker)
    }

    /// In a forked child: drops the copied run without joining its sampler (the thread was not
    /// copied) or writing its rows (the parent writes them), and releases locks a vanished
    /// thread held.
    pub(crate) fn forget_run_after_fork(&self) {
        crate::locks::force_release(&self.run);
        crate::locks::force_release(&self.last_row);
        crate::locks::force_release(&self.description);
        if let Some(run) = self.run.lock().take() {
            std::mem::forget(run);
        }
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
        let edges = EdgeReader::spawn(&meter, hourly.clone(), &start)?;
        let sampled_last = Arc::clone(&edges.last);
        let sampler = Sampler::spawn(
            "carbonmeter-sampler",
            Duration::from_secs_f64(period_s),
            move || {
                let mut meter = sampled.lock();
                // GPU-only ticks change no hour's ledger: it reads the next full snapshot.
                if let Some(snapshot) = meter.tick(full_period_s) {
                    drop(meter);
                    remember(&sampled_last, &snapshot);
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
            edges,
            sampler,
            start,
            hourly,
            windows: Vec::new(),
            next_epoch: BTreeMap::new(),
            export,
        });
        crate::lifecycle::run_started();
        Ok(())
    }

    /// Opens a named window at this instant (starting the run if needed). Windows may nest and
    /// overlap; each is measured from its own edges, read from the sensors at once.
    pub fn start_window(&self, name: &str, labels: WindowLabels) -> Result<()> {
        if name.trim().is_empty() {
            return Err(Error::invalid(
                "name",
                format!("{name:?}"),
                "expected a window name that is not blank (a blank window reads as a run row)",
            ));
        }
        if self.state() == TrackerState::Idle {
            self.start()?;
        }
        let mut guard = self.run.lock();
        let run = guard.as_mut().ok_or_else(|| {
            Error::State(format!(
                "window {name:?} not opened: the tracker was stopped"
            ))
        })?;
        if run.windows.iter().any(|window| window.name == name) {
            return Err(Error::State(format!(
                "window {name:?} is already open; open windows: {}",
                run.window_names()
            )));
        }
        let start = read_and_report(&run.edges, &self.description);
        run.windows.push(OpenWindow {
            name: name.to_owned(),
            labels,
            start: start.clone(),
        });
        // After the push: from this edge on, energy counts toward the new window's phase.
        run.export_edge(&start, false);
        Ok(())
    }

    /// Opens the window of an epoch of `phase`, numbered `epoch` or one more than the last
    /// epoch of that phase in this run (from 0). Returns the window's name.
    pub fn start_epoch(&self, epoch: Option<u32>, phase: &str) -> Result<String> {
        if phase.trim().is_empty() {
            return Err(Error::invalid(
                "phase",
                format!("{phase:?}"),
                "expected a phase name that is not blank, such as \"train\"",
            ));
        }
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
            let window = run.windows.remove(index);
            let end = read_and_report(&run.edges, &self.description);
            run.export_edge(&end, false);
            Closed {
                run_id: run.id.clone(),
                start: window.start,
                end,
                window: Some((window.name, window.labels)),
                hourly: run.hourly.clone(),
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
            let run = self.run.lock();
            let Some(run) = run.as_ref() else {
                log::error!("You first need to start the tracker.");
                return None;
            };
            let end = read_and_report(&run.edges, &self.description);
            run.export_edge(&end, false);
            Closed {
                run_id: run.id.clone(),
                start: run.start.clone(),
                end,
                window: None,
                hourly: run.hourly.clone(),
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
        crate::lifecycle::run_stopped();
        if !run.sampler.stop() {
            crate::once::warn_once(&format!(
                "the sampler was still in a sensor read {} ms after stop(): left to finish \
                 alone, the row uses the last reading",
                crate::sampler::STOP_WAIT.as_millis()
            ));
        }
        let end = read_and_report(&run.edges, &self.description);
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
                })
            })
            .collect();
        let row = self.write_closed(&Closed {
            run_id: run.id.clone(),
            start: run.start.clone(),
            end,
            window: None,
            hourly: run.hourly.clone(),
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
        let timestamp = Local::now().format("%Y-%m-%dT%H:%M:%S").to_string();
        let row = build_row(&RowContext {
            timestamp: &timestamp,
            run_id: &closed.run_id,
            identity: &self.identity,
            settings: &self.row_settings,
            intensity: &self.intensity,
            location_source: &self.located.location_source,
            description: &description,
            interval: &closed.end.since(&closed.start),
            window: closed
                .window
                .as_ref()
                .map(|(name, labels)| (name.as_str(), labels)),
            hourly: weighted.as_ref(),
        });
        if let Some(sink) = &self.sink {
            sink.write_or_report(&row);
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

impl crate::lifecycle::Managed for Tracker {
    fn stop_for_signal(&self) {
        if self.state() == TrackerState::Running {
            self.stop_run();
        }
    }

    fn forget_after_fork(&self) {
        self.forget_run_after_fork();
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

/// Longest a window edge (and stop()) waits for a sensor read: far above a normal full read (a
/// process-tree refresh and a few NVML calls take milliseconds), and small beside an epoch. A read
/// that blocks longer (a wedged driver call, a GPU off the bus) is left to finish on its thread.
pub const EDGE_DEADLINE: Duration = Duration::from_millis(500);

/// What one edge read found.
struct EdgeRead {
    snapshot: Snapshot,
    description: MeterDescription,
    warnings: Vec<String>,
}

/// Reads the meter for window edges on a thread of its own, so the user's thread never calls
/// into a sensor and waits for one at most [`EDGE_DEADLINE`]. Ends when the run is dropped.
struct EdgeReader {
    requests: mpsc::Sender<mpsc::SyncSender<EdgeRead>>,
    /// A request is being served: set until its read returns, however late.
    busy: Arc<AtomicBool>,
    /// The newest snapshot any read produced: what an edge falls back to.
    last: Arc<Mutex<Snapshot>>,
}

impl EdgeReader {
    fn spawn(
        meter: &Arc<Mutex<Meter>>,
        hourly: Option<Arc<HourlyRun>>,
        start: &Snapshot,
    ) -> Result<Self> {
        let (requests, served) = mpsc::channel::<mpsc::SyncSender<EdgeRead>>();
        let busy = Arc::new(AtomicBool::new(false));
        let last = Arc::new(Mutex::new(start.clone()));
        let (meter, thread_busy, thread_last) =
            (Arc::clone(meter), Arc::clone(&busy), Arc::clone(&last));
        std::thread::Builder::new()
            .name("carbonmeter-edges".to_owned())
            .spawn(move || {
                for reply in served {
                    let read = {
                        let mut meter = meter.lock();
                        let snapshot = meter.read();
                        // Under the meter's lock, so the ledger sees reads in order.
                        if let Some(hourly) = &hourly {
                            hourly.observe(&snapshot);
                        }
                        EdgeRead {
                            snapshot,
                            description: meter.description().clone(),
                            warnings: meter.take_warnings(),
                        }
                    };
                    remember(&thread_last, &read.snapshot);
                    thread_busy.store(false, Ordering::Release);
                    // The edge may have given up waiting: then nobody wants this one.
                    let _ = reply.send(read);
                }
            })
            .map_err(|err| Error::io("carbonmeter-edges thread", err))?;
        Ok(Self {
            requests,
            busy,
            last,
        })
    }

    /// A fresh read, or `None` when none came within the deadline (or one is still stuck).
    fn read(&self) -> Option<EdgeRead> {
        // A read still stuck from an earlier edge: queueing behind it would only wait again.
        if self.busy.swap(true, Ordering::AcqRel) {
            return None;
        }
        let (reply, answer) = mpsc::sync_channel(1);
        if self.requests.send(reply).is_err() {
            self.busy.store(false, Ordering::Release);
            return None;
        }
        answer.recv_timeout(EDGE_DEADLINE).ok()
    }
}

/// Keeps the newer of the remembered snapshot and `snapshot` (the sampler and the edge thread
/// both read, and may finish out of order).
fn remember(last: &Mutex<Snapshot>, snapshot: &Snapshot) {
    let mut last = last.lock();
    if snapshot.t_s >= last.t_s {
        *last = snapshot.clone();
    }
}

/// Reads every sensor now and logs what the sampler found wrong since the last edge: the
/// sampler thread itself never logs, so it never waits on the logging machinery.
/// A sensor given up mid-run changes the methods, so the rows from then on say so. A read that
/// does not finish within [`EDGE_DEADLINE`] gives the last snapshot instead, said once.
fn read_and_report(edges: &EdgeReader, description: &Mutex<Option<MeterDescription>>) -> Snapshot {
    let Some(read) = edges.read() else {
        crate::once::warn_once(&format!(
            "a sensor read did not finish within {} ms (a wedged driver or sysfs read): window \
             edges use the last reading until it returns",
            EDGE_DEADLINE.as_millis()
        ));
        return edges.last.lock().clone();
    };
    {
        let mut shown = description.lock();
        if shown.as_ref() != Some(&read.description) {
            *shown = Some(read.description);
        }
    }
    for warning in read.warnings {
        log::warn!("{warning}");
    }
    read.snapshot
}
