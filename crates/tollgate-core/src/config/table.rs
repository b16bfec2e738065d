//! The settings table: every setting's names, units, flag, defaults and
//! description, in the order `config check` and `config explain` list them.
//!
//! This table is the single source of the names: the builder resolves
//! through it, the CLI derives its setting flags from it, and
//! `docs/configuration.md` mirrors it. Adding a setting is one row here, one
//! [`Setting`] variant, and one field of [`super::Config`].

use std::fmt;

use super::Environment;

/// Names one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Setting {
    /// `TOLLGATE_ENV`.
    Environment,
    /// `TOLLGATE_BIND`.
    Bind,
    /// `TOLLGATE_ISSUER`.
    Issuer,
    /// `TOLLGATE_AUDIENCE`.
    Audience,
    /// `TOLLGATE_ACCESS_TOKEN_TTL`.
    AccessTokenTtl,
    /// `TOLLGATE_REFRESH_TOKEN_TTL`.
    RefreshTokenTtl,
    /// `TOLLGATE_REFRESH_REUSE_GRACE`.
    RefreshReuseGrace,
    /// `TOLLGATE_SERVICE_TOKEN_TTL`.
    ServiceTokenTtl,
    /// `TOLLGATE_LEEWAY`.
    Leeway,
    /// `TOLLGATE_SIGNING_ALG`.
    SigningAlg,
    /// `TOLLGATE_HMAC_SECRET`.
    HmacSecret,
    /// `TOLLGATE_HMAC_PREVIOUS_SECRET`.
    HmacPreviousSecret,
    /// `TOLLGATE_HMAC_PREVIOUS_UNTIL`.
    HmacPreviousUntil,
    /// `TOLLGATE_DATABASE_URL`.
    DatabaseUrl,
    /// `TOLLGATE_REDIS_URL`.
    RedisUrl,
    /// `TOLLGATE_REDIS_PREFIX`.
    RedisPrefix,
    /// `TOLLGATE_MASTER_KEY`.
    MasterKey,
    /// `TOLLGATE_CLIENT_ID`.
    ClientId,
    /// `TOLLGATE_CLIENT_SECRET`.
    ClientSecret,
    /// `TOLLGATE_REGISTRATION`.
    Registration,
    /// `TOLLGATE_PLANS_FILE`.
    PlansFile,
    /// `TOLLGATE_BOOTSTRAP_ADMIN_EMAIL`.
    BootstrapAdminEmail,
    /// `TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD`.
    BootstrapAdminPassword,
    /// `TOLLGATE_FEED_DOWN_POLICY`.
    FeedDownPolicy,
    /// `TOLLGATE_FEED_MAX_STALENESS`.
    FeedMaxStaleness,
    /// `TOLLGATE_ALLOW_QUERY_TOKEN`.
    AllowQueryToken,
    /// `TOLLGATE_KEEP_ALIVE_TIMEOUT`.
    KeepAliveTimeout,
    /// `TOLLGATE_WS_MAX_MESSAGE_SIZE`.
    WsMaxMessageSize,
    /// `TOLLGATE_WS_SEND_QUEUE`.
    WsSendQueue,
    /// `TOLLGATE_WS_SEND_TIMEOUT`.
    WsSendTimeout,
    /// `TOLLGATE_WS_REFRESH_BUDGET`.
    WsRefreshBudget,
    /// `TOLLGATE_WS_EXPIRY_NOTICE`.
    WsExpiryNotice,
    /// `TOLLGATE_WS_MAX_CONNECTIONS`.
    WsMaxConnections,
    /// `TOLLGATE_USAGE_SPOOL`.
    UsageSpool,
    /// `TOLLGATE_USAGE_SPOOL_MAX`.
    UsageSpoolMax,
    /// `TOLLGATE_TRUSTED_PROXIES`.
    TrustedProxies,
    /// `TOLLGATE_INTROSPECTIONS_PER_CLIENT`.
    IntrospectionsPerClient,
    /// `TOLLGATE_LOGIN_FAILURES_PER_ACCOUNT`.
    LoginFailuresPerAccount,
    /// `TOLLGATE_LOGIN_FAILURES_PER_ACCOUNT_GLOBAL`.
    LoginFailuresPerAccountGlobal,
    /// `TOLLGATE_LOGIN_FAILURES_PER_ADDRESS`.
    LoginFailuresPerAddress,
    /// `TOLLGATE_REGISTRATIONS_PER_ADDRESS`.
    RegistrationsPerAddress,
    /// `TOLLGATE_STORE_TIMEOUT`.
    StoreTimeout,
    /// `TOLLGATE_AUDIT_RETENTION`.
    AuditRetention,
    /// `TOLLGATE_AUDIT_WEBHOOK_URL`.
    AuditWebhookUrl,
    /// `TOLLGATE_AUDIT_WEBHOOK_TYPES`.
    AuditWebhookTypes,
    /// `TOLLGATE_AUDIT_WEBHOOK_SECRET`.
    AuditWebhookSecret,
}

impl Setting {
    /// The setting's row in the table.
    pub fn spec(self) -> &'static SettingSpec {
        // The table has one row per variant, checked by a test; the fallback
        // only keeps this total.
        SETTINGS
            .iter()
            .find(|spec| spec.setting == self)
            .unwrap_or(&SETTINGS[0])
    }
}

/// The unit a name's value is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// The canonical form: for durations, whole seconds or a number with a
    /// suffix (`30s`, `15m`, `1h`, `7d`).
    Native,
    /// Whole minutes (legacy `*_MINUTES` names).
    Minutes,
    /// Whole days (legacy `*_DAYS` names).
    Days,
}

impl Unit {
    /// `minutes`, `days`, or empty for the native unit.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Native => "",
            Unit::Minutes => "minutes",
            Unit::Days => "days",
        }
    }
}

/// A legacy name of a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alias {
    /// The variable name. `<ENV>` stands for the current environment's name
    /// in upper case (`JWT_SECRET_<ENV>` is `JWT_SECRET_PRODUCTION` in
    /// production); such an alias applies in that environment only.
    pub name: &'static str,
    /// The unit the value is written in.
    pub unit: Unit,
}

impl Alias {
    /// The placeholder in per-environment aliases.
    pub const ENV_PLACEHOLDER: &'static str = "<ENV>";

    /// The variable name in `env`.
    pub fn name_in(&self, env: Environment) -> String {
        self.name
            .replace(Self::ENV_PLACEHOLDER, &env.as_str().to_ascii_uppercase())
    }

    /// Whether the name depends on the environment.
    pub fn is_per_environment(&self) -> bool {
        self.name.contains(Self::ENV_PLACEHOLDER)
    }
}

/// A setting's default in one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// No value: the feature is off or the built-in behaviour applies.
    Unset,
    /// No default: the setting must be given (the refusal rules say so).
    Required,
    /// This value, written as in an environment variable.
    Value(&'static str),
    /// `http://` followed by the bind address.
    IssuerFromBind,
}

impl fmt::Display for DefaultValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefaultValue::Unset => f.write_str("none"),
            DefaultValue::Required => f.write_str("required"),
            DefaultValue::Value(value) => f.write_str(value),
            DefaultValue::IssuerFromBind => f.write_str("http://<bind>"),
        }
    }
}

/// How a setting's text is read (see `parse.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Environment,
    Bind,
    Issuer,
    Audience,
    /// A token lifetime: more than zero.
    Duration,
    /// A clock-skew allowance: zero allowed.
    Leeway,
    /// A moment, RFC 3339.
    Moment,
    Algorithm,
    Secret,
    /// A secret that is a user's password (the password policy applies).
    Password,
    DatabaseUrl,
    RedisUrl,
    Text,
    Email,
    Registration,
    FeedDownPolicy,
    Switch,
    /// A size in bytes: a whole number, or one with `KiB` or `MiB`.
    Bytes,
    /// A count: a whole number, 1 or more.
    Count,
    /// A comma-separated list of CIDR networks.
    Cidrs,
}

impl Kind {
    fn accepted(self) -> &'static str {
        match self {
            Kind::Environment => "development, test, staging, production",
            Kind::Bind => "IP address and port, e.g. 127.0.0.1:8080 or [::]:8080",
            Kind::Issuer => "http:// or https:// URL without query or fragment",
            Kind::Audience => "comma-separated list of non-empty names",
            Kind::Duration => "seconds, or a number with s, m, h or d (900, 15m, 1h, 7d)",
            Kind::Leeway => "seconds (0 allowed), or a number with s, m, h or d",
            Kind::Moment => "RFC 3339 date-time, e.g. 2026-12-31T23:59:59Z",
            Kind::Algorithm => "EdDSA, ES256, RS256, HS256 (exact case)",
            Kind::Secret => "secret text (masked in every output)",
            Kind::Password => "a password: 8 characters or more, not a common one",
            Kind::DatabaseUrl => "sqlite://PATH or postgres://USER:PASSWORD@HOST/DB",
            Kind::RedisUrl => "redis:// or rediss:// URL",
            Kind::Text => "text",
            Kind::Email => "e-mail address",
            Kind::Registration => "open, closed",
            Kind::FeedDownPolicy => "introspect, local",
            Kind::Switch => "on/off (also true/false, yes/no, 1/0)",
            Kind::Bytes => "bytes (1024 to 64MiB), or a number with KiB or MiB (64KiB, 1MiB)",
            Kind::Count => "a whole number, 1 or more (at most 10000000)",
            Kind::Cidrs => "comma-separated CIDR networks or addresses, e.g. 10.0.0.0/8,::1",
        }
    }
}

/// One row of the settings table.
#[derive(Debug)]
pub struct SettingSpec {
    setting: Setting,
    env: &'static str,
    key: &'static str,
    flag: Option<&'static str>,
    aliases: &'static [Alias],
    pub(crate) kind: Kind,
    secret: bool,
    development_only: bool,
    description: &'static str,
    /// Indexed like [`ENVIRONMENTS`].
    defaults: [DefaultValue; 4],
}

/// Every environment, in the order of [`SettingSpec::default_in`]'s table.
pub const ENVIRONMENTS: [Environment; 4] = [
    Environment::Development,
    Environment::Test,
    Environment::Staging,
    Environment::Production,
];

impl SettingSpec {
    /// Which setting this is.
    pub fn setting(&self) -> Setting {
        self.setting
    }

    /// The canonical environment variable name (`TOLLGATE_…`).
    pub fn env(&self) -> &'static str {
        self.env
    }

    /// The key in `tollgate.toml`: the canonical name without `TOLLGATE_`,
    /// in lower case.
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// The CLI flag (without `--`). Secrets have none, so that they never
    /// appear in a process list or shell history.
    pub fn flag(&self) -> Option<&'static str> {
        self.flag
    }

    /// Legacy names, with the unit each is written in.
    pub fn aliases(&self) -> &'static [Alias] {
        self.aliases
    }

    /// Whether the value is secret (masked in every output).
    pub fn is_secret(&self) -> bool {
        self.secret
    }

    /// Whether the setting is a development-only switch (refused when on in
    /// staging and production).
    pub fn is_development_only(&self) -> bool {
        self.development_only
    }

    /// What the setting does.
    pub fn description(&self) -> &'static str {
        self.description
    }

    /// The values the canonical name accepts, for humans.
    pub fn accepted(&self) -> &'static str {
        self.kind.accepted()
    }

    /// The default in `env`.
    pub fn default_in(&self, env: Environment) -> DefaultValue {
        let index = ENVIRONMENTS.iter().position(|e| *e == env).unwrap_or(0);
        self.defaults[index]
    }

    /// Whether values are URLs whose password is masked when shown.
    pub fn is_url(&self) -> bool {
        matches!(self.kind, Kind::DatabaseUrl | Kind::RedisUrl)
    }
}

/// Every setting, in display order.
pub fn settings() -> &'static [SettingSpec] {
    SETTINGS
}

const fn everywhere(value: &'static str) -> [DefaultValue; 4] {
    [DefaultValue::Value(value); 4]
}

const UNSET: [DefaultValue; 4] = [DefaultValue::Unset; 4];

const fn alias(name: &'static str) -> Alias {
    Alias {
        name,
        unit: Unit::Native,
    }
}

static SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        setting: Setting::Environment,
        env: "TOLLGATE_ENV",
        key: "env",
        flag: Some("env"),
        aliases: &[alias("ENVIRONMENT")],
        kind: Kind::Environment,
        secret: false,
        development_only: false,
        description: "The environment profile: its defaults apply, and staging and production refuse unsafe settings.",
        defaults: everywhere("development"),
    },
    SettingSpec {
        setting: Setting::Bind,
        env: "TOLLGATE_BIND",
        key: "bind",
        flag: Some("bind"),
        aliases: &[],
        kind: Kind::Bind,
        secret: false,
        development_only: false,
        description: "The address and port `tollgate serve` listens on.",
        defaults: everywhere("127.0.0.1:8080"),
    },
    SettingSpec {
        setting: Setting::Issuer,
        env: "TOLLGATE_ISSUER",
        key: "issuer",
        flag: Some("issuer"),
        aliases: &[alias("JWT_ISSUER")],
        kind: Kind::Issuer,
        secret: false,
        development_only: false,
        description: "The `iss` of every token, compared exactly: the public URL of the token service. Must be https:// (or loopback http://) in staging and production.",
        defaults: [
            DefaultValue::IssuerFromBind,
            DefaultValue::IssuerFromBind,
            DefaultValue::Required,
            DefaultValue::Required,
        ],
    },
    SettingSpec {
        setting: Setting::Audience,
        env: "TOLLGATE_AUDIENCE",
        key: "audience",
        flag: Some("audience"),
        aliases: &[alias("JWT_AUDIENCE")],
        kind: Kind::Audience,
        secret: false,
        development_only: false,
        description: "The audiences put in `aud` and accepted by validators (comma list).",
        defaults: everywhere("api"),
    },
    SettingSpec {
        setting: Setting::AccessTokenTtl,
        env: "TOLLGATE_ACCESS_TOKEN_TTL",
        key: "access_token_ttl",
        flag: Some("access-token-ttl"),
        aliases: &[
            Alias {
                name: "JWT_ACCESS_TOKEN_EXPIRE_MINUTES",
                unit: Unit::Minutes,
            },
            Alias {
                name: "JWT_ACCESS_EXPIRY_MINUTES",
                unit: Unit::Minutes,
            },
        ],
        kind: Kind::Duration,
        secret: false,
        development_only: false,
        description: "Lifetime of access tokens (at most 24h).",
        defaults: everywhere("900"),
    },
    SettingSpec {
        setting: Setting::RefreshTokenTtl,
        env: "TOLLGATE_REFRESH_TOKEN_TTL",
        key: "refresh_token_ttl",
        flag: Some("refresh-token-ttl"),
        aliases: &[
            Alias {
                name: "JWT_REFRESH_TOKEN_EXPIRE_DAYS",
                unit: Unit::Days,
            },
            Alias {
                name: "JWT_REFRESH_EXPIRY_DAYS",
                unit: Unit::Days,
            },
        ],
        kind: Kind::Duration,
        secret: false,
        development_only: false,
        description: "Lifetime of refresh tokens (and so of an idle session).",
        defaults: everywhere("604800"),
    },
    SettingSpec {
        setting: Setting::RefreshReuseGrace,
        env: "TOLLGATE_REFRESH_REUSE_GRACE",
        key: "refresh_reuse_grace",
        flag: Some("refresh-reuse-grace"),
        aliases: &[],
        kind: Kind::Leeway,
        secret: false,
        development_only: false,
        description: "How long after a refresh token was rotated the same client may present it again (a retry whose answer was lost) and get the same successor and a fresh access token instead of ending the session; 0 disables it. Past it, or once the successor was used, presenting it again ends the session (reuse detection).",
        defaults: everywhere("10"),
    },
    SettingSpec {
        setting: Setting::ServiceTokenTtl,
        env: "TOLLGATE_SERVICE_TOKEN_TTL",
        key: "service_token_ttl",
        flag: Some("service-token-ttl"),
        aliases: &[],
        kind: Kind::Duration,
        secret: false,
        development_only: false,
        description: "Lifetime of service (client-credentials) tokens (at most 24h).",
        defaults: everywhere("3600"),
    },
    SettingSpec {
        setting: Setting::Leeway,
        env: "TOLLGATE_LEEWAY",
        key: "leeway",
        flag: Some("leeway"),
        aliases: &[],
        kind: Kind::Leeway,
        secret: false,
        development_only: false,
        description: "Clock skew allowed when checking `exp`, `nbf` and `iat`.",
        defaults: everywhere("30"),
    },
    SettingSpec {
        setting: Setting::SigningAlg,
        env: "TOLLGATE_SIGNING_ALG",
        key: "signing_alg",
        flag: Some("signing-alg"),
        aliases: &[alias("JWT_ALGORITHM")],
        kind: Kind::Algorithm,
        secret: false,
        development_only: false,
        description: "The algorithm of new signing keys. HS256 needs TOLLGATE_HMAC_SECRET and publishes no JWKS.",
        defaults: everywhere("EdDSA"),
    },
    SettingSpec {
        setting: Setting::HmacSecret,
        env: "TOLLGATE_HMAC_SECRET",
        key: "hmac_secret",
        flag: None,
        aliases: &[
            alias("JWT_SECRET_KEY"),
            alias("JWT_SECRET"),
            alias("JWT_SECRET_<ENV>"),
        ],
        kind: Kind::Secret,
        secret: true,
        development_only: false,
        description: "The shared secret for HS256 (at least 32 bytes, not a well-known placeholder). Used only with HS256.",
        defaults: UNSET,
    },
    SettingSpec {
        setting: Setting::HmacPreviousSecret,
        env: "TOLLGATE_HMAC_PREVIOUS_SECRET",
        key: "hmac_previous_secret",
        flag: None,
        aliases: &[
            alias("JWT_PREVIOUS_SECRET_KEY"),
            alias("JWT_PREVIOUS_SECRET"),
            alias("JWT_PREVIOUS_SECRET_<ENV>"),
        ],
        kind: Kind::Secret,
        secret: true,
        development_only: false,
        description: "HS256 secret rotation: the previous shared secret, accepted for verification (never for signing) until TOLLGATE_HMAC_PREVIOUS_UNTIL. Same rules as TOLLGATE_HMAC_SECRET.",
        defaults: UNSET,
    },
    SettingSpec {
        setting: Setting::HmacPreviousUntil,
        env: "TOLLGATE_HMAC_PREVIOUS_UNTIL",
        key: "hmac_previous_until",
        flag: Some("hmac-previous-until"),
        aliases: &[],
        kind: Kind::Moment,
        secret: false,
        development_only: false,
        description: "The end of the HS256 overlap (RFC 3339): from this moment the previous secret verifies nothing. Required with TOLLGATE_HMAC_PREVIOUS_SECRET.",
        defaults: UNSET,
    },
    SettingSpec {
        setting: Setting::DatabaseUrl,
        env: "TOLLGATE_DATABASE_URL",
        key: "database_url",
        flag: Some("database-url"),
        aliases: &[alias("DATABASE_URL")],
        kind: Kind::DatabaseUrl,
        secret: false,
        development_only: false,
        description: "Where users, sessions, keys and revocations are stored: an embedded SQLite file, or PostgreSQL shared by every instance. Its password is masked when shown.",
        defaults: everywhere("sqlite://./tollgate-data/tollgate.db"),
    },
    SettingSpec {
        setting: Setting::RedisUrl,
        env: "TOLLGATE_REDIS_URL",
        key: "redis_url",
        flag: Some("redis-url"),
        aliases: &[alias("REDIS_URL")],
        kind: Kind::RedisUrl,
        secret: false,
        development_only: false,
        description: "Redis for fan-out between instances and shared rate limits; none means in-process. Its password is masked when shown.",
        defaults: UNSET,
    },
    SettingSpec {
        setting: Setting::RedisPrefix,
        env: "TOLLGATE_REDIS_PREFIX",
        key: "redis_prefix",
        flag: Some("redis-prefix"),
        aliases: &[],
        kind: Kind::Text,
        secret: false,
        development_only: false,
        description: "The namespace of this deployment's keys and channel in Redis; none means `tollgate:` and a hash of the issuer, so two deployments sharing one Redis never cross.",
        defaults: UNSET,
    },
    SettingSpec {
        setting: Setting::MasterKey,
        env: "TOLLGATE_MASTER_KEY",
        key: "master_key",
        flag: None,
        aliases: &[],
        kind: Kind::Secret,
        secret: true,
        development_only: false,
        description: "Encrypts private signing keys at rest (at least 32 bytes). Required by the token service in staging and production.",
        defaults: [
            DefaultValue::Unset,
            DefaultValue::Unset,
            DefaultValue::Required,
            DefaultValue::Required,
        ],
    },
    SettingSpec {
        setting: Setting::ClientId,
        env: "TOLLGATE_CLIENT_ID",
        key: "client_id",
        flag: Some("client-id"),
        aliases: &[alias("SERVICE_ID")],
        kind: Kind::Text,
        secret: false,
        development_only: false,
        description: "A service's client id (SDK): its identity for service tokens, introspection and the revocation feed.",
        defaults: UNSET,
    },
    SettingSpec {
        setting: Setting::ClientSecret,
        env: "TOLLGATE_CLIENT_SECRET",
        key: "client_secret",
        flag: None,
        aliases: &[alias("SERVICE_SECRET")],
        kind: Kind::Secret,
        secret: true,
        development_only: false,
        description: "A service's client secret (SDK). Required by a service in staging and production.",
        defaults: UNSET,
    },
    SettingSpec {
        setting: Setting::Registration,
        env: "TOLLGATE_REGISTRATION",
        key: "registration",
        flag: Some("registration"),
        aliases: &[],
        kind: Kind::Registration,
        secret: false,
        development_only: false,
        description: "Whether anyone may create an account with POST /v1/auth/register.",
        defaults: [
            DefaultValue::Value("open"),
            DefaultValue::Value("open"),
            DefaultValue::Value("closed"),
            DefaultValue::Value("closed"),
        ],
    },
    SettingSpec {
        setting: Setting::PlansFile,
        env: "TOLLGATE_PLANS_FILE",
        key: "plans_file",
        flag: Some("plans-file"),
        aliases: &[],
        kind: Kind::Text,
        secret: false,
        development_only: false,
        description: "A plans.toml that changes the built-in plans or adds new ones; none means the built-in plans.",
        defaults: UNSET,
    },
    SettingSpec {
        setting: Setting::BootstrapAdminEmail,
        env: "TOLLGATE_BOOTSTRAP_ADMIN_EMAIL",
        key: "bootstrap_admin_email",
        flag: Some("bootstrap-admin-email"),
        aliases: &[],
        kind: Kind::Email,
        secret: false,
        development_only: false,
        description: "With the password: an admin user created on start when it does not exist.",
        defaults: UNSET,
    },
    SettingSpec {
        setting: Setting::BootstrapAdminPassword,
        env: "TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD",
        key: "bootstrap_admin_password",
        flag: None,
        aliases: &[],
        kind: Kind::Password,
        secret: true,
        development_only: false,
        description: "The bootstrap admin's password (the password policy applies).",
        defaults: UNSET,
    },
    SettingSpec {
        setting: Setting::FeedDownPolicy,
        env: "TOLLGATE_FEED_DOWN_POLICY",
        key: "feed_down_policy",
        flag: Some("feed-down-policy"),
        aliases: &[],
        kind: Kind::FeedDownPolicy,
        secret: false,
        development_only: false,
        description: "What the SDK does while the revocation feed is down: introspect every token (exact) or keep validating locally (available).",
        defaults: everywhere("introspect"),
    },
    SettingSpec {
        setting: Setting::FeedMaxStaleness,
        env: "TOLLGATE_FEED_MAX_STALENESS",
        key: "feed_max_staleness",
        flag: Some("feed-max-staleness"),
        aliases: &[],
        kind: Kind::Duration,
        secret: false,
        development_only: false,
        description: "How long the SDK trusts what it knows of revocations once the feed is down, whatever the feed-down policy: beyond it every token must be confirmed by introspection, and when the token service cannot answer the SDK refuses (503 token_service_unavailable; WebSockets close with 1013).",
        defaults: everywhere("30"),
    },
    SettingSpec {
        setting: Setting::AllowQueryToken,
        env: "TOLLGATE_ALLOW_QUERY_TOKEN",
        key: "allow_query_token",
        flag: Some("allow-query-token"),
        aliases: &[],
        kind: Kind::Switch,
        secret: false,
        development_only: true,
        description: "Accept a WebSocket token in the query string (it ends up in access logs). Development only.",
        defaults: everywhere("off"),
    },
    SettingSpec {
        setting: Setting::KeepAliveTimeout,
        env: "TOLLGATE_KEEP_ALIVE_TIMEOUT",
        key: "keep_alive_timeout",
        flag: Some("keep-alive-timeout"),
        aliases: &[],
        kind: Kind::Duration,
        secret: false,
        development_only: false,
        description: "How long `tollgate serve` keeps an idle keep-alive connection open. Keep it longer than the idle timeout of the load balancer or client pools in front (AWS ALB and nginx: 60 s; the SDK: 50 s), or they reuse connections the server has just closed. A request head, once started, must still arrive within 10 s.",
        defaults: everywhere("75"),
    },
    SettingSpec {
        setting: Setting::WsMaxMessageSize,
        env: "TOLLGATE_WS_MAX_MESSAGE_SIZE",
        key: "ws_max_message_size",
        flag: Some("ws-max-message-size"),
        aliases: &[],
        kind: Kind::Bytes,
        secret: false,
        development_only: false,
        description: "The largest WebSocket message (and frame) a service accepts (SDK); one byte more closes the connection with 1009.",
        defaults: everywhere("65536"),
    },
    SettingSpec {
        setting: Setting::WsSendQueue,
        env: "TOLLGATE_WS_SEND_QUEUE",
        key: "ws_send_queue",
        flag: Some("ws-send-queue"),
        aliases: &[],
        kind: Kind::Count,
        secret: false,
        development_only: false,
        description: "How many messages may wait for one WebSocket client's socket (SDK); a client that lets the queue fill up is closed with 1008 (too_slow).",
        defaults: everywhere("64"),
    },
    SettingSpec {
        setting: Setting::WsSendTimeout,
        env: "TOLLGATE_WS_SEND_TIMEOUT",
        key: "ws_send_timeout",
        flag: Some("ws-send-timeout"),
        aliases: &[],
        kind: Kind::Duration,
        secret: false,
        development_only: false,
        description: "How long one message may take to reach a WebSocket client's socket (SDK) before the client is deemed not to read and is closed with 1008 (too_slow).",
        defaults: everywhere("10"),
    },
    SettingSpec {
        setting: Setting::WsRefreshBudget,
        env: "TOLLGATE_WS_REFRESH_BUDGET",
        key: "ws_refresh_budget",
        flag: Some("ws-refresh-budget"),
        aliases: &[],
        kind: Kind::Count,
        secret: false,
        development_only: false,
        description: "`auth.refresh` attempts one WebSocket connection may make per minute (also the burst; SDK); beyond it the answer is rate_limited, without a validation.",
        defaults: everywhere("5"),
    },
    SettingSpec {
        setting: Setting::WsExpiryNotice,
        env: "TOLLGATE_WS_EXPIRY_NOTICE",
        key: "ws_expiry_notice",
        flag: Some("ws-expiry-notice"),
        aliases: &[],
        kind: Kind::Duration,
        secret: false,
        development_only: false,
        description: "How long before a WebSocket connection's token expires the client gets `auth.expiring` (SDK); never more than half the token's lifetime.",
        defaults: everywhere("60"),
    },
    SettingSpec {
        setting: Setting::WsMaxConnections,
        env: "TOLLGATE_WS_MAX_CONNECTIONS",
        key: "ws_max_connections",
        flag: Some("ws-max-connections"),
        aliases: &[],
        kind: Kind::Count,
        secret: false,
        development_only: false,
        description: "The most WebSocket connections one service instance holds (SDK); beyond it a handshake is refused with 503 (too_many_connections) before any upgrade. Keep it under the process's file limit.",
        defaults: everywhere("10000"),
    },
    SettingSpec {
        setting: Setting::UsageSpool,
        env: "TOLLGATE_USAGE_SPOOL",
        key: "usage_spool",
        flag: Some("usage-spool"),
        aliases: &[],
        kind: Kind::Text,
        secret: false,
        development_only: false,
        description: "The file where a service's usage recorder (SDK) keeps tool-call events until the token service has stored them: written before each delivery, replayed at start-up, emptied once delivered. None keeps them in memory only (lost when the process ends). Give each instance its own file.",
        defaults: UNSET,
    },
    SettingSpec {
        setting: Setting::UsageSpoolMax,
        env: "TOLLGATE_USAGE_SPOOL_MAX",
        key: "usage_spool_max",
        flag: Some("usage-spool-max"),
        aliases: &[],
        kind: Kind::Bytes,
        secret: false,
        development_only: false,
        description: "The most undelivered usage events a service keeps (SDK), as bytes of spool (the file, or memory without one). When it is full, newer events are dropped (never the call), logged and counted in tollgate_client_usage_dropped_total{reason=\"spool_full\"}.",
        defaults: everywhere("16MiB"),
    },
    SettingSpec {
        setting: Setting::TrustedProxies,
        env: "TOLLGATE_TRUSTED_PROXIES",
        key: "trusted_proxies",
        flag: Some("trusted-proxies"),
        aliases: &[],
        kind: Kind::Cidrs,
        secret: false,
        development_only: false,
        description: "The reverse proxies and load balancers in front of `tollgate serve` (CIDR list). From a peer in the list, the client address is read from `Forwarded` (RFC 7239) or else `X-Forwarded-For`: the rightmost address that is not itself a trusted proxy. From any other peer those headers are ignored. The client address keys the login and registration limits and appears in logs.",
        defaults: UNSET,
    },
    SettingSpec {
        setting: Setting::IntrospectionsPerClient,
        env: "TOLLGATE_INTROSPECTIONS_PER_CLIENT",
        key: "introspections_per_client",
        flag: Some("introspections-per-client"),
        aliases: &[],
        kind: Kind::Count,
        secret: false,
        development_only: false,
        description: "Introspection requests per second one client may make (bursts of twice that). The default lets one busy resource server use the whole server.",
        defaults: everywhere("100000"),
    },
    SettingSpec {
        setting: Setting::LoginFailuresPerAccount,
        env: "TOLLGATE_LOGIN_FAILURES_PER_ACCOUNT",
        key: "login_failures_per_account",
        flag: Some("login-failures-per-account"),
        aliases: &[],
        kind: Kind::Count,
        secret: false,
        development_only: false,
        description: "Failed logins for one account from one client address before each further attempt from that address must wait (doubling from 1 s to 5 min; forgotten after 15 quiet minutes). Other addresses are not held back.",
        defaults: everywhere("5"),
    },
    SettingSpec {
        setting: Setting::LoginFailuresPerAccountGlobal,
        env: "TOLLGATE_LOGIN_FAILURES_PER_ACCOUNT_GLOBAL",
        key: "login_failures_per_account_global",
        flag: Some("login-failures-per-account-global"),
        aliases: &[],
        kind: Kind::Count,
        secret: false,
        development_only: false,
        description: "Failed logins for one account from all addresses together before every address that has failed for it must wait (same back-off); an address that never failed for the account is not held back, so the owner can still log in from one.",
        defaults: everywhere("100"),
    },
    SettingSpec {
        setting: Setting::LoginFailuresPerAddress,
        env: "TOLLGATE_LOGIN_FAILURES_PER_ADDRESS",
        key: "login_failures_per_address",
        flag: Some("login-failures-per-address"),
        aliases: &[],
        kind: Kind::Count,
        secret: false,
        development_only: false,
        description: "Failed logins from one client address, any account, before each further attempt from it must wait (same back-off).",
        defaults: everywhere("50"),
    },
    SettingSpec {
        setting: Setting::RegistrationsPerAddress,
        env: "TOLLGATE_REGISTRATIONS_PER_ADDRESS",
        key: "registrations_per_address",
        flag: Some("registrations-per-address"),
        aliases: &[],
        kind: Kind::Count,
        secret: false,
        development_only: false,
        description: "Registrations from one client address (every attempt counts) before each further one must wait (same back-off).",
        defaults: everywhere("20"),
    },
    SettingSpec {
        setting: Setting::StoreTimeout,
        env: "TOLLGATE_STORE_TIMEOUT",
        key: "store_timeout",
        flag: Some("store-timeout"),
        aliases: &[],
        kind: Kind::Duration,
        secret: false,
        development_only: false,
        description: "The longest any one database call of `tollgate serve` may take (waiting for a pooled connection included; on Postgres also the statement timeout). A call that takes longer fails with 503, the instance marks the database down and answers 503 at once until its background probe reaches the database again, and `/readyz` reports it.",
        defaults: everywhere("2"),
    },
    SettingSpec {
        setting: Setting::AuditRetention,
        env: "TOLLGATE_AUDIT_RETENTION",
        key: "audit_retention",
        flag: Some("audit-retention"),
        aliases: &[],
        kind: Kind::Duration,
        secret: false,
        development_only: false,
        description: "How long audit events are kept: `tollgate serve` deletes older ones about once an hour, and records an `audit.pruned` event each time it deletes any (docs/audit.md).",
        defaults: everywhere("90d"),
    },
    SettingSpec {
        setting: Setting::AuditWebhookUrl,
        env: "TOLLGATE_AUDIT_WEBHOOK_URL",
        key: "audit_webhook_url",
        flag: None,
        aliases: &[],
        kind: Kind::Secret,
        secret: true,
        development_only: false,
        description: "An http:// or https:// URL the token service posts audit events of the types in TOLLGATE_AUDIT_WEBHOOK_TYPES to, as JSON signed with TOLLGATE_AUDIT_WEBHOOK_SECRET (header X-Tollgate-Signature); retried with back-off, never in a request's way. Masked like a secret: hook URLs often hold a credential.",
        defaults: UNSET,
    },
    SettingSpec {
        setting: Setting::AuditWebhookTypes,
        env: "TOLLGATE_AUDIT_WEBHOOK_TYPES",
        key: "audit_webhook_types",
        flag: Some("audit-webhook-types"),
        aliases: &[],
        kind: Kind::Audience,
        secret: false,
        development_only: false,
        description: "The audit event types posted to TOLLGATE_AUDIT_WEBHOOK_URL (comma list; `*` posts every type).",
        defaults: everywhere("token.refresh_reuse,login.locked"),
    },
    SettingSpec {
        setting: Setting::AuditWebhookSecret,
        env: "TOLLGATE_AUDIT_WEBHOOK_SECRET",
        key: "audit_webhook_secret",
        flag: None,
        aliases: &[],
        kind: Kind::Secret,
        secret: true,
        development_only: false,
        description: "The HMAC-SHA256 key of the audit webhook's signature (at least 32 bytes); required with TOLLGATE_AUDIT_WEBHOOK_URL.",
        defaults: UNSET,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_one_scheme() {
        for spec in settings() {
            let bare = spec.env().strip_prefix("TOLLGATE_").unwrap();
            assert_eq!(spec.key(), bare.to_ascii_lowercase(), "{}", spec.env());
            if let Some(flag) = spec.flag() {
                assert_eq!(flag, spec.key().replace('_', "-"), "{}", spec.env());
            }
            // Secrets never get a flag: flags show up in `ps` and shell history.
            assert_eq!(spec.flag().is_none(), spec.is_secret(), "{}", spec.env());
            assert_eq!(spec.setting().spec().env(), spec.env());
        }
    }

    #[test]
    fn every_name_is_used_once() {
        let mut names: Vec<&str> = settings()
            .iter()
            .flat_map(|s| std::iter::once(s.env()).chain(s.aliases().iter().map(|a| a.name)))
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }

    #[test]
    fn per_environment_aliases_expand() {
        let alias = alias("JWT_SECRET_<ENV>");
        assert!(alias.is_per_environment());
        assert_eq!(
            alias.name_in(Environment::Production),
            "JWT_SECRET_PRODUCTION"
        );
    }
}
