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

use super::device::{DeviceRead, Discovery, GpuBackend, GpuDevice, GpuFault, GpuInfo, Wanted};
use super::select::{self, Naming};
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

/// The GPUs hwmon measures, each with its channel (`None`: found, reports nothing).
pub struct HwmonBackend {
    devices: Vec<GpuDevice>,
    channels: Vec<Option<Channel>>,
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
    let Some(entries) = crate::sensors::class_entries(root) else {
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

/// The xe, i915 and amdgpu cards, each once, with the channel that measures it (if any),
/// numbered per vendor in PCI address order: the order the runtimes number them in.
fn cards(chips: &[Chip]) -> Vec<(GpuInfo, Option<Channel>)> {
    let mut cards: Vec<&Chip> = chips
        .iter()
        .filter(|c| matches!(c.name.as_str(), "xe" | "i915" | "amdgpu"))
        .collect();
    cards.sort_by(|a, b| a.pci_bus_id.cmp(&b.pci_bus_id));
    let mut seen: HashSet<String> = HashSet::new();
    let (mut intel_count, mut amd_count) = (0, 0);
    let mut found = Vec::new();
    for chip in cards {
        let Some(pci) = chip.pci_bus_id.clone() else {
            continue;
        };
        if !seen.insert(pci.clone()) {
            continue;
        }
        let (vendor, channel, count) = if chip.name == "amdgpu" {
            let power = ["power1_input", "power1_average"]
                .iter()
                .map(|file| chip.dir.join(file))
                .find(|path| read_number(path).is_ok())
                .map(Channel::PowerUw);
            // A card without power is still numbered, so indexes stay ROCm's.
            (Vendor::Amd, power, &mut amd_count)
        } else {
            let energy = energy_channel(&chip.dir).map(Channel::EnergyUj);
            (Vendor::Intel, energy, &mut intel_count)
        };
        let info = GpuInfo {
            vendor,
            index: *count,
            uuid: format!("pci-{pci}"),
            name: card_name(chip, vendor),
            pci_bus_id: Some(pci),
        };
        *count += 1;
        found.push((info, channel));
    }
    found
}

/// A Jetson's GPU rail, when NVML has no power for the board's one GPU or no GPU at all: the
/// device NVML found (so it is superseded, not counted twice), else one of its own.
fn jetson_rail(chips: &[Chip], claimed: &[GpuDevice]) -> Option<(GpuInfo, Channel)> {
    let nvidia: Vec<&GpuDevice> = claimed
        .iter()
        .filter(|d| d.info.vendor == Vendor::Nvidia)
        .collect();
    let nvml_device = match nvidia.as_slice() {
        [] => None,
        [only] if !only.has_energy_counter && !only.has_power => Some(*only),
        _ => return None,
    };
    let (chip, (label, channel)) = chips
        .iter()
        .filter(|c| c.name == "ina3221")
        .find_map(|c| gpu_rail(&c.dir).map(|rail| (c, rail)))?;
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
    Some((info, channel))
}

/// Finds the cards under `config.hwmon_root` that [`select::choose`] keeps (AMD ones by ROCm's
/// variables, Intel ones all), and a Jetson's GPU rail.
pub fn discover(
    config: &GpuConfig,
    claimed: &[GpuDevice],
    warnings: &mut Vec<String>,
) -> Discovery {
    let root = &config.hwmon_root;
    let chips = chips(root);
    let cards = cards(&chips);
    let mut found: Vec<(GpuInfo, Option<Channel>)> = Vec::new();
    for (vendor, naming) in [(Vendor::Intel, Naming::All), (Vendor::Amd, Naming::Rocm)] {
        let all: Vec<GpuInfo> = cards
            .iter()
            .filter(|(info, _)| info.vendor == vendor)
            .map(|(info, _)| info.clone())
            .collect();
        if all.is_empty() {
            continue;
        }
        for info in select::choose(config, &naming, &all, &[], claimed, warnings) {
            let channel = cards
                .iter()
                .find(|(card, _)| *card == info)
                .and_then(|(_, channel)| channel.clone());
            found.push((info, channel));
        }
    }
    if let Some((info, channel)) = jetson_rail(&chips, claimed) {
        found.push((info, Some(channel)));
    }
    if found.is_empty() {
        return Discovery::Absent(format!(
            "no GPU measured through hwmon under {}",
            root.display()
        ));
    }
    let (devices, channels) = found
        .into_iter()
        .map(|(info, channel)| {
            let device = GpuDevice {
                info,
                has_energy_counter: matches!(channel, Some(Channel::EnergyUj(_))),
                has_power: matches!(channel, Some(Channel::PowerUw(_) | Channel::Rail { .. })),
            };
            (device, channel)
        })
        .unzip();
    Discovery::Found(Box::new(HwmonBackend { devices, channels }))
}

impl GpuBackend for HwmonBackend {
    fn devices(&self) -> &[GpuDevice] {
        &self.devices
    }

    fn read(&mut self, position: usize, wanted: Wanted) -> DeviceRead {
        match self.channels.get(position).and_then(Option::as_ref) {
            Some(Channel::EnergyUj(path)) if wanted.energy => DeviceRead {
                energy_uj: Some(read_number(path)),
                ..DeviceRead::default()
            },
            Some(Channel::PowerUw(path)) if wanted.power => DeviceRead {
                power_w: Some(read_number(path).map(|uw| uw as f64 / 1e6)),
                ..DeviceRead::default()
            },
            Some(Channel::Rail {
                voltage_mv,
                current_ma,
            }) if wanted.power => {
                // mV x mA is µW.
                let power_uw = read_number(voltage_mv)
                    .and_then(|mv| read_number(current_ma).map(|ma| mv as f64 * ma as f64));
                DeviceRead {
                    power_w: Some(power_uw.map(|uw| uw / 1e6)),
                    ..DeviceRead::default()
                }
            }
            _ => DeviceRead::default(),
        }
    }

    /// hwmon knows nothing of processes: in process mode these devices are not counted.
    fn runs_any(&self, _position: usize, _pids: &HashSet<u32>) -> bool {
        false
    }
}
