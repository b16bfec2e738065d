//! Tollgate's storage: the [`Store`] trait the server talks to, and its one
//! implementation, [`SqlStore`], over two SQL backends: [`SqliteStore`]
//! (the embedded default, one file) and [`PostgresStore`] (shared by any
//! number of server instances). [`open_store`] picks one from a database
//! URL.
//!
//! Map: `store.rs` holds every statement and transaction, written once;
//! `dialect.rs` the few real differences between the backends (a table of
//! them is in its docs); `sqlite.rs` and `postgres.rs` opening, connection
//! settings and their side of each difference; `sql.rs` small shared
//! helpers (time conversion, error mapping).
//!
//! The store is the record of truth for users, sessions, refresh-token
//! families, revocations, service clients, signing keys, the audit trail
//! and usage (the events services report, by idempotency key, and their
//! hourly counts). It takes `now`
//! from the caller (the server's clock) so that expiry is testable.
//!
//! **Invariants:**
//! - A write that revokes (session, token, user, refresh reuse) appends its
//!   [`RevocationEvent`] in the same transaction and is durable (SQLite:
//!   WAL with `synchronous=FULL`, asserted at open) before the call returns.
//!   When it cannot be, the call returns [`StoreError::Unavailable`] and the
//!   server answers 503, never 200.
//! - Refresh rotation is one conditional update (`… WHERE used_at IS NULL`):
//!   of many concurrent rotations of one token exactly one succeeds.
//! - Secrets are stored only as digests (refresh tokens, client secrets) or
//!   PHC strings (passwords); private keys only as sealed blobs.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tollgate_core::UnixTime;
pub use tollgate_core::usage::{Period, UsageGroup};
pub use tollgate_core::wire::{RevocationEvent, RevocationKind, UsageEvent, UsageRow};

pub mod audit;
mod dialect;
pub mod postgres;
mod sql;
pub mod sqlite;
mod store;

pub use audit::{BrokenEvent, Verification, verify_audit};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use store::SqlStore;
pub use tollgate_core::audit::{AuditContent, GENESIS};

/// How long a call waits for a pooled connection without
/// [`StoreOptions::call_timeout`].
const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

impl StoreOptions {
    /// How long a call waits for a pooled connection (or a new one).
    pub(crate) fn acquire_timeout(&self) -> Duration {
        self.call_timeout.unwrap_or(DEFAULT_ACQUIRE_TIMEOUT)
    }
}

/// Opens the store a database URL names: `sqlite://PATH` (the file and its
/// directory are created when missing) or `postgres://…`/`postgresql://…`.
/// Migrations run before it returns. Any other scheme is a
/// [`StoreError::Config`]; the URL itself (which may hold a password) never
/// appears in an error.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_store_with(url, &StoreOptions::default()).await
}

/// As [`open_store`], with connection settings for a server
/// ([`StoreOptions`]).
pub async fn open_store_with(
    url: &str,
    options: &StoreOptions,
) -> Result<Arc<dyn Store>, StoreError> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme);
    match scheme {
        Some("sqlite") => Ok(Arc::new(SqliteStore::open_with(url, options).await?)),
        Some("postgres" | "postgresql") => Ok(Arc::new(
            PostgresStore::connect_with(url, None, options).await?,
        )),
        Some(other) if is_plain_scheme(other) => Err(StoreError::Config(format!(
            "unsupported database URL scheme `{other}` (expected `sqlite://PATH` or `postgres://…`)"
        ))),
        _ => Err(StoreError::Config(
            "the database URL has no scheme (expected `sqlite://PATH` or `postgres://…`)"
                .to_owned(),
        )),
    }
}

/// How the store's connections behave; the default suits a command-line
/// tool, a server sets [`StoreOptions::call_timeout`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// The longest one call should take (`TOLLGATE_STORE_TIMEOUT`). With it,
    /// waiting for a pooled connection (or a new one) is bounded by it
    /// instead of 10 s, and on Postgres every pooled connection runs with
    /// `statement_timeout` at it (the database gives up on a statement its
    /// caller has stopped waiting for) and `idle_in_transaction_session_timeout`
    /// at twice it (a caller that vanished mid-transaction, e.g. behind a
    /// network partition, does not hold its row locks, such as the feed's
    /// counter row, against every other instance). Migrations run without
    /// the statement timeout. The caller bounds the whole call itself (the
    /// server does, in `tollgate-server`); this only keeps the pool and the
    /// database from waiting longer than the caller does.
    pub call_timeout: Option<Duration>,
}

/// Whether `text` looks like a URL scheme, so it can be echoed in an error
/// without risking a password (RFC 3986 §3.1, kept short).
fn is_plain_scheme(text: &str) -> bool {
    (1..=20).contains(&text.len())
        && text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique value is taken (an e-mail, a client id).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The database cannot be reached or refused the write; the caller
    /// answers 503. The detail is for logs only.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Stored data does not parse (a corrupted row). For logs only.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The store cannot be opened as configured: a malformed or unsupported
    /// URL, a database that does not guarantee durable writes (SQLite
    /// `synchronous` not FULL), or a schema newer than this binary. The
    /// detail names the setting, never a password.
    #[error("the store is misconfigured: {0}")]
    Config(String),
}

/// A user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Random id (UUID v4 text); the tokens' `sub`.
    pub id: String,
    /// E-mail, trimmed and lower-cased; unique.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Plan name.
    pub plan: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Disabled users cannot log in.
    pub disabled: bool,
    /// Creation time.
    pub created_at: UnixTime,
}

/// Changes to a user; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// New plan.
    pub plan: Option<String>,
    /// New roles.
    pub roles: Option<Vec<String>>,
    /// New disabled flag.
    pub disabled: Option<bool>,
}

/// A login session: the family of one chain of refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Session id; the tokens' `sid`.
    pub sid: String,
    /// Owner.
    pub user_id: String,
    /// The client the session belongs to.
    pub client_id: String,
    /// Scopes granted at login; refresh can never widen them.
    pub scope: String,
    /// Start.
    pub created_at: UnixTime,
    /// Last refresh.
    pub last_used_at: UnixTime,
    /// Absolute end (login + refresh lifetime).
    pub expires_at: UnixTime,
    /// When it was ended, if it was.
    pub revoked_at: Option<UnixTime>,
}

/// A refresh token, by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// SHA-256 hex of the token ([`tollgate_core::opaque::digest`]).
    pub digest: String,
    /// Session (family).
    pub sid: String,
    /// Issue time.
    pub created_at: UnixTime,
    /// Expiry (idle timeout; never after the session's end).
    pub expires_at: UnixTime,
    /// When it was rotated away, or when its session ended; presenting a
    /// used token of a live session is reuse.
    pub used_at: Option<UnixTime>,
}

/// A new refresh token to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefresh {
    /// SHA-256 hex of the token.
    pub digest: String,
    /// Issue time.
    pub created_at: UnixTime,
    /// Expiry.
    pub expires_at: UnixTime,
    /// When this token succeeds a rotated one: the salt the server derived
    /// it with from the presented token
    /// ([`tollgate_core::opaque::successor`]). The store keeps it beside the
    /// presented token's digest so that a retry within the reuse grace can
    /// be answered with the same successor; without it a retry is reuse.
    pub salt: Option<String>,
}

/// What presenting a refresh token did.
// One value per refresh call, moved once and never stored: boxing the large
// variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live and unused: it is now used and `new` replaces it.
    /// The session (with `last_used_at` updated) and its user are returned.
    Rotated {
        /// The session.
        session: SessionRecord,
        /// The session's user.
        user: UserRecord,
    },
    /// The token had been rotated less than the reuse grace ago, and its
    /// successor is still unused and live: a retry whose answer was lost.
    /// Nothing was consumed; the caller answers with the same successor,
    /// derived again from the presented token and `salt`.
    Retried {
        /// The session (with `last_used_at` updated).
        session: SessionRecord,
        /// The session's user.
        user: UserRecord,
        /// The salt the successor was derived with.
        salt: String,
    },
    /// The token had been used before: the whole session is now revoked
    /// (RFC 9700 §4.14); the event is durable.
    Reused {
        /// The revocation of the session.
        event: RevocationEvent,
    },
    /// Unknown, expired, its session ended, or its user disabled.
    Invalid,
}

/// A registered service client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    /// Client id; never equal to a user id.
    pub client_id: String,
    /// SHA-256 hex of the secret.
    pub secret_digest: String,
    /// Scopes the client may ask for.
    pub scopes: Vec<String>,
    /// Registration time.
    pub created_at: UnixTime,
}

/// A signing key at rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Key id.
    pub kid: String,
    /// Algorithm name.
    pub alg: String,
    /// `active`, `verify_only` or `retired`.
    pub status: String,
    /// Creation time.
    pub created_at: UnixTime,
    /// Retirement time of a verify-only key.
    pub retire_at: Option<UnixTime>,
    /// Sealed material ([`tollgate_core::keys::seal`]).
    pub material: Vec<u8>,
}

/// A revocation to record; the store assigns the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRevocation {
    /// What is revoked.
    pub kind: RevocationKind,
    /// The `jti`, `sid` or `sub`.
    pub value: String,
    /// When (for `user`: the cut-off).
    pub at: UnixTime,
    /// When the entry stops mattering.
    pub expires_at: UnixTime,
}

/// An audit event to append; the store assigns its cursor, its position on
/// the chain and its hashes ([`Store::append_audit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    /// When.
    pub at: UnixTime,
    /// Type ([`tollgate_core::audit::AuditEvent::kind`]).
    pub kind: String,
    /// Who (`user:<sub>`, `client:<id>`, `cli`, `system`, `anonymous`).
    pub actor: String,
    /// Whom or what it is about.
    pub subject: Option<String>,
    /// The client address.
    pub address: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// Details: a JSON object, hashed exactly as given.
    pub details: String,
}

/// A stored audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Position in the whole trail (commit order).
    pub cursor: u64,
    /// The writer's chain.
    pub chain: String,
    /// Position on the chain, from 1.
    pub seq: u64,
    /// The event.
    pub event: NewAuditEvent,
    /// The previous event's hash on the chain ([`tollgate_core::audit::GENESIS`]
    /// for the first).
    pub prev_hash: String,
    /// [`tollgate_core::audit::chain_hash`] of `prev_hash` and the content.
    pub hash: String,
}

impl AuditRow {
    /// What the hash covers.
    pub fn content(&self) -> tollgate_core::audit::AuditContent<'_> {
        tollgate_core::audit::AuditContent {
            chain: &self.chain,
            seq: self.seq,
            at: self.event.at,
            kind: &self.event.kind,
            actor: &self.event.actor,
            subject: self.event.subject.as_deref(),
            address: self.event.address.as_deref(),
            request_id: self.event.request_id.as_deref(),
            details: &self.event.details,
        }
    }
}

impl AuditRow {
    /// The wire form (`GET /v1/admin/audit`, `tollgate audit tail --json`);
    /// details that are not JSON (a row edited by hand) become a string.
    pub fn into_record(self) -> tollgate_core::wire::AuditRecord {
        let details = serde_json::from_str(&self.event.details)
            .unwrap_or_else(|_| serde_json::Value::String(self.event.details.clone()));
        tollgate_core::wire::AuditRecord {
            cursor: self.cursor,
            chain: self.chain,
            seq: self.seq,
            at: self.event.at,
            kind: self.event.kind,
            actor: self.event.actor,
            subject: self.event.subject,
            address: self.event.address,
            request_id: self.event.request_id,
            details,
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// The head of one audit chain: its last position and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditChainHead {
    /// The chain.
    pub chain: String,
    /// Its last position (0: nothing appended yet).
    pub seq: u64,
    /// The hash at that position.
    pub hash: String,
}

/// Which audit events a page holds; `None` matches any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditFilter<'a> {
    /// Only this type.
    pub kind: Option<&'a str>,
    /// Only this subject.
    pub subject: Option<&'a str>,
}

/// What [`Store::record_usage`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageRecorded {
    /// Every event is stored: `accepted` now, `duplicates` before (their
    /// key was stored already, by an earlier delivery or earlier in the
    /// same batch; they are not counted again).
    Stored {
        /// Events stored now.
        accepted: u64,
        /// Events whose key was stored already.
        duplicates: u64,
    },
    /// The event at `index` (the first such) names a user that does not
    /// exist; nothing was stored.
    UnknownUser {
        /// Position in the batch, from 0.
        index: usize,
    },
}

/// Which usage a report counts ([`Store::usage_report`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageQuery<'a> {
    /// One user, or every user.
    pub user: Option<&'a str>,
    /// The hours counted.
    pub period: Period,
    /// How the calls are grouped.
    pub group_by: UsageGroup,
}

/// The storage the server needs. Every method is one transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks the database answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates a user; `Conflict("user")` when the e-mail is taken or the id
    /// is a user's or a client's (they share one namespace).
    async fn create_user(&self, user: UserRecord) -> Result<(), StoreError>;
    /// The user with this id.
    async fn find_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError>;
    /// The user with this (normalised) e-mail.
    async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Users ordered by creation, after the user id `after`, at most `limit`.
    /// An unknown `after` gives an empty page.
    async fn list_users(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError>;
    /// Applies `update`; `None` when there is no such user. When `disabled`
    /// becomes true the caller also calls [`Store::revoke_user`].
    async fn update_user(
        &self,
        id: &str,
        update: UserUpdate,
    ) -> Result<Option<UserRecord>, StoreError>;
    /// Replaces a password hash (re-hash on login, password change). Does
    /// nothing when there is no such user.
    async fn set_password_hash(&self, id: &str, phc: &str) -> Result<(), StoreError>;

    /// Starts a session with its first refresh token (whose expiry is capped
    /// at the session's end). `Conflict` when the sid or digest is taken.
    async fn create_session(
        &self,
        session: SessionRecord,
        refresh: NewRefresh,
    ) -> Result<(), StoreError>;
    /// Rotates the refresh token with digest `presented` (see [`Rotation`]).
    /// Exactly one of any number of concurrent calls with one digest can
    /// return `Rotated`. `reuse_expires_at` is the `expires_at` of the
    /// session revocation written on reuse.
    ///
    /// A token is rotated when it is unused, `now < expires_at`, its session
    /// is neither ended nor past its end and its user is not disabled; the
    /// new token's expiry is capped at the session's end. A used token of a
    /// live session is a replay: the session ends at `now` (`Reused`). Since
    /// a store cannot tell a retry from a replay, of many concurrent calls
    /// with one digest one rotates, the first loser ends the session and the
    /// rest (like anything expired, unknown, of an ended session or of a
    /// disabled user) get `Invalid`, with nothing written.
    ///
    /// With a reuse grace (`grace` seconds, 0 for none), a used token
    /// presented again less than `grace` after its rotation, whose successor
    /// (with a stored salt) is still unused and live, in a live session of an
    /// enabled user, is a retry: `Retried`, with nothing consumed and no new
    /// token stored (every concurrent caller within the grace gets the same
    /// successor, so the chain never grows). Once the successor was used, or
    /// past the grace, it is a replay as above.
    async fn rotate_refresh(
        &self,
        presented: &str,
        new: NewRefresh,
        now: UnixTime,
        reuse_expires_at: UnixTime,
        grace: u64,
    ) -> Result<Rotation, StoreError>;
    /// The refresh token with this digest.
    async fn find_refresh(&self, digest: &str) -> Result<Option<RefreshRecord>, StoreError>;
    /// The session with this id.
    async fn find_session(&self, sid: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// A user's live sessions (not revoked, not past `expires_at`), newest first.
    async fn list_sessions(
        &self,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<SessionRecord>, StoreError>;
    /// Ends a session (logout, deletion, revoking its refresh token): marks
    /// it revoked, kills its refresh tokens and records the revocation.
    /// `None` when the session was already ended or does not exist. The
    /// event is of kind `session` with value `sid`, at `revocation.at`.
    async fn revoke_session(
        &self,
        sid: &str,
        revocation: NewRevocation,
    ) -> Result<Option<RevocationEvent>, StoreError>;
    /// Revokes one access or service token by `jti` (`revocation.value`; the
    /// event's kind is always `token`). Idempotent: revoking twice returns
    /// the first event and writes nothing.
    async fn revoke_token(&self, revocation: NewRevocation) -> Result<RevocationEvent, StoreError>;
    /// Revokes every token of `revocation.value` (a user id or client id)
    /// issued before `revocation.at`, and ends every live session of that
    /// user, recording one event for the cut-off and one per session
    /// (`session_expires_at` for those). Returns all events written, the
    /// cut-off first. Live means not ended and not past its end at
    /// `revocation.at`.
    async fn revoke_user(
        &self,
        revocation: NewRevocation,
        session_expires_at: UnixTime,
    ) -> Result<Vec<RevocationEvent>, StoreError>;
    /// Revocation events with a cursor above `after` whose `expires_at` is
    /// after `now`, oldest first, at most `limit`.
    async fn revocations_after(
        &self,
        after: u64,
        limit: u32,
        now: UnixTime,
    ) -> Result<Vec<RevocationEvent>, StoreError>;
    /// The highest cursor written so far (0 when none). It never goes down,
    /// even when purging removes the newest entries.
    async fn last_cursor(&self) -> Result<u64, StoreError>;
    /// Deletes revocations, refresh tokens and sessions that can no longer
    /// matter at `now` (`expires_at <= now`; a session takes its refresh
    /// tokens with it). Users, clients and keys are never purged. Returns
    /// how many rows went.
    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError>;

    /// Registers a client; `Conflict("client")` when the id is taken or
    /// equals a user id.
    async fn create_client(&self, client: ClientRecord) -> Result<(), StoreError>;
    /// The client with this id.
    async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError>;
    /// Every client, oldest first.
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError>;
    /// Deletes a client and, in the same transaction, revokes every token
    /// it was issued before `revocation.at` (a `user` event whose value is
    /// the client id; `revocation.value` is ignored). Its id becomes free
    /// again. `None` when there is no such client.
    async fn delete_client(
        &self,
        client_id: &str,
        revocation: NewRevocation,
    ) -> Result<Option<RevocationEvent>, StoreError>;
    /// Replaces a client's secret digest (a new secret; the old one stops
    /// working). `false` when there is no such client.
    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_digest: &str,
    ) -> Result<bool, StoreError>;

    /// Every signing key, newest first.
    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
    /// Inserts or updates these keys in one transaction (a rotation writes
    /// the new key and the demoted one together, in any order). At most one
    /// key is `active`: a call that would leave two is `Conflict("key")` and
    /// writes nothing, so two processes rotating at once cannot both win.
    async fn save_keys(&self, keys: &[KeyRecord]) -> Result<(), StoreError>;
    /// A rotation: saves `keys` as [`Store::save_keys`] does (at most one
    /// `active` and one `next` key, else `Conflict("key")` and nothing
    /// written) and appends a `keys` event naming `key_ids` (the active key,
    /// then the next one) to the feed in the same transaction, so every
    /// follower learns of the rotation in feed order.
    async fn rotate_keys(
        &self,
        keys: &[KeyRecord],
        key_ids: &str,
        at: UnixTime,
        expires_at: UnixTime,
    ) -> Result<RevocationEvent, StoreError>;
    /// Puts a `plan` notice on the feed (not a revocation): `user`'s plan is
    /// now `plan` (value [`RevocationEvent::plan_value`]), kept on the feed
    /// until `expires_at` (when every token minted before the change has
    /// expired), so SDKs apply the new plan's limits without a new token.
    async fn announce_plan(
        &self,
        user: &str,
        plan: &str,
        at: UnixTime,
        expires_at: UnixTime,
    ) -> Result<RevocationEvent, StoreError>;
    /// Appends `events` to the audit chain `chain` in one transaction: each
    /// gets the next position on the chain, the trail's next cursor, and
    /// its hash over the previous one's ([`tollgate_core::audit`]). The
    /// chain's head is locked for the transaction (writers of other chains
    /// do not wait for it but for the cursor counter, at the end). Returns
    /// the stored rows.
    async fn append_audit(
        &self,
        chain: &str,
        events: &[NewAuditEvent],
    ) -> Result<Vec<AuditRow>, StoreError>;
    /// Audit events with a cursor above `after` matching `filter`, oldest
    /// first, at most `limit`.
    async fn audit_after(
        &self,
        after: u64,
        filter: AuditFilter<'_>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError>;
    /// Every audit chain's head, by name.
    async fn audit_chains(&self) -> Result<Vec<AuditChainHead>, StoreError>;
    /// The events of one chain with a position above `after_seq`, in
    /// position order, at most `limit` (for verification).
    async fn audit_chain_page(
        &self,
        chain: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError>;
    /// Retention: deletes the audit events older than `before`, and on each
    /// chain every event before the last of those, so a chain only ever
    /// loses its oldest events. When any went, appends in the same
    /// transaction an `audit.pruned` event (actor `system`, at `now`) to
    /// `chain` naming every pruned chain's [`tollgate_core::audit::Anchor`],
    /// which [`verify_audit`] holds the oldest remaining events to.
    /// Returns how many went.
    async fn prune_audit(
        &self,
        before: UnixTime,
        chain: &str,
        now: UnixTime,
    ) -> Result<u64, StoreError>;

    /// Records a batch of usage events (checked by the caller with
    /// [`tollgate_core::usage::check_batch`]) received at `now`, in one
    /// transaction: each event whose idempotency key (`service`,
    /// `instance`, `seq`) is new is stored and counted in its user's, tool's,
    /// plan's and hour's total; an event whose key is stored already (a
    /// second delivery, or twice in the batch) counts once. When an event
    /// names a user that does not exist nothing is stored
    /// ([`UsageRecorded::UnknownUser`]).
    async fn record_usage(
        &self,
        events: &[UsageEvent],
        now: UnixTime,
    ) -> Result<UsageRecorded, StoreError>;
    /// Calls in `query.period` (of `query.user`, or of every user), summed
    /// per user and group; ordered by user, then key (byte order). The rows
    /// carry the user only when the query is over every user.
    async fn usage_report(&self, query: UsageQuery<'_>) -> Result<Vec<UsageRow>, StoreError>;
}
