//! AMD GPUs through the real amd-smi code path, on a stand-in `libamd_smi.so`
//! (`fixtures/fake_amdsmi.c`, compiled here with the system `cc`) driven by a control file.

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use carbonmeter::testing::config::{Config, Environment, RawValue};
use carbonmeter::testing::gpu::{GpuConfig, GpuFault, GpuMeter, Vendor, amdsmi};
use carbonmeter::testing::sensors::{Method, TrackingMode};

/// One test's copy of the fake (the loader keeps one instance per file), its control file
/// beside it, and an empty hwmon root so the machine's own sysfs stays out of the test.
struct FakeAmdSmi {
    dir: tempfile::TempDir,
    library: PathBuf,
}

impl FakeAmdSmi {
    fn new(control: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let library = dir.path().join("libamd_smi.so");
        fs::copy(common::stand_in("fake_amdsmi.c", &[]), &library).expect("copy fake");
        fs::create_dir(dir.path().join("hwmon")).expect("hwmon root");
        let fake = Self { dir, library };
        fake.set(control);
        fake
    }

    fn set(&self, control: &str) {
        let control_path = PathBuf::from(format!("{}.ctl", self.library.display()));
        let temporary = control_path.with_extension("tmp");
        fs::write(&temporary, control).expect("control");
        fs::rename(&temporary, &control_path).expect("rename");
    }

    fn config(&self) -> GpuConfig {
        GpuConfig {
            nvml_library: Some(self.dir.path().join("no-libnvidia-ml.so.1")),
            amdsmi_library: Some(self.library.clone()),
            hwmon_root: self.dir.path().join("hwmon"),
            ..GpuConfig::default()
        }
    }
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Only amd-smi, on this fake: the NVML and hwmon backends find nothing.
fn discover(fake: &FakeAmdSmi, config: &GpuConfig) -> (GpuMeter, Vec<String>) {
    let mut warnings = Vec::new();
    let _ = fake;
    let meter = GpuMeter::discover(config, TrackingMode::Machine, &mut warnings);
    // The missing NVML library was named: its one warning is not this test's subject.
    warnings.retain(|line| !line.contains("NVML"));
    (meter, warnings)
}

/// An MI250X: two GCDs on one OAM; the first counts (300 W), the second reports no power and a
/// counter that never moves, as CodeCarbon #1097 describes.
fn mi250x(counter_0: u64) -> String {
    format!(
        "count 2\nper_socket 2\nbdf 0 0 c1 0 0\nbdf 1 0 c6 0 0\n\
         counter 0 {counter_0}\nramp 0 {} 300 0\npower 1 0\nutil 0 80\nutil 1 20\nvram 0 1024 65536\n",
        now_s() - 1.0
    )
}

#[test]
fn each_gcd_is_a_device_and_the_silent_one_is_unmeasured_with_one_warning() {
    let fake = FakeAmdSmi::new(&mi250x(0));
    let (mut gpus, warnings) = discover(&fake, &fake.config());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("amd GPU 1 (AMD Instinct MI250X) reports neither energy nor power"),
        "{warnings:?}"
    );
    let devices = gpus.devices().to_vec();
    assert_eq!(devices.len(), 2);
    assert_eq!(devices[0].vendor, Vendor::Amd);
    assert_eq!(devices[0].pci_bus_id.as_deref(), Some("0000:c1:00.0"));
    assert_eq!(devices[1].pci_bus_id.as_deref(), Some("0000:c6:00.0"));
    assert_eq!(gpus.method(), Method::Mixed);
    let start = gpus.read(0.0, 0, &mut |line| panic!("{line}"));
    std::thread::sleep(Duration::from_millis(200));
    let end = gpus.read(0.2, 200_000, &mut |line| panic!("{line}"));
    let interval = end.since(&start);
    assert_eq!(interval.devices[0].method, Method::GpuCounter);
    assert_eq!(interval.devices[1].method, Method::Unmeasured);
    assert!(interval.devices[0].energy_j > 0.0);
    // Both GCDs report their activity, measured or not.
    assert!((interval.utilization_percent - 50.0).abs() < 1e-9);
    let json: serde_json::Value =
        serde_json::from_str(&interval.breakdown_json(1.0)).expect("json");
    assert_eq!(json[1]["vendor"], "amd");
    assert!(json[1]["energy_kwh"].is_null());
}

#[test]
fn counter_energy_is_exact_to_the_counts_times_their_resolution() {
    let fake = FakeAmdSmi::new(&mi250x(1_000_000));
    let (mut gpus, _) = discover(&fake, &fake.config());
    // Stop the ramp: from here on the counter is what the control file says.
    let fixed = |counter: u64| format!("count 1\ncounter 0 {counter}\npower 0 300\n");
    fake.set(&fixed(1_000_000));
    let start = gpus.read(0.0, 0, &mut |line| panic!("{line}"));
    fake.set(&fixed(3_000_000));
    let end = gpus.read(1.0, 1_000_000, &mut |line| panic!("{line}"));
    // 2e6 counts x 15.3 µJ as the f32 the library returns, to the mJ.
    let resolution_uj = f64::from(15.3_f32);
    let expected_mj = (3e6 * resolution_uj / 1e3).floor() - (1e6 * resolution_uj / 1e3).floor();
    let measured_mj = (end.since(&start).devices[0].energy_j * 1e3).round();
    assert!(
        (measured_mj - expected_mj).abs() < f64::EPSILON,
        "{measured_mj} {expected_mj}"
    );
}

#[test]
fn a_counter_frozen_at_discovery_gives_way_to_polled_power_on_both_struct_layouts() {
    for (version, average) in [(25, ""), (24, "average 0\n"), (24, "")] {
        let fake = FakeAmdSmi::new(&format!(
            "version {version}\ncount 1\ncounter 0 42\npower 0 250\n{average}"
        ));
        let (mut gpus, warnings) = discover(&fake, &fake.config());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("energy counter did not move over 0.2 s"),
            "{warnings:?}"
        );
        assert_eq!(gpus.method(), Method::GpuPolled);
        let start = gpus.read(10.0, 10_000_000, &mut |line| panic!("{line}"));
        let end = gpus.read(12.0, 12_000_000, &mut |line| panic!("{line}"));
        let interval = end.since(&start);
        // 250 W held for 2 s, whichever field and layout carried it.
        assert!(
            (interval.devices[0].energy_j - 500.0).abs() < 1e-9,
            "version {version}: {}",
            interval.devices[0].energy_j
        );
        assert_eq!(interval.method(), Method::GpuPolled);
        // A 0 W reading mid-run is a reading, not a failure: the power stays polled.
        fake.set(&format!(
            "version {version}\ncount 1\ncounter 0 42\npower 0 0\n{average}"
        ));
        let later = gpus.read(13.0, 13_000_000, &mut |line| panic!("{line}"));
        assert_eq!(later.since(&end).method(), Method::GpuPolled);
    }
}

#[test]
fn a_counter_that_freezes_mid_run_hands_over_from_its_last_movement() {
    let fake = FakeAmdSmi::new(&format!("count 1\nramp 0 {} 200 0\n", now_s()));
    let (mut gpus, warnings) = discover(&fake, &fake.config());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(gpus.method(), Method::GpuCounter);
    // From the first read on the counter stands still while the GCD draws 200 W.
    fake.set("count 1\ncounter 0 100000000\npower 0 200\n");
    let mut lines = Vec::new();
    let start = gpus.read(0.0, 0, &mut |line| lines.push(line));
    let mut t_s = 0.0;
    while lines.is_empty() && t_s < amdsmi::FROZEN_AFTER_S + 2.0 {
        std::thread::sleep(Duration::from_millis(100));
        t_s += 0.1;
        gpus.read(t_s, (t_s * 1e6) as u64, &mut |line| lines.push(line));
    }
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("frozen at"), "{lines:?}");
    assert!(
        lines[0].contains("measured by polling its power"),
        "{lines:?}"
    );
    t_s += 0.1;
    let end = gpus.read(t_s, (t_s * 1e6) as u64, &mut |line| lines.push(line));
    let interval = end.since(&start);
    // 200 W from the counter's last movement (the first read) on: nothing lost to the
    // seconds it stood still before it was found frozen.
    let energy_j = interval.devices[0].energy_j;
    assert!(
        (energy_j - 200.0 * t_s).abs() < 1e-6,
        "{energy_j} J over {t_s} s"
    );
    assert_eq!(interval.method(), Method::Mixed);
    assert_eq!(lines.len(), 1, "{lines:?}");
}

#[test]
fn a_lost_gcd_keeps_its_energy_and_warns_once_and_a_reset_counts_from_zero() {
    let t0 = now_s() - 1.0;
    let fake = FakeAmdSmi::new(&format!(
        "count 2\nramp 0 {t0} 100 0\nramp 1 {t0} 100 0\nbdf 1 0 c6 0 0\n"
    ));
    let (mut gpus, _) = discover(&fake, &fake.config());
    let fixed = |a: u64, b: u64, extra: &str| {
        format!("count 2\ncounter 0 {a}\ncounter 1 {b}\npower 0 100\npower 1 100\n{extra}")
    };
    let mut lines = Vec::new();
    fake.set(&fixed(100_000, 100_000, ""));
    let start = gpus.read(0.0, 0, &mut |line| lines.push(line));
    fake.set(&fixed(200_000, 200_000, ""));
    gpus.read(0.1, 100_000, &mut |line| lines.push(line));
    // GCD 1 falls off the bus; GCD 0's counter resets (driver reload) to 1000 counts.
    fake.set(&fixed(1_000, 0, "lost 1\n"));
    gpus.read(0.2, 200_000, &mut |line| lines.push(line));
    fake.set(&fixed(2_000, 0, "lost 1\n"));
    let end = gpus.read(0.3, 300_000, &mut |line| lines.push(line));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("GPU 1"), "{lines:?}");
    assert!(lines[0].contains("fell off the bus (amd-smi"), "{lines:?}");
    let interval = end.since(&start);
    let j = |counts: f64| counts * f64::from(15.3_f32) / 1e6;
    assert!((interval.devices[0].energy_j - j(100_000.0 + 2_000.0)).abs() < 2e-3);
    assert!((interval.devices[1].energy_j - j(100_000.0)).abs() < 2e-3);
    assert_eq!(
        GpuFault::Lost { library: "amd-smi" }.to_string(),
        "the GPU fell off the bus (amd-smi: GPU is lost)"
    );
}

#[test]
fn rocr_then_hip_visible_devices_and_gpu_ids_select_gcds() {
    let fake = FakeAmdSmi::new("count 4\nper_socket 2\n");
    let chosen = |config: GpuConfig| {
        let (gpus, warnings) = discover(&fake, &config);
        assert!(
            warnings.iter().all(|w| w.contains("neither")),
            "{warnings:?}"
        );
        gpus.devices().iter().map(|d| d.index).collect::<Vec<_>>()
    };
    let base = fake.config();
    assert_eq!(chosen(base.clone()), [0, 1, 2, 3]);
    let rocr = GpuConfig {
        rocr_visible_devices: Some("1,3".into()),
        hip_visible_devices: Some("1".into()),
        ..base.clone()
    };
    assert_eq!(chosen(rocr), [3]);
    let ids = GpuConfig {
        gpu_ids: Some(vec!["2".into()]),
        rocr_visible_devices: Some(String::new()),
        ..base.clone()
    };
    assert_eq!(chosen(ids), [2]);
    let hidden = GpuConfig {
        hip_visible_devices: Some(String::new()),
        ..base
    };
    assert_eq!(chosen(hidden), Vec::<u32>::new());
}

#[test]
fn a_library_that_does_not_initialise_is_one_warning_and_no_gpu() {
    let fake = FakeAmdSmi::new("init_error 34\ncount 1\n");
    let (gpus, warnings) = discover(&fake, &fake.config());
    assert!(gpus.devices().is_empty());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("did not initialise"), "{warnings:?}");
}

#[test]
fn settings_and_variables_reach_the_amd_backend() {
    let env = Environment {
        vars: [
            (
                "CARBONMETER_AMDSMI_LIBRARY",
                "/opt/rocm-6.4.0/lib/libamd_smi.so",
            ),
            ("CARBONMETER_HWMON_ROOT", "/host/sys/class/hwmon"),
            ("ROCR_VISIBLE_DEVICES", "0,1"),
            ("HIP_VISIBLE_DEVICES", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        cwd: None,
        home: None,
    };
    let kwargs = [("save_to_file".to_owned(), RawValue::Bool(false))]
        .into_iter()
        .collect();
    let gpu = Config::resolve(kwargs, env).expect("config").meter.gpu;
    assert_eq!(
        gpu.amdsmi_library,
        Some(PathBuf::from("/opt/rocm-6.4.0/lib/libamd_smi.so"))
    );
    assert_eq!(gpu.hwmon_root, PathBuf::from("/host/sys/class/hwmon"));
    assert_eq!(gpu.rocr_visible_devices.as_deref(), Some("0,1"));
    assert_eq!(gpu.hip_visible_devices.as_deref(), Some("1"));
    let default = Config::resolve(
        [("save_to_file".to_owned(), RawValue::Bool(false))]
            .into_iter()
            .collect(),
        Environment::default(),
    )
    .expect("config")
    .meter
    .gpu;
    assert_eq!(default.amdsmi_library, None);
    assert_eq!(default.hwmon_root, PathBuf::from("/sys/class/hwmon"));
}
