//! Carbon intensity of the electricity used: which grid, and how many g CO2eq per kWh.

pub mod tables;

use crate::error::{Error, Result};

/// How the intensity was obtained, as written in `intensity_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntensityMethod {
    /// A yearly average from an embedded table.
    Table,
    /// A figure the user fixed (`force_carbon_intensity_g_co2e_kwh`).
    Forced,
}

impl IntensityMethod {
    /// The name written in the CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Forced => "forced",
        }
    }
}

/// The grid intensity a run's energy is multiplied by.
#[derive(Debug, Clone, PartialEq)]
pub struct Intensity {
    /// g CO2eq per kWh.
    pub g_per_kwh: f64,
    /// Where the figure comes from.
    pub source: String,
    /// Year the figure is for, when known.
    pub year: Option<u16>,
    /// The zone it applies to (`FRA`, `World`).
    pub zone: String,
    /// Table or forced.
    pub method: IntensityMethod,
    /// Country name for the row, when a country is known.
    pub country_name: Option<String>,
    /// ISO 3166-1 alpha-3 for the row, when a country is known.
    pub country_iso_code: Option<String>,
}

/// The country whose alpha-3, alpha-2 or English name is `query` (case-insensitive).
pub fn find_country(query: &str) -> Option<&'static tables::CountryRow> {
    let query = query.trim();
    tables::countries().iter().find(|row| {
        row.iso3.eq_ignore_ascii_case(query)
            || (!row.iso2.is_empty() && row.iso2.eq_ignore_ascii_case(query))
            || row.name.eq_ignore_ascii_case(query)
    })
}

/// Intensity for a country given by the setting `setting` (for the error message).
pub fn country_intensity(setting: &str, query: &str) -> Result<Intensity> {
    let row = find_country(query).ok_or_else(|| {
        let names = tables::countries()
            .iter()
            .flat_map(|row| [row.iso3.as_str(), row.name.as_str()]);
        Error::invalid(
            setting,
            format!("{query:?}"),
            format!(
                "expected an ISO 3166-1 alpha-3 code such as \"FRA\", an alpha-2 code or an \
                 English country name; did you mean {}?",
                closest(query, names, 3).join(", ")
            ),
        )
    })?;
    Ok(Intensity {
        g_per_kwh: row.g_per_kwh,
        source: row.source.clone(),
        year: Some(row.year),
        zone: row.iso3.clone(),
        method: IntensityMethod::Table,
        country_name: Some(row.name.clone()),
        country_iso_code: Some(row.iso3.clone()),
    })
}

/// The world average, for runs whose location is not known.
pub fn world_intensity() -> Intensity {
    let row = tables::world();
    Intensity {
        g_per_kwh: row.g_per_kwh,
        source: row.source.clone(),
        year: Some(row.year),
        zone: row.zone.clone(),
        method: IntensityMethod::Table,
        country_name: None,
        country_iso_code: None,
    }
}

/// The `count` names nearest to `query` by edit distance, quoted.
pub fn closest<'a>(query: &str, names: impl Iterator<Item = &'a str>, count: usize) -> Vec<String> {
    let query = query.to_lowercase();
    let mut scored: Vec<(usize, &str)> = names
        .map(|name| (edit_distance(&query, &name.to_lowercase()), name))
        .collect();
    scored.sort_unstable();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(count)
        .map(|(_, name)| format!("{name:?}"))
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_resolve_by_alpha3_alpha2_and_name() {
        for query in ["FRA", "fra", "FR", "France", "france"] {
            let intensity = country_intensity("country_iso_code", query).expect(query);
            assert_eq!(intensity.country_iso_code.as_deref(), Some("FRA"));
        }
    }

    #[test]
    fn unknown_country_names_the_value_and_suggests() {
        let err = country_intensity("country_iso_code", "FRX").expect_err("unknown");
        let message = err.to_string();
        assert!(message.contains("country_iso_code=\"FRX\""), "{message}");
        assert!(message.contains("did you mean"), "{message}");
        assert!(message.contains("\"FRA\""), "{message}");
    }

    #[test]
    fn world_average_has_provenance() {
        let world = world_intensity();
        assert!(world.g_per_kwh > 100.0 && world.g_per_kwh < 1000.0);
        assert!(!world.source.is_empty());
        assert!(world.year.is_some());
    }
}
