//! One device's accounting: which of its readings counts (the counter, else the polled
//! power, with a handover when the counter fails), its sticky faults (a quantity that failed is
//! not asked again, a lost device is asked nothing), utilisation, and the cross-check of
//! counter against polled energy. Never asks which vendor a reading came from.

use super::{
    CROSS_CHECK_FLOOR_W, CROSS_CHECK_RELATIVE, DeviceRead, GPU_COUNTER, GpuBackend, GpuDevice,
    GpuFault, GpuInfo, Wanted,
};
use crate::integrator::{EnergyTrack, Fed, PowerKind, Reading, TrackFault};
use crate::sensors::Method;

struct Stretch {
    t_s: f64,
    counter_j: f64,
    polled_j: f64,
}

#[allow(
    clippy::struct_excessive_bools,
    reason = "independent facts of one device, each read in one place"
)]
pub(super) struct DeviceAccount {
    counter: Option<EnergyTrack>,
    power: Option<EnergyTrack>,
    /// Polled energy total when the counter last moved: once the counter fails, polled energy
    /// after that counts (a counter found frozen stood still for a while before it failed).
    handover_j: Option<f64>,
    /// The counter's last value, and the polled energy total when it last changed.
    last_counter_uj: Option<u64>,
    polled_at_counter_move_j: f64,
    pub(super) busy_s: f64,
    pub(super) utilization_s: f64,
    last_utilization_t_s: Option<f64>,
    pub(super) attached: bool,
    stretch: Option<Stretch>,
    disagreement_warned: bool,
    pub(super) last_method: Method,
    /// It reports a counter or a power: a device that reports neither is `unmeasured`.
    pub(super) measurable: bool,
    /// A later backend measures the same device: this account is left out.
    pub(super) superseded: bool,
    last_power: Option<(f64, f64)>,
    pub(super) sampling_bound_j: f64,
    /// The device fell off the bus: it is not asked again, and what still counted fails with
    /// this fault on the next read.
    lost: Option<GpuFault>,
}

impl DeviceAccount {
    pub(super) fn new(device: &GpuDevice, attached: bool) -> Self {
        Self {
            counter: device
                .has_energy_counter
                .then(|| EnergyTrack::counter(GPU_COUNTER, 1)),
            power: device
                .has_power
                .then(|| EnergyTrack::power(PowerKind::Instantaneous)),
            handover_j: None,
            last_counter_uj: None,
            polled_at_counter_move_j: 0.0,
            busy_s: 0.0,
            utilization_s: 0.0,
            last_utilization_t_s: None,
            attached,
            stretch: None,
            disagreement_warned: false,
            last_method: Method::None,
            measurable: device.has_energy_counter || device.has_power,
            superseded: false,
            last_power: None,
            sampling_bound_j: 0.0,
            lost: None,
        }
    }

    /// What to ask of the device: a quantity that failed is never asked again (its track
    /// ended), and nothing is asked of a lost device.
    fn wanted(&self) -> Wanted {
        let answers = self.lost.is_none();
        Wanted {
            energy: answers && self.counter_alive(),
            power: answers && self.power_alive(),
            utilization: answers,
        }
    }

    /// Reads the device through `backend` at `position`, unless it is lost: then each quantity
    /// still counting fails with the loss, so both end with one warning.
    pub(super) fn read_from(
        &mut self,
        backend: &mut dyn GpuBackend,
        position: usize,
    ) -> DeviceRead {
        if let Some(fault) = &self.lost {
            return DeviceRead {
                energy_uj: self.counter_alive().then(|| Err(fault.clone())),
                power_w: self.power_alive().then(|| Err(fault.clone())),
                utilization: None,
            };
        }
        let read = backend.read(position, self.wanted());
        let faults = [
            read.energy_uj.as_ref().and_then(|r| r.as_ref().err()),
            read.power_w.as_ref().and_then(|r| r.as_ref().err()),
        ];
        if let Some(lost) = faults
            .into_iter()
            .flatten()
            .find(|fault| matches!(fault, GpuFault::Lost { .. }))
        {
            self.lost = Some(lost.clone());
        }
        read
    }

    fn counter_j(&self) -> f64 {
        self.counter.as_ref().map_or(0.0, EnergyTrack::energy_j)
    }

    fn polled_j(&self) -> f64 {
        self.power.as_ref().map_or(0.0, EnergyTrack::energy_j)
    }

    fn counter_alive(&self) -> bool {
        self.counter.as_ref().is_some_and(EnergyTrack::is_alive)
    }

    pub(super) fn power_alive(&self) -> bool {
        self.power.as_ref().is_some_and(EnergyTrack::is_alive)
    }

    pub(super) fn energy_j(&self) -> f64 {
        match (&self.counter, self.handover_j) {
            (Some(_), None) => self.counter_j(),
            (Some(_), Some(handover_j)) => {
                self.counter_j() + (self.polled_j() - handover_j).max(0.0)
            }
            (None, _) => self.polled_j(),
        }
    }

    pub(super) fn method(&self) -> Method {
        if !self.attached {
            Method::None
        } else if !self.measurable {
            Method::Unmeasured
        } else if self.counter_alive() {
            Method::GpuCounter
        } else if self.power_alive() && (self.counter.is_none() || self.handover_j.is_some()) {
            Method::GpuPolled
        } else {
            Method::None
        }
    }

    /// The method the device is measured by from discovery on, before any read.
    pub(super) fn discovered_method(&self) -> Method {
        if self.counter.is_some() {
            Method::GpuCounter
        } else if self.power.is_some() {
            Method::GpuPolled
        } else {
            Method::Unmeasured
        }
    }

    /// Accounts one read taken at `t_s` / `t_us`; `warn` gets each fault and disagreement.
    pub(super) fn apply(
        &mut self,
        info: &GpuInfo,
        read: DeviceRead,
        (t_s, t_us): (f64, u64),
        cross_check_window_s: f64,
        warn: &mut dyn FnMut(String),
    ) {
        let counter_uj = read
            .energy_uj
            .as_ref()
            .and_then(|r| r.as_ref().ok().copied());
        let polled_power_w = match &read.power_w {
            Some(Ok(power_w)) if power_w.is_finite() => Some(*power_w),
            _ => None,
        };
        let label = format!("GPU {} ({})", info.index, info.name);
        let counter_failure = feed(
            self.counter.as_mut(),
            read.energy_uj.map(|r| r.map(Reading::EnergyUj)),
            (t_s, t_us),
        )
        .map(|fault| format!("{label}: energy counter: {fault}"));
        let power_failure = feed(
            self.power.as_mut(),
            read.power_w.map(|r| r.map(Reading::PowerW)),
            (t_s, t_us),
        )
        .map(|fault| format!("{label}: power: {fault}"));
        // One warning per fault: a lost GPU fails both readings at once.
        if counter_uj.is_some() && counter_uj != self.last_counter_uj {
            self.last_counter_uj = counter_uj;
            self.polled_at_counter_move_j = self.polled_j();
        }
        let counts_power = self.counter.is_none() || self.handover_j.is_some();
        let without = "its energy up to now is kept, the rest of the run goes without it";
        match (counter_failure, power_failure) {
            (Some(message), None) if self.power_alive() => warn(format!(
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
        if self.counter.is_some()
            && !self.counter_alive()
            && self.handover_j.is_none()
            && self.power_alive()
        {
            // Polled energy since the counter last moved counts from now on.
            self.handover_j = Some(self.polled_at_counter_move_j);
        }
        let method = self.method();
        if method != Method::None {
            self.last_method = method;
        }
        if method == Method::GpuPolled
            && let (Some((last_t_s, last_w)), Some(power_w)) = (self.last_power, polled_power_w)
        {
            self.sampling_bound_j += (power_w - last_w).abs() * (t_s - last_t_s).max(0.0) / 2.0;
        }
        self.last_power = polled_power_w.map(|power_w| (t_s, power_w));
        if let Some(fraction) = read.utilization {
            // NVML's utilisation is the share of its last sample period (1/6 s to 1 s)
            // with a kernel running: held over the interval it ends, like CPU load.
            if let Some(last_t_s) = self.last_utilization_t_s {
                let dt_s = (t_s - last_t_s).max(0.0);
                self.utilization_s += dt_s;
                self.busy_s += fraction * dt_s;
            }
            self.last_utilization_t_s = Some(t_s);
        } else {
            // A gap in the readings counts neither as busy nor as covered.
            self.last_utilization_t_s = None;
        }
        if let Some(line) = cross_check(self, info, t_s, cross_check_window_s) {
            warn(line);
        }
    }
}

/// Feeds one reading to a quantity's track; returns the fault that ended it (a GPU's tracks
/// end at their first fault).
fn feed(
    track: Option<&mut EnergyTrack>,
    reading: Option<Result<Reading, GpuFault>>,
    (t_s, t_us): (f64, u64),
) -> Option<String> {
    let fault = match track?.feed(t_s, t_us, reading?)? {
        Fed::Explained(why) => {
            // A reset after a driver reload: counted from the new value, as expected.
            log::debug!("GPU energy counter: {why}");
            return None;
        }
        Fed::Retrying(fault) | Fed::Ended { fault, .. } => fault,
    };
    Some(match fault {
        TrackFault::Source(fault) => fault.to_string(),
        TrackFault::Refused(why) => why,
        TrackFault::WrongKind => "reading of the wrong kind".to_owned(),
    })
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
    use crate::gpu::CROSS_CHECK_WINDOW_S;
    use crate::gpu::tests::info;

    /// A counter-and-power device whose counter says `counter_w` and power `polled_w`, both
    /// steady, compared over `seconds`; returns the warning, if any.
    fn compare(counter_w: f64, polled_w: f64, seconds: f64) -> Option<String> {
        let mut account = DeviceAccount {
            counter: Some(EnergyTrack::counter(GPU_COUNTER, 1)),
            power: Some(EnergyTrack::power(PowerKind::Instantaneous)),
            handover_j: None,
            last_counter_uj: None,
            polled_at_counter_move_j: 0.0,
            busy_s: 0.0,
            utilization_s: 0.0,
            last_utilization_t_s: None,
            attached: true,
            stretch: None,
            disagreement_warned: false,
            last_method: Method::None,
            measurable: true,
            superseded: false,
            last_power: None,
            sampling_bound_j: 0.0,
            lost: None,
        };
        let gpu = info(0, "A100");
        let feed = |account: &mut DeviceAccount, t_s: f64| {
            let t_us = (t_s * 1e6) as u64;
            if let Some(counter) = &mut account.counter {
                let energy_uj = (counter_w * t_s * 1e6) as u64;
                assert_eq!(
                    counter.feed::<()>(t_s, t_us, Ok(Reading::EnergyUj(energy_uj))),
                    None
                );
            }
            if let Some(power) = &mut account.power {
                assert_eq!(
                    power.feed::<()>(t_s, t_us, Ok(Reading::PowerW(polled_w))),
                    None
                );
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
}
