//! `tollgate-client`: the SDK a service embeds to trust Tollgate's tokens,
//! and nothing else.
//!
//! The pieces, one module each:
//! - [`Authenticator`] (`authenticator`): RFC 8414 discovery, the JWKS
//!   cache (`jwks`), a cache of validated claims (`cache`), the revocation
//!   feed follower (`feed`, holding a [`RevocationSet`]), and introspection
//!   behind a circuit breaker (`introspect`, `breaker`). Every token is
//!   judged by [`tollgate_core::Validator`]; this crate adds no validation
//!   logic of its own.
//! - [`ServiceTokenSource`]: client-credentials tokens for calling other
//!   services, cached and renewed before they expire.
//! - [`Principal`] and [`Requirements`]: who called, and what a route needs
//!   (token type, scopes, roles, `tool:*` permissions).
//! - [`limits`]: per-user tool-call rate limits from the plans, and usage
//!   counts for billing.
//! - feature `axum`: extractors, a requirements layer, the one mapping of
//!   [`AuthError`] to HTTP (RFC 6750), and the fingerprint route.
//! - feature `ws`: WebSocket authentication (CONTRACT §6): the handshake
//!   extractor, origin checks, per-user connection limits, and a supervisor
//!   that closes live connections on expiry (4401) and revocation (4403).
//! - feature `testing`: `TestIssuer`, real tokens for a service's own tests
//!   and an `Authenticator` that trusts them without HTTP.
//!
//! **Invariant:** this crate never depends on `tollgate-server` or
//! `tollgate-store`; it shares only `tollgate-core` (and its wire types)
//! with the token service.
//! **Invariant:** when the token service cannot be reached and nothing
//! cached can answer, a token is refused ([`AuthError::Unavailable`]),
//! never accepted.
//! **Invariant:** tokens and secrets never reach a log line, a `Debug`
//! output or an error message; logs name a token by
//! [`tollgate_core::token_fingerprint`].

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod authenticator;
mod bearer;
pub mod breaker;
mod cache;
mod clock;
pub mod crypto;
mod discovery;
mod error;
mod feed;
mod http;
mod introspect;
mod jwks;
pub mod limits;
mod principal;
mod revocations;
mod service_token;
mod sse;

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "ws")]
pub mod ws;

pub use authenticator::{Authenticator, AuthenticatorBuilder, Health, Mode};
pub use bearer::bearer_token;
pub use breaker::{BreakerConfig, BreakerState};
pub use error::AuthError;
pub use feed::FeedState;
pub use principal::{Principal, Requirements};
pub use revocations::{RevocationListener, RevocationSet, Revoked};
pub use service_token::{ServiceToken, ServiceTokenSource, ServiceTokenSourceBuilder};
pub use tollgate_core::config;
pub use tollgate_core::config::FeedDownPolicy;
pub use tollgate_core::{Claims, Expect, TokenType};
