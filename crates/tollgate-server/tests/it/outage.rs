//! The database goes away: revoking, introspecting and bearer routes answer
//! 503 (never a 200 before the revocation is durable, never a false
//! `active`, never a token accepted that may be revoked), readiness
//! says so, liveness does not. A misconfigured store is a 503 too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::{Api, PASSWORD};
use tollgate_server::testkit::{StoreHook, TestServer};
use tollgate_store::StoreError;

#[tokio::test]
async fn with_the_store_cut_revoke_and_introspect_answer_503() {
    let api = Api::start().await;
    let introspector = api.client("rs-outage", &["introspect"]).await;
    let login = api.user("outage@example.com").await;
    let access = login.str("access_token");
    let refresh = login.str("refresh_token");
    assert!(api.is_active(&introspector, &access).await);

    api.server.cut_store().await;

    // Revocation cannot be made durable: 503, and the token is not revoked
    // in memory either.
    let revoke = api
        .post_form("/oauth/revoke", None, &[("token", &access)])
        .await;
    revoke.expect(503, Some("temporarily_unavailable"));
    assert_eq!(revoke.header("retry-after"), "1");
    api.post_form("/oauth/revoke", None, &[("token", &refresh)])
        .await
        .expect(503, Some("temporarily_unavailable"));
    api.post_empty("/v1/auth/logout", Some(&access))
        .await
        .expect(503, Some("temporarily_unavailable"));

    // Readiness reports the store down; the revocation view goes stale
    // within a poll interval, and introspection then refuses to guess.
    let mut ready = None;
    for _ in 0..100 {
        let answer = api.get("/readyz", None).await;
        if answer.status == 503 && answer.body["checks"]["revocations"] == "stale" {
            ready = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = ready.expect("readiness never reported the outage");
    assert_eq!(ready.body["checks"]["store"], "down");
    let introspection = api.introspect(&introspector, &access).await;
    // Client authentication needs the store too: either way, no answer
    // about the token.
    assert_eq!(introspection.status.as_u16(), 503, "{}", introspection.text);
    assert_eq!(introspection.body["error"], "temporarily_unavailable");
    assert!(introspection.body.get("active").is_none());

    // Logins and refreshes fail cleanly; liveness is unaffected.
    api.post_json(
        "/v1/auth/login",
        None,
        &serde_json::json!({"email": "outage@example.com", "password": PASSWORD}),
    )
    .await
    .expect(503, Some("temporarily_unavailable"));
    api.post_json(
        "/v1/auth/refresh",
        None,
        &serde_json::json!({"refresh_token": refresh}),
    )
    .await
    .expect(503, Some("temporarily_unavailable"));
    api.get("/healthz", None).await.expect(200, None);
    // A stale view cannot confirm that the token is not revoked: bearer
    // routes refuse to guess too (issue 16), while a token that is not one
    // is still refused outright.
    api.get("/v1/auth/me", Some(&access))
        .await
        .expect(503, Some("temporarily_unavailable"));
    api.get("/v1/auth/me", Some("not-a-token"))
        .await
        .expect(401, Some("invalid_token"));
}

#[tokio::test]
async fn a_misconfigured_store_answers_503_not_500() {
    // A real database cannot be made to refuse its configuration on demand
    // in the middle of a run, so a hook answers what sqlx's configuration
    // errors become (`StoreError::Config`) for the calls of a login and of
    // client authentication.
    let misconfigured = Arc::new(AtomicBool::new(false));
    let hook: StoreHook = {
        let misconfigured = misconfigured.clone();
        Arc::new(move |method, _| {
            let refuse = misconfigured.load(Ordering::SeqCst)
                && matches!(method, "find_user_by_email" | "find_client");
            Box::pin(async move {
                if refuse {
                    Err(StoreError::Config("synchronous is not FULL".to_owned()))
                } else {
                    Ok(())
                }
            })
        })
    };
    let api = Api::with(TestServer::builder().store_hook(hook)).await;
    let (id, secret) = api.client("svc-misconfigured", &[]).await;
    api.login("admin@tollgate.test", PASSWORD).await;
    misconfigured.store(true, Ordering::SeqCst);

    let login = api
        .post_json(
            "/v1/auth/login",
            None,
            &serde_json::json!({"email": "admin@tollgate.test", "password": PASSWORD}),
        )
        .await;
    login.expect(503, Some("temporarily_unavailable"));
    assert_eq!(login.header("retry-after"), "1");
    assert!(!login.text.contains("synchronous"), "{}", login.text);
    api.post_form(
        "/oauth/token",
        Some((&id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await
    .expect(503, Some("temporarily_unavailable"));

    misconfigured.store(false, Ordering::SeqCst);
    api.login("admin@tollgate.test", PASSWORD).await;
}
