//! The scaled-out deployment: instances on one Postgres schema and one
//! Redis (127.0.0.1:6379, or `TOLLGATE_TEST_REDIS_URL`). Each test has a key
//! prefix of its own and deletes every key under it at the end.
//!
//! Redis only says "poll the store now": the tests prove the notice path by
//! giving the second instance a poll interval of an hour, so that only a
//! notice can explain how it learns of the first one's changes; and they
//! prove the fallback by pointing an instance at a closed port, or cutting
//! Redis under it with a proxy.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::net::TcpListener;
use tollgate_server::Clock;
use tollgate_server::testkit::TestServer;

use crate::common::{Api, PASSWORD};
use crate::instances::{eventually, instances_converge, kid, on_postgres};
use crate::proxy::Proxy;

/// Long enough that nothing in a test happens by polling.
const NEVER: Duration = Duration::from_secs(3600);

pub(crate) fn redis_url() -> String {
    std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn redis() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis_url()).unwrap();
    client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|error| panic!("these tests need Redis at {}: {error}", redis_url()))
}

/// Every key under `prefix`.
pub(crate) async fn keys_under(prefix: &str) -> Vec<String> {
    let mut conn = redis().await;
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// Runs `body` with a fresh key prefix, then deletes every key under it.
pub(crate) async fn with_redis_prefix<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let prefix = format!("tollgate-test:{}", uuid::Uuid::new_v4().simple());
    let outcome = AssertUnwindSafe(body(prefix.clone())).catch_unwind().await;
    let keys = keys_under(&prefix).await;
    if !keys.is_empty() {
        let mut conn = redis().await;
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Waits until readiness reports Redis as `state` (for at most 30 s:
/// reconnection backs off up to 5 s between attempts).
pub(crate) async fn redis_readiness(api: &Api, state: &str) {
    for _ in 0..300 {
        if api.get("/readyz", None).await.body["checks"]["redis"] == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("readiness never reported Redis {state}");
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A second instance that never polls the store on its own.
async fn deaf_instance(a: &Api) -> Api {
    Api {
        server: a
            .server
            .another_instance_builder()
            .poll_interval(NEVER)
            .key_reload_interval(NEVER)
            .start()
            .await,
        http: reqwest::Client::new(),
    }
}

async fn session_id(token: &str) -> String {
    tollgate_core::jws::dangerous::insecure_decode(token)
        .unwrap()
        .1["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn instances_on_postgres_and_redis_converge() {
    with_redis_prefix(|prefix| async move {
        on_postgres(|builder| instances_converge(builder.redis(&redis_url(), &prefix))).await;
    })
    .await;
}

#[tokio::test]
async fn only_a_redis_notice_explains_how_a_deaf_instance_learns_of_a_logout_and_a_rotation() {
    with_redis_prefix(|prefix| async move {
        on_postgres(|builder| async move {
            let a = Api::with(builder.redis(&redis_url(), &prefix)).await;
            let b = deaf_instance(&a).await;
            redis_readiness(&a, "ok").await;
            redis_readiness(&b, "ok").await;
            let introspector = a.client("rs-notice", &["introspect"]).await;

            let access = a.user("notice@example.com").await.str("access_token");
            assert!(b.is_active(&introspector, &access).await);
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
            eventually("B learning of A's logout from a notice", || async {
                !b.is_active(&introspector, &access).await
            })
            .await;
            let sid = session_id(&access).await;
            let mut seen = String::new();
            tokio::time::timeout(Duration::from_secs(10), async {
                while !seen.contains(&sid) {
                    let chunk = events.next().await.unwrap().unwrap();
                    seen.push_str(std::str::from_utf8(&chunk).unwrap());
                }
            })
            .await
            .expect("B's revocation stream never carried A's logout");

            let admin = a.admin_token().await;
            let new_kid = a
                .post_empty("/v1/admin/keys/rotate", Some(&admin))
                .await
                .expect(200, None)
                .str("kid");
            eventually("B signing with A's new key after a notice", || async {
                kid(&b
                    .login("notice@example.com", PASSWORD)
                    .await
                    .str("access_token"))
                    == new_kid
            })
            .await;

            let metrics = b.get("/metrics", None).await.text;
            assert!(metric(&metrics, "tollgate_redis_notices_sent_total") >= 2.0);
            assert!(metric(&metrics, "tollgate_redis_notices_received_total") >= 2.0);
        })
        .await;
    })
    .await;
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn with_redis_unreachable_an_instance_serves_polls_and_stays_ready() {
    let url = format!("redis://127.0.0.1:{}", closed_port().await);
    let api = Api::with(TestServer::builder().redis(&url, "tollgate-test:unreachable")).await;
    let ready = api.get("/readyz", None).await;
    ready.expect(200, None);
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["checks"]["redis"], "down");
    assert_eq!(ready.body["checks"]["store"], "ok");
    assert_eq!(ready.body["checks"]["revocations"], "ok");
    api.get("/healthz", None).await.expect(200, None);

    // Everything works; another instance learns by polling the store.
    let access = api.user("no-redis@example.com").await.str("access_token");
    api.get("/v1/auth/me", Some(&access))
        .await
        .expect(200, None);
    let b = Api {
        server: api.server.another_instance().await,
        http: reqwest::Client::new(),
    };
    let introspector = api.client("rs-no-redis", &["introspect"]).await;
    assert!(b.is_active(&introspector, &access).await);
    api.post_empty("/v1/auth/logout", Some(&access))
        .await
        .expect(204, None);
    eventually("B learning of the logout by polling", || async {
        !b.is_active(&introspector, &access).await
    })
    .await;
}

/// A Redis server of one test's own (`redis-server` on a free port, no
/// persistence), so that the test can stop and start it. Killed on drop.
struct PrivateRedis {
    port: u16,
    child: Option<tokio::process::Child>,
}

impl PrivateRedis {
    async fn start() -> PrivateRedis {
        let mut redis = PrivateRedis {
            port: closed_port().await,
            child: None,
        };
        redis.restart().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, on the same port) and waits until it answers.
    async fn restart(&mut self) {
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("this test needs redis-server on the PATH");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the private redis-server on port {} never answered",
            self.port
        );
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

/// Issue 9, item 9: Redis going down is reported by `/readyz`, which stays
/// 200 (every instance works without Redis); only the store makes it 503.
#[tokio::test]
async fn issue_9_readiness_reports_a_stopped_redis_and_stays_200() {
    let mut redis = PrivateRedis::start().await;
    let api = Api::with(TestServer::builder().redis(&redis.url(), "tollgate-test:private")).await;
    redis_readiness(&api, "ok").await;
    api.get("/readyz", None).await.expect(200, None);

    redis.stop().await;
    redis_readiness(&api, "down").await;
    let ready = api.get("/readyz", None).await;
    ready.expect(200, None);
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["checks"]["store"], "ok");
    assert_eq!(ready.body["checks"]["revocations"], "ok");
    // And it does serve: a user registers, logs in and is known.
    let access = api.user("redis-down@example.com").await.str("access_token");
    api.get("/v1/auth/me", Some(&access))
        .await
        .expect(200, None);

    redis.restart().await;
    redis_readiness(&api, "ok").await;

    // What does stop it from serving correctly is still a 503, as soon as
    // the store's probe has noticed (readiness reports the last probe, it
    // does not query the database itself: issue 16).
    api.server.cut_store().await;
    crate::instances::eventually("readiness reporting the store down", || async {
        let ready = api.get("/readyz", None).await;
        ready.status == 503 && ready.body["checks"]["store"] == "down"
    })
    .await;
    redis.stop().await;
}

#[tokio::test]
async fn instances_on_sqlite_converge_by_polling_while_redis_is_unreachable() {
    let url = format!("redis://127.0.0.1:{}", closed_port().await);
    instances_converge(TestServer::builder().redis(&url, "tollgate-test:unreachable")).await;
}

fn redis_proxy_url(proxy: &Proxy) -> String {
    format!("redis://127.0.0.1:{}", proxy.port())
}

async fn redis_proxy() -> Proxy {
    Proxy::start(
        redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned(),
    )
    .await
}

#[tokio::test]
async fn after_redis_comes_back_instances_resubscribe_and_notices_flow_again() {
    with_redis_prefix(|prefix| async move {
        on_postgres(|builder| async move {
            let proxy = redis_proxy().await;
            let a = Api::with(builder.redis(&redis_proxy_url(&proxy), &prefix)).await;
            let b = deaf_instance(&a).await;
            redis_readiness(&b, "ok").await;
            let introspector = a.client("rs-comeback", &["introspect"]).await;
            let first = a.user("comeback@example.com").await.str("access_token");
            let second = a
                .login("comeback@example.com", PASSWORD)
                .await
                .str("access_token");

            proxy.cut();
            redis_readiness(&a, "down").await;
            redis_readiness(&b, "down").await;
            // A logout while Redis is away: its notice is lost, but B polls
            // once when it subscribes again.
            a.post_empty("/v1/auth/logout", Some(&first))
                .await
                .expect(204, None);
            assert!(b.is_active(&introspector, &second).await);

            proxy.restore().await;
            redis_readiness(&a, "ok").await;
            redis_readiness(&b, "ok").await;
            eventually("B catching up after resubscribing", || async {
                !b.is_active(&introspector, &first).await
            })
            .await;
            a.post_empty("/v1/auth/logout", Some(&second))
                .await
                .expect(204, None);
            eventually("B learning of a logout after Redis came back", || async {
                !b.is_active(&introspector, &second).await
            })
            .await;
        })
        .await;
    })
    .await;
}

fn credentials(email: &str, password: &str) -> serde_json::Value {
    serde_json::json!({"email": email, "password": password})
}

async fn login_status(api: &Api, email: &str, password: &str) -> u16 {
    api.post_json("/v1/auth/login", None, &credentials(email, password))
        .await
        .status
        .as_u16()
}

#[tokio::test]
async fn login_failures_are_counted_across_instances_through_redis() {
    with_redis_prefix(|prefix| async move {
        let clock = Clock::manual(Clock::system_now());
        let a = Api::with(
            TestServer::builder()
                .clock(clock)
                .redis(&redis_url(), &prefix),
        )
        .await;
        let b = Api {
            server: a.server.another_instance().await,
            http: reqwest::Client::new(),
        };
        let email = "shared-limit@example.com";
        a.user(email).await;
        // Five failures, three at A and two at B: neither instance alone
        // reaches the threshold of five.
        for i in 0..5 {
            let api = if i % 2 == 0 { &a } else { &b };
            assert_eq!(login_status(api, email, "wrong password!").await, 401);
        }
        for api in [&a, &b] {
            let limited = api
                .post_json("/v1/auth/login", None, &credentials(email, PASSWORD))
                .await;
            limited.expect(429, Some("too_many_attempts"));
            assert_eq!(limited.header("retry-after"), "1");
        }
        // Redis holds digests, never the e-mail or the address.
        let keys = keys_under(&prefix).await;
        assert!(
            keys.iter().any(|k| k.contains(":failures:account:")),
            "{keys:?}"
        );
        assert!(
            keys.iter().any(|k| k.contains(":failures:address:")),
            "{keys:?}"
        );
        assert!(
            keys.iter()
                .all(|k| !k.contains("shared-limit") && !k.contains("127.0.0.1")),
            "{keys:?}"
        );

        // The back-off ends; a success at B clears the count for A too.
        a.server.clock().advance(1);
        b.login(email, PASSWORD).await;
        assert_eq!(login_status(&a, email, "wrong password!").await, 401);
        a.login(email, PASSWORD).await;
    })
    .await;
}

#[tokio::test]
async fn with_redis_unreachable_login_failures_are_still_limited_in_process() {
    let url = format!("redis://127.0.0.1:{}", closed_port().await);
    let api = Api::with(
        TestServer::builder()
            .clock(Clock::manual(Clock::system_now()))
            .redis(&url, "tollgate-test:unreachable"),
    )
    .await;
    let email = "fallback-limit@example.com";
    api.user(email).await;
    for _ in 0..5 {
        assert_eq!(login_status(&api, email, "wrong password!").await, 401);
    }
    api.post_json("/v1/auth/login", None, &credentials(email, PASSWORD))
        .await
        .expect(429, Some("too_many_attempts"));
}
