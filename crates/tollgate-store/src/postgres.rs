//! The Postgres store: shared by any number of server instances
//! (`TOLLGATE_DATABASE_URL=postgres://…`).
//!
//! Owns its schema (migrations embedded from `migrations/postgres/`, the
//! same tables as the SQLite store) and every statement run against it. It
//! must not decide policy: callers pass `now` and expiry times in.
//!
//! Durability and concurrency:
//! - Every connection runs `synchronous_commit = on` and READ COMMITTED,
//!   whatever the server's defaults: a revocation is flushed to the WAL
//!   before its commit returns, and the rotation below relies on READ
//!   COMMITTED re-checking a conditional UPDATE's `WHERE` after waiting for
//!   a concurrent updater of the same row.
//! - Refresh rotation locks the session row, then runs the one conditional
//!   `UPDATE … WHERE used_at IS NULL`: of concurrent rotations exactly one
//!   updates the row; the others wait, re-check, find it used.
//! - Locks are taken in one order everywhere — session rows (several: by
//!   `sid`), then refresh-token rows, then the revocation feed's counter
//!   row — so concurrent writers queue and never deadlock.
//! - Feed cursors come from the counter row, which each revoking
//!   transaction increments and holds until commit: cursors are handed out
//!   in commit order, so a reader past cursor N has seen every event below
//!   N (a sequence would not give this).
//! - An optional schema ([`PostgresStore::connect_in_schema`]) isolates one
//!   deployment (or one test) from others in the same database.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, PgPool, Postgres, Transaction};
use tollgate_core::UnixTime;

use crate::sql::{
    conflict, from_db, from_db_opt, get, is_retryable, kind_name, migrate_error, parse_kind, to_db,
    unavailable,
};
use crate::{
    ClientRecord, KeyRecord, NewRefresh, NewRevocation, RefreshRecord, RevocationEvent,
    RevocationKind, Rotation, SessionRecord, Store, StoreError, UserRecord, UserUpdate,
};

/// How long a call waits for a pooled connection (or a new one).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections per server instance.
const MAX_CONNECTIONS: u32 = 10;
/// Longest schema name Postgres keeps (NAMEDATALEN - 1).
const MAX_SCHEMA_LEN: usize = 63;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The Postgres implementation of [`Store`].
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    schema: Option<String>,
}

impl fmt::Debug for PostgresStore {
    // The pool's options hold the password: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `postgres://…` (or `postgresql://…`), checks the
    /// connection and applies pending migrations in the user's default
    /// schema (`public` unless `search_path` says otherwise).
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect_in_schema(url, None).await
    }

    /// As [`PostgresStore::connect`], with every table in `schema` (created
    /// when missing; set as `search_path` on every pooled connection). A
    /// schema name is 1 to 63 of `a-z`, `0-9` and `_`, not starting with a
    /// digit.
    pub async fn connect_in_schema(
        url: &str,
        schema: Option<&str>,
    ) -> Result<PostgresStore, StoreError> {
        if let Some(schema) = schema {
            check_schema_name(schema)?;
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|err| StoreError::Config(format!("the Postgres URL does not parse: {err}")))?
            .application_name("tollgate");
        let search_path = schema.map(|schema| format!("SET search_path TO \"{schema}\""));
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _meta| {
                let search_path = search_path.clone();
                Box::pin(async move { prepare_connection(conn, search_path).await })
            })
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        warn_when_fsync_is_off(&pool).await?;
        migrate(&pool, schema).await?;
        Ok(PostgresStore {
            pool,
            schema: schema.map(str::to_owned),
        })
    }

    /// The schema the tables live in, when one was given.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Closes every connection; later calls fail with
    /// [`StoreError::Unavailable`]. For shutdown and for tests that cut the
    /// database.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(unavailable)
    }
}

fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let valid = (1..=MAX_SCHEMA_LEN).contains(&schema.len())
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(StoreError::Config(
            "a Postgres schema name is 1 to 63 of a-z, 0-9 and _, not starting with a digit"
                .to_owned(),
        ))
    }
}

/// Session settings every pooled connection needs, whatever the server's
/// defaults (see the module docs).
async fn prepare_connection(
    conn: &mut PgConnection,
    search_path: Option<String>,
) -> Result<(), sqlx::Error> {
    if let Some(search_path) = search_path {
        // The schema name was checked to be [a-z0-9_]+, so it needs no
        // escaping inside the quotes.
        sqlx::query(AssertSqlSafe(search_path))
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("SET synchronous_commit = on")
        .execute(&mut *conn)
        .await?;
    sqlx::query("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// With `fsync = off` the server does not make any commit durable. That is
/// the operator's decision (test servers do it for speed), so it is logged
/// loudly rather than refused.
async fn warn_when_fsync_is_off(pool: &PgPool) -> Result<(), StoreError> {
    let fsync: String = sqlx::query_scalar("SELECT current_setting('fsync')")
        .fetch_one(pool)
        .await
        .map_err(unavailable)?;
    if fsync != "on" {
        tracing::warn!(
            fsync = %fsync,
            "Postgres runs with fsync off: revocations are not durable across a crash of the database server"
        );
    }
    Ok(())
}

/// Creates the schema when one is named and applies pending migrations
/// (sqlx serialises concurrent migrators with an advisory lock; creating
/// the schema can still race, and is retried).
async fn migrate(pool: &PgPool, schema: Option<&str>) -> Result<(), StoreError> {
    let mut attempt: u64 = 0;
    loop {
        if let Some(schema) = schema {
            let created = sqlx::query(AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
            )))
            .execute(pool)
            .await;
            if let Err(err) = created {
                if attempt >= 3 {
                    return Err(unavailable(err));
                }
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                continue;
            }
        }
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(err) if attempt < 3 && is_retryable(&err) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(err) => return Err(migrate_error(err)),
        }
    }
}

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
macro_rules! revocation_columns {
    () => {
        "cursor, kind, value, at, expires_at"
    };
}

fn user_from(row: &PgRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: get(row, "id")?,
        email: get(row, "email")?,
        password_hash: get(row, "password_hash")?,
        plan: get(row, "plan")?,
        roles: get(row, "roles")?,
        disabled: get(row, "disabled")?,
        created_at: from_db(get(row, "created_at")?, "created_at")?,
    })
}

fn session_from(row: &PgRow) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        sid: get(row, "sid")?,
        user_id: get(row, "user_id")?,
        client_id: get(row, "client_id")?,
        scope: get(row, "scope")?,
        created_at: from_db(get(row, "created_at")?, "created_at")?,
        last_used_at: from_db(get(row, "last_used_at")?, "last_used_at")?,
        expires_at: from_db(get(row, "expires_at")?, "expires_at")?,
        revoked_at: from_db_opt(get(row, "revoked_at")?, "revoked_at")?,
    })
}

fn client_from(row: &PgRow) -> Result<ClientRecord, StoreError> {
    Ok(ClientRecord {
        client_id: get(row, "client_id")?,
        secret_digest: get(row, "secret_digest")?,
        scopes: get(row, "scopes")?,
        created_at: from_db(get(row, "created_at")?, "created_at")?,
    })
}

fn key_from(row: &PgRow) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        kid: get(row, "kid")?,
        alg: get(row, "alg")?,
        status: get(row, "status")?,
        created_at: from_db(get(row, "created_at")?, "created_at")?,
        retire_at: from_db_opt(get(row, "retire_at")?, "retire_at")?,
        material: get(row, "material")?,
    })
}

fn revocation_from(row: &PgRow) -> Result<RevocationEvent, StoreError> {
    Ok(RevocationEvent {
        cursor: from_db(get(row, "cursor")?, "cursor")?,
        kind: parse_kind(&get::<_, String>(row, "kind")?)?,
        value: get(row, "value")?,
        at: from_db(get(row, "at")?, "at")?,
        expires_at: from_db(get(row, "expires_at")?, "expires_at")?,
    })
}

/// Appends one event to the feed inside the caller's transaction. Takes the
/// feed's counter row lock, so callers append after every other write.
async fn append_event(
    tx: &mut PgConnection,
    kind: RevocationKind,
    value: &str,
    at: UnixTime,
    expires_at: UnixTime,
) -> Result<RevocationEvent, StoreError> {
    let row = sqlx::query(concat!(
        "WITH next AS (UPDATE revocation_feed SET last_cursor = last_cursor + 1",
        " RETURNING last_cursor)",
        " INSERT INTO revocations (cursor, kind, value, at, expires_at)",
        " SELECT last_cursor, $1, $2, $3, $4 FROM next RETURNING ",
        revocation_columns!()
    ))
    .bind(kind_name(kind))
    .bind(value)
    .bind(to_db(at))
    .bind(to_db(expires_at))
    .fetch_one(&mut *tx)
    .await
    .map_err(conflict("revocation"))?;
    revocation_from(&row)
}

/// Ends a session that is not yet ended (revoked at `at`, unused refresh
/// tokens dead), without its feed event, which the caller appends last.
/// Whether it was ended now.
async fn end_session(tx: &mut PgConnection, sid: &str, at: UnixTime) -> Result<bool, StoreError> {
    let ended = sqlx::query(
        "UPDATE sessions SET revoked_at = $1 WHERE sid = $2 AND revoked_at IS NULL RETURNING sid",
    )
    .bind(to_db(at))
    .bind(sid)
    .fetch_optional(&mut *tx)
    .await
    .map_err(unavailable)?;
    if ended.is_none() {
        return Ok(false);
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE sid = $2 AND used_at IS NULL")
        .bind(to_db(at))
        .bind(sid)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    Ok(true)
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn create_user(&self, user: UserRecord) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO subjects (subject, kind) VALUES ($1, 'user')")
            .bind(&user.id)
            .execute(&mut *tx)
            .await
            .map_err(conflict("user"))?;
        sqlx::query(concat!(
            "INSERT INTO users (",
            user_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(&user.plan)
        .bind(&user.roles)
        .bind(user.disabled)
        .bind(to_db(user.created_at))
        .execute(&mut *tx)
        .await
        .map_err(conflict("user"))?;
        tx.commit().await.map_err(unavailable)
    }

    async fn find_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?
        .as_ref()
        .map(user_from)
        .transpose()
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE email = $1"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?
        .as_ref()
        .map(user_from)
        .transpose()
    }

    async fn list_users(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError> {
        // An unknown `after` yields nothing rather than restarting the
        // listing, so a pager can never loop.
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE $1::text IS NULL OR seq > (SELECT seq FROM users WHERE id = $1)",
            " ORDER BY seq LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(user_from)
        .collect()
    }

    async fn update_user(
        &self,
        id: &str,
        update: UserUpdate,
    ) -> Result<Option<UserRecord>, StoreError> {
        let mut tx = self.write().await?;
        let row = sqlx::query(concat!(
            "UPDATE users SET plan = COALESCE($2, plan), roles = COALESCE($3, roles),",
            " disabled = COALESCE($4, disabled) WHERE id = $1 RETURNING ",
            user_columns!()
        ))
        .bind(id)
        .bind(update.plan)
        .bind(update.roles)
        .bind(update.disabled)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        let user = row.as_ref().map(user_from).transpose()?;
        tx.commit().await.map_err(unavailable)?;
        Ok(user)
    }

    async fn set_password_hash(&self, id: &str, phc: &str) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(id)
            .bind(phc)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn create_session(
        &self,
        session: SessionRecord,
        refresh: NewRefresh,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(concat!(
            "INSERT INTO sessions (",
            session_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&session.sid)
        .bind(&session.user_id)
        .bind(&session.client_id)
        .bind(&session.scope)
        .bind(to_db(session.created_at))
        .bind(to_db(session.last_used_at))
        .bind(to_db(session.expires_at))
        .bind(session.revoked_at.map(to_db))
        .execute(&mut *tx)
        .await
        .map_err(conflict("session"))?;
        // A refresh token never outlives its session.
        sqlx::query(
            "INSERT INTO refresh_tokens (digest, sid, created_at, expires_at) \
             VALUES ($1, $2, $3, LEAST($4, $5))",
        )
        .bind(&refresh.digest)
        .bind(&session.sid)
        .bind(to_db(refresh.created_at))
        .bind(to_db(refresh.expires_at))
        .bind(to_db(session.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(conflict("refresh token"))?;
        tx.commit().await.map_err(unavailable)
    }

    async fn rotate_refresh(
        &self,
        presented: &str,
        new: NewRefresh,
        now: UnixTime,
        reuse_expires_at: UnixTime,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.write().await?;
        // The session row first (the lock order of the module docs).
        let sid: Option<String> = sqlx::query_scalar(
            "SELECT s.sid FROM sessions s JOIN refresh_tokens r ON r.sid = s.sid \
             WHERE r.digest = $1 FOR NO KEY UPDATE OF s",
        )
        .bind(presented)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        let Some(sid) = sid else {
            return Ok(Rotation::Invalid);
        };

        // The one conditional update that decides a race: only a live,
        // unused token of a live session of an enabled user is consumed.
        let rotated = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 \
             WHERE digest = $2 AND used_at IS NULL AND expires_at > $1 \
               AND EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id \
                           WHERE s.sid = refresh_tokens.sid AND s.revoked_at IS NULL \
                             AND s.expires_at > $1 AND NOT u.disabled) \
             RETURNING sid",
        )
        .bind(to_db(now))
        .bind(presented)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;

        if rotated.is_some() {
            let row = sqlx::query(concat!(
                "UPDATE sessions SET last_used_at = $1 WHERE sid = $2 RETURNING ",
                session_columns!()
            ))
            .bind(to_db(now))
            .bind(&sid)
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
            let session = session_from(&row)?;
            let row = sqlx::query(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE id = $1"
            ))
            .bind(&session.user_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
            let user = user_from(&row)?;
            sqlx::query(
                "INSERT INTO refresh_tokens (digest, sid, created_at, expires_at) \
                 VALUES ($1, $2, $3, LEAST($4, $5))",
            )
            .bind(&new.digest)
            .bind(&sid)
            .bind(to_db(new.created_at))
            .bind(to_db(new.expires_at))
            .bind(to_db(session.expires_at))
            .execute(&mut *tx)
            .await
            .map_err(conflict("refresh token"))?;
            tx.commit().await.map_err(unavailable)?;
            return Ok(Rotation::Rotated { session, user });
        }

        // Nothing consumed. A used token of a live session is a replay: the
        // session is compromised and ends now (RFC 9700 §4.14).
        let replayed: Option<String> = sqlx::query_scalar(
            "SELECT r.sid FROM refresh_tokens r JOIN sessions s ON s.sid = r.sid \
             WHERE r.digest = $1 AND r.used_at IS NOT NULL \
               AND s.revoked_at IS NULL AND s.expires_at > $2",
        )
        .bind(presented)
        .bind(to_db(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        if replayed.is_none() || !end_session(&mut tx, &sid, now).await? {
            return Ok(Rotation::Invalid);
        }
        let event = append_event(
            &mut tx,
            RevocationKind::Session,
            &sid,
            now,
            reuse_expires_at,
        )
        .await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Rotation::Reused { event })
    }

    async fn find_refresh(&self, digest: &str) -> Result<Option<RefreshRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT digest, sid, created_at, expires_at, used_at \
             FROM refresh_tokens WHERE digest = $1",
        )
        .bind(digest)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(RefreshRecord {
            digest: get(&row, "digest")?,
            sid: get(&row, "sid")?,
            created_at: from_db(get(&row, "created_at")?, "created_at")?,
            expires_at: from_db(get(&row, "expires_at")?, "expires_at")?,
            used_at: from_db_opt(get(&row, "used_at")?, "used_at")?,
        }))
    }

    async fn find_session(&self, sid: &str) -> Result<Option<SessionRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE sid = $1"
        ))
        .bind(sid)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?
        .as_ref()
        .map(session_from)
        .transpose()
    }

    async fn list_sessions(
        &self,
        user_id: &str,
        now: UnixTime,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
            " ORDER BY seq DESC"
        ))
        .bind(user_id)
        .bind(to_db(now))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(session_from)
        .collect()
    }

    async fn revoke_session(
        &self,
        sid: &str,
        revocation: NewRevocation,
    ) -> Result<Option<RevocationEvent>, StoreError> {
        let mut tx = self.write().await?;
        if !end_session(&mut tx, sid, revocation.at).await? {
            return Ok(None);
        }
        let event = append_event(
            &mut tx,
            RevocationKind::Session,
            sid,
            revocation.at,
            revocation.expires_at,
        )
        .await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Some(event))
    }

    async fn revoke_token(&self, revocation: NewRevocation) -> Result<RevocationEvent, StoreError> {
        let mut tx = self.write().await?;
        // Holding the feed's counter row makes check-then-insert atomic
        // against a concurrent revocation of the same jti.
        sqlx::query("SELECT last_cursor FROM revocation_feed FOR UPDATE")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let existing = sqlx::query(concat!(
            "SELECT ",
            revocation_columns!(),
            " FROM revocations WHERE kind = 'token' AND value = $1"
        ))
        .bind(&revocation.value)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        if let Some(row) = existing {
            return revocation_from(&row);
        }
        let event = append_event(
            &mut tx,
            RevocationKind::Token,
            &revocation.value,
            revocation.at,
            revocation.expires_at,
        )
        .await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(event)
    }

    async fn revoke_user(
        &self,
        revocation: NewRevocation,
        session_expires_at: UnixTime,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        let at = revocation.at;
        let mut tx = self.write().await?;
        // Session rows first, locked in one order; the feed last.
        let sids: Vec<String> = sqlx::query_scalar(
            "SELECT sid FROM sessions \
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY sid FOR NO KEY UPDATE",
        )
        .bind(&revocation.value)
        .bind(to_db(at))
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        let mut ended = Vec::with_capacity(sids.len());
        for sid in sids {
            if end_session(&mut tx, &sid, at).await? {
                ended.push(sid);
            }
        }
        let mut events = Vec::with_capacity(ended.len() + 1);
        events.push(
            append_event(
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
                append_event(
                    &mut tx,
                    RevocationKind::Session,
                    &sid,
                    at,
                    session_expires_at,
                )
                .await?,
            );
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(events)
    }

    async fn revocations_after(
        &self,
        after: u64,
        limit: u32,
        now: UnixTime,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            revocation_columns!(),
            " FROM revocations WHERE cursor > $1 AND expires_at > $2 ORDER BY cursor LIMIT $3"
        ))
        .bind(to_db(after))
        .bind(to_db(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(revocation_from)
        .collect()
    }

    async fn last_cursor(&self) -> Result<u64, StoreError> {
        // The counter only ever goes up, and only at commit.
        let last: i64 = sqlx::query_scalar("SELECT last_cursor FROM revocation_feed")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        from_db(last, "cursor")
    }

    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        let now = to_db(now);
        let mut tx = self.write().await?;
        // Session rows first, as everywhere (module docs).
        sqlx::query("SELECT sid FROM sessions WHERE expires_at <= $1 ORDER BY sid FOR UPDATE")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let mut purged = 0;
        // Refresh tokens of ending sessions go first, explicitly, so they are
        // counted (cascaded deletes are not).
        for statement in [
            "DELETE FROM refresh_tokens WHERE expires_at <= $1 \
               OR sid IN (SELECT sid FROM sessions WHERE expires_at <= $1)",
            "DELETE FROM sessions WHERE expires_at <= $1",
            "DELETE FROM revocations WHERE expires_at <= $1",
        ] {
            purged += sqlx::query(statement)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?
                .rows_affected();
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(purged)
    }

    async fn create_client(&self, client: ClientRecord) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        // The shared subjects table refuses an id that is a user's or
        // another client's.
        sqlx::query("INSERT INTO subjects (subject, kind) VALUES ($1, 'client')")
            .bind(&client.client_id)
            .execute(&mut *tx)
            .await
            .map_err(conflict("client"))?;
        sqlx::query(concat!(
            "INSERT INTO clients (",
            client_columns!(),
            ") VALUES ($1, $2, $3, $4)"
        ))
        .bind(&client.client_id)
        .bind(&client.secret_digest)
        .bind(&client.scopes)
        .bind(to_db(client.created_at))
        .execute(&mut *tx)
        .await
        .map_err(conflict("client"))?;
        tx.commit().await.map_err(unavailable)
    }

    async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?
        .as_ref()
        .map(client_from)
        .transpose()
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients ORDER BY seq"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(client_from)
        .collect()
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM signing_keys ORDER BY seq DESC"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(key_from)
        .collect()
    }

    async fn save_keys(&self, keys: &[KeyRecord]) -> Result<(), StoreError> {
        // Demotions before promotions: the one-active-key index is checked
        // per statement, so the old active key must step down first.
        let mut ordered: Vec<&KeyRecord> = keys.iter().collect();
        ordered.sort_by_key(|key| key.status == "active");
        let mut tx = self.write().await?;
        for key in ordered {
            sqlx::query(concat!(
                "INSERT INTO signing_keys (",
                key_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kid) DO UPDATE SET",
                " alg = excluded.alg, status = excluded.status, created_at = excluded.created_at,",
                " retire_at = excluded.retire_at, material = excluded.material"
            ))
            .bind(&key.kid)
            .bind(&key.alg)
            .bind(&key.status)
            .bind(to_db(key.created_at))
            .bind(key.retire_at.map(to_db))
            .bind(&key.material)
            .execute(&mut *tx)
            .await
            .map_err(conflict("key"))?;
        }
        tx.commit().await.map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["tollgate", "t_1", "_x", &"a".repeat(63)] {
            assert!(check_schema_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "Tollgate",
            "a-b",
            "a\"; DROP SCHEMA public; --",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(check_schema_name(bad), Err(StoreError::Config(_))),
                "{bad}"
            );
        }
    }
}
