//! NVIDIA GPUs through NVML (`nvml-wrapper`), loaded at run time from a path that is a seam.
//!
//! Each selected device reports, when it can, its energy counter
//! (`nvmlDeviceGetTotalEnergyConsumption`, mJ since the driver loaded: Volta and newer) as a
//! counter channel, and its power (`nvmlDeviceGetPowerUsage`, mW) as an instantaneous power
//! channel. Which of the two counts and which only cross-checks is decided by
//! [`crate::gpu::GpuMeter`]; this file only finds devices and reads them.
//!
//! Devices are chosen by `gpu_ids` (NVML indexes or UUIDs), else by `CUDA_VISIBLE_DEVICES`
//! (indexes, `GPU-` UUIDs or unique prefixes of them, `MIG-` UUIDs), else all of them. A MIG
//! instance is measured through its parent: NVML has no energy or power per instance.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::PathBuf;

use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;

use super::{Channel, ChannelKind, Component, HostSample, Method, Reading, Sensor};
use crate::integrator::PowerKind;

/// The library loaded when no path is given: the driver's, found by the dynamic loader.
pub const DEFAULT_NVML_LIBRARY: &str = "libnvidia-ml.so.1";

/// Seconds between power polls unless `gpu_poll_secs` says otherwise: NVML refreshes power
/// every 20 to 100 ms, so reading more often sees the same value again.
pub const DEFAULT_GPU_POLL_S: f64 = 0.1;

/// Highest power one GPU could draw, in W: bounds a plausible counter step, so a counter that
/// goes backwards (driver reload) counts as a reset, never as a wrap.
pub const ASSUMED_GPU_PEAK_W: u64 = 5_000;

/// How to find and choose GPUs.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuConfig {
    /// The NVML library to load; `None` is the system's [`DEFAULT_NVML_LIBRARY`].
    pub nvml_library: Option<PathBuf>,
    /// `gpu_ids`: NVML indexes or UUIDs. Wins over `CUDA_VISIBLE_DEVICES`.
    pub gpu_ids: Option<Vec<String>>,
    /// `CUDA_VISIBLE_DEVICES` as the process sees it (`Some("")` means no GPU).
    pub cuda_visible_devices: Option<String>,
    /// Seconds between power polls.
    pub poll_interval_s: f64,
    /// Shortest stretch, in seconds, over which counter and polled energy are compared.
    pub cross_check_window_s: f64,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            nvml_library: None,
            gpu_ids: None,
            cuda_visible_devices: None,
            poll_interval_s: DEFAULT_GPU_POLL_S,
            cross_check_window_s: crate::gpu::CROSS_CHECK_WINDOW_S,
        }
    }
}

/// Static facts of one measured device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// NVML index.
    pub index: u32,
    /// `GPU-...` UUID.
    pub uuid: String,
    /// Product name.
    pub name: String,
}

/// Whether a device reports one quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Not supported at discovery: no channel.
    Absent,
    /// Read on every read.
    Live,
    /// Failed once: its channel reports the failure and it is not read again.
    Dead,
}

/// One selected device and what it can report.
#[derive(Debug, Clone)]
struct Device {
    info: GpuInfo,
    counter: Source,
    power: Source,
    lost: bool,
    utilization: Option<f64>,
}

/// What NVML discovery found.
pub enum NvmlDiscovery {
    /// No usable library or driver, or no device selected: one line says why.
    Absent(String),
    /// At least one selected device.
    Found(NvmlSensor),
}

/// The selected GPUs of one NVML library, read as one sensor.
pub struct NvmlSensor {
    // Boxed: the library's table of entry points is 12 kB.
    nvml: Box<Nvml>,
    devices: Vec<Device>,
}

fn describe(err: &NvmlError) -> String {
    match err {
        NvmlError::GpuLost => "the GPU fell off the bus (NVML: GPU is lost)".to_owned(),
        NvmlError::NotSupported => "not supported by this device".to_owned(),
        other => other.to_string(),
    }
}

/// One entry of a device list, as CUDA parses `CUDA_VISIBLE_DEVICES`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DeviceId {
    Index(u32),
    Uuid(String),
    Mig(String),
}

fn parse_device_id(entry: &str) -> Option<DeviceId> {
    let entry = entry.trim();
    if let Ok(index) = entry.parse::<u32>() {
        return Some(DeviceId::Index(index));
    }
    if entry.starts_with("MIG-") {
        return Some(DeviceId::Mig(entry.to_owned()));
    }
    if entry.starts_with("GPU-") {
        return Some(DeviceId::Uuid(entry.to_owned()));
    }
    None
}

impl NvmlSensor {
    /// Loads NVML from `config.nvml_library` (or the system's) and selects devices.
    /// `warnings` gets one line per selection problem (an id that names no device, a MIG
    /// instance measured through its parent, a device that reports neither energy nor power).
    pub fn discover(config: &GpuConfig, warnings: &mut Vec<String>) -> NvmlDiscovery {
        if config.cuda_visible_devices.as_deref().map(str::trim) == Some("")
            && config.gpu_ids.is_none()
        {
            return NvmlDiscovery::Absent("CUDA_VISIBLE_DEVICES is empty: no GPU".to_owned());
        }
        let library = config
            .nvml_library
            .as_deref()
            .map_or_else(|| OsStr::new(DEFAULT_NVML_LIBRARY), |path| path.as_os_str());
        let nvml = match Nvml::builder().lib_path(library).init() {
            Ok(nvml) => nvml,
            Err(err) => {
                let line = format!(
                    "no NVIDIA GPU measured: NVML ({}) unavailable: {err}",
                    library.display()
                );
                if config.nvml_library.is_some() {
                    // The user named a library: not finding it is worth a warning.
                    warnings.push(line.clone());
                }
                return NvmlDiscovery::Absent(line);
            }
        };
        let count = match nvml.device_count() {
            Ok(count) => count,
            Err(err) => {
                return NvmlDiscovery::Absent(format!("NVML cannot count GPUs: {err}"));
            }
        };
        let mut all = Vec::new();
        let mut broken = Vec::new();
        for index in 0..count {
            let described = nvml
                .device_by_index(index)
                .and_then(|device| Ok((device.uuid()?, device.name()?)));
            match described {
                Ok((uuid, name)) => all.push(GpuInfo { index, uuid, name }),
                Err(err) => broken.push((index, describe(&err))),
            }
        }
        let chosen = select(&nvml, &all, &broken, config, warnings);
        let devices: Vec<Device> = chosen
            .into_iter()
            .filter_map(|info| {
                let device = nvml.device_by_index(info.index).ok()?;
                let has_counter = device.total_energy_consumption().is_ok();
                let has_power = device.power_usage().is_ok();
                if !has_counter && !has_power {
                    warnings.push(format!(
                        "GPU {} ({}) reports neither energy nor power through NVML: not measured",
                        info.index, info.name
                    ));
                }
                let source = |has| if has { Source::Live } else { Source::Absent };
                Some(Device {
                    info,
                    counter: source(has_counter),
                    power: source(has_power),
                    lost: false,
                    utilization: None,
                })
            })
            .collect();
        if devices.is_empty() {
            return NvmlDiscovery::Absent(format!(
                "NVML found {count} GPU(s), none selected for measurement"
            ));
        }
        NvmlDiscovery::Found(Self {
            nvml: Box::new(nvml),
            devices,
        })
    }

    /// The selected devices, in channel order.
    pub fn devices(&self) -> Vec<GpuInfo> {
        self.devices.iter().map(|d| d.info.clone()).collect()
    }

    /// Per device: (has an energy counter, has power), as found at discovery.
    pub fn capabilities(&self) -> Vec<(bool, bool)> {
        self.devices
            .iter()
            .map(|d| (d.counter != Source::Absent, d.power != Source::Absent))
            .collect()
    }

    /// GPU utilisation (0 to 1) per device at the last read, `None` where not reported.
    pub fn utilization(&self) -> Vec<Option<f64>> {
        self.devices.iter().map(|d| d.utilization).collect()
    }

    /// Whether any of `pids` holds a compute or graphics context on device `position`.
    pub fn runs_any(&self, position: usize, pids: &HashSet<u32>) -> bool {
        let Some(device) = self.devices.get(position) else {
            return false;
        };
        let Ok(handle) = self.nvml.device_by_index(device.info.index) else {
            return false;
        };
        let compute = handle.running_compute_processes().unwrap_or_default();
        let graphics = handle.running_graphics_processes().unwrap_or_default();
        compute
            .iter()
            .chain(graphics.iter())
            .any(|process| pids.contains(&process.pid))
    }
}

/// The devices `config` selects among `all`, in the order named, each once. `broken` are the
/// devices that did not answer at discovery, with why: warned about only when selected.
fn select(
    nvml: &Nvml,
    all: &[GpuInfo],
    broken: &[(u32, String)],
    config: &GpuConfig,
    warnings: &mut Vec<String>,
) -> Vec<GpuInfo> {
    let skipped = |index: u32, reason: &str| format!("GPU {index} skipped: {reason}");
    let (source, entries): (&str, Vec<String>) = if let Some(ids) = &config.gpu_ids {
        ("gpu_ids", ids.clone())
    } else if let Some(visible) = &config.cuda_visible_devices {
        (
            "CUDA_VISIBLE_DEVICES",
            visible.split(',').map(|s| s.trim().to_owned()).collect(),
        )
    } else {
        for (index, reason) in broken {
            warnings.push(skipped(*index, reason));
        }
        return all.to_vec();
    };
    let mut chosen: Vec<GpuInfo> = Vec::new();
    // MIG instances named, per parent GPU: one warning per parent.
    let mut instances: Vec<(u32, Vec<String>)> = Vec::new();
    for entry in entries {
        let found = parse_device_id(&entry).and_then(|id| resolve(nvml, all, &id));
        let Some((info, instance)) = found else {
            if let Some((index, reason)) = broken
                .iter()
                .find(|(index, _)| entry.parse::<u32>() == Ok(*index))
            {
                warnings.push(skipped(*index, reason));
                continue;
            }
            if entry.parse::<i64>().is_ok_and(|index| index < 0) {
                // `-1` is the usual way to hide every GPU from CUDA: not a mistake.
                break;
            }
            let known = all
                .iter()
                .map(|info| format!("{} ({})", info.index, info.uuid))
                .collect::<Vec<_>>()
                .join(", ");
            if source == "CUDA_VISIBLE_DEVICES" {
                // CUDA itself ignores an invalid entry and every entry after it.
                warnings.push(format!(
                    "CUDA_VISIBLE_DEVICES entry {entry:?} names no GPU: it and the entries \
                     after it are ignored, as CUDA does; GPUs: {known}"
                ));
                break;
            }
            warnings.push(format!(
                "gpu_ids entry {entry:?} names no GPU: ignored; expected an index or UUID \
                 among {known}"
            ));
            continue;
        };
        if let Some(instance) = instance {
            match instances.iter_mut().find(|(index, _)| *index == info.index) {
                Some((_, names)) => names.push(instance),
                None => instances.push((info.index, vec![instance])),
            }
        }
        if !chosen.iter().any(|c| c.index == info.index) {
            chosen.push(info);
        }
    }
    for (index, names) in instances {
        let uuid = all
            .iter()
            .find(|info| info.index == index)
            .map_or("", |info| info.uuid.as_str());
        warnings.push(format!(
            "{} {} MIG instance(s) of GPU {index} ({uuid}): NVML measures only the whole GPU, \
             so its energy includes every instance on it",
            names.join(", "),
            if names.len() == 1 { "is a" } else { "are" },
        ));
    }
    chosen
}

/// The physical GPU an id names, and the MIG instance's id when it names one.
fn resolve(nvml: &Nvml, all: &[GpuInfo], id: &DeviceId) -> Option<(GpuInfo, Option<String>)> {
    match id {
        DeviceId::Index(index) => all
            .iter()
            .find(|info| info.index == *index)
            .map(|info| (info.clone(), None)),
        DeviceId::Uuid(prefix) => {
            // CUDA accepts any unique prefix of a UUID.
            let mut matches = all.iter().filter(|info| info.uuid.starts_with(prefix));
            let first = matches.next()?;
            matches.next().is_none().then(|| (first.clone(), None))
        }
        DeviceId::Mig(uuid) => {
            let parent_index = if let Some(parent_uuid) = uuid
                .strip_prefix("MIG-")
                .filter(|rest| rest.starts_with("GPU-"))
            {
                // The CUDA 11.0 form MIG-GPU-<uuid>/<gi>/<ci> names the parent itself.
                let parent_uuid = parent_uuid.split('/').next().unwrap_or(parent_uuid);
                all.iter()
                    .find(|info| info.uuid == parent_uuid)
                    .map(|info| info.index)?
            } else {
                let instance = nvml.device_by_uuid(uuid.as_str()).ok()?;
                instance.mig_parent_device().ok()?.index().ok()?
            };
            let parent = all.iter().find(|info| info.index == parent_index)?.clone();
            Some((parent, Some(uuid.clone())))
        }
    }
}

/// Channel order per device: the counter (if any), then the power (if any).
impl Sensor for NvmlSensor {
    fn channels(&self) -> Vec<Channel> {
        let mut channels = Vec::new();
        for device in &self.devices {
            if device.counter != Source::Absent {
                channels.push(Channel {
                    name: format!("gpu-{}", device.info.index),
                    component: Component::Gpu,
                    method: Method::GpuCounter,
                    kind: ChannelKind::Counter {
                        // mJ since the driver loaded in a u64: it never wraps.
                        max_energy_range_uj: u64::MAX,
                        max_power_uw: Some(ASSUMED_GPU_PEAK_W * 1_000_000),
                    },
                });
            }
            if device.power != Source::Absent {
                channels.push(Channel {
                    name: format!("gpu-{}-power", device.info.index),
                    component: Component::Gpu,
                    method: Method::GpuPolled,
                    kind: ChannelKind::Power(PowerKind::Instantaneous),
                });
            }
        }
        channels
    }

    fn read(&mut self, _host: &HostSample) -> Vec<Result<Reading, String>> {
        let mut readings = Vec::new();
        for device in &mut self.devices {
            let label = format!("GPU {} ({})", device.info.index, device.info.name);
            let handle = if device.lost {
                Err(NvmlError::GpuLost)
            } else {
                self.nvml.device_by_index(device.info.index)
            };
            // Power first: it is the reading whose timing matters (the meter stamps the read).
            let power = query(device.power, &handle, |h| h.power_usage().map(u64::from));
            let counter = query(
                device.counter,
                &handle,
                nvml_wrapper::Device::total_energy_consumption,
            );
            device.utilization = handle
                .as_ref()
                .ok()
                .and_then(|h| h.utilization_rates().ok())
                .map(|u| f64::from(u.gpu.min(100)) / 100.0);
            let lost = matches!(handle, Err(NvmlError::GpuLost))
                || matches!(power, Some(Err(NvmlError::GpuLost)))
                || matches!(counter, Some(Err(NvmlError::GpuLost)));
            if let Some(reading) = counter {
                readings.push(match reading {
                    Ok(energy_mj) => Ok(Reading::EnergyUj(energy_mj.saturating_mul(1000))),
                    Err(err) => {
                        device.counter = Source::Dead;
                        Err(format!("{label}: energy counter: {}", describe(&err)))
                    }
                });
            }
            if let Some(reading) = power {
                readings.push(match reading {
                    Ok(power_mw) => Ok(Reading::PowerW(power_mw as f64 / 1000.0)),
                    Err(err) => {
                        device.power = Source::Dead;
                        Err(format!("{label}: power: {}", describe(&err)))
                    }
                });
            }
            device.lost |= lost;
        }
        readings
    }
}

/// One reading of a quantity the device reports (`None` when it has no channel for it).
fn query<'nvml>(
    source: Source,
    handle: &Result<nvml_wrapper::Device<'nvml>, NvmlError>,
    read: impl FnOnce(&nvml_wrapper::Device<'nvml>) -> Result<u64, NvmlError>,
) -> Option<Result<u64, NvmlError>> {
    (source != Source::Absent).then(|| match (source, handle) {
        (Source::Dead, _) => Err(NvmlError::NotSupported),
        (_, Ok(handle)) => read(handle),
        (_, Err(err)) => Err(clone_error(err)),
    })
}

/// The handle lookup's error, again (NvmlError is not Clone): only the kinds that matter here.
fn clone_error(err: &NvmlError) -> NvmlError {
    match err {
        NvmlError::GpuLost => NvmlError::GpuLost,
        NvmlError::NotSupported => NvmlError::NotSupported,
        NvmlError::NoPermission => NvmlError::NoPermission,
        NvmlError::InvalidArg => NvmlError::InvalidArg,
        _ => NvmlError::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_parse_as_cuda_does() {
        assert_eq!(parse_device_id(" 3 "), Some(DeviceId::Index(3)));
        assert_eq!(
            parse_device_id("GPU-8d5"),
            Some(DeviceId::Uuid("GPU-8d5".into()))
        );
        assert_eq!(
            parse_device_id("MIG-1a2b"),
            Some(DeviceId::Mig("MIG-1a2b".into()))
        );
        assert_eq!(parse_device_id("-1"), None);
        assert_eq!(parse_device_id("cuda:0"), None);
    }

    #[test]
    fn a_missing_library_is_absent_without_a_warning() {
        let mut warnings = Vec::new();
        let config = GpuConfig {
            nvml_library: None,
            ..GpuConfig::default()
        };
        // The build machine may have a driver; only the no-driver case is asserted.
        if let NvmlDiscovery::Absent(line) = NvmlSensor::discover(&config, &mut warnings) {
            assert!(line.contains("GPU"), "{line}");
            assert!(warnings.is_empty(), "{warnings:?}");
        }
    }
}
