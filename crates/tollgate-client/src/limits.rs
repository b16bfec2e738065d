//! Per-user limits on tool calls and usage counts (CONTRACT §5).
//!
//! [`RateLimiter`]: a token bucket per user whose size and refill come from
//! the user's plan (`rate_per_minute`): a user may burst up to a minute's
//! worth of calls, then one call per `60 / rate` seconds. [`UsageMeter`]:
//! every allowed call counted per user and tool, for billing.
//! [`ToolGate`] puts them together with the `tool:<name>` permission check,
//! so REST routes and WebSocket messages enforce the same rules.
//!
//! By default the limits live in this process: each instance of a service
//! limits on its own. Memory is bounded: buckets that have refilled
//! completely are dropped when the map grows past its bound (a full bucket
//! is the same as no bucket).
//!
//! With the feature `redis`, [`ToolGate::shared`] keeps the buckets and the
//! counts in Redis ([`RedisLimits`]), so that every instance of a scaled-out
//! service enforces one rate per user and the counts add up (CONTRACT §5:
//! "shared through Redis when scaled out"). The rule is the same token
//! bucket; when Redis cannot be used the gate falls back to this process's
//! bucket and keeps counts until Redis answers again.
//!
//! With [`ToolGate::with_usage`], every admitted call is also a durable
//! usage event at the token service, for billing ([`UsageRecorder`]: batched,
//! spooled to a file while the token service is unreachable, counted once).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use foldhash::fast::RandomState;
use tokio::time::Instant;
pub use tollgate_core::plans::{Plan, Plans};

use crate::{AuthError, Principal};

pub mod recorder;
#[cfg(feature = "redis")]
pub(crate) mod shared;
pub use recorder::{UsageRecorder, UsageRecorderBuilder, UsageStats};
#[cfg(feature = "redis")]
pub use shared::RedisLimits;

/// Buckets kept before full ones are swept out.
const SWEEP_ABOVE: usize = 10_000;

/// One token bucket: `rate_per_minute` is both its size and its refill per
/// minute. [`RateLimiter`] keeps one per key; a holder of a single budget
/// (a WebSocket connection's `auth.refresh`) keeps one itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// A full bucket of `rate_per_minute`.
    pub(crate) fn full(rate_per_minute: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate_per_minute),
            updated: now,
        }
    }

    /// Whether it is full again by `now` (and so the same as no bucket).
    fn is_full(&self, rate_per_minute: u32, now: Instant) -> bool {
        let capacity = f64::from(rate_per_minute);
        let refilled = self.tokens
            + now.saturating_duration_since(self.updated).as_secs_f64() * capacity / 60.0;
        refilled >= capacity
    }

    /// Takes one call at `rate_per_minute`; on refusal, how long until a
    /// call is allowed.
    pub(crate) fn take(&mut self, rate_per_minute: u32, now: Instant) -> Result<(), Duration> {
        if rate_per_minute == 0 {
            return Err(Duration::from_secs(60));
        }
        let capacity = f64::from(rate_per_minute);
        let per_second = capacity / 60.0;
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(capacity);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - self.tokens) / per_second;
        Err(Duration::from_secs_f64(wait.max(0.001)))
    }
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
        // Every critical section leaves the map consistent.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > SWEEP_ABOVE {
            buckets.retain(|_, b| !b.is_full(rate_per_minute, now));
        }
        buckets
            .entry(key.to_owned())
            .or_insert_with(|| Bucket::full(rate_per_minute, now))
            .take(rate_per_minute, now)
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

    /// Takes every count out, leaving the meter empty.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn take(&self) -> HashMap<String, BTreeMap<String, u64>, RandomState> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *counts)
    }

    /// Adds `calls` calls of `tool` by `user`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn add(&self, user: &str, tool: &str, calls: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts
            .entry(user.to_owned())
            .or_default()
            .entry(tool.to_owned())
            .or_insert(0);
        *count = count.saturating_add(calls);
    }
}

/// Where a [`ToolGate`] keeps its buckets and counts.
enum Backend {
    /// In this process.
    Local {
        limiter: RateLimiter,
        usage: UsageMeter,
    },
    /// In Redis, shared by every instance.
    #[cfg(feature = "redis")]
    Shared(RedisLimits),
}

/// Permission, rate and metering for tool calls, by plan.
///
/// One gate serves every transport of a service (REST routes and WebSocket
/// messages call the same [`ToolGate::admit`]), so a user's rate and counts
/// are one whichever way they call.
pub struct ToolGate {
    plans: Plans,
    backend: Backend,
    recorder: Option<UsageRecorder>,
    /// Plan changes on the feed, when followed.
    plan_changes: Option<crate::Authenticator>,
}

impl fmt::Debug for ToolGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match &self.backend {
            Backend::Local { .. } => "in-process",
            #[cfg(feature = "redis")]
            Backend::Shared(_) => "redis",
        };
        f.debug_struct("ToolGate")
            .field("plans", &self.plans)
            .field("backend", &backend)
            .field("recorder", &self.recorder)
            .finish()
    }
}

impl Default for ToolGate {
    fn default() -> ToolGate {
        ToolGate::new(Plans::default())
    }
}

impl ToolGate {
    /// A gate over `plans` whose buckets and counts live in this process.
    pub fn new(plans: Plans) -> ToolGate {
        ToolGate {
            plans,
            backend: Backend::Local {
                limiter: RateLimiter::new(),
                usage: UsageMeter::new(),
            },
            recorder: None,
            plan_changes: None,
        }
    }

    /// A gate over `plans` whose buckets and counts live in Redis, shared
    /// with every gate on the same Redis and prefix (feature `redis`).
    #[cfg(feature = "redis")]
    pub fn shared(plans: Plans, limits: RedisLimits) -> ToolGate {
        ToolGate {
            plans,
            backend: Backend::Shared(limits),
            recorder: None,
            plan_changes: None,
        }
    }

    /// Also records every admitted call as a durable usage event at the
    /// token service ([`UsageRecorder`], started here over this gate's
    /// plans).
    pub async fn with_usage(
        mut self,
        recorder: UsageRecorderBuilder,
    ) -> Result<ToolGate, AuthError> {
        self.recorder = Some(recorder.plans(self.plans.clone()).start().await?);
        Ok(self)
    }

    /// Also records every admitted call with `recorder` (started already,
    /// over the same plans).
    pub fn with_recorder(mut self, recorder: UsageRecorder) -> ToolGate {
        self.recorder = Some(recorder);
        self
    }

    /// Applies the plan changes `auth`'s revocation feed carries (an admin
    /// changed a user's plan): from the next call, REST or WebSocket, the
    /// feed's plan decides the user's rate and tools instead of the token's
    /// `plan` claim (which stays what it was minted with, and what
    /// [`Principal::plan`] says). See docs/usage.md.
    pub fn follow_plan_changes(mut self, auth: &crate::Authenticator) -> ToolGate {
        self.plan_changes = Some(auth.clone());
        self
    }

    /// The plan that decides `principal`'s limits: the feed's, when it
    /// changed since their token was minted (and is followed), else the
    /// token's `plan` claim.
    pub fn plan_for(&self, principal: &Principal) -> Option<String> {
        self.plan_changes
            .as_ref()
            .and_then(|auth| auth.revocations().plan_of(principal.subject()))
            .or_else(|| principal.plan().map(str::to_owned))
    }

    /// The usage recorder, when there is one.
    pub fn recorder(&self) -> Option<&UsageRecorder> {
        self.recorder.as_ref()
    }

    /// The plans in force.
    pub fn plans(&self) -> &Plans {
        &self.plans
    }

    /// `user`'s call counts by tool (with Redis: every instance's calls).
    pub async fn usage_of(&self, user: &str) -> BTreeMap<String, u64> {
        match &self.backend {
            Backend::Local { usage, .. } => usage.of(user),
            #[cfg(feature = "redis")]
            Backend::Shared(limits) => limits.usage_of(user).await,
        }
    }

    /// Every user's call counts by tool (with Redis: every instance's).
    pub async fn usage_all(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        match &self.backend {
            Backend::Local { usage, .. } => usage.all(),
            #[cfg(feature = "redis")]
            Backend::Shared(limits) => limits.usage_all().await,
        }
    }

    /// Admits one call of `tool` by `principal`: a user with the permission
    /// `tool:<tool>`, within the rate of their plan. An admitted call is
    /// counted. A plan the service does not know gets the `free` rate.
    /// With [`ToolGate::follow_plan_changes`], a plan changed on the feed
    /// since the token was minted wins over the token's: its tools and rate
    /// apply.
    ///
    /// Async because a shared gate asks Redis; an in-process gate never
    /// waits.
    pub async fn admit(&self, principal: &Principal, tool: &str) -> Result<(), AuthError> {
        if !principal.is_user() {
            return Err(AuthError::Token(tollgate_core::Error::WrongTokenType));
        }
        let changed = self
            .plan_changes
            .as_ref()
            .and_then(|auth| auth.revocations().plan_of(principal.subject()));
        // A plan changed on the feed decides the tools (when this service
        // knows it); otherwise the token's permissions do.
        let allowed = match changed.as_deref().and_then(|name| self.plans.find(name)) {
            Some(plan) => plan.allows_tool(tool),
            None => principal.may_use_tool(tool),
        };
        if !allowed {
            return Err(AuthError::PermissionDenied(format!("tool:{tool}")));
        }
        let plan = changed
            .as_deref()
            .or(principal.plan())
            .and_then(|name| self.plans.find(name))
            .or_else(|| self.plans.find(tollgate_core::plans::DEFAULT_PLAN));
        let rate = plan.map_or(tollgate_core::plans::DEFAULT_BASE_RATE_PER_MINUTE, |plan| {
            plan.rate_per_minute
        });
        let user = principal.subject();
        let admitted = match &self.backend {
            Backend::Local { limiter, .. } => limiter.check(user, rate, Instant::now()),
            #[cfg(feature = "redis")]
            Backend::Shared(limits) => limits.take(user, rate).await,
        };
        admitted.map_err(|wait| AuthError::RateLimited {
            retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1),
        })?;
        match &self.backend {
            Backend::Local { usage, .. } => usage.record(user, tool),
            #[cfg(feature = "redis")]
            Backend::Shared(limits) => limits.record(user, tool).await,
        }
        if let Some(recorder) = &self.recorder {
            let plan = plan.map_or(tollgate_core::plans::DEFAULT_PLAN, |plan| {
                plan.name.as_str()
            });
            recorder.record(user, tool, plan);
        }
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
