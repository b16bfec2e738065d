//! [`RedisLimits`]: the tool-call buckets and usage counts of a
//! [`super::ToolGate`] kept in Redis (feature `redis`), so that every
//! instance of a scaled-out service enforces one rate per user and the
//! counts of all instances add up.
//!
//! Keys, under a prefix that names the service's deployment (every gate on
//! one Redis and prefix shares them):
//! - `<prefix>:rate:<sub>`: the user's token bucket (`tokens`, `updated` in
//!   Redis's own milliseconds), updated by one Lua script, so concurrent
//!   instances never both take the last call and clocks of hosts never
//!   disagree. Same rule as [`super::RateLimiter`]: a minute's worth of
//!   calls as burst, refilled at the plan's rate. It expires once it would
//!   be full again.
//! - `<prefix>:usage:<sub>`: a hash tool → calls (`HINCRBY`), and
//!   `<prefix>:usage-users`: the set of users with counts. Counts never
//!   expire: they are billing data.
//!
//! When Redis cannot be used (down, or slower than [`COMMAND_TIMEOUT`]),
//! the gate stays up: rates fall back to this process's bucket (each
//! instance then limits on its own), and calls are counted here and added
//! to Redis with the next call that reaches it, so no call goes uncounted.
//! After a failure Redis is not asked again for a back-off (100 ms doubling
//! to 5 s), so a dead Redis does not slow every call down. One warning is
//! logged when Redis goes away, one line when it is back.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult, Script};
use tokio::time::Instant;

use super::{RateLimiter, UsageMeter};
use crate::AuthError;

/// Longest wait for one Redis command, connection included.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Takes one call from a token bucket. `KEYS[1]` the bucket; `ARGV[1]` the
/// capacity (calls per minute, refilled over a minute). Returns
/// `{1, 0}` when admitted, `{0, wait_ms}` when not.
const TAKE_SCRIPT: &str = r"
local capacity = tonumber(ARGV[1])
local per_ms = capacity / 60000
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil or updated == nil then
  tokens = capacity
  updated = now
end
local elapsed = now - updated
if elapsed < 0 then elapsed = 0 end
tokens = math.min(capacity, tokens + elapsed * per_ms)
local admitted = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  admitted = 1
else
  wait = math.ceil((1 - tokens) / per_ms)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / per_ms) + 1000)
return {admitted, wait}
";

/// Whether Redis may be asked, and when to try again if not.
struct Health {
    retry_at: Option<Instant>,
    backoff: Duration,
}

/// One Redis connection with its back-off: what [`RedisLimits`] and the
/// WebSocket connection leases (`ws::RedisSlots`) talk through.
pub(crate) struct RedisLink {
    commands: ConnectionManager,
    prefix: String,
    health: Mutex<Health>,
    /// What falls back while Redis is away, for the log lines.
    what: &'static str,
}

/// Tool-call buckets and usage counts in Redis. See the module docs.
pub struct RedisLimits {
    link: RedisLink,
    take_script: Script,
    /// The buckets used while Redis cannot be.
    fallback: RateLimiter,
    /// Calls counted while Redis could not be, not yet added there.
    pending: UsageMeter,
}

impl fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("RedisLimits")
            .field("prefix", &self.link.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisLimits {
    /// Limits in the Redis at `url` (`redis://…`), every key under
    /// `prefix`. Nothing is sent yet: the connection is made on first use
    /// and remade whenever it breaks, so a service starts while Redis is
    /// down. Gates of one service on one Redis share their limits exactly
    /// when they share the prefix; [`tollgate_core::config::Config::redis_namespace`]
    /// and the service's name make a good one.
    ///
    /// Must be called inside a Tokio runtime (the connection has a task of
    /// its own). Fails on a URL the client cannot use (the error never
    /// repeats the URL) and outside a runtime.
    pub fn new(url: &str, prefix: impl Into<String>) -> Result<RedisLimits, AuthError> {
        Ok(RedisLimits {
            link: RedisLink::new(url, prefix.into(), "RedisLimits::new", "tool limits")?,
            take_script: Script::new(TAKE_SCRIPT),
            fallback: RateLimiter::new(),
            pending: UsageMeter::new(),
        })
    }

    /// The prefix of every key.
    pub fn prefix(&self) -> &str {
        self.link.prefix()
    }

    fn key(&self, name: &str) -> String {
        self.link.key(name)
    }

    fn may_try(&self) -> bool {
        self.link.may_try()
    }

    async fn call<T, F, Fut>(&self, what: &'static str, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.link.call(what, command).await
    }

    /// Takes one call for `user` at `rate_per_minute`; on refusal, how long
    /// until a call is allowed.
    pub(crate) async fn take(&self, user: &str, rate_per_minute: u32) -> Result<(), Duration> {
        if rate_per_minute == 0 {
            return Err(Duration::from_secs(60));
        }
        let key = self.key(&format!("rate:{user}"));
        let script = &self.take_script;
        let answer = self
            .call("taking a tool call", |mut conn| async move {
                script
                    .key(key)
                    .arg(rate_per_minute)
                    .invoke_async::<(i64, u64)>(&mut conn)
                    .await
            })
            .await;
        match answer {
            Some((1, _)) => Ok(()),
            Some((_, wait_ms)) => Err(Duration::from_millis(wait_ms.max(1))),
            None => self.fallback.check(user, rate_per_minute, Instant::now()),
        }
    }

    /// Counts one call of `tool` by `user`, with any counts kept while
    /// Redis was away.
    pub(crate) async fn record(&self, user: &str, tool: &str) {
        self.pending.add(user, tool, 1);
        if !self.may_try() {
            return;
        }
        let counts = self.pending.take();
        let users = self.key("usage-users");
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (user, tools) in &counts {
            let key = self.key(&format!("usage:{user}"));
            for (tool, calls) in tools {
                pipe.cmd("HINCRBY").arg(&key).arg(tool).arg(*calls).ignore();
            }
            pipe.cmd("SADD").arg(&users).arg(user).ignore();
        }
        let written = self
            .call("counting a tool call", |mut conn| async move {
                pipe.query_async::<()>(&mut conn).await
            })
            .await;
        if written.is_none() {
            // Kept for the next call that reaches Redis. A failure after
            // Redis applied the transaction counts these calls twice; a
            // lost call is the worse error for billing.
            for (user, tools) in counts {
                for (tool, calls) in tools {
                    self.pending.add(&user, &tool, calls);
                }
            }
        }
    }

    /// `user`'s counts: Redis's plus any not yet written there.
    pub(crate) async fn usage_of(&self, user: &str) -> BTreeMap<String, u64> {
        let key = self.key(&format!("usage:{user}"));
        let stored = self
            .call("reading usage", |mut conn| async move {
                redis::cmd("HGETALL")
                    .arg(key)
                    .query_async::<BTreeMap<String, u64>>(&mut conn)
                    .await
            })
            .await
            .unwrap_or_default();
        merge(stored, self.pending.of(user))
    }

    /// Every user's counts: Redis's plus any not yet written there.
    pub(crate) async fn usage_all(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let users_key = self.key("usage-users");
        let users = self
            .call("reading usage", |mut conn| async move {
                redis::cmd("SMEMBERS")
                    .arg(users_key)
                    .query_async::<Vec<String>>(&mut conn)
                    .await
            })
            .await
            .unwrap_or_default();
        let mut all = BTreeMap::new();
        if !users.is_empty() {
            let mut pipe = redis::pipe();
            for user in &users {
                pipe.cmd("HGETALL").arg(self.key(&format!("usage:{user}")));
            }
            let counts = self
                .call("reading usage", |mut conn| async move {
                    pipe.query_async::<Vec<BTreeMap<String, u64>>>(&mut conn)
                        .await
                })
                .await
                .unwrap_or_default();
            all.extend(users.into_iter().zip(counts));
        }
        for (user, pending) in self.pending.all() {
            let stored = all.remove(&user).unwrap_or_default();
            all.insert(user, merge(stored, pending));
        }
        all
    }
}

impl RedisLink {
    /// A lazy connection to `url` (nothing is sent yet; it is remade
    /// whenever it breaks). `caller` names the constructor for the error
    /// outside a runtime; `what` is what falls back while Redis is away.
    pub(crate) fn new(
        url: &str,
        prefix: String,
        caller: &'static str,
        what: &'static str,
    ) -> Result<RedisLink, AuthError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(AuthError::Config(format!(
                "{caller} must be called inside a Tokio runtime"
            )));
        }
        let client = Client::open(url).map_err(|error| {
            AuthError::Config(format!(
                "TOLLGATE_REDIS_URL cannot be used: {}",
                error.category()
            ))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(0);
        let commands = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|error| AuthError::Config(format!("Redis client: {}", error.category())))?;
        Ok(RedisLink {
            commands,
            prefix,
            health: Mutex::new(Health {
                retry_at: None,
                backoff: MIN_BACKOFF,
            }),
            what,
        })
    }

    /// The prefix of every key.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>:<name>`.
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// Whether Redis may be asked now (it is not in back-off).
    pub(crate) fn may_try(&self) -> bool {
        let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        health.retry_at.is_none_or(|at| Instant::now() >= at)
    }

    /// Runs one command on the shared connection; `None` when Redis is in
    /// back-off, fails or is too slow.
    pub(crate) async fn call<T, F, Fut>(&self, what: &'static str, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if !self.may_try() {
            return None;
        }
        let outcome = tokio::time::timeout(COMMAND_TIMEOUT, command(self.commands.clone())).await;
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(Ok(value)) => {
                if health.retry_at.take().is_some() {
                    tracing::info!(prefix = %self.prefix, limits = self.what, "Redis answers again: limits are shared again");
                }
                health.backoff = MIN_BACKOFF;
                Some(value)
            }
            Ok(Err(error)) => {
                note_failure(
                    &mut health,
                    &self.prefix,
                    self.what,
                    what,
                    &error.to_string(),
                );
                None
            }
            Err(_) => {
                note_failure(&mut health, &self.prefix, self.what, what, "timed out");
                None
            }
        }
    }
}

fn note_failure(
    health: &mut Health,
    prefix: &str,
    limits: &'static str,
    what: &'static str,
    error: &str,
) {
    if health.retry_at.is_none() {
        tracing::warn!(
            prefix,
            limits,
            what,
            error,
            "Redis cannot be used: these limits are enforced per instance (and tool calls \
             counted here) until it answers again"
        );
    }
    health.retry_at = Some(Instant::now() + health.backoff);
    health.backoff = (health.backoff * 2).min(MAX_BACKOFF);
}

fn merge(mut into: BTreeMap<String, u64>, more: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    for (tool, calls) in more {
        let count = into.entry(tool).or_insert(0);
        *count = count.saturating_add(calls);
    }
    into
}

#[cfg(test)]
mod tests {
    //! Against the real Redis at 127.0.0.1:6379 (or
    //! `TOLLGATE_TEST_REDIS_URL`), each test under a prefix of its own,
    //! deleted at the end.

    use std::future::Future;
    use std::panic::AssertUnwindSafe;

    use futures::FutureExt;

    use super::*;
    use crate::Principal;
    use crate::limits::{Plans, ToolGate};
    use crate::testing::TestIssuer;

    fn redis_url() -> String {
        std::env::var("TOLLGATE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    }

    /// Runs `body` with a fresh prefix, then deletes every key under it.
    async fn with_prefix<F, Fut>(body: F)
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = ()>,
    {
        let prefix = format!("tollgate-test:{:016x}", rand_id());
        let outcome = AssertUnwindSafe(body(prefix.clone())).catch_unwind().await;
        let client = Client::open(redis_url()).unwrap();
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("these tests need Redis at {}: {e}", redis_url()));
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    fn rand_id() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        hasher.finish()
    }

    /// Plans where `free` allows five calls a minute: one refills every
    /// 12 s, far longer than a test takes.
    fn slow_plans() -> Plans {
        Plans::from_toml("base_rate_per_minute = 5").unwrap()
    }

    fn user(issuer: &TestIssuer, sub: &str) -> Principal {
        let (_, claims) = issuer.user(sub).mint_with_claims().unwrap();
        Principal::new(claims)
    }

    fn gate(prefix: &str) -> ToolGate {
        ToolGate::shared(
            slow_plans(),
            RedisLimits::new(&redis_url(), prefix).unwrap(),
        )
    }

    /// Calls alternately through `gates` until one refuses; the calls
    /// admitted before, and the refusal.
    async fn calls_until_refused(gates: &[&ToolGate], who: &Principal) -> (usize, AuthError) {
        for admitted in 0..100 {
            let gate = gates[admitted % gates.len()];
            if let Err(error) = gate.admit(who, "search").await {
                return (admitted, error);
            }
        }
        panic!("never refused");
    }

    #[tokio::test]
    async fn two_gates_on_one_prefix_enforce_one_rate_per_user() {
        with_prefix(|prefix| async move {
            let issuer = TestIssuer::new();
            let alice = user(&issuer, "alice");
            let (a, b) = (gate(&prefix), gate(&prefix));
            let (admitted, refusal) = calls_until_refused(&[&a, &b], &alice).await;
            // In process, each gate would have allowed five.
            assert_eq!(admitted, 5);
            let AuthError::RateLimited { retry_after_ms } = refusal else {
                panic!("{refusal:?}");
            };
            assert!((1..=12_000).contains(&retry_after_ms), "{retry_after_ms}");
            assert!(b.admit(&alice, "search").await.is_err());
            // Another user, and another prefix, have buckets of their own.
            b.admit(&user(&issuer, "bob"), "search").await.unwrap();
            let other = gate(&format!("{prefix}:other"));
            other.admit(&alice, "search").await.unwrap();
            // A tool outside the plan is refused before any bucket.
            assert!(matches!(
                a.admit(&alice, "debug").await,
                Err(AuthError::PermissionDenied(_))
            ));
        })
        .await;
    }

    #[tokio::test]
    async fn usage_counts_of_two_gates_add_up() {
        with_prefix(|prefix| async move {
            let issuer = TestIssuer::new();
            let alice = user(&issuer, "alice");
            let bob = user(&issuer, "bob");
            let (a, b) = (gate(&prefix), gate(&prefix));
            for _ in 0..3 {
                a.admit(&alice, "search").await.unwrap();
            }
            b.admit(&alice, "search").await.unwrap();
            b.admit(&alice, "summarize").await.unwrap();
            a.admit(&bob, "summarize").await.unwrap();
            for gate in [&a, &b] {
                let counts = gate.usage_of("alice").await;
                assert_eq!(counts.get("search"), Some(&4), "{counts:?}");
                assert_eq!(counts.get("summarize"), Some(&1), "{counts:?}");
                let all = gate.usage_all().await;
                assert_eq!(all.len(), 2, "{all:?}");
                assert_eq!(all["bob"].get("summarize"), Some(&1));
            }
            // Alice has used her five calls a minute: refused calls are not
            // counted.
            assert!(a.admit(&alice, "search").await.is_err());
            assert_eq!(a.usage_of("alice").await.get("search"), Some(&4));
        })
        .await;
    }

    #[tokio::test]
    async fn with_redis_unreachable_a_gate_limits_and_counts_in_process() {
        let port = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let url = format!("redis://127.0.0.1:{port}");
        let (a, b) = (
            ToolGate::shared(slow_plans(), RedisLimits::new(&url, "p").unwrap()),
            ToolGate::shared(slow_plans(), RedisLimits::new(&url, "p").unwrap()),
        );
        let alice = user(&TestIssuer::new(), "alice");
        // Each gate limits on its own.
        assert_eq!(calls_until_refused(&[&a], &alice).await.0, 5);
        assert_eq!(calls_until_refused(&[&b], &alice).await.0, 5);
        assert_eq!(a.usage_of("alice").await.get("search"), Some(&5));
        assert_eq!(a.usage_all().await["alice"].get("search"), Some(&5));
    }

    /// Forwards every connection on `listener` to Redis.
    fn forward(listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        let target = redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        })
    }

    #[tokio::test]
    async fn calls_counted_while_redis_was_away_reach_it_when_it_is_back() {
        with_prefix(|prefix| async move {
            let plans = || Plans::from_toml("base_rate_per_minute = 6000").unwrap();
            let port = {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                listener.local_addr().unwrap().port()
            };
            // Nothing listens on `port` yet: Redis is away for `away`.
            let away = ToolGate::shared(
                plans(),
                RedisLimits::new(&format!("redis://127.0.0.1:{port}"), prefix.as_str()).unwrap(),
            );
            let direct =
                ToolGate::shared(plans(), RedisLimits::new(&redis_url(), &prefix).unwrap());
            let alice = user(&TestIssuer::new(), "alice");
            away.admit(&alice, "search").await.unwrap();
            away.admit(&alice, "search").await.unwrap();
            assert_eq!(away.usage_of("alice").await.get("search"), Some(&2));
            assert!(direct.usage_of("alice").await.is_empty());

            let proxy = forward(
                tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .unwrap(),
            );
            // The next call after the back-off writes all three.
            let mut calls = 2;
            for _ in 0..200 {
                away.admit(&alice, "search").await.unwrap();
                calls += 1;
                if direct.usage_of("alice").await.get("search") == Some(&calls) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(direct.usage_of("alice").await.get("search"), Some(&calls));
            assert_eq!(away.usage_of("alice").await.get("search"), Some(&calls));
            proxy.abort();
        })
        .await;
    }

    #[tokio::test]
    async fn a_url_the_client_cannot_use_is_a_config_error_without_the_url() {
        let error = RedisLimits::new("redis://:hunter2@host:notaport", "p").unwrap_err();
        assert_eq!(error.code(), "invalid_config");
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let debug = format!("{:?}", gate("p"));
        assert!(
            debug.contains("redis") && !debug.contains("6379"),
            "{debug}"
        );
    }

    #[test]
    fn outside_a_tokio_runtime_new_is_a_config_error() {
        let error = RedisLimits::new(&redis_url(), "p").unwrap_err();
        assert_eq!(error.code(), "invalid_config");
    }
}
