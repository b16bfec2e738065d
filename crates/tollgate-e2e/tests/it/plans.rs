//! Issue 12: a plan changed by an admin takes effect for limits without a
//! new token. The token service puts a `plan` notice on the revocation
//! feed; a `ToolGate` that follows plan changes applies the new plan to the
//! next REST call and to messages on the user's live WebSocket connections;
//! the token's `plan` claim stays what it was minted with.

use reqwest::Method;
use serde_json::json;
use tollgate_client::limits::{Plans, ToolGate};

use crate::support::{Backend, TokenService, eventually};
use crate::websocket::{ask, connect};

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_change_reaches_rest_calls_and_live_websockets_through_the_feed() {
    let service = TokenService::start().await;
    let auth = service.authenticator().build().await.unwrap();
    let gate = ToolGate::new(Plans::builtin()).follow_plan_changes(&auth);
    let backend = Backend::start_with_gate(&service, auth.clone(), gate).await;
    backend.feed_live().await;
    let (user, token) = service.user("pat@example.com").await;
    let principal = auth.authenticate_user(&token).await.unwrap();
    assert_eq!(principal.plan(), Some("free"));

    // On free, `code_interpreter` is refused, over REST and WebSocket.
    let mut socket = connect(&backend, &token).await;
    let call = json!({"type": "tool.call", "id": 1, "tool": "code_interpreter", "input": "1+1"});
    let refused = ask(&mut socket, call.clone()).await;
    assert_eq!(refused["code"], "permission_denied", "{refused}");
    let rest = backend
        .http_post("/api/tools/code_interpreter", &token)
        .await;
    assert_eq!(rest.status, 403, "{:?}", rest.body);

    let admin = service.admin_token().await;
    let changed = service
        .send(
            Method::PATCH,
            &format!("/v1/admin/users/{user}"),
            &admin,
            Some(&json!({"plan": "pro"})),
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    // The notice is on the feed, as a `plan` event that revokes nothing.
    let page = service
        .send(
            Method::GET,
            "/v1/revocations?after=0",
            &service.service_token().await,
            None,
        )
        .await;
    let events = page.body["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "plan" && e["value"] == format!("{user} pro")),
        "{events:?}"
    );
    eventually("the SDK holds the new plan", || {
        let auth = auth.clone();
        let user = user.clone();
        async move { auth.revocations().plan_of(&user).as_deref() == Some("pro") }
    })
    .await;

    // The same token and the same live connection now have pro's tools.
    let rest = backend
        .http_post("/api/tools/code_interpreter", &token)
        .await;
    assert_eq!(rest.status, 200, "{:?}", rest.body);
    let answer = ask(&mut socket, call).await;
    assert_eq!(answer["type"], "tool.result", "{answer}");
    // The token still says what it was minted with.
    let again = auth.authenticate_user(&token).await.unwrap();
    assert_eq!(again.plan(), Some("free"));

    // Back to free: refused again, on the same connection.
    let changed = service
        .send(
            Method::PATCH,
            &format!("/v1/admin/users/{user}"),
            &admin,
            Some(&json!({"plan": "free"})),
        )
        .await;
    assert_eq!(changed.status, 200);
    eventually("the SDK holds the newest plan", || {
        let auth = auth.clone();
        let user = user.clone();
        async move { auth.revocations().plan_of(&user).as_deref() == Some("free") }
    })
    .await;
    let refused = ask(
        &mut socket,
        json!({"type": "tool.call", "id": 3, "tool": "code_interpreter"}),
    )
    .await;
    assert_eq!(refused["code"], "permission_denied", "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gate_that_does_not_follow_plan_changes_keeps_the_tokens_plan() {
    let service = TokenService::start().await;
    let auth = service.authenticator().build().await.unwrap();
    let backend = Backend::start(&service, auth.clone()).await;
    backend.feed_live().await;
    let (user, token) = service.user("quinn@example.com").await;
    let admin = service.admin_token().await;
    let changed = service
        .send(
            Method::PATCH,
            &format!("/v1/admin/users/{user}"),
            &admin,
            Some(&json!({"plan": "pro"})),
        )
        .await;
    assert_eq!(changed.status, 200);
    eventually("the SDK holds the new plan", || {
        let auth = auth.clone();
        let user = user.clone();
        async move { auth.revocations().plan_of(&user).as_deref() == Some("pro") }
    })
    .await;
    // The plan notice revoked nothing: the token still works, with its own
    // plan's tools.
    let rest = backend.http_post("/api/tools/search", &token).await;
    assert_eq!(rest.status, 200);
    let rest = backend
        .http_post("/api/tools/code_interpreter", &token)
        .await;
    assert_eq!(rest.status, 403);
}
