//! Heartbeat replies (`heartbeat_replies`): rules that recognise a venue's heartbeat
//! or ping message by the values at a few JSON pointers, and the reply each one sends
//! back. Parsed here from the config's array of rules; applied to every message.
//!
//! The matching itself ([`PatternSpec`], [`Pattern`]: `has` and `equals`) is shared
//! with the other rules that recognise a message (`control_messages`, `welcome`).

use std::ops::Range;

use serde_json::{Map, Value};

use super::jsonline::{self, Pointers};
use super::template::Template;
use crate::config::{kind, scalars, strings};

/// A message pattern as configured: `"has": [pointers]` (each must lead to a value)
/// and `"equals": {pointer: value}` (the value there, as compact JSON text, must be
/// this one). Validated, pointers not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct PatternSpec {
    /// Pointers that must lead to a value.
    pub(crate) has: Vec<String>,
    /// Pointers whose value, as compact JSON text, must equal the given text.
    pub(crate) equals: Vec<(String, String)>,
}

impl PatternSpec {
    /// Takes `has` and `equals` out of a rule object; at least one must be given, and
    /// every pointer must be one.
    pub(crate) fn take(rule: &mut Map<String, Value>) -> Result<PatternSpec, String> {
        let has = match rule.remove("has") {
            None => Vec::new(),
            Some(Value::Array(a)) => {
                strings(a).map_err(|k| format!("\"has\": expected pointers, found {k}"))?
            }
            Some(v) => return Err(format!("\"has\": expected an array, got {}", kind(&v))),
        };
        let equals = match rule.remove("equals") {
            None => Vec::new(),
            Some(Value::Object(m)) => scalars(m).map_err(|e| format!("\"equals\": {e}"))?,
            Some(v) => {
                return Err(format!("\"equals\": expected an object, got {}", kind(&v)));
            }
        };
        if has.is_empty() && equals.is_empty() {
            return Err("give \"has\" or \"equals\" (or both)".into());
        }
        let spec = PatternSpec { has, equals };
        let mut probe = Pointers::default();
        for p in spec.pointers() {
            probe.add(p)?;
        }
        Ok(spec)
    }

    /// Every pointer the pattern looks at.
    pub(crate) fn pointers(&self) -> impl Iterator<Item = &str> {
        self.has
            .iter()
            .chain(self.equals.iter().map(|(p, _)| p))
            .map(String::as_str)
    }

    /// The pattern with its pointers resolved, adding them to `ptrs`.
    pub(crate) fn resolve(&self, ptrs: &mut Pointers) -> Result<Pattern, String> {
        Ok(Pattern {
            has: self
                .has
                .iter()
                .map(|p| ptrs.add(p))
                .collect::<Result<_, _>>()?,
            equals: self
                .equals
                .iter()
                .map(|(p, v)| Ok((ptrs.add(p)?, v.clone().into_bytes())))
                .collect::<Result<_, String>>()?,
        })
    }
}

/// A [`PatternSpec`] with its pointers resolved to indices in a check's [`Pointers`].
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    has: Vec<usize>,
    equals: Vec<(usize, Vec<u8>)>,
}

impl Pattern {
    /// Whether `msg`, whose pointer values the check put in `found`, matches.
    #[inline]
    /// `escaped` is the check's [`Valid::escaped`](super::jsonline::Valid::escaped):
    /// a value with an escape is compared as the JSON string it is.
    pub(crate) fn matches(&self, msg: &[u8], found: &[Option<Range<usize>>], escaped: u32) -> bool {
        self.has.iter().all(|&i| found[i].is_some())
            && self.equals.iter().all(|(i, v)| {
                found[*i]
                    .as_ref()
                    .is_some_and(|r| jsonline::equals(&msg[r.clone()], escaped >> i & 1 != 0, v))
            })
    }
}

impl PatternSpec {
    /// Parses an array of patterns, one object each with nothing but `has` and
    /// `equals` (`control_messages`, `reconnect_on`).
    pub(crate) fn parse_list(v: Value) -> Result<Vec<PatternSpec>, String> {
        let Value::Array(items) = v else {
            return Err("expected an array of {\"has\": [...], \"equals\": {...}} rules".into());
        };
        items
            .into_iter()
            .enumerate()
            .map(|(n, item)| {
                let Value::Object(mut rule) = item else {
                    return Err(format!("rule {n}: expected an object"));
                };
                let spec = PatternSpec::take(&mut rule).map_err(|e| format!("rule {n}: {e}"))?;
                if let Some(k) = rule.keys().next() {
                    return Err(format!(
                        "rule {n}: unknown key \"{k}\" (known: has, equals)"
                    ));
                }
                Ok(spec)
            })
            .collect()
    }
}

/// Patterns of which any one matching is enough, resolved against a check's pointers.
#[derive(Debug, Clone, Default)]
pub(crate) struct AnyPattern {
    rules: Vec<Pattern>,
}

impl AnyPattern {
    /// Resolves the patterns' pointers, adding them to `ptrs`.
    pub(crate) fn new(specs: &[PatternSpec], ptrs: &mut Pointers) -> Result<AnyPattern, String> {
        Ok(AnyPattern {
            rules: specs
                .iter()
                .map(|s| s.resolve(ptrs))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether there are none (nothing to do per message).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether one of them matches `msg` (see [`Pattern::matches`]).
    #[inline]
    pub(crate) fn matches(&self, msg: &[u8], found: &[Option<Range<usize>>], escaped: u32) -> bool {
        self.rules.iter().any(|r| r.matches(msg, found, escaped))
    }
}

/// A rule as configured (`heartbeat_replies`): validated, pointers not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleSpec {
    /// Which messages it answers.
    pub(crate) pattern: PatternSpec,
    /// The reply.
    pub(crate) reply: Template,
}

impl RuleSpec {
    /// Parses the `heartbeat_replies` array.
    pub(crate) fn parse_all(v: Value) -> Result<Vec<RuleSpec>, String> {
        let Value::Array(items) = v else {
            return Err(format!("expected an array of rules, got {}", kind(&v)));
        };
        items
            .into_iter()
            .enumerate()
            .map(|(n, item)| RuleSpec::parse(item).map_err(|e| format!("rule {n}: {e}")))
            .collect()
    }

    fn parse(item: Value) -> Result<RuleSpec, String> {
        let Value::Object(mut rule) = item else {
            return Err(format!("expected an object, got {}", kind(&item)));
        };
        let pattern = PatternSpec::take(&mut rule)?;
        let reply = match rule.remove("reply") {
            Some(Value::String(s)) if !s.is_empty() => {
                Template::parse(&s, true).map_err(|e| format!("\"reply\": {e}"))?
            }
            _ => return Err("\"reply\" must be the reply message (a non-empty string)".into()),
        };
        if let Some(k) = rule.keys().next() {
            return Err(format!("unknown key \"{k}\" (known: has, equals, reply)"));
        }
        Ok(RuleSpec { pattern, reply })
    }
}

/// A rule with its pointers resolved to indices in the check's [`Pointers`].
#[derive(Debug, Clone)]
struct Rule {
    pattern: Pattern,
    reply: Template,
    /// `(pointer, index)` for the reply's `{/pointer}` placeholders.
    values: Vec<(String, usize)>,
}

/// The configured rules, first match wins.
#[derive(Debug, Clone, Default)]
pub(crate) struct Heartbeats {
    rules: Vec<Rule>,
}

impl Heartbeats {
    /// Resolves the rules' pointers, adding them to `ptrs`.
    pub(crate) fn new(specs: &[RuleSpec], ptrs: &mut Pointers) -> Result<Heartbeats, String> {
        let mut rules = Vec::with_capacity(specs.len());
        for (n, s) in specs.iter().enumerate() {
            Self::resolve(s, ptrs, &mut rules).map_err(|e| format!("rule {n}: {e}"))?;
        }
        Ok(Heartbeats { rules })
    }

    fn resolve(s: &RuleSpec, ptrs: &mut Pointers, rules: &mut Vec<Rule>) -> Result<(), String> {
        {
            let pattern = s.pattern.resolve(ptrs)?;
            let values = s
                .reply
                .pointers()
                .map(|p| Ok((p.to_string(), ptrs.add(p)?)))
                .collect::<Result<_, String>>()?;
            rules.push(Rule {
                pattern,
                reply: s.reply.clone(),
                values,
            });
        }
        Ok(())
    }

    /// Whether there are no rules (nothing to do per message).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The reply to `msg`, whose pointer values the check put in `found` (`escaped`:
    /// its [`Valid::escaped`](super::jsonline::Valid::escaped)), if a rule matches it.
    pub(crate) fn reply(
        &self,
        msg: &[u8],
        found: &[Option<Range<usize>>],
        escaped: u32,
        counter: &mut u64,
    ) -> Option<String> {
        let value = |i: usize| found[i].clone().map(|r| &msg[r]);
        let rule = self
            .rules
            .iter()
            .find(|r| r.pattern.matches(msg, found, escaped))?;
        Some(rule.reply.render(counter, None, |p| {
            rule.values
                .iter()
                .find(|(q, _)| q == p)
                .and_then(|(_, i)| value(*i))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::jsonline::check_with;

    fn spec(has: &[&str], equals: &[(&str, &str)], reply: &str) -> RuleSpec {
        RuleSpec {
            pattern: PatternSpec {
                has: has.iter().map(|s| s.to_string()).collect(),
                equals: equals
                    .iter()
                    .map(|(p, v)| (p.to_string(), v.to_string()))
                    .collect(),
            },
            reply: Template::parse(reply, true).unwrap(),
        }
    }

    #[test]
    fn htx_deribit_and_cryptocom_heartbeats() {
        let mut ptrs = Pointers::default();
        ptrs.add("/topic").unwrap();
        let hb = Heartbeats::new(
            &[
                spec(&["/ping"], &[], r#"{"pong":{/ping}}"#),
                spec(
                    &[],
                    &[
                        ("/method", r#""heartbeat""#),
                        ("/params/type", r#""test_request""#),
                    ],
                    r#"{"jsonrpc":"2.0","id":{counter},"method":"public/test","params":{}}"#,
                ),
                spec(
                    &[],
                    &[("/method", r#""public/heartbeat""#)],
                    r#"{"id":{/id},"method":"public/respond-heartbeat"}"#,
                ),
            ],
            &mut ptrs,
        )
        .unwrap();
        let mut n = 0;
        let reply = |m: &[u8], n: &mut u64| {
            let mut found = vec![None; ptrs.len()];
            let v = check_with(m, &ptrs, &mut found).unwrap();
            hb.reply(m, &found, v.escaped, n)
        };
        assert_eq!(
            reply(br#"{"ping":1492420473027}"#, &mut n).as_deref(),
            Some(r#"{"pong":1492420473027}"#)
        );
        assert_eq!(
            reply(
                br#"{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}"#,
                &mut n
            )
            .as_deref(),
            Some(r#"{"jsonrpc":"2.0","id":1,"method":"public/test","params":{}}"#)
        );
        assert_eq!(
            reply(
                br#"{"id":1587523073344,"method":"public/heartbeat","code":0}"#,
                &mut n
            )
            .as_deref(),
            Some(r#"{"id":1587523073344,"method":"public/respond-heartbeat"}"#)
        );
        // Values compared as the strings they are: escapes decoded, in keys too.
        assert_eq!(
            reply(
                br#"{"jsonrpc":"2.0","method":"heart\u0062eat","par\u0061ms":{"type":"test\u005frequest"}}"#,
                &mut n
            )
            .as_deref(),
            Some(r#"{"jsonrpc":"2.0","id":2,"method":"public/test","params":{}}"#)
        );
        assert_eq!(
            reply(br#"{"id":7,"method":"public\/heartbeat"}"#, &mut n).as_deref(),
            Some(r#"{"id":7,"method":"public/respond-heartbeat"}"#)
        );
        // Deribit's plain heartbeat (type "heartbeat") needs no answer; data none.
        assert_eq!(
            reply(
                br#"{"method":"heartbeat","params":{"type":"heartbeat"}}"#,
                &mut n
            ),
            None
        );
        assert_eq!(reply(br#"{"topic":"t","data":[1]}"#, &mut n), None);
    }
}
