//! Energy from counter readings and power samples, over any window.
//!
//! Pure arithmetic: no I/O and no clock. Timestamps are seconds on any monotonic scale the caller
//! picks, so the same functions serve the sampler, window edges and tests.
//!
//! The one owner of counter wraps, resets and implausible readings ([`CounterAccumulator`],
//! judged by what the source promises: [`CounterSpec`]) and of how many failures a quantity
//! gets ([`EnergyTrack`]): sensors only read.

/// Energy in µJ between two readings of a counter that wraps to zero on reaching `max_energy_range_uj`.
///
/// A decrease is a wrap, unless `max_plausible_uj` says the wrapped delta is more than the zone
/// could have used since the last read: then the counter was reset (driver reload, resume from
/// suspend) and started again from zero, so only `current_uj` is new energy. Dropping the
/// interval instead, as some tools do, loses up to a whole sampling period of energy.
pub fn counter_delta_uj(
    previous_uj: u64,
    current_uj: u64,
    max_energy_range_uj: u64,
    max_plausible_uj: Option<u64>,
) -> u64 {
    if current_uj >= previous_uj {
        return current_uj - previous_uj;
    }
    if max_energy_range_uj < previous_uj {
        // The range file lied or the counter was replaced by one with another range.
        return current_uj;
    }
    let wrapped_uj = max_energy_range_uj - previous_uj + current_uj;
    match max_plausible_uj {
        Some(limit_uj) if wrapped_uj > limit_uj => current_uj,
        _ => wrapped_uj,
    }
}

/// Total energy in µJ over a series of counter readings, wraps and resets handled per step.
/// The reference the tests check window additivity of counters on.
#[cfg(test)]
pub fn counter_energy_uj(readings_uj: &[u64], max_energy_range_uj: u64) -> u64 {
    readings_uj
        .windows(2)
        .map(|pair| counter_delta_uj(pair[0], pair[1], max_energy_range_uj, None))
        .sum()
}

/// One power reading at a point in time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerSample {
    /// When it was taken, in seconds.
    pub t_s: f64,
    /// Power in watts.
    pub power_w: f64,
}

/// How a power reading relates to the time before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerKind {
    /// Power at the instant of the reading (NVML power, a RAM model of memory in use):
    /// integrate by trapezoid between readings.
    Instantaneous,
    /// Mean power over the interval that ends at the reading (CPU load since the last refresh):
    /// that power held over the whole interval is exact, a trapezoid would smear it.
    IntervalMean,
}

/// Energy in J of a power profile over `[t0_s, t1_s]`, by the trapezoid rule.
///
/// `samples` must be sorted by time. Between samples power is linear; before the first and after
/// the last it is held constant, so a window that starts before the first sample still counts.
/// Windows that share an edge add up exactly: `E[a, c] = E[a, b] + E[b, c]`. The reference
/// the tests check the streaming `PowerAccumulator` against.
#[cfg(test)]
pub fn trapezoid_energy_j(samples: &[PowerSample], t0_s: f64, t1_s: f64) -> f64 {
    if samples.is_empty() || t1_s <= t0_s {
        return 0.0;
    }
    let mut energy_j = 0.0;
    let mut previous = PowerSample {
        t_s: t0_s,
        power_w: power_at(samples, t0_s),
    };
    for sample in samples.iter().filter(|s| s.t_s > t0_s && s.t_s < t1_s) {
        energy_j += segment_j(previous, *sample);
        previous = *sample;
    }
    let last = PowerSample {
        t_s: t1_s,
        power_w: power_at(samples, t1_s),
    };
    energy_j + segment_j(previous, last)
}

/// Power at `t_s`, interpolated between the samples around it.
#[cfg(test)]
pub fn power_at(samples: &[PowerSample], t_s: f64) -> f64 {
    let after = samples.partition_point(|s| s.t_s <= t_s);
    match (after.checked_sub(1).map(|i| samples[i]), samples.get(after)) {
        (Some(before), Some(next)) if next.t_s > before.t_s => {
            let fraction = (t_s - before.t_s) / (next.t_s - before.t_s);
            before.power_w + fraction * (next.power_w - before.power_w)
        }
        (Some(before), _) => before.power_w,
        (None, Some(next)) => next.power_w,
        (None, None) => 0.0,
    }
}

fn segment_j(from: PowerSample, to: PowerSample) -> f64 {
    0.5 * (from.power_w + to.power_w) * (to.t_s - from.t_s)
}

/// Running energy of one power channel: a cumulative total that readings extend.
///
/// A window's energy is the difference of two totals taken at its edges, so any number of
/// overlapping windows cost nothing to keep and always add up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerAccumulator {
    kind: PowerKind,
    last: Option<PowerSample>,
    energy_j: f64,
}

impl PowerAccumulator {
    /// A fresh accumulator for readings of `kind`.
    pub fn new(kind: PowerKind) -> Self {
        Self {
            kind,
            last: None,
            energy_j: 0.0,
        }
    }

    /// Adds a reading; the first one only sets the starting point. Returns the new total.
    pub fn add(&mut self, sample: PowerSample) -> f64 {
        if let Some(last) = self.last {
            let dt_s = sample.t_s - last.t_s;
            if dt_s > 0.0 {
                self.energy_j += match self.kind {
                    PowerKind::Instantaneous => segment_j(last, sample),
                    PowerKind::IntervalMean => sample.power_w * dt_s,
                };
            }
        }
        if self.last.is_none_or(|last| sample.t_s >= last.t_s) {
            self.last = Some(sample);
        }
        self.energy_j
    }

    /// Energy in J since the first reading.
    pub fn energy_j(&self) -> f64 {
        self.energy_j
    }
}

/// Peak power assumed for a counter whose source states none, to bound a plausible step: more
/// than any single CPU package or DIMM set draws today.
pub const ASSUMED_PEAK_W: f64 = 1000.0;

/// What a counter promises, so that its readings can be judged: the one description of wraps,
/// resets and implausible steps every counter's readings go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterSpec {
    /// The counter's modulus: it wraps to zero on reaching this.
    pub max_energy_range_uj: u64,
    /// Highest power the source can draw, µW (`None`: [`ASSUMED_PEAK_W`]). Twice this over the
    /// time between reads, plus a second of slack for timer jitter, is the most a step can be:
    /// a wrap beyond it is a reset.
    pub max_power_uw: Option<u64>,
    /// Refuse a forward step beyond that bound until a later read goes on from it (sysfs reads
    /// can be torn or bogus); off for a vendor library's counter, whose steps are trusted.
    pub refuse_jumps: bool,
}

impl CounterSpec {
    /// Most energy the source can have used between `since_us` and `now_us`, µJ.
    fn bound_uj(&self, since_us: u64, now_us: u64) -> u64 {
        let peak_uw = self
            .max_power_uw
            .map_or(u128::from(ASSUMED_PEAK_W as u64) * 1_000_000, u128::from);
        let elapsed_us = u128::from(now_us.saturating_sub(since_us)) + 1_000_000;
        u64::try_from(2 * peak_uw * elapsed_us / 1_000_000).unwrap_or(u64::MAX)
    }
}

/// Running energy of one wrapping counter: the only place wraps, resets and implausible steps
/// are judged. A reading the source could not have produced is never turned into energy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterAccumulator {
    spec: CounterSpec,
    /// The last accepted reading and when it was taken (µs).
    last: Option<(u64, u64)>,
    /// A forward jump too large to be energy, kept to see whether the counter goes on from it.
    suspect: Option<(u64, u64)>,
    energy_uj: u64,
}

impl CounterAccumulator {
    /// A fresh accumulator for a counter described by `spec`.
    pub fn new(spec: CounterSpec) -> Self {
        Self {
            spec,
            last: None,
            suspect: None,
            energy_uj: 0,
        }
    }

    /// Adds a reading taken at `t_us` (µs, monotonic). `Ok` carries how a surprising reading
    /// was explained (counted from its new value), `Err` why it was refused (a cause without
    /// the value, so that each cause is said once); a refused reading adds nothing, and the
    /// next accepted one counts from the last accepted one, so nothing is lost in between.
    pub fn add(&mut self, t_us: u64, counter_uj: u64) -> Result<Option<String>, String> {
        let spec = self.spec;
        if counter_uj > spec.max_energy_range_uj {
            return Err(format!(
                "a reading above its max_energy_range_uj ({}) was ignored",
                spec.max_energy_range_uj
            ));
        }
        let Some((since_us, previous_uj)) = self.last else {
            self.last = Some((t_us, counter_uj));
            return Ok(None);
        };
        let bound_uj = spec.bound_uj(since_us, t_us);
        if counter_uj >= previous_uj {
            let delta_uj = counter_uj - previous_uj;
            if !spec.refuse_jumps || delta_uj <= bound_uj {
                self.count(t_us, counter_uj, delta_uj);
                return Ok(None);
            }
            // Either garbage or a counter that really jumped: only a later read that goes on
            // from the jump tells them apart, and the jump itself is never energy.
            if let Some((suspect_us, suspect_uj)) = self.suspect
                && counter_uj >= suspect_uj
                && counter_uj - suspect_uj <= spec.bound_uj(suspect_us, t_us)
            {
                self.count(t_us, counter_uj, 0);
                return Ok(Some(
                    "the counter jumped forward by more than the source can draw; counted from \
                     its new value"
                        .to_owned(),
                ));
            }
            self.suspect = Some((t_us, counter_uj));
            return Err(
                "a reading more than the source's peak power could add since the last one was \
                 ignored"
                    .to_owned(),
            );
        }
        let wrapped_uj = counter_delta_uj(previous_uj, counter_uj, spec.max_energy_range_uj, None);
        if wrapped_uj <= bound_uj {
            self.count(t_us, counter_uj, wrapped_uj);
            return Ok(None);
        }
        // Back by more than a plausible wrap: a reset (driver reload, resume) that counted from
        // zero up to the reading (nearer zero than the old value), or a counter that stepped
        // back; never a whole wrap of energy.
        let reset = counter_uj <= bound_uj && counter_uj < previous_uj - counter_uj;
        self.count(t_us, counter_uj, if reset { counter_uj } else { 0 });
        Ok(Some(
            "the counter went back by more than a wrap the source could draw; counted from its \
             new value"
                .to_owned(),
        ))
    }

    fn count(&mut self, t_us: u64, counter_uj: u64, delta_uj: u64) {
        self.last = Some((t_us, counter_uj));
        self.suspect = None;
        self.energy_uj = self.energy_uj.saturating_add(delta_uj);
    }

    /// Energy in µJ since the first reading.
    pub fn energy_uj(&self) -> u64 {
        self.energy_uj
    }
}

/// One reading of one channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    /// A counter value in µJ.
    EnergyUj(u64),
    /// A power in W.
    PowerW(f64),
}

/// Why a reading did not count.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackFault<E> {
    /// The source failed with this fault.
    Source(E),
    /// The counter's reading was not plausible; why.
    Refused(String),
    /// A counter gave a power or a power gave a counter value: a source bug, never trusted.
    WrongKind,
}

/// What feeding a reading to a track did, when it did more than count it.
#[derive(Debug, Clone, PartialEq)]
pub enum Fed<E> {
    /// Counted, after explaining a surprising reading (counted from its new value).
    Explained(String),
    /// Not counted, and retried on the next reads.
    Retrying(TrackFault<E>),
    /// Not counted, and the last of `failures` in a row: the track stops counting, its energy so
    /// far kept.
    Ended {
        /// The fault that ended it.
        fault: TrackFault<E>,
        /// How many readings in a row failed.
        failures: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Accumulator {
    Counter(CounterAccumulator),
    Power(PowerAccumulator),
}

/// The running energy of one measured quantity (a RAPL zone, a power model, one GPU's counter
/// or power): the one read-accumulate step every sensor's readings go through, and the one
/// owner of how many failures a quantity gets.
///
/// It counts until `give_up_after` failures in a row and then keeps its energy so far: a
/// source that gave up is not trusted again within a run, so a flapping device never counts a
/// gap as a wrap. A wrong kind of reading ends it at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnergyTrack {
    accumulator: Accumulator,
    give_up_after: u32,
    failures: u32,
    alive: bool,
}

impl EnergyTrack {
    /// A track of a counter described by `spec` that gives up after `give_up_after` failed or
    /// refused readings in a row (1: the first).
    pub fn counter(spec: CounterSpec, give_up_after: u32) -> Self {
        Self {
            accumulator: Accumulator::Counter(CounterAccumulator::new(spec)),
            give_up_after: give_up_after.max(1),
            failures: 0,
            alive: true,
        }
    }

    /// A track of power readings of `kind`, ended by its first failure.
    pub fn power(kind: PowerKind) -> Self {
        Self {
            accumulator: Accumulator::Power(PowerAccumulator::new(kind)),
            give_up_after: 1,
            failures: 0,
            alive: true,
        }
    }

    /// Feeds a reading taken at `t_s` (power) / `t_us` (counter) on the caller's clock.
    /// Returns what happened beyond counting it; readings after the track ended are ignored.
    pub fn feed<E>(&mut self, t_s: f64, t_us: u64, reading: Result<Reading, E>) -> Option<Fed<E>> {
        if !self.alive {
            return None;
        }
        let fault = match (reading, &mut self.accumulator) {
            (Ok(Reading::EnergyUj(energy_uj)), Accumulator::Counter(counter)) => {
                match counter.add(t_us, energy_uj) {
                    Ok(explained) => {
                        self.failures = 0;
                        return explained.map(Fed::Explained);
                    }
                    Err(cause) => TrackFault::Refused(cause),
                }
            }
            (Ok(Reading::PowerW(power_w)), Accumulator::Power(power)) => {
                power.add(PowerSample { t_s, power_w });
                self.failures = 0;
                return None;
            }
            (Ok(_), _) => {
                self.alive = false;
                return Some(Fed::Ended {
                    fault: TrackFault::WrongKind,
                    failures: 1,
                });
            }
            (Err(fault), _) => TrackFault::Source(fault),
        };
        self.failures += 1;
        if self.failures < self.give_up_after {
            return Some(Fed::Retrying(fault));
        }
        self.alive = false;
        Some(Fed::Ended {
            fault,
            failures: self.failures,
        })
    }

    /// Energy in J since the first reading.
    pub fn energy_j(&self) -> f64 {
        match &self.accumulator {
            Accumulator::Counter(counter) => counter.energy_uj() as f64 / 1e6,
            Accumulator::Power(power) => power.energy_j(),
        }
    }

    /// Stops counting, the energy so far kept: another source takes over the quantity.
    pub fn retire(&mut self) {
        self.alive = false;
    }

    /// Whether it still counts.
    pub fn is_alive(&self) -> bool {
        self.alive
    }
}

#[cfg(test)]
#[allow(
    clippy::float_cmp,
    reason = "the values compared are exact: parsed or zero"
)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RANGE_UJ: u64 = 262_143_328_850;

    #[test]
    fn delta_without_wrap_is_the_difference() {
        assert_eq!(counter_delta_uj(100, 350, RANGE_UJ, None), 250);
    }

    #[test]
    fn delta_across_a_wrap_adds_the_rest_of_the_range() {
        assert_eq!(counter_delta_uj(RANGE_UJ - 10, 5, RANGE_UJ, None), 15);
    }

    #[test]
    fn delta_from_the_top_of_the_range_wraps_to_the_new_value() {
        assert_eq!(counter_delta_uj(RANGE_UJ, 0, RANGE_UJ, None), 0);
        assert_eq!(counter_delta_uj(RANGE_UJ, 7, RANGE_UJ, None), 7);
    }

    #[test]
    fn implausible_wrap_is_a_reset() {
        // Counter fell from the middle of its range back to 1000: a wrap would mean 131 kJ.
        assert_eq!(
            counter_delta_uj(RANGE_UJ / 2, 1000, RANGE_UJ, Some(1_000_000)),
            1000
        );
    }

    #[test]
    fn previous_above_range_counts_as_reset() {
        assert_eq!(counter_delta_uj(RANGE_UJ + 5, 42, RANGE_UJ, None), 42);
    }

    #[test]
    fn counter_series_with_two_wraps() {
        let readings = [RANGE_UJ - 100, 50, RANGE_UJ - 10, 20];
        let expected = 150 + (RANGE_UJ - 10 - 50) + 30;
        assert_eq!(counter_energy_uj(&readings, RANGE_UJ), expected);
    }

    /// A RAPL-like counter: this range, a 100 W peak, jumps refused.
    fn rapl_like() -> CounterAccumulator {
        CounterAccumulator::new(CounterSpec {
            max_energy_range_uj: RANGE_UJ,
            max_power_uw: Some(100_000_000),
            refuse_jumps: true,
        })
    }

    #[test]
    fn counter_accumulator_detects_reset_with_known_peak_power() {
        // 100 W peak, one second apart: a wrap would be far more than 2 * 100 J * 2 s.
        let mut acc = rapl_like();
        assert_eq!(acc.add(0, 5_000_000_000), Ok(None));
        assert_eq!(acc.add(1_000_000, 5_050_000_000), Ok(None));
        let explained = acc.add(2_000_000, 30_000_000).expect("a reset");
        assert!(explained.is_some_and(|why| why.contains("went back")));
        assert_eq!(acc.energy_uj(), 80_000_000);
    }

    #[test]
    fn counter_accumulator_keeps_wraps_within_peak_power() {
        let mut acc = rapl_like();
        assert_eq!(acc.add(0, RANGE_UJ - 40_000_000), Ok(None));
        assert_eq!(acc.add(1_000_000, 10_000_000), Ok(None));
        assert_eq!(acc.energy_uj(), 50_000_000);
    }

    #[test]
    fn counter_accumulator_refuses_what_the_source_cannot_produce() {
        let mut acc = rapl_like();
        acc.add(0, 1_000_000_000).expect("first");
        // Above the range: refused, nothing counted.
        let refused = acc
            .add(1_000_000, RANGE_UJ + 1)
            .expect_err("above the range");
        assert!(refused.contains("max_energy_range_uj"), "{refused}");
        // 200 kJ in a second: refused, until a later read goes on from it.
        assert!(acc.add(1_000_000, 201_000_000_000).is_err());
        assert_eq!(acc.energy_uj(), 0);
        let explained = acc
            .add(2_000_000, 201_004_000_000)
            .expect("goes on from the jump");
        assert!(explained.is_some_and(|why| why.contains("jumped forward")));
        assert_eq!(acc.energy_uj(), 0);
        assert_eq!(acc.add(3_000_000, 201_005_000_000), Ok(None));
        assert_eq!(acc.energy_uj(), 1_000_000);
        // One joule back: a step back, never a wrap of 262 kJ.
        assert!(acc.add(4_000_000, 201_004_000_000).is_ok());
        assert_eq!(acc.energy_uj(), 1_000_000);
    }

    #[test]
    fn a_trusted_counter_counts_any_forward_step() {
        let mut acc = CounterAccumulator::new(CounterSpec {
            max_energy_range_uj: u64::MAX,
            max_power_uw: Some(5_000_000_000),
            refuse_jumps: false,
        });
        acc.add(0, 0).expect("first");
        assert_eq!(acc.add(1, 3_600_000_000_000), Ok(None));
        assert_eq!(acc.energy_uj(), 3_600_000_000_000);
    }

    #[test]
    fn trapezoid_of_a_constant_is_power_times_time() {
        let samples = [
            PowerSample {
                t_s: 0.0,
                power_w: 40.0,
            },
            PowerSample {
                t_s: 10.0,
                power_w: 40.0,
            },
        ];
        assert!((trapezoid_energy_j(&samples, 0.0, 10.0) - 400.0).abs() < 1e-9);
        assert!((trapezoid_energy_j(&samples, 2.5, 5.0) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn trapezoid_of_a_ramp_is_exact() {
        // P(t) = 10 t over [0, 4]: E = 5 t^2 = 80 J, and 20 J over [0, 2].
        let samples: Vec<_> = (0..=4)
            .map(|t| PowerSample {
                t_s: f64::from(t),
                power_w: 10.0 * f64::from(t),
            })
            .collect();
        assert!((trapezoid_energy_j(&samples, 0.0, 4.0) - 80.0).abs() < 1e-9);
        assert!((trapezoid_energy_j(&samples, 0.0, 2.0) - 20.0).abs() < 1e-9);
        // Half-way between samples the edge is interpolated: P(0.5) = 5, E[0, 0.5] = 1.25 J.
        assert!((trapezoid_energy_j(&samples, 0.0, 0.5) - 1.25).abs() < 1e-9);
    }

    #[test]
    fn trapezoid_holds_power_outside_the_samples() {
        let samples = [PowerSample {
            t_s: 5.0,
            power_w: 3.0,
        }];
        assert!((trapezoid_energy_j(&samples, 0.0, 10.0) - 30.0).abs() < 1e-9);
        assert_eq!(trapezoid_energy_j(&[], 0.0, 10.0), 0.0);
        assert_eq!(trapezoid_energy_j(&samples, 10.0, 0.0), 0.0);
    }

    #[test]
    fn interval_mean_accumulator_holds_each_reading_over_its_interval() {
        let mut acc = PowerAccumulator::new(PowerKind::IntervalMean);
        acc.add(PowerSample {
            t_s: 0.0,
            power_w: 99.0,
        });
        acc.add(PowerSample {
            t_s: 2.0,
            power_w: 10.0,
        });
        let total = acc.add(PowerSample {
            t_s: 3.0,
            power_w: 40.0,
        });
        assert!((total - 60.0).abs() < 1e-9);
    }

    #[test]
    fn instantaneous_accumulator_matches_trapezoid() {
        let samples = [(0.0, 10.0), (1.0, 30.0), (3.0, 10.0)]
            .map(|(t_s, power_w)| PowerSample { t_s, power_w });
        let mut acc = PowerAccumulator::new(PowerKind::Instantaneous);
        for sample in samples {
            acc.add(sample);
        }
        assert!((acc.energy_j() - trapezoid_energy_j(&samples, 0.0, 3.0)).abs() < 1e-9);
    }

    fn spec(max_power_uw: Option<u64>) -> CounterSpec {
        CounterSpec {
            max_energy_range_uj: RANGE_UJ,
            max_power_uw,
            refuse_jumps: true,
        }
    }

    fn ended<E>(fault: TrackFault<E>) -> Fed<E> {
        Fed::Ended { fault, failures: 1 }
    }

    #[test]
    fn a_track_retries_up_to_its_limit_then_keeps_its_energy() {
        let mut track = EnergyTrack::counter(spec(None), 3);
        assert_eq!(track.feed::<&str>(0.0, 0, Ok(Reading::EnergyUj(0))), None);
        assert_eq!(
            track.feed(1.0, 1_000_000, Err("busy")),
            Some(Fed::Retrying(TrackFault::Source("busy")))
        );
        // A good reading in between starts the count again; the energy over the failed read
        // is counted by the next good one.
        assert_eq!(
            track.feed::<&str>(2.0, 2_000_000, Ok(Reading::EnergyUj(2_000_000))),
            None
        );
        assert!(matches!(
            track.feed::<&str>(3.0, 3_000_000, Ok(Reading::EnergyUj(RANGE_UJ + 1))),
            Some(Fed::Retrying(TrackFault::Refused(_)))
        ));
        assert!(track.feed(4.0, 4_000_000, Err("busy")).is_some());
        assert_eq!(
            track.feed(5.0, 5_000_000, Err("gone")),
            Some(Fed::Ended {
                fault: TrackFault::Source("gone"),
                failures: 3
            })
        );
        assert!(!track.is_alive());
        assert!((track.energy_j() - 2.0).abs() < 1e-12);
    }

    #[test]
    fn a_track_counts_until_its_first_fault_and_keeps_its_energy() {
        let mut track = EnergyTrack::counter(spec(None), 1);
        assert_eq!(
            track.feed::<&str>(0.0, 0, Ok(Reading::EnergyUj(1_000_000))),
            None
        );
        assert_eq!(
            track.feed::<&str>(1.0, 1_000_000, Ok(Reading::EnergyUj(3_000_000))),
            None
        );
        assert_eq!(
            track.feed(2.0, 2_000_000, Err("lost")),
            Some(ended(TrackFault::Source("lost")))
        );
        assert!(!track.is_alive());
        // Dead: a later good reading neither counts nor faults again.
        assert_eq!(
            track.feed::<&str>(3.0, 3_000_000, Ok(Reading::EnergyUj(9_000_000))),
            None
        );
        assert!((track.energy_j() - 2.0).abs() < 1e-12);

        let mut power = EnergyTrack::power(PowerKind::Instantaneous);
        assert_eq!(power.feed::<&str>(0.0, 0, Ok(Reading::PowerW(10.0))), None);
        assert_eq!(power.feed::<&str>(2.0, 0, Ok(Reading::PowerW(30.0))), None);
        assert_eq!(
            power.feed::<&str>(3.0, 0, Ok(Reading::EnergyUj(5))),
            Some(ended(TrackFault::WrongKind))
        );
        assert!((power.energy_j() - 40.0).abs() < 1e-12);
    }

    fn profile() -> impl Strategy<Value = Vec<PowerSample>> {
        prop::collection::vec((0.001f64..5.0, 0.0f64..500.0), 1..40).prop_map(|steps| {
            let mut t_s = 0.0;
            steps
                .into_iter()
                .map(|(dt_s, power_w)| {
                    t_s += dt_s;
                    PowerSample { t_s, power_w }
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn trapezoid_windows_add_up(
            samples in profile(),
            edges in prop::array::uniform3(0.0f64..250.0),
        ) {
            let mut edges = edges;
            edges.sort_by(f64::total_cmp);
            let [a, b, c] = edges;
            let whole = trapezoid_energy_j(&samples, a, c);
            let parts = trapezoid_energy_j(&samples, a, b) + trapezoid_energy_j(&samples, b, c);
            prop_assert!((whole - parts).abs() <= 1e-9 * whole.max(1.0));
            prop_assert!(whole >= 0.0);
        }

        #[test]
        fn counter_windows_add_up(
            steps in prop::collection::vec(0u64..RANGE_UJ / 4, 2..60),
            start in 0u64..RANGE_UJ,
            split in 0usize..60,
        ) {
            // A counter advanced by known steps, wrapping at the range: every step comes back.
            let mut readings = vec![start];
            for step in &steps {
                let last = *readings.last().unwrap_or(&0);
                readings.push((last + step) % RANGE_UJ);
            }
            let total = counter_energy_uj(&readings, RANGE_UJ);
            let split = split.min(readings.len() - 1);
            let parts = counter_energy_uj(&readings[..=split], RANGE_UJ)
                + counter_energy_uj(&readings[split..], RANGE_UJ);
            prop_assert_eq!(total, parts);
            prop_assert_eq!(total, steps.iter().sum::<u64>());
        }

        #[test]
        fn accumulators_never_go_backwards(
            readings in prop::collection::vec((0u64..2_000_000, 0u64..RANGE_UJ), 1..50),
        ) {
            let mut acc = CounterAccumulator::new(spec(Some(200_000_000)));
            let mut t_us = 0;
            let mut previous_total = 0;
            for (step, (dt_us, counter_uj)) in (1..).zip(readings) {
                t_us += dt_us;
                let _judged = acc.add(t_us, counter_uj);
                let total = acc.energy_uj();
                prop_assert!(total >= previous_total);
                // Never more than the source could draw, whatever it read: twice 200 W over
                // the time, plus a second of slack per step.
                prop_assert!(total <= 400 * (t_us + step * 1_000_000));
                previous_total = total;
            }
        }
    }
}
