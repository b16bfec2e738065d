//! Key rotation under load: users log in and an SDK-protected service
//! validates every fresh token while the keys rotate ten times, one second
//! apart. Not one fresh token may be refused (CONTRACT §3: the next key is
//! published before it signs, and a `keys` event on the feed makes every
//! SDK refetch the key set at once). The SDK keeps its default JWKS
//! cool-down (5 s), as a real service does.
//!
//! Run with one instance on SQLite, and with three instances on one
//! Postgres schema (127.0.0.1:5432, database `test`, or
//! `TOLLGATE_TEST_POSTGRES_URL`) behind a round-robin load balancer, with no
//! Redis: the instances learn of each other's rotations from the store.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tokio::net::{TcpListener, TcpStream};
use tollgate_client::{Authenticator, Expect};
use tollgate_core::Secret;
use tollgate_server::testkit::{TestServer, TestServerBuilder};

use crate::support::PASSWORD;

const ROTATIONS: usize = 10;

/// A TCP load balancer: each connection goes to the next instance.
struct Balancer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Balancer {
    async fn start(
        listener: TcpListener,
        upstreams: Arc<std::sync::Mutex<Vec<SocketAddr>>>,
    ) -> Balancer {
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let turn = AtomicUsize::new(0);
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let target = {
                    let upstreams = upstreams.lock().unwrap();
                    if upstreams.is_empty() {
                        continue;
                    }
                    upstreams[turn.fetch_add(1, Ordering::Relaxed) % upstreams.len()]
                };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Balancer { addr, task }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the load saw.
#[derive(Debug, Default)]
struct Outcome {
    validated: usize,
    refused: Vec<String>,
    kids: HashSet<String>,
}

fn kid(token: &str) -> String {
    let (header, _) = tollgate_core::jws::dangerous::insecure_decode(token).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn login(http: &reqwest::Client, base: &str, email: &str) -> String {
    let answer = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Starts `count` instances from `builder` behind a balancer (the issuer),
/// runs the load while rotating, and returns what it saw.
async fn rotate_under_load(builder: TestServerBuilder, count: usize) -> Outcome {
    crate::logs::capture();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let upstreams = Arc::new(std::sync::Mutex::new(Vec::new()));
    let balancer = Balancer::start(listener, upstreams.clone()).await;
    assert_eq!(issuer, format!("http://{}", balancer.addr));
    let first = {
        let issuer = issuer.clone();
        builder
            .configure(move |config| config.issuer = issuer)
            .start()
            .await
    };
    let mut instances = vec![first];
    while instances.len() < count {
        let next = instances[0].another_instance().await;
        instances.push(next);
    }
    upstreams
        .lock()
        .unwrap()
        .extend(instances.iter().map(TestServer::addr));
    let bases: Vec<String> = instances.iter().map(|i| i.base_url().to_owned()).collect();

    let secret = instances[0]
        .create_client("chat-backend", &["introspect"])
        .await;
    instances[0]
        .create_user("load@example.com", PASSWORD, &[], None)
        .await;
    // The SDK as a service runs it: default cool-down and refresh.
    let sdk = Authenticator::builder(issuer.clone(), "api")
        .client_credentials("chat-backend", Secret::from(secret.as_str()))
        .service_name("chat-backend")
        .build()
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let admin = login_admin(&http, &bases[0], &instances[0]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, http, bases, sdk) = (stop.clone(), http.clone(), bases.clone(), sdk.clone());
        tokio::spawn(async move {
            let mut outcome = Outcome::default();
            let mut turn = 0;
            while !stop.load(Ordering::SeqCst) {
                let token = login(&http, &bases[turn % bases.len()], "load@example.com").await;
                turn += 1;
                let kid = kid(&token);
                match sdk.authenticate(&token, Expect::Access).await {
                    Ok(_) => outcome.validated += 1,
                    Err(error) => outcome.refused.push(format!("{kid}: {error}")),
                }
                outcome.kids.insert(kid);
            }
            outcome
        })
    };
    for round in 0..ROTATIONS {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let answer = http
            .post(format!(
                "{}/v1/admin/keys/rotate",
                bases[round % bases.len()]
            ))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "rotation {round}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let outcome = load.await.unwrap();
    drop(sdk);
    for instance in instances {
        instance.stop().await;
    }
    outcome
}

async fn login_admin(http: &reqwest::Client, base: &str, server: &TestServer) -> String {
    let answer = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": server.admin_email(), "password": server.admin_password()}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = answer.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

fn check(outcome: &Outcome, setup: &str) {
    eprintln!(
        "rotation under load ({setup}): {} fresh tokens validated, {} refused, {} signing keys seen",
        outcome.validated,
        outcome.refused.len(),
        outcome.kids.len()
    );
    assert!(
        outcome.refused.is_empty(),
        "{setup}: {} fresh tokens refused during {ROTATIONS} rotations: {:?}",
        outcome.refused.len(),
        outcome.refused
    );
    // The load ran across the rotations: most keys signed some of it.
    assert!(
        outcome.kids.len() > ROTATIONS / 2,
        "{setup}: only {} signing keys seen",
        outcome.kids.len()
    );
}

#[tokio::test]
async fn ten_rotations_refuse_no_fresh_token_on_one_sqlite_instance() {
    let outcome = rotate_under_load(TestServer::builder(), 1).await;
    check(&outcome, "one instance, SQLite");
}

async fn postgres_url() -> String {
    if let Ok(url) = std::env::var("TOLLGATE_TEST_POSTGRES_URL") {
        return url;
    }
    for url in [
        "postgres://postgres@127.0.0.1:5432/test",
        "postgres://root@127.0.0.1:5432/test",
    ] {
        if let Ok(conn) = PgConnection::connect(url).await {
            let _ = conn.close().await;
            return url.to_owned();
        }
    }
    panic!("this test needs Postgres at 127.0.0.1:5432, database `test`");
}

#[tokio::test]
async fn ten_rotations_refuse_no_fresh_token_on_three_postgres_instances() {
    let url = postgres_url().await;
    let schema = format!("tollgate_e2e_test_{}", uuid::Uuid::new_v4().simple());
    let outcome = std::panic::AssertUnwindSafe(rotate_under_load(
        TestServer::builder().postgres(&url, &schema),
        3,
    ))
    .catch_unwind()
    .await;
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    match outcome {
        Ok(outcome) => check(&outcome, "three instances, Postgres"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
