//! Request limits kept in memory: login failure back-off and per-caller
//! request rates.
//!
//! [`FailureLimiter`] is the brute-force guard of `/v1/auth/login`: after
//! `threshold` failures for one key (an account, or an address), each new
//! attempt must wait `2^(failures - threshold)` seconds after the last
//! failure, capped at `max_backoff`. It is a soft lock: the real owner waits
//! at most `max_backoff` (minutes, not hours), and one success clears the
//! account's count. Failures are forgotten after `window` quiet seconds.
//!
//! [`RateLimiter`] is a token bucket per caller (introspection per client).
//!
//! Both are bounded in memory: past `capacity` keys, stale ones are dropped,
//! and when every key is live the oldest go first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use tollgate_core::UnixTime;

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

    /// `Err(seconds)` when `key` must wait before trying again.
    pub fn check(&self, key: &str, now: UnixTime) -> Result<(), u64> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = entries.get(key) else {
            return Ok(());
        };
        let until = entry.last.saturating_add(self.backoff(entry.count));
        if now < until {
            return Err(until - now);
        }
        Ok(())
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
