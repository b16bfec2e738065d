//! The conformance suite on SQLite, plus what only the file store has:
//! URLs, file permissions, several stores (processes) on one file.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tollgate_store::{SqliteStore, Store, StoreError, open_store};

use crate::conformance::{Backend, BoxFuture};

/// A store in a temp dir of its own, removed when the test ends.
struct SqliteBackend {
    dir: tempfile::TempDir,
    store: Mutex<SqliteStore>,
}

impl SqliteBackend {
    fn url(dir: &Path) -> String {
        format!("sqlite://{}", dir.join("data/tollgate.db").display())
    }
}

impl Backend for SqliteBackend {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.store.lock().unwrap().clone())
    }

    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let store = self.store.lock().unwrap().clone();
        Box::pin(async move { store.close().await })
    }

    fn reopen(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move {
            let store = SqliteStore::open(&Self::url(self.dir.path()))
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
        // Every file SQLite keeps (the database, its WAL and shared memory).
        Box::pin(async move {
            files_under(self.dir.path()).iter().any(|file| {
                let bytes = std::fs::read(file).unwrap();
                bytes.windows(needle.len()).any(|w| w == needle)
            })
        })
    }

    fn fail_commits_of_revocations(
        &self,
        fail: bool,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        // A deferred foreign key is checked at COMMIT: a trigger gives each
        // new event a row that breaks one.
        let ddl = if fail {
            "CREATE TABLE fault (cursor INTEGER REFERENCES revocations (cursor) \
               DEFERRABLE INITIALLY DEFERRED); \
             CREATE TRIGGER fault_on_event AFTER INSERT ON revocations \
               BEGIN INSERT INTO fault VALUES (-1); END;"
        } else {
            "DROP TRIGGER fault_on_event; DROP TABLE fault;"
        };
        Box::pin(async move {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(self.dir.path().join("data/tollgate.db"))
                .busy_timeout(std::time::Duration::from_secs(10));
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
                .await
                .unwrap();
            sqlx::raw_sql(ddl).execute(&mut conn).await.unwrap();
            sqlx::Connection::close(conn).await.unwrap();
        })
    }

    fn raw_delete_audit<'a>(
        &'a self,
        chain: &'a str,
        seq: u64,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(self.dir.path().join("data/tollgate.db"))
                .busy_timeout(std::time::Duration::from_secs(10));
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
                .await
                .unwrap();
            sqlx::query("DELETE FROM audit_events WHERE chain = ? AND seq <= ?")
                .bind(chain)
                .bind(i64::try_from(seq).unwrap())
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::Connection::close(conn).await.unwrap();
        })
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

async fn run(test: for<'a> fn(&'a dyn Backend) -> BoxFuture<'a>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteBackend::url(dir.path()))
        .await
        .unwrap();
    let backend = SqliteBackend {
        dir,
        store: Mutex::new(store),
    };
    test(&backend).await;
}

conformance_tests!();
usage_conformance_tests!();

// ---------------------------------------------------------------- SQLite only

#[tokio::test]
async fn open_creates_an_owner_only_directory_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a/b/tollgate.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.path(), dir.path().join("a/b/tollgate.db"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("a/b")), 0o700);
        assert_eq!(mode(&dir.path().join("a/b/tollgate.db")), 0o600);
        assert_eq!(mode(&dir.path().join("a/b/tollgate.db-wal")), 0o600);
    }
}

#[tokio::test]
async fn open_store_dispatches_on_the_scheme_and_never_echoes_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    open_store(&url).await.unwrap().ping().await.unwrap();

    for (url, expected) in [
        (
            "mysql://root:hunter2@db/tollgate",
            "unsupported database URL scheme `mysql`",
        ),
        ("./tollgate.db", "no scheme"),
        ("hunter2", "no scheme"),
        ("sqlite://t.db?mode=memory", "no parameters"),
        ("sqlite::memory:", "names a file"),
    ] {
        let Err(err) = open_store(url).await else {
            panic!("{url} opened");
        };
        assert!(matches!(err, StoreError::Config(_)), "{url}: {err:?}");
        let text = err.to_string();
        assert!(text.contains(expected), "{url}: {text}");
        assert!(!text.contains("hunter2"), "{url}: {text}");
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    std::fs::write(&path, b"this is not a database, just some text").unwrap();
    let err = SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

#[tokio::test]
async fn a_database_from_a_newer_tollgate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    store.close().await;
    // Pretend a later version applied a migration this binary does not know.
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("t.db"));
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', 1, x'00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    let err = SqliteStore::open(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
}

/// Issue 10: the server and the CLI starting together on a new file. The
/// switch to WAL takes a lock that SQLite's busy timeout does not cover,
/// so four openers at once failed with "database is locked" about one run
/// in eight; eight openers, ten times over, fail almost every run then.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_processes_opening_a_new_file_at_once_all_succeed() {
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("new/tollgate.db").display());
        let start = Arc::new(tokio::sync::Barrier::new(8));
        let mut opening = Vec::new();
        for _ in 0..8 {
            let (url, start) = (url.clone(), Arc::clone(&start));
            opening.push(tokio::spawn(async move {
                start.wait().await;
                SqliteStore::open(&url).await
            }));
        }
        for task in opening {
            let store = task.await.unwrap().unwrap();
            assert_eq!(store.last_cursor().await.unwrap(), 0);
        }
    }
}

/// Several stores on one file stand for several processes (the server and
/// the `tollgate` CLI): each has its own connections and SQLite's file
/// locks are all that coordinates them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_processes_share_one_file_safely() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("new/tollgate.db").display());

    // Opening a brand-new file from four places at once: all succeed.
    let mut opening = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        opening.push(tokio::spawn(async move { SqliteStore::open(&url).await }));
    }
    let mut stores = Vec::new();
    for task in opening {
        stores.push(task.await.unwrap().unwrap());
    }

    // Writers in every store at once: none fails with "database is locked".
    let mut writers = Vec::new();
    for (n, store) in stores.iter().enumerate() {
        for m in 0..8 {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                let id = format!("client-{n}-{m}");
                store
                    .create_client(tollgate_store::ClientRecord {
                        client_id: id,
                        secret_digest: "0".repeat(64),
                        scopes: vec![],
                        created_at: 1,
                    })
                    .await
            }));
        }
    }
    for task in writers {
        task.await.unwrap().unwrap();
    }
    for store in &stores {
        assert_eq!(store.list_clients().await.unwrap().len(), 32);
    }

    // A key rotation in one is seen by the others at once.
    let key = tollgate_store::KeyRecord {
        kid: "k1".to_owned(),
        alg: "EdDSA".to_owned(),
        status: "active".to_owned(),
        created_at: 1,
        retire_at: None,
        material: b"TGK0x".to_vec(),
    };
    stores[0]
        .save_keys(std::slice::from_ref(&key))
        .await
        .unwrap();
    assert_eq!(stores[3].list_keys().await.unwrap(), vec![key]);
}
