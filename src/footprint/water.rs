//! Water of a run, both terms of Li et al. ("Making AI Less Thirsty", arXiv:2304.03271):
//! `water = E_IT x (wue_onsite + PUE x water_per_kwh_of_grid)`. On-site from the user's `wue`,
//! else the cloud region's published WUE (`data/datacenter_wue.csv`); off-site from the grid's
//! country (`data/water_intensity.csv`, WRI 2020), else WRI's average.

use std::sync::OnceLock;

use serde::Deserialize;

const WATER_CSV: &str = include_str!("../../data/water_intensity.csv");
const WUE_CSV: &str = include_str!("../../data/datacenter_wue.csv");

/// The code of WRI's average row, the fallback for a country the table lacks.
pub const WORLD: &str = "WOR";

/// One country's off-site water, L per kWh generated.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GridWaterRow {
    /// ISO 3166-1 alpha-3, or `WOR`.
    pub iso3: String,
    /// English name.
    pub name: String,
    /// L consumed per kWh generated.
    pub l_per_kwh: f64,
    /// `consumption`.
    pub scope: String,
    /// How the figure was read.
    pub basis: String,
    /// Year of the figure.
    pub year: u16,
    /// Where it comes from.
    pub source: String,
}

/// One provider's (or region's) on-site water usage effectiveness.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WueRow {
    /// `aws`, `azure`, `gcp`, `meta`, `industry`.
    pub provider: String,
    /// The provider's region code, `fleet` or a macro-region.
    pub region: String,
    /// Where it is.
    pub location: String,
    /// L per kWh of IT energy.
    pub l_per_kwh: f64,
    /// `withdrawal`, `consumption` or `not stated`.
    pub scope: String,
    /// The period measured.
    pub period: String,
    /// How the figure was read.
    pub basis: String,
    /// Year of the figure.
    pub year: u16,
    /// Where it comes from.
    pub source: String,
}

fn parse<T: for<'de> Deserialize<'de>>(text: &str) -> Vec<T> {
    csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .filter_map(Result::ok)
        .collect()
}

/// Every country row, `WOR` included.
pub fn grid_rows() -> &'static [GridWaterRow] {
    static TABLE: OnceLock<Vec<GridWaterRow>> = OnceLock::new();
    TABLE.get_or_init(|| parse(WATER_CSV))
}

/// Every provider row, newest first within a region.
pub fn wue_rows() -> &'static [WueRow] {
    static TABLE: OnceLock<Vec<WueRow>> = OnceLock::new();
    TABLE.get_or_init(|| parse(WUE_CSV))
}

/// The off-site factor a run's grid gets, L per kWh drawn, with its band.
#[derive(Debug, Clone, PartialEq)]
pub struct Offsite {
    /// The factor.
    pub l_per_kwh: f64,
    /// Its lowest plausible value: the factor, or for a fallback the lowest country's.
    pub low_l_per_kwh: f64,
    /// Its highest: the factor, or for a fallback the highest country's.
    pub high_l_per_kwh: f64,
    /// What the `water_offsite_source` column says.
    pub label: String,
}

/// The off-site factor of `country_iso3`: its row, else WRI's average with the span of the
/// countries as band (a country not in the table may be any of them, or beyond).
pub fn offsite(country_iso3: Option<&str>) -> Offsite {
    let countries = || grid_rows().iter().filter(|row| row.iso3 != WORLD);
    if let Some(row) = country_iso3.and_then(|iso3| countries().find(|row| row.iso3 == iso3)) {
        return Offsite {
            l_per_kwh: row.l_per_kwh,
            low_l_per_kwh: row.l_per_kwh,
            high_l_per_kwh: row.l_per_kwh,
            label: format!("{} {} L/kWh (WRI {})", row.iso3, row.l_per_kwh, row.year),
        };
    }
    let low = countries()
        .map(|row| row.l_per_kwh)
        .fold(f64::INFINITY, f64::min);
    let high = countries().map(|row| row.l_per_kwh).fold(0.0, f64::max);
    let (world, year) = grid_rows()
        .iter()
        .find(|row| row.iso3 == WORLD)
        .map_or((4.81, 2020), |row| (row.l_per_kwh, row.year));
    let why = country_iso3.map_or_else(
        || "no country known".to_owned(),
        |iso3| format!("{iso3} not in the table"),
    );
    Offsite {
        l_per_kwh: world,
        low_l_per_kwh: low.min(world),
        high_l_per_kwh: high.max(world),
        label: format!("{WORLD} {world} L/kWh (WRI {year} average; {why})"),
    }
}

/// The on-site WUE a run gets, L per kWh of IT energy.
#[derive(Debug, Clone, PartialEq)]
pub struct Onsite {
    /// The WUE.
    pub l_per_kwh: f64,
    /// Whether it counts water withdrawn (consumption is then anywhere from 0 to it).
    pub withdrawal: bool,
    /// What the `water_onsite_source` column says.
    pub label: String,
}

/// The on-site WUE: the user's `wue` wins; else the cloud region's newest published figure,
/// else the provider's newest fleet figure; `None` when neither is known.
pub fn onsite(
    user_wue: Option<f64>,
    provider: Option<&str>,
    region: Option<&str>,
) -> Option<Onsite> {
    if let Some(wue) = user_wue {
        return Some(Onsite {
            l_per_kwh: wue,
            withdrawal: false,
            label: format!("wue setting {wue} L/kWh"),
        });
    }
    let provider = provider?.trim().to_lowercase();
    let newest = |region: &str| {
        wue_rows()
            .iter()
            .filter(|row| row.provider == provider && row.region == region)
            .max_by_key(|row| row.year)
    };
    let row = region
        .map(str::trim)
        .and_then(&newest)
        .or_else(|| newest("fleet"))?;
    Some(Onsite {
        l_per_kwh: row.l_per_kwh,
        withdrawal: row.scope == "withdrawal",
        label: format!(
            "{}:{} {} L/kWh ({}, {}, {})",
            row.provider, row.region, row.l_per_kwh, row.scope, row.period, row.basis
        ),
    })
}

/// A run's water, L, each term with its band.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Water {
    /// On-site: IT energy x WUE; `None` when no WUE is known.
    pub onsite: Option<(f64, f64, Option<f64>)>,
    /// Off-site: energy drawn (PUE included) x the grid's factor.
    pub offsite: (f64, f64, Option<f64>),
}

/// The water of `energy_kwh` drawn (PUE included; its band `energy_low_kwh` to
/// `energy_high_kwh`) at `pue`. A withdrawal WUE bounds consumption from above only, so its
/// low end is 0.
pub fn water(
    energy: (f64, f64, Option<f64>),
    pue: f64,
    onsite: Option<&Onsite>,
    offsite: &Offsite,
) -> Water {
    let (energy_kwh, low_kwh, high_kwh) = energy;
    let it = |kwh: f64| if pue > 0.0 { kwh / pue } else { kwh };
    Water {
        onsite: onsite.map(|wue| {
            let low_factor = if wue.withdrawal { 0.0 } else { wue.l_per_kwh };
            (
                it(energy_kwh) * wue.l_per_kwh,
                it(low_kwh) * low_factor,
                high_kwh.map(|kwh| it(kwh) * wue.l_per_kwh),
            )
        }),
        offsite: (
            energy_kwh * offsite.l_per_kwh,
            low_kwh * offsite.low_l_per_kwh,
            high_kwh.map(|kwh| kwh * offsite.high_l_per_kwh),
        ),
    }
}

#[cfg(test)]
#[allow(
    clippy::float_cmp,
    reason = "figures parsed from the tables or copied, compared exactly"
)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn every_row_parses_with_a_source_and_a_year() {
        let lines = |text: &str| csv::Reader::from_reader(text.as_bytes()).records().count();
        assert_eq!(grid_rows().len(), lines(WATER_CSV));
        assert_eq!(wue_rows().len(), lines(WUE_CSV));
        for (source, year) in grid_rows()
            .iter()
            .map(|row| (&row.source, row.year))
            .chain(wue_rows().iter().map(|row| (&row.source, row.year)))
        {
            assert!(!source.trim().is_empty());
            assert!((1990..=2030).contains(&year));
        }
    }

    #[test]
    fn water_in_a_country_without_a_user_wue() {
        // 10 kWh drawn at PUE 1.25 in France (3.6737 L/kWh), no cloud, no wue: off-site
        // 36.737 L; on-site unknown.
        let france = offsite(Some("FRA"));
        assert_eq!(france.l_per_kwh, 3.6737);
        assert_eq!(onsite(None, None, None), None);
        let found = water((10.0, 9.0, Some(11.0)), 1.25, None, &france);
        assert!(close(found.offsite.0, 36.737));
        assert!(close(found.offsite.1, 9.0 * 3.6737));
        assert_eq!(found.onsite, None);
    }

    #[test]
    fn water_with_a_user_wue() {
        // The same run with wue 1.8: on-site 10 / 1.25 x 1.8 = 14.4 L (IT energy x WUE).
        let user = onsite(Some(1.8), Some("aws"), Some("us-east-1")).expect("the user's");
        assert_eq!(user.l_per_kwh, 1.8);
        let found = water(
            (10.0, 10.0, Some(10.0)),
            1.25,
            Some(&user),
            &offsite(Some("FRA")),
        );
        let (on, low, high) = found.onsite.expect("on-site");
        assert!(close(on, 14.4) && close(low, 14.4) && close(high.unwrap_or(0.0), 14.4));
    }

    #[test]
    fn water_on_a_cloud_region() {
        // AWS us-east-1, 2025: 0.06 L/kWh withdrawn; in the USA, 3.1321 L/kWh off-site.
        let wue = onsite(None, Some("aws"), Some("us-east-1")).expect("a published region");
        assert_eq!((wue.l_per_kwh, wue.withdrawal), (0.06, true));
        let found = water(
            (2.0, 2.0, Some(2.0)),
            1.0,
            Some(&wue),
            &offsite(Some("USA")),
        );
        let (on, low, _) = found.onsite.expect("on-site");
        assert!(close(on, 0.12) && low == 0.0, "{found:?}");
        assert!(close(found.offsite.0, 6.2642));
        // A region without its own figure gets the provider's newest fleet one.
        let paris = onsite(None, Some("aws"), Some("eu-west-3")).expect("fleet");
        assert_eq!(paris.l_per_kwh, 0.12);
        assert!(paris.label.contains("aws:fleet"), "{}", paris.label);
        assert_eq!(onsite(None, Some("ovh"), Some("gra")), None);
    }

    #[test]
    fn a_country_not_in_the_table_gets_the_average_with_the_countries_span() {
        let elsewhere = offsite(Some("KEN"));
        assert_eq!(elsewhere.l_per_kwh, 4.81);
        assert_eq!(elsewhere.low_l_per_kwh, 1.1185);
        assert_eq!(elsewhere.high_l_per_kwh, 18.6033);
        assert!(
            elsewhere.label.contains("KEN not in the table"),
            "{}",
            elsewhere.label
        );
    }
}
