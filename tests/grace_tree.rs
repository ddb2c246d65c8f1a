//! NVIDIA Grace through the meter, on fake hwmon trees of ACPI power meters: which rails are
//! summed, with and without the module rail that holds the GPU.

use std::fs;
use std::path::Path;

use carbonmeter::testing::gpu::GpuConfig;
use carbonmeter::testing::meter::{Meter, MeterConfig};
use carbonmeter::testing::sensors::Method;

/// Power meters labelled as a GH200's, power in µW, under `root`.
fn meters(root: &Path, rails: &[(&str, u64)]) {
    for (i, (label, power_uw)) in rails.iter().enumerate() {
        let device = root.join(format!("hwmon{i}/device"));
        fs::create_dir_all(&device).expect("mkdir");
        fs::write(root.join(format!("hwmon{i}/name")), "power_meter\n").expect("name");
        fs::write(device.join("power1_oem_info"), format!("{label}\n")).expect("label");
        fs::write(device.join("power1_average"), format!("{power_uw}\n")).expect("power");
    }
}

fn meter_on(root: &Path) -> Meter {
    let mut config = MeterConfig::powercap_only(&root.join("no-powercap"));
    config.gpu = GpuConfig {
        nvml_library: Some(root.join("no-libnvidia-ml.so.1")),
        amdsmi_library: Some(root.join("no-libamd_smi.so")),
        hwmon_root: root.to_path_buf(),
        ..GpuConfig::default()
    };
    Meter::discover(&config).0
}

#[test]
fn gh200_counts_the_grace_rail_with_or_without_the_module_rail() {
    let grace = [
        ("Grace Power Socket 0", 180_000_000),
        ("CPU Power Socket 0", 120_000_000),
        ("SysIO Power Socket 0", 30_000_000),
    ];
    let module = [("Module Power Socket 0", 650_000_000)];
    for rails in [[&module[..], &grace[..]].concat(), grace.to_vec()] {
        let root = tempfile::tempdir().expect("tempdir");
        meters(root.path(), &rails);
        let mut meter = meter_on(root.path());
        let description = meter.description().clone();
        assert_eq!(
            (description.cpu_method, description.ram_method),
            (Method::Hwmon, Method::InCpu)
        );
        let start = meter.read();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let end = meter.read();
        let interval = end.since(&start);
        // A constant 180 W: the trapezoid is exact, whatever the reads' spacing.
        let mean_w = interval.energy.cpu_j / interval.duration_s;
        assert!((mean_w - 180.0).abs() < 1e-6, "{mean_w} W with {rails:?}");
        assert!(interval.energy.ram_j.abs() < f64::EPSILON);
    }
}

#[test]
fn without_a_grace_rail_cpu_and_sysio_are_summed_and_memory_modelled() {
    let root = tempfile::tempdir().expect("tempdir");
    meters(
        root.path(),
        &[
            ("Module Power Socket 0", 650_000_000),
            ("CPU Power Socket 0", 120_000_000),
            ("SysIO Power Socket 0", 30_000_000),
        ],
    );
    let mut meter = meter_on(root.path());
    assert_eq!(
        (
            meter.description().cpu_method,
            meter.description().ram_method
        ),
        (Method::Hwmon, Method::Model)
    );
    let start = meter.read();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let interval = meter.read().since(&start);
    let mean_w = interval.energy.cpu_j / interval.duration_s;
    assert!((mean_w - 150.0).abs() < 1e-6, "{mean_w}");
}
