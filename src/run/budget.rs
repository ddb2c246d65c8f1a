//! The carbon budget: the epochs of each phase, their projection and the check against
//! `co2_budget_kg`, by the run itself or, in a job, by rank 0 on the job's rows.

use std::collections::BTreeMap;

use super::Tracker;
use super::payoff::Spent;
use crate::output::EmissionsRow;
use crate::payoff::Direction;
use crate::projection::{self, EpochCost};

/// The finished epochs of one phase, for the projection and the budget: the sums are kept as
/// they grow, so an edge costs the same at the millionth epoch (windows per step) as at the
/// first.
#[derive(Default)]
struct EpochHistory {
    costs: Vec<EpochCost>,
    spent_kg: f64,
    spent_low_kg: f64,
    /// `None` once an epoch had no upper bound.
    spent_high_kg: Option<f64>,
}

impl EpochHistory {
    fn push(&mut self, cost: EpochCost, emissions_low_kg: f64, emissions_high_kg: Option<f64>) {
        self.spent_high_kg = if self.costs.is_empty() {
            emissions_high_kg
        } else {
            self.spent_high_kg
                .zip(emissions_high_kg)
                .map(|(a, b)| a + b)
        };
        self.spent_kg += cost.emissions_kg;
        self.spent_low_kg += emissions_low_kg;
        self.costs.push(cost);
    }
}

/// What `stop_reason` says when the projection crossed `co2_budget_kg`.
pub const STOP_CO2_BUDGET: &str = "co2_budget";

/// A run's epochs and what the budget decided on them.
#[derive(Default)]
pub(super) struct RunBudget {
    epochs: BTreeMap<String, EpochHistory>,
    /// Whether the crossing was warned about (once a run).
    warned: bool,
    /// Whether the run crossed the budget with `stop_over_budget`: its row says so.
    pub(super) over_budget: bool,
    /// The monitored metric over the run's epochs (see [`super::payoff`]).
    pub(super) metric: Option<crate::payoff::MetricHistory>,
    /// Whether the metric stopped paying under `min_gain_per_kg`: the run's row says so.
    pub(super) stopped_paying: bool,
    /// A rank's last epoch row, written once rank 0 said whether the job crossed the budget
    /// (only with `stop_over_budget`, so the row carries the job's decision).
    pub(super) held: Option<EmissionsRow>,
    /// On rank 0, what the job's epochs of each phase surely emitted (kg CO2eq): the budget's
    /// floor while the job has no projection.
    job_spent_low_kg: BTreeMap<String, f64>,
}

/// Who checks a tracker's epochs against `co2_budget_kg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BudgetJudge {
    /// A single process: its own epochs.
    Run,
    /// A rank joined through a process group: rank 0, on the job's epoch rows.
    Job,
    /// A rank of a job that gathers no job rows: nobody can see the job's total.
    Nobody,
}

impl Tracker {
    /// Says how many epochs of `phase` the run will have, so its epoch rows carry the run's
    /// projection (`projected_*`) and the budget can be checked against it.
    pub fn set_epoch_total(&self, phase: &str, total_epochs: u32) {
        self.epoch_totals
            .lock()
            .insert(phase.to_owned(), total_epochs);
    }

    /// Adds a finished epoch of `phase` to the run's history; fills in the projection when the
    /// number of epochs is known, and checks the budget.
    pub(super) fn finish_epoch(
        &self,
        row: &mut EmissionsRow,
        phase: &str,
        metric_direction: Option<Direction>,
    ) {
        let (total_epochs, train_epochs) = {
            let totals = self.epoch_totals.lock();
            (totals.get(phase).copied(), totals.get("train").copied())
        };
        // Before the run's lock: the job's is taken alone. No lock at all without a budget.
        let budget_judge = self
            .config
            .budget
            .co2_budget_kg
            .map(|_| self.budget_judge());
        let mut guard = self.run.lock();
        let Some(run) = guard.as_mut() else {
            return;
        };
        let history = run.budget.epochs.entry(phase.to_owned()).or_default();
        history.push(
            EpochCost {
                energy_kwh: row.energy_consumed,
                emissions_kg: row.emissions,
                duration_s: row.duration,
            },
            row.emissions_low,
            row.emissions_high,
        );
        let (spent_kg, spent_low_kg, spent_high_kg) = (
            history.spent_kg,
            history.spent_low_kg,
            history.spent_high_kg,
        );
        if let Some(projected) =
            total_epochs.and_then(|total| projection::project_run(&history.costs, total))
        {
            let (low, high) = projection::with_measurement_band(
                projected.emissions_kg,
                spent_kg,
                spent_low_kg,
                spent_high_kg,
            );
            row.projected_energy_consumed = Some(projected.energy_kwh.total);
            row.projected_emissions = Some(projected.emissions_kg.total);
            row.projected_emissions_low = Some(low);
            row.projected_emissions_high = high;
            row.projected_duration = Some(projected.duration_s.total);
        }
        match budget_judge {
            Some(BudgetJudge::Run) => {
                let number = row.epoch.unwrap_or_default();
                self.judge_budget(&mut run.budget, row, phase, number, spent_low_kg, "run");
            }
            Some(BudgetJudge::Nobody) => crate::runtime::warn_once(
                "co2_budget_kg is not checked: this process is a rank of a job whose ranks share \
                 no process group, so the job's total is not known to any of them",
            ),
            // A rank's share alone never stops anything: rank 0 judges the job's row.
            Some(BudgetJudge::Job) | None => {}
        }
        if let Some(direction) = metric_direction {
            // The metric's cost is the training's: an evaluation after an epoch (HF's) is
            // judged on the train epochs done, and the saving on the training's projection.
            let train = run.budget.epochs.get("train");
            let spent = Spent {
                kg: train.map_or(spent_kg, |train| train.spent_kg),
                projected_kg: match (phase, train) {
                    ("train", _) | (_, None) => row.projected_emissions,
                    (_, Some(train)) => train_epochs
                        .and_then(|total| projection::project_run(&train.costs, total))
                        .map(|projected| projected.emissions_kg.total),
                },
            };
            self.judge_payoff(&mut run.budget, row, phase, direction, spent);
        }
    }

    /// Who judges this tracker's epochs against the budget: the run itself, rank 0 on the
    /// job's rows (a rank joined through a process group), or nobody (a rank of a job that
    /// cannot gather its figures: its own share would stop it alone).
    pub(super) fn budget_judge(&self) -> BudgetJudge {
        let joined = match self.job.lock().as_ref() {
            Some(share) => !share.labels.job_run_id.is_empty(),
            None if self.config.job.is_some() => false,
            None => return BudgetJudge::Run,
        };
        if joined {
            BudgetJudge::Job
        } else {
            BudgetJudge::Nobody
        }
    }

    /// Checks an epoch's figures (of the run, or of the job on rank 0) against the budget:
    /// warns once at the crossing and, with `stop_over_budget`, marks the row and the run.
    fn judge_budget(
        &self,
        budget: &mut RunBudget,
        row: &mut EmissionsRow,
        phase: &str,
        epoch: u32,
        spent_low_kg: f64,
        whose: &str,
    ) {
        let Some(budget_kg) = self.config.budget.co2_budget_kg else {
            return;
        };
        let Some(crossing) =
            projection::crossing(budget_kg, row.projected_emissions_low, spent_low_kg)
        else {
            return;
        };
        if !budget.warned {
            budget.warned = true;
            let floor_kg = crossing.floor_kg;
            let what = if crossing.projected {
                format!("the {whose}'s projected emissions are at least")
            } else {
                format!("the {whose}'s epochs so far emitted at least")
            };
            let action = if self.config.budget.stop_over_budget {
                "training is asked to stop after this epoch (stop_over_budget=True)"
            } else {
                "pass stop_over_budget=True to stop training there"
            };
            log::warn!(
                target: "carbonmeter",
                "carbon budget exceeded after {phase} epoch {epoch}: {what} {floor_kg:.6} kg \
                 CO2eq, over co2_budget_kg={budget_kg}; {action}"
            );
        }
        if self.config.budget.stop_over_budget {
            budget.over_budget = true;
            row.stop_reason = Some(STOP_CO2_BUDGET.to_owned());
        }
    }

    /// Writes the epoch row held for the job's decision ([`Tracker::end_window`] of a rank of a
    /// job with `stop_over_budget`), marked as rank 0 decided: `stop`, the job crossed the
    /// budget, so this rank stops after the same epoch as the others. Returns it, `None` when
    /// no row was held.
    pub fn job_decision(&self, stop: bool) -> Option<EmissionsRow> {
        let row = {
            let mut guard = self.run.lock();
            let run = guard.as_mut()?;
            let mut row = run.budget.held.take()?;
            if stop {
                run.budget.over_budget = true;
                row.stop_reason = Some(STOP_CO2_BUDGET.to_owned());
            }
            row
        };
        self.emit(&row);
        Some(row)
    }

    /// Judges the job's epoch row `row` against the budget (rank 0, where the job's figures
    /// meet) and returns rank 0's own epoch row held for that decision, marked with it.
    pub(super) fn judge_job_epoch(&self, row: &mut EmissionsRow) -> Option<EmissionsRow> {
        let (Some(epoch), Some(phase)) = (row.epoch, row.phase.clone()) else {
            return None;
        };
        self.config.budget.co2_budget_kg?;
        let mut guard = self.run.lock();
        let run = guard.as_mut()?;
        let spent_low_kg = {
            let spent = run
                .budget
                .job_spent_low_kg
                .entry(phase.clone())
                .or_default();
            *spent += row.emissions_low;
            *spent
        };
        self.judge_budget(&mut run.budget, row, &phase, epoch, spent_low_kg, "job");
        let mut own = run.budget.held.take()?;
        own.stop_reason.clone_from(&row.stop_reason);
        Some(own)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{Config, Environment, RawValue};
    use crate::job::Member;
    use crate::run::Identity;

    /// A tracker at a forced 1 kW and 1 kg per kWh whose budget any epoch crosses, writing
    /// `emissions.csv` in `dir`, as rank `rank` of a two-rank job.
    fn rank_of_a_job(dir: &std::path::Path, rank: u32) -> Tracker {
        let tracker = over_budget(dir, Environment::default());
        let members: Vec<Member> = (0..2)
            .map(|rank| Member {
                rank,
                host: format!("host-{rank}"),
                local_rank: Some(0),
                gpus: Vec::new(),
                current_gpu: None,
                job_id: "job".to_owned(),
                job_run_id: "job-run".to_owned(),
                since_s: 0.0,
            })
            .collect();
        tracker.join_job(&members, rank, 2).expect("join");
        tracker.start().expect("start");
        tracker
    }

    fn over_budget(dir: &std::path::Path, environment: Environment) -> Tracker {
        let kwargs = [
            ("output_dir", RawValue::Str(dir.display().to_string())),
            ("country_iso_code", RawValue::Str("FRA".to_owned())),
            ("force_cpu_power", RawValue::Str("1000".to_owned())),
            ("force_ram_power", RawValue::Str("0".to_owned())),
            (
                "force_carbon_intensity_g_co2e_kwh",
                RawValue::Str("1000".to_owned()),
            ),
            ("co2_budget_kg", RawValue::Str("1e-12".to_owned())),
            ("stop_over_budget", RawValue::Bool(true)),
            ("measure_power_secs", RawValue::Str("3600".to_owned())),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        let config = Config::resolve(kwargs, environment).expect("config");
        let tracker = Tracker::new(config, Identity::default()).expect("tracker");
        tracker.set_epoch_total("train", 4);
        tracker
    }

    fn one_epoch(tracker: &Tracker) -> EmissionsRow {
        let name = tracker.start_epoch(None, "train").expect("epoch");
        std::thread::sleep(Duration::from_millis(20));
        tracker.end_window(&name).expect("end")
    }

    /// (`scope`, `window`, `stop_reason`) of every row written to `dir`'s CSV.
    fn written(dir: &std::path::Path) -> Vec<(String, String, String)> {
        let mut reader = csv::Reader::from_path(dir.join("emissions.csv")).expect("csv");
        let header = reader.headers().expect("header").clone();
        let at = |name: &str| header.iter().position(|h| h == name).expect("column");
        let (scope, window, stop) = (at("scope"), at("window"), at("stop_reason"));
        reader
            .records()
            .map(|record| {
                let record = record.expect("record");
                let field = |i: usize| record.get(i).unwrap_or_default().to_owned();
                (field(scope), field(window), field(stop))
            })
            .collect()
    }

    #[test]
    fn rank_zero_stops_the_job_on_the_jobs_row_not_on_its_own_share() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tracker = rank_of_a_job(dir.path(), 0);
        let own = one_epoch(&tracker);
        // Its share alone crossed the budget, yet stops nothing: held for the job's row.
        assert!(own.projected_emissions_low.is_some_and(|kg| kg > 1e-12));
        assert_eq!(own.stop_reason, None);
        assert!(!dir.path().join("emissions.csv").exists());
        let mut other = own.clone();
        other.rank = Some(1);
        let job = tracker.write_job_row(&[own, other], &[]).expect("job row");
        assert_eq!(job.stop_reason.as_deref(), Some(STOP_CO2_BUDGET));
        let run = tracker.stop().expect("run row");
        assert_eq!(run.stop_reason.as_deref(), Some(STOP_CO2_BUDGET));
        let rows = written(dir.path());
        let epoch = "train-epoch-0".to_owned();
        let stop = STOP_CO2_BUDGET.to_owned();
        assert_eq!(
            rows,
            vec![
                ("job".to_owned(), epoch.clone(), stop.clone()),
                ("rank".to_owned(), epoch, stop.clone()),
                ("rank".to_owned(), String::new(), stop),
            ]
        );
    }

    #[test]
    fn the_other_ranks_write_their_epoch_with_rank_zeros_decision() {
        let stopped = tempfile::tempdir().expect("tempdir");
        let tracker = rank_of_a_job(stopped.path(), 1);
        assert_eq!(one_epoch(&tracker).stop_reason, None);
        let row = tracker.job_decision(true).expect("held row");
        assert_eq!(row.stop_reason.as_deref(), Some(STOP_CO2_BUDGET));
        assert_eq!(tracker.job_decision(true), None, "written once");
        let run = tracker.stop().expect("run row");
        assert_eq!(run.stop_reason.as_deref(), Some(STOP_CO2_BUDGET));
        // No decision (rank 0 gone): nothing stops, and the row is still written.
        let going = tempfile::tempdir().expect("tempdir");
        let tracker = rank_of_a_job(going.path(), 1);
        one_epoch(&tracker);
        assert_eq!(tracker.job_decision(false).expect("row").stop_reason, None);
        assert_eq!(tracker.stop().expect("run row").stop_reason, None);
        let stops: Vec<String> = written(going.path()).into_iter().map(|r| r.2).collect();
        assert_eq!(stops, vec![String::new(), String::new()]);
    }

    #[test]
    fn a_row_left_undecided_is_written_at_the_next_edge_or_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tracker = rank_of_a_job(dir.path(), 1);
        one_epoch(&tracker);
        one_epoch(&tracker);
        tracker.stop();
        let windows: Vec<String> = written(dir.path()).into_iter().map(|r| r.1).collect();
        assert_eq!(windows, vec!["train-epoch-0", "train-epoch-1", ""]);
    }

    #[test]
    fn a_rank_of_a_job_without_a_process_group_never_stops_on_its_share() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Rank 1 on a host of its own: it measures that host.
        let vars = [("RANK", "1"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let environment = Environment {
            vars,
            ..Environment::default()
        };
        let tracker = over_budget(dir.path(), environment);
        tracker.start().expect("start");
        let row = one_epoch(&tracker);
        assert!(row.projected_emissions_low.is_some_and(|kg| kg > 1e-12));
        assert_eq!(row.stop_reason, None);
        assert_eq!(tracker.stop().expect("run row").stop_reason, None);
        // Alone, the same tracker stops there.
        let alone = over_budget(dir.path(), Environment::default());
        alone.start().expect("start");
        let row = one_epoch(&alone);
        assert_eq!(row.stop_reason.as_deref(), Some(STOP_CO2_BUDGET));
    }
}
