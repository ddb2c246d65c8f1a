//! `_core.SETTINGS`: the rows of `config::schema::SETTINGS` as frozen Python objects.

use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::config::schema::{DefaultValue, SETTINGS, Setting};

/// One setting: its name, kind, default, allowed values, trust, size bound and doc.
#[pyclass(frozen, name = "Setting", module = "carbonmeter")]
pub struct PySetting {
    inner: &'static Setting,
}

#[pymethods]
impl PySetting {
    /// The keyword argument (`CARBONMETER_<NAME>` in the environment).
    #[getter]
    fn name(&self) -> &'static str {
        self.inner.name
    }

    /// `str`, `path`, `secret`, `float`, `int`, `bool`, `choice`, `list`, `object` or `any`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind.as_str()
    }

    /// The value used when no layer sets it, or `None`.
    #[getter]
    fn default(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.inner.default {
            DefaultValue::Unset => Ok(py.None()),
            DefaultValue::Str(text) => text.into_py_any(py),
            DefaultValue::Float(number) => number.into_py_any(py),
            DefaultValue::Bool(flag) => flag.into_py_any(py),
        }
    }

    /// One line of documentation.
    #[getter]
    fn doc(&self) -> &'static str {
        self.inner.doc
    }

    /// The allowed values of a `choice`, empty otherwise.
    #[getter]
    fn choices<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.choices)
    }

    /// The lower bound of a number, or `None`.
    #[getter]
    fn minimum(&self) -> Option<f64> {
        self.inner.range.map(|range| range.min)
    }

    /// Whether `minimum` itself is allowed.
    #[getter]
    fn minimum_inclusive(&self) -> bool {
        self.inner.range.is_some_and(|range| range.min_inclusive)
    }

    /// The (inclusive) upper bound of a number, or `None`.
    #[getter]
    fn maximum(&self) -> Option<f64> {
        self.inner.range.and_then(|range| range.max)
    }

    /// The setting this one is another name for, or `None`.
    #[getter]
    fn alias_of(&self) -> Option<&'static str> {
        self.inner.alias_of
    }

    /// False for a CodeCarbon option that is accepted with a warning and otherwise ignored.
    #[getter]
    fn served(&self) -> bool {
        self.inner.served
    }

    /// Who may set it from a config file: `any`, or `trusted_source_only` (keyword arguments,
    /// the environment, or a config file the user owns that no one else can write).
    #[getter]
    fn trust(&self) -> &'static str {
        self.inner.trust.as_str()
    }

    /// The longest value accepted, in characters, or `None` for a setting that is not text.
    #[getter]
    fn max_chars(&self) -> Option<usize> {
        self.inner.max_chars
    }

    fn __repr__(&self) -> String {
        format!(
            "Setting({:?}, kind={:?})",
            self.inner.name,
            self.inner.kind.as_str()
        )
    }
}

/// The whole table, in its order.
pub(crate) fn settings(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    let rows = SETTINGS
        .iter()
        .map(|inner| Py::new(py, PySetting { inner }))
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, rows)
}
