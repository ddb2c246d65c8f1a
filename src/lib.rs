//! carbonmeter: energy and carbon of ML training, measured by a Rust core.
//!
//! The core modules know nothing of Python; `bindings` converts and maps errors, and this file
//! only declares the modules and the extension module `carbonmeter._core`.
#![deny(missing_docs)]
#![cfg_attr(
    any(carbonmeter_portable, not(unix)),
    allow(
        dead_code,
        reason = "the fork machinery (runtime::fork's reset, Tracker::forget_run_after_fork) has \
                  no caller where there is no fork()"
    )
)]

pub(crate) mod carbon;
pub(crate) mod compat;
pub(crate) mod config;
pub(crate) mod cost;
pub(crate) mod edges;
pub(crate) mod error;
pub(crate) mod export;
pub(crate) mod footprint;
pub(crate) mod gpu;
pub(crate) mod hardware;
pub(crate) mod integrator;
pub(crate) mod intensity;
pub(crate) mod job;
// Signals and fork handling are Unix facts: elsewhere, and in the portable build that checks
// those paths on Linux, a twin without them.
#[cfg_attr(any(carbonmeter_portable, not(unix)), path = "lifecycle_portable.rs")]
pub(crate) mod lifecycle;
pub(crate) mod meter;
pub(crate) mod output;
pub(crate) mod payoff;
pub(crate) mod projection;
pub(crate) mod run;
pub(crate) mod runtime;
pub(crate) mod sampler;
pub(crate) mod sensors;
pub(crate) mod suggest;
pub(crate) mod tables;
pub(crate) mod uncertainty;
pub(crate) mod work;

mod bindings;

/// What `tests/*.rs` and `benches/` build on, and nothing else: the modules stay crate-private
/// so rustc reports what no one uses. Not an API; paths mirror the modules'.
#[doc(hidden)]
pub mod testing {
    /// See `crate::config`.
    pub mod config {
        pub use crate::config::{Config, Environment, RawValue};
    }
    /// See `crate::export`.
    pub mod export {
        pub use crate::export::{OtlpSettings, RunLabels, Sample, SeriesKey, Target};
        /// See `crate::export::otlp`.
        pub mod otlp {
            pub use crate::export::otlp::{OtlpHttp, encode};
        }
        /// See `crate::export::prometheus`.
        pub mod prometheus {
            pub use crate::export::prometheus::{GROUPING_LABELS, Pushgateway, encode};
        }
    }
    /// See `crate::gpu`.
    pub mod gpu {
        pub use crate::gpu::{
            DeviceRead, Discovery, GpuBackend, GpuConfig, GpuDevice, GpuFault, GpuInfo, GpuMeter,
            Vendor, Wanted,
        };
        /// See `crate::gpu::amdsmi`.
        pub mod amdsmi {
            pub use crate::gpu::amdsmi::FROZEN_AFTER_S;
        }
        /// See `crate::gpu::nvml`.
        pub mod nvml {
            pub use crate::gpu::nvml::discover;
        }
    }
    /// See `crate::meter`.
    pub mod meter {
        pub use crate::meter::{Meter, MeterConfig, Snapshot};
    }
    /// See `crate::output`.
    pub mod output {
        pub use crate::output::EmissionsRow;
    }
    /// See `crate::sensors`.
    pub mod sensors {
        pub use crate::sensors::{Component, HostSample, Method, Sensor, TrackingMode};
        /// See `crate::sensors::ioreport`.
        pub mod ioreport {
            pub use crate::sensors::ioreport::{IoReport, IoReportSensor, PartEnergy};
        }
        /// See `crate::sensors::rapl`.
        pub mod rapl {
            pub use crate::sensors::rapl::{GIVE_UP_AFTER_FAILURES, RaplDiscovery, RaplSensor};
        }
    }
    /// See `crate::run`.
    pub mod run {
        pub use crate::run::{Identity, Tracker, WindowLabels};
    }
    /// See `crate::work`.
    pub mod work {
        pub use crate::work::Counts;
    }
}

use pyo3::prelude::*;

/// The extension module `carbonmeter._core`.
#[pymodule(name = "_core")]
fn carbonmeter_core(module: &Bound<'_, PyModule>) -> PyResult<()> {
    bindings::register(module)
}
