//! Which file a message goes to: the topic index, the route key joined from the
//! values at `route_by`, the ids learnt on this connection (`route_ids`), and the file
//! names topics get.

use std::collections::HashMap;
use std::ops::Range;

use super::jsonline::unquoted;
use super::route_ids::RouteIds;
use crate::batch::Dest;

/// One connection's routing state.
#[derive(Debug)]
pub(crate) struct Router<'a> {
    /// Topic name -> index.
    topic_index: HashMap<Vec<u8>, u32>,
    /// How many pointers (the first of the check's) make the route key; 0 = one topic.
    route: usize,
    /// Joins the route values.
    separator: &'a [u8],
    /// `route_ids`, when configured.
    learn: Option<&'a RouteIds>,
    /// Ids learnt on this connection -> topic index.
    ids: HashMap<Vec<u8>, u32>,
    /// The route key of a message with several route pointers (reused).
    key: Vec<u8>,
}

impl<'a> Router<'a> {
    /// A router to `topics` by the first `route` pointers.
    pub(crate) fn new(
        topics: &[String],
        route: usize,
        separator: &'a str,
        learn: Option<&'a RouteIds>,
    ) -> Router<'a> {
        Router {
            topic_index: topics
                .iter()
                .enumerate()
                .map(|(i, t)| (t.as_bytes().to_vec(), i as u32))
                .collect(),
            route,
            separator: separator.as_bytes(),
            learn,
            ids: HashMap::new(),
            key: Vec::new(),
        }
    }

    /// The file of a checked message whose pointer values are in `found`: its
    /// topic's, when its route key names one (learning the id it announces first).
    #[inline]
    pub(crate) fn dest(&mut self, msg: &[u8], found: &[Option<Range<usize>>]) -> Dest {
        if let Some(learn) = self.learn {
            self.learn(learn, msg, found);
        }
        let key = match self.route {
            0 => return Dest::Topic(0),
            1 => match &found[0] {
                Some(r) => unquoted(&msg[r.clone()]),
                None => return Dest::Control,
            },
            n => {
                self.key.clear();
                for (i, r) in found[..n].iter().enumerate() {
                    let Some(r) = r else {
                        return Dest::Control;
                    };
                    if i > 0 {
                        self.key.extend_from_slice(self.separator);
                    }
                    self.key.extend_from_slice(unquoted(&msg[r.clone()]));
                }
                &self.key
            }
        };
        match self.topic_index.get(key).or_else(|| self.ids.get(key)) {
            Some(&i) => Dest::Topic(i),
            None => Dest::Control,
        }
    }

    /// Remembers the id a message announces, if it names a topic.
    fn learn(&mut self, learn: &RouteIds, msg: &[u8], found: &[Option<Range<usize>>]) {
        if let Some(id) = learn.learned(msg, found, self.separator, &mut self.key) {
            if let Some(&i) = self.topic_index.get(&self.key) {
                self.ids.insert(id.to_vec(), i);
            }
        }
    }

    /// A new connection: ids learnt on the last one mean nothing now.
    pub(crate) fn new_connection(&mut self) {
        self.ids.clear();
    }
}

/// A topic (or `_control`) as a file name prefix, encoded reversibly: every byte that
/// cannot or should not be in a file name (`/`, `\`, NUL and other control bytes, `:`,
/// `*`, `?`, `"`, `<`, `>`, `|`, `%`, and a `.` in first position) becomes `%XX`. So
/// `trade.BTC/USD` -> `trade.BTC%2FUSD`: nothing is ever written outside output_dir.
pub(crate) fn file_name(topic: &str) -> String {
    let mut out = Vec::with_capacity(topic.len());
    for (i, b) in topic.bytes().enumerate() {
        let bad = matches!(
            b,
            0..=0x1f | 0x7f | b'/' | b'\\' | b':' | b'*' | b'?' | b'"' | b'<' | b'>' | b'|' | b'%'
        ) || (i == 0 && b == b'.');
        if bad {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    // Only ASCII bytes were replaced, by ASCII: still UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// The topic a file name prefix stands for (the inverse of [`file_name`]).
#[cfg(test)]
pub(crate) fn topic_of(name: &str) -> Option<String> {
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_and_reversible() {
        for (topic, name) in [
            ("publicTrade.BTCUSDT", "publicTrade.BTCUSDT"),
            ("trade.BTC/USD", "trade.BTC%2FUSD"),
            ("/market/match:BTC-USDT", "%2Fmarket%2Fmatch%3ABTC-USDT"),
            ("..", "%2E."),
            (".hidden", "%2Ehidden"),
            (
                "a\\b*c?d\"e<f>g|h%i\nj\0",
                "a%5Cb%2Ac%3Fd%22e%3Cf%3Eg%7Ch%25i%0Aj%00",
            ),
            ("btcusdt@trade", "btcusdt@trade"),
            ("ticker.BTC€", "ticker.BTC€"),
        ] {
            assert_eq!(file_name(topic), name, "{topic:?}");
            assert_eq!(topic_of(name).as_deref(), Some(topic));
            assert!(!file_name(topic).contains('/'));
        }
    }
}
