//! [`RedisSlots`]: the per-user WebSocket connection count shared by every
//! instance of a service through Redis (features `ws` and `redis`), so that
//! a plan's `ws_connections` is one limit across instances (CONTRACT §5).
//!
//! Each connection holds a **lease**: `<prefix>:ws:<sub>` is a sorted set
//! of connection ids (128 random bits) scored by the lease's expiry in
//! Redis's own milliseconds. One Lua script drops the user's expired leases,
//! counts the rest and adds the new one only if the plan leaves room, so
//! two instances never both take the last slot and host clocks never
//! matter. Leases last [`LEASE`]; one task per `RedisSlots` renews every
//! lease of this process every [`RENEW_EVERY`] and removes a connection's
//! lease as soon as the connection ends. A process that dies renews
//! nothing: its leases expire by themselves within [`LEASE`], and the next
//! handshake of the user drops them.
//!
//! When Redis cannot be used (down, or slower than 500 ms) the handshake
//! is judged by this process's own count of the user's connections — the
//! policy of the tool limits ([`crate::limits::RedisLimits`]): a Redis
//! outage gives a user at most one plan's worth of connections per
//! instance, and never refuses every connection. Connections admitted that
//! way are added to Redis by the next renewal that reaches it. After a
//! failure Redis is not asked again for a back-off (100 ms doubling to 5 s);
//! one warning is logged when it goes away, one line when it is back.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use foldhash::fast::RandomState;
use redis::Script;
use tokio::sync::{Notify, watch};

use crate::AuthError;
use crate::limits::shared::RedisLink;

/// How long a lease lasts without renewal: how long the slots of a dead
/// process stay taken.
pub const LEASE: Duration = Duration::from_secs(30);

/// How often every lease of this process is renewed.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);

/// Leases renewed per script call.
const RENEW_BATCH: usize = 500;

/// Releases kept for a retry while Redis is away (they expire anyway).
const MAX_PENDING_RELEASES: usize = 10_000;

/// `KEYS[1]` the user's leases; `ARGV` the new id, the limit, the lease in
/// ms. 1 when the lease was taken, 0 when the user is at the limit.
const ACQUIRE_SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local limit = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
if redis.call('PTTL', KEYS[1]) < lease then
  redis.call('PEXPIRE', KEYS[1], lease)
end
return 1
";

/// `KEYS` the users' lease sets; `ARGV[1]` the lease in ms, then one id per
/// key. Sets each lease's expiry to now + lease (adding leases Redis lost
/// or never had).
const RENEW_SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local lease = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + lease, ARGV[i + 1])
  if redis.call('PTTL', key) < lease then
    redis.call('PEXPIRE', key, lease)
  end
end
return #KEYS
";

/// What Redis said about a handshake.
pub(crate) enum Admission {
    /// A lease was taken with this id.
    Leased(String),
    /// The user is at their plan's limit across instances.
    Refused,
    /// Redis cannot be used: judge in process.
    Unavailable,
}

/// Per-user connection leases in Redis. See the module docs. Give it to
/// [`super::WsAuthBuilder::shared_slots`].
pub struct RedisSlots {
    shared: Arc<Shared>,
    /// Dropped with this: stops the renewal task.
    _stop: watch::Sender<()>,
}

struct Shared {
    link: RedisLink,
    acquire: Script,
    renew: Script,
    leases: Mutex<Leases>,
    /// Wakes the renewal task to send releases at once.
    released: Notify,
}

#[derive(Default)]
struct Leases {
    /// This process's live leases: id → subject.
    live: HashMap<String, String, RandomState>,
    /// Ended connections whose leases are still to be removed.
    ended: Vec<(String, String)>,
}

impl fmt::Debug for RedisSlots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("RedisSlots")
            .field("prefix", &self.shared.link.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisSlots {
    /// Leases in the Redis at `url`, under `prefix` (instances share one
    /// limit exactly when they share the prefix; the one of the service's
    /// [`crate::limits::RedisLimits`] is a good choice). Nothing is sent
    /// yet, so a service starts while Redis is down. Must be called inside
    /// a Tokio runtime (it starts the renewal task); fails on a URL the
    /// client cannot use, without repeating it.
    pub fn new(url: &str, prefix: impl Into<String>) -> Result<RedisSlots, AuthError> {
        let link = RedisLink::new(
            url,
            prefix.into(),
            "RedisSlots::new",
            "WebSocket connection limits",
        )?;
        let shared = Arc::new(Shared {
            link,
            acquire: Script::new(ACQUIRE_SCRIPT),
            renew: Script::new(RENEW_SCRIPT),
            leases: Mutex::default(),
            released: Notify::new(),
        });
        let (stop, stopped) = watch::channel(());
        tokio::spawn(maintain(shared.clone(), stopped));
        Ok(RedisSlots {
            shared,
            _stop: stop,
        })
    }

    /// The prefix of every key.
    pub fn prefix(&self) -> &str {
        self.shared.link.prefix()
    }

    /// Takes a lease for one more connection of `subject` if fewer than
    /// `limit` are open across instances.
    pub(crate) async fn acquire(&self, subject: &str, limit: u32) -> Admission {
        let Ok(id) = tollgate_core::claims::new_id() else {
            return Admission::Unavailable;
        };
        let key = self.shared.key(subject);
        let script = &self.shared.acquire;
        let lease_ms = lease_ms();
        let taken = self
            .shared
            .link
            .call("taking a WebSocket connection slot", |mut conn| {
                let id = id.clone();
                async move {
                    script
                        .key(key)
                        .arg(id)
                        .arg(limit)
                        .arg(lease_ms)
                        .invoke_async::<i64>(&mut conn)
                        .await
                }
            })
            .await;
        match taken {
            Some(1) => {
                self.shared.leases().live.insert(id.clone(), subject.into());
                Admission::Leased(id)
            }
            Some(_) => Admission::Refused,
            None => Admission::Unavailable,
        }
    }

    /// Records a connection admitted without Redis, so the next renewal
    /// that reaches Redis counts it there. Its lease id.
    pub(crate) fn register(&self, subject: &str) -> Option<String> {
        let id = tollgate_core::claims::new_id().ok()?;
        self.shared.leases().live.insert(id.clone(), subject.into());
        Some(id)
    }

    /// The connection holding lease `id` ended: its lease goes at once
    /// (by the renewal task, which never renews it again).
    pub(crate) fn release(&self, id: &str) {
        let mut leases = self.shared.leases();
        if let Some(subject) = leases.live.remove(id) {
            if leases.ended.len() < MAX_PENDING_RELEASES {
                leases.ended.push((id.to_owned(), subject));
            }
            drop(leases);
            self.shared.released.notify_one();
        }
    }
}

impl Shared {
    fn key(&self, subject: &str) -> String {
        self.link.key(&format!("ws:{subject}"))
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, Leases> {
        // Every critical section leaves the maps consistent.
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes the leases of ended connections; kept for a retry if Redis
    /// cannot be used.
    async fn remove_ended(&self) {
        let ended = std::mem::take(&mut self.leases().ended);
        if ended.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for (id, subject) in &ended {
            pipe.cmd("ZREM").arg(self.key(subject)).arg(id).ignore();
        }
        let removed = self
            .link
            .call(
                "removing WebSocket connection leases",
                |mut conn| async move { pipe.query_async::<()>(&mut conn).await },
            )
            .await;
        if removed.is_none() {
            let mut leases = self.leases();
            let room = MAX_PENDING_RELEASES.saturating_sub(leases.ended.len());
            leases.ended.extend(ended.into_iter().take(room));
        }
    }

    /// Renews every live lease of this process.
    async fn renew_live(&self) {
        let live: Vec<(String, String)> = self
            .leases()
            .live
            .iter()
            .map(|(id, subject)| (id.clone(), subject.clone()))
            .collect();
        for batch in live.chunks(RENEW_BATCH) {
            let mut invocation = self.renew.prepare_invoke();
            invocation.arg(lease_ms());
            for (id, subject) in batch {
                invocation.key(self.key(subject)).arg(id);
            }
            let renewed = self
                .link
                .call("renewing WebSocket connection leases", |mut conn| {
                    let invocation = &invocation;
                    async move { invocation.invoke_async::<i64>(&mut conn).await }
                })
                .await;
            if renewed.is_none() {
                return;
            }
        }
    }
}

/// The renewal task: renews every [`RENEW_EVERY`], removes ended leases as
/// soon as told; stops when its [`RedisSlots`] is dropped.
async fn maintain(shared: Arc<Shared>, mut stop: watch::Receiver<()>) {
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let renew = tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => true,
            () = shared.released.notified() => false,
        };
        // Removals first: a lease that ended is never renewed after.
        shared.remove_ended().await;
        if renew {
            shared.renew_live().await;
        }
    }
}

fn lease_ms() -> u64 {
    u64::try_from(LEASE.as_millis()).unwrap_or(u64::MAX)
}
