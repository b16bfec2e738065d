//! [`Hooked`]: the real store behind a [`StoreHook`], which runs before
//! every call. Every method delegates; nothing is simulated but what the
//! hook itself does.

use std::sync::Arc;

use async_trait::async_trait;
use tollgate_core::UnixTime;
use tollgate_store::{
    AuditChainHead, AuditFilter, AuditRow, ClientRecord, KeyRecord, NewAuditEvent, NewRefresh,
    NewRevocation, RefreshRecord, RevocationEvent, Rotation, SessionRecord, Store, StoreError,
    UsageEvent, UsageQuery, UsageRecorded, UsageRow, UserRecord, UserUpdate,
};

use super::StoreHook;

/// A store whose every call first runs the hook.
pub(crate) struct Hooked {
    inner: Arc<dyn Store>,
    hook: StoreHook,
}

impl Hooked {
    pub(crate) fn new(inner: Arc<dyn Store>, hook: StoreHook) -> Hooked {
        Hooked { inner, hook }
    }

    async fn before(&self, method: &'static str) -> Result<(), StoreError> {
        (self.hook)(method, self.inner.clone()).await
    }
}

#[async_trait]
impl Store for Hooked {
    async fn ping(&self) -> Result<(), StoreError> {
        self.before("ping").await?;
        self.inner.ping().await
    }

    async fn create_user(&self, user: UserRecord) -> Result<(), StoreError> {
        self.before("create_user").await?;
        self.inner.create_user(user).await
    }

    async fn find_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        self.before("find_user").await?;
        self.inner.find_user(id).await
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        self.before("find_user_by_email").await?;
        self.inner.find_user_by_email(email).await
    }

    async fn list_users(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError> {
        self.before("list_users").await?;
        self.inner.list_users(after, limit).await
    }

    async fn update_user(
        &self,
        id: &str,
        update: UserUpdate,
    ) -> Result<Option<UserRecord>, StoreError> {
        self.before("update_user").await?;
        self.inner.update_user(id, update).await
    }

    async fn set_password_hash(&self, id: &str, phc: &str) -> Result<(), StoreError> {
        self.before("set_password_hash").await?;
        self.inner.set_password_hash(id, phc).await
    }

    async fn create_session(
        &self,
        session: SessionRecord,
        refresh: NewRefresh,
    ) -> Result<(), StoreError> {
        self.before("create_session").await?;
        self.inner.create_session(session, refresh).await
    }

    async fn rotate_refresh(
        &self,
        presented: &str,
        new: NewRefresh,
        now: UnixTime,
        reuse_expires_at: UnixTime,
        grace: u64,
    ) -> Result<Rotation, StoreError> {
        self.before("rotate_refresh").await?;
        self.inner
            .rotate_refresh(presented, new, now, reuse_expires_at, grace)
            .await
    }

    async fn find_refresh(&self, digest: &str) -> Result<Option<RefreshRecord>, StoreError> {
        self.before("find_refresh").await?;
        self.inner.find_refresh(digest).await
    }

    async fn find_session(&self, sid: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.before("find_session").await?;
        self.inner.find_session(sid).await
    }

    async fn list_sessions(
        &self,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.before("list_sessions").await?;
        self.inner.list_sessions(user_id, now).await
    }

    async fn revoke_session(
        &self,
        sid: &str,
        revocation: NewRevocation,
    ) -> Result<Option<RevocationEvent>, StoreError> {
        self.before("revoke_session").await?;
        self.inner.revoke_session(sid, revocation).await
    }

    async fn revoke_token(&self, revocation: NewRevocation) -> Result<RevocationEvent, StoreError> {
        self.before("revoke_token").await?;
        self.inner.revoke_token(revocation).await
    }

    async fn revoke_user(
        &self,
        revocation: NewRevocation,
        session_expires_at: UnixTime,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        self.before("revoke_user").await?;
        self.inner.revoke_user(revocation, session_expires_at).await
    }

    async fn revocations_after(
        &self,
        after: u64,
        limit: u32,
        now: UnixTime,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        self.before("revocations_after").await?;
        self.inner.revocations_after(after, limit, now).await
    }

    async fn last_cursor(&self) -> Result<u64, StoreError> {
        self.before("last_cursor").await?;
        self.inner.last_cursor().await
    }

    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        self.before("purge_expired").await?;
        self.inner.purge_expired(now).await
    }

    async fn create_client(&self, client: ClientRecord) -> Result<(), StoreError> {
        self.before("create_client").await?;
        self.inner.create_client(client).await
    }

    async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.before("find_client").await?;
        self.inner.find_client(client_id).await
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.before("list_clients").await?;
        self.inner.list_clients().await
    }

    async fn delete_client(
        &self,
        client_id: &str,
        revocation: NewRevocation,
    ) -> Result<Option<RevocationEvent>, StoreError> {
        self.before("delete_client").await?;
        self.inner.delete_client(client_id, revocation).await
    }

    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_digest: &str,
    ) -> Result<bool, StoreError> {
        self.before("set_client_secret").await?;
        self.inner.set_client_secret(client_id, secret_digest).await
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.before("list_keys").await?;
        self.inner.list_keys().await
    }

    async fn save_keys(&self, keys: &[KeyRecord]) -> Result<(), StoreError> {
        self.before("save_keys").await?;
        self.inner.save_keys(keys).await
    }

    async fn announce_plan(
        &self,
        user: &str,
        plan: &str,
        at: UnixTime,
        expires_at: UnixTime,
    ) -> Result<RevocationEvent, StoreError> {
        self.before("announce_plan").await?;
        self.inner.announce_plan(user, plan, at, expires_at).await
    }

    async fn rotate_keys(
        &self,
        keys: &[KeyRecord],
        key_ids: &str,
        at: UnixTime,
        expires_at: UnixTime,
    ) -> Result<RevocationEvent, StoreError> {
        self.before("rotate_keys").await?;
        self.inner.rotate_keys(keys, key_ids, at, expires_at).await
    }

    async fn append_audit(
        &self,
        chain: &str,
        events: &[NewAuditEvent],
    ) -> Result<Vec<AuditRow>, StoreError> {
        self.before("append_audit").await?;
        self.inner.append_audit(chain, events).await
    }

    async fn audit_after(
        &self,
        after: u64,
        filter: AuditFilter<'_>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        self.before("audit_after").await?;
        self.inner.audit_after(after, filter, limit).await
    }

    async fn audit_chains(&self) -> Result<Vec<AuditChainHead>, StoreError> {
        self.before("audit_chains").await?;
        self.inner.audit_chains().await
    }

    async fn audit_chain_page(
        &self,
        chain: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        self.before("audit_chain_page").await?;
        self.inner.audit_chain_page(chain, after_seq, limit).await
    }

    async fn prune_audit(
        &self,
        before: UnixTime,
        chain: &str,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        self.before("prune_audit").await?;
        self.inner.prune_audit(before, chain, now).await
    }

    async fn record_usage(
        &self,
        events: &[UsageEvent],
        now: UnixTime,
    ) -> Result<UsageRecorded, StoreError> {
        self.before("record_usage").await?;
        self.inner.record_usage(events, now).await
    }

    async fn usage_report(&self, query: UsageQuery<'_>) -> Result<Vec<UsageRow>, StoreError> {
        self.before("usage_report").await?;
        self.inner.usage_report(query).await
    }
}
