//! The one way a binding runs blocking core work: detached from the interpreter, with panics
//! caught, errors mapped.

use std::panic::{AssertUnwindSafe, catch_unwind};

use pyo3::prelude::*;

use super::errors;
use crate::error::Error;

/// Runs `work` with the Python thread state released and maps its error, so no blocking call
/// site forgets to detach (the sampler is joined and files are written in there).
///
/// A panic in `work` becomes `CarbonmeterError`: left to PyO3 it would be a `PanicException`,
/// a `BaseException` that a callback's `except Exception` does not catch, so a bug of ours
/// would end the user's training. The closure only borrows tracker state that its own locks
/// keep consistent, so observing it after an unwind is safe.
pub(crate) fn detach<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> Result<T, Error> + Send,
) -> PyResult<T> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(work))) {
        Ok(result) => result.map_err(PyErr::from),
        Err(payload) => Err(errors::from_panic(payload.as_ref())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_a_carbonmeter_error_and_an_error_is_mapped() {
        Python::initialize();
        Python::attach(|py| {
            let panicked = detach(py, || -> Result<(), Error> { panic!("sensor table broke") })
                .expect_err("a panic is an error");
            assert!(panicked.is_instance_of::<errors::CarbonmeterError>(py));
            assert!(!panicked.is_instance_of::<pyo3::panic::PanicException>(py));
            assert!(
                panicked.to_string().contains("sensor table broke"),
                "{panicked}"
            );
            let invalid = detach(py, || -> Result<(), Error> {
                Err(Error::invalid("pue", 0.5, "expected >= 1"))
            })
            .expect_err("an error");
            assert!(invalid.is_instance_of::<pyo3::exceptions::PyValueError>(py));
            assert_eq!(detach(py, || Ok(7)).expect("a value"), 7);
        });
    }
}
