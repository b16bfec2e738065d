//! HS256 deployments: no JWKS, so services either hold the shared secret
//! or ask the token service about every token.

use reqwest::Method;
use tollgate_client::{Authenticator, Mode};
use tollgate_core::Secret;
use tollgate_core::keys::Algorithm;

use crate::support::{Backend, TokenService, until_status};

const SECRET: &str = "an HS256 secret of at least 32 bytes, shared";

async fn hs256() -> TokenService {
    TokenService::start_with(|config| {
        config.signing_alg = Algorithm::HS256;
        config.hmac_secret = Some(Secret::from(SECRET));
    })
    .await
}

#[tokio::test]
async fn without_the_secret_every_new_token_is_introspected() {
    let service = hs256().await;
    let auth = service.authenticator().build().await.unwrap();
    assert_eq!(auth.health().mode, Mode::Introspection);
    let backend = Backend::start(&service, auth).await;
    backend.feed_live().await;
    let (_, token) = service.user("nina@example.com").await;
    assert_eq!(backend.get("/api/usage", &token).await.status, 200);
    let service_token = service.service_token().await;
    let refused = backend.get("/api/usage", &service_token).await;
    assert_eq!((refused.status, refused.code()), (401, "wrong_token_type"));
    service
        .send(Method::POST, "/v1/auth/logout", &token, None)
        .await;
    until_status(&backend, "/api/usage", &token, 401).await;
}

#[tokio::test]
async fn with_the_secret_tokens_are_validated_locally() {
    let service = hs256().await;
    let auth = Authenticator::builder(service.issuer(), "api")
        .shared_secret(Secret::from(SECRET))
        .build()
        .await
        .unwrap();
    assert_eq!(auth.health().mode, Mode::SharedSecret);
    let (_, token) = service.user("oscar@example.com").await;
    assert!(auth.authenticate_user(&token).await.unwrap().is_user());
    // The fingerprints of the shared secret agree, without revealing it.
    let theirs: serde_json::Value = reqwest::get(service.url("/v1/fingerprint"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        theirs["secret_fingerprint"].as_str(),
        auth.fingerprint().secret_fingerprint.as_deref()
    );

    let wrong = Authenticator::builder(service.issuer(), "api")
        .shared_secret(Secret::from("another HS256 secret of 32+ bytes!!"))
        .build()
        .await
        .unwrap();
    assert!(wrong.authenticate_user(&token).await.is_err());
}

#[tokio::test]
async fn without_the_secret_or_credentials_the_sdk_says_what_it_needs() {
    let service = hs256().await;
    let err = Authenticator::builder(service.issuer(), "api")
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_config");
    assert!(err.to_string().contains("TOLLGATE_HMAC_SECRET"), "{err}");
}

/// Issue 15, item 6: without the secret, every new token is introspected;
/// on main so was every bearer value at all, and every repetition of one,
/// so anonymous traffic became as many introspection calls. Now a value
/// that cannot be a Tollgate token is refused without a network call, and
/// an "inactive" answer is used again for 5 s (the test takes milliseconds
/// between the answer and its last use) instead of asking again.
#[tokio::test]
async fn issue_15_values_that_cannot_be_tokens_are_not_introspected() {
    let service = hs256().await;
    let auth = service.authenticator().build().await.unwrap();
    assert_eq!(auth.health().mode, Mode::Introspection);
    let (_, token) = service.user("pia@example.com").await;
    let b64 = |text: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    };
    let (_, payload_and_signature) = token.split_once('.').unwrap();
    let garbage = [
        ("", "malformed"),
        ("tgr_an-opaque-value-0123456789abcdef", "malformed"),
        ("not-a-token", "malformed"),
        ("a.b.c", "malformed"),
        ("a.b.c.d.e", "malformed"),
        ("e30.e30.e30", "algorithm_not_allowed"),
    ];
    let mut crafted = vec![
        // Tollgate's header with another alg, without typ or kid.
        (
            format!(
                "{}.{payload_and_signature}",
                b64(r#"{"alg":"EdDSA","kid":"k","typ":"at+jwt"}"#)
            ),
            "algorithm_not_allowed",
        ),
        (
            format!(
                "{}.{payload_and_signature}",
                b64(r#"{"alg":"HS256","kid":"k"}"#)
            ),
            "wrong_typ",
        ),
        (
            format!(
                "{}.{payload_and_signature}",
                b64(r#"{"alg":"HS256","typ":"at+jwt"}"#)
            ),
            "unknown_key",
        ),
        ("x".repeat(9000), "token_too_large"),
    ];
    crafted.extend(garbage.iter().map(|(v, c)| ((*v).to_owned(), *c)));

    // The real token is introspected and accepted (once: then it is in the
    // claims cache).
    let before = auth.health().introspections;
    assert!(auth.authenticate_user(&token).await.unwrap().is_user());
    assert!(auth.authenticate_user(&token).await.unwrap().is_user());
    assert_eq!(auth.health().introspections, before + 1);

    for (value, code) in &crafted {
        for _ in 0..3 {
            let refused = auth.authenticate_user(value).await.unwrap_err();
            assert_eq!(refused.code(), *code, "{value:.40}");
        }
    }
    assert_eq!(
        auth.health().introspections,
        before + 1,
        "no question asked"
    );

    // A well-formed token the token service calls inactive (a forged
    // signature) is asked about once, then answered from memory.
    let (head, signature) = token.rsplit_once('.').unwrap();
    let forged = format!("{head}.{}", b64("not the signature"));
    assert_ne!(signature, b64("not the signature"));
    for _ in 0..6 {
        let refused = auth.authenticate_user(&forged).await.unwrap_err();
        assert_eq!(refused.code(), "inactive");
    }
    assert_eq!(auth.health().introspections, before + 2);

    // Not even possibly asked: with the token service unreachable, the
    // answers are the same (a question would have been a 503).
    service.proxy.cut();
    for (value, code) in &crafted {
        let refused = auth.authenticate_user(value).await.unwrap_err();
        assert_eq!(refused.code(), *code, "{value:.40}");
    }
    let refused = auth.authenticate_user(&forged).await.unwrap_err();
    assert_eq!(refused.code(), "inactive");
    assert_eq!(auth.health().introspections, before + 2);
}
