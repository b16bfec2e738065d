//! Introspection (RFC 7662) and revocation (RFC 7009), and every way a
//! token dies: logout, session deletion, disabling, admin revoke.

use crate::common::{Api, PASSWORD};
use serde_json::json;
use tollgate_server::testkit::TestServer;

#[tokio::test]
async fn introspection_needs_an_authenticated_client_with_the_introspect_scope() {
    let api = Api::start().await;
    let (id, secret) = api.client("no-scope", &["read"]).await;
    let introspector = api.client("rs-1", &["introspect"]).await;
    let token = api.service_token(&id, &secret).await;
    api.post_form("/oauth/introspect", None, &[("token", &token)])
        .await
        .expect(401, Some("invalid_client"));
    api.post_form(
        "/oauth/introspect",
        Some((&introspector.0, "tgs_wrong")),
        &[("token", &token)],
    )
    .await
    .expect(401, Some("invalid_client"));
    api.post_form(
        "/oauth/introspect",
        Some((&id, &secret)),
        &[("token", &token)],
    )
    .await
    .expect(403, Some("insufficient_scope"));
    api.post_form(
        "/oauth/introspect",
        Some((&introspector.0, &introspector.1)),
        &[],
    )
    .await
    .expect(400, Some("invalid_request"));

    let active = api.introspect(&introspector, &token).await;
    active.expect(200, None);
    assert_eq!(active.header("cache-control"), "no-store");
    assert_eq!(active.body["active"], true);
    assert_eq!(active.body["token_type"], "service");
    assert_eq!(active.body["sub"], "no-scope");
    assert_eq!(active.body["client_id"], "no-scope");
    assert_eq!(active.body["iss"], api.server.issuer());
    let inactive = api.introspect(&introspector, "not a token").await;
    inactive.expect(200, None);
    assert_eq!(inactive.text, r#"{"active":false}"#);
    assert_eq!(inactive.header("cache-control"), "no-store");

    let login = api.user("intro@example.com").await;
    let user = api
        .introspect(&introspector, &login.str("access_token"))
        .await;
    assert_eq!(user.body["token_type"], "access");
    assert_eq!(user.body["username"], "intro@example.com");
    assert_eq!(user.body["plan"], "free");
    let refresh = api
        .introspect(&introspector, &login.str("refresh_token"))
        .await;
    assert_eq!(refresh.body["active"], true);
    assert_eq!(refresh.body["token_type"], "refresh");
    assert_eq!(refresh.body["client_id"], "tollgate");
}

#[tokio::test]
async fn introspection_is_rate_limited_per_client() {
    let api = Api::with(TestServer::builder().introspection_rate(2)).await;
    let introspector = api.client("busy", &["introspect"]).await;
    let calm = api.client("calm", &["introspect"]).await;
    let mut limited = None;
    for _ in 0..10 {
        let answer = api.introspect(&introspector, "x").await;
        if answer.status == 429 {
            limited = Some(answer);
            break;
        }
    }
    let limited = limited.expect("the busy client was never limited");
    limited.expect(429, Some("rate_limited"));
    assert!(limited.header("retry-after").parse::<u64>().unwrap() >= 1);
    assert!(limited.body["retry_after_ms"].as_u64().unwrap() > 0);
    // Another client is not affected.
    api.introspect(&calm, "x").await.expect(200, None);
}

#[tokio::test]
async fn revoking_answers_200_for_anything_and_kills_what_the_caller_may_kill() {
    let api = Api::start().await;
    let introspector = api.client("rs-2", &["introspect"]).await;
    let (a, a_secret) = api.client("svc-a2", &[]).await;
    let (b, b_secret) = api.client("svc-b2", &[]).await;
    let (root, root_secret) = api.client("revoker", &["revoke"]).await;

    // Unknown and malformed tokens: 200, nothing to do.
    for token in ["nonsense", "tgr_unknown", "a.b.c"] {
        let answer = api
            .post_form("/oauth/revoke", None, &[("token", token)])
            .await;
        answer.expect(200, None);
        assert_eq!(answer.header("cache-control"), "no-store");
    }
    api.post_form("/oauth/revoke", None, &[])
        .await
        .expect(400, Some("invalid_request"));
    api.post_form("/oauth/revoke", Some((&a, "tgs_wrong")), &[("token", "x")])
        .await
        .expect(401, Some("invalid_client"));

    // B cannot revoke A's token; A can; a `revoke` client can revoke anyone's.
    let token_a = api.service_token(&a, &a_secret).await;
    api.post_form(
        "/oauth/revoke",
        Some((&b, &b_secret)),
        &[("token", &token_a)],
    )
    .await
    .expect(200, None);
    assert!(api.is_active(&introspector, &token_a).await);
    api.post_form("/oauth/revoke", None, &[("token", &token_a)])
        .await
        .expect(200, None);
    assert!(
        api.is_active(&introspector, &token_a).await,
        "the public client may not revoke a service token"
    );
    api.post_form(
        "/oauth/revoke",
        Some((&a, &a_secret)),
        &[("token", &token_a), ("token_type_hint", "access_token")],
    )
    .await
    .expect(200, None);
    assert!(!api.is_active(&introspector, &token_a).await);
    let token_b = api.service_token(&b, &b_secret).await;
    api.post_form(
        "/oauth/revoke",
        Some((&root, &root_secret)),
        &[("token", &token_b)],
    )
    .await
    .expect(200, None);
    assert!(!api.is_active(&introspector, &token_b).await);

    // A user's access token: the holder revokes it without a secret; only
    // that token dies.
    let login = api.user("revoke@example.com").await;
    let access = login.str("access_token");
    let refresh = login.str("refresh_token");
    api.post_form(
        "/oauth/revoke",
        Some((&b, &b_secret)),
        &[("token", &access)],
    )
    .await
    .expect(200, None);
    assert!(
        api.is_active(&introspector, &access).await,
        "another client may not revoke it"
    );
    api.post_form(
        "/oauth/revoke",
        None,
        &[("token", &access), ("client_id", "tollgate")],
    )
    .await
    .expect(200, None);
    assert!(!api.is_active(&introspector, &access).await);
    // A refresh token: its whole session ends, access tokens included.
    let rotated = api
        .post_json("/v1/auth/refresh", None, &json!({"refresh_token": refresh}))
        .await;
    let access = rotated.str("access_token");
    let refresh = rotated.str("refresh_token");
    assert!(api.is_active(&introspector, &access).await);
    api.post_form(
        "/oauth/revoke",
        None,
        &[("token", &refresh), ("token_type_hint", "refresh_token")],
    )
    .await
    .expect(200, None);
    assert!(!api.is_active(&introspector, &access).await);
    assert!(!api.is_active(&introspector, &refresh).await);
    api.post_json("/v1/auth/refresh", None, &json!({"refresh_token": refresh}))
        .await
        .expect(400, Some("invalid_grant"));
}

#[tokio::test]
async fn logout_session_deletion_disable_and_admin_revoke_make_tokens_inactive() {
    let api = Api::start().await;
    let introspector = api.client("rs-3", &["introspect"]).await;
    let admin = api.admin_token().await;

    // Logout.
    let login = api.user("logout@example.com").await;
    let access = login.str("access_token");
    api.post_empty("/v1/auth/logout", Some(&access))
        .await
        .expect(204, None);
    assert!(!api.is_active(&introspector, &access).await);
    assert!(
        !api.is_active(&introspector, &login.str("refresh_token"))
            .await
    );
    api.get("/v1/auth/me", Some(&access))
        .await
        .expect(401, Some("invalid_token"));

    // Session deletion from another session of the same user.
    let first = api.login("logout@example.com", PASSWORD).await;
    let second = api.login("logout@example.com", PASSWORD).await;
    let first_access = first.str("access_token");
    let sid = api.get("/v1/auth/me", Some(&first_access)).await.str("sid");
    api.http
        .delete(api.url(&format!("/v1/sessions/{sid}")))
        .bearer_auth(second.str("access_token"))
        .send()
        .await
        .unwrap();
    assert!(!api.is_active(&introspector, &first_access).await);
    assert!(
        api.is_active(&introspector, &second.str("access_token"))
            .await
    );

    // Disable through the admin API.
    let login = api.user("disable@example.com").await;
    let access = login.str("access_token");
    let id = api.get("/v1/auth/me", Some(&access)).await.str("sub");
    let patched = api
        .send_json(
            reqwest::Method::PATCH,
            &format!("/v1/admin/users/{id}"),
            Some(&admin),
            &json!({"disabled": true}),
        )
        .await;
    patched.expect(200, None);
    assert_eq!(patched.body["disabled"], true);
    assert!(!api.is_active(&introspector, &access).await);
    assert!(
        !api.is_active(&introspector, &login.str("refresh_token"))
            .await
    );
    api.post_json(
        "/v1/auth/login",
        None,
        &json!({"email": "disable@example.com", "password": PASSWORD}),
    )
    .await
    .expect(401, Some("invalid_credentials"));

    // Admin revoke-all: old tokens die, the user can log in again.
    let login = api.user("revoked@example.com").await;
    let access = login.str("access_token");
    let id = api.get("/v1/auth/me", Some(&access)).await.str("sub");
    api.post_empty(&format!("/v1/admin/users/{id}/revoke"), Some(&admin))
        .await
        .expect(204, None);
    assert!(!api.is_active(&introspector, &access).await);
    api.post_json(
        "/v1/auth/refresh",
        None,
        &json!({"refresh_token": login.str("refresh_token")}),
    )
    .await
    .expect(400, Some("invalid_grant"));
    // Tokens issued from the next second on are good again.
    api.server.clock().advance(1);
    let fresh = api.login("revoked@example.com", PASSWORD).await;
    assert!(
        api.is_active(&introspector, &fresh.str("access_token"))
            .await
    );
    api.post_empty("/v1/admin/users/no-such-user/revoke", Some(&admin))
        .await
        .expect(404, Some("not_found"));
}
