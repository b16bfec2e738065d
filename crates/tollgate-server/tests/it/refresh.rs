//! Refresh rotation, reuse detection and exactly-once rotation under
//! concurrency (RFC 9700 §4.14).

use crate::common::Api;
use serde_json::json;

#[tokio::test]
async fn rotation_gives_new_tokens_and_reuse_revokes_the_whole_session() {
    let api = Api::start().await;
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
    let api = Api::start().await;
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
