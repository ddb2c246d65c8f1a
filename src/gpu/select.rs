//! Which of the devices a backend found are measured: `gpu_ids`, else the runtime's visible
//! devices variable (`CUDA_VISIBLE_DEVICES`), else all of them. Pure: the one thing only the
//! vendor library knows (the parent of a MIG instance named by its own UUID) is a callback.
//!
//! Entries are read as CUDA reads them: indexes, `GPU-` UUIDs or unique prefixes of them,
//! `MIG-` UUIDs. A MIG instance is measured through its parent: NVML has no energy or power per
//! instance.

use super::GpuConfig;
use super::device::{GpuDevice, GpuFault, GpuInfo};

/// How the user names a backend's devices.
pub enum Naming<'a> {
    /// `gpu_ids`, else `CUDA_VISIBLE_DEVICES`; `MIG-` instances resolved by the library.
    Cuda(&'a dyn Fn(&str) -> Option<u32>),
    /// `gpu_ids`, else `ROCR_VISIBLE_DEVICES` then `HIP_VISIBLE_DEVICES`.
    Rocm,
    /// Not named by any setting: every device (Intel cards, which no runtime variable numbers
    /// in a way carbonmeter reads).
    All,
}

/// `CUDA_VISIBLE_DEVICES` as the settings give it.
fn cuda(config: &GpuConfig) -> Option<Visible<'_>> {
    config.cuda_visible_devices.as_deref().map(|value| Visible {
        variable: "CUDA_VISIBLE_DEVICES",
        runtime: "CUDA",
        value,
    })
}

/// Whether the settings hide every NVIDIA device, so the library need not even be loaded.
pub fn hides_every_cuda_device(config: &GpuConfig) -> bool {
    hides_every_device(config.gpu_ids.as_deref(), cuda(config))
}

/// Whether an earlier backend measures this device (a counter or a power): then a later
/// backend leaves it out. A device found but unmeasured is left to a later backend that can
/// measure it (a Jetson's GPU: NVML finds it, its ina3221 rail measures it).
pub fn is_claimed(claimed: &[GpuDevice], info: &GpuInfo) -> bool {
    claimed
        .iter()
        .any(|other| (other.has_energy_counter || other.has_power) && other.info.same_device(info))
}

/// The one selection every backend's discovery goes through: the devices of `all` the
/// settings name (by `naming`), less those an earlier backend measures (`claimed`). `broken`
/// are the devices that did not answer, warned about only when selected.
pub fn choose(
    config: &GpuConfig,
    naming: &Naming<'_>,
    all: &[GpuInfo],
    broken: &[(u32, GpuFault)],
    claimed: &[GpuDevice],
    warnings: &mut Vec<String>,
) -> Vec<GpuInfo> {
    let gpu_ids = config.gpu_ids.as_deref();
    let chosen = match naming {
        Naming::Cuda(mig_parent) => {
            select(all, broken, gpu_ids, cuda(config), mig_parent, warnings)
        }
        Naming::Rocm => select_rocm(
            all,
            broken,
            gpu_ids,
            config.rocr_visible_devices.as_deref(),
            config.hip_visible_devices.as_deref(),
            warnings,
        ),
        Naming::All => all.to_vec(),
    };
    chosen
        .into_iter()
        .filter(|info| !is_claimed(claimed, info))
        .collect()
}

/// A runtime's visible-devices variable as the process sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visible<'a> {
    /// Its name, for warnings (`CUDA_VISIBLE_DEVICES`).
    pub variable: &'static str,
    /// The runtime that reads it, for warnings (`CUDA`).
    pub runtime: &'static str,
    /// Its value.
    pub value: &'a str,
}

/// Whether the settings hide every device before any is found: an empty visible-devices
/// variable, unless `gpu_ids` names devices itself.
pub fn hides_every_device(gpu_ids: Option<&[String]>, visible: Option<Visible<'_>>) -> bool {
    gpu_ids.is_none() && visible.is_some_and(|v| v.value.trim().is_empty())
}

/// One entry of a device list, as CUDA parses `CUDA_VISIBLE_DEVICES`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DeviceId {
    Index(u32),
    Uuid(String),
    Mig(String),
}

fn parse_device_id(entry: &str) -> Option<DeviceId> {
    let entry = entry.trim();
    if let Ok(index) = entry.parse::<u32>() {
        return Some(DeviceId::Index(index));
    }
    if entry.starts_with("MIG-") {
        return Some(DeviceId::Mig(entry.to_owned()));
    }
    if entry.starts_with("GPU-") {
        return Some(DeviceId::Uuid(entry.to_owned()));
    }
    None
}

/// The devices chosen among `all`, in the order named, each once. `broken` are the devices
/// that did not answer at discovery, with why: warned about only when selected. `mig_parent`
/// gives the index of the GPU a `MIG-<uuid>` instance lives on. `warnings` gets one line per
/// problem: an id that names no device, MIG instances measured through their parent.
pub fn select(
    all: &[GpuInfo],
    broken: &[(u32, GpuFault)],
    gpu_ids: Option<&[String]>,
    visible: Option<Visible<'_>>,
    mig_parent: &dyn Fn(&str) -> Option<u32>,
    warnings: &mut Vec<String>,
) -> Vec<GpuInfo> {
    let skipped = |index: u32, reason: &GpuFault| format!("GPU {index} skipped: {reason}");
    let entries: Vec<String> = if let Some(ids) = gpu_ids {
        ids.to_vec()
    } else if let Some(visible) = visible {
        visible
            .value
            .split(',')
            .map(|s| s.trim().to_owned())
            .collect()
    } else {
        for (index, reason) in broken {
            warnings.push(skipped(*index, reason));
        }
        return all.to_vec();
    };
    // The runtime's variable, when it (not gpu_ids) does the naming.
    let runtime = if gpu_ids.is_some() { None } else { visible };
    let mut chosen: Vec<GpuInfo> = Vec::new();
    // MIG instances named, per parent GPU: one warning per parent.
    let mut instances: Vec<(u32, Vec<String>)> = Vec::new();
    for entry in entries {
        let found = parse_device_id(&entry).and_then(|id| resolve(all, &id, mig_parent));
        let Some((info, instance)) = found else {
            if let Some((index, reason)) = broken
                .iter()
                .find(|(index, _)| entry.parse::<u32>() == Ok(*index))
            {
                warnings.push(skipped(*index, reason));
                continue;
            }
            if entry.parse::<i64>().is_ok_and(|index| index < 0) {
                // `-1` is the usual way to hide every GPU from CUDA: not a mistake.
                break;
            }
            let known = all
                .iter()
                .map(|info| format!("{} ({})", info.index, info.uuid))
                .collect::<Vec<_>>()
                .join(", ");
            if let Some(Visible {
                variable, runtime, ..
            }) = runtime
            {
                // The runtime itself ignores an invalid entry and every entry after it.
                warnings.push(format!(
                    "{variable} entry {entry:?} names no GPU: it and the entries after it are \
                     ignored, as {runtime} does; GPUs: {known}"
                ));
                break;
            }
            warnings.push(format!(
                "gpu_ids entry {entry:?} names no GPU: ignored; expected an index or UUID \
                 among {known}"
            ));
            continue;
        };
        if let Some(instance) = instance {
            match instances.iter_mut().find(|(index, _)| *index == info.index) {
                Some((_, names)) => names.push(instance),
                None => instances.push((info.index, vec![instance])),
            }
        }
        if !chosen.iter().any(|c| c.index == info.index) {
            chosen.push(info);
        }
    }
    for (index, names) in instances {
        let uuid = all
            .iter()
            .find(|info| info.index == index)
            .map_or("", |info| info.uuid.as_str());
        warnings.push(format!(
            "{} {} MIG instance(s) of GPU {index} ({uuid}): NVML measures only the whole GPU, \
             so its energy includes every instance on it",
            names.join(", "),
            if names.len() == 1 { "is a" } else { "are" },
        ));
    }
    chosen
}

/// ROCm's selection: `gpu_ids` when set; else `ROCR_VISIBLE_DEVICES` among every device, then
/// `HIP_VISIBLE_DEVICES` as positions among the devices it left, as the HIP runtime reads them.
pub fn select_rocm(
    all: &[GpuInfo],
    broken: &[(u32, GpuFault)],
    gpu_ids: Option<&[String]>,
    rocr_visible_devices: Option<&str>,
    hip_visible_devices: Option<&str>,
    warnings: &mut Vec<String>,
) -> Vec<GpuInfo> {
    let no_mig = |_: &str| None;
    let rocr = rocr_visible_devices.map(|value| Visible {
        variable: "ROCR_VISIBLE_DEVICES",
        runtime: "ROCm",
        value,
    });
    let hip = hip_visible_devices.map(|value| Visible {
        variable: "HIP_VISIBLE_DEVICES",
        runtime: "HIP",
        value,
    });
    if gpu_ids.is_some() {
        return select(all, broken, gpu_ids, None, &no_mig, warnings);
    }
    if hides_every_device(None, rocr) || hides_every_device(None, hip) {
        return Vec::new();
    }
    let first = select(all, broken, None, rocr, &no_mig, warnings);
    if hip.is_none() {
        return first;
    }
    let renumbered: Vec<GpuInfo> = first
        .iter()
        .zip(0..)
        .map(|(info, position)| GpuInfo {
            index: position,
            ..info.clone()
        })
        .collect();
    select(&renumbered, &[], None, hip, &no_mig, warnings)
        .iter()
        .filter_map(|chosen| first.get(chosen.index as usize).cloned())
        .collect()
}

/// The physical GPU an id names, and the MIG instance's id when it names one.
fn resolve(
    all: &[GpuInfo],
    id: &DeviceId,
    mig_parent: &dyn Fn(&str) -> Option<u32>,
) -> Option<(GpuInfo, Option<String>)> {
    match id {
        DeviceId::Index(index) => all
            .iter()
            .find(|info| info.index == *index)
            .map(|info| (info.clone(), None)),
        DeviceId::Uuid(prefix) => {
            // CUDA accepts any unique prefix of a UUID.
            let mut matches = all.iter().filter(|info| info.uuid.starts_with(prefix));
            let first = matches.next()?;
            matches.next().is_none().then(|| (first.clone(), None))
        }
        DeviceId::Mig(uuid) => {
            let parent_index = if let Some(parent_uuid) = uuid
                .strip_prefix("MIG-")
                .filter(|rest| rest.starts_with("GPU-"))
            {
                // The CUDA 11.0 form MIG-GPU-<uuid>/<gi>/<ci> names the parent itself.
                let parent_uuid = parent_uuid.split('/').next().unwrap_or(parent_uuid);
                all.iter()
                    .find(|info| info.uuid == parent_uuid)
                    .map(|info| info.index)?
            } else {
                mig_parent(uuid)?
            };
            let parent = all.iter().find(|info| info.index == parent_index)?.clone();
            Some((parent, Some(uuid.clone())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::Vendor;

    fn gpus(count: u32) -> Vec<GpuInfo> {
        (0..count)
            .map(|index| GpuInfo {
                vendor: Vendor::Nvidia,
                index,
                uuid: format!("GPU-{index}{index}aa-0000"),
                name: "NVIDIA A100-SXM4-40GB".to_owned(),
                pci_bus_id: None,
            })
            .collect()
    }

    fn cuda(value: &str) -> Visible<'_> {
        Visible {
            variable: "CUDA_VISIBLE_DEVICES",
            runtime: "CUDA",
            value,
        }
    }

    /// The MIG instance `MIG-aaaa` lives on GPU 2; no other instance exists.
    fn mig_parent(uuid: &str) -> Option<u32> {
        (uuid == "MIG-aaaa").then_some(2)
    }

    /// Indexes chosen by `CUDA_VISIBLE_DEVICES=value` among four GPUs, and the warnings.
    fn visible(value: &str) -> (Vec<u32>, Vec<String>) {
        let mut warnings = Vec::new();
        let chosen = select(
            &gpus(4),
            &[],
            None,
            Some(cuda(value)),
            &mig_parent,
            &mut warnings,
        );
        (chosen.iter().map(|info| info.index).collect(), warnings)
    }

    #[test]
    fn device_ids_parse_as_cuda_does() {
        assert_eq!(parse_device_id(" 3 "), Some(DeviceId::Index(3)));
        assert_eq!(
            parse_device_id("GPU-8d5"),
            Some(DeviceId::Uuid("GPU-8d5".into()))
        );
        assert_eq!(
            parse_device_id("MIG-1a2b"),
            Some(DeviceId::Mig("MIG-1a2b".into()))
        );
        assert_eq!(parse_device_id("-1"), None);
        assert_eq!(parse_device_id("cuda:0"), None);
    }

    #[test]
    fn indexes_and_uuid_prefixes_in_the_order_named_each_once() {
        assert_eq!(visible("2, 0"), (vec![2, 0], vec![]));
        assert_eq!(visible("GPU-33,1,3"), (vec![3, 1], vec![]));
        let mut warnings = Vec::new();
        let everything = select(&gpus(3), &[], None, None, &mig_parent, &mut warnings);
        assert_eq!(everything, gpus(3));
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn empty_or_minus_one_hides_every_gpu_without_a_warning() {
        assert!(hides_every_device(None, Some(cuda(" "))));
        assert!(!hides_every_device(Some(&["0".to_owned()]), Some(cuda(""))));
        assert!(!hides_every_device(None, Some(cuda("0"))));
        assert!(!hides_every_device(None, None));
        assert_eq!(visible("-1"), (vec![], vec![]));
        assert_eq!(visible("-1,0"), (vec![], vec![]));
    }

    #[test]
    fn an_invalid_visible_entry_ends_the_list_as_cuda_does() {
        let (chosen, warnings) = visible("1,7,0");
        assert_eq!(chosen, [1]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("CUDA_VISIBLE_DEVICES entry \"7\""),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("as CUDA does"), "{warnings:?}");
        // An ambiguous prefix names no GPU: GPU-0, GPU-1, ... all start with "GPU-".
        assert_eq!(visible("GPU-").0, Vec::<u32>::new());
    }

    #[test]
    fn gpu_ids_win_and_skip_only_the_bad_entry() {
        let ids = ["7".to_owned(), "GPU-11".to_owned()];
        let mut warnings = Vec::new();
        let chosen = select(
            &gpus(4),
            &[],
            Some(&ids),
            Some(cuda("0")),
            &mig_parent,
            &mut warnings,
        );
        assert_eq!(chosen, [gpus(4)[1].clone()]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("gpu_ids entry \"7\""),
            "{warnings:?}"
        );
    }

    #[test]
    fn mig_instances_count_as_their_parent_once_with_one_warning() {
        let (chosen, warnings) = visible("MIG-aaaa,MIG-GPU-22aa-0000/1/0,2");
        assert_eq!(chosen, [2]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("MIG-aaaa, MIG-GPU-22aa-0000/1/0 are MIG instance(s) of GPU 2"),
            "{warnings:?}"
        );
        // An instance the library does not know names no GPU.
        assert_eq!(visible("MIG-bbbb").0, Vec::<u32>::new());
    }

    #[test]
    fn hip_visible_devices_index_the_devices_rocr_left() {
        let mut warnings = Vec::new();
        let indexes = |chosen: Vec<GpuInfo>| chosen.iter().map(|i| i.index).collect::<Vec<_>>();
        let all = gpus(4);
        let chosen = select_rocm(&all, &[], None, Some("2,3"), Some("1"), &mut warnings);
        assert_eq!(indexes(chosen), [3]);
        let chosen = select_rocm(&all, &[], None, None, Some("0,2"), &mut warnings);
        assert_eq!(indexes(chosen), [0, 2]);
        let ids = ["1".to_owned()];
        let chosen = select_rocm(&all, &[], Some(&ids), Some(""), None, &mut warnings);
        assert_eq!(indexes(chosen), [1]);
        assert!(select_rocm(&all, &[], None, Some("0"), Some(""), &mut warnings).is_empty());
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn broken_devices_are_warned_about_only_when_selected() {
        let broken = [(1, GpuFault::Lost { library: "NVML" })];
        let all = [gpus(1)[0].clone()];
        let mut warnings = Vec::new();
        let chosen = select(
            &all,
            &broken,
            None,
            Some(cuda("0")),
            &mig_parent,
            &mut warnings,
        );
        assert_eq!((chosen.len(), warnings.len()), (1, 0));
        let chosen = select(
            &all,
            &broken,
            None,
            Some(cuda("1,0")),
            &mig_parent,
            &mut warnings,
        );
        assert_eq!(chosen.len(), 1);
        assert_eq!(
            warnings,
            ["GPU 1 skipped: the GPU fell off the bus (NVML: GPU is lost)"]
        );
        warnings.clear();
        select(&all, &broken, None, None, &mig_parent, &mut warnings);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }
}
