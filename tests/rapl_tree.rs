//! RAPL through the real discovery and read path, on fake powercap trees in a temp dir.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use carbonmeter::testing::config::{Config, Environment, RawValue};
use carbonmeter::testing::meter::{Meter, MeterConfig};
use carbonmeter::testing::run::{Identity, Tracker};
use carbonmeter::testing::sensors::rapl::{RaplDiscovery, RaplSensor};

const RANGE_UJ: u64 = 262_143_328_850;

struct FakeTree {
    root: tempfile::TempDir,
}

impl FakeTree {
    fn new() -> Self {
        Self {
            root: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    fn zone(&self, dir: &str, name: &str, energy_uj: u64) -> &Self {
        let zone = self.path().join(dir);
        fs::create_dir_all(&zone).expect("zone dir");
        fs::write(zone.join("name"), format!("{name}\n")).expect("name");
        fs::write(zone.join("max_energy_range_uj"), format!("{RANGE_UJ}\n")).expect("range");
        self.set(dir, energy_uj);
        self
    }

    /// Writes through a rename, as the kernel's reads are atomic: a reader never sees half.
    fn set(&self, dir: &str, energy_uj: u64) {
        let zone = self.path().join(dir);
        let temporary = zone.join(".energy_uj.tmp");
        fs::write(&temporary, format!("{energy_uj}\n")).expect("energy");
        fs::rename(&temporary, zone.join("energy_uj")).expect("rename");
    }

    fn read(&self, dir: &str) -> u64 {
        fs::read_to_string(self.path().join(dir).join("energy_uj"))
            .expect("read")
            .trim()
            .parse()
            .expect("number")
    }

    fn advance(&self, dir: &str, delta_uj: u64) {
        self.set(dir, (self.read(dir) + delta_uj) % RANGE_UJ);
    }
}

fn server_tree() -> FakeTree {
    let tree = FakeTree::new();
    tree.zone("intel-rapl:0", "package-0", RANGE_UJ - 5_000_000)
        .zone("intel-rapl:0:0", "core", 10)
        .zone("intel-rapl:0:1", "dram", 1_000)
        .zone("intel-rapl:1", "package-1", 7)
        .zone("intel-rapl:1:0", "dram", 0)
        .zone("intel-rapl:2", "psys", 0)
        .zone("intel-rapl-mmio:0", "package-0", 123_456);
    tree
}

fn uj(energy_j: f64) -> u64 {
    (energy_j * 1e6).round() as u64
}

#[test]
fn discovery_keeps_packages_drams_and_psys_and_drops_mmio_duplicates() {
    let tree = server_tree();
    let mut warnings = Vec::new();
    let RaplDiscovery::Found(sensor) = RaplSensor::discover(tree.path(), &mut warnings) else {
        panic!("no RAPL found");
    };
    let names: Vec<_> = sensor.zones().iter().map(|z| z.name.as_str()).collect();
    assert_eq!(
        names,
        ["package-0", "dram-0", "package-1", "dram-1", "psys"]
    );
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn mmio_zone_is_used_when_it_is_the_only_one() {
    let tree = FakeTree::new();
    tree.zone("intel-rapl-mmio:0", "package-0", 0);
    let RaplDiscovery::Found(sensor) = RaplSensor::discover(tree.path(), &mut Vec::new()) else {
        panic!("no RAPL found");
    };
    assert_eq!(sensor.zones().len(), 1);
}

#[test]
fn missing_root_is_absent() {
    let tree = FakeTree::new();
    let missing = tree.path().join("nothing-here");
    assert!(matches!(
        RaplSensor::discover(&missing, &mut Vec::new()),
        RaplDiscovery::Absent
    ));
}

#[test]
fn energy_written_by_a_concurrent_thread_comes_back_to_the_microjoule() {
    let tree = Arc::new(server_tree());
    let (mut meter, warnings) = Meter::discover(&MeterConfig::powercap_only(tree.path()));
    assert!(warnings.is_empty(), "{warnings:?}");
    let start = meter.read();
    let meter = Arc::new(parking_lot::Mutex::new(meter));

    // The writer advances the counters while a sampler-like reader reads them: package-0
    // starts 5 J below the top of its range, so it wraps in the first steps.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let meter = Arc::clone(&meter);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                meter.lock().read();
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let mut written = [0_u64; 5];
    for step in 0..200_u64 {
        let deltas = [
            1_000_003 + step,
            20_000 + 3 * step,
            900_000,
            5_000 + step,
            2_000_000 + step,
        ];
        for (dir, delta) in [
            "intel-rapl:0",
            "intel-rapl:0:1",
            "intel-rapl:1",
            "intel-rapl:1:0",
            "intel-rapl:2",
        ]
        .iter()
        .zip(deltas)
        {
            tree.advance(dir, delta);
        }
        for (total, delta) in written.iter_mut().zip(deltas) {
            *total += delta;
        }
        // The mmio copy moves too, and must never count.
        tree.advance("intel-rapl-mmio:0", 999_999);
        if step % 16 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    done.store(true, Ordering::SeqCst);
    reader.join().expect("reader");
    let interval = meter.lock().read().since(&start);
    assert_eq!(uj(interval.energy.cpu_j), written[0] + written[2]);
    assert_eq!(uj(interval.energy.ram_j), written[1] + written[3]);
    assert_eq!(uj(interval.energy.psys_j), written[4]);
    assert_eq!(uj(interval.energy.gpu_j), 0);
}

#[test]
fn windows_of_one_run_add_up_exactly() {
    let tree = server_tree();
    let (mut meter, _) = Meter::discover(&MeterConfig::powercap_only(tree.path()));
    let a = meter.read();
    tree.advance("intel-rapl:0", 3_000_000);
    let b = meter.read();
    tree.advance("intel-rapl:0", 4_000_000);
    let c = meter.read();
    assert_eq!(uj(b.since(&a).energy.cpu_j), 3_000_000);
    assert_eq!(uj(c.since(&b).energy.cpu_j), 4_000_000);
    assert_eq!(uj(c.since(&a).energy.cpu_j), 7_000_000);
}

#[test]
fn psys_replaces_packages_when_preferred() {
    let tree = server_tree();
    let mut config = MeterConfig::powercap_only(tree.path());
    config.sources.rapl_prefer_psys = true;
    let (mut meter, _) = Meter::discover(&config);
    let start = meter.read();
    tree.advance("intel-rapl:0", 1_000_000);
    tree.advance("intel-rapl:2", 5_000_000);
    let interval = meter.read().since(&start);
    assert_eq!(uj(interval.energy.cpu_j), 5_000_000);
    assert_eq!(meter.description().rapl_zones, "psys");
    assert_eq!(meter.description().ram_method.as_str(), "in_cpu");
}

#[test]
fn a_zone_that_disappears_mid_run_keeps_its_energy_so_far() {
    let tree = server_tree();
    let (mut meter, _) = Meter::discover(&MeterConfig::powercap_only(tree.path()));
    let start = meter.read();
    tree.advance("intel-rapl:1", 2_000_000);
    meter.read();
    fs::remove_file(tree.path().join("intel-rapl:1").join("energy_uj")).expect("remove");
    tree.advance("intel-rapl:0", 1_000_000);
    let interval = meter.read().since(&start);
    assert_eq!(uj(interval.energy.cpu_j), 3_000_000);
    let warnings = meter.take_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("package-1"), "{warnings:?}");
    meter.read();
    assert!(
        meter.take_warnings().is_empty(),
        "warned twice for one cause"
    );
}

#[test]
fn tracker_row_carries_rapl_energy_in_kwh() {
    let tree = server_tree();
    let output = tempfile::tempdir().expect("tempdir");
    let kwargs = [
        ("powercap_root", tree.path().display().to_string()),
        ("output_dir", output.path().display().to_string()),
        ("country_iso_code", "FRA".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), RawValue::Str(v)))
    .chain([("pue".to_owned(), RawValue::Float(1.5))])
    .collect();
    let config = Config::resolve(kwargs, Environment::default()).expect("config");
    let tracker = Tracker::new(config, Identity::default()).expect("tracker");
    tracker.start().expect("start");
    // Within what a zone could draw in the time: more is refused as implausible.
    tree.advance("intel-rapl:0", 720_000_000); // 0.2 Wh
    tree.advance("intel-rapl:0:1", 360_000_000); // 0.1 Wh
    let row = tracker.stop().expect("row");
    assert!(
        (row.cpu_energy - 0.0002 * 1.5).abs() < 1e-15,
        "{}",
        row.cpu_energy
    );
    assert!(
        (row.ram_energy - 0.0001 * 1.5).abs() < 1e-15,
        "{}",
        row.ram_energy
    );
    assert_eq!(row.cpu_method, "rapl");
    assert_eq!(row.ram_method, "rapl");
    let expected_kg = row.energy_consumed * row.intensity_g_per_kwh / 1000.0;
    assert!((row.emissions - expected_kg).abs() < 1e-18);
    let csv = fs::read_to_string(output.path().join("emissions.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 2, "{csv}");
}

#[test]
fn tracker_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tracker>();
}

fn one_package_meter() -> (FakeTree, Meter) {
    let tree = FakeTree::new();
    tree.zone("intel-rapl:0", "package-0", 1_000_000_000);
    let (meter, _) = Meter::discover(&MeterConfig::powercap_only(tree.path()));
    (tree, meter)
}

#[test]
fn readings_above_the_range_add_nothing_and_warn_once() {
    let (tree, mut meter) = one_package_meter();
    let start = meter.read();
    for bogus in [RANGE_UJ + 1_000_000_000_000, u64::MAX, RANGE_UJ + 1] {
        fs::write(
            tree.path().join("intel-rapl:0/energy_uj"),
            format!("{bogus}\n"),
        )
        .expect("w");
        meter.read();
        tree.set("intel-rapl:0", 1_000_000_000);
        meter.read();
    }
    tree.advance("intel-rapl:0", 5_000_000);
    let interval = meter.read().since(&start);
    assert_eq!(uj(interval.energy.cpu_j), 5_000_000);
    let warnings = meter.take_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("max_energy_range_uj"), "{warnings:?}");
    assert_eq!(meter.description().cpu_method.as_str(), "rapl");
}

#[test]
fn a_counter_one_joule_back_adds_no_wrap() {
    let (tree, mut meter) = one_package_meter();
    let start = meter.read();
    tree.set("intel-rapl:0", 1_000_000_000 - 1_000_000);
    meter.read();
    tree.advance("intel-rapl:0", 2_000_000);
    let interval = meter.read().since(&start);
    // Not RANGE_UJ - 1 J (262 kJ): the step back counts nothing, the rest counts.
    assert_eq!(uj(interval.energy.cpu_j), 2_000_000);
    assert_eq!(meter.take_warnings().len(), 1);
}

#[test]
fn a_forward_jump_beyond_peak_power_is_not_energy() {
    let (tree, mut meter) = one_package_meter();
    let start = meter.read();
    // 200 kJ within a millisecond: more than any package draws.
    tree.set("intel-rapl:0", 201_000_000_000);
    meter.read();
    tree.set("intel-rapl:0", 1_003_000_000);
    let interval = meter.read().since(&start);
    assert_eq!(uj(interval.energy.cpu_j), 3_000_000);
    // A counter that really went on from the jump is counted from its new value.
    tree.set("intel-rapl:0", 201_000_000_000);
    meter.read();
    tree.set("intel-rapl:0", 201_004_000_000);
    meter.read();
    tree.advance("intel-rapl:0", 1_000_000);
    let interval = meter.read().since(&start);
    assert_eq!(uj(interval.energy.cpu_j), 3_000_000 + 1_000_000);
}

#[test]
fn transient_garbage_is_retried_and_the_zone_kept() {
    let (tree, mut meter) = one_package_meter();
    let start = meter.read();
    tree.advance("intel-rapl:0", 1_000_000);
    for _ in 0..3 {
        fs::write(tree.path().join("intel-rapl:0/energy_uj"), "garbage\n").expect("garbage");
        meter.read();
    }
    tree.set("intel-rapl:0", 1_003_000_000);
    let interval = meter.read().since(&start);
    // The energy used while the reads failed is counted by the next good read.
    assert_eq!(uj(interval.energy.cpu_j), 3_000_000);
    assert_eq!(meter.description().cpu_method.as_str(), "rapl");
    assert_eq!(meter.take_warnings().len(), 1);
}

#[test]
fn a_zone_failing_read_after_read_falls_back_to_load_tdp_and_says_mixed() {
    let (tree, mut meter) = one_package_meter();
    let start = meter.read();
    tree.advance("intel-rapl:0", 1_000_000);
    meter.read();
    fs::write(tree.path().join("intel-rapl:0/energy_uj"), "garbage\n").expect("garbage");
    for _ in 0..carbonmeter::testing::sensors::rapl::GIVE_UP_AFTER_FAILURES {
        meter.read();
    }
    assert_eq!(meter.description().cpu_method.as_str(), "mixed");
    std::thread::sleep(Duration::from_millis(20));
    let interval = meter.read().since(&start);
    assert!(interval.energy.cpu_j >= 1.0, "{}", interval.energy.cpu_j);
    let warnings = meter.take_warnings();
    assert!(
        warnings.iter().any(|w| w.contains("load x TDP")),
        "{warnings:?}"
    );
}

#[test]
fn a_fifo_or_an_endless_counter_is_refused_without_blocking() {
    let (tree, mut meter) = one_package_meter();
    let counter = tree.path().join("intel-rapl:0/energy_uj");
    let start = meter.read();
    fs::remove_file(&counter).expect("remove");
    let c_path = std::ffi::CString::new(counter.to_str().expect("utf-8")).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    let began = std::time::Instant::now();
    meter.read();
    fs::remove_file(&counter).expect("remove");
    fs::write(&counter, "1".repeat(1 << 20)).expect("endless");
    meter.read();
    assert!(began.elapsed() < Duration::from_secs(1));
    fs::remove_file(&counter).expect("remove");
    tree.set("intel-rapl:0", 1_002_000_000);
    let interval = meter.read().since(&start);
    assert_eq!(uj(interval.energy.cpu_j), 2_000_000);
    let warnings = meter.take_warnings();
    assert!(
        warnings.iter().any(|w| w.contains("not a regular file")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("more than 64 bytes")),
        "{warnings:?}"
    );
}
