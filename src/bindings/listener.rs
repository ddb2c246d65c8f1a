//! Hands closed windows and finished runs to the row listener Python registered: the core
//! never imports its own package, the package tells the core what to call.

use pyo3::prelude::*;

use super::data::PyEmissionsData;
use super::errors::CarbonmeterError;
use crate::output::EmissionsRow;
use crate::runtime::ProcessLock;

/// The factory `carbonmeter` registered: called with a tracker's `loggers=` argument and its
/// `log_metrics` setting (a list, or `None` for the default figures), it returns an object with `window_closed(data)` and `run_stopped(data)`.
static FACTORY: ProcessLock<Option<Py<PyAny>>> = ProcessLock::new(None);

/// Registers the factory of row listeners (`carbonmeter/__init__.py` does, at import); a later
/// call replaces it. Trackers made before keep the listener they have.
#[pyfunction]
#[pyo3(signature = (factory, /))]
pub fn register_row_listener(factory: Bound<'_, PyAny>) -> PyResult<()> {
    if !factory.is_callable() {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "register_row_listener expects a callable, got {}",
            factory.repr()?
        )));
    }
    *FACTORY.lock() = Some(factory.unbind());
    Ok(())
}

/// The row listener of a tracker, if it has loggers.
#[derive(Default)]
pub(crate) struct Listener(Option<Py<PyAny>>);

impl Listener {
    /// Builds the listener from the `loggers=` argument (names or logger objects) and the
    /// figures chosen to send; a bad name raises here, at construction, not mid-training.
    pub(crate) fn new(
        spec: Option<Bound<'_, PyAny>>,
        log_metrics: Option<Vec<String>>,
    ) -> PyResult<Self> {
        let Some(spec) = spec.filter(|spec| !spec.is_none()) else {
            return Ok(Self(None));
        };
        let py = spec.py();
        // Cloned out so the lock is not held while Python runs the factory.
        let factory = FACTORY.lock().as_ref().map(|factory| factory.clone_ref(py));
        let Some(factory) = factory else {
            return Err(CarbonmeterError::new_err(
                "loggers= needs the carbonmeter package's row listener; import carbonmeter \
                 rather than carbonmeter._core alone",
            ));
        };
        Ok(Self(Some(
            factory.bind(py).call1((spec, log_metrics))?.unbind(),
        )))
    }

    pub(crate) fn clone_ref(&self, py: Python<'_>) -> Self {
        Self(self.0.as_ref().map(|listener| listener.clone_ref(py)))
    }

    pub(crate) fn window_closed(&self, py: Python<'_>, row: &EmissionsRow) {
        self.notify(py, "window_closed", row);
    }

    pub(crate) fn run_stopped(&self, py: Python<'_>, row: &EmissionsRow) {
        self.notify(py, "run_stopped", row);
    }

    fn notify(&self, py: Python<'_>, method: &str, row: &EmissionsRow) {
        let Some(listener) = &self.0 else {
            return;
        };
        // The listener isolates each logger's faults itself; anything escaping it must still
        // not reach the training loop.
        if let Err(err) = listener.call_method1(py, method, (PyEmissionsData::new(row.clone()),)) {
            crate::runtime::warn_once(&format!("experiment loggers failed in {method}: {err}"));
        }
    }
}
