//! The coverage journal: `<output_dir>/coverage.jsonl`, one line when a connection
//! session is subscribed and one when it ends, so that a user can tell afterwards which
//! windows of time were recorded and which are gaps (`wsrec gaps`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::clock::unix_ms;
use crate::message::sequence::{Break, to_json};

/// Name of the journal in `output_dir`.
pub(crate) const FILE_NAME: &str = "coverage.jsonl";

/// One connection session (a span of coverage), as it is recorded in the journal (times in Unix ms).
#[derive(Debug, Clone, Default)]
pub(crate) struct Span {
    /// Handshake completed.
    pub(crate) connected_ms: u64,
    /// Subscribe message(s) sent.
    pub(crate) subscribed_ms: Option<u64>,
    /// First message accepted.
    pub(crate) first_msg_ms: Option<u64>,
    /// Last message accepted (as of the last read burst).
    pub(crate) last_msg_ms: Option<u64>,
    /// Messages accepted.
    pub(crate) messages: u64,
    /// End of the session.
    pub(crate) closed_ms: Option<u64>,
    /// Why it ended.
    pub(crate) why: String,
    /// With `data_timeout`: when data last reached a topic file, if it then stopped
    /// while the socket lived on (the session covers only up to here).
    pub(crate) data_until_ms: Option<u64>,
}

impl Span {
    /// A session connected now.
    pub(crate) fn start() -> Span {
        Span {
            connected_ms: unix_ms(),
            ..Span::default()
        }
    }

    /// The subscribe message went out now.
    pub(crate) fn subscribed(&mut self) {
        self.subscribed_ms = Some(unix_ms());
    }

    /// One message was accepted.
    #[inline]
    pub(crate) fn message(&mut self) {
        self.messages += 1;
        if self.first_msg_ms.is_none() {
            self.first_msg_ms = Some(unix_ms());
        }
    }

    /// Messages were accepted up to `ms`.
    pub(crate) fn seen_until(&mut self, ms: u64) {
        if self.messages > 0 {
            self.last_msg_ms = Some(ms);
        }
    }

    /// Data stopped flowing after `last` (Unix ms; `None`: it never flowed).
    pub(crate) fn data_until(&mut self, last: Option<u64>) {
        self.data_until_ms = Some(last.unwrap_or(self.subscribed_ms.unwrap_or(self.connected_ms)));
    }

    /// The session ended now, for `why`.
    pub(crate) fn close(&mut self, why: &str) {
        let now = unix_ms();
        self.closed_ms = Some(now);
        if self.messages > 0 && self.last_msg_ms.is_none() {
            self.last_msg_ms = Some(now);
        }
        self.why = why.to_string();
    }

    fn to_json(&self, event: &str) -> serde_json::Value {
        json!({
            "event": event,
            "at_ms": unix_ms(),
            "pid": std::process::id(),
            "connected_ms": self.connected_ms,
            "subscribed_ms": self.subscribed_ms,
            "first_msg_ms": self.first_msg_ms,
            "last_msg_ms": self.last_msg_ms,
            "messages": self.messages,
            "closed_ms": self.closed_ms,
            "why": self.why,
            "data_until_ms": self.data_until_ms,
        })
    }
}

/// One handover, as the journal records it (times in Unix ms).
#[derive(Debug, Clone, Default)]
pub(crate) struct Handover {
    /// The old connection's session (its `connected_ms`).
    pub(crate) old_connected_ms: u64,
    /// The new connection's session.
    pub(crate) new_connected_ms: u64,
    /// When the new connection was subscribed: the overlap starts here.
    pub(crate) new_subscribed_ms: u64,
    /// When the old connection stopped delivering.
    pub(crate) handover_ms: u64,
    /// Whether both delivered a common message (a clean handover, no gap).
    pub(crate) joined: bool,
    /// What decided the moment.
    pub(crate) why: String,
    /// Messages both delivered, written once.
    pub(crate) duplicates: u64,
    /// Without a common message: from the old connection's last message to the new
    /// one's first (0 when they overlap in time).
    pub(crate) gap_ms: u64,
}

/// The open journal.
pub(crate) struct Coverage {
    file: Option<File>,
    /// Interval of "progress" lines.
    every: Duration,
    /// When the next "progress" line is due.
    next_progress: Instant,
    /// With `redundant`: the line whose sessions these are (`"line"` in each line).
    line: Option<&'static str>,
}

impl Coverage {
    /// Opens (appends to) the journal in `dir`, with a "progress" line every `every`
    /// while connected; a failure is logged and the journal skipped.
    pub(crate) fn new(dir: &Path, every: Duration) -> Coverage {
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new().create(true).append(true).open(&path);
        if let Err(e) = &file {
            log::error!("coverage journal {}: {e}", path.display());
        }
        Coverage {
            file: file.ok(),
            every,
            next_progress: Instant::now() + every,
            line: None,
        }
    }

    /// The journal of one redundant line: each of its lines names it.
    pub(crate) fn for_line(mut self, line: &'static str) -> Coverage {
        self.line = Some(line);
        self
    }

    /// Appends the session's "open" line (after subscribing).
    pub(crate) fn opened(&mut self, s: &Span) {
        self.next_progress = Instant::now() + self.every;
        self.append(&s.to_json("open"));
    }

    /// Appends a "progress" line when one is due: after a crash (no "close" line) the
    /// session counts as covered up to its last progress line.
    pub(crate) fn tick(&mut self, s: &Span, now: Instant) {
        if now >= self.next_progress {
            self.next_progress = now + self.every;
            self.append(&s.to_json("progress"));
        }
    }

    /// Appends the session's "close" line with every figure.
    pub(crate) fn record(&mut self, s: &Span) {
        self.append(&s.to_json("close"));
    }

    /// Appends a "handover" line: one connection replaced another (make-before-break).
    pub(crate) fn handover(&mut self, h: &Handover) {
        self.append(&json!({
            "event": "handover",
            "at_ms": unix_ms(),
            "pid": std::process::id(),
            "old_connected_ms": h.old_connected_ms,
            "new_connected_ms": h.new_connected_ms,
            "new_subscribed_ms": h.new_subscribed_ms,
            "handover_ms": h.handover_ms,
            "overlap_ms": h.handover_ms.saturating_sub(h.new_subscribed_ms),
            "joined": h.joined,
            "why": h.why,
            "duplicates_removed": h.duplicates,
            "gap_ms": h.gap_ms,
        }));
    }

    /// Appends a "sequence_gap" line: a message of `topic` did not follow the last
    /// (`sequence`), stated in the venue's numbers.
    pub(crate) fn sequence_break(&mut self, b: &Break, topic: &str) {
        self.append(&json!({
            "event": "sequence_gap",
            "at_ms": b.at_ms,
            "pid": std::process::id(),
            "topic": topic,
            "last": to_json(b.last),
            "next": to_json(b.next),
            "prev": b.prev.map(to_json),
            "last_ms": b.last_ms,
        }));
    }

    fn append(&mut self, v: &serde_json::Value) {
        let mut v = v.clone();
        if let Some(l) = self.line {
            v["line"] = json!(l);
        }
        if let Some(f) = self.file.as_mut() {
            let mut line = v.to_string();
            line.push('\n');
            if let Err(e) = f.write_all(line.as_bytes()) {
                log::warn!("coverage journal: {e}");
            }
        }
    }
}
