//! The whole run's cost, projected from the epochs done so far when the number of epochs is
//! known: a point figure and an interval that narrows as epochs come in.
//!
//! # The statistics
//!
//! With `k` of `n` epochs done and `r = n - k` to go, the per-epoch cost of the rest is judged
//! on the *later* epochs: every epoch but the first once `k >= 2`, because the first carries
//! warm-up, compilation and data-loader start. Then:
//!
//! - **point**: done + `r` x the median of the later epochs (a median, so one slow epoch does not
//!   move it);
//! - **interval** around the remaining cost, from the later epochs' spread `s`: the prediction
//!   interval of a sum of `r` future epochs, `t x s x sqrt(r + r^2 / m)` over `m` later epochs
//!   (Student's t at 95 %, `m - 1` degrees of freedom), widened to include both the median
//!   level and a least-squares trend through the later epochs, so a drifting run is covered;
//! - with `m = 1` (two epochs done) there is no spread yet: the gap between the two epochs, `r`
//!   times, either side;
//! - with one epoch done, nothing tells warm-up from steady state: the interval runs from what is
//!   spent (the rest costs at least nothing) to twice the first epoch per remaining epoch (an
//!   assumption, said so in `docs/budget.md`).

/// The `co2_budget_kg`, `stop_over_budget`, `min_gain_per_kg` and `patience` settings.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Budget {
    /// The run's carbon budget, kg CO2eq: a warning once the projection's low end exceeds it.
    pub co2_budget_kg: Option<f64>,
    /// Ask the framework to stop after the epoch whose projection crossed the budget.
    pub stop_over_budget: bool,
    /// Ask it to stop once the monitored metric gains too little per kg CO2eq.
    pub payoff: crate::payoff::PayoffRule,
}

/// One finished epoch's figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EpochCost {
    /// kWh.
    pub energy_kwh: f64,
    /// kg CO2eq.
    pub emissions_kg: f64,
    /// Seconds.
    pub duration_s: f64,
}

/// A projected total with its interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projected {
    /// The point figure for the whole run.
    pub total: f64,
    /// Lowest plausible total.
    pub low: f64,
    /// Highest plausible total.
    pub high: f64,
}

/// The run's projection from its finished epochs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    /// kWh.
    pub energy_kwh: Projected,
    /// kg CO2eq.
    pub emissions_kg: Projected,
    /// Seconds.
    pub duration_s: Projected,
}

/// Student's t, two-sided 95 %, by degrees of freedom (1 to 30), then the normal 1.96.
fn t_95(dof: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match dof {
        0 => f64::INFINITY,
        1..=30 => T[dof - 1],
        _ => 1.96,
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.is_empty() {
        0.0
    } else if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        f64::midpoint(sorted[mid - 1], sorted[mid])
    }
}

/// The projected total of one quantity, `per_epoch` its value in each finished epoch, in order.
pub fn project(per_epoch: &[f64], total_epochs: u32) -> Option<Projected> {
    let done = per_epoch.len();
    if done == 0 {
        return None;
    }
    let spent: f64 = per_epoch.iter().sum();
    let remaining = (total_epochs as usize).saturating_sub(done) as f64;
    if remaining <= 0.0 {
        return Some(Projected {
            total: spent,
            low: spent,
            high: spent,
        });
    }
    if done == 1 {
        let first = per_epoch[0];
        return Some(Projected {
            total: spent + remaining * first,
            low: spent,
            high: spent + remaining * 2.0 * first,
        });
    }
    let later = &per_epoch[1..];
    let m = later.len();
    let level = median(later);
    let level_sum = remaining * level;
    let (trend_sum, half_width) = if m == 1 {
        (level_sum, remaining * (per_epoch[1] - per_epoch[0]).abs())
    } else {
        let mean = later.iter().sum::<f64>() / m as f64;
        let variance = later.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (m as f64 - 1.0);
        let spread = variance.sqrt();
        // Least squares through (i, x_i), i = 0..m, extrapolated to the remaining epochs.
        let mean_i = (m as f64 - 1.0) / 2.0;
        let sxx: f64 = (0..m).map(|i| (i as f64 - mean_i).powi(2)).sum();
        let sxy: f64 = later
            .iter()
            .enumerate()
            .map(|(i, x)| (i as f64 - mean_i) * (x - mean))
            .sum();
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        let ahead: f64 = (0..remaining as usize)
            .map(|j| (mean + slope * ((m + j) as f64 - mean_i)).max(0.0))
            .sum();
        let width = t_95(m - 1) * spread * (remaining + remaining * remaining / m as f64).sqrt();
        (ahead, width)
    };
    let low_rest = (level_sum.min(trend_sum) - half_width).max(0.0);
    let high_rest = level_sum.max(trend_sum) + half_width;
    Some(Projected {
        total: spent + level_sum,
        low: spent + low_rest,
        high: spent + high_rest,
    })
}

/// Energy, emissions and duration projected from `epochs` of a run of `total_epochs`.
pub fn project_run(epochs: &[EpochCost], total_epochs: u32) -> Option<Projection> {
    let of = |f: fn(&EpochCost) -> f64| {
        let values: Vec<f64> = epochs.iter().map(f).collect();
        project(&values, total_epochs)
    };
    Some(Projection {
        energy_kwh: of(|e| e.energy_kwh)?,
        emissions_kg: of(|e| e.emissions_kg)?,
        duration_s: of(|e| e.duration_s)?,
    })
}

/// The emissions interval `projected` widened by the measurement band of the epochs so far:
/// `spent_kg` measured, between `spent_low_kg` and `spent_high_kg` (`None`: unbounded). The
/// measured figure may be off by the same share in every epoch, so the share carries over.
pub fn with_measurement_band(
    projected: Projected,
    spent_kg: f64,
    spent_low_kg: f64,
    spent_high_kg: Option<f64>,
) -> (f64, Option<f64>) {
    let (low_share, high_share) = if spent_kg > 0.0 {
        (
            spent_low_kg / spent_kg,
            spent_high_kg.map(|high| high / spent_kg),
        )
    } else {
        (1.0, spent_high_kg.map(|_| 1.0))
    };
    (
        projected.low * low_share.min(1.0),
        high_share.map(|share| projected.high * share.max(1.0)),
    )
}

/// An epoch's figures past the budget: the floor that crossed it and what that floor is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossing {
    /// kg CO2eq surely reached: the projection's low end, else what the epochs surely emitted.
    pub floor_kg: f64,
    /// Whether `floor_kg` is a projection's low end.
    pub projected: bool,
}

/// Whether a run's (or a job's) epochs so far cross `budget_kg`: the projection's low end
/// when there is one, else what they surely emitted already (`spent_low_kg`). `None` under it.
pub fn crossing(
    budget_kg: f64,
    projected_low_kg: Option<f64>,
    spent_low_kg: f64,
) -> Option<Crossing> {
    // Without a projection, what the epochs surely spent already is the floor.
    let floor_kg = projected_low_kg.unwrap_or(spent_low_kg);
    (floor_kg > budget_kg).then_some(Crossing {
        floor_kg,
        projected: projected_low_kg.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_crossed_by_the_projections_low_end_else_by_what_was_spent() {
        assert_eq!(crossing(1.0, Some(0.9), 5.0), None);
        assert_eq!(
            crossing(1.0, Some(1.5), 0.1),
            Some(Crossing {
                floor_kg: 1.5,
                projected: true
            })
        );
        assert_eq!(crossing(1.0, None, 0.5), None);
        assert_eq!(
            crossing(1.0, None, 1.25),
            Some(Crossing {
                floor_kg: 1.25,
                projected: false
            })
        );
        // At the budget is not over it.
        assert_eq!(crossing(1.0, Some(1.0), 1.0), None);
    }

    /// Checks that every projection from `from` epochs on holds the final total and that the
    /// interval narrows from 3 epochs to the end; returns the projections.
    fn holds_the_total(series: &[f64], from: usize) -> Vec<Projected> {
        let n = u32::try_from(series.len()).expect("small");
        let truth: f64 = series.iter().sum();
        let projections: Vec<Projected> = (1..=series.len())
            .map(|k| project(&series[..k], n).expect("projection"))
            .collect();
        for (k, p) in projections.iter().enumerate().skip(from - 1) {
            assert!(
                p.low <= truth && truth <= p.high,
                "after {} epochs: {p:?}, truth {truth}",
                k + 1
            );
        }
        let widths: Vec<f64> = projections.iter().map(|p| p.high - p.low).collect();
        assert!(
            widths[series.len() - 2] < widths[2] || widths[2] == 0.0,
            "{widths:?}"
        );
        projections
    }

    #[test]
    fn a_constant_run_is_projected_exactly_from_two_epochs() {
        let series = [2.0; 10];
        let projections = holds_the_total(&series, 1);
        for p in &projections[1..] {
            assert!(
                (p.total - 20.0).abs() < 1e-12 && (p.high - p.low).abs() < 1e-12,
                "{p:?}"
            );
        }
        assert!(projections[0].low <= 20.0 && 20.0 <= projections[0].high);
    }

    #[test]
    fn a_warm_up_first_epoch_is_left_out_of_the_level() {
        // 3x the steady epoch first (compilation), then noise of a few percent.
        let series = [
            6.0, 2.05, 1.97, 2.02, 1.96, 2.04, 1.99, 2.03, 1.98, 2.01, 2.0, 1.97,
        ];
        let projections = holds_the_total(&series, 1);
        let truth: f64 = series.iter().sum();
        // Mean x N (carbontracker's) would say 72 after the first epoch; from the third on the
        // median of the later epochs is within 2 %.
        for p in &projections[2..] {
            assert!((p.total - truth).abs() / truth < 0.02, "{p:?} vs {truth}");
        }
    }

    #[test]
    fn a_drifting_run_stays_inside_its_interval() {
        // Each epoch 3 % dearer than the last (a growing sequence length), with small noise.
        let noise = [
            0.01, -0.02, 0.015, -0.005, 0.0, 0.02, -0.01, 0.005, -0.015, 0.01,
        ];
        let series: Vec<f64> = noise
            .iter()
            .enumerate()
            .map(|(i, e)| 1.0 * 1.03_f64.powi(i32::try_from(i).expect("small")) + e)
            .collect();
        // Two epochs cannot tell a drift from noise (here they are equal): covered from three.
        holds_the_total(&series, 3);
    }

    #[test]
    fn the_measurement_band_widens_the_projection() {
        let projected = Projected {
            total: 10.0,
            low: 8.0,
            high: 12.0,
        };
        let (low, high) = with_measurement_band(projected, 2.0, 1.5, Some(3.0));
        assert!((low - 6.0).abs() < 1e-12 && (high.expect("bounded") - 18.0).abs() < 1e-12);
        assert_eq!(with_measurement_band(projected, 2.0, 1.5, None).1, None);
    }

    #[test]
    fn no_epoch_no_projection_and_a_finished_run_is_its_total() {
        assert_eq!(project(&[], 10), None);
        let done = project(&[1.0, 2.0, 3.0], 3).expect("projection");
        assert_eq!((done.total, done.low, done.high), (6.0, 6.0, 6.0));
    }

    #[test]
    fn the_run_projection_covers_every_quantity() {
        let epochs = [EpochCost {
            energy_kwh: 1.0,
            emissions_kg: 0.5,
            duration_s: 60.0,
        }; 3];
        let run = project_run(&epochs, 6).expect("projection");
        assert!((run.energy_kwh.total - 6.0).abs() < 1e-12);
        assert!((run.emissions_kg.total - 3.0).abs() < 1e-12);
        assert!((run.duration_s.total - 360.0).abs() < 1e-9);
    }
}
