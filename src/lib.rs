//! carbonmeter: energy and carbon of ML training, measured by a Rust core.
//!
//! The core modules know nothing of Python; `bindings` converts and maps errors, and this file
//! only declares the modules and the extension module `carbonmeter._core`.
#![deny(missing_docs)]

pub mod carbon;
pub mod config;
pub mod error;
pub mod gpu;
pub mod hardware;
pub mod integrator;
pub mod intensity;
pub mod job;
pub mod meter;
pub mod once;
pub mod output;
pub mod sampler;
pub mod sensors;
pub mod suggest;
pub mod tables;
pub mod tracker;

mod bindings;

use pyo3::prelude::*;

/// The extension module `carbonmeter._core`.
#[pymodule(name = "_core")]
fn carbonmeter_core(module: &Bound<'_, PyModule>) -> PyResult<()> {
    bindings::register(module)
}
