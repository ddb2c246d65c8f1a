//! NVIDIA GPUs through NVML (`nvml-wrapper`), loaded at run time from a path that is a seam.
//!
//! NVML I/O only. Each selected device reports, when it can, its energy counter
//! (`nvmlDeviceGetTotalEnergyConsumption`, mJ since the driver loaded: Volta and newer) and its
//! power (`nvmlDeviceGetPowerUsage`, mW). Which of the two counts and which only cross-checks
//! is decided by the accounting in [`crate::gpu`], which also stops asking for a quantity
//! that failed; which devices are read, by [`super::select`].

use std::collections::HashSet;
use std::ffi::OsStr;

use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;

use super::device::{DeviceRead, Discovery, GpuBackend, GpuDevice, GpuFault, GpuInfo, Wanted};
use super::select::{self, Naming};
use super::{GpuConfig, Vendor};

/// The library loaded when no path is given: the driver's, found by the dynamic loader
/// (`nvml.dll` on Windows, which the driver puts on the system path).
pub const DEFAULT_NVML_LIBRARY: &str = if cfg!(windows) {
    "nvml.dll"
} else {
    "libnvidia-ml.so.1"
};

/// The selected GPUs of one NVML library.
pub struct NvmlBackend {
    // Boxed: the library's table of entry points is 12 kB.
    nvml: Box<Nvml>,
    devices: Vec<GpuDevice>,
}

fn fault(err: &NvmlError) -> GpuFault {
    match err {
        NvmlError::GpuLost => GpuFault::Lost { library: "NVML" },
        NvmlError::NotSupported => GpuFault::NotSupported,
        other => GpuFault::Other(other.to_string()),
    }
}

/// Loads NVML from `config.nvml_library` (or the system's), or says why not; `warnings` gets
/// the line when the user named the library.
fn open(config: &GpuConfig, warnings: &mut Vec<String>) -> Result<Nvml, String> {
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
    opened.map_err(|err| {
        let line = format!(
            "no NVIDIA GPU measured: NVML ({}) unavailable: {err}",
            library.display()
        );
        if config.nvml_library.is_some() {
            // The user named a library: not finding it is worth a warning.
            warnings.push(line.clone());
        }
        line
    })
}

/// Every device NVML counts, and those that did not answer with why.
fn enumerate(nvml: &Nvml, count: u32) -> (Vec<GpuInfo>, Vec<(u32, GpuFault)>) {
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
    (all, broken)
}

/// Loads NVML, enumerates its devices and keeps those [`select::choose`] chooses; a device
/// that reports neither energy nor power is kept, for the accounting to name it.
pub fn discover(
    config: &GpuConfig,
    claimed: &[GpuDevice],
    warnings: &mut Vec<String>,
) -> Discovery {
    if select::hides_every_cuda_device(config) {
        return Discovery::Absent("CUDA_VISIBLE_DEVICES is empty: no GPU".to_owned());
    }
    let nvml = match open(config, warnings) {
        Ok(nvml) => nvml,
        Err(line) => return Discovery::Absent(line),
    };
    let count = match nvml.device_count() {
        Ok(count) => count,
        Err(err) => {
            return Discovery::Absent(format!("NVML cannot count GPUs: {err}"));
        }
    };
    let (all, broken) = enumerate(&nvml, count);
    let mig_parent = |uuid: &str| {
        let instance = nvml.device_by_uuid(uuid).ok()?;
        instance.mig_parent_device().ok()?.index().ok()
    };
    let naming = Naming::Cuda(&mig_parent);
    let chosen = select::choose(config, &naming, &all, &broken, claimed, warnings);
    let devices: Vec<GpuDevice> = chosen
        .into_iter()
        .filter_map(|info| {
            let device = nvml.device_by_index(info.index).ok()?;
            Some(GpuDevice {
                info,
                has_energy_counter: device.total_energy_consumption().is_ok(),
                has_power: device.power_usage().is_ok(),
            })
        })
        .collect();
    if devices.is_empty() {
        return Discovery::Absent(format!(
            "NVML found {count} GPU(s), none selected for measurement"
        ));
    }
    Discovery::Found(Box::new(NvmlBackend {
        nvml: Box::new(nvml),
        devices,
    }))
}

impl GpuBackend for NvmlBackend {
    fn devices(&self) -> &[GpuDevice] {
        &self.devices
    }

    fn read(&mut self, position: usize, wanted: Wanted) -> DeviceRead {
        let Some(device) = self.devices.get(position) else {
            return DeviceRead::default();
        };
        if wanted == Wanted::default() {
            return DeviceRead::default();
        }
        let handle = self.nvml.device_by_index(device.info.index);
        let query =
            |want: bool, read: &dyn Fn(&nvml_wrapper::Device<'_>) -> Result<u64, NvmlError>| {
                want.then(|| match &handle {
                    Ok(handle) => read(handle).map_err(|err| fault(&err)),
                    Err(err) => Err(fault(err)),
                })
            };
        // Power first: it is the reading whose timing matters (the meter stamps the read).
        let power_w = query(wanted.power, &|h| h.power_usage().map(u64::from))
            .map(|r| r.map(|power_mw| power_mw as f64 / 1000.0));
        // NVML counts mJ: µJ from here on.
        let energy_uj = query(wanted.energy, &|h| h.total_energy_consumption())
            .map(|r| r.map(|energy_mj| energy_mj.saturating_mul(1000)));
        let utilization = handle
            .as_ref()
            .ok()
            .filter(|_| wanted.utilization)
            .and_then(|h| h.utilization_rates().ok())
            .map(|u| f64::from(u.gpu.min(100)) / 100.0);
        DeviceRead {
            energy_uj,
            power_w,
            utilization,
        }
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
