//! Resume by cursor (`cursor`): the newest value recorded at a pointer (Jetstream's
//! `time_us`, a Nostr event's `created_at`), filled into `{cursor}` in `ws_url` or a
//! subscribe message at every connect, rewound a little, so that a reconnect or a
//! restart asks the venue to replay what it missed. The replayed overlap is removed by
//! the de-duplication a cursor turns on (`dedupe_by` keys, first arrival wins).
//!
//! The value is kept in `<output_dir>/cursor.json` across restarts: written atomically
//! (a temporary file, then a rename) at most every [`SAVE_EVERY`], and when the
//! recorder stops. Without a saved value, `{cursor}` takes `initial`; with no
//! `initial` either, the query parameter that holds `{cursor}` is left out of the URL
//! (Jetstream then tails live).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::jsonline::Pointers;
use crate::config::kind;

/// The placeholder.
pub(crate) const PLACEHOLDER: &str = "{cursor}";
/// Name of the state file in `output_dir`.
pub(crate) const FILE_NAME: &str = "cursor.json";
/// Longest time between two saves of the value while recording.
pub(crate) const SAVE_EVERY: Duration = Duration::from_secs(2);

/// The unit of a time-valued cursor (for `initial: "now"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

/// What `{cursor}` is before any value was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Initial {
    /// This number.
    Value(i128),
    /// The current time in the cursor's unit.
    Now,
}

/// `cursor` as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CursorSpec {
    /// Where each data message has its value.
    pub(crate) at: String,
    /// Subtracted from the newest value when it is filled in (the venue's units).
    pub(crate) rewind: i128,
    /// The value before any was recorded; `None`: none (left out of the URL).
    pub(crate) initial: Option<Initial>,
    /// The unit, when the value is a time.
    pub(crate) unit: Option<Unit>,
}

/// Parses `cursor`.
pub(crate) fn parse(v: Value) -> Result<CursorSpec, String> {
    let Value::Object(mut m) = v else {
        return Err(format!("expected an object, got {}", kind(&v)));
    };
    let at = match m.remove("at") {
        Some(Value::String(s)) => {
            Pointers::default()
                .add(&s)
                .map_err(|e| format!("\"at\": {e}"))?;
            s
        }
        _ => return Err("\"at\": the pointer to the value (a string) is missing".into()),
    };
    let int = |m: &mut Map<String, Value>, k: &str| -> Result<Option<i128>, String> {
        match m.remove(k) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64().map(i128::from)),
            Some(v) => Err(format!("\"{k}\": expected an integer, got {v}")),
        }
    };
    let rewind = int(&mut m, "rewind")?.unwrap_or(0);
    if rewind < 0 {
        return Err("\"rewind\" must be 0 or more".into());
    }
    let unit = match m.remove("unit") {
        None => None,
        Some(Value::String(u)) => Some(match u.as_str() {
            "s" => Unit::Seconds,
            "ms" => Unit::Millis,
            "us" => Unit::Micros,
            "ns" => Unit::Nanos,
            _ => return Err(format!("\"unit\": \"{u}\" is not s, ms, us or ns")),
        }),
        Some(v) => return Err(format!("\"unit\": expected a string, got {}", kind(&v))),
    };
    let initial = match m.remove("initial") {
        None => None,
        Some(Value::String(s)) if s == "now" => {
            if unit.is_none() {
                return Err("\"initial\": \"now\" needs \"unit\" (s, ms, us or ns)".into());
            }
            Some(Initial::Now)
        }
        Some(Value::Number(n)) if n.as_i64().is_some() => {
            n.as_i64().map(|n| Initial::Value(n.into()))
        }
        Some(v) => {
            return Err(format!(
                "\"initial\": expected an integer or \"now\", got {v}"
            ));
        }
    };
    if let Some(k) = m.keys().next() {
        return Err(format!(
            "unknown key \"{k}\" (known: at, rewind, unit, initial)"
        ));
    }
    Ok(CursorSpec {
        at,
        rewind,
        initial,
        unit,
    })
}

impl CursorSpec {
    /// The text `{cursor}` becomes when `newest` is the newest value recorded. A
    /// time (`unit` given) is never later than now: one message stamped in the future
    /// (a Nostr author's clock) must not make the resume skip what comes meanwhile.
    pub(crate) fn fill(&self, newest: Option<i128>) -> Option<String> {
        let now = self.unit.map(|u| {
            let now = crate::clock::now();
            match u {
                Unit::Seconds => i128::from(now.as_secs()),
                Unit::Millis => now.as_millis() as i128,
                Unit::Micros => now.as_micros() as i128,
                Unit::Nanos => now.as_nanos() as i128,
            }
        });
        let v = match (newest, self.initial) {
            (Some(n), _) => now.map_or(n, |t| n.min(t)) - self.rewind,
            (None, Some(Initial::Value(v))) => v,
            (None, Some(Initial::Now)) => now?,
            (None, None) => return None,
        };
        Some(v.to_string())
    }
}

/// `url` with `{cursor}` filled in; with no value, the query parameter that holds it
/// is left out (and the `?` when no other is left).
pub(crate) fn fill_url(url: &str, value: Option<&str>) -> String {
    if let Some(v) = value {
        return url.replace(PLACEHOLDER, v);
    }
    let Some((base, query)) = url.split_once('?') else {
        return url.replace(PLACEHOLDER, "");
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.contains(PLACEHOLDER))
        .collect();
    let mut out = base.replace(PLACEHOLDER, "");
    if !kept.is_empty() && kept != [""] {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// The state file: the newest value, saved now and then.
#[derive(Debug)]
pub(crate) struct CursorFile {
    path: PathBuf,
    /// Its temporary file, one per writer: with `redundant` both lines save the
    /// cursor, and a shared temporary file could be renamed while the other writes it.
    tmp: PathBuf,
    at: String,
    saved: Option<i128>,
    next: Instant,
}

impl CursorFile {
    /// The state file of `spec` in `dir`, and the value it holds (none if it is
    /// missing, unreadable, or was saved for another pointer: logged).
    pub(crate) fn open(dir: &Path, spec: &CursorSpec) -> (CursorFile, Option<i128>) {
        let path = dir.join(FILE_NAME);
        let value = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                log::warn!("cursor {}: {e}; starting without one", path.display());
                None
            }
            Ok(bytes) => {
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let value = match &v["value"] {
                    Value::Number(n) => super::sequence::parse_int(n.to_string().as_bytes()),
                    Value::String(s) => super::sequence::parse_int(s.as_bytes()),
                    _ => None,
                };
                if v["at"] != spec.at.as_str() || value.is_none() {
                    log::warn!(
                        "cursor {}: not a value saved for \"at\": \"{}\"; starting without one",
                        path.display(),
                        spec.at
                    );
                    None
                } else {
                    value
                }
            }
        };
        static WRITERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = WRITERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = CursorFile {
            tmp: path.with_extension(format!("json.tmp{n}")),
            path,
            at: spec.at.clone(),
            saved: value,
            next: Instant::now() + SAVE_EVERY,
        };
        (file, value)
    }

    /// Saves `value` if it changed and a save is due.
    pub(crate) fn tick(&mut self, value: Option<i128>, now: Instant) {
        if now >= self.next {
            self.next = now + SAVE_EVERY;
            self.save(value);
        }
    }

    /// Saves `value` now if it changed: a temporary file renamed over the old one, so
    /// that a crash leaves the old value or the new, never half of one.
    pub(crate) fn save(&mut self, value: Option<i128>) {
        let Some(v) = value else { return };
        if self.saved == Some(v) {
            return;
        }
        let text = json!({
            "at": self.at,
            "value": super::sequence::to_json(v),
            "saved_ms": crate::clock::unix_ms(),
        })
        .to_string();
        match std::fs::write(&self.tmp, text + "\n")
            .and_then(|()| std::fs::rename(&self.tmp, &self.path))
        {
            Ok(()) => self.saved = Some(v),
            Err(e) => log::warn!("cursor {}: {e}", self.path.display()),
        }
    }
}

/// How much of the newest files a start reads back for the keys of what was
/// recorded last.
const SEED_BYTES: u64 = 8 << 20;

/// The data messages recorded last, oldest first: the complete lines at the end of the
/// newest one or two uncompressed files of each of `prefixes` in `dir` (up to
/// [`SEED_BYTES`] each), the message taken out of a timestamped line. A restart keys
/// them, so that the replay of a resume is written once across restarts too: the
/// files, not memory, say what was recorded.
pub(crate) fn recorded_tail(dir: &Path, prefixes: &[String]) -> Vec<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let (prefix, period) = name.strip_suffix(".jsonl")?.rsplit_once('_')?;
            let period = period.parse().ok()?;
            prefixes
                .iter()
                .any(|p| p == prefix)
                .then(|| (prefix.to_string(), period, e.path()))
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for prefix in prefixes {
        let mine: Vec<&PathBuf> = files
            .iter()
            .filter(|(p, _, _)| p == prefix)
            .map(|(_, _, path)| path)
            .collect();
        for path in &mine[mine.len().saturating_sub(2)..] {
            let Ok(mut f) = std::fs::File::open(path) else {
                continue;
            };
            let len = f.metadata().map_or(0, |m| m.len());
            let start = len.saturating_sub(SEED_BYTES);
            let mut buf = Vec::new();
            if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut buf).is_err() {
                continue;
            }
            // From the first line start (unless at the file's start) to the last newline.
            let from = if start == 0 {
                0
            } else {
                buf.iter()
                    .position(|&b| b == b'\n')
                    .map_or(buf.len(), |i| i + 1)
            };
            let to = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if from >= to {
                continue;
            }
            out.extend(
                buf[from..to]
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|line| match line.strip_prefix(b"{\"recv_ns\":") {
                        Some(rest) => {
                            let at = rest.windows(7).position(|w| w == b",\"msg\":");
                            match (at, rest.last()) {
                                (Some(i), Some(b'}')) => rest[i + 7..rest.len() - 1].to_vec(),
                                _ => line.to_vec(),
                            }
                        }
                        None => line.to_vec(),
                    }),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_and_without_a_value() {
        let u = "wss://h/subscribe?wantedCollections=a&cursor={cursor}&x=1";
        assert_eq!(
            fill_url(u, Some("17")),
            "wss://h/subscribe?wantedCollections=a&cursor=17&x=1"
        );
        assert_eq!(
            fill_url(u, None),
            "wss://h/subscribe?wantedCollections=a&x=1"
        );
        assert_eq!(fill_url("ws://h/s?cursor={cursor}", None), "ws://h/s");
        assert_eq!(fill_url("ws://h/s?c={cursor}#f", None), "ws://h/s#f");
    }

    #[test]
    fn specs_fill_and_the_file_keeps_the_value() {
        let s = parse(json!({"at": "/time_us", "rewind": 5_000_000})).unwrap();
        assert_eq!(s.fill(None), None);
        assert_eq!(
            s.fill(Some(1_700_000_005_000_000)).as_deref(),
            Some("1700000000000000")
        );
        let n = parse(json!({"at": "/2/created_at", "rewind": 10, "unit": "s", "initial": "now"}))
            .unwrap();
        let now: u64 = n.fill(None).unwrap().parse().unwrap();
        assert!(now.abs_diff(crate::clock::now().as_secs()) <= 1);
        // A value from the future counts as now.
        let later: u64 = n.fill(Some(i128::MAX / 2)).unwrap().parse().unwrap();
        assert!(later.abs_diff(crate::clock::now().as_secs() - 10) <= 1);
        assert!(parse(json!({"at": "/t", "initial": "now"})).is_err());
        assert!(parse(json!({"at": "t"})).is_err());
        assert!(parse(json!({"at": "/t", "rewind": -1})).is_err());
        assert!(parse(json!({"at": "/t", "bogus": 1})).is_err());

        let dir = std::env::temp_dir().join(format!("wsrec-cursor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (mut f, v) = CursorFile::open(&dir, &s);
        assert_eq!(v, None);
        f.save(Some(1 << 80));
        let (_, v) = CursorFile::open(&dir, &s);
        assert_eq!(v, Some(1 << 80));
        // Saved for another pointer: not used.
        let other = parse(json!({"at": "/other"})).unwrap();
        assert_eq!(CursorFile::open(&dir, &other).1, None);
        // The tail of the newest two files of each topic, messages out of
        // timestamped lines, a torn last line left out.
        std::fs::write(dir.join("t_0.jsonl"), "{\"a\":0}\n").unwrap();
        std::fs::write(dir.join("t_3600.jsonl"), "{\"a\":1}\n").unwrap();
        std::fs::write(
            dir.join("t_7200.jsonl"),
            "{\"recv_ns\":5,\"msg\":{\"a\":2}}\n{\"a\":3}\n{\"a\":",
        )
        .unwrap();
        std::fs::write(dir.join("t_7200.jsonl.zst"), "x").unwrap();
        std::fs::write(dir.join("u_7200.jsonl"), "{\"b\":1}\n").unwrap();
        let got = recorded_tail(&dir, &["t".to_string()]);
        let got: Vec<&str> = got
            .iter()
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect();
        assert_eq!(got, ["{\"a\":1}", "{\"a\":2}", "{\"a\":3}"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
