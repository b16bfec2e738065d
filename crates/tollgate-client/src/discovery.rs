//! RFC 8414 discovery: where the token service's endpoints are, and proof
//! that it is the issuer the service was configured to trust.
//!
//! The metadata's `issuer` must equal the configured issuer exactly (RFC
//! 8414 §3.3): no trailing-slash or case tolerance, because tokens carry the
//! same string and the validator compares it exactly. Endpoint URLs must be
//! `http` or `https`.

use tollgate_core::wire::ServerMetadata;

use crate::AuthError;
use crate::http::{Failure, Http};

/// The metadata URL of `issuer` (RFC 8414 §3.1): the well-known segment
/// goes between the host and any path of the issuer.
pub(crate) fn metadata_url(issuer: &str) -> Result<String, AuthError> {
    let url = url::Url::parse(issuer).map_err(|_| {
        AuthError::Config(format!(
            "the issuer `{}` is not a URL",
            issuer.escape_debug()
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(AuthError::Config(format!(
            "the issuer `{}` is not an http(s) URL",
            issuer.escape_debug()
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(AuthError::Config(
            "the issuer must not have a query or fragment (RFC 8414 §2)".into(),
        ));
    }
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/');
    Ok(format!(
        "{origin}/.well-known/oauth-authorization-server{path}"
    ))
}

/// Fetches and checks the metadata.
pub(crate) async fn discover(http: &Http, issuer: &str) -> Result<ServerMetadata, AuthError> {
    discover_once(http, issuer).await.map_err(|(err, _)| err)
}

/// Fetches and checks the metadata; on failure, also whether trying again
/// may help (the service was unreachable, as opposed to answering wrong).
pub(crate) async fn discover_once(
    http: &Http,
    issuer: &str,
) -> Result<ServerMetadata, (AuthError, bool)> {
    let url = metadata_url(issuer).map_err(|err| (err, false))?;
    let metadata: ServerMetadata = http.get_json(&url, None).await.map_err(|failure| {
        let retry = matches!(failure, Failure::Unreachable(_));
        let err = AuthError::Discovery(format!("{url}: {}", failure.describe()));
        (err, retry)
    })?;
    check(issuer, &metadata).map_err(|err| (err, false))?;
    Ok(metadata)
}

fn check(issuer: &str, metadata: &ServerMetadata) -> Result<(), AuthError> {
    if metadata.issuer != issuer {
        return Err(AuthError::Discovery(format!(
            "the token service calls itself `{}`, not the configured issuer `{}`; \
             set TOLLGATE_ISSUER to exactly the issuer of its tokens",
            metadata.issuer.escape_debug(),
            issuer.escape_debug()
        )));
    }
    let endpoints = [
        Some(&metadata.token_endpoint),
        metadata.jwks_uri.as_ref(),
        Some(&metadata.introspection_endpoint),
        Some(&metadata.tollgate_revocations_endpoint),
    ];
    for endpoint in endpoints.into_iter().flatten() {
        let ok = url::Url::parse(endpoint).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return Err(AuthError::Discovery(format!(
                "the metadata names an endpoint that is not an http(s) URL: `{}`",
                endpoint.escape_debug()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_follows_rfc_8414() {
        for (issuer, url) in [
            (
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080/.well-known/oauth-authorization-server",
            ),
            (
                "https://auth.example/",
                "https://auth.example/.well-known/oauth-authorization-server",
            ),
            (
                "https://example.com/tenant/a",
                "https://example.com/.well-known/oauth-authorization-server/tenant/a",
            ),
        ] {
            assert_eq!(metadata_url(issuer).unwrap(), url, "{issuer}");
        }
        for bad in [
            "",
            "auth.example",
            "ftp://x",
            "https://a/?q=1",
            "https://a/#f",
        ] {
            assert!(metadata_url(bad).is_err(), "{bad}");
        }
    }

    fn metadata(issuer: &str) -> ServerMetadata {
        let url = |p: &str| format!("{issuer}{p}");
        ServerMetadata {
            issuer: issuer.into(),
            token_endpoint: url("/oauth/token"),
            jwks_uri: Some(url("/.well-known/jwks.json")),
            introspection_endpoint: url("/oauth/introspect"),
            revocation_endpoint: url("/oauth/revoke"),
            grant_types_supported: vec![],
            response_types_supported: vec![],
            token_endpoint_auth_methods_supported: vec![],
            introspection_endpoint_auth_methods_supported: vec![],
            revocation_endpoint_auth_methods_supported: vec![],
            scopes_supported: vec![],
            token_signing_alg_values_supported: vec![],
            tollgate_revocations_endpoint: url("/v1/revocations"),
            tollgate_fingerprint_endpoint: url("/v1/fingerprint"),
        }
    }

    #[test]
    fn the_issuer_must_match_exactly() {
        assert!(check("https://a.example", &metadata("https://a.example")).is_ok());
        for other in [
            "https://a.example/",
            "https://A.example",
            "http://a.example",
        ] {
            let err = check(other, &metadata("https://a.example")).unwrap_err();
            assert_eq!(err.code(), "discovery_failed", "{other}");
        }
        let mut bad = metadata("https://a.example");
        bad.jwks_uri = Some("file:///etc/passwd".into());
        assert!(check("https://a.example", &bad).is_err());
    }
}
