//! Tokens and secrets never reach the logs: a full run of every kind of
//! token through the server, then a search of everything logged (at every
//! level, every target) for each of them.

use serde_json::json;

use crate::common::{Api, PASSWORD, captured_logs};

#[tokio::test]
async fn no_token_or_secret_appears_in_the_logs() {
    let api = Api::start().await;
    let mut secrets: Vec<String> =
        vec![PASSWORD.to_owned(), api.server.admin_password().to_owned()];
    let (id, secret) = api.client("logged", &["introspect", "revoke"]).await;
    secrets.push(secret.clone());
    let service = api.service_token(&id, &secret).await;
    secrets.push(service.clone());
    let login = api.user("logs@example.com").await;
    let access = login.str("access_token");
    let refresh = login.str("refresh_token");
    secrets.extend([access.clone(), refresh.clone()]);
    let rotated = api
        .post_json("/v1/auth/refresh", None, &json!({"refresh_token": refresh}))
        .await;
    secrets.extend([rotated.str("access_token"), rotated.str("refresh_token")]);
    // A retry within the reuse grace and reuse detection past it log the
    // event, not the token.
    api.post_json("/v1/auth/refresh", None, &json!({"refresh_token": refresh}))
        .await
        .expect(200, None);
    api.server
        .clock()
        .advance(api.server.config().refresh_reuse_grace);
    api.post_json("/v1/auth/refresh", None, &json!({"refresh_token": refresh}))
        .await
        .expect(400, Some("invalid_grant"));
    api.introspect(&(id.clone(), secret.clone()), &access).await;
    api.post_form(
        "/oauth/revoke",
        Some((&id, &secret)),
        &[("token", &service)],
    )
    .await;
    let admin = api.admin_token().await;
    secrets.push(admin.clone());
    let created = api
        .post_json(
            "/v1/admin/clients",
            Some(&admin),
            &json!({"client_id": "logged-2", "scopes": []}),
        )
        .await;
    secrets.push(created.str("client_secret"));
    // Bad input carrying secrets.
    api.post_json(
        "/v1/auth/login",
        None,
        &json!({"email": "logs@example.com", "password": "wrong-but-secret-1"}),
    )
    .await;
    secrets.push("wrong-but-secret-1".to_owned());
    api.get(
        &format!("/v1/auth/me?access_token={access}"),
        Some("Bearer-but-broken"),
    )
    .await;
    api.http
        .post(api.url("/oauth/token"))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"refresh_token\":\"{}\"}}",
            rotated.str("refresh_token")
        ))
        .send()
        .await
        .unwrap();

    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    assert!(
        logs.contains("session started"),
        "the log capture is not working"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret or token was logged"
        );
        // Not even a recognisable part of it.
        if secret.len() > 40 {
            let middle = &secret[secret.len() / 2 - 10..secret.len() / 2 + 10];
            assert!(!logs.contains(middle), "part of a token was logged");
        }
    }
}
