//! `EmissionsTracker`: a frozen handle on the core tracker.

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
use crate::run::{Identity, Tracker, TrackerState, WindowLabels, WindowOptions};
use crate::work::Counts;

/// An epoch number: an int from 0 to 2^32-1, or None. A bool is not a number here (`True` would
/// read as epoch 1), and an int out of range names the argument instead of `OverflowError`.
fn epoch_number(epoch: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u32>> {
    let Some(epoch) = epoch.filter(|epoch| !epoch.is_none()) else {
        return Ok(None);
    };
    if epoch.is_instance_of::<PyBool>() || !epoch.is_instance_of::<PyInt>() {
        return Err(Error::WrongType {
            name: "epoch".to_owned(),
            expected: "an int or None".to_owned(),
            got: epoch.get_type().name()?.to_string(),
        }
        .into());
    }
    epoch.extract::<u32>().map(Some).map_err(|_| {
        let shown = epoch
            .str()
            .map_or_else(|_| "?".to_owned(), |text| text.to_string());
        Error::invalid(
            "epoch",
            shown,
            format!("expected a whole number from 0 to {}", u32::MAX),
        )
        .into()
    })
}

fn to_raw(key: &str, value: &Bound<'_, PyAny>) -> PyResult<Option<RawValue>> {
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

/// Measures the energy and emissions of the code between `start()` and `stop()`.
#[pyclass(frozen, subclass, name = "EmissionsTracker", module = "carbonmeter")]
pub struct PyEmissionsTracker {
    inner: Arc<Tracker>,
    loggers: Listener,
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
        let loggers = Listener::new(loggers)?;
        let inner = detach(py, || Tracker::shared(config, identity))?;
        Ok(Self { inner, loggers })
    }

    /// Starts measuring. A second `start()` on a running tracker only warns.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let tracker = Arc::clone(&self.inner);
        detach(py, move || tracker.start())
    }

    /// Stops, writes the run's row and returns its emissions in kg CO2eq (`None` if the tracker
    /// never ran).
    fn stop(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        let tracker = Arc::clone(&self.inner);
        let Some(stopped) = detach(py, move || Ok(tracker.stop_run()))? else {
            return Ok(self.inner.last_row().map(|row| row.emissions));
        };
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

    /// Opens a named window now (starting the tracker if needed); windows may nest and overlap.
    fn start_window(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        sync_device(py, self.inner.config().sync)?;
        let tracker = Arc::clone(&self.inner);
        detach(py, move || {
            tracker.start_window(name, WindowLabels::default())
        })
    }

    /// Closes a window, writes its row and returns what it measured.
    fn end_window(&self, py: Python<'_>, name: &str) -> PyResult<PyEmissionsData> {
        sync_device(py, self.inner.config().sync)?;
        let tracker = Arc::clone(&self.inner);
        let row = detach(py, move || tracker.end_window(name))?;
        if self.inner.logs_own_rows() {
            self.loggers.window_closed(py, &row);
        }
        Ok(PyEmissionsData::new(row))
    }

    /// CodeCarbon's name for `start_window`; a task without a name gets a unique one.
    #[pyo3(signature = (task_name=None))]
    fn start_task(&self, py: Python<'_>, task_name: Option<String>) -> PyResult<()> {
        self.start_window(py, &Tracker::task_name(task_name))
    }

    /// CodeCarbon's name for `end_window`; without a name, closes the last task opened.
    #[pyo3(signature = (task_name=None))]
    fn stop_task(
        &self,
        py: Python<'_>,
        task_name: Option<String>,
    ) -> PyResult<Option<PyEmissionsData>> {
        let Some(name) = self.inner.task_to_stop(task_name) else {
            return Ok(None);
        };
        self.end_window(py, &name).map(Some)
    }

    /// Adds samples, tokens and requests to the open windows and the run. Called once per
    /// batch, so it takes one short lock and never releases the GIL.
    #[pyo3(signature = (samples=None, tokens=None, requests=None))]
    fn count(
        &self,
        samples: Option<i64>,
        tokens: Option<i64>,
        requests: Option<i64>,
    ) -> PyResult<()> {
        self.inner.count(Counts::new(samples, tokens, requests)?);
        Ok(())
    }

    /// A context manager measuring a named window with its own counts; `shared=True` makes it
    /// one of the overlapping requests of a server, charged its share of the energy.
    #[pyo3(signature = (name, *, samples=None, tokens=None, requests=None, shared=false))]
    fn window(
        &self,
        py: Python<'_>,
        name: String,
        samples: Option<i64>,
        tokens: Option<i64>,
        requests: Option<i64>,
        shared: bool,
    ) -> PyResult<PyWindow> {
        let mut counts = Counts::new(samples, tokens, requests)?;
        if shared && counts.requests.is_none() {
            counts.requests = Some(1);
        }
        Ok(PyWindow {
            tracker: Arc::clone(&self.inner),
            loggers: self.loggers.clone_ref(py),
            requested: name,
            options: WindowOptions { counts, shared },
            state: parking_lot::Mutex::new(EpochState::default()),
        })
    }

    /// A context manager measuring one epoch: a row per epoch, numbered from 0 per `phase`.
    /// `total`, the number of epochs of the run, adds the run's projection to each epoch row.
    #[pyo3(signature = (epoch=None, phase="train", total=None))]
    fn epoch(
        &self,
        py: Python<'_>,
        epoch: Option<&Bound<'_, PyAny>>,
        phase: &str,
        total: Option<u32>,
    ) -> PyResult<PyEpochWindow> {
        let epoch = epoch_number(epoch)?;
        if let Some(total) = total {
            self.inner.set_epoch_total(phase, total);
        }
        Ok(PyEpochWindow {
            tracker: Arc::clone(&self.inner),
            loggers: self.loggers.clone_ref(py),
            epoch,
            phase: phase.to_owned(),
            state: parking_lot::Mutex::new(EpochState::default()),
        })
    }

    /// This process's facts as rank `rank` of a distributed job, as JSON for the other ranks.
    #[pyo3(signature = (rank, current_gpu=None))]
    fn _job_member(
        &self,
        py: Python<'_>,
        rank: u32,
        current_gpu: Option<String>,
    ) -> PyResult<String> {
        let tracker = Arc::clone(&self.inner);
        let member = detach(py, move || Ok(tracker.job_member(rank, current_gpu)))?;
        serde_json::to_string(&member)
            .map_err(|err| Error::invalid("member", err.to_string(), "JSON").into())
    }

    /// Takes rank `rank`'s share of the job whose ranks published `members` (JSON, from
    /// `_job_member`); the next `start()` measures only what this rank owns.
    fn _join_job(&self, members: Vec<String>, rank: u32, world_size: u32) -> PyResult<()> {
        let members = members
            .into_iter()
            .map(|text| serde_json::from_str(&text))
            .collect::<Result<Vec<crate::job::Member>, _>>()
            .map_err(|err| Error::invalid("members", err.to_string(), "JSON from _job_member"))?;
        Ok(self.inner.join_job(&members, rank, world_size)?)
    }

    /// What this rank measures: (host CPU and RAM, GPU UUIDs), once it has a job share.
    #[getter]
    fn _ownership(&self) -> Option<(bool, Vec<String>)> {
        self.inner.ownership()
    }

    /// The `job_wait_secs` setting.
    #[getter]
    fn _job_wait_secs(&self) -> f64 {
        self.inner.config().job_wait_s
    }

    /// Writes the job's row of one window (`run=False`) or of the run from its ranks' rows (JSON
    /// from `EmissionsData._json`), hands it to the loggers and returns it.
    #[pyo3(signature = (rows, missing, run=false))]
    fn _job_row(
        &self,
        py: Python<'_>,
        rows: Vec<String>,
        missing: Vec<u32>,
        run: bool,
    ) -> PyResult<Option<PyEmissionsData>> {
        let rows = rows
            .into_iter()
            .map(|text| serde_json::from_str(&text))
            .collect::<Result<Vec<crate::output::EmissionsRow>, _>>()
            .map_err(|err| {
                Error::invalid("rows", err.to_string(), "JSON from EmissionsData._json")
            })?;
        let tracker = Arc::clone(&self.inner);
        let Some(row) = detach(py, move || Ok(tracker.write_job_row(&rows, &missing)))? else {
            return Ok(None);
        };
        if run {
            self.loggers.run_stopped(py, &row);
        } else {
            self.loggers.window_closed(py, &row);
        }
        Ok(Some(PyEmissionsData::new(row)))
    }

    /// The `stop_over_budget` setting: whether the ranks of a job wait at each epoch edge for
    /// rank 0's decision on the job's budget.
    #[getter]
    fn _stop_over_budget(&self) -> bool {
        self.inner.config().budget.stop_over_budget
    }

    /// Writes this rank's epoch row held for rank 0's decision on the job's budget (`stop`:
    /// the job crossed it) and returns it; `None` when no row was held.
    fn _job_decision(&self, py: Python<'_>, stop: bool) -> PyResult<Option<PyEmissionsData>> {
        let tracker = Arc::clone(&self.inner);
        let row = detach(py, move || Ok(tracker.job_decision(stop)))?;
        Ok(row.map(PyEmissionsData::new))
    }

    /// Whether a run is in progress (between `start()` and `stop()`).
    #[getter]
    fn running(&self) -> bool {
        self.inner.state() == TrackerState::Running
    }

    /// Names of the windows open now, oldest first.
    #[getter]
    fn open_windows(&self) -> Vec<String> {
        self.inner.open_windows()
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
        self.inner.config().intensity.cloud_provider.clone()
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

#[derive(Default)]
struct EpochState {
    name: Option<String>,
    data: Option<crate::output::EmissionsRow>,
}

/// One epoch's window, as returned by `EmissionsTracker.epoch()`.
#[pyclass(frozen, name = "EpochWindow", module = "carbonmeter")]
pub struct PyEpochWindow {
    tracker: Arc<Tracker>,
    loggers: Listener,
    epoch: Option<u32>,
    phase: String,
    state: parking_lot::Mutex<EpochState>,
}

#[pymethods]
impl PyEpochWindow {
    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let this = slf.get();
        let (epoch, phase) = (this.epoch, this.phase.clone());
        open_window(slf.py(), &this.tracker, &this.state, move |tracker| {
            tracker.start_epoch(epoch, &phase)
        })?;
        Ok(slf)
    }

    /// Closes the epoch and writes its row, also when the body raised (never swallowed).
    #[pyo3(signature = (_exc_type=None, _exc_value=None, _traceback=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc_value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        close_window(py, &self.tracker, &self.loggers, &self.state)
    }

    /// What the epoch measured, once it has ended.
    #[getter]
    fn data(&self) -> Option<PyEmissionsData> {
        self.state.lock().data.clone().map(PyEmissionsData::new)
    }
}

/// Opens the window of an epoch or `window()` context: the device synchronised first (with the
/// GIL, as torch needs it), then `open` without the GIL; its name is kept for the exit.
fn open_window(
    py: Python<'_>,
    tracker: &Arc<Tracker>,
    state: &parking_lot::Mutex<EpochState>,
    open: impl FnOnce(&Tracker) -> Result<String, Error> + Send,
) -> PyResult<()> {
    sync_device(py, tracker.config().sync)?;
    let opening = Arc::clone(tracker);
    let name = detach(py, move || open(&opening))?;
    state.lock().name = Some(name);
    Ok(())
}

/// Closes the window an epoch or `window()` context opened, writes its row, hands it to the
/// loggers (in a job, only where this rank logs its own rows) and keeps it for `.data`.
/// `Ok(false)`: an exception from the body is never swallowed.
fn close_window(
    py: Python<'_>,
    tracker: &Arc<Tracker>,
    loggers: &Listener,
    state: &parking_lot::Mutex<EpochState>,
) -> PyResult<bool> {
    let Some(name) = state.lock().name.take() else {
        return Ok(false);
    };
    sync_device(py, tracker.config().sync)?;
    let closing = Arc::clone(tracker);
    let row = detach(py, move || closing.end_window(&name))?;
    if tracker.logs_own_rows() {
        loggers.window_closed(py, &row);
    }
    state.lock().data = Some(row);
    Ok(false)
}

/// A named window with its counts, as returned by `EmissionsTracker.window()`.
#[pyclass(frozen, name = "Window", module = "carbonmeter")]
pub struct PyWindow {
    tracker: Arc<Tracker>,
    loggers: Listener,
    requested: String,
    options: WindowOptions,
    state: parking_lot::Mutex<EpochState>,
}

#[pymethods]
impl PyWindow {
    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let this = slf.get();
        let (requested, options) = (this.requested.clone(), this.options);
        open_window(slf.py(), &this.tracker, &this.state, move |tracker| {
            tracker.open_window(&requested, WindowLabels::default(), options)
        })?;
        Ok(slf)
    }

    /// Closes the window and writes its row, also when the body raised (never swallowed).
    #[pyo3(signature = (_exc_type=None, _exc_value=None, _traceback=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc_value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        close_window(py, &self.tracker, &self.loggers, &self.state)
    }

    /// Adds to this window, the run and the open windows that are not shared (never to another
    /// request).
    #[pyo3(signature = (samples=None, tokens=None, requests=None))]
    fn count(
        &self,
        samples: Option<i64>,
        tokens: Option<i64>,
        requests: Option<i64>,
    ) -> PyResult<()> {
        let counts = Counts::new(samples, tokens, requests)?;
        let name = self.state.lock().name.clone().ok_or_else(|| {
            crate::error::Error::State(format!(
                "window {:?} is not open: count() inside its with-block",
                self.requested
            ))
        })?;
        Ok(self.tracker.count_window(&name, counts)?)
    }

    /// The window's name in its rows (`request-3` for a shared window), once opened.
    #[getter]
    fn name(&self) -> Option<String> {
        let state = self.state.lock();
        state
            .name
            .clone()
            .or_else(|| state.data.as_ref().and_then(|row| row.window.clone()))
    }

    /// What the window measured, once it has ended.
    #[getter]
    fn data(&self) -> Option<PyEmissionsData> {
        self.state.lock().data.clone().map(PyEmissionsData::new)
    }
}
