//! The platform's own source of CPU and RAM energy, where RAPL is not what the OS gives:
//! Apple Silicon's IOReport, Windows' Energy Meter Interface, NVIDIA Grace's power meters.
//! Only finding them is here; which one measures what is [`super::plan`]'s choice.

use std::path::Path;

use super::emi::EmiSensor;
use super::grace::GraceSensor;
use super::ioreport::{self, IoReportSensor};
use super::plan::Platform;
use super::{Component, Sensor, win32};

/// The platform's own source of CPU and RAM energy, found.
pub enum PlatformSensor {
    /// Apple Silicon.
    IoReport(Box<IoReportSensor>),
    /// Windows.
    Emi(EmiSensor),
    /// NVIDIA Grace.
    Grace(GraceSensor),
}

impl PlatformSensor {
    /// Which platform source it is.
    pub fn platform(&self) -> Platform {
        match self {
            Self::IoReport(_) => Platform::IoReport,
            Self::Emi(_) => Platform::Emi,
            Self::Grace(sensor) => Platform::Grace {
                memory_in_cpu: sensor.memory_inside(),
            },
        }
    }

    /// The components it can measure.
    pub fn components(&self) -> Vec<Component> {
        match self {
            Self::IoReport(sensor) => sensor.components(),
            Self::Emi(sensor) => sensor.components(),
            Self::Grace(sensor) => sensor.components(),
        }
    }

    /// Keeps only the channels of `components` (those the plan chose it for).
    pub fn keep(&mut self, components: &[Component]) {
        match self {
            Self::IoReport(sensor) => sensor.keep(components),
            Self::Emi(sensor) => sensor.keep(components),
            Self::Grace(sensor) => sensor.keep(components),
        }
    }

    /// The sensor the meter reads.
    pub fn boxed(self) -> Box<dyn Sensor> {
        match self {
            Self::IoReport(sensor) => sensor,
            Self::Emi(sensor) => Box::new(sensor),
            Self::Grace(sensor) => Box::new(sensor),
        }
    }
}

/// Where the platform sources are looked for: the settings' seams.
pub struct Roots<'a> {
    /// `ioreport_library`.
    pub ioreport_library: Option<&'a Path>,
    /// `emi_library`.
    pub emi_library: Option<&'a Path>,
    /// `hwmon_root`.
    pub hwmon_root: &'a Path,
}

/// The platform's own source: IOReport (macOS, or a library the settings name), else EMI
/// (Windows, or a stand-in the settings name), else Grace's power meters under the hwmon root.
pub fn discover(roots: &Roots<'_>, warnings: &mut Vec<String>) -> Option<PlatformSensor> {
    if let Some(sensor) = discover_ioreport(roots.ioreport_library, warnings) {
        return Some(PlatformSensor::IoReport(Box::new(sensor)));
    }
    let libraries = win32::libraries(roots.emi_library);
    if libraries.is_empty() {
        let grace = GraceSensor::discover(roots.hwmon_root)?;
        log::debug!("Grace power meters summed: {}", grace.labels().join(", "));
        return Some(PlatformSensor::Grace(grace));
    }
    let found = win32::open_meters(&libraries).and_then(|meters| {
        EmiSensor::discover(meters, warnings)
            .ok_or_else(|| "no EMI package or DRAM channel".to_owned())
    });
    match found {
        Ok(sensor) => Some(PlatformSensor::Emi(sensor)),
        Err(line) => {
            if roots.emi_library.is_some() {
                warnings.push(line);
            } else {
                log::debug!("{line}");
            }
            None
        }
    }
}

/// IOReport where there is one to load (macOS, or a library the settings name), if it has
/// energy channels; `warnings` gets why not when the user named the library.
fn discover_ioreport(named: Option<&Path>, warnings: &mut Vec<String>) -> Option<IoReportSensor> {
    let library = ioreport::library(named)?;
    match IoReportSensor::discover(&library) {
        Ok((sensor, _)) => {
            warnings.extend(sensor.warnings());
            Some(sensor)
        }
        Err(line) => {
            if named.is_some() {
                warnings.push(line);
            } else {
                log::debug!("{line}");
            }
            None
        }
    }
}
