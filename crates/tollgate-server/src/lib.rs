//! `tollgate-server`: the token service of CONTRACT §4 as an axum server.
//!
//! [`Server::bind`] loads everything a request needs (keys from the store,
//! the revocation view, plans, the bootstrap admin) and binds the listener,
//! so a test can bind `127.0.0.1:0` and read [`Server::local_addr`] before
//! serving; [`Server::run`] serves until a shutdown future resolves, then
//! finishes in-flight requests.
//!
//! Code map: `routes` (one module per area: `oauth`, `auth`, `admin`,
//! `feed`, `discovery`, `ops`), `extract` (typed request inputs and caller
//! authentication), `tokens` (issuing), `keys` / [`keystore`] (signing keys
//! live and at rest), `revocations` (the in-memory view and the pump),
//! `passwords` and `limits` (login safety), `health` (the bounded store
//! and its known health, which `/readyz` reports), `error` ([`ApiError`], the one
//! HTTP error mapping), `state`, `metrics`, `request_id`, `openapi`.
//!
//! **Invariants:** every token decision goes through
//! [`tollgate_core::Validator`]; tokens and secrets never reach a log line
//! (only [`tollgate_core::token_fingerprint`]); a revoking request answers
//! 2xx only after the store made the revocation durable.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod accounts;
mod audit;
mod bootstrap;
mod clients;
pub mod clock;
mod console;
mod error;
mod extract;
mod fanout;
mod forwarded;
mod health;
mod input;
mod keys;
pub mod keystore;
mod limits;
mod metrics;
mod openapi;
mod passwords;
mod redis_link;
mod request_id;
mod revocations;
mod routes;
mod serve;
mod state;
#[cfg(feature = "testkit")]
pub mod testkit;
mod tokens;
mod webhook;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tollgate_core::config::Config;
use tollgate_core::plans::Plans;
use tollgate_store::{Store, StoreError};

pub use audit::AuditFlush;
pub use clock::Clock;
pub use error::ApiError;
pub use tokens::{FIRST_PARTY_CLIENT, USER_SCOPES};

use crate::clients::ClientCache;
use crate::fanout::Fanout;
use crate::keys::KeyManager;
use crate::limits::{FailureCounts, FailureLimiter, RateLimiter, SharedFailureLimiter};
use crate::passwords::PasswordPool;
use crate::redis_link::RedisLink;
use crate::revocations::{Pump, RevocationView};
use crate::state::{AppState, Shared};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("the server failed: {0}")]
    Io(#[from] std::io::Error),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A key could not be made, loaded or sealed.
    #[error("signing keys: {0}")]
    Keys(tollgate_core::Error),
    /// A stored key cannot be used.
    #[error("the stored signing key {kid} cannot be used: {reason}")]
    StoredKey {
        /// The key's id.
        kid: String,
        /// Why.
        reason: &'static str,
    },
    /// Another process rotated the signing keys at the same moment, twice
    /// in a row; nothing was written.
    #[error(
        "another rotation of the signing keys ran at the same moment; nothing was changed, try again"
    )]
    RotationConflict,
    /// HS256 is configured without `TOLLGATE_HMAC_SECRET`.
    #[error("TOLLGATE_SIGNING_ALG is HS256 but TOLLGATE_HMAC_SECRET is not set")]
    MissingHmacSecret,
    /// HS256 keys are the configured secret; they are never generated or stored.
    #[error("HS256 keys come from TOLLGATE_HMAC_SECRET and are never stored or rotated")]
    HmacKeysAreNotStored,
    /// The plans file cannot be read or is invalid.
    #[error("the plans file {path}: {detail}")]
    Plans {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The bootstrap admin settings cannot be used.
    #[error("bootstrap admin: {0}")]
    Bootstrap(String),
    /// Password hashing is unusable.
    #[error("password hashing: {0}")]
    Passwords(tollgate_core::Error),
    /// `TOLLGATE_REDIS_URL` cannot be used (the message never repeats it).
    #[error("{0}")]
    Redis(String),
    /// The audit webhook cannot be set up (the message never repeats the URL).
    #[error("{0}")]
    Webhook(String),
}

impl ServerError {
    /// The API answer for a failure inside a request (rotation).
    pub(crate) fn into_api(self) -> ApiError {
        match self {
            ServerError::Store(error) => ApiError::from(error),
            ServerError::RotationConflict => ApiError::RotationConflict,
            other => {
                tracing::error!(error = %other, "server error");
                ApiError::Internal
            }
        }
    }
}

/// Tunables that are not part of the configuration contract.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Keep-alive comment interval of the SSE feed.
    pub sse_keep_alive: Duration,
    /// How often the revocation pump reads the store.
    pub poll_interval: Duration,
    /// How often keys are reloaded from the store.
    pub key_reload_interval: Duration,
    /// Concurrent password hashes.
    pub hash_slots: usize,
    /// How long a connection may take to send a complete request head.
    pub header_read_timeout: Duration,
    /// The settings report the console's configuration page shows.
    pub settings: Option<Arc<Vec<SettingRow>>>,
}

/// One effective setting as `tollgate config check` shows it: the
/// console's configuration page lists them (secrets already masked by the
/// core's [`Report`](tollgate_core::config::Report)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingRow {
    /// The setting's variable name (`TOLLGATE_BIND`).
    pub name: String,
    /// Its value as shown to humans, masked for secrets; `None` when unset.
    pub value: Option<String>,
    /// Where it came from (`env TOLLGATE_BIND`, `default (production)`).
    pub source: String,
}

impl SettingRow {
    /// Every entry of a configuration report.
    pub fn from_report(report: &tollgate_core::config::Report) -> Vec<SettingRow> {
        report
            .entries()
            .iter()
            .map(|entry| SettingRow {
                name: entry.spec().env().to_owned(),
                value: entry.value().map(str::to_owned),
                source: entry.source().to_string(),
            })
            .collect()
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            sse_keep_alive: routes::feed::DEFAULT_KEEP_ALIVE,
            poll_interval: Duration::from_millis(500),
            key_reload_interval: Duration::from_secs(2),
            hash_slots: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            header_read_timeout: serve::HEADER_READ_TIMEOUT,
            settings: None,
        }
    }
}

/// Builds a [`Server`] with non-default parts.
pub struct ServerBuilder {
    config: Config,
    store: Arc<dyn Store>,
    clock: Clock,
    listener: Option<TcpListener>,
    options: Options,
}

impl ServerBuilder {
    /// Uses `clock` instead of the system clock (tests move it forward).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Serves on an already bound listener instead of binding `config.bind`.
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Introspection requests per second allowed per client, bursts of
    /// twice that (`TOLLGATE_INTROSPECTIONS_PER_CLIENT`; this overrides it).
    pub fn introspection_rate(mut self, per_second: u32) -> Self {
        self.config.introspections_per_client = per_second;
        self
    }

    /// Keep-alive comment interval of the SSE feed (default 15 s).
    pub fn sse_keep_alive(mut self, interval: Duration) -> Self {
        self.options.sse_keep_alive = interval;
        self
    }

    /// Concurrent password hashes (default: the number of cores).
    pub fn hash_slots(mut self, slots: usize) -> Self {
        self.options.hash_slots = slots;
        self
    }

    /// How long a connection may take to send a complete request head
    /// before it is closed (default 10 s; slowloris protection).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.options.header_read_timeout = timeout;
        self
    }

    /// Registrations one address may make before each further one must
    /// wait, doubling from 1 s to 5 min; forgotten after 15 quiet minutes
    /// (`TOLLGATE_REGISTRATIONS_PER_ADDRESS`; this overrides it).
    pub fn registration_limit(mut self, attempts: u32) -> Self {
        self.config.registrations_per_address = attempts;
        self
    }

    /// How often the store is polled for other instances' revocations
    /// (default 500 ms). With Redis, a notice triggers a poll at once.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.options.poll_interval = interval;
        self
    }

    /// How often keys are reloaded from the store (default 2 s), which
    /// also paces pruning and purges. With Redis, a rotation notice
    /// triggers a reload at once.
    pub fn key_reload_interval(mut self, interval: Duration) -> Self {
        self.options.key_reload_interval = interval;
        self
    }

    /// The settings report the console shows on its configuration page
    /// (`tollgate serve` passes the one it resolved the configuration from).
    pub fn settings(mut self, rows: Vec<SettingRow>) -> Self {
        self.options.settings = Some(Arc::new(rows));
        self
    }

    /// Loads keys, revocations and plans, creates the bootstrap admin, and
    /// binds the listener.
    pub async fn bind(self) -> Result<Server, ServerError> {
        let ServerBuilder {
            config,
            store,
            clock,
            listener,
            options,
        } = self;
        let listener = match listener {
            Some(listener) => listener,
            None => TcpListener::bind(config.bind)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.bind,
                    source,
                })?,
        };
        // Everything below, startup included, calls the store through the
        // bound and the known health (issue 16).
        let guarded = Arc::new(health::Guarded::new(
            store,
            Duration::from_secs(config.store_timeout),
        ));
        let store: Arc<dyn Store> = guarded.clone();
        let plans = load_plans(&config).await?;
        let now = clock.now();
        let keys = KeyManager::start(&config, store.clone(), now).await?;
        let revocations = RevocationView::new(RevocationView::max_age(options.poll_interval));
        let pump = Pump::new();
        pump.catch_up(store.as_ref(), &revocations, &keys, now)
            .await?;
        let passwords = PasswordPool::new(options.hash_slots)
            .await
            .map_err(ServerError::Passwords)?;
        bootstrap::admin(&config, store.as_ref(), &plans, now).await?;
        let link = match &config.redis_url {
            Some(url) => {
                let url = url
                    .expose_str()
                    .ok_or_else(|| ServerError::Redis("TOLLGATE_REDIS_URL is not text".into()))?;
                Some(Arc::new(RedisLink::open(url, config.redis_namespace())?))
            }
            None => None,
        };
        let fanout = link.clone().map(|link| Arc::new(Fanout::new(link)));
        let failures = |name: &'static str, threshold: u32| -> Box<dyn FailureCounts> {
            let local = FailureLimiter::new(threshold, 300, 900);
            match &link {
                Some(link) => Box::new(SharedFailureLimiter::new(link.clone(), name, local)),
                None => Box::new(local),
            }
        };
        let (stop, shutdown) = watch::channel(false);
        let (audit, audit_writer) = audit::Auditor::new(clock.clone());
        let webhook = webhook::Webhook::from_config(&config).map_err(ServerError::Webhook)?;
        let rate = config.introspections_per_client;
        let account_failures = failures("account", config.login_failures_per_account);
        let account_global_failures =
            failures("account-global", config.login_failures_per_account_global);
        let address_failures = failures("address", config.login_failures_per_address);
        let registrations = failures("registration", config.registrations_per_address);
        let console_csrf = console::CsrfKey::from_config(&config).map_err(ServerError::Keys)?;
        let state = AppState::new(Shared {
            console_csrf,
            config,
            store,
            guarded,
            clock,
            keys,
            revocations,
            pump,
            fanout,
            plans,
            passwords,
            account_failures,
            account_global_failures,
            address_failures,
            registrations,
            introspection_rate: RateLimiter::new(rate, rate.saturating_mul(2)),
            clients: ClientCache::default(),
            metrics: metrics::handle(),
            shutdown,
            audit,
            options,
        });
        Ok(Server {
            listener,
            state,
            stop,
            audit_writer,
            webhook,
        })
    }
}

async fn load_plans(config: &Config) -> Result<Plans, ServerError> {
    let Some(path) = &config.plans_file else {
        return Ok(Plans::builtin());
    };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|error| ServerError::Plans {
            path: path.clone(),
            detail: error.to_string(),
        })?;
    Plans::from_toml(&text).map_err(|error| ServerError::Plans {
        path: path.clone(),
        detail: error.to_string(),
    })
}

/// A bound, loaded token service, ready to [`run`](Server::run).
pub struct Server {
    listener: TcpListener,
    state: AppState,
    stop: watch::Sender<bool>,
    audit_writer: audit::Writer,
    webhook: Option<(webhook::Webhook, webhook::Poster)>,
}

impl Server {
    /// Binds `config.bind` over `store` with the system clock.
    pub async fn bind(config: Config, store: Arc<dyn Store>) -> Result<Server, ServerError> {
        Server::builder(config, store).bind().await
    }

    /// A builder for non-default clocks, listeners and limits.
    pub fn builder(config: Config, store: Arc<dyn Store>) -> ServerBuilder {
        ServerBuilder {
            config,
            store,
            clock: Clock::system(),
            listener: None,
            options: Options::default(),
        }
    }

    /// The address actually bound (the port, when `:0` was asked for).
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        Ok(self.listener.local_addr()?)
    }

    /// Waits until the audit events recorded so far are written (tests).
    pub fn audit_flush(&self) -> AuditFlush {
        self.state.audit.flusher()
    }

    /// Serves until `shutdown` resolves, then stops accepting, ends the
    /// revocation streams, waits for in-flight requests to finish, and
    /// writes the audit events still queued.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Server {
            listener,
            state,
            stop,
            audit_writer,
            webhook,
        } = self;
        let (webhook, poster) = webhook.unzip();
        let poster = poster.map(|poster| tokio::spawn(poster.run()));
        let (audit_stop, audit_stopped) = tokio::sync::oneshot::channel::<()>();
        let writer = tokio::spawn(audit_writer.run(state.store.clone(), webhook, async move {
            let _ = audit_stopped.await;
        }));
        state
            .audit
            .record(
                &audit::Origin::system(),
                audit::Actor::system(),
                routes::discovery::config_event(&state),
            )
            .await;
        let background = [
            tokio::spawn(pump_loop(state.clone())),
            tokio::spawn(health::probe_loop(state.clone())),
            tokio::spawn(maintenance_loop(state.clone())),
            tokio::spawn(fanout::subscription_loop(state.clone())),
            tokio::spawn(fanout::publish_loop(state.clone())),
        ];
        let app = routes::router(state.clone());
        let stop = Arc::new(stop);
        let signal = {
            let stop = stop.clone();
            async move {
                shutdown.await;
                tracing::info!("shutting down: finishing in-flight requests");
                let _ = stop.send(true);
            }
        };
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, issuer = %state.config.issuer, "tollgate is serving");
        }
        let limits = serve::Limits {
            header_read: state.options.header_read_timeout,
            keep_alive: Duration::from_secs(state.config.keep_alive_timeout),
        };
        serve::serve(listener, app, limits, signal).await;
        let _ = stop.send(true);
        for task in background {
            task.abort();
        }
        // Every request has finished: write what they recorded, bounded.
        let _ = audit_stop.send(());
        let bound = Duration::from_secs(state.config.store_timeout.saturating_mul(2).max(1));
        if tokio::time::timeout(bound, writer).await.is_err() {
            tracing::error!("writing the last audit events timed out; they are lost");
        }
        // The writer has let go of the webhook: its queue ends once posted
        // (a receiver that is down holds shutdown up only this long).
        if let Some(poster) = poster
            && tokio::time::timeout(Duration::from_secs(5), poster)
                .await
                .is_err()
        {
            tracing::warn!("audit events still queued for the webhook were not posted");
        }
        Ok(())
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C): the shutdown future of `tollgate serve`.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

/// Keeps the revocation view and the live feed in step with the store.
async fn pump_loop(state: AppState) {
    let mut failing = false;
    loop {
        tokio::select! {
            () = state.pump.woken() => {}
            () = tokio::time::sleep(state.options.poll_interval) => {}
            () = state.stopped() => return,
        }
        match state
            .pump
            .catch_up(
                state.store.as_ref(),
                &state.revocations,
                &state.keys,
                state.now(),
            )
            .await
        {
            Ok(_) => failing = false,
            Err(error) => {
                if !failing {
                    tracing::warn!(error = %error, "reading revocations from the store failed");
                }
                failing = true;
            }
        }
    }
}

/// Key reloads and retirements, pruning, store purges, audit retention,
/// metrics upkeep.
async fn maintenance_loop(state: AppState) {
    let mut ticks: u64 = 0;
    let mut pruned_at: Option<u64> = None;
    let interval = state.options.key_reload_interval;
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = state.stopped() => return,
        }
        ticks += 1;
        let now = state.now();
        if let Err(error) = state.keys.reload(now).await {
            tracing::warn!(error = %error, "reloading signing keys failed");
        }
        if ticks.is_multiple_of(30) {
            state.revocations.prune(now);
            state.account_failures.prune(now);
            state.account_global_failures.prune(now);
            state.address_failures.prune(now);
            state.registrations.prune(now);
            state.metrics.run_upkeep();
        }
        if pruned_at.is_none_or(|at| now >= at.saturating_add(audit::PRUNE_EVERY)) {
            pruned_at = Some(now);
            audit::prune(&state, now).await;
        }
        if ticks.is_multiple_of(300) {
            match state.store.purge_expired(now).await {
                Ok(rows) if rows > 0 => tracing::info!(rows, "purged expired rows"),
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "purging expired rows failed"),
            }
        }
    }
}
