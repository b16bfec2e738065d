//! The SDK's cache of validated tokens: the core's
//! [`TokenCache`](tollgate_core::cache::TokenCache), the same one the token
//! service uses, holding the principal and when the token service last
//! confirmed the token.
//!
//! A hit skips the signature check, never the rest: the authenticator runs
//! `Validator::recheck` (time, token type, revocation) on the cached claims.

use std::sync::atomic::{AtomicU64, Ordering};

use tollgate_core::UnixTime;
use tollgate_core::cache::{Expiring, TokenCache};

use crate::Principal;

/// What the SDK keeps per token.
#[derive(Debug)]
pub(crate) struct Cached {
    /// Who the token stands for.
    pub principal: Principal,
    /// The generation of the key set it was judged under.
    pub generation: u64,
    /// Unix milliseconds of the last time the token service confirmed the
    /// token (introspection), or 0. Used while the feed is down.
    confirmed_ms: AtomicU64,
}

impl Cached {
    pub(crate) fn new(principal: Principal, confirmed_ms: u64, generation: u64) -> Cached {
        Cached {
            principal,
            generation,
            confirmed_ms: AtomicU64::new(confirmed_ms),
        }
    }

    pub(crate) fn confirmed_ms(&self) -> u64 {
        self.confirmed_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn confirm(&self, at_ms: u64) {
        self.confirmed_ms.store(at_ms, Ordering::Relaxed);
    }
}

impl Expiring for Cached {
    fn expires(&self) -> UnixTime {
        self.principal.claims().exp
    }
}

/// The cache the authenticator keeps.
pub(crate) type ClaimsCache = TokenCache<Cached>;
