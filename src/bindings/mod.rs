//! Python bindings: conversion and error mapping only, no arithmetic and no file I/O.

mod data;
mod detach;
pub(crate) mod errors;
mod forecast;
mod hardware;
mod intensity;
mod listener;
mod once;
mod settings;
mod tracker;
mod vocabulary;

use std::sync::OnceLock;

use pyo3::prelude::*;

use crate::runtime::ProcessLock;

/// The one `log` logger of the process: Python's `logging` behind pyo3-log, connected on the
/// first record that passes the level filter, or at once where `logging` is already loaded.
/// Importing `logging` (it brings `re`, `traceback` and `string`) cost more than everything
/// else in a first tracker of a process, and most runs never log.
static BRIDGE: Bridge = Bridge {
    speaker: OnceLock::new(),
    reset: OnceLock::new(),
    pending_level: ProcessLock::new(None),
};

struct Bridge {
    speaker: OnceLock<Speaker>,
    reset: OnceLock<pyo3_log::ResetHandle>,
    /// `log_level=` of the latest tracker, for the `carbonmeter` logger once `logging` loads.
    pending_level: ProcessLock<Option<String>>,
}

impl Bridge {
    /// Imports `logging`, applies the pending level and connects pyo3-log.
    fn connect(&'static self, py: Python<'_>) -> PyResult<&'static Speaker> {
        if let Some(speaker) = self.speaker.get() {
            return Ok(speaker);
        }
        let level = self.pending_level.lock().take();
        if let Some(level) = level {
            set_python_level(py, &level)?;
        }
        let logger = pyo3_log::Logger::new(py, pyo3_log::Caching::LoggersAndLevels)?
            .filter(log::LevelFilter::Trace);
        let _ = self.reset.set(logger.reset_handle());
        let speaker = self.speaker.get_or_init(|| Speaker(logger));
        log::set_max_level(log::LevelFilter::Trace);
        Ok(speaker)
    }
}

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        match self.speaker.get() {
            Some(speaker) => speaker.enabled(metadata),
            None => metadata.level() <= log::max_level(),
        }
    }

    fn log(&self, record: &log::Record<'_>) {
        if let Some(speaker) = self.speaker.get() {
            speaker.log(record);
            return;
        }
        if record.level() > log::max_level() {
            return;
        }
        // pyo3-log attaches on every record too; the sampler thread never logs.
        Python::attach(|py| match BRIDGE.connect(py) {
            Ok(speaker) => speaker.log(record),
            Err(err) => err.print(py),
        });
    }

    fn flush(&self) {
        if let Some(speaker) = self.speaker.get() {
            speaker.flush();
        }
    }
}

fn set_python_level(py: Python<'_>, level: &str) -> PyResult<()> {
    py.import("logging")?
        .call_method1("getLogger", ("carbonmeter",))?
        .call_method1("setLevel", (level,))?;
    Ok(())
}

/// The records a Python logger at `level` (as `log_level=` spells it) lets through; with no
/// level, Python's default (`WARNING`, the root logger's).
fn level_filter(level: Option<&str>) -> log::LevelFilter {
    match level.map(str::to_ascii_lowercase).as_deref() {
        Some("debug") => log::LevelFilter::Trace,
        Some("info") => log::LevelFilter::Info,
        Some("error") => log::LevelFilter::Error,
        // pyo3-log sends `log`'s errors as ERROR, below CRITICAL.
        Some("critical") => log::LevelFilter::Off,
        _ => log::LevelFilter::Warn,
    }
}

/// Makes `log` records reach the Python logger `carbonmeter` (and its children), and sets that
/// logger to `level` (`log_level=`) where given. Called by every tracker's construction: with
/// `logging` loaded (a training script has it: torch, numpy and every framework import it)
/// this connects at once and picks up level changes, which pyo3-log caches for speed; without
/// it, `logging` is imported by the first record that passes `level`, if any.
pub(crate) fn connect_logging(py: Python<'_>, level: Option<&str>) -> PyResult<()> {
    static OURS: OnceLock<bool> = OnceLock::new();
    if !*OURS.get_or_init(|| log::set_logger(&BRIDGE).is_ok()) {
        // Another copy of the module in this process installed the logger: it forwards.
        if let Some(level) = level {
            set_python_level(py, level)?;
        }
        return Ok(());
    }
    let logging_loaded = py.import("sys")?.getattr("modules")?.contains("logging")?;
    if BRIDGE.speaker.get().is_some() || logging_loaded {
        // Connecting applies an earlier tracker's pending level: this one's goes after it.
        BRIDGE.connect(py)?;
        if let Some(level) = level {
            set_python_level(py, level)?;
        }
        if let Some(reset) = BRIDGE.reset.get() {
            reset.reset();
        }
        return Ok(());
    }
    let mut pending = BRIDGE.pending_level.lock();
    if let Some(level) = level {
        *pending = Some(level.to_owned());
    }
    log::set_max_level(level_filter(pending.as_deref()));
    Ok(())
}

/// Starts every line with `carbonmeter: `, as the CLI's do: without a handler of the user's,
/// Python's last-resort handler prints the bare message beside Lightning's and W&B's lines.
struct Speaker(pyo3_log::Logger);

impl log::Log for Speaker {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        self.0.log(
            &log::Record::builder()
                .args(format_args!("carbonmeter: {}", record.args()))
                .metadata(record.metadata().clone())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build(),
        );
    }

    fn flush(&self) {
        self.0.flush();
    }
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", crate::run::VERSION)?;
    module.add("SETTINGS", settings::settings(module.py())?)?;
    module.add(
        "UNSERVED_SETTINGS",
        crate::config::SETTINGS
            .iter()
            .filter(|setting| !setting.served)
            .map(|setting| setting.name)
            .collect::<Vec<_>>(),
    )?;
    module.add("CSV_COLUMNS", crate::output::row::columns())?;
    module.add(
        "FORMULA_STARTS",
        String::from_iter(crate::output::formula::FORMULA_STARTS),
    )?;
    module.add("COLUMNS", vocabulary::columns(module.py())?)?;
    module.add("METHODS", vocabulary::all_methods(module.py())?)?;
    module.add(
        "TABLES",
        crate::tables::TABLES
            .iter()
            .copied()
            .collect::<std::collections::BTreeMap<_, _>>(),
    )?;
    errors::register(module)?;
    module.add_class::<tracker::PyEmissionsTracker>()?;
    module.add_class::<tracker::PyOfflineEmissionsTracker>()?;
    module.add_class::<data::PyEmissionsData>()?;
    module.add_class::<settings::PySetting>()?;
    module.add_class::<vocabulary::PyColumn>()?;
    module.add_class::<vocabulary::PyMethod>()?;
    module.add_class::<tracker::PyEpochWindow>()?;
    module.add_class::<tracker::PyWindow>()?;
    module.add_class::<tracker::PyJobHandle>()?;
    module.add_function(wrap_pyfunction!(data::per_unit, module)?)?;
    module.add_function(wrap_pyfunction!(data::g_per_kwh_of, module)?)?;
    module.add_class::<intensity::PyIntensity>()?;
    module.add_function(wrap_pyfunction!(intensity::lookup_intensity, module)?)?;
    module.add_function(wrap_pyfunction!(hardware::lookup_cpu_tdp, module)?)?;
    module.add_class::<hardware::PyHardwareTdp>()?;
    module.add_function(wrap_pyfunction!(hardware::lookup_hardware, module)?)?;
    module.add_function(wrap_pyfunction!(hardware::gpu_tdp_table, module)?)?;
    module.add_function(wrap_pyfunction!(hardware::estimate_co2, module)?)?;
    module.add_function(wrap_pyfunction!(hardware::estimate_footprint, module)?)?;
    module.add("GPU_TDP_ALIASES", crate::hardware::gpu_aliases())?;
    module.add("CPU_TDP_MODEL_COUNT", crate::hardware::cpu_model_count())?;
    module.add_function(wrap_pyfunction!(listener::register_row_listener, module)?)?;
    module.add_function(wrap_pyfunction!(tracker::register_job_hook, module)?)?;
    module.add_function(wrap_pyfunction!(once::warn_once, module)?)?;
    module.add_function(wrap_pyfunction!(tracker::stop_all, module)?)?;
    module.add_class::<forecast::PyGreenerPlan>()?;
    module.add_function(wrap_pyfunction!(forecast::plan_greener, module)?)?;
    module.add_function(wrap_pyfunction!(forecast::schedule_next_run, module)?)?;
    Ok(())
}
