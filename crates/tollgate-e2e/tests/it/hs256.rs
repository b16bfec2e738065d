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
