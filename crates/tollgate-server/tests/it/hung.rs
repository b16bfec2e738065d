//! Issue 16, item 2: a hung database does not hang the service. The server
//! reaches Postgres through a proxy that the test black-holes (connections
//! stay open, no byte goes through, nothing fails by itself). Readiness,
//! a login and an authenticated route then each answer 503 well before a
//! generous deadline (before the fix each waited on the database: the
//! readiness check and the login never came back), and service resumes once
//! the proxy heals.

use std::future::Future;
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use tollgate_server::testkit::TestServer;

use crate::common::{Api, PASSWORD};
use crate::instances::in_postgres_schema;
use crate::proxy::Proxy;

/// Far more than the 2 s store timeout; not a speed requirement, only "it
/// came back instead of hanging".
const DEADLINE: Duration = Duration::from_secs(6);

/// Runs one request, failing the test when it has not answered within
/// [`DEADLINE`].
async fn within_deadline<T>(what: &str, request: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let answer = tokio::time::timeout(DEADLINE, request)
        .await
        .unwrap_or_else(|_| panic!("{what} did not answer within {DEADLINE:?}"));
    assert!(
        started.elapsed() < DEADLINE,
        "{what} took {:?}",
        started.elapsed()
    );
    answer
}

/// Polls until `check` holds, for at most `limit`.
async fn until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within {limit:?}");
}

#[tokio::test]
async fn issue_16_with_postgres_black_holed_requests_answer_503_instead_of_hanging() {
    in_postgres_schema(|url, schema| async move {
        let options = PgConnectOptions::from_str(url).unwrap();
        let upstream = format!("{}:{}", options.get_host(), options.get_port());
        let proxy = Proxy::start(upstream.clone()).await;
        let proxied_url = url.replacen(&upstream, &format!("127.0.0.1:{}", proxy.port()), 1);
        assert_ne!(proxied_url, url, "the test URL names {upstream}");
        let api = Api::with(TestServer::builder().postgres(&proxied_url, &schema)).await;
        let email = "hung@example.com";
        let access = api.user(email).await.str("access_token");
        let admin = api.admin_token().await;
        api.get("/readyz", None).await.expect(200, None);
        api.get("/v1/auth/me", Some(&access))
            .await
            .expect(200, None);

        proxy.black_hole();

        // Readiness learns of it from the background probe and answers from
        // what it knows: each check comes back, and soon says 503.
        let black_holed = Instant::now();
        let mut ready = None;
        while black_holed.elapsed() < DEADLINE {
            let answer = within_deadline("GET /readyz", api.get("/readyz", None)).await;
            // The revocation view may go stale first (503 with the
            // store still "ok"): wait for the probe's verdict too.
            if answer.status == 503 && answer.body["checks"]["store"] == "down" {
                ready = Some(answer);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ready = ready.expect("/readyz never reported the hung database");
        assert_eq!(
            ready.body["checks"]["revocations"], "stale",
            "{}",
            ready.text
        );

        let login = within_deadline(
            "POST /v1/auth/login",
            api.post_json(
                "/v1/auth/login",
                None,
                &json!({"email": email, "password": PASSWORD}),
            ),
        )
        .await;
        login.expect(503, Some("temporarily_unavailable"));
        assert_eq!(login.header("retry-after"), "1");
        within_deadline("GET /v1/auth/me", api.get("/v1/auth/me", Some(&access)))
            .await
            .expect(503, Some("temporarily_unavailable"));
        within_deadline("GET /v1/sessions", api.get("/v1/sessions", Some(&access)))
            .await
            .expect(503, Some("temporarily_unavailable"));
        within_deadline(
            "GET /v1/admin/keys",
            api.get("/v1/admin/keys", Some(&admin)),
        )
        .await
        .expect(503, Some("temporarily_unavailable"));
        // Many at once: none queues behind the dead connections.
        let body = json!({"email": email, "password": PASSWORD});
        let many: Vec<_> = (0..20)
            .map(|_| api.post_json("/v1/auth/login", None, &body))
            .collect();
        let answers = within_deadline("20 logins at once", futures::future::join_all(many)).await;
        for answer in &answers {
            answer.expect(503, Some("temporarily_unavailable"));
        }
        api.get("/healthz", None).await.expect(200, None);
        let metrics = api.get("/metrics", None).await.text;
        assert!(
            metrics.lines().any(|l| l == "tollgate_store_up 0"),
            "{metrics}"
        );

        // The network heals: the probe reaches the database again, and
        // everything works as before.
        proxy.heal();
        until(
            "/readyz answering 200 again",
            Duration::from_secs(20),
            || async { api.get("/readyz", None).await.status == 200 },
        )
        .await;
        let fresh = api.login(email, PASSWORD).await;
        fresh.expect(200, None);
        api.get("/v1/auth/me", Some(&fresh.str("access_token")))
            .await
            .expect(200, None);
        api.get("/v1/auth/me", Some(&access))
            .await
            .expect(200, None);
        api.get("/v1/admin/keys", Some(&admin))
            .await
            .expect(200, None);
    })
    .await;
}
