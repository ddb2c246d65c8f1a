//! `lookup_cpu_tdp` and the embedded reporting tables, for the command line.

use pyo3::prelude::*;

/// The TDP of a CPU model as the load model finds it: `(table name, W per package)`, or `None`.
#[pyfunction]
pub fn lookup_cpu_tdp(cpu_model: &str) -> Option<(String, f64)> {
    crate::sensors::cpu_load::lookup_cpu_tdp(cpu_model).map(|found| (found.model, found.tdp_w))
}
