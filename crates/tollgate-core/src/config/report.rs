//! The outcome of a build: every setting's effective value with its
//! [`Source`], and the errors and warnings, one line each. Holds no secret
//! text, so it is safe to print.

use std::fmt;

use super::{Component, Config, ConfigErrors, Environment, Setting, SettingSpec};
use crate::Error;

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// A CLI flag, named without its dashes (`bind`).
    Flag(&'static str),
    /// A variable of the process environment.
    Env(String),
    /// A variable read from an env file (`--env-file`).
    EnvFile {
        /// The file, as the caller named it.
        path: String,
        /// The variable.
        name: String,
    },
    /// A key of the config file (`tollgate.toml`).
    File {
        /// The file, as the caller named it.
        path: String,
        /// The key.
        key: &'static str,
    },
    /// The default of this environment profile.
    Default(Environment),
}

impl Source {
    /// The name the value was given under (`--bind`, `JWT_ISSUER`,
    /// `issuer`), or `default`.
    pub fn name(&self) -> String {
        match self {
            Source::Flag(flag) => format!("--{flag}"),
            Source::Env(name) | Source::EnvFile { name, .. } => name.clone(),
            Source::File { key, .. } => (*key).to_owned(),
            Source::Default(_) => "default".to_owned(),
        }
    }

    /// `NAME=value` as the user wrote it (value already masked).
    pub(super) fn assignment(&self, value: &str) -> String {
        match self {
            Source::Flag(flag) => format!("--{flag} {value}"),
            Source::Env(name) => format!("{name}={value}"),
            Source::EnvFile { path, name } => format!("{name}={value} (in {path})"),
            Source::File { path, key } => format!("{key} = {value} (in {path})"),
            Source::Default(env) => format!("the {env} default {value}"),
        }
    }
}

impl fmt::Display for Source {
    /// `flag --bind`, `env JWT_ISSUER`, `env file .env (JWT_ISSUER)`,
    /// `file tollgate.toml (issuer)`, `default (production)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag --{flag}"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::EnvFile { path, name } => write!(f, "env file {path} ({name})"),
            Source::File { path, key } => write!(f, "file {path} ({key})"),
            Source::Default(env) => write!(f, "default ({env})"),
        }
    }
}

/// One setting's effective value in a [`Report`].
#[derive(Debug, Clone)]
pub struct Entry {
    pub(super) spec: &'static SettingSpec,
    pub(super) value: Option<String>,
    pub(super) source: Source,
}

impl Entry {
    /// The setting.
    pub fn spec(&self) -> &'static SettingSpec {
        self.spec
    }

    /// The value as shown to humans (secrets and URL passwords masked);
    /// `None` when the setting has no value. An invalid value is shown too
    /// (masked the same way); the report's errors say what is wrong.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// Where the value came from (for an unset setting: the profile default).
    pub fn source(&self) -> &Source {
        &self.source
    }
}

/// The outcome of [`ConfigBuilder::build`]: every setting's effective value
/// and source, errors and warnings. Safe to print: it holds no secret text.
#[derive(Debug)]
pub struct Report {
    pub(super) component: Component,
    pub(super) environment: Environment,
    pub(super) entries: Vec<Entry>,
    pub(super) errors: Vec<String>,
    pub(super) warnings: Vec<String>,
    pub(super) config: Option<Config>,
}

impl Report {
    /// The component the configuration was checked for.
    pub fn component(&self) -> Component {
        self.component
    }

    /// The effective environment (`development` when the given one is invalid).
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// Every setting, in table order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// One setting's entry.
    pub fn entry(&self, setting: Setting) -> Option<&Entry> {
        self.entries.iter().find(|e| e.spec.setting() == setting)
    }

    /// Errors, one line each; any error means no [`Config`].
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// Warnings, one line each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether the configuration has no errors.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// The configuration, when there are no errors.
    pub fn config(&self) -> Option<&Config> {
        self.config.as_ref()
    }

    /// The configuration and the warnings, or [`Error::Config`] with every
    /// error.
    pub fn into_config(self) -> Result<(Config, Vec<String>), Error> {
        match (self.config, self.errors.is_empty()) {
            (Some(config), true) => Ok((config, self.warnings)),
            (_, false) => Err(Error::Config(ConfigErrors(self.errors))),
            (None, true) => Err(Error::Config(ConfigErrors(vec![
                "the configuration could not be assembled".to_owned(),
            ]))),
        }
    }
}
