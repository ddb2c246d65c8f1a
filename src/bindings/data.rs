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

    /// The row it shows.
    pub(crate) fn row(&self) -> &EmissionsRow {
        &self.row
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

            /// J per sample counted (energy_consumed in J / samples); `None` when not counted.
            #[getter]
            fn joules_per_sample(&self) -> Option<f64> {
                self.row.per_unit().joules_per_sample
            }

            /// J per token counted; `None` when not counted.
            #[getter]
            fn joules_per_token(&self) -> Option<f64> {
                self.row.per_unit().joules_per_token
            }

            /// J per request counted; `None` when not counted.
            #[getter]
            fn joules_per_request(&self) -> Option<f64> {
                self.row.per_unit().joules_per_request
            }

            /// g CO2eq per 1000 tokens counted; `None` when not counted.
            #[getter]
            fn co2_g_per_1k_tokens(&self) -> Option<f64> {
                self.row.per_unit().co2_g_per_1k_tokens
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

/// The per-unit figures of `energy_kwh` and `co2_kg` spent on the counts given: the
/// `j_per_sample`, `j_per_token`, `j_per_request` and `co2_g_per_1k_tokens` of the report, from
/// the same formula as `EmissionsData.joules_per_sample`.
#[pyfunction]
#[pyo3(signature = (energy_kwh, co2_kg, samples=None, tokens=None, requests=None))]
pub fn per_unit(
    energy_kwh: f64,
    co2_kg: f64,
    samples: Option<i64>,
    tokens: Option<i64>,
    requests: Option<i64>,
) -> PyResult<std::collections::BTreeMap<&'static str, Option<f64>>> {
    let counts = crate::work::Counts::new(samples, tokens, requests)?;
    let figures = crate::output::build::per_unit(energy_kwh, co2_kg, counts);
    Ok([
        ("j_per_sample", figures.joules_per_sample),
        ("j_per_token", figures.joules_per_token),
        ("j_per_request", figures.joules_per_request),
        ("co2_g_per_1k_tokens", figures.co2_g_per_1k_tokens),
    ]
    .into_iter()
    .collect())
}

/// The grid intensity, g CO2eq/kWh, that `co2_kg` emitted for `energy_kwh` implies; `None` for
/// no energy. The report reads a CodeCarbon row's intensity so (CodeCarbon writes none).
#[pyfunction]
pub fn g_per_kwh_of(co2_kg: f64, energy_kwh: f64) -> Option<f64> {
    crate::carbon::g_per_kwh_of(co2_kg, energy_kwh)
}
