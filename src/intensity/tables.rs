//! The embedded tables of `data/`, parsed once on first use.

use std::sync::OnceLock;

use serde::Deserialize;

const COUNTRY_CSV: &str = include_str!("../../data/country_intensity.csv");
const WORLD_CSV: &str = include_str!("../../data/world_intensity.csv");

/// One country's yearly average grid intensity.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CountryRow {
    /// ISO 3166-1 alpha-3.
    pub iso3: String,
    /// ISO 3166-1 alpha-2, empty where none exists.
    pub iso2: String,
    /// English short name.
    pub name: String,
    /// g CO2eq per kWh.
    pub g_per_kwh: f64,
    /// Year the figure is for.
    pub year: u16,
    /// Where the figure comes from.
    pub source: String,
}

/// The world average.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WorldRow {
    /// Name of the zone (`World`).
    pub zone: String,
    /// g CO2eq per kWh.
    pub g_per_kwh: f64,
    /// Year the figure is for.
    pub year: u16,
    /// Where the figure comes from.
    pub source: String,
}

fn parse<T: for<'de> Deserialize<'de>>(text: &str) -> Vec<T> {
    // The tables are ours and tested; a malformed row would fail `every_row_parses`.
    csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .filter_map(Result::ok)
        .collect()
}

/// All countries.
pub fn countries() -> &'static [CountryRow] {
    static TABLE: OnceLock<Vec<CountryRow>> = OnceLock::new();
    TABLE.get_or_init(|| parse(COUNTRY_CSV))
}

/// The world average row.
pub fn world() -> &'static WorldRow {
    static ROW: OnceLock<WorldRow> = OnceLock::new();
    ROW.get_or_init(|| {
        parse::<WorldRow>(WORLD_CSV)
            .into_iter()
            .next()
            .unwrap_or_else(|| WorldRow {
                zone: "World".to_owned(),
                g_per_kwh: 475.0,
                year: 2019,
                source: "IEA Global Energy & CO2 Status Report 2019".to_owned(),
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_parses() {
        let lines = COUNTRY_CSV.lines().filter(|l| !l.trim().is_empty()).count();
        assert_eq!(countries().len(), lines - 1);
        assert!(countries().len() > 150);
        assert_eq!(parse::<WorldRow>(WORLD_CSV).len(), 1);
    }

    #[test]
    fn every_row_has_a_source_and_a_year() {
        for row in countries() {
            assert!(!row.source.trim().is_empty(), "{} has no source", row.iso3);
            assert!(
                (1990..=2030).contains(&row.year),
                "{} year {}",
                row.iso3,
                row.year
            );
        }
    }
}
