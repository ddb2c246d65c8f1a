//! What every GPU backend gives the accounting: the devices it found, what each can report, and
//! one typed read per device. Nothing here knows a vendor library.

use std::collections::HashSet;
use std::fmt;

/// Who made a device, and so which backend reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vendor {
    /// NVIDIA, through NVML.
    Nvidia,
    /// AMD (amd-smi, or amdgpu's hwmon).
    Amd,
    /// Intel (xe / i915 hwmon).
    Intel,
    /// Apple Silicon's integrated GPU (IOReport).
    Apple,
}

impl Vendor {
    /// The lowercase name (`nvidia`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nvidia => "nvidia",
            Self::Amd => "amd",
            Self::Intel => "intel",
            Self::Apple => "apple",
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Static facts of one measured device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// Who made it.
    pub vendor: Vendor,
    /// The vendor library's index (NVML's for NVIDIA): unique within one vendor only.
    pub index: u32,
    /// The vendor's stable id (`GPU-...` for NVIDIA): what tells two backends' devices apart.
    pub uuid: String,
    /// Product name.
    pub name: String,
    /// PCI address as `dddd:bb:dd.f` (lowercase, four-digit domain), where the backend knows
    /// it: how two backends' views of one card are told to be the same device.
    pub pci_bus_id: Option<String>,
}

impl GpuInfo {
    /// Whether `other` is this device seen through another backend: same UUID, or same PCI
    /// address.
    pub fn same_device(&self, other: &Self) -> bool {
        self.uuid == other.uuid
            || self
                .pci_bus_id
                .as_ref()
                .is_some_and(|id| other.pci_bus_id.as_ref() == Some(id))
    }
}

/// `domain:bus:device.function` in one spelling (`0000:03:00.0`), whichever way a library
/// writes it: NVML pads the domain to eight digits and uses capitals, sysfs uses four.
pub fn normalize_pci_bus_id(text: &str) -> Option<String> {
    let text = text.trim().trim_end_matches('\0');
    let (domain, rest) = text.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (device, function) = rest.split_once('.')?;
    let domain = u32::from_str_radix(domain, 16).ok()?;
    let bus = u8::from_str_radix(bus, 16).ok()?;
    let device = u8::from_str_radix(device, 16).ok()?;
    let function = u8::from_str_radix(function, 16).ok()?;
    Some(format!("{domain:04x}:{bus:02x}:{device:02x}.{function:x}"))
}

/// Why one quantity of one device could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuFault {
    /// The device stopped answering (fell off the bus, reset, driver gone).
    #[error("the GPU fell off the bus ({library}: GPU is lost)")]
    Lost {
        /// The library that said so (`NVML`).
        library: &'static str,
    },
    /// The device does not report this quantity.
    #[error("not supported by this device")]
    NotSupported,
    /// Any other failure, in the library's words.
    #[error("{0}")]
    Other(String),
}

/// One device a backend found, and what it reported at discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuDevice {
    /// Which device.
    pub info: GpuInfo,
    /// It has a monotonic energy counter.
    pub has_energy_counter: bool,
    /// It reports its power.
    pub has_power: bool,
}

/// One read of one device. A quantity not asked for is `None`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceRead {
    /// Energy counter, µJ since the driver loaded (64 bits: never wraps in practice; a step
    /// back is a reset, which the integrator owns).
    pub energy_uj: Option<Result<u64, GpuFault>>,
    /// Power, W.
    pub power_w: Option<Result<f64, GpuFault>>,
    /// Share (0 to 1) of the last sample period with a kernel running, where reported.
    pub utilization: Option<f64>,
}

/// What the accounting asks of one device on one read. A quantity that failed once is not
/// asked again, and nothing is asked of a lost device: the sticky faults live in the
/// accounting, so a backend keeps no fault state of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "three independent questions to one device"
)]
pub struct Wanted {
    /// Read the energy counter.
    pub energy: bool,
    /// Read the power.
    pub power: bool,
    /// Read the utilisation (the device answers at all).
    pub utilization: bool,
}

/// One vendor's devices: found by the backend's `discover`, then read one device at a time.
///
/// Reads run on the sampler thread (10 Hz while power is polled), so they must be bounded and
/// never block on anything but the device.
pub trait GpuBackend: Send {
    /// The selected devices, in the order [`GpuBackend::read`] numbers them.
    fn devices(&self) -> &[GpuDevice];

    /// Reads what `wanted` asks of device `position` once, power first (the reading whose
    /// timing matters).
    fn read(&mut self, position: usize, wanted: Wanted) -> DeviceRead;

    /// Whether any of `pids` holds a context on device `position`, for process mode; a backend
    /// that cannot tell answers `false`, so its devices are not counted in that mode.
    fn runs_any(&self, position: usize, pids: &HashSet<u32>) -> bool;

    /// Why this backend cannot tell which processes use its devices at all (a driver without
    /// the queries), if so: process mode then counts its devices whole and says so once.
    fn process_queries_missing(&self) -> Option<String> {
        None
    }
}

/// What one backend's discovery found.
pub enum Discovery {
    /// No usable library or driver, or no device selected: one line says why.
    Absent(String),
    /// At least one selected device.
    Found(Box<dyn GpuBackend>),
}
