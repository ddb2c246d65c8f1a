//! Hands closed windows and finished runs to the Python experiment loggers (`loggers=`).

use pyo3::prelude::*;

use super::data::PyEmissionsData;
use crate::output::EmissionsRow;

/// The `carbonmeter.loggers.LoggerSet` of a tracker, if it has loggers.
#[derive(Default)]
pub(crate) struct Loggers(Option<Py<PyAny>>);

impl Loggers {
    /// Builds the set from the `loggers=` argument (names or logger objects); a bad name raises
    /// here, at construction, not mid-training.
    pub(crate) fn new(spec: Option<Bound<'_, PyAny>>) -> PyResult<Self> {
        let Some(spec) = spec.filter(|spec| !spec.is_none()) else {
            return Ok(Self(None));
        };
        let set = spec
            .py()
            .import("carbonmeter.loggers")?
            .getattr("LoggerSet")?
            .call1((spec,))?;
        Ok(Self(Some(set.unbind())))
    }

    pub(crate) fn clone_ref(&self, py: Python<'_>) -> Self {
        Self(self.0.as_ref().map(|set| set.clone_ref(py)))
    }

    pub(crate) fn window_closed(&self, py: Python<'_>, row: &EmissionsRow) {
        self.notify(py, "window_closed", row);
    }

    pub(crate) fn run_stopped(&self, py: Python<'_>, row: &EmissionsRow) {
        self.notify(py, "run_stopped", row);
    }

    fn notify(&self, py: Python<'_>, method: &str, row: &EmissionsRow) {
        let Some(set) = &self.0 else {
            return;
        };
        // LoggerSet isolates each logger's faults itself; anything escaping it must still not
        // reach the training loop.
        if let Err(err) = set.call_method1(py, method, (PyEmissionsData::new(row.clone()),)) {
            crate::once::warn_once(&format!("experiment loggers failed in {method}: {err}"));
        }
    }
}
