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
//! One concern per file: `table.rs` (the settings), `builder.rs` (inputs
//! and resolution), `rules.rs` (per-environment rules), `report.rs` (the
//! outcome), `parse.rs` (values and units).
//!
//! The builder is pure: it reads no file, no process environment and no
//! clock; callers pass the text in. Secret values never reach a message or
//! a `Debug` output: they are shown as `**** (N bytes)`, and URLs with their
//! password masked.

mod builder;
mod cidr;
mod parse;
pub(crate) use parse::parse_rfc3339;
mod report;
mod rules;
mod table;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;

pub use builder::ConfigBuilder;
pub use cidr::Cidr;
pub use report::{Entry, Report, Source};
pub use table::{Alias, DefaultValue, ENVIRONMENTS, Setting, SettingSpec, Unit, settings};

use crate::Secret;
use crate::keys::Algorithm;

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
    /// `TOLLGATE_REFRESH_REUSE_GRACE`, seconds during which a rotated
    /// refresh token presented again by its client (a retry whose answer was
    /// lost) gets the same successor instead of ending the session; 0
    /// disables it; default 10.
    pub refresh_reuse_grace: u64,
    /// `TOLLGATE_SERVICE_TOKEN_TTL`, seconds; default 3600.
    pub service_token_ttl: u64,
    /// `TOLLGATE_LEEWAY`, seconds of clock skew allowed; default 30.
    pub leeway: u64,
    /// `TOLLGATE_SIGNING_ALG`; default `EdDSA`.
    pub signing_alg: Algorithm,
    /// `TOLLGATE_HMAC_SECRET`; only with HS256; default none.
    pub hmac_secret: Option<Secret>,
    /// `TOLLGATE_HMAC_PREVIOUS_SECRET` and `TOLLGATE_HMAC_PREVIOUS_UNTIL`:
    /// the previous HS256 secret, which verifies (never signs) until that
    /// Unix time; only with HS256; default none.
    pub hmac_previous: Option<(Secret, crate::UnixTime)>,
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
    /// `TOLLGATE_FEED_MAX_STALENESS`, seconds, SDK only: how long after the
    /// feed was last current the SDK still trusts its revocations (under
    /// either policy); beyond it every token needs the token service's
    /// confirmation, and none is accepted when it cannot be asked; default
    /// 30.
    pub feed_max_staleness: u64,
    /// `TOLLGATE_ALLOW_QUERY_TOKEN`: accept a WebSocket token in the query
    /// string. Development-only switch; default off.
    pub allow_query_token: bool,
    /// `TOLLGATE_KEEP_ALIVE_TIMEOUT`, seconds an idle keep-alive connection
    /// is kept open by the token service; default 75 (longer than the 60 s
    /// of common load balancers and the SDK's pool).
    pub keep_alive_timeout: u64,
    /// `TOLLGATE_WS_MAX_MESSAGE_SIZE`, bytes, SDK only: the largest
    /// WebSocket message and frame accepted; default 65536 (64 KiB).
    pub ws_max_message_size: u64,
    /// `TOLLGATE_WS_SEND_QUEUE`, SDK only: messages that may wait for one
    /// WebSocket client's socket; default 64.
    pub ws_send_queue: u64,
    /// `TOLLGATE_WS_SEND_TIMEOUT`, seconds, SDK only: how long one message
    /// may take to reach a WebSocket client; default 10.
    pub ws_send_timeout: u64,
    /// `TOLLGATE_WS_REFRESH_BUDGET`, SDK only: `auth.refresh` attempts per
    /// connection per minute (also the burst); default 5.
    pub ws_refresh_budget: u64,
    /// `TOLLGATE_WS_EXPIRY_NOTICE`, seconds, SDK only: the `auth.expiring`
    /// lead time; default 60.
    pub ws_expiry_notice: u64,
    /// `TOLLGATE_WS_MAX_CONNECTIONS`, SDK only: WebSocket connections one
    /// instance holds at most; default 10000.
    pub ws_max_connections: u64,
    /// `TOLLGATE_USAGE_SPOOL`, SDK only: the usage recorder's spool file;
    /// default none (memory only).
    pub usage_spool: Option<String>,
    /// `TOLLGATE_USAGE_SPOOL_MAX`, bytes, SDK only: the most undelivered
    /// usage events kept (as spool bytes); default 16 MiB.
    pub usage_spool_max: u64,
    /// `TOLLGATE_TRUSTED_PROXIES`: the peers whose `Forwarded` /
    /// `X-Forwarded-For` headers name the client address; default none.
    pub trusted_proxies: Vec<Cidr>,
    /// `TOLLGATE_INTROSPECTIONS_PER_CLIENT`: introspection requests per
    /// second per client (bursts of twice that); default 100000.
    pub introspections_per_client: u32,
    /// `TOLLGATE_LOGIN_FAILURES_PER_ACCOUNT`: failed logins for one account
    /// from one address before each further attempt from there waits;
    /// default 5.
    pub login_failures_per_account: u32,
    /// `TOLLGATE_LOGIN_FAILURES_PER_ACCOUNT_GLOBAL`: failed logins for one
    /// account from every address together before every address that has
    /// failed for it waits (addresses that never failed for it do not);
    /// default 100.
    pub login_failures_per_account_global: u32,
    /// `TOLLGATE_LOGIN_FAILURES_PER_ADDRESS`: failed logins from one address
    /// (any account) before each further attempt from it waits; default 50.
    pub login_failures_per_address: u32,
    /// `TOLLGATE_REGISTRATIONS_PER_ADDRESS`: registrations from one address
    /// before each further one waits; default 20.
    pub registrations_per_address: u32,
    /// `TOLLGATE_STORE_TIMEOUT`, seconds one store call of the token
    /// service may take before it fails as unavailable; default 2.
    pub store_timeout: u64,
    /// `TOLLGATE_AUDIT_RETENTION`, seconds audit events are kept; default
    /// 90 days.
    pub audit_retention: u64,
    /// `TOLLGATE_AUDIT_WEBHOOK_URL`: where chosen audit events are posted.
    pub audit_webhook_url: Option<Secret>,
    /// `TOLLGATE_AUDIT_WEBHOOK_TYPES`: which (`*`: all).
    pub audit_webhook_types: Vec<String>,
    /// `TOLLGATE_AUDIT_WEBHOOK_SECRET`: the signature's HMAC key.
    pub audit_webhook_secret: Option<Secret>,
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
            refresh_reuse_grace: 10,
            service_token_ttl: 3600,
            leeway: 30,
            signing_alg: Algorithm::EdDSA,
            hmac_secret: None,
            hmac_previous: None,
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
            feed_max_staleness: 30,
            allow_query_token: false,
            keep_alive_timeout: 75,
            ws_max_message_size: 64 * 1024,
            ws_send_queue: 64,
            ws_send_timeout: 10,
            ws_refresh_budget: 5,
            ws_expiry_notice: 60,
            ws_max_connections: 10_000,
            usage_spool: None,
            usage_spool_max: 16 * 1024 * 1024,
            trusted_proxies: Vec::new(),
            introspections_per_client: 100_000,
            login_failures_per_account: 5,
            login_failures_per_account_global: 100,
            login_failures_per_address: 50,
            registrations_per_address: 20,
            store_timeout: 2,
            audit_retention: 90 * 86_400,
            audit_webhook_url: None,
            audit_webhook_types: vec!["token.refresh_reuse".to_owned(), "login.locked".to_owned()],
            audit_webhook_secret: None,
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
