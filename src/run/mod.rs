//! The tracker: start, flush and stop a run, pure Rust.
//!
//! One concern a file: this one holds the run's lifecycle (start, flush, stop and the rows they
//! write); [`windows`] opens and closes windows and epochs; [`budget`] keeps the epochs' history
//! and checks them against `co2_budget_kg`; [`job`] is this tracker's part in a distributed job.

mod budget;
mod claims;
mod footprint;
mod job;
mod payoff;
mod windows;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::config::Config;
use crate::cost::{CallCost, CostMeter, thread_cpu_ns};
use crate::edges::{EDGE_DEADLINE, EdgeReader};
use crate::error::{Error, Result};
use crate::export::{Exporter, RunExport, RunLabels};
use crate::intensity::forecast::{self, Scheduled};
use crate::intensity::resolve::Resolved;
use crate::intensity::weighted::{HourlyRun, Weighted};
use crate::intensity::{self, Intensity};
use crate::meter::{ComponentEnergy, Meter, MeterDescription, Snapshot};
use crate::output::EmissionsRow;
use crate::output::build::{RowContext, RowSettings, build_row};
use crate::output::csv::CsvSink;
use crate::sampler::Sampler;
use crate::work::{Counts, shared_interval};

use budget::RunBudget;
pub use budget::STOP_CO2_BUDGET;
use job::JobShare;
pub use payoff::STOP_MIN_GAIN;
pub use windows::WindowOptions;
use windows::Windows;

pub use crate::output::build::{Identity, WindowLabels};
/// The version written in every row.
pub use crate::output::row::VERSION;

/// A tick period this long (a century, in seconds) means no tick: a counter that cannot wrap.
const NEVER_S: f64 = 100.0 * 365.0 * 24.0 * 3600.0;

/// A run in progress: what `start` set up, and the state of its windows and of its budget.
struct Run {
    id: String,
    edges: EdgeReader,
    /// `None` for a run that needs no read between its edges.
    sampler: Option<Sampler>,
    start: Snapshot,
    hourly: Option<Arc<HourlyRun>>,
    cost: Arc<CostMeter>,
    export: Option<Arc<RunExport>>,
    /// The open windows, their numbering, the work counted and the shared windows' split.
    windows: Windows,
    /// The finished epochs and what the budget decided on them.
    budget: RunBudget,
    /// Keeps the SIGTERM/SIGHUP handlers armed until the run's last row is written.
    armed: crate::lifecycle::Running,
}

impl Run {
    /// Hands an edge's totals to the exporter (phase: the innermost open epoch's) and logs what
    /// the exporter found wrong since the last edge. Returns the push's sequence number.
    fn export_edge(&self, snapshot: &Snapshot, last: bool) -> Option<u64> {
        let export = self.export.as_ref()?;
        let seq = export.edge(snapshot, self.windows.phase(), last);
        for warning in export.exporter().take_warnings() {
            crate::runtime::warn_once(&warning);
        }
        Some(seq)
    }
}

/// A row to write once the run lock is released.
struct Closed {
    run_id: String,
    start: Snapshot,
    end: Snapshot,
    window: Option<(String, WindowLabels)>,
    hourly: Option<Arc<HourlyRun>>,
    /// Tracker CPU seconds at the start and end.
    cost_s: (f64, f64),
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
    /// The run in progress. Never held across a sensor discovery; an edge's read under it is
    /// bounded by [`EDGE_DEADLINE`].
    run: Mutex<Option<Run>>,
    /// What the getters show between calls: the sensors of the last edge, the last run's row.
    shown: Mutex<Shown>,
    /// The number of epochs of each phase, for the projection and the budget (set before or
    /// during a run, kept across runs).
    epoch_totals: Mutex<BTreeMap<String, u32>>,
    /// This tracker's share of a distributed job, once joined (kept across runs).
    job: Mutex<Option<JobShare>>,
    /// The running run's claim on its parts of the host, in a job.
    claim: Mutex<Option<Arc<claims::RunClaim>>>,
    exporter: Option<Arc<Exporter>>,
    /// The carbon-aware wait the current run followed, taken at its `start()`.
    scheduled: Mutex<Option<Scheduled>>,
}

/// What a tracker shows between calls, updated at each edge and stop.
#[derive(Default)]
struct Shown {
    /// Sensors chosen at the last `start()`, as the last edge found them.
    description: Option<MeterDescription>,
    /// The row of the last `stop()`: on rank 0 of a job whose ranks' rows it gathered, the
    /// job's row.
    last_row: Option<EmissionsRow>,
    /// This rank's own row of the last `stop()`, where `last_row` is the job's.
    rank_row: Option<EmissionsRow>,
}

/// What `start` finds before it takes the run lock: the sensors (NVML loaded, powercap walked)
/// with their first read, and the job's share they measure.
struct Found {
    cost: Arc<CostMeter>,
    call: CallCost,
    share: Option<JobShare>,
    meter: Meter,
    start: Snapshot,
}

impl Tracker {
    /// A tracker for `config`; resolves the grid intensity now so a bad country fails here.
    pub fn new(config: Config, identity: Identity) -> Result<Self> {
        for key in &config.unserved {
            crate::runtime::warn_once(&format!(
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
            experiment_name: config.experiment_name.clone(),
            tracking_mode: config.meter.sources.tracking_mode.as_str().to_owned(),
            pue: config.pue,
            wue: config.wue,
            hardware_lifetime_years: config.hardware_lifetime_years,
            rank: config.rank,
            psu_efficiency: config.psu_efficiency,
            user: config.user.clone(),
        };
        Ok(Self {
            config,
            identity,
            row_settings,
            intensity,
            located,
            sink,
            run: Mutex::new(None),
            shown: Mutex::new(Shown::default()),
            epoch_totals: Mutex::new(BTreeMap::new()),
            job: Mutex::new(None),
            claim: Mutex::new(None),
            exporter,
            scheduled: Mutex::new(None),
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
        crate::runtime::locks::force_release(&self.run);
        crate::runtime::locks::force_release(&self.shown);
        crate::runtime::locks::force_release(&self.epoch_totals);
        crate::runtime::locks::force_release(&self.job);
        crate::runtime::locks::force_release(&self.claim);
        // The parent releases the claim: the child only forgets it.
        drop(self.claim.lock().take());
        if let Some(run) = self.run.lock().take() {
            std::mem::forget(run);
        }
    }

    /// The running run's cost meter and a charge on it for the current call.
    fn charge_call(&self) -> Option<CallCost> {
        self.run
            .lock()
            .as_ref()
            .map(|run| CostMeter::call(&run.cost))
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
        self.shown.lock().description.clone()
    }

    /// The row of the last `stop()` (the job's, once [`Tracker::adopt_job_row`] gave it).
    pub fn last_row(&self) -> Option<EmissionsRow> {
        self.shown.lock().last_row.clone()
    }

    /// This rank's own row of the last `stop()`: the last row, unless it is the job's.
    pub fn rank_row(&self) -> Option<EmissionsRow> {
        let shown = self.shown.lock();
        shown.rank_row.clone().or_else(|| shown.last_row.clone())
    }

    /// Makes `job`, the job's run row that rank 0 wrote from its ranks' rows, this tracker's
    /// last row (what `final_emissions` reads); its own stays [`Tracker::rank_row`].
    pub fn adopt_job_row(&self, job: EmissionsRow) {
        let mut shown = self.shown.lock();
        let own = shown.last_row.replace(job);
        if shown.rank_row.is_none() {
            shown.rank_row = own;
        }
    }

    /// Starts a run with a new run id. Starting a running tracker only warns, as in CodeCarbon.
    ///
    /// The sensors are found (NVML loaded, powercap walked, the job's GPUs listed) before the
    /// run lock is taken, so a slow driver never blocks a thread that only asks for the state.
    /// Of two threads starting at once, the first to take the lock starts the run; the other
    /// drops what it found and warns, as a second `start()` does.
    pub fn start(&self) -> Result<()> {
        if self.run.lock().is_some() {
            log::warn!("Already started tracking");
            return Ok(());
        }
        let found = self.discover();
        let mut run = self.run.lock();
        if run.is_some() {
            log::warn!("Already started tracking");
            return Ok(());
        }
        let Found {
            cost,
            mut call,
            share,
            meter,
            start,
        } = found;
        *self.claim.lock() = share
            .as_ref()
            .map(|share| claims::RunClaim::make(share, &start));
        let hourly = self.start_hourly(&start);
        *self.scheduled.lock() = forecast::PENDING.take();
        let (full_period_s, period_s) = self.tick_periods_s(&meter, hourly.is_some());
        self.shown.lock().description = Some(meter.description().clone());
        // Contended by the sampler and the edge reader: a fork-safe lock (see `crate::runtime::locks`).
        let meter = Arc::new(crate::runtime::locks::Mutex::new(meter));
        let id = uuid::Uuid::new_v4().to_string();
        let export = self.run_export(share.as_ref(), &id, &start);
        let mut started = Run {
            id,
            edges: EdgeReader::new(&meter, hourly.clone(), &cost, &start),
            sampler: None,
            windows: Windows::new(&start),
            start,
            hourly,
            cost,
            export,
            budget: RunBudget::default(),
            armed: crate::lifecycle::run_started(),
        };
        started.sampler = sampler_for(&started, meter, full_period_s, period_s)?;
        *run = Some(started);
        call.charge();
        Ok(())
    }

    /// The sensors of this tracker's share, with their first read; warns what discovery found
    /// wrong. Runs without the run lock.
    fn discover(&self) -> Found {
        let cost = Arc::new(match &self.exporter {
            Some(exporter) => CostMeter::with_thread(exporter.cpu_clock()),
            None => CostMeter::default(),
        });
        let call = CostMeter::call(&cost);
        let share = self.job_share();
        let mut meter_config = self.config.meter.clone();
        if let Some(share) = &share {
            meter_config.gpu.gpu_ids = Some(share.gpus_read());
        }
        let measures_host = share.as_ref().is_none_or(|share| share.ownership.host);
        let (meter, start, warnings) = Meter::discover_share(&meter_config, measures_host);
        for warning in warnings {
            crate::runtime::warn_once(&warning);
        }
        Found {
            cost,
            call,
            share,
            meter,
            start,
        }
    }

    /// The sampler's periods (s): of a full read, and of a tick (shorter for polled GPU power).
    fn tick_periods_s(&self, meter: &Meter, hourly: bool) -> (f64, f64) {
        // Reads between edges serve the counters' wraps, polled power, the hourly ledger's
        // hours and the exporter's pushes (one per tick). A run that has only counters and
        // neither of the last two gains nothing from a tick every measure_power_secs: it ticks
        // only as often as a counter could wrap, and not at all where none can.
        let wrap_s = meter.max_read_interval_s() / 2.0;
        let full_period_s = if meter.counters_only() && !hourly && self.exporter.is_none() {
            wrap_s
        } else {
            self.config.measure_power_secs.min(wrap_s)
        };
        // Polled GPU power needs faster ticks; those read only the GPUs (Meter::tick).
        (
            full_period_s,
            full_period_s.min(meter.gpu_poll_interval_s()),
        )
    }

    /// The exporter's view of a run, labelled with its job, host and rank.
    fn run_export(
        &self,
        share: Option<&JobShare>,
        run_id: &str,
        start: &Snapshot,
    ) -> Option<Arc<RunExport>> {
        let exporter = self.exporter.as_ref()?;
        let labels = RunLabels {
            project: self.config.project_name.clone(),
            experiment: self.config.experiment_id.clone(),
            run_id: run_id.to_owned(),
            // A rank of a job: its labels, so a dashboard can group by job and host.
            job_id: share
                .map(|share| share.labels.job_id.clone())
                .filter(|id| !id.is_empty()),
            host: share.map(|share| share.labels.host.clone()),
            rank: share.map(|share| share.labels.rank).or(self.config.rank),
        };
        let mut export = RunExport::new(
            Arc::clone(exporter),
            labels,
            start,
            self.config.pue,
            self.intensity.g_per_kwh,
        );
        export.rates = Some(self.footprint_rates(share, start));
        Some(Arc::new(export))
    }

    /// Writes a row with the totals so far and keeps running. `None` when not running.
    pub fn flush(&self) -> Option<EmissionsRow> {
        let mut call = self.charge_call();
        // A framework may have put the default SIGTERM handler back (see `crate::lifecycle`).
        crate::lifecycle::rearm();
        let closed = {
            let mut run = self.run.lock();
            let Some(run) = run.as_mut() else {
                log::error!("You first need to start the tracker.");
                return None;
            };
            let end = read_and_report(&run.edges, &self.shown);
            if let Some(call) = &mut call {
                call.charge();
            }
            run.windows.settle(&end);
            run.export_edge(&end, false);
            Closed {
                run_id: run.id.clone(),
                start: run.start.clone(),
                end,
                window: None,
                hourly: run.hourly.clone(),
                cost_s: (0.0, run.cost.total_s()),
                counts: run.windows.counts,
                share: None,
                unattributed: run.windows.sharing.unattributed(),
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
        let mut call = self.charge_call();
        let Some(mut run) = self.run.lock().take() else {
            log::warn!("Tracker already stopped or never started.");
            return None;
        };
        // Ours while the rows are written, even where a framework put the default back just
        // before (Lightning's connector does, before its callbacks' teardown stops the run).
        crate::lifecycle::rearm();
        if let Some(unjudged) = run.budget.held.take() {
            // The job's decision never came for it (the edge's exchange failed): not lost.
            self.emit(&unjudged);
        }
        if !run.sampler.as_mut().is_none_or(Sampler::stop) {
            crate::runtime::warn_once(&format!(
                "the sampler was still in a sensor read {} ms after stop(): left to finish \
                 alone, the row uses the last reading",
                crate::sampler::STOP_WAIT.as_millis()
            ));
        }
        let end = read_and_report(&run.edges, &self.shown);
        if let Some(call) = &mut call {
            call.charge();
        }
        let end_t_s = end.t_s;
        let end_cost_s = run.cost.total_s();
        run.windows.settle(&end);
        // Queued before the rows are written, so the last push overlaps the CSV write.
        let last_push = run.export_edge(&end, true);
        if let Some(hourly) = &run.hourly {
            // Edges never wait for Electricity Maps; the rows written now are final, so they
            // wait (bounded) for the answers in flight rather than keep a provisional figure.
            hourly.settle();
        }
        // Windows still open (an epoch cut short by an exception) get their partial row first.
        let windows = run
            .windows
            .open
            .drain(..)
            .map(|window| {
                self.write_closed(&Closed {
                    run_id: run.id.clone(),
                    start: window.start,
                    end: end.clone(),
                    window: Some((window.name, window.labels)),
                    hourly: run.hourly.clone(),
                    cost_s: (window.cost_s, end_cost_s),
                    counts: window.counts,
                    share: window.share,
                    unattributed: None,
                })
            })
            .collect();
        let mut row = self.make_row(&Closed {
            run_id: run.id.clone(),
            start: run.start.clone(),
            end,
            window: None,
            hourly: run.hourly.clone(),
            cost_s: (0.0, end_cost_s),
            counts: run.windows.counts,
            share: None,
            unattributed: run.windows.sharing.unattributed(),
        });
        if run.budget.over_budget {
            row.stop_reason = Some(STOP_CO2_BUDGET.to_owned());
        } else if run.budget.stopped_paying {
            row.stop_reason = Some(STOP_MIN_GAIN.to_owned());
        }
        self.emit(&row);
        self.release_parts(end_t_s);
        // The last row is written: a signal that came during this stop may end the process now,
        // and after the last run the default handlers come back.
        drop(run.armed);
        if let Some(hourly) = &run.hourly {
            hourly.stop();
        }
        if let (Some(seq), Some(exporter)) = (last_push, &self.exporter) {
            // Bounded: a slow or hung endpoint delays stop() by one request timeout at most.
            if !exporter.wait(seq) {
                crate::runtime::warn_once(
                    "the last export push did not finish in time; the CSV has the run's totals",
                );
            }
            for warning in exporter.take_warnings() {
                crate::runtime::warn_once(&warning);
            }
        }
        {
            let mut shown = self.shown.lock();
            shown.last_row = Some(row.clone());
            shown.rank_row = None;
        }
        Some(Stopped { windows, run: row })
    }

    fn write_closed(&self, closed: &Closed) -> EmissionsRow {
        let row = self.make_row(closed);
        self.emit(&row);
        row
    }

    fn make_row(&self, closed: &Closed) -> EmissionsRow {
        let description = self.description().unwrap_or_else(|| MeterDescription {
            cpu_method: crate::sensors::Method::None,
            ram_method: crate::sensors::Method::None,
            gpu_method: crate::sensors::Method::None,
            rapl_zones: String::new(),
            host: crate::sensors::host::HostInfo::default(),
            cpu_resolution_j: 0.0,
            cpu_tick_s: 0.0,
        });
        let weighted = closed
            .hourly
            .as_deref()
            .map(|hourly| self.weigh_hourly(hourly, &closed.start, &closed.end));
        let mut weighted = weighted;
        let measured = self.counted(
            closed.end.since(&closed.start),
            closed.start.t_s,
            closed.end.t_s,
        );
        let interval = match closed.share {
            Some(share) => {
                // Hour-by-hour emissions follow the window's edges: charge the same share.
                let whole_j = measured.energy.counted_j();
                let share_j = share.counted_j();
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
        let timestamp = crate::output::row::timestamp_now();
        let mut row = build_row(&RowContext {
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
            tracker_cpu_s: (closed.cost_s.1 - closed.cost_s.0).max(0.0),
            counts: closed.counts,
            shared: closed.share.is_some(),
            unattributed: closed.unattributed,
        });
        self.label_row(&mut row);
        if let Some(scheduled) = *self.scheduled.lock() {
            row.scheduled_start = Some(forecast::iso_utc(scheduled.start_unix_s));
            row.scheduled_intensity_g_per_kwh = scheduled.scheduled_g_per_kwh;
            row.submitted_intensity_g_per_kwh = scheduled.submitted_g_per_kwh;
        }
        row
    }

    fn emit(&self, row: &EmissionsRow) {
        if let Some(sink) = &self.sink {
            // Losing the file must not lose the user's training: the row is still returned.
            sink.write_or_report(row);
        }
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
                crate::runtime::warn_once(&format!(
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
    fn stop_running(&self) {
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

/// Registers `run`'s tick with the process's sampler: a full read every `full_period_s`, GPU
/// reads every `period_s` between. `None` when the period is [`NEVER_S`] or more.
fn sampler_for(
    run: &Run,
    meter: Arc<crate::runtime::locks::Mutex<Meter>>,
    full_period_s: f64,
    period_s: f64,
) -> Result<Option<Sampler>> {
    let Ok(period) = Duration::try_from_secs_f64(period_s) else {
        return Ok(None);
    };
    if period_s >= NEVER_S {
        return Ok(None);
    }
    let last = run.edges.fallback();
    let hourly = run.hourly.clone();
    let export = run.export.clone();
    let cost = Arc::clone(&run.cost);
    // On the process's one sampler thread: a tick stuck in a sensor read here holds up the
    // ticks of this process's other runs until it returns (see `crate::sampler`).
    let tick = move || {
        let since_ns = thread_cpu_ns();
        let mut meter = meter.lock();
        // GPU-only ticks change no hour's ledger: it reads the next full snapshot.
        if let Some(snapshot) = meter.tick(full_period_s) {
            last.remember(&snapshot);
            if let Some(hourly) = &hourly {
                hourly.observe(&snapshot);
            }
            if let Some(export) = &export {
                export.tick(&snapshot);
            }
        }
        drop(meter);
        cost.charge_thread_since(since_ns);
    };
    Sampler::register(period, tick)
        .map(Some)
        .map_err(|err| Error::io("carbonmeter-sampler thread", err))
}

/// Reads every sensor now and logs what the sampler found wrong since the last edge: the
/// sampler thread itself never logs, so it never waits on the logging machinery.
/// A sensor given up mid-run changes the methods, so the rows from then on say so. A read that
/// does not finish within [`EDGE_DEADLINE`] gives the last snapshot instead, said once.
fn read_and_report(edges: &EdgeReader, shown: &Mutex<Shown>) -> Snapshot {
    let Some(read) = edges.read() else {
        crate::runtime::warn_once(&format!(
            "a sensor read did not finish within {} ms (a wedged driver or sysfs read): window \
             edges use the last reading until it returns",
            EDGE_DEADLINE.as_millis()
        ));
        return edges.last();
    };
    {
        let mut shown = shown.lock();
        if shown.description.as_ref() != Some(&read.description) {
            shown.description = Some(read.description);
        }
    }
    for warning in read.warnings {
        log::warn!("{warning}");
    }
    read.snapshot
}

#[cfg(test)]
mod tests;
