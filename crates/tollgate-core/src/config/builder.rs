//! [`ConfigBuilder`]: the inputs of a configuration (flags, environment,
//! env file, config file) and the [`Resolver`] that takes each setting from
//! the first source that has it, converts legacy units, records conflicts
//! and deprecations, and assembles the typed [`Config`]. The rules that
//! judge the resolved values live in `rules.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::parse::{self, Value, shown};
use super::{
    Component, Config, DefaultValue, ENVIRONMENTS, Entry, Environment, Report, Setting,
    SettingSpec, Source, Unit, settings,
};
use crate::Secret;
use crate::keys::Algorithm;

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

pub(super) struct Resolver {
    pub(super) component: Component,
    pub(super) environment: Environment,
    pub(super) entries: Vec<Entry>,
    pub(super) values: BTreeMap<Setting, Value>,
    pub(super) failed: BTreeSet<Setting>,
    pub(super) errors: Vec<String>,
    pub(super) warnings: Vec<String>,
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
    pub(super) fn origin(&self, setting: Setting) -> String {
        match self.entries.iter().find(|e| e.spec.setting() == setting) {
            Some(Entry {
                source: Source::Default(_),
                ..
            })
            | None => setting.spec().env().to_owned(),
            Some(entry) => entry.source.name(),
        }
    }

    pub(super) fn is_missing(&self, setting: Setting) -> bool {
        !self.values.contains_key(&setting) && !self.failed.contains(&setting)
    }

    pub(super) fn text(&self, setting: Setting) -> Option<&str> {
        match self.values.get(&setting) {
            Some(Value::Text(text)) => Some(text),
            _ => None,
        }
    }

    pub(super) fn secret(&self, setting: Setting) -> Option<&Secret> {
        match self.values.get(&setting) {
            Some(Value::Secret(secret)) => Some(secret),
            _ => None,
        }
    }

    pub(super) fn seconds(&self, setting: Setting) -> Option<u64> {
        match self.values.get(&setting) {
            Some(Value::Seconds(secs)) => Some(*secs),
            _ => None,
        }
    }

    pub(super) fn number(&self, setting: Setting) -> Option<u64> {
        match self.values.get(&setting) {
            Some(Value::Number(n)) => Some(*n),
            _ => None,
        }
    }

    pub(super) fn moment(&self, setting: Setting) -> Option<u64> {
        match self.values.get(&setting) {
            Some(Value::Moment(at, _)) => Some(*at),
            _ => None,
        }
    }

    /// A count that the table bounds (at most 10 000 000) as a `u32`.
    pub(super) fn count(&self, setting: Setting) -> Option<u32> {
        self.number(setting).and_then(|n| u32::try_from(n).ok())
    }

    pub(super) fn switch(&self, setting: Setting) -> Option<bool> {
        match self.values.get(&setting) {
            Some(Value::Switch(on)) => Some(*on),
            _ => None,
        }
    }

    pub(super) fn algorithm(&self) -> Option<Algorithm> {
        match self.values.get(&Setting::SigningAlg) {
            Some(Value::Alg(alg)) => Some(*alg),
            _ => None,
        }
    }

    pub(super) fn error(&mut self, line: String) {
        self.errors.push(line);
    }

    pub(super) fn warning(&mut self, line: String) {
        self.warnings.push(line);
    }

    /// An error in staging and production, a warning elsewhere.
    pub(super) fn refusal(&mut self, line: String) {
        if self.environment.is_strict() {
            self.errors.push(line);
        } else {
            self.warnings.push(line);
        }
    }
}

impl Resolver {
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
            refresh_reuse_grace: self.seconds(Setting::RefreshReuseGrace)?,
            service_token_ttl: self.seconds(Setting::ServiceTokenTtl)?,
            leeway: self.seconds(Setting::Leeway)?,
            signing_alg,
            // A secret set for another algorithm is not used (a warning
            // says so), and so is not published in fingerprints either.
            hmac_secret: self
                .secret(Setting::HmacSecret)
                .filter(|_| signing_alg == Algorithm::HS256)
                .cloned(),
            hmac_previous: self
                .secret(Setting::HmacPreviousSecret)
                .filter(|_| signing_alg == Algorithm::HS256)
                .cloned()
                .zip(self.moment(Setting::HmacPreviousUntil)),
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
            feed_max_staleness: self.seconds(Setting::FeedMaxStaleness)?,
            allow_query_token: self.switch(Setting::AllowQueryToken)?,
            keep_alive_timeout: self.seconds(Setting::KeepAliveTimeout)?,
            store_timeout: self.seconds(Setting::StoreTimeout)?,
            audit_retention: self.seconds(Setting::AuditRetention)?,
            audit_webhook_url: self.secret(Setting::AuditWebhookUrl).cloned(),
            audit_webhook_types: match self.values.get(&Setting::AuditWebhookTypes) {
                Some(Value::List(items)) => items.clone(),
                _ => return None,
            },
            audit_webhook_secret: self.secret(Setting::AuditWebhookSecret).cloned(),
            ws_max_message_size: self.number(Setting::WsMaxMessageSize)?,
            ws_send_queue: self.number(Setting::WsSendQueue)?,
            ws_send_timeout: self.seconds(Setting::WsSendTimeout)?,
            ws_refresh_budget: self.number(Setting::WsRefreshBudget)?,
            ws_expiry_notice: self.seconds(Setting::WsExpiryNotice)?,
            ws_max_connections: self.number(Setting::WsMaxConnections)?,
            usage_spool: owned(Setting::UsageSpool),
            usage_spool_max: self.number(Setting::UsageSpoolMax)?,
            trusted_proxies: match self.values.get(&Setting::TrustedProxies) {
                Some(Value::Cidrs(networks)) => networks.clone(),
                _ => Vec::new(),
            },
            introspections_per_client: self.count(Setting::IntrospectionsPerClient)?,
            login_failures_per_account: self.count(Setting::LoginFailuresPerAccount)?,
            login_failures_per_account_global: self
                .count(Setting::LoginFailuresPerAccountGlobal)?,
            login_failures_per_address: self.count(Setting::LoginFailuresPerAddress)?,
            registrations_per_address: self.count(Setting::RegistrationsPerAddress)?,
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
