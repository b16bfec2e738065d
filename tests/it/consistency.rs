//! `tollgate consistency check|watch` against a real token service (the
//! server's test-kit) and services whose fingerprints come from the SDK.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;
use tollgate_client::Authenticator;
use tollgate_client::testing::TestIssuer;
use tollgate_server::testkit::TestServer;

use crate::util::{Run, tollgate};

/// Serves `auth`'s fingerprint on 127.0.0.1:0.
async fn service(auth: Authenticator) -> (String, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router: axum::Router = tollgate_client::axum::fingerprint_router(auth);
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (url, task)
}

async fn backend(server: &TestServer, name: &str, audience: &str) -> (String, JoinHandle<()>) {
    // The test-kit's token service uses a 5 s leeway; a service must agree.
    let auth = Authenticator::builder(server.issuer(), audience)
        .service_name(name)
        .leeway(server.config().leeway)
        .build()
        .await
        .unwrap();
    service(auth).await
}

async fn check(args: Vec<String>) -> Run {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tollgate(&["consistency", "check"]).args(&args).run()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn services_that_agree_are_info_and_exit_0() {
    let server = TestServer::start().await;
    let (chat, _t) = backend(&server, "chat-backend", "api").await;
    let run = check(vec![server.base_url().to_owned(), chat.clone()]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("INFO") && lines[0].contains("tollgate (token service)"),
        "{run:?}"
    );
    assert!(
        lines[1].starts_with("INFO") && lines[1].contains("chat-backend: consistent"),
        "{run:?}"
    );
    assert_eq!(
        lines[2],
        "overall INFO: 2 checked, 0 disagree, 0 unreachable"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_audience_or_issuer_is_critical_with_the_fields_named() {
    let server = TestServer::start().await;
    let (good, _a) = backend(&server, "chat-backend", "api").await;
    let (billing, _b) = backend(&server, "billing", "billing").await;
    let elsewhere = TestIssuer::with("https://elsewhere.test", &["api"]).unwrap();
    let (rogue, _c) = service(elsewhere.authenticator_named("api", "rogue")).await;
    // (The test issuer's authenticator also has the default 30 s leeway,
    // a third difference.)
    let run = check(vec![
        good,
        billing.clone(),
        server.base_url().to_owned(),
        rogue.clone(),
    ])
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    let line = |url: &str| {
        run.stdout
            .lines()
            .find(|l| l.contains(url))
            .unwrap()
            .to_owned()
    };
    let billing_line = line(&billing);
    assert!(billing_line.starts_with("CRITICAL"), "{billing_line}");
    assert!(
        billing_line.contains(r#"audiences: expected "api", found "billing""#),
        "{billing_line}"
    );
    let rogue_line = line(&rogue);
    assert!(rogue_line.starts_with("CRITICAL"), "{rogue_line}");
    assert!(
        rogue_line.contains("issuer: expected") && rogue_line.contains("keys: expected"),
        "{rogue_line}"
    );
    assert!(
        rogue_line.contains(r#"leeway: expected "5", found "30""#),
        "{rogue_line}"
    );
    assert!(
        run.stdout
            .ends_with("overall CRITICAL: 4 checked, 2 disagree, 0 unreachable\n"),
        "{run:?}"
    );

    // The same as JSON, one object per line.
    let mut args = vec!["--json".to_owned(), server.base_url().to_owned(), billing];
    args.push(rogue);
    let run = check(args).await;
    assert_eq!(run.code, 2);
    let objects: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 4);
    assert_eq!(objects[0]["role"], "token_service");
    assert_eq!(objects[1]["level"], "CRITICAL");
    assert_eq!(objects[1]["service"], "billing");
    assert_eq!(objects[1]["differences"][0]["field"], "audiences");
    let fields: Vec<&str> = objects[2]["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["issuer", "keys", "leeway"]);
    assert_eq!(objects[3]["overall"], "CRITICAL");
    assert_eq!(objects[3]["disagree"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn more_than_two_disagreeing_is_an_emergency() {
    let server = TestServer::start().await;
    let mut args = vec![server.base_url().to_owned()];
    let mut tasks = Vec::new();
    for name in ["a", "b", "c"] {
        let (url, task) = backend(&server, name, name).await;
        args.push(url);
        tasks.push(task);
    }
    let run = check(args).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout
            .ends_with("overall EMERGENCY: 4 checked, 3 disagree, 0 unreachable\n"),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_service_is_a_warning() {
    let server = TestServer::start().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let run = check(vec![server.base_url().to_owned(), closed.clone()]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let line = run.stdout.lines().find(|l| l.contains(&closed)).unwrap();
    assert!(
        line.starts_with("WARNING") && line.contains("unreachable"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_service_it_says_how_to_name_one() {
    let server = TestServer::start().await;
    let (chat, _t) = backend(&server, "chat-backend", "api").await;
    let run = check(vec![chat.clone()]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--token-service"), "{run:?}");
    // Naming it works even when its fingerprint is not in the list.
    let run = check(vec![
        "--token-service".into(),
        server.base_url().into(),
        chat,
    ])
    .await;
    assert_eq!(run.code, 0, "{run:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_prints_each_change_of_state() {
    let server = TestServer::start().await;
    let (chat, task) = backend(&server, "chat-backend", "api").await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args([
            "consistency",
            "watch",
            "--interval",
            "200ms",
            "--json",
            server.base_url(),
            &chat,
        ])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines, receiver) = std::sync::mpsc::channel::<Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines.send(serde_json::from_str(&line).unwrap()).is_err() {
                return;
            }
        }
    });
    let next = || receiver.recv_timeout(Duration::from_secs(20)).unwrap();
    // The first round prints everything.
    let first: Vec<Value> = (0..3).map(|_| next()).collect();
    assert_eq!(first[1]["level"], "INFO");
    assert_eq!(first[2]["overall"], "INFO");
    assert!(first[2]["at"].is_u64());
    // Later rounds print nothing until the service goes away.
    task.abort();
    let changed = next();
    assert_eq!(changed["url"], format!("{chat}/v1/fingerprint"));
    assert_eq!(changed["level"], "WARNING");
    assert_eq!(next()["overall"], "WARNING");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A real local HTTP receiver: records every body posted to it; answers
/// 503 to the first `fail_first` posts.
async fn receiver(fail_first: usize) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::sync::{Arc, Mutex};
    let posts: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(fail_first));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let (posts, failures) = (posts.clone(), failures.clone());
            move |axum::Json(body): axum::Json<Value>| {
                let (posts, failures) = (posts.clone(), failures.clone());
                async move {
                    let mut failures = failures.lock().unwrap();
                    if *failures > 0 {
                        *failures -= 1;
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    posts.lock().unwrap().push(body);
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        }),
    );
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (url, posts)
}

async fn posted(posts: &std::sync::Mutex<Vec<Value>>, count: usize) -> Vec<Value> {
    for _ in 0..1000 {
        let seen = posts.lock().unwrap().clone();
        if seen.len() >= count {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the webhook never got {count} posts: {:?}",
        posts.lock().unwrap()
    );
}

fn watch_child(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["consistency", "watch", "--interval", "200ms"])
        .args(args)
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_posts_each_change_of_level_to_a_webhook_retrying_a_failing_receiver() {
    let server = TestServer::start().await;
    let (chat, task) = backend(&server, "chat-backend", "api").await;
    // The first post is answered 503: it is posted again.
    let (hook, posts) = receiver(1).await;
    let mut child = watch_child(&["--webhook", &hook, server.base_url(), &chat]);
    let first = posted(&posts, 1).await;
    assert_eq!(first[0]["event"], "consistency.level_changed");
    assert_eq!(first[0]["overall"], "INFO");
    assert_eq!(first[0]["previous"], Value::Null);
    assert_eq!(first[0]["changes"].as_array().unwrap().len(), 2);
    // Nothing changes: nothing is posted. Then the service goes away.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(posts.lock().unwrap().len(), 1, "only changes are posted");
    task.abort();
    let both = posted(&posts, 2).await;
    let alert = &both[1];
    assert_eq!(
        (&alert["overall"], &alert["previous"]),
        (&"WARNING".into(), &"INFO".into())
    );
    assert_eq!(alert["unreachable"], 1);
    let change = &alert["changes"][0];
    assert_eq!(change["url"], format!("{chat}/v1/fingerprint"));
    assert_eq!(
        (&change["level"], &change["previous"]),
        (&"WARNING".into(), &"INFO".into())
    );
    assert_eq!(change["error"], "unreachable: connection failed");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_posts_slack_text_and_a_dead_webhook_never_stops_the_checks() {
    let server = TestServer::start().await;
    let (chat, task) = backend(&server, "chat-backend", "api").await;
    let (hook, posts) = receiver(0).await;
    let mut child = watch_child(&[
        "--webhook",
        &hook,
        "--webhook-format",
        "slack",
        server.base_url(),
        &chat,
    ]);
    let first = posted(&posts, 1).await;
    let text = first[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("tollgate consistency: INFO (2 checked"),
        "{text}"
    );
    task.abort();
    let text = posted(&posts, 2).await[1]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.starts_with("tollgate consistency: WARNING (was INFO)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("• WARNING {chat}/v1/fingerprint (was INFO)")),
        "{text}"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // A webhook nobody listens on: the watch still prints every change.
    let (chat, task) = backend(&server, "chat-backend", "api").await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["consistency", "watch", "--interval", "200ms", "--json"])
        .args([
            "--webhook",
            "http://127.0.0.1:9/nobody",
            server.base_url(),
            &chat,
        ])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, receiver) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines.send(serde_json::from_str(&line).unwrap()).is_err() {
                return;
            }
        }
    });
    let next = || receiver.recv_timeout(Duration::from_secs(20)).unwrap();
    let first: Vec<Value> = (0..3).map(|_| next()).collect();
    assert_eq!(first[2]["overall"], "INFO");
    task.abort();
    assert_eq!(next()["level"], "WARNING");
    assert_eq!(next()["overall"], "WARNING");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_webhook_that_is_not_an_http_url_is_refused() {
    let run = tollgate(&[
        "consistency",
        "watch",
        "--webhook",
        "ftp://example.com/hook",
        "http://127.0.0.1:9",
    ])
    .run();
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("is not an http:// or https:// URL"),
        "{run:?}"
    );
    let run = tollgate(&[
        "consistency",
        "watch",
        "--webhook-format",
        "slack",
        "http://127.0.0.1:9",
    ])
    .run();
    assert_eq!(run.code, 2, "{run:?}");
}
