//! `tollgate user|client|keys` and `token mint` against a SQLite store in a
//! temporary directory, with no server running.

use tempfile::TempDir;

use crate::util::{Run, Tollgate, tollgate};

/// A temporary data directory shared by several invocations.
struct Data {
    dir: TempDir,
}

impl Data {
    fn new() -> Data {
        Data {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn url(&self) -> String {
        format!("sqlite://{}/tollgate.db", self.dir.path().display())
    }

    fn tollgate(&self, args: &[&str]) -> Tollgate {
        tollgate(args).env("TOLLGATE_DATABASE_URL", &self.url())
    }

    fn run(&self, args: &[&str]) -> Run {
        let run = self.tollgate(args).run();
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        run
    }
}

#[test]
fn users_are_added_listed_and_changed() {
    let data = Data::new();
    let added = data
        .tollgate(&[
            "user",
            "add",
            "Ann@Example.com",
            "--password-stdin",
            "--role",
            "admin",
            "--plan",
            "pro",
        ])
        .stdin("correct horse battery staple\n")
        .run();
    assert_eq!(added.code, 0, "{added:?}");
    assert!(added.stdout.starts_with("created "), "{}", added.stdout);
    assert!(
        added
            .stdout
            .contains("ann@example.com  plan=pro  roles=admin  enabled")
    );
    assert!(!added.stdout.contains("correct horse"));

    let generated = data.run(&["user", "add", "bob@example.com", "--json"]);
    let bob: serde_json::Value = serde_json::from_str(generated.stdout.trim()).unwrap();
    assert_eq!(bob["plan"], "free");
    assert!(bob["password"].as_str().unwrap().len() >= 40);

    let list = data.run(&["user", "list", "--json"]);
    let users: Vec<serde_json::Value> = list
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["email"], "ann@example.com");

    let set = data.run(&[
        "user",
        "set",
        "bob@example.com",
        "--plan",
        "enterprise",
        "--role",
        "support",
        "--disabled",
        "true",
    ]);
    assert!(
        set.stdout
            .contains("plan=enterprise  roles=support  disabled"),
        "{}",
        set.stdout
    );
    assert!(set.stdout.contains("every token of the user is revoked"));
    let id = bob["user_id"].as_str().unwrap();
    // The plan change is on the feed for SDKs (a `plan` notice).
    let url = data.url();
    let feed = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let store = tollgate_store::open_store(&url).await.unwrap();
            store.revocations_after(0, 100, 0).await.unwrap()
        });
    assert!(
        feed.iter()
            .any(|e| e.kind == tollgate_store::RevocationKind::Plan
                && e.plan() == Some((id, "enterprise"))),
        "{feed:?}"
    );
    let again = data.run(&["user", "set", id, "--disabled", "false", "--clear-roles"]);
    assert!(
        again.stdout.contains("roles=-  enabled"),
        "{}",
        again.stdout
    );

    for (args, needle) in [
        (vec!["user", "add", "ann@example.com"], "exists"),
        (vec!["user", "add", "not-an-email"], "e-mail"),
        (
            vec!["user", "add", "c@example.com", "--plan", "platinum"],
            "plan",
        ),
        (
            vec!["user", "set", "nobody@example.com", "--plan", "pro"],
            "no user",
        ),
        (vec!["user", "set", "ann@example.com"], "nothing to change"),
    ] {
        let run = data.tollgate(&args).run();
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
    let weak = data
        .tollgate(&["user", "add", "d@example.com", "--password-stdin"])
        .stdin("password\n")
        .run();
    assert_eq!(weak.code, 2);
    assert!(weak.stderr.contains("common"), "{}", weak.stderr);
}

#[test]
fn clients_are_added_with_a_secret_shown_once_and_listed_without_it() {
    let data = Data::new();
    let added = data.run(&[
        "client",
        "add",
        "billing",
        "--scope",
        "introspect",
        "--scope",
        "read",
    ]);
    let secret = added
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("secret "))
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("tgs_"));
    assert!(added.stdout.starts_with("billing  scopes=introspect,read"));
    let json = data.run(&["client", "add", "reports", "--json"]);
    let created: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert!(
        created["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("tgs_")
    );
    let list = data.run(&["client", "list"]);
    assert!(list.stdout.contains("billing  scopes=introspect,read"));
    assert!(list.stdout.contains("reports  scopes=-"));
    assert!(!list.stdout.contains(&secret));
    let taken = data.tollgate(&["client", "add", "billing"]).run();
    assert_eq!(taken.code, 2);
    assert!(taken.stderr.contains("taken"), "{}", taken.stderr);
    let bad = data.tollgate(&["client", "add", "x y"]).run();
    assert_eq!(bad.code, 2);
}

#[test]
fn keys_are_generated_listed_and_rotated() {
    let data = Data::new();
    let first = data.run(&["keys", "generate"]);
    let kid = first.stdout.trim().to_owned();
    assert_eq!(kid.len(), 43, "{first:?}");
    let again = data.run(&["keys", "generate"]);
    assert!(again.stdout.is_empty());
    assert!(again.stderr.contains("nothing created"));
    let rotated = data.run(&["keys", "rotate", "--json"]);
    let new: serde_json::Value = serde_json::from_str(rotated.stdout.trim()).unwrap();
    let list = data.run(&["keys", "list"]);
    let lines: Vec<&str> = list.stdout.lines().collect();
    // The first key, the promoted next key, and the new next key.
    assert_eq!(lines.len(), 3, "{}", list.stdout);
    assert!(lines[0].contains("  next  "), "{}", list.stdout);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(new["kid"].as_str().unwrap()) && l.contains("  active  "))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&kid) && l.contains("verify_only") && l.contains("retire_at="))
    );

    let hs = data
        .tollgate(&["keys", "rotate"])
        .env("TOLLGATE_SIGNING_ALG", "HS256")
        .env(
            "TOLLGATE_HMAC_SECRET",
            "q3J9vX2mL8pR4tY7wZ1nB6cF0hK5sD2gA9eU",
        )
        .run();
    assert_eq!(hs.code, 2);
    assert!(hs.stderr.contains("HS256"), "{}", hs.stderr);
}

#[test]
fn minted_tokens_validate_against_the_local_store_and_mint_refuses_strict_environments() {
    let data = Data::new();
    data.run(&["keys", "generate"]);
    let token = data.run(&[
        "token",
        "mint",
        "--sub",
        "user-1",
        "--email",
        "a@example.com",
        "--plan",
        "pro",
    ]);
    let token = token.stdout.trim().to_owned();
    let inspected = data.run(&["token", "inspect", &token, "--expect", "access"]);
    assert_eq!(
        inspected.stdout.lines().last(),
        Some("valid"),
        "{}",
        inspected.stdout
    );
    assert!(inspected.stdout.contains("tool:web_browse"));
    let service = data.run(&[
        "token", "mint", "--sub", "svc", "--type", "service", "--scope", "read", "--json",
    ]);
    let minted: serde_json::Value = serde_json::from_str(service.stdout.trim()).unwrap();
    assert_eq!(minted["claims"]["token_type"], "service");
    let service = minted["access_token"].as_str().unwrap();
    let wrong = data
        .tollgate(&["token", "inspect", service, "--expect", "access"])
        .run();
    assert_eq!(wrong.code, 1, "{wrong:?}");
    let too_long = data
        .tollgate(&["token", "mint", "--sub", "u", "--ttl", "999999"])
        .run();
    assert_eq!(too_long.code, 2);

    for environment in ["staging", "production"] {
        let strict = data
            .tollgate(&["token", "mint", "--sub", "user-1"])
            .env("TOLLGATE_ENV", environment)
            .env("TOLLGATE_ISSUER", "https://auth.example.com")
            .env(
                "TOLLGATE_MASTER_KEY",
                "q3J9vX2mL8pR4tY7wZ1nB6cF0hK5sD2gA9eU",
            )
            .run();
        assert_eq!(strict.code, 2, "{environment}: {strict:?}");
        assert!(
            strict.stderr.contains("development and test only"),
            "{environment}: {}",
            strict.stderr
        );
        assert!(strict.stdout.is_empty());
    }

    // Without a store (and no --jwks) inspect says what it needs.
    let fresh = tollgate(&["token", "inspect", &token]).run();
    assert_eq!(fresh.code, 2);
    assert!(fresh.stderr.contains("--jwks"), "{}", fresh.stderr);
}

/// Records usage straight into the store the CLI reads (the server would
/// after `POST /v1/usage/events`).
fn record_usage(data: &Data, events: Vec<tollgate_store::UsageEvent>) {
    let url = data.url();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let store = tollgate_store::open_store(&url).await.unwrap();
            let now = events.iter().map(|e| e.at).max().unwrap();
            let recorded = store.record_usage(&events, now).await.unwrap();
            assert!(
                matches!(recorded, tollgate_store::UsageRecorded::Stored { .. }),
                "{recorded:?}"
            );
        });
}

#[test]
fn usage_report_exports_calls_per_user_and_tool_as_text_json_and_csv() {
    let data = Data::new();
    let ann = data.run(&["user", "add", "ann@example.com", "--json"]);
    let ann: serde_json::Value = serde_json::from_str(ann.stdout.trim()).unwrap();
    let ann = ann["user_id"].as_str().unwrap().to_owned();
    let bob = data.run(&["user", "add", "bob@example.com", "--json"]);
    let bob: serde_json::Value = serde_json::from_str(bob.stdout.trim()).unwrap();
    let bob = bob["user_id"].as_str().unwrap().to_owned();
    // 2026-12-01T10:00:00Z and an hour later; one call on 2026-12-02.
    let ten = 1_796_083_200 + 10 * 3600;
    let event = |seq: u64, user: &str, tool: &str, at: u64| tollgate_store::UsageEvent {
        service: "chat-backend".into(),
        instance: "i-1".into(),
        seq,
        user: user.into(),
        tool: tool.into(),
        plan: "free".into(),
        at,
    };
    record_usage(
        &data,
        vec![
            event(1, &ann, "search", ten),
            event(2, &ann, "search", ten + 3600),
            event(3, &ann, "calculator", ten + 60),
            event(4, &bob, "search", ten + 120),
            event(5, &bob, "search", ten + 86_400),
        ],
    );

    let text = data.run(&[
        "usage",
        "report",
        "--from",
        "2026-12-01",
        "--to",
        "2026-12-02",
    ]);
    let mut expected = vec![
        format!("{ann}  calculator  1"),
        format!("{ann}  search  2"),
        format!("{bob}  search  1"),
    ];
    expected.sort();
    expected.push("total 4".into());
    assert_eq!(text.stdout.lines().collect::<Vec<_>>(), expected);

    let json = data.run(&[
        "usage",
        "report",
        "--from",
        "2026-12-01T00:00:00Z",
        "--to",
        "2026-12-03",
        "--user",
        "bob@example.com",
        "--group-by",
        "day",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(report["user"], bob.as_str());
    assert_eq!(report["group_by"], "day");
    assert_eq!(report["total"], 2);
    assert_eq!(
        report["rows"],
        serde_json::json!([{"key": "2026-12-01", "calls": 1}, {"key": "2026-12-02", "calls": 1}])
    );

    // Only 10:00–11:00 (the hour `to` falls in is counted whole).
    let csv = data.run(&[
        "usage",
        "report",
        "--from",
        &ten.to_string(),
        "--to",
        "2026-12-01T10:30:00Z",
        "--user",
        &ann,
        "--csv",
    ]);
    assert_eq!(
        csv.stdout,
        format!("user,key,calls\n{ann},calculator,1\n{ann},search,1\n")
    );

    let empty = data.run(&[
        "usage",
        "report",
        "--from",
        "2020-01-01",
        "--to",
        "2020-01-02",
        "--csv",
    ]);
    assert_eq!(empty.stdout, "user,key,calls\n");

    for (args, needle) in [
        (
            vec![
                "usage",
                "report",
                "--from",
                "yesterday",
                "--to",
                "2026-12-02",
            ],
            "--from \"yesterday\" is not Unix seconds",
        ),
        (
            vec![
                "usage",
                "report",
                "--from",
                "2026-12-02",
                "--to",
                "2026-13-40",
            ],
            "--to",
        ),
        (
            vec![
                "usage",
                "report",
                "--from",
                "2026-12-02",
                "--to",
                "2026-12-01",
            ],
            "--from must be before --to",
        ),
        (
            vec![
                "usage",
                "report",
                "--from",
                "2026-12-01",
                "--to",
                "2026-12-02",
                "--user",
                "nobody@example.com",
            ],
            "no user nobody@example.com",
        ),
        (
            vec![
                "usage",
                "report",
                "--from",
                "2026-12-01",
                "--to",
                "2026-12-02",
                "--json",
                "--csv",
            ],
            "cannot be used with",
        ),
        (vec!["usage", "report", "--to", "2026-12-02"], "--from"),
    ] {
        let run = data.tollgate(&args).run();
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
}

/// Appends `count` mixed audit events to chain `chain` of the store.
fn append_audit(data: &Data, chain: &str, count: u64) {
    let url = data.url();
    let chain = chain.to_owned();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let store = tollgate_store::open_store(&url).await.unwrap();
            let kinds = ["login.failed", "login.succeeded", "revoked", "keys.rotated"];
            let events: Vec<_> = (0..count)
                .map(|n| tollgate_store::NewAuditEvent {
                    at: 1_796_083_200 + n,
                    kind: kinds[(n % 4) as usize].to_owned(),
                    actor: "anonymous".to_owned(),
                    subject: Some(format!("user-{}", n % 5)),
                    address: Some("127.0.0.1".to_owned()),
                    request_id: Some(format!("r{n}")),
                    details: format!("{{\"n\":{n}}}"),
                })
                .collect();
            for chunk in events.chunks(100) {
                store.append_audit(&chain, chunk).await.unwrap();
            }
        });
}

/// Runs raw SQL against the SQLite file, as someone with the file would.
fn raw_sql(data: &Data, statements: &[&'static str]) {
    let path = data.dir.path().join("tollgate.db");
    let statements = statements.to_vec();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            use sqlx::Connection;
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
            let mut db = sqlx::SqliteConnection::connect_with(&options)
                .await
                .unwrap();
            for statement in statements {
                sqlx::query(statement).execute(&mut db).await.unwrap();
            }
            db.close().await.unwrap();
        });
}

#[test]
fn audit_verify_names_the_event_edited_by_hand() {
    let data = Data::new();
    // The store exists once a command opened it.
    data.run(&["user", "list"]);
    append_audit(&data, "instance:a", 300);
    append_audit(&data, "instance:b", 200);
    let ok = data.run(&["audit", "verify"]);
    assert_eq!(ok.stdout.trim(), "ok: 500 events on 2 chains verify");
    // The trigger refuses edits; someone with the file drops it first.
    raw_sql(
        &data,
        &[
            "DROP TRIGGER audit_events_append_only",
            "UPDATE audit_events SET details = '{\"n\":0}' WHERE chain = 'instance:b' AND seq = 42",
        ],
    );
    let broken = data.tollgate(&["audit", "verify"]).run();
    assert_eq!(broken.code, 1, "{broken:?}");
    // Chain b's events have cursors 301..=500: seq 42 is cursor 342.
    assert_eq!(
        broken.stdout.trim(),
        "broken at event 342 (chain instance:b, seq 42): its content does not match its hash (edited)"
    );
    let json = data.tollgate(&["audit", "verify", "--json"]).run();
    assert_eq!(json.code, 1);
    let json: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["broken"]["cursor"], 342);
    assert_eq!(json["broken"]["seq"], 42);
    assert_eq!(json["broken"]["reason"], "hash");
    // A deleted event in the middle of chain a: named at the one after it.
    raw_sql(
        &data,
        &[
            "UPDATE audit_events SET details = '{\"n\":41}' WHERE chain = 'instance:b' AND seq = 42",
            "DELETE FROM audit_events WHERE chain = 'instance:a' AND seq = 7",
        ],
    );
    let gap = data.tollgate(&["audit", "verify"]).run();
    assert_eq!(gap.code, 1, "{gap:?}");
    assert!(
        gap.stdout
            .starts_with("broken at event 8 (chain instance:a, seq 8): events before it"),
        "{}",
        gap.stdout
    );
}

#[test]
fn audit_tail_prints_the_latest_events_and_follows_new_ones() {
    let data = Data::new();
    data.run(&["user", "list"]);
    append_audit(&data, "instance:a", 1234);
    let tail = data.run(&["audit", "tail", "-n", "3", "--json"]);
    let cursors: Vec<u64> = tail
        .stdout
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["cursor"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(cursors, [1232, 1233, 1234]);
    let text = data.run(&["audit", "tail", "-n", "1", "--type", "login.failed"]);
    assert!(
        text.stdout.starts_with("1233  2026-12-01T00:20:32Z  login.failed  actor=anonymous  subject=user-2  address=127.0.0.1  request_id=r1232  {\"n\":1232}"),
        "{}",
        text.stdout
    );
    // --follow: started, then an event appended, then its line is read.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .env_clear()
        .env("TOLLGATE_DATABASE_URL", data.url())
        .args(["audit", "tail", "--follow", "--json", "-n", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["cursor"], 1234);
    append_audit(&data, "instance:b", 1);
    let next: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(
        (next["cursor"].as_u64(), next["chain"].as_str()),
        (Some(1235), Some("instance:b"))
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn state_changing_commands_record_audit_events_on_the_cli_chain() {
    let data = Data::new();
    let added = data
        .tollgate(&["user", "add", "eve@example.com", "--json"])
        .env("USER", "operator")
        .run();
    assert_eq!(added.code, 0, "{added:?}");
    let user: serde_json::Value = serde_json::from_str(added.stdout.trim()).unwrap();
    let id = user["user_id"].as_str().unwrap().to_owned();
    let password = user["password"].as_str().unwrap().to_owned();
    data.run(&["user", "set", &id, "--plan", "pro", "--role", "admin"]);
    data.run(&["user", "set", "eve@example.com", "--disabled", "true"]);
    let client = data.run(&[
        "client",
        "add",
        "billing",
        "--scope",
        "introspect",
        "--json",
    ]);
    let client: serde_json::Value = serde_json::from_str(client.stdout.trim()).unwrap();
    let secret = client["client_secret"].as_str().unwrap().to_owned();
    let first = data.run(&["keys", "generate"]).stdout.trim().to_owned();
    data.run(&["keys", "generate"]);
    let rotated = data.run(&["keys", "rotate"]).stdout.trim().to_owned();
    data.run(&["user", "list"]);
    data.run(&["client", "list"]);
    data.run(&["keys", "list"]);

    let tail = data.run(&["audit", "tail", "-n", "100", "--json"]);
    assert!(!tail.stdout.contains(&password), "{}", tail.stdout);
    assert!(!tail.stdout.contains(&secret), "{}", tail.stdout);
    let events: Vec<serde_json::Value> = tail
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let summary: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), e["subject"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("admin.user_created", id.as_str()),
            ("admin.user_updated", id.as_str()),
            ("admin.user_updated", id.as_str()),
            ("revoked", id.as_str()),
            ("admin.client_created", "billing"),
            ("keys.rotated", first.as_str()),
            ("keys.rotated", rotated.as_str()),
        ],
        "{}",
        tail.stdout
    );
    for (n, event) in events.iter().enumerate() {
        assert_eq!(event["chain"], "cli", "{event}");
        assert_eq!(event["seq"].as_u64(), Some(n as u64 + 1), "{event}");
        assert_eq!(event["actor"], "cli", "{event}");
    }
    assert_eq!(events[0]["details"]["os_user"], "operator");
    assert_eq!(events[0]["details"]["plan"], "free");
    assert_eq!(events[1]["details"]["plan"], "pro");
    assert_eq!(events[1]["details"]["roles"], serde_json::json!(["admin"]));
    assert_eq!(events[2]["details"]["disabled"], true);
    assert_eq!(events[3]["details"]["kind"], "user");
    assert_eq!(
        events[4]["details"]["scopes"],
        serde_json::json!(["introspect"])
    );
    let verify = data.run(&["audit", "verify"]);
    assert!(!verify.stdout.is_empty(), "{verify:?}");
}
