//! Errors of the core, typed per cause; `bindings::errors` maps them to Python exceptions.

use std::path::PathBuf;

/// Everything the core can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting or argument has a value outside what is allowed.
    #[error("invalid {name}={value}: {allowed}")]
    InvalidValue {
        /// The setting's name, as the user spells it (`pue`, `country_iso_code`).
        name: String,
        /// The offending value, rendered for the message.
        value: String,
        /// What would have been accepted.
        allowed: String,
    },
    /// A keyword argument that neither carbonmeter nor CodeCarbon knows.
    #[error("unexpected keyword argument {name:?}; known arguments: {known}")]
    UnknownSetting {
        /// The unknown name.
        name: String,
        /// The names that are accepted, comma-separated.
        known: String,
    },
    /// An argument of a type it cannot have; its value is not shown (it may be a secret).
    #[error("{name} must be {expected}, got a value of type {got} (not shown)")]
    WrongType {
        /// The argument's name.
        name: String,
        /// The type accepted.
        expected: String,
        /// The type given.
        got: String,
    },
    /// A config file someone else can write sets a setting only a trusted source may set
    /// (`config::schema::Trust`).
    #[error(
        "{path} may not set {name}: {why}; set {name}= as a keyword argument ({flag} on the \
         command line) or {var} instead, or make the file and its folder yours and writable \
         only by you"
    )]
    UntrustedSetting {
        /// The config file.
        path: PathBuf,
        /// The setting it sets.
        name: String,
        /// Why the file is not trusted (its owner, or who else can write it).
        why: String,
        /// The environment variable that sets it (`CARBONMETER_NVML_LIBRARY`).
        var: String,
        /// The command line's flag for it (`--nvml-library`).
        flag: String,
    },
    /// The tracker was used out of order (for example a window closed that was never opened).
    #[error("{0}")]
    State(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A CSV file could not be encoded or parsed.
    #[error("{path}: {source}")]
    Csv {
        /// The file involved.
        path: PathBuf,
        /// What the CSV layer said.
        source: csv::Error,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidValue`].
    pub fn invalid(name: &str, value: impl std::fmt::Display, allowed: impl Into<String>) -> Self {
        Self::InvalidValue {
            name: name.to_owned(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
