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

/// `data/region_intensity.csv`: read by `intensity`, and by the report, which compares a run's
/// region with the other regions of its country.
pub const REGION_CSV: &str = include_str!("../data/region_intensity.csv");
/// `data/egrid_subregions.csv`: read by `intensity`, and by the report (the other subregions).
pub const EGRID_CSV: &str = include_str!("../data/egrid_subregions.csv");
/// `data/cloud_regions.csv`: read by `intensity`, and by the report (the provider's regions).
pub const CLOUD_CSV: &str = include_str!("../data/cloud_regions.csv");
/// `data/world_boundaries.csv`: simplified country outlines (Natural Earth, public domain) as
/// SVG paths, for the report's world map; no core path reads it.
pub const WORLD_BOUNDARIES_CSV: &str = include_str!("../data/world_boundaries.csv");

/// Every table above, by file name, and the intensity tables the report compares grids with.
pub const TABLES: &[(&str, &str)] = &[
    ("gpu_tdp.csv", GPU_TDP_CSV),
    ("cpu_tdp.csv", CPU_TDP_CSV),
    ("equivalents.csv", EQUIVALENTS_CSV),
    ("country_intensity.csv", COUNTRY_CSV),
    ("uncertainty.csv", crate::uncertainty::UNCERTAINTY_CSV),
    ("world_boundaries.csv", WORLD_BOUNDARIES_CSV),
    ("cloud_regions.csv", CLOUD_CSV),
    ("region_intensity.csv", REGION_CSV),
    ("egrid_subregions.csv", EGRID_CSV),
];
