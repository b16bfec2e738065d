//! The SQLite store: the embedded default, one file
//! (`sqlite://./tollgate-data/tollgate.db`), nothing to install.
//!
//! Owns the file's schema (migrations embedded from `migrations/sqlite/`) and
//! every statement run against it. It must not decide policy (lifetimes,
//! who may revoke what): callers pass `now` and expiry times in.
//!
//! Durability and concurrency, which the rest of Tollgate relies on:
//! - WAL journal with `synchronous=FULL`: a commit is on disk before the
//!   call returns. Every new connection reads the settings back and is
//!   refused when they are not in force (SQLite accepts a misspelt or
//!   unsupported pragma silently, so setting is not enough).
//! - Every write is one `BEGIN IMMEDIATE` transaction: it takes the write
//!   lock before reading, so concurrent writers queue (up to the busy
//!   timeout) instead of failing with `SQLITE_BUSY` when a read transaction
//!   tries to upgrade. This also serialises refresh rotation, and it is what
//!   makes a second process (the `tollgate` CLI) safe next to the server.
//! - Reads are single statements on the WAL snapshot and never block writes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tollgate_core::UnixTime;

use crate::sql::{
    conflict, from_db, from_db_opt, get, is_retryable, kind_name, migrate_error, parse_kind, to_db,
    unavailable,
};
use crate::{
    ClientRecord, KeyRecord, NewRefresh, NewRevocation, RefreshRecord, RevocationEvent,
    RevocationKind, Rotation, SessionRecord, Store, StoreError, UserRecord, UserUpdate,
};

/// How long a writer waits for another writer (in this or another process)
/// before the call fails as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections per process. SQLite has one writer at a time; the others
/// serve concurrent reads from the WAL.
const MAX_CONNECTIONS: u32 = 8;
/// `PRAGMA synchronous` value of FULL.
const SYNCHRONOUS_FULL: i64 = 2;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// The SQLite implementation of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating when missing, with owner-only permissions) the
    /// database file named by `sqlite://PATH` or `sqlite:PATH`, checks its
    /// durability settings and applies pending migrations. The URL takes no
    /// parameters: every setting that matters is fixed here.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let path = parse_url(url)?;
        prepare_file(&path)?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _meta| Box::pin(async move { check_durability(conn).await }))
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        migrate(&pool).await?;
        Ok(SqliteStore { pool, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes every connection; later calls fail with
    /// [`StoreError::Unavailable`]. For shutdown and for tests that cut the
    /// database.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction holding SQLite's write lock from its first
    /// statement (see the module docs).
    async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)
    }
}

/// The file path of a `sqlite://PATH` (or `sqlite:PATH`) URL.
fn parse_url(url: &str) -> Result<PathBuf, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::Config("a SQLite URL starts with `sqlite://`".to_owned()))?;
    if rest.contains('?') {
        return Err(StoreError::Config(
            "a SQLite URL takes no parameters: `sqlite://PATH` (durability settings are fixed)"
                .to_owned(),
        ));
    }
    if rest.is_empty() || rest == ":memory:" {
        return Err(StoreError::Config(
            "a SQLite URL names a file: `sqlite://PATH` (in-memory databases are not durable)"
                .to_owned(),
        ));
    }
    Ok(PathBuf::from(rest))
}

/// Creates the directory and an empty database file when missing, readable
/// by the owner only: the file holds password hashes and key material, and
/// SQLite gives its `-wal` and `-shm` files the main file's permissions.
fn prepare_file(path: &Path) -> Result<(), StoreError> {
    let io = |what: &str, err: std::io::Error| {
        StoreError::Unavailable(format!("{what} {}: {err}", path.display()))
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|err| io("creating the directory of", err))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(io("creating", err)),
    }
}

/// Refuses a connection on which commits might not be durable or foreign
/// keys are not enforced (SECURITY.md, "Known traps").
async fn check_durability(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let refuse = |detail: String| sqlx::Error::Configuration(detail.into());
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await?;
    if synchronous != SYNCHRONOUS_FULL {
        return Err(refuse(format!(
            "SQLite PRAGMA synchronous is {synchronous}, not FULL ({SYNCHRONOUS_FULL}): \
             refusing to open a store whose revocations might not reach the disk"
        )));
    }
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(refuse(format!(
            "SQLite journal_mode is {journal}, not WAL: refusing to open \
             (a second process could block the server)"
        )));
    }
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&mut *conn)
        .await?;
    if foreign_keys != 1 {
        return Err(refuse(
            "SQLite foreign keys are off: refusing to open".to_owned(),
        ));
    }
    Ok(())
}

/// Applies pending migrations. Two processes opening a new file at once
/// race to apply them; the loser fails and, on its next try, finds them
/// applied.
async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let mut attempt: u64 = 0;
    loop {
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

fn user_from(row: &SqliteRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: get(row, "id")?,
        email: get(row, "email")?,
        password_hash: get(row, "password_hash")?,
        plan: get(row, "plan")?,
        roles: list_from(&get::<_, String>(row, "roles")?, "roles")?,
        disabled: get(row, "disabled")?,
        created_at: from_db(get(row, "created_at")?, "created_at")?,
    })
}

fn session_from(row: &SqliteRow) -> Result<SessionRecord, StoreError> {
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

fn client_from(row: &SqliteRow) -> Result<ClientRecord, StoreError> {
    Ok(ClientRecord {
        client_id: get(row, "client_id")?,
        secret_digest: get(row, "secret_digest")?,
        scopes: list_from(&get::<_, String>(row, "scopes")?, "scopes")?,
        created_at: from_db(get(row, "created_at")?, "created_at")?,
    })
}

fn key_from(row: &SqliteRow) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        kid: get(row, "kid")?,
        alg: get(row, "alg")?,
        status: get(row, "status")?,
        created_at: from_db(get(row, "created_at")?, "created_at")?,
        retire_at: from_db_opt(get(row, "retire_at")?, "retire_at")?,
        material: get(row, "material")?,
    })
}

fn revocation_from(row: &SqliteRow) -> Result<RevocationEvent, StoreError> {
    Ok(RevocationEvent {
        cursor: from_db(get(row, "cursor")?, "cursor")?,
        kind: parse_kind(&get::<_, String>(row, "kind")?)?,
        value: get(row, "value")?,
        at: from_db(get(row, "at")?, "at")?,
        expires_at: from_db(get(row, "expires_at")?, "expires_at")?,
    })
}

/// A list column (roles, scopes): a JSON array of strings.
fn list_to(items: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(items).map_err(|err| StoreError::Corrupt(err.to_string()))
}

fn list_from(text: &str, column: &'static str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt(format!("column {column}: {err}")))
}

/// Appends one event to the revocation feed, inside the caller's
/// transaction (so the event commits with the write it records).
async fn append_event(
    tx: &mut SqliteConnection,
    kind: RevocationKind,
    value: &str,
    at: UnixTime,
    expires_at: UnixTime,
) -> Result<RevocationEvent, StoreError> {
    let row = sqlx::query(concat!(
        "INSERT INTO revocations (kind, value, at, expires_at) VALUES (?1, ?2, ?3, ?4) RETURNING ",
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

/// Ends a session that is not yet ended: marks it revoked at `at`, marks its
/// unused refresh tokens dead and appends the session event. `None` when
/// there is no such session or it was already ended.
async fn end_session(
    tx: &mut SqliteConnection,
    sid: &str,
    at: UnixTime,
    expires_at: UnixTime,
) -> Result<Option<RevocationEvent>, StoreError> {
    let ended = sqlx::query(
        "UPDATE sessions SET revoked_at = ?1 WHERE sid = ?2 AND revoked_at IS NULL RETURNING sid",
    )
    .bind(to_db(at))
    .bind(sid)
    .fetch_optional(&mut *tx)
    .await
    .map_err(unavailable)?;
    if ended.is_none() {
        return Ok(None);
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = ?1 WHERE sid = ?2 AND used_at IS NULL")
        .bind(to_db(at))
        .bind(sid)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    let event = append_event(tx, RevocationKind::Session, sid, at, expires_at).await?;
    Ok(Some(event))
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn create_user(&self, user: UserRecord) -> Result<(), StoreError> {
        let roles = list_to(&user.roles)?;
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO subjects (subject, kind) VALUES (?1, 'user')")
            .bind(&user.id)
            .execute(&mut *tx)
            .await
            .map_err(conflict("user"))?;
        sqlx::query(concat!(
            "INSERT INTO users (",
            user_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ))
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(&user.plan)
        .bind(roles)
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
            " FROM users WHERE id = ?1"
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
            " FROM users WHERE email = ?1"
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
            " FROM users WHERE ?1 IS NULL OR seq > (SELECT seq FROM users WHERE id = ?1)",
            " ORDER BY seq LIMIT ?2"
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
        let roles = update.roles.as_deref().map(list_to).transpose()?;
        let mut tx = self.write().await?;
        let row = sqlx::query(concat!(
            "UPDATE users SET plan = COALESCE(?2, plan), roles = COALESCE(?3, roles),",
            " disabled = COALESCE(?4, disabled) WHERE id = ?1 RETURNING ",
            user_columns!()
        ))
        .bind(id)
        .bind(update.plan)
        .bind(roles)
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
        sqlx::query("UPDATE users SET password_hash = ?2 WHERE id = ?1")
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
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
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
             VALUES (?1, ?2, ?3, MIN(?4, ?5))",
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
        // The one conditional update that decides a race: only a live,
        // unused token of a live session of an enabled user is consumed.
        let rotated: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = ?1 \
             WHERE digest = ?2 AND used_at IS NULL AND expires_at > ?1 \
               AND EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id \
                           WHERE s.sid = refresh_tokens.sid AND s.revoked_at IS NULL \
                             AND s.expires_at > ?1 AND u.disabled = 0) \
             RETURNING sid",
        )
        .bind(to_db(now))
        .bind(presented)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;

        if let Some(sid) = rotated {
            let row = sqlx::query(concat!(
                "UPDATE sessions SET last_used_at = ?1 WHERE sid = ?2 RETURNING ",
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
                " FROM users WHERE id = ?1"
            ))
            .bind(&session.user_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
            let user = user_from(&row)?;
            sqlx::query(
                "INSERT INTO refresh_tokens (digest, sid, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, MIN(?4, ?5))",
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
             WHERE r.digest = ?1 AND r.used_at IS NOT NULL \
               AND s.revoked_at IS NULL AND s.expires_at > ?2",
        )
        .bind(presented)
        .bind(to_db(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        let Some(sid) = replayed else {
            return Ok(Rotation::Invalid);
        };
        let Some(event) = end_session(&mut tx, &sid, now, reuse_expires_at).await? else {
            return Ok(Rotation::Invalid);
        };
        tx.commit().await.map_err(unavailable)?;
        Ok(Rotation::Reused { event })
    }

    async fn find_refresh(&self, digest: &str) -> Result<Option<RefreshRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT digest, sid, created_at, expires_at, used_at \
             FROM refresh_tokens WHERE digest = ?1",
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
            " FROM sessions WHERE sid = ?1"
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
            " FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
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
        let event = end_session(&mut tx, sid, revocation.at, revocation.expires_at).await?;
        if event.is_some() {
            tx.commit().await.map_err(unavailable)?;
        }
        Ok(event)
    }

    async fn revoke_token(&self, revocation: NewRevocation) -> Result<RevocationEvent, StoreError> {
        let mut tx = self.write().await?;
        let existing = sqlx::query(concat!(
            "SELECT ",
            revocation_columns!(),
            " FROM revocations WHERE kind = 'token' AND value = ?1"
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
        let mut events = vec![
            append_event(
                &mut tx,
                RevocationKind::User,
                &revocation.value,
                at,
                revocation.expires_at,
            )
            .await?,
        ];
        let sids: Vec<String> = sqlx::query_scalar(
            "SELECT sid FROM sessions \
             WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2 ORDER BY seq",
        )
        .bind(&revocation.value)
        .bind(to_db(at))
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        for sid in sids {
            if let Some(event) = end_session(&mut tx, &sid, at, session_expires_at).await? {
                events.push(event);
            }
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
            " FROM revocations WHERE cursor > ?1 AND expires_at > ?2 ORDER BY cursor LIMIT ?3"
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
        // sqlite_sequence keeps the highest cursor ever assigned, so the
        // answer never goes back when the newest entries are purged.
        let last: i64 = sqlx::query_scalar(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'revocations'), 0)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        from_db(last, "cursor")
    }

    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        let now = to_db(now);
        let mut tx = self.write().await?;
        let mut purged = 0;
        // Refresh tokens of ending sessions go first, explicitly, so they are
        // counted (cascaded deletes are not).
        for statement in [
            "DELETE FROM refresh_tokens WHERE expires_at <= ?1 \
               OR sid IN (SELECT sid FROM sessions WHERE expires_at <= ?1)",
            "DELETE FROM sessions WHERE expires_at <= ?1",
            "DELETE FROM revocations WHERE expires_at <= ?1",
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
        let scopes = list_to(&client.scopes)?;
        let mut tx = self.write().await?;
        // The shared subjects table refuses an id that is a user's or
        // another client's.
        sqlx::query("INSERT INTO subjects (subject, kind) VALUES (?1, 'client')")
            .bind(&client.client_id)
            .execute(&mut *tx)
            .await
            .map_err(conflict("client"))?;
        sqlx::query(concat!(
            "INSERT INTO clients (",
            client_columns!(),
            ") VALUES (?1, ?2, ?3, ?4)"
        ))
        .bind(&client.client_id)
        .bind(&client.secret_digest)
        .bind(scopes)
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
            " FROM clients WHERE client_id = ?1"
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
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (kid) DO UPDATE SET",
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
    use sqlx::Connection;

    #[test]
    fn urls_name_a_file_and_take_no_parameters() {
        assert_eq!(
            parse_url("sqlite://./tollgate-data/tollgate.db").unwrap(),
            PathBuf::from("./tollgate-data/tollgate.db")
        );
        assert_eq!(
            parse_url("sqlite:///var/lib/tollgate.db").unwrap(),
            PathBuf::from("/var/lib/tollgate.db")
        );
        assert_eq!(parse_url("sqlite:t.db").unwrap(), PathBuf::from("t.db"));
        for bad in [
            "sqlite://t.db?mode=rwc",
            "sqlite://",
            "sqlite::memory:",
            "postgres://x",
        ] {
            assert!(
                matches!(parse_url(bad), Err(StoreError::Config(_))),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn a_connection_without_synchronous_full_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for synchronous in [SqliteSynchronous::Normal, SqliteSynchronous::Off] {
            let options = SqliteConnectOptions::new()
                .filename(dir.path().join("t.db"))
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(synchronous);
            let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
            let err = check_durability(&mut conn).await.unwrap_err();
            assert!(err.to_string().contains("not FULL"), "{err}");
            assert!(matches!(unavailable(err), StoreError::Config(_)));
        }
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        check_durability(&mut conn).await.unwrap();
    }

    #[tokio::test]
    async fn a_rollback_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Delete)
            .synchronous(SqliteSynchronous::Full);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        let err = check_durability(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("not WAL"), "{err}");
    }
}
