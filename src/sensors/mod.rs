//! Where CPU and RAM energy come from: one file per source behind the [`Sensor`] trait, and
//! [`plan`], the pure choice of which sources run.
//!
//! A sensor enumerates its channels and reads them: per channel, either an energy counter in
//! µJ or a power in W. The meter runs the sources the plan chose and turns their readings into
//! cumulative energy with the integrator, which alone judges wraps and faults. Every hardware root (powercap folder,
//! procfs through sysinfo, the IOReport library) is a constructor argument so tests run the real code on fake trees.
//! GPUs are not sensors of this kind: `crate::gpu` reads them per device, and uses [`Method`].

pub mod cf;
pub mod constant;
pub mod cpu_load;
pub mod emi;
pub mod grace;
pub mod host;
pub mod ioreport;
pub mod plan;
pub mod platform;
// `/proc` is Linux's: elsewhere, and in the portable build, sysinfo's system-wide figures.
#[cfg_attr(
    any(carbonmeter_portable, not(target_os = "linux")),
    path = "procfs_portable.rs"
)]
pub mod procfs;
pub mod ram;
pub mod rapl;
pub mod win32;

use std::fmt;

pub use crate::integrator::Reading;
use crate::integrator::{CounterSpec, PowerKind};
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
    /// [`Method::LoadTdp`] over a window shorter than one tick of the CPU time counters: the
    /// figure is whole ticks (possibly none), the band spans their rounding.
    LoadTdpShort,
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
    /// Apple Silicon's IOReport "Energy Model" channels.
    IoReport,
    /// Windows' Energy Meter Interface (the RAPL counters, read without admin rights).
    Emi,
    /// ACPI power meters through hwmon, polled (NVIDIA Grace).
    Hwmon,
}

impl Method {
    /// Every method, in the enum's order (`_core.METHODS` lists them so, with what each means).
    pub const ALL: [Self; 15] = [
        Self::Rapl,
        Self::LoadTdp,
        Self::LoadTdpShort,
        Self::Model,
        Self::Constant,
        Self::InCpu,
        Self::GpuCounter,
        Self::GpuPolled,
        Self::Mixed,
        Self::OtherRank,
        Self::Unmeasured,
        Self::None,
        Self::IoReport,
        Self::Emi,
        Self::Hwmon,
    ];

    /// The method written as `name` in a row's `*_method` column.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|method| method.as_str() == name)
    }

    /// Whether a part measured by this method has a figure of its own: not `none`, not
    /// `unmeasured` (a GPU found that reports neither energy nor power).
    pub fn is_measured(self) -> bool {
        !matches!(self, Self::None | Self::Unmeasured)
    }

    /// The name written in the CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rapl => "rapl",
            Self::LoadTdp => "load_tdp",
            Self::LoadTdpShort => "load_tdp_short",
            Self::Model => "model",
            Self::Constant => "constant",
            Self::InCpu => "in_cpu",
            Self::OtherRank => "other_rank",
            Self::GpuCounter => "counter",
            Self::GpuPolled => "polled",
            Self::Mixed => "mixed",
            Self::Unmeasured => "unmeasured",
            Self::None => "none",
            Self::IoReport => "ioreport",
            Self::Emi => "emi",
            Self::Hwmon => "hwmon",
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
    /// A counter in µJ, read raw: the integrator judges its wraps, resets and steps.
    Counter {
        /// What the counter promises (its range, the power that bounds a plausible step).
        spec: CounterSpec,
        /// Failed or refused reads in a row after which the channel is given up.
        give_up_after: u32,
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

impl Channel {
    /// The channel as warnings name it (`RAPL zone package-0`, `cpu-load`).
    pub fn label(&self) -> String {
        match self.method {
            Method::Rapl => format!("RAPL zone {}", self.name),
            _ => self.name.clone(),
        }
    }
}

/// Why a channel gave no reading. How many of these a channel gets before it is left out is the
/// integrator's [`crate::integrator::EnergyTrack`]'s to say, not the sensor's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SensorFault {
    /// The read failed, in the source's words.
    #[error("{0}")]
    Read(String),
    /// The meter stopped counting the channel: it was not read.
    #[error("not read: stopped")]
    Stopped,
}

/// A source of CPU or RAM energy: it enumerates its channels and reads them, nothing else
/// (which sources run is [`plan`]'s choice; wraps, implausible readings and how many failures
/// a channel gets are the integrator's).
pub trait Sensor: Send {
    /// The channels this sensor reports, in the order [`Sensor::read`] returns them.
    fn channels(&self) -> Vec<Channel>;

    /// Reads every channel once: a counter in µJ as the hardware gives it, or a power in W.
    fn read(&mut self, host: &HostSample) -> Vec<Result<Reading, SensorFault>>;

    /// The meter stopped counting channel `channel` (given up, or replaced by a fallback): it
    /// need not be read again.
    fn stop(&mut self, _channel: usize) {}
}

/// Folders of sysfs classes (`/sys/class/powercap`, `/sys/class/hwmon`) found missing in this
/// process: a kernel without the class does not grow it between two runs here, so every later
/// discovery skips the failed `open` (two per `start()` on a machine with neither). A class
/// that appears later (a module loaded mid-process) is seen by the next process.
static MISSING_CLASSES: crate::runtime::ProcessLock<Vec<std::path::PathBuf>> =
    crate::runtime::ProcessLock::new(Vec::new());

/// The entries of the sysfs class folder `root`; `None` where it cannot be listed, at once
/// (no system call) where it was found missing before in this process.
pub(crate) fn class_entries(root: &std::path::Path) -> Option<std::fs::ReadDir> {
    if MISSING_CLASSES.lock().iter().any(|missing| missing == root) {
        return None;
    }
    match std::fs::read_dir(root) {
        Ok(entries) => Some(entries),
        Err(err) => {
            if err.kind() == std::io::ErrorKind::NotFound {
                MISSING_CLASSES.lock().push(root.to_path_buf());
            }
            None
        }
    }
}
