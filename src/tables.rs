//! Embedded tables the core does not measure with, handed to Python for reporting: the GPU TDPs
//! behind `carbonmeter estimate`, the CPU TDPs (also used by `sensors::cpu_load`) and the
//! everyday equivalents of the report. Each row has a source and a year (data/README.md).

/// `data/gpu_tdp.csv`: GPU, TPU and a few CPU TDPs as used by the ML CO2 Impact calculator.
pub const GPU_TDP_CSV: &str = include_str!("../data/gpu_tdp.csv");
/// `data/cpu_tdp.csv`: CPU TDPs by marketing name.
pub const CPU_TDP_CSV: &str = include_str!("../data/cpu_tdp.csv");
/// `data/equivalents.csv`: factors turning kWh and kg CO2eq into everyday quantities.
pub const EQUIVALENTS_CSV: &str = include_str!("../data/equivalents.csv");
/// `data/country_intensity.csv`: read by `intensity`, and by the report for its cleanest and
/// dirtiest grids.
pub const COUNTRY_CSV: &str = include_str!("../data/country_intensity.csv");

/// Every table above, by file name.
pub const TABLES: &[(&str, &str)] = &[
    ("gpu_tdp.csv", GPU_TDP_CSV),
    ("cpu_tdp.csv", CPU_TDP_CSV),
    ("equivalents.csv", EQUIVALENTS_CSV),
    ("country_intensity.csv", COUNTRY_CSV),
];
