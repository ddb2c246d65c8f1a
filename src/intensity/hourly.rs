//! Time-resolved carbon: a window's energy split at hour boundaries, each part multiplied by
//! its hour's intensity. Pure arithmetic on [`Snapshot`]s: no clock, no I/O.
//!
//! The tracker feeds every snapshot it reads (sampler ticks and window edges, in order) to a
//! [`Ledger`], which keeps one snapshot per hour boundary crossed, interpolated linearly
//! between the two reads around it. As window edges are reads too, a boundary always lies
//! between two consecutive reads of the same window, so the parts add up to the window.

use crate::meter::Snapshot;

/// Maps the meter's clock (`Snapshot::t_s`, seconds since the meter started) to wall-clock
/// hours. `hour_s` is 3600 outside tests; tests shorten it (`CARBONMETER_HOUR_S`) rather than
/// sleep through an hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    /// Unix time (s) when the meter's `t_s` was 0.
    pub wall_at_zero_s: f64,
    /// Length of an hour, s.
    pub hour_s: f64,
}

impl Clock {
    /// Unix time of a meter time.
    pub fn wall_s(&self, t_s: f64) -> f64 {
        self.wall_at_zero_s + t_s
    }

    /// The hour (unix time / hour length, floored) a meter time falls in.
    pub fn hour(&self, t_s: f64) -> i64 {
        (self.wall_s(t_s) / self.hour_s).floor() as i64
    }

    /// Meter time at which `hour` starts.
    pub fn hour_start_t_s(&self, hour: i64) -> f64 {
        hour as f64 * self.hour_s - self.wall_at_zero_s
    }
}

/// Energy counted in a window (CPU + RAM + GPU; psys overlaps them and is left out), J.
pub fn energy_j(snapshot: &Snapshot) -> f64 {
    snapshot.energy.counted_j()
}

/// The snapshot a linear meter would show at `t_s`, between `earlier` and `later`.
fn interpolate(earlier: &Snapshot, later: &Snapshot, t_s: f64) -> Snapshot {
    let span = later.t_s - earlier.t_s;
    let fraction = if span > 0.0 {
        ((t_s - earlier.t_s) / span).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let lerp = |a: f64, b: f64| a + (b - a) * fraction;
    // Start from a copy so any field added to `Snapshot` later is carried, not forgotten.
    let mut at = later.clone();
    at.t_s = t_s;
    at.energy.cpu_j = lerp(earlier.energy.cpu_j, later.energy.cpu_j);
    at.energy.ram_j = lerp(earlier.energy.ram_j, later.energy.ram_j);
    at.energy.gpu_j = lerp(earlier.energy.gpu_j, later.energy.gpu_j);
    at.energy.psys_j = lerp(earlier.energy.psys_j, later.energy.psys_j);
    at.cpu_busy_s = lerp(earlier.cpu_busy_s, later.cpu_busy_s);
    at.ram_used_gb_s = lerp(earlier.ram_used_gb_s, later.ram_used_gb_s);
    at.ram_fraction_s = lerp(earlier.ram_fraction_s, later.ram_fraction_s);
    at
}

/// Snapshots at the hour boundaries a run crossed.
#[derive(Debug, Clone)]
pub struct Ledger {
    clock: Clock,
    last: Option<Snapshot>,
    marks: Vec<Snapshot>,
}

/// Most boundaries recorded for one gap between reads (a machine suspended for weeks).
const MAX_MARKS_PER_GAP: i64 = 24 * 31;

impl Ledger {
    /// An empty ledger on `clock`.
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            last: None,
            marks: Vec::new(),
        }
    }

    /// The clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Takes the next read (in time order) and returns the hours it entered: the first read's
    /// hour, then every hour whose start lies after the previous read.
    pub fn observe(&mut self, snapshot: &Snapshot) -> Vec<i64> {
        let hour = self.clock.hour(snapshot.t_s);
        let Some(last) = self.last.clone() else {
            self.last = Some(snapshot.clone());
            return vec![hour];
        };
        if snapshot.t_s < last.t_s {
            return Vec::new();
        }
        let first = (self.clock.hour(last.t_s) + 1).max(hour - MAX_MARKS_PER_GAP);
        let entered: Vec<i64> = (first..=hour).collect();
        for &entered_hour in &entered {
            let t_s = self.clock.hour_start_t_s(entered_hour);
            self.marks.push(interpolate(&last, snapshot, t_s));
        }
        self.last = Some(snapshot.clone());
        entered
    }

    /// The boundary snapshots, in time order.
    pub fn marks(&self) -> &[Snapshot] {
        &self.marks
    }
}

/// The energy of one hour of a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HourPart {
    /// The hour (unix time / hour length, floored).
    pub hour: i64,
    /// Energy in that hour, J (before PUE).
    pub energy_j: f64,
}

/// The window `start`..`end` cut at every boundary in `marks` strictly inside it.
pub fn split(start: &Snapshot, end: &Snapshot, marks: &[Snapshot], clock: &Clock) -> Vec<HourPart> {
    let mut points: Vec<&Snapshot> = vec![start];
    points.extend(
        marks
            .iter()
            .filter(|mark| mark.t_s > start.t_s && mark.t_s < end.t_s),
    );
    points.push(end);
    points
        .windows(2)
        .map(|pair| HourPart {
            hour: clock.hour(f64::midpoint(pair[0].t_s, pair[1].t_s)),
            energy_j: (energy_j(pair[1]) - energy_j(pair[0])).max(0.0),
        })
        .collect()
}

/// kg CO2eq of `parts`, each at `g_per_kwh(hour)`, with the PUE applied to the energy.
pub fn emissions_kg(parts: &[HourPart], pue: f64, mut g_per_kwh: impl FnMut(i64) -> f64) -> f64 {
    parts
        .iter()
        .map(|part| {
            crate::carbon::co2_kg(
                crate::carbon::kwh_at_pue(part.energy_j, pue),
                g_per_kwh(part.hour),
            )
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::ComponentEnergy;
    use proptest::prelude::*;

    fn snap(t_s: f64, cpu_j: f64, ram_j: f64) -> Snapshot {
        Snapshot {
            t_s,
            energy: ComponentEnergy {
                cpu_j,
                ram_j,
                gpu_j: 0.0,
                psys_j: 0.0,
            },
            cpu_busy_s: 0.0,
            ram_used_gb_s: 0.0,
            ram_fraction_s: 0.0,
            gpu: crate::gpu::GpuTotals::default(),
        }
    }

    #[test]
    fn a_run_across_one_boundary_is_weighted_by_each_hour() {
        // Hours of 100 s; the meter starts at unix 50 s, in hour 0.
        let clock = Clock {
            wall_at_zero_s: 50.0,
            hour_s: 100.0,
        };
        let mut ledger = Ledger::new(clock);
        let start = snap(0.0, 0.0, 0.0);
        assert_eq!(ledger.observe(&start), vec![0]);
        // 10 W from t=0 to t=80: the boundary (unix 100) is at t=50.
        let end = snap(80.0, 800.0, 0.0);
        assert_eq!(ledger.observe(&end), vec![1]);
        assert_eq!(ledger.marks().len(), 1);
        assert!((ledger.marks()[0].energy.cpu_j - 500.0).abs() < 1e-9);
        let parts = split(&start, &end, ledger.marks(), &clock);
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].hour, parts[1].hour), (0, 1));
        assert!((parts[0].energy_j - 500.0).abs() < 1e-9);
        assert!((parts[1].energy_j - 300.0).abs() < 1e-9);
        let kg = emissions_kg(&parts, 1.5, |hour| if hour == 0 { 100.0 } else { 400.0 });
        let expected = (500.0 * 100.0 + 300.0 * 400.0) / 3.6e6 * 1.5 / 1000.0;
        assert!((kg - expected).abs() < 1e-15, "{kg} vs {expected}");
    }

    #[test]
    fn a_window_inside_one_hour_is_one_part() {
        let clock = Clock {
            wall_at_zero_s: 0.0,
            hour_s: 3600.0,
        };
        let parts = split(&snap(10.0, 1.0, 0.0), &snap(20.0, 5.0, 1.0), &[], &clock);
        assert_eq!(
            parts,
            vec![HourPart {
                hour: 0,
                energy_j: 5.0
            }]
        );
    }

    #[test]
    fn a_long_gap_records_every_boundary() {
        let clock = Clock {
            wall_at_zero_s: 0.0,
            hour_s: 10.0,
        };
        let mut ledger = Ledger::new(clock);
        ledger.observe(&snap(5.0, 0.0, 0.0));
        assert_eq!(ledger.observe(&snap(35.0, 30.0, 0.0)), vec![1, 2, 3]);
        let marks: Vec<f64> = ledger.marks().iter().map(|m| m.t_s).collect();
        assert_eq!(marks, vec![10.0, 20.0, 30.0]);
    }

    fn reads() -> impl Strategy<Value = (f64, f64, Vec<(f64, f64, f64)>)> {
        (
            0.0..1e6_f64,
            1.0..500.0_f64,
            prop::collection::vec((0.001..200.0_f64, 0.0..1e4_f64, 0.0..1e3_f64), 2..40),
        )
    }

    fn build(steps: &[(f64, f64, f64)]) -> Vec<Snapshot> {
        let mut t_s = 0.0;
        let (mut cpu_j, mut ram_j) = (0.0, 0.0);
        steps
            .iter()
            .map(|(dt, d_cpu, d_ram)| {
                t_s += dt;
                cpu_j += d_cpu;
                ram_j += d_ram;
                snap(t_s, cpu_j, ram_j)
            })
            .collect()
    }

    proptest! {
        #[test]
        fn splitting_a_window_never_changes_its_energy(
            (wall, hour_s, steps) in reads(),
            a in 0usize..40,
            b in 0usize..40,
        ) {
            let clock = Clock { wall_at_zero_s: wall, hour_s };
            let snapshots = build(&steps);
            let mut ledger = Ledger::new(clock);
            for snapshot in &snapshots {
                ledger.observe(snapshot);
            }
            let (i, j) = (a.min(b) % snapshots.len(), a.max(b) % snapshots.len());
            let (i, j) = (i.min(j), i.max(j));
            let (start, end) = (&snapshots[i], &snapshots[j]);
            let parts = split(start, end, ledger.marks(), &clock);
            let total: f64 = parts.iter().map(|p| p.energy_j).sum();
            let expected = energy_j(end) - energy_j(start);
            prop_assert!((total - expected).abs() <= 1e-9 * expected.max(1.0),
                "{total} vs {expected}");
            prop_assert!(parts.iter().all(|p| p.energy_j >= 0.0));
            prop_assert!(parts.windows(2).all(|w| w[0].hour < w[1].hour));
        }

        #[test]
        fn constant_intensity_gives_the_plain_product(
            (wall, hour_s, steps) in reads(),
            g_per_kwh in 0.0..1500.0_f64,
            pue in 1.0..3.0_f64,
        ) {
            let clock = Clock { wall_at_zero_s: wall, hour_s };
            let snapshots = build(&steps);
            let mut ledger = Ledger::new(clock);
            for snapshot in &snapshots {
                ledger.observe(snapshot);
            }
            let (start, end) = (&snapshots[0], &snapshots[snapshots.len() - 1]);
            let parts = split(start, end, ledger.marks(), &clock);
            let weighted = emissions_kg(&parts, pue, |_| g_per_kwh);
            let plain = (energy_j(end) - energy_j(start)) / 3.6e6 * pue * g_per_kwh / 1000.0;
            prop_assert!((weighted - plain).abs() <= 1e-9 * plain.max(1e-12), "{weighted} vs {plain}");
        }
    }
}
