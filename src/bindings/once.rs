//! The core's one "warn once per cause", for the Python package's warnings.

use pyo3::prelude::*;

/// Logs `message` as a warning on the `carbonmeter` logger unless this process already said
/// something for `cause` (in Python or in the core); returns whether it logged.
#[pyfunction(name = "_warn_once")]
#[pyo3(signature = (cause, message, /))]
pub fn warn_once(py: Python<'_>, cause: &str, message: &str) -> PyResult<bool> {
    // A warning before any tracker was made must still reach Python's logging.
    super::connect_logging(py, None)?;
    Ok(crate::runtime::warn_once_for(cause, message))
}
