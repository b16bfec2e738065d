//! WebSocket load on one chat-backend instance (issue 13): N authenticated
//! connections across many users, idle then chatting at a set rate, tokens
//! refreshed in-band, one user revoked at the end. Figures: BENCHMARKS.md
//! ("WebSockets").
//!
//! Run (release; the backend binary first):
//! `cargo build --release -p chat-backend && cargo run --release -p tollgate-e2e --example ws_load -- --connections 10000`
//!
//! Options: `--connections N` (1000), `--per-user K` (50: the `enterprise`
//! plan's limit, so users = ceil(N/K)), `--rate R` chat messages per second
//! across all connections (1000), `--chat-secs S` (10), `--backend-bin PATH`
//! (`target/release/chat-backend`), `--expiry-notice SECS` (sets
//! `TOLLGATE_WS_EXPIRY_NOTICE`), `--token-ttl SECS` (3600: the token
//! service's access-token lifetime) and `--refresh-secs S` (0: after the
//! chat phase, how long the connections stay open idle, so that with a short
//! `--token-ttl` they live across several token lifetimes).
//!
//! In-band refresh: each connection answers `auth.expiring` with
//! `auth.refresh` carrying a token fresh from the token service (its user's
//! refresh token rotated over `POST /v1/auth/refresh`, once per user per
//! quarter lifetime, shared by that user's connections) and expects
//! `auth.refreshed`. The SDK sends the notice at most half a lifetime
//! before expiry, so e.g. `--token-ttl 20 --refresh-secs 60` refreshes each
//! connection about five times; the tool reports the refreshes and every
//! connection that closed before the end (a failed refresh closes 4401).
//!
//! How tokens are real at scale, quickly: the tool boots the real token
//! service in-process (the server's test-kit, SQLite, on 127.0.0.1:0),
//! creates the users in its store with plan `enterprise` (50 connections per
//! user) and logs each in twice over HTTP (`POST /v1/auth/login`): one
//! access token to connect, a second (another session of the same user) for
//! `auth.refresh`. Every handshake is a real validation of a real token (the
//! SDK's local JWKS validation; connections of one user share a token, so
//! the SDK's validation cache may answer some). The backend is the real
//! `chat-backend` binary, started as a child process trusting that token
//! service (`TOLLGATE_ISSUER`, its own client with scope `introspect`), so
//! its RSS (`/proc/<pid>/status` VmRSS) is its own: the figure per
//! connection is (RSS with N open − RSS before any) / N. The tool raises its
//! own file limit (the child inherits it), and stops by itself: it revokes
//! user 0 (`POST /v1/admin/users/{id}/revoke`), times until every one of
//! that user's connections has its close frame (4403), then ends the backend.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tollgate_server::testkit::TestServer;

const PASSWORD: &str = "load-test-password-1";

struct Args {
    connections: usize,
    per_user: usize,
    rate: f64,
    chat_secs: u64,
    backend_bin: String,
    expiry_notice: Option<u64>,
    token_ttl: u64,
    refresh_secs: u64,
}

fn args() -> Args {
    let mut parsed = Args {
        connections: 1000,
        per_user: 50,
        rate: 1000.0,
        chat_secs: 10,
        backend_bin: "target/release/chat-backend".to_owned(),
        expiry_notice: None,
        token_ttl: 3600,
        refresh_secs: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--connections" => parsed.connections = value.parse().expect("a number"),
            "--per-user" => parsed.per_user = value.parse().expect("a number"),
            "--rate" => parsed.rate = value.parse().expect("a number"),
            "--chat-secs" => parsed.chat_secs = value.parse().expect("a number"),
            "--backend-bin" => parsed.backend_bin = value,
            "--expiry-notice" => parsed.expiry_notice = Some(value.parse().expect("a number")),
            "--token-ttl" => parsed.token_ttl = value.parse().expect("a number"),
            "--refresh-secs" => parsed.refresh_secs = value.parse().expect("a number"),
            other => panic!("unknown option {other}"),
        }
    }
    parsed
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// What the connections report.
#[derive(Default)]
struct Shared {
    rtts: Mutex<Vec<Duration>>,
    /// (user index, close code, when).
    closes: Mutex<Vec<(usize, u16, Instant)>>,
    refreshed: AtomicUsize,
}

/// Fresh access tokens for `auth.refresh`: per user, the latest token and
/// refresh token; a token younger than a quarter lifetime is shared by the
/// user's connections, an older one is replaced by rotating the refresh
/// token (one rotation at a time per user: the lock is per user).
struct Refresher {
    http: reqwest::Client,
    url: String,
    ttl: Duration,
    users: Vec<tokio::sync::Mutex<(String, String, Instant)>>,
}

impl Refresher {
    async fn fresh(&self, user: usize) -> String {
        let mut slot = self.users[user].lock().await;
        if slot.2.elapsed() < self.ttl / 4 {
            return slot.0.clone();
        }
        let answer: Value = self
            .http
            .post(&self.url)
            .json(&json!({"refresh_token": slot.1}))
            .send()
            .await
            .expect("refresh answers")
            .json()
            .await
            .expect("a refresh answer");
        let (Some(access), Some(refresh)) = (
            answer["access_token"].as_str(),
            answer["refresh_token"].as_str(),
        ) else {
            panic!("the refresh failed: {answer}");
        };
        *slot = (access.to_owned(), refresh.to_owned(), Instant::now());
        slot.0.clone()
    }
}

async fn login(http: &reqwest::Client, server: &TestServer, email: &str) -> String {
    login_pair(http, server, email).await.0
}

/// (access token, refresh token) of a login.
async fn login_pair(http: &reqwest::Client, server: &TestServer, email: &str) -> (String, String) {
    let answer: Value = http
        .post(server.url("/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("login answers")
        .json()
        .await
        .expect("a login answer");
    match (
        answer["access_token"].as_str(),
        answer["refresh_token"].as_str(),
    ) {
        (Some(access), Some(refresh)) => (access.to_owned(), refresh.to_owned()),
        _ => panic!("no tokens: {answer}"),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = args();
    let limit = rlimit::increase_nofile_limit(u64::MAX).expect("the file limit can be read");
    eprintln!("file limit: {limit}");
    let n = args.connections;
    let users = n.div_ceil(args.per_user);

    // Hour-long access tokens by default: the test-kit's 60 s would expire
    // mid-run; shorter ones (`--token-ttl`) are refreshed in-band.
    let ttl = args.token_ttl;
    let server = TestServer::builder()
        .configure(move |config| config.access_token_ttl = ttl)
        .start()
        .await;
    let secret = server.create_client("chat-backend", &["introspect"]).await;
    let http = reqwest::Client::new();
    eprintln!("creating {users} users (plan enterprise) and logging each in twice…");
    let mut ids = Vec::with_capacity(users);
    let mut tokens = Vec::with_capacity(users);
    let mut slots = Vec::with_capacity(users);
    for u in 0..users {
        let email = format!("load{u}@example.com");
        ids.push(
            server
                .create_user(&email, PASSWORD, &[], Some("enterprise"))
                .await,
        );
        let connect = login(&http, &server, &email).await;
        let (access, refresh) = login_pair(&http, &server, &email).await;
        tokens.push(connect);
        slots.push(tokio::sync::Mutex::new((access, refresh, Instant::now())));
    }
    let refresher = Arc::new(Refresher {
        http: http.clone(),
        url: server.url("/v1/auth/refresh"),
        ttl: Duration::from_secs(args.token_ttl),
        users: slots,
    });

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let bind = format!("127.0.0.1:{port}");
    let mut command = tokio::process::Command::new(&args.backend_bin);
    command
        .env("TOLLGATE_ISSUER", server.issuer())
        .env("TOLLGATE_AUDIENCE", "api")
        .env("TOLLGATE_CLIENT_ID", "chat-backend")
        .env("TOLLGATE_CLIENT_SECRET", &secret)
        .env("TOLLGATE_WS_MAX_CONNECTIONS", (n * 2).to_string())
        .env("CHAT_BACKEND_BIND", &bind)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    if let Some(notice) = args.expiry_notice {
        command.env("TOLLGATE_WS_EXPIRY_NOTICE", notice.to_string());
    }
    let mut backend = command.spawn().expect("the backend binary starts");
    let pid = backend.id().expect("a running backend");
    let base = format!("http://{bind}");
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_before = rss_kib(pid);
    eprintln!("backend pid {pid} on {bind}, RSS {rss_before} KiB");

    let shared = Arc::new(Shared::default());
    let (chat_tx, chat_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(64));
    let (opened_tx, mut opened_rx) = mpsc::unbounded_channel::<()>();
    let interval = Duration::from_secs_f64(n as f64 / args.rate.max(0.001));
    let started = Instant::now();
    for c in 0..n {
        let user = c % users;
        let connect = tokens[user].clone();
        let url = format!("ws://{bind}/ws");
        let (shared, gate, opened) = (shared.clone(), gate.clone(), opened_tx.clone());
        let refresher = refresher.clone();
        let (mut chat, mut stop) = (chat_rx.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await.expect("the gate stays open");
            let mut request = url.into_client_request().expect("a request");
            request.headers_mut().insert(
                "authorization",
                format!("Bearer {connect}").parse().expect("a header"),
            );
            let (socket, _) = match tokio_tungstenite::connect_async(request).await {
                Ok(s) => s,
                Err(e) => panic!("handshake {c} failed: {e}"),
            };
            drop(permit);
            let _ = opened.send(());
            let (mut sink, mut stream) = socket.split();
            // Spread the chat phase's messages over the interval.
            let offset = interval.mul_f64((c as f64 * 0.618_034) % 1.0);
            let mut ticker =
                tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
            // Ticks missed while idle are skipped, not sent in a burst.
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut pending: Option<Instant> = None;
            loop {
                tokio::select! {
                    frame = stream.next() => match frame {
                        Some(Ok(Message::Text(text))) => {
                            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                            match v["type"].as_str() {
                                Some("chat.reply") => if let Some(t) = pending.take() {
                                    shared.rtts.lock().expect("no poisoning").push(t.elapsed());
                                },
                                Some("auth.expiring") => {
                                    let fresh = refresher.fresh(user).await;
                                    let m = json!({"type":"auth.refresh","access_token":fresh}).to_string();
                                    let _ = sink.send(Message::text(m)).await;
                                }
                                Some("auth.refreshed") => { shared.refreshed.fetch_add(1, Ordering::Relaxed); }
                                _ => {}
                            }
                        }
                        Some(Ok(Message::Close(frame))) => {
                            let code = frame.map(|f| u16::from(f.code)).unwrap_or(0);
                            shared.closes.lock().expect("no poisoning").push((user, code, Instant::now()));
                            return;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => {
                            shared.closes.lock().expect("no poisoning").push((user, 0, Instant::now()));
                            return;
                        }
                    },
                    _ = ticker.tick(), if *chat.borrow() && pending.is_none() => {
                        pending = Some(Instant::now());
                        let _ = sink.send(Message::text(r#"{"type":"chat","text":"hello"}"#)).await;
                    }
                    _ = chat.changed() => {}
                    _ = stop.changed() => { let _ = sink.close().await; return; }
                }
            }
        });
    }
    drop(opened_tx);
    for _ in 0..n {
        opened_rx.recv().await.expect("every connection opens");
    }
    let took = started.elapsed();
    println!(
        "handshakes: {n} in {:.2} s = {:.0}/s (64 in flight, {users} users)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_idle = rss_kib(pid);
    println!(
        "RSS idle: {rss_idle} KiB with {n} open ({rss_before} KiB before) = {:.1} KiB per connection",
        (rss_idle.saturating_sub(rss_before)) as f64 / n as f64
    );

    let _ = chat_tx.send(true);
    tokio::time::sleep(Duration::from_secs(args.chat_secs)).await;
    let rss_chat = rss_kib(pid);
    let _ = chat_tx.send(false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut rtts = std::mem::take(&mut *shared.rtts.lock().expect("no poisoning"));
    rtts.sort();
    let at = |q: f64| {
        rtts.get(((rtts.len() as f64 * q).ceil() as usize).clamp(1, rtts.len().max(1)) - 1)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(f64::NAN)
    };
    println!(
        "chatting at {} msg/s for {} s: {} round trips, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; RSS {rss_chat} KiB = {:.1} KiB per connection",
        args.rate,
        args.chat_secs,
        rtts.len(),
        at(0.5),
        at(0.99),
        at(1.0),
        (rss_chat.saturating_sub(rss_before)) as f64 / n as f64
    );
    if args.refresh_secs > 0 {
        eprintln!(
            "idle for {} s ({:.1} token lifetimes)…",
            args.refresh_secs,
            args.refresh_secs as f64 / args.token_ttl as f64
        );
        tokio::time::sleep(Duration::from_secs(args.refresh_secs)).await;
    }
    let early: Vec<u16> = shared
        .closes
        .lock()
        .expect("no poisoning")
        .iter()
        .map(|(_, code, _)| *code)
        .collect();
    println!(
        "in-band refreshes answered auth.refreshed: {} ({:.1} per connection; token lifetime {} s); connections closed before the end: {} (codes {early:?})",
        shared.refreshed.load(Ordering::Relaxed),
        shared.refreshed.load(Ordering::Relaxed) as f64 / n as f64,
        args.token_ttl,
        early.len()
    );

    // Logged in now: with a short `--token-ttl` an earlier token is gone.
    let admin = login_admin(&http, &server).await;
    let victims = (0..n).filter(|c| c % users == 0).count();
    let revoked_at = Instant::now();
    let status = http
        .post(server.url(&format!("/v1/admin/users/{}/revoke", ids[0])))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("the revocation answers")
        .status();
    assert!(status.is_success(), "revocation answered {status}");
    let mut codes: HashMap<u16, usize> = HashMap::new();
    let mut last = None;
    for _ in 0..1000 {
        let mine: Vec<(u16, Instant)> = {
            let closes = shared.closes.lock().expect("no poisoning");
            closes
                .iter()
                .filter(|(u, _, _)| *u == 0)
                .map(|(_, code, t)| (*code, *t))
                .collect()
        };
        if mine.len() >= victims {
            for (code, _) in &mine {
                *codes.entry(*code).or_default() += 1;
            }
            last = mine.iter().map(|(_, t)| *t).max();
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    match last {
        Some(t) => println!(
            "revoking user 0: all {victims} of its connections closed {:.1} ms after the revocation was sent (codes {codes:?}); others closed: {}",
            t.duration_since(revoked_at).as_secs_f64() * 1000.0,
            shared
                .closes
                .lock()
                .expect("no poisoning")
                .iter()
                .filter(|(u, _, _)| *u != 0)
                .count()
        ),
        None => println!("revoking user 0: its connections did not all close within ~1 s"),
    }
    let _ = stop_tx.send(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = backend.kill().await;
    server.stop().await;
}

async fn login_admin(http: &reqwest::Client, server: &TestServer) -> String {
    let answer: Value = http
        .post(server.url("/v1/auth/login"))
        .json(&json!({"email": server.admin_email(), "password": server.admin_password()}))
        .send()
        .await
        .expect("login answers")
        .json()
        .await
        .expect("a login answer");
    answer["access_token"]
        .as_str()
        .expect("an admin token")
        .to_owned()
}
