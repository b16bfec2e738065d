//! The conformance suite on Postgres (127.0.0.1:5432, database `test`, as
//! user `postgres` or else `root`, or `TOLLGATE_TEST_POSTGRES_URL`), each
//! test in a schema of its own that is dropped when the test ends, plus
//! what only a shared database has: several server instances on one schema.
//!
//! Postgres being down fails these tests with a message saying so; they
//! never skip (CI runs Postgres).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use sqlx::{Connection, PgConnection};
use tollgate_store::{PostgresStore, Rotation, Store, StoreError, open_store};

use crate::conformance::{Backend, BoxFuture, NOW};

const CANDIDATES: [&str; 2] = [
    "postgres://postgres@127.0.0.1:5432/test",
    "postgres://root@127.0.0.1:5432/test",
];

/// The test server's URL, found once per test binary.
async fn server_url() -> &'static str {
    static URL: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    URL.get_or_init(|| async {
        if let Ok(url) = std::env::var("TOLLGATE_TEST_POSTGRES_URL") {
            return url;
        }
        let mut failures = Vec::new();
        for url in CANDIDATES {
            match PgConnection::connect(url).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    return url.to_owned();
                }
                Err(err) => failures.push(format!("{url}: {err}")),
            }
        }
        panic!(
            "the Postgres store tests need a server at 127.0.0.1:5432 with database `test` \
             (trust auth, user postgres or root), or TOLLGATE_TEST_POSTGRES_URL; tried:\n  {}",
            failures.join("\n  ")
        );
    })
    .await
}

fn new_schema() -> String {
    format!("tollgate_test_{}", uuid::Uuid::new_v4().simple())
}

async fn drop_schema(url: &str, schema: &str) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
}

/// Runs `body` with a fresh schema and drops the schema afterwards, even
/// when the body panics.
async fn with_schema<F, Fut>(body: F)
where
    F: FnOnce(&'static str, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let url = server_url().await;
    let schema = new_schema();
    let outcome = AssertUnwindSafe(body(url, schema.clone()))
        .catch_unwind()
        .await;
    drop_schema(url, &schema).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

struct PostgresBackend {
    url: &'static str,
    schema: String,
    store: Mutex<PostgresStore>,
}

impl Backend for PostgresBackend {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.store.lock().unwrap().clone())
    }

    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let store = self.store.lock().unwrap().clone();
        Box::pin(async move { store.close().await })
    }

    fn reopen(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move {
            let store = PostgresStore::connect_in_schema(self.url, Some(&self.schema))
                .await
                .unwrap();
            *self.store.lock().unwrap() = store.clone();
            Arc::new(store) as Arc<dyn Store>
        })
    }

    fn stored_bytes_contain<'a>(
        &'a self,
        needle: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        // Every row of every table of the schema, as text (bytea as hex).
        Box::pin(async move {
            let text = std::str::from_utf8(needle).unwrap().to_owned();
            let hex: String = needle.iter().map(|b| format!("{b:02x}")).collect();
            let mut conn = PgConnection::connect(self.url).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            )
            .bind(&self.schema)
            .fetch_all(&mut conn)
            .await
            .unwrap();
            assert!(tables.len() >= 8, "{tables:?}");
            let mut found = false;
            for table in tables {
                let rows: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT string_agg(t::text, ' ') FROM \"{}\".\"{table}\" t",
                    self.schema
                )))
                .fetch_one(&mut conn)
                .await
                .unwrap();
                let rows = rows.unwrap_or_default();
                found |= rows.contains(&text) || rows.contains(&hex);
            }
            let _ = conn.close().await;
            found
        })
    }

    fn fail_commits_of_revocations(
        &self,
        fail: bool,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        // A constraint trigger deferred to COMMIT fails every transaction
        // that appended an event.
        let schema = &self.schema;
        let ddl = if fail {
            format!(
                "CREATE FUNCTION \"{schema}\".fault() RETURNS trigger LANGUAGE plpgsql AS \
                   $$ BEGIN RAISE EXCEPTION 'simulated failure at commit'; END $$; \
                 CREATE CONSTRAINT TRIGGER fault_on_event AFTER INSERT ON \"{schema}\".revocations \
                   DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION \"{schema}\".fault();"
            )
        } else {
            format!(
                "DROP TRIGGER fault_on_event ON \"{schema}\".revocations; \
                 DROP FUNCTION \"{schema}\".fault();"
            )
        };
        Box::pin(async move {
            let mut conn = PgConnection::connect(self.url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
                .execute(&mut conn)
                .await
                .unwrap();
            let _ = conn.close().await;
        })
    }

    fn raw_delete_audit<'a>(
        &'a self,
        chain: &'a str,
        seq: u64,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        let sql = format!(
            "DELETE FROM \"{}\".audit_events WHERE chain = $1 AND seq <= $2",
            self.schema
        );
        Box::pin(async move {
            let mut conn = PgConnection::connect(self.url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(chain)
                .bind(i64::try_from(seq).unwrap())
                .execute(&mut conn)
                .await
                .unwrap();
            let _ = conn.close().await;
        })
    }
}

async fn run(test: for<'a> fn(&'a dyn Backend) -> BoxFuture<'a>) {
    with_schema(|url, schema| async move {
        let store = PostgresStore::connect_in_schema(url, Some(&schema))
            .await
            .unwrap();
        let backend = PostgresBackend {
            url,
            schema,
            store: Mutex::new(store),
        };
        test(&backend).await;
        let store = backend.store.lock().unwrap().clone();
        store.close().await;
    })
    .await;
}

conformance_tests!();
usage_conformance_tests!();

// ---------------------------------------------------------------- Postgres only

#[tokio::test]
async fn schema_names_and_urls_are_checked_without_echoing_passwords() {
    let url = server_url().await;
    for schema in ["Tollgate", "a\"b", ""] {
        let err = PostgresStore::connect_in_schema(url, Some(schema))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    }
    let err =
        PostgresStore::connect("postgres://tollgate:hunter2@127.0.0.1:5432/test?sslmode=bogus")
            .await
            .unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err =
        PostgresStore::connect("postgres://tollgate:hunter2@127.0.0.1:5432/no_such_database_here")
            .await
            .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn open_store_opens_postgres_urls() {
    with_schema(|url, schema| async move {
        // Through the URL alone the tables go to the user's default schema;
        // point it at the test schema with libpq's `options`.
        let url = format!("{url}?options=-csearch_path%3D{schema}");
        let mut conn = PgConnection::connect(&url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        let store = open_store(&url).await.unwrap();
        store.ping().await.unwrap();
        assert_eq!(store.last_cursor().await.unwrap(), 0);
        let tables: i64 = {
            let mut conn = PgConnection::connect(&url).await.unwrap();
            sqlx::query_scalar(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
            )
            .bind(&schema)
            .fetch_one(&mut conn)
            .await
            .unwrap()
        };
        assert!(tables >= 8, "{tables}");
    })
    .await;
}

/// The rotation relies on READ COMMITTED (a waiting updater re-checks the
/// row); under SERIALIZABLE the losers would fail instead. A database or
/// role configured stricter (here through the URL's startup options) must
/// not change the outcome, because every pooled connection pins its own
/// isolation level and `synchronous_commit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stricter_or_weaker_server_defaults_are_overridden() {
    with_schema(|url, schema| async move {
        let url = format!(
            "{url}?options=-c%20default_transaction_isolation%3Dserializable\
             %20-c%20synchronous_commit%3Doff"
        );
        let store: Arc<dyn Store> = Arc::new(
            PostgresStore::connect_in_schema(&url, Some(&schema))
                .await
                .unwrap(),
        );
        let outcomes = rotate_concurrently(&[Arc::clone(&store)], 16).await;
        assert_eq!(outcomes, (1, 1, 14));
    })
    .await;
}

/// Creates user `u1` with session `s1` and refresh token `a`, then rotates
/// `a` `n` times at once, spread over `stores`. Returns how many calls
/// rotated, detected reuse and were invalid; any error fails the test.
async fn rotate_concurrently(stores: &[Arc<dyn Store>], n: usize) -> (usize, usize, usize) {
    let user = tollgate_store::UserRecord {
        id: "u1".to_owned(),
        email: "alice@example.com".to_owned(),
        password_hash: "x".to_owned(),
        plan: "free".to_owned(),
        roles: vec![],
        disabled: false,
        created_at: NOW,
    };
    stores[0].create_user(user).await.unwrap();
    let session = tollgate_store::SessionRecord {
        sid: "s1".to_owned(),
        user_id: "u1".to_owned(),
        client_id: "tollgate".to_owned(),
        scope: String::new(),
        created_at: NOW,
        last_used_at: NOW,
        expires_at: NOW + 3600,
        revoked_at: None,
    };
    let refresh = |digest: &str| tollgate_store::NewRefresh {
        digest: digest.to_owned(),
        created_at: NOW,
        expires_at: NOW + 3600,
        salt: None,
    };
    stores[stores.len() - 1]
        .create_session(session, refresh("a"))
        .await
        .unwrap();

    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let store = Arc::clone(&stores[i % stores.len()]);
        let start = Arc::clone(&start);
        let next = refresh(&format!("next-{i}"));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            store
                .rotate_refresh("a", next, NOW + 1, NOW + 3600, 0)
                .await
        }));
    }
    let (mut rotated, mut reused, mut invalid) = (0, 0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(Rotation::Rotated { .. }) => rotated += 1,
            Ok(Rotation::Reused { .. }) => reused += 1,
            Ok(Rotation::Invalid) => invalid += 1,
            Ok(retried @ Rotation::Retried { .. }) => panic!("no grace, yet {retried:?}"),
            Err(err) => panic!("a concurrent rotation failed: {err}"),
        }
    }
    (rotated, reused, invalid)
}
