//! Windows: CPU package and DRAM energy from the Energy Meter Interface (EMI, Windows 10 1809
//! and newer, Intel and AMD), which any user may read: no admin rights, no driver of ours.
//!
//! The protocol is pure code here, tested on recorded byte buffers: the four IOCTLs of `emi.h`
//! (version, metadata size, metadata, measurement), the v1 and v2 metadata structs, which
//! channels count ([`rail`]), and the de-duplication of a meter two device interfaces both
//! expose ([`choose`]). Measurements are absolute energies in picowatt-hours since an arbitrary
//! zero, which the integrator turns into deltas (a step back is a reset, never a wrap: the
//! counters are 64 bits). A device is anything that answers the IOCTLs ([`EmiDevice`]): on
//! Windows, a `GUID_DEVICE_ENERGY_METER` interface opened with `CreateFileW` and asked with
//! `DeviceIoControl`; in tests, recorded replies.

use super::{Channel, ChannelKind, Component, HostSample, Method, Reading, Sensor, SensorFault};
use crate::integrator::CounterSpec;

/// `CTL_CODE(FILE_DEVICE_UNKNOWN, 0, METHOD_BUFFERED, FILE_READ_ACCESS)`: the EMI version.
pub const IOCTL_EMI_GET_VERSION: u32 = 0x0022_4000;
/// Function 1: the size of the metadata.
pub const IOCTL_EMI_GET_METADATA_SIZE: u32 = 0x0022_4004;
/// Function 2: the metadata.
pub const IOCTL_EMI_GET_METADATA: u32 = 0x0022_4008;
/// Function 3: the measurements, one per channel.
pub const IOCTL_EMI_GET_MEASUREMENT: u32 = 0x0022_400C;

/// `EmiMeasurementUnitPicowattHours`, the only unit `emi.h` defines.
const UNIT_PICOWATT_HOURS: u32 = 0;
/// `EMI_NAME_MAX`: UTF-16 units of the OEM and model names.
const NAME_MAX: usize = 16;
/// Bytes before a v1 metadata's metered hardware name: unit, OEM, model, revision, name size.
const V1_NAME_OFFSET: usize = 4 + 2 * NAME_MAX * 2 + 2 + 2;
/// Bytes before a v2 metadata's first channel: OEM, model, revision, channel count.
const V2_CHANNELS_OFFSET: usize = 2 * NAME_MAX * 2 + 2 + 2;
/// Bytes before a v2 channel's name: its unit and its name's size.
const V2_CHANNEL_NAME_OFFSET: usize = 4 + 2;
/// Bytes of one `EMI_CHANNEL_MEASUREMENT_DATA`: absolute energy, absolute time.
const MEASUREMENT_BYTES: usize = 16;
/// The most metadata accepted, bytes: a few channels' names take under 1 kB.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Failed reads in a row after which a channel is given up.
pub const GIVE_UP_AFTER_FAILURES: u32 = 5;
/// The most one package and its memory draw, W: bounds a plausible step.
const ASSUMED_PACKAGE_PEAK_W: u64 = 1_000;

/// A reply the protocol cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmiError {
    /// Fewer bytes than the struct needs.
    #[error("EMI {what}: {got} bytes, expected at least {needed}")]
    Short {
        /// Which reply.
        what: &'static str,
        /// Bytes given.
        got: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// A version this code does not know.
    #[error("EMI version {0}: expected 1 or 2")]
    Version(u16),
    /// A unit other than picowatt-hours.
    #[error("EMI channel {channel:?} in unit {unit}: expected 0 (picowatt-hours)")]
    Unit {
        /// The channel.
        channel: String,
        /// Its unit's value.
        unit: u32,
    },
    /// The device failed the request.
    #[error("EMI device: {0}")]
    Device(String),
}

fn short(what: &'static str, got: usize, needed: usize) -> EmiError {
    EmiError::Short { what, got, needed }
}

fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(offset..offset + 2)?.try_into().ok()?,
    ))
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(offset..offset + 8)?.try_into().ok()?,
    ))
}

/// UTF-16LE text up to its first NUL.
fn wide_text(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .take_while(|unit| *unit != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// The version an `IOCTL_EMI_GET_VERSION` reply names (`EMI_VERSION`, one `USHORT`).
pub fn parse_version(bytes: &[u8]) -> Result<u16, EmiError> {
    let version = u16_at(bytes, 0).ok_or_else(|| short("version", bytes.len(), 2))?;
    if matches!(version, 1 | 2) {
        Ok(version)
    } else {
        Err(EmiError::Version(version))
    }
}

/// The size an `IOCTL_EMI_GET_METADATA_SIZE` reply names (`EMI_METADATA_SIZE`, one `ULONG`).
pub fn parse_metadata_size(bytes: &[u8]) -> Result<usize, EmiError> {
    let size = u32_at(bytes, 0).ok_or_else(|| short("metadata size", bytes.len(), 4))?;
    Ok(size as usize)
}

/// What a meter says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The OEM's name.
    pub oem: String,
    /// The meter's model.
    pub model: String,
    /// Its channels' names, in the order measurements come (v1: its one metered hardware).
    pub channels: Vec<String>,
}

/// `EMI_METADATA_V1` or `EMI_METADATA_V2`, by `version`.
pub fn parse_metadata(version: u16, bytes: &[u8]) -> Result<Metadata, EmiError> {
    match version {
        1 => parse_v1(bytes),
        2 => parse_v2(bytes),
        other => Err(EmiError::Version(other)),
    }
}

fn parse_v1(bytes: &[u8]) -> Result<Metadata, EmiError> {
    let too_short = || short("v1 metadata", bytes.len(), V1_NAME_OFFSET);
    let unit = u32_at(bytes, 0).ok_or_else(too_short)?;
    let name_bytes = usize::from(u16_at(bytes, V1_NAME_OFFSET - 2).ok_or_else(too_short)?);
    let end = V1_NAME_OFFSET + name_bytes;
    let name = bytes
        .get(V1_NAME_OFFSET..end)
        .map(wide_text)
        .ok_or_else(|| short("v1 metadata", bytes.len(), end))?;
    if unit != UNIT_PICOWATT_HOURS {
        return Err(EmiError::Unit {
            channel: name,
            unit,
        });
    }
    Ok(Metadata {
        oem: wide_text(&bytes[4..4 + NAME_MAX * 2]),
        model: wide_text(&bytes[4 + NAME_MAX * 2..4 + NAME_MAX * 4]),
        channels: vec![name],
    })
}

fn parse_v2(bytes: &[u8]) -> Result<Metadata, EmiError> {
    let count = u16_at(bytes, V2_CHANNELS_OFFSET - 2)
        .ok_or_else(|| short("v2 metadata", bytes.len(), V2_CHANNELS_OFFSET))?;
    let mut channels = Vec::with_capacity(usize::from(count));
    let mut offset = V2_CHANNELS_OFFSET;
    for _ in 0..count {
        let header_end = offset + V2_CHANNEL_NAME_OFFSET;
        let (Some(unit), Some(name_bytes)) = (u32_at(bytes, offset), u16_at(bytes, offset + 4))
        else {
            return Err(short("v2 channel", bytes.len(), header_end));
        };
        // EMI_CHANNEL_V2_NEXT_CHANNEL: the next channel starts right after this one's name.
        let end = header_end + usize::from(name_bytes);
        let name = bytes
            .get(header_end..end)
            .map(wide_text)
            .ok_or_else(|| short("v2 channel", bytes.len(), end))?;
        if unit != UNIT_PICOWATT_HOURS {
            return Err(EmiError::Unit {
                channel: name,
                unit,
            });
        }
        channels.push(name);
        offset = end;
    }
    Ok(Metadata {
        oem: wide_text(&bytes[..NAME_MAX * 2]),
        model: wide_text(&bytes[NAME_MAX * 2..NAME_MAX * 4]),
        channels,
    })
}

/// One channel's `EMI_CHANNEL_MEASUREMENT_DATA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    /// Energy since an arbitrary zero, picowatt-hours.
    pub energy_pwh: u64,
    /// When, in 100 ns units since an arbitrary zero.
    pub time_100ns: u64,
}

/// The `count` measurements of an `IOCTL_EMI_GET_MEASUREMENT` reply (v1 has one).
pub fn parse_measurements(bytes: &[u8], count: usize) -> Result<Vec<Measurement>, EmiError> {
    let needed = count * MEASUREMENT_BYTES;
    if bytes.len() < needed {
        return Err(short("measurement", bytes.len(), needed));
    }
    Ok((0..count)
        .filter_map(|i| {
            let at = i * MEASUREMENT_BYTES;
            Some(Measurement {
                energy_pwh: u64_at(bytes, at)?,
                time_100ns: u64_at(bytes, at + 8)?,
            })
        })
        .collect())
}

/// µJ in `energy_pwh` picowatt-hours (1 pWh = 3.6 nJ), rounded down; exact in 128 bits.
pub fn pwh_to_uj(energy_pwh: u64) -> u64 {
    (u128::from(energy_pwh) * 36 / 10_000) as u64
}

/// What a channel counts for, by its name (`RAPL_Package0_PKG`): the package for the CPU and
/// DRAM for memory; the cores (`PP0`) and the integrated GPU (`PP1`) are inside the package,
/// and other meters (a battery's, a platform's) are left out.
pub fn rail(name: &str) -> Option<Component> {
    let upper = name.to_ascii_uppercase();
    let rest = upper.strip_prefix("RAPL_PACKAGE")?;
    let (package, zone) = rest.split_once('_')?;
    if package.is_empty() || !package.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match zone {
        "PKG" => Some(Component::Cpu),
        "DRAM" => Some(Component::Ram),
        _ => None,
    }
}

/// One channel chosen to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// Which device, in the order given.
    pub device: usize,
    /// Which channel of its metadata.
    pub channel: usize,
    /// The channel's name.
    pub name: String,
    /// What it counts for.
    pub component: Component,
}

/// The channels to count across `devices`: those [`rail`] names, each meter once. Two device
/// interfaces may expose one meter (the same OEM, model and channel name): the first is
/// counted and the mirror left out, as it would count the same energy twice.
pub fn choose(devices: &[Metadata]) -> Vec<Chosen> {
    let mut chosen: Vec<Chosen> = Vec::new();
    let mut seen: Vec<(&str, &str, &str)> = Vec::new();
    for (device, metadata) in devices.iter().enumerate() {
        for (channel, name) in metadata.channels.iter().enumerate() {
            let Some(component) = rail(name) else {
                continue;
            };
            let key = (
                metadata.oem.as_str(),
                metadata.model.as_str(),
                name.as_str(),
            );
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            chosen.push(Chosen {
                device,
                channel,
                name: name.clone(),
                component,
            });
        }
    }
    chosen
}

/// Anything that answers EMI's IOCTLs: a Windows energy meter interface, or recorded replies.
pub trait EmiDevice: Send {
    /// The reply to `code` (no input), at most `reply_bytes` long.
    fn control(&mut self, code: u32, reply_bytes: usize) -> Result<Vec<u8>, String>;
}

/// Asks `device` for its version and metadata.
pub fn describe(device: &mut dyn EmiDevice) -> Result<(u16, Metadata), EmiError> {
    let version = parse_version(
        &device
            .control(IOCTL_EMI_GET_VERSION, 2)
            .map_err(EmiError::Device)?,
    )?;
    let size = parse_metadata_size(
        &device
            .control(IOCTL_EMI_GET_METADATA_SIZE, 4)
            .map_err(EmiError::Device)?,
    )?;
    if size > MAX_METADATA_BYTES {
        return Err(EmiError::Device(format!(
            "metadata of {size} bytes, more than {MAX_METADATA_BYTES}"
        )));
    }
    let bytes = device
        .control(IOCTL_EMI_GET_METADATA, size)
        .map_err(EmiError::Device)?;
    Ok((version, parse_metadata(version, &bytes)?))
}

/// The chosen EMI channels, as energy counters in µJ.
pub struct EmiSensor {
    devices: Vec<(Box<dyn EmiDevice>, usize)>,
    chosen: Vec<Chosen>,
}

impl EmiSensor {
    /// Describes every device and keeps the channels [`choose`] chooses; a device that does
    /// not answer is left out, with why in `warnings`. `None` when no channel counts.
    pub fn discover(devices: Vec<Box<dyn EmiDevice>>, warnings: &mut Vec<String>) -> Option<Self> {
        let mut described = Vec::new();
        let mut kept = Vec::new();
        for (index, mut device) in devices.into_iter().enumerate() {
            match describe(device.as_mut()) {
                Ok((_, metadata)) => {
                    kept.push((device, metadata.channels.len()));
                    described.push(metadata);
                }
                Err(err) => warnings.push(format!("EMI device {index} left out: {err}")),
            }
        }
        let chosen = choose(&described);
        (!chosen.is_empty()).then_some(Self {
            devices: kept,
            chosen,
        })
    }

    /// The components the chosen channels count for.
    pub fn components(&self) -> Vec<Component> {
        let mut components = Vec::new();
        for chosen in &self.chosen {
            if !components.contains(&chosen.component) {
                components.push(chosen.component);
            }
        }
        components
    }

    /// Keeps only the channels of `components` (those the plan chose EMI for).
    pub fn keep(&mut self, components: &[Component]) {
        self.chosen.retain(|c| components.contains(&c.component));
    }
}

impl Sensor for EmiSensor {
    fn channels(&self) -> Vec<Channel> {
        self.chosen
            .iter()
            .map(|chosen| Channel {
                name: chosen.name.clone(),
                component: chosen.component,
                method: Method::Emi,
                kind: ChannelKind::Counter {
                    spec: CounterSpec {
                        // 64-bit picowatt-hours: a step back is a reset, never a wrap.
                        max_energy_range_uj: pwh_to_uj(u64::MAX),
                        max_power_uw: Some(ASSUMED_PACKAGE_PEAK_W * 1_000_000),
                        refuse_jumps: false,
                    },
                    give_up_after: GIVE_UP_AFTER_FAILURES,
                },
            })
            .collect()
    }

    fn read(&mut self, _host: &HostSample) -> Vec<Result<Reading, SensorFault>> {
        // One measurement request per device that has a chosen channel.
        let mut replies: Vec<Option<Result<Vec<Measurement>, String>>> =
            (0..self.devices.len()).map(|_| None).collect();
        for chosen in &self.chosen {
            let Some(reply) = replies.get_mut(chosen.device) else {
                continue;
            };
            if reply.is_none() {
                let (device, count) = &mut self.devices[chosen.device];
                *reply = Some(
                    device
                        .control(IOCTL_EMI_GET_MEASUREMENT, *count * MEASUREMENT_BYTES)
                        .and_then(|bytes| {
                            parse_measurements(&bytes, *count).map_err(|e| e.to_string())
                        }),
                );
            }
        }
        self.chosen
            .iter()
            .map(|chosen| match replies.get(chosen.device) {
                Some(Some(Ok(measurements))) => measurements
                    .get(chosen.channel)
                    .map(|m| Reading::EnergyUj(pwh_to_uj(m.energy_pwh)))
                    .ok_or_else(|| SensorFault::Read("EMI measurement missing".to_owned())),
                Some(Some(Err(why))) => Err(SensorFault::Read(why.clone())),
                _ => Err(SensorFault::Read("EMI device not read".to_owned())),
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "emi_tests.rs"]
mod tests;
