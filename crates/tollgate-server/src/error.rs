//! [`ApiError`]: every refusal the HTTP API can give, and its one mapping
//! to a response (status, `WWW-Authenticate`/`Retry-After` headers and the
//! JSON body `{"error", "error_description"}`).
//!
//! Codes are stable and listed in `docs/errors.md`. At the OAuth endpoints
//! they are RFC 6749 §5.2 / RFC 6750 §3.1 codes. A variant never carries a
//! token, a secret or text taken from a request: descriptions are static
//! sentences or the core's own sentences. Source errors (store, crypto) are
//! logged where they are converted and never sent.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tollgate_core::wire::ErrorBody;
use tollgate_store::StoreError;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A parameter is missing, repeated or malformed; the body does not
    /// parse. 400 `invalid_request`.
    #[error("{0}")]
    InvalidRequest(Cow<'static, str>),
    /// Client authentication failed. 401 `invalid_client` with
    /// `WWW-Authenticate: Basic`.
    #[error("client authentication failed")]
    InvalidClient,
    /// The refresh token is unknown, expired, used, revoked or not the
    /// caller's. 400 `invalid_grant`.
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidGrant,
    /// A grant type this server does not offer (the password grant
    /// included). 400 `unsupported_grant_type`.
    #[error("the grant type is not supported; users log in at /v1/auth/login")]
    UnsupportedGrantType,
    /// A scope the client or session was not given. 400 `invalid_scope`.
    #[error("the requested scope exceeds what was granted")]
    InvalidScope,
    /// No bearer token was sent. 401 `missing_token`.
    #[error("this endpoint needs a bearer token")]
    MissingToken,
    /// The bearer token was refused; the core says why. 401 `invalid_token`.
    #[error("{0}")]
    InvalidToken(tollgate_core::Error),
    /// The caller is authenticated but lacks the role or scope. 403
    /// `insufficient_scope`.
    #[error("the caller lacks the role or scope this needs")]
    InsufficientScope,
    /// Wrong e-mail or password, or a disabled user: one answer for all.
    /// 401 `invalid_credentials`.
    #[error("the e-mail or password is wrong")]
    InvalidCredentials,
    /// Self-registration is closed. 403 `registration_closed`.
    #[error("registration is closed; ask an administrator for an account")]
    RegistrationClosed,
    /// The e-mail address is not one. 400 `invalid_email`.
    #[error("the e-mail address is not valid")]
    InvalidEmail,
    /// The password breaks the policy. 400 `weak_password`.
    #[error("{0}")]
    WeakPassword(&'static str),
    /// The e-mail is registered already. 409 `email_taken`.
    #[error("a user with this e-mail address exists")]
    EmailTaken,
    /// No plan has this name. 400 `unknown_plan`.
    #[error("there is no plan with this name")]
    UnknownPlan,
    /// The client id is taken (by a client or a user). 409 `client_id_taken`.
    #[error("the client id is taken")]
    ClientIdTaken,
    /// HS256 deployments have one key, the shared secret. 409
    /// `rotation_not_supported`.
    #[error("keys cannot be rotated with HS256; change TOLLGATE_HMAC_SECRET instead")]
    RotationNotSupported,
    /// Another process rotated the signing keys at the same moment, twice
    /// in a row; nothing was changed. 409 `rotation_conflict`.
    #[error(
        "another rotation of the signing keys ran at the same moment; nothing was changed, try again"
    )]
    RotationConflict,
    /// The change would disable or demote the last enabled admin. 409
    /// `last_admin`.
    #[error("this would leave no enabled admin; make another user admin first")]
    LastAdmin,
    /// A usage batch breaks a rule of [`tollgate_core::usage`]. 400
    /// `invalid_usage` (413 for a batch of too many events).
    #[error("{0}")]
    InvalidUsage(tollgate_core::usage::UsageProblem),
    /// A usage event names a user that does not exist; nothing was stored.
    /// 400 `unknown_user`.
    #[error("usage event {index}: no user has this id; nothing of the batch was stored")]
    UnknownUser {
        /// Position of the (first such) event in the batch.
        index: usize,
    },
    /// No such resource or route. 404 `not_found`.
    #[error("not found")]
    NotFound,
    /// The route exists, not with this method. 405 `method_not_allowed`.
    #[error("the method is not allowed on this path")]
    MethodNotAllowed,
    /// The body is larger than the limit. 413 `payload_too_large`.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// The request (its body, or the work it asked for) took longer than
    /// the request timeout. 408 `request_timeout`.
    #[error("the request took too long")]
    RequestTimeout,
    /// Wrong `Content-Type`. 415 `unsupported_media_type`.
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    /// Too many failed logins for this account or address, or too many
    /// registrations from this address. 429 `too_many_attempts` with
    /// `Retry-After`.
    #[error("too many attempts; try again later")]
    TooManyAttempts {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The caller exceeded its request rate. 429 `rate_limited` with
    /// `Retry-After`.
    #[error("too many requests; slow down")]
    RateLimited {
        /// Milliseconds to wait.
        retry_after_ms: u64,
    },
    /// Every password hashing slot is busy. 503 `overloaded` with
    /// `Retry-After`.
    #[error("the server is busy; try again shortly")]
    Overloaded,
    /// The store cannot be reached: nothing was done. 503
    /// `temporarily_unavailable` with `Retry-After`.
    #[error("the service is temporarily unavailable; nothing was changed")]
    Unavailable,
    /// A bug or a failure of a dependency that is not the caller's fault.
    /// 500 `server_error`.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::InvalidClient => "invalid_client",
            ApiError::InvalidGrant => "invalid_grant",
            ApiError::UnsupportedGrantType => "unsupported_grant_type",
            ApiError::InvalidScope => "invalid_scope",
            ApiError::MissingToken => "missing_token",
            ApiError::InvalidToken(_) => "invalid_token",
            ApiError::InsufficientScope => "insufficient_scope",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::RegistrationClosed => "registration_closed",
            ApiError::InvalidEmail => "invalid_email",
            ApiError::WeakPassword(_) => "weak_password",
            ApiError::EmailTaken => "email_taken",
            ApiError::UnknownPlan => "unknown_plan",
            ApiError::ClientIdTaken => "client_id_taken",
            ApiError::RotationNotSupported => "rotation_not_supported",
            ApiError::RotationConflict => "rotation_conflict",
            ApiError::LastAdmin => "last_admin",
            ApiError::InvalidUsage(_) => "invalid_usage",
            ApiError::UnknownUser { .. } => "unknown_user",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::TooManyAttempts { .. } => "too_many_attempts",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Overloaded => "overloaded",
            ApiError::Unavailable => "temporarily_unavailable",
            ApiError::Internal => "server_error",
        }
    }

    /// A 400 `invalid_request` with a fixed sentence.
    pub(crate) fn bad_request(sentence: &'static str) -> ApiError {
        ApiError::InvalidRequest(Cow::Borrowed(sentence))
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_)
            | ApiError::InvalidGrant
            | ApiError::UnsupportedGrantType
            | ApiError::InvalidScope
            | ApiError::InvalidEmail
            | ApiError::WeakPassword(_)
            | ApiError::UnknownPlan
            | ApiError::UnknownUser { .. } => StatusCode::BAD_REQUEST,
            ApiError::InvalidUsage(tollgate_core::usage::UsageProblem::TooMany) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::InvalidUsage(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidClient
            | ApiError::MissingToken
            | ApiError::InvalidToken(_)
            | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::InsufficientScope | ApiError::RegistrationClosed => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::EmailTaken
            | ApiError::ClientIdTaken
            | ApiError::RotationNotSupported
            | ApiError::RotationConflict
            | ApiError::LastAdmin => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyAttempts { .. } | ApiError::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Overloaded | ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = ErrorBody::new(self.code(), self.to_string());
        let mut headers: Vec<(header::HeaderName, HeaderValue)> = Vec::new();
        match &self {
            ApiError::InvalidClient => headers.push((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tollgate\""),
            )),
            ApiError::MissingToken | ApiError::InvalidCredentials => headers.push((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tollgate\""),
            )),
            ApiError::InvalidToken(reason) => {
                // The core's sentences are fixed ASCII text without quotes,
                // so they fit a quoted-string; fall back to the bare form.
                let value = format!(
                    "Bearer realm=\"tollgate\", error=\"invalid_token\", error_description=\"{reason}\""
                );
                headers.push((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static(
                        "Bearer realm=\"tollgate\", error=\"invalid_token\"",
                    )),
                ));
            }
            ApiError::InsufficientScope => headers.push((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tollgate\", error=\"insufficient_scope\""),
            )),
            ApiError::TooManyAttempts { retry_after } => {
                headers.push((header::RETRY_AFTER, HeaderValue::from(*retry_after)));
            }
            ApiError::RateLimited { retry_after_ms } => {
                body.retry_after_ms = Some(*retry_after_ms);
                let seconds = retry_after_ms.div_ceil(1000).max(1);
                headers.push((header::RETRY_AFTER, HeaderValue::from(seconds)));
            }
            ApiError::Overloaded | ApiError::Unavailable => {
                headers.push((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            _ => {}
        }
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().extend(headers);
        response
    }
}

impl From<StoreError> for ApiError {
    /// Store failures are logged here (their detail never reaches the
    /// caller). A misconfigured store (a refused connection setting, a
    /// schema this binary does not know) is no more the caller's fault than
    /// an unreachable one and nothing was done: 503, logged as an error for
    /// the operator. A conflict reaching this conversion was not expected by
    /// the handler, so it is a bug, not the caller's fault.
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %error, "store unavailable");
                ApiError::Unavailable
            }
            StoreError::Config(_) => {
                tracing::error!(error = %error, "store misconfigured");
                ApiError::Unavailable
            }
            _ => {
                tracing::error!(error = %error, "store error");
                ApiError::Internal
            }
        }
    }
}

impl From<tollgate_core::Error> for ApiError {
    /// Core errors outside token validation (signing, key loading, hashing)
    /// are server faults.
    fn from(error: tollgate_core::Error) -> ApiError {
        tracing::error!(code = error.code(), "core error: {error}");
        ApiError::Internal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(error: ApiError) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    /// One check per arm: status, code, and the headers the arm must send.
    async fn check(error: ApiError, status: u16, code: &str, header: Option<(&str, &str)>) {
        let (got_status, headers, body) = answer(error).await;
        assert_eq!(got_status.as_u16(), status, "{code}");
        assert_eq!(body["error"], code);
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        );
        if let Some((name, value)) = header {
            assert_eq!(headers[name], value, "{code}");
        }
    }

    #[tokio::test]
    async fn invalid_request() {
        check(
            ApiError::bad_request("the `x` parameter is missing"),
            400,
            "invalid_request",
            None,
        )
        .await;
    }

    #[tokio::test]
    async fn invalid_client_asks_for_basic() {
        check(
            ApiError::InvalidClient,
            401,
            "invalid_client",
            Some(("www-authenticate", "Basic realm=\"tollgate\"")),
        )
        .await;
    }

    #[tokio::test]
    async fn invalid_grant() {
        check(ApiError::InvalidGrant, 400, "invalid_grant", None).await;
    }

    #[tokio::test]
    async fn unsupported_grant_type() {
        check(
            ApiError::UnsupportedGrantType,
            400,
            "unsupported_grant_type",
            None,
        )
        .await;
    }

    #[tokio::test]
    async fn invalid_scope() {
        check(ApiError::InvalidScope, 400, "invalid_scope", None).await;
    }

    #[tokio::test]
    async fn missing_token() {
        check(
            ApiError::MissingToken,
            401,
            "missing_token",
            Some(("www-authenticate", "Bearer realm=\"tollgate\"")),
        )
        .await;
    }

    #[tokio::test]
    async fn invalid_token_names_the_reason_in_the_challenge() {
        check(
            ApiError::InvalidToken(tollgate_core::Error::Expired),
            401,
            "invalid_token",
            Some((
                "www-authenticate",
                "Bearer realm=\"tollgate\", error=\"invalid_token\", error_description=\"the token has expired\"",
            )),
        )
        .await;
        let (_, _, body) = answer(ApiError::InvalidToken(tollgate_core::Error::Revoked)).await;
        assert_eq!(body["error_description"], "the token has been revoked");
    }

    #[tokio::test]
    async fn insufficient_scope() {
        check(
            ApiError::InsufficientScope,
            403,
            "insufficient_scope",
            Some((
                "www-authenticate",
                "Bearer realm=\"tollgate\", error=\"insufficient_scope\"",
            )),
        )
        .await;
    }

    #[tokio::test]
    async fn invalid_credentials() {
        check(
            ApiError::InvalidCredentials,
            401,
            "invalid_credentials",
            Some(("www-authenticate", "Bearer realm=\"tollgate\"")),
        )
        .await;
    }

    #[tokio::test]
    async fn usage_refusals() {
        use tollgate_core::usage::UsageProblem;
        check(
            ApiError::InvalidUsage(UsageProblem::InFuture { index: 3 }),
            400,
            "invalid_usage",
            None,
        )
        .await;
        check(
            ApiError::InvalidUsage(UsageProblem::TooMany),
            413,
            "invalid_usage",
            None,
        )
        .await;
        check(
            ApiError::UnknownUser { index: 0 },
            400,
            "unknown_user",
            None,
        )
        .await;
        let (_, _, body) = answer(ApiError::UnknownUser { index: 7 }).await;
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| d.starts_with("usage event 7: "))
        );
    }

    #[tokio::test]
    async fn registration_closed() {
        check(
            ApiError::RegistrationClosed,
            403,
            "registration_closed",
            None,
        )
        .await;
    }

    #[tokio::test]
    async fn invalid_email() {
        check(ApiError::InvalidEmail, 400, "invalid_email", None).await;
    }

    #[tokio::test]
    async fn weak_password() {
        check(
            ApiError::WeakPassword("too short"),
            400,
            "weak_password",
            None,
        )
        .await;
    }

    #[tokio::test]
    async fn email_taken() {
        check(ApiError::EmailTaken, 409, "email_taken", None).await;
    }

    #[tokio::test]
    async fn unknown_plan() {
        check(ApiError::UnknownPlan, 400, "unknown_plan", None).await;
    }

    #[tokio::test]
    async fn client_id_taken() {
        check(ApiError::ClientIdTaken, 409, "client_id_taken", None).await;
    }

    #[tokio::test]
    async fn rotation_not_supported() {
        check(
            ApiError::RotationNotSupported,
            409,
            "rotation_not_supported",
            None,
        )
        .await;
    }

    #[tokio::test]
    async fn rotation_conflict() {
        check(ApiError::RotationConflict, 409, "rotation_conflict", None).await;
    }

    #[tokio::test]
    async fn last_admin() {
        check(ApiError::LastAdmin, 409, "last_admin", None).await;
    }

    #[tokio::test]
    async fn not_found() {
        check(ApiError::NotFound, 404, "not_found", None).await;
    }

    #[tokio::test]
    async fn method_not_allowed() {
        check(ApiError::MethodNotAllowed, 405, "method_not_allowed", None).await;
    }

    #[tokio::test]
    async fn payload_too_large() {
        check(ApiError::PayloadTooLarge, 413, "payload_too_large", None).await;
    }

    #[tokio::test]
    async fn request_timeout() {
        check(ApiError::RequestTimeout, 408, "request_timeout", None).await;
    }

    #[tokio::test]
    async fn unsupported_media_type() {
        check(
            ApiError::UnsupportedMediaType("send JSON"),
            415,
            "unsupported_media_type",
            None,
        )
        .await;
    }

    #[tokio::test]
    async fn too_many_attempts_says_when_to_retry() {
        check(
            ApiError::TooManyAttempts { retry_after: 8 },
            429,
            "too_many_attempts",
            Some(("retry-after", "8")),
        )
        .await;
    }

    #[tokio::test]
    async fn rate_limited_says_when_to_retry() {
        check(
            ApiError::RateLimited {
                retry_after_ms: 1500,
            },
            429,
            "rate_limited",
            Some(("retry-after", "2")),
        )
        .await;
        let (_, _, body) = answer(ApiError::RateLimited {
            retry_after_ms: 1500,
        })
        .await;
        assert_eq!(body["retry_after_ms"], 1500);
    }

    #[tokio::test]
    async fn overloaded() {
        check(
            ApiError::Overloaded,
            503,
            "overloaded",
            Some(("retry-after", "1")),
        )
        .await;
    }

    #[tokio::test]
    async fn unavailable() {
        check(
            ApiError::Unavailable,
            503,
            "temporarily_unavailable",
            Some(("retry-after", "1")),
        )
        .await;
    }

    #[tokio::test]
    async fn internal() {
        check(ApiError::Internal, 500, "server_error", None).await;
    }

    #[test]
    fn store_errors_map_to_503_or_500_without_their_detail() {
        let unavailable = ApiError::from(StoreError::Unavailable(
            "disk I/O error at /secret/path".into(),
        ));
        assert_eq!(unavailable, ApiError::Unavailable);
        assert!(!unavailable.to_string().contains("secret"));
        assert_eq!(
            ApiError::from(StoreError::Corrupt("row".into())),
            ApiError::Internal
        );
        let misconfigured = ApiError::from(StoreError::Config(
            "the database schema does not match this Tollgate: /secret/path".into(),
        ));
        assert_eq!(misconfigured, ApiError::Unavailable);
        assert!(!misconfigured.to_string().contains("secret"));
    }
}
