//! `EmissionsTracker`: a frozen handle on the core tracker.

use std::collections::BTreeMap;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use super::data::PyEmissionsData;
use crate::config::{Config, Environment, RawValue, SERVED};
use crate::error::Error;
use crate::tracker::{Identity, Tracker, TrackerState};

/// Runs `work` with the Python thread state released and maps its error, so no blocking call
/// site forgets to detach (the sampler is joined and files are written in there).
fn detached<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> Result<T, Error> + Send,
) -> PyResult<T> {
    py.detach(work).map_err(PyErr::from)
}

fn to_raw(key: &str, value: &Bound<'_, PyAny>) -> PyResult<Option<RawValue>> {
    if value.is_none() {
        return Ok(None);
    }
    if let Ok(flag) = value.cast::<PyBool>() {
        return Ok(Some(RawValue::Bool(flag.is_true())));
    }
    if value.is_instance_of::<PyInt>()
        && let Ok(integer) = value.extract::<i64>()
    {
        return Ok(Some(RawValue::Int(integer)));
    }
    if value.is_instance_of::<PyFloat>() {
        return Ok(Some(RawValue::Float(value.extract()?)));
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(Some(RawValue::Str(text.to_str()?.to_owned())));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let items = value
            .try_iter()?
            .map(|item| item.and_then(|item| Ok(item.str()?.to_str()?.to_owned())))
            .collect::<PyResult<Vec<_>>>()?;
        return Ok(Some(RawValue::List(items)));
    }
    if let Ok(path) = value
        .py()
        .import("os")
        .and_then(|os| os.call_method1("fspath", (value,)))
    {
        return Ok(Some(RawValue::Str(path.str()?.to_str()?.to_owned())));
    }
    if SERVED.contains(&key) {
        return Err(Error::invalid(
            key,
            value.repr()?.to_str()?,
            "expected a str, int, float, bool, path or list",
        )
        .into());
    }
    // An unserved CodeCarbon option (a logging.Logger, output handlers): only warned about.
    Ok(Some(RawValue::Str(value.repr()?.to_str()?.to_owned())))
}

fn identity(py: Python<'_>) -> PyResult<Identity> {
    let platform = py.import("platform")?;
    Ok(Identity {
        os: platform.call_method0("platform")?.extract()?,
        python_version: platform.call_method0("python_version")?.extract()?,
    })
}

/// Measures the energy and emissions of the code between `start()` and `stop()`.
#[pyclass(frozen, subclass, name = "EmissionsTracker", module = "carbonmeter")]
pub struct PyEmissionsTracker {
    inner: Arc<Tracker>,
}

#[pymethods]
impl PyEmissionsTracker {
    #[new]
    #[pyo3(signature = (**kwargs))]
    fn new(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let mut raw = BTreeMap::new();
        if let Some(kwargs) = kwargs {
            for (key, value) in kwargs.iter() {
                let key: String = key.extract()?;
                if let Some(value) = to_raw(&key, &value)? {
                    raw.insert(key, value);
                }
            }
        }
        let identity = identity(py)?;
        let config = detached(py, || Config::resolve(raw, Environment::current()))?;
        if let Some(level) = &config.log_level {
            py.import("logging")?
                .call_method1("getLogger", ("carbonmeter",))?
                .call_method1("setLevel", (level.as_str(),))?;
        }
        super::refresh_log_levels();
        let tracker = detached(py, || Tracker::new(config, identity))?;
        Ok(Self {
            inner: Arc::new(tracker),
        })
    }

    /// Starts measuring. A second `start()` on a running tracker only warns.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let tracker = Arc::clone(&self.inner);
        detached(py, move || tracker.start())
    }

    /// Stops, writes the run's row and returns its emissions in kg CO2eq (`None` if the tracker
    /// never ran).
    fn stop(&self, py: Python<'_>) -> Option<f64> {
        let tracker = Arc::clone(&self.inner);
        py.detach(move || tracker.stop()).map(|row| row.emissions)
    }

    /// Writes a row with the totals so far and returns the emissions so far in kg CO2eq.
    fn flush(&self, py: Python<'_>) -> Option<f64> {
        let tracker = Arc::clone(&self.inner);
        py.detach(move || tracker.flush()).map(|row| row.emissions)
    }

    /// kg CO2eq of the last stopped run.
    #[getter]
    fn final_emissions(&self) -> Option<f64> {
        self.inner.last_row().map(|row| row.emissions)
    }

    /// Everything measured in the last stopped run.
    #[getter]
    fn final_emissions_data(&self) -> Option<PyEmissionsData> {
        self.inner.last_row().map(PyEmissionsData::new)
    }

    /// Resolved `project_name`.
    #[getter]
    fn project_name(&self) -> String {
        self.inner.config().project_name.clone()
    }

    /// ISO 3166-1 alpha-3 of the grid, when a country is set.
    #[getter]
    fn country_iso_code(&self) -> Option<String> {
        self.inner.intensity().country_iso_code.clone()
    }

    /// How the grid was chosen: `cloud`, `region`, `country`, `timezone:<zone>` or `none`.
    #[getter]
    fn location_source(&self) -> String {
        self.inner.location_source().to_owned()
    }

    /// Resolved `cloud_provider`.
    #[getter]
    fn cloud_provider(&self) -> Option<String> {
        self.inner.config().cloud_provider.clone()
    }

    /// The CSV file rows go to, or `None` with `save_to_file=False`.
    #[getter]
    fn output_path(&self) -> Option<String> {
        self.inner
            .config()
            .output_path
            .as_ref()
            .map(|path| path.display().to_string())
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().start(slf.py())?;
        Ok(slf)
    }

    /// Stops and writes the row whether or not the body raised; never swallows the exception.
    #[pyo3(signature = (_exc_type=None, _exc_value=None, _traceback=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc_value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        self.stop(py);
        false
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let class_name = slf.get_type().qualname()?;
        let tracker = &slf.get().inner;
        let state = match tracker.state() {
            TrackerState::Idle => "idle",
            TrackerState::Running => "running",
        };
        let methods = tracker
            .description()
            .map_or_else(String::new, |description| {
                format!(
                    ", cpu={:?}, ram={:?}, gpu={:?}",
                    description.cpu_method.as_str(),
                    description.ram_method.as_str(),
                    description.gpu_method.as_str()
                )
            });
        Ok(format!(
            "{class_name}(project_name={:?}, state={state:?}{methods})",
            tracker.config().project_name
        ))
    }
}
