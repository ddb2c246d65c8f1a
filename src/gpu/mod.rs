//! GPU energy per device, for every vendor: which devices, which reading counts, the
//! cross-check, utilisation, and what a window's row says about GPUs.
//!
//! Backends ([`nvml`], [`amdsmi`], [`hwmon`], [`apple`]) only enumerate devices and read them
//! ([`GpuBackend`], one typed [`DeviceRead`] per device, energy in µJ). The policy lives here,
//! once: which devices are measured and which an earlier backend already claimed
//! ([`select::choose`]), and the sticky faults (a quantity that failed once is never asked
//! again, a lost device is asked nothing: [`Wanted`]). This file never asks which vendor a
//! reading came from.
//!
//! Per device, the energy counter counts when the device has one (exact to the backend's
//! resolution over any window); otherwise the polled power, integrated by the trapezoid. When a
//! device has both, the polled power is integrated too but never added: it only cross-checks
//! the counter, and one warning per device says so when the two disagree by more than
//! [`CROSS_CHECK_RELATIVE`] and [`CROSS_CHECK_FLOOR_W`] over a stretch of at least
//! [`CROSS_CHECK_WINDOW_S`]. A counter that fails mid-run hands over to the polled power; a
//! device that fails entirely keeps its energy so far.
//!
//! Adding a vendor: write a `discover` of type [`Discover`] that loads the library (its path a
//! [`GpuConfig`] field, the seam for a stand-in `.so` or a fake sysfs tree), enumerates its
//! devices, keeps those [`select::choose`] returns (its [`select::Naming`] says which settings
//! name them), and returns a [`GpuBackend`] that reads what [`Wanted`] asks, faults as
//! [`GpuFault`]s; then add it to [`BACKENDS`]. Nothing else changes.

mod account;
pub mod amdsmi;
pub mod apple;
mod device;
pub mod hwmon;
pub mod nvml;
pub mod select;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

pub use device::{
    DeviceRead, Discovery, GpuBackend, GpuDevice, GpuFault, GpuInfo, Vendor, Wanted,
    normalize_pci_bus_id,
};

use crate::integrator::CounterSpec;
use crate::sensors::{Method, TrackingMode};
use account::DeviceAccount;

/// Seconds between power polls unless `gpu_poll_secs` says otherwise: NVML refreshes power
/// every 20 to 100 ms, so reading more often sees the same value again.
pub const DEFAULT_GPU_POLL_S: f64 = 0.1;

/// Highest power one GPU could draw, in W: bounds a plausible counter step, so a counter that
/// goes backwards (driver reload) counts as a reset, never as a wrap.
pub const ASSUMED_GPU_PEAK_W: u64 = 5_000;

/// What a GPU's energy counter promises: µJ since the driver loaded in 64 bits, so it never
/// wraps and a step back is a reset; a vendor library's forward steps are trusted.
pub(crate) const GPU_COUNTER: CounterSpec = CounterSpec {
    max_energy_range_uj: u64::MAX,
    max_power_uw: Some(ASSUMED_GPU_PEAK_W * 1_000_000),
    refuse_jumps: false,
};

/// How to find and choose GPUs.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuConfig {
    /// The NVML library to load; `None` is the system's [`nvml::DEFAULT_NVML_LIBRARY`].
    pub nvml_library: Option<PathBuf>,
    /// `gpu_ids`: NVML indexes or UUIDs. Wins over `CUDA_VISIBLE_DEVICES`.
    pub gpu_ids: Option<Vec<String>>,
    /// `CUDA_VISIBLE_DEVICES` as the process sees it (`Some("")` means no GPU).
    pub cuda_visible_devices: Option<String>,
    /// Seconds between power polls.
    pub poll_interval_s: f64,
    /// The amd-smi library to load; `None` is the system's [`amdsmi::DEFAULT_AMDSMI_LIBRARY`].
    pub amdsmi_library: Option<PathBuf>,
    /// `ROCR_VISIBLE_DEVICES` as the process sees it: applied first, as ROCm does.
    pub rocr_visible_devices: Option<String>,
    /// `HIP_VISIBLE_DEVICES`: positions among the devices `ROCR_VISIBLE_DEVICES` left.
    pub hip_visible_devices: Option<String>,
    /// Where the kernel's hwmon devices are (`/sys/class/hwmon`): Intel xe / i915 cards, amdgpu
    /// without amd-smi, Jetson ina3221 rails.
    pub hwmon_root: PathBuf,
    /// Shortest stretch, in seconds, over which counter and polled energy are compared.
    pub cross_check_window_s: f64,
    /// The IOReport library (Apple Silicon), for the GPU and for the CPU and DRAM sensor;
    /// `None` is the system's on macOS and none elsewhere.
    pub ioreport_library: Option<PathBuf>,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            nvml_library: None,
            gpu_ids: None,
            cuda_visible_devices: None,
            poll_interval_s: DEFAULT_GPU_POLL_S,
            amdsmi_library: None,
            rocr_visible_devices: None,
            hip_visible_devices: None,
            hwmon_root: PathBuf::from(hwmon::DEFAULT_HWMON_ROOT),
            cross_check_window_s: CROSS_CHECK_WINDOW_S,
            ioreport_library: None,
        }
    }
}

/// Vendor libraries the dynamic loader could not open in this process, with its error: a
/// machine without a vendor's driver does not search the loader's path for it on every run's
/// start. A library opened is not remembered (each run loads and shuts down its own).
static UNOPENED: crate::runtime::ProcessLock<Vec<(std::ffi::OsString, String)>> =
    crate::runtime::ProcessLock::new(Vec::new());

/// Why the library at `path` could not be opened, if an earlier run of the process found so.
pub(crate) fn unopened(path: &std::ffi::OsStr) -> Option<String> {
    UNOPENED
        .lock()
        .iter()
        .find(|(known, _)| known == path)
        .map(|(_, error)| error.clone())
}

/// Remembers that the library at `path` could not be opened, and why.
pub(crate) fn remember_unopened(path: &std::ffi::OsStr, error: &str) {
    let mut unopened = UNOPENED.lock();
    if !unopened.iter().any(|(known, _)| known == path) {
        unopened.push((path.to_owned(), error.to_owned()));
    }
}

/// A backend's discovery: the settings, the devices earlier backends found (handed to
/// [`select::choose`], so a device two interfaces can see is counted once), and where
/// selection warnings go.
pub type Discover = fn(&GpuConfig, &[GpuDevice], &mut Vec<String>) -> Discovery;

/// Every backend, tried in this order; a device found by one is left out by the later ones,
/// unless it was found unmeasured and a later one measures it (a Jetson's GPU: NVML finds it,
/// its ina3221 rail measures it).
pub const BACKENDS: &[Discover] = &[
    nvml::discover,
    amdsmi::discover,
    hwmon::discover,
    apple::discover,
];

/// Shortest stretch, in seconds, over which counter and polled energy are compared.
pub const CROSS_CHECK_WINDOW_S: f64 = 10.0;

/// Counter and polled energy disagree when they differ by more than this share of the counter's
/// figure: NVML states its power readings to +/-5 %, newer GPUs report a 1 s average, and on
/// A100/H100 the power is sampled only about a quarter of the time (Yang et al., SC24).
pub const CROSS_CHECK_RELATIVE: f64 = 0.10;

/// ... and by more than this mean power over the stretch, in W, so an idle GPU's few joules never
/// warn.
pub const CROSS_CHECK_FLOOR_W: f64 = 5.0;

/// In process mode, how often a GPU not yet running this process tree is checked, in seconds.
const PROCESS_CHECK_S: f64 = 1.0;

/// Cumulative totals of one device at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuDeviceTotals {
    /// Energy counted since the meter started, J.
    pub energy_j: f64,
    /// ∫ utilisation (0 to 1) dt over the time utilisation was read, s.
    pub busy_s: f64,
    /// Time covered by utilisation readings, s.
    pub utilization_s: f64,
    /// How the device is measured at this instant (`None` before it counts or after it failed).
    pub method: Method,
    /// The last method it was measured by, for a window in which it both started and failed.
    pub last_method: Method,
    /// Worst-case error of the polled energy so far, J: per poll interval, |change of power| x
    /// interval / 2, the most a trapezoid can miss when the power steps once between two polls.
    pub sampling_bound_j: f64,
}

/// Cumulative GPU totals at one instant.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GpuTotals {
    /// When the GPUs were read, in seconds on the meter's clock (a hair after the snapshot's own
    /// time: polled power is integrated against the GPU read times).
    pub t_s: f64,
    /// The measured devices, in the order of `devices`.
    pub info: Arc<[GpuInfo]>,
    /// Their totals.
    pub devices: Vec<GpuDeviceTotals>,
}

impl GpuTotals {
    /// Energy of every device, J.
    pub fn energy_j(&self) -> f64 {
        self.devices.iter().map(|d| d.energy_j).sum()
    }

    /// What happened between `start` and these totals.
    pub fn since(&self, start: &Self) -> GpuInterval {
        let mut devices = Vec::new();
        let mut busy_s = 0.0;
        let mut covered_s = 0.0;
        for ((info, end), begin) in self.info.iter().zip(&self.devices).zip(&start.devices) {
            let energy_j = (end.energy_j - begin.energy_j).max(0.0);
            let mut method = begin.method.join(end.method);
            if method == Method::None && energy_j > 0.0 {
                // Started counting and failed within the window.
                method = end.last_method;
            }
            busy_s += (end.busy_s - begin.busy_s).max(0.0);
            covered_s += (end.utilization_s - begin.utilization_s).max(0.0);
            devices.push(GpuDeviceInterval {
                info: info.clone(),
                energy_j,
                method,
                sampling_bound_j: (end.sampling_bound_j - begin.sampling_bound_j).max(0.0),
            });
        }
        GpuInterval {
            devices,
            utilization_percent: if covered_s > 0.0 {
                100.0 * busy_s / covered_s
            } else {
                0.0
            },
        }
    }
}

/// One device over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuDeviceInterval {
    /// Which device.
    pub info: GpuInfo,
    /// Energy, J.
    pub energy_j: f64,
    /// How it was measured.
    pub method: Method,
    /// Worst-case error of its polled energy over the window, J (see [`GpuDeviceTotals`]).
    pub sampling_bound_j: f64,
}

/// The `gpu_model` column from the names of the GPUs measured, in a rank's row and a job's
/// alike: each name with its count, in order of appearance (`2 x NVIDIA A100-SXM4-40GB`,
/// CodeCarbon's form), so the counts add up to `gpu_count`.
pub fn model_of<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut counted: Vec<(&str, usize)> = Vec::new();
    for name in names {
        match counted.iter_mut().find(|(known, _)| *known == name) {
            Some((_, count)) => *count += 1,
            None => counted.push((name, 1)),
        }
    }
    counted
        .iter()
        .map(|(name, count)| format!("{count} x {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// GPUs over a window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GpuInterval {
    /// Every selected device, measured or not.
    pub devices: Vec<GpuDeviceInterval>,
    /// Time-weighted mean utilisation over the devices that report it, percent.
    pub utilization_percent: f64,
}

impl GpuInterval {
    fn measured(&self) -> impl Iterator<Item = &GpuDeviceInterval> {
        self.devices.iter().filter(|d| d.method.is_measured())
    }

    /// Devices measured in the window (CodeCarbon's `gpu_count`).
    pub fn count(&self) -> u32 {
        u32::try_from(self.measured().count()).unwrap_or(u32::MAX)
    }

    /// CodeCarbon's `gpu_model` of the window: see [`model_of`].
    pub fn model(&self) -> String {
        model_of(self.measured().map(|d| d.info.name.as_str()))
    }

    /// The window's `gpu_method`: that of every device when they agree, `mixed` when they do
    /// not (one measured and one `unmeasured` is `mixed`: `gpu_devices` says which), `none` when
    /// no device was found.
    pub fn method(&self) -> Method {
        self.devices
            .iter()
            .map(|d| d.method)
            .fold(Method::None, Method::join)
    }

    /// The `gpu_devices` column: a JSON list of {vendor, index, uuid, name, energy_kwh,
    /// method}, energy times `pue` as in `gpu_energy`, `null` for an `unmeasured` device.
    pub fn breakdown_json(&self, pue: f64) -> String {
        let list: Vec<serde_json::Value> = self
            .devices
            .iter()
            .map(|d| {
                let energy_kwh = (d.method != Method::Unmeasured)
                    .then(|| crate::carbon::kwh_at_pue(d.energy_j, pue));
                serde_json::json!({
                    "vendor": d.info.vendor.as_str(),
                    "index": d.info.index,
                    "uuid": d.info.uuid,
                    "name": d.info.name,
                    "energy_kwh": energy_kwh,
                    "method": d.method.as_str(),
                })
            })
            .collect();
        serde_json::Value::Array(list).to_string()
    }
}

/// One backend and the accounts of its devices, in its read order.
struct BackendAccounts {
    backend: Box<dyn GpuBackend>,
    accounts: Vec<DeviceAccount>,
}

/// The GPUs of one meter and their running totals.
pub struct GpuMeter {
    backends: Vec<BackendAccounts>,
    /// Every backend's devices, in backend order, then each backend's read order.
    info: Arc<[GpuInfo]>,
    poll_interval_s: f64,
    cross_check_window_s: f64,
    process_mode: bool,
    last_process_check_s: Option<f64>,
    method: Method,
}

impl GpuMeter {
    /// Runs every backend's discovery for `config`; never fails: no GPU is a meter with no
    /// devices (one debug line per backend says why).
    pub fn discover(config: &GpuConfig, mode: TrackingMode, warnings: &mut Vec<String>) -> Self {
        Self::discover_with(BACKENDS, config, mode, warnings)
    }

    /// [`GpuMeter::discover`] with these backends, in this order (tests mix real backends on
    /// several stand-in libraries this way).
    pub fn discover_with<F: Fn(&GpuConfig, &[GpuDevice], &mut Vec<String>) -> Discovery>(
        backends: &[F],
        config: &GpuConfig,
        mode: TrackingMode,
        warnings: &mut Vec<String>,
    ) -> Self {
        let process_mode = mode == TrackingMode::Process;
        let mut claimed: Vec<GpuDevice> = Vec::new();
        let mut found: Vec<BackendAccounts> = Vec::new();
        for discover in backends {
            match discover(config, &claimed, warnings) {
                Discovery::Found(backend) => {
                    for device in backend.devices() {
                        if device.has_energy_counter || device.has_power {
                            // An earlier backend's unmeasured view of this device gives way.
                            for earlier in found
                                .iter_mut()
                                .flat_map(|b| b.backend.devices().iter().zip(b.accounts.iter_mut()))
                            {
                                if !earlier.1.measurable && earlier.0.info.same_device(&device.info)
                                {
                                    earlier.1.superseded = true;
                                }
                            }
                        }
                    }
                    let blind = process_mode
                        && backend.process_queries_missing().is_some_and(|reason| {
                            warnings.push(format!(
                                "{reason}: process mode cannot tell which GPUs this process \
                                 tree uses, so the selected GPUs are counted whole (in a \
                                 distributed job, each by one rank)"
                            ));
                            true
                        });
                    let accounts = backend
                        .devices()
                        .iter()
                        .map(|device| DeviceAccount::new(device, !process_mode || blind))
                        .collect();
                    claimed.extend(backend.devices().iter().cloned());
                    found.push(BackendAccounts { backend, accounts });
                }
                Discovery::Absent(line) => log::debug!("{line}"),
            }
        }
        let mut info: Vec<GpuInfo> = Vec::new();
        for b in &found {
            for (device, account) in b.backend.devices().iter().zip(&b.accounts) {
                if account.superseded {
                    continue;
                }
                if !account.measurable {
                    // The one warning of a device that would otherwise read 0.
                    warnings.push(format!(
                        "{} GPU {} ({}) reports neither energy nor power: not measured; its rows \
                         say gpu_method=unmeasured and its energy is left out, not counted as 0",
                        device.info.vendor, device.info.index, device.info.name
                    ));
                }
                info.push(device.info.clone());
            }
        }
        let method = found
            .iter()
            .flat_map(|b| &b.accounts)
            .filter(|a| !a.superseded)
            .map(DeviceAccount::discovered_method)
            .fold(Method::None, Method::join);
        Self {
            backends: found,
            info: info.into(),
            poll_interval_s: config.poll_interval_s,
            cross_check_window_s: config.cross_check_window_s,
            process_mode,
            last_process_check_s: None,
            method,
        }
    }

    /// The method over all devices, as discovered.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The devices measured.
    pub fn devices(&self) -> &[GpuInfo] {
        &self.info
    }

    fn accounts(&self) -> impl Iterator<Item = &DeviceAccount> {
        self.backends
            .iter()
            .flat_map(|b| &b.accounts)
            .filter(|a| !a.superseded)
    }

    /// Longest time between reads that keeps polled power accurate, in seconds: the poll
    /// interval when any device's power is read, else infinite.
    pub fn poll_interval_s(&self) -> f64 {
        if self.accounts().any(DeviceAccount::power_alive) {
            self.poll_interval_s
        } else {
            f64::INFINITY
        }
    }

    /// Reads every device at `t_s` / `t_us` (the meter's clock) and returns the totals;
    /// `warn` gets each fault and disagreement (the meter says each once).
    pub fn read(&mut self, t_s: f64, t_us: u64, warn: &mut dyn FnMut(String)) -> GpuTotals {
        if self.backends.is_empty() {
            return GpuTotals::default();
        }
        if self.process_mode && self.accounts().any(|a| !a.attached) {
            self.attach_process_devices(t_s);
        }
        let mut infos = self.info.iter();
        for BackendAccounts { backend, accounts } in &mut self.backends {
            for (position, account) in accounts.iter_mut().enumerate() {
                if account.superseded {
                    continue;
                }
                let Some(info) = infos.next() else { break };
                if account.attached {
                    let read = account.read_from(backend.as_mut(), position);
                    account.apply(info, read, (t_s, t_us), self.cross_check_window_s, warn);
                }
            }
        }
        GpuTotals {
            t_s,
            info: Arc::clone(&self.info),
            devices: self
                .accounts()
                .map(|a| GpuDeviceTotals {
                    energy_j: a.energy_j(),
                    busy_s: a.busy_s,
                    utilization_s: a.utilization_s,
                    method: a.method(),
                    last_method: a.last_method,
                    sampling_bound_j: a.sampling_bound_j,
                })
                .collect(),
        }
    }

    /// In process mode, marks the devices that now run one of this process tree's PIDs;
    /// checked at most every [`PROCESS_CHECK_S`]. A device stays counted once it ran the tree.
    fn attach_process_devices(&mut self, t_s: f64) {
        if self
            .last_process_check_s
            .is_some_and(|last| t_s - last < PROCESS_CHECK_S)
        {
            return;
        }
        self.last_process_check_s = Some(t_s);
        let pids: HashSet<u32> = crate::sensors::host::process_tree_pids()
            .into_iter()
            .collect();
        for BackendAccounts { backend, accounts } in &mut self.backends {
            for (position, account) in accounts.iter_mut().enumerate() {
                if !account.attached && backend.runs_any(position, &pids) {
                    account.attached = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An NVIDIA GPU at `index` named `name`; the accounting tests share it.
    pub(super) fn info(index: u32, name: &str) -> GpuInfo {
        GpuInfo {
            vendor: Vendor::Nvidia,
            index,
            uuid: format!("GPU-{index}"),
            name: name.to_owned(),
            pci_bus_id: None,
        }
    }

    fn device(index: u32, name: &str, energy_j: f64, method: Method) -> GpuDeviceInterval {
        GpuDeviceInterval {
            info: info(index, name),
            energy_j,
            method,
            sampling_bound_j: 0.0,
        }
    }

    #[test]
    fn window_method_names_the_methods_used() {
        assert_eq!(Method::GpuCounter.join(Method::None), Method::GpuCounter);
        assert_eq!(Method::GpuCounter.join(Method::GpuPolled), Method::Mixed);
        assert_eq!(Method::None.join(Method::GpuPolled), Method::GpuPolled);
        let interval = GpuInterval {
            devices: vec![
                device(0, "A100", 1.0, Method::GpuCounter),
                device(1, "A100", 1.0, Method::GpuPolled),
                device(2, "T4", 0.0, Method::None),
            ],
            utilization_percent: 0.0,
        };
        assert_eq!(interval.method(), Method::Mixed);
        assert_eq!(interval.count(), 2);
        assert_eq!(interval.model(), "2 x A100");
        assert_eq!(GpuInterval::default().method(), Method::None);
    }

    #[test]
    fn breakdown_is_json_with_pue_applied() {
        let interval = GpuInterval {
            devices: vec![device(3, "H100", 3.6e6, Method::GpuCounter)],
            utilization_percent: 0.0,
        };
        let parsed: serde_json::Value =
            serde_json::from_str(&interval.breakdown_json(1.5)).expect("json");
        assert_eq!(parsed[0]["index"], 3);
        assert_eq!(parsed[0]["uuid"], "GPU-3");
        assert_eq!(parsed[0]["method"], "counter");
        assert!((parsed[0]["energy_kwh"].as_f64().expect("number") - 1.5).abs() < 1e-12);
    }
}
