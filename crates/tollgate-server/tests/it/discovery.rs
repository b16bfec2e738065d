//! Metadata, JWKS, fingerprint, health, readiness, metrics and OpenAPI.

use crate::common::Api;
use tollgate_core::keys::{Algorithm, Jwks, VerifyingKeys};
use tollgate_server::testkit::TestServer;

#[tokio::test]
async fn metadata_names_every_endpoint_under_the_exact_issuer() {
    let api = Api::start().await;
    let answer = api
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    answer.expect(200, None);
    let issuer = api.server.issuer();
    let meta = &answer.body;
    assert_eq!(meta["issuer"], issuer);
    assert_eq!(meta["token_endpoint"], format!("{issuer}/oauth/token"));
    assert_eq!(meta["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    assert_eq!(
        meta["introspection_endpoint"],
        format!("{issuer}/oauth/introspect")
    );
    assert_eq!(
        meta["revocation_endpoint"],
        format!("{issuer}/oauth/revoke")
    );
    assert_eq!(
        meta["grant_types_supported"],
        serde_json::json!(["refresh_token", "client_credentials"])
    );
    assert_eq!(
        meta["token_signing_alg_values_supported"],
        serde_json::json!(["EdDSA"])
    );
    // RFC 8414 §3.2: no authorization endpoint, so no response types, and a
    // member with zero elements is omitted rather than sent as `[]`.
    assert!(meta.get("response_types_supported").is_none(), "{meta}");
    assert!(
        meta["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&"client_secret_basic".into())
    );
    // The issuer in the metadata is exactly the tokens' `iss`.
    let (id, secret) = api.client("svc-meta", &[]).await;
    let token = api.service_token(&id, &secret).await;
    let (_, claims) = tollgate_core::jws::dangerous::insecure_decode(&token).unwrap();
    assert_eq!(claims["iss"], meta["issuer"]);
}

#[tokio::test]
async fn the_jwks_publishes_the_signing_key_with_kid_alg_and_use() {
    let api = Api::start().await;
    let answer = api.get("/.well-known/jwks.json", None).await;
    answer.expect(200, None);
    assert!(
        answer
            .header("content-type")
            .starts_with("application/json")
    );
    let jwks: Jwks = serde_json::from_value(answer.body.clone()).unwrap();
    // The active key and the next one (published before it signs).
    assert_eq!(jwks.keys.len(), 2);
    let mut statuses: Vec<_> = jwks.keys.iter().map(|k| k.status.clone()).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [Some("active".to_owned()), Some("next".to_owned())]
    );
    for key in &jwks.keys {
        assert_eq!(key.alg.as_deref(), Some("EdDSA"));
        assert_eq!(key.use_.as_deref(), Some("sig"));
        assert_eq!(key.kid.as_deref(), Some(key.thumbprint().unwrap().as_str()));
    }
    // The published key verifies the server's tokens.
    let keys = VerifyingKeys::from_jwks(&jwks).unwrap();
    let (id, secret) = api.client("svc-jwks", &[]).await;
    let token = api.service_token(&id, &secret).await;
    let (header, _) = tollgate_core::jws::dangerous::insecure_decode(&token).unwrap();
    let verifying = keys.find(header["kid"].as_str().unwrap()).unwrap();
    tollgate_core::jws::verify(&token, verifying).unwrap();
}

#[tokio::test]
async fn hs256_deployments_publish_no_keys_and_no_jwks_uri() {
    let builder = TestServer::builder().configure(|c| {
        c.signing_alg = Algorithm::HS256;
        c.hmac_secret = Some(tollgate_core::Secret::from(
            "a-shared-secret-of-at-least-32-bytes!",
        ));
    });
    let api = Api::with(builder).await;
    let answer = api.get("/.well-known/jwks.json", None).await;
    answer.expect(200, None);
    assert_eq!(answer.text, r#"{"keys":[]}"#);
    let meta = api
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    assert!(meta.body.get("jwks_uri").is_none(), "{}", meta.text);
    assert_eq!(
        meta.body["token_signing_alg_values_supported"],
        serde_json::json!(["HS256"])
    );
    let fingerprint = api.get("/v1/fingerprint", None).await;
    let expected = tollgate_core::fingerprint::secret_fingerprint(&tollgate_core::Secret::from(
        "a-shared-secret-of-at-least-32-bytes!",
    ));
    assert_eq!(fingerprint.body["secret_fingerprint"], expected.as_str());
    // Tokens are still issued, validated and introspected.
    let introspector = api.client("hs-introspector", &["introspect"]).await;
    let token = api.service_token(&introspector.0, &introspector.1).await;
    assert!(api.is_active(&introspector, &token).await);
    let admin = api.admin_token().await;
    api.post_empty("/v1/admin/keys/rotate", Some(&admin))
        .await
        .expect(409, Some("rotation_not_supported"));
}

#[tokio::test]
async fn the_fingerprint_lists_what_services_must_agree_on() {
    let api = Api::start().await;
    let answer = api.get("/v1/fingerprint", None).await;
    answer.expect(200, None);
    let body = &answer.body;
    assert_eq!(body["service"], "tollgate");
    assert_eq!(body["issuer"], api.server.issuer());
    assert_eq!(body["audiences"], serde_json::json!(["api"]));
    assert_eq!(body["algorithms"], serde_json::json!(["EdDSA"]));
    assert_eq!(body["access_token_ttl"], 60);
    assert_eq!(body["leeway"], 5);
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for key in keys {
        assert_eq!(key["kid"], key["thumbprint"]);
    }
    let mut statuses: Vec<_> = keys.iter().map(|k| k["status"].as_str().unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, ["active", "next"]);
    assert!(body.get("secret_fingerprint").is_none());
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi_answer() {
    let api = Api::start().await;
    let health = api.get("/healthz", None).await;
    health.expect(200, None);
    assert_eq!(health.body["status"], "ok");
    let ready = api.get("/readyz", None).await;
    ready.expect(200, None);
    assert_eq!(ready.body["checks"]["store"], "ok");
    // Produce a few metrics first.
    api.get("/v1/auth/me", Some("garbage"))
        .await
        .expect(401, Some("invalid_token"));
    let (id, secret) = api.client("svc-metrics", &[]).await;
    api.service_token(&id, &secret).await;
    let metrics = api.get("/metrics", None).await;
    metrics.expect(200, None);
    assert!(metrics.header("content-type").starts_with("text/plain"));
    for needle in [
        "tollgate_http_requests_total{",
        "route=\"/v1/auth/me\"",
        "tollgate_http_request_duration_seconds_bucket",
        "tollgate_tokens_issued_total{type=\"service\"}",
        "tollgate_token_validation_failures_total{code=\"malformed\"}",
    ] {
        assert!(
            metrics.text.contains(needle),
            "{needle} missing from\n{}",
            metrics.text
        );
    }
    let openapi = api.get("/openapi.json", None).await;
    openapi.expect(200, None);
    assert!(openapi.body["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/oauth/token",
        "/oauth/introspect",
        "/oauth/revoke",
        "/v1/auth/login",
        "/v1/admin/users/{id}",
        "/v1/revocations/stream",
        "/.well-known/jwks.json",
    ] {
        assert!(openapi.body["paths"].get(path).is_some(), "{path}");
    }
    assert!(
        openapi.body["components"]["schemas"]
            .get("TokenResponse")
            .is_some()
    );
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_propagates_a_good_one() {
    let api = Api::start().await;
    let generated = api.get("/healthz", None).await;
    assert_eq!(generated.header("x-request-id").len(), 36);
    let missing = api.get("/nowhere", None).await;
    missing.expect(404, Some("not_found"));
    assert!(!missing.header("x-request-id").is_empty());
    let sent = api
        .http
        .get(api.url("/healthz"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(sent.headers()["x-request-id"], "trace-abc-123");
    let bad = api
        .http
        .get(api.url("/healthz"))
        .header("x-request-id", "has space")
        .send()
        .await
        .unwrap();
    assert_ne!(bad.headers()["x-request-id"], "has space");
}
