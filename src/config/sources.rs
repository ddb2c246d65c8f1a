//! The layers a setting is looked up in, first hit wins: keyword argument, `CARBONMETER_<KEY>`,
//! `CODECARBON_<KEY>`, `./.codecarbon.config`, `~/.codecarbon.config`; and the one generic
//! parser, which checks every value against its row of [`super::schema::SETTINGS`]: its size
//! bound, and who may set it from a config file ([`Trust`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::schema::{self, DefaultValue, Kind, Setting, Trust};
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

/// The largest config file read; CodeCarbon's are a few lines, so a larger one is not one.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// One `.codecarbon.config`: its values, and why it may set only [`Trust::Any`] settings.
#[derive(Default)]
struct ConfigFile {
    path: PathBuf,
    /// `./.codecarbon.config` or `~/.codecarbon.config`, for the debug line of origins.
    label: &'static str,
    values: BTreeMap<String, String>,
    /// `None` when the file is the user's own (see [`distrust`]).
    distrust: Option<String>,
}

/// Why `what` (owned by `uid`, with permission bits `mode`) is not the user's own, or `None`
/// when it is owned by `euid` or root and neither its group nor others may write it. Root's
/// files count as the user's: root can already run anything as anyone.
pub(super) fn owner_problem(what: &str, uid: u32, mode: u32, euid: u32) -> Option<String> {
    if uid != euid && uid != 0 {
        let you = if euid == 0 {
            "you (root)".to_owned()
        } else {
            format!("you (uid {euid}) nor root")
        };
        return Some(format!("{what} is owned by uid {uid}, not by {you}"));
    }
    if mode & 0o022 != 0 {
        let who = if mode & 0o002 == 0 {
            "its group"
        } else {
            "anyone"
        };
        return Some(format!(
            "{what} can be written by {who} (mode {:o})",
            mode & 0o7777
        ));
    }
    None
}

/// Why the open config `file` at `path` is not the user's own: the file (as opened, so what
/// was checked is what is read) and the folder holding it, and the folder of its target when
/// `path` is a symbolic link. The folders matter because whoever can write one can put a link
/// there to any file root or the user owns (a mail spool holding lines a stranger wrote).
#[cfg(unix)]
fn distrust(file: &std::fs::File, path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid takes no argument, has no precondition and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let meta = match file.metadata() {
        Ok(meta) => meta,
        Err(err) => return Some(format!("its owner could not be read ({err})")),
    };
    if let Some(problem) = owner_problem("the file", meta.uid(), meta.mode(), euid) {
        return Some(problem);
    }
    let mut folders: Vec<PathBuf> = path.parent().map(Path::to_path_buf).into_iter().collect();
    if let Ok(target) = std::fs::canonicalize(path)
        && let Some(folder) = target.parent()
        && !folders.iter().any(|known| known == folder)
    {
        folders.push(folder.to_path_buf());
    }
    folders.iter().find_map(|folder| {
        let what = format!("its folder {}", folder.display());
        match std::fs::metadata(folder) {
            Ok(meta) => owner_problem(&what, meta.uid(), meta.mode(), euid),
            Err(err) => Some(format!("{what} could not be read ({err})")),
        }
    })
}

/// Without Unix owners and modes there is no telling who else can write a file.
#[cfg(not(unix))]
fn distrust(_file: &std::fs::File, _path: &Path) -> Option<String> {
    Some("who owns a file cannot be checked on this platform".to_owned())
}

/// Reads the `[codecarbon]` (or `[carbonmeter]`) section of an INI file. A missing file is
/// empty; an unreadable one too, with one warning (CodeCarbon's configparser skips it silently).
/// One over [`MAX_CONFIG_BYTES`] is an error.
fn read_config_file(path: PathBuf, label: &'static str) -> Result<ConfigFile> {
    use std::io::Read;
    let empty = |path: PathBuf| ConfigFile {
        path,
        label,
        ..ConfigFile::default()
    };
    let mut file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(empty(path)),
        Err(err) => {
            crate::runtime::warn_once(&format!("{} ignored: {err}", path.display()));
            return Ok(empty(path));
        }
    };
    let mut text = String::new();
    if let Err(err) = (&mut file)
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
    {
        crate::runtime::warn_once(&format!("{} ignored: {err}", path.display()));
        return Ok(empty(path));
    }
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Error::invalid(
            "config file",
            path.display(),
            format!("expected at most {MAX_CONFIG_BYTES} bytes (a few settings)"),
        ));
    }
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
    let distrust = if values.is_empty() {
        None
    } else {
        distrust(&file, &path)
    };
    Ok(ConfigFile {
        path,
        label,
        values,
        distrust,
    })
}

/// Refuses a value longer than its row's [`Setting::max_chars`], showing only its start (and
/// nothing of a secret): a 10 MiB `project_name` would make every row 10 MiB.
pub(super) fn check_size(key: &str, raw: &RawValue, origin: &str) -> Result<()> {
    let setting = row(key)?;
    let Some(max_chars) = setting.max_chars else {
        return Ok(());
    };
    let chars = match raw {
        RawValue::Str(text) => text.chars().count(),
        RawValue::List(items) => items.iter().map(|item| item.chars().count() + 1).sum(),
        RawValue::Float(_) | RawValue::Int(_) | RawValue::Bool(_) => 0,
    };
    if chars <= max_chars {
        return Ok(());
    }
    let start = match raw {
        _ if setting.kind == Kind::Secret => "(not shown)".to_owned(),
        RawValue::Str(text) => format!("{:?}...", text.chars().take(16).collect::<String>()),
        other => format!("{:.40}...", other.render()),
    };
    Err(Error::invalid(
        setting.name,
        format!("{start} ({chars} characters, from {origin})"),
        format!("expected at most {max_chars} characters"),
    ))
}

/// The layers of one resolution, and where each value not from a keyword argument came from.
pub(super) struct Layers {
    pub(super) kwargs: BTreeMap<String, RawValue>,
    pub(super) env: Environment,
    files: [ConfigFile; 2],
    pub(super) origins: Vec<(String, String)>,
}

fn row(name: &str) -> Result<&'static Setting> {
    schema::setting(name).ok_or_else(|| Error::UnknownSetting {
        name: name.to_owned(),
        known: schema::served_names(),
    })
}

impl Layers {
    pub(super) fn new(kwargs: BTreeMap<String, RawValue>, env: Environment) -> Result<Self> {
        let file = |dir: &Option<PathBuf>, label| match dir {
            Some(dir) => read_config_file(dir.join(".codecarbon.config"), label),
            None => Ok(ConfigFile {
                label,
                ..ConfigFile::default()
            }),
        };
        Ok(Self {
            files: [
                file(&env.cwd, "./.codecarbon.config")?,
                file(&env.home, "~/.codecarbon.config")?,
            ],
            kwargs,
            env,
            origins: Vec::new(),
        })
    }

    /// The first layer's value of `key`, unparsed. Blank text is no value in any layer (an
    /// exported `CODECARBON_CLOUD_REGION=` must not pick a region over the given country).
    /// A value over the row's size bound is an error, and so is a [`Trust::TrustedSourceOnly`]
    /// setting from a config file that is not the user's own.
    pub(super) fn get(&mut self, key: &str) -> Result<Option<RawValue>> {
        let setting = row(key)?;
        let given = |text: &&String| !text.trim().is_empty();
        if let Some(value) = self.kwargs.get(key)
            && !matches!(value, RawValue::Str(text) if text.trim().is_empty())
        {
            check_size(key, value, "a keyword argument")?;
            return Ok(Some(value.clone()));
        }
        let upper = key.to_uppercase();
        for prefix in ["CARBONMETER_", "CODECARBON_"] {
            let var = format!("{prefix}{upper}");
            if let Some(value) = self.env.vars.get(&var).filter(given) {
                let value = RawValue::Str(value.clone());
                check_size(key, &value, &var)?;
                self.origins.push((key.to_owned(), var));
                return Ok(Some(value));
            }
        }
        for file in &self.files {
            let Some(value) = file.values.get(key).filter(given) else {
                continue;
            };
            if setting.trust == Trust::TrustedSourceOnly
                && let Some(why) = &file.distrust
            {
                return Err(Error::UntrustedSetting {
                    path: file.path.clone(),
                    name: key.to_owned(),
                    why: why.clone(),
                    var: format!("CARBONMETER_{upper}"),
                    flag: format!("--{}", key.replace('_', "-")),
                });
            }
            let value = RawValue::Str(value.clone());
            check_size(key, &value, &file.path.display().to_string())?;
            self.origins.push((key.to_owned(), file.label.to_owned()));
            return Ok(Some(value));
        }
        Ok(None)
    }

    /// Text, as given; without a value, the row's default.
    pub(super) fn text(&mut self, key: &str) -> Result<Option<String>> {
        let setting = row(key)?;
        Ok(self
            .get(key)?
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
        let Some(raw) = self.get(key)? else {
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
        let Some(raw) = self.get(key)? else {
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
        match self.get(key)? {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_users_or_roots_files_that_no_one_else_writes_are_trusted() {
        let cases = [
            (1000, 0o644, 1000, None),
            (0, 0o600, 1000, None),
            (0, 0o644, 0, None),
            (1000, 0o1755, 1000, None),
            (
                12345,
                0o644,
                0,
                Some("owned by uid 12345, not by you (root)"),
            ),
            (
                12345,
                0o600,
                1000,
                Some("uid 12345, not by you (uid 1000) nor root"),
            ),
            (1000, 0o664, 1000, Some("written by its group (mode 664)")),
            (1000, 0o646, 1000, Some("written by anyone (mode 646)")),
            (0, 0o1777, 1000, Some("written by anyone (mode 1777)")),
        ];
        for (uid, mode, euid, expected) in cases {
            let problem = owner_problem("the file", uid, mode, euid);
            match (expected, &problem) {
                (None, None) => {}
                (Some(part), Some(text)) => assert!(text.contains(part), "{text}"),
                _ => panic!("uid {uid} mode {mode:o} euid {euid}: {problem:?}"),
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_write_names_the_run_but_loads_nothing() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".codecarbon.config");
        std::fs::write(
            &path,
            "[codecarbon]\nproject_name = theirs\nnvml_library = /tmp/x.so\n",
        )
        .expect("config file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).expect("chmod");
        let env = Environment {
            cwd: Some(dir.path().to_owned()),
            ..Environment::default()
        };
        let mut layers = Layers::new(BTreeMap::new(), env.clone()).expect("layers");
        assert_eq!(
            layers.text("project_name").expect("any file names the run"),
            Some("theirs".to_owned())
        );
        let err = layers.text("nvml_library").expect_err("a library from it");
        let message = err.to_string();
        assert!(matches!(err, Error::UntrustedSetting { .. }), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("CARBONMETER_NVML_LIBRARY"), "{message}");
        // The environment wins over the file, so its value is the way out.
        let mut vars = BTreeMap::new();
        vars.insert(
            "CARBONMETER_NVML_LIBRARY".to_owned(),
            "/opt/nvml.so".to_owned(),
        );
        let mut layers = Layers::new(BTreeMap::new(), Environment { vars, ..env }).expect("layers");
        assert_eq!(
            layers.text("nvml_library").expect("from the environment"),
            Some("/opt/nvml.so".to_owned())
        );
    }

    #[test]
    fn a_value_over_its_bound_is_refused_showing_only_its_start() {
        let huge = RawValue::Str("x".repeat(10 << 20));
        let message = check_size("project_name", &huge, "a keyword argument")
            .expect_err("10 MiB")
            .to_string();
        assert!(message.contains("at most 256 characters"), "{message}");
        assert!(message.len() < 200, "{message}");
        let secret = RawValue::Str("s3cr3t".repeat(1000));
        let message = check_size("electricitymaps_api_token", &secret, "a keyword argument")
            .expect_err("6000 characters")
            .to_string();
        assert!(!message.contains("s3cr3t"), "{message}");
        check_size("project_name", &RawValue::Str("x".repeat(256)), "here").expect("256");
    }
}
