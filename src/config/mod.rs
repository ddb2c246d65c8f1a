//! Settings resolved as CodeCarbon resolves them: keyword argument, then environment
//! (`CARBONMETER_<KEY>`, then `CODECARBON_<KEY>`), then `.codecarbon.config` in the working
//! directory, then in the home directory, then the default of [`schema::SETTINGS`]. A config
//! file someone else can write may set only the [`schema::Trust::Any`] settings.
//!
//! [`Config`] is assembled from one small piece per layer that consumes settings; each piece's
//! type lives with its consumer (`meter::MeterConfig`, `intensity::IntensityConfig`,
//! `output::OutputConfig`), so those modules never import this one.

pub mod schema;
pub mod sources;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use schema::SETTINGS;
use sources::Layers;
pub use sources::{Environment, RawValue};

use crate::error::{Error, Result};
use crate::export::{self, ExportSettings, OtlpSettings};
use crate::gpu::GpuConfig;
use crate::intensity::IntensityConfig;
use crate::intensity::live::{self, LiveSettings, Secret};
use crate::meter::MeterConfig;
use crate::output::OutputConfig;
use crate::output::csv::WriteMode;
use crate::projection::Budget;
use crate::sensors::TrackingMode;
use crate::sensors::plan;

/// What to wait for at window edges so a window counts only the work dispatched inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Nothing: edges are read when the Python call happens.
    #[default]
    None,
    /// `torch.cuda.synchronize()` when CUDA is in use.
    Torch,
}

/// Everything a tracker needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Groups runs in reports.
    pub project_name: String,
    /// Groups runs of one experiment.
    pub experiment_id: String,
    /// A name for the experiment.
    pub experiment_name: String,
    /// Seconds between sensor reads.
    pub measure_power_secs: f64,
    /// Where rows go.
    pub output: OutputConfig,
    /// Python logging level name, when one was set.
    pub log_level: Option<String>,
    /// Location, forced intensity and live source.
    pub intensity: IntensityConfig,
    /// Power usage effectiveness, >= 1.
    pub pue: f64,
    /// Water usage effectiveness, L/kWh, >= 0, when set.
    pub wue: Option<f64>,
    /// Years the hardware's embodied carbon is spread over.
    pub hardware_lifetime_years: f64,
    /// Sensor choice.
    pub meter: MeterConfig,
    /// Distributed rank written in every row, when set.
    pub rank: Option<u32>,
    /// Wait for queued GPU work at window edges.
    pub sync: SyncMode,
    /// Share of the plug's energy the PSU delivers, for the `wall_energy` column.
    pub psu_efficiency: Option<f64>,
    /// The carbon budget and what to do past it.
    pub budget: Budget,
    /// The `host` setting, else the hostname.
    pub host: String,
    /// The `user` setting, else the login name; `None` when blanked or unknown.
    pub user: Option<String>,
    /// The distributed job the launcher's environment describes, if any.
    pub job: Option<crate::job::JobEnv>,
    /// Longest wait of global rank 0 for the other ranks' figures at an edge, seconds.
    pub job_wait_s: f64,
    /// Pushgateway, textfile folder and OTLP endpoint to export to.
    pub export: ExportSettings,
    /// Unserved CodeCarbon settings that were given (each warned about once).
    pub unserved: Vec<String>,
    /// Where each setting not from a keyword argument came from, for a debug line.
    pub origins: Vec<(String, String)>,
    /// The figures callbacks and loggers send per epoch, when chosen (the Python package
    /// checks the names; the core only carries them).
    pub log_metrics: Option<Vec<String>>,
}

/// Hidden test settings (environment only): the length of an "hour" for hourly intensity, and
/// the live request timeout, both in seconds.
pub const HOUR_S_ENV: &str = "CARBONMETER_HOUR_S";
/// See [`HOUR_S_ENV`].
pub const LIVE_TIMEOUT_S_ENV: &str = "CARBONMETER_LIVE_TIMEOUT_S";

// A row with a default always yields a value; this only turns a table without one into an
// error instead of a panic.
fn required<T>(key: &str, value: Option<T>) -> Result<T> {
    value.ok_or_else(|| Error::invalid(key, "unset", "a default in config::schema::SETTINGS"))
}

fn output(layers: &mut Layers) -> Result<OutputConfig> {
    let save_to_file = required("save_to_file", layers.flag("save_to_file")?)?;
    let output_dir = PathBuf::from(required("output_dir", layers.text("output_dir")?)?);
    let output_file = required("output_file", layers.text("output_file")?)?;
    if save_to_file && !output_dir.is_dir() {
        return Err(Error::invalid(
            "output_dir",
            format!("{:?}", output_dir.display().to_string()),
            "expected an existing folder",
        ));
    }
    let on_csv_write = match layers.choice("on_csv_write")? {
        Some("update") => WriteMode::Update,
        _ => WriteMode::Append,
    };
    Ok(OutputConfig {
        path: save_to_file.then(|| output_dir.join(output_file)),
        on_csv_write,
    })
}

/// A list setting: a list, or comma-separated text (the environment and config files).
fn text_list(layers: &mut Layers, key: &str) -> Result<Option<Vec<String>>> {
    Ok(layers.get(key)?.map(|raw| match raw {
        RawValue::List(items) => items,
        RawValue::Str(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
        other => vec![other.render()],
    }))
}

fn meter(layers: &mut Layers) -> Result<MeterConfig> {
    let tracking_mode = match layers.choice("tracking_mode")? {
        Some("process") => TrackingMode::Process,
        _ => TrackingMode::Machine,
    };
    // `CARBONMETER_POWERCAP_ROOT`, the test suites' seam, is this setting's environment layer.
    let powercap_root = required("powercap_root", layers.text("powercap_root")?)?;
    let gpu = GpuConfig {
        nvml_library: layers.text("nvml_library")?.map(PathBuf::from),
        gpu_ids: text_list(layers, "gpu_ids")?,
        cuda_visible_devices: layers.env.vars.get("CUDA_VISIBLE_DEVICES").cloned(),
        poll_interval_s: required("gpu_poll_secs", layers.number("gpu_poll_secs")?)?,
        amdsmi_library: layers.text("amdsmi_library")?.map(PathBuf::from),
        rocr_visible_devices: layers.env.vars.get("ROCR_VISIBLE_DEVICES").cloned(),
        hip_visible_devices: layers.env.vars.get("HIP_VISIBLE_DEVICES").cloned(),
        hwmon_root: PathBuf::from(required("hwmon_root", layers.text("hwmon_root")?)?),
        ioreport_library: layers.text("ioreport_library")?.map(PathBuf::from),
        ..GpuConfig::default()
    };
    Ok(MeterConfig {
        powercap_root: PathBuf::from(powercap_root),
        sources: plan::Settings {
            tracking_mode,
            rapl_include_dram: required("rapl_include_dram", layers.flag("rapl_include_dram")?)?,
            rapl_prefer_psys: required("rapl_prefer_psys", layers.flag("rapl_prefer_psys")?)?,
            force_mode_cpu_load: required(
                "force_mode_cpu_load",
                layers.flag("force_mode_cpu_load")?,
            )?,
            force_cpu_power_w: layers.number("force_cpu_power")?,
            force_ram_power_w: layers.number("force_ram_power")?,
            default_cpu_power_w: layers.number("default_cpu_power")?,
            // A distributed job decides per meter (`MeterConfig::sources_for`).
            measures_host: true,
        },
        gpu,
        emi_library: layers.text("emi_library")?.map(PathBuf::from),
    })
}

fn env_seconds(layers: &Layers, var: &str) -> Result<Option<f64>> {
    let Some(text) = layers.env.vars.get(var) else {
        return Ok(None);
    };
    match text.trim().parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => Ok(Some(seconds)),
        _ => Err(Error::invalid(
            var,
            format!("{text:?}"),
            "expected seconds > 0",
        )),
    }
}

/// Where a setting's value came from: a keyword argument, a variable or a file, else the
/// default.
fn origin(layers: &Layers, key: &str) -> String {
    if layers.kwargs.contains_key(key) {
        return "keyword argument".to_owned();
    }
    layers
        .origins
        .iter()
        .rev()
        .find(|(name, _)| name == key)
        .map_or_else(|| "default".to_owned(), |(_, origin)| origin.clone())
}

fn secret_origin(layers: &Layers) -> String {
    ["electricitymaps_api_token", "co2_signal_api_token"]
        .iter()
        .map(|key| origin(layers, key))
        .find(|origin| origin != "default")
        .unwrap_or_else(|| live::TOKEN_ENV.to_owned())
}

/// The token goes to this URL: only over TLS, except to this machine (a local proxy, tests).
fn check_base_url(url: &str) -> Result<()> {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = lower.strip_prefix("http://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        let host = if host.starts_with('[') {
            host.split_once(']')
                .map_or(host, |(inside, _)| inside.trim_start_matches('['))
        } else {
            host.split(':').next().unwrap_or(host)
        };
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|address| address.is_loopback());
        if loopback {
            return Ok(());
        }
    }
    Err(Error::invalid(
        "electricitymaps_base_url",
        format!("{url:?}"),
        "expected an https:// URL (http:// only to localhost, 127.0.0.0/8 or [::1]): the API \
         token is sent there",
    ))
}

fn live_settings(layers: &mut Layers) -> Result<LiveSettings> {
    // Keyword arguments first (either name), then each name through the other layers, then
    // Electricity Maps' own variable.
    let mut token = None;
    for key in ["electricitymaps_api_token", "co2_signal_api_token"] {
        if let Some(raw @ RawValue::Str(text)) = layers.kwargs.get(key) {
            sources::check_size(key, raw, "a keyword argument")?;
            token = Some(text.clone());
            break;
        }
    }
    let token = match token {
        Some(token) => Some(token),
        None => match layers.text("electricitymaps_api_token")? {
            Some(token) => Some(token),
            None => layers.text("co2_signal_api_token")?,
        },
    }
    .or_else(|| layers.env.vars.get(live::TOKEN_ENV).cloned());
    let token_origin = secret_origin(layers);
    let base_url = required(
        "electricitymaps_base_url",
        layers.text("electricitymaps_base_url")?,
    )?;
    check_base_url(&base_url)?;
    if token.is_some() && base_url.trim_end_matches('/') != live::DEFAULT_BASE_URL {
        let url_origin = origin(layers, "electricitymaps_base_url");
        if url_origin != token_origin {
            // A config file in the working folder could send a token given elsewhere to a
            // host of its choosing: say where each came from.
            crate::runtime::warn_once(&format!(
                "the Electricity Maps token ({token_origin}) is sent to {base_url}, a base URL set \
                 elsewhere ({url_origin})"
            ));
        }
    }
    let defaults = LiveSettings::default();
    Ok(LiveSettings {
        token: token.as_deref().and_then(Secret::new),
        base_url,
        zone: layers
            .text("electricitymaps_zone")?
            .map(|zone| zone.trim().to_owned())
            .filter(|zone| !zone.is_empty()),
        timeout_s: env_seconds(layers, LIVE_TIMEOUT_S_ENV)?.unwrap_or(defaults.timeout_s),
        hour_s: env_seconds(layers, HOUR_S_ENV)?.unwrap_or(defaults.hour_s),
        neso_base_url: required("neso_base_url", layers.text("neso_base_url")?)?,
    })
}

fn intensity(layers: &mut Layers) -> Result<IntensityConfig> {
    let country = match layers.text("country_iso_code")? {
        Some(country) => Some(("country_iso_code", country)),
        None => layers
            .text("country_2letter_iso_code")?
            .map(|country| ("country_2letter_iso_code", country)),
    };
    Ok(IntensityConfig {
        country,
        region: layers.text("region")?,
        cloud_provider: layers.text("cloud_provider")?,
        cloud_region: layers.text("cloud_region")?,
        force_carbon_intensity_g_per_kwh: layers.number("force_carbon_intensity_g_co2e_kwh")?,
        live: live_settings(layers)?,
        tz: layers.env.vars.get("TZ").cloned(),
    })
}

/// The variable a W&B sweep agent sets in each run it starts.
pub const WANDB_SWEEP_ENV: &str = "WANDB_SWEEP_ID";

/// `experiment_name`, set or by default `base`; inside a W&B sweep, whose runs belong together,
/// `wandb-sweep-<id>` by default, so the report groups the sweep's runs with its total.
fn experiment_name(layers: &mut Layers) -> Result<String> {
    let sweep = layers
        .env
        .vars
        .get(WANDB_SWEEP_ENV)
        .map(|id| id.trim().to_owned());
    match (layers.get("experiment_name")?, sweep) {
        (None, Some(id)) if !id.is_empty() => Ok(format!("wandb-sweep-{id}")),
        _ => required("experiment_name", layers.text("experiment_name")?),
    }
}

fn budget(layers: &mut Layers) -> Result<Budget> {
    let co2_budget_kg = layers.number("co2_budget_kg")?;
    let stop_over_budget = required("stop_over_budget", layers.flag("stop_over_budget")?)?;
    if stop_over_budget && co2_budget_kg.is_none() {
        return Err(Error::invalid(
            "stop_over_budget",
            "True",
            "expected co2_budget_kg=<kg> beside it: there is no budget to stop at",
        ));
    }
    let patience = layers.number("patience")?.map_or(1, |epochs| epochs as u32);
    Ok(Budget {
        co2_budget_kg,
        stop_over_budget,
        payoff: crate::payoff::PayoffRule {
            min_gain_per_kg: layers.number("min_gain_per_kg")?,
            patience,
        },
    })
}

// ---- Fleet export (src/export/) -------------------------------------------------------------

/// OpenTelemetry's standard variables, read as the OpenTelemetry SDKs read them.
pub const OTEL_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// See [`OTEL_ENDPOINT_ENV`].
pub const OTEL_METRICS_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
/// See [`OTEL_ENDPOINT_ENV`].
pub const OTEL_HEADERS_ENV: &str = "OTEL_EXPORTER_OTLP_HEADERS";
/// See [`OTEL_ENDPOINT_ENV`].
pub const OTEL_METRICS_HEADERS_ENV: &str = "OTEL_EXPORTER_OTLP_METRICS_HEADERS";

fn export(layers: &mut Layers) -> Result<ExportSettings> {
    let pushgateway_url = if required("save_to_prometheus", layers.flag("save_to_prometheus")?)? {
        Some(required("prometheus_url", layers.text("prometheus_url")?)?)
    } else {
        None
    };
    let textfile_dir = layers.text("prometheus_textfile_dir")?.map(PathBuf::from);
    if let Some(dir) = &textfile_dir
        && !dir.is_dir()
    {
        return Err(Error::invalid(
            "prometheus_textfile_dir",
            format!("{:?}", dir.display().to_string()),
            "expected an existing folder (node_exporter's --collector.textfile.directory)",
        ));
    }
    let setting = layers.text("otlp_endpoint")?;
    let vars = &layers.env.vars;
    let url = export::otlp_metrics_url(
        setting.as_deref(),
        vars.get(OTEL_METRICS_ENDPOINT_ENV).map(String::as_str),
        vars.get(OTEL_ENDPOINT_ENV).map(String::as_str),
    );
    let otlp = match url {
        Some(url) => {
            // Signal-specific headers win over the general ones, key by key.
            let mut headers = Vec::new();
            for var in [OTEL_HEADERS_ENV, OTEL_METRICS_HEADERS_ENV] {
                if let Some(text) = vars.get(var) {
                    for (key, value) in export::parse_headers(var, text)? {
                        headers.retain(|(known, _)| *known != key);
                        headers.push((key, value));
                    }
                }
            }
            Some(OtlpSettings { url, headers })
        }
        None => None,
    };
    let timeout_s = match env_seconds(layers, export::EXPORT_TIMEOUT_S_ENV)? {
        Some(seconds) if seconds > 60.0 => {
            return Err(Error::invalid(
                export::EXPORT_TIMEOUT_S_ENV,
                seconds,
                "expected seconds > 0 and <= 60",
            ));
        }
        Some(seconds) => seconds,
        None => export::DEFAULT_EXPORT_TIMEOUT_S,
    };
    Ok(ExportSettings {
        pushgateway_url,
        textfile_dir,
        otlp,
        timeout_s,
    })
}

// ---- end of fleet export ---------------------------------------------------------------------

fn log_level(layers: &mut Layers) -> Result<Option<String>> {
    let Some(raw) = layers.get("log_level")? else {
        return Ok(None);
    };
    let setting = schema::setting("log_level").ok_or_else(|| Error::UnknownSetting {
        name: "log_level".to_owned(),
        known: schema::served_names(),
    })?;
    // Python's numeric levels and its aliases, spelled as the table's choices.
    let spelled = match &raw {
        RawValue::Int(level) => match level {
            0 => "notset",
            10 => "debug",
            20 => "info",
            30 => "warning",
            40 => "error",
            50 => "critical",
            _ => "",
        }
        .to_owned(),
        RawValue::Str(text) => match text.trim().to_lowercase().as_str() {
            "warn" => "warning".to_owned(),
            "fatal" => "critical".to_owned(),
            other => other.to_owned(),
        },
        _ => String::new(),
    };
    let refused = || {
        Error::invalid(
            "log_level",
            raw.render(),
            format!(
                "expected one of {} (or 0 to 50 in steps of 10)",
                setting.choices.join(", ")
            ),
        )
    };
    if spelled.is_empty() {
        return Err(refused());
    }
    sources::parse_choice(setting, &RawValue::Str(spelled))
        .map(|name| Some(name.to_uppercase()))
        .map_err(|_| refused())
}

/// The `user` value that leaves the column empty, for a team that must not record names. An
/// empty value cannot say it: every layer reads an empty value as not given.
pub const NO_USER: &str = "-";

/// Who runs this process: the `user` setting when given ([`NO_USER`] leaves the column
/// empty), else the login name from the environment, else nothing.
fn user(setting: Option<String>, env: &Environment) -> Option<String> {
    match setting {
        Some(name) => Some(name.trim().to_owned()).filter(|name| name != NO_USER),
        None => ["USER", "LOGNAME", "USERNAME"]
            .iter()
            .find_map(|key| env.vars.get(*key))
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty()),
    }
}

/// The machine's name: the kernel's, else `$HOSTNAME`, else `localhost`.
fn hostname(env: &Environment) -> String {
    sysinfo::System::host_name()
        .ok()
        .or_else(|| env.vars.get("HOSTNAME").cloned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The grid settings alone (location, forced figure, live and forecast sources), validated as
/// [`Config::resolve`] validates them: for `carbonmeter wait`, which measures nothing.
pub fn resolve_intensity(
    kwargs: BTreeMap<String, RawValue>,
    env: Environment,
) -> Result<IntensityConfig> {
    sources::unserved_kwargs(&kwargs)?;
    let mut layers = Layers::new(kwargs, env)?;
    intensity(&mut layers)
}

impl Config {
    /// Validates `kwargs` layered over `env`. Unknown keyword arguments are an error; unserved
    /// CodeCarbon ones are listed in [`Config::unserved`].
    pub fn resolve(kwargs: BTreeMap<String, RawValue>, env: Environment) -> Result<Self> {
        let unserved = sources::unserved_kwargs(&kwargs)?;
        let mut layers = Layers::new(kwargs, env)?;
        let measure_power_secs =
            required("measure_power_secs", layers.number("measure_power_secs")?)?;
        let pue = required("pue", layers.number("pue")?)?;
        let wue = layers.number("wue")?;
        let hardware_lifetime_years = required(
            "hardware_lifetime_years",
            layers.number("hardware_lifetime_years")?,
        )?;
        let output = output(&mut layers)?;
        let log_level = log_level(&mut layers)?;
        let meter = meter(&mut layers)?;
        let rank = layers.number("rank")?.map(|r| r as u32);
        let sync = match layers.choice("sync")? {
            Some("torch") => SyncMode::Torch,
            _ => SyncMode::None,
        };
        // Validated for CodeCarbon parity; every carbonmeter tracker may run beside others.
        layers.flag("allow_multiple_runs")?;
        let intensity = intensity(&mut layers)?;
        let psu_efficiency = layers.number("psu_efficiency")?;
        let budget = budget(&mut layers)?;
        let host = match layers.text("host")? {
            Some(host) if !host.trim().is_empty() => host.trim().to_owned(),
            _ => hostname(&layers.env),
        };
        let user = user(layers.text("user")?, &layers.env);
        let job = crate::job::detect(&layers.env.vars);
        let job_wait_s = required("job_wait_secs", layers.number("job_wait_secs")?)?;
        let export = export(&mut layers)?;
        let log_metrics = text_list(&mut layers, "log_metrics")?;
        Ok(Self {
            host,
            user,
            job,
            job_wait_s,
            project_name: required("project_name", layers.text("project_name")?)?,
            experiment_id: required("experiment_id", layers.text("experiment_id")?)?,
            experiment_name: experiment_name(&mut layers)?,
            measure_power_secs,
            output,
            log_level,
            intensity,
            pue,
            wue,
            hardware_lifetime_years,
            meter,
            rank,
            sync,
            psu_efficiency,
            budget,
            export,
            unserved,
            origins: std::mem::take(&mut layers.origins),
            log_metrics,
        })
    }
}
#[cfg(test)]
#[allow(
    clippy::float_cmp,
    reason = "the values compared are exact: parsed or zero"
)]
mod tests {
    use super::*;

    fn kwargs(pairs: &[(&str, RawValue)]) -> BTreeMap<String, RawValue> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn env_with(vars: &[(&str, &str)], cwd: Option<PathBuf>) -> Environment {
        Environment {
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            cwd,
            home: None,
        }
    }

    #[test]
    fn a_wandb_sweeps_runs_share_an_experiment_name_unless_one_is_set() {
        let sweep = env_with(&[(WANDB_SWEEP_ENV, "abc123")], None);
        let config = Config::resolve(kwargs(&[]), sweep.clone()).expect("config");
        assert_eq!(config.experiment_name, "wandb-sweep-abc123");
        let named = kwargs(&[("experiment_name", RawValue::Str("mine".to_owned()))]);
        let config = Config::resolve(named, sweep).expect("config");
        assert_eq!(config.experiment_name, "mine");
        let config = Config::resolve(kwargs(&[]), env_with(&[], None)).expect("config");
        assert_eq!(config.experiment_name, "base");
    }

    #[test]
    fn defaults_match_codecarbon() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config::resolve(
            kwargs(&[(
                "output_dir",
                RawValue::Str(dir.path().display().to_string()),
            )]),
            env_with(&[], None),
        )
        .expect("config");
        assert_eq!(config.measure_power_secs, 15.0);
        assert_eq!(config.project_name, "codecarbon");
        assert_eq!(config.experiment_id, schema::DEFAULT_EXPERIMENT_ID);
        assert_eq!(config.pue, 1.0);
        assert_eq!(config.output.path, Some(dir.path().join("emissions.csv")));
        assert!(config.meter.sources.rapl_include_dram);
    }

    #[test]
    fn user_is_the_login_name_unless_set_or_blanked() {
        let resolve = |pairs: &[(&str, RawValue)], vars: &[(&str, &str)]| {
            let mut all = vec![("save_to_file", RawValue::Bool(false))];
            all.extend_from_slice(pairs);
            Config::resolve(kwargs(&all), env_with(vars, None))
                .expect("config")
                .user
        };
        let login = [("LOGNAME", "lin"), ("USER", "ada")];
        assert_eq!(resolve(&[], &login).as_deref(), Some("ada"));
        assert_eq!(resolve(&[], &[("LOGNAME", "lin")]).as_deref(), Some("lin"));
        assert_eq!(resolve(&[], &[]), None);
        let named = [("user", RawValue::Str(" grace ".into()))];
        assert_eq!(resolve(&named, &login).as_deref(), Some("grace"));
        assert_eq!(
            resolve(&[("user", RawValue::Str(NO_USER.into()))], &login),
            None
        );
        let blanked = [("CARBONMETER_USER", "-"), ("USER", "ada")];
        assert_eq!(resolve(&[], &blanked), None);
    }

    #[test]
    fn kwarg_beats_env_beats_cwd_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(".codecarbon.config"),
            "[codecarbon]\nproject_name = from-file\npue = 1.3\nmeasure_power_secs=2\n",
        )
        .expect("config file");
        let env = env_with(
            &[
                ("CODECARBON_PUE", "1.2"),
                ("CARBONMETER_PROJECT_NAME", "from-env"),
            ],
            Some(dir.path().to_owned()),
        );
        let config = Config::resolve(
            kwargs(&[
                ("project_name", RawValue::Str("from-kwarg".into())),
                ("save_to_file", RawValue::Bool(false)),
            ]),
            env,
        )
        .expect("config");
        assert_eq!(config.project_name, "from-kwarg");
        assert_eq!(config.pue, 1.2);
        assert_eq!(config.measure_power_secs, 2.0);
        assert_eq!(config.output.path, None);
    }

    #[test]
    fn bad_values_name_the_value_and_what_is_allowed() {
        let cases = [
            ("pue", RawValue::Float(0.5), "pue=0.5"),
            (
                "measure_power_secs",
                RawValue::Int(-1),
                "measure_power_secs=-1",
            ),
            (
                "tracking_mode",
                RawValue::Str("gpu".into()),
                "tracking_mode=\"gpu\"",
            ),
            (
                "save_to_file",
                RawValue::Str("maybe".into()),
                "save_to_file=\"maybe\"",
            ),
            (
                "on_csv_write",
                RawValue::Str("overwrite".into()),
                "on_csv_write=\"overwrite\"",
            ),
        ];
        for (key, value, expected) in cases {
            let err = Config::resolve(kwargs(&[(key, value)]), env_with(&[], None)).expect_err(key);
            let message = err.to_string();
            assert!(message.contains(expected), "{message}");
            assert!(message.contains("expected"), "{message}");
        }
    }

    #[test]
    fn token_from_kwarg_alias_or_env_and_never_in_debug() {
        let resolve = |pairs: &[(&str, RawValue)], vars: &[(&str, &str)]| {
            let mut all = pairs.to_vec();
            all.push(("save_to_file", RawValue::Bool(false)));
            Config::resolve(kwargs(&all), env_with(vars, None)).expect("config")
        };
        let secret = |token: &str| Secret::new(token);
        let config = resolve(
            &[("co2_signal_api_token", RawValue::Str("alias-tok".into()))],
            &[("ELECTRICITYMAPS_API_TOKEN", "env-tok")],
        );
        assert_eq!(config.intensity.live.token, secret("alias-tok"));
        assert!(config.unserved.is_empty());
        assert!(!format!("{config:?}").contains("alias-tok"));
        let config = resolve(&[], &[("ELECTRICITYMAPS_API_TOKEN", "env-tok")]);
        assert_eq!(config.intensity.live.token, secret("env-tok"));
        let config = resolve(
            &[("electricitymaps_api_token", RawValue::Str("kw".into()))],
            &[("CARBONMETER_HOUR_S", "2"), ("TZ", "Europe/Paris")],
        );
        assert_eq!(config.intensity.live.token, secret("kw"));
        assert_eq!(config.intensity.live.hour_s, 2.0);
        assert_eq!(config.intensity.tz.as_deref(), Some("Europe/Paris"));
        assert_eq!(resolve(&[], &[]).intensity.live.token, None);
        let err = Config::resolve(
            kwargs(&[("save_to_file", RawValue::Bool(false))]),
            env_with(&[("CARBONMETER_HOUR_S", "-1")], None),
        )
        .expect_err("bad hour");
        assert!(err.to_string().contains("CARBONMETER_HOUR_S"));
    }

    #[test]
    fn unknown_kwarg_is_refused_and_unserved_is_listed() {
        let err = Config::resolve(kwargs(&[("colour", RawValue::Int(1))]), env_with(&[], None))
            .expect_err("unknown");
        assert!(matches!(err, Error::UnknownSetting { .. }));
        let config = Config::resolve(
            kwargs(&[
                ("save_to_api", RawValue::Bool(true)),
                ("save_to_file", RawValue::Bool(false)),
            ]),
            env_with(&[], None),
        )
        .expect("config");
        assert_eq!(config.unserved, vec!["save_to_api".to_owned()]);
    }
}
