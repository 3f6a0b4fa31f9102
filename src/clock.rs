//! Wall-clock time, the file period (the UTC hour), and the few intervals that tests
//! shorten through the environment.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Splits time into file periods.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Periods {
    secs: u64,
}

impl Periods {
    /// Start (Unix seconds) of the period that holds `unix_secs`.
    #[inline]
    pub(crate) fn start_of(self, unix_secs: u64) -> u64 {
        unix_secs - unix_secs % self.secs
    }

    /// The period now.
    #[inline]
    pub(crate) fn now(self) -> u64 {
        self.start_of(now().as_secs())
    }

    /// Length of one period.
    pub(crate) fn len(self) -> Duration {
        Duration::from_secs(self.secs)
    }
}

/// The recorder's clock settings. Users get one-hour files, a coverage checkpoint a
/// minute and a 2 s grace before a finished hour's files close. Tests shorten each
/// through its own environment variable (documented in the README's developer
/// section; test hooks, not user settings):
/// `WSREC_PERIOD_SECS`, `WSREC_CHECKPOINT_SECS`, `WSREC_CLOSE_GRACE_SECS`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// The file period.
    pub(crate) periods: Periods,
    /// Interval of the coverage journal's progress lines.
    pub(crate) checkpoint: Duration,
    /// How long after a period ends its files are closed if no newer line came first.
    pub(crate) close_grace: Duration,
}

impl Timing {
    /// The defaults, or the test overrides.
    pub(crate) fn from_env() -> Timing {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|s| *s > 0.0 && s.is_finite())
        };
        Timing {
            periods: Periods {
                secs: var("WSREC_PERIOD_SECS").map_or(3600, |s| (s as u64).max(1)),
            },
            checkpoint: Duration::from_secs_f64(var("WSREC_CHECKPOINT_SECS").unwrap_or(60.0)),
            close_grace: Duration::from_secs_f64(var("WSREC_CLOSE_GRACE_SECS").unwrap_or(2.0)),
        }
    }
}

#[cfg(test)]
impl Periods {
    /// Periods of `secs` seconds.
    pub(crate) fn of_secs(secs: u64) -> Periods {
        Periods { secs: secs.max(1) }
    }
}

/// Time since the Unix epoch.
#[inline]
pub(crate) fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
