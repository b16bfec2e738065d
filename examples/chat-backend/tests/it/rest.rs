use crate::{Backend, read};

#[tokio::test]
async fn a_user_token_reaches_the_backend_and_the_service_call_works() {
    let backend = Backend::start().await;
    let token = backend.issuer.user("alice").plan("pro").mint();
    let (status, body, _) = read(backend.get("/api/agents/status", Some(&token)).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"], "alice");
    assert_eq!(body["plan"], "pro");
    assert_eq!(body["tools"].as_array().unwrap().len(), 4);
    // The agents came from /internal/agents, called with a service token.
    assert_eq!(body["agents"][0]["name"], "researcher", "{body}");
}

#[tokio::test]
async fn missing_bad_and_expired_tokens_get_rfc_6750_answers() {
    let backend = Backend::start().await;
    let (status, body, challenge) = read(backend.get("/api/usage", None).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing_token"))
    );
    assert_eq!(challenge.as_deref(), Some("Bearer"));

    let (status, body, challenge) = read(backend.get("/api/usage", Some("a.b.c")).await).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("malformed")));
    assert!(
        challenge
            .unwrap()
            .starts_with("Bearer error=\"invalid_token\", error_description=\"")
    );

    let expired = backend.issuer.user("bob").expired().mint();
    let (status, body, _) = read(backend.get("/api/usage", Some(&expired)).await).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("expired")));

    let raw = backend
        .http
        .get(format!("{}/api/usage", backend.url))
        .header("authorization", "Bearer a b")
        .send()
        .await
        .unwrap();
    let (status, body, _) = read(raw).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn a_service_token_does_not_pass_as_a_user_and_the_reverse() {
    let backend = Backend::start().await;
    let service = backend.issuer.service("billing").mint();
    let (status, body, _) = read(backend.get("/api/agents/status", Some(&service)).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("wrong_token_type"))
    );
    let user = backend.issuer.user("carol").mint();
    let (status, body, _) = read(backend.get("/internal/agents", Some(&user)).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("wrong_token_type"))
    );
    let (status, body, _) = read(backend.get("/internal/agents", Some(&service)).await).await;
    assert_eq!((status, body["caller"].as_str()), (200, Some("billing")));
}

#[tokio::test]
async fn tools_need_their_permission_and_are_counted() {
    let backend = Backend::start().await;
    let free = backend.issuer.user("dave").mint();
    let (status, body, _) = read(
        backend
            .post("/api/tools/search", &free, r#"{"input":"rust tokens"}"#)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["calls"], 1);
    let (status, _, _) = read(backend.post("/api/tools/summarize", &free, "").await).await;
    assert_eq!(status, 200);

    let (status, body, challenge) =
        read(backend.post("/api/tools/code_interpreter", &free, "").await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("permission_denied"))
    );
    assert!(challenge.unwrap().contains("error=\"insufficient_scope\""));
    let (status, body, _) = read(backend.post("/api/tools/rm_rf", &free, "").await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_tool"))
    );
    let (status, body, _) = read(backend.post("/api/tools/search", &free, "{not json").await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    let (_, usage, _) = read(backend.get("/api/usage", Some(&free)).await).await;
    assert_eq!(
        usage["usage"],
        serde_json::json!({"search": 1, "summarize": 1})
    );
    let other = backend.issuer.user("erin").mint();
    let (_, usage, _) = read(backend.get("/api/usage", Some(&other)).await).await;
    assert_eq!(usage["usage"], serde_json::json!({}));
}

#[tokio::test]
async fn the_plan_rate_is_enforced_per_user() {
    let backend = Backend::start().await;
    let free = backend.issuer.user("frank").mint();
    for _ in 0..60 {
        let (status, _, _) = read(backend.post("/api/tools/search", &free, "").await).await;
        assert_eq!(status, 200);
    }
    let response = backend.post("/api/tools/search", &free, "").await;
    let retry_after = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let (status, body, _) = read(response).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("rate_limited"))
    );
    assert!(body["retry_after_ms"].as_u64().unwrap() > 0);
    assert!(retry_after >= 1);
    // Another user of the same plan is not affected.
    let other = backend.issuer.user("grace").mint();
    let (status, _, _) = read(backend.post("/api/tools/search", &other, "").await).await;
    assert_eq!(status, 200);
    let (_, usage, _) = read(backend.get("/api/usage", Some(&free)).await).await;
    assert_eq!(usage["usage"]["search"], 60, "refused calls are not billed");
}

#[tokio::test]
async fn the_admin_route_needs_the_admin_role() {
    let backend = Backend::start().await;
    let user = backend.issuer.user("heidi").mint();
    let (status, body, _) = read(backend.get("/api/admin/usage", Some(&user)).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("permission_denied"))
    );
    let admin = backend.issuer.user("ivan").role("admin").mint();
    let (status, body, _) = read(backend.get("/api/admin/usage", Some(&admin)).await).await;
    assert_eq!(status, 200, "{body}");
    let service = backend.issuer.service("billing").mint();
    let (status, _, _) = read(backend.get("/api/admin/usage", Some(&service)).await).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn revoked_tokens_sessions_and_users_are_refused() {
    let backend = Backend::start().await;
    let token = backend.issuer.user("judy").mint();
    assert_eq!(backend.get("/api/usage", Some(&token)).await.status(), 200);
    backend.issuer.logout(&token);
    let (status, body, _) = read(backend.get("/api/usage", Some(&token)).await).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("revoked")));

    let old = backend
        .issuer
        .user("ken")
        .issued_at(tollgate_now() - 5)
        .mint();
    assert_eq!(backend.get("/api/usage", Some(&old)).await.status(), 200);
    backend.issuer.revoke_user("ken");
    assert_eq!(backend.get("/api/usage", Some(&old)).await.status(), 401);
}

fn tollgate_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn the_fingerprint_says_what_the_backend_trusts() {
    let backend = Backend::start().await;
    let (status, body, _) = read(backend.get("/v1/fingerprint", None).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["service"], "chat-backend");
    assert_eq!(body["issuer"], backend.issuer.issuer());
    assert_eq!(body["audiences"], serde_json::json!(["api"]));
    assert_eq!(body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(
        body["keys"][0]["thumbprint"], body["keys"][0]["kid"],
        "Tollgate kids are thumbprints"
    );
    let (status, body, _) = read(backend.get("/healthz", None).await).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body, _) = read(backend.get("/nope", None).await).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
}

/// Adding the SDK to a host leaves rustls with a process-wide crypto
/// provider, so any later TLS client of the host (one that asks rustls for
/// "the" default) cannot panic, whatever features the host unifies.
#[tokio::test]
async fn the_sdk_leaves_a_crypto_provider_installed() {
    let _backend = Backend::start().await;
    assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    let roots = rustls::RootCertStore::empty();
    let _config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
}
