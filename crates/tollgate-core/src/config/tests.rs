//! The builder's behaviour, one table-driven case per rule.

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

/// Issue 9, item 3: idle keep-alive connections are kept 75 s unless set;
/// shorter than the 60 s of load balancers and client pools is a warning.
#[test]
fn keep_alive_timeout_defaults_to_75_s_and_warns_below_60() {
    check_value(
        "",
        Setting::KeepAliveTimeout,
        expect!["75 <- default (development)"],
    );
    check_value(
        "TOLLGATE_KEEP_ALIVE_TIMEOUT=2m",
        Setting::KeepAliveTimeout,
        expect!["120 (2m) <- env TOLLGATE_KEEP_ALIVE_TIMEOUT"],
    );
    check(
        "TOLLGATE_KEEP_ALIVE_TIMEOUT=10s",
        expect![[r#"
            warning: TOLLGATE_KEEP_ALIVE_TIMEOUT is 10 s; load balancers and client pools that keep idle connections 60 s will reuse connections the server has closed (keep it above theirs)
            ok
        "#]],
    );
    check(
        "TOLLGATE_KEEP_ALIVE_TIMEOUT=0",
        expect![[r#"
            error: TOLLGATE_KEEP_ALIVE_TIMEOUT=0 is zero; a lifetime must be at least one second
        "#]],
    );
}

/// Issue 16, item 2: a store call is bounded at 2 s unless set.
#[test]
fn store_timeout_defaults_to_2_s() {
    check_value(
        "",
        Setting::StoreTimeout,
        expect!["2 <- default (development)"],
    );
    check_value(
        "TOLLGATE_STORE_TIMEOUT=5s",
        Setting::StoreTimeout,
        expect!["5 <- env TOLLGATE_STORE_TIMEOUT"],
    );
    check(
        "TOLLGATE_STORE_TIMEOUT=0",
        expect![[r#"
            error: TOLLGATE_STORE_TIMEOUT=0 is zero; a lifetime must be at least one second
        "#]],
    );
}

/// Issue 16, item 3: the SDK trusts a down feed's revocations for 30 s
/// unless set.
#[test]
fn feed_max_staleness_defaults_to_30_s() {
    check_value(
        "",
        Setting::FeedMaxStaleness,
        expect!["30 <- default (development)"],
    );
    check_value(
        "TOLLGATE_FEED_MAX_STALENESS=2m",
        Setting::FeedMaxStaleness,
        expect!["120 (2m) <- env TOLLGATE_FEED_MAX_STALENESS"],
    );
    let config = ConfigBuilder::new(Component::Sdk)
        .env([("TOLLGATE_FEED_MAX_STALENESS", "45s")])
        .build()
        .into_config()
        .unwrap()
        .0;
    assert_eq!(config.feed_max_staleness, 45);
}

/// Issue 13: the WebSocket limits are settings (SDK), with the defaults
/// the SDK had built in; sizes take KiB/MiB, counts are whole numbers.
#[test]
fn websocket_limits_are_settings() {
    check_value(
        "",
        Setting::WsMaxMessageSize,
        expect!["65536 (64KiB) <- default (development)"],
    );
    check_value(
        "TOLLGATE_WS_MAX_MESSAGE_SIZE=1MiB",
        Setting::WsMaxMessageSize,
        expect!["1048576 (1MiB) <- env TOLLGATE_WS_MAX_MESSAGE_SIZE"],
    );
    check_value(
        "",
        Setting::WsMaxConnections,
        expect!["10000 <- default (development)"],
    );
    let (config, _) = build(
        Component::Sdk,
        "TOLLGATE_WS_SEND_QUEUE=8\nTOLLGATE_WS_SEND_TIMEOUT=2s\nTOLLGATE_WS_REFRESH_BUDGET=3\nTOLLGATE_WS_EXPIRY_NOTICE=30\nTOLLGATE_WS_MAX_CONNECTIONS=500\nTOLLGATE_WS_MAX_MESSAGE_SIZE=2048",
    )
    .into_config()
    .unwrap();
    assert_eq!(
        (
            config.ws_max_message_size,
            config.ws_send_queue,
            config.ws_send_timeout,
            config.ws_refresh_budget,
            config.ws_expiry_notice,
            config.ws_max_connections
        ),
        (2048, 8, 2, 3, 30, 500)
    );
    let defaults = Config::development();
    let (built, _) = build(Component::Sdk, "").into_config().unwrap();
    assert_eq!(
        (
            built.ws_max_message_size,
            built.ws_send_queue,
            built.ws_max_connections
        ),
        (
            defaults.ws_max_message_size,
            defaults.ws_send_queue,
            defaults.ws_max_connections
        )
    );
    check_sdk(
        "TOLLGATE_WS_MAX_MESSAGE_SIZE=100\nTOLLGATE_WS_SEND_QUEUE=0\nTOLLGATE_WS_MAX_CONNECTIONS=ten\nTOLLGATE_WS_REFRESH_BUDGET=99999999",
        expect![[r#"
            error: TOLLGATE_WS_MAX_MESSAGE_SIZE=100 is under 1024 bytes
            error: TOLLGATE_WS_SEND_QUEUE=0 is zero; use 1 or more
            error: TOLLGATE_WS_REFRESH_BUDGET=99999999 is over 10000000
            error: TOLLGATE_WS_MAX_CONNECTIONS=ten is not a whole number
        "#]],
    );
}

#[test]
fn the_usage_spool_is_a_setting() {
    let (config, _) = build(Component::Sdk, "").into_config().unwrap();
    assert_eq!(
        (config.usage_spool, config.usage_spool_max),
        (None, 16 * 1024 * 1024)
    );
    let (config, _) = build(
        Component::Sdk,
        "TOLLGATE_USAGE_SPOOL=/var/lib/svc/usage.spool\nTOLLGATE_USAGE_SPOOL_MAX=1MiB",
    )
    .into_config()
    .unwrap();
    assert_eq!(
        (config.usage_spool.as_deref(), config.usage_spool_max),
        (Some("/var/lib/svc/usage.spool"), 1024 * 1024)
    );
    check_sdk(
        "TOLLGATE_USAGE_SPOOL_MAX=10",
        expect![[r#"
            error: TOLLGATE_USAGE_SPOOL_MAX=10 is under 1024 bytes
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

#[test]
fn a_previous_hs256_secret_verifies_until_a_moment_and_follows_the_secret_rules() {
    let (current, previous) = (strong(40), strong(36));
    let report = build(
        Component::Server,
        &format!(
            "TOLLGATE_SIGNING_ALG=HS256\nTOLLGATE_HMAC_SECRET={current}\nJWT_PREVIOUS_SECRET={previous}\nTOLLGATE_HMAC_PREVIOUS_UNTIL=2026-12-31T23:59:59Z"
        ),
    );
    expect![[r#"
        warning: JWT_PREVIOUS_SECRET is a deprecated name; use TOLLGATE_HMAC_PREVIOUS_SECRET
        ok
    "#]]
    .assert_eq(&render(&report));
    let config = report.into_config().unwrap().0;
    assert_eq!(
        config.hmac_previous,
        Some((Secret::from(previous.as_str()), 1_798_761_599))
    );
    // Production refuses a weak previous secret; the overlap must end.
    let weak = "your-super-secret-jwt-token-with-at-least-32-characters-long";
    check(
        &format!(
            "{}TOLLGATE_SIGNING_ALG=HS256\nTOLLGATE_HMAC_SECRET={current}\nTOLLGATE_HMAC_PREVIOUS_SECRET={weak}\nTOLLGATE_HMAC_PREVIOUS_UNTIL=2026-12-31T23:59:59+01:00",
            production()
        ),
        expect![[r#"
            error: TOLLGATE_HMAC_PREVIOUS_SECRET is a well-known placeholder or repetitive secret; it must not verify tokens
        "#]],
    );
    check(
        &format!(
            "TOLLGATE_SIGNING_ALG=HS256\nTOLLGATE_HMAC_SECRET={current}\nTOLLGATE_HMAC_PREVIOUS_SECRET=short"
        ),
        expect![[r#"
            error: TOLLGATE_HMAC_PREVIOUS_SECRET is 5 bytes; HS256 needs a secret of at least 32 random bytes
            error: TOLLGATE_HMAC_PREVIOUS_SECRET is set without TOLLGATE_HMAC_PREVIOUS_UNTIL; say when the overlap ends (RFC 3339, e.g. 2026-12-31T23:59:59Z)
        "#]],
    );
    check(
        &format!("TOLLGATE_HMAC_PREVIOUS_SECRET={previous}\nTOLLGATE_HMAC_PREVIOUS_UNTIL=tomorrow"),
        expect![[r#"
            error: TOLLGATE_HMAC_PREVIOUS_UNTIL=tomorrow is not an RFC 3339 moment (e.g. 2026-12-31T23:59:59Z or 2026-12-31T12:00:00+01:00)
            warning: TOLLGATE_HMAC_PREVIOUS_SECRET is set but the signing algorithm is EdDSA; the secret is not used
        "#]],
    );
}

#[test]
fn rfc3339_moments_parse_exactly() {
    use super::parse::parse_rfc3339;
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_rfc3339("2026-12-31T23:59:59Z"), Some(1_798_761_599));
    assert_eq!(
        parse_rfc3339("2027-01-01T00:59:59.5+01:00"),
        Some(1_798_761_599)
    );
    assert_eq!(
        parse_rfc3339("2024-02-29t12:00:00-00:30"),
        Some(1_709_208_000 + 1800)
    );
    for bad in [
        "2026-12-31",
        "2026-12-31T23:59:59",
        "2026-13-01T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "2026-12-31T24:00:00Z",
        "1969-12-31T23:59:59Z",
        "2026-12-31T23:59:59+0100",
        "2026-12-31T23:59:59.Z",
        "+2026-12-31T23:59:59Z",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad}");
    }
}

/// Issue 12: audit retention (90 days unless set) and the audit webhook,
/// which is always signed.
#[test]
fn audit_retention_and_webhook_settings() {
    check_value(
        "",
        Setting::AuditRetention,
        expect!["7776000 (90d) <- default (development)"],
    );
    check_value(
        "TOLLGATE_AUDIT_RETENTION=30d",
        Setting::AuditRetention,
        expect!["2592000 (30d) <- env TOLLGATE_AUDIT_RETENTION"],
    );
    check(
        "TOLLGATE_AUDIT_WEBHOOK_URL=https://hooks.example.com/T0/B0/xyz",
        expect![[r#"
            error: TOLLGATE_AUDIT_WEBHOOK_URL is set without TOLLGATE_AUDIT_WEBHOOK_SECRET (the posts are signed with it)
        "#]],
    );
    check(
        "TOLLGATE_AUDIT_WEBHOOK_URL=ftp://hooks.example.com/x\nTOLLGATE_AUDIT_WEBHOOK_SECRET=short",
        expect![[r#"
            error: TOLLGATE_AUDIT_WEBHOOK_URL is not an http:// or https:// URL
            error: TOLLGATE_AUDIT_WEBHOOK_SECRET is shorter than 32 bytes
        "#]],
    );
    let secret = strong(40);
    let config = ConfigBuilder::new(Component::Server)
        .env([
            (
                "TOLLGATE_AUDIT_WEBHOOK_URL",
                "https://hooks.example.com/T0/B0/xyz",
            ),
            ("TOLLGATE_AUDIT_WEBHOOK_SECRET", secret.as_str()),
            (
                "TOLLGATE_AUDIT_WEBHOOK_TYPES",
                "login.failed, token.refresh_reuse",
            ),
        ])
        .build()
        .into_config()
        .unwrap()
        .0;
    assert_eq!(
        config.audit_webhook_types,
        ["login.failed", "token.refresh_reuse"]
    );
    assert!(config.audit_webhook_url.is_some());
    // The URL is masked like a secret wherever the report is shown.
    let report = build(
        Component::Server,
        &format!(
            "TOLLGATE_AUDIT_WEBHOOK_URL=https://hooks.example.com/T0/B0/xyz\nTOLLGATE_AUDIT_WEBHOOK_SECRET={secret}"
        ),
    );
    let shown = report
        .entry(Setting::AuditWebhookUrl)
        .unwrap()
        .value()
        .unwrap()
        .to_owned();
    assert!(!shown.contains("xyz"), "{shown}");
}
