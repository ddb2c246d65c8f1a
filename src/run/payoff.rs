//! The monitored metric of a run's epochs: recorded in an open epoch window, written in its row
//! with its gain per kg CO2eq since the first epoch, and judged against `min_gain_per_kg`.

use super::Tracker;
use super::budget::{BudgetJudge, RunBudget};
use crate::error::{Error, Result};
use crate::output::EmissionsRow;
use crate::payoff::{Direction, MetricHistory};

/// What `stop_reason` says when the monitored metric gained less than `min_gain_per_kg`.
pub const STOP_MIN_GAIN: &str = "min_gain_per_kg";

/// What the run's training epochs emitted so far, and their projected total when known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Spent {
    pub(super) kg: f64,
    pub(super) projected_kg: Option<f64>,
}

/// A metric recorded in an open window.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RecordedMetric {
    pub(super) name: String,
    pub(super) value: f64,
    pub(super) direction: Direction,
}

impl Tracker {
    /// Records the metric `name` = `value` in the open window `window`: its row gets
    /// `metric_name` and `metric_value` and, for an epoch, the gain per kg since the first
    /// epoch. `mode` is `max`, `min` or `auto` (from the name: a loss improves downwards). A
    /// later record in the same window replaces it.
    pub fn record_metric(&self, window: &str, name: &str, value: f64, mode: &str) -> Result<()> {
        let direction = Direction::from_mode(mode, name).ok_or_else(|| {
            Error::invalid(
                "mode",
                format!("{mode:?}"),
                "expected \"max\", \"min\" or \"auto\"",
            )
        })?;
        if name.trim().is_empty() {
            return Err(Error::invalid(
                "name",
                format!("{name:?}"),
                "expected a metric name",
            ));
        }
        if !value.is_finite() {
            return Err(Error::invalid(
                "value",
                value.to_string(),
                format!("expected a finite number for metric {name:?}"),
            ));
        }
        let mut guard = self.run.lock();
        let run = guard.as_mut().ok_or_else(|| {
            Error::State(format!(
                "metric {name:?} not recorded: the tracker is not running"
            ))
        })?;
        let open = &mut run.windows.open;
        let names = open
            .iter()
            .map(|w| format!("{:?}", w.name))
            .collect::<Vec<_>>();
        let open_window = open
            .iter_mut()
            .find(|open_window| open_window.name == window)
            .ok_or_else(|| {
                Error::State(format!(
                    "metric {name:?} not recorded: window {window:?} is not open; open windows: {}",
                    names.join(", ")
                ))
            })?;
        open_window.metric = Some(RecordedMetric {
            name: name.to_owned(),
            value,
            direction,
        });
        Ok(())
    }

    /// Adds the epoch row's metric to the run's history (`spent`: what the run's training
    /// epochs emitted so far), fills in `metric_gain_per_kg`, and judges `min_gain_per_kg`:
    /// warns once with what stopping saves, and marks the row and the run.
    pub(super) fn judge_payoff(
        &self,
        budget: &mut RunBudget,
        row: &mut EmissionsRow,
        phase: &str,
        mode: Direction,
        spent: Spent,
    ) {
        let (Some(name), Some(value)) = (row.metric_name.clone(), row.metric_value) else {
            return;
        };
        let spent_kg = spent.kg;
        let history = budget
            .metric
            .get_or_insert_with(|| MetricHistory::new(&name, mode));
        if history.name != name {
            crate::runtime::warn_once(&format!(
                "epoch metric {name:?} differs from the run's first, {:?}: its gain per kg is \
                 measured from this epoch on",
                history.name
            ));
            *history = MetricHistory::new(&name, mode);
        }
        history.push(value, spent_kg);
        row.metric_gain_per_kg = history.gain_per_kg_since_first();
        let rule = self.config.budget.payoff;
        if rule.min_gain_per_kg.is_none() || budget.stopped_paying {
            return;
        }
        if self.budget_judge() != BudgetJudge::Run {
            crate::runtime::warn_once(
                "min_gain_per_kg is not checked in a distributed job: a rank's share of the \
                 emissions would stop it alone (use it in single-process runs)",
            );
            return;
        }
        let Some(stop) = history.stopped_paying(rule) else {
            return;
        };
        budget.stopped_paying = true;
        row.stop_reason = Some(STOP_MIN_GAIN.to_owned());
        let epoch = row.epoch.unwrap_or_default();
        let saved = match spent.projected_kg {
            Some(projected_kg) if projected_kg > spent_kg => format!(
                "stopping saves about {} kg CO2eq, {:.0}% of the projected {} kg",
                kg(projected_kg - spent_kg),
                100.0 * (projected_kg - spent_kg) / projected_kg,
                kg(projected_kg),
            ),
            _ => "the run's epoch count is unknown, so what stopping saves is not projected"
                .to_owned(),
        };
        log::warn!(
            target: "carbonmeter",
            "training stopped paying after {phase} epoch {epoch}: {name} gained {:.4} over the \
             last {} epoch(s), {:.4} per kg CO2eq of their {} kg, under min_gain_per_kg={}; \
             training is asked to stop; {saved}",
            stop.gain,
            rule.patience.max(1),
            stop.gain_per_kg,
            kg(stop.cost_kg),
            rule.min_gain_per_kg.unwrap_or_default(),
        );
    }
}

/// A mass in kg for a warning: four significant figures, in scientific notation when small (a
/// laptop's epoch emits micrograms).
fn kg(value_kg: f64) -> String {
    if value_kg != 0.0 && value_kg.abs() < 1e-3 {
        format!("{value_kg:.3e}")
    } else {
        format!("{value_kg:.4}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{Config, Environment, RawValue};
    use crate::run::Identity;

    /// A tracker at a forced 1 kW and 1 kg per kWh that writes no file, judging
    /// `min_gain_per_kg` = 1 over 2 epochs of a 10-epoch run.
    fn judging() -> Tracker {
        let kwargs = [
            ("save_to_file", RawValue::Bool(false)),
            ("country_iso_code", RawValue::Str("FRA".to_owned())),
            ("force_cpu_power", RawValue::Str("1000".to_owned())),
            ("force_ram_power", RawValue::Str("0".to_owned())),
            (
                "force_carbon_intensity_g_co2e_kwh",
                RawValue::Str("1000".to_owned()),
            ),
            ("min_gain_per_kg", RawValue::Str("1".to_owned())),
            ("patience", RawValue::Int(2)),
            ("measure_power_secs", RawValue::Str("3600".to_owned())),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        let config = Config::resolve(kwargs, Environment::default()).expect("config");
        let tracker = Tracker::new(config, Identity::default()).expect("tracker");
        tracker.set_epoch_total("train", 10);
        tracker
    }

    fn epoch(tracker: &Tracker, value: f64) -> EmissionsRow {
        let name = tracker.start_epoch(None, "train").expect("epoch");
        std::thread::sleep(Duration::from_millis(10));
        tracker
            .record_metric(&name, "val_accuracy", value, "auto")
            .expect("record");
        tracker.end_window(&name).expect("end")
    }

    #[test]
    fn the_run_stops_after_the_epochs_that_gained_too_little_and_its_row_says_why() {
        let tracker = judging();
        let rows: Vec<EmissionsRow> = [0.5, 0.6, 0.7, 0.7, 0.7]
            .into_iter()
            .map(|value| epoch(&tracker, value))
            .collect();
        let stops: Vec<Option<&str>> = rows.iter().map(|r| r.stop_reason.as_deref()).collect();
        assert_eq!(stops, [None, None, None, None, Some(STOP_MIN_GAIN)]);
        assert_eq!(rows[0].metric_gain_per_kg, None);
        assert!(rows[1].metric_gain_per_kg.is_some_and(|gain| gain > 0.0));
        assert_eq!(rows[4].metric_direction.as_deref(), Some("max"));
        let run = tracker.stop().expect("run row");
        assert_eq!(run.stop_reason.as_deref(), Some(STOP_MIN_GAIN));
        assert_eq!(run.metric_name, None);
    }

    #[test]
    fn a_metric_needs_an_open_window_a_finite_value_and_a_known_mode() {
        let tracker = judging();
        let name = tracker.start_epoch(None, "train").expect("epoch");
        assert!(matches!(
            tracker.record_metric("other", "acc", 0.5, "auto"),
            Err(Error::State(_))
        ));
        for (value, mode) in [(f64::NAN, "auto"), (0.5, "best")] {
            assert!(tracker.record_metric(&name, "acc", value, mode).is_err());
        }
        tracker.end_window(&name).expect("end");
        tracker.stop();
    }
}
