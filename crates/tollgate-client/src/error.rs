//! [`AuthError`]: the one error type of the SDK.
//!
//! Every variant has a stable machine code ([`AuthError::code`], listed in
//! `docs/errors.md`); a token refused by the core validator keeps the core's
//! code (`expired`, `revoked`, `wrong_audience`, …). Messages never contain
//! a token, a secret, or text from the network beyond an HTTP status: the
//! details of a failure are logged where it happens, not carried here.
//!
//! The mapping to HTTP lives in one place, the `IntoResponse` impl of the
//! `axum` feature.

use tollgate_core::Error as CoreError;

/// Why the SDK refused a request or could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The request carries no bearer token.
    #[error("the request carries no bearer token")]
    MissingToken,
    /// The `Authorization` header is not one `Bearer` token.
    #[error("the Authorization header is not a single Bearer token")]
    InvalidAuthorization,
    /// The core validator refused the token; the core error says why.
    #[error("{0}")]
    Token(CoreError),
    /// The token service says the token is not active (unknown, expired or
    /// revoked; introspection does not say which).
    #[error("the token service says the token is not active")]
    Inactive,
    /// The token lacks a scope the route requires.
    #[error("the token lacks the scope `{0}`")]
    InsufficientScope(String),
    /// The caller lacks a role or permission the route requires.
    #[error("the caller lacks `{0}`")]
    PermissionDenied(String),
    /// The caller is over its plan's rate.
    #[error("too many calls; retry in {retry_after_ms} ms")]
    RateLimited {
        /// Milliseconds until a call will be allowed again.
        retry_after_ms: u64,
    },
    /// The user already holds as many WebSocket connections as their plan
    /// allows (CONTRACT §5).
    #[error("the plan allows {limit} WebSocket connections per user and they are all open")]
    ConnectionLimit {
        /// The plan's limit.
        limit: u32,
    },
    /// This instance holds as many WebSocket connections as it may
    /// (`TOLLGATE_WS_MAX_CONNECTIONS`): 503, try another instance or later.
    #[error("this instance holds its maximum of {limit} WebSocket connections")]
    TooManyConnections {
        /// The instance's limit.
        limit: usize,
    },
    /// A browser's WebSocket handshake from an origin the service does not
    /// allow (cross-site WebSocket hijacking).
    #[error("this origin may not open WebSocket connections here")]
    OriginNotAllowed,
    /// A token offered to replace a live connection's token belongs to
    /// someone else.
    #[error("the new token is for another subject than the connection's")]
    SubjectMismatch,
    /// The token service cannot be reached and nothing cached can answer:
    /// the token is refused (fail closed).
    #[error("the token service cannot be reached to check this token: {0}")]
    Unavailable(&'static str),
    /// Discovery or the first key fetch failed while building.
    #[error("cannot use the token service: {0}")]
    Discovery(String),
    /// The SDK's configuration is invalid (every problem, one per line).
    #[error("{0}")]
    Config(String),
    /// The token service refused a request of the SDK itself (its client
    /// credentials, a scope it asked for).
    #[error("the token service refused the request (HTTP {status}, `{code}`)")]
    Refused {
        /// The HTTP status of the answer.
        status: u16,
        /// The answer's `error` code (only `[a-z_]`, at most 64 characters).
        code: String,
    },
}

impl AuthError {
    /// The stable machine code (see `docs/errors.md`).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::InvalidAuthorization => "invalid_request",
            AuthError::Token(err) => err.code(),
            AuthError::Inactive => "inactive",
            AuthError::InsufficientScope(_) => "insufficient_scope",
            AuthError::PermissionDenied(_) => "permission_denied",
            AuthError::RateLimited { .. } => "rate_limited",
            AuthError::ConnectionLimit { .. } => "connection_limit",
            AuthError::TooManyConnections { .. } => "too_many_connections",
            AuthError::OriginNotAllowed => "origin_not_allowed",
            AuthError::SubjectMismatch => "subject_mismatch",
            AuthError::Unavailable(_) => "token_service_unavailable",
            AuthError::Discovery(_) => "discovery_failed",
            AuthError::Config(_) => "invalid_config",
            AuthError::Refused { .. } => "token_service_refused",
        }
    }

    /// Whether this is a judgement on the presented token or caller (a
    /// client error), as opposed to the SDK or the token service failing.
    pub fn is_rejection(&self) -> bool {
        match self {
            AuthError::Token(err) => err.is_token_rejection(),
            AuthError::MissingToken
            | AuthError::InvalidAuthorization
            | AuthError::Inactive
            | AuthError::InsufficientScope(_)
            | AuthError::PermissionDenied(_)
            | AuthError::RateLimited { .. }
            | AuthError::ConnectionLimit { .. }
            | AuthError::OriginNotAllowed
            | AuthError::SubjectMismatch => true,
            AuthError::Unavailable(_)
            | AuthError::TooManyConnections { .. }
            | AuthError::Discovery(_)
            | AuthError::Config(_)
            | AuthError::Refused { .. } => false,
        }
    }

    /// A `Refused` from an answer's status and `error` code; the code is
    /// kept only when it looks like a code, so no network text reaches a
    /// message.
    pub(crate) fn refused(status: u16, code: Option<&str>) -> AuthError {
        let code = code
            .filter(|c| {
                !c.is_empty()
                    && c.len() <= 64
                    && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            })
            .unwrap_or("unknown")
            .to_owned();
        AuthError::Refused { status, code }
    }
}

impl From<CoreError> for AuthError {
    fn from(err: CoreError) -> Self {
        match err {
            CoreError::Config(errors) => AuthError::Config(errors.to_string()),
            other => AuthError::Token(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_codes_pass_through_and_sdk_codes_are_stable() {
        assert_eq!(AuthError::Token(CoreError::Expired).code(), "expired");
        assert_eq!(AuthError::Token(CoreError::Revoked).code(), "revoked");
        assert_eq!(
            AuthError::Unavailable("x").code(),
            "token_service_unavailable"
        );
        assert_eq!(
            AuthError::RateLimited { retry_after_ms: 5 }.code(),
            "rate_limited"
        );
        assert!(AuthError::Inactive.is_rejection());
        assert!(!AuthError::Unavailable("x").is_rejection());
    }

    #[test]
    fn refused_keeps_only_code_like_text() {
        assert_eq!(
            AuthError::refused(401, Some("invalid_client")),
            AuthError::Refused {
                status: 401,
                code: "invalid_client".into()
            }
        );
        assert_eq!(
            AuthError::refused(400, Some("<script>")),
            AuthError::Refused {
                status: 400,
                code: "unknown".into()
            }
        );
    }
}
