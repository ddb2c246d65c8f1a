//! Apple Silicon through the real IOReport code path, on a stand-in library
//! (`fixtures/fake_ioreport.c`, compiled here with the system `cc`) whose channels are
//! scripted per chip: each sample of a subscription is one second after the last.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use carbonmeter::testing::gpu::{GpuConfig, Vendor};
use carbonmeter::testing::meter::{Meter, MeterConfig};
use carbonmeter::testing::sensors::Method;
use carbonmeter::testing::sensors::ioreport::{IoReport, PartEnergy};

/// One test's copy of the stand-in built with `defines` (the loader keeps one instance per
/// file, and its count of live objects with it), and an empty folder for the other roots.
struct FakeIoReport {
    dir: tempfile::TempDir,
    library: PathBuf,
}

impl FakeIoReport {
    fn new(defines: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let library = dir.path().join("libIOReport.so");
        fs::copy(common::stand_in("fake_ioreport.c", defines), &library).expect("copy fake");
        fs::create_dir(dir.path().join("empty")).expect("empty root");
        Self { dir, library }
    }

    /// Only IOReport: no powercap tree, no NVML or amd-smi, an empty hwmon tree.
    fn meter_config(&self) -> MeterConfig {
        let empty = self.dir.path().join("empty");
        let mut config = MeterConfig::powercap_only(&empty);
        config.gpu = GpuConfig {
            nvml_library: Some(empty.join("no-libnvidia-ml.so.1")),
            amdsmi_library: Some(empty.join("no-libamd_smi.so")),
            hwmon_root: empty,
            ioreport_library: Some(self.library.clone()),
            ..GpuConfig::default()
        };
        config
    }

    /// Objects the stand-in made and nobody released yet.
    fn live_objects(library: &libloading::Library) -> i64 {
        // SAFETY: the stand-in exports `long fake_ioreport_live(void)`.
        let live: libloading::Symbol<'_, unsafe extern "C" fn() -> i64> =
            unsafe { library.get(b"fake_ioreport_live") }.expect("fake_ioreport_live");
        unsafe { live() }
    }
}

/// The energy of one second read through a fresh reader of chip `chip`.
fn one_second_of(chip: u32) -> PartEnergy {
    let fake = FakeIoReport::new(&[&format!("-DCHIP={chip}")]);
    let mut report = IoReport::open(&fake.library).expect("open");
    report.read().expect("read")
}

#[test]
fn a_run_of_5_w_cpu_and_12_w_gpu_is_measured_exactly() {
    let fake = FakeIoReport::new(&["-DCHIP=0"]);
    let (mut meter, warnings) = Meter::discover(&fake.meter_config());
    let unexpected: Vec<&String> = warnings
        .iter()
        .filter(|line| !line.contains("NVML") && !line.contains("amd-smi"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let description = meter.description().clone();
    assert_eq!(description.cpu_method, Method::IoReport);
    // No DRAM channel on this script: memory is modelled.
    assert_eq!(description.ram_method, Method::Model);
    assert_eq!(description.gpu_method, Method::GpuCounter);
    let start = meter.read();
    for _ in 0..9 {
        meter.read();
    }
    let end = meter.read();
    let interval = end.since(&start);
    // Ten reads, each one second of the script: 50 J of CPU, 120 J of GPU, to the µJ.
    assert!(
        (interval.energy.cpu_j - 50.0).abs() < 1e-9,
        "{}",
        interval.energy.cpu_j
    );
    assert!(
        (interval.energy.gpu_j - 120.0).abs() < 1e-9,
        "{}",
        interval.energy.gpu_j
    );
    assert_eq!(interval.gpu.devices.len(), 1);
    assert_eq!(interval.gpu.devices[0].method, Method::GpuCounter);
    assert_eq!(end.gpu.info[0].vendor, Vendor::Apple);
}

#[test]
fn m1_counts_cpu_with_the_neural_engine_gpu_and_dram_and_no_core_twice() {
    // CPU Energy 4 W (its ECPU0 and PCPU0 cores inside it), ANE 0.5 W, GPU Energy 12 W in nJ,
    // DRAM 2 W; ISP left out.
    assert_eq!(
        one_second_of(1),
        PartEnergy {
            cpu_nj: 4_000_000_000,
            gpu_nj: 12_000_000_000,
            ane_nj: 500_000_000,
            dram_nj: 2_000_000_000,
        }
    );
}

#[test]
fn m2_max_reads_ane0_and_dram0_in_their_own_units() {
    // ANE0 1 W, DRAM0 3 W labelled uJ, GPU SRAM0 and AVE left out.
    assert_eq!(
        one_second_of(2),
        PartEnergy {
            cpu_nj: 6_000_000_000,
            gpu_nj: 30_000_000_000,
            ane_nj: 1_000_000_000,
            dram_nj: 3_000_000_000,
        }
    );
}

#[test]
fn ultra_sums_its_dies_and_ignores_other_groups_and_pcie_ports() {
    // DIE_0_CPU Energy 7 W + DIE_1_CPU Energy 5 W; ANE0_0 + ANE0_1; DRAM0 + DRAM1; the
    // "CPU Energy" of the "CPU Stats" group (100 W) and PCIe Port 0 Energy are not counted.
    assert_eq!(
        one_second_of(3),
        PartEnergy {
            cpu_nj: 12_000_000_000,
            gpu_nj: 60_000_000_000,
            ane_nj: 1_000_000_000,
            dram_nj: 4_000_000_000,
        }
    );
}

#[test]
fn on_an_ultra_the_meter_counts_cpu_ane_and_dram_by_ioreport() {
    let fake = FakeIoReport::new(&["-DCHIP=3"]);
    let (mut meter, _) = Meter::discover(&fake.meter_config());
    let description = meter.description().clone();
    assert_eq!(
        (description.cpu_method, description.ram_method),
        (Method::IoReport, Method::IoReport)
    );
    let start = meter.read();
    let end = meter.read();
    let energy = end.since(&start).energy;
    assert!((energy.cpu_j - 13.0).abs() < 1e-9, "{}", energy.cpu_j);
    assert!((energy.ram_j - 4.0).abs() < 1e-9, "{}", energy.ram_j);
    assert!((energy.gpu_j - 60.0).abs() < 1e-9, "{}", energy.gpu_j);
}

#[test]
fn every_object_made_is_released() {
    let fake = FakeIoReport::new(&["-DCHIP=3"]);
    // SAFETY: the stand-in; held so its count outlives the reader's own handle.
    let library = unsafe { libloading::Library::new(&fake.library) }.expect("load");
    {
        let mut report = IoReport::open(&fake.library).expect("open");
        for _ in 0..5 {
            report.read().expect("read");
        }
        assert!(FakeIoReport::live_objects(&library) > 0);
    }
    assert_eq!(FakeIoReport::live_objects(&library), 0);
}

#[test]
fn no_subscription_falls_back_to_the_models_and_says_why() {
    let fake = FakeIoReport::new(&["-DCHIP=1", "-DNO_SUBSCRIPTION"]);
    let err = IoReport::open(&fake.library)
        .err()
        .expect("no subscription");
    assert!(err.contains("IOReportCreateSubscription failed"), "{err}");
    let (meter, warnings) = Meter::discover(&fake.meter_config());
    assert_eq!(meter.description().cpu_method, Method::LoadTdp);
    assert_eq!(meter.description().ram_method, Method::Model);
    assert_eq!(meter.description().gpu_method, Method::None);
    assert!(
        warnings
            .iter()
            .any(|line| line.contains("IOReport")
                && line.contains(&fake.library.display().to_string())),
        "{warnings:?}"
    );
}

#[test]
fn a_missing_library_named_by_the_user_is_a_warning() {
    let missing = Path::new("/nonexistent/libIOReport.dylib");
    let err = IoReport::open(missing).err().expect("missing");
    assert!(
        err.starts_with("IOReport (/nonexistent/libIOReport.dylib) unavailable"),
        "{err}"
    );
}
