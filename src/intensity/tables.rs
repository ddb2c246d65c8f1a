//! The embedded tables of `data/`, parsed once on first use.

use std::sync::OnceLock;

use serde::Deserialize;

use crate::tables::{CLOUD_CSV, COUNTRY_CSV, EGRID_CSV, REGION_CSV};

const WORLD_CSV: &str = include_str!("../../data/world_intensity.csv");

// No core path uses lifecycle factors; the table is embedded for its tests only, which keep
// data/source_factors.csv parseable and sourced.
#[cfg(test)]
const SOURCE_FACTOR_CSV: &str = include_str!("../../data/source_factors.csv");
const TIMEZONE_CSV: &str = include_str!("../../data/timezone_countries.csv");

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

/// One sub-national grid: a US state, Canadian province, Chinese province, Nordic bidding zone
/// or US EPA eGRID subregion.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RegionRow {
    /// ISO 3166-1 alpha-3 of the country the region is in.
    pub country_iso3: String,
    /// ISO 3166-2 code (`US-CA`), bidding zone (`SE3`) or eGRID subregion (`SPNO`).
    pub region: String,
    /// English name.
    pub name: String,
    /// g CO2eq per kWh.
    pub g_per_kwh: f64,
    /// Year the figure is for.
    pub year: u16,
    /// Where the figure comes from.
    pub source: String,
}

/// One US EPA eGRID subregion (`data/egrid_subregions.csv`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct EgridRow {
    subregion: String,
    name: String,
    g_per_kwh: f64,
    year: u16,
    source: String,
}

/// One cloud provider region.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CloudRow {
    /// `gcp`, `aws`, `azure`, ...
    pub provider: String,
    /// The provider's region name (`europe-west1`); empty for a provider as a whole.
    pub region: String,
    /// ISO 3166-1 alpha-3 of the country the region is in.
    pub country_iso3: String,
    /// City and country.
    pub location: String,
    /// g CO2eq per kWh.
    pub g_per_kwh: f64,
    /// Year the figure is for.
    pub year: u16,
    /// Where the figure comes from.
    pub source: String,
}

/// Lifecycle emission factor of one kind of generation.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SourceFactorRow {
    /// `coal`, `nuclear`, `world_average`, ...
    pub source_kind: String,
    /// g CO2eq per kWh.
    pub g_per_kwh: f64,
    /// Year the figure is for.
    pub year: u16,
    /// Where the figure comes from.
    pub source: String,
}

/// The one country an IANA time zone is in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TimezoneRow {
    /// IANA zone name (`Europe/Paris`).
    pub zone: String,
    /// ISO 3166-1 alpha-2 of its country.
    pub iso2: String,
    /// Year of the tz database release.
    pub year: u16,
    /// The tz database release and file.
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

/// All sub-national regions: the states, provinces and bidding zones, then the eGRID subregions
/// (a grid of their own that crosses state lines, so they sit beside the states, never in place
/// of them).
pub fn regions() -> &'static [RegionRow] {
    static TABLE: OnceLock<Vec<RegionRow>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut rows: Vec<RegionRow> = parse(REGION_CSV);
        rows.extend(
            parse::<EgridRow>(EGRID_CSV)
                .into_iter()
                .map(|row| RegionRow {
                    country_iso3: "USA".to_owned(),
                    region: row.subregion,
                    name: row.name,
                    g_per_kwh: row.g_per_kwh,
                    year: row.year,
                    source: row.source,
                }),
        );
        rows
    })
}

/// All cloud regions.
pub fn cloud_regions() -> &'static [CloudRow] {
    static TABLE: OnceLock<Vec<CloudRow>> = OnceLock::new();
    TABLE.get_or_init(|| parse(CLOUD_CSV))
}

/// Lifecycle factors per generation source.
#[cfg(test)]
pub fn source_factors() -> &'static [SourceFactorRow] {
    static TABLE: OnceLock<Vec<SourceFactorRow>> = OnceLock::new();
    TABLE.get_or_init(|| parse(SOURCE_FACTOR_CSV))
}

/// IANA time zones and their country.
pub fn timezones() -> &'static [TimezoneRow] {
    static TABLE: OnceLock<Vec<TimezoneRow>> = OnceLock::new();
    TABLE.get_or_init(|| parse(TIMEZONE_CSV))
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

    fn data_lines(text: &str) -> usize {
        csv::Reader::from_reader(text.as_bytes()).records().count()
    }

    #[test]
    fn every_row_parses() {
        assert_eq!(countries().len(), data_lines(COUNTRY_CSV));
        assert!(countries().len() > 150);
        assert_eq!(parse::<WorldRow>(WORLD_CSV).len(), 1);
        assert_eq!(
            regions().len(),
            data_lines(REGION_CSV) + data_lines(EGRID_CSV)
        );
        assert_eq!(data_lines(EGRID_CSV), 27);
        assert!(regions().len() > 100);
        assert_eq!(cloud_regions().len(), data_lines(CLOUD_CSV));
        assert!(cloud_regions().len() > 100);
        assert_eq!(source_factors().len(), data_lines(SOURCE_FACTOR_CSV));
        assert_eq!(timezones().len(), data_lines(TIMEZONE_CSV));
        assert!(timezones().len() > 400);
    }

    fn check(table: &str, key: &str, source: &str, year: u16) {
        assert!(!source.trim().is_empty(), "{table} {key} has no source");
        assert!((1990..=2030).contains(&year), "{table} {key} year {year}");
    }

    #[test]
    fn every_row_of_every_table_has_a_source_and_a_year() {
        for row in countries() {
            check("country", &row.iso3, &row.source, row.year);
        }
        let world = world();
        check("world", &world.zone, &world.source, world.year);
        for row in regions() {
            check("region", &row.region, &row.source, row.year);
        }
        for row in cloud_regions() {
            let key = format!("{}/{}", row.provider, row.region);
            check("cloud", &key, &row.source, row.year);
        }
        for row in source_factors() {
            check("source_factors", &row.source_kind, &row.source, row.year);
        }
        for row in timezones() {
            check("timezone", &row.zone, &row.source, row.year);
        }
    }

    #[test]
    fn every_region_and_cloud_country_is_in_the_country_table() {
        let known = |iso3: &str| countries().iter().any(|c| c.iso3 == iso3);
        for row in regions() {
            assert!(known(&row.country_iso3), "{}", row.region);
        }
        for row in cloud_regions() {
            assert!(known(&row.country_iso3), "{}/{}", row.provider, row.region);
        }
    }
}
