//! `data_timeout`: a subscription the venue ended (Nostr's `CLOSED`, Bitfinex
//! maintenance, a topic silently dropped) leaves a socket that answers pings, so
//! `stale_timeout`, which counts every frame, never fires. This counts only lines
//! shipped to a topic file; when none came for `data_timeout`, the connection is
//! ended and the reader reconnects and resubscribes.

use std::time::{Duration, Instant};

use crate::clock::unix_ms;
use crate::status::Stats;

/// The data timer of one connection.
pub(crate) struct Stall {
    after: Duration,
    /// Topic lines shipped, as of the last check.
    lines: u64,
    /// When data last came (or the connection started, or reading was paused).
    since: Instant,
    /// Unix ms of the last data on this connection.
    last_ms: Option<u64>,
}

impl Stall {
    /// A timer of `after`, starting now, with `lines` topic lines shipped so far.
    pub(crate) fn new(after: Duration, lines: u64) -> Stall {
        Stall {
            after,
            lines,
            since: Instant::now(),
            last_ms: None,
        }
    }

    /// After a drain: `lines` topic lines shipped so far; `paused` if reading waited
    /// for the writer (not the venue's silence). The reason to reconnect, if data
    /// has not flowed for `after`.
    pub(crate) fn check(
        &mut self,
        now: Instant,
        lines: u64,
        paused: bool,
        stats: &Stats,
    ) -> Result<(), String> {
        if lines != self.lines {
            self.lines = lines;
            self.since = now;
            let ms = unix_ms();
            self.last_ms = Some(ms);
            stats.data_at(ms);
        } else if paused {
            self.since = now;
        }
        let silent = now.duration_since(self.since);
        if silent >= self.after {
            return Err(format!(
                "data_timeout: no message reached a topic file for {:.1}s (the socket is alive); resubscribing",
                silent.as_secs_f64()
            ));
        }
        Ok(())
    }

    /// When data last came on this connection (Unix ms).
    pub(crate) fn last_ms(&self) -> Option<u64> {
        self.last_ms
    }
}
