//! The introspection client (RFC 7662) behind the circuit breaker.
//!
//! Used for tokens the SDK cannot judge alone: deployments without a JWKS
//! (HS256 without a shared secret here), and every token while the
//! revocation feed is down under the `introspect` policy. It only asks; the
//! answer's claims are then checked by the core validator like a local
//! token's (`Validator::check_introspected`). Values that cannot be a
//! Tollgate token never get here (the authenticator refuses them with
//! `Validator::check_form`).
//!
//! An "inactive" answer is kept for [`NEGATIVE_TTL`] (issue 15, item 6): a
//! caller sending the same dead token again and again costs one question
//! per that time, not one per request. Kept by the token's SHA-256, never
//! the token; at most [`NEGATIVE_CAPACITY`] of them (past it the set starts
//! over). Only "inactive" is kept — an unanswered question is asked again,
//! and an active answer goes to the authenticator's claims cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tollgate_core::Claims;
use tollgate_core::wire::Introspection;

use crate::breaker::{Breaker, BreakerConfig, BreakerState};
use crate::http::{Credentials, Failure, Http};

/// What the token service said about a token.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Active, with its claims (still to be checked by the validator).
    Active(Box<Claims>),
    /// Not active, or active with claims that are not a Tollgate access or
    /// service token's.
    Inactive,
    /// No answer: the breaker is open or the call failed.
    Unavailable(Failure),
}

/// How long an "inactive" answer is used before the token service is asked
/// about the same token again.
pub(crate) const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Most "inactive" answers kept.
pub(crate) const NEGATIVE_CAPACITY: usize = 4096;

/// Tokens (by SHA-256) answered inactive, and when; `Debug` shows the count.
#[derive(Default)]
struct Inactive(Mutex<HashMap<[u8; 32], Instant>>);

impl std::fmt::Debug for Inactive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.0.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("Inactive").field("tokens", &len).finish()
    }
}

impl Inactive {
    /// Whether `digest` was answered inactive within [`NEGATIVE_TTL`].
    fn contains(&self, digest: &[u8; 32], now: Instant) -> bool {
        let inactive = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        inactive
            .get(digest)
            .is_some_and(|at| now.saturating_duration_since(*at) < NEGATIVE_TTL)
    }

    fn insert(&self, digest: [u8; 32], now: Instant) {
        let mut inactive = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if inactive.len() >= NEGATIVE_CAPACITY && !inactive.contains_key(&digest) {
            inactive.clear();
        }
        inactive.insert(digest, now);
    }
}

#[derive(Debug)]
pub(crate) struct Introspector {
    http: Http,
    endpoint: String,
    credentials: Credentials,
    breaker: Breaker,
    /// Tokens (by SHA-256) answered inactive, and when.
    inactive: Inactive,
    /// Introspection requests sent.
    requests: AtomicU64,
}

impl Introspector {
    pub(crate) fn new(
        http: Http,
        endpoint: String,
        credentials: Credentials,
        breaker: BreakerConfig,
    ) -> Introspector {
        Introspector {
            http,
            endpoint,
            credentials,
            breaker: Breaker::new("introspection", breaker),
            inactive: Inactive::default(),
            requests: AtomicU64::new(0),
        }
    }

    /// Introspection requests sent so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker.state(Instant::now())
    }

    /// Asks about `token`.
    pub(crate) async fn introspect(&self, token: &str) -> Answer {
        let digest = tollgate_core::token_digest(token);
        if self.inactive.contains(&digest, Instant::now()) {
            return Answer::Inactive;
        }
        let Some(permit) = self.breaker.admit(Instant::now()) else {
            return Answer::Unavailable(Failure::Unreachable("the circuit breaker is open"));
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        let result: Result<Introspection, Failure> = self
            .http
            .post_form(
                &self.endpoint,
                Some(self.credentials.header()),
                &[("token", token)],
            )
            .await;
        let reachable = !matches!(result, Err(Failure::Unreachable(_)));
        let now = Instant::now();
        permit.record(reachable, now);
        match result {
            Ok(answer) if answer.active => match answer.claims() {
                Ok(claims) => Answer::Active(Box::new(claims)),
                Err(err) => {
                    tracing::debug!(
                        token = %tollgate_core::token_fingerprint(token),
                        reason = err.code(),
                        "introspection: an active answer that is not an access or service token"
                    );
                    self.inactive.insert(digest, now);
                    Answer::Inactive
                }
            },
            Ok(_) => {
                self.inactive.insert(digest, now);
                Answer::Inactive
            }
            Err(failure) => {
                tracing::warn!(
                    client_id = self.credentials.client_id(),
                    failure = %failure.describe(),
                    "introspection failed"
                );
                Answer::Unavailable(failure)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inactive_answers_are_kept_briefly_by_digest_and_bounded() {
        let inactive = Inactive::default();
        let start = Instant::now();
        let digest = tollgate_core::token_digest("a.b.c");
        assert!(!inactive.contains(&digest, start));
        inactive.insert(digest, start);
        assert!(inactive.contains(&digest, start + NEGATIVE_TTL - Duration::from_millis(1)));
        assert!(!inactive.contains(&digest, start + NEGATIVE_TTL));
        assert!(!inactive.contains(&tollgate_core::token_digest("a.b.d"), start));
        // Never more than the capacity, however many tokens.
        for n in 0..NEGATIVE_CAPACITY + 10 {
            inactive.insert(tollgate_core::token_digest(&n.to_string()), start);
        }
        let kept = inactive.0.lock().unwrap().len();
        assert!((1..=NEGATIVE_CAPACITY).contains(&kept), "{kept}");
        // Debug shows a count, not the digests.
        assert!(!format!("{inactive:?}").contains(&format!("{:?}", digest[0..4].to_vec())));
        assert!(format!("{inactive:?}").contains("tokens"));
    }
}
