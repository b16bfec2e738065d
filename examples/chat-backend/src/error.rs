//! [`ApiError`]: every refusal of this service, mapped to HTTP in one place.
//! Token and permission problems are the SDK's [`AuthError`] and keep its
//! mapping (401/403/429/503 with RFC 6750 challenges).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tollgate_client::AuthError;

/// Why a request was refused.
#[derive(Debug)]
pub enum ApiError {
    /// The token, a permission or the rate (the SDK's judgement).
    Auth(AuthError),
    /// No plan knows this tool.
    UnknownTool,
    /// The request body is not what the route takes.
    BadRequest(&'static str),
    /// No route here.
    NotFound,
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        ApiError::Auth(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, description) = match self {
            ApiError::Auth(err) => return err.into_response(),
            ApiError::UnknownTool => (
                StatusCode::NOT_FOUND,
                "unknown_tool",
                "no plan offers this tool",
            ),
            ApiError::BadRequest(why) => (StatusCode::BAD_REQUEST, "invalid_request", why),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", "no such route"),
        };
        (
            status,
            Json(json!({"error": code, "error_description": description})),
        )
            .into_response()
    }
}
