//! Heartbeat replies: rules that recognise a venue's heartbeat or ping message by the
//! values at a few JSON pointers ([`Match`], also used by `reconnect_on`), and the
//! reply each one sends back.

use std::ops::Range;

use super::jsonline::Pointers;
use super::template::Template;

/// A rule as configured (`heartbeat_replies`): validated, pointers not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleSpec {
    /// Pointers that must lead to a value.
    pub(crate) has: Vec<String>,
    /// Pointers whose value, as compact JSON text, must equal the given text.
    pub(crate) equals: Vec<(String, String)>,
    /// The reply.
    pub(crate) reply: Template,
}

/// A `has`/`equals` test with its pointers resolved to indices in the check's
/// [`Pointers`]: every `has` pointer leads to a value, every `equals` value is equal.
#[derive(Debug)]
pub(crate) struct Match {
    has: Vec<usize>,
    equals: Vec<(usize, Vec<u8>)>,
}

impl Match {
    /// Resolves `has` and `equals`, adding their pointers to `ptrs`.
    pub(crate) fn new(
        has: &[String],
        equals: &[(String, String)],
        ptrs: &mut Pointers,
    ) -> Result<Match, String> {
        Ok(Match {
            has: has.iter().map(|p| ptrs.add(p)).collect::<Result<_, _>>()?,
            equals: equals
                .iter()
                .map(|(p, v)| Ok((ptrs.add(p)?, v.clone().into_bytes())))
                .collect::<Result<_, String>>()?,
        })
    }

    /// Whether `msg`, whose pointer values the check put in `found`, matches.
    #[inline]
    pub(crate) fn matches(&self, msg: &[u8], found: &[Option<Range<usize>>]) -> bool {
        self.has.iter().all(|&i| found[i].is_some())
            && self
                .equals
                .iter()
                .all(|(i, v)| found[*i].clone().map(|r| &msg[r]) == Some(&v[..]))
    }
}

/// A rule with its pointers resolved to indices in the check's [`Pointers`].
#[derive(Debug)]
struct Rule {
    test: Match,
    reply: Template,
    /// `(pointer, index)` for the reply's `{/pointer}` placeholders.
    values: Vec<(String, usize)>,
}

/// The configured rules, first match wins.
#[derive(Debug, Default)]
pub(crate) struct Heartbeats {
    rules: Vec<Rule>,
}

impl Heartbeats {
    /// Resolves the rules' pointers, adding them to `ptrs`.
    pub(crate) fn new(specs: &[RuleSpec], ptrs: &mut Pointers) -> Result<Heartbeats, String> {
        let mut rules = Vec::with_capacity(specs.len());
        for s in specs {
            let test = Match::new(&s.has, &s.equals, ptrs)?;
            let values = s
                .reply
                .pointers()
                .map(|p| Ok((p.to_string(), ptrs.add(p)?)))
                .collect::<Result<_, String>>()?;
            rules.push(Rule {
                test,
                reply: s.reply.clone(),
                values,
            });
        }
        Ok(Heartbeats { rules })
    }

    /// Whether there are no rules (nothing to do per message).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The reply to `msg`, whose pointer values the check put in `found`, if a rule
    /// matches it.
    pub(crate) fn reply(
        &self,
        msg: &[u8],
        found: &[Option<Range<usize>>],
        counter: &mut u64,
    ) -> Option<String> {
        let value = |i: usize| found[i].clone().map(|r| &msg[r]);
        let rule = self.rules.iter().find(|r| r.test.matches(msg, found))?;
        Some(rule.reply.render(counter, |p| {
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
            has: has.iter().map(|s| s.to_string()).collect(),
            equals: equals
                .iter()
                .map(|(p, v)| (p.to_string(), v.to_string()))
                .collect(),
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
            check_with(m, &ptrs, &mut found).unwrap();
            hb.reply(m, &found, n)
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
