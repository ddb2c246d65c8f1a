//! Windows' Energy Meter Interface through the real Win32 and EMI code path, on a stand-in
//! library (`fixtures/fake_emi.c`, compiled here with the system `cc`) that gives the SetupDi*,
//! CreateFileW, DeviceIoControl and CloseHandle calls: each measurement is one second after
//! the last.

mod common;

use std::fs;
use std::path::PathBuf;

use carbonmeter::testing::gpu::GpuConfig;
use carbonmeter::testing::meter::{Meter, MeterConfig};
use carbonmeter::testing::sensors::Method;

/// One test's copy of the stand-in (its handle count with it), and an empty folder for the
/// other roots.
struct FakeEmi {
    dir: tempfile::TempDir,
    library: PathBuf,
}

impl FakeEmi {
    fn new(defines: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let library = dir.path().join("libwin32.so");
        fs::copy(common::stand_in("fake_emi.c", defines), &library).expect("copy fake");
        Self { dir, library }
    }

    /// Only EMI: no powercap tree, no GPU library, an empty hwmon tree.
    fn meter_config(&self) -> MeterConfig {
        let empty = self.dir.path().join("empty");
        fs::create_dir_all(&empty).expect("empty root");
        let mut config = MeterConfig::powercap_only(&empty);
        config.gpu = GpuConfig {
            nvml_library: Some(empty.join("no-libnvidia-ml.so.1")),
            amdsmi_library: Some(empty.join("no-libamd_smi.so")),
            hwmon_root: empty,
            ..GpuConfig::default()
        };
        config.emi_library = Some(self.library.clone());
        config
    }

    fn open_handles(library: &libloading::Library) -> i64 {
        // SAFETY: the stand-in exports `long fake_emi_open_handles(void)`.
        let open: libloading::Symbol<'_, unsafe extern "C" fn() -> i64> =
            unsafe { library.get(b"fake_emi_open_handles") }.expect("fake_emi_open_handles");
        unsafe { open() }
    }
}

#[test]
fn package_and_dram_are_measured_and_the_mirrored_meter_counted_once() {
    let fake = FakeEmi::new(&[]);
    let (mut meter, warnings) = Meter::discover(&fake.meter_config());
    let unexpected: Vec<&String> = warnings
        .iter()
        .filter(|line| !line.contains("NVML") && !line.contains("amd-smi"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let description = meter.description().clone();
    assert_eq!(
        (description.cpu_method, description.ram_method),
        (Method::Emi, Method::Emi)
    );
    let start = meter.read();
    for _ in 0..9 {
        meter.read();
    }
    let energy = meter.read().since(&start).energy;
    // Ten seconds of a 10 W package and 2 W of DRAM; PP0 and PP1 (inside the package) and the
    // second interface's mirror add nothing. pWh are rounded to µJ at each read.
    assert!((energy.cpu_j - 100.0).abs() < 1e-5, "{}", energy.cpu_j);
    assert!((energy.ram_j - 20.0).abs() < 1e-5, "{}", energy.ram_j);
}

#[test]
fn a_v1_meter_measures_the_package_and_memory_is_modelled() {
    let fake = FakeEmi::new(&["-DV1"]);
    let (mut meter, _) = Meter::discover(&fake.meter_config());
    let description = meter.description().clone();
    assert_eq!(
        (description.cpu_method, description.ram_method),
        (Method::Emi, Method::Model)
    );
    let start = meter.read();
    let energy = meter.read().since(&start).energy;
    assert!((energy.cpu_j - 10.0).abs() < 1e-5, "{}", energy.cpu_j);
}

#[test]
fn every_handle_opened_is_closed() {
    let fake = FakeEmi::new(&[]);
    // SAFETY: the stand-in; held so its count outlives the meter's own handle on it.
    let library = unsafe { libloading::Library::new(&fake.library) }.expect("load");
    {
        let (mut meter, _) = Meter::discover(&fake.meter_config());
        meter.read();
        assert_eq!(FakeEmi::open_handles(&library), 2);
    }
    assert_eq!(FakeEmi::open_handles(&library), 0);
}

#[test]
fn a_library_without_the_calls_is_a_warning_and_the_models_measure() {
    let fake = FakeEmi::new(&[]);
    let mut config = fake.meter_config();
    config.emi_library = Some(fake.dir.path().join("missing.so"));
    let (meter, warnings) = Meter::discover(&config);
    assert_eq!(meter.description().cpu_method, Method::LoadTdp);
    assert!(
        warnings
            .iter()
            .any(|line| line.starts_with("EMI unavailable")),
        "{warnings:?}"
    );
}
