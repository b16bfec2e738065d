//! The store's health as this instance knows it, and [`Guarded`]: the store
//! every part of the server calls, which bounds each call and answers at
//! once while the database is known to be down (issue 16, item 2).
//!
//! A database that hangs (a black-holed network, a stalled server) fails no
//! call by itself: without a bound, every request waits on it, `/readyz`
//! included. So:
//! - every call is bounded by `TOLLGATE_STORE_TIMEOUT` (the pool's wait for
//!   a connection and, on Postgres, the statement timeout are set to the
//!   same bound, see `tollgate_store::StoreOptions`); a call that takes
//!   longer is [`StoreError::Unavailable`] (503);
//! - a call that fails as unavailable (or times out) marks the store down
//!   and wakes the probe; while it is down, calls are answered
//!   `Unavailable` at once instead of each waiting out the bound;
//! - a background probe (`probe_loop`: a ping every [`PROBE_INTERVAL`],
//!   and at once after a failure) brings it back up, as does any call that
//!   succeeds and began after the store was marked down;
//! - `/readyz` reads this state and never queries the database itself.
//!
//! Answers that prove the database answered (a conflict, a corrupt row)
//! count as success. A failed purge is logged by its caller and says
//! nothing about the requests: it does not mark the store down.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;
use tollgate_core::UnixTime;
use tollgate_store::{
    AuditChainHead, AuditFilter, AuditRow, ClientRecord, KeyRecord, NewAuditEvent, NewRefresh,
    NewRevocation, RefreshRecord, RevocationEvent, Rotation, SessionRecord, Store, StoreError,
    UsageEvent, UsageQuery, UsageRecorded, UsageRow, UserRecord, UserUpdate,
};

use crate::metrics;
use crate::state::AppState;

/// How often the probe pings the store (and how soon after a failure it
/// tries again, at most).
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// `down_since` while the store is up.
const UP: u64 = 0;

/// The real store, bounded, behind the known health of the database.
pub(crate) struct Guarded {
    inner: Arc<dyn Store>,
    timeout: Duration,
    /// [`UP`], or 1 + the milliseconds after `epoch` at which the store
    /// was marked down.
    down_since: AtomicU64,
    epoch: Instant,
    /// Wakes the probe after a failure.
    probe: Notify,
}

impl Guarded {
    /// `inner`, each call bounded by `timeout`, up until a call fails.
    pub(crate) fn new(inner: Arc<dyn Store>, timeout: Duration) -> Guarded {
        Guarded {
            inner,
            timeout,
            down_since: AtomicU64::new(UP),
            epoch: Instant::now(),
            probe: Notify::new(),
        }
    }

    /// Whether the database answered the last call or probe.
    pub(crate) fn is_up(&self) -> bool {
        self.down_since.load(Ordering::Relaxed) == UP
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn mark_down(&self, method: &'static str, error: &StoreError) {
        let since = self.millis().saturating_add(1);
        if self
            .down_since
            .compare_exchange(UP, since, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(method, error = %error, "the store is down: answering 503 until it is reached again");
            ::metrics::gauge!(metrics::STORE_UP).set(0.0);
        }
        self.probe.notify_one();
    }

    /// A call that began at `started` (milliseconds after `epoch`) reached
    /// the database: the store is up, unless it was marked down after the
    /// call began (the call may have got through just before the failure).
    fn mark_up(&self, started: u64) {
        let since = self.down_since.load(Ordering::Relaxed);
        if since == UP || since.saturating_sub(1) > started {
            return;
        }
        if self
            .down_since
            .compare_exchange(since, UP, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::info!("the store answers again");
            ::metrics::gauge!(metrics::STORE_UP).set(1.0);
        }
    }

    /// Runs one call of the real store within the bound. `evidence`: whether
    /// its failure says the store is down.
    async fn call<T>(
        &self,
        method: &'static str,
        evidence: bool,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if !self.is_up() {
            ::metrics::counter!(metrics::STORE_SHORT_CIRCUITS).increment(1);
            return Err(StoreError::Unavailable(format!(
                "{method}: the store is down (waiting for the probe to reach it)"
            )));
        }
        self.bounded(method, evidence, call).await
    }

    async fn bounded<T>(
        &self,
        method: &'static str,
        evidence: bool,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = self.millis();
        let result = match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "{method} took longer than {} ms (TOLLGATE_STORE_TIMEOUT)",
                self.timeout.as_millis()
            ))),
        };
        match &result {
            Err(error @ StoreError::Unavailable(_)) => {
                if evidence {
                    self.mark_down(method, error);
                }
            }
            // Refused by the configuration: the database itself did not
            // answer, and did not fail either.
            Err(StoreError::Config(_)) => {}
            // The database answered (a conflict, a row that does not parse).
            _ => self.mark_up(started),
        }
        result
    }

    /// Pings the database within the bound, whatever its known health.
    async fn probe_once(&self) {
        let _ = self.bounded("ping", true, self.inner.ping()).await;
    }
}

/// Keeps [`Guarded`]'s health current: a ping every [`PROBE_INTERVAL`],
/// and right after a call failed (at most one probe in flight).
pub(crate) async fn probe_loop(state: AppState) {
    let guarded = state.guarded.clone();
    ::metrics::gauge!(metrics::STORE_UP).set(if guarded.is_up() { 1.0 } else { 0.0 });
    loop {
        tokio::select! {
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
            () = guarded.probe.notified() => {
                // Failures come in bursts: do not ping more than the
                // interval allows while the store stays down.
                if !guarded.is_up() {
                    tokio::select! {
                        () = tokio::time::sleep(PROBE_INTERVAL / 4) => {}
                        () = state.stopped() => return,
                    }
                }
            }
            () = state.stopped() => return,
        }
        tokio::select! {
            () = guarded.probe_once() => {}
            () = state.stopped() => return,
        }
    }
}

#[async_trait]
impl Store for Guarded {
    async fn ping(&self) -> Result<(), StoreError> {
        self.call("ping", true, self.inner.ping()).await
    }

    async fn create_user(&self, user: UserRecord) -> Result<(), StoreError> {
        self.call("create_user", true, self.inner.create_user(user))
            .await
    }

    async fn find_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        self.call("find_user", true, self.inner.find_user(id)).await
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        self.call(
            "find_user_by_email",
            true,
            self.inner.find_user_by_email(email),
        )
        .await
    }

    async fn list_users(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError> {
        self.call("list_users", true, self.inner.list_users(after, limit))
            .await
    }

    async fn update_user(
        &self,
        id: &str,
        update: UserUpdate,
    ) -> Result<Option<UserRecord>, StoreError> {
        self.call("update_user", true, self.inner.update_user(id, update))
            .await
    }

    async fn set_password_hash(&self, id: &str, phc: &str) -> Result<(), StoreError> {
        self.call(
            "set_password_hash",
            true,
            self.inner.set_password_hash(id, phc),
        )
        .await
    }

    async fn create_session(
        &self,
        session: SessionRecord,
        refresh: NewRefresh,
    ) -> Result<(), StoreError> {
        self.call(
            "create_session",
            true,
            self.inner.create_session(session, refresh),
        )
        .await
    }

    async fn rotate_refresh(
        &self,
        presented: &str,
        new: NewRefresh,
        now: UnixTime,
        reuse_expires_at: UnixTime,
        grace: u64,
    ) -> Result<Rotation, StoreError> {
        self.call(
            "rotate_refresh",
            true,
            self.inner
                .rotate_refresh(presented, new, now, reuse_expires_at, grace),
        )
        .await
    }

    async fn find_refresh(&self, digest: &str) -> Result<Option<RefreshRecord>, StoreError> {
        self.call("find_refresh", true, self.inner.find_refresh(digest))
            .await
    }

    async fn find_session(&self, sid: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.call("find_session", true, self.inner.find_session(sid))
            .await
    }

    async fn list_sessions(
        &self,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.call(
            "list_sessions",
            true,
            self.inner.list_sessions(user_id, now),
        )
        .await
    }

    async fn revoke_session(
        &self,
        sid: &str,
        revocation: NewRevocation,
    ) -> Result<Option<RevocationEvent>, StoreError> {
        self.call(
            "revoke_session",
            true,
            self.inner.revoke_session(sid, revocation),
        )
        .await
    }

    async fn revoke_token(&self, revocation: NewRevocation) -> Result<RevocationEvent, StoreError> {
        self.call("revoke_token", true, self.inner.revoke_token(revocation))
            .await
    }

    async fn revoke_user(
        &self,
        revocation: NewRevocation,
        session_expires_at: UnixTime,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        self.call(
            "revoke_user",
            true,
            self.inner.revoke_user(revocation, session_expires_at),
        )
        .await
    }

    async fn revocations_after(
        &self,
        after: u64,
        limit: u32,
        now: UnixTime,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        self.call(
            "revocations_after",
            true,
            self.inner.revocations_after(after, limit, now),
        )
        .await
    }

    async fn last_cursor(&self) -> Result<u64, StoreError> {
        self.call("last_cursor", true, self.inner.last_cursor())
            .await
    }

    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        self.call("purge_expired", false, self.inner.purge_expired(now))
            .await
    }

    async fn create_client(&self, client: ClientRecord) -> Result<(), StoreError> {
        self.call("create_client", true, self.inner.create_client(client))
            .await
    }

    async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.call("find_client", true, self.inner.find_client(client_id))
            .await
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.call("list_clients", true, self.inner.list_clients())
            .await
    }

    async fn delete_client(
        &self,
        client_id: &str,
        revocation: NewRevocation,
    ) -> Result<Option<RevocationEvent>, StoreError> {
        self.call(
            "delete_client",
            true,
            self.inner.delete_client(client_id, revocation),
        )
        .await
    }

    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_digest: &str,
    ) -> Result<bool, StoreError> {
        self.call(
            "set_client_secret",
            true,
            self.inner.set_client_secret(client_id, secret_digest),
        )
        .await
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.call("list_keys", true, self.inner.list_keys()).await
    }

    async fn save_keys(&self, keys: &[KeyRecord]) -> Result<(), StoreError> {
        self.call("save_keys", true, self.inner.save_keys(keys))
            .await
    }

    async fn announce_plan(
        &self,
        user: &str,
        plan: &str,
        at: UnixTime,
        expires_at: UnixTime,
    ) -> Result<RevocationEvent, StoreError> {
        self.call(
            "announce_plan",
            true,
            self.inner.announce_plan(user, plan, at, expires_at),
        )
        .await
    }

    async fn rotate_keys(
        &self,
        keys: &[KeyRecord],
        key_ids: &str,
        at: UnixTime,
        expires_at: UnixTime,
    ) -> Result<RevocationEvent, StoreError> {
        self.call(
            "rotate_keys",
            true,
            self.inner.rotate_keys(keys, key_ids, at, expires_at),
        )
        .await
    }

    async fn append_audit(
        &self,
        chain: &str,
        events: &[NewAuditEvent],
    ) -> Result<Vec<AuditRow>, StoreError> {
        self.call("append_audit", true, self.inner.append_audit(chain, events))
            .await
    }

    async fn audit_after(
        &self,
        after: u64,
        filter: AuditFilter<'_>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        self.call(
            "audit_after",
            true,
            self.inner.audit_after(after, filter, limit),
        )
        .await
    }

    async fn audit_chains(&self) -> Result<Vec<AuditChainHead>, StoreError> {
        self.call("audit_chains", true, self.inner.audit_chains())
            .await
    }

    async fn audit_chain_page(
        &self,
        chain: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        self.call(
            "audit_chain_page",
            true,
            self.inner.audit_chain_page(chain, after_seq, limit),
        )
        .await
    }

    async fn prune_audit(
        &self,
        before: UnixTime,
        chain: &str,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        self.call(
            "prune_audit",
            true,
            self.inner.prune_audit(before, chain, now),
        )
        .await
    }

    async fn record_usage(
        &self,
        events: &[UsageEvent],
        now: UnixTime,
    ) -> Result<UsageRecorded, StoreError> {
        self.call("record_usage", true, self.inner.record_usage(events, now))
            .await
    }

    async fn usage_report(&self, query: UsageQuery<'_>) -> Result<Vec<UsageRow>, StoreError> {
        self.call("usage_report", true, self.inner.usage_report(query))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_began_before_the_failure_does_not_bring_the_store_back() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = runtime
            .block_on(tollgate_store::SqliteStore::open(&format!(
                "sqlite://{}",
                dir.path().join("t.db").display()
            )))
            .unwrap();
        let guarded = Guarded::new(Arc::new(store), Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(5));
        let before = guarded.millis().saturating_sub(2);
        guarded.mark_down("ping", &StoreError::Unavailable("test".into()));
        assert!(!guarded.is_up());
        guarded.mark_up(before);
        assert!(!guarded.is_up());
        guarded.mark_up(guarded.millis());
        assert!(guarded.is_up());
    }
}
