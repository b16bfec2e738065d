//! The configuration builder (`ConfigBuilder`): environment variables, an
//! env file's text, a `tollgate.toml`'s text and CLI flags, for the server
//! and for the SDK.
//!
//! Input is structured (`arbitrary`): names are picked from every setting
//! name and legacy alias or made up, values from plausible ones or made
//! up; the env file and the TOML file are either free text or lines
//! rendered from chosen names and values. Some values carry a canary: a
//! fixed marker inside a secret (HMAC secret, master key, client secret,
//! bootstrap password) or in the password of a database or Redis URL.
//!
//! Invariants: no panic; one entry per setting; `is_ok()` exactly when
//! `into_config()` succeeds; the canary, when it was only ever given as a
//! secret, appears in no error, warning, entry, source or `Debug` output;
//! and a `Config` that comes out is valid for its environment (parse,
//! don't validate): lifetimes within bounds, an issuer and audiences a
//! validator accepts, a long enough HMAC secret with HS256, a long enough
//! master key, and in staging and production no plain-http issuer off
//! loopback, no development switch, the master key (server) and the
//! service identity (SDK).

#![no_main]

use std::net::IpAddr;
use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tollgate_core::ValidationPolicy;
use tollgate_core::config::{
    Component, ConfigBuilder, ENVIRONMENTS, MAX_SHORT_TOKEN_TTL, SettingSpec, settings,
};
use tollgate_core::keys::seal::MIN_MASTER_KEY_BYTES;
use tollgate_core::keys::{Algorithm, MIN_HMAC_SECRET_BYTES};

const CANARY: &str = "Qx7CanaryZk93Wv";

fuzz_target!(|input: Input| {
    let mut state = State {
        eligible: true,
        canaries: 0,
    };
    let component = if input.sdk {
        Component::Sdk
    } else {
        Component::Server
    };
    let mut builder = ConfigBuilder::new(component);
    let vars: Vec<(String, String)> = input
        .vars
        .iter()
        .map(|(name, value)| {
            let name = name.render(&mut state);
            let spec = spec_for_env(&name);
            (name, value.render(spec, &mut state))
        })
        .collect();
    builder = builder.env(vars);
    match &input.env_file {
        EnvFile::None => {}
        EnvFile::Text(text) => {
            state.free(text);
            builder = builder.env_file(".env", text.clone());
        }
        EnvFile::Lines(lines) => {
            let mut text = String::new();
            for line in lines {
                text.push_str(&line.render(&mut state));
                text.push('\n');
            }
            builder = builder.env_file(".env", text);
        }
    }
    match &input.file {
        TomlFile::None => {}
        TomlFile::Text(text) => {
            state.free(text);
            builder = builder.file("tollgate.toml", text.clone());
        }
        TomlFile::Entries(entries) => {
            let mut text = String::new();
            for (key, value) in entries {
                let key = key.render(&mut state);
                let spec = settings().iter().find(|s| s.key() == key);
                text.push_str(&toml_key(&key));
                text.push_str(" = ");
                text.push_str(&value.render(spec, &mut state));
                text.push('\n');
            }
            builder = builder.file("tollgate.toml", text);
        }
    }
    for (name, value) in &input.flags {
        let name = name.render(&mut state);
        let spec = settings().iter().find(|s| s.env() == name);
        let value = value.render(spec, &mut state);
        builder = builder.flag(name, value);
    }

    let debug_builder = format!("{builder:?}");
    let report = builder.build();
    assert_eq!(report.entries().len(), settings().len());
    let mut shown = vec![debug_builder, format!("{report:?}")];
    shown.extend(report.errors().iter().cloned());
    shown.extend(report.warnings().iter().cloned());
    for entry in report.entries() {
        shown.push(format!(
            "{} {} {}",
            entry.value().unwrap_or_default(),
            entry.source(),
            entry.source().name()
        ));
    }
    if let Some(config) = report.config() {
        shown.push(format!("{config:?}"));
        check_config(config, component);
    }
    let ok = report.is_ok();
    let result = report.into_config();
    assert_eq!(result.is_ok(), ok);
    if let Err(err) = &result {
        shown.push(err.to_string());
        shown.push(format!("{err:?}"));
    }
    if state.eligible && state.canaries > 0 {
        for text in &shown {
            assert!(!text.contains(CANARY), "a secret is shown: {text}");
        }
    }
});

fn check_config(c: &tollgate_core::config::Config, component: Component) {
    for ttl in [c.access_token_ttl, c.service_token_ttl] {
        assert!(
            (1..=MAX_SHORT_TOKEN_TTL).contains(&ttl),
            "token lifetime {ttl}"
        );
    }
    assert!(c.refresh_token_ttl >= 1);
    assert!(
        c.issuer.starts_with("https://") || c.issuer.starts_with("http://"),
        "issuer {:?}",
        c.issuer
    );
    assert!(
        !c.issuer
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control())
    );
    assert!(!c.audiences.is_empty());
    assert!(
        c.audiences
            .iter()
            .all(|a| !a.is_empty() && !a.chars().any(char::is_control))
    );
    ValidationPolicy::new(c.issuer.clone(), c.audiences.clone())
        .expect("a configuration's issuer and audiences make a validation policy");
    if c.signing_alg == Algorithm::HS256 {
        let secret = c.hmac_secret.as_ref().expect("HS256 without a secret");
        assert!(secret.len() >= MIN_HMAC_SECRET_BYTES);
    } else {
        assert!(c.hmac_secret.is_none(), "an unused HMAC secret is kept");
    }
    if let Some(master) = &c.master_key {
        assert!(master.len() >= MIN_MASTER_KEY_BYTES);
    }
    if c.client_secret.is_some() {
        assert!(c.client_id.is_some(), "a client secret without a client id");
    }
    assert_eq!(
        c.bootstrap_admin_email.is_some(),
        c.bootstrap_admin_password.is_some(),
        "half a bootstrap admin"
    );
    if let Some(password) = &c.bootstrap_admin_password {
        let text = password.expose_str().expect("a bootstrap password is text");
        assert!(tollgate_core::password::check_policy(text).is_ok());
    }
    if c.environment.is_strict() {
        if let Some(rest) = c.issuer.strip_prefix("http://") {
            let authority = rest.split('/').next().unwrap_or_default();
            let host = match authority.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or_default(),
                None => authority.split(':').next().unwrap_or_default(),
            };
            assert!(
                host.eq_ignore_ascii_case("localhost")
                    || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
                "plain http issuer {:?} in {}",
                c.issuer,
                c.environment
            );
        }
        assert!(
            !c.allow_query_token,
            "a development switch in {}",
            c.environment
        );
        match component {
            Component::Server => assert!(c.master_key.is_some(), "no master key"),
            Component::Sdk => {
                assert!(c.client_id.is_some() && c.client_secret.is_some());
            }
        }
    }
}

/// Every name a setting answers to: canonical names and every alias in
/// every environment, and one unknown `TOLLGATE_` name.
static NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut names = Vec::new();
    for spec in settings() {
        names.push(spec.env().to_owned());
        for alias in spec.aliases() {
            for env in ENVIRONMENTS {
                let name = alias.name_in(env);
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    names.push("TOLLGATE_UNKNOWN".to_owned());
    names
});

fn spec_for_env(name: &str) -> Option<&'static SettingSpec> {
    settings().iter().find(|spec| {
        spec.env() == name
            || spec
                .aliases()
                .iter()
                .any(|alias| ENVIRONMENTS.iter().any(|env| alias.name_in(*env) == name))
    })
}

const PLAUSIBLE: &[&str] = &[
    "production",
    "staging",
    "development",
    "test",
    "127.0.0.1:8080",
    "[::]:0",
    "0.0.0.0:9000",
    "https://auth.example.com",
    "http://localhost:8080",
    "http://[::1]:8080/auth",
    "http://10.0.0.1",
    "api,billing",
    " api , api ",
    "15m",
    "1d",
    "0",
    "86400",
    "86401",
    "HS256",
    "EdDSA",
    "RS256",
    "on",
    "off",
    "open",
    "closed",
    "introspect",
    "local",
    "admin@example.com",
    "correct horse battery",
    "sqlite://./x.db",
    "postgres://u:p@db/x",
    "redis://cache",
    "tollgate.toml",
    "svc",
    "changeme",
    "Zq8xV2mL9rT4wY7pK3nB6cF1hJ5dG0sA",
    "",
];

#[derive(Arbitrary, Debug)]
struct Input {
    sdk: bool,
    vars: Vec<(Name, Val)>,
    env_file: EnvFile,
    file: TomlFile,
    flags: Vec<(Name, Val)>,
}

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Val {
    Pick(u8),
    Text(String),
    /// A value with the canary inside.
    Canary {
        before: String,
        after: String,
    },
    /// `scheme://user:CANARY@host/db`.
    UrlCanary {
        scheme: u8,
        user: u32,
        host: u32,
    },
}

#[derive(Arbitrary, Debug)]
enum EnvFile {
    None,
    Text(String),
    Lines(Vec<EnvLine>),
}

#[derive(Arbitrary, Debug)]
struct EnvLine {
    export: bool,
    name: Name,
    value: Val,
    quote: Quote,
    comment: bool,
}

#[derive(Arbitrary, Debug)]
enum Quote {
    Bare,
    Double,
    Single,
}

#[derive(Arbitrary, Debug)]
enum TomlFile {
    None,
    Text(String),
    Entries(Vec<(Key, TomlVal)>),
}

#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum TomlVal {
    Str(Val),
    Int(i64),
    Bool(bool),
    Array(Vec<Val>),
    /// A string left open.
    Unterminated(Val),
}

struct State {
    /// Whether the canary was only ever given where it is secret.
    eligible: bool,
    canaries: usize,
}

impl State {
    fn free(&mut self, text: &str) {
        if text.contains(CANARY) {
            self.eligible = false;
        }
    }
}

impl Name {
    fn render(&self, state: &mut State) -> String {
        match self {
            Name::Known(i) => NAMES[usize::from(*i) % NAMES.len()].clone(),
            Name::Other(name) => {
                state.free(name);
                name.clone()
            }
        }
    }
}

impl Key {
    fn render(&self, state: &mut State) -> String {
        match self {
            Key::Known(i) => settings()[usize::from(*i) % settings().len()]
                .key()
                .to_owned(),
            Key::Other(key) => {
                state.free(key);
                key.clone()
            }
        }
    }
}

fn alnum(n: u32) -> String {
    format!("h{n:x}")
}

impl Val {
    /// The value's text, for a setting `spec` (`None`: not a setting).
    fn render(&self, spec: Option<&SettingSpec>, state: &mut State) -> String {
        let secret = spec.is_none_or(|s| s.is_secret());
        match self {
            Val::Pick(i) => PLAUSIBLE[usize::from(*i) % PLAUSIBLE.len()].to_owned(),
            Val::Text(text) => {
                state.free(text);
                text.clone()
            }
            Val::Canary { before, after } => {
                state.free(before);
                state.free(after);
                state.canaries += 1;
                if !secret {
                    state.eligible = false;
                }
                format!("{before}{CANARY}{after}")
            }
            Val::UrlCanary { scheme, user, host } => {
                state.canaries += 1;
                if !(secret || spec.is_some_and(|s| s.is_url())) {
                    state.eligible = false;
                }
                let scheme = ["postgres", "postgresql", "redis", "rediss", "sqlite"]
                    [usize::from(*scheme) % 5];
                format!("{scheme}://{}:{CANARY}@{}/db", alnum(*user), alnum(*host))
            }
        }
    }
}

/// Drops what would end or re-shape an env-file line or quote.
fn line_safe(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '\n' | '\r' | '"' | '\'' | '\\' | '#'))
        .collect()
}

impl EnvLine {
    fn render(&self, state: &mut State) -> String {
        let name = self.name.render(state);
        let spec = spec_for_env(&name);
        let value = match &self.value {
            Val::Canary { before, after } => Val::Canary {
                before: line_safe(before),
                after: line_safe(after),
            }
            .render(spec, state),
            Val::Text(text) => Val::Text(line_safe(text)).render(spec, state),
            other => other.render(spec, state),
        };
        let value = match self.quote {
            Quote::Bare => value,
            Quote::Double => format!("\"{value}\""),
            Quote::Single => format!("'{value}'"),
        };
        let export = if self.export { "export " } else { "" };
        let comment = if self.comment { " # note" } else { "" };
        format!("{export}{name}={value}{comment}")
    }
}

fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        toml::Value::String(key.to_owned()).to_string()
    }
}

impl TomlVal {
    fn render(&self, spec: Option<&SettingSpec>, state: &mut State) -> String {
        match self {
            TomlVal::Str(v) => toml::Value::String(v.render(spec, state)).to_string(),
            TomlVal::Int(n) => n.to_string(),
            TomlVal::Bool(b) => b.to_string(),
            TomlVal::Array(items) => {
                let items: Vec<toml::Value> = items
                    .iter()
                    .map(|v| toml::Value::String(v.render(spec, state)))
                    .collect();
                toml::Value::Array(items).to_string()
            }
            TomlVal::Unterminated(v) => format!("\"{}", line_safe(&v.render(spec, state))),
        }
    }
}
