//! axum glue (feature `axum`): extractors, a requirements layer, the
//! fingerprint and health routes, and the one mapping of [`AuthError`] to
//! HTTP.
//!
//! - Extractors: [`Principal`] (any valid token), [`User`] (a user's access
//!   token only), [`Service`] (a service token only), and
//!   `Option<Principal>` (no `Authorization` header is `None`; a bad token
//!   is still refused). They need `Authenticator: FromRef<S>` for the
//!   router's state.
//! - [`RequireLayer`] (`authenticator.require(Requirements::user().role("admin"))`
//!   on `Router::route_layer`): validates the token for the token type the
//!   requirements name, checks scopes, roles and permissions, and hands the
//!   [`Principal`] to the handler's extractor without validating twice.
//! - Errors (RFC 6750 §3): 401 with `WWW-Authenticate: Bearer
//!   error="invalid_token", error_description="…"` for a bad, expired,
//!   revoked or wrong-type token (the body's `error` is the precise code:
//!   `expired`, `revoked`, `wrong_token_type`, …); 401 with a bare `Bearer`
//!   challenge when no token was sent; 400 `invalid_request` for a malformed
//!   `Authorization` header; 403 with `error="insufficient_scope"` for a
//!   missing scope, role or permission; 429 `rate_limited` with
//!   `Retry-After` and `retry_after_ms`; 403 without a challenge for
//!   `connection_limit` and `origin_not_allowed` (WebSocket handshakes:
//!   not about the token); 503 `token_service_unavailable`
//!   when the token cannot be checked (fail closed). Bodies are
//!   `{"error", "error_description"}` (`tollgate_core::wire::ErrorBody`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Json;
use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tollgate_core::Expect;
use tollgate_core::wire::ErrorBody;

use crate::{AuthError, Authenticator, Principal, Requirements};

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let description = self.to_string();
        let (status, challenge) = match &self {
            AuthError::MissingToken => (StatusCode::UNAUTHORIZED, Some("Bearer".to_owned())),
            AuthError::InvalidAuthorization => (
                StatusCode::BAD_REQUEST,
                Some(challenge("invalid_request", &description, None)),
            ),
            AuthError::Token(_) | AuthError::Inactive => (
                StatusCode::UNAUTHORIZED,
                Some(challenge("invalid_token", &description, None)),
            ),
            AuthError::InsufficientScope(scope) => (
                StatusCode::FORBIDDEN,
                Some(challenge("insufficient_scope", &description, Some(scope))),
            ),
            AuthError::PermissionDenied(_) => (
                StatusCode::FORBIDDEN,
                Some(challenge("insufficient_scope", &description, None)),
            ),
            AuthError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, None),
            // Not about the token: a challenge would only invite a retry
            // with another one.
            AuthError::ConnectionLimit { .. } | AuthError::OriginNotAllowed => {
                (StatusCode::FORBIDDEN, None)
            }
            AuthError::SubjectMismatch => (
                StatusCode::FORBIDDEN,
                Some(challenge("invalid_token", &description, None)),
            ),
            AuthError::Unavailable(_)
            | AuthError::Refused { .. }
            | AuthError::Discovery(_)
            | AuthError::TooManyConnections { .. } => (StatusCode::SERVICE_UNAVAILABLE, None),
            AuthError::Config(_) => (StatusCode::INTERNAL_SERVER_ERROR, None),
        };
        let mut body = ErrorBody::new(self.code(), description);
        let mut headers = HeaderMap::new();
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        match &self {
            AuthError::RateLimited { retry_after_ms } => {
                body.retry_after_ms = Some(*retry_after_ms);
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_ms.div_ceil(1000).max(1)),
                );
            }
            AuthError::Unavailable(_)
            | AuthError::Refused { .. }
            | AuthError::Discovery(_)
            | AuthError::TooManyConnections { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        (status, headers, Json(body)).into_response()
    }
}

/// `Bearer error="…", error_description="…"[, scope="…"]`, with the
/// description reduced to characters a quoted-string may hold unescaped
/// (RFC 6750 §3: `%x20-21 / %x23-5B / %x5D-7E`).
fn challenge(error: &str, description: &str, scope: Option<&str>) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii() && (' '..='~').contains(&c) && c != '"' && c != '\\' {
                    c
                } else {
                    '\''
                }
            })
            .collect()
    };
    let mut out = format!(
        "Bearer error=\"{error}\", error_description=\"{}\"",
        clean(description)
    );
    if let Some(scope) = scope {
        out.push_str(&format!(", scope=\"{}\"", clean(scope)));
    }
    out
}

/// The `Authorization` header's bytes; two headers are malformed.
pub(crate) fn authorization(headers: &HeaderMap) -> Result<Option<&[u8]>, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(AuthError::InvalidAuthorization);
    }
    Ok(first.map(HeaderValue::as_bytes))
}

async fn authenticate_parts(
    parts: &Parts,
    authenticator: &Authenticator,
    expect: Expect,
) -> Result<Principal, AuthError> {
    let value = authorization(&parts.headers)?;
    authenticator.authenticate_header(value, expect).await
}

impl<S> FromRequestParts<S> for Principal
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let authenticator = Authenticator::from_ref(state);
        let principal = authenticate_parts(parts, &authenticator, Expect::Any).await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

impl<S> OptionalFromRequestParts<S> for Principal
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if parts.headers.get(header::AUTHORIZATION).is_none() {
            return Ok(None);
        }
        <Principal as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// A user's access token (a service token is refused with
/// `wrong_token_type`).
#[derive(Debug, Clone)]
pub struct User(pub Principal);

/// A service's token (a user token is refused with `wrong_token_type`).
#[derive(Debug, Clone)]
pub struct Service(pub Principal);

async fn extract_kind<S>(
    parts: &mut Parts,
    state: &S,
    expect: Expect,
) -> Result<Principal, AuthError>
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    if let Some(principal) = parts.extensions.get::<Principal>() {
        let kind_ok = match expect {
            Expect::Access => principal.is_user(),
            Expect::Service => principal.is_service(),
            Expect::Any => true,
        };
        if !kind_ok {
            return Err(AuthError::Token(tollgate_core::Error::WrongTokenType));
        }
        return Ok(principal.clone());
    }
    let authenticator = Authenticator::from_ref(state);
    let principal = authenticate_parts(parts, &authenticator, expect).await?;
    parts.extensions.insert(principal.clone());
    Ok(principal)
}

impl<S> FromRequestParts<S> for User
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        extract_kind(parts, state, Expect::Access).await.map(User)
    }
}

impl<S> FromRequestParts<S> for Service
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        extract_kind(parts, state, Expect::Service)
            .await
            .map(Service)
    }
}

/// A layer that lets a request through only when its token meets
/// [`Requirements`]; the [`Principal`] goes into the request's extensions
/// for the handler. Build with [`Authenticator::require`].
#[derive(Debug, Clone)]
pub struct RequireLayer {
    authenticator: Authenticator,
    requirements: Arc<Requirements>,
}

impl Authenticator {
    /// A layer requiring `requirements` of every request (use it with
    /// `Router::route_layer`).
    pub fn require(&self, requirements: Requirements) -> RequireLayer {
        RequireLayer {
            authenticator: self.clone(),
            requirements: Arc::new(requirements),
        }
    }
}

impl<S> tower::Layer<S> for RequireLayer {
    type Service = RequireService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireService {
            inner,
            authenticator: self.authenticator.clone(),
            requirements: self.requirements.clone(),
        }
    }
}

/// The service of [`RequireLayer`].
#[derive(Debug, Clone)]
pub struct RequireService<S> {
    inner: S,
    authenticator: Authenticator,
    requirements: Arc<Requirements>,
}

impl<S, B> tower::Service<Request<B>> for RequireService<S>
where
    S: tower::Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone that was polled ready goes into the future; the fresh
        // clone stays for the next call (tower's usual dance).
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let authenticator = self.authenticator.clone();
        let requirements = self.requirements.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let checked =
                match authenticate_parts(&parts, &authenticator, requirements.expect()).await {
                    Ok(principal) => requirements.check(&principal).map(|()| principal),
                    Err(err) => Err(err),
                };
            match checked {
                Ok(principal) => {
                    parts.extensions.insert(principal);
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(err) => Ok(err.into_response()),
            }
        })
    }
}

/// `GET /v1/fingerprint`: what this service trusts (CONTRACT §7). Mount it
/// with [`fingerprint_router`] or as a handler with the authenticator as
/// state.
pub async fn fingerprint(State(authenticator): State<Authenticator>) -> impl IntoResponse {
    Json(authenticator.fingerprint())
}

/// `GET /healthz`-style handler: the authenticator's [`crate::Health`] as
/// JSON, 200 when healthy, 503 when degraded (feed down, breaker open).
pub async fn health(State(authenticator): State<Authenticator>) -> Response {
    let health = authenticator.health();
    let status = if health.is_healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health.to_json())).into_response()
}

/// A router serving `GET /v1/fingerprint`, to merge into a service's
/// router whatever its state type.
pub fn fingerprint_router<S>(authenticator: Authenticator) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    axum::Router::new()
        .route("/v1/fingerprint", get(fingerprint))
        .with_state(authenticator)
}
