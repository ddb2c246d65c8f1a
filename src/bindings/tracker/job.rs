//! The distributed job's protocol, behind one private handle: `carbonmeter._distributed` moves
//! the ranks' facts and rows through the job's key-value store as JSON, and calls these to make
//! and read them. Nothing of it is on the public `EmissionsTracker`.

use std::sync::Arc;

use pyo3::prelude::*;

use super::PyEmissionsTracker;
use crate::bindings::data::PyEmissionsData;
use crate::bindings::detach::detach;
use crate::bindings::listener::Listener;
use crate::error::Error;
use crate::run::Tracker;
use crate::runtime::ProcessLock;

/// What `carbonmeter` registered: called with a plain tracker's `_JobHandle` when its run
/// starts as a rank of a job, it returns the run's link to the job's other trackers (with
/// `stopped(data)`) or `None`.
static JOB_HOOK: ProcessLock<Option<Py<PyAny>>> = ProcessLock::new(None);

/// Registers the hook that links a plain `EmissionsTracker`'s runs to its job
/// (`carbonmeter/__init__.py` does, at import).
#[pyfunction(name = "_register_job_hook")]
#[pyo3(signature = (hook, /))]
pub fn register_job_hook(hook: Bound<'_, PyAny>) {
    *JOB_HOOK.lock() = Some(hook.unbind());
}

impl PyEmissionsTracker {
    fn job_handle(&self, py: Python<'_>) -> PyJobHandle {
        PyJobHandle {
            tracker: Arc::clone(&self.inner),
            loggers: self.loggers.clone_ref(py),
        }
    }

    /// Links the run just started to the job's other trackers when it is a rank's plain
    /// tracker (not one joined through the process group by a callback or `JobTracker`). A
    /// failing hook costs a warning, never the run.
    pub(super) fn link_run(&self, py: Python<'_>) {
        if !self.inner.unjoined_rank() {
            return;
        }
        let hook = JOB_HOOK.lock().as_ref().map(|hook| hook.clone_ref(py));
        let Some(hook) = hook else {
            return;
        };
        match hook.call1(py, (self.job_handle(py),)) {
            Ok(link) if !link.is_none(py) => *self.link.lock() = Some(link),
            Ok(_) => {}
            Err(err) => crate::runtime::warn_once(&format!(
                "cannot link this tracker to its job's other ranks ({err}): it writes its own \
                 rows only"
            )),
        }
    }

    /// Hands the run's own row to its link, if any; on rank 0 that returns the job's run row,
    /// gathered from the ranks that ran a tracker (written and logged already).
    pub(super) fn unlink_run(
        &self,
        py: Python<'_>,
        own: &crate::output::EmissionsRow,
    ) -> Option<crate::output::EmissionsRow> {
        let link = self.link.lock().take()?;
        let data = Py::new(py, PyEmissionsData::new(own.clone())).ok()?;
        match link.call_method1(py, "stopped", (data,)) {
            Ok(job) => {
                let job = job.bind(py);
                let job = job.cast::<PyEmissionsData>().ok()?;
                Some(job.get().row().clone())
            }
            Err(err) => {
                crate::runtime::warn_once(&format!(
                    "cannot gather the job's figures at this tracker's stop ({err}): it \
                     returns its own"
                ));
                None
            }
        }
    }
}

#[pymethods]
impl PyEmissionsTracker {
    /// The handle `carbonmeter._distributed` speaks to this tracker's job through.
    fn _job(&self, py: Python<'_>) -> PyJobHandle {
        self.job_handle(py)
    }
}

/// A tracker seen as a rank of a distributed job (private: `EmissionsTracker._job()`).
#[pyclass(frozen, name = "_JobHandle", module = "carbonmeter")]
pub struct PyJobHandle {
    tracker: Arc<Tracker>,
    loggers: Listener,
}

#[pymethods]
impl PyJobHandle {
    /// This process's facts as rank `rank` of a distributed job, as JSON for the other ranks.
    #[pyo3(signature = (rank, current_gpu=None))]
    fn member(&self, py: Python<'_>, rank: u32, current_gpu: Option<String>) -> PyResult<String> {
        let tracker = Arc::clone(&self.tracker);
        let member = detach(py, move || Ok(tracker.job_member(rank, current_gpu)))?;
        serde_json::to_string(&member)
            .map_err(|err| Error::invalid("member", err.to_string(), "JSON").into())
    }

    /// Takes rank `rank`'s share of the job whose ranks published `members` (JSON, from
    /// `member`); the next `start()` measures only what this rank owns.
    fn join(&self, members: Vec<String>, rank: u32, world_size: u32) -> PyResult<()> {
        let members = members
            .into_iter()
            .map(|text| serde_json::from_str(&text))
            .collect::<Result<Vec<crate::job::Member>, _>>()
            .map_err(|err| Error::invalid("members", err.to_string(), "JSON from member()"))?;
        Ok(self.tracker.join_job(&members, rank, world_size)?)
    }

    /// What this rank measures: (host CPU and RAM, GPU UUIDs), once it has a job share.
    #[getter]
    fn ownership(&self) -> Option<(bool, Vec<String>)> {
        self.tracker.ownership()
    }

    /// The `job_wait_secs` setting.
    #[getter]
    fn wait_secs(&self) -> f64 {
        self.tracker.config().job_wait_s
    }

    /// The `stop_over_budget` setting: whether the ranks of a job wait at each epoch edge for
    /// rank 0's decision on the job's budget.
    #[getter]
    fn stop_over_budget(&self) -> bool {
        self.tracker.config().budget.stop_over_budget
    }

    /// Writes the job's row of one window (`run=False`) or of the run from its ranks' rows (JSON
    /// from `EmissionsData._json`), hands it to the loggers and returns it.
    #[pyo3(signature = (rows, missing, run=false))]
    fn row(
        &self,
        py: Python<'_>,
        rows: Vec<String>,
        missing: Vec<u32>,
        run: bool,
    ) -> PyResult<Option<PyEmissionsData>> {
        let rows = rows
            .into_iter()
            .map(|text| serde_json::from_str(&text))
            .collect::<Result<Vec<crate::output::EmissionsRow>, _>>()
            .map_err(|err| {
                Error::invalid("rows", err.to_string(), "JSON from EmissionsData._json")
            })?;
        let tracker = Arc::clone(&self.tracker);
        let Some(row) = detach(py, move || Ok(tracker.write_job_row(&rows, &missing)))? else {
            return Ok(None);
        };
        if run {
            self.loggers.run_stopped(py, &row);
        } else {
            self.loggers.window_closed(py, &row);
        }
        Ok(Some(PyEmissionsData::new(row)))
    }

    /// Writes this rank's epoch row held for rank 0's decision on the job's budget (`stop`:
    /// the job crossed it) and returns it; `None` when no row was held.
    fn decision(&self, py: Python<'_>, stop: bool) -> PyResult<Option<PyEmissionsData>> {
        let tracker = Arc::clone(&self.tracker);
        let row = detach(py, move || Ok(tracker.job_decision(stop)))?;
        Ok(row.map(PyEmissionsData::new))
    }
}
