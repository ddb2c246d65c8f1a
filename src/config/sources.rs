//! The layers a setting is looked up in, first hit wins: keyword argument, `CARBONMETER_<KEY>`,
//! `CODECARBON_<KEY>`, `./.codecarbon.config`, `~/.codecarbon.config`; and the one generic
//! parser, which checks every value against its row of [`super::schema::SETTINGS`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::schema::{self, DefaultValue, Kind, Setting};
use crate::error::{Error, Result};

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
    pub(super) fn render(&self) -> String {
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

/// Where settings are looked up besides the keyword arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
            crate::runtime::warn_once(&format!("{} ignored: {err}", path.display()));
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

/// The layers of one resolution, and where each value not from a keyword argument came from.
pub(super) struct Layers {
    pub(super) kwargs: BTreeMap<String, RawValue>,
    pub(super) env: Environment,
    cwd_file: BTreeMap<String, String>,
    home_file: BTreeMap<String, String>,
    pub(super) origins: Vec<(String, String)>,
}

fn row(name: &str) -> Result<&'static Setting> {
    schema::setting(name).ok_or_else(|| Error::UnknownSetting {
        name: name.to_owned(),
        known: schema::served_names(),
    })
}

impl Layers {
    pub(super) fn new(kwargs: BTreeMap<String, RawValue>, env: Environment) -> Self {
        let file = |dir: &Option<PathBuf>| {
            dir.as_ref()
                .map(|dir| read_config_file(&dir.join(".codecarbon.config")))
                .unwrap_or_default()
        };
        Self {
            cwd_file: file(&env.cwd),
            home_file: file(&env.home),
            kwargs,
            env,
            origins: Vec::new(),
        }
    }

    /// The first layer's value of `key`, unparsed. Blank text is no value in any layer (an
    /// exported `CODECARBON_CLOUD_REGION=` must not pick a region over the given country).
    pub(super) fn get(&mut self, key: &str) -> Option<RawValue> {
        let given = |text: &&String| !text.trim().is_empty();
        if let Some(value) = self.kwargs.get(key)
            && !matches!(value, RawValue::Str(text) if text.trim().is_empty())
        {
            return Some(value.clone());
        }
        let upper = key.to_uppercase();
        for prefix in ["CARBONMETER_", "CODECARBON_"] {
            let var = format!("{prefix}{upper}");
            if let Some(value) = self.env.vars.get(&var).filter(given) {
                self.origins.push((key.to_owned(), var));
                return Some(RawValue::Str(value.clone()));
            }
        }
        for (file, origin) in [
            (&self.cwd_file, "./.codecarbon.config"),
            (&self.home_file, "~/.codecarbon.config"),
        ] {
            if let Some(value) = file.get(key).filter(given) {
                self.origins.push((key.to_owned(), origin.to_owned()));
                return Some(RawValue::Str(value.clone()));
            }
        }
        None
    }

    /// Text, as given; without a value, the row's default.
    pub(super) fn text(&mut self, key: &str) -> Result<Option<String>> {
        let setting = row(key)?;
        Ok(self
            .get(key)
            .map(|value| match value {
                RawValue::Str(text) => text,
                RawValue::List(items) => items.join(","),
                other => other.render(),
            })
            .or_else(|| match setting.default {
                DefaultValue::Str(text) => Some(text.to_owned()),
                _ => None,
            }))
    }

    /// A number inside the row's range; without a value, the row's default.
    pub(super) fn number(&mut self, key: &str) -> Result<Option<f64>> {
        let setting = row(key)?;
        let Some(raw) = self.get(key) else {
            return Ok(match setting.default {
                DefaultValue::Float(number) => Some(number),
                _ => None,
            });
        };
        let number = match &raw {
            RawValue::Float(number) => Some(*number),
            RawValue::Int(number) => Some(*number as f64),
            RawValue::Str(text) => text.trim().parse().ok(),
            RawValue::Bool(_) | RawValue::List(_) => None,
        };
        let range = setting.range.ok_or_else(|| {
            Error::invalid(key, raw.render(), "a setting of another kind than a number")
        })?;
        match number {
            Some(number) if range.contains(number) => Ok(Some(number)),
            _ => Err(Error::invalid(key, raw.render(), range.allowed())),
        }
    }

    /// True or False (or 1/0, yes/no, on/off as text); without a value, the row's default.
    pub(super) fn flag(&mut self, key: &str) -> Result<Option<bool>> {
        let setting = row(key)?;
        let Some(raw) = self.get(key) else {
            return Ok(match setting.default {
                DefaultValue::Bool(flag) => Some(flag),
                _ => None,
            });
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

    /// One of the row's choices (any case, surrounding blanks ignored), in its canonical
    /// spelling; without a value, the row's default. A blank value is the default too.
    pub(super) fn choice(&mut self, key: &str) -> Result<Option<&'static str>> {
        let setting = row(key)?;
        let default = match setting.default {
            DefaultValue::Str(text) => Some(text),
            _ => None,
        };
        match self.get(key) {
            None => Ok(default),
            Some(raw) => parse_choice(setting, &raw).map(Some),
        }
    }
}

/// The generic parser of [`Kind::Choice`] settings.
pub(super) fn parse_choice(setting: &'static Setting, raw: &RawValue) -> Result<&'static str> {
    let wanted = match raw {
        RawValue::Str(text) => text.trim().to_lowercase(),
        _ => String::new(),
    };
    // A blank means "none" where that is a choice (`sync=""`), as it always has.
    let wanted = if wanted.is_empty() && matches!(raw, RawValue::Str(_)) {
        "none".to_owned()
    } else {
        wanted
    };
    setting
        .choices
        .iter()
        .find(|choice| **choice == wanted)
        .copied()
        .ok_or_else(|| Error::invalid(setting.name, raw.render(), allowed_choices(setting)))
}

/// `expected "machine" or "process"`.
pub(super) fn allowed_choices(setting: &Setting) -> String {
    let quoted: Vec<String> = setting.choices.iter().map(|c| format!("{c:?}")).collect();
    match quoted.split_last() {
        Some((last, [])) => format!("expected {last}"),
        Some((last, rest)) if rest.len() == 1 => format!("expected {} or {last}", rest[0]),
        Some((last, rest)) => format!("expected one of {}, or {last}", rest.join(", ")),
        None => "expected nothing".to_owned(),
    }
}

/// Checks the names of `kwargs`: an unknown one is an error; the unserved ones are returned,
/// to be warned about.
pub(super) fn unserved_kwargs(kwargs: &BTreeMap<String, RawValue>) -> Result<Vec<String>> {
    let mut unserved = Vec::new();
    for key in kwargs.keys() {
        match schema::setting(key) {
            Some(setting) if !setting.served => unserved.push(key.clone()),
            Some(setting) if setting.kind != Kind::Object => {}
            _ => {
                return Err(Error::UnknownSetting {
                    name: key.clone(),
                    known: schema::served_names(),
                });
            }
        }
    }
    Ok(unserved)
}
