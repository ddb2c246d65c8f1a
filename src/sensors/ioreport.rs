//! Apple Silicon: CPU, GPU, Neural Engine and DRAM energy from IOReport's "Energy Model"
//! channels, without sudo and without a helper process (as macmon and Zeus read them).
//!
//! `libIOReport.dylib` has no public header; its entry points are declared here as macmon and
//! zeus-apple-silicon declare them and looked up at run time, with the few CoreFoundation calls
//! ([`super::cf`]), so this file builds and is tested on Linux against a stand-in library
//! (`tests/fixtures/fake_ioreport.c`). Each read takes a sample of a subscription to the group,
//! the delta from the previous one (`IOReportCreateSamplesDelta`), and adds each channel's
//! delta, in its own unit label's units, to a running total kept in nJ.
//!
//! Which channels count ([`classify`]): `CPU Energy` (or `DIE_<n>_CPU Energy` per die of an
//! Ultra) for the CPU, `GPU Energy` for the GPU, `ANE`, `ANE<n>`, `ANE<n>_<m>` for the Neural
//! Engine (counted with the CPU: the row has no column of its own for it), `DRAM`, `DRAM<n>`
//! for memory. Per-core and per-cluster channels (`ECPU0`, `PCPU1`) are inside `CPU Energy` and
//! other blocks (`ISP`, `AVE`, `GPU SRAM`, PCIe ports) are left out, so nothing is counted twice.

use std::ffi::c_void;
use std::path::{Path, PathBuf};

use libloading::Library;

use super::cf::{CfRef, CoreFoundation, Owned, symbol};
use super::{Channel, ChannelKind, Component, HostSample, Method, Reading, Sensor, SensorFault};
use crate::integrator::CounterSpec;

/// Where macOS keeps the library (in the dyld shared cache: the path opens though no file is
/// there).
pub const DEFAULT_IOREPORT_LIBRARY: &str = "/usr/lib/libIOReport.dylib";

/// The group whose channels are energies.
pub const ENERGY_GROUP: &str = "Energy Model";

/// Failed reads in a row after which a channel is given up.
pub const GIVE_UP_AFTER_FAILURES: u32 = 5;

/// The most a whole Apple SoC draws, W (an M2 Ultra peaks near 300 W): bounds a plausible step.
const ASSUMED_SOC_PEAK_W: u64 = 1_000;

/// The library to load: the one named, else on macOS the system's; `None` where there is none
/// to try (Linux, Windows, without a setting).
pub fn library(named: Option<&Path>) -> Option<PathBuf> {
    named
        .map(Path::to_path_buf)
        .or_else(|| cfg!(target_os = "macos").then(|| PathBuf::from(DEFAULT_IOREPORT_LIBRARY)))
}

/// What an energy channel measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The CPU clusters (`CPU Energy`, per die on an Ultra).
    Cpu,
    /// The GPU (`GPU Energy`).
    Gpu,
    /// The Neural Engine.
    Ane,
    /// Memory.
    Dram,
}

impl Part {
    /// The row's component: the Neural Engine is counted with the CPU.
    pub fn component(self) -> Component {
        match self {
            Self::Cpu | Self::Ane => Component::Cpu,
            Self::Gpu => Component::Gpu,
            Self::Dram => Component::Ram,
        }
    }
}

/// `prefix`, `prefix<n>` or `prefix<n>_<m>`: a block's own channel, not a sub-channel such as
/// `ANE0_SRAM`.
fn is_block(name: &str, prefix: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix) else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match rest.split_once('_') {
        None => rest.is_empty() || digits(rest),
        Some((die, unit)) => digits(die) && digits(unit),
    }
}

/// The part an "Energy Model" channel named `name` counts for, `None` for one left out.
pub fn classify(name: &str) -> Option<Part> {
    if name == "GPU Energy" {
        Some(Part::Gpu)
    } else if name == "CPU Energy"
        || name
            .strip_prefix("DIE_")
            .and_then(|rest| rest.strip_suffix("_CPU Energy"))
            .is_some_and(|die| !die.is_empty() && die.bytes().all(|b| b.is_ascii_digit()))
    {
        Some(Part::Cpu)
    } else if is_block(name, "ANE") {
        Some(Part::Ane)
    } else if is_block(name, "DRAM") {
        Some(Part::Dram)
    } else {
        None
    }
}

/// nJ in one unit of a channel's unit label, `None` for a label that is not an energy.
pub fn nj_per_unit(label: &str) -> Option<u64> {
    match label.trim() {
        "J" => Some(1_000_000_000),
        "mJ" => Some(1_000_000),
        "uJ" | "\u{b5}J" | "\u{3bc}J" => Some(1_000),
        "nJ" => Some(1),
        _ => None,
    }
}

/// Energy counted per part since the reader was opened, nJ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartEnergy {
    /// CPU clusters.
    pub cpu_nj: u64,
    /// GPU.
    pub gpu_nj: u64,
    /// Neural Engine.
    pub ane_nj: u64,
    /// Memory.
    pub dram_nj: u64,
}

impl PartEnergy {
    fn slot(&mut self, part: Part) -> &mut u64 {
        match part {
            Part::Cpu => &mut self.cpu_nj,
            Part::Gpu => &mut self.gpu_nj,
            Part::Ane => &mut self.ane_nj,
            Part::Dram => &mut self.dram_nj,
        }
    }

    /// The energy of `component` in µJ (the Neural Engine's with the CPU's).
    pub fn component_uj(&self, component: Component) -> u64 {
        let nj = match component {
            Component::Cpu => self.cpu_nj.saturating_add(self.ane_nj),
            Component::Gpu => self.gpu_nj,
            Component::Ram => self.dram_nj,
            Component::Psys => 0,
        };
        nj / 1_000
    }
}

/// One channel of a sample, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelValue {
    /// `Energy Model` for the channels counted.
    pub group: String,
    /// The channel's name.
    pub name: String,
    /// Its unit label.
    pub unit: String,
    /// The count in that unit.
    pub value: i64,
}

/// Adds one delta sample's channels to `totals`; returns the names of energy channels whose
/// unit label is not an energy (left out: a figure in unknown units is not guessed at). A
/// negative delta (a channel reset) adds nothing.
pub fn add_delta(totals: &mut PartEnergy, deltas: &[ChannelValue]) -> Vec<String> {
    let mut unknown = Vec::new();
    for channel in deltas {
        if channel.group != ENERGY_GROUP {
            continue;
        }
        let Some(part) = classify(&channel.name) else {
            continue;
        };
        let Some(scale) = nj_per_unit(&channel.unit) else {
            unknown.push(format!("{} ({:?})", channel.name, channel.unit));
            continue;
        };
        let step = u64::try_from(channel.value).unwrap_or(0);
        let slot = totals.slot(part);
        *slot = slot.saturating_add(step.saturating_mul(scale));
    }
    unknown
}

type CopyChannelsInGroup = unsafe extern "C" fn(CfRef, CfRef, u64, u64, u64) -> CfRef;
type CreateSubscription =
    unsafe extern "C" fn(*const c_void, CfRef, *mut CfRef, u64, CfRef) -> CfRef;
type CreateSamples = unsafe extern "C" fn(CfRef, CfRef, CfRef) -> CfRef;
type CreateSamplesDelta = unsafe extern "C" fn(CfRef, CfRef, CfRef) -> CfRef;
type ChannelGet = unsafe extern "C" fn(CfRef) -> CfRef;
type SimpleGetInteger = unsafe extern "C" fn(CfRef, i32) -> i64;

/// IOReport's entry points.
#[derive(Clone, Copy)]
struct Api {
    copy_channels_in_group: CopyChannelsInGroup,
    create_subscription: CreateSubscription,
    create_samples: CreateSamples,
    create_samples_delta: CreateSamplesDelta,
    group: ChannelGet,
    name: ChannelGet,
    unit: ChannelGet,
    integer: SimpleGetInteger,
}

impl Api {
    fn load(library: &Library) -> Result<Self, String> {
        Ok(Self {
            copy_channels_in_group: symbol(library, "IOReportCopyChannelsInGroup")?,
            create_subscription: symbol(library, "IOReportCreateSubscription")?,
            create_samples: symbol(library, "IOReportCreateSamples")?,
            create_samples_delta: symbol(library, "IOReportCreateSamplesDelta")?,
            group: symbol(library, "IOReportChannelGetGroup")?,
            name: symbol(library, "IOReportChannelGetChannelName")?,
            unit: symbol(library, "IOReportChannelGetUnitLabel")?,
            integer: symbol(library, "IOReportSimpleGetIntegerValue")?,
        })
    }
}

/// A subscription to the "Energy Model" group and the energy it has counted.
pub struct IoReport {
    // Declared before `_library`: the objects are released before it is unloaded.
    subscription: Owned,
    channels: Owned,
    last: Owned,
    totals: PartEnergy,
    parts: Vec<Part>,
    unknown_units: Vec<String>,
    api: Api,
    cf: CoreFoundation,
    _library: Library,
}

// SAFETY: the CoreFoundation objects held are used by one thread at a time (the owner's, behind
// `&mut self`); CoreFoundation's retain and release are thread-safe, so moving them between
// threads is sound.
unsafe impl Send for IoReport {}

impl IoReport {
    /// Loads the library at `path`, subscribes to the energy channels and takes the first
    /// sample; says why not in one line.
    pub fn open(path: &Path) -> Result<Self, String> {
        let fail = |why: String| format!("IOReport ({}) unavailable: {why}", path.display());
        // SAFETY: loading runs the library's initialisers; the path is the user's setting or
        // the system's IOReport, whose initialisers are the platform's own.
        let library = unsafe { Library::new(path) }.map_err(|err| fail(err.to_string()))?;
        let cf = CoreFoundation::load(&library).map_err(fail)?;
        let api = Api::load(&library).map_err(fail)?;
        let group = cf
            .string(ENERGY_GROUP)
            .ok_or_else(|| fail("CFStringCreateWithCString failed".to_owned()))?;
        // SAFETY: a live CFString group, no subgroup (null), the zeros every caller passes.
        let listed =
            unsafe { (api.copy_channels_in_group)(group.get(), std::ptr::null(), 0, 0, 0) };
        let listed = cf
            .own(listed)
            .ok_or_else(|| fail(format!("no {ENERGY_GROUP:?} channels")))?;
        let channels = cf
            .mutable_copy(listed.get())
            .ok_or_else(|| fail("CFDictionaryCreateMutableCopy failed".to_owned()))?;
        drop(listed);
        let mut subscribed: CfRef = std::ptr::null();
        // SAFETY: the mutable channel dictionary and an out pointer the call may fill with a
        // dictionary we then own; the other arguments are the nulls and zero every caller passes.
        let subscription = unsafe {
            (api.create_subscription)(
                std::ptr::null(),
                channels.get(),
                &raw mut subscribed,
                0,
                std::ptr::null(),
            )
        };
        drop(cf.own(subscribed));
        let subscription = cf
            .own(subscription)
            .ok_or_else(|| fail("IOReportCreateSubscription failed".to_owned()))?;
        let first = Self::sample_of(&api, &cf, &subscription, &channels)
            .ok_or_else(|| fail("IOReportCreateSamples failed".to_owned()))?;
        let (mut parts, mut unknown_units) = (Vec::new(), Vec::new());
        for channel in channel_values(&api, &cf, first.get()) {
            let Some(part) = classify(&channel.name).filter(|_| channel.group == ENERGY_GROUP)
            else {
                continue;
            };
            if nj_per_unit(&channel.unit).is_none() {
                unknown_units.push(format!("{} ({:?})", channel.name, channel.unit));
            } else if !parts.contains(&part) {
                parts.push(part);
            }
        }
        Ok(Self {
            subscription,
            channels,
            last: first,
            totals: PartEnergy::default(),
            parts,
            unknown_units,
            api,
            cf,
            _library: library,
        })
    }

    fn sample_of(
        api: &Api,
        cf: &CoreFoundation,
        subscription: &Owned,
        channels: &Owned,
    ) -> Option<Owned> {
        // SAFETY: a live subscription and the channel dictionary it was made from.
        cf.own(unsafe {
            (api.create_samples)(subscription.get(), channels.get(), std::ptr::null())
        })
    }

    /// The parts the group has channels for, in the order first seen.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Names and labels of energy channels left out for a unit label that is not an energy
    /// (those of the first sample, then any a read met).
    pub fn unknown_units(&self) -> &[String] {
        &self.unknown_units
    }

    /// Takes a sample and returns the energy counted per part since [`IoReport::open`].
    pub fn read(&mut self) -> Result<PartEnergy, String> {
        let sample = Self::sample_of(&self.api, &self.cf, &self.subscription, &self.channels)
            .ok_or_else(|| "IOReportCreateSamples failed".to_owned())?;
        // SAFETY: two live samples of one subscription.
        let delta = unsafe {
            (self.api.create_samples_delta)(self.last.get(), sample.get(), std::ptr::null())
        };
        let delta = self
            .cf
            .own(delta)
            .ok_or_else(|| "IOReportCreateSamplesDelta failed".to_owned())?;
        let values = channel_values(&self.api, &self.cf, delta.get());
        for unknown in add_delta(&mut self.totals, &values) {
            if !self.unknown_units.contains(&unknown) {
                self.unknown_units.push(unknown);
            }
        }
        self.last = sample;
        Ok(self.totals)
    }
}

/// Every channel of a sample (its `IOReportChannels` array).
fn channel_values(api: &Api, cf: &CoreFoundation, sample: CfRef) -> Vec<ChannelValue> {
    let Some(array) = cf.value(sample, "IOReportChannels") else {
        return Vec::new();
    };
    cf.items(array)
        .into_iter()
        .map(|item| {
            // SAFETY: `item` is a channel dictionary borrowed from the live sample; the getters
            // return strings borrowed from it, read before the sample is released.
            let text = |get: ChannelGet| cf.text(unsafe { get(item) }).unwrap_or_default();
            ChannelValue {
                group: text(api.group),
                name: text(api.name),
                unit: text(api.unit),
                // SAFETY: as above; index 0 is a simple channel's one value.
                value: unsafe { (api.integer)(item, 0) },
            }
        })
        .collect()
}

/// The CPU (with the Neural Engine) and memory channels of IOReport, as energy counters in µJ.
pub struct IoReportSensor {
    report: IoReport,
    components: Vec<Component>,
}

impl IoReportSensor {
    /// Opens IOReport at `path`: the sensor and the components it can measure (CPU, RAM).
    pub fn discover(path: &Path) -> Result<(Self, Vec<Component>), String> {
        let report = IoReport::open(path)?;
        let mut components = Vec::new();
        for part in report.parts() {
            let component = part.component();
            if component != Component::Gpu && !components.contains(&component) {
                components.push(component);
            }
        }
        let sensor = Self {
            report,
            components: components.clone(),
        };
        Ok((sensor, components))
    }

    /// Keeps only the channels of `components` (those the plan chose IOReport for).
    pub fn keep(&mut self, components: &[Component]) {
        self.components.retain(|c| components.contains(c));
    }

    /// The components read.
    pub fn components(&self) -> Vec<Component> {
        self.components.clone()
    }

    /// What discovery should say: energy channels left out for units it does not know.
    pub fn warnings(&self) -> Vec<String> {
        let unknown = self.report.unknown_units();
        if unknown.is_empty() {
            return Vec::new();
        }
        vec![format!(
            "IOReport energy channels left out, their unit labels are not energies: {}",
            unknown.join(", ")
        )]
    }
}

impl Sensor for IoReportSensor {
    fn channels(&self) -> Vec<Channel> {
        self.components
            .iter()
            .map(|component| Channel {
                name: match component {
                    Component::Ram => "ioreport-dram".to_owned(),
                    _ => "ioreport-cpu".to_owned(),
                },
                component: *component,
                method: Method::IoReport,
                kind: ChannelKind::Counter {
                    spec: CounterSpec {
                        // Totals of 64-bit nJ, handed out in µJ: they never wrap.
                        max_energy_range_uj: u64::MAX,
                        max_power_uw: Some(ASSUMED_SOC_PEAK_W * 1_000_000),
                        refuse_jumps: false,
                    },
                    give_up_after: GIVE_UP_AFTER_FAILURES,
                },
            })
            .collect()
    }

    fn read(&mut self, _host: &HostSample) -> Vec<Result<Reading, SensorFault>> {
        let read = self.report.read();
        self.components
            .iter()
            .map(|component| match &read {
                Ok(totals) => Ok(Reading::EnergyUj(totals.component_uj(*component))),
                Err(why) => Err(SensorFault::Read(why.clone())),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_of_m1_m2_max_and_ultra_are_classified() {
        let counted = [
            ("CPU Energy", Part::Cpu),
            ("DIE_0_CPU Energy", Part::Cpu),
            ("DIE_1_CPU Energy", Part::Cpu),
            ("GPU Energy", Part::Gpu),
            ("ANE", Part::Ane),
            ("ANE0", Part::Ane),
            ("ANE0_1", Part::Ane),
            ("DRAM", Part::Dram),
            ("DRAM0", Part::Dram),
        ];
        for (name, part) in counted {
            assert_eq!(classify(name), Some(part), "{name}");
        }
        let left_out = [
            "ECPU0",
            "PCPU1",
            "EACC_CPU",
            "GPU",
            "GPU SRAM0",
            "ANE0_SRAM",
            "ISP",
            "AVE",
            "PCIe Port 0 Energy",
            "DIE__CPU Energy",
            "DRAMX",
        ];
        for name in left_out {
            assert_eq!(classify(name), None, "{name}");
        }
    }

    #[test]
    fn units_come_from_each_channels_label() {
        assert_eq!(nj_per_unit("mJ"), Some(1_000_000));
        assert_eq!(nj_per_unit("uJ"), Some(1_000));
        assert_eq!(nj_per_unit("\u{b5}J"), Some(1_000));
        assert_eq!(nj_per_unit("nJ"), Some(1));
        assert_eq!(nj_per_unit("MHz"), None);
    }

    fn channel(group: &str, name: &str, unit: &str, value: i64) -> ChannelValue {
        ChannelValue {
            group: group.to_owned(),
            name: name.to_owned(),
            unit: unit.to_owned(),
            value,
        }
    }

    #[test]
    fn a_delta_adds_each_counted_channel_once_in_nanojoules() {
        let mut totals = PartEnergy::default();
        let unknown = add_delta(
            &mut totals,
            &[
                channel(ENERGY_GROUP, "CPU Energy", "mJ", 5_000),
                channel(ENERGY_GROUP, "PCPU0", "mJ", 3_000),
                channel(ENERGY_GROUP, "GPU Energy", "nJ", 12_000_000_000),
                channel(ENERGY_GROUP, "ANE0", "mJ", 500),
                channel(ENERGY_GROUP, "DRAM0", "uJ", 2_000_000),
                channel(ENERGY_GROUP, "DRAM1", "furlongs", 9),
                channel("CPU Stats", "CPU Energy", "mJ", 100_000),
                channel(ENERGY_GROUP, "DIE_0_CPU Energy", "mJ", -4),
            ],
        );
        assert_eq!(unknown, ["DRAM1 (\"furlongs\")"]);
        assert_eq!(
            totals,
            PartEnergy {
                cpu_nj: 5_000_000_000,
                gpu_nj: 12_000_000_000,
                ane_nj: 500_000_000,
                dram_nj: 2_000_000_000,
            }
        );
        assert_eq!(totals.component_uj(Component::Cpu), 5_500_000);
        assert_eq!(totals.component_uj(Component::Gpu), 12_000_000);
        assert_eq!(totals.component_uj(Component::Ram), 2_000_000);
    }

    #[test]
    fn nanojoule_deltas_below_a_microjoule_are_not_lost() {
        let mut totals = PartEnergy::default();
        for _ in 0..1_000 {
            add_delta(
                &mut totals,
                &[channel(ENERGY_GROUP, "GPU Energy", "nJ", 999)],
            );
        }
        assert_eq!(totals.component_uj(Component::Gpu), 999);
    }

    #[test]
    fn the_library_is_the_settings_else_the_systems_on_macos_only() {
        let named = Path::new("/tmp/libfake.so");
        assert_eq!(library(Some(named)), Some(named.to_path_buf()));
        assert_eq!(
            library(None).is_some(),
            cfg!(target_os = "macos"),
            "no library is tried off macOS without a setting"
        );
    }
}
