//! The config fields of the mechanisms that avoid gaps and state them: the data
//! timeout, planned reconnects (notices, connection age), the make-before-break
//! handover with its de-duplication, resume by cursor and the sequence checks. Each mechanism parses its own value; this file
//! only declares the fields.

use std::time::Duration;

use super::ConfigError;
use super::fields::Fields;
use super::url::{WsUrl, parse_ws_url};
use crate::message::cursor::{self, CursorSpec};
use crate::message::dedupe::{self, DedupeBy};
use crate::message::reconnect_on::{self, NoticeSpec};
use crate::message::sequence::{self, SequenceSpec};
use crate::reader::plan::{self, ConnectionAge};

/// What the gap-avoiding mechanisms are configured to do.
#[derive(Debug, Clone, Default)]
pub(crate) struct Continuity {
    /// Reconnect when no message reached a topic file for this long; `None` = never.
    pub(crate) data_timeout: Option<Duration>,
    /// Messages that announce a close: each starts a planned reconnect.
    pub(crate) reconnect_on: Vec<NoticeSpec>,
    /// Renew each connection by this clock.
    pub(crate) max_connection_age: Option<ConnectionAge>,
    /// Longest a handover waits for the new connection to deliver a message the old
    /// one delivered.
    pub(crate) handover_overlap: Duration,
    /// What makes two messages the same across connections.
    pub(crate) dedupe_by: DedupeBy,
    /// Resume by cursor: the pointer, rewind and initial value of `{cursor}`.
    pub(crate) cursor: Option<CursorSpec>,
    /// The sequence rules per topic.
    pub(crate) sequence: SequenceSpec,
    /// Two connections at once (lines A and B), first arrival wins; `None` = one.
    pub(crate) redundant: Option<Redundant>,
}

/// `redundant: true`: the second line.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redundant {
    /// Line B's URL (`ws_url_b`); `None` = the same as line A's.
    pub(crate) ws_url_b: Option<WsUrl>,
}

impl Continuity {
    /// Whether anything plans reconnects (then a handover may run).
    pub(crate) fn plans(&self) -> bool {
        !self.reconnect_on.is_empty() || self.max_connection_age.is_some()
    }
}

/// Declares and takes the fields.
pub(super) fn declare(f: &mut Fields, topics: &[String]) -> Result<Continuity, ConfigError> {
    let data_timeout = f.seconds(
        "data_timeout",
        0.0,
        0.0..=86_400.0,
        "reconnect and resubscribe when no message reached a topic file for this many seconds while the socket is otherwise alive (pongs and heartbeats do not count); `0` = off",
    )?;
    let reconnect_on = match f.take(
        "reconnect_on",
        "rules for messages that announce a close (`{\"has\": [pointers], \"equals\": {pointer: value}}`, as in `heartbeat_replies`): a match starts a planned, make-before-break reconnect",
    ) {
        None => Vec::new(),
        Some(v) => reconnect_on::parse(v).map_err(|e| f.err("reconnect_on", e))?,
    };
    let jitter = f.seconds(
        "connection_age_jitter",
        0.0,
        0.0..=86_400.0,
        "the planned renewal of `max_connection_age` comes at a random point up to this many seconds early",
    )?;
    let max_connection_age = match f.take(
        "max_connection_age",
        "renew each connection (make-before-break) this many seconds after it opened, or daily at `\"HH:MM\"` UTC; `0` = never",
    ) {
        None => None,
        Some(v) => plan::parse(v, jitter).map_err(|e| f.err("max_connection_age", e))?,
    };
    let handover_overlap = f.seconds(
        "handover_overlap",
        5.0,
        0.1..=600.0,
        "longest a planned reconnect keeps the old connection once the new one is subscribed, waiting for a message both delivered; then it hands over anyway",
    )?;
    let dedupe_by = match f.take(
        "dedupe_by",
        "what makes two messages the same across connections: JSON pointers (an array for every topic, or an object of topic or `\"*\"` -> array); default the message bytes",
    ) {
        None => DedupeBy::default(),
        Some(v) => dedupe::parse(v, topics).map_err(|e| f.err("dedupe_by", e))?,
    };
    let cursor = match f.take(
        "cursor",
        "resume by cursor: `{\"at\": pointer, \"rewind\": n, \"unit\": \"s\", \"ms\", \"us\" or \"ns\", \"initial\": n or \"now\"}`; `{cursor}` in `ws_url` or a subscribe message becomes the newest value recorded at the pointer minus `rewind` (kept in `cursor.json` in output_dir across restarts), and data messages are written once by their `dedupe_by` key",
    ) {
        None => None,
        Some(v) => Some(cursor::parse(v).map_err(|e| f.err("cursor", e))?),
    };
    let sequence = match f.take(
        "sequence",
        "sequence checks per topic (or `\"*\"`): `{\"at\": pointer, \"prev\": pointer}` (a chained sequence) or `{\"at\": pointer, \"step\": n}` (contiguous numbers), with optional `\"reset_when\": [patterns]`; a message that does not follow is a sequence gap in the coverage journal",
    ) {
        None => SequenceSpec::default(),
        Some(v) => sequence::parse(v, topics).map_err(|e| f.err("sequence", e))?,
    };
    let redundant = f.bool(
        "redundant",
        false,
        "keep two connections (lines A and B) to the same streams at once, each with its own reader thread, back-off and keep-alive; each message is written once, from the line it arrives on first (keyed by `dedupe_by`), and a gap is only where both lines missed it",
    )?;
    let url_b = f.string(
        "ws_url_b",
        "",
        "with `redundant`: line B's URL (another host of the venue, so that the two lines do not fail together); empty = the same as line A's; unused without `redundant`",
    )?;
    // Checked even without `redundant`: a preset carries it for the user to turn on.
    let ws_url_b = if url_b.is_empty() {
        None
    } else {
        Some(parse_ws_url(&url_b).map_err(|e| f.err("ws_url_b", e))?)
    };
    Ok(Continuity {
        redundant: redundant.then_some(Redundant { ws_url_b }),
        data_timeout: (data_timeout > 0.0).then(|| Duration::from_secs_f64(data_timeout)),
        reconnect_on,
        max_connection_age,
        handover_overlap: Duration::from_secs_f64(handover_overlap),
        dedupe_by,
        cursor,
        sequence,
    })
}
