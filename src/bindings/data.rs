//! `EmissionsData`: a finished row, with CodeCarbon's field names as attributes.

use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::output::EmissionsRow;

/// The measurements of one run or window, as CodeCarbon's `EmissionsData`.
#[pyclass(frozen, name = "EmissionsData", module = "carbonmeter")]
pub struct PyEmissionsData {
    row: EmissionsRow,
}

impl PyEmissionsData {
    pub(crate) fn new(row: EmissionsRow) -> Self {
        Self { row }
    }
}

fn json_to_python<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    match value {
        serde_json::Value::Null => Ok(py.None().into_bound(py)),
        serde_json::Value::Bool(flag) => flag.into_bound_py_any(py),
        serde_json::Value::Number(number) => match number.as_u64() {
            Some(integer) => integer.into_bound_py_any(py),
            None => number.as_f64().unwrap_or(f64::NAN).into_bound_py_any(py),
        },
        serde_json::Value::String(text) => text.into_bound_py_any(py),
        other => other.to_string().into_bound_py_any(py),
    }
}

macro_rules! emissions_data_methods {
    ($($field:ident),* $(,)?) => {
        #[pymethods]
        impl PyEmissionsData {
            $(
                #[getter]
                fn $field<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                    self.row.$field.clone().into_bound_py_any(py)
                }
            )*

            /// The row as a dict, keys in CSV column order.
            fn as_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                let dict = PyDict::new(py);
                let serde_json::Value::Object(fields) = serde_json::to_value(&self.row)
                    .map_err(|err| pyo3::exceptions::PyValueError::new_err(err.to_string()))?
                else {
                    return Ok(dict);
                };
                for (name, value) in &fields {
                    dict.set_item(name, json_to_python(py, value)?)?;
                }
                Ok(dict)
            }

            /// The row as JSON, for another rank of the job.
            fn _json(&self) -> PyResult<String> {
                serde_json::to_string(&self.row)
                    .map_err(|err| pyo3::exceptions::PyValueError::new_err(err.to_string()))
            }

            /// Mean `(cpu_w, gpu_w, ram_w)` since `earlier`, a flush of the same run (its
            /// start when `None`).
            #[pyo3(signature = (earlier=None))]
            fn power_w_since(&self, earlier: Option<&Self>) -> (f64, f64, f64) {
                let power =
                    crate::output::build::power_between(earlier.map(|e| &e.row), &self.row);
                (power.cpu_w, power.gpu_w, power.ram_w)
            }

            /// CodeCarbon's name for [`as_dict`].
            #[getter]
            fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                self.as_dict(py)
            }

            fn __repr__(&self) -> String {
                format!(
                    "EmissionsData(run_id={:?}, duration={:.3}, emissions={:.6e}, \
                     energy_consumed={:.6e}, cpu_method={:?}, ram_method={:?})",
                    self.row.run_id,
                    self.row.duration,
                    self.row.emissions,
                    self.row.energy_consumed,
                    self.row.cpu_method,
                    self.row.ram_method,
                )
            }
        }
    };
}

// One getter per column of the row struct, in its order.
crate::output::row::for_each_row_field!(emissions_data_methods);
