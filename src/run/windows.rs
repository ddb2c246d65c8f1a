//! Windows and epochs: named spans of a run, opened and closed at edges read from the sensors.

use std::collections::BTreeMap;

use super::budget::BudgetJudge;
use super::payoff::RecordedMetric;
use super::{Closed, Tracker, TrackerState, WindowLabels, read_and_report};
use crate::error::{Error, Result};
use crate::meter::{ComponentEnergy, Snapshot};
use crate::output::EmissionsRow;
use crate::work::{Counts, Sharing};

/// A window open in a run.
pub(super) struct OpenWindow {
    pub(super) name: String,
    pub(super) labels: WindowLabels,
    pub(super) start: Snapshot,
    pub(super) cost_s: f64,
    pub(super) counts: Counts,
    /// The energy split to this window so far, for a shared window.
    pub(super) share: Option<ComponentEnergy>,
    /// The metric recorded in it, written in its row.
    pub(super) metric: Option<RecordedMetric>,
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

/// A run's windows: those open, the numbers the next epoch and shared window of each name
/// get, the work counted in the run, and the split of the energy among shared windows.
pub(super) struct Windows {
    pub(super) open: Vec<OpenWindow>,
    next_epoch: BTreeMap<String, u32>,
    next_shared: BTreeMap<String, u32>,
    pub(super) counts: Counts,
    pub(super) sharing: Sharing,
}

impl Windows {
    /// No window open, from the run's first read.
    pub(super) fn new(start: &Snapshot) -> Self {
        Self {
            open: Vec::new(),
            next_epoch: BTreeMap::new(),
            next_shared: BTreeMap::new(),
            counts: Counts::default(),
            sharing: Sharing::new(start.energy),
        }
    }

    /// The phase of the innermost open epoch, if any.
    pub(super) fn phase(&self) -> Option<&str> {
        self.open
            .iter()
            .rev()
            .find_map(|window| window.labels.phase.as_deref())
    }

    fn names(&self) -> String {
        let names: Vec<String> = self.open.iter().map(|w| format!("{:?}", w.name)).collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    }

    /// Splits the energy up to `now` among the shared windows open until now.
    pub(super) fn settle(&mut self, now: &Snapshot) {
        let open = self
            .open
            .iter_mut()
            .filter_map(|window| window.share.as_mut());
        self.sharing.settle(now.energy, open);
    }

    /// Adds `counts` to the run and to the open windows: all of them, or with `only`, that
    /// window and the open windows that are not shared (an enclosing batch or epoch), so one
    /// request's tokens are never counted in another request.
    fn add_counts(&mut self, counts: Counts, only: Option<&str>) {
        self.counts.add(counts);
        for window in &mut self.open {
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

impl Tracker {
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
        // Where a framework put the default SIGTERM handler back since the last window opened
        // (see `crate::lifecycle`); at opens only, so an epoch boundary pays it once.
        crate::lifecycle::rearm();
        let mut call = self.charge_call();
        let mut guard = self.run.lock();
        let run = guard.as_mut().ok_or_else(|| {
            Error::State(format!(
                "window {name:?} not opened: the tracker was stopped"
            ))
        })?;
        let name = if options.shared {
            let next = run.windows.next_shared.entry(name.to_owned()).or_insert(0);
            let numbered = format!("{name}-{next}");
            *next = next.saturating_add(1);
            numbered
        } else {
            name.to_owned()
        };
        if run.windows.open.iter().any(|window| window.name == name) {
            return Err(Error::State(format!(
                "window {name:?} is already open; open windows: {}",
                run.windows.names()
            )));
        }
        let start = read_and_report(&run.edges, &self.shown);
        if let Some(call) = &mut call {
            call.charge();
        }
        if options.shared {
            run.windows.settle(&start);
            run.windows.sharing.start_using();
        }
        run.windows.open.push(OpenWindow {
            name: name.clone(),
            labels,
            start: start.clone(),
            cost_s: run.cost.total_s(),
            counts: Counts::default(),
            share: options.shared.then(ComponentEnergy::default),
            metric: None,
        });
        // After the push: from this edge on, energy counts toward the new window's phase.
        run.export_edge(&start, false);
        if !options.counts.is_empty() {
            run.windows.add_counts(options.counts, Some(&name));
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
        if !run.windows.open.iter().any(|window| window.name == name) {
            return Err(Error::State(format!(
                "window {name:?} is not open; open windows: {}",
                run.windows.names()
            )));
        }
        run.windows.add_counts(counts, Some(name));
        Ok(())
    }

    fn count_in(&self, counts: Counts, only: Option<&str>) {
        match self.run.lock().as_mut() {
            Some(run) => run.windows.add_counts(counts, only),
            // Counting is bookkeeping beside the user's loop: a warning, never an exception.
            None => crate::runtime::warn_once(
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
            let next = run.windows.next_epoch.entry(phase.to_owned()).or_insert(0);
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
        let metric;
        let closed = {
            let mut guard = self.run.lock();
            let run = guard.as_mut().ok_or_else(|| {
                Error::State(format!(
                    "window {name:?} is not open: the tracker is not running"
                ))
            })?;
            let index = run
                .windows
                .open
                .iter()
                .position(|window| window.name == name)
                .ok_or_else(|| {
                    Error::State(format!(
                        "window {name:?} is not open; open windows: {}",
                        run.windows.names()
                    ))
                })?;
            let end = read_and_report(&run.edges, &self.shown);
            if let Some(call) = &mut call {
                call.charge();
            }
            if run.windows.open[index].share.is_some() {
                run.windows.settle(&end);
            }
            let mut window = run.windows.open.remove(index);
            run.export_edge(&end, false);
            metric = window.metric.take();
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
        if let Some(metric) = &metric {
            row.metric_name = Some(metric.name.clone());
            row.metric_value = Some(metric.value);
            row.metric_direction = Some(metric.direction.as_str().to_owned());
        }
        if let Some((_, labels)) = &closed.window
            && labels.epoch.is_some()
            && let Some(phase) = &labels.phase
        {
            self.finish_epoch(
                &mut row,
                phase,
                metric.as_ref().map(|metric| metric.direction),
            );
            if self.config.budget.stop_over_budget && self.budget_judge() == BudgetJudge::Job {
                // Written by `job_decision` (or by `write_job_row` on rank 0) once the job's
                // row is judged; a row still held from an edge nobody decided is written now.
                let unjudged = self
                    .run
                    .lock()
                    .as_mut()
                    .and_then(|run| run.budget.held.replace(row.clone()));
                if let Some(unjudged) = unjudged {
                    self.emit(&unjudged);
                }
                return Ok(row);
            }
        }
        self.emit(&row);
        Ok(row)
    }

    /// Names of the open windows, oldest first.
    pub fn open_windows(&self) -> Vec<String> {
        self.run
            .lock()
            .as_ref()
            .map(|run| run.windows.open.iter().map(|w| w.name.clone()).collect())
            .unwrap_or_default()
    }
}
