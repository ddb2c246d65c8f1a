//! The sensors of one tracker and the running energy of each of their channels.
//!
//! Every read extends a cumulative total per channel; a window's energy is the difference of
//! two [`Snapshot`]s taken at its edges. Edges read the hardware at once (not at the next tick),
//! so counters are exact at any boundary and windows of any number and overlap add up.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::gpu::{GpuConfig, GpuInterval, GpuMeter, GpuTotals};
use crate::integrator::{EnergyTrack, Fed, PowerAccumulator, PowerKind, PowerSample, TrackFault};
use crate::runtime::Causes;
use crate::sensors::constant::ConstantSensor;
use crate::sensors::cpu_load::LoadTdpSensor;
use crate::sensors::host::{HostInfo, HostProbe};
use crate::sensors::plan::{self, CpuSource, Fallback, Plan, RamSource};
use crate::sensors::platform::{self as platform_source, PlatformSensor};
use crate::sensors::procfs;
use crate::sensors::ram::RamModelSensor;
use crate::sensors::rapl::{RaplDiscovery, RaplSensor};
use crate::sensors::{
    Channel, ChannelKind, Component, HostSample, Method, Sensor, SensorFault, TrackingMode,
};

/// How to choose and configure sensors.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterConfig {
    /// Root of the powercap tree.
    pub powercap_root: PathBuf,
    /// The settings the CPU and RAM sources are chosen by; `measures_host` is given per meter
    /// (see [`Self::sources_for`]).
    pub sources: plan::Settings,
    /// GPU library and selection.
    pub gpu: GpuConfig,
    /// A library standing in for Windows' setupapi.dll and kernel32.dll, for the Energy Meter
    /// Interface; `None` is the system's on Windows and none elsewhere.
    pub emi_library: Option<PathBuf>,
}

impl MeterConfig {
    /// The settings [`plan::plan`] chooses sources by, for a meter that measures the host's
    /// CPU and RAM or (without `measures_host`) leaves them to another rank.
    pub fn sources_for(&self, measures_host: bool) -> plan::Settings {
        plan::Settings {
            measures_host,
            ..self.sources
        }
    }

    /// Defaults of the settings (machine mode, DRAM counted, nothing forced) on the powercap
    /// tree at `powercap_root`, with no GPU: what the RAPL tests and benches measure.
    pub fn powercap_only(powercap_root: &Path) -> Self {
        Self {
            powercap_root: powercap_root.to_owned(),
            sources: plan::Settings::DEFAULT,
            gpu: GpuConfig {
                cuda_visible_devices: Some(String::new()),
                ..GpuConfig::default()
            },
            emi_library: None,
        }
    }
}

/// Energy in J per component.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ComponentEnergy {
    /// CPU packages (or psys when preferred).
    pub cpu_j: f64,
    /// Memory.
    pub ram_j: f64,
    /// GPUs.
    pub gpu_j: f64,
    /// RAPL platform zone, apart.
    pub psys_j: f64,
}

impl ComponentEnergy {
    fn add(&mut self, component: Component, energy_j: f64) {
        match component {
            Component::Cpu => self.cpu_j += energy_j,
            Component::Ram => self.ram_j += energy_j,
            Component::Gpu => self.gpu_j += energy_j,
            Component::Psys => self.psys_j += energy_j,
        }
    }

    /// The energy counted in a row's total, CPU + RAM + GPU, each through `unit` (J, or kWh at
    /// the PUE); `psys` overlaps them and is never added in.
    pub fn counted(&self, unit: impl Fn(f64) -> f64) -> f64 {
        unit(self.cpu_j) + unit(self.ram_j) + unit(self.gpu_j)
    }

    /// [`Self::counted`] in J.
    pub fn counted_j(&self) -> f64 {
        self.counted(|energy_j| energy_j)
    }

    /// The energy from `earlier` to `self`, two cumulative totals (never negative).
    pub(crate) fn minus(self, earlier: Self) -> Self {
        Self {
            cpu_j: (self.cpu_j - earlier.cpu_j).max(0.0),
            ram_j: (self.ram_j - earlier.ram_j).max(0.0),
            gpu_j: (self.gpu_j - earlier.gpu_j).max(0.0),
            psys_j: (self.psys_j - earlier.psys_j).max(0.0),
        }
    }

    /// Component by component sum.
    pub(crate) fn plus(self, more: Self) -> Self {
        Self {
            cpu_j: self.cpu_j + more.cpu_j,
            ram_j: self.ram_j + more.ram_j,
            gpu_j: self.gpu_j + more.gpu_j,
            psys_j: self.psys_j + more.psys_j,
        }
    }

    /// Every component times `factor`.
    pub(crate) fn times(self, factor: f64) -> Self {
        Self {
            cpu_j: self.cpu_j * factor,
            ram_j: self.ram_j * factor,
            gpu_j: self.gpu_j * factor,
            psys_j: self.psys_j * factor,
        }
    }
}

/// Cumulative totals at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// When, in seconds since the meter started.
    pub t_s: f64,
    /// Energy since the meter started.
    pub energy: ComponentEnergy,
    /// ∫ CPU utilisation (0 to 1) dt.
    pub cpu_busy_s: f64,
    /// ∫ RAM in use (GB) dt.
    pub ram_used_gb_s: f64,
    /// ∫ RAM in use / RAM installed dt.
    pub ram_fraction_s: f64,
    /// Per-GPU totals.
    pub gpu: GpuTotals,
}

/// What happened between two snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// Length in seconds.
    pub duration_s: f64,
    /// Energy per component.
    pub energy: ComponentEnergy,
    /// Mean CPU utilisation, percent.
    pub cpu_utilization_percent: f64,
    /// Mean RAM in use, GB.
    pub ram_used_gb: f64,
    /// Mean RAM in use, percent of installed.
    pub ram_utilization_percent: f64,
    /// Per-GPU energy, methods and utilisation.
    pub gpu: GpuInterval,
}

impl Snapshot {
    /// The interval from `start` to this snapshot.
    pub fn since(&self, start: &Snapshot) -> Interval {
        let duration_s = (self.t_s - start.t_s).max(0.0);
        let mean = |later: f64, earlier: f64| {
            if duration_s > 0.0 {
                (later - earlier).max(0.0) / duration_s
            } else {
                0.0
            }
        };
        Interval {
            duration_s,
            energy: self.energy.minus(start.energy),
            cpu_utilization_percent: 100.0 * mean(self.cpu_busy_s, start.cpu_busy_s),
            ram_used_gb: mean(self.ram_used_gb_s, start.ram_used_gb_s),
            ram_utilization_percent: 100.0 * mean(self.ram_fraction_s, start.ram_fraction_s),
            gpu: self.gpu.since(&start.gpu),
        }
    }
}

/// The measurement methods in use, for the row.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterDescription {
    /// How CPU energy is measured.
    pub cpu_method: Method,
    /// How RAM energy is measured.
    pub ram_method: Method,
    /// How GPU energy is measured.
    pub gpu_method: Method,
    /// Names of the RAPL zones read, `+`-joined.
    pub rapl_zones: String,
    /// Static facts of the machine.
    pub host: HostInfo,
    /// Under load x TDP, the most a window's CPU figure may be off by, J, however short the
    /// window: its utilisation is a difference of busy-time counters that the kernel rounds down
    /// to whole clock ticks, field by field ([`procfs::BUSY_FIELDS`] ticks at TDP per CPU). 0
    /// where the CPU is not modelled from utilisation.
    pub cpu_resolution_j: f64,
    /// Under load x TDP, one clock tick of the CPU time counters, s: a window shorter than
    /// this reads its CPU as [`Method::LoadTdpShort`]. 0 where the CPU is not so modelled.
    pub cpu_tick_s: f64,
}

struct ChannelState {
    channel: Channel,
    track: EnergyTrack,
}

impl ChannelState {
    /// A channel and a fresh track of its kind.
    fn new(channel: Channel) -> Self {
        let track = match channel.kind {
            ChannelKind::Counter {
                spec,
                give_up_after,
            } => EnergyTrack::counter(spec, give_up_after),
            ChannelKind::Power(kind) => EnergyTrack::power(kind),
        };
        Self { channel, track }
    }
}

/// Sensors plus their running totals.
pub struct Meter {
    origin: Instant,
    probe: HostProbe,
    sensors: Vec<Box<dyn Sensor>>,
    channels: Vec<Vec<ChannelState>>,
    cpu_busy: PowerAccumulator,
    ram_used_gb: PowerAccumulator,
    ram_fraction: PowerAccumulator,
    description: MeterDescription,
    gpu: GpuMeter,
    last_full_read_s: f64,
    max_read_interval_s: f64,
    warned: Causes,
    pending_warnings: Vec<String>,
    default_cpu_power_w: Option<f64>,
}

impl Meter {
    /// Chooses sensors for `config`, reads them once, and returns the meter with any warnings
    /// about the choice (each to be logged once by the caller).
    pub fn discover(config: &MeterConfig) -> (Self, Vec<String>) {
        let (meter, _, warnings) = Self::discover_share(config, true);
        (meter, warnings)
    }

    /// [`Meter::discover`] for one rank of a distributed job: without `measures_host`, in
    /// machine mode, another rank measures this host's CPU and RAM and this meter reads neither
    /// (`other_rank`). Which GPUs it reads is `config.gpu`'s selection. Returns the first read
    /// too: where a run starts, without reading every sensor a second time.
    pub fn discover_share(
        config: &MeterConfig,
        measures_host: bool,
    ) -> (Self, Snapshot, Vec<String>) {
        let mut warnings = Vec::new();
        let probe = HostProbe::new(config.sources.tracking_mode);
        if !probe.is_available() {
            warnings.push(
                "cannot read CPU and memory utilisation on this system: load and RAM models \
                 report zero"
                    .to_owned(),
            );
        }
        let host = probe.info().clone();
        let settings = config.sources_for(measures_host);
        let rapl = if plan::needs_rapl(&settings) {
            discover_rapl(&config.powercap_root, &mut warnings)
        } else {
            None
        };
        let zones: Vec<Component> = rapl
            .iter()
            .flat_map(|sensor| sensor.zones().iter().map(|zone| zone.component))
            .collect();
        let platform = if plan::needs_rapl(&settings) {
            platform_source::discover(
                &platform_source::Roots {
                    ioreport_library: config.gpu.ioreport_library.as_deref(),
                    emi_library: config.emi_library.as_deref(),
                    hwmon_root: &config.gpu.hwmon_root,
                },
                &mut warnings,
            )
        } else {
            None
        };
        let platform_components = platform.as_ref().map(PlatformSensor::components);
        let plan = plan::plan(
            &settings,
            &plan::Found {
                rapl_zones: &zones,
                platform: platform
                    .as_ref()
                    .map(PlatformSensor::platform)
                    .zip(platform_components.as_deref()),
                host: &host,
            },
        );
        warnings.extend(plan.warnings.iter().cloned());
        let gpu = GpuMeter::discover(&config.gpu, config.sources.tracking_mode, &mut warnings);
        let mut meter = Self::execute(
            &plan,
            Sources { rapl, platform },
            gpu,
            probe,
            config.sources.default_cpu_power_w,
        );
        let first = meter.read();
        (meter, first, warnings)
    }

    /// A meter that reads the sources `plan` chose.
    fn execute(
        plan: &Plan,
        found: Sources,
        gpu: GpuMeter,
        probe: HostProbe,
        default_cpu_power_w: Option<f64>,
    ) -> Self {
        let Sources { rapl, platform } = found;
        let mut sensors: Vec<Box<dyn Sensor>> = Vec::new();
        if let Some(mut sensor) = platform {
            let chosen: Vec<Component> = [
                matches!(plan.cpu, CpuSource::Platform(_)).then_some(Component::Cpu),
                matches!(plan.ram, RamSource::Platform(_)).then_some(Component::Ram),
            ]
            .into_iter()
            .flatten()
            .collect();
            sensor.keep(&chosen);
            if !sensor.components().is_empty() {
                sensors.push(sensor.boxed());
            }
        }
        let (mut rapl_zones, mut max_read_interval_s) = (String::new(), f64::INFINITY);
        if let Some(mut sensor) = rapl {
            sensor.keep(&plan.rapl);
            rapl_zones = sensor
                .zones()
                .iter()
                .map(|z| z.name.as_str())
                .collect::<Vec<_>>()
                .join("+");
            max_read_interval_s = sensor.max_read_interval_s();
            if !sensor.zones().is_empty() {
                sensors.push(Box::new(sensor));
            }
        }
        match plan.cpu {
            CpuSource::LoadTdp { tdp_w } => sensors.push(Box::new(LoadTdpSensor::new(tdp_w))),
            CpuSource::Constant { power_w } => {
                sensors.push(Box::new(ConstantSensor::new(Component::Cpu, power_w)));
            }
            CpuSource::Rapl | CpuSource::OtherRank | CpuSource::Platform(_) => {}
        }
        match plan.ram {
            RamSource::Model => sensors.push(Box::new(RamModelSensor)),
            RamSource::Constant { power_w } => {
                sensors.push(Box::new(ConstantSensor::new(Component::Ram, power_w)));
            }
            RamSource::Rapl | RamSource::InCpu | RamSource::OtherRank | RamSource::Platform(_) => {}
        }
        let channels = sensors
            .iter()
            .map(|sensor| {
                sensor
                    .channels()
                    .into_iter()
                    .map(ChannelState::new)
                    .collect()
            })
            .collect();
        Self {
            origin: Instant::now(),
            description: MeterDescription {
                cpu_method: plan.cpu_method(),
                ram_method: plan.ram_method(),
                gpu_method: gpu.method(),
                rapl_zones,
                cpu_resolution_j: match plan.cpu {
                    CpuSource::LoadTdp { tdp_w } => resolution_j(tdp_w, probe.info()),
                    _ => 0.0,
                },
                cpu_tick_s: match plan.cpu {
                    CpuSource::LoadTdp { .. } => tick_s(),
                    _ => 0.0,
                },
                host: probe.info().clone(),
            },
            probe,
            sensors,
            channels,
            cpu_busy: PowerAccumulator::new(PowerKind::IntervalMean),
            ram_used_gb: PowerAccumulator::new(PowerKind::Instantaneous),
            ram_fraction: PowerAccumulator::new(PowerKind::Instantaneous),
            gpu,
            last_full_read_s: 0.0,
            max_read_interval_s,
            warned: Causes::new(),
            pending_warnings: Vec::new(),
            default_cpu_power_w,
        }
    }

    /// Methods and machine facts.
    pub fn description(&self) -> &MeterDescription {
        &self.description
    }

    /// Longest time between reads that keeps every counter exact, in seconds.
    pub fn max_read_interval_s(&self) -> f64 {
        self.max_read_interval_s
    }

    /// Whether every channel is an energy counter and no GPU power is polled: edges read the
    /// counters at once, so reads between them only keep a counter from wrapping unseen.
    pub fn counters_only(&self) -> bool {
        self.channels
            .iter()
            .flatten()
            .all(|state| matches!(state.channel.kind, ChannelKind::Counter { .. }))
            && self.gpu.poll_interval_s().is_infinite()
    }

    /// Whether every read ends in bounded time: no GPU (vendor libraries and hwmon drivers can
    /// block for seconds), and the machine's totals from procfs rather than a walk of every
    /// process's files. RAPL's `energy_uj` files are opened non-blocking, must be regular files
    /// and are read up to 64 bytes, so a stray FIFO or endless file cannot hang a read either.
    pub fn reads_in_bounded_time(&self) -> bool {
        self.gpu.devices().is_empty() && self.probe.mode() == TrackingMode::Machine
    }

    /// Longest time between reads that keeps polled GPU power accurate, in seconds (infinite
    /// when no GPU power is polled).
    pub fn gpu_poll_interval_s(&self) -> f64 {
        self.gpu.poll_interval_s()
    }

    /// The sampler's tick: reads every sensor when `full_period_s` has passed since the last
    /// full read, else only the GPUs, whose polled power needs more frequent reads than the
    /// rest (a process-tree refresh at 10 Hz would cost a few % of a core).
    pub fn tick(&mut self, full_period_s: f64) -> Option<Snapshot> {
        let elapsed = self.origin.elapsed();
        // Ticks come late, never early: 1 % of slack keeps a full read from slipping a tick.
        if elapsed.as_secs_f64() - self.last_full_read_s >= 0.99 * full_period_s {
            Some(self.read())
        } else {
            let t_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            let (warned, pending) = (&mut self.warned, &mut self.pending_warnings);
            self.gpu.read(elapsed.as_secs_f64(), t_us, &mut |message| {
                Self::warn_once(warned, pending, message);
            });
            None
        }
    }

    /// Reads every sensor now and returns the totals.
    pub fn read(&mut self) -> Snapshot {
        // Stamped when the CPU time counters were read: the share busy is then held by the
        // integrator over exactly the span it was measured on, since the last read.
        let (host, now) = self.probe.sample();
        let elapsed = now.saturating_duration_since(self.origin);
        let t_s = elapsed.as_secs_f64();
        self.last_full_read_s = t_s;
        let t_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let given_up = self.read_sensors(t_s, t_us, &host);
        for component in given_up {
            self.fall_back(component, t_s, &host);
        }
        let ram_used_gb = host.ram_used_bytes as f64 / 1e9;
        let ram_fraction = if host.ram_total_bytes > 0 {
            host.ram_used_bytes as f64 / host.ram_total_bytes as f64
        } else {
            0.0
        };
        let cpu_busy_s = self.cpu_busy.add(PowerSample {
            t_s,
            power_w: host.cpu_fraction,
        });
        let ram_used_gb_s = self.ram_used_gb.add(PowerSample {
            t_s,
            power_w: ram_used_gb,
        });
        let ram_fraction_s = self.ram_fraction.add(PowerSample {
            t_s,
            power_w: ram_fraction,
        });
        // Stamped apart: the host refresh above can take milliseconds, and polled GPU power is
        // integrated against its own read times.
        let gpu_elapsed = self.origin.elapsed();
        let gpu_t_us = u64::try_from(gpu_elapsed.as_micros()).unwrap_or(u64::MAX);
        let (warned, pending) = (&mut self.warned, &mut self.pending_warnings);
        let gpu = self
            .gpu
            .read(gpu_elapsed.as_secs_f64(), gpu_t_us, &mut |message| {
                Self::warn_once(warned, pending, message);
            });
        let mut energy = ComponentEnergy::default();
        for state in self.channels.iter().flatten() {
            energy.add(state.channel.component, state.track.energy_j());
        }
        energy.add(Component::Gpu, gpu.energy_j());
        Snapshot {
            t_s,
            energy,
            cpu_busy_s,
            ram_used_gb_s,
            ram_fraction_s,
            gpu,
        }
    }

    /// Reads every sensor and feeds its channels' tracks; says what happened, each cause once,
    /// and returns the components whose RAPL zone gave up.
    fn read_sensors(&mut self, t_s: f64, t_us: u64, host: &HostSample) -> Vec<Component> {
        let mut given_up = Vec::new();
        for (sensor, states) in self.sensors.iter_mut().zip(self.channels.iter_mut()) {
            let readings = sensor.read(host);
            for (index, (state, reading)) in states.iter_mut().zip(readings).enumerate() {
                let Some(fed) = state.track.feed(t_s, t_us, reading) else {
                    continue;
                };
                let label = state.channel.label();
                let message = match fed {
                    Fed::Explained(why) => format!("{label}: {why}"),
                    Fed::Retrying(fault) => {
                        format!("{label}: {}; retried on the next reads", cause(&fault))
                    }
                    Fed::Ended { fault, failures } => {
                        sensor.stop(index);
                        if has_fallback(state.channel.method) {
                            given_up.push(state.channel.component);
                        }
                        let what = match (&fault, failures) {
                            (TrackFault::WrongKind, _) => {
                                format!(
                                    "{}: reading of the wrong kind, dropped",
                                    state.channel.name
                                )
                            }
                            (_, 1) => format!("{label}: {}", cause(&fault)),
                            _ => format!(
                                "{label}: {failures} failed reads in a row (last: {})",
                                cause(&fault)
                            ),
                        };
                        format!(
                            "{what}; its energy up to now is kept, the rest of the run goes \
                             without it"
                        )
                    }
                };
                Self::warn_once(&mut self.warned, &mut self.pending_warnings, message);
            }
        }
        given_up
    }

    /// A RAPL zone of `component` was given up: the component's other zones go too (one
    /// package measured and one modelled would count the modelled machine's share twice) and
    /// the model takes over from now, the counted energy kept. The method reads `mixed`.
    fn fall_back(&mut self, component: Component, t_s: f64, host: &HostSample) {
        let mut warnings = Vec::new();
        let chosen = plan::fallback(
            component,
            self.default_cpu_power_w,
            &self.description.host,
            &mut warnings,
        );
        if let Some(Fallback::LoadTdp { tdp_w }) = chosen {
            self.description.cpu_resolution_j = resolution_j(tdp_w, &self.description.host);
            self.description.cpu_tick_s = tick_s();
        }
        let (method, sensor, fallback_name): (&mut Method, Box<dyn Sensor>, &str) = match chosen {
            Some(Fallback::LoadTdp { tdp_w }) => (
                &mut self.description.cpu_method,
                Box::new(LoadTdpSensor::new(tdp_w)),
                "CPU load x TDP",
            ),
            Some(Fallback::RamModel) => (
                &mut self.description.ram_method,
                Box::new(RamModelSensor),
                "the RAM model",
            ),
            None => return,
        };
        let given_up = *method;
        if !has_fallback(given_up) {
            return;
        }
        *method = Method::Mixed;
        for warning in warnings {
            Self::warn_once(&mut self.warned, &mut self.pending_warnings, warning);
        }
        for (zones, states) in self.sensors.iter_mut().zip(self.channels.iter_mut()) {
            for (index, state) in states.iter_mut().enumerate() {
                if state.channel.method == given_up && state.channel.component == component {
                    state.track.retire();
                    zones.stop(index);
                }
            }
        }
        Self::warn_once(
            &mut self.warned,
            &mut self.pending_warnings,
            format!(
                "{} gave up for {component:?}: {fallback_name} from now on (method \"mixed\")",
                source_name(given_up)
            ),
        );
        let mut sensor = sensor;
        let mut states: Vec<ChannelState> = sensor
            .channels()
            .into_iter()
            .map(ChannelState::new)
            .collect();
        // The first reading only sets the model's starting point: it counts from now.
        let t_us = (t_s * 1e6) as u64;
        for (state, reading) in states.iter_mut().zip(sensor.read(host)) {
            state.track.feed(t_s, t_us, reading);
        }
        self.sensors.push(sensor);
        self.channels.push(states);
    }

    /// Warnings raised by reads since the last call, each cause once per meter.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.pending_warnings)
    }

    fn warn_once(warned: &mut Causes, pending: &mut Vec<String>, message: String) {
        if warned.first(&message) {
            pending.push(message);
        }
    }
}

/// [`MeterDescription::cpu_resolution_j`] under load x TDP at `tdp_w` for the whole machine:
/// one clock tick of one CPU's time per busy field; 0 where `/proc` does not say how long a
/// tick is.
fn resolution_j(tdp_w: f64, host: &HostInfo) -> f64 {
    procfs::ticks_per_s().map_or(0.0, |ticks_per_s| {
        f64::from(procfs::BUSY_FIELDS) * tdp_w / host.cpu_count.max(1) as f64 / ticks_per_s
    })
}

/// One clock tick of the CPU time counters, s; 0 where `/proc` does not say.
fn tick_s() -> f64 {
    procfs::ticks_per_s().map_or(0.0, |ticks_per_s| 1.0 / ticks_per_s)
}

/// The hardware sources found at discovery, before the plan chose among them.
struct Sources {
    rapl: Option<RaplSensor>,
    platform: Option<PlatformSensor>,
}

/// Whether a component measured by `method` has a model to take over when its source gives
/// up mid-run: the hardware counters do.
fn has_fallback(method: Method) -> bool {
    matches!(method, Method::Rapl | Method::IoReport | Method::Emi)
}

/// The source's name in the warning that it gave up.
fn source_name(method: Method) -> &'static str {
    match method {
        Method::IoReport => "IOReport",
        Method::Emi => "EMI",
        _ => "RAPL",
    }
}

/// Why a reading did not count, in the words of a warning.
fn cause(fault: &TrackFault<SensorFault>) -> String {
    match fault {
        TrackFault::Source(fault) => fault.to_string(),
        TrackFault::Refused(why) => why.clone(),
        TrackFault::WrongKind => "a reading of the wrong kind".to_owned(),
    }
}

/// The RAPL sensor under `root`, if it has readable zones; `warnings` gets why not where the
/// user can do something about it.
fn discover_rapl(root: &Path, warnings: &mut Vec<String>) -> Option<RaplSensor> {
    match RaplSensor::discover(root, warnings) {
        RaplDiscovery::Found(sensor) => Some(sensor),
        RaplDiscovery::Unreadable { path } => {
            warnings.push(format!(
                "RAPL energy counters exist but cannot be read ({}: permission denied, \
                 root-only since Linux 5.10). Falling back to a CPU load x TDP estimate. \
                 To measure: sudo chmod a+r {}/*/energy_uj (until reboot), or a udev rule: \
                 SUBSYSTEM==\"powercap\", ACTION==\"add\", TEST==\"energy_uj\", \
                 RUN+=\"/bin/chmod 0444 /sys%p/energy_uj\"",
                path.display(),
                root.display()
            ));
            None
        }
        RaplDiscovery::Absent => {
            log::debug!(
                "no RAPL zones under {}: CPU energy from load x TDP",
                root.display()
            );
            None
        }
    }
}
