//! [`RevocationSet`]: the revocations a service knows of, in memory.
//!
//! Filled by the revocation feed (or, in tests, by the `TestIssuer`); read
//! by [`tollgate_core::Validator`] on every token through the
//! [`Revocations`] trait. An entry is forgotten after its `expires_at`: by
//! then every token it could kill has expired on its own.
//!
//! Reads take a shared lock once per token (see [`RevocationSet::read`]);
//! writes are rare (one per revocation event).
//!
//! Every write also tells the [`RevocationListener`]s what it revoked
//! ([`Revoked`]: a `jti`, a `sid` or a user), so that a holder of many
//! long-lived tokens (the WebSocket connections of `ws::WsAuth`) rechecks
//! only the ones the revocation can hit, instead of polling or rechecking
//! them all; and bumps a generation number that [`RevocationSet::subscribe`]
//! watches, for a holder of one token.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, Weak};

use foldhash::fast::RandomState;
use tokio::sync::watch;
use tollgate_core::wire::{RevocationEvent, RevocationKind};
use tollgate_core::{Revocations, UnixTime};

/// How often (seconds) applying an event also sweeps out expired entries.
const SWEEP_EVERY: UnixTime = 60;

/// The revocations known to this process. See the module docs.
#[derive(Debug)]
pub struct RevocationSet {
    maps: RwLock<Maps>,
    /// The number of writes so far; receivers wake on each one.
    generation: watch::Sender<u64>,
    /// Told of every write, after it (dead ones are dropped as found).
    listeners: Mutex<Vec<Weak<dyn RevocationListener>>>,
}

impl Default for RevocationSet {
    fn default() -> Self {
        RevocationSet {
            maps: RwLock::default(),
            generation: watch::Sender::new(0),
            listeners: Mutex::default(),
        }
    }
}

/// What one write to a [`RevocationSet`] revoked: enough for a holder of
/// live tokens to find the few that it may now have to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revoked<'a> {
    /// One token, by `jti`.
    Token(&'a str),
    /// Every token of one session, by `sid`.
    Session(&'a str),
    /// Tokens of one user (`sub`) issued before a moment: any of the user's
    /// tokens may be hit.
    User(&'a str),
    /// Any token may be hit ([`RevocationSet::recheck_all`]).
    All,
}

/// Told of each revocation written to a [`RevocationSet`]
/// ([`RevocationSet::listen`]). Called on the writer's thread after the
/// write (no lock of the set held): it must be quick and must not block.
pub trait RevocationListener: Send + Sync + std::fmt::Debug {
    /// `what` was revoked.
    fn revoked(&self, what: Revoked<'_>);
}

#[derive(Debug, Default)]
pub(crate) struct Maps {
    /// `jti` → expires_at.
    tokens: HashMap<String, UnixTime, RandomState>,
    /// `sid` → expires_at.
    sessions: HashMap<String, UnixTime, RandomState>,
    /// `sub` → (cut-off, expires_at).
    users: HashMap<String, (UnixTime, UnixTime), RandomState>,
    /// `sub` → (plan, cursor, expires_at): plan changes on the feed.
    plans: HashMap<String, (String, u64, UnixTime), RandomState>,
    /// The feed cursor of the newest event applied.
    cursor: u64,
    last_sweep: UnixTime,
}

impl RevocationSet {
    /// An empty set.
    pub fn new() -> RevocationSet {
        RevocationSet::default()
    }

    /// Applies one feed event (idempotent). `now` drives the occasional
    /// sweep of expired entries.
    pub fn apply(&self, event: &RevocationEvent, now: UnixTime) {
        if matches!(event.kind, RevocationKind::Keys | RevocationKind::Plan) {
            // A rotation or a plan change revokes nothing: the cursor moves
            // (the feed follower has the key set refetched) and a plan
            // change is kept for the limits ([`RevocationSet::plan_of`]).
            let mut maps = self.write();
            maps.cursor = maps.cursor.max(event.cursor);
            if let Some((sub, plan)) = event.plan() {
                let newer = maps
                    .plans
                    .get(sub)
                    .is_none_or(|(_, cursor, _)| *cursor < event.cursor);
                if newer && event.expires_at > now {
                    maps.plans.insert(
                        sub.to_owned(),
                        (plan.to_owned(), event.cursor, event.expires_at),
                    );
                }
            }
            return;
        }
        self.write_then_notify(|maps| {
            maps.apply(event, now);
            match event.kind {
                RevocationKind::Token => Revoked::Token(&event.value),
                RevocationKind::Session => Revoked::Session(&event.value),
                RevocationKind::User => Revoked::User(&event.value),
                RevocationKind::Keys | RevocationKind::Plan => Revoked::All,
            }
        });
    }

    /// A receiver that sees a new value after every revocation written to
    /// this set (feed events and direct revocations alike). The value is a
    /// count of writes; only its changes mean anything.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Tells `listener` of every revocation written from now on, for as
    /// long as it lives.
    pub fn listen(&self, listener: Weak<dyn RevocationListener>) {
        self.listeners().push(listener);
    }

    /// Tells every holder of live tokens to recheck all of them
    /// ([`Revoked::All`]), although nothing was written: for what may
    /// change any token's fate at once (a key withdrawn, say; the
    /// authenticator's revocations becoming too stale to trust).
    pub fn recheck_all(&self) {
        self.write_then_notify(|_| Revoked::All);
    }

    /// Runs `change` under the write lock, then (lock released) wakes the
    /// subscribers and tells the listeners what it revoked, so a woken
    /// reader never waits for the writer.
    fn write_then_notify<'a>(&self, change: impl FnOnce(&mut Maps) -> Revoked<'a>) {
        // The listeners are told after the write, so whoever they wake
        // rechecks against it; `what` borrows from the caller, not the maps.
        let what = {
            let mut maps = self.write();
            let what = change(&mut maps);
            drop(maps);
            what
        };
        self.generation.send_modify(|n| *n = n.wrapping_add(1));
        let listeners: Vec<_> = {
            let mut listeners = self.listeners();
            listeners.retain(|l| l.strong_count() > 0);
            listeners.iter().filter_map(Weak::upgrade).collect()
        };
        for listener in listeners {
            listener.revoked(what);
        }
    }

    fn listeners(&self) -> std::sync::MutexGuard<'_, Vec<Weak<dyn RevocationListener>>> {
        // Pushing and retaining leave the list whole.
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sweeps out expired entries if the last sweep is a minute old (the
    /// feed calls it on every keep-alive, so a quiet feed forgets too).
    pub(crate) fn sweep_if_due(&self, now: UnixTime) {
        if now.saturating_sub(self.read().last_sweep) >= SWEEP_EVERY {
            self.sweep(now);
        }
    }

    /// Revokes one token by `jti` until `expires_at`.
    pub fn revoke_token(&self, jti: &str, expires_at: UnixTime) {
        self.write_then_notify(|maps| {
            let at = maps.tokens.entry(jti.to_owned()).or_insert(0);
            *at = (*at).max(expires_at);
            Revoked::Token(jti)
        });
    }

    /// Revokes a session by `sid` until `expires_at`.
    pub fn revoke_session(&self, sid: &str, expires_at: UnixTime) {
        self.write_then_notify(|maps| {
            let at = maps.sessions.entry(sid.to_owned()).or_insert(0);
            *at = (*at).max(expires_at);
            Revoked::Session(sid)
        });
    }

    /// Revokes every token of `sub` issued before `cutoff`, remembered until
    /// `expires_at`.
    pub fn revoke_user(&self, sub: &str, cutoff: UnixTime, expires_at: UnixTime) {
        self.write_then_notify(|maps| {
            let entry = maps.users.entry(sub.to_owned()).or_insert((0, 0));
            entry.0 = entry.0.max(cutoff);
            entry.1 = entry.1.max(expires_at);
            Revoked::User(sub)
        });
    }

    /// Forgets entries whose `expires_at` has passed.
    pub fn sweep(&self, now: UnixTime) {
        self.write().sweep(now);
    }

    /// The plan `sub` is on now according to the feed (an admin changed it
    /// after some of their tokens were minted), if it changed within the
    /// lifetime of a token. It wins over the tokens' `plan` claim for
    /// limits ([`crate::limits::ToolGate::follow_plan_changes`]).
    pub fn plan_of(&self, sub: &str) -> Option<String> {
        self.read().plans.get(sub).map(|(plan, _, _)| plan.clone())
    }

    /// The feed cursor of the newest event applied (0 before any).
    pub fn cursor(&self) -> u64 {
        self.read().cursor
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        let maps = self.read();
        maps.tokens.len() + maps.sessions.len() + maps.users.len()
    }

    /// Whether no revocation is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A read view for one validation: one lock for all three lookups.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Maps> {
        // A writer that panicked left complete entries behind (every write
        // is a single insert or retain), so the data is still good.
        self.maps.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Maps {
    fn apply(&mut self, event: &RevocationEvent, now: UnixTime) {
        match event.kind {
            RevocationKind::Token => {
                let at = self.tokens.entry(event.value.clone()).or_insert(0);
                *at = (*at).max(event.expires_at);
            }
            RevocationKind::Session => {
                let at = self.sessions.entry(event.value.clone()).or_insert(0);
                *at = (*at).max(event.expires_at);
            }
            RevocationKind::User => {
                let entry = self.users.entry(event.value.clone()).or_insert((0, 0));
                entry.0 = entry.0.max(event.at);
                entry.1 = entry.1.max(event.expires_at);
            }
            RevocationKind::Keys | RevocationKind::Plan => {}
        }
        self.cursor = self.cursor.max(event.cursor);
        if now.saturating_sub(self.last_sweep) >= SWEEP_EVERY {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: UnixTime) {
        self.tokens.retain(|_, expires| *expires > now);
        self.sessions.retain(|_, expires| *expires > now);
        self.users.retain(|_, (_, expires)| *expires > now);
        self.plans.retain(|_, (_, _, expires)| *expires > now);
        self.last_sweep = now;
    }
}

impl Revocations for Maps {
    fn is_token_revoked(&self, jti: &str) -> bool {
        self.tokens.contains_key(jti)
    }
    fn is_session_revoked(&self, sid: &str) -> bool {
        self.sessions.contains_key(sid)
    }
    fn revoked_before(&self, sub: &str) -> Option<UnixTime> {
        self.users.get(sub).map(|(cutoff, _)| *cutoff)
    }
}

impl Revocations for RevocationSet {
    fn is_token_revoked(&self, jti: &str) -> bool {
        self.read().is_token_revoked(jti)
    }
    fn is_session_revoked(&self, sid: &str) -> bool {
        self.read().is_session_revoked(sid)
    }
    fn revoked_before(&self, sub: &str) -> Option<UnixTime> {
        self.read().revoked_before(sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        cursor: u64,
        kind: RevocationKind,
        value: &str,
        at: u64,
        expires_at: u64,
    ) -> RevocationEvent {
        RevocationEvent {
            cursor,
            kind,
            value: value.into(),
            at,
            expires_at,
        }
    }

    #[test]
    fn events_revoke_by_kind_and_expire() {
        let set = RevocationSet::new();
        set.apply(&event(1, RevocationKind::Token, "j1", 100, 200), 100);
        set.apply(&event(2, RevocationKind::Session, "s1", 100, 300), 100);
        set.apply(&event(3, RevocationKind::User, "u1", 150, 400), 100);
        set.apply(&event(4, RevocationKind::User, "u1", 120, 350), 100);
        assert!(set.is_token_revoked("j1") && !set.is_token_revoked("j2"));
        assert!(set.is_session_revoked("s1"));
        assert_eq!(
            set.revoked_before("u1"),
            Some(150),
            "the later cut-off wins"
        );
        assert_eq!(set.cursor(), 4);
        set.sweep(250);
        assert!(!set.is_token_revoked("j1"));
        assert!(set.is_session_revoked("s1"));
        set.sweep(400);
        assert!(set.is_empty());
        assert_eq!(set.cursor(), 4, "the cursor survives sweeps");
    }

    #[test]
    fn plan_events_revoke_nothing_and_move_the_cursor() {
        let set = RevocationSet::new();
        let changes = set.subscribe();
        set.apply(&event(9, RevocationKind::Plan, "u1 pro", 100, 400), 100);
        assert!(set.is_empty());
        assert_eq!(set.revoked_before("u1"), None);
        assert_eq!(set.cursor(), 9);
        assert!(!changes.has_changed().unwrap(), "a plan change is not news");
        assert_eq!(set.plan_of("u1").as_deref(), Some("pro"));
        // The newest change wins, whatever order the events arrive in; a
        // replayed older one changes nothing.
        set.apply(
            &event(12, RevocationKind::Plan, "u1 enterprise", 110, 410),
            110,
        );
        set.apply(&event(10, RevocationKind::Plan, "u1 free", 105, 405), 110);
        assert_eq!(set.plan_of("u1").as_deref(), Some("enterprise"));
        assert_eq!(set.plan_of("u2"), None);
        // Malformed values are not plan changes.
        set.apply(&event(13, RevocationKind::Plan, "u2", 110, 410), 110);
        assert_eq!(set.plan_of("u2"), None);
        // Once every token minted before the change has expired, the claim
        // says the same as the feed: the change is forgotten.
        set.sweep(410);
        assert_eq!(set.plan_of("u1"), None);
    }

    #[derive(Debug, Default)]
    struct Heard(Mutex<Vec<String>>);

    impl RevocationListener for Heard {
        fn revoked(&self, what: Revoked<'_>) {
            self.0.lock().unwrap().push(format!("{what:?}"));
        }
    }

    #[test]
    fn listeners_hear_what_each_write_revoked_while_they_live() {
        let set = RevocationSet::new();
        let heard = std::sync::Arc::new(Heard::default());
        let weak = std::sync::Arc::downgrade(&heard);
        set.listen(weak);
        set.revoke_token("j1", 200);
        set.apply(&event(1, RevocationKind::Session, "s1", 100, 300), 100);
        set.apply(&event(2, RevocationKind::User, "u1", 100, 300), 100);
        set.revoke_user("u2", 100, 300);
        set.sweep(1000);
        set.recheck_all();
        assert_eq!(
            *heard.0.lock().unwrap(),
            [
                r#"Token("j1")"#,
                r#"Session("s1")"#,
                r#"User("u1")"#,
                r#"User("u2")"#,
                "All"
            ],
            "forgetting is not news"
        );
        drop(heard);
        set.revoke_token("j2", 200);
        assert!(set.listeners().is_empty(), "a dead listener is dropped");
    }

    #[test]
    fn every_revocation_wakes_subscribers_and_sweeps_do_not() {
        let set = RevocationSet::new();
        let mut changes = set.subscribe();
        assert!(!changes.has_changed().unwrap());
        set.revoke_token("j1", 200);
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        set.sweep(100);
        assert!(!changes.has_changed().unwrap(), "forgetting is not news");
        set.apply(&event(1, RevocationKind::Session, "s1", 100, 300), 100);
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        set.revoke_session("s2", 300);
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        set.revoke_user("u1", 100, 300);
        assert!(changes.has_changed().unwrap());
    }
}
