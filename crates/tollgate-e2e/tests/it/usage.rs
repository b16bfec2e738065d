//! Issue 12: every call a `ToolGate` admits becomes a durable usage event
//! at the token service, through the SDK's `UsageRecorder` (batched,
//! spooled to a file while the token service is unreachable, replayed at
//! start-up, counted once).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tollgate_client::limits::{Plans, ToolGate, UsageRecorder, UsageRecorderBuilder};
use tollgate_client::{Principal, ServiceTokenSource};
use tollgate_core::Secret;
use tollgate_core::wire::UsageEvent;

use crate::support::{Backend, TokenService};

/// The reporting service's client (scope `usage`).
const REPORTER: &str = "reporter";

fn spool_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tollgate-e2e-usage-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

async fn tokens(service: &TokenService, secret: &str) -> ServiceTokenSource {
    ServiceTokenSource::builder(service.issuer(), REPORTER, Secret::from(secret))
        .build()
        .await
        .unwrap()
}

/// A recorder delivering through the proxy (so a cut proxy is an outage).
fn recorder(tokens: ServiceTokenSource, issuer: &str, spool: &PathBuf) -> UsageRecorderBuilder {
    UsageRecorder::builder(tokens, issuer)
        .spool(spool, 1024 * 1024)
        .flush_interval(Duration::from_millis(20))
        .backoff(Duration::from_millis(20), Duration::from_millis(100))
}

async fn principal(service: &TokenService, token: &str) -> Principal {
    let auth = service.authenticator().build().await.unwrap();
    auth.authenticate_user(token).await.unwrap()
}

/// The token service's durable report on `user` (asked directly, as admin).
async fn report(service: &TokenService, user: &str) -> Value {
    let admin = service.admin_token().await;
    let answer = service
        .send(
            reqwest::Method::GET,
            &format!("/v1/usage?user={user}&from=2020-01-01"),
            &admin,
            None,
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body
}

#[tokio::test(flavor = "multi_thread")]
async fn admitted_calls_arrive_as_usage_events() {
    let service = TokenService::start().await;
    let secret = service.server.create_client(REPORTER, &["usage"]).await;
    let (user, token) = service.user("ann@example.com").await;
    let who = principal(&service, &token).await;
    let spool = spool_path("usage.spool");
    let gate = ToolGate::new(Plans::builtin())
        .with_usage(recorder(
            tokens(&service, &secret).await,
            &service.issuer(),
            &spool,
        ))
        .await
        .unwrap();
    for _ in 0..20 {
        gate.admit(&who, "search").await.unwrap();
    }
    for _ in 0..5 {
        gate.admit(&who, "summarize").await.unwrap();
    }
    // A refused call is no event.
    assert!(gate.admit(&who, "code_interpreter").await.is_err());
    let recorder = gate.recorder().unwrap();
    assert!(recorder.flush().await, "{recorder:?}");
    let stats = recorder.stats();
    assert_eq!(
        (stats.recorded, stats.delivered, stats.duplicates),
        (25, 25, 0)
    );
    assert!(recorder.pending_of(&user).is_empty());
    assert_eq!(
        std::fs::read_to_string(&spool).unwrap(),
        "",
        "the spool is emptied"
    );
    let body = report(&service, &user).await;
    assert_eq!(body["total"], 25, "{body}");
    assert_eq!(
        body["rows"],
        serde_json::json!([{"key": "search", "calls": 20}, {"key": "summarize", "calls": 5}])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spool_filled_while_the_token_service_is_down_is_delivered_exactly_once() {
    let service = TokenService::start().await;
    let secret = service.server.create_client(REPORTER, &["usage"]).await;
    let (user, token) = service.user("bob@example.com").await;
    let who = principal(&service, &token).await;
    let spool = spool_path("usage.spool");
    let gate = ToolGate::new(Plans::builtin())
        .with_usage(recorder(
            tokens(&service, &secret).await,
            &service.issuer(),
            &spool,
        ))
        .await
        .unwrap();
    // Fetch the service token while the service is up (a cached token
    // outlives the outage; a fresh one would be fetched after it).
    assert!(gate.recorder().unwrap().flush().await);

    service.proxy.cut();
    for _ in 0..30 {
        gate.admit(&who, "search").await.unwrap();
    }
    let first = gate.recorder().unwrap();
    assert!(!first.flush().await, "nothing can be delivered while cut");
    assert_eq!(first.stats().spooled, 30);
    assert_eq!(first.pending_of(&user).get("search"), Some(&30));
    let lines = std::fs::read_to_string(&spool).unwrap();
    assert_eq!(
        lines.lines().count(),
        30,
        "every undelivered event is on disk"
    );
    // A crash now would leave this file behind: a second process of the
    // service starts over it later (the first one delivers as well, so the
    // same keys arrive twice).
    let left_behind = spool_path("usage.spool");
    std::fs::copy(&spool, &left_behind).unwrap();

    service.proxy.restore();
    assert!(first.flush().await);
    assert_eq!(first.stats().delivered, 30);
    assert_eq!(report(&service, &user).await["total"], 30);

    let second = ToolGate::new(Plans::builtin())
        .with_usage(recorder(
            tokens(&service, &secret).await,
            &service.issuer(),
            &left_behind,
        ))
        .await
        .unwrap();
    let replayed = second.recorder().unwrap();
    assert_eq!(
        replayed.stats().recorded,
        30,
        "the spool is replayed at start"
    );
    for _ in 0..5 {
        second.admit(&who, "summarize").await.unwrap();
    }
    assert!(replayed.flush().await);
    let stats = replayed.stats();
    assert_eq!((stats.delivered, stats.duplicates), (5, 30), "{stats:?}");
    let body = report(&service, &user).await;
    assert_eq!(body["total"], 35, "each call counted once: {body}");
    assert_eq!(std::fs::read_to_string(&left_behind).unwrap(), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_spool_is_skipped_line_by_line_and_a_refused_event_alone_is_dropped() {
    let service = TokenService::start().await;
    let secret = service.server.create_client(REPORTER, &["usage"]).await;
    let (user, _) = service.user("cy@example.com").await;
    let now = service.server.now();
    let event = |seq: u64, user: &str| UsageEvent {
        service: REPORTER.into(),
        instance: "crashed-1".into(),
        seq,
        user: user.into(),
        tool: "search".into(),
        plan: "free".into(),
        at: now,
    };
    let line = |e: &UsageEvent| serde_json::to_string(e).unwrap();
    let spool = spool_path("usage.spool");
    let cut_short = line(&event(9, &user));
    std::fs::write(
        &spool,
        format!(
            "{}\n{{\"not\": \"an event\"}}\n{}\n\u{0}\u{1}garbage\n{}\n{}",
            line(&event(1, &user)),
            line(&event(2, &user)),
            // A user the token service does not know: refused alone, the
            // rest of the batch is still counted.
            line(&event(3, "no-such-user")),
            &cut_short[..cut_short.len() - 7],
        ),
    )
    .unwrap();
    let recorder = recorder(tokens(&service, &secret).await, &service.issuer(), &spool)
        .plans(Plans::builtin())
        .start()
        .await
        .unwrap();
    let stats = recorder.stats();
    assert_eq!((stats.recorded, stats.skipped_lines), (3, 3), "{stats:?}");
    assert!(recorder.flush().await);
    let stats = recorder.stats();
    assert_eq!((stats.delivered, stats.dropped), (2, 1), "{stats:?}");
    assert_eq!(report(&service, &user).await["total"], 2);
    let logs = String::from_utf8_lossy(&crate::logs::captured().lock().unwrap()).into_owned();
    assert!(
        logs.contains("usage spool line 2 is not a usage event (cut short or corrupt); skipped"),
        "the skipped line is named in the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_backend_usage_reads_the_durable_figures_with_its_undelivered_calls() {
    let service = TokenService::start().await;
    let secret = service.server.create_client(REPORTER, &["usage"]).await;
    let (_, token) = service.user("dee@example.com").await;
    let spool = spool_path("usage.spool");
    // Delivery only when asked (or at 1000 events): the calls stay pending.
    let gate = ToolGate::new(Plans::builtin())
        .with_usage(
            recorder(tokens(&service, &secret).await, &service.issuer(), &spool)
                .flush_interval(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let recorder = gate.recorder().unwrap().clone();
    let backend = Backend::start_with_gate(
        &service,
        service.authenticator().build().await.unwrap(),
        gate,
    )
    .await;
    for _ in 0..3 {
        assert_eq!(
            backend.http_post("/api/tools/search", &token).await.status,
            200
        );
    }
    let usage = backend.get("/api/usage", &token).await;
    assert_eq!(usage.body["durable"], true, "{:?}", usage.body);
    assert_eq!(usage.body["usage"], serde_json::json!({"search": 3}));
    assert_eq!(
        recorder.stats().delivered,
        0,
        "not delivered yet: counted as pending"
    );

    assert!(recorder.flush().await);
    assert_eq!(recorder.stats().delivered, 3);
    let usage = backend.get("/api/usage", &token).await;
    assert_eq!(
        usage.body["usage"],
        serde_json::json!({"search": 3}),
        "not counted twice"
    );

    // A restarted backend (fresh in-process counts) still answers the
    // durable figures.
    drop(backend);
    let gate = ToolGate::new(Plans::builtin())
        .with_usage(recorder_for(&service, &secret).await)
        .await
        .unwrap();
    let backend = Backend::start_with_gate(
        &service,
        service.authenticator().build().await.unwrap(),
        gate,
    )
    .await;
    assert_eq!(
        backend
            .http_post("/api/tools/summarize", &token)
            .await
            .status,
        200
    );
    let usage = backend.get("/api/usage", &token).await;
    assert_eq!(
        usage.body["usage"],
        serde_json::json!({"search": 3, "summarize": 1}),
        "{:?}",
        usage.body
    );
}

async fn recorder_for(service: &TokenService, secret: &str) -> UsageRecorderBuilder {
    recorder(
        tokens(service, secret).await,
        &service.issuer(),
        &spool_path("usage.spool"),
    )
    .flush_interval(Duration::from_secs(3600))
}
