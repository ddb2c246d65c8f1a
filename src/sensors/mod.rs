//! Where energy readings come from: one file per source behind the [`Sensor`] trait.
//!
//! A sensor reports, per channel, either a monotonic energy counter or a power figure; the meter
//! turns both into cumulative energy with the integrator. Every hardware root (powercap folder,
//! procfs through sysinfo) is a constructor argument so tests run the real code on fake trees.
//! GPUs are not sensors of this kind: `crate::gpu` reads them per device, and uses [`Method`].

pub mod constant;
pub mod cpu_load;
pub mod host;
pub mod plan;
pub mod procfs;
pub mod ram;
pub mod rapl;

use std::fmt;

use crate::integrator::PowerKind;
pub use crate::integrator::Reading;
pub use host::{HostSample, TrackingMode};

/// The part of the machine a channel's energy is attributed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    /// CPU packages.
    Cpu,
    /// Memory.
    Ram,
    /// GPUs.
    Gpu,
    /// The RAPL platform zone (`psys`): reported apart, never added to the others.
    Psys,
}

/// How a component's energy was measured, as written in the `*_method` columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// RAPL energy counters (powercap).
    Rapl,
    /// CPU utilisation times the CPU's TDP.
    LoadTdp,
    /// A model of memory in use.
    Model,
    /// A power the user fixed.
    Constant,
    /// Counted in the CPU figure (RAPL `psys` preferred: it covers the whole platform).
    InCpu,
    /// A GPU's energy counter (NVML's, any vendor's), as deltas.
    GpuCounter,
    /// A GPU's power, polled and integrated by the trapezoid.
    GpuPolled,
    /// Different methods on different devices, or one after the other.
    Mixed,
    /// Measured by another rank of the distributed job (in its row and the job's).
    OtherRank,
    /// Found, but reports neither energy nor power: its energy is unknown, never a measured 0.
    Unmeasured,
    /// Not measured.
    None,
}

impl Method {
    /// The name written in the CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rapl => "rapl",
            Self::LoadTdp => "load_tdp",
            Self::Model => "model",
            Self::Constant => "constant",
            Self::InCpu => "in_cpu",
            Self::OtherRank => "other_rank",
            Self::GpuCounter => "counter",
            Self::GpuPolled => "polled",
            Self::Mixed => "mixed",
            Self::Unmeasured => "unmeasured",
            Self::None => "none",
        }
    }
}

impl Method {
    /// The method of a window measured by `self` at its start and `other` at its end, or of two
    /// devices measured side by side: the one method when they agree, `mixed` when not; `none`
    /// yields to the other.
    #[must_use]
    pub fn join(self, other: Self) -> Self {
        match (self, other) {
            (a, Self::None) => a,
            (Self::None, b) => b,
            (a, b) if a == b => a,
            _ => Self::Mixed,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a channel reports on each read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ChannelKind {
    /// A counter in µJ that wraps to zero on reaching `max_energy_range_uj`.
    Counter {
        /// The counter's modulus.
        max_energy_range_uj: u64,
        /// Highest power the zone can draw, if the hardware says: bounds a plausible wrap and
        /// sets how often the counter must be read.
        max_power_uw: Option<u64>,
    },
    /// A power in W.
    Power(PowerKind),
}

/// One measured quantity of a sensor: a RAPL zone, a power model.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// A name unique within the tracker (`package-0`, `dram-0`, `cpu-load`).
    pub name: String,
    /// What the energy is attributed to.
    pub component: Component,
    /// How it is measured.
    pub method: Method,
    /// Counter or power.
    pub kind: ChannelKind,
}

/// Why a channel gave no reading: the channel is then left out for the rest of the run, its
/// energy so far kept (the meter says so once, and falls back where it can).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SensorFault {
    /// Failed `failures` reads in a row, the last for `last`: given up.
    #[error("{channel}: {failures} failed reads in a row (last: {last})")]
    GivenUp {
        /// The channel as the warning names it (`RAPL zone package-0`).
        channel: String,
        /// The failures in a row that gave it up.
        failures: u32,
        /// What the last read said.
        last: String,
    },
    /// Read again after it was given up.
    #[error("{channel} stopped answering")]
    Stopped {
        /// The channel as the warning names it.
        channel: String,
    },
}

/// A source of readings.
pub trait Sensor: Send {
    /// The channels this sensor reports, in the order [`Sensor::read`] returns them.
    fn channels(&self) -> Vec<Channel>;

    /// Reads every channel; a failed channel gives its fault and is not read again.
    fn read(&mut self, host: &HostSample) -> Vec<Result<Reading, SensorFault>>;

    /// Problems the sensor worked around since the last call (the sampler never logs: the
    /// meter hands these to the next window edge, each once).
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
}
