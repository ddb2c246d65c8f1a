//! Apple Silicon's integrated GPU through IOReport's `GPU Energy` channel
//! ([`crate::sensors::ioreport`] does the reading; this file only makes it one GPU device).
//!
//! The SoC has one GPU, with no PCI address and no process queries: process mode cannot tell
//! which processes use it, so it is counted whole there, as a driver without process queries
//! is, and says so once.

use std::collections::HashSet;

use super::device::{DeviceRead, Discovery, GpuBackend, GpuDevice, GpuInfo, Wanted};
use super::select::{self, Naming};
use super::{GpuConfig, GpuFault, Vendor};
use crate::sensors::Component;
use crate::sensors::ioreport::{self, IoReport, Part};

/// The one GPU of an Apple SoC.
pub struct AppleBackend {
    report: IoReport,
    devices: Vec<GpuDevice>,
}

/// Opens IOReport where there is one to load and keeps its GPU if it has a `GPU Energy`
/// channel and the selection keeps it.
pub fn discover(
    config: &GpuConfig,
    claimed: &[GpuDevice],
    warnings: &mut Vec<String>,
) -> Discovery {
    let Some(library) = ioreport::library(config.ioreport_library.as_deref()) else {
        return Discovery::Absent("no IOReport on this system: no Apple GPU".to_owned());
    };
    let report = match IoReport::open(&library) {
        Ok(report) => report,
        Err(line) => return Discovery::Absent(format!("no Apple GPU measured: {line}")),
    };
    if !report.parts().contains(&Part::Gpu) {
        return Discovery::Absent("IOReport has no GPU Energy channel: no Apple GPU".to_owned());
    }
    let all = [GpuInfo {
        vendor: Vendor::Apple,
        index: 0,
        uuid: "apple-soc-gpu-0".to_owned(),
        name: "Apple Silicon GPU".to_owned(),
        pci_bus_id: None,
    }];
    let devices: Vec<GpuDevice> =
        select::choose(config, &Naming::All, &all, &[], claimed, warnings)
            .into_iter()
            .map(|info| GpuDevice {
                info,
                has_energy_counter: true,
                has_power: false,
            })
            .collect();
    if devices.is_empty() {
        return Discovery::Absent("the Apple GPU was not selected for measurement".to_owned());
    }
    Discovery::Found(Box::new(AppleBackend { report, devices }))
}

impl GpuBackend for AppleBackend {
    fn devices(&self) -> &[GpuDevice] {
        &self.devices
    }

    fn read(&mut self, position: usize, wanted: Wanted) -> DeviceRead {
        if position >= self.devices.len() || !wanted.energy {
            return DeviceRead::default();
        }
        let energy_uj = self
            .report
            .read()
            .map(|totals| totals.component_uj(Component::Gpu))
            .map_err(GpuFault::Other);
        DeviceRead {
            energy_uj: Some(energy_uj),
            power_w: None,
            utilization: None,
        }
    }

    fn runs_any(&self, _position: usize, _pids: &HashSet<u32>) -> bool {
        false
    }

    fn process_queries_missing(&self) -> Option<String> {
        Some("IOReport has no per-process GPU figures".to_owned())
    }
}
