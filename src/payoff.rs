//! Whether training still pays: a monitored metric's improvement per kg CO2eq, since the first
//! epoch (what the loggers and the row show) and over the last `patience` epochs (what
//! `min_gain_per_kg` judges). Pure arithmetic on the epochs' figures, no clock and no I/O.

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Higher is better (accuracy, F1, BLEU).
    Max,
    /// Lower is better (loss, error, perplexity).
    Min,
}

/// Name fragments of metrics that improve downwards, for `mode="auto"` (Keras' and Lightning's
/// `EarlyStopping` guess the same way from the name).
const LOWER_IS_BETTER: [&str; 7] = ["loss", "error", "err", "perplexity", "mse", "mae", "rmse"];

impl Direction {
    /// The direction `mode` names: `max`, `min`, or `auto` (from the metric's name: a loss,
    /// error or perplexity improves downwards, anything else upwards).
    pub fn from_mode(mode: &str, metric_name: &str) -> Option<Self> {
        match mode {
            "max" => Some(Self::Max),
            "min" => Some(Self::Min),
            "auto" => {
                let lower = metric_name.to_ascii_lowercase();
                let downwards = lower
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .any(|word| LOWER_IS_BETTER.contains(&word));
                Some(if downwards { Self::Min } else { Self::Max })
            }
            _ => None,
        }
    }

    /// The `metric_direction` column's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Max => "max",
            Self::Min => "min",
        }
    }

    /// How much better `to` is than `from` (negative when worse).
    fn gain(self, from: f64, to: f64) -> f64 {
        match self {
            Self::Max => to - from,
            Self::Min => from - to,
        }
    }

    /// The better of two values.
    fn best(self, a: f64, b: f64) -> f64 {
        match self {
            Self::Max => a.max(b),
            Self::Min => a.min(b),
        }
    }
}

/// The `min_gain_per_kg` and `patience` settings.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PayoffRule {
    /// Least improvement of the monitored metric per kg CO2eq over the last `patience` epochs;
    /// under it, training is asked to stop. `None`: never.
    pub min_gain_per_kg: Option<f64>,
    /// Epochs the improvement is measured over (at least 1).
    pub patience: u32,
}

/// One epoch's point: the metric's value and the kg CO2eq spent up to and including it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    value: f64,
    spent_kg: f64,
}

/// The judgement that training stopped paying.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoppedPaying {
    /// Improvement of the best value over the last `patience` epochs (0 when none).
    pub gain: f64,
    /// kg CO2eq those epochs cost.
    pub cost_kg: f64,
    /// `gain / cost_kg`.
    pub gain_per_kg: f64,
}

/// A monitored metric over a run's epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricHistory {
    /// The metric's name, as recorded.
    pub name: String,
    direction: Direction,
    points: Vec<Point>,
}

impl MetricHistory {
    /// An empty history of metric `name`, improving in `direction`.
    pub fn new(name: &str, direction: Direction) -> Self {
        Self {
            name: name.to_owned(),
            direction,
            points: Vec::new(),
        }
    }

    /// Adds an epoch: the metric's `value` once `spent_kg` had been emitted in all.
    pub fn push(&mut self, value: f64, spent_kg: f64) {
        self.points.push(Point { value, spent_kg });
    }

    /// Improvement since the first epoch per kg CO2eq spent after it; `None` until a second
    /// epoch, or when nothing was spent since (a gain over no cost is no figure, never infinity).
    pub fn gain_per_kg_since_first(&self) -> Option<f64> {
        let (first, last) = (self.points.first()?, self.points.last()?);
        let cost_kg = last.spent_kg - first.spent_kg;
        (self.points.len() >= 2 && cost_kg > 0.0)
            .then(|| self.direction.gain(first.value, last.value) / cost_kg)
    }

    /// Whether the last `rule.patience` epochs improved the best value by less than
    /// `rule.min_gain_per_kg` per kg CO2eq they cost. Judged from the `patience + 1`-th epoch
    /// on (an improvement needs a value before it); never on epochs that cost nothing measured.
    pub fn stopped_paying(&self, rule: PayoffRule) -> Option<StoppedPaying> {
        let min_gain_per_kg = rule.min_gain_per_kg?;
        let patience = usize::try_from(rule.patience.max(1)).unwrap_or(usize::MAX);
        let split = self.points.len().checked_sub(patience)?;
        if split == 0 {
            return None;
        }
        let (before, recent) = self.points.split_at(split);
        let best_of = |points: &[Point]| {
            points
                .iter()
                .map(|point| point.value)
                .reduce(|a, b| self.direction.best(a, b))
        };
        let (best_before, best_recent) = (best_of(before)?, best_of(recent)?);
        let gain = self.direction.gain(best_before, best_recent).max(0.0);
        let cost_kg = recent.last()?.spent_kg - before.last()?.spent_kg;
        if cost_kg <= 0.0 {
            return None;
        }
        let gain_per_kg = gain / cost_kg;
        (gain_per_kg < min_gain_per_kg).then_some(StoppedPaying {
            gain,
            cost_kg,
            gain_per_kg,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(direction: Direction, values: &[f64], kg_per_epoch: f64) -> MetricHistory {
        let mut history = MetricHistory::new("m", direction);
        for (i, value) in values.iter().enumerate() {
            history.push(*value, kg_per_epoch * (i as f64 + 1.0));
        }
        history
    }

    #[test]
    fn auto_mode_reads_the_name_as_the_frameworks_do() {
        let auto = |name| Direction::from_mode("auto", name);
        assert_eq!(auto("val_loss"), Some(Direction::Min));
        assert_eq!(auto("eval_perplexity"), Some(Direction::Min));
        assert_eq!(auto("val_accuracy"), Some(Direction::Max));
        // "loss" must be a word: a name that merely contains the letters is not a loss.
        assert_eq!(auto("glossary_f1"), Some(Direction::Max));
        assert_eq!(Direction::from_mode("min", "acc"), Some(Direction::Min));
        assert_eq!(Direction::from_mode("best", "acc"), None);
    }

    #[test]
    fn gain_per_kg_since_first_counts_the_cost_after_the_first_epoch() {
        let rising = history(Direction::Max, &[0.5, 0.7, 0.8], 0.5);
        // 0.3 gained over the 1.0 kg of epochs 1 and 2.
        let per_kg = rising.gain_per_kg_since_first().expect("two epochs");
        assert!((per_kg - 0.3).abs() < 1e-12, "{per_kg}");
        assert_eq!(
            history(Direction::Max, &[0.5], 0.5).gain_per_kg_since_first(),
            None
        );
        assert_eq!(
            history(Direction::Max, &[0.5, 0.6], 0.0).gain_per_kg_since_first(),
            None
        );
        let falling_loss = history(Direction::Min, &[2.0, 1.0], 1.0);
        assert_eq!(falling_loss.gain_per_kg_since_first(), Some(1.0));
    }

    #[test]
    fn stops_when_the_best_of_the_last_epochs_gains_too_little_per_kg() {
        let rule = PayoffRule {
            min_gain_per_kg: Some(0.1),
            patience: 2,
        };
        // 1 kg epochs gaining 0.2, 0.2, 0.1, then nothing.
        let values = [0.5, 0.7, 0.9, 1.0, 1.0];
        let judged: Vec<bool> = (1..=values.len())
            .map(|n| {
                history(Direction::Max, &values[..n], 1.0)
                    .stopped_paying(rule)
                    .is_some()
            })
            .collect();
        // Epochs 0 and 1 cannot be judged (patience 2 needs a value before the window); epoch
        // 2's window gained 0.4 over 2 kg, epoch 3's 0.3, epoch 4's 0.1: 0.05 per kg, under 0.1.
        assert_eq!(judged, [false, false, false, false, true]);
        let stop = history(Direction::Max, &values, 1.0)
            .stopped_paying(rule)
            .expect("stops");
        assert!((stop.gain - 0.1).abs() < 1e-12);
        assert!((stop.cost_kg - 2.0).abs() < 1e-12);
    }

    #[test]
    fn a_dip_is_no_negative_gain_and_a_free_epoch_is_not_judged() {
        let rule = PayoffRule {
            min_gain_per_kg: Some(0.0001),
            patience: 1,
        };
        let dipped = history(Direction::Min, &[1.0, 1.5], 1.0)
            .stopped_paying(rule)
            .expect("no gain");
        assert!(dipped.gain.abs() < f64::EPSILON, "{}", dipped.gain);
        assert_eq!(
            history(Direction::Min, &[1.0, 1.5], 0.0).stopped_paying(rule),
            None
        );
        let no_rule = PayoffRule::default();
        assert_eq!(
            history(Direction::Min, &[1.0, 1.5], 1.0).stopped_paying(no_rule),
            None
        );
    }
}
