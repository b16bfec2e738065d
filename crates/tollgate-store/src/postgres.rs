//! The Postgres backend: shared by any number of server instances
//! (`TOLLGATE_DATABASE_URL=postgres://…`). [`PostgresStore`] is the one
//! store ([`SqlStore`]) over [`PostgresDialect`].
//!
//! Owns connecting (migrations embedded from `migrations/postgres/`, the
//! same tables as the SQLite store) and Postgres's side of the table of
//! differences in `dialect.rs`. It must not decide policy: callers pass
//! `now` and expiry times in.
//!
//! Durability and concurrency:
//! - Every connection runs `synchronous_commit = on` and READ COMMITTED,
//!   whatever the server's defaults: a revocation is flushed to the WAL
//!   before its commit returns, and the rotation relies on READ COMMITTED
//!   re-checking a conditional UPDATE's `WHERE` after waiting for a
//!   concurrent updater of the same row.
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

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgQueryResult, PgRow};
use sqlx::{AssertSqlSafe, PgPool, Postgres};

use crate::dialect::{Arg, Bound, Dialect, ListColumn, bind_with};
use crate::sql::{get, is_retryable, migrate_error, unavailable};
use crate::store::{SqlStore, revocation_columns};
use crate::{StoreError, StoreOptions};

/// Connections per server instance.
const MAX_CONNECTIONS: u32 = 10;
/// A pooled connection unused this long is closed (it may have died
/// quietly behind a firewall that forgets idle flows).
const IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Every connection is replaced after this long.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Longest schema name Postgres keeps (NAMEDATALEN - 1).
const MAX_SCHEMA_LEN: usize = 63;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The Postgres store.
pub type PostgresStore = SqlStore<PostgresDialect>;

/// Postgres's dialect; holds the schema the tables live in, if one was
/// given.
#[derive(Clone)]
pub struct PostgresDialect {
    schema: Option<String>,
}

impl fmt::Debug for PostgresDialect {
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
        PostgresStore::connect_with(url, schema, &StoreOptions::default()).await
    }

    /// As [`PostgresStore::connect_in_schema`], with `options`: with a
    /// [`StoreOptions::call_timeout`], a pooled connection is waited for at
    /// most that long, and every connection runs with that
    /// `statement_timeout` and twice it as
    /// `idle_in_transaction_session_timeout`.
    pub async fn connect_with(
        url: &str,
        schema: Option<&str>,
        store_options: &StoreOptions,
    ) -> Result<PostgresStore, StoreError> {
        if let Some(schema) = schema {
            check_schema_name(schema)?;
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|err| StoreError::Config(format!("the Postgres URL does not parse: {err}")))?
            .application_name("tollgate");
        let search_path = schema.map(|schema| format!("SET search_path TO \"{schema}\""));
        // A migration may rewrite a large table: migrations run first, on
        // a pool of their own without the statement timeout.
        let pool_with = |timeouts: Option<Timeouts>, connections: u32| {
            let search_path = search_path.clone();
            PgPoolOptions::new()
                .max_connections(connections)
                .acquire_timeout(store_options.acquire_timeout())
                // An idle connection is pinged before use, within the
                // acquire timeout: one that died is replaced, not handed out.
                .test_before_acquire(true)
                .idle_timeout(IDLE_TIMEOUT)
                .max_lifetime(MAX_LIFETIME)
                .after_connect(move |conn, _meta| {
                    let search_path = search_path.clone();
                    Box::pin(async move { prepare_connection(conn, search_path, timeouts).await })
                })
        };
        let migrations = pool_with(None, 1)
            .connect_with(options.clone())
            .await
            .map_err(unavailable)?;
        let migrated = async {
            warn_when_fsync_is_off(&migrations).await?;
            migrate(&migrations, schema).await
        }
        .await;
        migrations.close().await;
        migrated?;
        let timeouts = store_options.call_timeout.map(Timeouts::new);
        let pool = pool_with(timeouts, MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        Ok(SqlStore {
            pool,
            dialect: PostgresDialect {
                schema: schema.map(str::to_owned),
            },
        })
    }

    /// The schema the tables live in, when one was given.
    pub fn schema(&self) -> Option<&str> {
        self.dialect.schema.as_deref()
    }
}

impl Dialect for PostgresDialect {
    type Db = Postgres;

    const BEGIN_WRITE: &'static str = "BEGIN";
    const ROW_LOCKS: bool = true;
    // The counter row's lock is held until commit, so cursors are handed
    // out in commit order (see migrations/postgres/0001_initial.sql).
    const APPEND_EVENT: &'static str = concat!(
        "WITH next AS (UPDATE revocation_feed SET last_cursor = last_cursor + 1",
        " RETURNING last_cursor)",
        " INSERT INTO revocations (cursor, kind, value, at, expires_at)",
        " SELECT last_cursor, $1, $2, $3, $4 FROM next RETURNING ",
        revocation_columns!()
    );
    // Holding the counter row makes check-then-insert atomic against a
    // concurrent revocation of the same jti.
    const LOCK_FEED: Option<&'static str> =
        Some("SELECT last_cursor FROM revocation_feed FOR UPDATE");
    // The counter only ever goes up, and only at commit.
    const LAST_CURSOR: &'static str = "SELECT last_cursor FROM revocation_feed";

    const INSERT_USAGE: &'static str = "INSERT INTO usage_events \
        (service, instance, seq, user_id, tool, plan, at, received_at) \
        SELECT e ->> 0, e ->> 1, CAST(e ->> 2 AS BIGINT), e ->> 3, e ->> 4, e ->> 5, \
        CAST(e ->> 6 AS BIGINT), $2 FROM jsonb_array_elements(CAST($1 AS JSONB)) AS j(e) \
        ON CONFLICT DO NOTHING RETURNING user_id, tool, plan, at";
    const ADD_USAGE_HOURS: &'static str = "INSERT INTO usage_hourly \
        (user_id, hour, tool, plan, calls) \
        SELECT e ->> 0, CAST(e ->> 1 AS BIGINT), e ->> 2, e ->> 3, CAST(e ->> 4 AS BIGINT) \
        FROM jsonb_array_elements(CAST($1 AS JSONB)) AS j(e) \
        ON CONFLICT (user_id, hour, tool, plan) DO UPDATE SET calls = usage_hourly.calls + excluded.calls";
    const KNOWN_USERS: &'static str = "SELECT id FROM users WHERE id = ANY($1)";

    // Lists as `TEXT[]`.
    fn bind(sql: &'static str, args: &[Arg<'_>]) -> Result<Bound<Postgres>, sqlx::Error> {
        bind_with(sql, args, |query, items| Ok(query.bind(items)))
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

impl ListColumn for PgRow {
    fn list(&self, column: &'static str) -> Result<Vec<String>, StoreError> {
        get(self, column)
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

/// The per-connection timeouts that follow from a call timeout.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    /// `statement_timeout`, milliseconds.
    statement: u128,
    /// `idle_in_transaction_session_timeout`, milliseconds.
    idle_in_transaction: u128,
}

impl Timeouts {
    fn new(call: Duration) -> Timeouts {
        let statement = call.as_millis().max(1);
        Timeouts {
            statement,
            idle_in_transaction: statement.saturating_mul(2),
        }
    }
}

/// Session settings every pooled connection needs, whatever the server's
/// defaults (see the module docs).
async fn prepare_connection(
    conn: &mut PgConnection,
    search_path: Option<String>,
    timeouts: Option<Timeouts>,
) -> Result<(), sqlx::Error> {
    if let Some(timeouts) = timeouts {
        // Numbers only: nothing to escape.
        sqlx::query(AssertSqlSafe(format!(
            "SET statement_timeout = {}",
            timeouts.statement
        )))
        .execute(&mut *conn)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "SET idle_in_transaction_session_timeout = {}",
            timeouts.idle_in_transaction
        )))
        .execute(&mut *conn)
        .await?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    /// ARCHITECTURE.md: a revoking write is durable before the call
    /// returns, and rotation relies on READ COMMITTED. Server, role or URL
    /// defaults saying otherwise (here the URL's startup options) must not
    /// reach the store's connections. Needs the test server that the
    /// integration tests use (`tests/it/postgres.rs`).
    #[tokio::test]
    async fn pooled_connections_commit_synchronously_at_read_committed_whatever_the_defaults() {
        let mut base = None;
        for url in std::env::var("TOLLGATE_TEST_POSTGRES_URL")
            .into_iter()
            .chain([
                "postgres://postgres@127.0.0.1:5432/test".to_owned(),
                "postgres://root@127.0.0.1:5432/test".to_owned(),
            ])
        {
            if let Ok(conn) = PgConnection::connect(&url).await {
                let _ = conn.close().await;
                base = Some(url);
                break;
            }
        }
        let base = base.expect("a Postgres test server (see tests/it/postgres.rs)");
        let url = format!(
            "{base}?options=-c%20default_transaction_isolation%3Dserializable\
             %20-c%20synchronous_commit%3Doff"
        );
        let schema = format!("tollgate_unit_{}", std::process::id());
        let store = PostgresStore::connect_in_schema(&url, Some(&schema))
            .await
            .unwrap();
        let mut conn = store.pool.acquire().await.unwrap();
        let setting = |name: &'static str| sqlx::query_scalar::<_, String>(name);
        let synchronous = setting("SHOW synchronous_commit")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let isolation = setting("SHOW default_transaction_isolation")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
            .execute(&mut *conn)
            .await
            .unwrap();
        drop(conn);
        store.close().await;
        assert_eq!(
            (synchronous.as_str(), isolation.as_str()),
            ("on", "read committed")
        );
    }

    /// Issue 16, item 2: with a call timeout, the database gives up on a
    /// statement when its caller does, and on a transaction whose client
    /// vanished; without one nothing changes.
    #[tokio::test]
    async fn a_call_timeout_bounds_statements_and_idle_transactions() {
        let base = test_url().await;
        let schema = format!("tollgate_unit_timeouts_{}", std::process::id());
        let options = StoreOptions {
            call_timeout: Some(Duration::from_millis(1500)),
        };
        let store = PostgresStore::connect_with(&base, Some(&schema), &options)
            .await
            .unwrap();
        let mut conn = store.pool.acquire().await.unwrap();
        let statement: String = sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let idle: String = sqlx::query_scalar("SHOW idle_in_transaction_session_timeout")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let slow = sqlx::query("SELECT pg_sleep(5)").execute(&mut *conn).await;
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
            .execute(&mut *conn)
            .await
            .unwrap();
        drop(conn);
        store.close().await;
        assert_eq!((statement.as_str(), idle.as_str()), ("1500ms", "3s"));
        let Err(sqlx::Error::Database(error)) = slow else {
            panic!("a 5 s statement ran under a 1.5 s timeout: {slow:?}");
        };
        // query_canceled
        assert_eq!(error.code().as_deref(), Some("57014"));
    }

    async fn test_url() -> String {
        for url in std::env::var("TOLLGATE_TEST_POSTGRES_URL")
            .into_iter()
            .chain([
                "postgres://postgres@127.0.0.1:5432/test".to_owned(),
                "postgres://root@127.0.0.1:5432/test".to_owned(),
            ])
        {
            if let Ok(conn) = PgConnection::connect(&url).await {
                let _ = conn.close().await;
                return url;
            }
        }
        panic!("a Postgres test server (see tests/it/postgres.rs)");
    }

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
