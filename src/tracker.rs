//! The tracker: start, flush and stop a run, pure Rust.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Local;
use parking_lot::Mutex;

use crate::config::Config;
use crate::cost::{CallCost, CostMeter, thread_cpu_ns};
use crate::edges::{EDGE_DEADLINE, EdgeReader};
use crate::error::{Error, Result};
use crate::export::{Exporter, RunExport, RunLabels};
use crate::intensity::resolve::Resolved;
use crate::intensity::weighted::{HourlyRun, Weighted};
use crate::intensity::{self, Intensity};
use crate::job::{JobLabels, Member, Ownership};
use crate::meter::{ComponentEnergy, Meter, MeterDescription, Snapshot};
use crate::output::EmissionsRow;
use crate::output::build::{RowContext, RowSettings, build_row};
use crate::output::csv::CsvSink;
use crate::projection::{self, EpochCost};
use crate::sampler::Sampler;
use crate::work::{Counts, Sharing, shared_interval};

pub use crate::output::build::{Identity, WindowLabels};
/// The version written in every row.
pub use crate::output::row::VERSION;

struct OpenWindow {
    name: String,
    labels: WindowLabels,
    start: Snapshot,
    cost_s: f64,
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

/// The finished epochs of one phase, for the projection and the budget: the sums are kept as
/// they grow, so an edge costs the same at the millionth epoch (windows per step) as at the
/// first.
#[derive(Default)]
struct EpochHistory {
    costs: Vec<EpochCost>,
    spent_kg: f64,
    spent_low_kg: f64,
    /// `None` once an epoch had no upper bound.
    spent_high_kg: Option<f64>,
}

impl EpochHistory {
    fn push(&mut self, cost: EpochCost, emissions_low_kg: f64, emissions_high_kg: Option<f64>) {
        self.spent_high_kg = if self.costs.is_empty() {
            emissions_high_kg
        } else {
            self.spent_high_kg
                .zip(emissions_high_kg)
                .map(|(a, b)| a + b)
        };
        self.spent_kg += cost.emissions_kg;
        self.spent_low_kg += emissions_low_kg;
        self.costs.push(cost);
    }
}

/// A tick period this long (a century, in seconds) means no tick: a counter that cannot wrap.
const NEVER_S: f64 = 100.0 * 365.0 * 24.0 * 3600.0;

/// What `stop_reason` says when the projection crossed `co2_budget_kg`.
pub const STOP_CO2_BUDGET: &str = "co2_budget";

struct Run {
    id: String,
    edges: EdgeReader,
    /// `None` for a run that needs no read between its edges.
    sampler: Option<Sampler>,
    start: Snapshot,
    hourly: Option<Arc<HourlyRun>>,
    windows: Vec<OpenWindow>,
    next_epoch: BTreeMap<String, u32>,
    cost: Arc<CostMeter>,
    epochs: BTreeMap<String, EpochHistory>,
    budget_warned: bool,
    over_budget: bool,
    /// A rank's last epoch row, written once rank 0 said whether the job crossed the budget
    /// (only with `stop_over_budget`, so the row carries the job's decision).
    held: Option<EmissionsRow>,
    /// On rank 0, what the job's epochs of each phase surely emitted (kg CO2eq): the budget's
    /// floor while the job has no projection.
    job_spent_low_kg: BTreeMap<String, f64>,
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

/// Who checks a tracker's epochs against `co2_budget_kg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BudgetJudge {
    /// A single process: its own epochs.
    Run,
    /// A rank joined through a process group: rank 0, on the job's epoch rows.
    Job,
    /// A rank of a job that gathers no job rows: nobody can see the job's total.
    Nobody,
}

/// This tracker's part in a distributed job.
#[derive(Debug, Clone)]
struct JobShare {
    labels: JobLabels,
    ownership: Ownership,
    /// Whether the host has GPUs this rank leaves to others (its `gpu_method` is `other_rank`).
    gpus_elsewhere: bool,
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
    epoch_totals: Mutex<BTreeMap<String, u32>>,
    job: Mutex<Option<JobShare>>,
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
            experiment_name: config.experiment_name.clone(),
            tracking_mode: config.meter.tracking_mode.as_str().to_owned(),
            pue: config.pue,
            wue: config.wue,
            rank: config.rank,
            psu_efficiency: config.psu_efficiency,
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
            epoch_totals: Mutex::new(BTreeMap::new()),
            job: Mutex::new(None),
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

    /// Says how many epochs of `phase` the run will have, so its epoch rows carry the run's
    /// projection (`projected_*`) and the budget can be checked against it.
    pub fn set_epoch_total(&self, phase: &str, total_epochs: u32) {
        self.epoch_totals
            .lock()
            .insert(phase.to_owned(), total_epochs);
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
        let cost = Arc::new(match &self.exporter {
            Some(exporter) => CostMeter::with_thread(exporter.cpu_clock()),
            None => CostMeter::default(),
        });
        let mut call = CostMeter::call(&cost);
        let share = self.job_share();
        let mut meter_config = self.config.meter.clone();
        if let Some(share) = &share {
            meter_config.gpu.gpu_ids = Some(share.ownership.gpus.clone());
        }
        let measures_host = share.as_ref().is_none_or(|share| share.ownership.host);
        let (meter, start, warnings) = Meter::discover_share(&meter_config, measures_host);
        for warning in warnings {
            crate::once::warn_once(&warning);
        }
        let hourly = self.start_hourly(&start);
        // Reads between edges serve the counters' wraps, polled power, the hourly ledger's
        // hours and the exporter's pushes (one per tick). A run that has only counters and
        // neither of the last two gains nothing from a tick every measure_power_secs: it ticks
        // only as often as a counter could wrap, and not at all where none can.
        let wrap_s = meter.max_read_interval_s() / 2.0;
        let full_period_s = if meter.counters_only() && hourly.is_none() && self.exporter.is_none()
        {
            wrap_s
        } else {
            self.config.measure_power_secs.min(wrap_s)
        };
        // Polled GPU power needs faster ticks; those read only the GPUs (Meter::tick).
        let period_s = full_period_s.min(meter.gpu_poll_interval_s());
        *self.description.lock() = Some(meter.description().clone());
        // Contended by the sampler and the edge reader: a fork-safe lock (see `crate::locks`).
        let meter = Arc::new(crate::locks::Mutex::new(meter));
        let sampled = Arc::clone(&meter);
        let sampled_hourly = hourly.clone();
        let sampled_cost = Arc::clone(&cost);
        let run_id = uuid::Uuid::new_v4().to_string();
        let export = self.exporter.as_ref().map(|exporter| {
            let labels = RunLabels {
                project: self.config.project_name.clone(),
                experiment: self.config.experiment_id.clone(),
                run_id: run_id.clone(),
                // A rank of a job: its labels, so a dashboard can group by job and host.
                job_id: share
                    .as_ref()
                    .map(|share| share.labels.job_id.clone())
                    .filter(|id| !id.is_empty()),
                host: share.as_ref().map(|share| share.labels.host.clone()),
                rank: share
                    .as_ref()
                    .map(|share| share.labels.rank)
                    .or(self.config.rank),
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
        let edges = EdgeReader::new(&meter, hourly.clone(), &cost, &start);
        let sampled_last = edges.fallback();
        // On the process's one sampler thread: a tick stuck in a sensor read here holds up the
        // ticks of this process's other runs until it returns (see `crate::sampler`).
        let tick = move || {
            let since_ns = thread_cpu_ns();
            let mut meter = sampled.lock();
            // GPU-only ticks change no hour's ledger: it reads the next full snapshot.
            if let Some(snapshot) = meter.tick(full_period_s) {
                sampled_last.remember(&snapshot);
                if let Some(hourly) = &sampled_hourly {
                    hourly.observe(&snapshot);
                }
                if let Some(export) = &sampled_export {
                    export.tick(&snapshot);
                }
            }
            drop(meter);
            sampled_cost.charge_thread_since(since_ns);
        };
        let sampler = match Duration::try_from_secs_f64(period_s) {
            Ok(period) if period_s < NEVER_S => Some(
                Sampler::register(period, tick)
                    .map_err(|err| Error::io("carbonmeter-sampler thread", err))?,
            ),
            _ => None,
        };
        *run = Some(Run {
            id: run_id,
            edges,
            sampler,
            sharing: Sharing::new(start.energy),
            start,
            hourly,
            windows: Vec::new(),
            next_epoch: BTreeMap::new(),
            cost,
            epochs: BTreeMap::new(),
            budget_warned: false,
            over_budget: false,
            held: None,
            job_spent_low_kg: BTreeMap::new(),
            next_shared: BTreeMap::new(),
            counts: Counts::default(),
            export,
        });
        crate::lifecycle::run_started();
        call.charge();
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
        let mut call = self.charge_call();
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
        let start = read_and_report(&run.edges, &self.description);
        if let Some(call) = &mut call {
            call.charge();
        }
        if options.shared {
            run.settle(&start);
            run.sharing.start_using();
        }
        run.windows.push(OpenWindow {
            name: name.clone(),
            labels,
            start: start.clone(),
            cost_s: run.cost.total_s(),
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
        let mut call = self.charge_call();
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
            let end = read_and_report(&run.edges, &self.description);
            if let Some(call) = &mut call {
                call.charge();
            }
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
                cost_s: (window.cost_s, run.cost.total_s()),
                counts: window.counts,
                share: window.share,
                unattributed: None,
            }
        };
        let mut row = self.make_row(&closed);
        if let Some((_, labels)) = &closed.window
            && labels.epoch.is_some()
            && let Some(phase) = &labels.phase
        {
            self.finish_epoch(&mut row, phase);
            if self.config.budget.stop_over_budget && self.budget_judge() == BudgetJudge::Job {
                // Written by `job_decision` (or by `write_job_row` on rank 0) once the job's
                // row is judged; a row still held from an edge nobody decided is written now.
                let unjudged = self
                    .run
                    .lock()
                    .as_mut()
                    .and_then(|run| run.held.replace(row.clone()));
                if let Some(unjudged) = unjudged {
                    self.emit(&unjudged);
                }
                return Ok(row);
            }
        }
        self.emit(&row);
        Ok(row)
    }

    /// Adds a finished epoch of `phase` to the run's history; fills in the projection when the
    /// number of epochs is known, and checks the budget.
    fn finish_epoch(&self, row: &mut EmissionsRow, phase: &str) {
        let total_epochs = self.epoch_totals.lock().get(phase).copied();
        // Before the run's lock: the job's is taken alone. No lock at all without a budget.
        let budget_judge = self
            .config
            .budget
            .co2_budget_kg
            .map(|_| self.budget_judge());
        let mut guard = self.run.lock();
        let Some(run) = guard.as_mut() else {
            return;
        };
        let history = run.epochs.entry(phase.to_owned()).or_default();
        history.push(
            EpochCost {
                energy_kwh: row.energy_consumed,
                emissions_kg: row.emissions,
                duration_s: row.duration,
            },
            row.emissions_low,
            row.emissions_high,
        );
        let (spent_kg, spent_low_kg, spent_high_kg) = (
            history.spent_kg,
            history.spent_low_kg,
            history.spent_high_kg,
        );
        if let Some(projected) =
            total_epochs.and_then(|total| projection::project_run(&history.costs, total))
        {
            let (low, high) = projection::with_measurement_band(
                projected.emissions_kg,
                spent_kg,
                spent_low_kg,
                spent_high_kg,
            );
            row.projected_energy_consumed = Some(projected.energy_kwh.total);
            row.projected_emissions = Some(projected.emissions_kg.total);
            row.projected_emissions_low = Some(low);
            row.projected_emissions_high = high;
            row.projected_duration = Some(projected.duration_s.total);
        }
        match budget_judge {
            Some(BudgetJudge::Run) => {
                let number = row.epoch.unwrap_or_default();
                self.judge_budget(run, row, phase, number, spent_low_kg, "run");
            }
            Some(BudgetJudge::Nobody) => crate::once::warn_once(
                "co2_budget_kg is not checked: this process is a rank of a job whose ranks share \
                 no process group, so the job's total is not known to any of them",
            ),
            // A rank's share alone never stops anything: rank 0 judges the job's row.
            Some(BudgetJudge::Job) | None => {}
        }
    }

    /// Who judges this tracker's epochs against the budget: the run itself, rank 0 on the
    /// job's rows (a rank joined through a process group), or nobody (a rank of a job that
    /// cannot gather its figures: its own share would stop it alone).
    fn budget_judge(&self) -> BudgetJudge {
        let joined = match self.job.lock().as_ref() {
            Some(share) => !share.labels.job_run_id.is_empty(),
            None if self.config.job.is_some() => false,
            None => return BudgetJudge::Run,
        };
        if joined {
            BudgetJudge::Job
        } else {
            BudgetJudge::Nobody
        }
    }

    /// Checks an epoch's figures (of the run, or of the job on rank 0) against the budget:
    /// warns once at the crossing and, with `stop_over_budget`, marks the row and the run.
    fn judge_budget(
        &self,
        run: &mut Run,
        row: &mut EmissionsRow,
        phase: &str,
        epoch: u32,
        spent_low_kg: f64,
        whose: &str,
    ) {
        let Some(budget_kg) = self.config.budget.co2_budget_kg else {
            return;
        };
        let Some(crossing) =
            projection::crossing(budget_kg, row.projected_emissions_low, spent_low_kg)
        else {
            return;
        };
        if !run.budget_warned {
            run.budget_warned = true;
            let floor_kg = crossing.floor_kg;
            let what = if crossing.projected {
                format!("the {whose}'s projected emissions are at least")
            } else {
                format!("the {whose}'s epochs so far emitted at least")
            };
            let action = if self.config.budget.stop_over_budget {
                "training is asked to stop after this epoch (stop_over_budget=True)"
            } else {
                "pass stop_over_budget=True to stop training there"
            };
            log::warn!(
                target: "carbonmeter",
                "carbon budget exceeded after {phase} epoch {epoch}: {what} {floor_kg:.6} kg \
                 CO2eq, over co2_budget_kg={budget_kg}; {action}"
            );
        }
        if self.config.budget.stop_over_budget {
            run.over_budget = true;
            row.stop_reason = Some(STOP_CO2_BUDGET.to_owned());
        }
    }

    /// Writes the epoch row held for the job's decision ([`Tracker::end_window`] of a rank of a
    /// job with `stop_over_budget`), marked as rank 0 decided: `stop`, the job crossed the
    /// budget, so this rank stops after the same epoch as the others. Returns it, `None` when
    /// no row was held.
    pub fn job_decision(&self, stop: bool) -> Option<EmissionsRow> {
        let row = {
            let mut guard = self.run.lock();
            let run = guard.as_mut()?;
            let mut row = run.held.take()?;
            if stop {
                run.over_budget = true;
                row.stop_reason = Some(STOP_CO2_BUDGET.to_owned());
            }
            row
        };
        self.emit(&row);
        Some(row)
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
        let mut call = self.charge_call();
        let closed = {
            let mut run = self.run.lock();
            let Some(run) = run.as_mut() else {
                log::error!("You first need to start the tracker.");
                return None;
            };
            let end = read_and_report(&run.edges, &self.description);
            if let Some(call) = &mut call {
                call.charge();
            }
            run.settle(&end);
            run.export_edge(&end, false);
            Closed {
                run_id: run.id.clone(),
                start: run.start.clone(),
                end,
                window: None,
                hourly: run.hourly.clone(),
                cost_s: (0.0, run.cost.total_s()),
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
        let mut call = self.charge_call();
        let Some(mut run) = self.run.lock().take() else {
            log::warn!("Tracker already stopped or never started.");
            return None;
        };
        crate::lifecycle::run_stopped();
        if let Some(unjudged) = run.held.take() {
            // The job's decision never came for it (the edge's exchange failed): not lost.
            self.emit(&unjudged);
        }
        if !run.sampler.as_mut().is_none_or(Sampler::stop) {
            crate::once::warn_once(&format!(
                "the sampler was still in a sensor read {} ms after stop(): left to finish \
                 alone, the row uses the last reading",
                crate::sampler::STOP_WAIT.as_millis()
            ));
        }
        let end = read_and_report(&run.edges, &self.description);
        if let Some(call) = &mut call {
            call.charge();
        }
        let end_cost_s = run.cost.total_s();
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
            counts: run.counts,
            share: None,
            unattributed: run.sharing.unattributed(),
        });
        if run.over_budget {
            row.stop_reason = Some(STOP_CO2_BUDGET.to_owned());
        }
        self.emit(&row);
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
        if let Some(share) = self.job.lock().as_ref() {
            share.labels.label(&mut row);
            if share.gpus_elsewhere && row.gpu_count == 0 {
                crate::sensors::Method::OtherRank
                    .as_str()
                    .clone_into(&mut row.gpu_method);
            }
        }
        row
    }

    fn emit(&self, row: &EmissionsRow) {
        if let Some(sink) = &self.sink {
            // Losing the file must not lose the user's training: the row is still returned.
            sink.write_or_report(row);
        }
    }

    /// UUIDs of the GPUs this tracker's settings select on this host, found now.
    fn selected_gpus(&self) -> Vec<String> {
        let mut ignored = Vec::new();
        crate::gpu::GpuMeter::discover(
            &self.config.meter.gpu,
            crate::sensors::TrackingMode::Machine,
            &mut ignored,
        )
        .devices()
        .iter()
        .map(|info| info.uuid.clone())
        .collect()
    }

    /// The job share set by [`Tracker::join_job`], else the one the launcher's environment
    /// implies (no process group to tell the ranks' hosts apart: local rank 0 measures the host).
    fn job_share(&self) -> Option<JobShare> {
        if let Some(share) = self.job.lock().clone() {
            return Some(share);
        }
        let env = self.config.job.as_ref()?;
        let gpus = self.selected_gpus();
        let ownership = crate::job::plan_from_env(env, &gpus);
        let share = JobShare {
            labels: JobLabels {
                job_id: env.job_id.clone().unwrap_or_default(),
                job_run_id: String::new(),
                host: self.config.host.clone(),
                local_rank: ownership.local_rank,
                world_size: env.world_size,
                rank: env.rank,
            },
            gpus_elsewhere: ownership.gpus.len() < gpus.len(),
            ownership,
        };
        *self.job.lock() = Some(share.clone());
        Some(share)
    }

    /// This process's facts as rank `rank` of a job, for the other ranks: its host, its
    /// launcher's local rank, the GPUs it selects, the one it computes on, and the ids it
    /// proposes (rank 0's are used).
    pub fn job_member(&self, rank: u32, current_gpu: Option<String>) -> Member {
        let env = self.config.job.as_ref();
        Member {
            rank,
            host: self.config.host.clone(),
            local_rank: env.and_then(|env| env.local_rank),
            gpus: self.selected_gpus(),
            current_gpu,
            job_id: env
                .and_then(|env| env.job_id.clone())
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            job_run_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Takes rank `rank`'s share of the job whose ranks are `members` (the next `start()`
    /// measures only what it owns, and rows carry the job's columns). `members` lacking `rank`
    /// is an error: the caller exchanged the wrong facts.
    pub fn join_job(&self, members: &[Member], rank: u32, world_size: u32) -> Result<()> {
        let plans = crate::job::plan(members);
        let me = members.iter().find(|m| m.rank == rank);
        let (Some(ownership), Some(me)) = (plans.get(&rank), me) else {
            return Err(Error::invalid(
                "rank",
                rank.to_string(),
                format!("one of the members' ranks ({} given)", members.len()),
            ));
        };
        let leader = members.iter().min_by_key(|m| m.rank).unwrap_or(me);
        let host_gpus = members
            .iter()
            .filter(|m| m.host == me.host)
            .flat_map(|m| &m.gpus)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        *self.job.lock() = Some(JobShare {
            labels: JobLabels {
                job_id: leader.job_id.clone(),
                job_run_id: leader.job_run_id.clone(),
                host: me.host.clone(),
                local_rank: ownership.local_rank,
                world_size,
                rank,
            },
            gpus_elsewhere: ownership.gpus.len() < host_gpus,
            ownership: ownership.clone(),
        });
        Ok(())
    }

    /// Whether experiment loggers get this tracker's own rows: yes for a single process; in a
    /// job that gathers a job row, they get that row instead; in a job that cannot (no process
    /// group), global rank 0's rows only, as DDP logging goes.
    pub fn logs_own_rows(&self) -> bool {
        match self.job.lock().as_ref() {
            Some(share) if !share.labels.job_run_id.is_empty() => false,
            Some(share) => share.labels.rank == 0,
            None => self.config.job.as_ref().is_none_or(|env| env.rank == 0),
        }
    }

    /// What this rank measures, once it has joined a job or started as one.
    pub fn ownership(&self) -> Option<(bool, Vec<String>)> {
        self.job
            .lock()
            .as_ref()
            .map(|share| (share.ownership.host, share.ownership.gpus.clone()))
    }

    /// Writes the job's row made of its ranks' rows of one window (or of the run) and returns
    /// it; `missing` are the ranks whose rows never came. `None` when `ranks` is empty.
    pub fn write_job_row(&self, ranks: &[EmissionsRow], missing: &[u32]) -> Option<EmissionsRow> {
        let job_run_id = self
            .job
            .lock()
            .as_ref()
            .map(|share| share.labels.job_run_id.clone())
            .unwrap_or_default();
        let mut row = crate::job::job_row(ranks, missing, &job_run_id)?;
        row.timestamp = Local::now().format("%Y-%m-%dT%H:%M:%S").to_string();
        // The run's row keeps rank 0's `stop_reason`: rank 0's run took the job's decision.
        let own = self.judge_job_epoch(&mut row);
        self.emit(&row);
        if let Some(own) = own {
            self.emit(&own);
        }
        Some(row)
    }

    /// Judges the job's epoch row `row` against the budget (rank 0, where the job's figures
    /// meet) and returns rank 0's own epoch row held for that decision, marked with it.
    fn judge_job_epoch(&self, row: &mut EmissionsRow) -> Option<EmissionsRow> {
        let (Some(epoch), Some(phase)) = (row.epoch, row.phase.clone()) else {
            return None;
        };
        self.config.budget.co2_budget_kg?;
        let mut guard = self.run.lock();
        let run = guard.as_mut()?;
        let spent_low_kg = {
            let spent = run.job_spent_low_kg.entry(phase.clone()).or_default();
            *spent += row.emissions_low;
            *spent
        };
        self.judge_budget(run, row, &phase, epoch, spent_low_kg, "job");
        let mut own = run.held.take()?;
        own.stop_reason.clone_from(&row.stop_reason);
        Some(own)
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
        return edges.last();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Environment, RawValue};

    /// A tracker at a forced 1 kW and 1 kg per kWh whose budget any epoch crosses, writing
    /// `emissions.csv` in `dir`, as rank `rank` of a two-rank job.
    fn rank_of_a_job(dir: &std::path::Path, rank: u32) -> Tracker {
        let tracker = over_budget(dir, Environment::default());
        let members: Vec<Member> = (0..2)
            .map(|rank| Member {
                rank,
                host: format!("host-{rank}"),
                local_rank: Some(0),
                gpus: Vec::new(),
                current_gpu: None,
                job_id: "job".to_owned(),
                job_run_id: "job-run".to_owned(),
            })
            .collect();
        tracker.join_job(&members, rank, 2).expect("join");
        tracker.start().expect("start");
        tracker
    }

    fn over_budget(dir: &std::path::Path, environment: Environment) -> Tracker {
        let kwargs = [
            ("output_dir", RawValue::Str(dir.display().to_string())),
            ("country_iso_code", RawValue::Str("FRA".to_owned())),
            ("force_cpu_power", RawValue::Str("1000".to_owned())),
            ("force_ram_power", RawValue::Str("0".to_owned())),
            (
                "force_carbon_intensity_g_co2e_kwh",
                RawValue::Str("1000".to_owned()),
            ),
            ("co2_budget_kg", RawValue::Str("1e-12".to_owned())),
            ("stop_over_budget", RawValue::Bool(true)),
            ("measure_power_secs", RawValue::Str("3600".to_owned())),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        let config = Config::resolve(kwargs, environment).expect("config");
        let tracker = Tracker::new(config, Identity::default()).expect("tracker");
        tracker.set_epoch_total("train", 4);
        tracker
    }

    fn one_epoch(tracker: &Tracker) -> EmissionsRow {
        let name = tracker.start_epoch(None, "train").expect("epoch");
        std::thread::sleep(Duration::from_millis(20));
        tracker.end_window(&name).expect("end")
    }

    /// (`scope`, `window`, `stop_reason`) of every row written to `dir`'s CSV.
    fn written(dir: &std::path::Path) -> Vec<(String, String, String)> {
        let mut reader = csv::Reader::from_path(dir.join("emissions.csv")).expect("csv");
        let header = reader.headers().expect("header").clone();
        let at = |name: &str| header.iter().position(|h| h == name).expect("column");
        let (scope, window, stop) = (at("scope"), at("window"), at("stop_reason"));
        reader
            .records()
            .map(|record| {
                let record = record.expect("record");
                let field = |i: usize| record.get(i).unwrap_or_default().to_owned();
                (field(scope), field(window), field(stop))
            })
            .collect()
    }

    #[test]
    fn rank_zero_stops_the_job_on_the_jobs_row_not_on_its_own_share() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tracker = rank_of_a_job(dir.path(), 0);
        let own = one_epoch(&tracker);
        // Its share alone crossed the budget, yet stops nothing: held for the job's row.
        assert!(own.projected_emissions_low.is_some_and(|kg| kg > 1e-12));
        assert_eq!(own.stop_reason, None);
        assert!(!dir.path().join("emissions.csv").exists());
        let mut other = own.clone();
        other.rank = Some(1);
        let job = tracker.write_job_row(&[own, other], &[]).expect("job row");
        assert_eq!(job.stop_reason.as_deref(), Some(STOP_CO2_BUDGET));
        let run = tracker.stop().expect("run row");
        assert_eq!(run.stop_reason.as_deref(), Some(STOP_CO2_BUDGET));
        let rows = written(dir.path());
        let epoch = "train-epoch-0".to_owned();
        let stop = STOP_CO2_BUDGET.to_owned();
        assert_eq!(
            rows,
            vec![
                ("job".to_owned(), epoch.clone(), stop.clone()),
                ("rank".to_owned(), epoch, stop.clone()),
                ("rank".to_owned(), String::new(), stop),
            ]
        );
    }

    #[test]
    fn the_other_ranks_write_their_epoch_with_rank_zeros_decision() {
        let stopped = tempfile::tempdir().expect("tempdir");
        let tracker = rank_of_a_job(stopped.path(), 1);
        assert_eq!(one_epoch(&tracker).stop_reason, None);
        let row = tracker.job_decision(true).expect("held row");
        assert_eq!(row.stop_reason.as_deref(), Some(STOP_CO2_BUDGET));
        assert_eq!(tracker.job_decision(true), None, "written once");
        let run = tracker.stop().expect("run row");
        assert_eq!(run.stop_reason.as_deref(), Some(STOP_CO2_BUDGET));
        // No decision (rank 0 gone): nothing stops, and the row is still written.
        let going = tempfile::tempdir().expect("tempdir");
        let tracker = rank_of_a_job(going.path(), 1);
        one_epoch(&tracker);
        assert_eq!(tracker.job_decision(false).expect("row").stop_reason, None);
        assert_eq!(tracker.stop().expect("run row").stop_reason, None);
        let stops: Vec<String> = written(going.path()).into_iter().map(|r| r.2).collect();
        assert_eq!(stops, vec![String::new(), String::new()]);
    }

    #[test]
    fn a_row_left_undecided_is_written_at_the_next_edge_or_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tracker = rank_of_a_job(dir.path(), 1);
        one_epoch(&tracker);
        one_epoch(&tracker);
        tracker.stop();
        let windows: Vec<String> = written(dir.path()).into_iter().map(|r| r.1).collect();
        assert_eq!(windows, vec!["train-epoch-0", "train-epoch-1", ""]);
    }

    #[test]
    fn a_rank_of_a_job_without_a_process_group_never_stops_on_its_share() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Rank 1 on a host of its own: it measures that host.
        let vars = [("RANK", "1"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let environment = Environment {
            vars,
            ..Environment::default()
        };
        let tracker = over_budget(dir.path(), environment);
        tracker.start().expect("start");
        let row = one_epoch(&tracker);
        assert!(row.projected_emissions_low.is_some_and(|kg| kg > 1e-12));
        assert_eq!(row.stop_reason, None);
        assert_eq!(tracker.stop().expect("run row").stop_reason, None);
        // Alone, the same tracker stops there.
        let alone = over_budget(dir.path(), Environment::default());
        alone.start().expect("start");
        let row = one_epoch(&alone);
        assert_eq!(row.stop_reason.as_deref(), Some(STOP_CO2_BUDGET));
    }
}
