//! Log lines that could repeat thousands of times a second (bad frames, a full disk,
//! a full channel) go through a limiter: the first one at once, then at most one per
//! interval, saying how many were suppressed in between.

use std::time::{Duration, Instant};

/// One rate-limited log line.
pub(crate) struct RateLimited {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    /// At most one line per `every`.
    pub(crate) fn new(every: Duration) -> RateLimited {
        RateLimited {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// Logs `msg` at `level` unless a line went out less than `every` ago.
    pub(crate) fn log(&mut self, level: log::Level, msg: &str) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.suppressed += 1;
            return;
        }
        if self.suppressed > 0 {
            log::log!(
                level,
                "{msg} ({} more like this since the last report)",
                self.suppressed
            );
        } else {
            log::log!(level, "{msg}");
        }
        self.suppressed = 0;
        self.last = Some(now);
    }
}
