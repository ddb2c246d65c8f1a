//! EMI's protocol on byte buffers laid out as `emi.h` lays out its structs (little-endian,
//! natural alignment), as `DeviceIoControl` returns them.

use std::collections::{HashMap, VecDeque};

use super::*;
use crate::integrator::{EnergyTrack, Fed};

/// UTF-16LE of `text`, NUL-terminated.
fn wide(text: &str) -> Vec<u8> {
    text.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// A `WCHAR[EMI_NAME_MAX]` field.
fn name_field(text: &str) -> Vec<u8> {
    let mut field = wide(text);
    field.resize(NAME_MAX * 2, 0);
    field
}

/// `EMI_METADATA_V1`.
fn v1(unit: u32, oem: &str, model: &str, metered: &str) -> Vec<u8> {
    let name = wide(metered);
    let mut bytes = unit.to_le_bytes().to_vec();
    bytes.extend(name_field(oem));
    bytes.extend(name_field(model));
    bytes.extend(7u16.to_le_bytes());
    bytes.extend((name.len() as u16).to_le_bytes());
    bytes.extend(name);
    bytes
}

/// `EMI_METADATA_V2` with `EMI_CHANNEL_V2`s packed one after the other.
fn v2(oem: &str, model: &str, channels: &[(u32, &str)]) -> Vec<u8> {
    let mut bytes = name_field(oem);
    bytes.extend(name_field(model));
    bytes.extend(1u16.to_le_bytes());
    bytes.extend((channels.len() as u16).to_le_bytes());
    for (unit, name) in channels {
        let name = wide(name);
        bytes.extend(unit.to_le_bytes());
        bytes.extend((name.len() as u16).to_le_bytes());
        bytes.extend(name);
    }
    bytes
}

fn measurements(values: &[(u64, u64)]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|(energy, time)| energy.to_le_bytes().into_iter().chain(time.to_le_bytes()))
        .collect()
}

/// An Intel laptop's meter as Windows 11 lists it: package, cores, graphics, DRAM.
const INTEL: &[(u32, &str)] = &[
    (0, "RAPL_Package0_PKG"),
    (0, "RAPL_Package0_PP0"),
    (0, "RAPL_Package0_PP1"),
    (0, "RAPL_Package0_DRAM"),
];

#[test]
fn v2_metadata_is_read_at_emi_h_offsets() {
    let bytes = v2("Intel", "RAPL", INTEL);
    // Fixed fields: OEM 32 bytes, model 32 bytes, revision at 64, channel count at 66; the
    // first channel's unit at 68, its name's size (bytes, with the NUL) at 72, its name at 74.
    assert_eq!(&bytes[66..68], &[4, 0]);
    assert_eq!(&bytes[68..72], &[0, 0, 0, 0]);
    assert_eq!(&bytes[72..74], &[36, 0]);
    assert_eq!(&bytes[74..76], &[b'R', 0]);
    let metadata = parse_metadata(2, &bytes).expect("v2");
    assert_eq!(
        (metadata.oem.as_str(), metadata.model.as_str()),
        ("Intel", "RAPL")
    );
    assert_eq!(
        metadata.channels,
        [
            "RAPL_Package0_PKG",
            "RAPL_Package0_PP0",
            "RAPL_Package0_PP1",
            "RAPL_Package0_DRAM"
        ]
    );
}

#[test]
fn v1_metadata_is_one_metered_channel() {
    let bytes = v1(0, "AMD", "Ryzen 7 7840U", "RAPL_Package0_PKG");
    assert_eq!(&bytes[70..72], &[36, 0], "name size at offset 70");
    let metadata = parse_metadata(1, &bytes).expect("v1");
    assert_eq!(metadata.oem, "AMD");
    assert_eq!(metadata.model, "Ryzen 7 7840U");
    assert_eq!(metadata.channels, ["RAPL_Package0_PKG"]);
}

#[test]
fn bad_replies_say_what_is_wrong() {
    assert_eq!(parse_version(&[2, 0]), Ok(2));
    assert_eq!(parse_version(&[3, 0]), Err(EmiError::Version(3)));
    assert!(matches!(parse_version(&[1]), Err(EmiError::Short { .. })));
    let watts = v2("Intel", "RAPL", &[(1, "RAPL_Package0_PKG")]);
    assert_eq!(
        parse_metadata(2, &watts),
        Err(EmiError::Unit {
            channel: "RAPL_Package0_PKG".to_owned(),
            unit: 1
        })
    );
    let full = v2("Intel", "RAPL", INTEL);
    let truncated = &full[..full.len() - 10];
    let err = parse_metadata(2, truncated).expect_err("truncated");
    assert!(err.to_string().contains("v2 channel"), "{err}");
    assert!(matches!(
        parse_measurements(&[0; 20], 2),
        Err(EmiError::Short { needed: 32, .. })
    ));
}

#[test]
fn picowatt_hours_become_microjoules_exactly() {
    assert_eq!(pwh_to_uj(10_000), 36);
    assert_eq!(pwh_to_uj(277_777_778), 1_000_000);
    // 1 Wh = 3600 J.
    assert_eq!(pwh_to_uj(1_000_000_000_000), 3_600_000_000);
    assert_eq!(pwh_to_uj(u64::MAX), 66_408_278_665_354_385);
}

#[test]
fn the_package_and_dram_count_and_the_cores_and_graphics_inside_it_do_not() {
    let cases = [
        ("RAPL_Package0_PKG", Some(Component::Cpu)),
        ("RAPL_Package1_PKG", Some(Component::Cpu)),
        ("RAPL_Package0_DRAM", Some(Component::Ram)),
        ("RAPL_Package0_PP0", None),
        ("RAPL_Package0_PP1", None),
        ("RAPL_Package_PKG", None),
        ("Battery", None),
    ];
    for (name, component) in cases {
        assert_eq!(rail(name), component, "{name}");
    }
}

#[test]
fn a_mirrored_meter_is_counted_once() {
    let intel = parse_metadata(2, &v2("Intel", "RAPL", INTEL)).expect("v2");
    let chosen = choose(&[intel.clone(), intel]);
    let names: Vec<(usize, &str)> = chosen.iter().map(|c| (c.device, c.name.as_str())).collect();
    assert_eq!(
        names,
        [(0, "RAPL_Package0_PKG"), (0, "RAPL_Package0_DRAM")],
        "the second interface mirrors the first"
    );
    // Two packages of one machine are two meters.
    let second = parse_metadata(2, &v2("Intel", "RAPL", &[(0, "RAPL_Package1_PKG")])).expect("v2");
    let first = parse_metadata(2, &v2("Intel", "RAPL", INTEL)).expect("v2");
    assert_eq!(choose(&[first, second]).len(), 3);
}

/// A device that answers with recorded replies, in order per IOCTL.
struct Recorded {
    replies: HashMap<u32, VecDeque<Vec<u8>>>,
}

impl Recorded {
    fn boxed(metadata: Vec<u8>, version: u16, readings: &[Vec<u8>]) -> Box<dyn EmiDevice> {
        let mut replies = HashMap::new();
        replies.insert(
            IOCTL_EMI_GET_VERSION,
            VecDeque::from([version.to_le_bytes().to_vec()]),
        );
        replies.insert(
            IOCTL_EMI_GET_METADATA_SIZE,
            VecDeque::from([(metadata.len() as u32).to_le_bytes().to_vec()]),
        );
        replies.insert(IOCTL_EMI_GET_METADATA, VecDeque::from([metadata]));
        replies.insert(
            IOCTL_EMI_GET_MEASUREMENT,
            readings.iter().cloned().collect(),
        );
        Box::new(Self { replies })
    }
}

impl EmiDevice for Recorded {
    fn control(&mut self, code: u32, reply_bytes: usize) -> Result<Vec<u8>, String> {
        let mut reply = self
            .replies
            .get_mut(&code)
            .and_then(VecDeque::pop_front)
            .ok_or_else(|| format!("no reply recorded for {code:#x}"))?;
        reply.truncate(reply_bytes);
        Ok(reply)
    }
}

/// Feeds `readings` of each channel into a counter track as the meter does, one second apart.
fn energy_j(sensor: &mut EmiSensor, reads: usize) -> Vec<(String, f64)> {
    let channels = sensor.channels();
    let mut tracks: Vec<EnergyTrack> = channels
        .iter()
        .map(|channel| match channel.kind {
            ChannelKind::Counter {
                spec,
                give_up_after,
            } => EnergyTrack::counter(spec, give_up_after),
            ChannelKind::Power(_) => panic!("EMI channels are counters"),
        })
        .collect();
    for second in 0..reads {
        let readings = sensor.read(&HostSample::default());
        for (track, reading) in tracks.iter_mut().zip(readings) {
            let fed = track.feed(second as f64, second as u64 * 1_000_000, reading);
            assert!(
                !matches!(fed, Some(Fed::Retrying(_) | Fed::Ended { .. })),
                "{fed:?}"
            );
        }
    }
    channels
        .into_iter()
        .zip(tracks)
        .map(|(channel, track)| (channel.name, track.energy_j()))
        .collect()
}

/// pWh in `joules`.
fn pwh(joules: u64) -> u64 {
    joules * 1_000_000_000_000 / 3600
}

#[test]
fn a_v2_meter_measures_package_and_dram_and_its_mirror_adds_nothing() {
    // 10 W package, 2 W DRAM over two seconds; PP0 and PP1 move but are inside the package.
    let base = 5_000_000_000_000_u64;
    let reading = |s: u64| {
        measurements(&[
            (base + pwh(10 * s), s * 10_000_000),
            (base + pwh(8 * s), s * 10_000_000),
            (base + pwh(s), s * 10_000_000),
            (base + pwh(2 * s), s * 10_000_000),
        ])
    };
    let readings: Vec<Vec<u8>> = (0..3).map(reading).collect();
    let meter = v2("Intel", "RAPL", INTEL);
    let devices = vec![
        Recorded::boxed(meter.clone(), 2, &readings),
        Recorded::boxed(meter, 2, &[]),
    ];
    let mut warnings = Vec::new();
    let mut sensor = EmiSensor::discover(devices, &mut warnings).expect("found");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(sensor.components(), [Component::Cpu, Component::Ram]);
    let energy = energy_j(&mut sensor, 3);
    let close = |got: f64, want: f64| (got - want).abs() < 1e-5;
    assert_eq!(energy.len(), 2, "{energy:?}");
    assert!(
        energy[0].0 == "RAPL_Package0_PKG" && close(energy[0].1, 20.0),
        "{energy:?}"
    );
    assert!(
        energy[1].0 == "RAPL_Package0_DRAM" && close(energy[1].1, 4.0),
        "{energy:?}"
    );
}

#[test]
fn a_counter_that_steps_back_counts_as_a_reset_not_a_wrap() {
    let readings = [
        measurements(&[(pwh(1_000), 0)]),
        measurements(&[(pwh(1_010), 1)]),
        // The firmware restarted its count.
        measurements(&[(pwh(3), 2)]),
        measurements(&[(pwh(13), 3)]),
    ];
    let devices = vec![Recorded::boxed(
        v1(0, "AMD", "Ryzen", "RAPL_Package0_PKG"),
        1,
        &readings,
    )];
    let mut sensor = EmiSensor::discover(devices, &mut Vec::new()).expect("found");
    let energy = energy_j(&mut sensor, 4);
    // 10 J, then the reset (its first 3 J counted from zero at most, never 2^64 pWh), 10 J.
    let total_j = energy[0].1;
    assert!((20.0..=23.0 + 1e-6).contains(&total_j), "{total_j}");
}

#[test]
fn a_device_that_does_not_answer_is_left_out_with_why() {
    let silent = Box::new(Recorded {
        replies: HashMap::new(),
    });
    let mut warnings = Vec::new();
    assert!(EmiSensor::discover(vec![silent], &mut warnings).is_none());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("no reply recorded for 0x224000"),
        "{warnings:?}"
    );
}
