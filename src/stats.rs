//! Counters that every thread updates and the status probe, the log and the metrics
//! file read. Plain atomics: the hot path pays one relaxed add per batch, not a lock.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

/// Why a received frame was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// A binary frame.
    Binary,
    /// An empty text frame.
    Empty,
    /// A text frame that is not one JSON value.
    NotJson,
    /// A text frame that is not valid UTF-8 (ends the connection).
    InvalidUtf8,
    /// A message over `max_message_bytes` (ends the connection).
    TooLarge,
}

impl RejectReason {
    /// Every reason, in the order of [`Stats::rejected`].
    pub const ALL: [RejectReason; 5] = [
        RejectReason::Binary,
        RejectReason::Empty,
        RejectReason::NotJson,
        RejectReason::InvalidUtf8,
        RejectReason::TooLarge,
    ];

    /// The name used in logs, `--status --json` and metrics.
    pub fn name(self) -> &'static str {
        match self {
            RejectReason::Binary => "binary",
            RejectReason::Empty => "empty",
            RejectReason::NotJson => "not_json",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::TooLarge => "too_large",
        }
    }
}

/// The recorder's live figures.
pub struct Stats {
    started: Instant,
    started_unix: f64,
    /// Messages received and accepted for writing.
    pub messages: AtomicU64,
    /// Lines the writer has written to files.
    pub lines_written: AtomicU64,
    /// Bytes the writer has written to files.
    pub bytes_written: AtomicU64,
    /// Successful connections (handshake done).
    pub connects: AtomicU64,
    /// Connections after the first.
    pub reconnects: AtomicU64,
    /// Connection attempts, successful or not.
    pub attempts: AtomicU64,
    /// Messages dropped because the channel was full (`on_full: drop`).
    pub dropped: AtomicU64,
    /// Messages in the channel between reader and writer.
    pub queue_depth: AtomicU64,
    /// Capacity of that channel, in messages.
    pub queue_capacity: u64,
    /// Frames refused, by [`RejectReason`].
    pub rejected: [AtomicU64; 5],
    /// Failed writes (disk full and the like).
    pub write_errors: AtomicU64,
    /// Whether the reader holds an open connection.
    pub connected: AtomicBool,
    /// Unix time in ms of the last frame of any kind received (0 = none yet).
    pub last_frame_ms: AtomicU64,
    /// Unix time in ms of the last message accepted (0 = none yet).
    pub last_message_ms: AtomicU64,
    /// Seconds after which a silent stream counts as stale (for the health verdict).
    pub stale_after_s: f64,
    /// The file the writer wrote last.
    pub current_file: Mutex<String>,
    /// The last error seen by any thread.
    pub last_error: Mutex<String>,
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Stats {
    /// Fresh counters for a channel of `queue_capacity` messages.
    pub fn new(queue_capacity: usize, stale_after_s: f64) -> Stats {
        Stats {
            started: Instant::now(),
            started_unix: unix_ms() as f64 / 1000.0,
            messages: AtomicU64::new(0),
            lines_written: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
            queue_capacity: queue_capacity as u64,
            rejected: Default::default(),
            write_errors: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            last_frame_ms: AtomicU64::new(0),
            last_message_ms: AtomicU64::new(0),
            stale_after_s,
            current_file: Mutex::new(String::new()),
            last_error: Mutex::new(String::new()),
        }
    }

    /// Counts one refused frame.
    pub fn reject(&self, reason: RejectReason) {
        self.rejected[reason as usize].fetch_add(1, Relaxed);
    }

    /// Remembers `err` as the last error.
    pub fn set_error(&self, err: impl Into<String>) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = err.into();
        }
    }

    /// A consistent-enough copy of every figure.
    pub fn snapshot(&self) -> Snapshot {
        let now_ms = unix_ms();
        let age = |ms: u64| (ms > 0).then(|| now_ms.saturating_sub(ms) as f64 / 1000.0);
        Snapshot {
            uptime_s: self.started.elapsed().as_secs_f64(),
            started_unix: self.started_unix,
            messages: self.messages.load(Relaxed),
            lines_written: self.lines_written.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            connected: self.connected.load(Relaxed),
            connects: self.connects.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            attempts: self.attempts.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            queue_depth: self.queue_depth.load(Relaxed),
            queue_capacity: self.queue_capacity,
            rejected: RejectReason::ALL
                .map(|r| (r.name(), self.rejected[r as usize].load(Relaxed))),
            write_errors: self.write_errors.load(Relaxed),
            last_frame_age_s: age(self.last_frame_ms.load(Relaxed)),
            last_message_age_s: age(self.last_message_ms.load(Relaxed)),
            stale_after_s: self.stale_after_s,
            current_file: self
                .current_file
                .lock()
                .map(|s| s.clone())
                .unwrap_or_default(),
            last_error: self
                .last_error
                .lock()
                .map(|s| s.clone())
                .unwrap_or_default(),
        }
    }
}

/// A copy of the figures at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Seconds since start.
    pub uptime_s: f64,
    /// Unix time of the start.
    pub started_unix: f64,
    /// Messages accepted.
    pub messages: u64,
    /// Lines written.
    pub lines_written: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Connected now.
    pub connected: bool,
    /// Successful connections.
    pub connects: u64,
    /// Connections after the first.
    pub reconnects: u64,
    /// Connection attempts.
    pub attempts: u64,
    /// Messages dropped on a full channel.
    pub dropped: u64,
    /// Messages waiting in the channel.
    pub queue_depth: u64,
    /// Channel capacity in messages.
    pub queue_capacity: u64,
    /// Refused frames by reason.
    pub rejected: [(&'static str, u64); 5],
    /// Failed writes.
    pub write_errors: u64,
    /// Seconds since the last frame of any kind.
    pub last_frame_age_s: Option<f64>,
    /// Seconds since the last accepted message.
    pub last_message_age_s: Option<f64>,
    /// The stale threshold.
    pub stale_after_s: f64,
    /// File written last.
    pub current_file: String,
    /// Last error.
    pub last_error: String,
}

/// Formats like Go's `time.Duration.String()` rounded to seconds: `1h2m3s`, `12m34s`, `5s`.
pub fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

impl Snapshot {
    /// Messages per minute since start.
    pub fn rate_per_min(&self) -> f64 {
        if self.uptime_s > 0.0 {
            self.messages as f64 / (self.uptime_s / 60.0)
        } else {
            0.0
        }
    }

    /// Connected, and a message arrived within `stale_timeout` (or none was due yet).
    /// Messages, not frames: a server that answers pings but delivers nothing is not
    /// healthy for someone who wants the data.
    pub fn healthy(&self) -> bool {
        let fresh = match self.last_message_age_s {
            Some(age) => age <= self.stale_after_s,
            None => self.uptime_s <= self.stale_after_s,
        };
        self.connected && fresh
    }

    /// The seed's status line: `Uptime: 12m34s | Total Msgs: 152340 | Rate: 7260.12 msg/min`.
    pub fn line(&self) -> String {
        format!(
            "Uptime: {} | Total Msgs: {} | Rate: {:.2} msg/min",
            go_duration(self.uptime_s.round() as u64),
            self.messages,
            self.rate_per_min()
        )
    }

    /// Every figure as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let rejected: serde_json::Map<String, serde_json::Value> = self
            .rejected
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_s": round3(self.uptime_s),
            "started_unix": round3(self.started_unix),
            "total_messages": self.messages,
            "rate_per_min": round3(self.rate_per_min()),
            "lines_written": self.lines_written,
            "bytes_written": self.bytes_written,
            "connected": self.connected,
            "healthy": self.healthy(),
            "connects": self.connects,
            "reconnects": self.reconnects,
            "connect_attempts": self.attempts,
            "queue_depth": self.queue_depth,
            "queue_capacity": self.queue_capacity,
            "dropped": self.dropped,
            "rejected": rejected,
            "write_errors": self.write_errors,
            "last_frame_age_s": self.last_frame_age_s.map(round3),
            "last_message_age_s": self.last_message_age_s.map(round3),
            "stale_timeout_s": self.stale_after_s,
            "current_file": self.current_file,
            "last_error": self.last_error,
        })
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(754), "12m34s");
        assert_eq!(go_duration(3600), "1h0m0s");
        assert_eq!(go_duration(3723), "1h2m3s");
    }

    #[test]
    fn seed_line_format() {
        let s = Stats::new(10, 60.0);
        s.messages.store(152_340, Relaxed);
        let line = s.snapshot().line();
        assert!(
            line.starts_with("Uptime: 0s | Total Msgs: 152340 | Rate: "),
            "{line}"
        );
        assert!(line.ends_with(" msg/min"), "{line}");
    }
}
