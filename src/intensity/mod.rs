//! Carbon intensity of the electricity used: which grid, and how many g CO2eq per kWh.

pub mod forecast;
pub mod forecast_sources;
pub mod hourly;
pub mod live;
pub mod resolve;
pub mod tables;
pub mod timezone;
pub mod weighted;

pub use resolve::IntensityConfig;

use crate::error::{Error, Result};
pub use crate::suggest::{closest, fold};

/// How the intensity was obtained, as written in `intensity_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntensityMethod {
    /// A yearly average from an embedded table.
    Table,
    /// A figure the user fixed (`force_carbon_intensity_g_co2e_kwh`).
    Forced,
    /// Electricity Maps' figure for each hour, energy-weighted over the window.
    LiveHourly,
}

impl IntensityMethod {
    /// The name written in the CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Forced => "forced",
            Self::LiveHourly => "live_hourly",
        }
    }
}

/// Which table row the figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Nothing known: the world average.
    World,
    /// A country's average.
    Country,
    /// A sub-national grid (state, province, bidding zone).
    Region,
    /// A cloud provider region.
    Cloud,
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
    /// The zone it applies to (`FRA`, `US-CA`, `gcp:europe-west1`, `World`).
    pub zone: String,
    /// Table, forced or live.
    pub method: IntensityMethod,
    /// Which table row the figure comes from.
    pub basis: Basis,
    /// Country name for the row, when a country is known.
    pub country_name: Option<String>,
    /// ISO 3166-1 alpha-3 for the row, when a country is known.
    pub country_iso_code: Option<String>,
    /// The region's code (`US-CA`, `SE3`), when a region was given.
    pub region: Option<String>,
    /// The cloud provider, lower case, when one was given.
    pub cloud_provider: Option<String>,
    /// The cloud region as the table spells it, when one was given.
    pub cloud_region: Option<String>,
}

/// A location to look up; each field is a user's setting, unvalidated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocationQuery<'a> {
    /// Country: ISO 3166-1 alpha-3, alpha-2 or English name.
    pub country: Option<&'a str>,
    /// Region: ISO 3166-2 code, name, or Nordic bidding zone.
    pub region: Option<&'a str>,
    /// Cloud provider (`gcp`, `aws`, `azure`, ...).
    pub cloud_provider: Option<&'a str>,
    /// Cloud provider's region (`europe-west1`).
    pub cloud_region: Option<&'a str>,
    /// Name of the country setting, for messages (`country_iso_code` or `country`).
    pub country_setting: &'a str,
}

const COUNTRY_SETTING: &str = "country_iso_code";

/// The country whose alpha-3, alpha-2 or English name is `query` (case-insensitive).
pub fn find_country(query: &str) -> Option<&'static tables::CountryRow> {
    let query = query.trim();
    let folded = fold(query);
    tables::countries().iter().find(|row| {
        row.iso3.eq_ignore_ascii_case(query)
            || (!row.iso2.is_empty() && row.iso2.eq_ignore_ascii_case(query))
            || fold(&row.name) == folded
    })
}

fn country_by_iso3(iso3: &str) -> Option<&'static tables::CountryRow> {
    tables::countries().iter().find(|row| row.iso3 == iso3)
}

fn resolve_country(setting: &str, query: &str) -> Result<&'static tables::CountryRow> {
    find_country(query).ok_or_else(|| {
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
    })
}

/// Intensity for a country given by the setting `setting` (for the error message). Only the
/// tests call it alone; trackers and lookups go through `locate`.
#[cfg(test)]
pub fn country_intensity(setting: &str, query: &str) -> Result<Intensity> {
    Ok(from_country(resolve_country(setting, query)?))
}

fn from_country(row: &tables::CountryRow) -> Intensity {
    Intensity {
        g_per_kwh: row.g_per_kwh,
        source: row.source.clone(),
        year: Some(row.year),
        zone: row.iso3.clone(),
        method: IntensityMethod::Table,
        basis: Basis::Country,
        country_name: Some(row.name.clone()),
        country_iso_code: Some(row.iso3.clone()),
        region: None,
        cloud_provider: None,
        cloud_region: None,
    }
}

/// The region whose code or name is `query`; a bare subdivision code (`CA`) is read in
/// `country` when given (`US-CA` for the USA). Accents and case do not matter.
pub fn find_region(
    query: &str,
    country: Option<&tables::CountryRow>,
) -> Option<&'static tables::RegionRow> {
    let query = query.trim();
    let code = query.to_ascii_uppercase().replace('_', "-");
    // Electricity Maps spells the Nordic bidding zones `SE-SE3`, `NO-NO1`.
    let nordic = ["SE-", "NO-"]
        .iter()
        .find_map(|prefix| {
            code.strip_prefix(prefix)
                .filter(|rest| rest.starts_with(&prefix[..2]))
        })
        .map(str::to_owned);
    let scoped = country.map(|c| format!("{}-{code}", c.iso2));
    let name = fold(&query.replace(['_', '-'], " "));
    let rows = tables::regions();
    rows.iter()
        .find(|row| row.region == code || Some(&row.region) == nordic.as_ref())
        .or_else(|| rows.iter().find(|row| fold(&row.name) == name))
        .or_else(|| rows.iter().find(|row| Some(&row.region) == scoped.as_ref()))
}

fn resolve_region(
    query: &str,
    country: Option<&tables::CountryRow>,
) -> Result<&'static tables::RegionRow> {
    let row = find_region(query, country).ok_or_else(|| {
        let names = tables::regions()
            .iter()
            .flat_map(|row| [row.region.as_str(), row.name.as_str()]);
        Error::invalid(
            "region",
            format!("{query:?}"),
            format!(
                "expected an ISO 3166-2 code such as \"US-CA\" or \"CA-QC\", a region name such \
                 as \"california\", a Nordic bidding zone such as \"SE3\" or a US eGRID \
                 subregion such as \"SPNO\"; did you mean {}?",
                closest(query, names, 3).join(", ")
            ),
        )
    })?;
    if let Some(country) = country
        && country.iso3 != row.country_iso3
    {
        return Err(Error::invalid(
            "region",
            format!("{query:?}"),
            format!(
                "{} ({}) is in {}, not in the country set ({}); drop one of the two",
                row.region, row.name, row.country_iso3, country.iso3
            ),
        ));
    }
    Ok(row)
}

fn from_region(row: &tables::RegionRow) -> Intensity {
    let country = country_by_iso3(&row.country_iso3);
    Intensity {
        g_per_kwh: row.g_per_kwh,
        source: row.source.clone(),
        year: Some(row.year),
        zone: row.region.clone(),
        method: IntensityMethod::Table,
        basis: Basis::Region,
        country_name: country.map(|c| c.name.clone()),
        country_iso_code: Some(row.country_iso3.clone()),
        region: Some(row.region.clone()),
        cloud_provider: None,
        cloud_region: None,
    }
}

/// The cloud region `region` of `provider` (case-insensitive). A provider with a single,
/// unnamed row (`scaleway`) needs no region.
pub fn find_cloud(provider: &str, region: Option<&str>) -> Option<&'static tables::CloudRow> {
    let provider = provider.trim();
    let region = region.map_or("", str::trim);
    tables::cloud_regions().iter().find(|row| {
        row.provider.eq_ignore_ascii_case(provider) && row.region.eq_ignore_ascii_case(region)
    })
}

fn resolve_cloud(
    provider: Option<&str>,
    region: Option<&str>,
) -> Result<&'static tables::CloudRow> {
    let rows = tables::cloud_regions();
    let Some(provider) = provider else {
        let region = region.unwrap_or_default();
        let matches: Vec<_> = rows
            .iter()
            .filter(|row| row.region.eq_ignore_ascii_case(region.trim()))
            .collect();
        if let [only] = matches.as_slice() {
            return Ok(only);
        }
        let providers = providers();
        return Err(Error::invalid(
            "cloud_provider",
            "None",
            format!(
                "cloud_region={region:?} needs its cloud_provider, one of {}",
                providers.join(", ")
            ),
        ));
    };
    let providers = providers();
    if !providers
        .iter()
        .any(|p| p.eq_ignore_ascii_case(provider.trim()))
    {
        return Err(Error::invalid(
            "cloud_provider",
            format!("{provider:?}"),
            format!(
                "expected one of {}; did you mean {}?",
                providers.join(", "),
                closest(provider, providers.iter().copied(), 3).join(", ")
            ),
        ));
    }
    find_cloud(provider, region).ok_or_else(|| {
        let of_provider: Vec<&str> = rows
            .iter()
            .filter(|row| row.provider.eq_ignore_ascii_case(provider.trim()))
            .map(|row| row.region.as_str())
            .collect();
        let value = region.map_or_else(|| "None".to_owned(), |r| format!("{r:?}"));
        Error::invalid(
            "cloud_region",
            value,
            format!(
                "expected a {} region such as {:?}; did you mean {}?",
                provider.trim().to_lowercase(),
                of_provider.first().copied().unwrap_or_default(),
                closest(region.unwrap_or_default(), of_provider.into_iter(), 3).join(", ")
            ),
        )
    })
}

fn providers() -> Vec<&'static str> {
    let mut providers: Vec<&str> = tables::cloud_regions()
        .iter()
        .map(|row| row.provider.as_str())
        .collect();
    providers.dedup();
    providers
}

fn from_cloud(row: &tables::CloudRow) -> Intensity {
    let country = country_by_iso3(&row.country_iso3);
    Intensity {
        g_per_kwh: row.g_per_kwh,
        source: row.source.clone(),
        year: Some(row.year),
        zone: if row.region.is_empty() {
            row.provider.clone()
        } else {
            format!("{}:{}", row.provider, row.region)
        },
        method: IntensityMethod::Table,
        basis: Basis::Cloud,
        country_name: country.map(|c| c.name.clone()),
        country_iso_code: Some(row.country_iso3.clone()),
        region: None,
        cloud_provider: Some(row.provider.clone()),
        cloud_region: (!row.region.is_empty()).then(|| row.region.clone()),
    }
}

/// Resolves a location through the tables: cloud region over region over country. Every value
/// given is checked, even one that loses, so a typo never passes unseen. `None` when nothing was
/// given.
pub fn locate(query: &LocationQuery<'_>) -> Result<Option<Intensity>> {
    let setting = if query.country_setting.is_empty() {
        COUNTRY_SETTING
    } else {
        query.country_setting
    };
    let country = query
        .country
        .map(|country| resolve_country(setting, country))
        .transpose()?;
    let region = query
        .region
        .map(|region| resolve_region(region, country))
        .transpose()?;
    let cloud = if query.cloud_provider.is_some() || query.cloud_region.is_some() {
        Some(resolve_cloud(query.cloud_provider, query.cloud_region)?)
    } else {
        None
    };
    let mut found = match (cloud, region, country) {
        (Some(cloud), _, _) => from_cloud(cloud),
        (None, Some(region), _) => from_region(region),
        (None, None, Some(country)) => from_country(country),
        (None, None, None) => return Ok(None),
    };
    found.region = region.map(|r| r.region.clone());
    found.cloud_provider = cloud.map(|c| c.provider.clone());
    found.cloud_region = cloud.and_then(|c| (!c.region.is_empty()).then(|| c.region.clone()));
    Ok(Some(found))
}

/// [`locate`], or the world average when nothing was given.
pub fn lookup(query: &LocationQuery<'_>) -> Result<Intensity> {
    Ok(locate(query)?.unwrap_or_else(world_intensity))
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
        basis: Basis::World,
        country_name: None,
        country_iso_code: None,
        region: None,
        cloud_provider: None,
        cloud_region: None,
    }
}

/// The Electricity Maps zone of a table location: the region's where Electricity Maps has one
/// (Canadian provinces, Nordic bidding zones), else the country's alpha-2. US states and Chinese
/// provinces have no zone of their own there (US zones are balancing authorities), so they
/// give `None`, as does the world average.
pub fn electricitymaps_zone(intensity: &Intensity) -> Option<String> {
    match intensity.basis {
        Basis::World => None,
        Basis::Region => {
            let code = intensity.region.as_deref().unwrap_or(&intensity.zone);
            if code.starts_with("CA-") || code == "FI" {
                Some(code.to_owned())
            } else if code.len() == 3 && (code.starts_with("SE") || code.starts_with("NO")) {
                Some(format!("{}-{code}", &code[..2]))
            } else {
                None
            }
        }
        Basis::Country | Basis::Cloud => intensity
            .country_iso_code
            .as_deref()
            .and_then(country_by_iso3)
            .map(|row| row.iso2.clone())
            .filter(|iso2| !iso2.is_empty()),
    }
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

    fn query<'a>(
        country: Option<&'a str>,
        region: Option<&'a str>,
        cloud_provider: Option<&'a str>,
        cloud_region: Option<&'a str>,
    ) -> LocationQuery<'a> {
        LocationQuery {
            country,
            region,
            cloud_provider,
            cloud_region,
            country_setting: "country_iso_code",
        }
    }

    fn zone_of(q: &LocationQuery<'_>) -> String {
        lookup(q).expect("found").zone
    }

    #[test]
    fn regions_by_code_name_accents_and_bidding_zone() {
        for (given, zone) in [
            ("US-CA", "US-CA"),
            ("us-ca", "US-CA"),
            ("california", "US-CA"),
            ("CALIFORNIA", "US-CA"),
            ("CA-QC", "CA-QC"),
            ("Québec", "CA-QC"),
            ("quebec", "CA-QC"),
            ("new_york", "US-NY"),
            ("SE3", "SE3"),
            ("SE-SE3", "SE3"),
            ("no1", "NO1"),
            ("FI", "FI"),
            ("CN-GD", "CN-GD"),
        ] {
            assert_eq!(
                zone_of(&query(None, Some(given), None, None)),
                zone,
                "{given}"
            );
        }
        // A bare subdivision code is read within the country given.
        assert_eq!(
            zone_of(&query(Some("USA"), Some("CA"), None, None)),
            "US-CA"
        );
        assert_eq!(
            zone_of(&query(Some("CAN"), Some("QC"), None, None)),
            "CA-QC"
        );
    }

    #[test]
    fn egrid_subregions_by_acronym_or_name_and_states_keep_their_figure() {
        let spno = lookup(&query(None, Some("SPNO"), None, None)).expect("found");
        assert_eq!(spno.zone, "SPNO");
        assert_eq!(spno.basis, Basis::Region);
        assert_eq!(spno.country_iso_code.as_deref(), Some("USA"));
        assert_eq!(spno.year, Some(2023));
        assert!(spno.source.contains("eGRID2023rev2"), "{}", spno.source);
        assert!((spno.g_per_kwh - 393.6).abs() < 1e-9);
        assert_eq!(zone_of(&query(None, Some("spp north"), None, None)), "SPNO");
        assert_eq!(
            zone_of(&query(Some("USA"), Some("camx"), None, None)),
            "CAMX"
        );
        // A state is the state's own eGRID figure, not a subregion's.
        assert_eq!(
            zone_of(&query(None, Some("california"), None, None)),
            "US-CA"
        );
        assert!(locate(&query(Some("FRA"), Some("SPNO"), None, None)).is_err());
    }

    #[test]
    fn region_figures_and_countries_come_from_the_region_table() {
        let found = lookup(&query(None, Some("US-CA"), None, None)).expect("found");
        assert_eq!(found.basis, Basis::Region);
        assert_eq!(found.country_iso_code.as_deref(), Some("USA"));
        assert_eq!(found.country_name.as_deref(), Some("United States"));
        let row = tables::regions()
            .iter()
            .find(|r| r.region == "US-CA")
            .expect("row");
        assert!((found.g_per_kwh - row.g_per_kwh).abs() < f64::EPSILON);
        assert_eq!(found.year, Some(row.year));
    }

    #[test]
    fn cloud_regions_by_provider_and_region_any_case() {
        let found = lookup(&query(None, None, Some("GCP"), Some("Europe-West1"))).expect("found");
        assert_eq!(found.zone, "gcp:europe-west1");
        assert_eq!(found.country_iso_code.as_deref(), Some("BEL"));
        assert_eq!(found.cloud_provider.as_deref(), Some("gcp"));
        assert_eq!(found.cloud_region.as_deref(), Some("europe-west1"));
        assert_eq!(
            zone_of(&query(None, None, Some("aws"), Some("us-east-1"))),
            "aws:us-east-1"
        );
        assert_eq!(
            zone_of(&query(None, None, Some("scaleway"), None)),
            "scaleway"
        );
        // A region name used by one provider only needs no provider.
        assert_eq!(
            zone_of(&query(None, None, None, Some("europe-west1"))),
            "gcp:europe-west1"
        );
    }

    #[test]
    fn cloud_beats_region_beats_country() {
        let all = query(
            Some("FRA"),
            Some("US-CA"),
            Some("gcp"),
            Some("europe-west1"),
        );
        // A region outside the country given is refused, so precedence is checked on a
        // consistent set and on region + cloud.
        assert!(lookup(&all).is_err());
        let cloud_and_region = query(
            Some("USA"),
            Some("US-CA"),
            Some("gcp"),
            Some("europe-west1"),
        );
        let found = lookup(&cloud_and_region).expect("found");
        assert_eq!(found.zone, "gcp:europe-west1");
        assert_eq!(found.region.as_deref(), Some("US-CA"));
        assert_eq!(
            zone_of(&query(Some("USA"), Some("US-CA"), None, None)),
            "US-CA"
        );
        assert_eq!(zone_of(&query(Some("usa"), None, None, None)), "USA");
        assert_eq!(zone_of(&query(None, None, None, None)), "World");
    }

    #[test]
    fn unknown_values_name_the_value_and_three_suggestions() {
        let cases = [
            (
                query(None, Some("californa"), None, None),
                "region=\"californa\"",
                "\"California\"",
            ),
            (
                query(None, Some("Quebecc"), None, None),
                "region=\"Quebecc\"",
                "\"Quebec\"",
            ),
            (
                query(None, None, Some("gpc"), Some("europe-west1")),
                "cloud_provider=\"gpc\"",
                "\"gcp\"",
            ),
            (
                query(None, None, Some("gcp"), Some("europe-west99")),
                "cloud_region=\"europe-west99\"",
                "\"europe-west9\"",
            ),
            (
                query(Some("Frnace"), None, None, None),
                "country_iso_code=\"Frnace\"",
                "\"France\"",
            ),
        ];
        for (q, named, suggested) in cases {
            let message = lookup(&q).expect_err(named).to_string();
            assert!(message.contains(named), "{message}");
            assert!(message.contains("did you mean"), "{message}");
            assert!(message.contains(suggested), "{message}");
            let suggestions = message.rsplit("did you mean ").next().expect("list");
            assert_eq!(suggestions.matches(", ").count(), 2, "{message}");
        }
    }

    #[test]
    fn electricitymaps_zones_follow_the_location() {
        let zone = |q: LocationQuery<'_>| electricitymaps_zone(&lookup(&q).expect("found"));
        assert_eq!(
            zone(query(Some("FRA"), None, None, None)).as_deref(),
            Some("FR")
        );
        assert_eq!(
            zone(query(None, Some("SE3"), None, None)).as_deref(),
            Some("SE-SE3")
        );
        assert_eq!(
            zone(query(None, Some("quebec"), None, None)).as_deref(),
            Some("CA-QC")
        );
        assert_eq!(
            zone(query(None, Some("FI"), None, None)).as_deref(),
            Some("FI")
        );
        assert_eq!(
            zone(query(None, None, Some("gcp"), Some("europe-west1"))).as_deref(),
            Some("BE")
        );
        assert_eq!(zone(query(None, Some("US-CA"), None, None)), None);
        assert_eq!(zone(query(None, None, None, None)), None);
    }

    #[test]
    fn world_average_has_provenance() {
        let world = world_intensity();
        assert!(world.g_per_kwh > 100.0 && world.g_per_kwh < 1000.0);
        assert!(!world.source.is_empty());
        assert!(world.year.is_some());
    }
}
