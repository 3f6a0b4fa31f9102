//! Wall-clock time, the file period (the UTC hour), RFC 3339 for the times people
//! read (through the `time` crate's formatter), and the few intervals that tests shorten
//! through the environment.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    now().as_millis() as u64
}

/// `2026-11-25T03:00:00.250Z` for a Unix time in ms (the number itself if the time
/// crate cannot represent it).
pub(crate) fn rfc3339_ms(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `2026-11-25T03:00:00Z` for a Unix time in seconds.
pub(crate) fn rfc3339_secs(secs: u64) -> String {
    OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// An RFC 3339 time as Unix ms.
pub(crate) fn parse_rfc3339_ms(s: &str) -> Result<u64, time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339).map(|t| (t.unix_timestamp_nanos() / 1_000_000) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        assert_eq!(rfc3339_secs(1_795_572_000), "2026-11-25T02:00:00Z");
        assert_eq!(rfc3339_ms(1_795_572_000_250), "2026-11-25T02:00:00.25Z");
        assert_eq!(
            parse_rfc3339_ms("2026-11-25T02:00:00.25Z").unwrap(),
            1_795_572_000_250
        );
    }
}
