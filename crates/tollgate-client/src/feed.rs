//! The revocation feed follower: keeps a [`RevocationSet`] up to date with
//! the token service, so a revoked token, session or user is refused within
//! a second of its revocation.
//!
//! One session: read the pages of `GET /v1/revocations?after=CURSOR` until
//! `has_more` is false, then follow `GET /v1/revocations/stream` (SSE) with
//! `Last-Event-ID: CURSOR`, applying each `revocation` event as it arrives.
//! Any failure ends the session; the follower reconnects after a capped
//! exponential backoff with jitter and resumes from the last cursor it
//! applied, so nothing between two sessions is lost. An event it cannot
//! read also ends the session (rather than skipping a revocation).
//!
//! The feed authenticates with the service's client credentials (a client
//! with scope `introspect`). Its state ([`FeedState`]) is reported in the
//! `Authenticator`'s health and decides, with the feed-down policy, whether
//! local validation may be trusted.
//!
//! A `keys` event (a rotation) revokes nothing: it only moves the cursor
//! and tells the JWKS cache to refetch at once (see [`crate::jwks`]).
//!
//! A connection that dies silently is noticed after `idle_timeout` without
//! a byte (the token service sends a keep-alive every 15 s).

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header;
use tokio::time::Instant;
use tollgate_core::wire::{RevocationEvent, RevocationKind, RevocationPage};

use crate::RevocationSet;
use crate::http::{Credentials, Failure, Http, send_failure, status_failure};
use crate::jwks::KeySource;
use crate::sse::SseParser;

/// Where the revocation feed is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedState {
    /// No feed: the SDK has no client credentials (or is a test
    /// authenticator whose revocations are local).
    Disabled,
    /// Starting; not yet caught up.
    Connecting,
    /// Caught up and following the stream: local revocations are current.
    Live,
    /// Disconnected; reconnecting. The feed-down policy applies.
    Down,
}

impl FeedState {
    /// `disabled`, `connecting`, `live` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedState::Disabled => "disabled",
            FeedState::Connecting => "connecting",
            FeedState::Live => "live",
            FeedState::Down => "down",
        }
    }

    fn from_u8(value: u8) -> FeedState {
        match value {
            0 => FeedState::Disabled,
            1 => FeedState::Connecting,
            2 => FeedState::Live,
            _ => FeedState::Down,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            FeedState::Disabled => 0,
            FeedState::Connecting => 1,
            FeedState::Live => 2,
            FeedState::Down => 3,
        }
    }
}

/// The feed's state, shared with the authenticator.
#[derive(Debug)]
pub(crate) struct FeedStatus {
    state: AtomicU8,
    since_ms: AtomicU64,
    sessions: AtomicU64,
    /// Unix milliseconds of the last time the feed was known to be current:
    /// a page read, or a byte of the live stream (0: never).
    heard_ms: AtomicU64,
    /// Woken on every change of state.
    changed: tokio::sync::Notify,
}

impl FeedStatus {
    pub(crate) fn new(state: FeedState) -> FeedStatus {
        FeedStatus {
            state: AtomicU8::new(state.as_u8()),
            since_ms: AtomicU64::new(crate::clock::now_ms()),
            sessions: AtomicU64::new(0),
            heard_ms: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
        }
    }

    pub(crate) fn state(&self) -> FeedState {
        FeedState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// How many milliseconds the revocations are behind at `now_ms`: `None`
    /// while the feed is live (or there is none by design), else the time
    /// since it was last known current (a stream that breaks was current
    /// until then; one that goes silent, only up to its last byte).
    pub(crate) fn staleness_ms(&self, now_ms: u64) -> Option<u64> {
        match self.state() {
            FeedState::Live | FeedState::Disabled => None,
            FeedState::Connecting | FeedState::Down => {
                Some(now_ms.saturating_sub(self.heard_ms.load(Ordering::Relaxed)))
            }
        }
    }

    /// The feed is current as of now.
    fn heard(&self) {
        self.heard_ms
            .fetch_max(crate::clock::now_ms(), Ordering::Relaxed);
    }

    /// Resolves at the next change of state (create it before reading the
    /// state, so a change in between is not missed).
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Unix milliseconds since which the feed is in its state.
    pub(crate) fn since_ms(&self) -> u64 {
        self.since_ms.load(Ordering::Relaxed)
    }

    /// How many stream sessions went live.
    pub(crate) fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    fn set(&self, state: FeedState) {
        let previous = FeedState::from_u8(self.state.swap(state.as_u8(), Ordering::AcqRel));
        if state == FeedState::Live {
            self.heard();
        }
        if previous != state {
            self.since_ms
                .store(crate::clock::now_ms(), Ordering::Relaxed);
            self.changed.notify_waiters();
            metrics::gauge!("tollgate_client_feed_live").set(if state == FeedState::Live {
                1.0
            } else {
                0.0
            });
            match state {
                FeedState::Live => tracing::info!("revocation feed: live"),
                FeedState::Down => tracing::warn!("revocation feed: down, reconnecting"),
                _ => {}
            }
        }
    }
}

/// Reconnection and liveness settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FeedConfig {
    /// First reconnection delay; doubled after each failed session.
    pub backoff_min: Duration,
    /// Longest reconnection delay.
    pub backoff_max: Duration,
    /// Silence after which a stream is considered dead.
    pub idle_timeout: Duration,
    /// Time allowed for the stream's answer headers.
    pub connect_timeout: Duration,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(45),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Follower {
    pub http: Http,
    pub page_url: String,
    pub stream_url: String,
    pub credentials: Credentials,
    pub revocations: Arc<RevocationSet>,
    pub status: Arc<FeedStatus>,
    pub config: FeedConfig,
    /// The JWKS cache, told of each `keys` event (none without a JWKS).
    pub keys: Option<Arc<KeySource>>,
}

impl Follower {
    /// Follows the feed until the task is aborted.
    pub(crate) async fn run(self) {
        let mut backoff = self.config.backoff_min;
        let jitter = std::collections::hash_map::RandomState::new();
        let mut attempt: u64 = 0;
        loop {
            let started = Instant::now();
            let failure = self.session().await;
            self.status.set(FeedState::Down);
            tracing::debug!(failure = %failure.describe(), "revocation feed session ended");
            // A session that stayed up a while starts the backoff over.
            if started.elapsed() > self.config.backoff_max * 2 {
                backoff = self.config.backoff_min;
            }
            attempt += 1;
            // Full jitter between half and the whole delay, so a fleet of
            // services does not reconnect in lockstep.
            let spread = jitter.hash_one(attempt) % 1000;
            let delay = backoff / 2 + backoff.mul_f64(spread as f64 / 2000.0);
            tokio::time::sleep(delay).await;
            backoff = (backoff * 2).min(self.config.backoff_max);
        }
    }

    /// One session; returns why it ended.
    async fn session(&self) -> Failure {
        if let Err(failure) = self.catch_up().await {
            return failure;
        }
        let cursor = self.revocations.cursor();
        let request = self
            .http
            .client()
            .get(&self.stream_url)
            .header(header::AUTHORIZATION, self.credentials.header().clone())
            .header(header::ACCEPT, "text/event-stream")
            .header("last-event-id", cursor.to_string())
            .send();
        let mut response = match tokio::time::timeout(self.config.connect_timeout, request).await {
            Err(_) => return Failure::Unreachable("the stream did not answer in time"),
            Ok(Err(err)) => return send_failure(&err),
            Ok(Ok(response)) if !response.status().is_success() => {
                let failure = status_failure(response).await;
                if let Failure::Refused { status, .. } = &failure {
                    tracing::error!(
                        status,
                        client_id = self.credentials.client_id(),
                        "the revocation stream refused the service's credentials (needs a client with scope `introspect`)"
                    );
                }
                return failure;
            }
            Ok(Ok(response)) => response,
        };
        let is_sse = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            return Failure::Invalid("the stream is not text/event-stream");
        }
        self.status.sessions.fetch_add(1, Ordering::Relaxed);
        self.status.set(FeedState::Live);
        let mut parser = SseParser::default();
        loop {
            let chunk = match tokio::time::timeout(self.config.idle_timeout, response.chunk()).await
            {
                // Silence: current only up to the last byte.
                Err(_) => return Failure::Unreachable("the stream went silent"),
                // An open stream was current until it broke, now.
                Ok(Err(err)) => {
                    self.status.heard();
                    return send_failure(&err);
                }
                Ok(Ok(None)) => {
                    self.status.heard();
                    return Failure::Unreachable("the stream ended");
                }
                Ok(Ok(Some(chunk))) => chunk,
            };
            self.status.heard();
            self.revocations.sweep_if_due(crate::clock::now());
            let events = match parser.push(&chunk) {
                Ok(events) => events,
                Err(_) => return Failure::Invalid("the stream sent an over-long line"),
            };
            for event in events.iter().filter(|e| e.event == "revocation") {
                let Ok(revocation) = serde_json::from_str::<RevocationEvent>(&event.data) else {
                    tracing::error!("revocation feed: an event cannot be read; reconnecting");
                    return Failure::Invalid("a revocation event cannot be read");
                };
                self.apply(&revocation);
            }
        }
    }

    /// Reads the pages after the current cursor.
    async fn catch_up(&self) -> Result<(), Failure> {
        loop {
            let cursor = self.revocations.cursor();
            let url = format!("{}?after={cursor}", self.page_url);
            let page: RevocationPage = self
                .http
                .get_json(&url, Some(self.credentials.header()))
                .await?;
            for event in &page.events {
                self.apply(event);
            }
            if !page.has_more {
                // Everything revoked before this read is known.
                self.status.heard();
                return Ok(());
            }
            if self.revocations.cursor() <= cursor {
                return Err(Failure::Invalid("the feed pages do not advance"));
            }
        }
    }

    fn apply(&self, event: &RevocationEvent) {
        if event.kind == RevocationKind::Keys
            && let Some(keys) = &self.keys
        {
            keys.rotated(event.key_ids());
        }
        self.revocations.apply(event, crate::clock::now());
        metrics::counter!("tollgate_client_revocations_applied_total").increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness_counts_from_when_the_feed_was_last_current() {
        let status = FeedStatus::new(FeedState::Connecting);
        let now = crate::clock::now_ms();
        // Never current: everything may be missing.
        assert_eq!(status.staleness_ms(now), Some(now));
        status.set(FeedState::Live);
        assert_eq!(status.staleness_ms(now + 60_000), None);
        let heard = status.heard_ms.load(Ordering::Relaxed);
        status.set(FeedState::Down);
        assert_eq!(status.staleness_ms(heard + 500), Some(500));
        // Reconnection attempts do not make it fresher; a page read does.
        status.set(FeedState::Connecting);
        assert_eq!(status.staleness_ms(heard + 700), Some(700));
        std::thread::sleep(Duration::from_millis(5));
        status.heard();
        assert!(status.staleness_ms(heard + 700).unwrap() < 700);
        assert_eq!(FeedStatus::new(FeedState::Disabled).staleness_ms(now), None);
    }
}
