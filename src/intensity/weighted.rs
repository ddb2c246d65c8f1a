//! A run's live, hour-by-hour intensity: the ledger of hour boundaries plus the fetcher, and
//! the weighting of a window's energy by each hour's figure.

use std::fmt::Write as _;

use chrono::Datelike;
use parking_lot::Mutex;

use super::hourly::{Clock, HourPart, Ledger, emissions_kg, split};
use super::live::{FetchFault, HourResult, LiveFetcher, LiveSettings, Secret};
use super::{Intensity, IntensityMethod};
use crate::meter::Snapshot;
use crate::runtime::Causes;

/// The one cause of this run's warning: hours without live data, whatever kept it away.
const FELL_BACK: &str = "hours fell back to the table";

/// Live intensity for one run.
pub struct HourlyRun {
    ledger: Mutex<Ledger>,
    fetcher: LiveFetcher,
    warned: Mutex<Causes>,
}

/// A window's emissions weighted hour by hour, and what to write about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Weighted {
    /// kg CO2eq (PUE applied).
    pub emissions_kg: f64,
    /// Effective g CO2eq per kWh: emissions over energy.
    pub g_per_kwh: f64,
    /// Where the figures come from, with any fallback said.
    pub source: String,
    /// Year of the live data (or the table's, when every hour fell back).
    pub year: Option<u16>,
    /// `live_hourly`, or `table` when no hour had live data.
    pub method: IntensityMethod,
    /// Electricity Maps zone, or the table's zone when every hour fell back.
    pub zone: String,
    /// The first time hours fell back in this run: the warning to log.
    pub warning: Option<String>,
    /// One line per hour: energy, figure and its origin, for a debug log line.
    pub detail: String,
}

impl HourlyRun {
    /// Starts fetching `zone` for a run whose meter read `start` at unix time `wall_s`.
    pub fn start(
        settings: &LiveSettings,
        token: Secret,
        zone: &str,
        start: &Snapshot,
        wall_s: f64,
    ) -> std::io::Result<Self> {
        let clock = Clock {
            wall_at_zero_s: wall_s - start.t_s,
            hour_s: settings.hour_s,
        };
        let run = Self {
            ledger: Mutex::new(Ledger::new(clock)),
            fetcher: LiveFetcher::spawn(settings, token, zone)?,
            warned: Mutex::new(Causes::new()),
        };
        run.observe(start);
        Ok(run)
    }

    /// Takes a read of the meter (call in read order, under the meter's lock); asks in the
    /// background for every hour it entered.
    pub fn observe(&self, snapshot: &Snapshot) {
        let hours = self.ledger.lock().observe(snapshot);
        if !hours.is_empty() {
            self.fetcher.request(&hours);
        }
    }

    /// The window `start`..`end` weighted by each hour's live figure; never waits for the
    /// network. An hour whose answer is still in flight takes a provisional figure at once
    /// (the previous hour's live one, else `table`'s), and the row says so; hours that failed
    /// take `table`'s.
    pub fn weigh(&self, start: &Snapshot, end: &Snapshot, pue: f64, table: &Intensity) -> Weighted {
        let (parts, clock) = {
            let ledger = self.ledger.lock();
            (
                split(start, end, ledger.marks(), &ledger.clock()),
                ledger.clock(),
            )
        };
        let hours: Vec<i64> = parts.iter().map(|part| part.hour).collect();
        let results = self.fetcher.results(&hours);
        let figures: Vec<Figure> = hours
            .iter()
            .zip(&results)
            .map(|(&hour, result)| match result {
                Ok(g_per_kwh) => Figure::Live(*g_per_kwh),
                Err(FetchFault::Pending) => match self.fetcher.previous(hour) {
                    Some(g_per_kwh) => Figure::Provisional {
                        g_per_kwh,
                        live: true,
                    },
                    None => Figure::Provisional {
                        g_per_kwh: table.g_per_kwh,
                        live: false,
                    },
                },
                Err(_) => Figure::Table(table.g_per_kwh),
            })
            .collect();
        let figure = |hour: i64| {
            hours
                .iter()
                .position(|&h| h == hour)
                .map_or(table.g_per_kwh, |i| figures[i].g_per_kwh())
        };
        let emissions = emissions_kg(&parts, pue, figure);
        let kwh: f64 = parts
            .iter()
            .map(|p| crate::carbon::kwh_at_pue(p.energy_j, pue))
            .sum();
        let values: Vec<f64> = figures.iter().map(|f| f.g_per_kwh()).collect();
        let g_per_kwh = effective_g_per_kwh(&values, emissions, kwh, table.g_per_kwh);
        let detail = hours_detail(&parts, &figures, &clock, pue);
        let zone = self.fetcher.zone().to_owned();
        // A pending hour is no failure yet: its answer may still come, so no warning for it.
        let failure = results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .find(|fault| **fault != FetchFault::Pending)
            .cloned();
        let warning = failure.as_ref().and_then(|reason| {
            self.warned.lock().first(FELL_BACK).then(|| {
                format!(
                    "Electricity Maps data unavailable for zone {zone} ({reason}): the table's \
                     yearly figure ({} g CO2eq/kWh, {}) is used for the hours without it",
                    table.g_per_kwh, table.zone
                )
            })
        });
        let live_year = chrono::DateTime::from_timestamp(clock.wall_s(end.t_s) as i64, 0)
            .and_then(|at| u16::try_from(at.year()).ok());
        let (source, method) = describe(&figures, &results, &zone, table);
        let (year, zone) = match method {
            IntensityMethod::LiveHourly => (live_year, zone),
            _ => (table.year, table.zone.clone()),
        };
        Weighted {
            emissions_kg: emissions,
            g_per_kwh,
            source,
            year,
            method,
            zone,
            warning,
            detail,
        }
    }

    /// Waits (bounded by the request timeout) for the answers in flight, so the rows written
    /// at `stop()` (the run row, windows still open) use them instead of a provisional figure.
    pub fn settle(&self) {
        self.fetcher.settle();
    }

    /// Stops the fetcher (a request in flight ends on its own timeout).
    pub fn stop(&self) {
        self.fetcher.stop();
    }
}

/// g CO2eq per kWh of a window whose hours had `figures`: one figure throughout is that figure,
/// not a quotient that rounds it; otherwise emissions over energy, or, with no energy, the
/// hours' mean.
fn effective_g_per_kwh(figures: &[f64], emissions_kg: f64, kwh: f64, table_g_per_kwh: f64) -> f64 {
    if figures
        .windows(2)
        .all(|pair| pair[0].to_bits() == pair[1].to_bits())
    {
        figures.first().copied().unwrap_or(table_g_per_kwh)
    } else {
        crate::carbon::g_per_kwh_of(emissions_kg, kwh)
            .unwrap_or_else(|| figures.iter().sum::<f64>() / figures.len() as f64)
    }
}

/// The figure an hour was weighed with, and where it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Figure {
    /// Electricity Maps' figure for the hour.
    Live(f64),
    /// The hour's answer is still in flight: the previous hour's live figure (`live`), or the
    /// table's.
    Provisional {
        /// g CO2eq per kWh.
        g_per_kwh: f64,
        /// Whether it is an earlier hour's live figure.
        live: bool,
    },
    /// The hour's request failed: the table's figure.
    Table(f64),
}

impl Figure {
    fn g_per_kwh(self) -> f64 {
        match self {
            Self::Live(g) | Self::Provisional { g_per_kwh: g, .. } | Self::Table(g) => g,
        }
    }

    fn origin(self) -> &'static str {
        match self {
            Self::Live(_) => "live",
            Self::Provisional { .. } => "provisional",
            Self::Table(_) => "table",
        }
    }
}

/// The row's `intensity_source` and `intensity_method` for hours weighed with `figures`.
/// `live_hourly` when any hour used a live figure (its own, or the previous hour's standing
/// in); `table` otherwise. Failed and provisional hours are counted in the text.
fn describe(
    figures: &[Figure],
    results: &[HourResult],
    zone: &str,
    table: &Intensity,
) -> (String, IntensityMethod) {
    let total = figures.len();
    let provisional = figures
        .iter()
        .filter(|f| matches!(f, Figure::Provisional { .. }))
        .count();
    let failure = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .find(|fault| **fault != FetchFault::Pending);
    let any_live = figures
        .iter()
        .any(|f| matches!(f, Figure::Live(_) | Figure::Provisional { live: true, .. }));
    let pending_note = if provisional == 0 {
        String::new()
    } else {
        format!(
            "; provisional: {provisional} of {total} hour(s) still awaited Electricity Maps' \
             answer (the previous hour's figure, else the table's, stood in; rows written later \
             and the run row use the answer)"
        )
    };
    if !any_live {
        let reason = failure.map_or_else(|| FetchFault::Pending.to_string(), ToString::to_string);
        let source = format!(
            "{} (Electricity Maps unavailable for zone {zone}: {reason}; table used{pending_note})",
            table.source
        );
        return (source, IntensityMethod::Table);
    }
    let from_table = figures
        .iter()
        .filter(|f| matches!(f, Figure::Table(_)))
        .count();
    let mut source = format!("Electricity Maps zone {zone}, hourly, time-weighted");
    match failure {
        Some(reason) if from_table > 0 => {
            let _ = write!(
                source,
                "; {from_table} of {total} hours from the table ({reason}): {}",
                table.source
            );
        }
        _ => {
            let _ = write!(source, " over {total} hour(s)");
        }
    }
    source.push_str(&pending_note);
    (source, IntensityMethod::LiveHourly)
}

/// One line for the debug log: each hour's energy, figure and its origin.
fn hours_detail(parts: &[HourPart], figures: &[Figure], clock: &Clock, pue: f64) -> String {
    let mut detail = String::new();
    for (part, figure) in parts.iter().zip(figures) {
        let _ = write!(
            detail,
            "hour {} (unix {}): {:e} kWh x {} g/kWh ({}); ",
            part.hour,
            part.hour as f64 * clock.hour_s,
            crate::carbon::kwh_at_pue(part.energy_j, pue),
            figure.g_per_kwh(),
            figure.origin()
        );
    }
    detail.trim_end_matches("; ").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intensity::Basis;

    fn table() -> Intensity {
        Intensity {
            g_per_kwh: 56.0,
            source: "OWID".to_owned(),
            year: Some(2022),
            zone: "FRA".to_owned(),
            method: IntensityMethod::Table,
            basis: Basis::Country,
            country_name: None,
            country_iso_code: None,
            region: None,
            cloud_provider: None,
            cloud_region: None,
        }
    }

    #[test]
    fn a_provisional_hour_is_said_and_is_no_failure() {
        let pending = FetchFault::Pending;
        // The previous hour's live figure stands in: still live, and the row says provisional.
        let (source, method) = describe(
            &[
                Figure::Live(100.0),
                Figure::Provisional {
                    g_per_kwh: 100.0,
                    live: true,
                },
            ],
            &[Ok(100.0), Err(pending.clone())],
            "FR",
            &table(),
        );
        assert_eq!(method, IntensityMethod::LiveHourly);
        assert!(
            source.contains("over 2 hour(s); provisional: 1 of 2"),
            "{source}"
        );
        // Nothing known yet: the table's figure, said to be provisional, not a failure.
        let (source, method) = describe(
            &[Figure::Provisional {
                g_per_kwh: 56.0,
                live: false,
            }],
            &[Err(pending)],
            "FR",
            &table(),
        );
        assert_eq!(method, IntensityMethod::Table);
        assert!(source.starts_with("OWID (Electricity Maps unavailable for zone FR: no answer yet; table used; provisional"), "{source}");
        // Settled hours keep today's wording.
        let (source, method) = describe(
            &[Figure::Live(100.0), Figure::Table(56.0)],
            &[Ok(100.0), Err(FetchFault::TimedOut)],
            "FR",
            &table(),
        );
        assert_eq!(method, IntensityMethod::LiveHourly);
        assert_eq!(
            source,
            "Electricity Maps zone FR, hourly, time-weighted; 1 of 2 hours from the table \
             (timed out): OWID"
        );
    }
}
