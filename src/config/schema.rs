//! Every setting carbonmeter accepts, in one table: its name, kind, default, allowed values
//! and one-line doc. The parser ([`super::sources`]), `_core.SETTINGS`, the CLI flags and their
//! help, the `.pyi` keyword check and the docs' check all read this table, so a setting is
//! spelled once.
//!
//! # Adding a setting
//!
//! 1. Add one row to [`SETTINGS`] below: name, [`Kind`], default, choices or [`Range`], doc
//!    (`served: true` unless it is a CodeCarbon option carbonmeter only accepts with a warning).
//!    Wrap it in `trusted(..)` (or use `endpoint(..)`) when it loads code, names an endpoint,
//!    a tree to read or a place to write ([`Trust`]); its size bound comes from its kind
//!    ([`Setting::max_chars`]) unless the row sets one.
//! 2. Add the field where its layer consumes it (for example `psu_efficiency` in
//!    `meter::MeterConfig`, `prometheus_url` in the exporter's config) and read it in that
//!    layer's piece of `config/mod.rs` with the typed getter of its kind
//!    (`layers.number("psu_efficiency")?`, `layers.text(..)`, `layers.flag(..)`,
//!    `layers.choice(..)`): validation and the default come from the row.
//! 3. Add the keyword to `EmissionsTracker.__new__` in `python/carbonmeter/_core.pyi` and the
//!    name to the Settings list of `docs/settings.md`; `tests/test_settings.py` fails until both
//!    match.
//!
//! The CLI flag (`--psu-efficiency`) with its help text appears by itself.

use crate::export::DEFAULT_PROMETHEUS_URL;
use crate::gpu::DEFAULT_GPU_POLL_S;
use crate::gpu::hwmon::DEFAULT_HWMON_ROOT;
use crate::intensity::live::{DEFAULT_BASE_URL, NESO_BASE_URL};
use crate::sensors::rapl::DEFAULT_POWERCAP_ROOT;

/// What a setting holds; decides its parser, its CLI flag and its Python type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text.
    Str,
    /// A file or folder path.
    Path,
    /// A secret (a token): never logged.
    Secret,
    /// A number, checked against the row's [`Range`].
    Float,
    /// A whole number, checked against the row's [`Range`].
    Int,
    /// True or False.
    Bool,
    /// One of the row's choices.
    Choice,
    /// A list of text items (comma-separated in the environment and config files).
    List,
    /// A Python object handled by the bindings (`loggers`).
    Object,
    /// An unserved CodeCarbon option: any value, accepted with one warning.
    Any,
}

impl Kind {
    /// The name `_core.SETTINGS` gives the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Str => "str",
            Self::Path => "path",
            Self::Secret => "secret",
            Self::Float => "float",
            Self::Int => "int",
            Self::Bool => "bool",
            Self::Choice => "choice",
            Self::List => "list",
            Self::Object => "object",
            Self::Any => "any",
        }
    }
}

/// Who may set a setting from a config file; keyword arguments and the environment may set
/// anything (see `docs/settings.md`, "Config files").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Any layer, a file someone else can write included: the setting names the run, places
    /// its grid or tunes the measurement.
    Any,
    /// Keyword arguments, the environment, or a config file the user (or root) owns that no
    /// one else can write, in a folder no one else can write: the setting loads code, picks an
    /// endpoint that receives a secret or data, a tree that is read or a place that is written.
    TrustedSourceOnly,
}

impl Trust {
    /// The name `_core.SETTINGS` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::TrustedSourceOnly => "trusted_source_only",
        }
    }
}

/// The longest value of a kind, in characters, unless its row says otherwise: a name fits in
/// 256 (a row repeats it), a path in Linux's `PATH_MAX`, a number, flag or choice in 64.
const fn default_max_chars(kind: Kind) -> Option<usize> {
    match kind {
        Kind::Str => Some(256),
        Kind::Path => Some(4096),
        Kind::Secret | Kind::List => Some(1024),
        Kind::Float | Kind::Int | Kind::Bool | Kind::Choice => Some(64),
        Kind::Object | Kind::Any => None,
    }
}

/// The longest URL accepted (endpoints).
const URL_MAX_CHARS: usize = 2048;

/// A setting's default, typed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultValue {
    /// No default: the setting is unset unless given.
    Unset,
    /// Text (also paths and choices).
    Str(&'static str),
    /// A number.
    Float(f64),
    /// A flag.
    Bool(bool),
}

/// Allowed numbers: `min` (inclusive or not), at most `max`, whole or not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// The lower bound.
    pub min: f64,
    /// Whether `min` itself is allowed.
    pub min_inclusive: bool,
    /// The upper bound (inclusive), if any.
    pub max: Option<f64>,
    /// Only whole numbers.
    pub whole: bool,
    /// What the number counts, for the message (`seconds`, `watts`).
    pub unit: &'static str,
}

impl Range {
    const fn above(min: f64, unit: &'static str) -> Self {
        Self {
            min,
            min_inclusive: false,
            max: None,
            whole: false,
            unit,
        }
    }

    const fn at_least(min: f64, unit: &'static str) -> Self {
        Self {
            min,
            min_inclusive: true,
            max: None,
            whole: false,
            unit,
        }
    }

    /// Whether `number` is allowed.
    pub fn contains(&self, number: f64) -> bool {
        let above = if self.min_inclusive {
            number >= self.min
        } else {
            number > self.min
        };
        number.is_finite()
            && above
            && self.max.is_none_or(|max| number <= max)
            && (!self.whole || number.fract() == 0.0)
    }

    /// What is allowed, for the error message: `expected seconds > 0.0 and <= 10.0`.
    pub fn allowed(&self) -> String {
        // `1.0`, not `1`, so a PUE bound reads as the ratio it is; whole numbers stay whole.
        let show = |bound: f64| {
            if self.whole {
                format!("{bound}")
            } else {
                format!("{bound:?}")
            }
        };
        let op = if self.min_inclusive { ">=" } else { ">" };
        let max = self
            .max
            .map_or_else(String::new, |max| format!(" and <= {}", show(max)));
        format!("expected {} {op} {}{max}", self.unit, show(self.min))
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setting {
    /// The keyword argument (`CARBONMETER_<NAME>` in the environment).
    pub name: &'static str,
    /// What it holds.
    pub kind: Kind,
    /// Its value when no layer sets it.
    pub default: DefaultValue,
    /// Allowed values of a [`Kind::Choice`], canonical spelling first in each pair's list.
    pub choices: &'static [&'static str],
    /// Allowed numbers of a [`Kind::Float`] or [`Kind::Int`].
    pub range: Option<Range>,
    /// Another name for this setting (`co2_signal_api_token`), not a flag of its own.
    pub alias_of: Option<&'static str>,
    /// Whether carbonmeter acts on it (false: a CodeCarbon option accepted with a warning).
    pub served: bool,
    /// Who may set it from a config file.
    pub trust: Trust,
    /// The longest value accepted from any layer, in characters (`None`: not text).
    pub max_chars: Option<usize>,
    /// One line for the CLI help and `_core.SETTINGS`.
    pub doc: &'static str,
}

const fn row(name: &'static str, kind: Kind, default: DefaultValue, doc: &'static str) -> Setting {
    Setting {
        name,
        kind,
        default,
        choices: &[],
        range: None,
        alias_of: None,
        served: true,
        trust: Trust::Any,
        max_chars: default_max_chars(kind),
        doc,
    }
}

/// `setting`, settable only from a trusted source ([`Trust::TrustedSourceOnly`]).
const fn trusted(setting: Setting) -> Setting {
    Setting {
        trust: Trust::TrustedSourceOnly,
        ..setting
    }
}

/// An endpoint: a URL (longer than a name), settable only from a trusted source.
const fn endpoint(name: &'static str, default: DefaultValue, doc: &'static str) -> Setting {
    Setting {
        max_chars: Some(URL_MAX_CHARS),
        ..trusted(row(name, Kind::Str, default, doc))
    }
}

const fn number(
    name: &'static str,
    default: DefaultValue,
    range: Range,
    doc: &'static str,
) -> Setting {
    Setting {
        range: Some(range),
        ..row(name, Kind::Float, default, doc)
    }
}

const fn choice(
    name: &'static str,
    choices: &'static [&'static str],
    default: DefaultValue,
    doc: &'static str,
) -> Setting {
    Setting {
        choices,
        ..row(name, Kind::Choice, default, doc)
    }
}

const fn unserved(name: &'static str) -> Setting {
    Setting {
        served: false,
        ..row(
            name,
            Kind::Any,
            DefaultValue::Unset,
            "CodeCarbon option for a service carbonmeter does not offer: accepted, ignored",
        )
    }
}

/// The default `experiment_id`, CodeCarbon's.
pub const DEFAULT_EXPERIMENT_ID: &str = "5b0fa12a-3dd7-45bb-9766-cc326314d9f1";

use DefaultValue::{Bool, Float, Str, Unset};

/// Every setting, served first, then CodeCarbon's unserved ones. One line per row, so adding
/// a setting is one line.
#[rustfmt::skip]
pub const SETTINGS: &[Setting] = &[
    row("project_name", Kind::Str, Str("codecarbon"), "groups runs in reports"),
    row("experiment_id", Kind::Str, Str(DEFAULT_EXPERIMENT_ID), "groups runs of one experiment"),
    row("experiment_name", Kind::Str, Str("base"), "a name for the experiment"),
    number("measure_power_secs", Float(15.0), Range { max: Some(86_400.0), ..Range::above(0.0, "seconds") }, "seconds between sensor reads"),
    trusted(row("output_dir", Kind::Path, Str("."), "folder of the CSV file (created by `carbonmeter run`)")),
    Setting { max_chars: Some(255), ..trusted(row("output_file", Kind::Str, Str("emissions.csv"), "name of the CSV file")) },
    row("save_to_file", Kind::Bool, Bool(true), "append rows to the CSV file"),
    choice("log_level", &["debug", "info", "warning", "error", "critical", "notset"], Unset, "level of the Python logger `carbonmeter` (or 0 to 50)"),
    choice("tracking_mode", &["machine", "process"], Str("machine"), "measure the whole machine or this process tree"),
    row("gpu_ids", Kind::List, Unset, "GPUs to measure: NVML indexes or UUIDs (wins over CUDA_VISIBLE_DEVICES)"),
    row("country_iso_code", Kind::Str, Unset, "country of the grid: ISO 3166-1 alpha-3 (FRA), alpha-2 or English name"),
    row("country_2letter_iso_code", Kind::Str, Unset, "country of the grid, ISO 3166-1 alpha-2 (FR)"),
    row("region", Kind::Str, Unset, "sub-national grid: US-CA, CA-QC, CN-GD, SE3 or an English name"),
    row("cloud_provider", Kind::Str, Unset, "cloud provider (aws, azure, gcp), with cloud_region"),
    row("cloud_region", Kind::Str, Unset, "cloud region (europe-west1), with cloud_provider"),
    number("pue", Float(1.0), Range { max: Some(10.0), ..Range::at_least(1.0, "a PUE") }, "power usage effectiveness of the data centre (1.0 = no overhead)"),
    number("wue", Unset, Range { max: Some(100.0), ..Range::at_least(0.0, "litres per kWh") }, "on-site water usage effectiveness, litres per kWh of IT energy (default: the cloud region's published figure; water_consumed reads 0 without it)"),
    choice("on_csv_write", &["append", "update"], Str("append"), "append a row per run, or update the run's row"),
    number("force_cpu_power", Unset, Range { max: Some(1e6), ..Range::at_least(0.0, "watts") }, "a fixed CPU power in W instead of any measurement"),
    number("force_ram_power", Unset, Range { max: Some(1e6), ..Range::at_least(0.0, "watts") }, "a fixed RAM power in W instead of any measurement"),
    number("force_carbon_intensity_g_co2e_kwh", Unset, Range { max: Some(10_000.0), ..Range::at_least(0.0, "g CO2eq per kWh") }, "a fixed grid intensity, g CO2eq/kWh"),
    row("force_mode_cpu_load", Kind::Bool, Bool(false), "estimate CPU power from load x TDP even where RAPL is readable"),
    row("rapl_include_dram", Kind::Bool, Bool(true), "count RAPL dram zones as RAM energy"),
    row("rapl_prefer_psys", Kind::Bool, Bool(false), "count RAPL psys as CPU energy instead of the packages"),
    row("allow_multiple_runs", Kind::Bool, Bool(true), "accepted for CodeCarbon parity; every tracker may run beside others"),
    number("default_cpu_power", Unset, Range { max: Some(1e6), ..Range::above(0.0, "watts") }, "TDP of the whole CPU in W when its model is not in the table"),
    trusted(row("powercap_root", Kind::Path, Str(DEFAULT_POWERCAP_ROOT), "root of the powercap (RAPL) tree")),
    Setting { kind: Kind::Int, ..number("rank", Unset, Range { whole: true, max: Some(4_294_967_295.0), ..Range::at_least(0.0, "a whole number") }, "distributed rank written in every row") },
    row("host", Kind::Str, Unset, "the machine this process runs on (default: the hostname); ranks naming one host share its CPU, RAM and GPUs"),
    number("job_wait_secs", Float(30.0), Range { max: Some(3600.0), ..Range::above(0.0, "seconds") }, "seconds global rank 0 waits at an epoch edge for the other ranks' figures"),
    choice("sync", &["none", "torch"], Str("none"), "wait for queued GPU work at window edges (torch.cuda.synchronize)"),
    row("electricitymaps_api_token", Kind::Secret, Unset, "Electricity Maps token: hourly live intensity (or ELECTRICITYMAPS_API_TOKEN)"),
    Setting { alias_of: Some("electricitymaps_api_token"), ..row("co2_signal_api_token", Kind::Secret, Unset, "CodeCarbon's name for electricitymaps_api_token") },
    endpoint("electricitymaps_base_url", Str(DEFAULT_BASE_URL), "Electricity Maps API root"),
    row("electricitymaps_zone", Kind::Str, Unset, "Electricity Maps zone, when the location does not name one"),
    trusted(row("nvml_library", Kind::Path, Unset, "the NVML library to load (libnvidia-ml.so.1 by default)")),
    number("gpu_poll_secs", Float(DEFAULT_GPU_POLL_S), Range { max: Some(10.0), ..Range::above(0.0, "seconds") }, "seconds between GPU power polls"),
    Setting { range: Some(Range { max: Some(1.0), ..Range::above(0.0, "a share") }), ..row("psu_efficiency", Kind::Float, Unset, "share of the plug's energy the PSU delivers (0.92): adds wall_energy to each row") },
    number("co2_budget_kg", Unset, Range::above(0.0, "kg CO2eq"), "carbon budget of the run: warns once when the projection's low end exceeds it"),
    row("stop_over_budget", Kind::Bool, Bool(false), "with co2_budget_kg, the callbacks stop training after the epoch that crossed it"),
    // Fleet export (src/export/).
    row("save_to_prometheus", Kind::Bool, Bool(false), "push counters to a Prometheus Pushgateway at prometheus_url"),
    endpoint("prometheus_url", Str(DEFAULT_PROMETHEUS_URL), "Pushgateway address (host:port or URL), with save_to_prometheus"),
    trusted(row("prometheus_textfile_dir", Kind::Path, Unset, "write counters for node_exporter's textfile collector into this folder")),
    endpoint("otlp_endpoint", Unset, "OTLP/HTTP endpoint for metrics (or OTEL_EXPORTER_OTLP_ENDPOINT)"),
    trusted(row("amdsmi_library", Kind::Path, Unset, "the amd-smi library to load (libamd_smi.so, then /opt/rocm/lib/libamd_smi.so, by default)")),
    trusted(row("hwmon_root", Kind::Path, Str(DEFAULT_HWMON_ROOT), "root of the hwmon tree: Intel xe/i915 and amdgpu cards, Jetson ina3221 rails")),
    trusted(row("loggers", Kind::Object, Unset, "loggers to send each row to: \"wandb\", \"comet\", \"mlflow\", \"tensorboard\" or logger objects")),
    endpoint("neso_base_url", Str(NESO_BASE_URL), "NESO Carbon Intensity API root: Great Britain's forecast for `carbonmeter wait`"),
    number("hardware_lifetime_years", Float(crate::footprint::DEFAULT_LIFETIME_YEARS), Range { max: Some(30.0), ..Range::above(0.0, "years") }, "years the hardware's embodied carbon is spread over (band: 0.75x to 1.5x, 3 to 6 years at the default 4)"),
    row("user", Kind::Str, Unset, "who ran it, written in every row's user column (default: the login name; \"-\" leaves it blank)"),
    unserved("api_call_interval"),
    unserved("api_endpoint"),
    unserved("api_key"),
    unserved("output_methods"),
    unserved("save_to_api"),
    unserved("save_to_logger"),
    unserved("logging_logger"),
    unserved("save_to_logfire"),
    unserved("output_handlers"),
    unserved("emissions_endpoint"),
    unserved("logger_preamble"),
    unserved("metadata"),
    row("log_metrics", Kind::List, Unset, "figures the callbacks and loggers send per epoch: unset for co2_kg, its band, energy_kwh, co2_kg_total and the projection; \"all\", or a list of names"),
    // Stopping when training stops paying (src/payoff.rs).
    Setting { range: Some(Range::at_least(0.0, "metric units per kg CO2eq")), ..row("min_gain_per_kg", Kind::Float, Unset, "stop training once the monitored metric gains less than this per kg CO2eq over the last `patience` epochs") },
    Setting { kind: Kind::Int, ..number("patience", Float(1.0), Range { whole: true, max: Some(10_000.0), ..Range::at_least(1.0, "epochs") }, "epochs min_gain_per_kg measures the metric's gain over") },
    trusted(row("ioreport_library", Kind::Path, Unset, "the IOReport library to load for Apple Silicon's CPU, GPU, Neural Engine and DRAM energy (/usr/lib/libIOReport.dylib on macOS by default; none elsewhere)")),
    trusted(row("emi_library", Kind::Path, Unset, "a library giving the Win32 calls that read Windows' Energy Meter Interface (setupapi.dll and kernel32.dll on Windows by default; none elsewhere)")),
];

/// The row named `name`.
pub fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|setting| setting.name == name)
}

/// The names carbonmeter acts on, comma-separated, for the unknown-setting message.
pub fn served_names() -> String {
    SETTINGS
        .iter()
        .filter(|setting| setting.served)
        .map(|setting| setting.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_rows_consistent() {
        for (i, setting) in SETTINGS.iter().enumerate() {
            assert!(
                SETTINGS[..i].iter().all(|other| other.name != setting.name),
                "{} twice",
                setting.name
            );
            assert!(!setting.doc.is_empty(), "{}", setting.name);
            assert_eq!(
                setting.kind == Kind::Choice,
                !setting.choices.is_empty(),
                "{}",
                setting.name
            );
            assert_eq!(
                matches!(setting.kind, Kind::Float | Kind::Int),
                setting.range.is_some(),
                "{}",
                setting.name
            );
            if let DefaultValue::Float(number) = setting.default {
                assert!(
                    setting.range.is_some_and(|r| r.contains(number)),
                    "{}",
                    setting.name
                );
            }
            if let (Kind::Choice, DefaultValue::Str(text)) = (setting.kind, setting.default) {
                assert!(setting.choices.contains(&text), "{}", setting.name);
            }
            if let Some(target) = setting.alias_of {
                assert!(super::setting(target).is_some(), "{}", setting.name);
            }
        }
    }

    #[test]
    fn what_loads_code_sends_data_or_writes_files_is_trusted_only() {
        let trusted: Vec<&str> = SETTINGS
            .iter()
            .filter(|s| s.trust == Trust::TrustedSourceOnly)
            .map(|s| s.name)
            .collect();
        assert_eq!(
            trusted,
            [
                "output_dir",
                "output_file",
                "powercap_root",
                "electricitymaps_base_url",
                "nvml_library",
                "prometheus_url",
                "prometheus_textfile_dir",
                "otlp_endpoint",
                "amdsmi_library",
                "hwmon_root",
                "loggers",
                "neso_base_url",
                "ioreport_library",
                "emi_library",
            ]
        );
        for setting in SETTINGS {
            if setting.kind == Kind::Path {
                assert_eq!(setting.trust, Trust::TrustedSourceOnly, "{}", setting.name);
            }
            let text = !matches!(setting.kind, Kind::Object | Kind::Any);
            assert_eq!(setting.max_chars.is_some(), text, "{}", setting.name);
        }
    }

    #[test]
    fn ranges_keep_todays_bounds() {
        let range = |name| setting(name).and_then(|s| s.range).expect(name);
        assert!(!range("measure_power_secs").contains(0.0));
        assert!(range("pue").contains(1.0) && !range("pue").contains(0.99));
        assert!(range("gpu_poll_secs").contains(10.0) && !range("gpu_poll_secs").contains(10.01));
        assert!(!range("rank").contains(1.5) && range("rank").contains(3.0));
        assert!(!range("wue").contains(f64::NAN) && !range("wue").contains(f64::INFINITY));
        assert_eq!(
            range("gpu_poll_secs").allowed(),
            "expected seconds > 0.0 and <= 10.0"
        );
    }
}
