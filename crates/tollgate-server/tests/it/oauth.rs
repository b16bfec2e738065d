//! `/oauth/token`: the client credentials and refresh grants and every
//! refusal (RFC 6749 §5.2, RFC 9700).

use crate::common::Api;

fn claims(token: &str) -> serde_json::Value {
    tollgate_core::jws::dangerous::insecure_decode(token)
        .unwrap()
        .1
}

#[tokio::test]
async fn client_credentials_issue_a_service_token_by_basic_or_post() {
    let api = Api::start().await;
    let (id, secret) = api.client("billing", &["introspect", "read"]).await;
    let basic = api
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    basic.expect(200, None);
    assert_eq!(basic.body["token_type"], "Bearer");
    assert_eq!(basic.body["expires_in"], 60);
    assert_eq!(basic.body["scope"], "introspect read");
    assert!(basic.body.get("refresh_token").is_none());
    assert_eq!(basic.header("cache-control"), "no-store");
    assert_eq!(basic.header("pragma"), "no-cache");
    let token = claims(&basic.str("access_token"));
    assert_eq!(token["sub"], "billing");
    assert_eq!(token["client_id"], "billing");
    assert_eq!(token["token_type"], "service");
    assert!(token.get("sid").is_none() && token.get("email").is_none());

    let post = api
        .post_form(
            "/oauth/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", "read"),
            ],
        )
        .await;
    post.expect(200, None);
    assert_eq!(post.body["scope"], "read");
    assert_eq!(claims(&post.str("access_token"))["scope"], "read");
}

#[tokio::test]
async fn client_authentication_failures_are_401_invalid_client_with_a_challenge() {
    let api = Api::start().await;
    let (id, secret) = api.client("svc-a", &[]).await;
    let (_, other_secret) = api.client("svc-b", &[]).await;
    for basic in [
        None,
        Some((id.as_str(), "tgs_wrong")),
        Some((id.as_str(), other_secret.as_str())),
        Some(("nobody", secret.as_str())),
        Some((id.as_str(), "")),
    ] {
        let answer = api
            .post_form(
                "/oauth/token",
                basic,
                &[("grant_type", "client_credentials")],
            )
            .await;
        answer.expect(401, Some("invalid_client"));
        assert_eq!(
            answer.header("www-authenticate"),
            "Basic realm=\"tollgate\""
        );
        assert_eq!(answer.header("cache-control"), "no-store");
    }
    // A client id without a secret in the body is not authentication.
    api.post_form(
        "/oauth/token",
        None,
        &[("grant_type", "client_credentials"), ("client_id", &id)],
    )
    .await
    .expect(401, Some("invalid_client"));
    // Basic and post at once is ambiguous.
    api.post_form(
        "/oauth/token",
        Some((&id, &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
        ],
    )
    .await
    .expect(400, Some("invalid_request"));
}

#[tokio::test]
async fn scopes_beyond_the_clients_are_invalid_scope() {
    let api = Api::start().await;
    let (id, secret) = api.client("narrow", &["read"]).await;
    for scope in ["admin", "read admin", "re"] {
        api.post_form(
            "/oauth/token",
            Some((&id, &secret)),
            &[("grant_type", "client_credentials"), ("scope", scope)],
        )
        .await
        .expect(400, Some("invalid_scope"));
    }
}

#[tokio::test]
async fn grant_types_other_than_ours_are_unsupported_and_missing_parameters_invalid() {
    let api = Api::start().await;
    let (id, secret) = api.client("svc-grants", &[]).await;
    for grant in [
        "password",
        "authorization_code",
        "implicit",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "nonsense",
    ] {
        api.post_form(
            "/oauth/token",
            Some((&id, &secret)),
            &[
                ("grant_type", grant),
                ("username", "admin@tollgate.test"),
                ("password", "x"),
            ],
        )
        .await
        .expect(400, Some("unsupported_grant_type"));
    }
    api.post_form("/oauth/token", None, &[])
        .await
        .expect(400, Some("invalid_request"));
    api.post_form("/oauth/token", None, &[("grant_type", "refresh_token")])
        .await
        .expect(400, Some("invalid_request"));
    api.post_form(
        "/oauth/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("grant_type", "refresh_token"),
        ],
    )
    .await
    .expect(400, Some("invalid_request"));
}

#[tokio::test]
async fn the_refresh_grant_works_for_the_public_client_and_binds_client_and_scope() {
    let api = Api::start().await;
    let login = api.user("grant@example.com").await;
    let refresh = login.str("refresh_token");
    assert_eq!(login.body["scope"], "profile offline_access");
    // Another (confidential) client cannot use the first-party session.
    let (id, secret) = api.client("thief", &[]).await;
    api.post_form(
        "/oauth/token",
        Some((&id, &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await
    .expect(400, Some("invalid_grant"));
    // A client_id naming another client without a secret is not authenticated.
    api.post_form(
        "/oauth/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "thief"),
        ],
    )
    .await
    .expect(401, Some("invalid_client"));
    // Widening is refused and leaves the token usable.
    api.post_form(
        "/oauth/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("scope", "profile admin"),
        ],
    )
    .await
    .expect(400, Some("invalid_scope"));
    // Narrowing works.
    let narrowed = api
        .post_form(
            "/oauth/token",
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", "tollgate"),
                ("scope", "profile"),
            ],
        )
        .await;
    narrowed.expect(200, None);
    assert_eq!(narrowed.body["scope"], "profile");
    assert_eq!(narrowed.header("cache-control"), "no-store");
    let access = claims(&narrowed.str("access_token"));
    assert_eq!(access["scope"], "profile");
    assert_eq!(access["token_type"], "access");
    assert_eq!(access["client_id"], "tollgate");
    assert_eq!(access["email"], "grant@example.com");
    assert_eq!(access["plan"], "free");
    assert_eq!(
        access["permissions"],
        serde_json::json!(["tool:search", "tool:summarize"])
    );
    // The next refresh without a scope gets the session's full scope back.
    let again = api
        .post_form(
            "/oauth/token",
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &narrowed.str("refresh_token")),
            ],
        )
        .await;
    again.expect(200, None);
    assert_eq!(again.body["scope"], "profile offline_access");
    for bad in [
        "tgr_unknown",
        "not-a-refresh-token",
        "tgr_x".repeat(100).as_str(),
    ] {
        api.post_form(
            "/oauth/token",
            None,
            &[("grant_type", "refresh_token"), ("refresh_token", bad)],
        )
        .await
        .expect(400, Some("invalid_grant"));
    }
}

#[tokio::test]
async fn a_client_id_cannot_equal_a_user_id_and_service_tokens_are_not_user_tokens() {
    let api = Api::start().await;
    let admin = api.admin_token().await;
    let user_id = api
        .post_json(
            "/v1/admin/users",
            Some(&admin),
            &serde_json::json!({"email": "collide@example.com", "password": crate::common::PASSWORD}),
        )
        .await
        .expect(201, None)
        .str("user_id");
    api.post_json(
        "/v1/admin/clients",
        Some(&admin),
        &serde_json::json!({"client_id": user_id, "scopes": []}),
    )
    .await
    .expect(409, Some("client_id_taken"));
    api.post_json(
        "/v1/admin/clients",
        Some(&admin),
        &serde_json::json!({"client_id": "tollgate", "scopes": []}),
    )
    .await
    .expect(409, Some("client_id_taken"));
    let (id, secret) = api.client("svc-not-user", &[]).await;
    let service = api.service_token(&id, &secret).await;
    let me = api.get("/v1/auth/me", Some(&service)).await;
    me.expect(401, Some("invalid_token"));
    assert!(
        me.body["error_description"]
            .as_str()
            .unwrap()
            .contains("wrong type")
    );
}

/// Issue 9, item 7: the OAuth endpoints answer an empty body, or one that is
/// not form-encoded, with OAuth's 400 `invalid_request` (RFC 6749 §5.2)
/// naming the expected content type, never HTTP's 415.
#[tokio::test]
async fn issue_9_non_form_bodies_at_oauth_endpoints_are_invalid_request() {
    let api = Api::start().await;
    let (id, secret) = api.client("svc-forms", &["introspect", "revoke"]).await;
    for path in ["/oauth/token", "/oauth/introspect", "/oauth/revoke"] {
        for (content_type, body) in [
            (None, ""),
            (None, "token=x"),
            (
                Some("application/json"),
                r#"{"grant_type":"client_credentials"}"#,
            ),
            (Some("text/plain"), "grant_type=client_credentials"),
            (Some("multipart/form-data; boundary=x"), "--x--"),
        ] {
            let mut request = api
                .http
                .post(api.url(path))
                .basic_auth(&id, Some(&secret))
                .body(body);
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let answer = crate::common::Answer::from(request.send().await.unwrap()).await;
            answer.expect(400, Some("invalid_request"));
            assert!(
                answer.body["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("application/x-www-form-urlencoded"),
                "{path} {content_type:?}: {}",
                answer.text
            );
            assert_eq!(answer.header("cache-control"), "no-store", "{path}");
        }
    }
}
