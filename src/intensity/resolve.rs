//! A tracker's grid: the settings resolved to one table figure (cloud > region > country >
//! time zone > world), and whether the live source applies.

use std::path::Path;

use super::live::{LiveSettings, Secret};
use super::{
    Basis, Intensity, IntensityMethod, LocationQuery, electricitymaps_zone, from_country, locate,
    timezone, world_intensity,
};
use crate::error::Result;

/// The settings the grid depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct IntensityConfig {
    /// Country setting as given (resolved by the lookup), with the setting's name.
    pub country: Option<(&'static str, String)>,
    /// Region setting.
    pub region: Option<String>,
    /// Cloud provider setting.
    pub cloud_provider: Option<String>,
    /// Cloud region setting.
    pub cloud_region: Option<String>,
    /// A fixed grid intensity, g CO2eq/kWh.
    pub force_carbon_intensity_g_per_kwh: Option<f64>,
    /// Electricity Maps token, URL and zone; hour length (shortened only by tests).
    pub live: LiveSettings,
    /// The `TZ` environment variable, for locating a run that names no location.
    pub tz: Option<String>,
}

/// The intensity a tracker starts from, and how its location was chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The table (or forced) figure; also the fallback of every live hour.
    pub intensity: Intensity,
    /// `cloud`, `region`, `country`, `timezone:<zone>` or `none`, for the row.
    pub location_source: String,
    /// Electricity Maps zone and token, when live data is on.
    pub live: Option<(String, Secret)>,
}

/// Resolves `config`'s location; `root` is `/` outside tests (for `/etc/localtime`).
pub fn resolve(config: &IntensityConfig, root: &Path) -> Result<Resolved> {
    let query = LocationQuery {
        country: config.country.as_ref().map(|(_, country)| country.as_str()),
        region: config.region.as_deref(),
        cloud_provider: config.cloud_provider.as_deref(),
        cloud_region: config.cloud_region.as_deref(),
        country_setting: config
            .country
            .as_ref()
            .map_or("country_iso_code", |(setting, _)| setting),
    };
    let located = locate(&query)?;
    let location_source = |basis: Basis| match basis {
        Basis::Cloud => "cloud",
        Basis::Region => "region",
        Basis::Country => "country",
        Basis::World => "none",
    };
    if let Some(g_per_kwh) = config.force_carbon_intensity_g_per_kwh {
        let mut intensity = located.clone().unwrap_or_else(world_intensity);
        let basis = located.as_ref().map_or(Basis::World, |l| l.basis);
        if located.is_none() {
            intensity.zone = String::new();
        }
        intensity.g_per_kwh = g_per_kwh;
        "force_carbon_intensity_g_co2e_kwh".clone_into(&mut intensity.source);
        intensity.year = None;
        intensity.method = IntensityMethod::Forced;
        return Ok(Resolved {
            intensity,
            location_source: location_source(basis).to_owned(),
            live: None,
        });
    }
    let (intensity, location_source) = match located {
        Some(intensity) => {
            let source = location_source(intensity.basis).to_owned();
            (intensity, source)
        }
        None => from_time_zone(config.tz.as_deref(), root),
    };
    let live = live_zone(config, &intensity);
    Ok(Resolved {
        intensity,
        location_source,
        live,
    })
}

fn from_time_zone(tz: Option<&str>, root: &Path) -> (Intensity, String) {
    let zone = timezone::system_zone(tz, root);
    if let Some(zone) = &zone
        && let Some(country) = timezone::country_of_zone(&zone.name)
    {
        let mut intensity = from_country(country);
        intensity.source = format!(
            "{} (country inferred from the time zone {} in {})",
            intensity.source, zone.name, zone.origin
        );
        crate::runtime::once::info_once(&format!(
            "no location set: using {} ({}), the country of the time zone {} ({}); set \
             country_iso_code, region or cloud_provider/cloud_region to choose another grid",
            country.name, country.iso3, zone.name, zone.origin
        ));
        return (intensity, format!("timezone:{}", zone.name));
    }
    let mut world = world_intensity();
    let why = zone.map_or_else(
        || "no time zone found".to_owned(),
        |zone| {
            format!(
                "the time zone {} ({}) names no single country",
                zone.name, zone.origin
            )
        },
    );
    crate::runtime::warn_once(&format!(
        "no location set and {why}: emissions use the world average of {} g CO2eq/kWh ({}, \
         {}); set country_iso_code (e.g. \"FRA\") or CARBONMETER_COUNTRY_ISO_CODE for your grid",
        world.g_per_kwh,
        world.source,
        world.year.map_or_else(String::new, |y| y.to_string())
    ));
    world.source = format!("world average, no location set ({})", world.source);
    (world, "none".to_owned())
}

fn live_zone(config: &IntensityConfig, intensity: &Intensity) -> Option<(String, Secret)> {
    let token = config.live.token.clone()?;
    let zone = config
        .live
        .zone
        .clone()
        .or_else(|| electricitymaps_zone(intensity));
    if let Some(zone) = zone {
        return Some((zone, token));
    }
    crate::runtime::warn_once(&format!(
        "an Electricity Maps token is set but {} has no Electricity Maps zone known to \
         carbonmeter: the table's yearly figure is used; set electricitymaps_zone \
         (e.g. \"US-CAL-CISO\") to fetch hourly data",
        intensity.zone
    ));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // The settings as the config layer hands them over, from keyword arguments given as text.
    fn config(pairs: &[(&str, &str)], vars: &[(&str, &str)]) -> IntensityConfig {
        let get = |key: &str| {
            pairs
                .iter()
                .find(|(name, _)| *name == key)
                .map(|(_, value)| (*value).to_owned())
        };
        IntensityConfig {
            country: get("country_iso_code").map(|country| ("country_iso_code", country)),
            region: get("region"),
            cloud_provider: get("cloud_provider"),
            cloud_region: get("cloud_region"),
            force_carbon_intensity_g_per_kwh: get("force_carbon_intensity_g_co2e_kwh")
                .map(|g| g.parse().expect("a number")),
            live: LiveSettings {
                token: get("electricitymaps_api_token")
                    .as_deref()
                    .and_then(Secret::new),
                zone: get("electricitymaps_zone"),
                ..LiveSettings::default()
            },
            tz: vars
                .iter()
                .find(|(name, _)| *name == "TZ")
                .map(|(_, zone)| (*zone).to_owned()),
        }
    }

    fn empty_root() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    #[test]
    fn time_zone_names_the_country_when_nothing_is_set() {
        let root = empty_root();
        let resolved = resolve(&config(&[], &[("TZ", "Europe/Paris")]), root.path()).expect("ok");
        assert_eq!(resolved.intensity.country_iso_code.as_deref(), Some("FRA"));
        assert_eq!(resolved.location_source, "timezone:Europe/Paris");
        assert!(resolved.intensity.source.contains("time zone Europe/Paris"));
    }

    #[test]
    fn utc_or_no_zone_gives_the_world_average() {
        let root = empty_root();
        for vars in [&[("TZ", "UTC")][..], &[("TZ", "CET")][..], &[][..]] {
            let resolved = resolve(&config(&[], vars), root.path()).expect("ok");
            assert_eq!(resolved.intensity.basis, Basis::World, "{vars:?}");
            assert_eq!(resolved.location_source, "none");
            assert!(resolved.intensity.source.starts_with("world average"));
        }
    }

    #[test]
    fn a_setting_beats_the_time_zone() {
        let root = empty_root();
        let resolved = resolve(
            &config(&[("region", "Québec")], &[("TZ", "Europe/Paris")]),
            root.path(),
        )
        .expect("ok");
        assert_eq!(resolved.intensity.zone, "CA-QC");
        assert_eq!(resolved.location_source, "region");
    }

    #[test]
    fn live_needs_a_token_and_a_zone() {
        let root = empty_root();
        let without = resolve(&config(&[("country_iso_code", "FRA")], &[]), root.path());
        assert_eq!(without.expect("ok").live, None);
        let with = resolve(
            &config(
                &[
                    ("country_iso_code", "FRA"),
                    ("electricitymaps_api_token", "tok"),
                ],
                &[],
            ),
            root.path(),
        )
        .expect("ok");
        assert_eq!(with.live.map(|(zone, _)| zone).as_deref(), Some("FR"));
        let state = resolve(
            &config(
                &[("region", "US-CA"), ("electricitymaps_api_token", "tok")],
                &[],
            ),
            root.path(),
        )
        .expect("ok");
        assert_eq!(state.live, None);
        let chosen = resolve(
            &config(
                &[
                    ("region", "US-CA"),
                    ("electricitymaps_api_token", "tok"),
                    ("electricitymaps_zone", "US-CAL-CISO"),
                ],
                &[],
            ),
            root.path(),
        )
        .expect("ok");
        assert_eq!(
            chosen.live.map(|(zone, _)| zone).as_deref(),
            Some("US-CAL-CISO")
        );
    }

    #[test]
    fn forced_intensity_keeps_the_location_and_goes_offline() {
        let root = empty_root();
        let resolved = resolve(
            &config(
                &[
                    ("cloud_provider", "gcp"),
                    ("cloud_region", "europe-west1"),
                    ("force_carbon_intensity_g_co2e_kwh", "100"),
                    ("electricitymaps_api_token", "tok"),
                ],
                &[],
            ),
            root.path(),
        )
        .expect("ok");
        assert_eq!(resolved.intensity.method, IntensityMethod::Forced);
        assert_eq!(resolved.intensity.country_iso_code.as_deref(), Some("BEL"));
        assert_eq!(resolved.live, None);
    }
}
