//! `EmissionsTracker`'s windows and epochs, and the context managers they return.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};

use super::{PyEmissionsTracker, sync_device};
use crate::bindings::data::PyEmissionsData;
use crate::bindings::detach::detach;
use crate::bindings::listener::Listener;
use crate::error::Error;
use crate::run::{Tracker, WindowLabels, WindowOptions};
use crate::work::Counts;

/// An epoch number: an int from 0 to 2^32-1, or None. A bool is not a number here (`True` would
/// read as epoch 1), and an int out of range names the argument instead of `OverflowError`.
fn epoch_number(epoch: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u32>> {
    let Some(epoch) = epoch.filter(|epoch| !epoch.is_none()) else {
        return Ok(None);
    };
    if epoch.is_instance_of::<PyBool>() || !epoch.is_instance_of::<PyInt>() {
        return Err(Error::WrongType {
            name: "epoch".to_owned(),
            expected: "an int or None".to_owned(),
            got: epoch.get_type().name()?.to_string(),
        }
        .into());
    }
    epoch.extract::<u32>().map(Some).map_err(|_| {
        let shown = epoch
            .str()
            .map_or_else(|_| "?".to_owned(), |text| text.to_string());
        Error::invalid(
            "epoch",
            shown,
            format!("expected a whole number from 0 to {}", u32::MAX),
        )
        .into()
    })
}

#[pymethods]
impl PyEmissionsTracker {
    /// Opens a named window now (starting the tracker if needed); windows may nest and overlap.
    fn start_window(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        sync_device(py, self.inner.config().sync)?;
        let tracker = Arc::clone(&self.inner);
        detach(py, move || {
            tracker.start_window(name, WindowLabels::default())
        })
    }

    /// Closes a window, writes its row and returns what it measured.
    fn end_window(&self, py: Python<'_>, name: &str) -> PyResult<PyEmissionsData> {
        sync_device(py, self.inner.config().sync)?;
        let tracker = Arc::clone(&self.inner);
        let row = detach(py, move || tracker.end_window(name))?;
        if self.inner.logs_own_rows() {
            self.loggers.window_closed(py, &row);
        }
        Ok(PyEmissionsData::new(row))
    }

    /// CodeCarbon's name for `start_window`; a task without a name gets a unique one.
    #[pyo3(signature = (task_name=None))]
    fn start_task(&self, py: Python<'_>, task_name: Option<String>) -> PyResult<()> {
        self.start_window(py, &Tracker::task_name(task_name))
    }

    /// CodeCarbon's name for `end_window`; without a name, closes the last task opened.
    #[pyo3(signature = (task_name=None))]
    fn stop_task(
        &self,
        py: Python<'_>,
        task_name: Option<String>,
    ) -> PyResult<Option<PyEmissionsData>> {
        let Some(name) = self.inner.task_to_stop(task_name) else {
            return Ok(None);
        };
        self.end_window(py, &name).map(Some)
    }

    /// Adds samples, tokens and requests to the open windows and the run. Called once per
    /// batch, so it takes one short lock and never releases the GIL.
    #[pyo3(signature = (samples=None, tokens=None, requests=None))]
    fn count(
        &self,
        samples: Option<i64>,
        tokens: Option<i64>,
        requests: Option<i64>,
    ) -> PyResult<()> {
        self.inner.count(Counts::new(samples, tokens, requests)?);
        Ok(())
    }

    /// A context manager measuring a named window with its own counts; `shared=True` makes it
    /// one of the overlapping requests of a server, charged its share of the energy.
    #[pyo3(signature = (name, *, samples=None, tokens=None, requests=None, shared=false))]
    fn window(
        &self,
        py: Python<'_>,
        name: String,
        samples: Option<i64>,
        tokens: Option<i64>,
        requests: Option<i64>,
        shared: bool,
    ) -> PyResult<PyWindow> {
        let mut counts = Counts::new(samples, tokens, requests)?;
        if shared && counts.requests.is_none() {
            counts.requests = Some(1);
        }
        Ok(PyWindow {
            tracker: Arc::clone(&self.inner),
            loggers: self.loggers.clone_ref(py),
            requested: name,
            options: WindowOptions { counts, shared },
            state: parking_lot::Mutex::new(EpochState::default()),
        })
    }

    /// A context manager measuring one epoch: a row per epoch, numbered from 0 per `phase`.
    /// `total`, the number of epochs of the run, adds the run's projection to each epoch row.
    #[pyo3(signature = (epoch=None, phase="train", total=None))]
    fn epoch(
        &self,
        py: Python<'_>,
        epoch: Option<&Bound<'_, PyAny>>,
        phase: &str,
        total: Option<u32>,
    ) -> PyResult<PyEpochWindow> {
        let epoch = epoch_number(epoch)?;
        if let Some(total) = total {
            self.inner.set_epoch_total(phase, total);
        }
        Ok(PyEpochWindow {
            tracker: Arc::clone(&self.inner),
            loggers: self.loggers.clone_ref(py),
            epoch,
            phase: phase.to_owned(),
            state: parking_lot::Mutex::new(EpochState::default()),
        })
    }

    #[getter]
    fn open_windows(&self) -> Vec<String> {
        self.inner.open_windows()
    }
}

#[derive(Default)]
struct EpochState {
    name: Option<String>,
    data: Option<crate::output::EmissionsRow>,
}

/// One epoch's window, as returned by `EmissionsTracker.epoch()`.
#[pyclass(frozen, name = "EpochWindow", module = "carbonmeter")]
pub struct PyEpochWindow {
    tracker: Arc<Tracker>,
    loggers: Listener,
    epoch: Option<u32>,
    phase: String,
    state: parking_lot::Mutex<EpochState>,
}

#[pymethods]
impl PyEpochWindow {
    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let this = slf.get();
        let (epoch, phase) = (this.epoch, this.phase.clone());
        open_window(slf.py(), &this.tracker, &this.state, move |tracker| {
            tracker.start_epoch(epoch, &phase)
        })?;
        Ok(slf)
    }

    /// Closes the epoch and writes its row, also when the body raised (never swallowed).
    #[pyo3(signature = (_exc_type=None, _exc_value=None, _traceback=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc_value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        close_window(py, &self.tracker, &self.loggers, &self.state)
    }

    /// What the epoch measured, once it has ended.
    #[getter]
    fn data(&self) -> Option<PyEmissionsData> {
        self.state.lock().data.clone().map(PyEmissionsData::new)
    }

    /// Records the metric `name` = `value` for this epoch's row (inside its with-block);
    /// `mode` says which way it improves: `max`, `min` or `auto` (from the name).
    #[pyo3(signature = (name, value, *, mode="auto"))]
    fn record(&self, name: &str, value: f64, mode: &str) -> PyResult<()> {
        let window = self.state.lock().name.clone().ok_or_else(|| {
            Error::State(format!(
                "metric {name:?} not recorded: record() inside the epoch's with-block"
            ))
        })?;
        Ok(self.tracker.record_metric(&window, name, value, mode)?)
    }
}

/// Opens the window of an epoch or `window()` context: the device synchronised first (with the
/// GIL, as torch needs it), then `open` without the GIL; its name is kept for the exit.
fn open_window(
    py: Python<'_>,
    tracker: &Arc<Tracker>,
    state: &parking_lot::Mutex<EpochState>,
    open: impl FnOnce(&Tracker) -> Result<String, Error> + Send,
) -> PyResult<()> {
    sync_device(py, tracker.config().sync)?;
    let opening = Arc::clone(tracker);
    let name = detach(py, move || open(&opening))?;
    state.lock().name = Some(name);
    Ok(())
}

/// Closes the window an epoch or `window()` context opened, writes its row, hands it to the
/// loggers (in a job, only where this rank logs its own rows) and keeps it for `.data`.
/// `Ok(false)`: an exception from the body is never swallowed.
fn close_window(
    py: Python<'_>,
    tracker: &Arc<Tracker>,
    loggers: &Listener,
    state: &parking_lot::Mutex<EpochState>,
) -> PyResult<bool> {
    let Some(name) = state.lock().name.take() else {
        return Ok(false);
    };
    sync_device(py, tracker.config().sync)?;
    let closing = Arc::clone(tracker);
    let row = detach(py, move || closing.end_window(&name))?;
    if tracker.logs_own_rows() {
        loggers.window_closed(py, &row);
    }
    state.lock().data = Some(row);
    Ok(false)
}

/// A named window with its counts, as returned by `EmissionsTracker.window()`.
#[pyclass(frozen, name = "Window", module = "carbonmeter")]
pub struct PyWindow {
    tracker: Arc<Tracker>,
    loggers: Listener,
    requested: String,
    options: WindowOptions,
    state: parking_lot::Mutex<EpochState>,
}

#[pymethods]
impl PyWindow {
    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let this = slf.get();
        let (requested, options) = (this.requested.clone(), this.options);
        open_window(slf.py(), &this.tracker, &this.state, move |tracker| {
            tracker.open_window(&requested, WindowLabels::default(), options)
        })?;
        Ok(slf)
    }

    /// Closes the window and writes its row, also when the body raised (never swallowed).
    #[pyo3(signature = (_exc_type=None, _exc_value=None, _traceback=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc_value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        close_window(py, &self.tracker, &self.loggers, &self.state)
    }

    /// Adds to this window, the run and the open windows that are not shared (never to another
    /// request).
    #[pyo3(signature = (samples=None, tokens=None, requests=None))]
    fn count(
        &self,
        samples: Option<i64>,
        tokens: Option<i64>,
        requests: Option<i64>,
    ) -> PyResult<()> {
        let counts = Counts::new(samples, tokens, requests)?;
        let name = self.state.lock().name.clone().ok_or_else(|| {
            crate::error::Error::State(format!(
                "window {:?} is not open: count() inside its with-block",
                self.requested
            ))
        })?;
        Ok(self.tracker.count_window(&name, counts)?)
    }

    /// The window's name in its rows (`request-3` for a shared window), once opened.
    #[getter]
    fn name(&self) -> Option<String> {
        let state = self.state.lock();
        state
            .name
            .clone()
            .or_else(|| state.data.as_ref().and_then(|row| row.window.clone()))
    }

    /// What the window measured, once it has ended.
    #[getter]
    fn data(&self) -> Option<PyEmissionsData> {
        self.state.lock().data.clone().map(PyEmissionsData::new)
    }
}
