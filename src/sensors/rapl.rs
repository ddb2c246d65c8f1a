//! RAPL energy counters through the Linux powercap tree (`/sys/class/powercap`).
//!
//! Package zones (`intel-rapl:N`, named `package-N`) are CPU energy, their `dram` subzones RAM
//! energy, and `psys` the whole platform, which overlaps both and so is kept apart. The
//! `intel-rapl-mmio` tree repeats a package's counter through another interface on recent Intel
//! parts: counting it too would double the package.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{Channel, ChannelKind, Component, HostSample, Method, Reading, Sensor, SensorFault};
use crate::integrator::{ASSUMED_PEAK_W, CounterSpec};

/// Failed or implausible reads in a row after which a zone is given up for the rest of the run.
/// One bad read (a busy firmware interface, a torn sysfs read) is retried on the next ticks.
pub const GIVE_UP_AFTER_FAILURES: u32 = 5;

/// The kernel's powercap folder.
pub const DEFAULT_POWERCAP_ROOT: &str = "/sys/class/powercap";

/// One powercap zone with an energy counter.
#[derive(Debug, Clone, PartialEq)]
pub struct RaplZone {
    /// Channel name: `package-0`, `dram-0`, `psys`.
    pub name: String,
    /// The zone's folder.
    pub dir: PathBuf,
    /// What its energy counts as.
    pub component: Component,
    /// Modulus of `energy_uj`.
    pub max_energy_range_uj: u64,
    /// `constraint_0_max_power_uw`, when the zone has one.
    pub max_power_uw: Option<u64>,
}

impl RaplZone {
    /// Longest time between reads that cannot miss a second wrap, in seconds.
    pub fn max_read_interval_s(&self) -> f64 {
        let peak_w = self
            .max_power_uw
            .map_or(ASSUMED_PEAK_W, |power_uw| power_uw as f64 / 1e6);
        self.max_energy_range_uj as f64 / 1e6 / peak_w
    }
}

/// What was found under a powercap root.
#[derive(Debug)]
pub enum RaplDiscovery {
    /// No RAPL zones (not Linux, no driver, a VM).
    Absent,
    /// Zones exist but `energy_uj` cannot be read (root-only since Linux 5.10, CVE-2020-8694).
    Unreadable {
        /// The file that refused.
        path: PathBuf,
    },
    /// Readable zones.
    Found(RaplSensor),
}

/// The RAPL zones of a machine, read as one sensor: raw counter values, judged (wraps, resets,
/// implausible steps, failures in a row) by the integrator's track of each channel.
#[derive(Debug, Clone)]
pub struct RaplSensor {
    zones: Vec<RaplZone>,
    /// Zones the meter stopped counting: not read again.
    stopped: Vec<bool>,
}

/// `intel-rapl:0` -> (false, [0]); `intel-rapl-mmio:0:1` -> (true, [0, 1]).
fn parse_zone_dir(file_name: &str) -> Option<(bool, Vec<u32>)> {
    let (mmio, indexes) = if let Some(rest) = file_name.strip_prefix("intel-rapl-mmio:") {
        (true, rest)
    } else {
        (false, file_name.strip_prefix("intel-rapl:")?)
    };
    let indexes: Option<Vec<u32>> = indexes.split(':').map(|i| i.parse().ok()).collect();
    Some((mmio, indexes?))
}

/// Longest sysfs attribute read: a counter is at most 20 digits and a newline.
const MAX_ATTRIBUTE_BYTES: usize = 64;

/// Reads a small sysfs attribute without ever blocking or reading without end: the file is
/// opened non-blocking, must be a regular file (a FIFO or a device put in the tree would block
/// or never end), and more than [`MAX_ATTRIBUTE_BYTES`] is refused.
fn read_trimmed(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.file_type().is_file() {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            "not a regular file: refused",
        ));
    }
    let mut buffer = Vec::with_capacity(MAX_ATTRIBUTE_BYTES + 1);
    (&mut file)
        .take(MAX_ATTRIBUTE_BYTES as u64 + 1)
        .read_to_end(&mut buffer)?;
    if buffer.len() > MAX_ATTRIBUTE_BYTES {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("more than {MAX_ATTRIBUTE_BYTES} bytes: refused"),
        ));
    }
    String::from_utf8(buffer)
        .map(|text| text.trim().to_owned())
        .map_err(|err| std::io::Error::new(ErrorKind::InvalidData, err))
}

fn read_u64(path: &Path) -> std::io::Result<u64> {
    read_trimmed(path)?
        .parse()
        .map_err(|err| std::io::Error::new(ErrorKind::InvalidData, err))
}

impl RaplSensor {
    /// Finds the RAPL zones under `root`. `warnings` gets one line per zone that had to be
    /// skipped for a reason other than permissions.
    pub fn discover(root: &Path, warnings: &mut Vec<String>) -> RaplDiscovery {
        let Some(entries) = super::class_entries(root) else {
            return RaplDiscovery::Absent;
        };
        let mut candidates: Vec<(bool, Vec<u32>, String, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let file_name = entry.file_name().into_string().ok()?;
                let (mmio, indexes) = parse_zone_dir(&file_name)?;
                let dir = entry.path();
                let name = read_trimmed(&dir.join("name")).ok()?;
                Some((mmio, indexes, name, dir))
            })
            .collect();
        candidates.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));

        let mut zones: Vec<RaplZone> = Vec::new();
        for (mmio, indexes, name, dir) in &candidates {
            let component_and_name = match (indexes.as_slice(), name.as_str()) {
                (_, "psys") => (Component::Psys, "psys".to_owned()),
                ([_], package) if package.starts_with("package") => {
                    (Component::Cpu, package.to_owned())
                }
                ([package, _] | [package], "dram") => (Component::Ram, format!("dram-{package}")),
                _ => continue,
            };
            let (component, zone_name) = component_and_name;
            if *mmio && zones.iter().any(|zone| zone.name == zone_name) {
                continue;
            }
            match read_u64(&dir.join("energy_uj")) {
                Err(err) if err.kind() == ErrorKind::PermissionDenied => {
                    return RaplDiscovery::Unreadable {
                        path: dir.join("energy_uj"),
                    };
                }
                Err(err) => {
                    warnings.push(format!(
                        "RAPL zone {zone_name} skipped: {}: {err}",
                        dir.join("energy_uj").display()
                    ));
                    continue;
                }
                Ok(_) => {}
            }
            let max_energy_range_uj = match read_u64(&dir.join("max_energy_range_uj")) {
                Ok(range_uj) if range_uj > 0 => range_uj,
                Ok(_) | Err(_) => {
                    warnings.push(format!(
                        "RAPL zone {zone_name} skipped: no usable max_energy_range_uj in {}",
                        dir.display()
                    ));
                    continue;
                }
            };
            let max_power_uw = read_u64(&dir.join("constraint_0_max_power_uw"))
                .ok()
                .filter(|power_uw| *power_uw > 0);
            zones.push(RaplZone {
                name: zone_name,
                dir: dir.clone(),
                component,
                max_energy_range_uj,
                max_power_uw,
            });
        }
        if zones.is_empty() {
            return RaplDiscovery::Absent;
        }
        RaplDiscovery::Found(Self::from_zones(zones))
    }

    /// A sensor over zones already described (tests, or a caller that filtered them).
    pub fn from_zones(zones: Vec<RaplZone>) -> Self {
        let stopped = vec![false; zones.len()];
        Self { zones, stopped }
    }

    /// The zones read, in channel order.
    pub fn zones(&self) -> &[RaplZone] {
        &self.zones
    }

    /// Keeps the zones a plan keeps (`components`, one per zone in order: what it counts as,
    /// or `None` to leave it out; zones past its end are left out).
    pub fn keep(&mut self, components: &[Option<Component>]) {
        self.zones = self
            .zones
            .drain(..)
            .zip(components)
            .filter_map(|(mut zone, component)| {
                zone.component = (*component)?;
                Some(zone)
            })
            .collect();
        self.stopped = vec![false; self.zones.len()];
    }

    /// Longest safe time between reads over all zones, in seconds.
    pub fn max_read_interval_s(&self) -> f64 {
        self.zones
            .iter()
            .map(RaplZone::max_read_interval_s)
            .fold(f64::INFINITY, f64::min)
    }
}

impl Sensor for RaplSensor {
    fn channels(&self) -> Vec<Channel> {
        self.zones
            .iter()
            .map(|zone| Channel {
                name: zone.name.clone(),
                component: zone.component,
                method: Method::Rapl,
                kind: ChannelKind::Counter {
                    spec: CounterSpec {
                        max_energy_range_uj: zone.max_energy_range_uj,
                        max_power_uw: zone.max_power_uw,
                        // sysfs reads can be torn or bogus: a step beyond the zone's power is
                        // not energy.
                        refuse_jumps: true,
                    },
                    give_up_after: GIVE_UP_AFTER_FAILURES,
                },
            })
            .collect()
    }

    fn read(&mut self, _host: &HostSample) -> Vec<Result<Reading, SensorFault>> {
        self.zones
            .iter()
            .zip(&self.stopped)
            .map(|(zone, stopped)| {
                if *stopped {
                    return Err(SensorFault::Stopped);
                }
                let path = zone.dir.join("energy_uj");
                read_u64(&path)
                    .map(Reading::EnergyUj)
                    .map_err(|err| SensorFault::Read(format!("{}: {err}", path.display())))
            })
            .collect()
    }

    fn stop(&mut self, channel: usize) {
        if let Some(stopped) = self.stopped.get_mut(channel) {
            *stopped = true;
        }
    }
}
