//! `_core.COLUMNS` and `_core.METHODS`: the row's columns and the values of its `*_method`
//! columns, as frozen Python objects, so the docs, the stubs and the report read them from here.

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::output::methods::{MethodInfo, methods};
use crate::output::row::{COLUMNS, Column};

/// One column of the CSV row: its name, Python type, unit and doc.
#[pyclass(frozen, name = "Column", module = "carbonmeter")]
pub struct PyColumn {
    inner: &'static Column,
    doc: String,
}

#[pymethods]
impl PyColumn {
    /// The header's name, and `EmissionsData`'s attribute.
    #[getter]
    fn name(&self) -> &'static str {
        self.inner.name
    }

    /// The Python type of its values, as the stub spells it (`float | None`).
    #[getter]
    fn r#type(&self) -> &'static str {
        self.inner.python_type
    }

    /// The unit of its values (`kWh`), empty for text, counts and ratios.
    #[getter]
    fn unit(&self) -> &'static str {
        self.inner.unit
    }

    /// What it holds, one paragraph.
    #[getter]
    fn doc(&self) -> &str {
        &self.doc
    }

    fn __repr__(&self) -> String {
        format!(
            "Column({:?}, type={:?}, unit={:?})",
            self.inner.name, self.inner.python_type, self.inner.unit
        )
    }
}

/// One value of the `*_method` columns: its name, where it appears and what it means.
#[pyclass(frozen, name = "Method", module = "carbonmeter")]
pub struct PyMethod {
    inner: MethodInfo,
}

#[pymethods]
impl PyMethod {
    /// As written in the row.
    #[getter]
    fn name(&self) -> &'static str {
        self.inner.name
    }

    /// The columns it may appear in.
    #[getter]
    fn columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.columns)
    }

    /// What it means, worded to follow "CPU energy was" in a sentence.
    #[getter]
    fn meaning(&self) -> &'static str {
        self.inner.meaning
    }

    fn __repr__(&self) -> String {
        format!(
            "Method({:?}, columns={:?})",
            self.inner.name, self.inner.columns
        )
    }
}

/// Every column, in the CSV's order.
pub(crate) fn columns(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    let rows = COLUMNS
        .iter()
        .map(|inner| {
            let doc = inner.doc();
            Py::new(py, PyColumn { inner, doc })
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, rows)
}

/// Every method, in the core's order.
pub(crate) fn all_methods(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    let rows = methods()
        .into_iter()
        .map(|inner| Py::new(py, PyMethod { inner }))
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, rows)
}
