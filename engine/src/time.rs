//! The wall clock, where the engine runs on a real host (never in the browser, where
//! `SystemTime` is not available).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::series::UnixMillis;

/// Wall-clock now in unix milliseconds.
pub fn unix_now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
