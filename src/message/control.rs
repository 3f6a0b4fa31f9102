//! Control messages (`control_messages`): rules that say a message is about the
//! subscription (an ack, an error, a notice) rather than data, so that it goes to
//! `_control` even when it carries the fields the route key is made of. OKX and Bitget
//! answer a subscribe with `{"event":"subscribe","arg":{...}}`, the very `arg` their
//! data is routed by; Gate's acks and errors carry `channel`. Without a rule the ack
//! is the first line of the topic's file, and a user who loads the file as trades
//! gets a row that is not a trade.
//!
//! A rule is the same `has`/`equals` pattern as `heartbeat_replies`
//! ([`PatternSpec`]); the first rule that matches sends the message to `_control`.

use std::ops::Range;

use serde_json::Value;

use super::heartbeat::{AnyPattern, PatternSpec};
use super::jsonline::Pointers;

/// Parses `control_messages`: an array of `{"has": [pointers], "equals": {pointer:
/// value}}` objects.
pub(crate) fn parse(v: Value) -> Result<Vec<PatternSpec>, String> {
    PatternSpec::parse_list(v)
}

/// The configured rules, resolved against the check's pointers.
#[derive(Debug, Clone, Default)]
pub(crate) struct ControlRules {
    rules: AnyPattern,
}

impl ControlRules {
    /// Resolves the rules' pointers, adding them to `ptrs`.
    pub(crate) fn new(specs: &[PatternSpec], ptrs: &mut Pointers) -> Result<ControlRules, String> {
        Ok(ControlRules {
            rules: AnyPattern::new(specs, ptrs)?,
        })
    }

    /// Whether `msg` (its pointer values in `found`) is a control message.
    #[inline]
    pub(crate) fn is_control(
        &self,
        msg: &[u8],
        found: &[Option<Range<usize>>],
        escaped: u32,
    ) -> bool {
        !self.rules.is_empty() && self.rules.matches(msg, found, escaped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::jsonline::check_with;

    fn rules(v: Value) -> (ControlRules, Pointers) {
        let mut ptrs = Pointers::default();
        ptrs.add("/arg/channel").unwrap();
        let r = ControlRules::new(&parse(v).unwrap(), &mut ptrs).unwrap();
        (r, ptrs)
    }

    fn control(r: &ControlRules, ptrs: &Pointers, m: &str) -> bool {
        let mut found = vec![None; ptrs.len()];
        let v = check_with(m.as_bytes(), ptrs, &mut found).unwrap();
        r.is_control(m.as_bytes(), &found, v.escaped)
    }

    #[test]
    fn acks_errors_and_notices_are_control_data_is_not() {
        let (r, p) = rules(serde_json::json!([
            {"has": ["/event"]},
            {"equals": {"/result/status": "failed"}},
        ]));
        // OKX, Bitget: the ack carries the data's arg.
        assert!(control(
            &r,
            &p,
            r#"{"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"},"connId":"a4d3ae55"}"#
        ));
        assert!(control(
            &r,
            &p,
            r#"{"event":"error","code":"60012","msg":"Illegal request"}"#
        ));
        assert!(control(
            &r,
            &p,
            r#"{"channel":"x","result":{"status":"failed"}}"#
        ));
        assert!(!control(
            &r,
            &p,
            r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"px":"1"}]}"#
        ));
        // A key that is only an object is not a scalar value: `has` finds nothing.
        assert!(!control(&r, &p, r#"{"event":{"x":1},"data":[]}"#));
        let none = ControlRules::default();
        assert!(!none.is_control(b"{}", &[], 0));
    }

    #[test]
    fn bad_rules_say_which_and_why() {
        for (v, want) in [
            (serde_json::json!({}), "expected an array"),
            (serde_json::json!([1]), "rule 0: expected an object"),
            (
                serde_json::json!([{}]),
                "rule 0: give \"has\" or \"equals\"",
            ),
            (
                serde_json::json!([{"has": ["/a"], "reply": "x"}]),
                "rule 0: unknown key \"reply\"",
            ),
            (serde_json::json!([{"has": ["a"]}]), "is not a JSON pointer"),
            (
                serde_json::json!([{"equals": {"/a": [1]}}]),
                "only a string, number",
            ),
        ] {
            let e = parse(v).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
