//! GPU energy per device: which NVML reading counts, the cross-check, utilisation, and what a
//! window's row says about GPUs.
//!
//! Per device, the energy counter counts when the device has one (exact to the mJ over any
//! window); otherwise the polled power, integrated by the trapezoid. When a device has both, the
//! polled power is integrated too but never added: it only cross-checks the counter, and one
//! warning per device says so when the two disagree by more than [`CROSS_CHECK_RELATIVE`] and
//! [`CROSS_CHECK_FLOOR_W`] over a stretch of at least [`CROSS_CHECK_WINDOW_S`]. A counter that
//! fails mid-run hands over to the polled power; a device that fails entirely keeps its energy
//! so far.

use std::collections::HashSet;
use std::sync::Arc;

use crate::integrator::{CounterAccumulator, PowerAccumulator, PowerSample};
use crate::sensors::TrackingMode;
use crate::sensors::host::HostSample;
use crate::sensors::nvml::{GpuConfig, GpuInfo, NvmlDiscovery, NvmlSensor};
use crate::sensors::{ChannelKind, Method, Reading, Sensor};

/// Shortest stretch, in seconds, over which counter and polled energy are compared.
pub const CROSS_CHECK_WINDOW_S: f64 = 10.0;

/// Counter and polled energy disagree when they differ by more than this share of the counter's
/// figure: NVML states its power readings to +/-5 %, newer GPUs report a 1 s average, and on
/// A100/H100 the power is sampled only about a quarter of the time (Yang et al., SC24).
pub const CROSS_CHECK_RELATIVE: f64 = 0.10;

/// ... and by more than this mean power over the stretch, in W, so an idle GPU's few joules never
/// warn.
pub const CROSS_CHECK_FLOOR_W: f64 = 5.0;

/// In process mode, how often a GPU not yet running this process tree is checked, in seconds.
const PROCESS_CHECK_S: f64 = 1.0;

/// How a device's energy was measured over a window, as written in the CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GpuMethod {
    /// Energy counter deltas.
    Counter,
    /// Polled power, trapezoid.
    Polled,
    /// Part of the window each way (a counter that failed and handed over to polling).
    Mixed,
    /// Not measured.
    None,
}

impl GpuMethod {
    /// The name written in the CSV and the breakdown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Polled => "polled",
            Self::Mixed => "mixed",
            Self::None => "none",
        }
    }

    /// The method of a window that starts measured by `self` and ends measured by `other`.
    fn join(self, other: Self) -> Self {
        match (self, other) {
            (a, Self::None) => a,
            (Self::None, b) => b,
            (a, b) if a == b => a,
            _ => Self::Mixed,
        }
    }

    /// The `Method` of the meter description.
    pub fn as_method(self) -> Method {
        match self {
            Self::Counter => Method::GpuCounter,
            Self::Polled => Method::GpuPolled,
            Self::Mixed => Method::Mixed,
            Self::None => Method::None,
        }
    }
}

/// Cumulative totals of one device at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuDeviceTotals {
    /// Energy counted since the meter started, J.
    pub energy_j: f64,
    /// ∫ utilisation (0 to 1) dt over the time utilisation was read, s.
    pub busy_s: f64,
    /// Time covered by utilisation readings, s.
    pub utilization_s: f64,
    /// How the device is measured at this instant (`None` before it counts or after it failed).
    pub method: GpuMethod,
    /// The last method it was measured by, for a window in which it both started and failed.
    pub last_method: GpuMethod,
}

/// Cumulative GPU totals at one instant.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GpuTotals {
    /// When the GPUs were read, in seconds on the meter's clock (a hair after the snapshot's own
    /// time: polled power is integrated against the GPU read times).
    pub t_s: f64,
    /// The measured devices, in the order of `devices`.
    pub info: Arc<[GpuInfo]>,
    /// Their totals.
    pub devices: Vec<GpuDeviceTotals>,
}

impl GpuTotals {
    /// Energy of every device, J.
    pub fn energy_j(&self) -> f64 {
        self.devices.iter().map(|d| d.energy_j).sum()
    }

    /// What happened between `start` and these totals.
    pub fn since(&self, start: &Self) -> GpuInterval {
        let mut devices = Vec::new();
        let mut busy_s = 0.0;
        let mut covered_s = 0.0;
        for ((info, end), begin) in self.info.iter().zip(&self.devices).zip(&start.devices) {
            let energy_j = (end.energy_j - begin.energy_j).max(0.0);
            let mut method = begin.method.join(end.method);
            if method == GpuMethod::None && energy_j > 0.0 {
                // Started counting and failed within the window.
                method = end.last_method;
            }
            busy_s += (end.busy_s - begin.busy_s).max(0.0);
            covered_s += (end.utilization_s - begin.utilization_s).max(0.0);
            devices.push(GpuDeviceInterval {
                info: info.clone(),
                energy_j,
                method,
            });
        }
        GpuInterval {
            devices,
            utilization_percent: if covered_s > 0.0 {
                100.0 * busy_s / covered_s
            } else {
                0.0
            },
        }
    }
}

/// One device over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuDeviceInterval {
    /// Which device.
    pub info: GpuInfo,
    /// Energy, J.
    pub energy_j: f64,
    /// How it was measured.
    pub method: GpuMethod,
}

/// GPUs over a window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GpuInterval {
    /// Every selected device, measured or not.
    pub devices: Vec<GpuDeviceInterval>,
    /// Time-weighted mean utilisation over the devices that report it, percent.
    pub utilization_percent: f64,
}

impl GpuInterval {
    fn measured(&self) -> impl Iterator<Item = &GpuDeviceInterval> {
        self.devices.iter().filter(|d| d.method != GpuMethod::None)
    }

    /// Devices measured in the window (CodeCarbon's `gpu_count`).
    pub fn count(&self) -> u32 {
        u32::try_from(self.measured().count()).unwrap_or(u32::MAX)
    }

    /// CodeCarbon's `gpu_model`: `2 x NVIDIA A100-SXM4-40GB`, names in order of appearance.
    pub fn model(&self) -> String {
        let mut names: Vec<(&str, usize)> = Vec::new();
        for device in self.measured() {
            match names.iter_mut().find(|(name, _)| *name == device.info.name) {
                Some((_, count)) => *count += 1,
                None => names.push((&device.info.name, 1)),
            }
        }
        names
            .iter()
            .map(|(name, count)| format!("{count} x {name}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The window's `gpu_method`: that of every measured device when they agree, `mixed` when
    /// they do not, `none` when no device was measured.
    pub fn method(&self) -> GpuMethod {
        self.measured()
            .map(|d| d.method)
            .reduce(|a, b| if a == b { a } else { GpuMethod::Mixed })
            .unwrap_or(GpuMethod::None)
    }

    /// The `gpu_devices` column: a JSON list of {index, uuid, name, energy_kwh, method}, energy
    /// times `pue` as in `gpu_energy`.
    pub fn breakdown_json(&self, pue: f64) -> String {
        let list: Vec<serde_json::Value> = self
            .devices
            .iter()
            .map(|d| {
                serde_json::json!({
                    "index": d.info.index,
                    "uuid": d.info.uuid,
                    "name": d.info.name,
                    "energy_kwh": d.energy_j / 3.6e6 * pue,
                    "method": d.method.as_str(),
                })
            })
            .collect();
        serde_json::Value::Array(list).to_string()
    }
}

struct Stretch {
    t_s: f64,
    counter_j: f64,
    polled_j: f64,
}

struct DeviceAccount {
    counter: Option<(CounterAccumulator, bool)>,
    power: Option<(PowerAccumulator, bool)>,
    /// Polled energy total when the counter failed: polled energy after it counts.
    handover_j: Option<f64>,
    busy_s: f64,
    utilization_s: f64,
    last_utilization_t_s: Option<f64>,
    attached: bool,
    stretch: Option<Stretch>,
    disagreement_warned: bool,
    last_method: GpuMethod,
}

impl DeviceAccount {
    fn counter_j(&self) -> f64 {
        self.counter
            .as_ref()
            .map_or(0.0, |(c, _)| c.energy_uj() as f64 / 1e6)
    }

    fn polled_j(&self) -> f64 {
        self.power.as_ref().map_or(0.0, |(p, _)| p.energy_j())
    }

    fn counter_alive(&self) -> bool {
        self.counter.as_ref().is_some_and(|(_, alive)| *alive)
    }

    fn power_alive(&self) -> bool {
        self.power.as_ref().is_some_and(|(_, alive)| *alive)
    }

    fn energy_j(&self) -> f64 {
        match (&self.counter, self.handover_j) {
            (Some(_), None) => self.counter_j(),
            (Some(_), Some(handover_j)) => {
                self.counter_j() + (self.polled_j() - handover_j).max(0.0)
            }
            (None, _) => self.polled_j(),
        }
    }

    fn method(&self) -> GpuMethod {
        if !self.attached {
            GpuMethod::None
        } else if self.counter_alive() {
            GpuMethod::Counter
        } else if self.power_alive() && (self.counter.is_none() || self.handover_j.is_some()) {
            GpuMethod::Polled
        } else {
            GpuMethod::None
        }
    }
}

/// The GPUs of one meter and their running totals.
pub struct GpuMeter {
    sensor: Option<NvmlSensor>,
    info: Arc<[GpuInfo]>,
    accounts: Vec<DeviceAccount>,
    poll_interval_s: f64,
    cross_check_window_s: f64,
    process_mode: bool,
    last_process_check_s: Option<f64>,
    method: GpuMethod,
}

impl GpuMeter {
    /// Loads NVML and selects devices for `config`; never fails: no GPU is a meter with no
    /// devices (one debug line says why).
    pub fn discover(config: &GpuConfig, mode: TrackingMode, warnings: &mut Vec<String>) -> Self {
        let sensor = match NvmlSensor::discover(config, warnings) {
            NvmlDiscovery::Found(sensor) => Some(sensor),
            NvmlDiscovery::Absent(line) => {
                log::debug!("{line}");
                None
            }
        };
        let info: Arc<[GpuInfo]> = sensor
            .as_ref()
            .map_or_else(Vec::new, NvmlSensor::devices)
            .into();
        let capabilities = sensor
            .as_ref()
            .map_or_else(Vec::new, NvmlSensor::capabilities);
        let process_mode = mode == TrackingMode::Process;
        // The sensor's channels, in order: per device its counter, then its power, if any.
        let mut channels = sensor
            .as_ref()
            .map_or_else(Vec::new, Sensor::channels)
            .into_iter();
        let accounts: Vec<DeviceAccount> = capabilities
            .iter()
            .map(|&(has_counter, has_power)| {
                let counter = has_counter.then(|| channels.next()).flatten();
                let power = has_power.then(|| channels.next()).flatten();
                DeviceAccount {
                    counter: counter.and_then(|channel| match channel.kind {
                        ChannelKind::Counter {
                            max_energy_range_uj,
                            max_power_uw,
                        } => Some((
                            CounterAccumulator::new(max_energy_range_uj, max_power_uw),
                            true,
                        )),
                        ChannelKind::Power(_) => None,
                    }),
                    power: power.and_then(|channel| match channel.kind {
                        ChannelKind::Power(kind) => Some((PowerAccumulator::new(kind), true)),
                        ChannelKind::Counter { .. } => None,
                    }),
                    handover_j: None,
                    busy_s: 0.0,
                    utilization_s: 0.0,
                    last_utilization_t_s: None,
                    attached: !process_mode,
                    stretch: None,
                    disagreement_warned: false,
                    last_method: GpuMethod::None,
                }
            })
            .collect();
        let method = accounts
            .iter()
            .map(|a| {
                if a.counter.is_some() {
                    GpuMethod::Counter
                } else if a.power.is_some() {
                    GpuMethod::Polled
                } else {
                    GpuMethod::None
                }
            })
            .filter(|m| *m != GpuMethod::None)
            .reduce(|a, b| if a == b { a } else { GpuMethod::Mixed })
            .unwrap_or(GpuMethod::None);
        Self {
            sensor,
            info,
            accounts,
            poll_interval_s: config.poll_interval_s,
            cross_check_window_s: config.cross_check_window_s,
            process_mode,
            last_process_check_s: None,
            method,
        }
    }

    /// The method over all devices, as discovered.
    pub fn method(&self) -> GpuMethod {
        self.method
    }

    /// The devices measured.
    pub fn devices(&self) -> &[GpuInfo] {
        &self.info
    }

    /// Longest time between reads that keeps polled power accurate, in seconds: the poll
    /// interval when any device's power is read, else infinite.
    pub fn poll_interval_s(&self) -> f64 {
        if self.accounts.iter().any(DeviceAccount::power_alive) {
            self.poll_interval_s
        } else {
            f64::INFINITY
        }
    }

    /// Reads every device at `t_s` / `t_us` (the meter's clock) and returns the totals;
    /// `warn` gets each fault and disagreement (the meter says each once).
    pub fn read(&mut self, t_s: f64, t_us: u64, warn: &mut dyn FnMut(String)) -> GpuTotals {
        let Some(sensor) = self.sensor.as_mut() else {
            return GpuTotals::default();
        };
        if self.process_mode && self.accounts.iter().any(|a| !a.attached) {
            attach_process_devices(
                sensor,
                &mut self.accounts,
                &mut self.last_process_check_s,
                t_s,
            );
        }
        let readings = sensor.read(&HostSample::default());
        let utilization = sensor.utilization();
        let mut readings = readings.into_iter();
        for (position, account) in self.accounts.iter_mut().enumerate() {
            let counter = account.counter.as_ref().and_then(|_| readings.next());
            let power = account.power.as_ref().and_then(|_| readings.next());
            if !account.attached {
                continue;
            }
            let polled_before_j = account.polled_j();
            let counter_failure = apply_counter(&mut account.counter, counter, t_us);
            let power_failure = apply_power(&mut account.power, power, t_s);
            // One warning per fault: a lost GPU fails both readings at once.
            let counts_power = account.counter.is_none() || account.handover_j.is_some();
            let without = "its energy up to now is kept, the rest of the run goes without it";
            match (counter_failure, power_failure) {
                (Some(message), None) if account.power_alive() => warn(format!(
                    "{message}; its energy up to now is kept, the rest is measured by polling \
                     its power"
                )),
                (Some(message), _) => warn(format!("{message}; {without}")),
                (None, Some(message)) if counts_power => warn(format!("{message}; {without}")),
                (None, Some(message)) => {
                    warn(format!("{message}; its energy counter still measures it"));
                }
                (None, None) => {}
            }
            if account.counter.is_some()
                && !account.counter_alive()
                && account.handover_j.is_none()
                && account.power_alive()
            {
                // Polled energy since the counter's last good reading counts from now on.
                account.handover_j = Some(polled_before_j);
            }
            let method = account.method();
            if method != GpuMethod::None {
                account.last_method = method;
            }
            if let Some(Some(fraction)) = utilization.get(position) {
                // NVML's utilisation is the share of its last sample period (1/6 s to 1 s)
                // with a kernel running: held over the interval it ends, like CPU load.
                if let Some(last_t_s) = account.last_utilization_t_s {
                    let dt_s = (t_s - last_t_s).max(0.0);
                    account.utilization_s += dt_s;
                    account.busy_s += fraction * dt_s;
                }
                account.last_utilization_t_s = Some(t_s);
            } else {
                // A gap in the readings counts neither as busy nor as covered.
                account.last_utilization_t_s = None;
            }
            if let Some(line) = cross_check(
                account,
                &self.info[position],
                t_s,
                self.cross_check_window_s,
            ) {
                warn(line);
            }
        }
        GpuTotals {
            t_s,
            info: Arc::clone(&self.info),
            devices: self
                .accounts
                .iter()
                .map(|a| GpuDeviceTotals {
                    energy_j: a.energy_j(),
                    busy_s: a.busy_s,
                    utilization_s: a.utilization_s,
                    method: a.method(),
                    last_method: a.last_method,
                })
                .collect(),
        }
    }
}

/// Feeds a counter reading to a live counter; returns the failure message when it failed.
fn apply_counter(
    counter: &mut Option<(CounterAccumulator, bool)>,
    reading: Option<Result<Reading, String>>,
    t_us: u64,
) -> Option<String> {
    let (Some((accumulator, alive)), Some(reading)) = (counter, reading) else {
        return None;
    };
    if !*alive {
        return None;
    }
    match reading {
        Ok(Reading::EnergyUj(energy_uj)) => {
            accumulator.add(t_us, energy_uj);
            None
        }
        Ok(Reading::PowerW(_)) => {
            *alive = false;
            Some("GPU energy counter gave a power reading".to_owned())
        }
        Err(message) => {
            *alive = false;
            Some(message)
        }
    }
}

/// Feeds a power reading to a live power accumulator; returns the failure message when it failed.
fn apply_power(
    power: &mut Option<(PowerAccumulator, bool)>,
    reading: Option<Result<Reading, String>>,
    t_s: f64,
) -> Option<String> {
    let (Some((accumulator, alive)), Some(reading)) = (power, reading) else {
        return None;
    };
    if !*alive {
        return None;
    }
    match reading {
        Ok(Reading::PowerW(power_w)) => {
            accumulator.add(PowerSample { t_s, power_w });
            None
        }
        Ok(Reading::EnergyUj(_)) => {
            *alive = false;
            Some("GPU power gave an energy reading".to_owned())
        }
        Err(message) => {
            *alive = false;
            Some(message)
        }
    }
}

/// In process mode, marks the devices that now run one of this process tree's PIDs; checked at
/// most every [`PROCESS_CHECK_S`]. A device stays counted once it ran the tree.
fn attach_process_devices(
    sensor: &NvmlSensor,
    accounts: &mut [DeviceAccount],
    last_check_s: &mut Option<f64>,
    t_s: f64,
) {
    if last_check_s.is_some_and(|last| t_s - last < PROCESS_CHECK_S) {
        return;
    }
    *last_check_s = Some(t_s);
    let pids: HashSet<u32> = crate::sensors::host::process_tree_pids()
        .into_iter()
        .collect();
    for (position, account) in accounts.iter_mut().enumerate() {
        if !account.attached && sensor.runs_any(position, &pids) {
            account.attached = true;
        }
    }
}

/// Compares counter and polled energy over the stretch since the last comparison, once it is
/// long enough; returns the one warning a device gets when they disagree.
fn cross_check(
    account: &mut DeviceAccount,
    info: &GpuInfo,
    t_s: f64,
    window_s: f64,
) -> Option<String> {
    if account.disagreement_warned || !account.counter_alive() || !account.power_alive() {
        account.stretch = None;
        return None;
    }
    let (counter_j, polled_j) = (account.counter_j(), account.polled_j());
    let Some(stretch) = &account.stretch else {
        account.stretch = Some(Stretch {
            t_s,
            counter_j,
            polled_j,
        });
        return None;
    };
    let duration_s = t_s - stretch.t_s;
    if duration_s < window_s {
        return None;
    }
    let by_counter_j = counter_j - stretch.counter_j;
    let by_polling_j = polled_j - stretch.polled_j;
    account.stretch = Some(Stretch {
        t_s,
        counter_j,
        polled_j,
    });
    let gap_j = (by_counter_j - by_polling_j).abs();
    if gap_j <= CROSS_CHECK_RELATIVE * by_counter_j.abs()
        || gap_j <= CROSS_CHECK_FLOOR_W * duration_s
    {
        return None;
    }
    account.disagreement_warned = true;
    let share = if by_counter_j > 0.0 {
        format!(", {:.0} % of the counter's", 100.0 * gap_j / by_counter_j)
    } else {
        String::new()
    };
    Some(format!(
        "GPU {} ({}, {}): over {duration_s:.1} s its energy counter measured {by_counter_j:.1} J \
         and its polled power {by_polling_j:.1} J: {gap_j:.1} J apart{share}, beyond the \
         tolerance of {:.0} % and {} W on average; the counter's figure is the one reported",
        info.index,
        info.name,
        info.uuid,
        100.0 * CROSS_CHECK_RELATIVE,
        CROSS_CHECK_FLOOR_W,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrator::PowerKind;

    fn info(index: u32, name: &str) -> GpuInfo {
        GpuInfo {
            index,
            uuid: format!("GPU-{index}"),
            name: name.to_owned(),
        }
    }

    fn device(index: u32, name: &str, energy_j: f64, method: GpuMethod) -> GpuDeviceInterval {
        GpuDeviceInterval {
            info: info(index, name),
            energy_j,
            method,
        }
    }

    #[test]
    fn window_method_names_the_methods_used() {
        assert_eq!(GpuMethod::Counter.join(GpuMethod::None), GpuMethod::Counter);
        assert_eq!(GpuMethod::Counter.join(GpuMethod::Polled), GpuMethod::Mixed);
        assert_eq!(GpuMethod::None.join(GpuMethod::Polled), GpuMethod::Polled);
        let interval = GpuInterval {
            devices: vec![
                device(0, "A100", 1.0, GpuMethod::Counter),
                device(1, "A100", 1.0, GpuMethod::Polled),
                device(2, "T4", 0.0, GpuMethod::None),
            ],
            utilization_percent: 0.0,
        };
        assert_eq!(interval.method(), GpuMethod::Mixed);
        assert_eq!(interval.count(), 2);
        assert_eq!(interval.model(), "2 x A100");
        assert_eq!(GpuInterval::default().method(), GpuMethod::None);
    }

    /// A counter-and-power device whose counter says `counter_w` and power `polled_w`, both
    /// steady, compared over `seconds`; returns the warning, if any.
    fn compare(counter_w: f64, polled_w: f64, seconds: f64) -> Option<String> {
        let mut account = DeviceAccount {
            counter: Some((CounterAccumulator::new(u64::MAX, None), true)),
            power: Some((PowerAccumulator::new(PowerKind::Instantaneous), true)),
            handover_j: None,
            busy_s: 0.0,
            utilization_s: 0.0,
            last_utilization_t_s: None,
            attached: true,
            stretch: None,
            disagreement_warned: false,
            last_method: GpuMethod::None,
        };
        let gpu = info(0, "A100");
        let feed = |account: &mut DeviceAccount, t_s: f64| {
            if let Some((counter, _)) = &mut account.counter {
                counter.add((t_s * 1e6) as u64, (counter_w * t_s * 1e6) as u64);
            }
            if let Some((power, _)) = &mut account.power {
                power.add(PowerSample {
                    t_s,
                    power_w: polled_w,
                });
            }
            cross_check(account, &gpu, t_s, CROSS_CHECK_WINDOW_S)
        };
        assert_eq!(feed(&mut account, 0.0), None);
        feed(&mut account, seconds)
    }

    #[test]
    fn cross_check_tolerance_is_ten_percent_and_five_watts() {
        // 9 % apart: within.
        assert_eq!(compare(300.0, 327.0, 20.0), None);
        // 20 % apart, 60 W: beyond both.
        let warning = compare(300.0, 360.0, 20.0).expect("a warning");
        assert!(
            warning.contains("6000.0 J and its polled power 7200.0 J"),
            "{warning}"
        );
        assert!(warning.contains("20 % of the counter's"), "{warning}");
        // 50 % apart but 4 W: an idle GPU, within.
        assert_eq!(compare(8.0, 12.0, 20.0), None);
        // Too short a stretch to judge.
        assert_eq!(compare(300.0, 600.0, CROSS_CHECK_WINDOW_S / 2.0), None);
    }

    #[test]
    fn breakdown_is_json_with_pue_applied() {
        let interval = GpuInterval {
            devices: vec![device(3, "H100", 3.6e6, GpuMethod::Counter)],
            utilization_percent: 0.0,
        };
        let parsed: serde_json::Value =
            serde_json::from_str(&interval.breakdown_json(1.5)).expect("json");
        assert_eq!(parsed[0]["index"], 3);
        assert_eq!(parsed[0]["uuid"], "GPU-3");
        assert_eq!(parsed[0]["method"], "counter");
        assert!((parsed[0]["energy_kwh"].as_f64().expect("number") - 1.5).abs() < 1e-12);
    }
}
