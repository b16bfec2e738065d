//! The SDK against the real token service: who passes, who does not, and
//! keys that change under a running backend.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tollgate_client::{Authenticator, Expect};

use crate::support::{Backend, TokenService, eventually, until_status};

#[tokio::test]
async fn a_user_token_reaches_the_backend_and_the_service_call_uses_a_real_service_token() {
    let service = TokenService::start().await;
    let backend = Backend::start(&service, service.authenticator().build().await.unwrap()).await;
    let (user_id, token) = service.user("alice@example.com").await;
    let answer = backend.get("/api/agents/status", &token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["user"], user_id.as_str());
    assert_eq!(answer.body["plan"], "free");
    // /internal/agents accepted the client_credentials token the backend got
    // from the token service.
    assert_eq!(
        answer.body["agents"][0]["name"], "researcher",
        "{}",
        answer.body
    );

    let tool = backend.http_post("/api/tools/search", &token).await;
    assert_eq!(tool.status, 200, "{}", tool.body);
    let denied = backend.http_post("/api/tools/data_export", &token).await;
    assert_eq!((denied.status, denied.code()), (403, "permission_denied"));
}

#[tokio::test]
async fn a_service_token_does_not_pass_as_a_user() {
    let service = TokenService::start().await;
    let backend = Backend::start(&service, service.authenticator().build().await.unwrap()).await;
    let token = service.service_token().await;
    let answer = backend.get("/api/agents/status", &token).await;
    assert_eq!((answer.status, answer.code()), (401, "wrong_token_type"));
    assert!(answer.challenge.unwrap().contains("invalid_token"));
    let principal = backend
        .auth
        .authenticate(&token, Expect::Any)
        .await
        .unwrap();
    assert!(principal.is_service() && !principal.is_user());
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let service = TokenService::start().await;
    let billing = Authenticator::builder(service.issuer(), "billing")
        .build()
        .await
        .unwrap();
    let (_, token) = service.user("bob@example.com").await;
    let err = billing.authenticate_user(&token).await.unwrap_err();
    assert_eq!(err.code(), "wrong_audience");
}

#[tokio::test]
async fn discovery_refuses_an_issuer_that_is_not_exactly_the_configured_one() {
    let service = TokenService::start().await;
    let err = Authenticator::builder(format!("{}/", service.issuer()), "api")
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.code(), "discovery_failed");
    assert!(
        err.to_string().contains("not the configured issuer"),
        "{err}"
    );
}

#[tokio::test]
async fn key_rotation_needs_no_backend_restart() {
    let service = TokenService::start().await;
    let backend = Backend::start(&service, service.authenticator().build().await.unwrap()).await;
    let (_, old) = service.user("carol@example.com").await;
    assert_eq!(backend.get("/api/usage", &old).await.status, 200);

    let admin = service.admin_token().await;
    let rotated = service
        .send(reqwest::Method::POST, "/v1/admin/keys/rotate", &admin, None)
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new = service
        .login("carol@example.com", crate::support::PASSWORD)
        .await;
    assert_ne!(kid(&new), kid(&old));
    // The new key is fetched on first sight (after the cool-down window at
    // the latest); the old key keeps verifying its tokens.
    until_status(&backend, "/api/usage", &new, 200).await;
    assert_eq!(backend.get("/api/usage", &old).await.status, 200);
    assert!(
        backend
            .auth
            .fingerprint()
            .keys
            .iter()
            .any(|k| k.kid == kid(&new))
    );
}

/// A key withdrawn at once (say, after a leak), not retired on schedule:
/// its tokens die at the token service and in the SDK although both had
/// validated and cached them, because a cached judgement belongs to the key
/// set it was made under.
#[tokio::test]
async fn a_withdrawn_key_kills_its_cached_tokens_everywhere() {
    let service = TokenService::start().await;
    let auth = service
        .authenticator()
        .jwks_refresh_interval(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let (_, old) = service.user("erin@example.com").await;
    auth.authenticate_user(&old).await.unwrap();
    let me = service
        .send(reqwest::Method::GET, "/v1/auth/me", &old, None)
        .await;
    assert_eq!(me.status, 200, "{}", me.body);

    let admin = service.admin_token().await;
    let rotated = service
        .send(reqwest::Method::POST, "/v1/admin/keys/rotate", &admin, None)
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let store = service.server.store();
    let mut withdrawn = store
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.kid == kid(&old))
        .unwrap();
    assert_eq!(withdrawn.status, "verify_only");
    withdrawn.status = "retired".into();
    withdrawn.retire_at = None;
    store.save_keys(&[withdrawn]).await.unwrap();

    eventually(
        "the token service refuses the withdrawn key's token",
        || async {
            let me = service
                .send(reqwest::Method::GET, "/v1/auth/me", &old, None)
                .await;
            me.status == 401
        },
    )
    .await;
    eventually("the SDK refuses the withdrawn key's token", || async {
        auth.authenticate_user(&old)
            .await
            .is_err_and(|e| e.code() == "unknown_key")
    })
    .await;
    // The user's new token, under the new key, passes both.
    let new = service
        .login("erin@example.com", crate::support::PASSWORD)
        .await;
    auth.authenticate_user(&new).await.unwrap();
}

/// SECURITY B17: a flood of tokens naming random keys costs the token
/// service at most one JWKS request per cool-down window, and every one of
/// them is refused.
#[tokio::test]
async fn random_kids_cause_at_most_one_jwks_fetch_per_window() {
    let service = TokenService::start().await;
    let auth = Authenticator::builder(service.issuer(), "api")
        .jwks_cooldown(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let (_, token) = service.user("dave@example.com").await;
    let before = auth.health().jwks_fetches;
    let forged: Vec<String> = (0..1000)
        .map(|i| with_kid(&token, &format!("random-{i}-{}", i * 7919)))
        .collect();
    let results = futures::future::join_all(forged.iter().map(|t| auth.authenticate_user(t))).await;
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().is_err_and(|e| e.code() == "unknown_key"))
    );
    let fetched = auth.health().jwks_fetches - before;
    assert!(fetched <= 1, "{fetched} JWKS fetches for one window");
    // The real token still passes.
    auth.authenticate_user(&token).await.unwrap();
}

fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    json["kid"].as_str().unwrap().to_owned()
}

fn with_kid(token: &str, kid: &str) -> String {
    let mut parts = token.split('.');
    let header = parts.next().unwrap();
    let mut json: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    json["kid"] = kid.into();
    let header = URL_SAFE_NO_PAD.encode(json.to_string());
    format!(
        "{header}.{}.{}",
        parts.next().unwrap(),
        parts.next().unwrap()
    )
}

/// SECURITY B13/B14: a token naming its own key set (`jku`, `x5u`) is
/// refused before any key lookup, and nothing is fetched from the URL —
/// neither an address nor a name that resolves to this machine.
#[tokio::test]
async fn jku_and_x5u_headers_are_refused_without_a_connection() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let service = TokenService::start().await;
    let auth = service.authenticator().build().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let accept = tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let (_, token) = service.user("peggy@example.com").await;
    let fetches = auth.health().jwks_fetches;
    for member in ["jku", "x5u"] {
        for host in ["127.0.0.1", "localhost"] {
            let forged = with_header(&token, member, &format!("http://{host}:{port}/keys.json"));
            let err = auth.authenticate_user(&forged).await.unwrap_err();
            assert_eq!(err.code(), "header_not_allowed", "{member} {host}");
        }
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0);
    assert_eq!(auth.health().jwks_fetches, fetches);
    accept.abort();
}

fn with_header(token: &str, name: &str, value: &str) -> String {
    let mut parts = token.split('.');
    let header = parts.next().unwrap();
    let mut json: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    json[name] = value.into();
    let header = URL_SAFE_NO_PAD.encode(json.to_string());
    format!(
        "{header}.{}.{}",
        parts.next().unwrap(),
        parts.next().unwrap()
    )
}
