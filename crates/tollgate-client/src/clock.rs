//! The SDK's one reading of the wall clock, in the core's unit (Unix
//! seconds). Everything below it takes `now` as a parameter.

use std::time::{SystemTime, UNIX_EPOCH};

use tollgate_core::UnixTime;

/// Now, in Unix seconds. A clock before 1970 reads as 0, which makes every
/// token look issued in the future: refused, never accepted.
pub(crate) fn now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Now, in Unix milliseconds (for feed and cache bookkeeping).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
