//! GPUs through the kernel's hwmon class (`/sys/class/hwmon`, a root that is a seam): no
//! library and no privileges.
//!
//! - Intel `xe` and `i915` cards: the `energyN_input` counter (µJ, accumulated to 64 bits by
//!   the driver). Of xe's two channels the one labelled `card` counts, not `pkg`, which lies
//!   inside it; a channel without a label is the card's (i915).
//! - `amdgpu` cards that amd-smi did not measure: `power1_input`, else `power1_average` (µW),
//!   polled.
//! - Jetson-class boards (`ina3221`): the rail whose label names the GPU (`VDD_GPU_SOC`,
//!   `VDD_CPU_GPU_CV`), power = `inN_input` (mV) x `currN_input` (mA), polled, when NVML has
//!   no power for the board's GPU or no GPU at all. The rail covers what its label says.
//!
//! Each card is one device once: a card an earlier backend measures (same PCI address) is left
//! out.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::device::{DeviceRead, Discovery, GpuBackend, GpuDevice, GpuFault, GpuInfo};
use super::select;
use super::{GpuConfig, Vendor, normalize_pci_bus_id};

/// Where hwmon devices are unless `hwmon_root` says otherwise.
pub const DEFAULT_HWMON_ROOT: &str = "/sys/class/hwmon";

/// The name faults give this interface.
const LIBRARY: &str = "hwmon";

/// PCI device ids of the cards carbonmeter knows a TDP for, so hwmon's cards get the product
/// name the TDP table and the report look up (the driver gives none).
const KNOWN_CARDS: &[(&str, &str, &str)] = &[
    ("0x8086", "0x0bd5", "Intel Data Center GPU Max 1550"),
    ("0x8086", "0xe20b", "Intel Arc B580"),
    ("0x1002", "0x740c", "AMD Instinct MI250X"),
    ("0x1002", "0x74a1", "AMD Instinct MI300X"),
    ("0x1002", "0x7448", "AMD Radeon PRO W7900"),
];

/// How one device is read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Channel {
    /// A µJ counter file.
    EnergyUj(PathBuf),
    /// A µW power file.
    PowerUw(PathBuf),
    /// mV and mA files of one ina3221 channel.
    Rail {
        voltage_mv: PathBuf,
        current_ma: PathBuf,
    },
}

struct Device {
    path: Channel,
    dead: bool,
}

/// The GPUs hwmon measures.
pub struct HwmonBackend {
    devices: Vec<GpuDevice>,
    states: Vec<Device>,
}

fn read_text(path: &Path) -> io::Result<String> {
    fs::read_to_string(path).map(|text| text.trim().to_owned())
}

fn read_number(path: &Path) -> Result<u64, GpuFault> {
    match read_text(path) {
        Ok(text) => text
            .parse::<u64>()
            .map_err(|_| GpuFault::Other(format!("{}: {text:?} is not a number", path.display()))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            Err(GpuFault::Lost { library: LIBRARY })
        }
        Err(err) => Err(GpuFault::Other(format!("{}: {err}", path.display()))),
    }
}

/// One hwmon device folder: its driver name, and the PCI device it belongs to.
struct Chip {
    dir: PathBuf,
    name: String,
    pci_bus_id: Option<String>,
    vendor_id: Option<String>,
    device_id: Option<String>,
}

fn chips(root: &Path) -> Vec<Chip> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    // hwmon10 after hwmon9.
    dirs.sort_by_key(|dir| {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        let number = name
            .as_deref()
            .and_then(|n| n.strip_prefix("hwmon"))
            .and_then(|n| n.parse::<u32>().ok());
        (number, name)
    });
    dirs.into_iter()
        .filter_map(|dir| {
            let name = read_text(&dir.join("name")).ok()?;
            let device = dir.join("device");
            // The `device` link points at the PCI device: its folder name is the address.
            let pci_bus_id = fs::canonicalize(&device)
                .ok()
                .and_then(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()))
                .and_then(|address| normalize_pci_bus_id(&address));
            Some(Chip {
                name,
                pci_bus_id,
                vendor_id: read_text(&device.join("vendor")).ok(),
                device_id: read_text(&device.join("device")).ok(),
                dir,
            })
        })
        .collect()
}

/// The channel of an energy counter: the one labelled `card`, else an unlabelled one, else
/// `pkg` (the only one some cards have).
fn energy_channel(dir: &Path) -> Option<PathBuf> {
    let mut unlabelled = None;
    let mut package = None;
    for n in 1..=8 {
        let input = dir.join(format!("energy{n}_input"));
        if !input.exists() {
            continue;
        }
        match read_text(&dir.join(format!("energy{n}_label"))) {
            Ok(label) if label.eq_ignore_ascii_case("card") => return Some(input),
            Ok(label) if label.eq_ignore_ascii_case("pkg") => package = package.or(Some(input)),
            Ok(_) => {}
            Err(_) => unlabelled = unlabelled.or(Some(input)),
        }
    }
    unlabelled.or(package)
}

/// The first ina3221 channel whose label names the GPU, with its label.
fn gpu_rail(dir: &Path) -> Option<(String, Channel)> {
    (1..=3).find_map(|n| {
        let label = read_text(&dir.join(format!("in{n}_label"))).ok()?;
        if !label.to_ascii_uppercase().contains("GPU") {
            return None;
        }
        let voltage_mv = dir.join(format!("in{n}_input"));
        let current_ma = dir.join(format!("curr{n}_input"));
        let present = voltage_mv.exists() && current_ma.exists();
        present.then_some((
            label,
            Channel::Rail {
                voltage_mv,
                current_ma,
            },
        ))
    })
}

fn card_name(chip: &Chip, vendor: Vendor) -> String {
    let ids = (chip.vendor_id.as_deref(), chip.device_id.as_deref());
    if let Some((_, _, name)) = KNOWN_CARDS
        .iter()
        .find(|(v, d, _)| ids == (Some(*v), Some(*d)))
    {
        return (*name).to_owned();
    }
    let product = read_text(&chip.dir.join("device/product_name")).ok();
    product.filter(|p| !p.is_empty()).unwrap_or_else(|| {
        format!(
            "{} GPU {}:{} ({})",
            if vendor == Vendor::Intel {
                "Intel"
            } else {
                "AMD"
            },
            chip.vendor_id
                .as_deref()
                .unwrap_or("?")
                .trim_start_matches("0x"),
            chip.device_id
                .as_deref()
                .unwrap_or("?")
                .trim_start_matches("0x"),
            chip.name
        )
    })
}

/// Finds the cards under `config.hwmon_root` that no earlier backend measures.
pub fn discover(
    config: &GpuConfig,
    claimed: &[GpuDevice],
    warnings: &mut Vec<String>,
) -> Discovery {
    let root = &config.hwmon_root;
    let chips = chips(root);
    let measured = |pci: Option<&String>| {
        claimed.iter().any(|other| {
            (other.has_energy_counter || other.has_power)
                && pci.is_some()
                && other.info.pci_bus_id.as_ref() == pci
        })
    };
    let mut found: Vec<(GpuDevice, Channel)> = Vec::new();
    // Cards sorted by PCI address within each vendor: the order the runtimes number them in.
    let mut cards: Vec<&Chip> = chips
        .iter()
        .filter(|c| matches!(c.name.as_str(), "xe" | "i915" | "amdgpu"))
        .collect();
    cards.sort_by(|a, b| a.pci_bus_id.cmp(&b.pci_bus_id));
    let mut seen: HashSet<String> = HashSet::new();
    let mut intel_index = 0;
    let mut amd: Vec<(GpuInfo, Channel)> = Vec::new();
    for chip in cards {
        let Some(pci) = chip.pci_bus_id.clone() else {
            continue;
        };
        if !seen.insert(pci.clone()) {
            continue;
        }
        let vendor = if chip.name == "amdgpu" {
            Vendor::Amd
        } else {
            Vendor::Intel
        };
        let path = if vendor == Vendor::Intel {
            energy_channel(&chip.dir).map(Channel::EnergyUj)
        } else {
            ["power1_input", "power1_average"]
                .iter()
                .map(|file| chip.dir.join(file))
                .find(|path| read_number(path).is_ok())
                .map(Channel::PowerUw)
        };
        let index = if vendor == Vendor::Intel {
            intel_index += 1;
            intel_index - 1
        } else {
            u32::try_from(amd.len()).unwrap_or(u32::MAX)
        };
        let info = GpuInfo {
            vendor,
            index,
            uuid: format!("pci-{pci}"),
            name: card_name(chip, vendor),
            pci_bus_id: Some(pci.clone()),
        };
        match (vendor, path) {
            (Vendor::Amd, Some(path)) => amd.push((info, path)),
            (Vendor::Amd, None) => {
                // Counted as a placeholder so indexes stay ROCm's; reported unmeasured.
                amd.push((info, Channel::PowerUw(PathBuf::new())));
            }
            (_, path) => {
                if !measured(Some(&pci)) {
                    let has = path.is_some();
                    let path = path.unwrap_or_else(|| Channel::EnergyUj(PathBuf::new()));
                    found.push((
                        GpuDevice {
                            info,
                            has_energy_counter: has,
                            has_power: false,
                        },
                        path,
                    ));
                }
            }
        }
    }
    if !amd.is_empty() {
        let all: Vec<GpuInfo> = amd.iter().map(|(info, _)| info.clone()).collect();
        let chosen = select::select_rocm(
            &all,
            &[],
            config.gpu_ids.as_deref(),
            config.rocr_visible_devices.as_deref(),
            config.hip_visible_devices.as_deref(),
            warnings,
        );
        for info in chosen {
            if measured(info.pci_bus_id.as_ref()) {
                continue;
            }
            let Some((_, path)) = amd.iter().find(|(i, _)| i.index == info.index) else {
                continue;
            };
            let has_power = !matches!(path, Channel::PowerUw(p) if p.as_os_str().is_empty());
            found.push((
                GpuDevice {
                    info,
                    has_energy_counter: false,
                    has_power,
                },
                path.clone(),
            ));
        }
    }
    // A Jetson: NVML has no power for its one GPU, or no GPU at all.
    let nvidia: Vec<&GpuDevice> = claimed
        .iter()
        .filter(|d| d.info.vendor == Vendor::Nvidia)
        .collect();
    let nvml_unmeasured = match nvidia.as_slice() {
        [] => Some(None),
        [only] if !only.has_energy_counter && !only.has_power => Some(Some(*only)),
        _ => None,
    };
    if let Some(nvml_device) = nvml_unmeasured
        && let Some((chip, (label, path))) = chips
            .iter()
            .filter(|c| c.name == "ina3221")
            .find_map(|c| gpu_rail(&c.dir).map(|rail| (c, rail)))
    {
        let info = nvml_device.map_or_else(
            || GpuInfo {
                vendor: Vendor::Nvidia,
                index: 0,
                uuid: format!(
                    "ina3221-{}-{label}",
                    chip.dir
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
                ),
                name: format!("Jetson GPU rail {label}"),
                pci_bus_id: None,
            },
            |device| device.info.clone(),
        );
        found.push((
            GpuDevice {
                info,
                has_energy_counter: false,
                has_power: true,
            },
            path,
        ));
    }
    if found.is_empty() {
        return Discovery::Absent(format!(
            "no GPU measured through hwmon under {}",
            root.display()
        ));
    }
    let (devices, states) = found
        .into_iter()
        .map(|(device, path)| {
            let dead = !(device.has_energy_counter || device.has_power);
            (device, Device { path, dead })
        })
        .unzip();
    Discovery::Found(Box::new(HwmonBackend { devices, states }))
}

impl GpuBackend for HwmonBackend {
    fn devices(&self) -> &[GpuDevice] {
        &self.devices
    }

    fn read(&mut self) -> Vec<DeviceRead> {
        self.states
            .iter_mut()
            .zip(&self.devices)
            .map(|(state, device)| {
                if !(device.has_energy_counter || device.has_power) {
                    return DeviceRead::default();
                }
                let result = if state.dead {
                    Err(GpuFault::NotSupported)
                } else {
                    match &state.path {
                        Channel::EnergyUj(path) => read_number(path).map(|uj| uj as f64),
                        Channel::PowerUw(path) => read_number(path).map(|uw| uw as f64),
                        Channel::Rail {
                            voltage_mv,
                            current_ma,
                        } => read_number(voltage_mv)
                            .and_then(|mv| read_number(current_ma).map(|ma| mv as f64 * ma as f64)),
                    }
                };
                state.dead |= result.is_err();
                match state.path {
                    Channel::EnergyUj(_) => DeviceRead {
                        energy_mj: Some(result.map(|uj| (uj / 1000.0) as u64)),
                        ..DeviceRead::default()
                    },
                    // µW, and mV x mA (µW too).
                    Channel::PowerUw(_) | Channel::Rail { .. } => DeviceRead {
                        power_w: Some(result.map(|uw| uw / 1e6)),
                        ..DeviceRead::default()
                    },
                }
            })
            .collect()
    }

    /// hwmon knows nothing of processes: in process mode these devices are not counted.
    fn runs_any(&self, _position: usize, _pids: &HashSet<u32>) -> bool {
        false
    }
}
