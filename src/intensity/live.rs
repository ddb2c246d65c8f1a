//! Electricity Maps' hourly carbon intensity, fetched on a background thread.
//!
//! Only with a token, and only once a run starts (never at import). Requests go to
//! `{base_url}/carbon-intensity/latest?zone=Z` (then `/history?zone=Z`, the last 24 hours, when
//! the hour wanted is not the latest), with the token in the `auth-token` header, never in the
//! URL. Figures are cached per endpoint, zone and hour for the whole process. The worker thread
//! never logs and never touches Python: failures are recorded and reported by the caller,
//! which then uses the table's figure for those hours.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::runtime::ProcessLock;
use crate::runtime::locks::{Condvar, Mutex};

/// Electricity Maps' v3 API.
pub const DEFAULT_BASE_URL: &str = "https://api.electricitymap.org/v3";
/// NESO's Carbon Intensity API (Great Britain, no key).
pub const NESO_BASE_URL: &str = "https://api.carbonintensity.org.uk";
/// Seconds one request may take before the table is used instead.
pub const DEFAULT_TIMEOUT_S: f64 = 5.0;
/// Environment variable Electricity Maps' own tools read the token from.
pub const TOKEN_ENV: &str = "ELECTRICITYMAPS_API_TOKEN";

/// A token: shown as `***` by `Debug`, so it never reaches a log line or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `token`; `None` when it is blank.
    pub fn new(token: &str) -> Option<Self> {
        let token = token.trim();
        (!token.is_empty()).then(|| Self(token.to_owned()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the token replaced by `***`. Tokens shorter than 8
    /// characters are not real Electricity Maps tokens and are left alone, so a test token
    /// such as `x` does not mangle words ("une***pected").
    pub fn redact(&self, text: &str) -> String {
        if self.0.chars().count() < 8 {
            return text.to_owned();
        }
        text.replace(&self.0, "***")
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The live-source settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSettings {
    /// Electricity Maps token, when one was given.
    pub token: Option<Secret>,
    /// API root, `.../v3`.
    pub base_url: String,
    /// Zone to ask for instead of the one derived from the location.
    pub zone: Option<String>,
    /// Per-request timeout, s.
    pub timeout_s: f64,
    /// Length of an hour, s (3600; shorter only in tests).
    pub hour_s: f64,
    /// NESO's Carbon Intensity API root, for Great Britain's forecast (no token).
    pub neso_base_url: String,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            token: None,
            base_url: DEFAULT_BASE_URL.to_owned(),
            zone: None,
            timeout_s: DEFAULT_TIMEOUT_S,
            hour_s: 3600.0,
            neso_base_url: NESO_BASE_URL.to_owned(),
        }
    }
}

/// One hour's figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LivePoint {
    /// The hour (unix time / hour length, floored) the figure is for.
    pub hour: i64,
    /// g CO2eq per kWh.
    pub g_per_kwh: f64,
}

/// Why an hour has no live figure. The text is what the fallback warning and the row's
/// `intensity_source` say.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FetchFault {
    /// The request took longer than the timeout.
    #[error("timed out")]
    TimedOut,
    /// 401 or 403: the token is refused, and will be for every later hour.
    #[error("HTTP {status}")]
    Refused {
        /// The HTTP status.
        status: u16,
    },
    /// Any other unsuccessful HTTP status.
    #[error("HTTP {status}")]
    Status {
        /// The HTTP status.
        status: u16,
    },
    /// The connection failed (what the HTTP client said, token redacted).
    #[error("{0}")]
    Transport(String),
    /// The answer is not the JSON expected.
    #[error("unreadable answer: {0}")]
    Unreadable(String),
    /// The answer has an entry without a usable figure or time.
    #[error("{0}")]
    BadEntry(String),
    /// Neither the latest figure nor the last day's history covers the hour.
    #[error("no figure for the hour starting at unix {unix_s}")]
    NoFigure {
        /// Unix time the hour starts at, s.
        unix_s: f64,
    },
    /// The worker had not answered when the caller stopped waiting.
    #[error("no answer in time")]
    NoAnswer,
    /// The request is still in flight: an edge does not wait for it, and takes a provisional
    /// figure (see [`crate::intensity::weighted`]).
    #[error("no answer yet")]
    Pending,
    /// The figure is outside what any grid emits ([`MAX_G_PER_KWH`]).
    #[error("implausible figure {g_per_kwh:e} g CO2eq/kWh (accepted: 0 to {MAX_G_PER_KWH})")]
    Implausible {
        /// The figure received.
        g_per_kwh: f64,
    },
    /// The server redirected to another host; the token is never sent there.
    #[error("redirected to another host ({host}): not followed")]
    Redirected {
        /// The host (and port) the server pointed at.
        host: String,
    },
}

impl FetchFault {
    /// The fault of an unsuccessful HTTP status.
    pub fn from_status(status: u16) -> Self {
        if matches!(status, 401 | 403) {
            Self::Refused { status }
        } else {
            Self::Status { status }
        }
    }

    fn from_client(err: ureq::Error) -> Self {
        match err {
            ureq::Error::Timeout(_) => Self::TimedOut,
            other => Self::Transport(other.to_string()),
        }
    }

    /// The fault with `secret` removed from any text it carries from elsewhere.
    pub(crate) fn redacted(self, secret: &Secret) -> Self {
        match self {
            Self::Transport(text) => Self::Transport(secret.redact(&text)),
            Self::Unreadable(text) => Self::Unreadable(secret.redact(&text)),
            Self::BadEntry(text) => Self::BadEntry(secret.redact(&text)),
            Self::Redirected { host } => Self::Redirected {
                host: secret.redact(&host),
            },
            other => other,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PointJson {
    carbon_intensity: Option<f64>,
    datetime: String,
}

#[derive(Deserialize)]
struct HistoryJson {
    history: Vec<PointJson>,
}

/// Highest hourly figure accepted, g CO2eq/kWh. The embedded tables peak at 1,306
/// (Turkmenistan, `data/country_intensity.csv`) and a grid burning only lignite emits about
/// 1,100-1,200 over its life cycle, so an hour above 2,000 is a broken answer, not a grid: it
/// is refused like any other bad answer and the table's figure is used (one warning).
pub const MAX_G_PER_KWH: f64 = 2000.0;

fn point(json: &PointJson, hour_s: f64) -> Result<LivePoint, FetchFault> {
    let g_per_kwh = json
        .carbon_intensity
        .ok_or_else(|| FetchFault::BadEntry(format!("no carbonIntensity for {}", json.datetime)))?;
    if !(0.0..=MAX_G_PER_KWH).contains(&g_per_kwh) {
        return Err(FetchFault::Implausible { g_per_kwh });
    }
    let at = chrono::DateTime::parse_from_rfc3339(&json.datetime)
        .map_err(|err| FetchFault::BadEntry(format!("bad datetime {:?}: {err}", json.datetime)))?;
    let unix_s = at.timestamp() as f64 + f64::from(at.timestamp_subsec_millis()) / 1000.0;
    Ok(LivePoint {
        hour: (unix_s / hour_s).floor() as i64,
        g_per_kwh,
    })
}

/// Reads a `carbon-intensity/latest` answer.
pub fn parse_latest(body: &str, hour_s: f64) -> Result<LivePoint, FetchFault> {
    let json: PointJson =
        serde_json::from_str(body).map_err(|err| FetchFault::Unreadable(err.to_string()))?;
    point(&json, hour_s)
}

/// Reads a `carbon-intensity/history` answer; entries without a figure are skipped.
pub fn parse_history(body: &str, hour_s: f64) -> Result<Vec<LivePoint>, FetchFault> {
    let json: HistoryJson =
        serde_json::from_str(body).map_err(|err| FetchFault::Unreadable(err.to_string()))?;
    Ok(json
        .history
        .iter()
        .filter_map(|entry| point(entry, hour_s).ok())
        .collect())
}

/// How many hours old the latest figure may be to stand in for an hour that has none yet.
const MAX_LATEST_LAG_HOURS: i64 = 2;

type CacheKey = (String, String, u64, i64);

/// Figures fetched in this process, by (base URL, zone, hour length, hour); a forked child
/// keeps them.
static CACHE: ProcessLock<BTreeMap<CacheKey, f64>> = ProcessLock::new(BTreeMap::new());

#[derive(Default)]
struct State {
    queue: VecDeque<i64>,
    pending: HashSet<i64>,
    failures: HashMap<i64, FetchFault>,
    /// Set after a 401/403: the token will not work for later hours either.
    refused: Option<FetchFault>,
    /// Set by [`LiveFetcher::settle`]: unanswered hours are no longer provisional.
    settled: bool,
    stopping: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// The figure for an hour, or why there is none.
pub type HourResult = Result<f64, FetchFault>;

/// A worker thread fetching one zone's hours.
pub struct LiveFetcher {
    zone: String,
    base_url: String,
    hour_s: f64,
    timeout: Duration,
    shared: Arc<Shared>,
}

impl LiveFetcher {
    /// Starts the worker for `zone`. Nothing is fetched until [`LiveFetcher::request`].
    pub fn spawn(settings: &LiveSettings, token: Secret, zone: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let timeout = Duration::from_secs_f64(settings.timeout_s.max(0.001));
        let worker = Worker {
            agent: agent(timeout),
            token,
            zone: zone.to_owned(),
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            hour_s: settings.hour_s,
            shared: Arc::clone(&shared),
        };
        // Not joined: a request in flight must not hold up the user's `stop()`. The thread
        // holds no Python object and exits after its current request once stopped.
        crate::runtime::spawn("intensity", move || worker.run())?;
        Ok(Self {
            zone: zone.to_owned(),
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            hour_s: settings.hour_s,
            timeout,
            shared,
        })
    }

    /// The zone fetched.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    fn cached(&self, hour: i64) -> Option<f64> {
        CACHE
            .lock()
            .get(&(
                self.base_url.clone(),
                self.zone.clone(),
                self.hour_s.to_bits(),
                hour,
            ))
            .copied()
    }

    /// Asks for `hours` in the background; returns at once.
    pub fn request(&self, hours: &[i64]) {
        let missing: Vec<i64> = hours
            .iter()
            .copied()
            .filter(|&hour| self.cached(hour).is_none())
            .collect();
        if missing.is_empty() {
            return;
        }
        let mut state = self.shared.state.lock();
        for hour in missing {
            if !state.failures.contains_key(&hour) && state.pending.insert(hour) {
                state.queue.push_back(hour);
            }
        }
        drop(state);
        self.shared.changed.notify_all();
    }

    /// The figure of each of `hours` as known now: never waits. An hour still being fetched
    /// is [`FetchFault::Pending`] until [`LiveFetcher::settle`] gives up on it
    /// ([`FetchFault::NoAnswer`]).
    pub fn results(&self, hours: &[i64]) -> Vec<HourResult> {
        self.request(hours);
        let state = self.shared.state.lock();
        hours
            .iter()
            .map(|&hour| match self.cached(hour) {
                Some(g_per_kwh) => Ok(g_per_kwh),
                None => Err(state.failures.get(&hour).cloned().unwrap_or(
                    if state.pending.contains(&hour) && !state.settled {
                        FetchFault::Pending
                    } else {
                        FetchFault::NoAnswer
                    },
                )),
            })
            .collect()
    }

    /// The latest figure known for an hour from `hour - MAX_LATEST_LAG_HOURS` to `hour - 1`:
    /// what stands in for `hour` while its own is being fetched.
    pub fn previous(&self, hour: i64) -> Option<f64> {
        (1..=MAX_LATEST_LAG_HOURS).find_map(|back| self.cached(hour - back))
    }

    /// Waits for the requests in flight (at most twice the request timeout, plus a little),
    /// then stops counting on them: hours still unanswered read [`FetchFault::NoAnswer`].
    /// For `stop()`, whose rows are final.
    pub fn settle(&self) {
        let deadline = Instant::now() + self.timeout * 2 + Duration::from_millis(200);
        let mut state = self.shared.state.lock();
        while !state.pending.is_empty() && !state.stopping {
            let timed_out;
            (state, timed_out) = self.shared.changed.wait_until(state, deadline);
            if timed_out {
                break;
            }
        }
        state.settled = true;
    }

    /// Stops the worker without waiting for a request in flight (it ends on its timeout).
    pub fn stop(&self) {
        self.shared.state.lock().stopping = true;
        self.shared.changed.notify_all();
    }
}

impl Drop for LiveFetcher {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Worker {
    agent: ureq::Agent,
    token: Secret,
    zone: String,
    base_url: String,
    hour_s: f64,
    shared: Arc<Shared>,
}

impl Worker {
    fn run(&self) {
        loop {
            let hour = {
                let mut state = self.shared.state.lock();
                loop {
                    if state.stopping {
                        return;
                    }
                    if let Some(hour) = state.queue.pop_front() {
                        break hour;
                    }
                    state = self.shared.changed.wait(state);
                }
            };
            let refused = self.shared.state.lock().refused.clone();
            let outcome = match refused {
                Some(reason) => Err(reason),
                None => self.fetch(hour),
            };
            let mut state = self.shared.state.lock();
            state.pending.remove(&hour);
            if let Err(fault) = outcome {
                let fault = fault.redacted(&self.token);
                if matches!(fault, FetchFault::Refused { .. }) {
                    state.refused = Some(fault.clone());
                }
                state.failures.insert(hour, fault);
            }
            drop(state);
            self.shared.changed.notify_all();
        }
    }

    fn store(&self, points: &[LivePoint]) {
        let mut cache = CACHE.lock();
        for point in points {
            cache.insert(
                (
                    self.base_url.clone(),
                    self.zone.clone(),
                    self.hour_s.to_bits(),
                    point.hour,
                ),
                point.g_per_kwh,
            );
        }
    }

    fn fetch(&self, hour: i64) -> Result<(), FetchFault> {
        let latest = parse_latest(&self.get("latest")?, self.hour_s)?;
        self.store(&[latest]);
        if latest.hour == hour {
            return Ok(());
        }
        let history = parse_history(&self.get("history")?, self.hour_s)?;
        self.store(&history);
        if history.iter().any(|point| point.hour == hour) {
            Ok(())
        } else if (1..=MAX_LATEST_LAG_HOURS).contains(&(hour - latest.hour)) {
            // The hour in progress may have no figure yet: the latest one stands in for it.
            self.store(&[LivePoint {
                hour,
                g_per_kwh: latest.g_per_kwh,
            }]);
            Ok(())
        } else {
            Err(FetchFault::NoFigure {
                unix_s: hour as f64 * self.hour_s,
            })
        }
    }

    fn get(&self, endpoint: &str) -> Result<String, FetchFault> {
        let url = format!("{}/carbon-intensity/{endpoint}", self.base_url);
        get_text(
            &self.agent,
            &url,
            &[("zone", &self.zone)],
            Some(&self.token),
        )
    }
}

/// The HTTP client of every intensity source: `timeout` for a whole request, statuses as
/// values, and no redirect followed by the client itself (see [`get_text`]).
pub(crate) fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            // The client would carry the `auth-token` header to any host: `get_text`
            // follows same-host redirects itself.
            .max_redirects(0)
            .build(),
    )
}

/// The body of a GET of `url` with `query`, the token (if any) in the `auth-token` header.
/// Redirects are followed here, not by the client, so the token only goes where the URL
/// points: to the same scheme, host and port, a few times at most. At most 4 MiB are read.
pub(crate) fn get_text(
    agent: &ureq::Agent,
    url: &str,
    query: &[(&str, &str)],
    token: Option<&Secret>,
) -> Result<String, FetchFault> {
    let call = |request: ureq::RequestBuilder<ureq::typestate::WithoutBody>| {
        let request = match token {
            Some(token) => request.header("auth-token", token.expose()),
            None => request,
        };
        request.call().map_err(FetchFault::from_client)
    };
    let mut request = agent.get(url);
    for (key, value) in query {
        request = request.query(*key, *value);
    }
    let mut response = call(request)?;
    let mut at = url.to_owned();
    for _ in 0..MAX_REDIRECTS {
        if !response.status().is_redirection() {
            break;
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .ok_or(FetchFault::Status {
                status: response.status().as_u16(),
            })?;
        at = same_origin(&at, location)?;
        response = call(agent.get(&at))?;
    }
    let status = response.status();
    if !status.is_success() {
        return Err(FetchFault::from_status(status.as_u16()));
    }
    response
        .into_body()
        .with_config()
        .limit(4 * 1024 * 1024)
        .read_to_string()
        .map_err(FetchFault::from_client)
}

/// Same-host redirects followed per request.
const MAX_REDIRECTS: usize = 5;

/// The URL `location` points at from `from`, when it has `from`'s scheme, host and port; a
/// path alone (`/v3/...`) stays on `from`'s host.
fn same_origin(from: &str, location: &str) -> Result<String, FetchFault> {
    let from: ureq::http::Uri = from
        .parse()
        .map_err(|err| FetchFault::Transport(format!("bad URL: {err}")))?;
    let origin = |uri: &ureq::http::Uri| {
        (
            uri.scheme_str().map(str::to_ascii_lowercase),
            uri.authority()
                .map(|authority| authority.as_str().to_ascii_lowercase()),
        )
    };
    if location.starts_with('/') && !location.starts_with("//") {
        let (scheme, authority) = origin(&from);
        if let (Some(scheme), Some(authority)) = (scheme, authority) {
            return Ok(format!("{scheme}://{authority}{location}"));
        }
    }
    let to: ureq::http::Uri = location.parse().map_err(|_| FetchFault::Redirected {
        host: location.chars().take(100).collect(),
    })?;
    if to.authority().is_some() && origin(&to) == origin(&from) {
        Ok(location.to_owned())
    } else {
        Err(FetchFault::Redirected {
            host: to
                .authority()
                .map_or_else(|| location.to_owned(), |a| a.as_str().to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_is_read_and_floored_to_its_hour() {
        let body = r#"{"zone":"FR","carbonIntensity":57,"datetime":"1970-01-01T02:00:00.000Z",
            "updatedAt":"1970-01-01T02:12:00.000Z","emissionFactorType":"lifecycle",
            "isEstimated":true}"#;
        let point = parse_latest(body, 3600.0).expect("point");
        assert_eq!(point.hour, 2);
        assert!((point.g_per_kwh - 57.0).abs() < f64::EPSILON);
    }

    #[test]
    fn history_skips_hours_without_a_figure() {
        let body = r#"{"zone":"DE","history":[
            {"carbonIntensity":300,"datetime":"2026-11-22T23:00:00Z"},
            {"carbonIntensity":null,"datetime":"2026-11-23T00:00:00Z"},
            {"carbonIntensity":280,"datetime":"2026-11-23T01:00:00Z"}]}"#;
        let points = parse_history(body, 3600.0).expect("points");
        assert_eq!(points.len(), 2);
        assert_eq!(points[1].hour - points[0].hour, 2);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for body in [
            "",
            "<html>",
            "{}",
            r#"{"carbonIntensity":"high","datetime":"x"}"#,
        ] {
            assert!(parse_latest(body, 3600.0).is_err(), "{body}");
        }
        assert!(matches!(
            parse_history("[]", 3600.0),
            Err(FetchFault::Unreadable(_))
        ));
    }

    #[test]
    fn an_absurd_figure_is_refused_and_history_skips_it() {
        let latest = r#"{"carbonIntensity":1e308,"datetime":"1970-01-01T02:00:00Z"}"#;
        let fault = parse_latest(latest, 3600.0).expect_err("1e308 g/kWh");
        assert_eq!(fault, FetchFault::Implausible { g_per_kwh: 1e308 });
        assert!(fault.to_string().contains("1e308"), "{fault}");
        assert!(parse_latest(&latest.replace("1e308", "-1"), 3600.0).is_err());
        let edge = latest.replace("1e308", "2000");
        assert!(parse_latest(&edge, 3600.0).is_ok());
        let history = r#"{"history":[
            {"carbonIntensity":1e308,"datetime":"1970-01-01T01:00:00Z"},
            {"carbonIntensity":90,"datetime":"1970-01-01T02:00:00Z"}]}"#;
        let points = parse_history(history, 3600.0).expect("points");
        assert_eq!(
            points,
            vec![LivePoint {
                hour: 2,
                g_per_kwh: 90.0
            }]
        );
    }

    #[test]
    fn redirects_are_followed_only_to_the_same_host() {
        let from = "http://127.0.0.1:8000/v3/carbon-intensity/latest?zone=FR";
        assert_eq!(
            same_origin(from, "/v4/latest?zone=FR").expect("path"),
            "http://127.0.0.1:8000/v4/latest?zone=FR"
        );
        assert_eq!(
            same_origin(from, "HTTP://127.0.0.1:8000/x").expect("same origin"),
            "HTTP://127.0.0.1:8000/x"
        );
        for elsewhere in [
            "http://127.0.0.2:8000/v3",
            "http://localhost:8000/v3",
            "http://127.0.0.1:8001/v3",
            "https://127.0.0.1:8000/v3",
            "//evil.example/v3",
            "evil.example/v3",
        ] {
            let fault = same_origin(from, elsewhere).expect_err(elsewhere);
            assert!(
                matches!(fault, FetchFault::Redirected { .. }),
                "{elsewhere}: {fault:?}"
            );
        }
    }

    #[test]
    fn the_token_never_shows() {
        let secret = Secret::new(" s3cr3t-token ").expect("token");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(secret.redact("bad s3cr3t-token here"), "bad *** here");
        let short = Secret::new("x").expect("token");
        assert_eq!(short.redact("unexpected"), "unexpected");
        assert!(Secret::new("  ").is_none());
        let settings = LiveSettings {
            token: Some(secret),
            ..LiveSettings::default()
        };
        assert!(!format!("{settings:?}").contains("s3cr3t-token"));
    }

    #[test]
    fn an_unreachable_server_fails_quickly_and_says_why() {
        // Port 9 on loopback: nothing listens, the connection is refused at once.
        let settings = LiveSettings {
            base_url: "http://127.0.0.1:9/v3".to_owned(),
            timeout_s: 1.0,
            ..LiveSettings::default()
        };
        let token = Secret::new("t0ken").expect("token");
        let fetcher = LiveFetcher::spawn(&settings, token, "FR").expect("spawn");
        fetcher.request(&[42]);
        fetcher.settle();
        let results = fetcher.results(&[42]);
        fetcher.stop();
        let fault = results[0].clone().expect_err("no server");
        assert!(matches!(fault, FetchFault::Transport(_)), "{fault:?}");
        assert!(!fault.to_string().contains("t0ken"), "{fault}");
    }

    #[test]
    fn only_401_and_403_refuse_the_token_and_each_reads_as_its_status() {
        for status in [401, 403] {
            let fault = FetchFault::from_status(status);
            assert_eq!(fault, FetchFault::Refused { status });
            assert_eq!(fault.to_string(), format!("HTTP {status}"));
        }
        assert_eq!(
            FetchFault::from_status(500),
            FetchFault::Status { status: 500 }
        );
        assert_eq!(FetchFault::from_status(500).to_string(), "HTTP 500");
        let secret = Secret::new("s3cr3t-token").expect("token");
        let redacted = FetchFault::Transport("auth s3cr3t-token refused".to_owned())
            .redacted(&secret)
            .to_string();
        assert_eq!(redacted, "auth *** refused");
    }
}
