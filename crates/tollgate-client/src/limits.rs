//! Per-user limits on tool calls and usage counts (CONTRACT §5).
//!
//! [`RateLimiter`]: a token bucket per user whose size and refill come from
//! the user's plan (`rate_per_minute`): a user may burst up to a minute's
//! worth of calls, then one call per `60 / rate` seconds. [`UsageMeter`]:
//! every allowed call counted per user and tool, for billing.
//! [`ToolGate`] puts them together with the `tool:<name>` permission check,
//! so REST routes and WebSocket messages enforce the same rules.
//!
//! In-process only: each instance of a service limits on its own. Memory is
//! bounded: buckets that have refilled completely are dropped when the map
//! grows past its bound (a full bucket is the same as no bucket).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use foldhash::fast::RandomState;
use tokio::time::Instant;
pub use tollgate_core::plans::{Plan, Plans};

use crate::{AuthError, Principal};

/// Buckets kept before full ones are swept out.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A token bucket per key. See the module docs.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket, RandomState>>,
}

impl RateLimiter {
    /// An empty limiter.
    pub fn new() -> RateLimiter {
        RateLimiter::default()
    }

    /// Takes one call for `key` at `rate_per_minute`; on refusal, how long
    /// until a call is allowed.
    pub fn check(&self, key: &str, rate_per_minute: u32, now: Instant) -> Result<(), Duration> {
        if rate_per_minute == 0 {
            return Err(Duration::from_secs(60));
        }
        let capacity = f64::from(rate_per_minute);
        let per_second = capacity / 60.0;
        // Every critical section leaves the map consistent.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > SWEEP_ABOVE {
            buckets.retain(|_, b| {
                let refilled =
                    b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * per_second;
                refilled < capacity
            });
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / per_second;
        Err(Duration::from_secs_f64(wait.max(0.001)))
    }
}

/// Tool calls counted per user and tool.
#[derive(Debug, Default)]
pub struct UsageMeter {
    counts: Mutex<HashMap<String, BTreeMap<String, u64>, RandomState>>,
}

impl UsageMeter {
    /// An empty meter.
    pub fn new() -> UsageMeter {
        UsageMeter::default()
    }

    /// Counts one call of `tool` by `user`.
    pub fn record(&self, user: &str, tool: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *counts
            .entry(user.to_owned())
            .or_default()
            .entry(tool.to_owned())
            .or_insert(0) += 1;
    }

    /// `user`'s counts by tool.
    pub fn of(&self, user: &str) -> BTreeMap<String, u64> {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.get(user).cloned().unwrap_or_default()
    }

    /// Every user's counts.
    pub fn all(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Permission, rate and metering for tool calls, by plan.
#[derive(Debug, Default)]
pub struct ToolGate {
    plans: Plans,
    limiter: RateLimiter,
    usage: UsageMeter,
}

impl ToolGate {
    /// A gate over `plans`.
    pub fn new(plans: Plans) -> ToolGate {
        ToolGate {
            plans,
            limiter: RateLimiter::new(),
            usage: UsageMeter::new(),
        }
    }

    /// The plans in force.
    pub fn plans(&self) -> &Plans {
        &self.plans
    }

    /// The usage counts.
    pub fn usage(&self) -> &UsageMeter {
        &self.usage
    }

    /// Admits one call of `tool` by `principal`: a user with the permission
    /// `tool:<tool>`, within the rate of their plan. An admitted call is
    /// counted. A plan the service does not know gets the `free` rate.
    pub fn admit(&self, principal: &Principal, tool: &str) -> Result<(), AuthError> {
        if !principal.is_user() {
            return Err(AuthError::Token(tollgate_core::Error::WrongTokenType));
        }
        if !principal.may_use_tool(tool) {
            return Err(AuthError::PermissionDenied(format!("tool:{tool}")));
        }
        let rate = principal
            .plan()
            .and_then(|name| self.plans.find(name))
            .or_else(|| self.plans.find(tollgate_core::plans::DEFAULT_PLAN))
            .map_or(tollgate_core::plans::DEFAULT_BASE_RATE_PER_MINUTE, |plan| {
                plan.rate_per_minute
            });
        self.limiter
            .check(principal.subject(), rate, Instant::now())
            .map_err(|wait| AuthError::RateLimited {
                retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1),
            })?;
        self.usage.record(principal.subject(), tool);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bucket_allows_a_minute_of_calls_then_refills() {
        let limiter = RateLimiter::new();
        let t0 = Instant::now();
        for _ in 0..60 {
            limiter.check("u", 60, t0).unwrap();
        }
        let wait = limiter.check("u", 60, t0).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::from_millis(900),
            "{wait:?}"
        );
        assert!(
            limiter.check("other", 60, t0).is_ok(),
            "buckets are per key"
        );
        limiter.check("u", 60, t0 + Duration::from_secs(1)).unwrap();
        assert!(limiter.check("u", 60, t0 + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn usage_counts_per_user_and_tool() {
        let meter = UsageMeter::new();
        meter.record("u", "search");
        meter.record("u", "search");
        meter.record("u", "summarize");
        assert_eq!(meter.of("u").get("search"), Some(&2));
        assert!(meter.of("v").is_empty());
    }
}
