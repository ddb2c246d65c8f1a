//! NVIDIA GPUs through NVML (`nvml-wrapper`), loaded at run time from a path that is a seam.
//!
//! NVML I/O only. Each selected device reports, when it can, its energy counter
//! (`nvmlDeviceGetTotalEnergyConsumption`, mJ since the driver loaded: Volta and newer) and its
//! power (`nvmlDeviceGetPowerUsage`, mW). Which of the two counts and which only cross-checks
//! is decided by the accounting in [`crate::gpu`]; which devices are read, by
//! [`super::select`].

use std::collections::HashSet;
use std::ffi::OsStr;

use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;

use super::device::{DeviceRead, Discovery, GpuBackend, GpuDevice, GpuFault, GpuInfo, GpuMemory};
use super::select::{self, Visible};
use super::{GpuConfig, Vendor};

/// The library loaded when no path is given: the driver's, found by the dynamic loader.
pub const DEFAULT_NVML_LIBRARY: &str = "libnvidia-ml.so.1";

/// Whether a device reports one quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Not supported at discovery: never read.
    Absent,
    /// Read on every read.
    Live,
    /// Failed once: reported as failed and not read again.
    Dead,
}

/// One selected device and what it can report.
#[derive(Debug, Clone)]
struct Device {
    counter: Source,
    power: Source,
    lost: bool,
}

/// The selected GPUs of one NVML library.
pub struct NvmlBackend {
    // Boxed: the library's table of entry points is 12 kB.
    nvml: Box<Nvml>,
    devices: Vec<GpuDevice>,
    states: Vec<Device>,
}

fn fault(err: &NvmlError) -> GpuFault {
    match err {
        NvmlError::GpuLost => GpuFault::Lost { library: "NVML" },
        NvmlError::NotSupported => GpuFault::NotSupported,
        other => GpuFault::Other(other.to_string()),
    }
}

/// Loads NVML from `config.nvml_library` (or the system's) and selects devices, leaving out
/// those in `claimed` (found by a backend before this one). `warnings` gets one line per
/// selection problem (an id that names no device, a MIG instance measured through its parent);
/// a device that reports neither energy nor power is kept, for the accounting to name it.
pub fn discover(
    config: &GpuConfig,
    claimed: &[GpuDevice],
    warnings: &mut Vec<String>,
) -> Discovery {
    let visible = config.cuda_visible_devices.as_deref().map(|value| Visible {
        variable: "CUDA_VISIBLE_DEVICES",
        runtime: "CUDA",
        value,
    });
    if select::hides_every_device(config.gpu_ids.as_deref(), visible) {
        return Discovery::Absent("CUDA_VISIBLE_DEVICES is empty: no GPU".to_owned());
    }
    let library = config
        .nvml_library
        .as_deref()
        .map_or_else(|| OsStr::new(DEFAULT_NVML_LIBRARY), |path| path.as_os_str());
    let opened = match super::unopened(library) {
        Some(error) => Err(error),
        None => Nvml::builder().lib_path(library).init().map_err(|err| {
            let error = err.to_string();
            if matches!(err, NvmlError::LibloadingError(_)) {
                super::remember_unopened(library, &error);
            }
            error
        }),
    };
    let nvml = match opened {
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
            return Discovery::Absent(line);
        }
    };
    let count = match nvml.device_count() {
        Ok(count) => count,
        Err(err) => {
            return Discovery::Absent(format!("NVML cannot count GPUs: {err}"));
        }
    };
    let mut all = Vec::new();
    let mut broken = Vec::new();
    for index in 0..count {
        let described = nvml.device_by_index(index).and_then(|device| {
            let pci_bus_id = device
                .pci_info()
                .ok()
                .and_then(|pci| super::normalize_pci_bus_id(&pci.bus_id));
            Ok((device.uuid()?, device.name()?, pci_bus_id))
        });
        match described {
            Ok((uuid, name, pci_bus_id)) => all.push(GpuInfo {
                vendor: Vendor::Nvidia,
                index,
                uuid,
                name,
                pci_bus_id,
            }),
            Err(err) => broken.push((index, fault(&err))),
        }
    }
    let mig_parent = |uuid: &str| {
        let instance = nvml.device_by_uuid(uuid).ok()?;
        instance.mig_parent_device().ok()?.index().ok()
    };
    let chosen = select::select(
        &all,
        &broken,
        config.gpu_ids.as_deref(),
        visible,
        &mig_parent,
        warnings,
    );
    let devices: Vec<GpuDevice> = chosen
        .into_iter()
        .filter(|info| !claimed.iter().any(|other| other.info.same_device(info)))
        .filter_map(|info| {
            let device = nvml.device_by_index(info.index).ok()?;
            let has_energy_counter = device.total_energy_consumption().is_ok();
            let has_power = device.power_usage().is_ok();
            Some(GpuDevice {
                info,
                has_energy_counter,
                has_power,
            })
        })
        .collect();
    if devices.is_empty() {
        return Discovery::Absent(format!(
            "NVML found {count} GPU(s), none selected for measurement"
        ));
    }
    let source = |has| if has { Source::Live } else { Source::Absent };
    let states = devices
        .iter()
        .map(|device| Device {
            counter: source(device.has_energy_counter),
            power: source(device.has_power),
            lost: false,
        })
        .collect();
    Discovery::Found(Box::new(NvmlBackend {
        nvml: Box::new(nvml),
        devices,
        states,
    }))
}

impl GpuBackend for NvmlBackend {
    fn devices(&self) -> &[GpuDevice] {
        &self.devices
    }

    fn read(&mut self) -> Vec<DeviceRead> {
        let mut reads = Vec::with_capacity(self.devices.len());
        for (device, state) in self.devices.iter().zip(&mut self.states) {
            let handle = if state.lost {
                Err(NvmlError::GpuLost)
            } else {
                self.nvml.device_by_index(device.info.index)
            };
            // Power first: it is the reading whose timing matters (the meter stamps the read).
            let power_w = query(&mut state.power, &handle, |h| {
                h.power_usage().map(|power_mw| f64::from(power_mw) / 1000.0)
            });
            let energy_mj = query(
                &mut state.counter,
                &handle,
                nvml_wrapper::Device::total_energy_consumption,
            );
            let live = handle.as_ref().ok();
            let utilization = live
                .and_then(|h| h.utilization_rates().ok())
                .map(|u| f64::from(u.gpu.min(100)) / 100.0);
            let memory = live.and_then(|h| h.memory_info().ok()).map(|m| GpuMemory {
                used_bytes: m.used,
                total_bytes: m.total,
            });
            let lost = GpuFault::Lost { library: "NVML" };
            state.lost |= matches!(handle, Err(NvmlError::GpuLost))
                || power_w
                    .as_ref()
                    .is_some_and(|r| r.as_ref().err() == Some(&lost))
                || energy_mj
                    .as_ref()
                    .is_some_and(|r| r.as_ref().err() == Some(&lost));
            reads.push(DeviceRead {
                energy_mj,
                power_w,
                utilization,
                memory,
            });
        }
        reads
    }

    fn process_queries_missing(&self) -> Option<String> {
        let handle = self
            .nvml
            .device_by_index(self.devices.first()?.info.index)
            .ok()?;
        match handle.running_compute_processes() {
            Err(NvmlError::FailedToLoadSymbol(_)) => Some(
                "this NVIDIA driver has no v3 process queries \
                 (nvmlDeviceGetComputeRunningProcesses_v3, R510 and newer)"
                    .to_owned(),
            ),
            _ => None,
        }
    }

    fn runs_any(&self, position: usize, pids: &HashSet<u32>) -> bool {
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

/// One reading of a quantity the device reports (`None` when it never did); a failure marks
/// the quantity dead, and a dead one answers "not supported" without asking the device.
fn query<'nvml, T>(
    source: &mut Source,
    handle: &Result<nvml_wrapper::Device<'nvml>, NvmlError>,
    read: impl FnOnce(&nvml_wrapper::Device<'nvml>) -> Result<T, NvmlError>,
) -> Option<Result<T, GpuFault>> {
    let result = match (*source, handle) {
        (Source::Absent, _) => return None,
        (Source::Dead, _) => Err(GpuFault::NotSupported),
        (Source::Live, Ok(handle)) => read(handle).map_err(|err| fault(&err)),
        (Source::Live, Err(err)) => Err(fault(err)),
    };
    if result.is_err() {
        *source = Source::Dead;
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_absent_without_a_warning() {
        let mut warnings = Vec::new();
        let config = GpuConfig {
            nvml_library: None,
            ..GpuConfig::default()
        };
        // The build machine may have a driver; only the no-driver case is asserted.
        if let Discovery::Absent(line) = discover(&config, &[], &mut warnings) {
            assert!(line.contains("GPU"), "{line}");
            assert!(warnings.is_empty(), "{warnings:?}");
        }
    }

    #[test]
    fn nvml_errors_become_typed_faults() {
        assert_eq!(
            fault(&NvmlError::GpuLost),
            GpuFault::Lost { library: "NVML" }
        );
        assert_eq!(fault(&NvmlError::NotSupported), GpuFault::NotSupported);
        assert!(matches!(
            fault(&NvmlError::NoPermission),
            GpuFault::Other(_)
        ));
    }
}
