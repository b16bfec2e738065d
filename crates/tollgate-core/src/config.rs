//! The configuration builder (CONTRACT §2): one place where every setting
//! of every Tollgate piece is resolved.
//!
//! - [`settings`] is the table of settings ([`SettingSpec`]): canonical
//!   names, legacy aliases with their units, `tollgate.toml` keys, CLI
//!   flags, per-environment defaults, which are secret and which are
//!   development-only switches.
//! - [`ConfigBuilder`] takes the inputs (CLI flags, environment variables,
//!   an env file's text, a `tollgate.toml`'s text) and resolves each setting
//!   with the precedence flag > environment > config file > the environment
//!   profile's default. [`ConfigBuilder::build`] never fails: it returns a
//!   [`Report`] of every effective value with its [`Source`], every error
//!   and every warning, one line each.
//! - [`Report::into_config`] yields the [`Config`]: a value of it cannot be
//!   invalid for its environment (parse, don't validate).
//!
//! The builder is pure: it reads no file, no process environment and no
//! clock; callers pass the text in. Secret values never reach a message or
//! a `Debug` output: they are shown as `**** (N bytes)`, and URLs with their
//! password masked.

mod parse;
mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;

pub use table::{Alias, DefaultValue, ENVIRONMENTS, Setting, SettingSpec, Unit, settings};

use self::parse::{Value, is_loopback_issuer, is_weak_secret, shown};
use crate::keys::seal::MIN_MASTER_KEY_BYTES;
use crate::keys::{Algorithm, MIN_HMAC_SECRET_BYTES};
use crate::{Error, Secret};

/// Longest access or service token lifetime: the validator's default
/// longest lifetime, so Tollgate never issues a token its validators refuse.
pub const MAX_SHORT_TOKEN_TTL: u64 = crate::validate::DEFAULT_MAX_LIFETIME;

/// Which environment Tollgate runs in; staging and production are strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Environment {
    /// A developer's machine: defaults that just work.
    Development,
    /// Test suites.
    Test,
    /// Pre-production: production's rules.
    Staging,
    /// Production.
    Production,
}

impl Environment {
    /// The name (`development`, `test`, `staging`, `production`).
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Test => "test",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }

    /// Parses the name exactly (lower case).
    pub fn from_name(name: &str) -> Option<Environment> {
        match name {
            "development" => Some(Environment::Development),
            "test" => Some(Environment::Test),
            "staging" => Some(Environment::Staging),
            "production" => Some(Environment::Production),
            _ => None,
        }
    }

    /// Whether the environment applies the refusal rules (staging, production).
    pub fn is_strict(self) -> bool {
        matches!(self, Environment::Staging | Environment::Production)
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which piece is being configured; some rules apply to one piece only
/// (an SDK in production needs a client secret; the server does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// `tollgate serve` and the CLI commands that act on its store.
    Server,
    /// A service embedding `tollgate-client`.
    Sdk,
}

/// What the SDK does while the revocation feed is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedDownPolicy {
    /// Ask the token service (introspection) about every token: revocations
    /// stay exact; the default.
    Introspect,
    /// Keep validating locally: availability over revocation freshness.
    Local,
}

/// The resolved configuration. Every field's doc gives its default.
#[derive(Debug, Clone)]
pub struct Config {
    /// `TOLLGATE_ENV`; default `development`.
    pub environment: Environment,
    /// `TOLLGATE_BIND`; default `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// `TOLLGATE_ISSUER`; default `http://<bind>` in development and test,
    /// required in staging and production. Never has a trailing `/` added
    /// or removed: it is compared exactly.
    pub issuer: String,
    /// `TOLLGATE_AUDIENCE` (comma list); default `["api"]`.
    pub audiences: Vec<String>,
    /// `TOLLGATE_ACCESS_TOKEN_TTL`, seconds; default 900.
    pub access_token_ttl: u64,
    /// `TOLLGATE_REFRESH_TOKEN_TTL`, seconds; default 604800 (7 days).
    pub refresh_token_ttl: u64,
    /// `TOLLGATE_SERVICE_TOKEN_TTL`, seconds; default 3600.
    pub service_token_ttl: u64,
    /// `TOLLGATE_LEEWAY`, seconds of clock skew allowed; default 30.
    pub leeway: u64,
    /// `TOLLGATE_SIGNING_ALG`; default `EdDSA`.
    pub signing_alg: Algorithm,
    /// `TOLLGATE_HMAC_SECRET`; only with HS256; default none.
    pub hmac_secret: Option<Secret>,
    /// `TOLLGATE_DATABASE_URL`; default `sqlite://./tollgate-data/tollgate.db`.
    pub database_url: Secret,
    /// `TOLLGATE_REDIS_URL`; default none (in-process fan-out).
    pub redis_url: Option<Secret>,
    /// `TOLLGATE_REDIS_PREFIX`: the namespace of this deployment in Redis;
    /// default none, meaning [`Config::redis_namespace`]'s derived one.
    pub redis_prefix: Option<String>,
    /// `TOLLGATE_MASTER_KEY`; default none; required in staging/production.
    pub master_key: Option<Secret>,
    /// `TOLLGATE_CLIENT_ID` (SDK service identity); default none.
    pub client_id: Option<String>,
    /// `TOLLGATE_CLIENT_SECRET` (SDK service secret); default none.
    pub client_secret: Option<Secret>,
    /// `TOLLGATE_REGISTRATION` (`open`/`closed`); default open in
    /// development/test, closed in staging/production.
    pub registration_open: bool,
    /// `TOLLGATE_PLANS_FILE`; default none (built-in plans).
    pub plans_file: Option<String>,
    /// `TOLLGATE_BOOTSTRAP_ADMIN_EMAIL`; default none.
    pub bootstrap_admin_email: Option<String>,
    /// `TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD`; default none.
    pub bootstrap_admin_password: Option<Secret>,
    /// `TOLLGATE_FEED_DOWN_POLICY` (`introspect`/`local`), SDK only;
    /// default `introspect`.
    pub feed_down_policy: FeedDownPolicy,
    /// `TOLLGATE_ALLOW_QUERY_TOKEN`: accept a WebSocket token in the query
    /// string. Development-only switch; default off.
    pub allow_query_token: bool,
}

impl Config {
    /// The development profile's defaults (what `tollgate serve` uses on a
    /// fresh machine with nothing set).
    pub fn development() -> Config {
        let bind = SocketAddr::from(([127, 0, 0, 1], 8080));
        Config {
            environment: Environment::Development,
            bind,
            issuer: format!("http://{bind}"),
            audiences: vec!["api".to_owned()],
            access_token_ttl: 15 * 60,
            refresh_token_ttl: 7 * 24 * 3600,
            service_token_ttl: 3600,
            leeway: 30,
            signing_alg: Algorithm::EdDSA,
            hmac_secret: None,
            database_url: Secret::from("sqlite://./tollgate-data/tollgate.db"),
            redis_url: None,
            redis_prefix: None,
            master_key: None,
            client_id: None,
            client_secret: None,
            registration_open: true,
            plans_file: None,
            bootstrap_admin_email: None,
            bootstrap_admin_password: None,
            feed_down_policy: FeedDownPolicy::Introspect,
            allow_query_token: false,
        }
    }

    /// The longest lifetime of any token a key signs: what a rotated-out
    /// key must keep verifying for (plus leeway).
    pub fn key_overlap(&self) -> u64 {
        self.access_token_ttl
            .max(self.service_token_ttl)
            .saturating_add(self.leeway)
    }

    /// The namespace of this deployment in Redis: `TOLLGATE_REDIS_PREFIX`
    /// when set, else `tollgate:` and the first 16 hex digits of the
    /// issuer's SHA-256. Every key and channel Tollgate puts in Redis starts
    /// with it, so two deployments (or two tests) on one Redis never see
    /// each other's notices or counters, while every instance and service
    /// of one deployment (same issuer) agree on it without configuration.
    pub fn redis_namespace(&self) -> String {
        match &self.redis_prefix {
            Some(prefix) => prefix.clone(),
            None => {
                let digest = crate::opaque::digest(self.issuer.as_bytes());
                let short: String = digest.chars().take(16).collect();
                format!("tollgate:{short}")
            }
        }
    }
}

/// Every problem found while building a configuration, one line each.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

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
    fn assignment(&self, value: &str) -> String {
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
    spec: &'static SettingSpec,
    value: Option<String>,
    source: Source,
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
    component: Component,
    environment: Environment,
    entries: Vec<Entry>,
    errors: Vec<String>,
    warnings: Vec<String>,
    config: Option<Config>,
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

/// Collects the inputs of a configuration and resolves them into a
/// [`Report`]. See the module documentation for the precedence.
///
/// ```
/// use tollgate_core::config::{Component, ConfigBuilder};
///
/// let report = ConfigBuilder::new(Component::Server)
///     .env([("TOLLGATE_ACCESS_TOKEN_TTL", "10m")])
///     .file("tollgate.toml", "audience = [\"api\", \"billing\"]")
///     .flag("TOLLGATE_BIND", "127.0.0.1:9000")
///     .build();
/// let (config, _warnings) = report.into_config().unwrap();
/// assert_eq!(config.access_token_ttl, 600);
/// assert_eq!(config.issuer, "http://127.0.0.1:9000");
/// ```
pub struct ConfigBuilder {
    component: Component,
    flags: Vec<(String, String)>,
    env: Vec<(String, String)>,
    env_file: Option<(String, String)>,
    file: Option<(String, String)>,
}

impl fmt::Debug for ConfigBuilder {
    // Values may be secrets: only names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |vars: &[(String, String)]| -> Vec<String> {
            vars.iter().map(|(name, _)| name.clone()).collect()
        };
        f.debug_struct("ConfigBuilder")
            .field("component", &self.component)
            .field("flags", &names(&self.flags))
            .field("env", &names(&self.env))
            .field("env_file", &self.env_file.as_ref().map(|(path, _)| path))
            .field("file", &self.file.as_ref().map(|(path, _)| path))
            .finish()
    }
}

impl ConfigBuilder {
    /// A builder for `component` with no inputs (every setting at its
    /// development default).
    pub fn new(component: Component) -> ConfigBuilder {
        ConfigBuilder {
            component,
            flags: Vec::new(),
            env: Vec::new(),
            env_file: None,
            file: None,
        }
    }

    /// Environment variables (the whole process environment may be passed:
    /// names that are not settings are ignored, except unknown `TOLLGATE_*`
    /// names, which get a warning). Empty values count as unset.
    pub fn env<I, K, V>(mut self, vars: I) -> ConfigBuilder
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// The text of an env file (`NAME=value` lines), `path` naming it in
    /// messages. Its variables count as environment variables; a variable
    /// set in both the process environment and the file takes the process
    /// environment's value.
    pub fn env_file(mut self, path: impl Into<String>, text: impl Into<String>) -> ConfigBuilder {
        self.env_file = Some((path.into(), text.into()));
        self
    }

    /// The text of the config file (TOML, the keys of [`SettingSpec::key`]),
    /// `path` naming it in messages.
    pub fn file(mut self, path: impl Into<String>, text: impl Into<String>) -> ConfigBuilder {
        self.file = Some((path.into(), text.into()));
        self
    }

    /// A CLI flag's value for the setting whose canonical environment name
    /// is `env_name` (`"TOLLGATE_BIND"`). Flags beat every other source.
    pub fn flag(mut self, env_name: impl Into<String>, value: impl Into<String>) -> ConfigBuilder {
        self.flags.push((env_name.into(), value.into()));
        self
    }

    /// Resolves every setting and applies the rules.
    pub fn build(self) -> Report {
        let mut resolver = Resolver::new(self.component);
        let inputs = resolver.read_inputs(self);
        resolver.resolve_all(&inputs);
        resolver.warn_unknown_variables(&inputs);
        resolver.check_rules();
        resolver.finish()
    }
}

/// An environment variable and the env file it came from, if any.
struct Var {
    value: String,
    env_file: Option<String>,
}

struct Inputs {
    flags: BTreeMap<&'static str, String>,
    vars: BTreeMap<String, Var>,
    file_path: String,
    file: BTreeMap<&'static str, String>,
}

/// One name under which a setting was given in the environment.
struct Given {
    source: Source,
    raw: String,
    unit: Unit,
    is_alias: bool,
    value: Option<Value>,
}

struct Resolver {
    component: Component,
    environment: Environment,
    entries: Vec<Entry>,
    values: BTreeMap<Setting, Value>,
    failed: BTreeSet<Setting>,
    errors: Vec<String>,
    warnings: Vec<String>,
}

impl Resolver {
    fn new(component: Component) -> Resolver {
        Resolver {
            component,
            environment: Environment::Development,
            entries: Vec::new(),
            values: BTreeMap::new(),
            failed: BTreeSet::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn read_inputs(&mut self, builder: ConfigBuilder) -> Inputs {
        let mut flags = BTreeMap::new();
        for (name, value) in builder.flags {
            match settings().iter().find(|spec| spec.env() == name) {
                Some(spec) => {
                    flags.insert(spec.env(), value);
                }
                None => self
                    .errors
                    .push(format!("`{name}` is not a setting that takes a flag")),
            }
        }

        let mut vars = BTreeMap::new();
        let mut empty = BTreeSet::new();
        if let Some((path, text)) = &builder.env_file {
            let (file_vars, errors) = parse::parse_env_file(path, text);
            self.errors.extend(errors);
            for (name, value) in file_vars {
                let var = Var {
                    value,
                    env_file: Some(path.clone()),
                };
                insert_var(&mut vars, &mut empty, name, var);
            }
        }
        // The process environment comes last so it wins over the env file.
        for (name, value) in builder.env {
            insert_var(
                &mut vars,
                &mut empty,
                name,
                Var {
                    value,
                    env_file: None,
                },
            );
        }
        for name in empty {
            if is_known_name(&name) {
                self.warnings
                    .push(format!("{name} is set but empty; it is ignored"));
            }
        }

        let (file_path, file) = match builder.file {
            Some((path, text)) => {
                let file = self.read_file(&path, &text);
                (path, file)
            }
            None => (String::new(), BTreeMap::new()),
        };
        Inputs {
            flags,
            vars,
            file_path,
            file,
        }
    }

    /// Parses `tollgate.toml` into raw values by key. Unknown keys and values
    /// of the wrong TOML type are errors.
    fn read_file(&mut self, path: &str, text: &str) -> BTreeMap<&'static str, String> {
        let mut out = BTreeMap::new();
        let table = match text.parse::<toml::Table>() {
            Ok(table) => table,
            Err(err) => {
                let line = err
                    .span()
                    .and_then(|span| text.get(..span.start))
                    .map(|before| before.matches('\n').count() + 1);
                let message = err.message().trim().replace('\n', "; ");
                self.errors.push(match line {
                    Some(line) => format!("{path}:{line}: not valid TOML: {message}"),
                    None => format!("{path}: not valid TOML: {message}"),
                });
                return out;
            }
        };
        for (key, value) in table {
            let Some(spec) = settings().iter().find(|spec| spec.key() == key) else {
                let hint = parse::did_you_mean(&key, settings().iter().map(|s| s.key()))
                    .map(|near| format!(" (did you mean `{near}`?)"))
                    .unwrap_or_default();
                self.errors.push(format!(
                    "{path}: unknown key `{}`{hint}",
                    key.escape_debug()
                ));
                continue;
            };
            let raw = match value {
                toml::Value::String(text) => Some(text),
                toml::Value::Integer(n) => Some(n.to_string()),
                toml::Value::Boolean(on) => Some(if on { "on" } else { "off" }.to_owned()),
                toml::Value::Array(items) if spec.setting() == Setting::Audience => items
                    .into_iter()
                    .map(|item| match item {
                        toml::Value::String(text) => Some(text),
                        _ => None,
                    })
                    .collect::<Option<Vec<String>>>()
                    .map(|items| items.join(",")),
                _ => None,
            };
            match raw {
                Some(raw) => {
                    out.insert(spec.key(), raw);
                }
                None => self.errors.push(format!(
                    "{path}: `{key}` must be a string{}",
                    if spec.setting() == Setting::Audience {
                        " or an array of strings"
                    } else {
                        ""
                    }
                )),
            }
        }
        out
    }

    fn resolve_all(&mut self, inputs: &Inputs) {
        for spec in settings() {
            self.resolve(spec, inputs);
            if spec.setting() == Setting::Environment {
                // Everything after this depends on the environment: its
                // defaults and the `JWT_SECRET_<ENV>` alias.
                if let Some(Value::Env(env)) = self.values.get(&Setting::Environment) {
                    self.environment = *env;
                }
            }
        }
    }

    fn resolve(&mut self, spec: &'static SettingSpec, inputs: &Inputs) {
        if let Some(raw) = inputs.flags.get(spec.env()) {
            let source = Source::Flag(spec.flag().unwrap_or(spec.key()));
            self.take(spec, source, raw, Unit::Native);
            return;
        }
        let given = self.given_in_env(spec, inputs);
        if !given.is_empty() {
            self.take_env(spec, given);
            return;
        }
        if let Some(raw) = inputs.file.get(spec.key()) {
            let source = Source::File {
                path: inputs.file_path.clone(),
                key: spec.key(),
            };
            self.take(spec, source, raw, Unit::Native);
            return;
        }
        self.take_default(spec);
    }

    /// Every name of `spec` set in the environment, canonical first, each
    /// parsed in its unit. Parse errors are reported here.
    fn given_in_env(&mut self, spec: &'static SettingSpec, inputs: &Inputs) -> Vec<Given> {
        let names = std::iter::once((spec.env().to_owned(), Unit::Native, false)).chain(
            spec.aliases()
                .iter()
                .map(|alias| (alias.name_in(self.environment), alias.unit, true)),
        );
        let mut given = Vec::new();
        for (name, unit, is_alias) in names {
            let Some(var) = inputs.vars.get(&name) else {
                continue;
            };
            let source = match &var.env_file {
                Some(path) => Source::EnvFile {
                    path: path.clone(),
                    name,
                },
                None => Source::Env(name),
            };
            let value = match parse::parse(spec, unit, &var.value) {
                Ok(value) => Some(value),
                Err(reason) => {
                    self.errors.push(format!(
                        "{} {reason}",
                        source.assignment(&shown(spec, &var.value))
                    ));
                    None
                }
            };
            given.push(Given {
                source,
                raw: var.value.clone(),
                unit,
                is_alias,
                value,
            });
        }
        given
    }

    /// Takes the first name given; every other name must agree with it.
    fn take_env(&mut self, spec: &'static SettingSpec, given: Vec<Given>) {
        let describe = |g: &Given| {
            let converted = match (&g.value, g.unit) {
                (Some(Value::Seconds(secs)), Unit::Minutes | Unit::Days) => {
                    format!(" (= {secs} s)")
                }
                _ => String::new(),
            };
            format!("{}{converted}", g.source.assignment(&shown(spec, &g.raw)))
        };
        let valid: Vec<&Given> = given.iter().filter(|g| g.value.is_some()).collect();
        if let Some((first, rest)) = valid.split_first() {
            for other in rest {
                if other.value != first.value {
                    self.errors.push(format!(
                        "{} and {} disagree; set only {}",
                        describe(first),
                        describe(other),
                        spec.env()
                    ));
                }
            }
        }
        for alias in given.iter().filter(|g| g.is_alias) {
            self.warnings.push(format!(
                "{} is a deprecated name; use {}",
                alias.source.name(),
                spec.env()
            ));
        }
        let Some(first) = given.into_iter().next() else {
            return;
        };
        let display = match &first.value {
            Some(value) => value.display(spec),
            None => shown(spec, &first.raw),
        };
        self.record(spec, first.source, display, first.value);
    }

    fn take(&mut self, spec: &'static SettingSpec, source: Source, raw: &str, unit: Unit) {
        match parse::parse(spec, unit, raw) {
            Ok(value) => self.record(spec, source, value.display(spec), Some(value)),
            Err(reason) => {
                let display = shown(spec, raw);
                self.errors
                    .push(format!("{} {reason}", source.assignment(&display)));
                self.record(spec, source, display, None);
            }
        }
    }

    fn take_default(&mut self, spec: &'static SettingSpec) {
        let source = Source::Default(self.environment);
        match spec.default_in(self.environment) {
            DefaultValue::Value(text) => self.take(spec, source, text, Unit::Native),
            DefaultValue::IssuerFromBind => match self.values.get(&Setting::Bind) {
                Some(Value::Addr(bind)) => {
                    let issuer = format!("http://{bind}");
                    self.record(spec, source, issuer.clone(), Some(Value::Text(issuer)));
                }
                _ => self.record_unset(spec, source),
            },
            DefaultValue::Unset | DefaultValue::Required => self.record_unset(spec, source),
        }
    }

    fn record(
        &mut self,
        spec: &'static SettingSpec,
        source: Source,
        display: String,
        value: Option<Value>,
    ) {
        match value {
            Some(value) => {
                self.values.insert(spec.setting(), value);
            }
            None => {
                self.failed.insert(spec.setting());
            }
        }
        self.entries.push(Entry {
            spec,
            value: Some(display),
            source,
        });
    }

    fn record_unset(&mut self, spec: &'static SettingSpec, source: Source) {
        self.entries.push(Entry {
            spec,
            value: None,
            source,
        });
    }

    fn warn_unknown_variables(&mut self, inputs: &Inputs) {
        for name in inputs.vars.keys() {
            if name.starts_with("TOLLGATE_") && !settings().iter().any(|s| s.env() == name) {
                let hint = parse::did_you_mean(name, settings().iter().map(|s| s.env()))
                    .map(|near| format!("; did you mean {near}?"))
                    .unwrap_or_default();
                self.warnings.push(format!(
                    "{} is not a Tollgate setting and is ignored{hint}",
                    name.escape_debug()
                ));
            }
        }
        // `JWT_SECRET_STAGING` in production is someone else's secret: say
        // that it is not used rather than silently ignoring it.
        for spec in settings() {
            for alias in spec.aliases().iter().filter(|a| a.is_per_environment()) {
                for env in ENVIRONMENTS.iter().filter(|e| **e != self.environment) {
                    let name = alias.name_in(*env);
                    if inputs.vars.contains_key(&name) {
                        self.warnings.push(format!(
                            "{name} applies only in {env} and is ignored in {}",
                            self.environment
                        ));
                    }
                }
            }
        }
    }

    /// The name a setting was given under, for messages: the flag, the
    /// variable or the key, or the canonical name for defaults.
    fn origin(&self, setting: Setting) -> String {
        match self.entries.iter().find(|e| e.spec.setting() == setting) {
            Some(Entry {
                source: Source::Default(_),
                ..
            })
            | None => setting.spec().env().to_owned(),
            Some(entry) => entry.source.name(),
        }
    }

    fn is_missing(&self, setting: Setting) -> bool {
        !self.values.contains_key(&setting) && !self.failed.contains(&setting)
    }

    fn text(&self, setting: Setting) -> Option<&str> {
        match self.values.get(&setting) {
            Some(Value::Text(text)) => Some(text),
            _ => None,
        }
    }

    fn secret(&self, setting: Setting) -> Option<&Secret> {
        match self.values.get(&setting) {
            Some(Value::Secret(secret)) => Some(secret),
            _ => None,
        }
    }

    fn seconds(&self, setting: Setting) -> Option<u64> {
        match self.values.get(&setting) {
            Some(Value::Seconds(secs)) => Some(*secs),
            _ => None,
        }
    }

    fn switch(&self, setting: Setting) -> Option<bool> {
        match self.values.get(&setting) {
            Some(Value::Switch(on)) => Some(*on),
            _ => None,
        }
    }

    fn algorithm(&self) -> Option<Algorithm> {
        match self.values.get(&Setting::SigningAlg) {
            Some(Value::Alg(alg)) => Some(*alg),
            _ => None,
        }
    }

    fn error(&mut self, line: String) {
        self.errors.push(line);
    }

    fn warning(&mut self, line: String) {
        self.warnings.push(line);
    }

    /// An error in staging and production, a warning elsewhere.
    fn refusal(&mut self, line: String) {
        if self.environment.is_strict() {
            self.errors.push(line);
        } else {
            self.warnings.push(line);
        }
    }

    /// The rules of CONTRACT §2 over the resolved values. Each problem is
    /// one line; a setting whose value failed to parse is not judged again.
    fn check_rules(&mut self) {
        self.check_issuer();
        self.check_signing();
        self.check_master_key();
        self.check_service_identity();
        self.check_development_switches();
        self.check_bootstrap_admin();
        self.check_lifetimes();
    }

    fn check_issuer(&mut self) {
        let env = self.environment;
        if self.is_missing(Setting::Issuer) {
            if env.is_strict() {
                self.error(format!(
                    "TOLLGATE_ISSUER is required in {env}: set it to the public https:// URL of the token service"
                ));
            }
            return;
        }
        let Some(issuer) = self.text(Setting::Issuer).map(str::to_owned) else {
            return;
        };
        if env.is_strict() && issuer.starts_with("http://") && !is_loopback_issuer(&issuer) {
            self.error(format!(
                "{}={issuer} uses plain http:// in {env}; use https:// (http:// is allowed only for loopback addresses)",
                self.origin(Setting::Issuer)
            ));
        }
        let from_default = matches!(
            self.entries
                .iter()
                .find(|e| e.spec.setting() == Setting::Issuer),
            Some(Entry {
                source: Source::Default(_),
                ..
            })
        );
        let unspecified = matches!(
            self.values.get(&Setting::Bind),
            Some(Value::Addr(bind)) if bind.ip().is_unspecified()
        );
        if from_default && unspecified {
            self.warning(format!(
                "the default issuer {issuer} names no host clients can reach; set TOLLGATE_ISSUER to the URL clients use"
            ));
        }
    }

    fn check_signing(&mut self) {
        let alg = self.algorithm();
        let secret_name = self.origin(Setting::HmacSecret);
        let secret = self.secret(Setting::HmacSecret).cloned();
        match (alg, secret) {
            (Some(Algorithm::HS256), None) if self.is_missing(Setting::HmacSecret) => {
                self.error(format!(
                    "{} is HS256 but no shared secret is set; set TOLLGATE_HMAC_SECRET to at least 32 random bytes",
                    self.origin(Setting::SigningAlg)
                ));
            }
            (Some(Algorithm::HS256), Some(secret)) => {
                if secret.len() < MIN_HMAC_SECRET_BYTES {
                    self.error(format!(
                        "{secret_name} is {} bytes; HS256 needs a secret of at least {MIN_HMAC_SECRET_BYTES} random bytes",
                        secret.len()
                    ));
                } else if is_weak_secret(&secret) {
                    self.refusal(format!(
                        "{secret_name} is a well-known placeholder or repetitive secret; generate one with `openssl rand -base64 48`"
                    ));
                }
            }
            (Some(other), Some(_)) => self.warning(format!(
                "{secret_name} is set but the signing algorithm is {other}; the secret is not used"
            )),
            _ => {}
        }
    }

    fn check_master_key(&mut self) {
        let env = self.environment;
        let name = self.origin(Setting::MasterKey);
        match self.secret(Setting::MasterKey).cloned() {
            None => {
                if self.component == Component::Server
                    && env.is_strict()
                    && self.is_missing(Setting::MasterKey)
                {
                    self.error(format!(
                        "TOLLGATE_MASTER_KEY is required in {env}: it encrypts the private signing keys at rest (at least {MIN_MASTER_KEY_BYTES} random bytes)"
                    ));
                }
            }
            Some(key) if key.len() < MIN_MASTER_KEY_BYTES => self.error(format!(
                "{name} is {} bytes; the master key needs at least {MIN_MASTER_KEY_BYTES} random bytes",
                key.len()
            )),
            Some(key) if is_weak_secret(&key) => self.refusal(format!(
                "{name} is a well-known placeholder or repetitive secret; generate one with `openssl rand -base64 48`"
            )),
            Some(_) => {}
        }
    }

    fn check_service_identity(&mut self) {
        let env = self.environment;
        let sdk_in_strict = self.component == Component::Sdk && env.is_strict();
        if sdk_in_strict && self.is_missing(Setting::ClientId) {
            self.error(format!(
                "TOLLGATE_CLIENT_ID is required for a service in {env}: it names the service to the token service"
            ));
        }
        if sdk_in_strict && self.is_missing(Setting::ClientSecret) {
            self.error(format!(
                "TOLLGATE_CLIENT_SECRET is required for a service in {env}: without it the service cannot introspect or follow revocations"
            ));
        }
        if !sdk_in_strict
            && self.secret(Setting::ClientSecret).is_some()
            && self.is_missing(Setting::ClientId)
        {
            self.error(format!(
                "{} is set without TOLLGATE_CLIENT_ID",
                self.origin(Setting::ClientSecret)
            ));
        }
    }

    fn check_development_switches(&mut self) {
        let env = self.environment;
        if !env.is_strict() {
            return;
        }
        for spec in settings().iter().filter(|s| s.is_development_only()) {
            if self.switch(spec.setting()) == Some(true) {
                self.error(format!(
                    "{} is a development-only switch and must be off in {env}",
                    self.origin(spec.setting())
                ));
            }
        }
    }

    fn check_bootstrap_admin(&mut self) {
        let email = self.text(Setting::BootstrapAdminEmail).is_some();
        let password = self.secret(Setting::BootstrapAdminPassword).cloned();
        if email && self.is_missing(Setting::BootstrapAdminPassword) {
            self.error(format!(
                "{} is set without TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD",
                self.origin(Setting::BootstrapAdminEmail)
            ));
        }
        let Some(password) = password else {
            return;
        };
        if self.is_missing(Setting::BootstrapAdminEmail) {
            self.error(format!(
                "{} is set without TOLLGATE_BOOTSTRAP_ADMIN_EMAIL",
                self.origin(Setting::BootstrapAdminPassword)
            ));
        }
        let policy = match password.expose_str() {
            Some(text) => crate::password::check_policy(text),
            None => Err(Error::WeakPassword("the password is not valid UTF-8")),
        };
        if let Err(err) = policy {
            self.error(format!(
                "{} is refused: {err}",
                self.origin(Setting::BootstrapAdminPassword)
            ));
        }
    }

    fn check_lifetimes(&mut self) {
        for setting in [Setting::AccessTokenTtl, Setting::ServiceTokenTtl] {
            if let Some(ttl) = self.seconds(setting)
                && ttl > MAX_SHORT_TOKEN_TTL
            {
                self.error(format!(
                    "{} is {ttl} s; access and service tokens live at most 24h ({MAX_SHORT_TOKEN_TTL} s), longer tokens are refused by validators",
                    self.origin(setting)
                ));
            }
        }
        if let (Some(access), Some(refresh)) = (
            self.seconds(Setting::AccessTokenTtl),
            self.seconds(Setting::RefreshTokenTtl),
        ) && refresh < access
        {
            self.warning(format!(
                "{} ({refresh} s) is shorter than {} ({access} s): sessions end before their access tokens",
                self.origin(Setting::RefreshTokenTtl),
                self.origin(Setting::AccessTokenTtl)
            ));
        }
        if let Some(leeway) = self.seconds(Setting::Leeway)
            && leeway > 300
        {
            self.warning(format!(
                "{} is {leeway} s; expired tokens stay accepted that long (the default is 30 s)",
                self.origin(Setting::Leeway)
            ));
        }
    }

    fn finish(mut self) -> Report {
        let config = if self.errors.is_empty() {
            let config = self.assemble();
            if config.is_none() {
                self.errors
                    .push("the configuration could not be assembled".to_owned());
            }
            config
        } else {
            None
        };
        Report {
            component: self.component,
            environment: self.environment,
            entries: self.entries,
            errors: self.errors,
            warnings: self.warnings,
            config,
        }
    }

    /// The typed [`Config`]; `None` only if a setting with a default has no
    /// value, which the table's tests rule out.
    fn assemble(&self) -> Option<Config> {
        let bind = match self.values.get(&Setting::Bind) {
            Some(Value::Addr(bind)) => *bind,
            _ => return None,
        };
        let audiences = match self.values.get(&Setting::Audience) {
            Some(Value::List(items)) => items.clone(),
            _ => return None,
        };
        let feed_down_policy = match self.values.get(&Setting::FeedDownPolicy) {
            Some(Value::Policy(policy)) => *policy,
            _ => return None,
        };
        let signing_alg = self.algorithm()?;
        let owned = |setting| self.text(setting).map(str::to_owned);
        Some(Config {
            environment: self.environment,
            bind,
            issuer: owned(Setting::Issuer)?,
            audiences,
            access_token_ttl: self.seconds(Setting::AccessTokenTtl)?,
            refresh_token_ttl: self.seconds(Setting::RefreshTokenTtl)?,
            service_token_ttl: self.seconds(Setting::ServiceTokenTtl)?,
            leeway: self.seconds(Setting::Leeway)?,
            signing_alg,
            // A secret set for another algorithm is not used (a warning
            // says so), and so is not published in fingerprints either.
            hmac_secret: self
                .secret(Setting::HmacSecret)
                .filter(|_| signing_alg == Algorithm::HS256)
                .cloned(),
            database_url: self.secret(Setting::DatabaseUrl)?.clone(),
            redis_url: self.secret(Setting::RedisUrl).cloned(),
            redis_prefix: owned(Setting::RedisPrefix),
            master_key: self.secret(Setting::MasterKey).cloned(),
            client_id: owned(Setting::ClientId),
            client_secret: self.secret(Setting::ClientSecret).cloned(),
            registration_open: self.switch(Setting::Registration)?,
            plans_file: owned(Setting::PlansFile),
            bootstrap_admin_email: owned(Setting::BootstrapAdminEmail),
            bootstrap_admin_password: self.secret(Setting::BootstrapAdminPassword).cloned(),
            feed_down_policy,
            allow_query_token: self.switch(Setting::AllowQueryToken)?,
        })
    }
}

fn insert_var(
    vars: &mut BTreeMap<String, Var>,
    empty: &mut BTreeSet<String>,
    name: String,
    var: Var,
) {
    if var.value.is_empty() {
        empty.insert(name);
    } else {
        empty.remove(&name);
        vars.insert(name, var);
    }
}

/// Whether `name` is a setting's canonical name or alias (in any
/// environment).
fn is_known_name(name: &str) -> bool {
    name.starts_with("TOLLGATE_")
        || settings().iter().any(|spec| {
            spec.aliases()
                .iter()
                .any(|alias| ENVIRONMENTS.iter().any(|env| alias.name_in(*env) == name))
        })
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};
    use proptest::prelude::*;

    use super::*;

    /// A random-enough secret of `n` bytes (not on the weak list).
    fn strong(n: usize) -> String {
        "q3J9vX2mL8pR4tY7wZ1nB6cF0hK5sD2gA9eUq3J9vX2mL8pR4tY7wZ1nB6cF"[..n].to_owned()
    }

    /// Inputs of one case: `NAME=value` environment lines, then optionally
    /// `--- FILE` and `tollgate.toml` text, and `flag NAME=value` lines.
    fn build(component: Component, input: &str) -> Report {
        let (env_part, file) = match input.split_once("--- FILE\n") {
            Some((env, file)) => (env, Some(file)),
            None => (input, None),
        };
        let mut builder = ConfigBuilder::new(component);
        for line in env_part.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (flag, line) = match line.strip_prefix("flag ") {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let (name, value) = line.split_once('=').unwrap();
            builder = if flag {
                builder.flag(name, value)
            } else {
                builder.env([(name, value)])
            };
        }
        if let Some(file) = file {
            builder = builder.file("tollgate.toml", file);
        }
        builder.build()
    }

    /// Renders errors and warnings (or `ok`) for a snapshot.
    fn render(report: &Report) -> String {
        let mut out = String::new();
        for line in report.errors() {
            out.push_str(&format!("error: {line}\n"));
        }
        for line in report.warnings() {
            out.push_str(&format!("warning: {line}\n"));
        }
        if report.is_ok() {
            out.push_str("ok\n");
        }
        out
    }

    fn check(input: &str, expect: Expect) {
        expect.assert_eq(&render(&build(Component::Server, input)));
    }

    fn check_sdk(input: &str, expect: Expect) {
        expect.assert_eq(&render(&build(Component::Sdk, input)));
    }

    /// Checks one setting's shown value and source.
    fn check_value(input: &str, setting: Setting, expect: Expect) {
        let report = build(Component::Server, input);
        let entry = report.entry(setting).unwrap();
        expect.assert_eq(&format!(
            "{} <- {}",
            entry.value().unwrap_or("(unset)"),
            entry.source()
        ));
    }

    /// A production configuration that passes every rule.
    fn production() -> String {
        format!(
            "TOLLGATE_ENV=production\nTOLLGATE_ISSUER=https://auth.example.com\nTOLLGATE_MASTER_KEY={}\n",
            strong(40)
        )
    }

    #[test]
    fn nothing_set_is_the_development_profile() {
        let report = build(Component::Server, "");
        assert!(report.is_ok());
        let (config, warnings) = report.into_config().unwrap();
        assert!(warnings.is_empty());
        let expected = Config::development();
        assert_eq!(format!("{config:?}"), format!("{expected:?}"));
    }

    #[test]
    fn the_redis_namespace_is_the_prefix_or_derived_from_the_issuer() {
        let config = |text: &str| build(Component::Server, text).into_config().unwrap().0;
        let a = config("TOLLGATE_ISSUER=http://127.0.0.1:1\n");
        let b = config("TOLLGATE_ISSUER=http://127.0.0.1:2\n");
        assert!(a.redis_namespace().starts_with("tollgate:"));
        assert_eq!(a.redis_namespace().len(), "tollgate:".len() + 16);
        assert_ne!(a.redis_namespace(), b.redis_namespace());
        assert_eq!(a.redis_namespace(), a.clone().redis_namespace());
        let named = config("TOLLGATE_ISSUER=http://127.0.0.1:1\nTOLLGATE_REDIS_PREFIX=acme-prod\n");
        assert_eq!(named.redis_namespace(), "acme-prod");
    }

    #[test]
    fn precedence_is_flag_then_env_then_file_then_default() {
        let file = "--- FILE\nbind = \"127.0.0.1:3\"\naudience = [\"a\", \"b\"]\n";
        check_value(
            &format!("flag TOLLGATE_BIND=127.0.0.1:1\nTOLLGATE_BIND=127.0.0.1:2\n{file}"),
            Setting::Bind,
            expect!["127.0.0.1:1 <- flag --bind"],
        );
        check_value(
            &format!("TOLLGATE_BIND=127.0.0.1:2\n{file}"),
            Setting::Bind,
            expect!["127.0.0.1:2 <- env TOLLGATE_BIND"],
        );
        check_value(
            file,
            Setting::Bind,
            expect!["127.0.0.1:3 <- file tollgate.toml (bind)"],
        );
        check_value(
            file,
            Setting::Audience,
            expect!["a,b <- file tollgate.toml (audience)"],
        );
        check_value(
            "",
            Setting::Bind,
            expect!["127.0.0.1:8080 <- default (development)"],
        );
        // The issuer default follows the effective bind address.
        check_value(
            file,
            Setting::Issuer,
            expect!["http://127.0.0.1:3 <- default (development)"],
        );
    }

    #[test]
    fn a_flag_over_a_different_env_value_is_no_conflict() {
        check(
            "flag TOLLGATE_ACCESS_TOKEN_TTL=600\nJWT_ACCESS_EXPIRY_MINUTES=15",
            expect![[r#"
                ok
            "#]],
        );
    }

    #[test]
    fn units_convert() {
        for (input, seconds) in [
            ("TOLLGATE_ACCESS_TOKEN_TTL=10m", 600),
            ("TOLLGATE_ACCESS_TOKEN_TTL=600", 600),
            ("JWT_ACCESS_TOKEN_EXPIRE_MINUTES=10", 600),
            ("JWT_ACCESS_EXPIRY_MINUTES=10", 600),
        ] {
            let (config, _) = build(Component::Server, input).into_config().unwrap();
            assert_eq!(config.access_token_ttl, seconds, "{input}");
        }
        for input in [
            "JWT_REFRESH_TOKEN_EXPIRE_DAYS=2",
            "JWT_REFRESH_EXPIRY_DAYS=2",
            "TOLLGATE_REFRESH_TOKEN_TTL=2d",
            "TOLLGATE_REFRESH_TOKEN_TTL=48h",
        ] {
            let (config, _) = build(Component::Server, input).into_config().unwrap();
            assert_eq!(config.refresh_token_ttl, 2 * 86_400, "{input}");
        }
    }

    #[test]
    fn two_names_with_different_values_conflict() {
        check(
            "JWT_ACCESS_EXPIRY_MINUTES=15\nJWT_ACCESS_TOKEN_EXPIRE_MINUTES=30",
            expect![[r#"
                error: JWT_ACCESS_TOKEN_EXPIRE_MINUTES=30 (= 1800 s) and JWT_ACCESS_EXPIRY_MINUTES=15 (= 900 s) disagree; set only TOLLGATE_ACCESS_TOKEN_TTL
                warning: JWT_ACCESS_TOKEN_EXPIRE_MINUTES is a deprecated name; use TOLLGATE_ACCESS_TOKEN_TTL
                warning: JWT_ACCESS_EXPIRY_MINUTES is a deprecated name; use TOLLGATE_ACCESS_TOKEN_TTL
            "#]],
        );
        check(
            "TOLLGATE_ISSUER=https://a.example\nJWT_ISSUER=https://b.example",
            expect![[r#"
                error: TOLLGATE_ISSUER=https://a.example and JWT_ISSUER=https://b.example disagree; set only TOLLGATE_ISSUER
                warning: JWT_ISSUER is a deprecated name; use TOLLGATE_ISSUER
            "#]],
        );
    }

    #[test]
    fn conflicting_secrets_are_masked() {
        let (a, b) = (strong(40), strong(33));
        let report = build(
            Component::Server,
            &format!("TOLLGATE_SIGNING_ALG=HS256\nTOLLGATE_HMAC_SECRET={a}\nJWT_SECRET={b}"),
        );
        expect![[r#"
            error: TOLLGATE_HMAC_SECRET=**** (40 bytes) and JWT_SECRET=**** (33 bytes) disagree; set only TOLLGATE_HMAC_SECRET
            warning: JWT_SECRET is a deprecated name; use TOLLGATE_HMAC_SECRET
        "#]]
        .assert_eq(&render(&report));
        assert!(!format!("{report:?}").contains(&b));
    }

    #[test]
    fn the_same_value_through_an_alias_is_a_deprecation() {
        check(
            "TOLLGATE_ACCESS_TOKEN_TTL=15m\nJWT_ACCESS_EXPIRY_MINUTES=15",
            expect![[r#"
                warning: JWT_ACCESS_EXPIRY_MINUTES is a deprecated name; use TOLLGATE_ACCESS_TOKEN_TTL
                ok
            "#]],
        );
    }

    #[test]
    fn the_environment_alias_of_the_secret_applies_in_its_environment_only() {
        let secret = strong(40);
        let report = build(
            Component::Server,
            &format!(
                "{}TOLLGATE_SIGNING_ALG=HS256\nJWT_SECRET_PRODUCTION={secret}\nJWT_SECRET_STAGING=x",
                production()
            ),
        );
        expect![[r#"
            warning: JWT_SECRET_PRODUCTION is a deprecated name; use TOLLGATE_HMAC_SECRET
            warning: JWT_SECRET_STAGING applies only in staging and is ignored in production
            ok
        "#]]
        .assert_eq(&render(&report));
        let (config, _) = report.into_config().unwrap();
        assert_eq!(config.hmac_secret, Some(Secret::from(secret)));
    }

    #[test]
    fn production_refuses_a_missing_issuer_and_master_key_one_line_each() {
        check(
            "TOLLGATE_ENV=production",
            expect![[r#"
                error: TOLLGATE_ISSUER is required in production: set it to the public https:// URL of the token service
                error: TOLLGATE_MASTER_KEY is required in production: it encrypts the private signing keys at rest (at least 32 random bytes)
            "#]],
        );
        check(
            &production(),
            expect![[r#"
            ok
        "#]],
        );
    }

    #[test]
    fn strict_environments_refuse_plain_http_issuers_except_loopback() {
        check(
            &format!("{}TOLLGATE_ISSUER=http://auth.example.com", production()),
            expect![[r#"
                error: TOLLGATE_ISSUER=http://auth.example.com uses plain http:// in production; use https:// (http:// is allowed only for loopback addresses)
            "#]],
        );
        check(
            &format!("{}TOLLGATE_ISSUER=http://127.0.0.1:8080", production()),
            expect![[r#"
                ok
            "#]],
        );
        check(
            "TOLLGATE_ISSUER=http://auth.example.com",
            expect![[r#"
                ok
            "#]],
        );
    }

    #[test]
    fn hs256_needs_a_secret_everywhere() {
        check(
            "TOLLGATE_SIGNING_ALG=HS256",
            expect![[r#"
                error: TOLLGATE_SIGNING_ALG is HS256 but no shared secret is set; set TOLLGATE_HMAC_SECRET to at least 32 random bytes
            "#]],
        );
        check(
            "JWT_ALGORITHM=HS256\nJWT_SECRET=short",
            expect![[r#"
                error: JWT_SECRET is 5 bytes; HS256 needs a secret of at least 32 random bytes
                warning: JWT_ALGORITHM is a deprecated name; use TOLLGATE_SIGNING_ALG
                warning: JWT_SECRET is a deprecated name; use TOLLGATE_HMAC_SECRET
            "#]],
        );
    }

    #[test]
    fn weak_secrets_are_refused_in_production_and_warned_in_development() {
        let weak = "your-super-secret-jwt-token-with-at-least-32-characters-long";
        check(
            &format!(
                "{}TOLLGATE_SIGNING_ALG=HS256\nTOLLGATE_HMAC_SECRET={weak}",
                production()
            ),
            expect![[r#"
                error: TOLLGATE_HMAC_SECRET is a well-known placeholder or repetitive secret; generate one with `openssl rand -base64 48`
            "#]],
        );
        check(
            &format!("TOLLGATE_SIGNING_ALG=HS256\nTOLLGATE_HMAC_SECRET={weak}"),
            expect![[r#"
                warning: TOLLGATE_HMAC_SECRET is a well-known placeholder or repetitive secret; generate one with `openssl rand -base64 48`
                ok
            "#]],
        );
        check(
            &format!(
                "{}TOLLGATE_SIGNING_ALG=HS256\nTOLLGATE_HMAC_SECRET=changeme",
                production()
            ),
            expect![[r#"
                error: TOLLGATE_HMAC_SECRET is 8 bytes; HS256 needs a secret of at least 32 random bytes
            "#]],
        );
    }

    #[test]
    fn a_secret_without_hs256_is_unused() {
        let report = build(
            Component::Server,
            &format!("TOLLGATE_HMAC_SECRET={}", strong(40)),
        );
        expect![[r#"
            warning: TOLLGATE_HMAC_SECRET is set but the signing algorithm is EdDSA; the secret is not used
            ok
        "#]]
        .assert_eq(&render(&report));
        assert_eq!(report.into_config().unwrap().0.hmac_secret, None);
    }

    #[test]
    fn master_keys_must_be_long() {
        check(
            "TOLLGATE_MASTER_KEY=short",
            expect![[r#"
                error: TOLLGATE_MASTER_KEY is 5 bytes; the master key needs at least 32 random bytes
            "#]],
        );
        check(
            &format!(
                "{}TOLLGATE_MASTER_KEY={}",
                production().replace("TOLLGATE_MASTER_KEY", "X"),
                "a".repeat(40)
            ),
            expect![[r#"
                error: TOLLGATE_MASTER_KEY is a well-known placeholder or repetitive secret; generate one with `openssl rand -base64 48`
            "#]],
        );
    }

    #[test]
    fn a_service_in_production_needs_its_identity_but_no_master_key() {
        let sdk = "TOLLGATE_ENV=production\nTOLLGATE_ISSUER=https://auth.example.com";
        check_sdk(
            sdk,
            expect![[r#"
                error: TOLLGATE_CLIENT_ID is required for a service in production: it names the service to the token service
                error: TOLLGATE_CLIENT_SECRET is required for a service in production: without it the service cannot introspect or follow revocations
            "#]],
        );
        check_sdk(
            &format!("{sdk}\nSERVICE_ID=chat\nSERVICE_SECRET={}", strong(40)),
            expect![[r#"
                warning: SERVICE_ID is a deprecated name; use TOLLGATE_CLIENT_ID
                warning: SERVICE_SECRET is a deprecated name; use TOLLGATE_CLIENT_SECRET
                ok
            "#]],
        );
        check(
            "TOLLGATE_CLIENT_SECRET=abc",
            expect![[r#"
                error: TOLLGATE_CLIENT_SECRET is set without TOLLGATE_CLIENT_ID
            "#]],
        );
    }

    #[test]
    fn development_switches_are_refused_in_strict_environments() {
        check(
            &format!("{}TOLLGATE_ALLOW_QUERY_TOKEN=true", production()),
            expect![[r#"
                error: TOLLGATE_ALLOW_QUERY_TOKEN is a development-only switch and must be off in production
            "#]],
        );
        check(
            &format!("{}TOLLGATE_ALLOW_QUERY_TOKEN=off", production()),
            expect![[r#"
                ok
            "#]],
        );
        check(
            "TOLLGATE_ENV=test\nTOLLGATE_ALLOW_QUERY_TOKEN=on",
            expect![[r#"
            ok
        "#]],
        );
    }

    #[test]
    fn registration_defaults_follow_the_environment() {
        check_value(
            "",
            Setting::Registration,
            expect!["open <- default (development)"],
        );
        check_value(
            "TOLLGATE_ENV=test",
            Setting::Registration,
            expect!["open <- default (test)"],
        );
        check_value(
            "TOLLGATE_ENV=staging",
            Setting::Registration,
            expect!["closed <- default (staging)"],
        );
        let (config, _) = build(Component::Server, &production())
            .into_config()
            .unwrap();
        assert!(!config.registration_open);
    }

    #[test]
    fn bad_values_are_errors_naming_the_variable() {
        check(
            "TOLLGATE_SIGNING_ALG=hs256\nTOLLGATE_BIND=localhost:80\nTOLLGATE_AUDIENCE=api,\nTOLLGATE_ENV=prod\nTOLLGATE_SERVICE_TOKEN_TTL=0\nTOLLGATE_REFRESH_TOKEN_TTL=-1\nJWT_ACCESS_EXPIRY_MINUTES=ten",
            expect![[r#"
                error: TOLLGATE_ENV=prod is not an environment; use one of development, test, staging, production
                error: TOLLGATE_BIND=localhost:80 is not an IP address and port (e.g. 127.0.0.1:8080 or [::]:8080)
                error: TOLLGATE_AUDIENCE=api, has an empty entry; use a comma list such as api,billing
                error: JWT_ACCESS_EXPIRY_MINUTES=ten is not a duration; use whole minutes
                error: TOLLGATE_REFRESH_TOKEN_TTL=-1 is negative; use whole seconds or a number with s, m, h or d (900, 15m, 1h, 7d)
                error: TOLLGATE_SERVICE_TOKEN_TTL=0 is zero; a lifetime must be at least one second
                error: TOLLGATE_SIGNING_ALG=hs256 is not a signing algorithm; use one of EdDSA, ES256, RS256, HS256 (exact case)
                warning: JWT_ACCESS_EXPIRY_MINUTES is a deprecated name; use TOLLGATE_ACCESS_TOKEN_TTL
            "#]],
        );
    }

    #[test]
    fn long_lifetimes() {
        check(
            "TOLLGATE_ACCESS_TOKEN_TTL=2d\nTOLLGATE_LEEWAY=10m",
            expect![[r#"
                error: TOLLGATE_ACCESS_TOKEN_TTL is 172800 s; access and service tokens live at most 24h (86400 s), longer tokens are refused by validators
                warning: TOLLGATE_LEEWAY is 600 s; expired tokens stay accepted that long (the default is 30 s)
            "#]],
        );
        check(
            "TOLLGATE_ACCESS_TOKEN_TTL=1h\nTOLLGATE_REFRESH_TOKEN_TTL=10m",
            expect![[r#"
                warning: TOLLGATE_REFRESH_TOKEN_TTL (600 s) is shorter than TOLLGATE_ACCESS_TOKEN_TTL (3600 s): sessions end before their access tokens
                ok
            "#]],
        );
    }

    #[test]
    fn unknown_variables_warn_with_a_suggestion() {
        check(
            "TOLLGATE_ISUER=https://a.example\nTOLLGATE_LOG_FORMAT=json\nPATH=/bin\nJWT_WHATEVER=1",
            expect![[r#"
                warning: TOLLGATE_ISUER is not a Tollgate setting and is ignored; did you mean TOLLGATE_ISSUER?
                warning: TOLLGATE_LOG_FORMAT is not a Tollgate setting and is ignored
                ok
            "#]],
        );
    }

    #[test]
    fn config_files_are_strict() {
        check(
            "--- FILE\nisuer = \"https://a.example\"\nbind = 8080\n[section]\nx = 1\n",
            expect![[r#"
                error: tollgate.toml: unknown key `isuer` (did you mean `issuer`?)
                error: tollgate.toml: unknown key `section`
                error: bind = 8080 (in tollgate.toml) is not an IP address and port (e.g. 127.0.0.1:8080 or [::]:8080)
            "#]],
        );
        check(
            "--- FILE\nissuer = \"https://a.example\nhmac_secret = 1.5\n",
            expect![[r#"
                error: tollgate.toml:1: not valid TOML: invalid basic string, expected `"`
            "#]],
        );
        check(
            "--- FILE\nhmac_secret = 1.5\n",
            expect![[r#"
                error: tollgate.toml: `hmac_secret` must be a string
            "#]],
        );
    }

    #[test]
    fn env_files_merge_under_the_process_environment() {
        let report = ConfigBuilder::new(Component::Server)
            .env_file(
                ".env",
                "TOLLGATE_BIND=127.0.0.1:1\nTOLLGATE_AUDIENCE=from-file\nbad\n",
            )
            .env([("TOLLGATE_AUDIENCE", "from-env")])
            .build();
        expect![[r#"
            error: .env:3: expected NAME=value
        "#]]
        .assert_eq(&render(&report));
        let bind = report.entry(Setting::Bind).unwrap();
        assert_eq!(bind.source().to_string(), "env file .env (TOLLGATE_BIND)");
        assert_eq!(
            report.entry(Setting::Audience).unwrap().value(),
            Some("from-env")
        );
    }

    #[test]
    fn empty_variables_count_as_unset() {
        check(
            "TOLLGATE_ISSUER=\nDATABASE_URL=\nOTHER=",
            expect![[r#"
                warning: DATABASE_URL is set but empty; it is ignored
                warning: TOLLGATE_ISSUER is set but empty; it is ignored
                ok
            "#]],
        );
    }

    #[test]
    fn bootstrap_admin_needs_both_halves_and_a_good_password() {
        check(
            "TOLLGATE_BOOTSTRAP_ADMIN_EMAIL=admin@example.com",
            expect![[r#"
                error: TOLLGATE_BOOTSTRAP_ADMIN_EMAIL is set without TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD
            "#]],
        );
        check(
            "TOLLGATE_BOOTSTRAP_ADMIN_EMAIL=admin@example.com\nTOLLGATE_BOOTSTRAP_ADMIN_PASSWORD=password",
            expect![[r#"
                error: TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD is refused: the password is one of the most common passwords
            "#]],
        );
    }

    #[test]
    fn the_default_issuer_on_an_unspecified_address_warns() {
        check(
            "TOLLGATE_BIND=0.0.0.0:8080",
            expect![[r#"
                warning: the default issuer http://0.0.0.0:8080 names no host clients can reach; set TOLLGATE_ISSUER to the URL clients use
                ok
            "#]],
        );
    }

    #[test]
    fn secrets_never_show() {
        let secret = strong(40);
        let master = strong(36);
        let report = build(
            Component::Sdk,
            &format!(
                "TOLLGATE_SIGNING_ALG=HS256\nTOLLGATE_HMAC_SECRET={secret}\nTOLLGATE_MASTER_KEY={master}\nTOLLGATE_CLIENT_ID=svc\nTOLLGATE_CLIENT_SECRET={secret}\nTOLLGATE_DATABASE_URL=postgres://u:{master}@db/x\nTOLLGATE_REDIS_URL=redis://:{master}@cache"
            ),
        );
        assert!(report.is_ok(), "{:?}", report.errors());
        let shown: Vec<String> = report
            .entries()
            .iter()
            .map(|e| format!("{} {}", e.value().unwrap_or_default(), e.source()))
            .collect();
        let text = format!("{shown:?} {report:?}");
        assert!(!text.contains(&secret) && !text.contains(&master), "{text}");
        assert!(shown.contains(&"postgres://u:****@db/x env TOLLGATE_DATABASE_URL".to_owned()));
        let (config, _) = report.into_config().unwrap();
        let debug = format!("{config:?}");
        assert!(
            !debug.contains(&secret) && !debug.contains(&master),
            "{debug}"
        );
    }

    #[test]
    fn unknown_flags_are_errors() {
        check(
            "flag TOLLGATE_NOPE=1",
            expect![[r#"
                error: `TOLLGATE_NOPE` is not a setting that takes a flag
            "#]],
        );
    }

    #[test]
    fn into_config_reports_every_error() {
        let err = build(Component::Server, "TOLLGATE_ENV=staging")
            .into_config()
            .unwrap_err();
        assert_eq!(err.code(), "invalid_config");
        assert_eq!(err.to_string().lines().count(), 2);
    }

    proptest! {
        #[test]
        fn arbitrary_inputs_never_panic(
            vars in proptest::collection::vec(
                (
                    prop_oneof![
                        proptest::sample::select(
                            settings()
                                .iter()
                                .flat_map(|s| std::iter::once(s.env()).chain(s.aliases().iter().map(|a| a.name)))
                                .chain(["JWT_SECRET_PRODUCTION", "TOLLGATE_X"])
                                .collect::<Vec<_>>()
                        ).prop_map(str::to_owned),
                        "[A-Z_]{1,20}",
                    ],
                    ".{0,40}",
                ),
                0..12,
            ),
            file in ".{0,200}",
            toml_lines in proptest::collection::vec(
                (proptest::sample::select(settings().iter().map(|s| s.key()).collect::<Vec<_>>()), ".{0,20}"),
                0..6,
            ),
            env_file in ".{0,200}",
            sdk in any::<bool>(),
        ) {
            let component = if sdk { Component::Sdk } else { Component::Server };
            let toml_text: String = toml_lines
                .iter()
                .map(|(key, value)| format!("{key} = {value:?}\n"))
                .collect();
            for file_text in [file, toml_text] {
                let report = ConfigBuilder::new(component)
                    .env(vars.clone())
                    .env_file(".env", env_file.clone())
                    .file("tollgate.toml", file_text)
                    .build();
                prop_assert_eq!(report.entries().len(), settings().len());
                let ok = report.is_ok();
                prop_assert_eq!(report.into_config().is_ok(), ok);
            }
        }
    }
}
