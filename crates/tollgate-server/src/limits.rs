//! Request limits: login failure back-off and per-caller request rates.
//!
//! [`FailureLimiter`] is the brute-force guard of `/v1/auth/login` (and of
//! registration per address): after `threshold` failures for one key (an
//! account, or an address), each new attempt must wait
//! `2^(failures - threshold)` seconds after the last failure, capped at
//! `max_backoff`. It is a soft lock: the real owner waits at most
//! `max_backoff` (minutes, not hours), and one success clears the account's
//! count. Failures are forgotten after `window` quiet seconds.
//!
//! Where the counts live is the [`FailureCounts`] trait: in this process
//! ([`FailureLimiter`]), or in Redis when it is configured
//! ([`SharedFailureLimiter`]), so that N instances behind a load balancer
//! do not give an attacker N times the attempts. The shared counts follow
//! the same rule with the same numbers; the keys are SHA-256 digests, so no
//! e-mail or address is stored in Redis.
//!
//! When Redis cannot be used, the shared limiter **fails safe by counting
//! in this process** (it always counts here too, so the local counts are
//! warm): logins keep working and stay limited per instance; the one
//! warning Redis's link logs says so. Refusing every login while Redis is
//! down would hand anyone who can disturb Redis a way to lock out every
//! user, for a guard whose worst case without Redis is N times the
//! attempts for the length of the outage.
//!
//! [`RateLimiter`] is a token bucket per caller (introspection per client),
//! in memory only.
//!
//! In memory, both are bounded: past `capacity` keys, stale ones are
//! dropped, and when every key is live the oldest go first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tollgate_core::UnixTime;

use crate::redis_link::RedisLink;

/// Where login (and registration) failures are counted. See the module
/// docs.
#[async_trait::async_trait]
pub(crate) trait FailureCounts: Send + Sync {
    /// `Err(seconds)` when `key` must wait before trying again.
    async fn check(&self, key: &str, now: UnixTime) -> Result<(), u64>;
    /// Counts a failure for `key`.
    async fn fail(&self, key: &str, now: UnixTime);
    /// Whether `key` has failures not yet forgotten at `now`.
    async fn has_failed(&self, key: &str, now: UnixTime) -> bool;
    /// Forgets `key`'s failures (a successful login).
    async fn clear(&self, key: &str);
    /// Drops what this process keeps for keys quiet longer than the window.
    fn prune(&self, now: UnixTime);
}

struct Failures {
    count: u32,
    last: UnixTime,
}

/// Failure counting with exponential back-off (see the module docs).
pub(crate) struct FailureLimiter {
    entries: Mutex<HashMap<String, Failures>>,
    threshold: u32,
    max_backoff: u64,
    window: u64,
    capacity: usize,
}

impl FailureLimiter {
    pub fn new(threshold: u32, max_backoff: u64, window: u64) -> FailureLimiter {
        FailureLimiter {
            entries: Mutex::new(HashMap::new()),
            threshold,
            max_backoff,
            window,
            capacity: 100_000,
        }
    }

    fn backoff(&self, count: u32) -> u64 {
        if count < self.threshold {
            return 0;
        }
        let exponent = (count - self.threshold).min(30);
        (1u64 << exponent).min(self.max_backoff)
    }

    /// `Err(seconds)` when `count` failures, the last at `last`, make the
    /// next attempt wait at `now`.
    fn wait(&self, count: u32, last: UnixTime, now: UnixTime) -> Result<(), u64> {
        let until = last.saturating_add(self.backoff(count));
        if now < until {
            return Err(until - now);
        }
        Ok(())
    }

    /// `Err(seconds)` when `key` must wait before trying again.
    pub fn check(&self, key: &str, now: UnixTime) -> Result<(), u64> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = entries.get(key) else {
            return Ok(());
        };
        self.wait(entry.count, entry.last, now)
    }

    /// Counts a failure for `key`.
    pub fn fail(&self, key: &str, now: UnixTime) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            let window = self.window;
            entries.retain(|_, f| now.saturating_sub(f.last) < window);
            if entries.len() >= self.capacity {
                // Everything is live: drop the oldest tenth.
                let mut lasts: Vec<UnixTime> = entries.values().map(|f| f.last).collect();
                lasts.sort_unstable();
                let cut = lasts[lasts.len() / 10];
                entries.retain(|_, f| f.last > cut);
            }
        }
        let entry = entries.entry(key.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.saturating_sub(entry.last) >= self.window {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }

    /// Whether `key` has failures not yet forgotten at `now`.
    pub fn has_failed(&self, key: &str, now: UnixTime) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .is_some_and(|entry| now.saturating_sub(entry.last) < self.window)
    }

    /// Forgets `key`'s failures (a successful login).
    pub fn clear(&self, key: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(key);
    }

    /// Drops keys quiet for longer than the window.
    pub fn prune(&self, now: UnixTime) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.window;
        entries.retain(|_, f| now.saturating_sub(f.last) < window);
    }
}

#[async_trait::async_trait]
impl FailureCounts for FailureLimiter {
    async fn check(&self, key: &str, now: UnixTime) -> Result<(), u64> {
        FailureLimiter::check(self, key, now)
    }
    async fn fail(&self, key: &str, now: UnixTime) {
        FailureLimiter::fail(self, key, now);
    }
    async fn has_failed(&self, key: &str, now: UnixTime) -> bool {
        FailureLimiter::has_failed(self, key, now)
    }
    async fn clear(&self, key: &str) {
        FailureLimiter::clear(self, key);
    }
    fn prune(&self, now: UnixTime) {
        FailureLimiter::prune(self, now);
    }
}

/// Counts one failure in Redis: the same rule as [`FailureLimiter::fail`],
/// atomically, and the hash expires a window after its last failure.
/// `KEYS[1]` the counter; `ARGV` now, window.
const FAIL_SCRIPT: &str = r"
local count = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
if now - last >= window then count = 0 end
count = count + 1
if now > last then last = now end
redis.call('HSET', KEYS[1], 'count', count, 'last', last)
redis.call('EXPIRE', KEYS[1], window)
return count
";

/// Failure counts shared by every instance through Redis, with the
/// in-process limiter as the fallback (see the module docs).
pub(crate) struct SharedFailureLimiter {
    link: Arc<RedisLink>,
    /// `failures:<name>:` names this limiter's keys.
    name: &'static str,
    /// Counts the same failures in this process, for when Redis is down.
    local: FailureLimiter,
    fail_script: redis::Script,
}

impl SharedFailureLimiter {
    pub fn new(link: Arc<RedisLink>, name: &'static str, local: FailureLimiter) -> Self {
        SharedFailureLimiter {
            link,
            name,
            local,
            fail_script: redis::Script::new(FAIL_SCRIPT),
        }
    }

    /// The Redis key of `key`: a digest, so no e-mail or address is stored.
    fn redis_key(&self, key: &str) -> String {
        let digest = tollgate_core::opaque::digest(key.as_bytes());
        self.link.key(&format!("failures:{}:{digest}", self.name))
    }
}

#[async_trait::async_trait]
impl FailureCounts for SharedFailureLimiter {
    async fn check(&self, key: &str, now: UnixTime) -> Result<(), u64> {
        let local = self.local.check(key, now);
        let redis_key = self.redis_key(key);
        let shared = self
            .link
            .call("reading login failures", |mut conn| async move {
                redis::cmd("HMGET")
                    .arg(redis_key)
                    .arg("count")
                    .arg("last")
                    .query_async::<(Option<u32>, Option<UnixTime>)>(&mut conn)
                    .await
            })
            .await;
        let shared = match shared {
            Some((Some(count), Some(last))) => self.local.wait(count, last, now),
            _ => Ok(()),
        };
        // The longer wait: this process may have counted failures while
        // Redis was away.
        match (local, shared) {
            (Err(a), Err(b)) => Err(a.max(b)),
            (Err(wait), Ok(())) | (Ok(()), Err(wait)) => Err(wait),
            (Ok(()), Ok(())) => Ok(()),
        }
    }

    async fn fail(&self, key: &str, now: UnixTime) {
        self.local.fail(key, now);
        let redis_key = self.redis_key(key);
        let script = &self.fail_script;
        let window = self.local.window;
        self.link
            .call("counting a login failure", |mut conn| async move {
                script
                    .key(redis_key)
                    .arg(now)
                    .arg(window)
                    .invoke_async::<u32>(&mut conn)
                    .await
            })
            .await;
    }

    async fn has_failed(&self, key: &str, now: UnixTime) -> bool {
        if self.local.has_failed(key, now) {
            return true;
        }
        // The hash expires a window after its last failure.
        let redis_key = self.redis_key(key);
        self.link
            .call("reading login failures", |mut conn| async move {
                redis::cmd("EXISTS")
                    .arg(redis_key)
                    .query_async::<i64>(&mut conn)
                    .await
            })
            .await
            .is_some_and(|exists| exists > 0)
    }

    async fn clear(&self, key: &str) {
        self.local.clear(key);
        let redis_key = self.redis_key(key);
        self.link
            .call("clearing login failures", |mut conn| async move {
                redis::cmd("DEL")
                    .arg(redis_key)
                    .query_async::<i64>(&mut conn)
                    .await
            })
            .await;
    }

    fn prune(&self, now: UnixTime) {
        self.local.prune(now);
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token bucket per key: `rate` requests per second, bursts of `burst`.
pub(crate) struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
    rate: f64,
    burst: f64,
    capacity: usize,
}

impl RateLimiter {
    pub fn new(rate: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            buckets: Mutex::new(HashMap::new()),
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            capacity: 10_000,
        }
    }

    /// Takes one request for `key`; `Err(milliseconds)` when over the rate.
    pub fn take(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= self.capacity && !buckets.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            // Full buckets carry no state worth keeping.
            buckets
                .retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / self.rate;
        Err((wait * 1000.0).ceil() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_at_the_threshold_doubles_and_is_capped() {
        let limiter = FailureLimiter::new(3, 60, 900);
        for _ in 0..3 {
            assert_eq!(limiter.check("a", 100), Ok(()));
            limiter.fail("a", 100);
        }
        assert_eq!(limiter.check("a", 100), Err(1));
        assert_eq!(limiter.check("a", 101), Ok(()));
        limiter.fail("a", 101);
        assert_eq!(limiter.check("a", 101), Err(2));
        for _ in 0..20 {
            limiter.fail("a", 200);
        }
        assert_eq!(limiter.check("a", 200), Err(60));
        assert_eq!(limiter.check("b", 200), Ok(()));
        limiter.clear("a");
        assert_eq!(limiter.check("a", 200), Ok(()));
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_window() {
        let limiter = FailureLimiter::new(2, 60, 900);
        limiter.fail("a", 0);
        limiter.fail("a", 0);
        assert!(limiter.check("a", 0).is_err());
        limiter.fail("a", 1000);
        assert_eq!(limiter.check("a", 1000), Ok(()));
        limiter.prune(5000);
        assert_eq!(limiter.entries.lock().unwrap().len(), 0);
    }

    #[test]
    fn the_bucket_allows_a_burst_then_refuses_with_a_wait() {
        let limiter = RateLimiter::new(1, 3);
        for _ in 0..3 {
            assert_eq!(limiter.take("c"), Ok(()));
        }
        let wait = limiter.take("c").unwrap_err();
        assert!(wait > 0 && wait <= 1000, "{wait}");
        assert_eq!(limiter.take("other"), Ok(()));
    }
}
