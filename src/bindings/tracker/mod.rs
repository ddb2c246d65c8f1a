//! `EmissionsTracker`: a frozen handle on the core tracker, one `#[pymethods]` block per
//! concern (pyo3's `multiple-pymethods`, as polars splits `PyDataFrame`): the lifecycle here,
//! windows and epochs in [`windows`], the distributed job's private handle in [`job`].

mod job;
mod windows;

use std::collections::BTreeMap;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use super::data::PyEmissionsData;
use super::detach::detach;
use super::listener::Listener;
use crate::config::{Config, Environment, RawValue, SyncMode, schema};
use crate::error::Error;
use crate::output::build::python_version;
use crate::run::{Identity, Tracker, TrackerState};

pub use job::{PyJobHandle, register_job_hook};
pub use windows::{PyEpochWindow, PyWindow};

pub(crate) fn to_raw(key: &str, value: &Bound<'_, PyAny>) -> PyResult<Option<RawValue>> {
    if value.is_none() {
        return Ok(None);
    }
    let secret = schema::setting(key).is_some_and(|setting| setting.kind == schema::Kind::Secret);
    if secret && !value.is_instance_of::<PyString>() {
        return Err(Error::WrongType {
            name: key.to_owned(),
            expected: "a str".to_owned(),
            got: value.get_type().name()?.to_string(),
        }
        .into());
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
    if schema::setting(key).is_some_and(|setting| setting.served) {
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

/// With `sync="torch"`, waits for the GPU work already queued, so a window edge falls after
/// the work dispatched before it. Nothing to do (and no import) when torch is not in use.
fn sync_device(py: Python<'_>, mode: SyncMode) -> PyResult<()> {
    if mode != SyncMode::Torch {
        return Ok(());
    }
    let Ok(torch) = py.import("sys")?.getattr("modules")?.get_item("torch") else {
        return Ok(());
    };
    let cuda = torch.getattr("cuda")?;
    if cuda.call_method0("is_available")?.is_truthy()?
        && cuda.call_method0("is_initialized")?.is_truthy()?
    {
        cuda.call_method0("synchronize")?;
    }
    Ok(())
}

/// The row's `os` and `python_version`, once per process: from `uname(2)` in the core and
/// `sys.version_info`, since `platform.platform()` imports `subprocess` and runs `uname -p`.
fn identity(py: Python<'_>) -> PyResult<Identity> {
    static IDENTITY: PyOnceLock<Identity> = PyOnceLock::new();
    IDENTITY
        .get_or_try_init(py, || {
            let os = match crate::sensors::host::platform_name() {
                Some(os) => os,
                None => py.import("platform")?.call_method0("platform")?.extract()?,
            };
            let (major, minor, micro, level, serial): (u32, u32, u32, String, u32) =
                py.import("sys")?.getattr("version_info")?.extract()?;
            Ok::<_, PyErr>(Identity {
                os,
                python_version: python_version(major, minor, micro, &level, serial),
            })
        })
        .cloned()
}

/// Stops every running tracker of the process, writing its rows: the package's `atexit` hook,
/// so a run still going at the interpreter's exit is written before modules are torn down.
#[pyfunction(name = "_stop_all")]
pub fn stop_all(py: Python<'_>) -> PyResult<()> {
    detach(py, || {
        crate::lifecycle::stop_all();
        Ok(())
    })
}

/// Measures the energy and emissions of the code between `start()` and `stop()`.
#[pyclass(frozen, subclass, name = "EmissionsTracker", module = "carbonmeter")]
pub struct PyEmissionsTracker {
    inner: Arc<Tracker>,
    loggers: Listener,
    /// The running run's link to its job's other trackers (a plain tracker as a rank).
    link: parking_lot::Mutex<Option<Py<PyAny>>>,
}

#[pymethods]
impl PyEmissionsTracker {
    #[new]
    #[pyo3(signature = (**kwargs))]
    fn new(py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let mut raw = BTreeMap::new();
        let mut loggers = None;
        if let Some(kwargs) = kwargs {
            for (key, value) in kwargs.iter() {
                let key: String = key.extract()?;
                if key == "loggers" {
                    loggers = Some(value);
                    continue;
                }
                if let Some(value) = to_raw(&key, &value)? {
                    raw.insert(key, value);
                }
            }
        }
        let identity = identity(py)?;
        super::connect_logging(py, None)?;
        let config = detach(py, || Config::resolve(raw, Environment::current()))?;
        if config.log_level.is_some() {
            super::connect_logging(py, config.log_level.as_deref())?;
        }
        let loggers = Listener::new(loggers, config.log_metrics.clone())?;
        let inner = detach(py, || Tracker::shared(config, identity))?;
        Ok(Self {
            inner,
            loggers,
            link: parking_lot::Mutex::new(None),
        })
    }

    /// Starts measuring. A second `start()` on a running tracker only warns.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let tracker = Arc::clone(&self.inner);
        let was_running = self.inner.state() == TrackerState::Running;
        detach(py, move || tracker.start())?;
        if !was_running {
            self.link_run(py);
        }
        Ok(())
    }

    /// Stops, writes the run's row and returns its emissions in kg CO2eq (`None` if the tracker
    /// never ran).
    fn stop(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        let tracker = Arc::clone(&self.inner);
        let Some(stopped) = detach(py, move || Ok(tracker.stop_run()))? else {
            return Ok(self.inner.last_row().map(|row| row.emissions));
        };
        if let Some(job) = self.unlink_run(py, &stopped.run) {
            // Rank 0: the job's figures are the run's (its own stay `rank_emissions_data`);
            // its loggers got the job's row.
            let emissions = job.emissions;
            self.inner.adopt_job_row(job);
            return Ok(Some(emissions));
        }
        if self.inner.logs_own_rows() {
            for window in &stopped.windows {
                self.loggers.window_closed(py, window);
            }
            self.loggers.run_stopped(py, &stopped.run);
        }
        Ok(Some(stopped.run.emissions))
    }

    /// Writes a row with the totals so far and returns the emissions so far in kg CO2eq.
    fn flush(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        let tracker = Arc::clone(&self.inner);
        Ok(detach(py, move || Ok(tracker.flush()))?.map(|row| row.emissions))
    }

    /// Like `flush()`, but returns the row written (`None` when not running).
    fn flush_data(&self, py: Python<'_>) -> PyResult<Option<PyEmissionsData>> {
        let tracker = Arc::clone(&self.inner);
        Ok(detach(py, move || Ok(tracker.flush()))?.map(PyEmissionsData::new))
    }

    /// Whether a run is in progress (between `start()` and `stop()`).
    #[getter]
    fn running(&self) -> bool {
        self.inner.state() == TrackerState::Running
    }

    /// Names of the windows open now, oldest first.
    /// kg CO2eq of the last stopped run.
    #[getter]
    fn final_emissions(&self) -> Option<f64> {
        self.inner.last_row().map(|row| row.emissions)
    }

    /// Everything measured in the last stopped run (on rank 0 of a job, the job's).
    #[getter]
    fn final_emissions_data(&self) -> Option<PyEmissionsData> {
        self.inner.last_row().map(PyEmissionsData::new)
    }

    /// This rank's own share of the last stopped run: `final_emissions_data` except on rank 0
    /// of a job, where that is the job's.
    #[getter]
    fn rank_emissions_data(&self) -> Option<PyEmissionsData> {
        self.inner.rank_row().map(PyEmissionsData::new)
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
        self.inner.config().intensity.cloud_provider.clone()
    }

    /// Resolved `log_metrics`: the figures sent per epoch, `None` for the default ones.
    #[getter]
    fn log_metrics(&self) -> Option<Vec<String>> {
        self.inner.config().log_metrics.clone()
    }

    /// The CSV file rows go to, or `None` with `save_to_file=False`.
    #[getter]
    fn output_path(&self) -> Option<String> {
        self.inner
            .config()
            .output
            .path
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
    ) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
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

/// CodeCarbon's `OfflineEmissionsTracker`: an `EmissionsTracker` that must be told where it
/// runs.
///
/// carbonmeter never goes online to locate a run, so this class only adds a check: a location
/// (`country_iso_code`, `region` or `cloud_provider`/`cloud_region`, from a keyword argument,
/// the environment or `.codecarbon.config`) must be set, so the emissions use that grid and not
/// the world average nor a guess from the time zone.
#[pyclass(
    frozen,
    subclass,
    extends = PyEmissionsTracker,
    name = "OfflineEmissionsTracker",
    module = "carbonmeter"
)]
pub struct PyOfflineEmissionsTracker;

#[pymethods]
impl PyOfflineEmissionsTracker {
    #[new]
    #[pyo3(signature = (**kwargs))]
    fn new(
        py: Python<'_>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let base = PyEmissionsTracker::new(py, kwargs)?;
        base.inner.require_set_location()?;
        Ok(PyClassInitializer::from(base).add_subclass(Self))
    }
}
