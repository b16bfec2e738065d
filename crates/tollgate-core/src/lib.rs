//! Tollgate's core: everything that decides whether a token is good, and
//! nothing that talks to the outside world.
//!
//! This crate holds the token formats ([`claims`]), the keys ([`keys`]), the
//! compact JWS layer ([`jws`]), the one validator every other crate calls
//! ([`validate`]), the configuration builder ([`config`]), plans ([`plans`]),
//! password hashing policy ([`password`]), e-mail normalisation ([`email`]), the rules of usage events ([`usage`]) and the wire bodies shared by the
//! server and the SDK ([`wire`]).
//!
//! **Invariant:** no I/O, no async, no clock. Callers pass `now` (Unix
//! seconds) and the bytes they read. The one exception is the operating
//! system's CSPRNG, used for key generation, token ids and salts.

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod audit;
pub mod cache;
pub mod claims;
pub mod config;
pub mod email;
mod encoding;
pub mod error;
pub mod fingerprint;
pub mod form;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod json;
pub mod jws;
pub mod keys;
pub mod opaque;
pub mod password;
pub mod plans;
pub mod secret;
pub mod usage;
pub mod validate;
pub mod wire;

pub use claims::{Claims, TokenType};
pub use error::Error;
pub use keys::{Algorithm, KeyStatus, ManagedKey, SigningKey, VerifyingKey, VerifyingKeys};
pub use secret::Secret;
pub use validate::{Expect, Revocations, ValidationPolicy, Validator};

/// Seconds since the Unix epoch. Every time in the core is one of these,
/// passed in by the caller.
pub type UnixTime = u64;

/// Largest token the validator will look at, in bytes (CONTRACT §3).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// SHA-256 of a token: a key to remember something about a token by
/// (an SDK's cache of "inactive" answers) without holding the token.
pub fn token_digest(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Fingerprint of a token for logs: the first 8 hex characters of its
/// SHA-256. Tokens themselves never reach a log line.
pub fn token_fingerprint(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = String::with_capacity(8);
    for byte in &digest.as_ref()[..4] {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}
