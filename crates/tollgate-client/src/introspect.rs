//! The introspection client (RFC 7662) behind the circuit breaker.
//!
//! Used for tokens the SDK cannot judge alone: deployments without a JWKS
//! (HS256 without a shared secret here), opaque tokens, and every token
//! while the revocation feed is down under the `introspect` policy. It only
//! asks; the answer's claims are then checked by the core validator like a
//! local token's (`Validator::check_introspected`).

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

#[derive(Debug)]
pub(crate) struct Introspector {
    http: Http,
    endpoint: String,
    credentials: Credentials,
    breaker: Breaker,
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
        }
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker.state(Instant::now())
    }

    /// Asks about `token`.
    pub(crate) async fn introspect(&self, token: &str) -> Answer {
        let Some(permit) = self.breaker.admit(Instant::now()) else {
            return Answer::Unavailable(Failure::Unreachable("the circuit breaker is open"));
        };
        let result: Result<Introspection, Failure> = self
            .http
            .post_form(
                &self.endpoint,
                Some(self.credentials.header()),
                &[("token", token)],
            )
            .await;
        let reachable = !matches!(result, Err(Failure::Unreachable(_)));
        permit.record(reachable, Instant::now());
        match result {
            Ok(answer) if answer.active => match answer.claims() {
                Ok(claims) => Answer::Active(Box::new(claims)),
                Err(err) => {
                    tracing::debug!(
                        token = %tollgate_core::token_fingerprint(token),
                        reason = err.code(),
                        "introspection: an active answer that is not an access or service token"
                    );
                    Answer::Inactive
                }
            },
            Ok(_) => Answer::Inactive,
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
