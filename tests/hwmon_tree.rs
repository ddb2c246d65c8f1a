//! GPUs through the kernel's hwmon class, on fake sysfs trees in temp folders: Intel xe and
//! i915 energy counters, amdgpu power, Jetson ina3221 rails, and machines that mix them with
//! the NVML and amd-smi stand-ins (each device counted once).

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use carbonmeter::testing::gpu::{GpuConfig, GpuMeter, Vendor};
use carbonmeter::testing::sensors::{Method, TrackingMode};

/// A `/sys/class/hwmon` in a temp folder; each chip's `device` link points at a PCI device
/// folder named by its address, as in sysfs.
struct Tree {
    dir: tempfile::TempDir,
    chips: usize,
}

impl Tree {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("class/hwmon")).expect("root");
        Self { dir, chips: 0 }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("class/hwmon")
    }

    /// A chip named `name` with `files`; on PCI device `pci` (vendor, device id) if given.
    fn chip(
        &mut self,
        name: &str,
        pci: Option<(&str, &str, &str)>,
        files: &[(&str, &str)],
    ) -> PathBuf {
        let chip = self.root().join(format!("hwmon{}", self.chips));
        self.chips += 1;
        fs::create_dir_all(&chip).expect("chip");
        fs::write(chip.join("name"), format!("{name}\n")).expect("name");
        for (file, text) in files {
            fs::write(chip.join(file), format!("{text}\n")).expect("file");
        }
        if let Some((address, vendor, device)) = pci {
            let target = self.dir.path().join("devices/pci0000:00").join(address);
            fs::create_dir_all(&target).expect("pci device");
            fs::write(target.join("vendor"), format!("{vendor}\n")).expect("vendor");
            fs::write(target.join("device"), format!("{device}\n")).expect("device");
            symlink(&target, chip.join("device")).expect("link");
        }
        chip
    }

    fn config(&self) -> GpuConfig {
        GpuConfig {
            nvml_library: Some(self.dir.path().join("no-libnvidia-ml.so.1")),
            amdsmi_library: Some(self.dir.path().join("no-libamd_smi.so")),
            hwmon_root: self.root(),
            ..GpuConfig::default()
        }
    }
}

fn discover(config: &GpuConfig) -> (GpuMeter, Vec<String>) {
    let mut warnings = Vec::new();
    let meter = GpuMeter::discover(config, TrackingMode::Machine, &mut warnings);
    // Missing libraries that the test named: not its subject.
    warnings.retain(|line| !line.contains("NVML") && !line.contains("amd-smi"));
    (meter, warnings)
}

fn set(chip: &Path, file: &str, value: u64) {
    fs::write(chip.join(file), format!("{value}\n")).expect("write");
}

#[test]
fn an_xe_card_counts_its_card_channel_not_pkg_and_i915_its_only_one() {
    let mut tree = Tree::new();
    let xe = tree.chip(
        "xe",
        Some(("0000:03:00.0", "0x8086", "0xe20b")),
        &[
            ("energy1_input", "1000000"),
            ("energy1_label", "card"),
            ("energy2_input", "700000"),
            ("energy2_label", "pkg"),
        ],
    );
    let i915 = tree.chip(
        "i915",
        Some(("0000:0a:00.0", "0x8086", "0x56a0")),
        &[("energy1_input", "5000000")],
    );
    tree.chip("coretemp", None, &[("temp1_input", "45000")]);
    let (mut gpus, warnings) = discover(&tree.config());
    assert!(warnings.is_empty(), "{warnings:?}");
    let names: Vec<_> = gpus.devices().iter().map(|d| d.name.clone()).collect();
    assert_eq!(names[0], "Intel Arc B580");
    assert!(names[1].starts_with("Intel GPU 8086:56a0"), "{names:?}");
    assert!(gpus.devices().iter().all(|d| d.vendor == Vendor::Intel));
    assert_eq!(gpus.method(), Method::GpuCounter);
    let start = gpus.read(0.0, 0, &mut |line| panic!("{line}"));
    set(&xe, "energy1_input", 31_000_000);
    set(&xe, "energy2_input", 20_700_000);
    set(&i915, "energy1_input", 17_000_000);
    let end = gpus.read(1.0, 1_000_000, &mut |line| panic!("{line}"));
    let interval = end.since(&start);
    // Exact to the µJ counters (read in mJ): 30 J for the card, not pkg's 20 J; 12 J.
    assert!((interval.devices[0].energy_j - 30.0).abs() < 1e-9);
    assert!((interval.devices[1].energy_j - 12.0).abs() < 1e-9);
}

#[test]
fn an_amdgpu_card_without_amdsmi_polls_its_power_within_the_sampling_bound() {
    let mut tree = Tree::new();
    let card = tree.chip(
        "amdgpu",
        Some(("0000:c1:00.0", "0x1002", "0x74a1")),
        &[("power1_average", "350000000")],
    );
    let (mut gpus, warnings) = discover(&tree.config());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(gpus.devices()[0].name, "AMD Instinct MI300X");
    assert_eq!(gpus.method(), Method::GpuPolled);
    let start = gpus.read(0.0, 0, &mut |line| panic!("{line}"));
    gpus.read(0.5, 500_000, &mut |line| panic!("{line}"));
    set(&card, "power1_average", 450_000_000);
    let end = gpus.read(1.0, 1_000_000, &mut |line| panic!("{line}"));
    // 350 W, then a step to 450 W seen at the 1.0 s read: the trapezoid smears it over the
    // last poll, so the figure lies between the step at 0.5 s and at 1.0 s.
    let energy_j = end.since(&start).devices[0].energy_j;
    assert!(
        (energy_j - (350.0 + 0.5 * 0.5 * 100.0)).abs() < 1e-9,
        "{energy_j}"
    );
    assert!((350.0..=400.0).contains(&energy_j));
}

#[test]
fn a_card_whose_files_vanish_keeps_its_energy_and_warns_once() {
    let mut tree = Tree::new();
    let xe = tree.chip(
        "xe",
        Some(("0000:03:00.0", "0x8086", "0x0bd5")),
        &[("energy1_input", "0"), ("energy1_label", "card")],
    );
    let (mut gpus, _) = discover(&tree.config());
    assert_eq!(gpus.devices()[0].name, "Intel Data Center GPU Max 1550");
    let mut lines = Vec::new();
    let start = gpus.read(0.0, 0, &mut |line| lines.push(line));
    set(&xe, "energy1_input", 600_000_000);
    gpus.read(1.0, 1_000_000, &mut |line| lines.push(line));
    fs::remove_file(xe.join("energy1_input")).expect("remove");
    gpus.read(2.0, 2_000_000, &mut |line| lines.push(line));
    let end = gpus.read(3.0, 3_000_000, &mut |line| lines.push(line));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("hwmon"), "{lines:?}");
    assert!((end.since(&start).devices[0].energy_j - 600.0).abs() < 1e-9);
}

#[test]
fn a_jetson_rail_measures_the_gpu_nvml_cannot() {
    let mut tree = Tree::new();
    let rail = tree.chip(
        "ina3221",
        None,
        &[
            ("in1_label", "VDD_GPU_SOC"),
            ("in1_input", "5000"),
            ("curr1_input", "2000"),
            ("in2_label", "VDD_CPU_CV"),
            ("in2_input", "5000"),
            ("curr2_input", "900"),
        ],
    );
    // No NVML at all (Xavier-era boards): the rail is the GPU.
    let (mut gpus, warnings) = discover(&tree.config());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(gpus.devices()[0].name, "Jetson GPU rail VDD_GPU_SOC");
    let start = gpus.read(0.0, 0, &mut |line| panic!("{line}"));
    set(&rail, "curr1_input", 3000);
    let end = gpus.read(2.0, 2_000_000, &mut |line| panic!("{line}"));
    // 10 W rising to 15 W: 25 J by the trapezoid.
    assert!((end.since(&start).devices[0].energy_j - 25.0).abs() < 1e-9);

    // NVML finds the Orin's GPU but says NotSupported for power and energy: the rail measures
    // that same device, and no `unmeasured` warning is given.
    let nvml = fake_nvml(
        &tree,
        "count 1\nname 0 Orin (nvgpu)\nuuid 0 GPU-0rin\nenergy_error 0 3\npower_error 0 3\n",
    );
    let config = GpuConfig {
        nvml_library: Some(nvml),
        ..tree.config()
    };
    let (mut gpus, warnings) = discover(&config);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(gpus.devices().len(), 1);
    assert_eq!(gpus.devices()[0].uuid, "GPU-0rin");
    assert_eq!(gpus.method(), Method::GpuPolled);
    let start = gpus.read(0.0, 0, &mut |line| panic!("{line}"));
    let end = gpus.read(1.0, 1_000_000, &mut |line| panic!("{line}"));
    assert!((end.since(&start).devices[0].energy_j - 15.0).abs() < 1e-9);
}

#[test]
fn a_mixed_machine_counts_each_device_once() {
    let mut tree = Tree::new();
    let xe = tree.chip(
        "xe",
        Some(("0000:03:00.0", "0x8086", "0xe20b")),
        &[("energy1_input", "0"), ("energy1_label", "card")],
    );
    let nvml = fake_nvml(
        &tree,
        "count 1\nname 0 NVIDIA H100 80GB HBM3\nuuid 0 GPU-h100\nenergy 0 1000\n",
    );
    let config = GpuConfig {
        nvml_library: Some(nvml.clone()),
        ..tree.config()
    };
    let (mut gpus, warnings) = discover(&config);
    assert!(warnings.is_empty(), "{warnings:?}");
    let vendors: Vec<_> = gpus.devices().iter().map(|d| d.vendor).collect();
    assert_eq!(vendors, [Vendor::Nvidia, Vendor::Intel]);
    let start = gpus.read(0.0, 0, &mut |line| panic!("{line}"));
    fs::write(
        PathBuf::from(format!("{}.ctl", nvml.display())),
        "count 1\nname 0 NVIDIA H100 80GB HBM3\nuuid 0 GPU-h100\nenergy 0 301000\n",
    )
    .expect("control");
    set(&xe, "energy1_input", 40_000_000);
    let end = gpus.read(1.0, 1_000_000, &mut |line| panic!("{line}"));
    let interval = end.since(&start);
    let energies: Vec<f64> = interval.devices.iter().map(|d| d.energy_j).collect();
    assert_eq!(energies, [300.0, 40.0]);
    assert_eq!(interval.method(), Method::GpuCounter);
    let json: serde_json::Value =
        serde_json::from_str(&interval.breakdown_json(1.0)).expect("json");
    assert_eq!(json[0]["vendor"], "nvidia");
    assert_eq!(json[1]["vendor"], "intel");
    assert_eq!(json[1]["name"], "Intel Arc B580");
}

#[test]
fn an_amd_card_seen_by_amdsmi_and_hwmon_is_counted_once_by_its_counter() {
    let mut tree = Tree::new();
    tree.chip(
        "amdgpu",
        Some(("0000:c1:00.0", "0x1002", "0x740c")),
        &[("power1_average", "300000000")],
    );
    let amdsmi = fake_amdsmi(
        &tree,
        &format!(
            "count 1\nbdf 0 0 c1 0 0\nramp 0 {} 300 0\n",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_secs_f64()
        ),
    );
    let config = GpuConfig {
        amdsmi_library: Some(amdsmi),
        ..tree.config()
    };
    let (gpus, warnings) = discover(&config);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(gpus.devices().len(), 1);
    assert_eq!(gpus.method(), Method::GpuCounter);
}

/// A copy of a stand-in library compiled from `source`, with its control file beside it.
fn stand_in(tree: &Tree, source: &str, name: &str, control: &str) -> PathBuf {
    let library = tree.dir.path().join(name);
    fs::copy(common::stand_in(source, &[]), &library).expect("copy");
    fs::write(PathBuf::from(format!("{}.ctl", library.display())), control).expect("control");
    library
}

fn fake_nvml(tree: &Tree, control: &str) -> PathBuf {
    stand_in(tree, "fake_nvml.c", "libnvidia-ml.so.1", control)
}

fn fake_amdsmi(tree: &Tree, control: &str) -> PathBuf {
    stand_in(tree, "fake_amdsmi.c", "libamd_smi.so", control)
}
