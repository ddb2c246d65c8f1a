//! The one place where core errors become Python exceptions.

use pyo3::exceptions::{
    PyException, PyFileNotFoundError, PyPermissionError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::error::Error;

pyo3::create_exception!(
    carbonmeter,
    CarbonmeterError,
    PyException,
    "Base class of every exception carbonmeter raises."
);
pyo3::create_exception!(
    carbonmeter,
    TrackerStateError,
    CarbonmeterError,
    "A tracker was used out of order (a window closed that was never opened)."
);

static INVALID_VALUE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `InvalidValueError(CarbonmeterError, ValueError)`: users catch either. `create_exception!`
/// takes one base, so the class is made with `type()`.
fn invalid_value_error(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    INVALID_VALUE_ERROR
        .get_or_try_init(py, || {
            let bases = PyTuple::new(
                py,
                [
                    py.get_type::<CarbonmeterError>().into_any(),
                    py.get_type::<PyValueError>().into_any(),
                ],
            )?;
            let namespace = PyDict::new(py);
            namespace.set_item("__module__", "carbonmeter")?;
            namespace.set_item(
                "__doc__",
                "A setting or argument has a value outside what is allowed; the message names \
                 the value and what is allowed.",
            )?;
            let class = py
                .get_type::<PyType>()
                .call1(("InvalidValueError", bases, namespace))?;
            Ok(class.cast_into::<PyType>()?.unbind())
        })
        .map(|class| class.bind(py))
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add("CarbonmeterError", py.get_type::<CarbonmeterError>())?;
    module.add("TrackerStateError", py.get_type::<TrackerStateError>())?;
    module.add("InvalidValueError", invalid_value_error(py)?)?;
    Ok(())
}

impl From<Error> for PyErr {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::InvalidValue { .. } | Error::UntrustedSetting { .. } => {
                Python::attach(|py| match invalid_value_error(py) {
                    Ok(class) => PyErr::from_type(class.clone(), message),
                    Err(creation_failed) => creation_failed,
                })
            }
            Error::UnknownSetting { .. } | Error::WrongType { .. } => PyTypeError::new_err(message),
            Error::State(_) => TrackerStateError::new_err(message),
            Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                PyFileNotFoundError::new_err(message)
            }
            Error::Io { ref source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                PyPermissionError::new_err(message)
            }
            Error::Io { .. } | Error::Csv { .. } => CarbonmeterError::new_err(message),
        }
    }
}

/// What a caught panic said, for the message of the `CarbonmeterError` it becomes.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// A panic caught at the seam: a bug of carbonmeter, raised as `CarbonmeterError` so that
/// `except Exception` catches it (PyO3's `PanicException` is a `BaseException`).
pub(crate) fn from_panic(payload: &(dyn std::any::Any + Send)) -> PyErr {
    CarbonmeterError::new_err(format!(
        "internal error in carbonmeter (please report it): {}",
        panic_message(payload)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_message_is_read_from_either_payload() {
        let text: Box<dyn std::any::Any + Send> = Box::new("plain");
        assert_eq!(panic_message(text.as_ref()), "plain");
        let formatted: Box<dyn std::any::Any + Send> = Box::new(format!("value {}", 3));
        assert_eq!(panic_message(formatted.as_ref()), "value 3");
        let other: Box<dyn std::any::Any + Send> = Box::new(3_u8);
        assert_eq!(panic_message(other.as_ref()), "no message");
    }

    #[test]
    fn permission_denied_is_a_permission_error() {
        Python::initialize();
        Python::attach(|py| {
            let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
            let err = PyErr::from(Error::io("/root/emissions.csv", denied));
            assert!(err.is_instance_of::<PyPermissionError>(py));
            let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
            let err = PyErr::from(Error::io("/nowhere/emissions.csv", missing));
            assert!(err.is_instance_of::<PyFileNotFoundError>(py));
        });
    }
}
