//! `reconnect_on`: rules that recognise a venue's notice of a coming close (Binance's
//! `serverShutdown`, OKX's `64008`, Bitfinex's `20051`) by the values at a few JSON
//! pointers, with the same `has`/`equals` pattern as `heartbeat_replies` ([`PatternSpec`]).
//! A message that matches is recorded as usual and starts a planned reconnect.

use std::ops::Range;

use serde_json::Value;

use super::heartbeat::{AnyPattern, PatternSpec};
use super::jsonline::Pointers;

/// A rule as configured: validated, pointers not yet resolved.
pub(crate) type NoticeSpec = PatternSpec;

/// Parses `reconnect_on`: an array of `{"has": [...], "equals": {...}}` rules.
pub(crate) fn parse(v: Value) -> Result<Vec<NoticeSpec>, String> {
    PatternSpec::parse_list(v)
}

/// The rules with their pointers resolved; any match counts.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReconnectOn {
    rules: AnyPattern,
}

impl ReconnectOn {
    /// Resolves the rules' pointers, adding them to `ptrs`.
    pub(crate) fn new(specs: &[NoticeSpec], ptrs: &mut Pointers) -> Result<ReconnectOn, String> {
        Ok(ReconnectOn {
            rules: AnyPattern::new(specs, ptrs)?,
        })
    }

    /// Whether there are no rules (nothing to do per message).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `msg`, whose pointer values the check put in `found`, is a notice.
    pub(crate) fn matches(&self, msg: &[u8], found: &[Option<Range<usize>>], escaped: u32) -> bool {
        self.rules.matches(msg, found, escaped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::jsonline::check_with;

    #[test]
    fn binance_okx_and_bitfinex_notices() {
        let specs = parse(serde_json::json!([
            {"equals": {"/e": "serverShutdown"}},
            {"equals": {"/data/e": "serverShutdown"}},
            {"equals": {"/event": "notice", "/code": "64008"}},
            {"equals": {"/event": "info", "/code": 20051}},
        ]))
        .unwrap();
        let mut ptrs = Pointers::default();
        let r = ReconnectOn::new(&specs, &mut ptrs).unwrap();
        let is = |m: &str| {
            let mut found = vec![None; ptrs.len()];
            let v = check_with(m.as_bytes(), &ptrs, &mut found).unwrap();
            r.matches(m.as_bytes(), &found, v.escaped)
        };
        assert!(is(r#"{"e":"serverShutdown","E":1747000000000}"#));
        assert!(is(
            r#"{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}"#
        ));
        assert!(is(
            r#"{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade. Please reconnect.","connId":"a4d3ae55"}"#
        ));
        assert!(is(
            r#"{"event":"info","code":20051,"msg":"Stopping. Please try to reconnect"}"#
        ));
        assert!(!is(r#"{"event":"info","code":20060}"#));
        assert!(!is(r#"{"e":"trade","E":1}"#));
        assert!(parse(serde_json::json!([{}])).is_err());
        assert!(parse(serde_json::json!([{"equals": {"/a": 1}, "reply": "x"}])).is_err());
    }
}
