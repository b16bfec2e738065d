//! Discovery: RFC 8414 metadata, the JWKS, and `/v1/fingerprint` — what a
//! client or service needs to find and trust this token service.
//!
//! All three come from the current key set and the configuration; none
//! touches the store.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use tollgate_core::fingerprint::secret_fingerprint;
use tollgate_core::wire::{Fingerprint, ServerMetadata};

use crate::state::AppState;
use crate::tokens::USER_SCOPES;

/// `GET /.well-known/oauth-authorization-server`.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "discovery",
    responses((status = 200, description = "RFC 8414 metadata", body = ServerMetadata)))]
pub(crate) async fn metadata(State(state): State<AppState>) -> axum::Json<ServerMetadata> {
    let base = state.config.issuer.trim_end_matches('/');
    let url = |path: &str| format!("{base}{path}");
    let keys = state.key_set();
    let methods = || {
        vec![
            "client_secret_basic".to_owned(),
            "client_secret_post".to_owned(),
        ]
    };
    let mut token_methods = methods();
    // Refresh tokens of the first-party public client need no secret.
    token_methods.push("none".to_owned());
    let mut scopes: Vec<String> = ["introspect", "revoke", "admin"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    scopes.extend(USER_SCOPES.split(' ').map(str::to_owned));
    axum::Json(ServerMetadata {
        issuer: state.config.issuer.clone(),
        token_endpoint: url("/oauth/token"),
        jwks_uri: state
            .keys
            .is_stored()
            .then(|| url("/.well-known/jwks.json")),
        introspection_endpoint: url("/oauth/introspect"),
        revocation_endpoint: url("/oauth/revoke"),
        grant_types_supported: vec!["refresh_token".to_owned(), "client_credentials".to_owned()],
        response_types_supported: Vec::new(),
        token_endpoint_auth_methods_supported: token_methods,
        introspection_endpoint_auth_methods_supported: methods(),
        revocation_endpoint_auth_methods_supported: {
            let mut m = methods();
            m.push("none".to_owned());
            m
        },
        scopes_supported: scopes,
        token_signing_alg_values_supported: keys
            .algorithms
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
        tollgate_revocations_endpoint: url("/v1/revocations"),
        tollgate_fingerprint_endpoint: url("/v1/fingerprint"),
    })
}

/// `GET /.well-known/jwks.json`: the keys that verify now (none for HS256).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "discovery",
    responses((status = 200, description = "RFC 7517 key set: `{\"keys\": [{kid, alg, use, kty, …}]}`", content_type = "application/json")))]
pub(crate) async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.key_set().jwks.clone();
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// `GET /v1/fingerprint`: what must agree across services (CONTRACT §7).
#[utoipa::path(get, path = "/v1/fingerprint", tag = "discovery",
    responses((status = 200, description = "The settings services must agree on", body = Fingerprint)))]
pub(crate) async fn fingerprint(State(state): State<AppState>) -> axum::Json<Fingerprint> {
    axum::Json(fingerprint_document(&state))
}

/// The `config.loaded` audit event of this instance: its environment,
/// issuer, key ids, and the SHA-256 (16 hex digits) of its
/// `/v1/fingerprint` document (equal for instances that agree).
pub(crate) fn config_event(state: &AppState) -> tollgate_core::audit::AuditEvent {
    let document = serde_json::to_vec(&fingerprint_document(state)).unwrap_or_default();
    let mut fingerprint = tollgate_core::opaque::digest(&document);
    fingerprint.truncate(16);
    tollgate_core::audit::AuditEvent::ConfigLoaded {
        environment: state.config.environment.as_str().to_owned(),
        issuer: state.config.issuer.clone(),
        fingerprint,
        kids: state
            .key_set()
            .fingerprint_keys
            .iter()
            .map(|k| k.kid.clone())
            .collect(),
    }
}

fn fingerprint_document(state: &AppState) -> Fingerprint {
    let keys = state.key_set();
    let config = &state.config;
    // The previous HS256 secret, while it still verifies.
    let now = state.now();
    let previous = config
        .hmac_previous
        .as_ref()
        .filter(|(_, until)| config.signing_alg.is_symmetric() && now < *until)
        .map(|(secret, until)| (secret, until));
    Fingerprint {
        service: "tollgate".to_owned(),
        issuer: config.issuer.clone(),
        audiences: config.audiences.clone(),
        algorithms: vec![config.signing_alg.as_str().to_owned()],
        keys: keys.fingerprint_keys.clone(),
        access_token_ttl: Some(config.access_token_ttl),
        refresh_token_ttl: Some(config.refresh_token_ttl),
        service_token_ttl: Some(config.service_token_ttl),
        leeway: Some(config.leeway),
        secret_fingerprint: config
            .signing_alg
            .is_symmetric()
            .then(|| config.hmac_secret.as_ref().map(secret_fingerprint))
            .flatten(),
        previous_secret_fingerprint: previous.map(|(secret, _)| secret_fingerprint(secret)),
        previous_secret_until: previous.map(|(_, until)| *until),
    }
}
