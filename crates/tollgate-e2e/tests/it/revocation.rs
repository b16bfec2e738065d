//! Revocations at the token service reach a running backend through the
//! SDK's feed: logout, session deletion, admin revoke, disable, RFC 7009.

use reqwest::Method;
use serde_json::json;

use crate::support::{Backend, TokenService, until_status};

async fn stack() -> (TokenService, Backend) {
    let service = TokenService::start().await;
    let backend = Backend::start(&service, service.authenticator().build().await.unwrap()).await;
    backend.feed_live().await;
    (service, backend)
}

#[tokio::test]
async fn logout_is_refused_by_the_backend() {
    let (service, backend) = stack().await;
    let (_, token) = service.user("erin@example.com").await;
    assert_eq!(backend.get("/api/usage", &token).await.status, 200);
    let out = service
        .send(Method::POST, "/v1/auth/logout", &token, None)
        .await;
    assert!(out.status < 300, "{out:?}");
    let answer = until_status(&backend, "/api/usage", &token, 401).await;
    assert_eq!(answer.code(), "revoked");
}

#[tokio::test]
async fn deleting_a_session_kills_only_its_tokens() {
    let (service, backend) = stack().await;
    let (_, first) = service.user("frank@example.com").await;
    let second = service
        .login("frank@example.com", crate::support::PASSWORD)
        .await;
    let me = service.send(Method::GET, "/v1/auth/me", &first, None).await;
    let sid = me.str("sid");
    assert_eq!(backend.get("/api/usage", &first).await.status, 200);
    let deleted = service
        .send(
            Method::DELETE,
            &format!("/v1/sessions/{sid}"),
            &second,
            None,
        )
        .await;
    assert!(deleted.status < 300, "{deleted:?}");
    until_status(&backend, "/api/usage", &first, 401).await;
    assert_eq!(backend.get("/api/usage", &second).await.status, 200);
}

#[tokio::test]
async fn admin_revoke_kills_every_token_issued_before() {
    let (service, backend) = stack().await;
    let (user_id, token) = service.user("grace@example.com").await;
    assert_eq!(backend.get("/api/usage", &token).await.status, 200);
    let admin = service.admin_token().await;
    let revoked = service
        .send(
            Method::POST,
            &format!("/v1/admin/users/{user_id}/revoke"),
            &admin,
            None,
        )
        .await;
    assert_eq!(revoked.status, 204, "{revoked:?}");
    until_status(&backend, "/api/usage", &token, 401).await;
    // Logging in again gives a good token: the cut-off only kills tokens
    // issued before it.
    let fresh = service
        .login("grace@example.com", crate::support::PASSWORD)
        .await;
    assert_eq!(backend.get("/api/usage", &fresh).await.status, 200);
}

#[tokio::test]
async fn disabling_a_user_is_refused_by_the_backend() {
    let (service, backend) = stack().await;
    let (user_id, token) = service.user("heidi@example.com").await;
    assert_eq!(backend.get("/api/usage", &token).await.status, 200);
    let admin = service.admin_token().await;
    let patched = service
        .send(
            Method::PATCH,
            &format!("/v1/admin/users/{user_id}"),
            &admin,
            Some(&json!({"disabled": true})),
        )
        .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    until_status(&backend, "/api/usage", &token, 401).await;
}

#[tokio::test]
async fn rfc_7009_revocation_of_an_access_token_is_refused_by_the_backend() {
    let (service, backend) = stack().await;
    let (_, token) = service.user("ivan@example.com").await;
    assert_eq!(backend.get("/api/usage", &token).await.status, 200);
    let revoked = service
        .http
        .post(service.url("/oauth/revoke"))
        .form(&[("token", token.as_str()), ("client_id", "tollgate")])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    until_status(&backend, "/api/usage", &token, 401).await;
}
