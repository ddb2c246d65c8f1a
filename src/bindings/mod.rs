//! Python bindings: conversion and error mapping only, no arithmetic and no file I/O.

mod data;
mod detach;
pub(crate) mod errors;
mod hardware;
mod intensity;
mod listener;
mod settings;
mod tracker;

use std::sync::OnceLock;

use pyo3::prelude::*;

static LOG_RESET: OnceLock<pyo3_log::ResetHandle> = OnceLock::new();

/// Makes `log` records reach the Python logger `carbonmeter` (and its children). Called by
/// every entry point that can log, not at import: pyo3-log imports Python's `logging`, which is
/// most of what `import carbonmeter` would otherwise cost. Later calls pick up level changes,
/// which pyo3-log caches for speed.
pub(crate) fn connect_logging(py: Python<'_>) -> PyResult<()> {
    if let Some(handle) = LOG_RESET.get() {
        handle.reset();
        return Ok(());
    }
    let logger = pyo3_log::Logger::new(py, pyo3_log::Caching::LoggersAndLevels)?
        .filter(log::LevelFilter::Trace);
    let handle = logger.reset_handle();
    // Another copy of the module in this process may have installed a logger already.
    if log::set_boxed_logger(Box::new(Speaker(logger))).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
        let _ = LOG_RESET.set(handle);
    }
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
    module.add("__version__", crate::tracker::VERSION)?;
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
    module.add_class::<tracker::PyEpochWindow>()?;
    module.add_class::<tracker::PyWindow>()?;
    module.add_function(wrap_pyfunction!(data::per_unit, module)?)?;
    module.add_class::<intensity::PyIntensity>()?;
    module.add_function(wrap_pyfunction!(intensity::lookup_intensity, module)?)?;
    module.add_function(wrap_pyfunction!(hardware::lookup_cpu_tdp, module)?)?;
    module.add_class::<hardware::PyHardwareTdp>()?;
    module.add_function(wrap_pyfunction!(hardware::lookup_hardware, module)?)?;
    module.add_function(wrap_pyfunction!(hardware::gpu_tdp_table, module)?)?;
    module.add_function(wrap_pyfunction!(hardware::estimate_co2, module)?)?;
    module.add("GPU_TDP_ALIASES", crate::hardware::gpu_aliases())?;
    module.add("CPU_TDP_MODEL_COUNT", crate::hardware::cpu_model_count())?;
    module.add_function(wrap_pyfunction!(listener::register_row_listener, module)?)?;
    Ok(())
}
