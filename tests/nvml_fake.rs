//! GPUs through the real nvml-wrapper code path, on a stand-in NVML library
//! (`fixtures/fake_nvml.c`, compiled here with the system `cc`) driven by a control file.

mod common;

use std::fmt::Write;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use carbonmeter::testing::config::{Config, Environment, RawValue};
use carbonmeter::testing::gpu::{
    DeviceRead, Discovery, GpuBackend, GpuConfig, GpuDevice, GpuFault, GpuMeter, Vendor, Wanted,
};
use carbonmeter::testing::meter::{Meter, MeterConfig, Snapshot};
use carbonmeter::testing::run::{Identity, Tracker};
use carbonmeter::testing::sensors::{Method, TrackingMode};

/// One test's copy of the fake, with its control file beside it (`<library>.ctl`). A copy,
/// not a link: the loader keeps one instance per file, and tests run in parallel.
struct FakeNvml {
    _dir: tempfile::TempDir,
    library: PathBuf,
}

impl FakeNvml {
    fn new(control: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let library = dir.path().join("libnvidia-ml.so.1");
        fs::copy(common::stand_in("fake_nvml.c", &[]), &library).expect("copy fake");
        let fake = Self { _dir: dir, library };
        fake.set(control);
        fake
    }

    /// Replaces the control file atomically: the library re-reads it on every call.
    fn set(&self, control: &str) {
        let control_path = PathBuf::from(format!("{}.ctl", self.library.display()));
        let temporary = control_path.with_extension("tmp");
        fs::write(&temporary, control).expect("control");
        fs::rename(&temporary, &control_path).expect("rename");
    }

    fn gpu_config(&self) -> GpuConfig {
        GpuConfig {
            nvml_library: Some(self.library.clone()),
            ..GpuConfig::default()
        }
    }
}

fn meter_config(gpu: GpuConfig) -> MeterConfig {
    let mut config = MeterConfig::powercap_only(Path::new("/nonexistent-powercap"));
    config.sources.force_cpu_power_w = Some(0.0);
    config.sources.force_ram_power_w = Some(0.0);
    config.gpu = gpu;
    config
}

fn devices(count: usize) -> String {
    (0..count).fold(format!("count {count}\n"), |mut control, i| {
        let uuid = format!("GPU-{i}a2b3c4d-0000-1111-2222-33334444555{i}");
        let _ = write!(control, "name {i} NVIDIA A100-SXM4-40GB\nuuid {i} {uuid}\n");
        control
    })
}

/// `devices(count)` plus `line(i)` for each device.
fn devices_with(count: usize, line: impl Fn(usize) -> String) -> String {
    (0..count).fold(devices(count), |control, i| control + &line(i))
}

fn mj(energy_j: f64) -> u64 {
    (energy_j * 1e3).round() as u64
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

fn selected(snapshot: &Snapshot) -> Vec<u32> {
    snapshot.gpu.info.iter().map(|info| info.index).collect()
}

#[test]
fn no_device_means_no_gpu_and_no_warning() {
    let fake = FakeNvml::new("count 0\n");
    let (mut meter, warnings) = Meter::discover(&meter_config(fake.gpu_config()));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(meter.description().gpu_method, Method::None);
    let start = meter.read();
    let interval = meter.read().since(&start);
    assert_eq!(interval.gpu.method(), Method::None);
    assert_eq!(interval.gpu.count(), 0);
    assert_eq!(interval.gpu.breakdown_json(1.0), "[]");
    assert!(meter.gpu_poll_interval_s().is_infinite());
}

#[test]
fn a_named_library_that_cannot_load_or_init_is_one_warning() {
    let fake = FakeNvml::new("init_error 9\ncount 1\n");
    let (_, warnings) = Meter::discover(&meter_config(fake.gpu_config()));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("NVIDIA driver is not loaded"),
        "{warnings:?}"
    );

    let missing = GpuConfig {
        nvml_library: Some(PathBuf::from("/nonexistent/libnvidia-ml.so.1")),
        ..GpuConfig::default()
    };
    let (mut meter, warnings) = Meter::discover(&meter_config(missing));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("/nonexistent/libnvidia-ml.so.1"));
    meter.read();
    assert!(meter.take_warnings().is_empty());
}

#[test]
fn counter_path_is_exact_to_the_millijoule() {
    let fake = FakeNvml::new(&(devices(1) + "energy 0 987654321\npower 0 250000\nutil 0 40 10\n"));
    let (mut meter, warnings) = Meter::discover(&meter_config(fake.gpu_config()));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(meter.description().gpu_method, Method::GpuCounter);
    let a = meter.read();
    fake.set(&(devices(1) + "energy 0 987777777\npower 0 250000\nutil 0 40 10\n"));
    let b = meter.read();
    fake.set(&(devices(1) + "energy 0 988000001\npower 0 250000\nutil 0 40 10\n"));
    let c = meter.read();
    assert_eq!(mj(b.since(&a).energy.gpu_j), 123_456);
    assert_eq!(mj(c.since(&b).energy.gpu_j), 222_224);
    assert_eq!(mj(c.since(&a).energy.gpu_j), 345_680);
    let interval = c.since(&a);
    assert_eq!(interval.gpu.method(), Method::GpuCounter);
    assert_eq!(interval.gpu.count(), 1);
    assert_eq!(interval.gpu.model(), "1 x NVIDIA A100-SXM4-40GB");
    assert!((interval.gpu.utilization_percent - 40.0).abs() < 1e-9);
}

#[test]
fn utilisation_is_time_weighted_and_gaps_count_for_nothing() {
    let busy = |percent: u32| devices(1) + &format!("energy 0 0\nutil 0 {percent} 0\n");
    let fake = FakeNvml::new(&busy(80));
    let (mut meter, _) = Meter::discover(&meter_config(fake.gpu_config()));
    let a = meter.read();
    std::thread::sleep(Duration::from_millis(30));
    let b = meter.read();
    fake.set(&(devices(1) + "energy 0 0\nutil_error 0 3\n"));
    std::thread::sleep(Duration::from_millis(30));
    meter.read();
    fake.set(&busy(20));
    std::thread::sleep(Duration::from_millis(30));
    let d = meter.read();
    std::thread::sleep(Duration::from_millis(60));
    let e = meter.read();
    let [ta, tb, td, te] = [a.gpu.t_s, b.gpu.t_s, d.gpu.t_s, e.gpu.t_s];
    let expected = (80.0 * (tb - ta) + 20.0 * (te - td)) / (tb - ta + te - td);
    let measured = e.since(&a).gpu.utilization_percent;
    assert!(
        (measured - expected).abs() < 1e-9,
        "{measured} vs {expected}"
    );
}

#[test]
fn four_devices_are_measured_apart() {
    let control = devices_with(4, |i| {
        format!(
            "energy {i} {}
power {i} 100000
",
            1000 * i
        )
    });
    let fake = FakeNvml::new(&control);
    let (mut meter, warnings) = Meter::discover(&meter_config(fake.gpu_config()));
    assert!(warnings.is_empty(), "{warnings:?}");
    let start = meter.read();
    assert_eq!(selected(&start), [0, 1, 2, 3]);
    let control = devices_with(4, |i| {
        format!(
            "energy {i} {}
power {i} 100000
",
            1000 * i + 500 * (i + 1)
        )
    });
    fake.set(&control);
    let interval = meter.read().since(&start);
    let per_device: Vec<u64> = interval
        .gpu
        .devices
        .iter()
        .map(|d| mj(d.energy_j))
        .collect();
    assert_eq!(per_device, [500, 1000, 1500, 2000]);
    assert_eq!(mj(interval.energy.gpu_j), 5000);
    assert_eq!(interval.gpu.model(), "4 x NVIDIA A100-SXM4-40GB");
    let breakdown: serde_json::Value =
        serde_json::from_str(&interval.gpu.breakdown_json(1.0)).expect("json");
    assert_eq!(breakdown[3]["index"], 3);
    assert_eq!(
        breakdown[3]["uuid"],
        "GPU-3a2b3c4d-0000-1111-2222-333344445553"
    );
    assert_eq!(breakdown[3]["method"], "counter");
    let kwh = breakdown[2]["energy_kwh"].as_f64().expect("number");
    assert!((kwh - 1.5 / 3.6e6).abs() < 1e-15, "{kwh}");
}

/// Reads the meter every `period` for `duration`, as the sampler does; returns the first and
/// last snapshots and the wall-clock bounds of those two reads.
fn sample(
    meter: &mut Meter,
    period: Duration,
    duration: Duration,
) -> (Snapshot, Snapshot, [f64; 4]) {
    let before_first = now_s();
    let first = meter.read();
    let after_first = now_s();
    let started = Instant::now();
    let mut last = first.clone();
    let mut bounds = [before_first, after_first, 0.0, 0.0];
    while started.elapsed() < duration {
        std::thread::sleep(period);
        bounds[2] = now_s();
        last = meter.read();
        bounds[3] = now_s();
    }
    (first, last, bounds)
}

#[test]
fn polled_path_integrates_a_ramp_within_the_trapezoid_error() {
    // 100 W rising by 50 W/s: the trapezoid is exact on a line, so the only error left is when
    // each poll happened, which the wall-clock bounds of the first and last reads bracket.
    let (p0_mw, slope_mw_per_s) = (100_000.0, 50_000.0);
    let t0 = now_s();
    let fake = FakeNvml::new(
        &(devices(1) + &format!("energy_error 0 3\nramp 0 {t0:.6} {p0_mw} {slope_mw_per_s}\n")),
    );
    let (mut meter, warnings) = Meter::discover(&meter_config(fake.gpu_config()));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(meter.description().gpu_method, Method::GpuPolled);
    assert!((meter.gpu_poll_interval_s() - 0.1).abs() < 1e-12);
    let (first, last, [a0, a1, b0, b1]) = sample(
        &mut meter,
        Duration::from_millis(100),
        Duration::from_secs(2),
    );
    let integral_j = |from: f64, to: f64| {
        let e = |t: f64| (p0_mw * (t - t0) + 0.5 * slope_mw_per_s * (t - t0).powi(2)) / 1000.0;
        e(to) - e(from)
    };
    let measured_j = last.since(&first).energy.gpu_j;
    let (low_j, high_j) = (integral_j(a1, b0), integral_j(a0, b1));
    // Power is reported in whole mW (0.5 mW x 2 s of rounding), and a busy machine may delay a
    // power call after its time stamp: 2 ms of the ramp's 50 W/s over 2 s.
    let slack_j = 0.001 + slope_mw_per_s / 1000.0 * 0.002 * 2.0;
    assert!(
        measured_j > low_j - slack_j && measured_j < high_j + slack_j,
        "{measured_j} J not in [{low_j}, {high_j}]"
    );
    let exact_j = integral_j(f64::midpoint(a0, a1), f64::midpoint(b0, b1));
    eprintln!(
        "polled ramp: {measured_j:.4} J vs {exact_j:.4} J exact ({:+.4} %)",
        100.0 * (measured_j - exact_j) / exact_j
    );
    assert_eq!(last.since(&first).gpu.method(), Method::GpuPolled);
}

#[test]
fn mixed_counter_and_polled_devices() {
    let fake = FakeNvml::new(
        &(devices(2) + "energy 0 1000\npower 0 300000\nenergy_error 1 3\npower 1 200000\n"),
    );
    let (mut meter, warnings) = Meter::discover(&meter_config(fake.gpu_config()));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(meter.description().gpu_method, Method::Mixed);
    let start = meter.read();
    std::thread::sleep(Duration::from_millis(200));
    fake.set(&(devices(2) + "energy 0 61000\npower 0 300000\nenergy_error 1 3\npower 1 200000\n"));
    let end = meter.read();
    let interval = end.since(&start);
    assert_eq!(interval.gpu.method(), Method::Mixed);
    assert_eq!(interval.gpu.devices[0].method, Method::GpuCounter);
    assert_eq!(interval.gpu.devices[1].method, Method::GpuPolled);
    assert_eq!(mj(interval.gpu.devices[0].energy_j), 60_000);
    let expected_j = 200.0 * (end.gpu.t_s - start.gpu.t_s);
    assert!((interval.gpu.devices[1].energy_j - expected_j).abs() < 1e-6 * expected_j);
}

#[test]
fn disagreement_between_counter_and_polling_warns_once_with_both_figures() {
    let t0 = now_s();
    let ramp = format!("ramp 0 {t0:.6} 150000 0\nramp 1 {t0:.6} 150000 0\n");
    let fake = FakeNvml::new(&(devices(2) + &ramp + "power_scale 1 1.5\n"));
    let gpu = GpuConfig {
        cross_check_window_s: 0.3,
        ..fake.gpu_config()
    };
    let (mut meter, warnings) = Meter::discover(&meter_config(gpu));
    assert!(warnings.is_empty(), "{warnings:?}");
    let (_, _, _) = sample(
        &mut meter,
        Duration::from_millis(50),
        Duration::from_millis(1200),
    );
    let warnings = meter.take_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("GPU 1 "), "{warnings:?}");
    assert!(
        warnings[0].contains("energy counter measured"),
        "{warnings:?}"
    );
    assert!(warnings[0].contains("polled power"), "{warnings:?}");
    assert!(
        warnings[0].contains("50 % of the counter's"),
        "{warnings:?}"
    );
    sample(
        &mut meter,
        Duration::from_millis(50),
        Duration::from_millis(700),
    );
    assert!(meter.take_warnings().is_empty(), "warned twice");
}

fn visible(fake: &FakeNvml, control: &str, cuda_visible_devices: &str) -> (Vec<u32>, Vec<String>) {
    fake.set(control);
    let gpu = GpuConfig {
        cuda_visible_devices: Some(cuda_visible_devices.to_owned()),
        ..fake.gpu_config()
    };
    let (mut meter, warnings) = Meter::discover(&meter_config(gpu));
    (selected(&meter.read()), warnings)
}

#[test]
fn cuda_visible_devices_selects_by_index_uuid_and_mig() {
    let control = devices(4)
        + "mig 3 1\nmig_uuid 3 MIG-7e5c1a90-1111-5a1b-9c2d-aaaabbbbcccc\n"
        + "mig_uuid 3 MIG-7e5c1a90-2222-5a1b-9c2d-aaaabbbbcccc\n";
    let fake = FakeNvml::new(&control);
    assert_eq!(visible(&fake, &control, "2,0"), (vec![2, 0], vec![]));
    assert_eq!(
        visible(&fake, &control, "GPU-1a2b3c4d-0000-1111-2222-333344445551"),
        (vec![1], vec![])
    );
    // CUDA accepts a unique prefix of a UUID.
    assert_eq!(visible(&fake, &control, "GPU-2a2b"), (vec![2], vec![]));
    assert_eq!(visible(&fake, &control, "").0, Vec::<u32>::new());
    assert!(visible(&fake, &control, "").1.is_empty());

    // Two instances of GPU 3: measured once, as the whole GPU, with a warning for each.
    let (chosen, warnings) = visible(
        &fake,
        &control,
        "MIG-7e5c1a90-1111-5a1b-9c2d-aaaabbbbcccc,MIG-7e5c1a90-2222-5a1b-9c2d-aaaabbbbcccc",
    );
    assert_eq!(chosen, [3]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("are MIG instance(s) of GPU 3"),
        "{warnings:?}"
    );
    assert!(
        warnings[0].contains("MIG-7e5c1a90-2222-5a1b-9c2d-aaaabbbbcccc"),
        "{warnings:?}"
    );
    let (chosen, warnings) = visible(
        &fake,
        &control,
        "MIG-GPU-0a2b3c4d-0000-1111-2222-333344445550/1/0",
    );
    assert_eq!(chosen, [0]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");

    // `-1` hides every GPU, quietly.
    assert_eq!(visible(&fake, &control, "-1,0"), (vec![], vec![]));
    // As in CUDA, an entry that names no GPU hides it and everything after it.
    let (chosen, warnings) = visible(&fake, &control, "1,7,2");
    assert_eq!(chosen, [1]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("\"7\""), "{warnings:?}");
}

#[test]
fn gpu_ids_win_over_cuda_visible_devices() {
    let fake = FakeNvml::new(&devices(4));
    let gpu = GpuConfig {
        gpu_ids: Some(vec![
            "3".into(),
            "GPU-1a2b3c4d-0000-1111-2222-333344445551".into(),
        ]),
        cuda_visible_devices: Some("0".into()),
        ..fake.gpu_config()
    };
    let (mut meter, warnings) = Meter::discover(&meter_config(gpu));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(selected(&meter.read()), [3, 1]);
}

#[test]
fn a_device_without_energy_or_power_is_listed_unmeasured_never_as_zero() {
    let fake = FakeNvml::new(
        &(devices(2)
            + "energy 0 5\npower 0 1000\nenergy_error 1 3\npower_error 1 3\nutil_error 1 3\n"),
    );
    let (mut meter, warnings) = Meter::discover(&meter_config(fake.gpu_config()));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("GPU 1"), "{warnings:?}");
    assert!(
        warnings[0].contains("neither energy nor power"),
        "{warnings:?}"
    );
    let start = meter.read();
    let interval = meter.read().since(&start);
    assert_eq!(interval.gpu.count(), 1);
    assert_eq!(interval.gpu.devices[1].method, Method::Unmeasured);
    // One counted, one unmeasured: `mixed`, and gpu_devices says which is which.
    assert_eq!(interval.gpu.method(), Method::Mixed);
    let devices: serde_json::Value =
        serde_json::from_str(&interval.gpu.breakdown_json(1.0)).expect("json");
    assert_eq!(devices[1]["method"], "unmeasured");
    assert_eq!(devices[1]["vendor"], "nvidia");
    assert!(devices[1]["energy_kwh"].is_null(), "{devices}");
    assert!(devices[0]["energy_kwh"].is_number(), "{devices}");
    assert!(meter.take_warnings().is_empty());
}

#[test]
fn a_board_whose_nvml_answers_not_supported_is_unmeasured_with_one_warning() {
    // Jetson Orin / GB10 without rails: NVML initialises, power and energy say NotSupported.
    let fake = FakeNvml::new(&(devices(1) + "energy_error 0 3\npower_error 0 3\n"));
    let (mut meter, warnings) = Meter::discover(&meter_config(fake.gpu_config()));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("nvidia GPU 0"), "{warnings:?}");
    assert_eq!(meter.description().gpu_method, Method::Unmeasured);
    let start = meter.read();
    let interval = meter.read().since(&start);
    assert_eq!(interval.gpu.method(), Method::Unmeasured);
    assert_eq!(interval.gpu.count(), 0);
    assert!(meter.take_warnings().is_empty());
}

#[test]
fn a_gpu_broken_at_start_is_warned_about_only_when_selected() {
    let control = devices(2) + "energy 0 0\nlost 1\n";
    let fake = FakeNvml::new(&control);
    let (chosen, warnings) = visible(&fake, &control, "0");
    assert_eq!((chosen, warnings), (vec![0], vec![]));
    let (chosen, warnings) = visible(&fake, &control, "1,0");
    assert_eq!(chosen, [0]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("GPU 1 skipped: the GPU fell off the bus"));
    let (mut meter, warnings) = Meter::discover(&meter_config(fake.gpu_config()));
    assert_eq!(selected(&meter.read()), [0]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
}

#[test]
fn a_gpu_lost_mid_run_keeps_its_energy_and_warns_once() {
    let fake = FakeNvml::new(&(devices(2) + "energy 0 0\nenergy 1 0\npower_error 0 3\n"));
    let (mut meter, _) = Meter::discover(&meter_config(fake.gpu_config()));
    let start = meter.read();
    fake.set(&(devices(2) + "energy 0 1000\nenergy 1 2000\n"));
    meter.read();
    fake.set(&(devices(2) + "energy 0 4000\nenergy 1 9000\nlost 1\n"));
    let lost = meter.read();
    let warnings = meter.take_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("GPU 1") && warnings[0].contains("fell off the bus"));
    fake.set(&(devices(2) + "energy 0 6000\nenergy 1 9000\nlost 1\n"));
    let end = meter.read();
    assert!(meter.take_warnings().is_empty(), "warned twice");
    // A counter-only GPU (no power reading) that is lost warns too.
    fake.set(&(devices(2) + "energy 0 6000\nenergy 1 9000\nlost 0\nlost 1\n"));
    meter.read();
    let warnings = meter.take_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("GPU 0 "), "{warnings:?}");
    let interval = end.since(&start);
    assert_eq!(mj(interval.gpu.devices[0].energy_j), 6000);
    assert_eq!(mj(interval.gpu.devices[1].energy_j), 2000);
    assert_eq!(interval.gpu.devices[1].method, Method::GpuCounter);
    // A window wholly after the loss does not count the lost GPU.
    let after = end.since(&lost);
    assert_eq!(after.gpu.count(), 1);
    assert_eq!(after.gpu.devices[1].method, Method::None);
}

#[test]
fn a_counter_reset_counts_the_energy_since_the_reset() {
    let fake = FakeNvml::new(&(devices(1) + "energy 0 5000000\n"));
    let (mut meter, _) = Meter::discover(&meter_config(fake.gpu_config()));
    let start = meter.read();
    fake.set(&(devices(1) + "energy 0 5000500\n"));
    meter.read();
    fake.set(&(devices(1) + "energy 0 200\n"));
    let end = meter.read();
    assert_eq!(mj(end.since(&start).energy.gpu_j), 700);
}

#[test]
fn a_counter_that_fails_hands_over_to_polled_power() {
    let fake = FakeNvml::new(&(devices(1) + "energy 0 0\npower 0 100000\n"));
    let (mut meter, _) = Meter::discover(&meter_config(fake.gpu_config()));
    let start = meter.read();
    fake.set(&(devices(1) + "energy 0 3000\npower 0 100000\n"));
    let before = meter.read();
    fake.set(&(devices(1) + "energy_error 0 999\npower 0 100000\n"));
    std::thread::sleep(Duration::from_millis(100));
    meter.read();
    std::thread::sleep(Duration::from_millis(100));
    let end = meter.read();
    let warnings = meter.take_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("polling its power"), "{warnings:?}");
    let interval = end.since(&start);
    assert_eq!(interval.gpu.devices[0].method, Method::Mixed);
    let polled_j = 100.0 * (end.gpu.t_s - before.gpu.t_s);
    assert!((interval.gpu.devices[0].energy_j - (3.0 + polled_j)).abs() < 1e-6);
    assert_eq!(end.since(&before).gpu.method(), Method::Mixed);
    // A quantity that failed once is not asked again, even when the device answers again.
    fake.set(&(devices(1) + "energy 0 9000\npower 0 100000\n"));
    std::thread::sleep(Duration::from_millis(50));
    let again = meter.read();
    let polled_again_j = 100.0 * (again.gpu.t_s - end.gpu.t_s);
    let since_end = again.since(&end);
    assert!((since_end.gpu.devices[0].energy_j - polled_again_j).abs() < 1e-6);
    assert_eq!(since_end.gpu.devices[0].method, Method::GpuPolled);
    assert!(meter.take_warnings().is_empty());
}

#[test]
fn process_mode_counts_only_gpus_running_this_process_tree() {
    let pid = std::process::id();
    let control = devices(3)
        + &format!("energy 0 0\nenergy 1 0\nenergy 2 0\nprocs 0 {pid}\ngprocs 2 {pid}\n")
        + "procs 1 1\n";
    let fake = FakeNvml::new(&control);
    let mut config = meter_config(fake.gpu_config());
    config.sources.tracking_mode = TrackingMode::Process;
    let (mut meter, _) = Meter::discover(&config);
    let start = meter.read();
    let later = control.replace(
        "energy 0 0\nenergy 1 0\nenergy 2 0",
        "energy 0 10\nenergy 1 20\nenergy 2 30",
    );
    fake.set(&later);
    let interval = meter.read().since(&start);
    assert_eq!(interval.gpu.count(), 2);
    assert_eq!(mj(interval.energy.gpu_j), 40);
    assert_eq!(interval.gpu.devices[1].method, Method::None);
}

#[test]
fn tracker_row_fills_codecarbon_gpu_columns_and_ours() {
    let fake = FakeNvml::new(
        &(devices(2) + "energy 0 0\nenergy 1 0\npower 0 1\npower 1 1\nutil 0 30 0\nutil 1 50 0\n"),
    );
    let output = tempfile::tempdir().expect("tempdir");
    let kwargs = [
        ("nvml_library", fake.library.display().to_string()),
        ("output_dir", output.path().display().to_string()),
        ("country_iso_code", "FRA".to_owned()),
        ("powercap_root", "/nonexistent-powercap".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), RawValue::Str(v)))
    .chain([
        (
            "gpu_ids".to_owned(),
            RawValue::List(vec!["1".into(), "0".into()]),
        ),
        ("pue".to_owned(), RawValue::Float(1.5)),
    ])
    .collect();
    let config = Config::resolve(kwargs, Environment::default()).expect("config");
    let tracker = Tracker::new(config, Identity::default()).expect("tracker");
    tracker.start().expect("start");
    std::thread::sleep(Duration::from_millis(300));
    fake.set(&(devices(2) + "energy 0 3600000\nenergy 1 7200000\npower 0 1\npower 1 1\nutil 0 30 0\nutil 1 50 0\n"));
    let row = tracker.stop().expect("row");
    assert_eq!(row.gpu_count, 2);
    assert_eq!(row.gpu_model, "2 x NVIDIA A100-SXM4-40GB");
    assert_eq!(row.gpu_method, "counter");
    assert!(
        (row.gpu_energy - 0.003 * 1.5).abs() < 1e-12,
        "{}",
        row.gpu_energy
    );
    assert!((row.gpu_power - 10_800.0 * 1.5 / row.duration).abs() < 1e-6 * row.gpu_power);
    assert!((row.gpu_utilization_percent - 40.0).abs() < 1e-9);
    let breakdown: serde_json::Value = serde_json::from_str(&row.gpu_devices).expect("json");
    assert_eq!(breakdown[0]["index"], 1);
    assert!((breakdown[0]["energy_kwh"].as_f64().expect("kwh") - 0.002 * 1.5).abs() < 1e-12);
    let csv = fs::read_to_string(output.path().join("emissions.csv")).expect("csv");
    assert!(
        csv.lines()
            .next()
            .expect("header")
            .split(',')
            .any(|column| column == "gpu_devices")
    );
}

#[test]
fn the_tracker_polls_gpu_power_between_window_edges() {
    // 100 W for 0.8 s, then 300 W: read only at the edges (measure_power_secs is 15 s), the
    // trapezoid would give 200 W on average; polled every 0.1 s the step is smeared over one
    // poll at most (10 J), and the sleeps' jitter only moves the step later.
    let fake = FakeNvml::new(&(devices(1) + "energy_error 0 3\npower 0 100000\n"));
    let kwargs = [
        ("nvml_library", fake.library.display().to_string()),
        ("country_iso_code", "FRA".to_owned()),
        ("powercap_root", "/nonexistent-powercap".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), RawValue::Str(v)))
    .chain([("save_to_file".to_owned(), RawValue::Bool(false))])
    .collect();
    let config = Config::resolve(kwargs, Environment::default()).expect("config");
    let tracker = Tracker::new(config, Identity::default()).expect("tracker");
    tracker.start().expect("start");
    std::thread::sleep(Duration::from_millis(800));
    fake.set(&(devices(1) + "energy_error 0 3\npower 0 300000\n"));
    std::thread::sleep(Duration::from_millis(200));
    let row = tracker.stop().expect("row");
    let energy_j = row.gpu_energy * 3.6e6;
    let step_at_800_ms_j = 100.0 * 0.8 + 300.0 * (row.duration - 0.8);
    assert!(
        energy_j < step_at_800_ms_j + 15.0 && energy_j > step_at_800_ms_j - 35.0,
        "{energy_j} J over {} s, expected about {step_at_800_ms_j} J",
        row.duration
    );
    assert_eq!(row.gpu_method, "polled");
}

#[test]
fn a_read_of_four_gpus_is_cheap_enough_for_ten_hertz() {
    let control = devices_with(4, |i| {
        format!(
            "energy {i} 0
power {i} 250000
util {i} 90 40
"
        )
    });
    let fake = FakeNvml::new(&control);
    let (mut meter, _) = Meter::discover(&meter_config(fake.gpu_config()));
    let reads = 200;
    let started = Instant::now();
    for _ in 0..reads {
        meter.read();
    }
    let per_read = started.elapsed() / reads;
    eprintln!(
        "one meter read with 4 fake GPUs: {per_read:?}; at 10 Hz {:.3} % of one core",
        per_read.as_secs_f64() * 10.0 * 100.0
    );
    assert!(per_read < Duration::from_millis(20), "{per_read:?}");
}

#[test]
fn settings_reach_the_gpu_sensor() {
    let env = Environment {
        vars: [
            ("CARBONMETER_NVML_LIBRARY", "/opt/nvidia/libnvidia-ml.so.1"),
            ("CUDA_VISIBLE_DEVICES", "1,GPU-ab"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        cwd: None,
        home: None,
    };
    let kwargs = [
        ("save_to_file".to_owned(), RawValue::Bool(false)),
        ("gpu_poll_secs".to_owned(), RawValue::Float(0.05)),
        ("gpu_ids".to_owned(), RawValue::Int(0)),
    ]
    .into_iter()
    .collect();
    let gpu = Config::resolve(kwargs, env).expect("config").meter.gpu;
    assert_eq!(
        gpu.nvml_library,
        Some(PathBuf::from("/opt/nvidia/libnvidia-ml.so.1"))
    );
    assert_eq!(gpu.cuda_visible_devices.as_deref(), Some("1,GPU-ab"));
    assert_eq!(gpu.gpu_ids, Some(vec!["0".to_owned()]));
    assert!((gpu.poll_interval_s - 0.05).abs() < 1e-12);
    let default = Config::resolve(
        [("save_to_file".to_owned(), RawValue::Bool(false))]
            .into_iter()
            .collect(),
        Environment::default(),
    )
    .expect("config")
    .meter
    .gpu;
    assert!((default.poll_interval_s - 0.1).abs() < 1e-12);
    assert_eq!(default.nvml_library, None);
}

/// A backend's discovery as a closure, so one test can run NVML on several stand-ins.
type DiscoverFn<'a> = &'a dyn Fn(&GpuConfig, &[GpuDevice], &mut Vec<String>) -> Discovery;

fn nvml_backend(fake: &FakeNvml) -> Box<dyn GpuBackend> {
    let mut warnings = Vec::new();
    match carbonmeter::testing::gpu::nvml::discover(&fake.gpu_config(), &[], &mut warnings) {
        Discovery::Found(backend) => {
            assert!(warnings.is_empty(), "{warnings:?}");
            backend
        }
        Discovery::Absent(line) => panic!("no GPU: {line}"),
    }
}

#[test]
fn the_nvml_read_is_typed_per_device_and_asks_only_what_is_wanted() {
    let steady = "energy 0 7000\npower 0 212500\nutil 0 35 5\npower 1 90000\n";
    let fake = FakeNvml::new(&(devices(2) + steady + "energy_error 1 3\n"));
    let mut backend = nvml_backend(&fake);
    let found: Vec<_> = backend
        .devices()
        .iter()
        .map(|d| (d.info.vendor, d.has_energy_counter, d.has_power))
        .collect();
    assert_eq!(
        found,
        [(Vendor::Nvidia, true, true), (Vendor::Nvidia, false, true)]
    );
    let everything = Wanted {
        energy: true,
        power: true,
        utilization: true,
    };
    // NVML's mJ arrive as µJ.
    assert_eq!(
        backend.read(0, everything),
        DeviceRead {
            energy_uj: Some(Ok(7_000_000)),
            power_w: Some(Ok(212.5)),
            utilization: Some(0.35),
        }
    );
    // What is not asked is not read: the accounting asks no counter of a device without one.
    let no_counter = Wanted {
        energy: false,
        ..everything
    };
    let read = backend.read(1, no_counter);
    assert_eq!((read.energy_uj, read.power_w), (None, Some(Ok(90.0))));
    assert_eq!(backend.read(0, Wanted::default()), DeviceRead::default());

    fake.set(&(devices(2) + steady + "power_error 0 3\nlost 1\n"));
    let read = backend.read(0, everything);
    assert_eq!(read.power_w, Some(Err(GpuFault::NotSupported)));
    assert_eq!(read.energy_uj, Some(Ok(7_000_000)));
    let read = backend.read(1, no_counter);
    let lost = GpuFault::Lost { library: "NVML" };
    assert_eq!(read.power_w, Some(Err(lost.clone())));
    assert_eq!(
        lost.to_string(),
        "the GPU fell off the bus (NVML: GPU is lost)"
    );
    assert_eq!(read.utilization, None);
}

#[test]
fn backends_mix_and_a_device_two_backends_see_counts_once() {
    let first = FakeNvml::new(&(devices(2) + "energy 0 1000\nenergy 1 2000\n"));
    let other_uuid = "GPU-ffffffff-0000-1111-2222-333344445555";
    let second_control = |energy_mj: u64| {
        format!("count 1\nname 0 NVIDIA T4\nuuid 0 {other_uuid}\nenergy 0 {energy_mj}\n")
    };
    let second = FakeNvml::new(&second_control(500));
    let on = |fake: &FakeNvml| {
        let library = fake.library.clone();
        move |config: &GpuConfig, claimed: &[GpuDevice], warnings: &mut Vec<String>| {
            let config = GpuConfig {
                nvml_library: Some(library.clone()),
                ..config.clone()
            };
            carbonmeter::testing::gpu::nvml::discover(&config, claimed, warnings)
        }
    };
    let (on_first, on_second, first_again) = (on(&first), on(&second), on(&first));
    let backends: [DiscoverFn<'_>; 3] = [&on_first, &on_second, &first_again];
    let mut warnings = Vec::new();
    let mut gpus = GpuMeter::discover_with(
        &backends,
        &GpuConfig::default(),
        TrackingMode::Machine,
        &mut warnings,
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    let names: Vec<_> = gpus.devices().iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "NVIDIA A100-SXM4-40GB",
            "NVIDIA A100-SXM4-40GB",
            "NVIDIA T4"
        ]
    );
    assert_eq!(gpus.method(), Method::GpuCounter);
    let start = gpus.read(0.0, 0, &mut |line| panic!("{line}"));
    first.set(&(devices(2) + "energy 0 4000\nenergy 1 2500\n"));
    second.set(&second_control(1700));
    let end = gpus.read(1.0, 1_000_000, &mut |line| panic!("{line}"));
    let interval = end.since(&start);
    let per_device: Vec<u64> = interval.devices.iter().map(|d| mj(d.energy_j)).collect();
    assert_eq!(per_device, [3000, 500, 1200]);
    assert_eq!(mj(end.energy_j() - start.energy_j()), 4700);
    assert_eq!(interval.model(), "2 x NVIDIA A100-SXM4-40GB, 1 x NVIDIA T4");
}

#[test]
fn process_mode_without_v3_queries_says_so_once_and_counts_the_gpus_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = dir.path().join("libnvidia-ml.so.1");
    fs::copy(
        common::stand_in("fake_nvml.c", &["-DFAKE_NVML_NO_V3"]),
        &library,
    )
    .expect("copy fake");
    let control = devices(2) + "energy 0 0\nenergy 1 0\n";
    fs::write(format!("{}.ctl", library.display()), &control).expect("control");
    let mut config = meter_config(GpuConfig {
        nvml_library: Some(library.clone()),
        cuda_visible_devices: None,
        ..GpuConfig::default()
    });
    config.sources.tracking_mode = TrackingMode::Process;
    let (mut meter, warnings) = Meter::discover(&config);
    let about_v3: Vec<&String> = warnings.iter().filter(|w| w.contains("v3")).collect();
    assert_eq!(about_v3.len(), 1, "{warnings:?}");
    let start = meter.read();
    fs::write(
        format!("{}.ctl", library.display()),
        control.replace("energy 0 0\nenergy 1 0", "energy 0 10\nenergy 1 20"),
    )
    .expect("control");
    let interval = meter.read().since(&start);
    assert_eq!((interval.gpu.count(), mj(interval.energy.gpu_j)), (2, 30));
}
