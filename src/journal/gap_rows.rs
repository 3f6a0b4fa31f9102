//! `wsrec gaps --json` / `--csv`: the gaps as machine-readable rows, one per gap, for
//! an analysis to join or mask (docs/analysis.md).
//!
//! JSON is one object per line (JSON Lines, as the recorder's own files): DuckDB's
//! `read_json`, polars' `read_ndjson`, pandas' `read_json(lines=True)` and `jq` read it
//! as it is, and it streams. CSV has a header line and the same columns.

use std::fmt::Write as _;

/// What kind of hole a gap is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// No connection session covered the time (disconnected, not running).
    Connection,
    /// A topic's sequence numbers broke (`sequence`): messages between its last
    /// number and the next are missing, though a connection was recording.
    Sequence,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Connection => "connection",
            Kind::Sequence => "sequence",
        }
    }
}

/// One gap: `[start_ms, end_ms)` in Unix ms, its kind, and the topic it belongs to
/// (`None` when it concerns every topic, as a connection gap does); a sequence gap
/// has the venue's numbers on either side (as JSON text: a number, or a string when
/// it is too big for 64 bits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row<'a> {
    pub(crate) start_ms: u64,
    pub(crate) end_ms: u64,
    pub(crate) kind: Kind,
    pub(crate) topic: Option<&'a str>,
    /// The last number before the gap and the next after it.
    pub(crate) numbers: Option<(&'a str, &'a str)>,
}

/// The column names, in order, of both formats.
pub(crate) const COLUMNS: [&str; 9] = [
    "start", "end", "seconds", "kind", "topic", "start_ms", "end_ms", "last", "next",
];

impl Row<'_> {
    fn seconds(&self) -> String {
        format!("{:.3}", (self.end_ms - self.start_ms) as f64 / 1000.0)
    }

    /// One JSON object (no newline), keys in the order of [`COLUMNS`].
    pub(crate) fn json(&self, fmt_ms: impl Fn(u64) -> String) -> String {
        let topic = match self.topic {
            Some(t) => serde_json::Value::from(t).to_string(),
            None => "null".into(),
        };
        let (last, next) = self.numbers.unwrap_or(("null", "null"));
        let mut s = String::with_capacity(180);
        let _ = write!(
            s,
            "{{\"start\":\"{}\",\"end\":\"{}\",\"seconds\":{},\"kind\":\"{}\",\"topic\":{topic},\"start_ms\":{},\"end_ms\":{},\"last\":{last},\"next\":{next}}}",
            fmt_ms(self.start_ms),
            fmt_ms(self.end_ms),
            self.seconds(),
            self.kind.as_str(),
            self.start_ms,
            self.end_ms
        );
        s
    }

    /// One CSV record (no newline); an empty topic field means none.
    pub(crate) fn csv(&self, fmt_ms: impl Fn(u64) -> String) -> String {
        let topic = self.topic.map(csv_field).unwrap_or_default();
        let (last, next) = self
            .numbers
            .map(|(l, n)| (l.trim_matches('"'), n.trim_matches('"')))
            .unwrap_or_default();
        format!(
            "{},{},{},{},{topic},{},{},{last},{next}",
            fmt_ms(self.start_ms),
            fmt_ms(self.end_ms),
            self.seconds(),
            self.kind.as_str(),
            self.start_ms,
            self.end_ms
        )
    }
}

/// RFC 4180 quoting, only where needed.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_in_both_formats() {
        let f = |ms: u64| format!("T{ms}");
        let r = Row {
            start_ms: 1000,
            end_ms: 3500,
            kind: Kind::Connection,
            topic: None,
            numbers: None,
        };
        assert_eq!(
            r.json(f),
            r#"{"start":"T1000","end":"T3500","seconds":2.500,"kind":"connection","topic":null,"start_ms":1000,"end_ms":3500,"last":null,"next":null}"#
        );
        assert_eq!(r.csv(f), "T1000,T3500,2.500,connection,,1000,3500,,");
        let q = Row {
            kind: Kind::Sequence,
            topic: Some("book"),
            numbers: Some(("17", "\"18446744073709551617\"")),
            ..r.clone()
        };
        let v: serde_json::Value = serde_json::from_str(&q.json(f)).unwrap();
        assert_eq!(
            (v["kind"].as_str(), v["last"].as_u64()),
            (Some("sequence"), Some(17))
        );
        assert_eq!(v["next"], "18446744073709551617");
        assert_eq!(
            q.csv(f),
            "T1000,T3500,2.500,sequence,book,1000,3500,17,18446744073709551617"
        );
        let t = Row {
            topic: Some("a,\"b\"/東京"),
            ..r
        };
        let v: serde_json::Value = serde_json::from_str(&t.json(f)).unwrap();
        assert_eq!(v["topic"], "a,\"b\"/東京");
        assert_eq!(
            t.csv(f),
            "T1000,T3500,2.500,connection,\"a,\"\"b\"\"/東京\",1000,3500,,"
        );
        assert_eq!(
            COLUMNS.join(","),
            "start,end,seconds,kind,topic,start_ms,end_ms,last,next"
        );
    }
}
