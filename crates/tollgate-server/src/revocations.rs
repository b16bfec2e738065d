//! The in-memory revocation view and the pump that keeps it (and the SSE
//! feed) in step with the store.
//!
//! [`RevocationView`] implements [`tollgate_core::Revocations`]: the
//! validator asks it on every token, so it answers from memory. It is filled
//! at start from the store, updated at once by every revoking write this
//! instance makes, and caught up by [`Pump`], which polls
//! `revocations_after(cursor)` about every half second (and right after each
//! local write) so that instances sharing one database converge.
//!
//! The pump is also the only publisher of the live SSE feed: it broadcasts
//! events strictly in cursor order, as read back from the store, so a
//! subscriber never sees cursor 10 before cursor 9 of the same store.
//!
//! **Invariant:** the view only grows between prunes, and an entry is
//! pruned only after its `expires_at` (every token it could kill has expired).
//! So a "no" from the view is always certain; a "yes" is only as good as
//! the last read of the store. When the last read failed, or the last
//! successful one began more than [`RevocationView::max_age`] ago (a read
//! that hangs on a black-holed database never fails by itself), the view
//! says it is stale ([`RevocationView::is_current`]) and every
//! bearer-authenticated route and introspection answer 503 instead of a
//! possibly wrong yes (see `AppState::authenticate`, the one place that
//! applies this rule).

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast};
use tollgate_core::wire::{RevocationEvent, RevocationKind};
use tollgate_core::{Revocations, UnixTime};
use tollgate_store::{Store, StoreError};

use crate::keys::KeyManager;

/// How many events one store read returns at most.
pub(crate) const PAGE: u32 = 500;

#[derive(Default)]
struct Entries {
    /// jti → expires_at.
    tokens: HashMap<String, UnixTime>,
    /// sid → expires_at.
    sessions: HashMap<String, UnixTime>,
    /// sub → (cut-off, expires_at).
    users: HashMap<String, (UnixTime, UnixTime)>,
}

/// `fresh_as_of` when the last read of the store failed.
const FAILED: u64 = u64::MAX;

/// What this instance knows has been revoked, and how recently it knew.
pub(crate) struct RevocationView {
    entries: RwLock<Entries>,
    /// Milliseconds after `epoch` at which the last successful read of the
    /// store began, or [`FAILED`] when the last read failed.
    fresh_as_of: AtomicU64,
    /// The monotonic origin of `fresh_as_of` (not the server's `Clock`,
    /// which tests stop and move by whole seconds).
    epoch: Instant,
    /// How old the last successful read may be for the view to be current.
    max_age: Duration,
    /// Whether the view was current when last asked (to log transitions
    /// once).
    reported_current: AtomicBool,
}

impl RevocationView {
    /// An empty view, current as of now, that goes stale `max_age` after
    /// its last successful read began.
    pub fn new(max_age: Duration) -> RevocationView {
        RevocationView {
            entries: RwLock::new(Entries::default()),
            fresh_as_of: AtomicU64::new(0),
            epoch: Instant::now(),
            max_age,
            reported_current: AtomicBool::new(true),
        }
    }

    /// How long after its last successful read began the view is still
    /// trusted: four poll intervals, and at least two seconds, so that a
    /// read delayed by load is not an outage but one that hangs is.
    pub fn max_age(poll_interval: Duration) -> Duration {
        poll_interval.saturating_mul(4).max(Duration::from_secs(2))
    }

    /// Records events (idempotent: applying one twice changes nothing).
    pub fn apply<'a>(&self, events: impl IntoIterator<Item = &'a RevocationEvent>) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        for event in events {
            let value = event.value.clone();
            match event.kind {
                RevocationKind::Token => {
                    let at = entries.tokens.entry(value).or_insert(0);
                    *at = (*at).max(event.expires_at);
                }
                RevocationKind::Session => {
                    let at = entries.sessions.entry(value).or_insert(0);
                    *at = (*at).max(event.expires_at);
                }
                RevocationKind::User => {
                    let entry = entries.users.entry(value).or_insert((0, 0));
                    entry.0 = entry.0.max(event.at);
                    entry.1 = entry.1.max(event.expires_at);
                }
                // A rotation revokes nothing (the pump reloads the keys), nor
                // does a plan change (the SDKs apply it to their limits).
                RevocationKind::Keys | RevocationKind::Plan => {}
            }
        }
    }

    /// Forgets entries that can no longer kill a live token.
    pub fn prune(&self, now: UnixTime) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.tokens.retain(|_, exp| *exp > now);
        entries.sessions.retain(|_, exp| *exp > now);
        entries.users.retain(|_, (_, exp)| *exp > now);
    }

    /// Whether the last read of the store succeeded and began at most
    /// `max_age` ago. When not, other instances' revocations may be
    /// missing from this view.
    pub fn is_current(&self) -> bool {
        let as_of = self.fresh_as_of.load(Ordering::Relaxed);
        let current = as_of != FAILED
            && self.millis_since_epoch().saturating_sub(as_of) <= millis(self.max_age);
        let was = self.reported_current.swap(current, Ordering::Relaxed);
        if was != current {
            if current {
                tracing::info!("the revocation view is current again");
            } else if as_of == FAILED {
                tracing::warn!("the store cannot be read: the revocation view is stale");
            } else {
                tracing::warn!("the store has not been read lately: the revocation view is stale");
            }
        }
        current
    }

    /// A read that began at `started` (see [`RevocationView::read_started`])
    /// succeeded.
    fn read_succeeded(&self, started: u64) {
        // A read that began earlier never makes the view look fresher; one
        // after a failure always replaces the failure.
        let _ = self
            .fresh_as_of
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |as_of| {
                (as_of == FAILED || as_of < started).then_some(started)
            });
        self.is_current();
    }

    /// The last read failed.
    fn read_failed(&self) {
        self.fresh_as_of.store(FAILED, Ordering::Relaxed);
        self.is_current();
    }

    /// A timestamp for [`RevocationView::read_succeeded`], taken before a
    /// read begins.
    fn read_started(&self) -> u64 {
        self.millis_since_epoch()
    }

    fn millis_since_epoch(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    /// Number of entries (for metrics).
    pub fn len(&self) -> usize {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.tokens.len() + entries.sessions.len() + entries.users.len()
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX - 1)
}

impl Revocations for RevocationView {
    fn is_token_revoked(&self, jti: &str) -> bool {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.tokens.contains_key(jti)
    }

    fn is_session_revoked(&self, sid: &str) -> bool {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.sessions.contains_key(sid)
    }

    fn revoked_before(&self, sub: &str) -> Option<UnixTime> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.users.get(sub).map(|(cutoff, _)| *cutoff)
    }
}

/// Reads new events from the store in cursor order, applies them to the
/// view and publishes them to SSE subscribers.
pub(crate) struct Pump {
    /// The highest cursor read so far.
    cursor: AtomicU64,
    /// Wakes the pump after a local revoking write.
    wake: Notify,
    /// The live feed.
    sender: broadcast::Sender<RevocationEvent>,
    /// Serialises reads so events are published once and in order.
    reading: tokio::sync::Mutex<()>,
}

impl Pump {
    pub fn new() -> Pump {
        let (sender, _) = broadcast::channel(1024);
        Pump {
            cursor: AtomicU64::new(0),
            wake: Notify::new(),
            sender,
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RevocationEvent> {
        self.sender.subscribe()
    }

    /// Asks for a read soon (after a local revoking write).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits for a wake-up.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Reads every event after the cursor, applies and publishes them.
    /// Marks the view stale when the store cannot be read. A `keys` event
    /// (a rotation, here or at another instance) reloads `keys` before it
    /// is published, so an SDK that refetches the JWKS on it from this
    /// instance finds the new keys.
    pub async fn catch_up(
        &self,
        store: &dyn Store,
        view: &RevocationView,
        keys: &KeyManager,
        now: UnixTime,
    ) -> Result<usize, StoreError> {
        let _reading = self.reading.lock().await;
        // Everything durable before this moment will have been read when
        // the loop ends.
        let started = view.read_started();
        let mut total = 0;
        loop {
            let after = self.cursor.load(Ordering::Relaxed);
            let events = match store.revocations_after(after, PAGE, now).await {
                Ok(events) => events,
                Err(error) => {
                    view.read_failed();
                    return Err(error);
                }
            };
            view.apply(&events);
            if events.iter().any(|e| e.kind == RevocationKind::Keys)
                && let Err(error) = keys.reload(now).await
            {
                tracing::warn!(error = %error, "reloading signing keys after a rotation failed");
            }
            let full = events.len() == PAGE as usize;
            for event in events {
                self.cursor.fetch_max(event.cursor, Ordering::Relaxed);
                // No subscribers is not an error.
                let _ = self.sender.send(event);
                total += 1;
            }
            if !full {
                break;
            }
        }
        view.read_succeeded(started);
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: RevocationKind, value: &str, at: u64, expires_at: u64) -> RevocationEvent {
        RevocationEvent {
            cursor: 1,
            kind,
            value: value.into(),
            at,
            expires_at,
        }
    }

    #[test]
    fn the_view_is_stale_after_a_failed_read_or_when_no_read_began_lately() {
        let view = RevocationView::new(Duration::from_millis(200));
        assert!(view.is_current());
        view.read_failed();
        assert!(!view.is_current());
        view.read_succeeded(view.read_started());
        assert!(view.is_current());
        // No read began for longer than the maximum age (one that hangs).
        std::thread::sleep(Duration::from_millis(250));
        assert!(!view.is_current());
        // An older read finishing late does not make the view fresh.
        view.read_succeeded(0);
        assert!(!view.is_current());
        view.read_succeeded(view.read_started());
        assert!(view.is_current());
        assert_eq!(
            RevocationView::max_age(Duration::from_millis(500)),
            Duration::from_secs(2)
        );
        assert_eq!(
            RevocationView::max_age(Duration::from_secs(3600)),
            Duration::from_secs(4 * 3600)
        );
    }

    #[test]
    fn the_view_answers_by_jti_sid_and_user_cutoff_and_prunes_after_expiry() {
        let view = RevocationView::new(Duration::from_secs(2));
        view.apply(&[
            event(RevocationKind::Token, "j1", 10, 100),
            event(RevocationKind::Session, "s1", 10, 200),
            event(RevocationKind::User, "u1", 50, 300),
            event(RevocationKind::User, "u1", 40, 250),
        ]);
        assert!(view.is_token_revoked("j1") && !view.is_token_revoked("j2"));
        assert!(view.is_session_revoked("s1") && !view.is_session_revoked("s2"));
        // The later cut-off wins, whatever the order events arrive in.
        assert_eq!(view.revoked_before("u1"), Some(50));
        assert_eq!(view.revoked_before("u2"), None);
        view.prune(100);
        assert!(!view.is_token_revoked("j1"));
        assert!(view.is_session_revoked("s1"));
        view.prune(300);
        assert_eq!(view.len(), 0);
    }
}
