//! Instants as integer milliseconds since the Unix epoch.
//!
//! The core never reads the clock: callers pass `UnixMillis` in, so tests can pin time.

use std::fmt;

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(i64);

/// A span of time in milliseconds; never negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DurationMs(u32);

impl UnixMillis {
    pub const EPOCH: UnixMillis = UnixMillis(0);

    pub const fn new(millis: i64) -> Self {
        UnixMillis(millis)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Saturates instead of overflowing: an instant past the year 292 million is not a business concern.
    pub fn saturating_add(self, duration: DurationMs) -> Self {
        UnixMillis(self.0.saturating_add(i64::from(duration.0)))
    }

    pub fn saturating_sub(self, duration: DurationMs) -> Self {
        UnixMillis(self.0.saturating_sub(i64::from(duration.0)))
    }

    pub fn saturating_add_secs(self, seconds: u64) -> Self {
        let millis = i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        UnixMillis(self.0.saturating_add(millis))
    }

    pub fn saturating_sub_secs(self, seconds: u64) -> Self {
        let millis = i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        UnixMillis(self.0.saturating_sub(millis))
    }
}

impl DurationMs {
    pub const fn from_millis(millis: u32) -> Self {
        DurationMs(millis)
    }

    pub const fn as_millis(self) -> u32 {
        self.0
    }
}

impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}
