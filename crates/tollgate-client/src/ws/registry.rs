//! [`Registry`]: the live connections of one `WsAuth`, indexed by user,
//! session (`sid`) and token (`jti`), so that a revocation wakes only the
//! connections it can close (issue 16: with one shared "something was
//! revoked" signal, 5 000 sockets and 50 unrelated revocations a second
//! cost 1.45 cores and delayed the one close that mattered by seconds).
//!
//! The registry is a [`RevocationListener`] of the authenticator's
//! revocations: a `jti` wakes the connections holding that token, a `sid`
//! those of the session, a user-wide revocation ("issued before T") that
//! user's connections, [`Revoked::All`] every connection. A woken
//! connection rechecks its token in memory (`Authenticator::recheck`) and
//! closes if it is hit; the rest never hear of the revocation.
//!
//! The index also holds each user's open connections, which is the plan's
//! per-user count in this process, the instance's total, and closes
//! ordered from outside (shutdown, an operator).
//!
//! **Invariant:** a connection is indexed under exactly the keys of its
//! current principal, from before its handshake is answered until its slot
//! is dropped; a refresh re-indexes it under the same lock. Because the
//! index is written after the token was judged, whoever writes it rechecks
//! the token once afterwards (a revocation between the two would otherwise
//! find nothing to wake).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use foldhash::fast::RandomState;
use tokio::sync::{Notify, watch};

use crate::{AuthError, Principal, RevocationListener, Revoked};

/// Connections by one key (usually one; a token may open several).
type Map = HashMap<String, Vec<Arc<Live>>, RandomState>;

/// The live connections (see the module docs).
#[derive(Debug)]
pub(super) struct Registry {
    index: Mutex<Index>,
    /// Connections open (and handshakes accepted); watched by shutdown.
    open: watch::Sender<usize>,
    /// Rechecks done by woken connections, ever.
    rechecks: AtomicU64,
}

#[derive(Debug, Default)]
struct Index {
    users: Map,
    sessions: Map,
    tokens: Map,
    /// Set by [`Registry::shut_down`]: every later connection is closed
    /// with 1001 at once.
    shutting_down: bool,
}

/// One connection as the registry and its supervisor share it.
#[derive(Debug)]
pub(super) struct Live {
    /// The current token's principal (a refresh replaces it).
    principal: Mutex<Principal>,
    /// Wakes the supervisor: recheck the token, or close as ordered.
    wake: Notify,
    /// A close ordered from outside (0: none); the first order wins.
    ordered: AtomicU16,
    /// When the connection was admitted (Unix seconds).
    opened_at: u64,
}

/// Which connections an operator asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every connection of this user (`sub`).
    User(String),
    /// Every connection of this session (`sid`).
    Session(String),
    /// Every connection.
    All,
}

/// The plan label of a principal's gauge.
fn plan_label(principal: &Principal) -> String {
    principal.plan().unwrap_or("none").to_owned()
}

impl Live {
    /// The principal of the connection's current token.
    pub(super) fn principal(&self) -> Principal {
        lock(&self.principal).clone()
    }

    /// Until the next wake (a wake that came first is not lost).
    pub(super) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Orders the connection closed with `code`, unless a close was
    /// ordered already; whether this order was the first.
    pub(super) fn order_close(&self, code: u16) -> bool {
        let first = self
            .ordered
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        self.wake.notify_one();
        first
    }

    /// When the connection was admitted (Unix seconds).
    pub(super) fn opened_at(&self) -> u64 {
        self.opened_at
    }

    /// The close ordered from outside, if any.
    pub(super) fn ordered_close(&self) -> Option<u16> {
        match self.ordered.load(Ordering::Acquire) {
            0 => None,
            code => Some(code),
        }
    }
}

impl Registry {
    pub(super) fn new() -> Registry {
        Registry {
            index: Mutex::default(),
            open: watch::Sender::new(0),
            rechecks: AtomicU64::new(0),
        }
    }

    /// Refuses (`TooManyConnections`) when `max` connections are open.
    pub(super) fn check_room(&self, max: usize) -> Result<(), AuthError> {
        if self.open() >= max {
            return Err(AuthError::TooManyConnections { limit: max });
        }
        Ok(())
    }

    /// Admits a connection for `principal`: refused when `max` connections
    /// are open in this instance, or the user already holds `per_user`
    /// connections (`None`: someone else counted, Redis).
    pub(super) fn admit(
        &self,
        principal: Principal,
        per_user: Option<u32>,
        max: usize,
    ) -> Result<Arc<Live>, AuthError> {
        let mut index = self.index();
        // Under the lock, so two handshakes never both take the last place.
        self.check_room(max)?;
        if let Some(limit) = per_user {
            let held = index.users.get(principal.subject()).map_or(0, Vec::len);
            if held >= usize::try_from(limit).unwrap_or(usize::MAX) {
                return Err(AuthError::ConnectionLimit { limit });
            }
        }
        let live = Arc::new(Live {
            principal: Mutex::new(principal),
            wake: Notify::new(),
            ordered: AtomicU16::new(0),
            opened_at: crate::clock::now_ms() / 1000,
        });
        metrics::gauge!("tollgate_client_ws_connections", "plan" => plan_label(&live.principal()))
            .increment(1.0);
        if index.shutting_down {
            live.order_close(super::close::GOING_AWAY);
        }
        index.insert(&live);
        self.open.send_modify(|n| *n += 1);
        Ok(live)
    }

    /// Forgets a connection (its slot was dropped).
    pub(super) fn remove(&self, live: &Arc<Live>) {
        self.index().remove(live);
        metrics::gauge!("tollgate_client_ws_connections", "plan" => plan_label(&live.principal()))
            .decrement(1.0);
        self.open.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Makes `principal` the connection's current one, indexed under its
    /// keys (a refresh: new `jti`, maybe a new `sid`, the same user).
    pub(super) fn replace_principal(&self, live: &Arc<Live>, principal: Principal) {
        let mut index = self.index();
        index.remove(live);
        let (before, after) = (plan_label(&live.principal()), plan_label(&principal));
        if before != after {
            metrics::gauge!("tollgate_client_ws_connections", "plan" => before).decrement(1.0);
            metrics::gauge!("tollgate_client_ws_connections", "plan" => after).increment(1.0);
        }
        *lock(&live.principal) = principal;
        index.insert(live);
    }

    /// The connections `selection` names.
    pub(super) fn select(&self, selection: &Selection) -> Vec<Arc<Live>> {
        let index = self.index();
        let found = match selection {
            Selection::User(sub) => index.users.get(sub),
            Selection::Session(sid) => index.sessions.get(sid),
            Selection::All => return index.users.values().flatten().cloned().collect(),
        };
        found.into_iter().flatten().cloned().collect()
    }

    /// Orders every connection, and every later one, closed with 1001.
    pub(super) fn shut_down(&self) {
        let mut index = self.index();
        index.shutting_down = true;
        for live in index.users.values().flatten() {
            live.order_close(super::close::GOING_AWAY);
        }
    }

    /// Connections open now.
    pub(super) fn open(&self) -> usize {
        *self.open.borrow()
    }

    /// Waits until no connection is open.
    pub(super) async fn until_empty(&self) {
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|n| *n == 0).await;
    }

    /// Counts one recheck by a woken connection.
    pub(super) fn count_recheck(&self) {
        self.rechecks.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("tollgate_client_ws_rechecks_total").increment(1);
    }

    /// Rechecks done by woken connections, ever.
    pub(super) fn rechecks(&self) -> u64 {
        self.rechecks.load(Ordering::Relaxed)
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        lock(&self.index)
    }
}

impl RevocationListener for Registry {
    fn revoked(&self, what: Revoked<'_>) {
        let index = self.index();
        let hit = match what {
            Revoked::Token(jti) => index.tokens.get(jti),
            Revoked::Session(sid) => index.sessions.get(sid),
            Revoked::User(sub) => index.users.get(sub),
            // (`Revoked` may grow; anything else may hit anyone.)
            _ => {
                for live in index.users.values().flatten() {
                    live.wake.notify_one();
                }
                return;
            }
        };
        for live in hit.into_iter().flatten() {
            live.wake.notify_one();
        }
    }
}

impl Index {
    fn insert(&mut self, live: &Arc<Live>) {
        let principal = lock(&live.principal);
        let claims = principal.claims();
        add(&mut self.users, &claims.sub, live);
        add(&mut self.tokens, &claims.jti, live);
        if let Some(sid) = &claims.sid {
            add(&mut self.sessions, sid, live);
        }
    }

    fn remove(&mut self, live: &Arc<Live>) {
        let principal = lock(&live.principal);
        let claims = principal.claims();
        take(&mut self.users, &claims.sub, live);
        take(&mut self.tokens, &claims.jti, live);
        if let Some(sid) = &claims.sid {
            take(&mut self.sessions, sid, live);
        }
    }
}

fn add(map: &mut Map, key: &str, live: &Arc<Live>) {
    match map.get_mut(key) {
        Some(list) => list.push(live.clone()),
        None => {
            map.insert(key.to_owned(), vec![live.clone()]);
        }
    }
}

fn take(map: &mut Map, key: &str, live: &Arc<Live>) {
    let Some(list) = map.get_mut(key) else {
        return;
    };
    list.retain(|other| !Arc::ptr_eq(other, live));
    if list.is_empty() {
        map.remove(key);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves its data whole.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestIssuer;

    fn principal(issuer: &TestIssuer, sub: &str, sid: &str) -> Principal {
        let (_, claims) = issuer.user(sub).session(sid).mint_with_claims().unwrap();
        Principal::new(claims)
    }

    /// Which of `lives` a revocation woke (a wake leaves a permit behind).
    async fn woken(lives: &[&Arc<Live>]) -> Vec<bool> {
        let mut out = Vec::new();
        for live in lives {
            let woke = tokio::time::timeout(std::time::Duration::ZERO, live.woken())
                .await
                .is_ok();
            out.push(woke);
        }
        out
    }

    #[tokio::test]
    async fn a_revocation_wakes_only_the_connections_it_names() {
        let issuer = TestIssuer::new();
        let registry = Registry::new();
        let a1 = registry
            .admit(principal(&issuer, "ann", "s1"), Some(5), usize::MAX)
            .unwrap();
        let a2 = registry
            .admit(principal(&issuer, "ann", "s2"), Some(5), usize::MAX)
            .unwrap();
        let b = registry
            .admit(principal(&issuer, "bob", "s3"), Some(5), usize::MAX)
            .unwrap();
        let all = [&a1, &a2, &b];
        registry.revoked(Revoked::Session("s2"));
        assert_eq!(woken(&all).await, [false, true, false]);
        registry.revoked(Revoked::Token(&a1.principal().claims().jti));
        assert_eq!(woken(&all).await, [true, false, false]);
        registry.revoked(Revoked::User("ann"));
        assert_eq!(woken(&all).await, [true, true, false]);
        registry.revoked(Revoked::Token("nobody's"));
        registry.revoked(Revoked::User("carl"));
        assert_eq!(woken(&all).await, [false, false, false]);
        registry.revoked(Revoked::All);
        assert_eq!(woken(&all).await, [true, true, true]);

        // A refresh moves the connection to its new token's keys.
        let old_jti = a1.principal().claims().jti.clone();
        registry.replace_principal(&a1, principal(&issuer, "ann", "s9"));
        registry.revoked(Revoked::Token(&old_jti));
        registry.revoked(Revoked::Session("s1"));
        assert_eq!(woken(&all).await, [false, false, false]);
        registry.revoked(Revoked::Session("s9"));
        assert_eq!(woken(&all).await, [true, false, false]);

        for live in all {
            registry.remove(live);
        }
        let index = registry.index();
        assert!(index.users.is_empty() && index.sessions.is_empty() && index.tokens.is_empty());
        assert_eq!(registry.open(), 0);
    }

    #[test]
    fn admission_counts_per_user_and_shutdown_orders_1001() {
        let issuer = TestIssuer::new();
        let registry = Registry::new();
        let first = registry
            .admit(principal(&issuer, "ann", "s1"), Some(1), usize::MAX)
            .unwrap();
        assert_eq!(
            registry
                .admit(principal(&issuer, "ann", "s1"), Some(1), usize::MAX)
                .unwrap_err(),
            AuthError::ConnectionLimit { limit: 1 }
        );
        // Counted elsewhere (a Redis lease): no limit here.
        let second = registry
            .admit(principal(&issuer, "ann", "s1"), None, usize::MAX)
            .unwrap();
        registry.shut_down();
        assert_eq!(first.ordered_close(), Some(1001));
        assert!(!first.order_close(4403), "the first order wins");
        assert_eq!(first.ordered_close(), Some(1001));
        registry.remove(&second);
        let late = registry
            .admit(principal(&issuer, "bob", "s2"), Some(1), usize::MAX)
            .unwrap();
        assert_eq!(late.ordered_close(), Some(1001));
    }
}
