//! Several instances on one database (the scaled-out deployment): a
//! revocation or a key rotation made through one reaches the others, and
//! refresh rotation is exactly-once across them. Run on a shared SQLite
//! file and on Postgres (127.0.0.1:5432, database `test`, user `postgres`
//! or `root`, or `TOLLGATE_TEST_POSTGRES_URL`), each Postgres test in a
//! schema of its own, dropped at the end.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tollgate_server::testkit::{TestServer, TestServerBuilder};

use crate::common::{Api, PASSWORD};

pub(crate) async fn postgres_url() -> &'static str {
    static URL: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    URL.get_or_init(|| async {
        if let Ok(url) = std::env::var("TOLLGATE_TEST_POSTGRES_URL") {
            return url;
        }
        let mut failures = Vec::new();
        for url in [
            "postgres://postgres@127.0.0.1:5432/test",
            "postgres://root@127.0.0.1:5432/test",
        ] {
            match PgConnection::connect(url).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    return url.to_owned();
                }
                Err(error) => failures.push(format!("{url}: {error}")),
            }
        }
        panic!("these tests need Postgres at 127.0.0.1:5432, database `test`: {failures:?}");
    })
    .await
}

/// Runs `body` with a builder on a fresh Postgres schema, dropped afterwards.
pub(crate) async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(TestServerBuilder) -> Fut,
    Fut: Future<Output = ()>,
{
    in_postgres_schema(|url, schema| body(TestServer::builder().postgres(url, &schema))).await;
}

/// Runs `body` with the Postgres URL and a fresh schema name; the schema
/// is dropped afterwards.
pub(crate) async fn in_postgres_schema<F, Fut>(body: F)
where
    F: FnOnce(&'static str, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let url = postgres_url().await;
    let schema = format!("tollgate_server_test_{}", uuid::Uuid::new_v4().simple());
    let outcome = AssertUnwindSafe(body(url, schema.clone()))
        .catch_unwind()
        .await;
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Polls `check` until it holds, for at most five seconds.
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} never happened");
}

pub(crate) fn kid(token: &str) -> String {
    let (header, _) = tollgate_core::jws::dangerous::insecure_decode(token).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

pub(crate) async fn instances_converge(builder: TestServerBuilder) {
    let a = Api::with(builder).await;
    let b = Api {
        server: a.server.another_instance().await,
        http: reqwest::Client::new(),
    };
    let introspector = a.client("rs-multi", &["introspect"]).await;

    // A session started at A is valid at B; its logout at A reaches B.
    let login = a.user("multi@example.com").await;
    let access = login.str("access_token");
    assert!(b.is_active(&introspector, &access).await);
    b.get("/v1/auth/me", Some(&access)).await.expect(200, None);

    // B's revocation stream sees A's revocations.
    let stream = b
        .http
        .get(b.url("/v1/revocations/stream"))
        .basic_auth(&introspector.0, Some(&introspector.1))
        .send()
        .await
        .unwrap();
    let mut events = stream.bytes_stream();

    a.post_empty("/v1/auth/logout", Some(&access))
        .await
        .expect(204, None);
    eventually("B learning of A's logout", || async {
        b.introspect(&introspector, &access).await.text == r#"{"active":false}"#
    })
    .await;
    b.get("/v1/auth/me", Some(&access))
        .await
        .expect(401, Some("invalid_token"));
    let sid = tollgate_core::jws::dangerous::insecure_decode(&access)
        .unwrap()
        .1["sid"]
        .clone();
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains(sid.as_str().unwrap()) {
            let chunk = events.next().await.unwrap().unwrap();
            seen.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .expect("B's revocation stream never carried A's logout");

    // A key rotated through A signs at B within seconds; B keeps
    // accepting tokens of the old key.
    let old = b
        .login("multi@example.com", PASSWORD)
        .await
        .str("access_token");
    let admin = a.admin_token().await;
    let new_kid = a
        .post_empty("/v1/admin/keys/rotate", Some(&admin))
        .await
        .expect(200, None)
        .str("kid");
    eventually("B signing with A's new key", || async {
        kid(&b
            .login("multi@example.com", PASSWORD)
            .await
            .str("access_token"))
            == new_kid
    })
    .await;
    assert!(b.is_active(&introspector, &old).await);
    assert!(a.is_active(&introspector, &old).await);

    // Disabling a user at B kills its tokens at A.
    let fresh = a
        .login("multi@example.com", PASSWORD)
        .await
        .str("access_token");
    let id = a.get("/v1/auth/me", Some(&fresh)).await.str("sub");
    b.send_json(
        reqwest::Method::PATCH,
        &format!("/v1/admin/users/{id}"),
        Some(&admin),
        &json!({"disabled": true}),
    )
    .await
    .expect(200, None);
    eventually("A learning of B's disable", || async {
        a.introspect(&introspector, &fresh).await.text == r#"{"active":false}"#
    })
    .await;
}

async fn refresh_once_across_instances(builder: TestServerBuilder) {
    // Without the reuse grace: within it every loser would be a retry that
    // gets the winner's successor (the store suite covers that race).
    let a = Api::with(builder.configure(|c| c.refresh_reuse_grace = 0)).await;
    let b = Api {
        server: a.server.another_instance().await,
        http: reqwest::Client::new(),
    };
    let token = a.user("race-multi@example.com").await.str("refresh_token");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let http = a.http.clone();
        let url = if i % 2 == 0 {
            a.url("/oauth/token")
        } else {
            b.url("/oauth/token")
        };
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .form(&[("grant_type", "refresh_token"), ("refresh_token", &token)])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn instances_on_one_sqlite_file_converge() {
    instances_converge(TestServer::builder()).await;
}

#[tokio::test]
async fn instances_on_one_postgres_schema_converge() {
    on_postgres(instances_converge).await;
}

#[tokio::test]
async fn sixteen_parallel_refreshes_across_two_sqlite_instances_give_one_success() {
    refresh_once_across_instances(TestServer::builder()).await;
}

#[tokio::test]
async fn sixteen_parallel_refreshes_across_two_postgres_instances_give_one_success() {
    on_postgres(refresh_once_across_instances).await;
}
