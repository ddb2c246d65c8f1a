//! RAPL energy counters through the Linux powercap tree (`/sys/class/powercap`).
//!
//! Package zones (`intel-rapl:N`, named `package-N`) are CPU energy, their `dram` subzones RAM
//! energy, and `psys` the whole platform, which overlaps both and so is kept apart. The
//! `intel-rapl-mmio` tree repeats a package's counter through another interface on recent Intel
//! parts: counting it too would double the package.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{Channel, ChannelKind, Component, HostSample, Method, Reading, Sensor, SensorFault};

/// Peak power assumed for a zone whose hardware states none, to size the read interval: more
/// than any single package or DIMM set draws today.
pub const ASSUMED_ZONE_PEAK_W: f64 = 1000.0;

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
            .map_or(ASSUMED_ZONE_PEAK_W, |power_uw| power_uw as f64 / 1e6);
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

/// The RAPL zones of a machine, read as one sensor.
#[derive(Debug, Clone)]
pub struct RaplSensor {
    zones: Vec<RaplZone>,
    states: Vec<ZoneState>,
    warnings: Vec<String>,
}

/// What a zone's reads have been so far. The sensor reports the energy it accepted as a counter
/// of its own that only goes forward: a reading the hardware could not have produced is never
/// turned into energy.
#[derive(Debug, Clone, Default)]
struct ZoneState {
    /// The last accepted raw counter value and when it was read.
    last: Option<(Instant, u64)>,
    /// A forward jump too large to be energy, kept to see whether the counter goes on from it.
    suspect: Option<(Instant, u64)>,
    /// Sum of the accepted deltas, µJ.
    accepted_uj: u64,
    failures: u32,
    given_up: bool,
    /// Warnings about readings that were explained rather than refused.
    warnings: Vec<String>,
}

impl ZoneState {
    /// Most energy the zone can have used between `since` and `now`: twice its peak power (or
    /// the assumed one) over the time, plus a second for timer jitter, µJ.
    fn bound_uj(zone: &RaplZone, since: Instant, now: Instant) -> u64 {
        let peak_uw = zone.max_power_uw.map_or(
            u128::from(ASSUMED_ZONE_PEAK_W as u64) * 1_000_000,
            u128::from,
        );
        let elapsed_us = now.saturating_duration_since(since).as_micros() + 1_000_000;
        u64::try_from(2 * peak_uw * elapsed_us / 1_000_000).unwrap_or(u64::MAX)
    }

    /// Takes a raw reading; `Err` names why it was not believed (a cause, without the value, so
    /// each cause is said once).
    fn accept(&mut self, zone: &RaplZone, now: Instant, raw_uj: u64) -> Result<(), String> {
        if raw_uj > zone.max_energy_range_uj {
            return Err(format!(
                "a reading above its max_energy_range_uj ({}) was ignored",
                zone.max_energy_range_uj
            ));
        }
        let Some((since, previous_uj)) = self.last else {
            self.last = Some((now, raw_uj));
            return Ok(());
        };
        let bound_uj = Self::bound_uj(zone, since, now);
        if raw_uj >= previous_uj {
            let delta_uj = raw_uj - previous_uj;
            if delta_uj <= bound_uj {
                self.count(now, raw_uj, delta_uj);
                return Ok(());
            }
            // Either garbage or a counter that really jumped: only a later read that goes on
            // from the jump tells them apart, and the jump itself is never energy.
            if let Some((suspect_t, suspect_uj)) = self.suspect
                && raw_uj >= suspect_uj
                && raw_uj - suspect_uj <= Self::bound_uj(zone, suspect_t, now)
            {
                self.count(now, raw_uj, 0);
                self.warnings.push(format!(
                    "RAPL zone {}: the counter jumped forward by more than the zone can draw; \
                     counted from its new value",
                    zone.name
                ));
                return Ok(());
            }
            self.suspect = Some((now, raw_uj));
            return Err(
                "a reading more than the zone's peak power could add since the last one was \
                 ignored"
                    .to_owned(),
            );
        }
        let wrapped_uj = (zone.max_energy_range_uj - previous_uj).saturating_add(raw_uj);
        if wrapped_uj <= bound_uj {
            self.count(now, raw_uj, wrapped_uj);
            return Ok(());
        }
        // Back by more than a plausible wrap: a reset (driver reload, resume) that counted from
        // zero up to `raw_uj` (nearer zero than the old value), or a counter that stepped back;
        // never a whole wrap of energy.
        let reset = raw_uj <= bound_uj && raw_uj < previous_uj - raw_uj;
        let since_reset_uj = if reset { raw_uj } else { 0 };
        self.count(now, raw_uj, since_reset_uj);
        self.warnings.push(format!(
            "RAPL zone {}: the counter went back by more than a wrap the zone could draw; \
                     counted from its new value",
            zone.name
        ));
        Ok(())
    }

    fn count(&mut self, now: Instant, raw_uj: u64, delta_uj: u64) {
        self.last = Some((now, raw_uj));
        self.suspect = None;
        self.accepted_uj = self.accepted_uj.saturating_add(delta_uj);
    }
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
        let Ok(entries) = std::fs::read_dir(root) else {
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
        let states = vec![ZoneState::default(); zones.len()];
        Self {
            zones,
            states,
            warnings: Vec::new(),
        }
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
        self.states = vec![ZoneState::default(); self.zones.len()];
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
                    max_energy_range_uj: zone.max_energy_range_uj,
                    max_power_uw: zone.max_power_uw,
                },
            })
            .collect()
    }

    fn read(&mut self, _host: &HostSample) -> Vec<Result<Reading, SensorFault>> {
        let now = Instant::now();
        let warnings = &mut self.warnings;
        self.zones
            .iter()
            .zip(self.states.iter_mut())
            .map(|(zone, state)| {
                if state.given_up {
                    return Err(SensorFault::Stopped {
                        channel: format!("RAPL zone {}", zone.name),
                    });
                }
                let path = zone.dir.join("energy_uj");
                let taken = read_u64(&path)
                    .map_err(|err| format!("{}: {err}", path.display()))
                    .and_then(|raw_uj| state.accept(zone, now, raw_uj));
                warnings.append(&mut state.warnings);
                match taken {
                    Ok(()) => state.failures = 0,
                    Err(cause) => {
                        state.failures += 1;
                        if state.failures >= GIVE_UP_AFTER_FAILURES {
                            state.given_up = true;
                            return Err(SensorFault::GivenUp {
                                channel: format!("RAPL zone {}", zone.name),
                                failures: GIVE_UP_AFTER_FAILURES,
                                last: cause,
                            });
                        }
                        warnings.push(format!(
                            "RAPL zone {}: {cause}; retried on the next reads",
                            zone.name
                        ));
                    }
                }
                // The energy accepted so far: a refused read adds nothing, and the next good
                // one counts from the last good one, so nothing is lost in between.
                Ok(Reading::EnergyUj(state.accepted_uj))
            })
            .collect()
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}
