//! How every subcommand resolves its configuration: [`ConfigArgs`].
//!
//! Inputs, highest precedence first:
//! 1. setting flags: one per non-secret setting of
//!    `tollgate_core::config::settings()` (`--bind`, `--issuer`, …);
//!    secrets have no flag so they never show in `ps` or shell history;
//! 2. the process environment;
//! 3. `--env-file FILE` (`NAME=value` lines): its variables count as
//!    environment variables, and a variable set in both takes the process
//!    environment's value, as with `docker run -e … --env-file …`;
//! 4. the config file: `--config FILE`, or `./tollgate.toml` when it exists;
//! 5. the environment profile's defaults.
//!
//! This module reads the files and the process environment; the resolving
//! itself is `tollgate_core::config::ConfigBuilder`, which is pure.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Arg, ArgMatches, value_parser};
use tollgate_core::config::{Component, Config, ConfigBuilder, Report, settings};

/// The config file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "tollgate.toml";

/// The configuration flags shared by every command that needs settings.
/// Flatten it into a command's arguments (`#[command(flatten)]`).
#[derive(Debug, Clone, Default)]
pub struct ConfigArgs {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--env-file FILE`.
    pub env_file: Option<PathBuf>,
    /// Setting flags given, by the setting's canonical environment name.
    pub flags: Vec<(&'static str, String)>,
}

impl ConfigArgs {
    /// The value of a setting flag, by canonical name (`TOLLGATE_ISSUER`).
    pub fn flag(&self, env_name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|(name, _)| *name == env_name)
            .map(|(_, value)| value.as_str())
    }

    /// Reads every input and resolves it for `component`. Fails only when
    /// a named file cannot be read or the environment holds a setting that
    /// is not UTF-8; problems with values are in the report.
    pub fn report(&self, component: Component) -> anyhow::Result<Report> {
        let mut builder = ConfigBuilder::new(component).env(process_env()?);
        if let Some(path) = &self.env_file {
            let text = fs::read_to_string(path)
                .with_context(|| format!("cannot read the env file {}", path.display()))?;
            builder = builder.env_file(path.display().to_string(), text);
        }
        let file = match &self.config {
            Some(path) => Some(path.as_path()),
            None => Some(Path::new(DEFAULT_CONFIG_FILE)).filter(|path| path.is_file()),
        };
        if let Some(path) = file {
            let text = fs::read_to_string(path)
                .with_context(|| format!("cannot read the config file {}", path.display()))?;
            builder = builder.file(path.display().to_string(), text);
        }
        for (name, value) in &self.flags {
            builder = builder.flag(*name, value.clone());
        }
        Ok(builder.build())
    }

    /// The configuration for `component`. Warnings go to stderr; any error
    /// fails with every error listed (exit 2).
    pub fn resolve(&self, component: Component) -> anyhow::Result<Config> {
        let report = self.report(component)?;
        super::warn(report.warnings());
        match report.into_config() {
            Ok((config, _warnings)) => Ok(config),
            Err(err) => {
                bail!(
                    "the configuration is invalid (`tollgate config check` shows every setting):\n{err}"
                )
            }
        }
    }
}

/// The process environment as UTF-8 pairs. Variables that are not UTF-8
/// are skipped, unless they look like settings: then guessing would be
/// wrong, so it is an error.
fn process_env() -> anyhow::Result<Vec<(String, String)>> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().map(str::to_owned) else {
            continue;
        };
        match value.into_string() {
            Ok(value) => vars.push((name, value)),
            Err(_) if looks_like_setting(&name) => {
                bail!("the environment variable {name} is not valid UTF-8")
            }
            Err(_) => {}
        }
    }
    Ok(vars)
}

fn looks_like_setting(name: &str) -> bool {
    name.starts_with("TOLLGATE_")
        || name.starts_with("JWT_")
        || settings()
            .iter()
            .any(|spec| spec.aliases().iter().any(|alias| alias.name == name))
}

const HEADING: &str = "Configuration";

impl clap::FromArgMatches for ConfigArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = ConfigArgs::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        if let Some(path) = matches.get_one::<PathBuf>("config_file") {
            self.config = Some(path.clone());
        }
        if let Some(path) = matches.get_one::<PathBuf>("env_file") {
            self.env_file = Some(path.clone());
        }
        for spec in settings() {
            let Some(flag) = spec.flag() else { continue };
            if let Some(value) = matches.get_one::<OsString>(flag) {
                let value = value.to_str().ok_or_else(|| {
                    clap::Error::raw(
                        clap::error::ErrorKind::InvalidUtf8,
                        format!("--{flag} is not valid UTF-8\n"),
                    )
                })?;
                self.flags.retain(|(name, _)| *name != spec.env());
                self.flags.push((spec.env(), value.to_owned()));
            }
        }
        Ok(())
    }
}

impl clap::Args for ConfigArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let cmd = cmd
            .arg(
                Arg::new("config_file")
                    .long("config")
                    .value_name("FILE")
                    .value_parser(value_parser!(PathBuf))
                    .help("The config file (TOML) [default: ./tollgate.toml when it exists]")
                    .help_heading(HEADING),
            )
            .arg(
                Arg::new("env_file")
                    .long("env-file")
                    .value_name("FILE")
                    .value_parser(value_parser!(PathBuf))
                    .help("Read environment variables from FILE (NAME=value lines); the process environment wins")
                    .help_heading(HEADING),
            );
        settings().iter().fold(cmd, |cmd, spec| match spec.flag() {
            // Values are checked by the builder, which reports every problem
            // at once; clap only collects them.
            Some(flag) => cmd.arg(
                Arg::new(flag)
                    .long(flag)
                    .value_name("VALUE")
                    .value_parser(value_parser!(OsString))
                    .help(format!("Sets {}: {}", spec.env(), spec.accepted()))
                    .help_heading(HEADING),
            ),
            None => cmd,
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}
