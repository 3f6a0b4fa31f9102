//! Sequence checks (`sequence`): per topic, the venue's number of each message and
//! what it says about the one before: a pointer to the previous number (a chained
//! sequence: OKX `prevSeqId`, Binance futures `pu`, Deribit `prev_change_id`) or a
//! step (contiguous ids: Bybit `u`). A message that does not follow is a break: a gap
//! in the venue's terms (topic, last number, next number, time), which the reader
//! writes to the coverage journal and counts.
//!
//! Config: an object from topic (or `"*"` for every other topic) to a rule
//! `{"at": pointer, "prev": pointer, "step": n, "reset_when": [patterns]}`:
//! - `at`: the message's number.
//! - `prev` (optional): the number the message says came before; it must equal the
//!   last `at` plus `step` (default 0 with `prev`). Without `prev`, `at` itself must
//!   equal the last `at` plus `step` (default 1).
//! - `reset_when` (optional): `has`/`equals` patterns (as in `heartbeat_replies`) of a
//!   documented restart of the numbering (Bybit's `type` = `snapshot`); such a message
//!   starts the chain again and is not a break. A message with `at` but no `prev`
//!   value does too (Deribit's first book notification has no `prev_change_id`).
//!
//! Numbers are the integers written at the pointers (a number or a string of digits),
//! compared as `i128`, never through `f64`. A message without a number at `at` is not
//! checked. Only kept data messages are checked, after routing. The expectation is
//! per connection: the first message of a new connection is not compared with the
//! last of the one before (the time between is a connection gap already).

use std::ops::Range;

use serde_json::{Map, Value};

use super::heartbeat::{Pattern, PatternSpec};
use super::jsonline::{Pointers, unquoted};
use crate::config::kind;

/// One topic's rule as configured, pointers not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleSpec {
    at: String,
    prev: Option<String>,
    step: i128,
    reset_when: Vec<PatternSpec>,
}

/// `sequence` as configured: a rule for every topic without its own (`"*"`), and
/// rules for named topics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SequenceSpec {
    all: Option<RuleSpec>,
    topics: Vec<(String, RuleSpec)>,
}

/// Parses `sequence` for `topics`.
pub(crate) fn parse(v: Value, topics: &[String]) -> Result<SequenceSpec, String> {
    let Value::Object(m) = v else {
        return Err(format!(
            "expected an object of topic (or \"*\") -> rule, got {}",
            kind(&v)
        ));
    };
    let mut spec = SequenceSpec::default();
    for (topic, rule) in m {
        let rule = parse_rule(rule).map_err(|e| format!("\"{topic}\": {e}"))?;
        if topic == "*" {
            spec.all = Some(rule);
        } else if topics.contains(&topic) {
            spec.topics.push((topic, rule));
        } else {
            return Err(format!(
                "\"{topic}\" is not one of the topics (or \"*\" for all)"
            ));
        }
    }
    Ok(spec)
}

fn parse_rule(v: Value) -> Result<RuleSpec, String> {
    let Value::Object(mut r) = v else {
        return Err(format!("expected a rule object, got {}", kind(&v)));
    };
    let pointer = |r: &mut Map<String, Value>, key: &str| -> Result<Option<String>, String> {
        match r.remove(key) {
            None => Ok(None),
            Some(Value::String(s)) => {
                Pointers::default()
                    .add(&s)
                    .map_err(|e| format!("\"{key}\": {e}"))?;
                Ok(Some(s))
            }
            Some(v) => Err(format!("\"{key}\": expected a pointer, got {}", kind(&v))),
        }
    };
    let at = pointer(&mut r, "at")?.ok_or("\"at\" (the pointer to the number) is missing")?;
    let prev = pointer(&mut r, "prev")?;
    let step = match r.remove("step") {
        None => i128::from(prev.is_none()),
        Some(Value::Number(n)) if n.as_i64().is_some() => i128::from(n.as_i64().unwrap_or(0)),
        Some(v) => return Err(format!("\"step\": expected an integer, got {v}")),
    };
    if prev.is_none() && step == 0 {
        return Err("\"step\" 0 without \"prev\" would make every number the same".into());
    }
    let reset_when = match r.remove("reset_when") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(n, p)| match p {
                Value::Object(mut o) => {
                    let p =
                        PatternSpec::take(&mut o).map_err(|e| format!("reset_when {n}: {e}"))?;
                    match o.keys().next() {
                        Some(k) => Err(format!("reset_when {n}: unknown key \"{k}\"")),
                        None => Ok(p),
                    }
                }
                v => Err(format!(
                    "reset_when {n}: expected a pattern, got {}",
                    kind(&v)
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(format!(
                "\"reset_when\": expected an array, got {}",
                kind(&v)
            ));
        }
    };
    if let Some(k) = r.keys().next() {
        return Err(format!(
            "unknown key \"{k}\" (known: at, prev, step, reset_when)"
        ));
    }
    Ok(RuleSpec {
        at,
        prev,
        step,
        reset_when,
    })
}

/// A rule resolved against the check's pointers.
#[derive(Debug, Clone)]
struct Rule {
    at: usize,
    prev: Option<usize>,
    step: i128,
    reset_when: Vec<Pattern>,
}

/// The rules per topic index, resolved once when the config is loaded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sequences {
    /// Rule of each topic (by index); empty = no checks.
    rules: Vec<Option<Rule>>,
}

impl Sequences {
    /// Resolves `spec` for `topics`, adding its pointers to `ptrs`.
    pub(crate) fn new(
        spec: &SequenceSpec,
        topics: &[String],
        ptrs: &mut Pointers,
    ) -> Result<Sequences, String> {
        if spec.all.is_none() && spec.topics.is_empty() {
            return Ok(Sequences::default());
        }
        let mut resolve = |r: &RuleSpec| -> Result<Rule, String> {
            Ok(Rule {
                at: ptrs.add(&r.at)?,
                prev: r.prev.as_deref().map(|p| ptrs.add(p)).transpose()?,
                step: r.step,
                reset_when: r
                    .reset_when
                    .iter()
                    .map(|p| p.resolve(ptrs))
                    .collect::<Result<_, _>>()?,
            })
        };
        let all = spec.all.as_ref().map(&mut resolve).transpose()?;
        let rules = topics
            .iter()
            .map(|t| match spec.topics.iter().find(|(name, _)| name == t) {
                Some((_, r)) => resolve(r).map(Some),
                None => Ok(all.clone()),
            })
            .collect::<Result<_, String>>()?;
        Ok(Sequences { rules })
    }

    /// Whether no topic has a rule.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// A message that did not follow the one before in its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Break {
    /// Topic index.
    pub(crate) topic: usize,
    /// The last number of the topic.
    pub(crate) last: i128,
    /// The number of the message that broke the sequence.
    pub(crate) next: i128,
    /// The previous number it named (a chained sequence).
    pub(crate) prev: Option<i128>,
    /// When the last in-sequence message came: the start of its read burst (Unix ms).
    pub(crate) last_ms: u64,
    /// When it was found: the end of its read burst (Unix ms).
    pub(crate) at_ms: u64,
}

/// Per connection: each topic's last number and when it came, and the breaks found
/// since the reader last took them.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    last: Vec<Option<(i128, u64)>>,
    breaks: Vec<Break>,
    /// The time (Unix ms) as of the last read burst: a message's time to within one
    /// burst, without a clock read per message.
    clock_ms: u64,
}

impl Tracker {
    /// Checks a kept data message of topic `topic`.
    #[inline(never)]
    pub(crate) fn check(
        &mut self,
        seqs: &Sequences,
        topic: usize,
        msg: &[u8],
        found: &[Option<Range<usize>>],
        escaped: u32,
    ) {
        let Some(Some(rule)) = seqs.rules.get(topic) else {
            return;
        };
        let Some(at) = number(msg, found, rule.at) else {
            return;
        };
        if self.last.len() <= topic {
            self.last.resize(seqs.rules.len(), None);
        }
        let now = self.clock_ms;
        let prev = rule.prev.and_then(|p| number(msg, found, p));
        let reset = (rule.prev.is_some() && prev.is_none())
            || rule
                .reset_when
                .iter()
                .any(|p| p.matches(msg, found, escaped));
        if let (Some((last, last_ms)), false) = (self.last[topic], reset) {
            let stated = prev.unwrap_or(at);
            if last.checked_add(rule.step) != Some(stated) {
                self.breaks.push(Break {
                    topic,
                    last,
                    next: at,
                    prev,
                    last_ms,
                    at_ms: now,
                });
            }
        }
        self.last[topic] = Some((at, now));
    }

    /// The breaks found since the last call, as of `now_ms` (the end of the read
    /// burst they were found in), which is also the time the next messages are given:
    /// a gap's start is no later, and its end no earlier, than the true times.
    #[inline]
    pub(crate) fn take_breaks(&mut self, now_ms: u64) -> Option<Vec<Break>> {
        self.clock_ms = now_ms;
        if self.breaks.is_empty() {
            return None;
        }
        let mut breaks = std::mem::take(&mut self.breaks);
        for b in &mut breaks {
            b.at_ms = now_ms;
        }
        Some(breaks)
    }

    /// A new connection: no expectation carries over.
    pub(crate) fn new_connection(&mut self) {
        self.last.iter_mut().for_each(|l| *l = None);
        self.clock_ms = crate::clock::unix_ms();
    }
}

/// The integer at pointer `i`, if the message has one there (a JSON number or a
/// string of digits).
pub(crate) fn number(msg: &[u8], found: &[Option<Range<usize>>], i: usize) -> Option<i128> {
    let r = found[i].clone()?;
    parse_int(unquoted(&msg[r]))
}

/// An integer written in decimal, with an optional minus sign; nothing else.
pub(crate) fn parse_int(s: &[u8]) -> Option<i128> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 38 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Up to 19 digits (every sequence number and time seen) in 64-bit arithmetic,
    // a register each step; only longer ones (HTX-style 27-digit ids) in 128.
    let v = if digits.len() <= 19 {
        i128::from(
            digits
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
        )
    } else {
        digits
            .iter()
            .fold(0i128, |n, d| n * 10 + i128::from(d - b'0'))
    };
    Some(if neg { -v } else { v })
}

/// A number for the journal: a JSON number when it fits in 64 bits, else a string.
pub(crate) fn to_json(n: i128) -> Value {
    if let Ok(v) = u64::try_from(n) {
        return Value::from(v);
    }
    if let Ok(v) = i64::try_from(n) {
        return Value::from(v);
    }
    Value::from(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::jsonline;
    use serde_json::json;

    fn run(spec: Value, topics: &[&str], msgs: &[(usize, &str)]) -> Vec<(i128, i128)> {
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let spec = parse(spec, &topics).unwrap();
        let mut ptrs = Pointers::default();
        let seqs = Sequences::new(&spec, &topics, &mut ptrs).unwrap();
        let mut found = vec![None; ptrs.len()];
        let mut t = Tracker::default();
        for (topic, m) in msgs {
            let v = jsonline::check_with(m.as_bytes(), &ptrs, &mut found).unwrap();
            t.check(&seqs, *topic, m.as_bytes(), &found, v.escaped);
        }
        t.take_breaks(0)
            .unwrap_or_default()
            .into_iter()
            .map(|b| (b.last, b.next))
            .collect()
    }

    #[test]
    fn chained_sequences_break_where_prev_is_not_the_last() {
        let got = run(
            json!({"*": {"at": "/u", "prev": "/pu"}}),
            &["a", "b"],
            &[
                (0, r#"{"u":10,"pu":5}"#),
                (0, r#"{"u":17,"pu":10}"#),
                (1, r#"{"u":3,"pu":1}"#),
                (0, r#"{"u":30,"pu":20}"#),
                (1, r#"{"u":4,"pu":3}"#),
                // No prev: a snapshot, the chain starts again.
                (0, r#"{"u":50}"#),
                (0, r#"{"u":51,"pu":50}"#),
                // No number: not checked.
                (0, r#"{"x":1}"#),
            ],
        );
        assert_eq!(got, [(17, 30)]);
    }

    #[test]
    fn steps_big_numbers_strings_and_documented_resets() {
        let got = run(
            json!({"a": {"at": "/data/u", "reset_when": [{"equals": {"/type": "snapshot"}}]}}),
            &["a", "b"],
            &[
                (0, r#"{"type":"snapshot","data":{"u":1}}"#),
                (0, r#"{"type":"delta","data":{"u":2}}"#),
                (0, r#"{"type":"delta","data":{"u":4}}"#),
                (0, r#"{"type":"snapshot","data":{"u":1}}"#),
                (0, r#"{"type":"delta","data":{"u":"2"}}"#),
                (0, r#"{"type":"delta","data":{"u":2}}"#),
                // b has no rule.
                (1, r#"{"data":{"u":9}}"#),
                (1, r#"{"data":{"u":1}}"#),
            ],
        );
        assert_eq!(got, [(2, 4), (2, 2)]);
        // Past f64's integers, and KuCoin's ranges: the first of the next is last + 1.
        let got = run(
            json!({"*": {"at": "/end", "prev": "/start", "step": 1}}),
            &["t"],
            &[
                (
                    0,
                    r#"{"start":"18446744073709551615","end":18446744073709551616}"#,
                ),
                (
                    0,
                    r#"{"start":18446744073709551617,"end":18446744073709551620}"#,
                ),
                (
                    0,
                    r#"{"start":18446744073709551622,"end":18446744073709551623}"#,
                ),
            ],
        );
        assert_eq!(got, [(18446744073709551620, 18446744073709551623)]);
        assert_eq!(parse_int(b"-12"), Some(-12));
        assert_eq!(parse_int(b"1.5"), None);
        assert_eq!(parse_int(b"1e5"), None);
        // Either side of the 64-bit path's 19 digits, and the longest.
        assert_eq!(
            parse_int(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(parse_int(b"18446744073709551616"), Some(1 << 64));
        assert_eq!(parse_int(&[b'9'; 38]), Some(10i128.pow(38) - 1));
        assert_eq!(parse_int(&[b'9'; 39]), None);
        assert_eq!(to_json(1 << 70), json!("1180591620717411303424"));
        assert_eq!(to_json(-3), json!(-3));
    }

    #[test]
    fn bad_rules_are_refused() {
        let t = vec!["a".to_string()];
        assert!(parse(json!({"b": {"at": "/u"}}), &t).is_err());
        assert!(parse(json!({"a": {"prev": "/u"}}), &t).is_err());
        assert!(parse(json!({"a": {"at": "u"}}), &t).is_err());
        assert!(parse(json!({"a": {"at": "/u", "step": 0}}), &t).is_err());
        assert!(parse(json!({"a": {"at": "/u", "bogus": 1}}), &t).is_err());
        assert!(parse(json!({"a": {"at": "/u", "reset_when": [{}]}}), &t).is_err());
        assert!(parse(json!(["/u"]), &t).is_err());
        assert!(parse(json!({"*": {"at": "/u", "prev": "/p", "step": 0}}), &t).is_ok());
    }
}
