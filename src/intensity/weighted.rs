//! A run's live, hour-by-hour intensity: the ledger of hour boundaries plus the fetcher, and
//! the weighting of a window's energy by each hour's figure.

use std::fmt::Write as _;

use chrono::Datelike;
use parking_lot::Mutex;

use super::hourly::{Clock, HourPart, Ledger, emissions_kg, split};
use super::live::{HourResult, LiveFetcher, LiveSettings, Secret};
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

    /// The window `start`..`end` weighted by each hour's live figure; hours without one take
    /// `table`'s.
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
        let figure = |hour: i64| {
            hours
                .iter()
                .position(|&h| h == hour)
                .and_then(|i| results[i].as_ref().ok().copied())
                .unwrap_or(table.g_per_kwh)
        };
        let emissions = emissions_kg(&parts, pue, figure);
        let kwh: f64 = parts
            .iter()
            .map(|p| crate::carbon::kwh_at_pue(p.energy_j, pue))
            .sum();
        let live_count = results.iter().filter(|r| r.is_ok()).count();
        let figures: Vec<f64> = hours.iter().map(|&h| figure(h)).collect();
        let g_per_kwh = effective_g_per_kwh(&figures, emissions, kwh, table.g_per_kwh);
        let detail = hours_detail(&parts, &results, &clock, pue, figure);
        let zone = self.fetcher.zone().to_owned();
        let reason = results.iter().find_map(|r| r.as_ref().err()).cloned();
        let warning = reason.as_ref().and_then(|reason| {
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
        let (source, year, method, zone) = match (live_count, reason) {
            (0, reason) => (
                format!(
                    "{} (Electricity Maps unavailable for zone {zone}: {}; table used)",
                    table.source,
                    reason.map(|fault| fault.to_string()).unwrap_or_default()
                ),
                table.year,
                IntensityMethod::Table,
                table.zone.clone(),
            ),
            (live, Some(reason)) => (
                format!(
                    "Electricity Maps zone {zone}, hourly, time-weighted; {} of {} hours from the \
                     table ({reason}): {}",
                    results.len() - live,
                    results.len(),
                    table.source
                ),
                live_year,
                IntensityMethod::LiveHourly,
                zone,
            ),
            (_, None) => (
                format!(
                    "Electricity Maps zone {zone}, hourly, time-weighted over {} hour(s)",
                    results.len()
                ),
                live_year,
                IntensityMethod::LiveHourly,
                zone,
            ),
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

/// One line for the debug log: each hour's energy, figure and its origin.
fn hours_detail(
    parts: &[HourPart],
    results: &[HourResult],
    clock: &Clock,
    pue: f64,
    figure: impl Fn(i64) -> f64,
) -> String {
    let mut detail = String::new();
    for (part, result) in parts.iter().zip(results) {
        let _ = write!(
            detail,
            "hour {} (unix {}): {:e} kWh x {} g/kWh ({}); ",
            part.hour,
            part.hour as f64 * clock.hour_s,
            crate::carbon::kwh_at_pue(part.energy_j, pue),
            figure(part.hour),
            if result.is_ok() { "live" } else { "table" }
        );
    }
    detail.trim_end_matches("; ").to_owned()
}
