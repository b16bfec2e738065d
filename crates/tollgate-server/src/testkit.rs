//! An in-process token service for test suites (feature `testkit`).
//!
//! [`TestServer::start`] boots the real server on `127.0.0.1:0` over a
//! SQLite store in a temporary directory, with a bootstrap admin, short
//! lifetimes and an injectable [`Clock`]. Tests talk to it over HTTP like
//! any client would:
//!
//! ```no_run
//! # async fn demo() {
//! use tollgate_server::testkit::TestServer;
//!
//! let server = TestServer::start().await;
//! let secret = server.create_client("billing", &["introspect"]).await;
//! let token_url = server.url("/oauth/token");
//! // … POST grant_type=client_credentials to token_url with billing:secret …
//! server.clock().advance(3600); // every token issued so far is now expired
//! # let _ = (secret, token_url);
//! # }
//! ```
//!
//! Defaults (change them with [`TestServerBuilder::configure`]):
//! environment `test`, issuer `http://127.0.0.1:<port>`, audience `api`,
//! access and service tokens 60 s, refresh tokens 600 s, leeway 5 s,
//! EdDSA, registration open, admin [`TestServer::admin_email`] /
//! [`TestServer::admin_password`] (role `admin`, plan `enterprise`).
//!
//! This module is test support: a server that cannot boot is a failed test,
//! so it panics with the reason instead of returning errors.

#![allow(clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tollgate_core::config::{Config, Environment};
use tollgate_core::{Secret, UnixTime};
use tollgate_store::{PostgresStore, SqliteStore, Store, StoreError, StoreOptions, UserUpdate};

use crate::{Clock, Server, ServerError, accounts};

mod hooked;

/// Runs before every store call the server makes, with the call's method
/// name (`"save_keys"`, `"find_user_by_email"`, …) and the real store. An
/// error it returns is the call's answer (the real store is not called);
/// it may also act on the real store first, as a concurrent process would.
/// For failures that a real database cannot be made to produce on demand.
pub type StoreHook = Arc<
    dyn Fn(
            &'static str,
            Arc<dyn Store>,
        ) -> futures::future::BoxFuture<'static, Result<(), StoreError>>
        + Send
        + Sync,
>;

/// The bootstrap admin's e-mail in every test server.
pub const ADMIN_EMAIL: &str = "admin@tollgate.test";

/// Where a test server keeps its data.
#[derive(Clone)]
enum Backend {
    /// `tollgate.db` in the data directory.
    Sqlite,
    /// A schema of a Postgres database.
    Postgres { url: String, schema: String },
}

/// An open store of either kind (both can be closed under the server).
#[derive(Clone)]
enum TestStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl TestStore {
    async fn open(backend: &Backend, data_dir: &Path, options: &StoreOptions) -> TestStore {
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", data_dir.join("tollgate.db").display());
                TestStore::Sqlite(
                    SqliteStore::open_with(&url, options)
                        .await
                        .unwrap_or_else(|error| panic!("opening the test store: {error}")),
                )
            }
            Backend::Postgres { url, schema } => TestStore::Postgres(
                PostgresStore::connect_with(url, Some(schema), options)
                    .await
                    .unwrap_or_else(|error| panic!("opening the Postgres test store: {error}")),
            ),
        }
    }

    fn shared(&self) -> Arc<dyn Store> {
        match self {
            TestStore::Sqlite(store) => Arc::new(store.clone()),
            TestStore::Postgres(store) => Arc::new(store.clone()),
        }
    }

    fn as_store(&self) -> &dyn Store {
        match self {
            TestStore::Sqlite(store) => store,
            TestStore::Postgres(store) => store,
        }
    }

    async fn close(&self) {
        match self {
            TestStore::Sqlite(store) => store.close().await,
            TestStore::Postgres(store) => store.close().await,
        }
    }
}

/// A change to the configuration, applied before the server starts.
type ConfigChange = Box<dyn FnOnce(&mut Config) + Send>;

/// Configures a [`TestServer`] before it starts.
#[must_use]
pub struct TestServerBuilder {
    configure: Vec<ConfigChange>,
    data_dir: Option<Arc<TempDir>>,
    addr: Option<SocketAddr>,
    clock: Clock,
    introspection_rate: Option<u32>,
    sse_keep_alive: Option<Duration>,
    header_read_timeout: Option<Duration>,
    registration_limit: Option<u32>,
    store_hook: Option<StoreHook>,
    poll_interval: Option<Duration>,
    key_reload_interval: Option<Duration>,
    backend: Backend,
}

impl TestServerBuilder {
    /// Keeps the data in `schema` of the Postgres database at `url`
    /// instead of a SQLite file (the schema is created when missing and
    /// left in place: dropping it is the caller's job).
    pub fn postgres(mut self, url: &str, schema: &str) -> Self {
        self.backend = Backend::Postgres {
            url: url.to_owned(),
            schema: schema.to_owned(),
        };
        self
    }

    /// Changes the configuration after the test defaults are set (the
    /// database URL and the bind address are the test-kit's).
    pub fn configure(mut self, change: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.configure.push(Box::new(change));
        self
    }

    /// Uses `clock` (share it to move the server's time).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Introspection requests per second per client.
    pub fn introspection_rate(mut self, per_second: u32) -> Self {
        self.introspection_rate = Some(per_second);
        self
    }

    /// Keep-alive interval of the SSE feed.
    pub fn sse_keep_alive(mut self, interval: Duration) -> Self {
        self.sse_keep_alive = Some(interval);
        self
    }

    /// How long a connection may take to send a complete request head.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = Some(timeout);
        self
    }

    /// Registrations per address before each further one must wait.
    pub fn registration_limit(mut self, attempts: u32) -> Self {
        self.registration_limit = Some(attempts);
        self
    }

    /// Puts `hook` in front of every store call of the server (see
    /// [`StoreHook`]). The test-kit's own helpers use the store directly.
    pub fn store_hook(mut self, hook: StoreHook) -> Self {
        self.store_hook = Some(hook);
        self
    }

    /// Uses Redis at `url` for fan-out and login limits, with every key
    /// and channel under `prefix` (make it unique per test).
    pub fn redis(self, url: &str, prefix: &str) -> Self {
        let (url, prefix) = (url.to_owned(), prefix.to_owned());
        self.configure(move |config| {
            config.redis_url = Some(Secret::from(url.as_str()));
            config.redis_prefix = Some(prefix);
        })
    }

    /// How often the store is polled for other instances' revocations
    /// (default 500 ms). A test that sets it to hours proves that only a
    /// Redis notice can explain how fast an instance learnt something.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = Some(interval);
        self
    }

    /// How often keys are reloaded from the store (default 2 s).
    pub fn key_reload_interval(mut self, interval: Duration) -> Self {
        self.key_reload_interval = Some(interval);
        self
    }

    /// Boots the server.
    pub async fn start(self) -> TestServer {
        let data_dir = match self.data_dir {
            Some(dir) => dir,
            None => Arc::new(tempfile::tempdir().expect("a temporary directory")),
        };
        let listener = bind(self.addr).await;
        let addr = listener.local_addr().expect("the bound address");
        let admin_password = "correct horse battery staple".to_owned();
        let mut config = Config::development();
        config.environment = Environment::Test;
        config.bind = addr;
        config.issuer = format!("http://{addr}");
        config.audiences = vec!["api".to_owned()];
        config.access_token_ttl = 60;
        config.service_token_ttl = 60;
        config.refresh_token_ttl = 600;
        config.leeway = 5;
        config.registration_open = true;
        config.bootstrap_admin_email = Some(ADMIN_EMAIL.to_owned());
        config.bootstrap_admin_password = Some(Secret::from(admin_password.as_str()));
        for change in self.configure {
            change(&mut config);
        }
        let options = StoreOptions {
            call_timeout: Some(Duration::from_secs(config.store_timeout)),
        };
        let store = TestStore::open(&self.backend, data_dir.path(), &options).await;
        config.database_url = Secret::from(match &self.backend {
            Backend::Sqlite => {
                format!("sqlite://{}", data_dir.path().join("tollgate.db").display())
            }
            Backend::Postgres { url, .. } => url.clone(),
        });
        let shared = match self.store_hook {
            Some(hook) => Arc::new(hooked::Hooked::new(store.shared(), hook)) as Arc<dyn Store>,
            None => store.shared(),
        };
        let mut builder = Server::builder(config.clone(), shared)
            .clock(self.clock.clone())
            .listener(listener)
            // Tests run in parallel on few cores; do not let them 503.
            .hash_slots(4);
        if let Some(rate) = self.introspection_rate {
            builder = builder.introspection_rate(rate);
        }
        if let Some(interval) = self.sse_keep_alive {
            builder = builder.sse_keep_alive(interval);
        }
        if let Some(timeout) = self.header_read_timeout {
            builder = builder.header_read_timeout(timeout);
        }
        if let Some(attempts) = self.registration_limit {
            builder = builder.registration_limit(attempts);
        }
        if let Some(interval) = self.poll_interval {
            builder = builder.poll_interval(interval);
        }
        if let Some(interval) = self.key_reload_interval {
            builder = builder.key_reload_interval(interval);
        }
        let server = builder
            .bind()
            .await
            .unwrap_or_else(|error| panic!("starting the test server: {error}"));
        let audit = server.audit_flush();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            base_url: format!("http://{addr}"),
            config,
            clock: self.clock,
            store,
            backend: self.backend,
            data_dir,
            admin_password,
            stop: Some(stop),
            task: Some(task),
            audit,
        }
    }
}

async fn bind(addr: Option<SocketAddr>) -> TcpListener {
    let Some(addr) = addr else {
        return TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
    };
    // A restart rebinds the old port, which the old listener may still hold
    // for a moment.
    let mut last = None;
    for _ in 0..100 {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("rebinding {addr}: {last:?}");
}

/// A running token service; stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    base_url: String,
    config: Config,
    clock: Clock,
    store: TestStore,
    backend: Backend,
    data_dir: Arc<TempDir>,
    admin_password: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
    audit: crate::AuditFlush,
}

impl TestServer {
    /// A server with the defaults.
    pub async fn start() -> TestServer {
        TestServer::builder().start().await
    }

    /// A builder to change the defaults.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder {
            configure: Vec::new(),
            data_dir: None,
            addr: None,
            clock: Clock::system(),
            introspection_rate: None,
            sse_keep_alive: None,
            header_read_timeout: None,
            registration_limit: None,
            store_hook: None,
            poll_interval: None,
            key_reload_interval: None,
            backend: Backend::Sqlite,
        }
    }

    /// Another instance on the same data (the SQLite file or Postgres
    /// schema), configuration (so the same issuer) and clock, on a port of
    /// its own: what a second replica behind a load balancer is.
    pub async fn another_instance(&self) -> TestServer {
        self.another_instance_builder().start().await
    }

    /// A builder for [`TestServer::another_instance`], to change its
    /// intervals or limits before it starts (its configuration is this
    /// server's; a later [`TestServerBuilder::configure`] changes it).
    pub fn another_instance_builder(&self) -> TestServerBuilder {
        let config = self.config.clone();
        TestServerBuilder {
            configure: vec![Box::new(move |c: &mut Config| {
                let bind = c.bind;
                *c = config;
                c.bind = bind;
            })],
            data_dir: Some(self.data_dir.clone()),
            addr: None,
            clock: self.clock.clone(),
            introspection_rate: None,
            sse_keep_alive: None,
            header_read_timeout: None,
            registration_limit: None,
            store_hook: None,
            poll_interval: None,
            key_reload_interval: None,
            backend: self.backend.clone(),
        }
    }

    /// Waits until every audit event the server recorded so far is in the
    /// store (the server writes them from a queue, in the background).
    pub async fn flush_audit(&self) {
        self.audit.flush().await;
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The base URL joined with `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The issuer of the server's tokens.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The server's clock; [`Clock::advance`] moves its time.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Now, as the server sees it.
    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// The bootstrap admin's e-mail.
    pub fn admin_email(&self) -> &str {
        ADMIN_EMAIL
    }

    /// The bootstrap admin's password.
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// The store the server uses (for assertions on what was written).
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.shared()
    }

    /// The data directory (the SQLite file lives there).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Registers a service client directly in the store (as `tollgate
    /// client add` does) and returns its secret.
    pub async fn create_client(&self, client_id: &str, scopes: &[&str]) -> String {
        let scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        let (_, secret) =
            accounts::create_client(self.store.as_store(), client_id, scopes, self.now())
                .await
                .unwrap_or_else(|error| panic!("creating client {client_id}: {error}"));
        secret.expose_str().expect("secrets are text").to_owned()
    }

    /// Creates a user directly in the store (as `tollgate user add` does)
    /// and returns the user id.
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        roles: &[&str],
        plan: Option<&str>,
    ) -> String {
        let plans = tollgate_core::plans::Plans::builtin();
        let roles = roles.iter().map(|s| (*s).to_owned()).collect();
        let user = accounts::check_new_user(
            &plans,
            email,
            password,
            plan.map(str::to_owned),
            Some(roles),
        )
        .unwrap_or_else(|error| panic!("creating user {email}: {error}"));
        let hash = accounts::hash_password(Secret::from(password))
            .await
            .unwrap_or_else(|error| panic!("hashing: {error}"));
        accounts::insert_user(self.store.as_store(), user, hash, self.now())
            .await
            .unwrap_or_else(|error| panic!("creating user {email}: {error}"))
            .id
    }

    /// Disables a user directly in the store, without revoking anything
    /// (what a second process could do; the API revokes as well).
    pub async fn disable_in_store(&self, user_id: &str) {
        let update = UserUpdate {
            disabled: Some(true),
            ..UserUpdate::default()
        };
        self.store
            .as_store()
            .update_user(user_id, update)
            .await
            .expect("updating the user");
    }

    /// Closes the database under the running server: every later store call
    /// fails, as when the database goes away.
    pub async fn cut_store(&self) {
        self.store.close().await;
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => panic!("the test server failed: {error}"),
                Err(error) => panic!("the test server task failed: {error}"),
            }
        }
        self.store.close().await;
    }

    /// Stops the server and starts a new one on the same port, data
    /// directory, clock and configuration: what survives is what the store
    /// kept.
    pub async fn restart(self) -> TestServer {
        let config = self.config.clone();
        self.restart_with(config).await
    }

    /// As [`TestServer::restart`], with another configuration (the bind
    /// address and database stay the test-kit's).
    pub async fn restart_with(mut self, config: Config) -> TestServer {
        self.shutdown().await;
        TestServerBuilder {
            configure: vec![Box::new(move |c: &mut Config| *c = config)],
            data_dir: Some(self.data_dir.clone()),
            addr: Some(self.addr),
            clock: self.clock.clone(),
            introspection_rate: None,
            sse_keep_alive: None,
            header_read_timeout: None,
            registration_limit: None,
            store_hook: None,
            poll_interval: None,
            key_reload_interval: None,
            backend: self.backend.clone(),
        }
        .start()
        .await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
