//! Wall-clock time and the file period (the UTC hour).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Splits time into file periods.
///
/// The period is one hour. Tests shorten it through the `WSREC_PERIOD_SECS` environment
/// variable so that rotation can be exercised without waiting an hour; it is a test
/// hook, documented in the README's developer section, not a user setting.
#[derive(Debug, Clone, Copy)]
pub struct Periods {
    secs: u64,
}

impl Periods {
    /// One-hour periods, or the test override.
    pub fn from_env() -> Periods {
        let secs = std::env::var("WSREC_PERIOD_SECS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(3600);
        Periods { secs }
    }

    /// Periods of `secs` seconds.
    pub fn of_secs(secs: u64) -> Periods {
        Periods { secs: secs.max(1) }
    }

    /// Start (Unix seconds) of the period that holds `unix_secs`.
    #[inline]
    pub fn start_of(self, unix_secs: u64) -> u64 {
        unix_secs - unix_secs % self.secs
    }

    /// The period now.
    #[inline]
    pub fn now(self) -> u64 {
        self.start_of(now().as_secs())
    }

    /// Length of one period.
    pub fn len(self) -> Duration {
        Duration::from_secs(self.secs)
    }
}

/// Time since the Unix epoch.
#[inline]
pub fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
