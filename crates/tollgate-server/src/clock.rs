//! [`Clock`]: the server's one source of "now".
//!
//! Every handler asks the state's clock, never `SystemTime` directly, so
//! tests can move time forward (token expiry, key retirement, login
//! back-off) without sleeping. The store and the core take `now` from here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tollgate_core::UnixTime;

/// Wall-clock seconds (or a fixed start, for [`Clock::manual`]) plus an
/// offset that only ever grows. Cloning shares the offset, so a test
/// holding a clone moves the server's time.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset: Arc<AtomicU64>,
    start: Option<UnixTime>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that stands still at `start` until advanced: for tests that
    /// must not depend on how long they take.
    pub fn manual(start: UnixTime) -> Clock {
        Clock {
            offset: Arc::default(),
            start: Some(start),
        }
    }

    /// The system clock's current second.
    pub fn system_now() -> UnixTime {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// Seconds since the Unix epoch, as this clock sees them.
    pub fn now(&self) -> UnixTime {
        let base = self.start.unwrap_or_else(Clock::system_now);
        base.saturating_add(self.offset.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every clone of it) `seconds` into the future.
    /// For tests of expiry; time never moves backwards.
    pub fn advance(&self, seconds: u64) {
        self.offset.fetch_add(seconds, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_a_clone_moves_every_clone() {
        let clock = Clock::system();
        let other = clock.clone();
        let before = clock.now();
        other.advance(3600);
        assert!(clock.now() >= before + 3600);
    }

    #[test]
    fn a_manual_clock_stands_still_until_advanced() {
        let clock = Clock::manual(1000);
        assert_eq!(clock.now(), 1000);
        clock.advance(5);
        assert_eq!(clock.now(), 1005);
    }
}
