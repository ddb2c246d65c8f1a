//! Criterion benches of the paths carbonmeter runs over and over while a job trains: one read of
//! the RAPL counters, one sampler tick, closing a window, encoding a row, and `count()` (called
//! once per batch).
//!
//! Run with `cargo bench --bench hot_paths`. The powercap tree is a fake one in a temporary
//! folder (one package zone and its `dram` subzone, as on a one-socket server), so the figures
//! time carbonmeter's own work plus ordinary file reads; on real hardware a read of `energy_uj`
//! also pays the kernel's MSR access.

use std::collections::BTreeMap;
use std::fs;
use std::hint::black_box;
use std::path::Path;

use carbonmeter::testing::config::{Config, Environment, RawValue};
use carbonmeter::testing::meter::{Meter, MeterConfig};
use carbonmeter::testing::output::EmissionsRow;
use carbonmeter::testing::run::{Identity, Tracker, WindowLabels};
use carbonmeter::testing::sensors::rapl::{RaplDiscovery, RaplSensor};
use carbonmeter::testing::sensors::{HostSample, Sensor};
use carbonmeter::testing::work::Counts;
use criterion::{Criterion, criterion_group, criterion_main};

const RANGE_UJ: u64 = 262_143_328_850;

/// `intel-rapl:0` (package-0) and `intel-rapl:0:0` (its dram), flat under the root as the kernel
/// lists them, with counters and ranges.
fn fake_powercap_tree(root: &Path) {
    for (dir, name, energy_uj) in [
        ("intel-rapl:0", "package-0", 123_456_789_u64),
        ("intel-rapl:0:0", "dram", 9_876_543),
    ] {
        let zone = root.join(dir);
        fs::create_dir_all(&zone).expect("create the fake zone folder");
        fs::write(zone.join("name"), name).expect("write the zone's name");
        fs::write(zone.join("energy_uj"), energy_uj.to_string()).expect("write energy_uj");
        fs::write(zone.join("max_energy_range_uj"), RANGE_UJ.to_string())
            .expect("write max_energy_range_uj");
        fs::write(zone.join("constraint_0_max_power_uw"), "150000000")
            .expect("write constraint_0_max_power_uw");
    }
}

/// A tracker on the fake tree that writes no file and whose sampler never ticks during the
/// bench, so only the window edges read the sensors.
fn tracker(root: &Path) -> Tracker {
    let kwargs: BTreeMap<String, RawValue> = [
        ("powercap_root", RawValue::Str(root.display().to_string())),
        ("country_iso_code", RawValue::Str("FRA".to_owned())),
        ("measure_power_secs", RawValue::Float(3600.0)),
        ("save_to_file", RawValue::Bool(false)),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    let config = Config::resolve(kwargs, Environment::default()).expect("valid settings");
    Tracker::new(config, Identity::default()).expect("a tracker")
}

/// What `CsvSink::write` does to a row before any file I/O (its `encode`).
fn encode(row: &EmissionsRow) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::with_capacity(512));
    writer.serialize(row).expect("a row always serialises");
    writer.into_inner().expect("a Vec never fails to flush")
}

fn hot_paths(c: &mut Criterion) {
    let root = tempfile::tempdir().expect("a temporary folder");
    fake_powercap_tree(root.path());

    let mut warnings = Vec::new();
    let RaplDiscovery::Found(mut rapl) = RaplSensor::discover(root.path(), &mut warnings) else {
        panic!("the fake tree has readable zones; warnings: {warnings:?}");
    };
    assert_eq!(rapl.zones().len(), 2, "package-0 and dram-0");
    let host = HostSample::default();
    c.bench_function("rapl_read_2_zones", |b| {
        b.iter(|| black_box(rapl.read(black_box(&host))));
    });

    // One sampler tick is exactly `Meter::read` under the meter's lock: RAPL zones plus the
    // procfs CPU and memory figures behind the utilisation columns. Hot: back to back, those
    // files are read again at most every 200 ms, and caches and the thread stay warm. A real
    // tick also pays waking the sampler thread; benches/compare.py measures that as CPU per
    // second.
    let (mut meter, _) = Meter::discover(&MeterConfig::powercap_only(root.path()));
    c.bench_function("meter_read_tick_hot", |b| {
        b.iter(|| black_box(meter.read()));
    });

    let tracker = tracker(root.path());
    tracker.start().expect("start");
    c.bench_function("window_open_close_no_file", |b| {
        b.iter(|| {
            tracker
                .start_window("bench", WindowLabels::default())
                .expect("open the window");
            black_box(tracker.end_window("bench").expect("close the window"))
        });
    });

    // `count()` as a training loop calls it: an epoch window open, once per batch.
    tracker
        .start_window("epoch", WindowLabels::default())
        .expect("open the window");
    let batch = Counts {
        samples: Some(32),
        tokens: Some(4096),
        requests: None,
    };
    c.bench_function("count_one_window_open", |b| {
        b.iter(|| tracker.count(black_box(batch)));
    });
    tracker.end_window("epoch").expect("close the window");

    tracker
        .start_window("row", WindowLabels::default())
        .expect("open the window");
    let row = tracker.end_window("row").expect("close the window");
    tracker.stop();
    c.bench_function("encode_row_csv", |b| {
        b.iter(|| black_box(encode(black_box(&row))));
    });
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
