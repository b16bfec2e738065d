//! [`Error`]: the one error type of the core.
//!
//! Every variant has a stable machine code ([`Error::code`], listed in
//! `docs/errors.md`) and a sentence for humans (its `Display`). Neither ever
//! contains a token, a secret or attacker-controlled text: the only data in a
//! variant are static strings chosen by this crate and numbers.

use std::fmt;

/// Why the core refused something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token is longer than [`crate::MAX_TOKEN_BYTES`].
    #[error("the token is larger than 8 KiB")]
    TooLarge,
    /// The token is not a well-formed compact JWS or its JSON is not what a
    /// Tollgate token holds. The detail names the part, never its content.
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// `alg` is not the algorithm of the key named by `kid`, is `none`, or is
    /// not one the policy allows.
    #[error("the token's algorithm is not allowed for its key")]
    AlgorithmNotAllowed,
    /// The header carries a member that would let the token choose its own
    /// key or content type (`jku`, `x5u`, `jwk`, `x5c`, `cty`, …).
    #[error("the token header carries `{0}`, which is never accepted")]
    HeaderNotAllowed(&'static str),
    /// The header has a `crit` member; Tollgate understands no extensions.
    #[error("the token header marks extensions as critical (`crit`), none are supported")]
    CriticalHeader,
    /// The header's `typ` is not `at+jwt`.
    #[error("the token's `typ` header is not `at+jwt`")]
    WrongTyp,
    /// No trusted key has the token's `kid`, or the token has no `kid`.
    #[error("the token names a key that is not trusted")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// A required claim is absent.
    #[error("the token lacks the `{0}` claim")]
    MissingClaim(&'static str),
    /// `exp` is in the past (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("the token claims to be issued in the future")]
    IssuedInFuture,
    /// `exp - iat` is longer than any token Tollgate issues.
    #[error("the token's lifetime is longer than allowed")]
    LifetimeTooLong,
    /// `iss` is not exactly the expected issuer.
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    /// `aud` does not contain the expected audience.
    #[error("the token is not meant for this audience")]
    WrongAudience,
    /// `token_type` is not the expected one (a service token used as a user
    /// token, or the reverse).
    #[error("the token is of the wrong type for this use")]
    WrongTokenType,
    /// The token, its session or its user was revoked.
    #[error("the token has been revoked")]
    Revoked,
    /// A key could not be loaded or is too weak.
    #[error("the key was refused: {0}")]
    InvalidKey(&'static str),
    /// Sealed key material could not be opened with the master key.
    #[error("the key material cannot be decrypted with this master key")]
    KeyDecryption,
    /// Signing failed in the crypto library.
    #[error("signing failed")]
    Signing,
    /// A password was refused by policy.
    #[error("{0}")]
    WeakPassword(&'static str),
    /// An e-mail address was refused (see [`crate::email`]); the sentence
    /// names the rule broken, never the address.
    #[error("the e-mail address is refused: {0}")]
    InvalidEmail(&'static str),
    /// A password hash could not be computed or parsed.
    #[error("the password hash is unusable: {0}")]
    PasswordHash(&'static str),
    /// The configuration is invalid; the report lists every problem.
    #[error("{0}")]
    Config(crate::config::ConfigErrors),
    /// A plans file is invalid.
    #[error("the plans file is invalid: {0}")]
    Plans(String),
    /// A JWK or JWKS document is invalid.
    #[error("the key set is invalid: {0}")]
    InvalidJwk(&'static str),
    /// A form body or query string does not parse (a broken `%`-escape,
    /// text that is not UTF-8, too many parameters); see [`crate::form`].
    #[error("the form is malformed: {0}")]
    MalformedForm(&'static str),
    /// A form or query names a parameter twice; `at` is the byte offset of
    /// the second occurrence (see [`crate::form::name_at`]).
    #[error("a parameter is repeated")]
    RepeatedParameter {
        /// Byte offset of the repeated parameter in the input.
        at: usize,
    },
    /// A usage batch breaks a rule of [`crate::usage`]; the problem names
    /// the event by position and the rule, never the event's text.
    #[error("{0}")]
    InvalidUsage(crate::usage::UsageProblem),
    /// A query names a parameter its reader does not know
    /// ([`crate::form::parse_known`]); `at` is the byte offset of that name.
    #[error("a parameter is not known")]
    UnknownParameter {
        /// Byte offset of the unknown parameter in the input.
        at: usize,
    },
}

impl Error {
    /// The stable machine code of this error (see `docs/errors.md`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::TooLarge => "token_too_large",
            Error::Malformed(_) => "malformed",
            Error::AlgorithmNotAllowed => "algorithm_not_allowed",
            Error::HeaderNotAllowed(_) => "header_not_allowed",
            Error::CriticalHeader => "unsupported_critical_header",
            Error::WrongTyp => "wrong_typ",
            Error::UnknownKey => "unknown_key",
            Error::BadSignature => "bad_signature",
            Error::MissingClaim(_) => "missing_claim",
            Error::Expired => "expired",
            Error::NotYetValid => "not_yet_valid",
            Error::IssuedInFuture => "issued_in_future",
            Error::LifetimeTooLong => "lifetime_too_long",
            Error::WrongIssuer => "wrong_issuer",
            Error::WrongAudience => "wrong_audience",
            Error::WrongTokenType => "wrong_token_type",
            Error::Revoked => "revoked",
            Error::InvalidKey(_) => "invalid_key",
            Error::KeyDecryption => "key_decryption_failed",
            Error::Signing => "signing_failed",
            Error::WeakPassword(_) => "weak_password",
            Error::InvalidEmail(_) => "invalid_email",
            Error::PasswordHash(_) => "password_hash",
            Error::Config(_) => "invalid_config",
            Error::Plans(_) => "invalid_plans",
            Error::InvalidJwk(_) => "invalid_jwk",
            Error::MalformedForm(_) => "malformed_form",
            Error::RepeatedParameter { .. } => "repeated_parameter",
            Error::UnknownParameter { .. } => "unknown_parameter",
            Error::InvalidUsage(_) => "invalid_usage",
        }
    }

    /// Whether this error is a judgement on a presented token (as opposed to
    /// a problem with keys, configuration or the caller).
    pub fn is_token_rejection(&self) -> bool {
        matches!(
            self,
            Error::TooLarge
                | Error::Malformed(_)
                | Error::AlgorithmNotAllowed
                | Error::HeaderNotAllowed(_)
                | Error::CriticalHeader
                | Error::WrongTyp
                | Error::UnknownKey
                | Error::BadSignature
                | Error::MissingClaim(_)
                | Error::Expired
                | Error::NotYetValid
                | Error::IssuedInFuture
                | Error::LifetimeTooLong
                | Error::WrongIssuer
                | Error::WrongAudience
                | Error::WrongTokenType
                | Error::Revoked
        )
    }

    /// A formatter that prints `code: sentence`.
    pub fn explain(&self) -> impl fmt::Display + '_ {
        struct Explain<'a>(&'a Error);
        impl fmt::Display for Explain<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}: {}", self.0.code(), self.0)
            }
        }
        Explain(self)
    }
}
