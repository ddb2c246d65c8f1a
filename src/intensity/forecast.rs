//! A carbon-aware start: the time in a forecast that minimises the mean intensity over a run of
//! known duration that must finish before a deadline. Pure: the forecast, the clock and the
//! deadline are arguments (the sources are in [`super::forecast_sources`]). The run that follows
//! a wait records what it waited for ([`Scheduled`]).

use crate::runtime::ProcessLock;

/// One forecast period at a constant intensity, `[start_unix_s, end_unix_s)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    /// Unix time the period starts, s.
    pub start_unix_s: f64,
    /// Unix time it ends, s.
    pub end_unix_s: f64,
    /// Forecast intensity, g CO2eq/kWh.
    pub g_per_kwh: f64,
}

/// What to search for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Search {
    /// Unix time now, s.
    pub now_unix_s: f64,
    /// Expected duration of the run, s.
    pub duration_s: f64,
    /// The run must finish within this many seconds from now.
    pub within_s: f64,
}

/// The start chosen, and the figures it was chosen on.
#[derive(Debug, Clone, PartialEq)]
pub struct Best {
    /// Unix time to start at, s (`now` when starting now).
    pub start_unix_s: f64,
    /// Mean forecast intensity over the run started then, g CO2eq/kWh; `None` when the forecast
    /// does not cover it.
    pub mean_g_per_kwh: Option<f64>,
    /// Mean forecast intensity over the run started now (the intensity at submission).
    pub now_g_per_kwh: Option<f64>,
    /// Until when the forecast was searched (the deadline or the forecast's end, the earlier).
    pub searched_until_unix_s: Option<f64>,
    /// Why the run starts now without the forecast choosing it; `None` when the forecast chose.
    pub reason: Option<String>,
}

/// A period boundary closer than this is the same instant, s.
const SAME_INSTANT_S: f64 = 1e-6;

/// A later start is taken only when it lowers the mean by more than this share: a flat
/// forecast (or float noise) starts now.
const MIN_GAIN: f64 = 1e-9;

/// The periods sorted by start, non-finite ones dropped; a first period starting after `now`
/// by less than its own length is taken to start at `now` (a source's clock a little ahead).
fn normalised(slots: &[Slot], now_unix_s: f64) -> Vec<Slot> {
    let mut slots: Vec<Slot> = slots
        .iter()
        .copied()
        .filter(|slot| {
            slot.start_unix_s.is_finite()
                && slot.end_unix_s.is_finite()
                && slot.g_per_kwh.is_finite()
                && slot.end_unix_s > slot.start_unix_s
        })
        .collect();
    slots.sort_by(|a, b| a.start_unix_s.total_cmp(&b.start_unix_s));
    if let Some(first) = slots.first_mut() {
        let ahead_s = first.start_unix_s - now_unix_s;
        if ahead_s > 0.0 && ahead_s <= first.end_unix_s - first.start_unix_s {
            first.start_unix_s = now_unix_s;
        }
    }
    slots
}

/// The time-weighted mean intensity over `[from, to)` of sorted `slots`; `None` where a gap or
/// the forecast's end leaves part of it uncovered.
pub fn mean_g_per_kwh(slots: &[Slot], from_unix_s: f64, to_unix_s: f64) -> Option<f64> {
    if to_unix_s <= from_unix_s {
        return None;
    }
    let mut at = from_unix_s;
    let mut sum = 0.0;
    for slot in slots {
        if slot.end_unix_s <= at + SAME_INSTANT_S {
            continue;
        }
        if slot.start_unix_s > at + SAME_INSTANT_S {
            return None;
        }
        let until = slot.end_unix_s.min(to_unix_s);
        sum += slot.g_per_kwh * (until - at);
        at = until;
        if at >= to_unix_s - SAME_INSTANT_S {
            return Some(sum / (to_unix_s - from_unix_s));
        }
    }
    None
}

/// Where the forecast stops covering time without a gap from `from`, or `None` when it does
/// not cover `from` itself.
fn covered_until(slots: &[Slot], from_unix_s: f64) -> Option<f64> {
    let mut at: Option<f64> = None;
    for slot in slots {
        match at {
            None if slot.start_unix_s <= from_unix_s + SAME_INSTANT_S
                && slot.end_unix_s > from_unix_s =>
            {
                at = Some(slot.end_unix_s);
            }
            Some(end) if slot.start_unix_s <= end + SAME_INSTANT_S => {
                at = Some(end.max(slot.end_unix_s));
            }
            Some(_) => break,
            None => {}
        }
    }
    at
}

/// `seconds` as `2h30m`, `45m` or `20s`, for the reasons' text.
pub fn human_s(seconds: f64) -> String {
    let whole = seconds.round().max(0.0) as u64;
    let (h, m, s) = (whole / 3600, whole % 3600 / 60, whole % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

/// The start in `slots` minimising the mean intensity of a run of `search.duration_s` that
/// finishes within `search.within_s`: now when the deadline is shorter than the run, when the
/// forecast does not cover a run started now, or when no later start is cleaner (the earliest
/// of equal starts wins). A piecewise-constant forecast's best mean is reached where the run's
/// start or end meets a period boundary, so those starts (and now and the latest) are the only
/// ones compared.
pub fn best_window(slots: &[Slot], search: &Search) -> Best {
    let Search {
        now_unix_s: now,
        duration_s,
        within_s,
    } = *search;
    let slots = normalised(slots, now);
    let now_mean = mean_g_per_kwh(&slots, now, now + duration_s);
    let covered = covered_until(&slots, now);
    let start_now = |reason: String| Best {
        start_unix_s: now,
        mean_g_per_kwh: now_mean,
        now_g_per_kwh: now_mean,
        searched_until_unix_s: covered.map(|end| end.min(now + within_s)),
        reason: Some(reason),
    };
    if within_s < duration_s {
        return start_now(format!(
            "the deadline (within {}) is shorter than the run ({}): starting now",
            human_s(within_s),
            human_s(duration_s)
        ));
    }
    let Some(end) = covered else {
        return start_now("the forecast has no figure for now: starting now".to_owned());
    };
    let Some(now_g) = now_mean else {
        return start_now(format!(
            "the forecast ends {} from now, before a run started now would end ({}): starting now",
            human_s(end - now),
            human_s(duration_s)
        ));
    };
    let latest = (now + within_s).min(end) - duration_s;
    let mut starts = vec![now, latest];
    for slot in &slots {
        for start in [slot.start_unix_s, slot.end_unix_s - duration_s] {
            if start > now && start < latest {
                starts.push(start);
            }
        }
    }
    starts.sort_by(f64::total_cmp);
    let mut best = (now, now_g);
    for start in starts {
        if let Some(mean) = mean_g_per_kwh(&slots, start, start + duration_s)
            && mean < best.1 - best.1.abs() * MIN_GAIN - f64::EPSILON
        {
            best = (start, mean);
        }
    }
    Best {
        start_unix_s: best.0,
        mean_g_per_kwh: Some(best.1),
        now_g_per_kwh: Some(now_g),
        searched_until_unix_s: Some(end.min(now + within_s)),
        reason: None,
    }
}

/// A start time as `--print` writes it, in the machine's local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartForms {
    /// ISO 8601 with the offset: `2026-12-07T23:30:00+00:00`.
    pub iso: String,
    /// Slurm's `sbatch --begin` form, `YYYY-MM-DDTHH:MM:SS` (local time).
    pub slurm: String,
    /// `at -t`'s form, `CCYYMMDDhhmm.SS` (local time).
    pub at: String,
}

/// `unix_s`, rounded up to the second (never earlier than chosen), in each `--print` form.
pub fn start_forms(unix_s: f64) -> StartForms {
    let whole_s = if unix_s.is_finite() {
        unix_s.ceil() as i64
    } else {
        0
    };
    let local = chrono::DateTime::from_timestamp(whole_s, 0)
        .unwrap_or_default()
        .with_timezone(&chrono::Local);
    StartForms {
        iso: local.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        slurm: local.format("%Y-%m-%dT%H:%M:%S").to_string(),
        at: local.format("%Y%m%d%H%M.%S").to_string(),
    }
}

/// What a wait chose, for the rows of the run that follows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scheduled {
    /// Unix time the wait was for, s.
    pub start_unix_s: f64,
    /// The forecast's mean intensity over the run from that start, g CO2eq/kWh.
    pub scheduled_g_per_kwh: Option<f64>,
    /// The forecast's mean intensity over the run had it started at submission.
    pub submitted_g_per_kwh: Option<f64>,
}

/// A wait not yet taken by a run.
pub struct Pending(ProcessLock<Option<Scheduled>>);

impl Pending {
    /// Nothing pending.
    pub const fn new() -> Self {
        Self(ProcessLock::new(None))
    }

    /// Records a finished wait, replacing an earlier one no run took.
    pub fn put(&'static self, scheduled: Scheduled) {
        *self.0.lock() = Some(scheduled);
    }

    /// The wait the run starting now followed, if any; taken, so a later run does not claim it.
    pub fn take(&'static self) -> Option<Scheduled> {
        self.0.lock().take()
    }
}

/// The last wait of this process whose run has not started yet: the next tracker started in
/// this process writes it in its rows.
pub static PENDING: Pending = Pending::new();

/// `unix_s` as UTC ISO 8601 with seconds, for the `scheduled_start` column.
pub fn iso_utc(unix_s: f64) -> String {
    chrono::DateTime::from_timestamp(unix_s.round() as i64, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
#[allow(
    clippy::float_cmp,
    reason = "the figures compared are exact sums of the scripted periods"
)]
mod tests {
    use super::*;

    const HALF_HOUR_S: f64 = 1800.0;

    /// Half-hour periods from `t0` with these figures.
    fn half_hours(t0: f64, figures: &[f64]) -> Vec<Slot> {
        figures
            .iter()
            .enumerate()
            .map(|(i, &g_per_kwh)| Slot {
                start_unix_s: t0 + i as f64 * HALF_HOUR_S,
                end_unix_s: t0 + (i + 1) as f64 * HALF_HOUR_S,
                g_per_kwh,
            })
            .collect()
    }

    fn search(now: f64, duration_s: f64, within_s: f64) -> Search {
        Search {
            now_unix_s: now,
            duration_s,
            within_s,
        }
    }

    #[test]
    fn the_best_window_is_the_one_found_by_hand() {
        // A 1 h run (two half hours) within 4 h: the pairs' means are 250, 200, 125, 75, 100,
        // 200, 250; the cleanest pair starts at the 4th half hour (index 3), 1.5 h from now.
        let slots = half_hours(
            0.0,
            &[300.0, 200.0, 200.0, 50.0, 100.0, 100.0, 300.0, 200.0],
        );
        let best = best_window(&slots, &search(0.0, 3600.0, 4.0 * 3600.0));
        assert_eq!(best.start_unix_s, 3.0 * HALF_HOUR_S);
        assert_eq!(best.mean_g_per_kwh, Some(75.0));
        assert_eq!(best.now_g_per_kwh, Some(250.0));
        assert_eq!(best.reason, None);
        assert_eq!(best.searched_until_unix_s, Some(4.0 * 3600.0));
    }

    #[test]
    fn a_start_between_boundaries_is_found_when_now_is_mid_period() {
        // Now is 10 min into the first half hour: a 30 min run is cleanest at the 3rd period.
        let slots = half_hours(0.0, &[400.0, 300.0, 100.0, 300.0]);
        let best = best_window(&slots, &search(600.0, HALF_HOUR_S, 7200.0 - 600.0));
        assert_eq!(best.start_unix_s, 2.0 * HALF_HOUR_S);
        assert_eq!(best.mean_g_per_kwh, Some(100.0));
        // Started now: 20 min at 400 and 10 min at 300.
        let now = best.now_g_per_kwh.expect("covered");
        assert!((now - (400.0 * 1200.0 + 300.0 * 600.0) / 1800.0).abs() < 1e-9);
    }

    #[test]
    fn the_deadline_bounds_the_search() {
        // The cleanest period (index 5) ends after the deadline: the best that fits is index 3.
        let slots = half_hours(0.0, &[300.0, 250.0, 250.0, 200.0, 260.0, 10.0]);
        let best = best_window(&slots, &search(0.0, HALF_HOUR_S, 4.0 * HALF_HOUR_S));
        assert_eq!(best.start_unix_s, 3.0 * HALF_HOUR_S);
        assert!(best.start_unix_s + HALF_HOUR_S <= 4.0 * HALF_HOUR_S);
    }

    #[test]
    fn a_deadline_shorter_than_the_run_starts_now_and_says_why() {
        let slots = half_hours(0.0, &[300.0, 10.0, 10.0, 10.0]);
        let best = best_window(&slots, &search(0.0, 3600.0, 1800.0));
        assert_eq!(best.start_unix_s, 0.0);
        let reason = best.reason.expect("a reason");
        assert!(
            reason.contains("within 30m") && reason.contains("1h"),
            "{reason}"
        );
    }

    #[test]
    fn a_flat_forecast_starts_now() {
        let slots = half_hours(0.0, &[180.0; 96]);
        let best = best_window(&slots, &search(0.0, 3.0 * 3600.0, 24.0 * 3600.0));
        assert_eq!(best.start_unix_s, 0.0);
        assert_eq!(best.reason, None);
        assert_eq!(best.mean_g_per_kwh, best.now_g_per_kwh);
    }

    #[test]
    fn a_forecast_ending_early_limits_the_search_or_starts_now() {
        // 2 h of forecast, 12 h allowed: only starts whose run ends by the forecast's end count.
        let slots = half_hours(0.0, &[300.0, 300.0, 100.0, 100.0]);
        let best = best_window(&slots, &search(0.0, 3600.0, 12.0 * 3600.0));
        assert_eq!(best.start_unix_s, 3600.0);
        assert_eq!(best.searched_until_unix_s, Some(7200.0));
        // A 3 h run is longer than what the forecast covers: now, with the reason.
        let best = best_window(&slots, &search(0.0, 3.0 * 3600.0, 12.0 * 3600.0));
        assert_eq!(best.start_unix_s, 0.0);
        assert_eq!(best.now_g_per_kwh, None);
        let reason = best.reason.expect("a reason");
        assert!(reason.contains("forecast ends 2h from now"), "{reason}");
    }

    #[test]
    fn a_gap_in_the_forecast_is_never_averaged_over() {
        let mut slots = half_hours(0.0, &[300.0, 300.0, 5.0, 300.0]);
        slots.remove(1);
        let best = best_window(&slots, &search(0.0, 1800.0, 4.0 * 1800.0));
        assert_eq!(best.start_unix_s, 0.0);
        assert_eq!(best.searched_until_unix_s, Some(1800.0));
        assert_eq!(mean_g_per_kwh(&slots, 0.0, 3600.0), None);
    }

    #[test]
    fn a_forecast_starting_a_little_after_now_covers_now_and_nan_is_dropped() {
        let mut slots = half_hours(60.0, &[100.0, 200.0]);
        slots.push(Slot {
            start_unix_s: f64::NAN,
            end_unix_s: 1.0,
            g_per_kwh: 1.0,
        });
        let best = best_window(&slots, &search(0.0, 1800.0, 3600.0));
        assert_eq!(best.start_unix_s, 0.0);
        assert!(best.now_g_per_kwh.is_some());
        let late = half_hours(4000.0, &[100.0]);
        let best = best_window(&late, &search(0.0, 600.0, 9000.0));
        assert_eq!(
            best.reason.as_deref(),
            Some("the forecast has no figure for now: starting now")
        );
    }

    #[test]
    fn start_forms_follow_slurm_and_at() {
        let forms = start_forms(1_800_000_000.2);
        // Whatever the zone, the three forms name the same local time, rounded up.
        let digits: String = forms.slurm.chars().filter(char::is_ascii_digit).collect();
        assert_eq!(forms.at.replace('.', ""), digits);
        assert!(forms.iso.starts_with(&forms.slurm), "{forms:?}");
        assert_eq!(forms.slurm.len(), "YYYY-MM-DDTHH:MM:SS".len());
        assert!(forms.slurm.ends_with(":01"), "{forms:?}");
        assert_eq!(iso_utc(1_800_000_000.0), "2027-01-15T08:00:00Z");
    }

    #[test]
    fn a_wait_is_taken_by_one_run_only() {
        static PENDING_HERE: Pending = Pending::new();
        let pending = &PENDING_HERE;
        pending.put(Scheduled {
            start_unix_s: 5.0,
            scheduled_g_per_kwh: Some(50.0),
            submitted_g_per_kwh: Some(150.0),
        });
        assert_eq!(pending.take().map(|s| s.start_unix_s), Some(5.0));
        assert_eq!(pending.take(), None);
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_s(5400.0), "1h30m");
        assert_eq!(human_s(7200.0), "2h");
        assert_eq!(human_s(2700.0), "45m");
        assert_eq!(human_s(20.0), "20s");
    }
}
