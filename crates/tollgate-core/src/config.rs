//! The configuration builder (CONTRACT §2): one place where every setting
//! of every Tollgate piece is resolved.
//!
//! [`Config`] is the resolved, checked result: a value of it cannot be
//! invalid for its environment (parse, don't validate). The builder that
//! produces it reads CLI flags, environment variables, a `tollgate.toml`
//! and the environment profile's defaults, in that order of precedence.
//! It is pure: callers pass in the environment map and the file text.

use std::fmt;
use std::net::SocketAddr;

use crate::Secret;
use crate::keys::Algorithm;

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
}

/// Every problem found while building a configuration, one line each.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}
