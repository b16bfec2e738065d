//! A circuit breaker in front of the token service's introspection
//! endpoint.
//!
//! - **Closed**: calls go through; `failure_threshold` consecutive failures
//!   open it.
//! - **Open**: calls fail at once (the SDK then answers from its cache or
//!   fails closed) for `open_for`.
//! - **Half-open**: after `open_for`, up to `half_open_probes` calls go
//!   through at a time; one success closes the breaker, one failure opens
//!   it again.
//!
//! Only "unreachable" outcomes (connection errors, timeouts, 5xx) count as
//! failures; a 4xx answer proves the service is up. The state is exported
//! as the gauge `tollgate_client_breaker_state` (0 closed, 1 open,
//! 2 half-open). Time is passed in, so the state machine is tested without
//! sleeping.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Breaker settings. Defaults: 5 failures, 5 s open, 1 probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker; default 5.
    pub failure_threshold: u32,
    /// How long the breaker stays open before probing; default 5 s.
    pub open_for: Duration,
    /// Calls let through at a time while half-open; default 1.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            open_for: Duration::from_secs(5),
            half_open_probes: 1,
        }
    }
}

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail at once.
    Open,
    /// A few probe calls go through.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    fn gauge_value(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: u32,
    opened_at: Option<Instant>,
    probes: u32,
}

/// The breaker. See the module docs.
#[derive(Debug)]
pub(crate) struct Breaker {
    config: BreakerConfig,
    name: &'static str,
    inner: Mutex<Inner>,
}

/// Permission to make one call. Dropping it without [`Permit::record`]
/// (a cancelled call) frees a half-open probe slot and changes nothing else.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    recorded: bool,
}

impl Breaker {
    pub(crate) fn new(name: &'static str, config: BreakerConfig) -> Breaker {
        let breaker = Breaker {
            config,
            name,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
                opened_at: None,
                probes: 0,
            }),
        };
        breaker.export(BreakerState::Closed);
        breaker
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every critical section leaves the fields consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn export(&self, state: BreakerState) {
        metrics::gauge!("tollgate_client_breaker_state", "breaker" => self.name)
            .set(state.gauge_value());
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState) {
        if inner.state != to {
            tracing::info!(
                breaker = self.name,
                from = inner.state.as_str(),
                to = to.as_str(),
                "circuit breaker changed state"
            );
            inner.state = to;
            self.export(to);
        }
    }

    /// The current state (an open breaker whose time is up reads half-open).
    pub(crate) fn state(&self, now: Instant) -> BreakerState {
        let inner = self.lock();
        match (inner.state, inner.opened_at) {
            (BreakerState::Open, Some(at)) if now >= at + self.config.open_for => {
                BreakerState::HalfOpen
            }
            (state, _) => state,
        }
    }

    /// Asks to make a call; `None` when the breaker is open (or half-open
    /// with every probe slot taken).
    pub(crate) fn admit(&self, now: Instant) -> Option<Permit<'_>> {
        let mut inner = self.lock();
        if inner.state == BreakerState::Open {
            let due = inner
                .opened_at
                .is_none_or(|at| now >= at + self.config.open_for);
            if !due {
                return None;
            }
            self.transition(&mut inner, BreakerState::HalfOpen);
            inner.probes = 0;
        }
        let probe = inner.state == BreakerState::HalfOpen;
        if probe {
            if inner.probes >= self.config.half_open_probes.max(1) {
                return None;
            }
            inner.probes += 1;
        }
        Some(Permit {
            breaker: self,
            probe,
            recorded: false,
        })
    }

    fn record(&self, probe: bool, success: bool, now: Instant) {
        let mut inner = self.lock();
        if probe {
            inner.probes = inner.probes.saturating_sub(1);
        }
        if success {
            inner.failures = 0;
            inner.opened_at = None;
            self.transition(&mut inner, BreakerState::Closed);
            return;
        }
        inner.failures = inner.failures.saturating_add(1);
        let trips = match inner.state {
            BreakerState::Closed => inner.failures >= self.config.failure_threshold.max(1),
            BreakerState::HalfOpen => true,
            // A call admitted before the breaker opened: it is open already.
            BreakerState::Open => false,
        };
        if trips {
            inner.opened_at = Some(now);
            self.transition(&mut inner, BreakerState::Open);
        }
    }

    fn release(&self) {
        let mut inner = self.lock();
        inner.probes = inner.probes.saturating_sub(1);
    }
}

impl Permit<'_> {
    /// Records the call's outcome: `success` is false only for
    /// "unreachable" outcomes.
    pub(crate) fn record(mut self, success: bool, now: Instant) {
        self.recorded = true;
        self.breaker.record(self.probe, success, now);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.recorded && self.probe {
            self.breaker.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(
            "test",
            BreakerConfig {
                failure_threshold: 3,
                open_for: Duration::from_secs(10),
                half_open_probes: 1,
            },
        )
    }

    #[tokio::test]
    async fn opens_after_the_threshold_probes_and_heals() {
        let b = breaker();
        let t0 = Instant::now();
        for _ in 0..2 {
            b.admit(t0).unwrap().record(false, t0);
        }
        assert_eq!(b.state(t0), BreakerState::Closed);
        b.admit(t0).unwrap().record(false, t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert!(b.admit(t0 + Duration::from_secs(9)).is_none());

        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        let probe = b.admit(t1).unwrap();
        assert!(b.admit(t1).is_none(), "one probe at a time");
        probe.record(false, t1);
        assert_eq!(b.state(t1), BreakerState::Open, "a failed probe reopens");

        let t2 = t1 + Duration::from_secs(10);
        b.admit(t2).unwrap().record(true, t2);
        assert_eq!(b.state(t2), BreakerState::Closed);
        b.admit(t2).unwrap().record(false, t2);
        assert_eq!(
            b.state(t2),
            BreakerState::Closed,
            "successes reset the count"
        );
    }

    #[tokio::test]
    async fn a_cancelled_probe_frees_its_slot() {
        let b = breaker();
        let t0 = Instant::now();
        for _ in 0..3 {
            b.admit(t0).unwrap().record(false, t0);
        }
        let t1 = t0 + Duration::from_secs(10);
        drop(b.admit(t1).unwrap());
        assert!(b.admit(t1).is_some());
    }
}
