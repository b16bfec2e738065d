//! `tollgate config check` and `tollgate config explain`.

use expect_test::expect;

use crate::util::{pretty_json, tollgate};

const STRONG: &str = "q3J9vX2mL8pR4tY7wZ1nB6cF0hK5sD2gA9eU";

#[test]
fn two_legacy_lifetimes_that_disagree_fail_naming_both() {
    let run = tollgate(&["config", "check"])
        .env("JWT_ACCESS_EXPIRY_MINUTES", "15")
        .env("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "30")
        .run();
    assert_eq!(run.code, 1, "{run:?}");
    expect![[r#"
        setting                                     value                                 source
        TOLLGATE_ENV                                development                           default (development)
        TOLLGATE_BIND                               127.0.0.1:8080                        default (development)
        TOLLGATE_ISSUER                             http://127.0.0.1:8080                 default (development)
        TOLLGATE_AUDIENCE                           api                                   default (development)
        TOLLGATE_ACCESS_TOKEN_TTL                   1800 (30m)                            env JWT_ACCESS_TOKEN_EXPIRE_MINUTES
        TOLLGATE_REFRESH_TOKEN_TTL                  604800 (7d)                           default (development)
        TOLLGATE_REFRESH_REUSE_GRACE                10                                    default (development)
        TOLLGATE_SERVICE_TOKEN_TTL                  3600 (1h)                             default (development)
        TOLLGATE_LEEWAY                             30                                    default (development)
        TOLLGATE_SIGNING_ALG                        EdDSA                                 default (development)
        TOLLGATE_HMAC_SECRET                        (unset)                               default (development)
        TOLLGATE_HMAC_PREVIOUS_SECRET               (unset)                               default (development)
        TOLLGATE_HMAC_PREVIOUS_UNTIL                (unset)                               default (development)
        TOLLGATE_DATABASE_URL                       sqlite://./tollgate-data/tollgate.db  default (development)
        TOLLGATE_REDIS_URL                          (unset)                               default (development)
        TOLLGATE_REDIS_PREFIX                       (unset)                               default (development)
        TOLLGATE_MASTER_KEY                         (unset)                               default (development)
        TOLLGATE_CLIENT_ID                          (unset)                               default (development)
        TOLLGATE_CLIENT_SECRET                      (unset)                               default (development)
        TOLLGATE_REGISTRATION                       open                                  default (development)
        TOLLGATE_PLANS_FILE                         (unset)                               default (development)
        TOLLGATE_BOOTSTRAP_ADMIN_EMAIL              (unset)                               default (development)
        TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD           (unset)                               default (development)
        TOLLGATE_FEED_DOWN_POLICY                   introspect                            default (development)
        TOLLGATE_FEED_MAX_STALENESS                 30                                    default (development)
        TOLLGATE_ALLOW_QUERY_TOKEN                  off                                   default (development)
        TOLLGATE_KEEP_ALIVE_TIMEOUT                 75                                    default (development)
        TOLLGATE_WS_MAX_MESSAGE_SIZE                65536 (64KiB)                         default (development)
        TOLLGATE_WS_SEND_QUEUE                      64                                    default (development)
        TOLLGATE_WS_SEND_TIMEOUT                    10                                    default (development)
        TOLLGATE_WS_REFRESH_BUDGET                  5                                     default (development)
        TOLLGATE_WS_EXPIRY_NOTICE                   60 (1m)                               default (development)
        TOLLGATE_WS_MAX_CONNECTIONS                 10000                                 default (development)
        TOLLGATE_USAGE_SPOOL                        (unset)                               default (development)
        TOLLGATE_USAGE_SPOOL_MAX                    16777216 (16MiB)                      default (development)
        TOLLGATE_TRUSTED_PROXIES                    (unset)                               default (development)
        TOLLGATE_INTROSPECTIONS_PER_CLIENT          100000                                default (development)
        TOLLGATE_LOGIN_FAILURES_PER_ACCOUNT         5                                     default (development)
        TOLLGATE_LOGIN_FAILURES_PER_ACCOUNT_GLOBAL  100                                   default (development)
        TOLLGATE_LOGIN_FAILURES_PER_ADDRESS         50                                    default (development)
        TOLLGATE_REGISTRATIONS_PER_ADDRESS          20                                    default (development)
        TOLLGATE_STORE_TIMEOUT                      2                                     default (development)
        TOLLGATE_AUDIT_RETENTION                    7776000 (90d)                         default (development)
        TOLLGATE_AUDIT_WEBHOOK_URL                  (unset)                               default (development)
        TOLLGATE_AUDIT_WEBHOOK_TYPES                token.refresh_reuse,login.locked      default (development)
        TOLLGATE_AUDIT_WEBHOOK_SECRET               (unset)                               default (development)

        error: JWT_ACCESS_TOKEN_EXPIRE_MINUTES=30 (= 1800 s) and JWT_ACCESS_EXPIRY_MINUTES=15 (= 900 s) disagree; set only TOLLGATE_ACCESS_TOKEN_TTL
        warning: JWT_ACCESS_TOKEN_EXPIRE_MINUTES is a deprecated name; use TOLLGATE_ACCESS_TOKEN_TTL
        warning: JWT_ACCESS_EXPIRY_MINUTES is a deprecated name; use TOLLGATE_ACCESS_TOKEN_TTL
        1 error, 2 warnings (development, server)
    "#]]
    .assert_eq(&run.stdout);
}

#[test]
fn production_without_master_key_and_issuer_refuses_with_one_line_each() {
    let run = tollgate(&["config", "check"])
        .env("TOLLGATE_ENV", "production")
        .run();
    assert_eq!(run.code, 1, "{run:?}");
    let problems: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("error:") || l.starts_with("warning:"))
        .collect();
    expect![[r#"
        [
            "error: TOLLGATE_ISSUER is required in production: set it to the public https:// URL of the token service",
            "error: TOLLGATE_MASTER_KEY is required in production: it encrypts the private signing keys at rest (at least 32 random bytes)",
        ]
    "#]]
    .assert_debug_eq(&problems);
}

#[test]
fn production_json_lists_sources_and_errors() {
    let run = tollgate(&["config", "check", "--json", "--bind", "0.0.0.0:443"])
        .env("ENVIRONMENT", "production")
        .env("TOLLGATE_REDIS_URL", "redis://:hunter2@cache:6379")
        .env("TOLLGATE_MASTER_KEY", STRONG)
        .run();
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stdout.lines().count(), 1, "one object on one line");
    assert!(!run.stdout.contains("hunter2") && !run.stdout.contains(STRONG));
    expect![[r#"
        {
          "component": "server",
          "environment": "production",
          "errors": [
            "TOLLGATE_ISSUER is required in production: set it to the public https:// URL of the token service"
          ],
          "ok": false,
          "settings": [
            {
              "key": "env",
              "name": "TOLLGATE_ENV",
              "secret": false,
              "source": {
                "kind": "env",
                "name": "ENVIRONMENT"
              },
              "value": "production"
            },
            {
              "key": "bind",
              "name": "TOLLGATE_BIND",
              "secret": false,
              "source": {
                "flag": "--bind",
                "kind": "flag"
              },
              "value": "0.0.0.0:443"
            },
            {
              "key": "issuer",
              "name": "TOLLGATE_ISSUER",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": null
            },
            {
              "key": "audience",
              "name": "TOLLGATE_AUDIENCE",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "api"
            },
            {
              "key": "access_token_ttl",
              "name": "TOLLGATE_ACCESS_TOKEN_TTL",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "900 (15m)"
            },
            {
              "key": "refresh_token_ttl",
              "name": "TOLLGATE_REFRESH_TOKEN_TTL",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "604800 (7d)"
            },
            {
              "key": "refresh_reuse_grace",
              "name": "TOLLGATE_REFRESH_REUSE_GRACE",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "10"
            },
            {
              "key": "service_token_ttl",
              "name": "TOLLGATE_SERVICE_TOKEN_TTL",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "3600 (1h)"
            },
            {
              "key": "leeway",
              "name": "TOLLGATE_LEEWAY",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "30"
            },
            {
              "key": "signing_alg",
              "name": "TOLLGATE_SIGNING_ALG",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "EdDSA"
            },
            {
              "key": "hmac_secret",
              "name": "TOLLGATE_HMAC_SECRET",
              "secret": true,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": null
            },
            {
              "key": "hmac_previous_secret",
              "name": "TOLLGATE_HMAC_PREVIOUS_SECRET",
              "secret": true,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": null
            },
            {
              "key": "hmac_previous_until",
              "name": "TOLLGATE_HMAC_PREVIOUS_UNTIL",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": null
            },
            {
              "key": "database_url",
              "name": "TOLLGATE_DATABASE_URL",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "sqlite://./tollgate-data/tollgate.db"
            },
            {
              "key": "redis_url",
              "name": "TOLLGATE_REDIS_URL",
              "secret": false,
              "source": {
                "kind": "env",
                "name": "TOLLGATE_REDIS_URL"
              },
              "value": "redis://:****@cache:6379"
            },
            {
              "key": "redis_prefix",
              "name": "TOLLGATE_REDIS_PREFIX",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": null
            },
            {
              "key": "master_key",
              "name": "TOLLGATE_MASTER_KEY",
              "secret": true,
              "source": {
                "kind": "env",
                "name": "TOLLGATE_MASTER_KEY"
              },
              "value": "**** (36 bytes)"
            },
            {
              "key": "client_id",
              "name": "TOLLGATE_CLIENT_ID",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": null
            },
            {
              "key": "client_secret",
              "name": "TOLLGATE_CLIENT_SECRET",
              "secret": true,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": null
            },
            {
              "key": "registration",
              "name": "TOLLGATE_REGISTRATION",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "closed"
            },
            {
              "key": "plans_file",
              "name": "TOLLGATE_PLANS_FILE",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": null
            },
            {
              "key": "bootstrap_admin_email",
              "name": "TOLLGATE_BOOTSTRAP_ADMIN_EMAIL",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": null
            },
            {
              "key": "bootstrap_admin_password",
              "name": "TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD",
              "secret": true,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": null
            },
            {
              "key": "feed_down_policy",
              "name": "TOLLGATE_FEED_DOWN_POLICY",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "introspect"
            },
            {
              "key": "feed_max_staleness",
              "name": "TOLLGATE_FEED_MAX_STALENESS",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "30"
            },
            {
              "key": "allow_query_token",
              "name": "TOLLGATE_ALLOW_QUERY_TOKEN",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "off"
            },
            {
              "key": "keep_alive_timeout",
              "name": "TOLLGATE_KEEP_ALIVE_TIMEOUT",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "75"
            },
            {
              "key": "ws_max_message_size",
              "name": "TOLLGATE_WS_MAX_MESSAGE_SIZE",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "65536 (64KiB)"
            },
            {
              "key": "ws_send_queue",
              "name": "TOLLGATE_WS_SEND_QUEUE",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "64"
            },
            {
              "key": "ws_send_timeout",
              "name": "TOLLGATE_WS_SEND_TIMEOUT",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "10"
            },
            {
              "key": "ws_refresh_budget",
              "name": "TOLLGATE_WS_REFRESH_BUDGET",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "5"
            },
            {
              "key": "ws_expiry_notice",
              "name": "TOLLGATE_WS_EXPIRY_NOTICE",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "60 (1m)"
            },
            {
              "key": "ws_max_connections",
              "name": "TOLLGATE_WS_MAX_CONNECTIONS",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "10000"
            },
            {
              "key": "usage_spool",
              "name": "TOLLGATE_USAGE_SPOOL",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": null
            },
            {
              "key": "usage_spool_max",
              "name": "TOLLGATE_USAGE_SPOOL_MAX",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "16777216 (16MiB)"
            },
            {
              "key": "trusted_proxies",
              "name": "TOLLGATE_TRUSTED_PROXIES",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": null
            },
            {
              "key": "introspections_per_client",
              "name": "TOLLGATE_INTROSPECTIONS_PER_CLIENT",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "100000"
            },
            {
              "key": "login_failures_per_account",
              "name": "TOLLGATE_LOGIN_FAILURES_PER_ACCOUNT",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "5"
            },
            {
              "key": "login_failures_per_account_global",
              "name": "TOLLGATE_LOGIN_FAILURES_PER_ACCOUNT_GLOBAL",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "100"
            },
            {
              "key": "login_failures_per_address",
              "name": "TOLLGATE_LOGIN_FAILURES_PER_ADDRESS",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "50"
            },
            {
              "key": "registrations_per_address",
              "name": "TOLLGATE_REGISTRATIONS_PER_ADDRESS",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "20"
            },
            {
              "key": "store_timeout",
              "name": "TOLLGATE_STORE_TIMEOUT",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "2"
            },
            {
              "key": "audit_retention",
              "name": "TOLLGATE_AUDIT_RETENTION",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "7776000 (90d)"
            },
            {
              "key": "audit_webhook_url",
              "name": "TOLLGATE_AUDIT_WEBHOOK_URL",
              "secret": true,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": null
            },
            {
              "key": "audit_webhook_types",
              "name": "TOLLGATE_AUDIT_WEBHOOK_TYPES",
              "secret": false,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": "token.refresh_reuse,login.locked"
            },
            {
              "key": "audit_webhook_secret",
              "name": "TOLLGATE_AUDIT_WEBHOOK_SECRET",
              "secret": true,
              "source": {
                "environment": "production",
                "kind": "default"
              },
              "value": null
            }
          ],
          "warnings": [
            "ENVIRONMENT is a deprecated name; use TOLLGATE_ENV"
          ]
        }
    "#]]
    .assert_eq(&pretty_json(&run.stdout));
}

#[test]
fn a_clean_production_configuration_exits_zero() {
    let run = tollgate(&["config", "check", "--json"])
        .env("TOLLGATE_ENV", "production")
        .env("TOLLGATE_ISSUER", "https://auth.example.com")
        .env("TOLLGATE_MASTER_KEY", STRONG)
        .run();
    assert_eq!(run.code, 0, "{run:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["errors"], serde_json::json!([]));
}

#[test]
fn every_source_is_named() {
    let t = tollgate(&[
        "config",
        "check",
        "--env-file",
        "deploy.env",
        "--access-token-ttl",
        "5m",
    ])
    .env("TOLLGATE_AUDIENCE", "from-process")
    .env("TOLLGATE_SIGNING_ALG", "ES256");
    t.file(
        "deploy.env",
        "# deployment\nTOLLGATE_AUDIENCE=from-env-file\nexport JWT_ISSUER=https://auth.example.com\n",
    );
    t.file(
        "tollgate.toml",
        "bind = \"127.0.0.1:9000\"\nsigning_alg = \"RS256\"\nleeway = 10\n",
    );
    let run = t.run();
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| !l.contains("default ("))
        .collect();
    expect![[r#"
        [
            "setting                                     value                                 source",
            "TOLLGATE_BIND                               127.0.0.1:9000                        file tollgate.toml (bind)",
            "TOLLGATE_ISSUER                             https://auth.example.com              env file deploy.env (JWT_ISSUER)",
            "TOLLGATE_AUDIENCE                           from-process                          env TOLLGATE_AUDIENCE",
            "TOLLGATE_ACCESS_TOKEN_TTL                   300 (5m)                              flag --access-token-ttl",
            "TOLLGATE_LEEWAY                             10                                    file tollgate.toml (leeway)",
            "TOLLGATE_SIGNING_ALG                        ES256                                 env TOLLGATE_SIGNING_ALG",
            "",
            "warning: JWT_ISSUER is a deprecated name; use TOLLGATE_ISSUER",
            "0 errors, 1 warning (development, server)",
        ]
    "#]]
    .assert_debug_eq(&lines);
}

#[test]
fn a_missing_config_file_is_an_error() {
    let run = tollgate(&["config", "check", "--config", "nope.toml"]).run();
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stdout.is_empty());
    expect![[r#"
        error: cannot read the config file nope.toml: No such file or directory (os error 2)
    "#]]
    .assert_eq(&run.stderr);
}

#[test]
fn unknown_config_keys_and_bad_flags_are_errors() {
    let t = tollgate(&["config", "check", "--signing-alg", "none"]);
    t.file("tollgate.toml", "audiences = [\"api\"]\n");
    let run = t.run();
    assert_eq!(run.code, 1, "{run:?}");
    let problems: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("error:") || l.starts_with("warning:"))
        .collect();
    expect![[r#"
        [
            "error: tollgate.toml: unknown key `audiences` (did you mean `audience`?)",
            "error: --signing-alg none is not a signing algorithm; use one of EdDSA, ES256, RS256, HS256 (exact case)",
        ]
    "#]]
    .assert_debug_eq(&problems);
}

#[test]
fn secrets_are_masked_in_text_and_json() {
    for json in [false, true] {
        let mut args = vec!["config", "check"];
        if json {
            args.push("--json");
        }
        let run = tollgate(&args)
            .env("TOLLGATE_ENV", "staging")
            .env("TOLLGATE_ISSUER", "https://auth.example.com")
            .env("TOLLGATE_SIGNING_ALG", "HS256")
            .env("JWT_SECRET", "changeme")
            .env("TOLLGATE_MASTER_KEY", STRONG)
            .env(
                "TOLLGATE_DATABASE_URL",
                "postgres://app:pg-pass-123@db/tollgate",
            )
            .run();
        assert_eq!(run.code, 1, "{run:?}");
        for secret in ["changeme", STRONG, "pg-pass-123"] {
            assert!(!run.stdout.contains(secret), "{secret} in {}", run.stdout);
            assert!(!run.stderr.contains(secret));
        }
        assert!(run.stdout.contains("postgres://app:****@db/tollgate"));
        assert!(run.stdout.contains("JWT_SECRET is 8 bytes"));
    }
}

#[test]
fn explain_lists_every_setting() {
    let run = tollgate(&["config", "explain", "--json"]).run();
    assert_eq!(run.code, 0, "{run:?}");
    let explained: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let settings = explained["settings"].as_array().unwrap();
    assert_eq!(settings.len(), tollgate_core::config::settings().len());
    let issuer = settings
        .iter()
        .find(|s| s["name"] == "TOLLGATE_ISSUER")
        .unwrap();
    expect![[r#"
        {
          "aliases": [
            {
              "name": "JWT_ISSUER",
              "unit": null
            }
          ],
          "defaults": {
            "development": "http://<bind>",
            "production": null,
            "staging": null,
            "test": "http://<bind>"
          },
          "description": "The `iss` of every token, compared exactly: the public URL of the token service. Must be https:// (or loopback http://) in staging and production.",
          "development_only": false,
          "flag": "--issuer",
          "key": "issuer",
          "name": "TOLLGATE_ISSUER",
          "required_in": [
            "staging",
            "production"
          ],
          "secret": false,
          "values": "http:// or https:// URL without query or fragment"
        }
    "#]]
    .assert_eq(&(serde_json::to_string_pretty(issuer).unwrap() + "\n"));

    let text = tollgate(&["config", "explain"]).run();
    assert_eq!(text.code, 0);
    expect![[r#"
        TOLLGATE_ACCESS_TOKEN_TTL
            Lifetime of access tokens (at most 24h).
            values:   seconds, or a number with s, m, h or d (900, 15m, 1h, 7d)
            file key: access_token_ttl    flag: --access-token-ttl
            aliases:  JWT_ACCESS_TOKEN_EXPIRE_MINUTES (minutes), JWT_ACCESS_EXPIRY_MINUTES (minutes)
            default:  900 (every environment)
    "#]]
    .assert_eq(&paragraph(&text.stdout, "TOLLGATE_ACCESS_TOKEN_TTL"));
    expect![[r#"
        TOLLGATE_HMAC_SECRET
            The shared secret for HS256 (at least 32 bytes, not a well-known placeholder). Used only with HS256.
            values:   secret text (masked in every output)
            file key: hmac_secret    flag: none (secret)
            aliases:  JWT_SECRET_KEY, JWT_SECRET, JWT_SECRET_<ENV>
            default:  none (every environment)
            secret: masked in every output
    "#]]
    .assert_eq(&paragraph(&text.stdout, "TOLLGATE_HMAC_SECRET"));
}

/// The paragraph of `explain` output that starts with `name`.
fn paragraph(text: &str, name: &str) -> String {
    let start = text.find(&format!("\n{name}\n")).unwrap() + 1;
    let end = text[start..].find("\n\n").unwrap() + start;
    format!("{}\n", &text[start..end])
}

#[test]
fn a_closed_stdout_is_success() {
    assert_eq!(tollgate(&["config", "explain"]).run_with_closed_stdout(), 0);
    assert_eq!(tollgate(&["config", "check"]).run_with_closed_stdout(), 0);
}

#[test]
fn usage_errors_exit_two() {
    let run = tollgate(&["config", "check", "--no-such-flag"]).run();
    assert_eq!(run.code, 2, "{run:?}");
}

#[test]
fn the_configuration_doc_names_every_setting_and_alias() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    for spec in tollgate_core::config::settings() {
        assert!(doc.contains(&format!("`{}`", spec.env())), "{}", spec.env());
        assert!(doc.contains(&format!("`{}`", spec.key())), "{}", spec.key());
        for alias in spec.aliases() {
            assert!(doc.contains(&format!("`{}`", alias.name)), "{}", alias.name);
        }
    }
}
