//! The router: every route of CONTRACT §4 and the layers around them.
//!
//! Layers, outermost first: request id → metrics and the request log →
//! request timeout (a slow body or handler answers 408 JSON; the SSE feed
//! is not affected, its response starts at once) → panic guard (a bug
//! answers 500 JSON, never a dropped connection) → body limit. Routes that return or take tokens, secrets or revocations also
//! get `Cache-Control: no-store` and `Pragma: no-cache`. Unknown paths and
//! methods answer JSON 404 and 405.

pub(crate) mod admin;
pub(crate) mod auth;
pub(crate) mod discovery;
pub(crate) mod feed;
pub(crate) mod oauth;
pub(crate) mod ops;
pub(crate) mod usage;

use std::any::Any;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;

use crate::extract::BODY_LIMIT;
use crate::state::AppState;
use crate::{ApiError, metrics, request_id};

/// The whole application.
pub(crate) fn router(state: AppState) -> Router {
    let sensitive = Router::new()
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/introspect", post(oauth::introspect))
        .route("/oauth/revoke", post(oauth::revoke))
        .route("/v1/auth/register", post(auth::register))
        .route("/v1/auth/login", post(auth::login))
        .route("/v1/auth/refresh", post(auth::refresh))
        .route("/v1/auth/logout", post(auth::logout))
        .route("/v1/auth/me", get(auth::me))
        .route("/v1/sessions", get(auth::sessions))
        .route(
            "/v1/sessions/{sid}",
            axum::routing::delete(auth::end_session),
        )
        .route(
            "/v1/admin/users",
            get(admin::list_users).post(admin::create_user),
        )
        .route(
            "/v1/admin/users/{id}",
            get(admin::get_user).patch(admin::update_user),
        )
        .route("/v1/admin/users/{id}/revoke", post(admin::revoke_user))
        .route(
            "/v1/admin/clients",
            get(admin::list_clients).post(admin::create_client),
        )
        .route("/v1/admin/clients/{id}", get(admin::get_client))
        .route("/v1/admin/keys", get(admin::list_keys))
        .route("/v1/admin/keys/rotate", post(admin::rotate_keys))
        .route("/v1/admin/audit", get(admin::audit))
        .route("/v1/auth/usage", get(usage::own))
        .route("/v1/usage", get(usage::report))
        .route(
            "/v1/usage/events",
            // A full batch is larger than the other routes' bodies.
            post(usage::record).layer(DefaultBodyLimit::max(
                tollgate_core::wire::MAX_USAGE_BODY_BYTES,
            )),
        )
        .route("/v1/revocations", get(feed::page))
        .route("/v1/revocations/stream", get(feed::stream))
        .route_layer(middleware::from_fn(no_store));
    let public = Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route("/v1/fingerprint", get(discovery::fingerprint))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi));
    Router::new()
        .merge(public)
        .merge(sensitive)
        .merge(crate::console::router(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(middleware::from_fn(timeout))
        .layer(middleware::from_fn(metrics::track))
        .layer(middleware::from_fn(request_id::layer))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    if crate::console::owns(uri.path()) {
        return crate::console::not_found();
    }
    ApiError::NotFound.into_response()
}

async fn method_not_allowed(uri: axum::http::Uri) -> Response {
    if crate::console::owns(uri.path()) {
        return crate::console::method_not_allowed();
    }
    ApiError::MethodNotAllowed.into_response()
}

/// How long a request may take to be read and answered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

async fn timeout(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout.into_response(),
    }
}

fn panicked(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    ApiError::Internal.into_response()
}

/// RFC 6749 §5.1 / RFC 7662 / RFC 7009: answers carrying tokens or
/// token state must not be cached.
async fn no_store(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
