//! [`AppState`]: what every handler shares — configuration, store, clock,
//! keys, the revocation view and pump, plans, the password pool and the
//! limiters — plus the few operations that touch several of them (validate
//! a token, record revocations).
//!
//! It holds no request state and no lock across an `.await`.

use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::watch;
use tollgate_core::config::Config;
use tollgate_core::plans::Plans;
use tollgate_core::wire::RevocationEvent;
use tollgate_core::{Claims, Expect, UnixTime};
use tollgate_store::{NewRevocation, RevocationKind, Store};

use crate::clients::ClientCache;
use crate::clock::Clock;
use crate::fanout::{Fanout, Notice};
use crate::keys::{KeyManager, KeySet};
use crate::limits::{FailureCounts, RateLimiter};
use crate::passwords::PasswordPool;
use crate::revocations::{Pump, RevocationView};
use crate::{ApiError, metrics};

/// The shared state; cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

pub(crate) struct Shared {
    /// The key of the console's CSRF tokens.
    pub console_csrf: crate::console::CsrfKey,
    /// The resolved configuration.
    pub config: Config,
    /// The record of truth: [`Shared::guarded`], every call bounded.
    pub store: Arc<dyn Store>,
    /// The same store, with its known health (`/readyz`, the probe).
    pub guarded: Arc<crate::health::Guarded>,
    /// The one source of "now".
    pub clock: Clock,
    /// Signing and verifying keys.
    pub keys: KeyManager,
    /// What is revoked, in memory.
    pub revocations: RevocationView,
    /// Keeps the view and the SSE feed in step with the store.
    pub pump: Pump,
    /// "Poll now" notices to and from other instances, when Redis is
    /// configured.
    pub fanout: Option<Arc<Fanout>>,
    /// Plans, for permissions.
    pub plans: Plans,
    /// argon2 on the blocking pool, bounded.
    pub passwords: PasswordPool,
    /// Failed logins per account (normalised e-mail) and client address:
    /// one address's failures never hold back another's logins.
    pub account_failures: Box<dyn FailureCounts>,
    /// Failed logins per account from every address together; applies only
    /// to addresses that have failed for the account themselves.
    pub account_global_failures: Box<dyn FailureCounts>,
    /// Failed logins per client address (any account).
    pub address_failures: Box<dyn FailureCounts>,
    /// Registration attempts per client address (every attempt counts:
    /// each costs a password hash).
    pub registrations: Box<dyn FailureCounts>,
    /// Introspection requests per client.
    pub introspection_rate: RateLimiter,
    /// Service clients recently read, for client authentication.
    pub clients: ClientCache,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Flips to `true` when the server begins shutting down (ends SSE streams).
    pub shutdown: watch::Receiver<bool>,
    /// The audit trail's recorder ([`crate::audit`]).
    pub audit: crate::audit::Auditor,
    /// Options that are not part of the configuration.
    pub options: crate::Options,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }

    /// Resolves once the server begins shutting down.
    pub async fn stopped(&self) {
        let mut shutdown = self.shutdown.clone();
        loop {
            if *shutdown.borrow_and_update() {
                return;
            }
            if shutdown.changed().await.is_err() {
                return;
            }
        }
    }

    /// Now, by the server's clock.
    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// The key set in force now.
    pub fn key_set(&self) -> Arc<KeySet> {
        self.keys.current(self.now())
    }

    /// Validates a presented token with the core validator and the
    /// revocation view, counting failures by code. A token the current key
    /// set accepted before is only rechecked (time, type, revocation).
    pub fn validate(&self, token: &str, expect: Expect) -> Result<Claims, tollgate_core::Error> {
        let now = self.now();
        let keys = self.keys.current(now);
        let result = match keys.validated.get(token) {
            // Seen and accepted before by this very validator: the signature,
            // issuer and audience hold; time, type and revocation may not.
            Some(claims) => keys
                .validator
                .recheck(&claims, expect, now, &self.revocations)
                .map(|()| Claims::clone(&claims)),
            None => {
                let result = keys
                    .validator
                    .validate(token, expect, now, &self.revocations);
                if let Ok(claims) = &result {
                    let leeway = keys.validator.policy().leeway();
                    keys.validated.insert(token, claims.clone(), now, leeway);
                }
                result
            }
        };
        if let Err(error) = &result {
            ::metrics::counter!(metrics::VALIDATION_FAILURES, "code" => error.code()).increment(1);
        }
        result
    }

    /// Authenticates a presented token: [`AppState::validate`] under the
    /// one staleness rule of the server. A refusal is always certain (the
    /// revocation view only grows, keys and time do not depend on the
    /// store), so it is answered; an acceptance is only as good as the
    /// revocation view, so while the view is stale (the store cannot be
    /// read, or has not been lately) the answer is `Unavailable` (503),
    /// never a yes that another instance's revocation may contradict.
    /// Every bearer-authenticated route and introspection go through here
    /// (issue 16).
    pub fn authenticate(&self, token: &str, expect: Expect) -> Result<Claims, ApiError> {
        let claims = self
            .validate(token, expect)
            .map_err(ApiError::InvalidToken)?;
        if !self.revocations.is_current() {
            ::metrics::counter!(metrics::STALE_REFUSALS).increment(1);
            return Err(ApiError::Unavailable);
        }
        Ok(claims)
    }

    /// Makes durable revocations visible at once in this instance, wakes
    /// the pump to publish them, and tells the other instances to poll the
    /// store now (they would learn through the store anyway, a poll
    /// interval later).
    pub fn revoked(&self, events: &[RevocationEvent]) {
        self.revocations.apply(events);
        for event in events {
            let kind = match event.kind {
                RevocationKind::Token => "token",
                RevocationKind::Session => "session",
                RevocationKind::User => "user",
                RevocationKind::Keys => "keys",
                RevocationKind::Plan => "plan",
            };
            ::metrics::counter!(metrics::REVOCATIONS, "kind" => kind).increment(1);
        }
        self.pump.wake();
        self.announce(Notice::Revocations);
    }

    /// Tells the other instances (through Redis, when configured) that the
    /// store changed. Never waits.
    pub fn announce(&self, notice: Notice) {
        if let Some(fanout) = &self.fanout {
            fanout.announce(notice);
        }
    }

    /// How long a revocation of access tokens must be remembered: until
    /// every token minted up to `now` has expired (plus leeway).
    pub fn access_horizon(&self, now: UnixTime) -> UnixTime {
        now.saturating_add(self.config.access_token_ttl)
            .saturating_add(self.config.leeway)
    }

    /// Ends one session durably and applies it. `Ok(false)` when it had
    /// ended already.
    pub async fn end_session(&self, sid: &str) -> Result<bool, ApiError> {
        let now = self.now();
        let revocation = NewRevocation {
            kind: RevocationKind::Session,
            value: sid.to_owned(),
            at: now,
            expires_at: self.access_horizon(now),
        };
        match self.store.revoke_session(sid, revocation).await? {
            Some(event) => {
                self.revoked(std::slice::from_ref(&event));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Puts a user's new plan on the feed (a `plan` notice), published at
    /// once by this instance.
    pub async fn announce_plan(&self, sub: &str, plan: &str) -> Result<(), ApiError> {
        let event = crate::accounts::announce_plan(
            self.store.as_ref(),
            &self.config,
            sub,
            plan,
            self.now(),
        )
        .await?;
        self.revoked(&[event]);
        Ok(())
    }

    /// Revokes every token of a user (or client) issued before now and ends
    /// their sessions, durably.
    pub async fn revoke_subject(&self, sub: &str) -> Result<(), ApiError> {
        let events =
            crate::accounts::revoke_subject(self.store.as_ref(), &self.config, sub, self.now())
                .await?;
        self.revoked(&events);
        Ok(())
    }
}
