//! [`SqlStore`]: the one implementation of [`Store`] for both SQL
//! backends. Every statement, transaction and decision (the conditional
//! rotation, the revocation event appended in the same transaction, the
//! feed's pages) is written here once, against a [`Dialect`]; what really
//! differs between SQLite and Postgres is in `dialect.rs` (the table of
//! differences) and in each backend's `open`/`connect`.
//!
//! Rules every method keeps, whatever the backend:
//! - One transaction per write, started with [`Dialect::BEGIN_WRITE`] and
//!   committed last; an error anywhere drops the transaction, which rolls
//!   it back, so a call either did everything or nothing. A failed commit
//!   is [`StoreError::Unavailable`]: a call returns `Ok` only once its
//!   commit returned, and the backends make a commit durable before it
//!   returns.
//! - Locks in one order: session rows (several: by `sid`), then refresh
//!   tokens, then the feed (so events are appended last). Where the dialect
//!   has no row locks the write lock taken at `BEGIN` orders everything.
//! - Reads are single statements on a pooled connection and never wait for
//!   writers.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool, Transaction};
use tollgate_core::UnixTime;
use tollgate_core::audit::{Anchor, AuditEvent, GENESIS, PRUNED, chain_hash};
use tollgate_core::usage::{self, UsageGroup};

use crate::dialect::{Arg, Columns, Dialect, Run};
use crate::sql::{conflict, from_db, from_db_opt, kind_name, parse_kind, to_db, unavailable};
use crate::{
    AuditChainHead, AuditFilter, AuditRow, ClientRecord, KeyRecord, NewAuditEvent, NewRefresh,
    NewRevocation, RefreshRecord, RevocationEvent, RevocationKind, Rotation, SessionRecord, Store,
    StoreError, UsageEvent, UsageQuery, UsageRecorded, UsageRow, UserRecord, UserUpdate,
};

/// The SQL implementation of [`Store`] over a backend `D`
/// ([`crate::SqliteStore`], [`crate::PostgresStore`]).
pub struct SqlStore<D: Dialect> {
    pub(crate) pool: Pool<D::Db>,
    pub(crate) dialect: D,
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
            dialect: self.dialect.clone(),
        }
    }
}

// The pool's options may hold a password: only the backend's own fields
// (path, schema) are printed.
impl<D: Dialect + std::fmt::Debug> std::fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.dialect.fmt(f)
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Closes every connection; later calls fail with
    /// [`StoreError::Unavailable`]. For shutdown and for tests that cut the
    /// database.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction (see the module docs).
    async fn write(&self) -> Result<Transaction<'static, D::Db>, StoreError> {
        self.pool
            .begin_with(D::BEGIN_WRITE)
            .await
            .map_err(unavailable)
    }

    /// A pooled connection for one read.
    async fn read(&self) -> Result<PoolConnection<D::Db>, StoreError> {
        self.pool.acquire().await.map_err(unavailable)
    }
}

type Conn<D> = <<D as Dialect>::Db as Database>::Connection;
type Row<D> = <<D as Dialect>::Db as Database>::Row;

/// Runs one statement: its first row.
async fn fetch_optional<D: Dialect>(
    conn: &mut Conn<D>,
    sql: &'static str,
    args: &[Arg<'_>],
) -> Result<Option<Row<D>>, sqlx::Error> {
    <D::Db as Run>::fetch_optional(conn, D::bind(sql, args)?).await
}

/// Runs one statement: every row.
async fn fetch_all<D: Dialect>(
    conn: &mut Conn<D>,
    sql: &'static str,
    args: &[Arg<'_>],
) -> Result<Vec<Row<D>>, sqlx::Error> {
    <D::Db as Run>::fetch_all(conn, D::bind(sql, args)?).await
}

/// Runs one statement: how many rows it changed.
async fn execute<D: Dialect>(
    conn: &mut Conn<D>,
    sql: &'static str,
    args: &[Arg<'_>],
) -> Result<u64, sqlx::Error> {
    let done = <D::Db as Run>::execute(conn, D::bind(sql, args)?).await?;
    Ok(D::rows_affected(&done))
}

/// Commits; a commit that fails leaves nothing written.
async fn commit<DB: Database>(tx: Transaction<'static, DB>) -> Result<(), StoreError> {
    tx.commit().await.map_err(unavailable)
}

// ---------------------------------------------------------------- columns

// Column lists, one per record, so every query decodes rows the same way.
macro_rules! user_columns {
    () => {
        "id, email, password_hash, plan, roles, disabled, created_at"
    };
}
macro_rules! session_columns {
    () => {
        "sid, user_id, client_id, scope, created_at, last_used_at, expires_at, revoked_at"
    };
}
macro_rules! client_columns {
    () => {
        "client_id, secret_digest, scopes, created_at"
    };
}
macro_rules! key_columns {
    () => {
        "kid, alg, status, created_at, retire_at, material"
    };
}
/// The revocation columns, as the dialects' `APPEND_EVENT` return them too.
macro_rules! revocation_columns {
    () => {
        "cursor, kind, value, at, expires_at"
    };
}
pub(crate) use revocation_columns;
macro_rules! audit_columns {
    () => {
        "cursor, chain, seq, at, kind, actor, subject, address, request_id, details, prev_hash, hash"
    };
}

fn time(row: &impl Columns, column: &'static str) -> Result<u64, StoreError> {
    from_db(row.int(column)?, column)
}

fn maybe_time(row: &impl Columns, column: &'static str) -> Result<Option<u64>, StoreError> {
    from_db_opt(row.maybe_int(column)?, column)
}

fn user_from(row: &impl Columns) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: row.text("id")?,
        email: row.text("email")?,
        password_hash: row.text("password_hash")?,
        plan: row.text("plan")?,
        roles: row.list("roles")?,
        disabled: row.flag("disabled")?,
        created_at: time(row, "created_at")?,
    })
}

fn session_from(row: &impl Columns) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        sid: row.text("sid")?,
        user_id: row.text("user_id")?,
        client_id: row.text("client_id")?,
        scope: row.text("scope")?,
        created_at: time(row, "created_at")?,
        last_used_at: time(row, "last_used_at")?,
        expires_at: time(row, "expires_at")?,
        revoked_at: maybe_time(row, "revoked_at")?,
    })
}

fn refresh_from(row: &impl Columns) -> Result<RefreshRecord, StoreError> {
    Ok(RefreshRecord {
        digest: row.text("digest")?,
        sid: row.text("sid")?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
        used_at: maybe_time(row, "used_at")?,
    })
}

fn client_from(row: &impl Columns) -> Result<ClientRecord, StoreError> {
    Ok(ClientRecord {
        client_id: row.text("client_id")?,
        secret_digest: row.text("secret_digest")?,
        scopes: row.list("scopes")?,
        created_at: time(row, "created_at")?,
    })
}

fn key_from(row: &impl Columns) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        kid: row.text("kid")?,
        alg: row.text("alg")?,
        status: row.text("status")?,
        created_at: time(row, "created_at")?,
        retire_at: maybe_time(row, "retire_at")?,
        material: row.bytes("material")?,
    })
}

fn audit_from(row: &impl Columns) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        cursor: time(row, "cursor")?,
        chain: row.text("chain")?,
        seq: time(row, "seq")?,
        event: NewAuditEvent {
            at: time(row, "at")?,
            kind: row.text("kind")?,
            actor: row.text("actor")?,
            subject: row.maybe_text("subject")?,
            address: row.maybe_text("address")?,
            request_id: row.maybe_text("request_id")?,
            details: row.text("details")?,
        },
        prev_hash: row.text("prev_hash")?,
        hash: row.text("hash")?,
    })
}

fn revocation_from(row: &impl Columns) -> Result<RevocationEvent, StoreError> {
    Ok(RevocationEvent {
        cursor: time(row, "cursor")?,
        kind: parse_kind(&row.text("kind")?)?,
        value: row.text("value")?,
        at: time(row, "at")?,
        expires_at: time(row, "expires_at")?,
    })
}

// ---------------------------------------------------------------- statements

/// A statement that reads rows a writer is about to change, locking them
/// where the dialect locks rows ([`Dialect::ROW_LOCKS`]).
struct Locking {
    plain: &'static str,
    locking: &'static str,
}

impl Locking {
    fn sql<D: Dialect>(&self) -> &'static str {
        if D::ROW_LOCKS {
            self.locking
        } else {
            self.plain
        }
    }
}

macro_rules! locking {
    ($sql:literal, $lock:literal) => {
        Locking {
            plain: $sql,
            locking: concat!($sql, " ", $lock),
        }
    };
}

/// The session of a refresh token, locked first (the lock order).
const SESSION_OF_TOKEN: Locking = locking!(
    "SELECT s.sid FROM sessions s JOIN refresh_tokens r ON r.sid = s.sid WHERE r.digest = $1",
    "FOR NO KEY UPDATE OF s"
);

/// A user's live sessions at `$2`, in lock order.
const LIVE_SESSIONS_OF_USER: Locking = locking!(
    "SELECT sid FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
     ORDER BY sid",
    "FOR NO KEY UPDATE"
);

/// An audit chain's head, locked for the appending transaction.
const AUDIT_HEAD: Locking = locking!(
    "SELECT seq, hash FROM audit_chains WHERE chain = $1",
    "FOR UPDATE"
);

/// With row locks only: the sessions a purge deletes, locked first.
const LOCK_EXPIRED_SESSIONS: &str =
    "SELECT sid FROM sessions WHERE expires_at <= $1 ORDER BY sid FOR UPDATE";

const INSERT_REFRESH: &str =
    "INSERT INTO refresh_tokens (digest, sid, created_at, expires_at) VALUES ($1, $2, $3, $4)";

/// Stores a refresh token of session `sid`, its expiry capped at the
/// session's end (a refresh token never outlives its session).
async fn insert_refresh<D: Dialect>(
    tx: &mut Conn<D>,
    refresh: &NewRefresh,
    sid: &str,
    session_expires_at: UnixTime,
) -> Result<(), StoreError> {
    let expires_at = refresh.expires_at.min(session_expires_at);
    execute::<D>(
        tx,
        INSERT_REFRESH,
        &[
            Arg::Text(&refresh.digest),
            Arg::Text(sid),
            Arg::Int(to_db(refresh.created_at)),
            Arg::Int(to_db(expires_at)),
        ],
    )
    .await
    .map_err(conflict("refresh token"))?;
    Ok(())
}

/// Appends one event to the feed inside the caller's transaction (so the
/// event commits with the write it records). Last in a transaction: it may
/// take the feed's lock.
async fn append_event<D: Dialect>(
    tx: &mut Conn<D>,
    kind: RevocationKind,
    value: &str,
    at: UnixTime,
    expires_at: UnixTime,
) -> Result<RevocationEvent, StoreError> {
    let row = fetch_optional::<D>(
        tx,
        D::APPEND_EVENT,
        &[
            Arg::Text(kind_name(kind)),
            Arg::Text(value),
            Arg::Int(to_db(at)),
            Arg::Int(to_db(expires_at)),
        ],
    )
    .await
    .map_err(conflict("revocation"))?
    .ok_or_else(|| StoreError::Corrupt("appending to the feed returned no row".to_owned()))?;
    revocation_from(&row)
}

/// Ends a session that is not yet ended (revoked at `at`, its unused
/// refresh tokens dead), without its feed event, which the caller appends
/// last. Whether it was ended now.
async fn end_session<D: Dialect>(
    tx: &mut Conn<D>,
    sid: &str,
    at: UnixTime,
) -> Result<bool, StoreError> {
    let ended = execute::<D>(
        tx,
        "UPDATE sessions SET revoked_at = $1 WHERE sid = $2 AND revoked_at IS NULL",
        &[Arg::Int(to_db(at)), Arg::Text(sid)],
    )
    .await
    .map_err(unavailable)?;
    if ended == 0 {
        return Ok(false);
    }
    execute::<D>(
        tx,
        "UPDATE refresh_tokens SET used_at = $1 WHERE sid = $2 AND used_at IS NULL",
        &[Arg::Int(to_db(at)), Arg::Text(sid)],
    )
    .await
    .map_err(unavailable)?;
    Ok(true)
}

/// Marks session `sid` used at `now`: the session and its user.
async fn touch_session<D: Dialect>(
    tx: &mut Conn<D>,
    sid: &str,
    now: UnixTime,
) -> Result<(SessionRecord, UserRecord), StoreError> {
    let row = fetch_optional::<D>(
        tx,
        concat!(
            "UPDATE sessions SET last_used_at = $1 WHERE sid = $2 RETURNING ",
            session_columns!()
        ),
        &[Arg::Int(to_db(now)), Arg::Text(sid)],
    )
    .await
    .map_err(unavailable)?
    .ok_or_else(|| StoreError::Corrupt("a rotated token has no session".to_owned()))?;
    let session = session_from(&row)?;
    let row = fetch_optional::<D>(
        tx,
        concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"),
        &[Arg::Text(&session.user_id)],
    )
    .await
    .map_err(unavailable)?
    .ok_or_else(|| StoreError::Corrupt("a session has no user".to_owned()))?;
    Ok((session, user_from(&row)?))
}

/// One optional record by a read statement.
async fn find<D: Dialect, T>(
    store: &SqlStore<D>,
    sql: &'static str,
    args: &[Arg<'_>],
    from: fn(&Row<D>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut conn = store.read().await?;
    fetch_optional::<D>(&mut conn, sql, args)
        .await
        .map_err(unavailable)?
        .as_ref()
        .map(from)
        .transpose()
}

/// Every record a read statement returns.
async fn list<D: Dialect, T>(
    store: &SqlStore<D>,
    sql: &'static str,
    args: &[Arg<'_>],
    from: fn(&Row<D>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut conn = store.read().await?;
    fetch_all::<D>(&mut conn, sql, args)
        .await
        .map_err(unavailable)?
        .iter()
        .map(from)
        .collect()
}

#[async_trait::async_trait]
impl<D: Dialect> Store for SqlStore<D> {
    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.read().await?;
        execute::<D>(&mut conn, "SELECT 1", &[])
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn create_user(&self, user: UserRecord) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        // The shared subjects table refuses an id that is a client's or
        // another user's.
        execute::<D>(
            &mut tx,
            "INSERT INTO subjects (subject, kind) VALUES ($1, 'user')",
            &[Arg::Text(&user.id)],
        )
        .await
        .map_err(conflict("user"))?;
        execute::<D>(
            &mut tx,
            concat!(
                "INSERT INTO users (",
                user_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ),
            &[
                Arg::Text(&user.id),
                Arg::Text(&user.email),
                Arg::Text(&user.password_hash),
                Arg::Text(&user.plan),
                Arg::List(&user.roles),
                Arg::Flag(user.disabled),
                Arg::Int(to_db(user.created_at)),
            ],
        )
        .await
        .map_err(conflict("user"))?;
        commit(tx).await
    }

    async fn find_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        find(
            self,
            concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"),
            &[Arg::Text(id)],
            user_from,
        )
        .await
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        find(
            self,
            concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1"),
            &[Arg::Text(email)],
            user_from,
        )
        .await
    }

    async fn list_users(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError> {
        // An unknown `after` yields nothing rather than restarting the
        // listing, so a pager can never loop. Two statements, not one with
        // `$1 IS NULL OR seq > …`: the `OR` kept SQLite from seeking to the
        // position, so a page deep in 100 000 users scanned every row
        // before it (the console pages through them).
        match after {
            None => {
                list(
                    self,
                    concat!(
                        "SELECT ",
                        user_columns!(),
                        " FROM users ORDER BY seq LIMIT $1"
                    ),
                    &[Arg::Int(i64::from(limit))],
                    user_from,
                )
                .await
            }
            Some(after) => {
                list(
                    self,
                    concat!(
                        "SELECT ",
                        user_columns!(),
                        " FROM users WHERE seq > (SELECT seq FROM users WHERE id = $1)",
                        " ORDER BY seq LIMIT $2"
                    ),
                    &[Arg::Text(after), Arg::Int(i64::from(limit))],
                    user_from,
                )
                .await
            }
        }
    }

    async fn update_user(
        &self,
        id: &str,
        update: UserUpdate,
    ) -> Result<Option<UserRecord>, StoreError> {
        let mut tx = self.write().await?;
        let row = fetch_optional::<D>(
            &mut tx,
            concat!(
                "UPDATE users SET plan = COALESCE($2, plan), roles = COALESCE($3, roles),",
                " disabled = COALESCE($4, disabled) WHERE id = $1 RETURNING ",
                user_columns!()
            ),
            &[
                Arg::Text(id),
                Arg::MaybeText(update.plan.as_deref()),
                Arg::MaybeList(update.roles.as_deref()),
                Arg::MaybeFlag(update.disabled),
            ],
        )
        .await
        .map_err(unavailable)?;
        let user = row.as_ref().map(user_from).transpose()?;
        commit(tx).await?;
        Ok(user)
    }

    async fn set_password_hash(&self, id: &str, phc: &str) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        execute::<D>(
            &mut tx,
            "UPDATE users SET password_hash = $2 WHERE id = $1",
            &[Arg::Text(id), Arg::Text(phc)],
        )
        .await
        .map_err(unavailable)?;
        commit(tx).await
    }

    async fn create_session(
        &self,
        session: SessionRecord,
        refresh: NewRefresh,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        execute::<D>(
            &mut tx,
            concat!(
                "INSERT INTO sessions (",
                session_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ),
            &[
                Arg::Text(&session.sid),
                Arg::Text(&session.user_id),
                Arg::Text(&session.client_id),
                Arg::Text(&session.scope),
                Arg::Int(to_db(session.created_at)),
                Arg::Int(to_db(session.last_used_at)),
                Arg::Int(to_db(session.expires_at)),
                Arg::MaybeInt(session.revoked_at.map(to_db)),
            ],
        )
        .await
        .map_err(conflict("session"))?;
        insert_refresh::<D>(&mut tx, &refresh, &session.sid, session.expires_at).await?;
        commit(tx).await
    }

    async fn rotate_refresh(
        &self,
        presented: &str,
        new: NewRefresh,
        now: UnixTime,
        reuse_expires_at: UnixTime,
        grace: u64,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.write().await?;
        // The session row first (the lock order of the module docs).
        let Some(row) = fetch_optional::<D>(
            &mut tx,
            SESSION_OF_TOKEN.sql::<D>(),
            &[Arg::Text(presented)],
        )
        .await
        .map_err(unavailable)?
        else {
            return Ok(Rotation::Invalid);
        };
        let sid = row.text("sid")?;

        // The one conditional update that decides a race: only a live,
        // unused token of a live session of an enabled user is consumed.
        // Under Postgres's READ COMMITTED a concurrent caller waits for the
        // row and re-checks `used_at IS NULL`; under SQLite's write lock it
        // runs after the winner committed.
        // The successor and its salt are kept beside the consumed token, for
        // a retry within the reuse grace.
        let consumed = execute::<D>(
            &mut tx,
            "UPDATE refresh_tokens SET used_at = $1, successor = $3, successor_salt = $4 \
             WHERE digest = $2 AND used_at IS NULL AND expires_at > $1 \
               AND EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id \
                           WHERE s.sid = refresh_tokens.sid AND s.revoked_at IS NULL \
                             AND s.expires_at > $1 AND NOT u.disabled)",
            &[
                Arg::Int(to_db(now)),
                Arg::Text(presented),
                Arg::Text(&new.digest),
                Arg::MaybeText(new.salt.as_deref()),
            ],
        )
        .await
        .map_err(unavailable)?;

        if consumed == 1 {
            let (session, user) = touch_session::<D>(&mut tx, &sid, now).await?;
            insert_refresh::<D>(&mut tx, &new, &sid, session.expires_at).await?;
            commit(tx).await?;
            return Ok(Rotation::Rotated { session, user });
        }

        // A retry within the grace: rotated less than `grace` ago, its
        // successor unused and live, the session live, the user enabled.
        // The session row lock (or the write lock) taken above orders this
        // against a concurrent use of the successor.
        if grace > 0 {
            let retried = fetch_optional::<D>(
                &mut tx,
                "SELECT p.successor_salt FROM refresh_tokens p \
                 JOIN refresh_tokens n ON n.digest = p.successor \
                 JOIN sessions s ON s.sid = p.sid JOIN users u ON u.id = s.user_id \
                 WHERE p.digest = $1 AND p.used_at IS NOT NULL AND p.used_at > $3 \
                   AND p.successor_salt IS NOT NULL \
                   AND n.sid = p.sid AND n.used_at IS NULL AND n.expires_at > $2 \
                   AND s.revoked_at IS NULL AND s.expires_at > $2 AND NOT u.disabled",
                &[
                    Arg::Text(presented),
                    Arg::Int(to_db(now)),
                    Arg::Int(to_db(now.saturating_sub(grace))),
                ],
            )
            .await
            .map_err(unavailable)?;
            if let Some(row) = retried {
                let salt = row.text("successor_salt")?;
                let (session, user) = touch_session::<D>(&mut tx, &sid, now).await?;
                commit(tx).await?;
                return Ok(Rotation::Retried {
                    session,
                    user,
                    salt,
                });
            }
        }

        // Nothing consumed. A used token of a live session is a replay: the
        // session is compromised and ends now (RFC 9700 §4.14).
        let replayed = fetch_optional::<D>(
            &mut tx,
            "SELECT r.sid FROM refresh_tokens r JOIN sessions s ON s.sid = r.sid \
             WHERE r.digest = $1 AND r.used_at IS NOT NULL \
               AND s.revoked_at IS NULL AND s.expires_at > $2",
            &[Arg::Text(presented), Arg::Int(to_db(now))],
        )
        .await
        .map_err(unavailable)?;
        if replayed.is_none() || !end_session::<D>(&mut tx, &sid, now).await? {
            return Ok(Rotation::Invalid);
        }
        let event = append_event::<D>(
            &mut tx,
            RevocationKind::Session,
            &sid,
            now,
            reuse_expires_at,
        )
        .await?;
        commit(tx).await?;
        Ok(Rotation::Reused { event })
    }

    async fn find_refresh(&self, digest: &str) -> Result<Option<RefreshRecord>, StoreError> {
        find(
            self,
            "SELECT digest, sid, created_at, expires_at, used_at \
             FROM refresh_tokens WHERE digest = $1",
            &[Arg::Text(digest)],
            refresh_from,
        )
        .await
    }

    async fn find_session(&self, sid: &str) -> Result<Option<SessionRecord>, StoreError> {
        find(
            self,
            concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE sid = $1"
            ),
            &[Arg::Text(sid)],
            session_from,
        )
        .await
    }

    async fn list_sessions(
        &self,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        list(
            self,
            concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
                " ORDER BY seq DESC"
            ),
            &[Arg::Text(user_id), Arg::Int(to_db(now))],
            session_from,
        )
        .await
    }

    async fn revoke_session(
        &self,
        sid: &str,
        revocation: NewRevocation,
    ) -> Result<Option<RevocationEvent>, StoreError> {
        let mut tx = self.write().await?;
        if !end_session::<D>(&mut tx, sid, revocation.at).await? {
            return Ok(None);
        }
        let event = append_event::<D>(
            &mut tx,
            RevocationKind::Session,
            sid,
            revocation.at,
            revocation.expires_at,
        )
        .await?;
        commit(tx).await?;
        Ok(Some(event))
    }

    async fn revoke_token(&self, revocation: NewRevocation) -> Result<RevocationEvent, StoreError> {
        let mut tx = self.write().await?;
        if let Some(lock) = D::LOCK_FEED {
            execute::<D>(&mut tx, lock, &[])
                .await
                .map_err(unavailable)?;
        }
        let existing = fetch_optional::<D>(
            &mut tx,
            concat!(
                "SELECT ",
                revocation_columns!(),
                " FROM revocations WHERE kind = 'token' AND value = $1"
            ),
            &[Arg::Text(&revocation.value)],
        )
        .await
        .map_err(unavailable)?;
        if let Some(row) = existing {
            return revocation_from(&row);
        }
        let event = append_event::<D>(
            &mut tx,
            RevocationKind::Token,
            &revocation.value,
            revocation.at,
            revocation.expires_at,
        )
        .await?;
        commit(tx).await?;
        Ok(event)
    }

    async fn revoke_user(
        &self,
        revocation: NewRevocation,
        session_expires_at: UnixTime,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        let at = revocation.at;
        let mut tx = self.write().await?;
        // Session rows first, in lock order; the feed last.
        let sessions = fetch_all::<D>(
            &mut tx,
            LIVE_SESSIONS_OF_USER.sql::<D>(),
            &[Arg::Text(&revocation.value), Arg::Int(to_db(at))],
        )
        .await
        .map_err(unavailable)?;
        let mut ended = Vec::with_capacity(sessions.len());
        for row in &sessions {
            let sid = row.text("sid")?;
            if end_session::<D>(&mut tx, &sid, at).await? {
                ended.push(sid);
            }
        }
        let mut events = Vec::with_capacity(ended.len() + 1);
        events.push(
            append_event::<D>(
                &mut tx,
                RevocationKind::User,
                &revocation.value,
                at,
                revocation.expires_at,
            )
            .await?,
        );
        for sid in ended {
            events.push(
                append_event::<D>(
                    &mut tx,
                    RevocationKind::Session,
                    &sid,
                    at,
                    session_expires_at,
                )
                .await?,
            );
        }
        commit(tx).await?;
        Ok(events)
    }

    async fn revocations_after(
        &self,
        after: u64,
        limit: u32,
        now: UnixTime,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        list(
            self,
            concat!(
                "SELECT ",
                revocation_columns!(),
                " FROM revocations WHERE cursor > $1 AND expires_at > $2 ORDER BY cursor LIMIT $3"
            ),
            &[
                Arg::Int(to_db(after)),
                Arg::Int(to_db(now)),
                Arg::Int(i64::from(limit)),
            ],
            revocation_from,
        )
        .await
    }

    async fn last_cursor(&self) -> Result<u64, StoreError> {
        let row = find(self, D::LAST_CURSOR, &[], |row| time(row, "last_cursor")).await?;
        row.ok_or_else(|| StoreError::Corrupt("the feed has no cursor".to_owned()))
    }

    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        let now = [Arg::Int(to_db(now))];
        let mut tx = self.write().await?;
        if D::ROW_LOCKS {
            execute::<D>(&mut tx, LOCK_EXPIRED_SESSIONS, &now)
                .await
                .map_err(unavailable)?;
        }
        let mut purged = 0;
        // Refresh tokens of ending sessions go first, explicitly, so they are
        // counted (cascaded deletes are not).
        for statement in [
            "DELETE FROM refresh_tokens WHERE expires_at <= $1 \
               OR sid IN (SELECT sid FROM sessions WHERE expires_at <= $1)",
            "DELETE FROM sessions WHERE expires_at <= $1",
            "DELETE FROM revocations WHERE expires_at <= $1",
        ] {
            purged += execute::<D>(&mut tx, statement, &now)
                .await
                .map_err(unavailable)?;
        }
        commit(tx).await?;
        Ok(purged)
    }

    async fn create_client(&self, client: ClientRecord) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        // The shared subjects table refuses an id that is a user's or
        // another client's.
        execute::<D>(
            &mut tx,
            "INSERT INTO subjects (subject, kind) VALUES ($1, 'client')",
            &[Arg::Text(&client.client_id)],
        )
        .await
        .map_err(conflict("client"))?;
        execute::<D>(
            &mut tx,
            concat!(
                "INSERT INTO clients (",
                client_columns!(),
                ") VALUES ($1, $2, $3, $4)"
            ),
            &[
                Arg::Text(&client.client_id),
                Arg::Text(&client.secret_digest),
                Arg::List(&client.scopes),
                Arg::Int(to_db(client.created_at)),
            ],
        )
        .await
        .map_err(conflict("client"))?;
        commit(tx).await
    }

    async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        find(
            self,
            concat!(
                "SELECT ",
                client_columns!(),
                " FROM clients WHERE client_id = $1"
            ),
            &[Arg::Text(client_id)],
            client_from,
        )
        .await
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        list(
            self,
            concat!("SELECT ", client_columns!(), " FROM clients ORDER BY seq"),
            &[],
            client_from,
        )
        .await
    }

    async fn delete_client(
        &self,
        client_id: &str,
        revocation: NewRevocation,
    ) -> Result<Option<RevocationEvent>, StoreError> {
        let mut tx = self.write().await?;
        let deleted = execute::<D>(
            &mut tx,
            "DELETE FROM clients WHERE client_id = $1",
            &[Arg::Text(client_id)],
        )
        .await
        .map_err(unavailable)?;
        if deleted == 0 {
            return Ok(None);
        }
        execute::<D>(
            &mut tx,
            "DELETE FROM subjects WHERE subject = $1 AND kind = 'client'",
            &[Arg::Text(client_id)],
        )
        .await
        .map_err(unavailable)?;
        let event = append_event::<D>(
            &mut tx,
            RevocationKind::User,
            client_id,
            revocation.at,
            revocation.expires_at,
        )
        .await?;
        commit(tx).await?;
        Ok(Some(event))
    }

    async fn set_client_secret(
        &self,
        client_id: &str,
        secret_digest: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let changed = execute::<D>(
            &mut tx,
            "UPDATE clients SET secret_digest = $2 WHERE client_id = $1",
            &[Arg::Text(client_id), Arg::Text(secret_digest)],
        )
        .await
        .map_err(unavailable)?;
        commit(tx).await?;
        Ok(changed > 0)
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        list(
            self,
            concat!(
                "SELECT ",
                key_columns!(),
                " FROM signing_keys ORDER BY seq DESC"
            ),
            &[],
            key_from,
        )
        .await
    }

    async fn save_keys(&self, keys: &[KeyRecord]) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        write_keys::<D>(&mut tx, keys).await?;
        commit(tx).await
    }

    async fn announce_plan(
        &self,
        user: &str,
        plan: &str,
        at: UnixTime,
        expires_at: UnixTime,
    ) -> Result<RevocationEvent, StoreError> {
        let value = RevocationEvent::plan_value(user, plan);
        let mut tx = self.write().await?;
        let event =
            append_event::<D>(&mut tx, RevocationKind::Plan, &value, at, expires_at).await?;
        commit(tx).await?;
        Ok(event)
    }

    async fn rotate_keys(
        &self,
        keys: &[KeyRecord],
        key_ids: &str,
        at: UnixTime,
        expires_at: UnixTime,
    ) -> Result<RevocationEvent, StoreError> {
        let mut tx = self.write().await?;
        write_keys::<D>(&mut tx, keys).await?;
        let event =
            append_event::<D>(&mut tx, RevocationKind::Keys, key_ids, at, expires_at).await?;
        commit(tx).await?;
        Ok(event)
    }

    async fn append_audit(
        &self,
        chain: &str,
        events: &[NewAuditEvent],
    ) -> Result<Vec<AuditRow>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.write().await?;
        let rows = append_audit_in::<D>(&mut tx, chain, events).await?;
        commit(tx).await?;
        Ok(rows)
    }

    async fn audit_after(
        &self,
        after: u64,
        filter: AuditFilter<'_>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        list(
            self,
            concat!(
                "SELECT ",
                audit_columns!(),
                " FROM audit_events WHERE cursor > $1",
                " AND (CAST($2 AS TEXT) IS NULL OR kind = $2)",
                " AND (CAST($3 AS TEXT) IS NULL OR subject = $3)",
                " ORDER BY cursor LIMIT $4"
            ),
            &[
                Arg::Int(to_db(after)),
                Arg::MaybeText(filter.kind),
                Arg::MaybeText(filter.subject),
                Arg::Int(i64::from(limit)),
            ],
            audit_from,
        )
        .await
    }

    async fn audit_chains(&self) -> Result<Vec<AuditChainHead>, StoreError> {
        list(
            self,
            "SELECT chain, seq, hash FROM audit_chains ORDER BY chain",
            &[],
            |row| {
                Ok(AuditChainHead {
                    chain: row.text("chain")?,
                    seq: time(row, "seq")?,
                    hash: row.text("hash")?,
                })
            },
        )
        .await
    }

    async fn audit_chain_page(
        &self,
        chain: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        list(
            self,
            concat!(
                "SELECT ",
                audit_columns!(),
                " FROM audit_events WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            ),
            &[
                Arg::Text(chain),
                Arg::Int(to_db(after_seq)),
                Arg::Int(i64::from(limit)),
            ],
            audit_from,
        )
        .await
    }

    async fn prune_audit(
        &self,
        before: UnixTime,
        chain: &str,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        // Per chain, everything up to its last event older than `before`:
        // a clock that went back cannot leave a hole in a chain.
        let pruned = execute::<D>(
            &mut tx,
            "DELETE FROM audit_events WHERE seq <= \
               (SELECT MAX(old.seq) FROM audit_events old \
                WHERE old.chain = audit_events.chain AND old.at < $1)",
            &[Arg::Int(to_db(before))],
        )
        .await
        .map_err(unavailable)?;
        if pruned > 0 {
            // Where every pruned chain now starts: its oldest remaining
            // event's link, or its head when none remains.
            let anchors = fetch_all::<D>(
                &mut tx,
                "SELECT c.chain, \
                   COALESCE(e.seq - 1, c.seq) AS seq, COALESCE(e.prev_hash, c.hash) AS hash \
                 FROM audit_chains c LEFT JOIN audit_events e ON e.chain = c.chain \
                   AND e.seq = (SELECT MIN(m.seq) FROM audit_events m WHERE m.chain = c.chain) \
                 WHERE COALESCE(e.seq - 1, c.seq) > 0 ORDER BY c.chain",
                &[],
            )
            .await
            .map_err(unavailable)?
            .iter()
            .map(|row| {
                Ok(Anchor {
                    chain: row.text("chain")?,
                    seq: time(row, "seq")?,
                    hash: row.text("hash")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
            let (subject, details) = AuditEvent::Pruned {
                before,
                rows: pruned,
                anchors,
            }
            .into_parts();
            let event = NewAuditEvent {
                at: now,
                kind: PRUNED.to_owned(),
                actor: "system".to_owned(),
                subject,
                address: None,
                request_id: None,
                details,
            };
            append_audit_in::<D>(&mut tx, chain, std::slice::from_ref(&event)).await?;
        }
        commit(tx).await?;
        Ok(pruned)
    }

    async fn record_usage(
        &self,
        events: &[UsageEvent],
        now: UnixTime,
    ) -> Result<UsageRecorded, StoreError> {
        if events.is_empty() {
            return Ok(UsageRecorded::Stored {
                accepted: 0,
                duplicates: 0,
            });
        }
        // In key order, so that two batches sharing keys (a retry racing
        // its first delivery) take Postgres' row locks in the same order.
        let mut ordered: Vec<&UsageEvent> = events.iter().collect();
        ordered.sort_unstable_by(|a, b| {
            (&a.service, &a.instance, a.seq).cmp(&(&b.service, &b.instance, b.seq))
        });
        let rows: Vec<_> = ordered
            .iter()
            .map(|e| {
                (
                    &e.service,
                    &e.instance,
                    to_db(e.seq),
                    &e.user,
                    &e.tool,
                    &e.plan,
                    to_db(e.at),
                )
            })
            .collect();
        let rows = serde_json::to_string(&rows)
            .map_err(|err| StoreError::Corrupt(format!("encoding usage events: {err}")))?;
        let users: Vec<String> = events
            .iter()
            .map(|e| e.user.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(str::to_owned)
            .collect();

        let mut tx = self.write().await?;
        let known: HashSet<String> = fetch_all::<D>(&mut tx, D::KNOWN_USERS, &[Arg::List(&users)])
            .await
            .map_err(unavailable)?
            .iter()
            .map(|row| row.text("id"))
            .collect::<Result<_, _>>()?;
        if let Some(index) = events.iter().position(|e| !known.contains(&e.user)) {
            return Ok(UsageRecorded::UnknownUser { index });
        }
        let stored = fetch_all::<D>(
            &mut tx,
            D::INSERT_USAGE,
            &[Arg::Text(&rows), Arg::Int(to_db(now))],
        )
        .await
        .map_err(unavailable)?;
        // The hourly counts of what was stored now, each key once.
        let mut hours: BTreeMap<(String, u64, String, String), u64> = BTreeMap::new();
        for row in &stored {
            let key = (
                row.text("user_id")?,
                usage::hour_of(time(row, "at")?),
                row.text("tool")?,
                row.text("plan")?,
            );
            *hours.entry(key).or_default() += 1;
        }
        if !hours.is_empty() {
            let hours: Vec<_> = hours
                .iter()
                .map(|((user, hour, tool, plan), calls)| {
                    (user, to_db(*hour), tool, plan, to_db(*calls))
                })
                .collect();
            let hours = serde_json::to_string(&hours)
                .map_err(|err| StoreError::Corrupt(format!("encoding usage counts: {err}")))?;
            execute::<D>(&mut tx, D::ADD_USAGE_HOURS, &[Arg::Text(&hours)])
                .await
                .map_err(unavailable)?;
        }
        commit(tx).await?;
        let accepted = stored.len() as u64;
        Ok(UsageRecorded::Stored {
            accepted,
            duplicates: events.len() as u64 - accepted,
        })
    }

    async fn usage_report(&self, query: UsageQuery<'_>) -> Result<Vec<UsageRow>, StoreError> {
        // Every user's rows, grouped; the caller's filter on one user.
        macro_rules! report {
            ($group:literal) => {
                concat!(
                    "SELECT user_id, ",
                    $group,
                    " AS grp, CAST(SUM(calls) AS BIGINT) AS calls FROM usage_hourly",
                    " WHERE hour >= $1 AND hour < $2",
                    " AND (CAST($3 AS TEXT) IS NULL OR user_id = $3)",
                    " GROUP BY user_id, ",
                    $group
                )
            };
        }
        let sql = match query.group_by {
            UsageGroup::Tool => report!("tool"),
            UsageGroup::Plan => report!("plan"),
            UsageGroup::Day => report!("hour / 86400"),
        };
        let mut conn = self.read().await?;
        let found = fetch_all::<D>(
            &mut conn,
            sql,
            &[
                Arg::Int(to_db(query.period.from)),
                Arg::Int(to_db(query.period.to)),
                Arg::MaybeText(query.user),
            ],
        )
        .await
        .map_err(unavailable)?;
        let mut rows = found
            .iter()
            .map(|row| {
                let key = match query.group_by {
                    UsageGroup::Day => usage::day_key(time(row, "grp")?),
                    UsageGroup::Tool | UsageGroup::Plan => row.text("grp")?,
                };
                Ok(UsageRow {
                    user: match query.user {
                        Some(_) => None,
                        None => Some(row.text("user_id")?),
                    },
                    key,
                    calls: time(row, "calls")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Sorted here rather than by the database: its collation may not
        // be byte order. Dates sort as their text.
        rows.sort_unstable_by(|a, b| (&a.user, &a.key).cmp(&(&b.user, &b.key)));
        Ok(rows)
    }
}

/// Inserts or updates `keys` inside the caller's transaction. The
/// one-active-key and one-next-key indexes are checked per statement, so
/// keys leave a status before others take it: demotions first, then
/// promotions to active (a next key stepping up frees the next slot), then
/// the new next key.
/// Appends `events` to `chain` inside `tx` (see [`Store::append_audit`]).
async fn append_audit_in<D: Dialect>(
    tx: &mut Conn<D>,
    chain: &str,
    events: &[NewAuditEvent],
) -> Result<Vec<AuditRow>, StoreError> {
    // The chain's head first (created at the genesis when new), locked
    // until commit: appends to one chain are serialised, other chains'
    // are not.
    execute::<D>(
        tx,
        "INSERT INTO audit_chains (chain, seq, hash) VALUES ($1, 0, $2) \
         ON CONFLICT (chain) DO NOTHING",
        &[Arg::Text(chain), Arg::Text(GENESIS)],
    )
    .await
    .map_err(unavailable)?;
    let head = fetch_optional::<D>(tx, AUDIT_HEAD.sql::<D>(), &[Arg::Text(chain)])
        .await
        .map_err(unavailable)?
        .ok_or_else(|| StoreError::Corrupt("an audit chain has no head".to_owned()))?;
    let mut seq = time(&head, "seq")?;
    let mut prev = head.text("hash")?;
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        seq += 1;
        let mut row = AuditRow {
            cursor: 0,
            chain: chain.to_owned(),
            seq,
            event: event.clone(),
            prev_hash: prev,
            hash: String::new(),
        };
        row.hash = chain_hash(&row.prev_hash, &row.content());
        prev = row.hash.clone();
        rows.push(row);
    }
    // The trail's cursors last: the counter row is held until commit,
    // so cursors are handed out in commit order (a reader past cursor N
    // has seen every event below it), for as short a time as possible.
    let count = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let counter = fetch_optional::<D>(
        tx,
        "UPDATE audit_feed SET last_cursor = last_cursor + $1 RETURNING last_cursor",
        &[Arg::Int(count)],
    )
    .await
    .map_err(unavailable)?
    .ok_or_else(|| StoreError::Corrupt("the audit trail has no cursor".to_owned()))?;
    let last = time(&counter, "last_cursor")?;
    let first = last + 1 - rows.len() as u64;
    for (offset, row) in rows.iter_mut().enumerate() {
        row.cursor = first + offset as u64;
        let event = &row.event;
        execute::<D>(
            tx,
            concat!(
                "INSERT INTO audit_events (",
                audit_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ),
            &[
                Arg::Int(to_db(row.cursor)),
                Arg::Text(&row.chain),
                Arg::Int(to_db(row.seq)),
                Arg::Int(to_db(event.at)),
                Arg::Text(&event.kind),
                Arg::Text(&event.actor),
                Arg::MaybeText(event.subject.as_deref()),
                Arg::MaybeText(event.address.as_deref()),
                Arg::MaybeText(event.request_id.as_deref()),
                Arg::Text(&event.details),
                Arg::Text(&row.prev_hash),
                Arg::Text(&row.hash),
            ],
        )
        .await
        .map_err(conflict("audit event"))?;
    }
    execute::<D>(
        tx,
        "UPDATE audit_chains SET seq = $2, hash = $3 WHERE chain = $1",
        &[Arg::Text(chain), Arg::Int(to_db(seq)), Arg::Text(&prev)],
    )
    .await
    .map_err(unavailable)?;
    Ok(rows)
}

async fn write_keys<D: Dialect>(tx: &mut Conn<D>, keys: &[KeyRecord]) -> Result<(), StoreError> {
    let mut ordered: Vec<&KeyRecord> = keys.iter().collect();
    ordered.sort_by_key(|key| match key.status.as_str() {
        "active" => 1,
        "next" => 2,
        _ => 0,
    });
    for key in ordered {
        execute::<D>(
            tx,
            concat!(
                "INSERT INTO signing_keys (",
                key_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kid) DO UPDATE SET",
                " alg = excluded.alg, status = excluded.status, created_at = excluded.created_at,",
                " retire_at = excluded.retire_at, material = excluded.material"
            ),
            &[
                Arg::Text(&key.kid),
                Arg::Text(&key.alg),
                Arg::Text(&key.status),
                Arg::Int(to_db(key.created_at)),
                Arg::MaybeInt(key.retire_at.map(to_db)),
                Arg::Bytes(&key.material),
            ],
        )
        .await
        .map_err(conflict("key"))?;
    }
    Ok(())
}
