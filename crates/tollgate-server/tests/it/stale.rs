//! Issue 16 item 1: an instance whose revocation view is stale never says
//! yes to a bearer token it cannot confirm. Two instances share one
//! Postgres schema; B reaches the database through a proxy that the test
//! cuts (the port closes, so B's pool keeps retrying: no store call fails
//! quickly). A logs a token out during the cut; B cannot know, so every
//! route of B that authenticates a bearer token answers 503 instead of
//! accepting it, and once the proxy is back B refuses the token for good.

use std::str::FromStr;

use reqwest::Method;
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use tollgate_server::testkit::TestServer;

use crate::common::{Answer, Api};
use crate::instances::{eventually, in_postgres_schema};
use crate::proxy::Proxy;

/// B's calls that authenticate a bearer token, with the token each uses.
async fn bearer_calls(
    b: &Api,
    user: &str,
    admin: &str,
    service: &str,
) -> Vec<(&'static str, Answer)> {
    vec![
        ("GET /v1/auth/me", b.get("/v1/auth/me", Some(user)).await),
        ("GET /v1/sessions", b.get("/v1/sessions", Some(user)).await),
        (
            "POST /v1/auth/logout",
            b.post_empty("/v1/auth/logout", Some(user)).await,
        ),
        (
            "GET /v1/admin/keys (admin user token)",
            b.get("/v1/admin/keys", Some(admin)).await,
        ),
        (
            "PATCH /v1/admin/users (admin user token)",
            b.send_json(
                Method::PATCH,
                "/v1/admin/users/no-such-user",
                Some(admin),
                &json!({"plan": "pro"}),
            )
            .await,
        ),
        (
            "GET /v1/revocations (service token)",
            b.get("/v1/revocations?after=0", Some(service)).await,
        ),
    ]
}

#[tokio::test]
async fn issue_16_a_stale_instance_answers_503_to_bearer_tokens_it_cannot_confirm() {
    in_postgres_schema(|url, schema| async move {
        let options = PgConnectOptions::from_str(url).unwrap();
        let upstream = format!("{}:{}", options.get_host(), options.get_port());
        let proxy = Proxy::start(upstream.clone()).await;
        let proxied_url = url.replacen(&upstream, &format!("127.0.0.1:{}", proxy.port()), 1);
        assert_ne!(proxied_url, url, "the test URL names {upstream}");

        let a = Api::with(TestServer::builder().postgres(url, &schema)).await;
        let config = a.server.config().clone();
        let b = Api::with(
            TestServer::builder()
                .postgres(&proxied_url, &schema)
                .configure(move |c| {
                    let bind = c.bind;
                    *c = config;
                    c.bind = bind;
                }),
        )
        .await;
        let user = a.user("stale@example.com").await.str("access_token");
        let admin = a.admin_token().await;
        let (id, secret) = a.client("rs-stale", &["introspect"]).await;
        let service = a.service_token(&id, &secret).await;
        let introspector = (id, secret);
        b.get("/v1/auth/me", Some(&user)).await.expect(200, None);
        b.get("/v1/admin/keys", Some(&admin))
            .await
            .expect(200, None);

        proxy.cut();
        // A revokes everything the test holds; B cannot learn of it.
        a.post_empty("/v1/auth/logout", Some(&user))
            .await
            .expect(204, None);
        let admin_id = a.get("/v1/auth/me", Some(&admin)).await.str("sub");
        a.post_empty(&format!("/v1/admin/users/{admin_id}/revoke"), Some(&admin))
            .await
            .expect(204, None);
        a.post_form(
            "/oauth/revoke",
            Some((&introspector.0, &introspector.1)),
            &[("token", &service)],
        )
        .await
        .expect(200, None);

        // B notices that it cannot read the store (a read that does not
        // come back is as good as a failed one), and from then on says no
        // yes about these tokens. Before the fix, `/v1/auth/me` kept
        // answering 200 for the whole outage.
        eventually("B answering 503 to the revoked token", || async {
            b.get("/v1/auth/me", Some(&user)).await.status == 503
        })
        .await;
        for (call, answer) in bearer_calls(&b, &user, &admin, &service).await {
            assert_eq!(answer.status, 503, "{call}: {}", answer.text);
            assert_eq!(answer.body["error"], "temporarily_unavailable", "{call}");
            assert_eq!(answer.header("retry-after"), "1", "{call}");
        }
        // A refusal is certain even when stale: a token that is not one is
        // still a 401.
        b.get("/v1/auth/me", Some("not-a-token"))
            .await
            .expect(401, Some("invalid_token"));
        let ready = b.get("/readyz", None).await;
        ready.expect(503, None);
        assert_eq!(ready.body["checks"]["revocations"], "stale");
        let metrics = b.get("/metrics", None).await.text;
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("tollgate_stale_refusals_total")),
            "{metrics}"
        );

        // The database is back: B reads A's revocations and refuses for
        // good; it never accepted the revoked tokens in between.
        proxy.restore().await;
        eventually("B reading the store again", || async {
            b.get("/v1/auth/me", Some(&user)).await.status != 503
        })
        .await;
        for (call, answer) in bearer_calls(&b, &user, &admin, &service).await {
            assert_eq!(answer.status, 401, "{call}: {}", answer.text);
            assert_eq!(answer.body["error"], "invalid_token", "{call}");
        }
        let fresh = a
            .login("stale@example.com", crate::common::PASSWORD)
            .await
            .str("access_token");
        // A call on a connection the cut broke may mark the store down
        // once more; the probe brings it back within a second (issue 16).
        eventually("B accepting a fresh token", || async {
            b.get("/v1/auth/me", Some(&fresh)).await.status == 200
        })
        .await;
    })
    .await;
}
