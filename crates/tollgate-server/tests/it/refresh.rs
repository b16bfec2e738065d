//! Refresh rotation, reuse detection and exactly-once rotation under
//! concurrency (RFC 9700 §4.14).

use crate::common::Api;
use serde_json::json;
use tollgate_server::testkit::TestServer;

#[tokio::test]
async fn rotation_gives_new_tokens_and_reuse_revokes_the_whole_session() {
    // Reuse detection without the grace (see the grace's own tests below).
    let api = Api::with(TestServer::builder().configure(|c| c.refresh_reuse_grace = 0)).await;
    let introspector = api.client("rs-rotate", &["introspect"]).await;
    let login = api.user("rotate@example.com").await;
    let first_access = login.str("access_token");
    let a = login.str("refresh_token");
    let rotated = api
        .post_json("/v1/auth/refresh", None, &json!({"refresh_token": a}))
        .await;
    rotated.expect(200, None);
    assert_eq!(rotated.header("cache-control"), "no-store");
    let b = rotated.str("refresh_token");
    let second_access = rotated.str("access_token");
    assert_ne!(a, b);
    assert!(b.starts_with("tgr_"));
    assert!(api.is_active(&introspector, &second_access).await);
    assert!(api.is_active(&introspector, &b).await);
    assert!(
        !api.is_active(&introspector, &a).await,
        "a used refresh token is inactive"
    );

    // A is presented again: reuse. The answer is invalid_grant, and B and
    // every access token of the session die with it.
    api.post_json("/v1/auth/refresh", None, &json!({"refresh_token": a}))
        .await
        .expect(400, Some("invalid_grant"));
    api.post_json("/v1/auth/refresh", None, &json!({"refresh_token": b}))
        .await
        .expect(400, Some("invalid_grant"));
    assert!(!api.is_active(&introspector, &first_access).await);
    assert!(!api.is_active(&introspector, &second_access).await);
    api.get("/v1/auth/me", Some(&second_access))
        .await
        .expect(401, Some("invalid_token"));
    // Other sessions of the same user are untouched.
    let other = api
        .login("rotate@example.com", crate::common::PASSWORD)
        .await;
    api.get("/v1/auth/me", Some(&other.str("access_token")))
        .await
        .expect(200, None);
}

#[tokio::test]
async fn sixteen_parallel_refreshes_of_one_token_give_exactly_one_success() {
    // Without the reuse grace; with it, see the next test.
    let api = Api::with(TestServer::builder().configure(|c| c.refresh_reuse_grace = 0)).await;
    let login = api.user("race@example.com").await;
    let token = login.str("refresh_token");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let http = api.http.clone();
        let url = api.url("/oauth/token");
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

/// With the reuse grace (the default), sixteen parallel refreshes of one
/// token rotate it once: every answer is 200 with the one successor.
#[tokio::test]
async fn sixteen_parallel_refreshes_within_the_grace_share_one_successor() {
    let api = Api::start().await;
    let token = api
        .user("race-grace@example.com")
        .await
        .str("refresh_token");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let http = api.http.clone();
        let url = api.url("/oauth/token");
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let answer = http
                .post(url)
                .form(&[("grant_type", "refresh_token"), ("refresh_token", &token)])
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status().as_u16(), 200);
            let body: serde_json::Value = answer.json().await.unwrap();
            body["refresh_token"].as_str().unwrap().to_owned()
        }));
    }
    let mut successors = std::collections::BTreeSet::new();
    for task in tasks {
        successors.insert(task.await.unwrap());
    }
    assert_eq!(successors.len(), 1, "{successors:?}");
    let successor = successors.pop_first().unwrap();
    api.post_json(
        "/v1/auth/refresh",
        None,
        &json!({"refresh_token": successor}),
    )
    .await
    .expect(200, None);
}

#[tokio::test]
async fn refresh_tokens_expire_and_disabled_users_cannot_refresh() {
    let api = Api::start().await;
    let login = api.user("expire@example.com").await;
    let refresh = login.str("refresh_token");
    api.server.clock().advance(601);
    api.post_json("/v1/auth/refresh", None, &json!({"refresh_token": refresh}))
        .await
        .expect(400, Some("invalid_grant"));

    let login = api
        .login("expire@example.com", crate::common::PASSWORD)
        .await;
    let me = api
        .get("/v1/auth/me", Some(&login.str("access_token")))
        .await;
    api.server.disable_in_store(&me.str("sub")).await;
    api.post_json(
        "/v1/auth/refresh",
        None,
        &json!({"refresh_token": login.str("refresh_token")}),
    )
    .await
    .expect(400, Some("invalid_grant"));
}

#[tokio::test]
async fn refresh_reflects_plan_and_role_changes() {
    let api = Api::start().await;
    let admin = api.admin_token().await;
    let login = api.user("upgrade@example.com").await;
    let me = api
        .get("/v1/auth/me", Some(&login.str("access_token")))
        .await;
    let id = me.str("sub");
    api.send_json(
        reqwest::Method::PATCH,
        &format!("/v1/admin/users/{id}"),
        Some(&admin),
        &json!({"plan": "pro", "roles": ["support"]}),
    )
    .await
    .expect(200, None);
    let rotated = api
        .post_json(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": login.str("refresh_token")}),
        )
        .await;
    let me = api
        .get("/v1/auth/me", Some(&rotated.str("access_token")))
        .await;
    assert_eq!(me.body["plan"], "pro");
    assert_eq!(me.body["roles"], json!(["support"]));
    assert!(
        me.body["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("tool:web_browse"))
    );
}

/// Issue 9 item 6: the answer to a refresh is lost and the client retries
/// with the same token. Within the reuse grace (default 10 s) it gets the
/// same successor and a fresh access token, on either door, and the session
/// lives on; past the grace, or once the successor was used, presenting it
/// again is reuse and ends the session.
#[tokio::test]
async fn a_retried_refresh_within_the_grace_keeps_the_session_and_outside_it_ends_it() {
    use tollgate_server::Clock;
    let api = Api::with(TestServer::builder().clock(Clock::manual(Clock::system_now()))).await;
    assert_eq!(api.server.config().refresh_reuse_grace, 10, "the default");
    let login = api.user("retry@example.com").await;
    let a = login.str("refresh_token");
    let b = api
        .post_json("/v1/auth/refresh", None, &json!({"refresh_token": a}))
        .await
        .expect(200, None)
        .str("refresh_token");

    // The answer was lost: the retry, 9 s later, gets B again.
    api.server.clock().advance(9);
    let retried = api
        .post_json("/v1/auth/refresh", None, &json!({"refresh_token": a}))
        .await;
    retried.expect(200, None);
    assert_eq!(retried.header("cache-control"), "no-store");
    assert_eq!(retried.str("refresh_token"), b, "the same successor");
    api.get("/v1/auth/me", Some(&retried.str("access_token")))
        .await
        .expect(200, None);
    let retried = api
        .post_form(
            "/oauth/token",
            None,
            &[("grant_type", "refresh_token"), ("refresh_token", &a)],
        )
        .await;
    retried.expect(200, None);
    assert_eq!(retried.str("refresh_token"), b);
    let access = retried.str("access_token");

    // B rotates as usual; the chain did not grow.
    let c = api
        .post_json("/v1/auth/refresh", None, &json!({"refresh_token": b}))
        .await
        .expect(200, None)
        .str("refresh_token");
    // B was used: presenting A now, even within its grace, is reuse.
    api.post_json("/v1/auth/refresh", None, &json!({"refresh_token": a}))
        .await
        .expect(400, Some("invalid_grant"));
    api.post_json("/v1/auth/refresh", None, &json!({"refresh_token": c}))
        .await
        .expect(400, Some("invalid_grant"));
    api.get("/v1/auth/me", Some(&access))
        .await
        .expect(401, Some("invalid_token"));

    // Past the grace: reuse, as without one.
    let login = api
        .login("retry@example.com", crate::common::PASSWORD)
        .await;
    let a = login.str("refresh_token");
    let b = api
        .post_json("/v1/auth/refresh", None, &json!({"refresh_token": a}))
        .await
        .expect(200, None)
        .str("refresh_token");
    api.server.clock().advance(10);
    api.post_json("/v1/auth/refresh", None, &json!({"refresh_token": a}))
        .await
        .expect(400, Some("invalid_grant"));
    api.post_json("/v1/auth/refresh", None, &json!({"refresh_token": b}))
        .await
        .expect(400, Some("invalid_grant"));
}

/// `TOLLGATE_REFRESH_REUSE_GRACE=0` turns the grace off: an immediate retry
/// is reuse.
#[tokio::test]
async fn a_grace_of_zero_makes_every_retry_reuse() {
    let api = Api::with(TestServer::builder().configure(|c| c.refresh_reuse_grace = 0)).await;
    let a = api.user("nograce@example.com").await.str("refresh_token");
    let b = api
        .post_json("/v1/auth/refresh", None, &json!({"refresh_token": a}))
        .await
        .expect(200, None)
        .str("refresh_token");
    api.post_json("/v1/auth/refresh", None, &json!({"refresh_token": a}))
        .await
        .expect(400, Some("invalid_grant"));
    api.post_json("/v1/auth/refresh", None, &json!({"refresh_token": b}))
        .await
        .expect(400, Some("invalid_grant"));
}
