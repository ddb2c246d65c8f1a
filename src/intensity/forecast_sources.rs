//! Where a forecast comes from, chosen by the location: NESO's Carbon Intensity API for Great
//! Britain (half-hourly, 48 h, national or by postcode; no key), Electricity Maps' forecast
//! endpoint with a token (hourly), and a clear "no forecast for this zone" otherwise. Requests
//! go through the live source's client ([`super::live::get_text`]): one timeout for the whole
//! request, same-host redirects only, the token in a header, redacted from every message, and
//! figures outside 0-2000 g/kWh refused. Forecasts are cached per source, zone and half hour.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::forecast::{Best, Search, Slot, StartForms, best_window, start_forms};
use super::live::{self, FetchFault, LiveSettings, MAX_G_PER_KWH, Secret};
use super::{Intensity, IntensityConfig, resolve};
use crate::error::{Error, Result};
use crate::runtime::ProcessLock;

/// Where the forecast is fetched from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// NESO's Carbon Intensity API: national, or the region of a postcode's outward code.
    Neso {
        /// API root.
        base_url: String,
        /// Outward code (`OX1`), upper case; `None` for the national forecast.
        postcode: Option<String>,
    },
    /// Electricity Maps' `carbon-intensity/forecast` for a zone, with a token.
    ElectricityMaps {
        /// API root, `.../v3`.
        base_url: String,
        /// The zone (`DE`).
        zone: String,
        /// The token, sent in the `auth-token` header.
        token: Secret,
    },
    /// No source forecasts this location.
    Nothing {
        /// Why, in one line.
        why: String,
    },
}

impl Source {
    /// What the plan's `source` says: the API and the area.
    pub fn describe(&self) -> String {
        match self {
            Self::Neso {
                postcode: Some(postcode),
                ..
            } => format!("NESO Carbon Intensity API, postcode {postcode}"),
            Self::Neso { postcode: None, .. } => {
                "NESO Carbon Intensity API, Great Britain".to_owned()
            }
            Self::ElectricityMaps { zone, .. } => format!("Electricity Maps forecast, zone {zone}"),
            Self::Nothing { .. } => "none".to_owned(),
        }
    }
}

/// A postcode's outward code (`OX1` of `ox1 3qd`), the part NESO's API takes; an error names
/// the value and the form expected.
pub fn outward_code(postcode: &str) -> Result<String> {
    let outward = postcode
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    let letters = outward
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .count();
    let rest = &outward[letters..];
    let shape_ok = (1..=2).contains(&letters)
        && rest.starts_with(|c: char| c.is_ascii_digit())
        && (1..=2).contains(&rest.len())
        && rest.chars().all(|c| c.is_ascii_alphanumeric());
    if shape_ok {
        Ok(outward)
    } else {
        Err(Error::invalid(
            "postcode",
            format!("{postcode:?}"),
            "expected a postcode in Great Britain or its outward code, such as \"OX1 3QD\" or \
             \"OX1\"",
        ))
    }
}

/// The source for a grid: NESO for Great Britain (or wherever a postcode is given), Electricity
/// Maps where a token and a zone are known, nothing otherwise. Pure.
pub fn choose(
    intensity: &Intensity,
    live: Option<(String, Secret)>,
    settings: &LiveSettings,
    postcode: Option<String>,
) -> Source {
    let in_great_britain = intensity.country_iso_code.as_deref() == Some("GBR")
        && !intensity.zone.to_ascii_uppercase().contains("NIR");
    if postcode.is_some() || in_great_britain {
        return Source::Neso {
            base_url: settings.neso_base_url.trim_end_matches('/').to_owned(),
            postcode,
        };
    }
    if let Some((zone, token)) = live {
        return Source::ElectricityMaps {
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            zone,
            token,
        };
    }
    Source::Nothing {
        why: format!(
            "no forecast for this zone ({}): NESO forecasts Great Britain without a key; \
             elsewhere set electricitymaps_api_token for Electricity Maps' forecast",
            intensity.zone
        ),
    }
}

/// Length of NESO's periods, and of the cache's key, s.
const HALF_HOUR_S: f64 = 1800.0;

type CacheKey = (String, String, i64);

/// Forecasts fetched in this process, by (API root, area, half hour asked in).
static CACHE: ProcessLock<BTreeMap<CacheKey, Vec<Slot>>> = ProcessLock::new(BTreeMap::new());

/// Unix time of an API's timestamp: RFC 3339, or NESO's `2018-01-20T12:00Z`.
fn unix_s_of(text: &str) -> Option<f64> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(at.timestamp() as f64 + f64::from(at.timestamp_subsec_millis()) / 1000.0);
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%MZ")
        .ok()
        .map(|at| at.and_utc().timestamp() as f64)
}

fn plausible(g_per_kwh: f64) -> Option<f64> {
    (0.0..=MAX_G_PER_KWH)
        .contains(&g_per_kwh)
        .then_some(g_per_kwh)
}

/// Reads NESO's answer: `{"data": [{"from", "to", "intensity": {"forecast"}}]}` nationally,
/// `{"data": {"postcode", "data": [...]}}` (or that object in a one-element list) by postcode.
/// Periods without a plausible forecast are skipped, which leaves a gap the search never
/// averages over.
pub fn parse_neso(body: &str) -> std::result::Result<Vec<Slot>, FetchFault> {
    let json: Value =
        serde_json::from_str(body).map_err(|err| FetchFault::Unreadable(err.to_string()))?;
    let data = json
        .get("data")
        .ok_or_else(|| FetchFault::Unreadable("no \"data\" in the answer".to_owned()))?;
    let periods = match data {
        Value::Object(region) => region.get("data"),
        Value::Array(items) if items.first().is_some_and(|item| item.get("data").is_some()) => {
            items.first().and_then(|region| region.get("data"))
        }
        Value::Array(_) => Some(data),
        _ => None,
    }
    .and_then(Value::as_array)
    .ok_or_else(|| FetchFault::Unreadable("no list of periods in \"data\"".to_owned()))?;
    let slots: Vec<Slot> = periods
        .iter()
        .filter_map(|period| {
            Some(Slot {
                start_unix_s: unix_s_of(period.get("from")?.as_str()?)?,
                end_unix_s: unix_s_of(period.get("to")?.as_str()?)?,
                g_per_kwh: plausible(period.get("intensity")?.get("forecast")?.as_f64()?)?,
            })
        })
        .collect();
    if slots.is_empty() {
        return Err(FetchFault::BadEntry(
            "the forecast has no period with a usable figure".to_owned(),
        ));
    }
    Ok(slots)
}

/// Reads Electricity Maps' answer, `{"zone", "forecast": [{"carbonIntensity", "datetime"}]}`:
/// each figure holds until the next entry's time (the last for as long as the one before).
pub fn parse_electricitymaps(body: &str) -> std::result::Result<Vec<Slot>, FetchFault> {
    let json: Value =
        serde_json::from_str(body).map_err(|err| FetchFault::Unreadable(err.to_string()))?;
    let entries = json
        .get("forecast")
        .and_then(Value::as_array)
        .ok_or_else(|| FetchFault::Unreadable("no \"forecast\" list in the answer".to_owned()))?;
    let mut points: Vec<(f64, Option<f64>)> = entries
        .iter()
        .filter_map(|entry| {
            let at = unix_s_of(entry.get("datetime")?.as_str()?)?;
            let g = entry
                .get("carbonIntensity")
                .and_then(Value::as_f64)
                .and_then(plausible);
            Some((at, g))
        })
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut slots = Vec::new();
    for (i, &(start, g)) in points.iter().enumerate() {
        let step = match (
            points.get(i + 1),
            i.checked_sub(1).and_then(|j| points.get(j)),
        ) {
            (Some(next), _) => next.0 - start,
            (None, Some(previous)) => start - previous.0,
            (None, None) => 3600.0,
        };
        if let Some(g_per_kwh) = g {
            slots.push(Slot {
                start_unix_s: start,
                end_unix_s: start + step,
                g_per_kwh,
            });
        }
    }
    if slots.is_empty() {
        return Err(FetchFault::BadEntry(
            "the forecast has no hour with a usable figure".to_owned(),
        ));
    }
    Ok(slots)
}

/// The forecast of `source` as known at `now_unix_s`: from the cache when fetched in the same
/// half hour, else fetched within `timeout_s`. A fault carries no token.
pub fn fetch(
    source: &Source,
    now_unix_s: f64,
    timeout_s: f64,
) -> std::result::Result<Vec<Slot>, FetchFault> {
    let half_hour = (now_unix_s / HALF_HOUR_S).floor() as i64;
    let (base_url, area) = match source {
        Source::Neso { base_url, postcode } => (base_url, postcode.clone().unwrap_or_default()),
        Source::ElectricityMaps { base_url, zone, .. } => (base_url, zone.clone()),
        Source::Nothing { .. } => return Ok(Vec::new()),
    };
    let key = (base_url.clone(), area, half_hour);
    if let Some(slots) = CACHE.lock().get(&key) {
        return Ok(slots.clone());
    }
    let agent = live::agent(Duration::from_secs_f64(timeout_s.max(0.001)));
    let slots = match source {
        Source::Neso { base_url, postcode } => {
            // NESO answers with the periods after `from`: a minute into the half hour asks for
            // the one in progress too (as CATS does).
            let from = chrono::DateTime::from_timestamp(half_hour * 1800 + 60, 0)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%MZ");
            let url = match postcode {
                Some(outward) => {
                    format!("{base_url}/regional/intensity/{from}/fw48h/postcode/{outward}")
                }
                None => format!("{base_url}/intensity/{from}/fw48h"),
            };
            parse_neso(&live::get_text(&agent, &url, &[], None)?)?
        }
        Source::ElectricityMaps {
            base_url,
            zone,
            token,
        } => {
            let url = format!("{base_url}/carbon-intensity/forecast");
            live::get_text(&agent, &url, &[("zone", zone)], Some(token))
                .and_then(|body| parse_electricitymaps(&body))
                .map_err(|fault| fault.redacted(token))?
        }
        Source::Nothing { .. } => Vec::new(),
    };
    CACHE.lock().insert(key, slots.clone());
    Ok(slots)
}

/// What `carbonmeter wait` asks.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Expected duration of the run, s.
    pub duration_s: f64,
    /// The run must finish within this many seconds.
    pub within_s: f64,
    /// A postcode in Great Britain, for NESO's regional forecast.
    pub postcode: Option<String>,
    /// Unix time now, s.
    pub now_unix_s: f64,
}

/// The answer: when to start, on which figures, from which source.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The start chosen and its figures.
    pub best: Best,
    /// The source asked (`none` when no source covers the grid).
    pub source: String,
    /// The grid's zone as the tables name it.
    pub zone: String,
    /// The start in each `--print` form.
    pub forms: StartForms,
    /// Unix time the plan was made, s.
    pub now_unix_s: f64,
}

fn check_seconds(name: &str, value_s: f64) -> Result<()> {
    if value_s.is_finite() && value_s > 0.0 && value_s <= 366.0 * 86_400.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            name,
            value_s,
            "expected seconds > 0 and at most a year",
        ))
    }
}

/// Plans a carbon-aware start for `config`'s grid. Bad input is an error; a source that cannot
/// answer (no forecast for the zone, HTTP 401, a timeout, garbage) is not: the plan starts now
/// and its `reason` says why, so a job is never held up by a forecast it cannot get.
pub fn plan(config: &IntensityConfig, request: &Request) -> Result<Plan> {
    check_seconds("duration", request.duration_s)?;
    check_seconds("within", request.within_s)?;
    let postcode = request.postcode.as_deref().map(outward_code).transpose()?;
    let resolved = resolve::resolve(config, Path::new("/"))?;
    let source = choose(&resolved.intensity, resolved.live, &config.live, postcode);
    let search = Search {
        now_unix_s: request.now_unix_s,
        duration_s: request.duration_s,
        within_s: request.within_s,
    };
    let fetched = match &source {
        Source::Nothing { why } => Err(format!("{why}: starting now")),
        _ => fetch(&source, request.now_unix_s, config.live.timeout_s).map_err(|fault| {
            format!(
                "no forecast: {} answered {fault}: starting now",
                source.describe()
            )
        }),
    };
    let best = match fetched {
        Ok(slots) => best_window(&slots, &search),
        Err(reason) => Best {
            start_unix_s: request.now_unix_s,
            mean_g_per_kwh: None,
            now_g_per_kwh: None,
            searched_until_unix_s: None,
            reason: Some(reason),
        },
    };
    Ok(Plan {
        forms: start_forms(best.start_unix_s),
        best,
        source: source.describe(),
        zone: resolved.intensity.zone,
        now_unix_s: request.now_unix_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intensity::{LocationQuery, lookup};

    fn table(country: &str) -> Intensity {
        lookup(&LocationQuery {
            country: Some(country),
            country_setting: "country_iso_code",
            ..LocationQuery::default()
        })
        .expect("a country")
    }

    fn token() -> Secret {
        Secret::new("s3cr3t-token").expect("token")
    }

    #[test]
    fn the_source_follows_the_location() {
        type Case = (
            &'static str,
            Option<(String, Secret)>,
            Option<&'static str>,
            &'static str,
        );
        let settings = LiveSettings::default();
        let live = Some(("DE".to_owned(), token()));
        let cases: [Case; 5] = [
            (
                "GBR",
                None,
                None,
                "NESO Carbon Intensity API, Great Britain",
            ),
            (
                "GBR",
                live.clone(),
                Some("OX1"),
                "NESO Carbon Intensity API, postcode OX1",
            ),
            (
                "DEU",
                live.clone(),
                None,
                "Electricity Maps forecast, zone DE",
            ),
            (
                "DEU",
                None,
                Some("OX1"),
                "NESO Carbon Intensity API, postcode OX1",
            ),
            ("FRA", None, None, "none"),
        ];
        for (country, live, postcode, described) in cases {
            let source = choose(
                &table(country),
                live,
                &settings,
                postcode.map(str::to_owned),
            );
            assert_eq!(source.describe(), described, "{country}");
        }
        let Source::Nothing { why } = choose(&table("FRA"), None, &settings, None) else {
            panic!("France has no keyless forecast");
        };
        assert!(why.starts_with("no forecast for this zone (FRA)"), "{why}");
    }

    #[test]
    fn postcodes_keep_their_outward_code() {
        assert_eq!(outward_code("ox1 3qd").expect("full"), "OX1");
        assert_eq!(outward_code("SW1A").expect("outward"), "SW1A");
        assert_eq!(outward_code("M1").expect("short"), "M1");
        for bad in ["", "12345", "OXFORD", "OX1-3QD", "A1B2C"] {
            assert!(outward_code(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn neso_national_and_regional_shapes_are_read() {
        let national = r#"{"data":[
            {"from":"2018-01-20T12:00Z","to":"2018-01-20T12:30Z",
             "intensity":{"forecast":266,"actual":263,"index":"moderate"}},
            {"from":"2018-01-20T12:30Z","to":"2018-01-20T13:00Z",
             "intensity":{"forecast":250,"actual":null,"index":"moderate"}}]}"#;
        let slots = parse_neso(national).expect("national");
        assert_eq!(slots.len(), 2);
        assert!((slots[0].end_unix_s - slots[0].start_unix_s - 1800.0).abs() < 1e-9);
        assert!((slots[1].g_per_kwh - 250.0).abs() < 1e-9);
        let regional = r#"{"data":{"regionid":12,"dnoregion":"SSE South","shortname":"South England",
            "postcode":"RG10","data":[{"from":"2018-01-20T12:00Z","to":"2018-01-20T12:30Z",
            "intensity":{"forecast":120,"index":"low"},"generationmix":[]}]}}"#;
        assert_eq!(parse_neso(regional).expect("regional").len(), 1);
        let listed = regional
            .replacen("\"data\":{", "\"data\":[{", 1)
            .replacen("]}}", "]}]}", 1);
        assert_eq!(parse_neso(&listed).expect("listed").len(), 1);
    }

    #[test]
    fn electricitymaps_shape_is_read_hour_by_hour() {
        let body = r#"{"zone":"DE","forecast":[
            {"carbonIntensity":368,"datetime":"2022-12-05T13:00:00.000Z"},
            {"carbonIntensity":null,"datetime":"2022-12-05T14:00:00.000Z"},
            {"carbonIntensity":300,"datetime":"2022-12-05T15:00:00.000Z"}],
            "updatedAt":"2022-12-05T12:51:28.129Z"}"#;
        let slots = parse_electricitymaps(body).expect("forecast");
        assert_eq!(slots.len(), 2, "the hour without a figure is a gap");
        assert!((slots[1].end_unix_s - slots[1].start_unix_s - 3600.0).abs() < 1e-9);
    }

    #[test]
    fn garbage_and_absurd_figures_are_faults_not_panics() {
        for body in ["", "<html>", "{}", r#"{"data":"x"}"#, r#"{"data":[]}"#] {
            assert!(parse_neso(body).is_err(), "{body}");
        }
        for body in ["[]", r#"{"forecast":{}}"#, r#"{"forecast":[]}"#] {
            assert!(parse_electricitymaps(body).is_err(), "{body}");
        }
        let absurd =
            r#"{"forecast":[{"carbonIntensity":1e308,"datetime":"2022-12-05T13:00:00Z"}]}"#;
        assert!(matches!(
            parse_electricitymaps(absurd),
            Err(FetchFault::BadEntry(_))
        ));
    }

    #[test]
    fn an_unreachable_source_starts_now_and_never_shows_the_token() {
        let source = Source::ElectricityMaps {
            base_url: "http://127.0.0.1:9/v3".to_owned(),
            zone: "DE".to_owned(),
            token: token(),
        };
        let fault = fetch(&source, 0.0, 1.0).expect_err("nothing listens on port 9");
        assert!(matches!(fault, FetchFault::Transport(_)), "{fault:?}");
        assert!(!fault.to_string().contains("s3cr3t-token"));
    }
}
