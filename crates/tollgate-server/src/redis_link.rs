//! [`RedisLink`]: this instance's connection to Redis, when
//! `TOLLGATE_REDIS_URL` is set, and what it knows of Redis's health.
//!
//! Redis is never a source of truth here: it carries "poll the store now"
//! notices between instances (`fanout`) and the shared login failure
//! counters (`limits`). So every use of it is optional: a command that fails
//! or takes longer than [`COMMAND_TIMEOUT`] yields `None`, the caller falls
//! back to what works without Redis, and after a failure commands are not
//! even tried for a short, growing back-off (so a dead Redis does not add a
//! timeout to every login). The connection reconnects by itself
//! (`redis::aio::ConnectionManager`, created lazily so that an instance
//! starts while Redis is down).
//!
//! Every key and channel starts with the deployment's namespace
//! ([`tollgate_core::config::Config::redis_namespace`]), so deployments and
//! test runs sharing one Redis never see each other.
//!
//! **Invariant:** the Redis URL (which may carry a password) is never
//! logged or returned in an error; neither is any key (they may derive from
//! an e-mail address).

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult};
use tokio::time::Instant;

use crate::ServerError;

/// Longest wait for one command, connection included.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// First pause after a failure; doubles up to [`MAX_BACKOFF`].
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between attempts while Redis is down.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Whether commands may be sent, and when to try again if not.
struct Health {
    /// `Some` while Redis is considered down: no command before then.
    retry_at: Option<Instant>,
    /// The next pause after a failure.
    backoff: Duration,
}

/// The connection to Redis and its health (see the module docs).
pub(crate) struct RedisLink {
    client: Client,
    commands: ConnectionManager,
    namespace: String,
    health: Mutex<Health>,
}

impl RedisLink {
    /// Prepares the connection (nothing is sent yet). Fails only on a URL
    /// the client cannot use; the error never repeats the URL.
    pub fn open(url: &str, namespace: String) -> Result<RedisLink, ServerError> {
        let client = Client::open(url).map_err(|error| {
            ServerError::Redis(format!("TOLLGATE_REDIS_URL cannot be used: {error}"))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            // One attempt per command: the back-off lives here, where it
            // also spares the callers.
            .set_number_of_retries(0)
            .set_min_delay(MIN_BACKOFF)
            .set_max_delay(MAX_BACKOFF);
        let commands = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|error| ServerError::Redis(format!("Redis client: {error}")))?;
        Ok(RedisLink {
            client,
            commands,
            namespace,
            health: Mutex::new(Health {
                retry_at: None,
                backoff: MIN_BACKOFF,
            }),
        })
    }

    /// The client, for connections of their own (the subscription).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `<namespace>:<name>`: the full name of a key or channel.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.namespace)
    }

    /// Runs one command (or script) on the shared connection. `None` when
    /// Redis is in back-off, fails or is too slow; `what` names the use in
    /// the log line written when Redis goes down.
    pub async fn call<T, F, Fut>(&self, what: &'static str, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if !self.may_try(Instant::now()) {
            return None;
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, command(self.commands.clone())).await {
            Ok(Ok(value)) => {
                self.succeeded();
                Some(value)
            }
            Ok(Err(error)) => {
                self.failed(what, &error.to_string());
                None
            }
            Err(_) => {
                self.failed(what, "timed out");
                None
            }
        }
    }

    /// Whether Redis answers a `PING` now (readiness).
    pub async fn ping(&self) -> bool {
        self.call("ping", |mut conn| async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await
        .is_some()
    }

    fn may_try(&self, now: Instant) -> bool {
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health.retry_at.is_none_or(|at| now >= at)
    }

    /// Records a success: Redis is up (again).
    pub fn succeeded(&self) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if health.retry_at.take().is_some() {
            tracing::info!("Redis answers again");
        }
        health.backoff = MIN_BACKOFF;
    }

    /// Records a failure: no command until the back-off has passed.
    pub fn failed(&self, what: &'static str, error: &str) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if health.retry_at.is_none() {
            tracing::warn!(
                what,
                error,
                "Redis cannot be used: instances fall back to polling the store and to \
                 counting login failures on their own until it answers again"
            );
        }
        health.retry_at = Some(Instant::now() + health.backoff);
        health.backoff = (health.backoff * 2).min(MAX_BACKOFF);
    }
}
