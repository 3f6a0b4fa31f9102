//! The recorder's figures: counters that every thread updates, and the snapshot that
//! the status probe, the log's status line and the metrics file read.
//!
//! Each counter is declared once, in [`COUNTERS`]: its place in `--status --json`, its
//! Prometheus name and label, and its help text. The JSON object and the metrics file
//! are both derived from that table. Plain atomics: the hot path pays one relaxed add
//! per batch, not a lock.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::clock::unix_ms;

use serde_json::{Value, json};

/// A monotonic count. The discriminant is the index into [`COUNTERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    /// Messages received and accepted for writing.
    Messages,
    /// Lines written to files.
    LinesWritten,
    /// Bytes written to files.
    BytesWritten,
    /// Successful connections (handshake done).
    Connects,
    /// Connections after the first.
    Reconnects,
    /// Connection attempts, successful or not.
    Attempts,
    /// Messages dropped on a full channel (`on_full: drop`).
    Dropped,
    /// Failed writes (disk full and the like).
    WriteErrors,
    /// Frames refused: binary.
    RejectBinary,
    /// Frames refused: empty text.
    RejectEmpty,
    /// Frames refused: not one JSON value.
    RejectNotJson,
    /// Frames refused: not UTF-8 (ends the connection).
    RejectInvalidUtf8,
    /// Frames refused: over `max_message_bytes` (ends the connection).
    RejectTooLarge,
    /// Output files found deleted or moved away and opened again at their path.
    OutputReopened,
    /// Lines given up at shutdown: the disk did not take them before the deadline.
    LostAtShutdownLines,
    /// Bytes of those lines.
    LostAtShutdownBytes,
    /// Reconnects because no message reached a topic file for `data_timeout`.
    DataTimeouts,
    /// Reconnects planned by a notice, the connection's age or a 1001 close.
    PlannedReconnects,
    /// Handovers from an old connection to a new one that overlapped it.
    Handovers,
    /// Planned reconnects whose new connection failed (the old one kept recording).
    HandoversFailed,
    /// Messages delivered by both connections of a handover, written once.
    HandoverDuplicates,
    /// Data messages a resume by cursor replayed, written once.
    ResumeDuplicates,
    /// Sequence breaks: a data message that did not follow its topic's last one.
    SequenceBreaks,
    /// `redundant`: messages line A delivered (first arrivals and copies).
    LineAMessages,
    /// Messages line A delivered first (written).
    LineAFirstArrivals,
    /// Messages line A delivered after line B (dropped).
    LineADuplicates,
    /// The same for line B.
    LineBMessages,
    /// Messages line B delivered first.
    LineBFirstArrivals,
    /// Messages line B delivered after line A.
    LineBDuplicates,
}

/// How a counter appears to users.
pub(crate) struct CounterDef {
    /// Where it sits in `--status --json`: a key, or `object.key`.
    pub(crate) json: &'static str,
    /// Prometheus metric name.
    pub(crate) metric: &'static str,
    /// Value of the metric's `reason` label, when several counters share a metric.
    pub(crate) reason: Option<&'static str>,
    /// Prometheus help text (shared by the counters of one metric).
    pub(crate) help: &'static str,
}

const fn def(
    json: &'static str,
    metric: &'static str,
    reason: Option<&'static str>,
    help: &'static str,
) -> CounterDef {
    CounterDef {
        json,
        metric,
        reason,
        help,
    }
}

const NOT_WRITTEN: &str = "Frames not written, by reason.";

/// Every counter, in the order of [`Count`].
pub(crate) const COUNTERS: [CounterDef; 29] = [
    def(
        "total_messages",
        "wsrec_messages_total",
        None,
        "Messages received and accepted.",
    ),
    def(
        "lines_written",
        "wsrec_lines_written_total",
        None,
        "Lines written to files.",
    ),
    def(
        "bytes_written",
        "wsrec_bytes_written_total",
        None,
        "Bytes written to files.",
    ),
    def(
        "connects",
        "wsrec_connects_total",
        None,
        "Successful connections.",
    ),
    def(
        "reconnects",
        "wsrec_reconnects_total",
        None,
        "Connections after the first.",
    ),
    def(
        "connect_attempts",
        "wsrec_connect_attempts_total",
        None,
        "Connection attempts.",
    ),
    def(
        "dropped",
        "wsrec_dropped_total",
        Some("queue_full"),
        NOT_WRITTEN,
    ),
    def(
        "write_errors",
        "wsrec_write_errors_total",
        None,
        "Failed writes (retried).",
    ),
    def(
        "rejected.binary",
        "wsrec_dropped_total",
        Some("binary"),
        NOT_WRITTEN,
    ),
    def(
        "rejected.empty",
        "wsrec_dropped_total",
        Some("empty"),
        NOT_WRITTEN,
    ),
    def(
        "rejected.not_json",
        "wsrec_dropped_total",
        Some("not_json"),
        NOT_WRITTEN,
    ),
    def(
        "rejected.invalid_utf8",
        "wsrec_dropped_total",
        Some("invalid_utf8"),
        NOT_WRITTEN,
    ),
    def(
        "rejected.too_large",
        "wsrec_dropped_total",
        Some("too_large"),
        NOT_WRITTEN,
    ),
    def(
        "output_reopened",
        "wsrec_output_reopened_total",
        None,
        "Output files found deleted or moved away and opened again at their path.",
    ),
    def(
        "lost_at_shutdown.lines",
        "wsrec_lost_at_shutdown_lines_total",
        None,
        "Lines not written because the disk did not take them before the shutdown deadline.",
    ),
    def(
        "lost_at_shutdown.bytes",
        "wsrec_lost_at_shutdown_bytes_total",
        None,
        "Bytes of the lines lost at shutdown.",
    ),
    def(
        "data_timeouts",
        "wsrec_data_timeouts_total",
        None,
        "Reconnects because no message reached a topic file for data_timeout.",
    ),
    def(
        "planned_reconnects",
        "wsrec_planned_reconnects_total",
        None,
        "Reconnects planned by a notice (reconnect_on), max_connection_age or a close with code 1001.",
    ),
    def(
        "handover.handovers",
        "wsrec_handovers_total",
        None,
        "Make-before-break handovers to a new connection.",
    ),
    def(
        "handover.failed",
        "wsrec_handovers_failed_total",
        None,
        "Planned reconnects whose new connection failed; the old one kept recording.",
    ),
    def(
        "handover.duplicates_removed",
        "wsrec_handover_duplicates_removed_total",
        None,
        "Messages delivered by both connections of a handover and written once.",
    ),
    def(
        "resume_duplicates_removed",
        "wsrec_resume_duplicates_removed_total",
        None,
        "Data messages a resume by cursor replayed and written once.",
    ),
    def(
        "sequence_gaps",
        "wsrec_sequence_gaps_total",
        None,
        "Sequence gaps: data messages whose number did not follow their topic's last one (sequence).",
    ),
    def(
        "line_a.messages",
        "wsrec_line_a_messages_total",
        None,
        "redundant: messages line A delivered, first or not.",
    ),
    def(
        "line_a.first_arrivals",
        "wsrec_line_a_first_arrivals_total",
        None,
        "redundant: messages line A delivered first (written).",
    ),
    def(
        "line_a.duplicates_removed",
        "wsrec_line_a_duplicates_removed_total",
        None,
        "redundant: messages line A delivered after line B (not written).",
    ),
    def(
        "line_b.messages",
        "wsrec_line_b_messages_total",
        None,
        "redundant: messages line B delivered, first or not.",
    ),
    def(
        "line_b.first_arrivals",
        "wsrec_line_b_first_arrivals_total",
        None,
        "redundant: messages line B delivered first (written).",
    ),
    def(
        "line_b.duplicates_removed",
        "wsrec_line_b_duplicates_removed_total",
        None,
        "redundant: messages line B delivered after line A (not written).",
    ),
];

/// A figure that goes up and down (Prometheus gauges). The discriminant is the index
/// into [`GAUGES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gauge {
    /// 1 while the recorder runs.
    Up,
    /// Seconds since start.
    Uptime,
    /// 1 while connected.
    Connected,
    /// Messages in the channel to the writer.
    QueueDepth,
    /// The channel's capacity in messages.
    QueueCapacity,
    /// Seconds since the last accepted message (since start, before the first).
    LastMessageAge,
    /// Seconds since a line last reached a topic file (with `data_timeout`; else
    /// since start).
    LastDataAge,
    /// `redundant`: how many lines are connected (0, 1 or 2; 0 without `redundant`).
    LinesConnected,
    /// `redundant`: 1 while line A is connected.
    LineAConnected,
    /// `redundant`: 1 while line B is connected.
    LineBConnected,
}

/// How a gauge appears to users.
pub(crate) struct GaugeDef {
    /// The gauge.
    pub(crate) gauge: Gauge,
    /// Its key in `--status --json`, if it has one there (`up` is implied by an
    /// answer at all).
    pub(crate) json: Option<&'static str>,
    /// Prometheus metric name.
    pub(crate) metric: &'static str,
    /// Prometheus help text.
    pub(crate) help: &'static str,
}

/// Every gauge, in the order of [`Gauge`].
pub(crate) const GAUGES: [GaugeDef; 10] = [
    GaugeDef {
        gauge: Gauge::Up,
        json: None,
        metric: "wsrec_up",
        help: "1 while the recorder runs.",
    },
    GaugeDef {
        gauge: Gauge::Uptime,
        json: Some("uptime_s"),
        metric: "wsrec_uptime_seconds",
        help: "Seconds since the recorder started.",
    },
    GaugeDef {
        gauge: Gauge::Connected,
        json: Some("connected"),
        metric: "wsrec_connected",
        help: "1 while connected.",
    },
    GaugeDef {
        gauge: Gauge::QueueDepth,
        json: Some("queue_depth"),
        metric: "wsrec_queue_depth",
        help: "Messages waiting for the writer.",
    },
    GaugeDef {
        gauge: Gauge::QueueCapacity,
        json: Some("queue_capacity"),
        metric: "wsrec_queue_capacity",
        help: "Channel capacity in messages.",
    },
    GaugeDef {
        gauge: Gauge::LastMessageAge,
        json: Some("last_message_age_s"),
        metric: "wsrec_last_message_age_seconds",
        help: "Seconds since the last message.",
    },
    GaugeDef {
        gauge: Gauge::LastDataAge,
        json: Some("last_data_age_s"),
        metric: "wsrec_last_data_age_seconds",
        help: "Seconds since a line last reached a topic file (tracked with data_timeout; else the uptime).",
    },
    GaugeDef {
        gauge: Gauge::LinesConnected,
        json: None,
        metric: "wsrec_lines_connected",
        help: "redundant: lines connected (2 = full, 1 = degraded; 0 without redundant).",
    },
    GaugeDef {
        gauge: Gauge::LineAConnected,
        json: None,
        metric: "wsrec_line_a_connected",
        help: "redundant: 1 while line A is connected.",
    },
    GaugeDef {
        gauge: Gauge::LineBConnected,
        json: None,
        metric: "wsrec_line_b_connected",
        help: "redundant: 1 while line B is connected.",
    },
];

impl Count {
    /// The counter's declaration.
    pub(crate) fn def(self) -> &'static CounterDef {
        &COUNTERS[self as usize]
    }

    /// The short name used in log lines (the label, or the JSON key).
    pub(crate) fn name(self) -> &'static str {
        let d = self.def();
        d.reason
            .unwrap_or_else(|| d.json.rsplit('.').next().unwrap_or(d.json))
    }
}

/// The recorder's live figures.
pub(crate) struct Stats {
    started: Instant,
    started_unix: f64,
    counts: [AtomicU64; COUNTERS.len()],
    /// Messages in the channel between reader and writer.
    queue_depth: AtomicU64,
    queue_capacity: u64,
    /// Whether the reader holds an open connection.
    connected: AtomicBool,
    /// With `redundant`: whether each line is connected.
    redundant: AtomicBool,
    line_connected: [AtomicBool; 2],
    /// Unix time in ms of the last frame of any kind received (0 = none yet).
    last_frame_ms: AtomicU64,
    /// Unix time in ms of the last message accepted (0 = none yet).
    last_message_ms: AtomicU64,
    /// Unix time in ms of the last line shipped to a topic file, kept with
    /// `data_timeout` (0 = none yet).
    last_data_ms: AtomicU64,
    /// `data_timeout` in seconds: data older than this is unhealthy.
    data_after_s: Option<f64>,
    /// Seconds after which a silent stream counts as stale (for the health verdict).
    stale_after_s: f64,
    /// The file the writer wrote last.
    current_file: Mutex<String>,
    /// The last error seen by any thread.
    last_error: Mutex<String>,
}

impl Stats {
    /// Fresh counters for a channel of `queue_capacity` messages.
    pub(crate) fn new(queue_capacity: usize, stale_after_s: f64) -> Stats {
        Stats {
            started: Instant::now(),
            started_unix: unix_ms() as f64 / 1000.0,
            counts: Default::default(),
            queue_depth: AtomicU64::new(0),
            queue_capacity: queue_capacity as u64,
            connected: AtomicBool::new(false),
            redundant: AtomicBool::new(false),
            line_connected: Default::default(),
            last_frame_ms: AtomicU64::new(0),
            last_message_ms: AtomicU64::new(0),
            last_data_ms: AtomicU64::new(0),
            data_after_s: None,
            stale_after_s,
            current_file: Mutex::new(String::new()),
            last_error: Mutex::new(String::new()),
        }
    }

    /// With `data_timeout`: data older than `secs` makes the status unhealthy.
    pub(crate) fn with_data_timeout(mut self, secs: Option<f64>) -> Stats {
        self.data_after_s = secs;
        self
    }

    /// A line reached a topic file at `ms` (kept with `data_timeout`).
    pub(crate) fn data_at(&self, ms: u64) {
        self.last_data_ms.store(ms, Relaxed);
    }

    /// Adds `n` to a counter; returns the value before.
    #[inline]
    pub(crate) fn add(&self, c: Count, n: u64) -> u64 {
        self.counts[c as usize].fetch_add(n, Relaxed)
    }

    /// A counter's value.
    pub(crate) fn get(&self, c: Count) -> u64 {
        self.counts[c as usize].load(Relaxed)
    }

    /// `n` messages entered the channel to the writer.
    #[inline]
    pub(crate) fn queue_in(&self, n: u64) {
        self.queue_depth.fetch_add(n, Relaxed);
    }

    /// `n` messages left the channel (written, or given up).
    #[inline]
    pub(crate) fn queue_out(&self, n: u64) {
        self.queue_depth.fetch_sub(n, Relaxed);
    }

    /// The reader holds an open connection, or no longer does.
    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Relaxed);
    }

    /// The recording runs two lines (`redundant`): the status shows each.
    pub(crate) fn set_redundant(&self) {
        self.redundant.store(true, Relaxed);
    }

    /// Redundant line `i` (0 = A) is connected or not.
    pub(crate) fn set_line_connected(&self, i: usize, connected: bool) {
        self.line_connected[i].store(connected, Relaxed);
    }

    /// A frame of any kind arrived at Unix time `ms`; `message` if one was accepted.
    pub(crate) fn received_at(&self, ms: u64, message: bool) {
        self.last_frame_ms.store(ms, Relaxed);
        if message {
            self.last_message_ms.store(ms, Relaxed);
        }
    }

    /// Remembers `err` as the last error.
    pub(crate) fn set_error(&self, err: impl Into<String>) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = err.into();
        }
    }

    /// Remembers the file written last.
    pub(crate) fn set_current_file(&self, path: &std::path::Path) {
        if let Ok(mut cur) = self.current_file.lock() {
            *cur = path.display().to_string();
        }
    }

    /// A consistent-enough copy of every figure.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let now_ms = unix_ms();
        let age = |ms: u64| (ms > 0).then(|| now_ms.saturating_sub(ms) as f64 / 1000.0);
        Snapshot {
            uptime_s: self.started.elapsed().as_secs_f64(),
            started_unix: self.started_unix,
            counts: std::array::from_fn(|i| self.counts[i].load(Relaxed)),
            connected: self.connected.load(Relaxed),
            lines: self
                .redundant
                .load(Relaxed)
                .then(|| std::array::from_fn(|i| self.line_connected[i].load(Relaxed))),
            queue_depth: self.queue_depth.load(Relaxed),
            queue_capacity: self.queue_capacity,
            last_frame_age_s: age(self.last_frame_ms.load(Relaxed)),
            last_message_age_s: age(self.last_message_ms.load(Relaxed)),
            last_data_age_s: age(self.last_data_ms.load(Relaxed)),
            data_after_s: self.data_after_s,
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
pub(crate) struct Snapshot {
    /// Seconds since start.
    pub(crate) uptime_s: f64,
    started_unix: f64,
    /// The counters, in the order of [`COUNTERS`].
    pub(crate) counts: [u64; COUNTERS.len()],
    /// Connected now.
    pub(crate) connected: bool,
    /// With `redundant`: whether each line is connected.
    pub(crate) lines: Option<[bool; 2]>,
    /// Messages waiting in the channel.
    pub(crate) queue_depth: u64,
    /// Channel capacity in messages.
    pub(crate) queue_capacity: u64,
    last_frame_age_s: Option<f64>,
    /// Seconds since the last accepted message.
    pub(crate) last_message_age_s: Option<f64>,
    /// Seconds since the last line reached a topic file (with `data_timeout`).
    pub(crate) last_data_age_s: Option<f64>,
    data_after_s: Option<f64>,
    stale_after_s: f64,
    current_file: String,
    last_error: String,
}

/// Formats like Go's `time.Duration.String()` rounded to seconds: `1h2m3s`, `12m34s`, `5s`.
fn go_duration(secs: u64) -> String {
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
    /// A counter's value.
    pub(crate) fn get(&self, c: Count) -> u64 {
        self.counts[c as usize]
    }

    /// A gauge's value, typed: the one place a gauge is read, for the JSON and the
    /// metrics alike.
    pub(crate) fn gauge_value(&self, g: Gauge) -> GaugeValue {
        match g {
            Gauge::Up => GaugeValue::Flag(true),
            Gauge::Uptime => GaugeValue::Secs(self.uptime_s),
            Gauge::Connected => GaugeValue::Flag(self.connected),
            Gauge::QueueDepth => GaugeValue::Count(self.queue_depth),
            Gauge::QueueCapacity => GaugeValue::Count(self.queue_capacity),
            Gauge::LastMessageAge => GaugeValue::Age(self.last_message_age_s, self.uptime_s),
            Gauge::LastDataAge => GaugeValue::Age(self.last_data_age_s, self.uptime_s),
            Gauge::LinesConnected => GaugeValue::Count(
                self.lines
                    .map_or(0, |l| l.iter().filter(|c| **c).count() as u64),
            ),
            Gauge::LineAConnected => GaugeValue::Flag(self.lines.is_some_and(|l| l[0])),
            Gauge::LineBConnected => GaugeValue::Flag(self.lines.is_some_and(|l| l[1])),
        }
    }

    /// A gauge's value as a Prometheus sample.
    pub(crate) fn gauge(&self, g: Gauge) -> f64 {
        self.gauge_value(g).sample()
    }

    fn rate_per_min(&self) -> f64 {
        if self.uptime_s > 0.0 {
            self.get(Count::Messages) as f64 / (self.uptime_s / 60.0)
        } else {
            0.0
        }
    }

    /// Connected, and a message arrived within `stale_timeout` (or none was due yet).
    /// Messages, not frames: a server that answers pings but delivers nothing is not
    /// healthy for someone who wants the data.
    pub(crate) fn healthy(&self) -> bool {
        let fresh = match self.last_message_age_s {
            Some(age) => age <= self.stale_after_s,
            None => self.uptime_s <= self.stale_after_s,
        };
        // With data_timeout, pongs and control messages are not enough: data must flow.
        let data = match self.data_after_s {
            None => true,
            Some(after) => self.last_data_age_s.unwrap_or(self.uptime_s) <= after,
        };
        self.connected && fresh && data
    }

    /// The Go streamer's status line: `Uptime: 12m34s | Total Msgs: 152340 | Rate: 7260.12 msg/min`.
    pub(crate) fn line(&self) -> String {
        format!(
            "Uptime: {} | Total Msgs: {} | Rate: {:.2} msg/min",
            go_duration(self.uptime_s.round() as u64),
            self.get(Count::Messages),
            self.rate_per_min()
        )
    }

    /// Every figure as one JSON object (with the status line).
    pub(crate) fn to_json(&self) -> Value {
        let mut v = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "started_unix": round3(self.started_unix),
            "rate_per_min": round3(self.rate_per_min()),
            "healthy": self.healthy(),
            "last_frame_age_s": self.last_frame_age_s.map(round3),
            "stale_timeout_s": self.stale_after_s,
            "data_timeout_s": self.data_after_s,
            "current_file": self.current_file,
            "last_error": self.last_error,
            "status_line": self.line(),
        });
        for d in &GAUGES {
            if let Some(key) = d.json {
                v[key] = self.gauge_value(d.gauge).json();
            }
        }
        for (d, n) in COUNTERS.iter().zip(self.counts) {
            match d.json.split_once('.') {
                Some((object, key)) => v[object][key] = json!(n),
                None => v[d.json] = json!(n),
            }
        }
        v["redundancy"] = json!(self.redundancy());
        if let Some(lines) = self.lines {
            v["line_a"]["connected"] = json!(lines[0]);
            v["line_b"]["connected"] = json!(lines[1]);
        }
        v
    }

    /// With `redundant`: `"full"` (both lines connected), `"degraded"` (one) or
    /// `"down"`; `None` without.
    pub(crate) fn redundancy(&self) -> Option<&'static str> {
        self.lines.map(|l| match l {
            [true, true] => "full",
            [false, false] => "down",
            _ => "degraded",
        })
    }
}

/// A gauge's value with its type, so that the JSON shows a flag as a boolean and an
/// age that has no start yet as `null`, while Prometheus gets a number for each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum GaugeValue {
    /// Yes or no: `true`/`false` in JSON, 1/0 as a metric.
    Flag(bool),
    /// A number of things.
    Count(u64),
    /// Seconds.
    Secs(f64),
    /// Seconds since something, if it happened; else the metric falls back to the
    /// second figure (the uptime) and the JSON says `null`.
    Age(Option<f64>, f64),
}

impl GaugeValue {
    /// As a Prometheus sample.
    fn sample(self) -> f64 {
        match self {
            GaugeValue::Flag(b) => b as u8 as f64,
            GaugeValue::Count(n) => n as f64,
            GaugeValue::Secs(s) => s,
            GaugeValue::Age(age, since_start) => age.unwrap_or(since_start),
        }
    }

    /// As a value in `--status --json`; seconds rounded to milliseconds.
    fn json(self) -> Value {
        match self {
            GaugeValue::Flag(b) => json!(b),
            GaugeValue::Count(n) => json!(n),
            GaugeValue::Secs(s) => json!(round3(s)),
            GaugeValue::Age(age, _) => json!(age.map(round3)),
        }
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
    fn go_streamer_line_format() {
        let s = Stats::new(10, 60.0);
        s.add(Count::Messages, 152_340);
        let line = s.snapshot().line();
        assert!(
            line.starts_with("Uptime: 0s | Total Msgs: 152340 | Rate: "),
            "{line}"
        );
        assert!(line.ends_with(" msg/min"), "{line}");
    }

    #[test]
    fn every_counter_appears_in_the_json_once() {
        let s = Stats::new(10, 60.0);
        for (i, c) in ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
            s.add(*c, 100 + i as u64);
        }
        let v = s.snapshot().to_json();
        for (i, d) in COUNTERS.iter().enumerate() {
            let got = match d.json.split_once('.') {
                Some((o, k)) => &v[o][k],
                None => &v[d.json],
            };
            assert_eq!(got, &json!(100 + i as u64), "{}", d.json);
        }
        assert_eq!(Count::RejectNotJson.name(), "not_json");
        for (i, d) in GAUGES.iter().enumerate() {
            assert_eq!(d.gauge as usize, i);
            if let Some(key) = d.json {
                assert!(v.get(key).is_some(), "gauge {key} missing from the JSON");
            }
        }
        assert_eq!(v["connected"], json!(false));
        assert_eq!(v["last_message_age_s"], Value::Null);
        assert_eq!(v["queue_capacity"], json!(10));
        assert_eq!(Count::WriteErrors.name(), "write_errors");
    }

    const ALL: [Count; 29] = [
        Count::Messages,
        Count::LinesWritten,
        Count::BytesWritten,
        Count::Connects,
        Count::Reconnects,
        Count::Attempts,
        Count::Dropped,
        Count::WriteErrors,
        Count::RejectBinary,
        Count::RejectEmpty,
        Count::RejectNotJson,
        Count::RejectInvalidUtf8,
        Count::RejectTooLarge,
        Count::OutputReopened,
        Count::LostAtShutdownLines,
        Count::LostAtShutdownBytes,
        Count::DataTimeouts,
        Count::PlannedReconnects,
        Count::Handovers,
        Count::HandoversFailed,
        Count::HandoverDuplicates,
        Count::ResumeDuplicates,
        Count::SequenceBreaks,
        Count::LineAMessages,
        Count::LineAFirstArrivals,
        Count::LineADuplicates,
        Count::LineBMessages,
        Count::LineBFirstArrivals,
        Count::LineBDuplicates,
    ];
}
