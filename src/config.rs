//! Settings resolved as CodeCarbon resolves them: keyword argument, then environment
//! (`CARBONMETER_<KEY>`, then `CODECARBON_<KEY>`), then `.codecarbon.config` in the working
//! directory, then in the home directory, then the default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::gpu::{DEFAULT_GPU_POLL_S, GpuConfig};
use crate::intensity::live::{self, LiveSettings, Secret};
use crate::meter::MeterConfig;
use crate::output::csv::WriteMode;
use crate::sensors::TrackingMode;
use crate::sensors::rapl::{DEFAULT_POWERCAP_ROOT, POWERCAP_ROOT_ENV};

/// A setting's value before validation, whatever layer it came from.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// Text (environment and config files always give text).
    Str(String),
    /// A float.
    Float(f64),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A list (`gpu_ids`).
    List(Vec<String>),
}

impl RawValue {
    fn render(&self) -> String {
        match self {
            Self::Str(text) => format!("{text:?}"),
            Self::Float(number) => number.to_string(),
            Self::Int(number) => number.to_string(),
            Self::Bool(true) => "True".to_owned(),
            Self::Bool(false) => "False".to_owned(),
            Self::List(items) => format!("{items:?}"),
        }
    }
}

/// Settings carbonmeter serves, with what each accepts.
pub const SERVED: &[&str] = &[
    "project_name",
    "experiment_id",
    "experiment_name",
    "measure_power_secs",
    "output_dir",
    "output_file",
    "save_to_file",
    "log_level",
    "tracking_mode",
    "gpu_ids",
    "country_iso_code",
    "country_2letter_iso_code",
    "region",
    "cloud_provider",
    "cloud_region",
    "pue",
    "wue",
    "on_csv_write",
    "force_cpu_power",
    "force_ram_power",
    "force_carbon_intensity_g_co2e_kwh",
    "force_mode_cpu_load",
    "rapl_include_dram",
    "rapl_prefer_psys",
    "allow_multiple_runs",
    "default_cpu_power",
    "powercap_root",
    "rank",
    "sync",
    "electricitymaps_api_token",
    "co2_signal_api_token",
    "electricitymaps_base_url",
    "electricitymaps_zone",
    "nvml_library",
    "gpu_poll_secs",
    // Issue 15: wall energy and the carbon budget.
    "psu_efficiency",
    "co2_budget_kg",
    "stop_over_budget",
];

/// CodeCarbon arguments for services carbonmeter does not offer: accepted with one warning, so
/// code written for CodeCarbon runs unchanged.
pub const UNSERVED: &[&str] = &[
    "api_call_interval",
    "api_endpoint",
    "api_key",
    "output_methods",
    "save_to_api",
    "save_to_logger",
    "logging_logger",
    "save_to_prometheus",
    "save_to_logfire",
    "prometheus_url",
    "output_handlers",
    "emissions_endpoint",
    "logger_preamble",
    "metadata",
];

/// What to wait for at window edges so a window counts only the work dispatched inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Nothing: edges are read when the Python call happens.
    #[default]
    None,
    /// `torch.cuda.synchronize()` when CUDA is in use.
    Torch,
}

impl SyncMode {
    /// Parses the `sync` setting.
    pub fn parse(value: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Ok(Self::None),
            "torch" => Ok(Self::Torch),
            _ => Err(Error::invalid(
                "sync",
                format!("{value:?}"),
                "expected \"torch\" or \"none\"",
            )),
        }
    }
}

/// The default `experiment_id`, CodeCarbon's.
pub const DEFAULT_EXPERIMENT_ID: &str = "5b0fa12a-3dd7-45bb-9766-cc326314d9f1";

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
    /// The CSV file, when rows are saved.
    pub output_path: Option<PathBuf>,
    /// Append or update.
    pub on_csv_write: WriteMode,
    /// Python logging level name, when one was set.
    pub log_level: Option<String>,
    /// GPU selection as given (resolved by the GPU sensor, in `meter.gpu`).
    pub gpu_ids: Option<Vec<String>>,
    /// Country setting as given (resolved by the intensity lookup), with the setting's name.
    pub country: Option<(&'static str, String)>,
    /// Region setting.
    pub region: Option<String>,
    /// Cloud provider setting.
    pub cloud_provider: Option<String>,
    /// Cloud region setting.
    pub cloud_region: Option<String>,
    /// Power usage effectiveness, >= 1.
    pub pue: f64,
    /// Water usage effectiveness, L/kWh, >= 0.
    pub wue: f64,
    /// A fixed grid intensity, g CO2eq/kWh.
    pub force_carbon_intensity_g_per_kwh: Option<f64>,
    /// Sensor choice.
    pub meter: MeterConfig,
    /// Distributed rank written in every row, when set.
    pub rank: Option<u32>,
    /// Wait for queued GPU work at window edges.
    pub sync: SyncMode,
    /// Electricity Maps token, URL and zone; hour length (shortened only by tests).
    pub live: LiveSettings,
    /// The `TZ` environment variable, for locating a run that names no location.
    pub tz: Option<String>,
    /// Share of the plug's energy the PSU delivers (0 to 1], for the `wall_energy` column.
    pub psu_efficiency: Option<f64>,
    /// The run's carbon budget, kg CO2eq: a warning once the projection's low end exceeds it.
    pub co2_budget_kg: Option<f64>,
    /// Ask the framework to stop after the epoch whose projection crossed `co2_budget_kg`.
    pub stop_over_budget: bool,
    /// Unserved CodeCarbon settings that were given (each warned about once).
    pub unserved: Vec<String>,
    /// Where each setting not from a keyword argument came from, for a debug line.
    pub origins: Vec<(String, String)>,
}

/// Where settings are looked up besides the keyword arguments.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// Environment variables.
    pub vars: BTreeMap<String, String>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Home directory.
    pub home: Option<PathBuf>,
}

impl Environment {
    /// The process's own environment.
    pub fn current() -> Self {
        Self {
            vars: std::env::vars().collect(),
            cwd: std::env::current_dir().ok(),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }
}

/// Reads the `[codecarbon]` (or `[carbonmeter]`) section of an INI file. A missing file is
/// empty; an unreadable one too, with one warning (CodeCarbon's configparser skips it silently).
fn read_config_file(path: &Path) -> BTreeMap<String, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
        Err(err) => {
            crate::once::warn_once(&format!("{} ignored: {err}", path.display()));
            return BTreeMap::new();
        }
    };
    let mut values = BTreeMap::new();
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = matches!(section.trim(), "codecarbon" | "carbonmeter");
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((key, value)) = line.split_once(['=', ':']) {
            values.insert(key.trim().to_lowercase(), value.trim().to_owned());
        }
    }
    values
}

struct Layers {
    kwargs: BTreeMap<String, RawValue>,
    env: Environment,
    cwd_file: BTreeMap<String, String>,
    home_file: BTreeMap<String, String>,
    origins: Vec<(String, String)>,
}

impl Layers {
    fn get(&mut self, key: &str) -> Option<RawValue> {
        if let Some(value) = self.kwargs.get(key) {
            return Some(value.clone());
        }
        let upper = key.to_uppercase();
        for prefix in ["CARBONMETER_", "CODECARBON_"] {
            let var = format!("{prefix}{upper}");
            if let Some(value) = self.env.vars.get(&var) {
                self.origins.push((key.to_owned(), var));
                return Some(RawValue::Str(value.clone()));
            }
        }
        for (file, origin) in [
            (&self.cwd_file, "./.codecarbon.config"),
            (&self.home_file, "~/.codecarbon.config"),
        ] {
            if let Some(value) = file.get(key) {
                self.origins.push((key.to_owned(), origin.to_owned()));
                return Some(RawValue::Str(value.clone()));
            }
        }
        None
    }

    fn string(&mut self, key: &str) -> Option<String> {
        self.get(key).map(|value| match value {
            RawValue::Str(text) => text,
            RawValue::List(items) => items.join(","),
            other => other.render(),
        })
    }

    fn float(&mut self, key: &str, allowed: &str, ok: impl Fn(f64) -> bool) -> Result<Option<f64>> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        let number = match &raw {
            RawValue::Float(number) => Some(*number),
            RawValue::Int(number) => Some(*number as f64),
            RawValue::Str(text) => text.trim().parse().ok(),
            RawValue::Bool(_) | RawValue::List(_) => None,
        };
        match number {
            Some(number) if number.is_finite() && ok(number) => Ok(Some(number)),
            _ => Err(Error::invalid(key, raw.render(), allowed)),
        }
    }

    fn boolean(&mut self, key: &str) -> Result<Option<bool>> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        let parsed = match &raw {
            RawValue::Bool(flag) => Some(*flag),
            RawValue::Int(0) => Some(false),
            RawValue::Int(1) => Some(true),
            RawValue::Str(text) => match text.trim().to_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Some(true),
                "false" | "0" | "no" | "off" => Some(false),
                _ => None,
            },
            _ => None,
        };
        parsed
            .map(Some)
            .ok_or_else(|| Error::invalid(key, raw.render(), "expected True or False"))
    }
}

/// Hidden test settings (environment only): the length of an "hour" for hourly intensity, and
/// the live request timeout, both in seconds.
pub const HOUR_S_ENV: &str = "CARBONMETER_HOUR_S";
/// See [`HOUR_S_ENV`].
pub const LIVE_TIMEOUT_S_ENV: &str = "CARBONMETER_LIVE_TIMEOUT_S";

fn resolve_live(layers: &mut Layers) -> Result<LiveSettings> {
    // Keyword arguments first (either name), then each name through the other layers, then
    // Electricity Maps' own variable.
    let token = ["electricitymaps_api_token", "co2_signal_api_token"]
        .iter()
        .find_map(|key| match layers.kwargs.get(*key) {
            Some(RawValue::Str(text)) => Some(text.clone()),
            _ => None,
        })
        .or_else(|| layers.string("electricitymaps_api_token"))
        .or_else(|| layers.string("co2_signal_api_token"))
        .or_else(|| layers.env.vars.get(live::TOKEN_ENV).cloned());
    let env_seconds = |layers: &Layers, var: &str| -> Result<Option<f64>> {
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
    };
    let defaults = LiveSettings::default();
    Ok(LiveSettings {
        token: token.as_deref().and_then(Secret::new),
        base_url: layers
            .string("electricitymaps_base_url")
            .unwrap_or(defaults.base_url),
        zone: layers
            .string("electricitymaps_zone")
            .map(|zone| zone.trim().to_owned())
            .filter(|zone| !zone.is_empty()),
        timeout_s: env_seconds(layers, LIVE_TIMEOUT_S_ENV)?.unwrap_or(defaults.timeout_s),
        hour_s: env_seconds(layers, HOUR_S_ENV)?.unwrap_or(defaults.hour_s),
    })
}

fn log_level_name(raw: &RawValue) -> Result<String> {
    let name = match raw {
        RawValue::Int(level) => match level {
            0 => Some("NOTSET"),
            10 => Some("DEBUG"),
            20 => Some("INFO"),
            30 => Some("WARNING"),
            40 => Some("ERROR"),
            50 => Some("CRITICAL"),
            _ => None,
        },
        RawValue::Str(text) => match text.trim().to_uppercase().as_str() {
            "NOTSET" => Some("NOTSET"),
            "DEBUG" => Some("DEBUG"),
            "INFO" => Some("INFO"),
            "WARN" | "WARNING" => Some("WARNING"),
            "ERROR" => Some("ERROR"),
            "CRITICAL" | "FATAL" => Some("CRITICAL"),
            _ => None,
        },
        _ => None,
    };
    name.map(str::to_owned).ok_or_else(|| {
        Error::invalid(
            "log_level",
            raw.render(),
            "expected one of debug, info, warning, error, critical (or 10 to 50)",
        )
    })
}

impl Config {
    /// Validates `kwargs` layered over `env`. Unknown keyword arguments are an error; unserved
    /// CodeCarbon ones are listed in [`Config::unserved`].
    pub fn resolve(kwargs: BTreeMap<String, RawValue>, env: Environment) -> Result<Self> {
        let mut unserved = Vec::new();
        for key in kwargs.keys() {
            if UNSERVED.contains(&key.as_str()) {
                unserved.push(key.clone());
            } else if !SERVED.contains(&key.as_str()) {
                return Err(Error::UnknownSetting {
                    name: key.clone(),
                    known: SERVED.join(", "),
                });
            }
        }
        let cwd_file = env
            .cwd
            .as_ref()
            .map(|cwd| read_config_file(&cwd.join(".codecarbon.config")))
            .unwrap_or_default();
        let home_file = env
            .home
            .as_ref()
            .map(|home| read_config_file(&home.join(".codecarbon.config")))
            .unwrap_or_default();
        let mut layers = Layers {
            kwargs,
            env,
            cwd_file,
            home_file,
            origins: Vec::new(),
        };

        let measure_power_secs = layers
            .float("measure_power_secs", "expected seconds > 0", |s| s > 0.0)?
            .unwrap_or(15.0);
        let pue = layers
            .float("pue", "expected a PUE >= 1.0 (1.0 = no overhead)", |p| {
                p >= 1.0
            })?
            .unwrap_or(1.0);
        let wue = layers
            .float("wue", "expected litres per kWh >= 0", |w| w >= 0.0)?
            .unwrap_or(0.0);
        let non_negative_w = "expected watts >= 0";
        let force_cpu_power_w = layers.float("force_cpu_power", non_negative_w, |w| w >= 0.0)?;
        let force_ram_power_w = layers.float("force_ram_power", non_negative_w, |w| w >= 0.0)?;
        let default_cpu_power_w =
            layers.float("default_cpu_power", "expected watts > 0", |w| w > 0.0)?;
        let force_carbon_intensity_g_per_kwh = layers.float(
            "force_carbon_intensity_g_co2e_kwh",
            "expected g CO2eq per kWh >= 0",
            |g| g >= 0.0,
        )?;
        let tracking_mode = match layers.string("tracking_mode") {
            Some(mode) => TrackingMode::parse(&mode)?,
            None => TrackingMode::Machine,
        };
        let on_csv_write = match layers.string("on_csv_write") {
            Some(mode) => WriteMode::parse(&mode)?,
            None => WriteMode::Append,
        };
        let log_level = layers
            .get("log_level")
            .map(|raw| log_level_name(&raw))
            .transpose()?;
        let gpu_ids = layers.get("gpu_ids").map(|raw| match raw {
            RawValue::List(items) => items,
            RawValue::Str(text) => text
                .split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect(),
            other => vec![other.render()],
        });
        let save_to_file = layers.boolean("save_to_file")?.unwrap_or(true);
        let output_dir = PathBuf::from(layers.string("output_dir").unwrap_or_else(|| ".".into()));
        let output_file = layers
            .string("output_file")
            .unwrap_or_else(|| "emissions.csv".into());
        if save_to_file && !output_dir.is_dir() {
            return Err(Error::invalid(
                "output_dir",
                format!("{:?}", output_dir.display().to_string()),
                "expected an existing folder",
            ));
        }
        let output_path = save_to_file.then(|| output_dir.join(output_file));
        let country = match layers.string("country_iso_code") {
            Some(country) => Some(("country_iso_code", country)),
            None => layers
                .string("country_2letter_iso_code")
                .map(|country| ("country_2letter_iso_code", country)),
        };
        let powercap_root = layers
            .string("powercap_root")
            .or_else(|| layers.env.vars.get(POWERCAP_ROOT_ENV).cloned())
            .unwrap_or_else(|| DEFAULT_POWERCAP_ROOT.to_owned());
        let gpu_poll_s = layers
            .float("gpu_poll_secs", "expected seconds > 0 and <= 10", |s| {
                s > 0.0 && s <= 10.0
            })?
            .unwrap_or(DEFAULT_GPU_POLL_S);
        let gpu = GpuConfig {
            nvml_library: layers.string("nvml_library").map(PathBuf::from),
            gpu_ids: gpu_ids.clone(),
            cuda_visible_devices: layers.env.vars.get("CUDA_VISIBLE_DEVICES").cloned(),
            poll_interval_s: gpu_poll_s,
            ..GpuConfig::default()
        };
        let meter = MeterConfig {
            powercap_root: PathBuf::from(powercap_root),
            tracking_mode,
            rapl_include_dram: layers.boolean("rapl_include_dram")?.unwrap_or(true),
            rapl_prefer_psys: layers.boolean("rapl_prefer_psys")?.unwrap_or(false),
            force_mode_cpu_load: layers.boolean("force_mode_cpu_load")?.unwrap_or(false),
            force_cpu_power_w,
            force_ram_power_w,
            default_cpu_power_w,
            gpu,
        };
        let rank = layers
            .float("rank", "expected a whole number >= 0", |r| {
                r >= 0.0 && r.fract() == 0.0
            })?
            .map(|r| r as u32);
        let sync = match layers.string("sync") {
            Some(mode) => SyncMode::parse(&mode)?,
            None => SyncMode::None,
        };
        // Validated for CodeCarbon parity; every carbonmeter tracker may run beside others.
        layers.boolean("allow_multiple_runs")?;
        let live = resolve_live(&mut layers)?;
        let psu_efficiency = layers.float(
            "psu_efficiency",
            "expected a share > 0.0 and <= 1.0 (0.92 for an 80 PLUS Platinum PSU at half load)",
            |e| e > 0.0 && e <= 1.0,
        )?;
        let co2_budget_kg =
            layers.float("co2_budget_kg", "expected kg CO2eq > 0.0", |kg| kg > 0.0)?;
        let stop_over_budget = layers.boolean("stop_over_budget")?.unwrap_or(false);
        if stop_over_budget && co2_budget_kg.is_none() {
            return Err(Error::invalid(
                "stop_over_budget",
                "True".to_owned(),
                "expected co2_budget_kg=<kg> beside it: there is no budget to stop at",
            ));
        }
        Ok(Self {
            project_name: layers
                .string("project_name")
                .unwrap_or_else(|| "codecarbon".into()),
            experiment_id: layers
                .string("experiment_id")
                .unwrap_or_else(|| DEFAULT_EXPERIMENT_ID.into()),
            experiment_name: layers
                .string("experiment_name")
                .unwrap_or_else(|| "base".into()),
            measure_power_secs,
            output_path,
            on_csv_write,
            log_level,
            gpu_ids,
            country,
            region: layers.string("region"),
            cloud_provider: layers.string("cloud_provider"),
            cloud_region: layers.string("cloud_region"),
            pue,
            wue,
            force_carbon_intensity_g_per_kwh,
            meter,
            rank,
            sync,
            live,
            tz: layers.env.vars.get("TZ").cloned(),
            psu_efficiency,
            co2_budget_kg,
            stop_over_budget,
            unserved,
            origins: std::mem::take(&mut layers.origins),
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
        assert_eq!(config.experiment_id, DEFAULT_EXPERIMENT_ID);
        assert_eq!(config.pue, 1.0);
        assert_eq!(config.output_path, Some(dir.path().join("emissions.csv")));
        assert!(config.meter.rapl_include_dram);
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
        assert_eq!(config.output_path, None);
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
        assert_eq!(config.live.token, secret("alias-tok"));
        assert!(config.unserved.is_empty());
        assert!(!format!("{config:?}").contains("alias-tok"));
        let config = resolve(&[], &[("ELECTRICITYMAPS_API_TOKEN", "env-tok")]);
        assert_eq!(config.live.token, secret("env-tok"));
        let config = resolve(
            &[("electricitymaps_api_token", RawValue::Str("kw".into()))],
            &[("CARBONMETER_HOUR_S", "2"), ("TZ", "Europe/Paris")],
        );
        assert_eq!(config.live.token, secret("kw"));
        assert_eq!(config.live.hour_s, 2.0);
        assert_eq!(config.tz.as_deref(), Some("Europe/Paris"));
        assert_eq!(resolve(&[], &[]).live.token, None);
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
