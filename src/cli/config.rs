//! `tollgate config check` and `tollgate config explain`.
//!
//! `check` prints every effective setting with its source, then every error
//! and warning; exit 0 when there is no error, 1 when there is, 2 when a
//! named file cannot be read. `explain` prints the settings table.
//!
//! # `config check --json`
//!
//! One JSON object on one line:
//!
//! ```json
//! {
//!   "ok": false,                      // no errors
//!   "environment": "production",      // the effective environment
//!   "component": "server",            // "server" or "sdk"
//!   "settings": [
//!     {
//!       "name": "TOLLGATE_ISSUER",    // canonical environment name
//!       "key": "issuer",              // tollgate.toml key
//!       "value": null,                // shown value (secrets masked), null when unset
//!       "secret": false,
//!       "source": {"kind": "default", "environment": "production"}
//!     }
//!   ],
//!   "errors": ["TOLLGATE_ISSUER is required in production: …"],
//!   "warnings": []
//! }
//! ```
//!
//! `source` is one of `{"kind": "flag", "flag": "--bind"}`,
//! `{"kind": "env", "name": "JWT_ISSUER"}`,
//! `{"kind": "env_file", "path": ".env", "name": "JWT_ISSUER"}`,
//! `{"kind": "file", "path": "tollgate.toml", "key": "issuer"}`,
//! `{"kind": "default", "environment": "development"}`.
//!
//! # `config explain --json`
//!
//! One JSON object on one line: `{"settings": [ … ]}`, each setting
//!
//! ```json
//! {
//!   "name": "TOLLGATE_ACCESS_TOKEN_TTL",
//!   "key": "access_token_ttl",
//!   "flag": "--access-token-ttl",     // null for secrets
//!   "aliases": [{"name": "JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "unit": "minutes"}],
//!   "secret": false,
//!   "development_only": false,
//!   "description": "Lifetime of access tokens (at most 24h).",
//!   "values": "seconds, or a number with s, m, h or d (900, 15m, 1h, 7d)",
//!   "defaults": {"development": "900", "test": "900", "staging": "900", "production": "900"},
//!   "required_in": []
//! }
//! ```
//!
//! An alias's `unit` is `null` when it takes the canonical form. A default
//! is `null` when there is none; `required_in` lists the environments where
//! the setting must be given. `"http://<bind>"` stands for the bind address.

use std::io::{self, Write};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use tollgate_core::config::{
    Component, DefaultValue, ENVIRONMENTS, Report, SettingSpec, Source, Unit, settings,
};

use super::Outcome;
use super::settings::ConfigArgs;

/// `tollgate config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every effective setting with its source, then every error and
    /// warning.
    ///
    /// Exit status: 0 when the configuration has no error, 1 when it has,
    /// 2 when a file cannot be read.
    Check(CheckArgs),
    /// List every setting: its names, aliases with their units, and its
    /// default in each environment.
    Explain(ExplainArgs),
}

impl ConfigCommand {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<Outcome> {
        match self {
            ConfigCommand::Check(args) => check(args),
            ConfigCommand::Explain(args) => explain(args),
        }
    }
}

/// Arguments of `config check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print one JSON object (schema: docs/configuration.md).
    #[arg(long)]
    json: bool,
    /// Which piece to check the settings for: the token service, or a
    /// service embedding the SDK.
    #[arg(long, value_enum, default_value_t = ComponentArg::Server)]
    component: ComponentArg,
    #[command(flatten)]
    settings: ConfigArgs,
}

/// Arguments of `config explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Print one JSON object (schema: docs/configuration.md).
    #[arg(long)]
    json: bool,
}

/// The `--component` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ComponentArg {
    /// `tollgate serve` and the commands that act on its store.
    Server,
    /// A service embedding `tollgate-client`.
    Sdk,
}

impl From<ComponentArg> for Component {
    fn from(arg: ComponentArg) -> Component {
        match arg {
            ComponentArg::Server => Component::Server,
            ComponentArg::Sdk => Component::Sdk,
        }
    }
}

fn check(args: CheckArgs) -> anyhow::Result<Outcome> {
    let report = args.settings.report(args.component.into())?;
    let mut out = io::stdout().lock();
    if args.json {
        writeln!(out, "{}", check_json(&report))?;
    } else {
        write_check(&mut out, &report)?;
    }
    out.flush()?;
    Ok(if report.is_ok() {
        Outcome::Success
    } else {
        Outcome::Negative
    })
}

const UNSET: &str = "(unset)";

fn write_check(out: &mut impl Write, report: &Report) -> io::Result<()> {
    // Long values (URLs) do not widen the column for everyone else.
    const MAX_VALUE_WIDTH: usize = 40;
    let name_width = report
        .entries()
        .iter()
        .map(|e| e.spec().env().len())
        .max()
        .unwrap_or(0);
    let value_width = report
        .entries()
        .iter()
        .map(|e| e.value().unwrap_or(UNSET).chars().count())
        .filter(|width| *width <= MAX_VALUE_WIDTH)
        .max()
        .unwrap_or(0);
    writeln!(
        out,
        "{:name_width$}  {:value_width$}  source",
        "setting", "value"
    )?;
    for entry in report.entries() {
        writeln!(
            out,
            "{:name_width$}  {:value_width$}  {}",
            entry.spec().env(),
            entry.value().unwrap_or(UNSET),
            entry.source()
        )?;
    }
    if !report.errors().is_empty() || !report.warnings().is_empty() {
        writeln!(out)?;
    }
    for line in report.errors() {
        writeln!(out, "error: {line}")?;
    }
    for line in report.warnings() {
        writeln!(out, "warning: {line}")?;
    }
    let (errors, warnings) = (report.errors().len(), report.warnings().len());
    writeln!(
        out,
        "{errors} {}, {warnings} {} ({}, {})",
        plural(errors, "error", "errors"),
        plural(warnings, "warning", "warnings"),
        report.environment(),
        component_name(report.component()),
    )
}

fn component_name(component: Component) -> &'static str {
    match component {
        Component::Server => "server",
        Component::Sdk => "sdk",
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// The `config check --json` object (schema in the module docs).
pub fn check_json(report: &Report) -> Value {
    let settings: Vec<Value> = report
        .entries()
        .iter()
        .map(|entry| {
            json!({
                "name": entry.spec().env(),
                "key": entry.spec().key(),
                "value": entry.value(),
                "secret": entry.spec().is_secret(),
                "source": source_json(entry.source()),
            })
        })
        .collect();
    json!({
        "ok": report.is_ok(),
        "environment": report.environment().as_str(),
        "component": component_name(report.component()),
        "settings": settings,
        "errors": report.errors(),
        "warnings": report.warnings(),
    })
}

fn source_json(source: &Source) -> Value {
    match source {
        Source::Flag(flag) => json!({"kind": "flag", "flag": format!("--{flag}")}),
        Source::Env(name) => json!({"kind": "env", "name": name}),
        Source::EnvFile { path, name } => {
            json!({"kind": "env_file", "path": path, "name": name})
        }
        Source::File { path, key } => json!({"kind": "file", "path": path, "key": key}),
        Source::Default(env) => json!({"kind": "default", "environment": env.as_str()}),
        // `Source` may grow; a new kind is still reported by its text.
        other => json!({"kind": "other", "text": other.to_string()}),
    }
}

fn explain(args: ExplainArgs) -> anyhow::Result<Outcome> {
    let mut out = io::stdout().lock();
    if args.json {
        let all: Vec<Value> = settings().iter().map(explain_json).collect();
        writeln!(out, "{}", json!({ "settings": all }))?;
    } else {
        write_explain(&mut out)?;
    }
    out.flush()?;
    Ok(Outcome::Success)
}

fn write_explain(out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "Precedence: flag > environment variable > config file (tollgate.toml) > the environment's default.\n"
    )?;
    for spec in settings() {
        let mut marks = Vec::new();
        if spec.is_secret() {
            marks.push("secret: masked in every output");
        }
        if spec.is_development_only() {
            marks.push("development only: refused when on in staging and production");
        }
        writeln!(out, "{}", spec.env())?;
        writeln!(out, "    {}", spec.description())?;
        writeln!(out, "    values:   {}", spec.accepted())?;
        let flag = spec
            .flag()
            .map(|flag| format!("--{flag}"))
            .unwrap_or_else(|| "none (secret)".to_owned());
        writeln!(out, "    file key: {}    flag: {flag}", spec.key())?;
        if !spec.aliases().is_empty() {
            let aliases: Vec<String> = spec
                .aliases()
                .iter()
                .map(|alias| match alias.unit {
                    Unit::Native => alias.name.to_owned(),
                    unit => format!("{} ({})", alias.name, unit.as_str()),
                })
                .collect();
            writeln!(out, "    aliases:  {}", aliases.join(", "))?;
        }
        writeln!(out, "    default:  {}", defaults_text(spec))?;
        for mark in marks {
            writeln!(out, "    {mark}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn defaults_text(spec: &SettingSpec) -> String {
    let first = spec.default_in(ENVIRONMENTS[0]);
    if ENVIRONMENTS
        .iter()
        .all(|env| spec.default_in(*env) == first)
    {
        return format!("{first} (every environment)");
    }
    ENVIRONMENTS
        .iter()
        .map(|env| format!("{env} {}", spec.default_in(*env)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// One setting of the `config explain --json` object.
pub fn explain_json(spec: &SettingSpec) -> Value {
    let aliases: Vec<Value> = spec
        .aliases()
        .iter()
        .map(|alias| {
            let unit = match alias.unit {
                Unit::Native => None,
                unit => Some(unit.as_str()),
            };
            json!({"name": alias.name, "unit": unit})
        })
        .collect();
    let mut defaults = serde_json::Map::new();
    let mut required_in = Vec::new();
    for env in ENVIRONMENTS {
        let value = match spec.default_in(env) {
            DefaultValue::Value(text) => Value::from(text),
            DefaultValue::IssuerFromBind => Value::from("http://<bind>"),
            DefaultValue::Required => {
                required_in.push(env.as_str());
                Value::Null
            }
            _ => Value::Null,
        };
        defaults.insert(env.as_str().to_owned(), value);
    }
    json!({
        "name": spec.env(),
        "key": spec.key(),
        "flag": spec.flag().map(|flag| format!("--{flag}")),
        "aliases": aliases,
        "secret": spec.is_secret(),
        "development_only": spec.is_development_only(),
        "description": spec.description(),
        "values": spec.accepted(),
        "defaults": defaults,
        "required_in": required_in,
    })
}
