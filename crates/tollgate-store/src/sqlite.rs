//! The SQLite backend: the embedded default, one file
//! (`sqlite://./tollgate-data/tollgate.db`), nothing to install.
//! [`SqliteStore`] is the one store ([`SqlStore`]) over [`SqliteDialect`].
//!
//! Owns opening the file (migrations embedded from `migrations/sqlite/`)
//! and SQLite's side of the table of differences in `dialect.rs`. It must
//! not decide policy (lifetimes, who may revoke what): callers pass `now`
//! and expiry times in.
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
//! - Opening is safe from several processes at once (the server and the
//!   CLI starting together on a new file): the switch to WAL, which SQLite
//!   makes without calling the busy handler, is retried for as long as the
//!   busy timeout, and migrations run inside one `BEGIN IMMEDIATE`, so a
//!   second opener waits for the first one's instead of racing it.
//! - Reads are single statements on the WAL snapshot and never block writes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqlitePoolOptions, SqliteQueryResult, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, Sqlite};

use crate::dialect::{Arg, Bound, Dialect, ListColumn, bind_with};
use crate::sql::{get, migrate_error, unavailable};
use crate::store::{SqlStore, revocation_columns};
use crate::{StoreError, StoreOptions};

/// How long a writer waits for another writer (in this or another process)
/// before the call fails as unavailable; also how long opening waits for
/// another process opening the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections per process. SQLite has one writer at a time; the others
/// serve concurrent reads from the WAL.
const MAX_CONNECTIONS: u32 = 8;
/// `PRAGMA synchronous` value of FULL.
const SYNCHRONOUS_FULL: i64 = 2;
/// SQLite's primary result code `SQLITE_BUSY`.
const SQLITE_BUSY: i32 = 5;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// The SQLite store.
pub type SqliteStore = SqlStore<SqliteDialect>;

/// SQLite's dialect; holds the database file's path.
#[derive(Clone)]
pub struct SqliteDialect {
    path: PathBuf,
}

impl fmt::Debug for SqliteDialect {
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
        SqliteStore::open_with(url, &StoreOptions::default()).await
    }

    /// As [`SqliteStore::open`], with `options` (a pooled connection is
    /// waited for at most [`StoreOptions::call_timeout`]).
    pub async fn open_with(url: &str, options: &StoreOptions) -> Result<SqliteStore, StoreError> {
        let acquire_timeout = options.acquire_timeout();
        let path = parse_url(url)?;
        prepare_file(&path)?;
        // No `journal_mode` here: WAL is a property of the file, set once
        // by `set_up`, and asking for it on every new connection would take
        // the lock that `busy_timeout` does not cover (see `switch_to_wal`).
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        set_up(&options).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(acquire_timeout)
            .after_connect(|conn, _meta| Box::pin(async move { check_durability(conn).await }))
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        Ok(SqlStore {
            pool,
            dialect: SqliteDialect { path },
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.dialect.path
    }
}

impl Dialect for SqliteDialect {
    type Db = Sqlite;

    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const ROW_LOCKS: bool = false;
    // `AUTOINCREMENT`: a cursor is never handed out twice, even after the
    // newest entries are purged; under the one writer cursors are assigned
    // in commit order.
    const APPEND_EVENT: &'static str = concat!(
        "INSERT INTO revocations (kind, value, at, expires_at) VALUES ($1, $2, $3, $4) RETURNING ",
        revocation_columns!()
    );
    const LOCK_FEED: Option<&'static str> = None;
    // sqlite_sequence keeps the highest cursor ever assigned, so the answer
    // never goes back when the newest entries are purged.
    const LAST_CURSOR: &'static str = "SELECT COALESCE(\
        (SELECT seq FROM sqlite_sequence WHERE name = 'revocations'), 0) AS last_cursor";

    // `WHERE true`: without it SQLite would read `ON CONFLICT` as part of a
    // join.
    const INSERT_USAGE: &'static str = "INSERT INTO usage_events \
        (service, instance, seq, user_id, tool, plan, at, received_at) \
        SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, \
        value ->> 6, $2 FROM json_each($1) WHERE true \
        ON CONFLICT DO NOTHING RETURNING user_id, tool, plan, at";
    const ADD_USAGE_HOURS: &'static str = "INSERT INTO usage_hourly \
        (user_id, hour, tool, plan, calls) \
        SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 \
        FROM json_each($1) WHERE true \
        ON CONFLICT (user_id, hour, tool, plan) DO UPDATE SET calls = usage_hourly.calls + excluded.calls";
    const KNOWN_USERS: &'static str =
        "SELECT id FROM users WHERE id IN (SELECT value FROM json_each($1))";

    // Lists as JSON arrays of strings.
    fn bind(sql: &'static str, args: &[Arg<'_>]) -> Result<Bound<Sqlite>, sqlx::Error> {
        bind_with(sql, args, |query, items| {
            let json = items
                .map(serde_json::to_string)
                .transpose()
                .map_err(|err| sqlx::Error::Encode(err.into()))?;
            Ok(query.bind(json))
        })
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

impl ListColumn for SqliteRow {
    fn list(&self, column: &'static str) -> Result<Vec<String>, StoreError> {
        let text: String = get(self, column)?;
        serde_json::from_str(&text)
            .map_err(|err| StoreError::Corrupt(format!("column {column}: {err}")))
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

/// Makes a new or existing file ready, on one connection of its own: WAL
/// on, pending migrations applied. Several processes may do this at once.
async fn set_up(options: &SqliteConnectOptions) -> Result<(), StoreError> {
    let mut conn = SqliteConnection::connect_with(options)
        .await
        .map_err(unavailable)?;
    let outcome = async {
        switch_to_wal(&mut conn).await?;
        // Inside one `BEGIN IMMEDIATE` (sqlx runs each migration in a
        // savepoint of it): a second process opening the same new file
        // waits here for the first one's migrations, then finds them
        // applied, instead of racing to create the same tables.
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        migrate(&mut tx).await?;
        tx.commit().await.map_err(unavailable)
    }
    .await;
    let _ = conn.close().await;
    outcome
}

/// Applies pending migrations on `conn` (inside the caller's
/// transaction). Through `run_direct`, which sqlx keeps public for this:
/// `Migrator::run` on a `&mut` connection has a higher-ranked `Acquire`
/// bound that makes every caller's future fail to be `Send`.
async fn migrate(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    MIGRATOR
        .run_direct(None, conn, false)
        .await
        .map_err(migrate_error)
}

/// `PRAGMA journal_mode = WAL`, retried while another process holds the
/// database. Changing the journal mode needs an exclusive lock that SQLite
/// takes without calling the busy handler, so `busy_timeout` does not
/// cover it: four stores opening a brand-new file at once failed with
/// "database is locked" about one time in eight before this.
async fn switch_to_wal(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(2);
    loop {
        match sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&mut *conn)
            .await
        {
            Ok(_) => return Ok(()),
            Err(err) if is_busy(&err) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(err) => return Err(unavailable(err)),
        }
    }
}

/// Whether SQLite answered `SQLITE_BUSY` (or one of its extended codes).
fn is_busy(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    db.code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == SQLITE_BUSY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteJournalMode;

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
