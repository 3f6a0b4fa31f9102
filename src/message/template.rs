//! Message templates: the text of a subscribe, ping or reply message, with
//! placeholders filled in when it is sent: `{time_ms}` and `{time_s}` (the current Unix
//! time), `{counter}` (one more for every message sent that uses it), `{cursor}` (the
//! resume point, [`super::cursor`]) and, in replies, `{/pointer}` (the matched
//! message's value there, as written).

use std::fmt::Write as _;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    TimeMs,
    TimeS,
    Counter,
    Cursor,
    /// A JSON pointer into the message being answered.
    Value(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; `{/pointer}` placeholders are accepted only when `values` is true.
    pub(crate) fn parse(text: &str, values: bool) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            lit.push_str(&rest[..open]);
            let after = &rest[open..];
            let word = ["{time_ms}", "{time_s}", "{counter}", "{cursor}"]
                .into_iter()
                .find(|w| after.starts_with(w));
            let part = match word {
                Some("{time_ms}") => Some((Part::TimeMs, 9)),
                Some("{time_s}") => Some((Part::TimeS, 8)),
                Some("{cursor}") => Some((Part::Cursor, 8)),
                Some(_) => Some((Part::Counter, 9)),
                None if after.starts_with("{/") => {
                    if !values {
                        return Err(format!(
                            "\"{after}\": a {{/pointer}} placeholder only works in a heartbeat reply"
                        ));
                    }
                    let end = after
                        .find('}')
                        .ok_or_else(|| format!("\"{after}\": unclosed {{/pointer}}"))?;
                    Some((Part::Value(after[1..end].to_string()), end + 1))
                }
                None => None,
            };
            match part {
                Some((p, len)) => {
                    if !lit.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut lit)));
                    }
                    parts.push(p);
                    rest = &after[len..];
                }
                None => {
                    lit.push('{');
                    rest = &after[1..];
                }
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template { parts })
    }

    /// The pointers that `{/pointer}` placeholders name.
    pub(crate) fn pointers(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Value(v) => Some(v.as_str()),
            _ => None,
        })
    }

    /// Whether it has a `{cursor}` placeholder.
    pub(crate) fn uses_cursor(&self) -> bool {
        self.parts.contains(&Part::Cursor)
    }

    /// The text with the placeholders filled in; `cursor` is what `{cursor}` becomes
    /// (`null` without one: the config requires an `initial` for messages); `value`
    /// gives a pointer's value as written in the message (`null` when it has none).
    pub(crate) fn render<'m>(
        &self,
        counter: &mut u64,
        cursor: Option<&str>,
        value: impl Fn(&str) -> Option<&'m [u8]>,
    ) -> String {
        if let [Part::Text(t)] = &self.parts[..] {
            return t.clone();
        }
        let now = crate::clock::now();
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::TimeMs => {
                    let _ = write!(out, "{}", now.as_millis());
                }
                Part::TimeS => {
                    let _ = write!(out, "{}", now.as_secs());
                }
                Part::Counter => {
                    *counter += 1;
                    let _ = write!(out, "{counter}");
                }
                Part::Cursor => out.push_str(cursor.unwrap_or("null")),
                Part::Value(ptr) => match value(ptr) {
                    Some(v) => out.push_str(&String::from_utf8_lossy(v)),
                    None => out.push_str("null"),
                },
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j_uses(t: &Template) -> bool {
        t.uses_cursor()
    }

    #[test]
    fn placeholders() {
        let t =
            Template::parse(r#"{"time":{time_s},"id":{counter},"ms":{time_ms}}"#, false).unwrap();
        let mut n = 0;
        let a = t.render(&mut n, None, |_| None);
        let b = t.render(&mut n, None, |_| None);
        let va: serde_json::Value = serde_json::from_str(&a).unwrap();
        let vb: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!((va["id"].as_u64(), vb["id"].as_u64()), (Some(1), Some(2)));
        let now = crate::clock::now();
        assert!(va["time"].as_u64().unwrap().abs_diff(now.as_secs()) <= 1);
        assert!(va["ms"].as_u64().unwrap().abs_diff(now.as_millis() as u64) <= 1000);

        let r = Template::parse(r#"{"pong":{/ping},"id":{/id}}"#, true).unwrap();
        assert_eq!(r.pointers().collect::<Vec<_>>(), ["/ping", "/id"]);
        let got = r.render(&mut n, None, |p| {
            (p == "/ping").then_some(&b"1492420473027"[..])
        });
        assert_eq!(got, r#"{"pong":1492420473027,"id":null}"#);
        assert!(Template::parse("{/x}", false).is_err());
        // JSON braces are text.
        let c = Template::parse(r#"["REQ","s",{"since":{cursor}}]"#, false).unwrap();
        assert!(c.uses_cursor() && !j_uses(&r));
        assert_eq!(
            c.render(&mut n, Some("1700000000"), |_| None),
            r#"["REQ","s",{"since":1700000000}]"#
        );
        let j = Template::parse(r#"{"op":"ping"}"#, false).unwrap();
        assert_eq!(j.render(&mut n, None, |_| None), r#"{"op":"ping"}"#);
    }
}
