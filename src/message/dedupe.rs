//! De-duplication across connections: a key for each message (the values at its
//! topic's `dedupe_by` pointers, or by default the message's bytes), hashed to 64 bits,
//! and [`KeyRing`], a memory of the most recent keys with a fixed bound.
//!
//! Used only while two connections overlap (a make-before-break handover): the common
//! path of one connection computes no key. Two distinct messages are taken for one
//! when their 64-bit hashes collide: with [`KEY_CAPACITY`] keys in memory, about one
//! chance in 10^10 per overlap.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use std::ops::Range;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use serde_json::Value;

use super::decode::Decoder;
use super::jsonline::{self, Pointers};
use crate::config::{Config, Routing};

/// How many keys a [`KeyRing`] remembers: the new connection may lag the old one by
/// this many messages (3.3 s at 20,000 msg/s) and still have its duplicates found.
/// 65,536 keys take 0.5 MiB in the ring and about 1.1 MiB in the set.
pub(crate) const KEY_CAPACITY: usize = 1 << 16;

/// `dedupe_by` as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DedupeBy {
    /// Pointers for every topic without its own (`"*"`, or the array form); empty =
    /// the message bytes.
    pub(crate) all: Vec<String>,
    /// Pointers for one topic.
    pub(crate) topics: Vec<(String, Vec<String>)>,
}

/// Parses `dedupe_by`: an array of pointers (every topic), or an object from topic
/// (or `"*"`) to an array of pointers.
pub(crate) fn parse(v: Value, topics: &[String]) -> Result<DedupeBy, String> {
    let pointers = |v: Value, what: &str| -> Result<Vec<String>, String> {
        let Value::Array(items) = v else {
            return Err(format!("{what}: expected an array of JSON pointers"));
        };
        let mut probe = Pointers::default();
        items
            .into_iter()
            .map(|p| match p {
                Value::String(s) => probe.add(&s).map(|_| s).map_err(|e| format!("{what}: {e}")),
                _ => Err(format!("{what}: expected an array of JSON pointers")),
            })
            .collect()
    };
    match v {
        Value::Array(_) => Ok(DedupeBy {
            all: pointers(v, "dedupe_by")?,
            topics: Vec::new(),
        }),
        Value::Object(m) => {
            let mut d = DedupeBy::default();
            for (topic, v) in m {
                let ptrs = pointers(v, &format!("\"{topic}\""))?;
                if topic == "*" {
                    d.all = ptrs;
                } else if topics.contains(&topic) {
                    d.topics.push((topic, ptrs));
                } else {
                    return Err(format!(
                        "\"{topic}\" is not one of the topics (or \"*\" for all)"
                    ));
                }
            }
            Ok(d)
        }
        _ => Err("expected an array of JSON pointers, or an object of topic -> pointers".into()),
    }
}

/// Keys are hashes already: the set uses them as they are.
#[derive(Default)]
pub(crate) struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A set of u64 keys hashed by themselves.
pub(crate) type KeySet = HashSet<u64, BuildHasherDefault<Identity>>;

/// The last [`KEY_CAPACITY`] distinct keys: inserting one more forgets the oldest.
pub(crate) struct KeyRing {
    order: VecDeque<u64>,
    set: KeySet,
}

impl Default for KeyRing {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyRing {
    /// An empty ring (its memory is taken as it fills, up to the bound).
    pub(crate) fn new() -> KeyRing {
        KeyRing {
            order: VecDeque::new(),
            set: KeySet::default(),
        }
    }

    /// Remembers `key`; false if it was already there.
    pub(crate) fn insert(&mut self, key: u64) -> bool {
        if !self.set.insert(key) {
            return false;
        }
        if self.order.len() == KEY_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.order.push_back(key);
        true
    }

    /// Whether `key` is remembered.
    #[inline]
    pub(crate) fn contains(&self, key: u64) -> bool {
        self.set.contains(&key)
    }

    /// How many keys are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

/// `dedupe_by` resolved against one set of pointers: which of them make each topic's
/// key. The judge resolves it against the check's own pointers, so that a key costs no
/// second parse; [`Keys`] against pointers of its own.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyRule {
    /// Pointer indices per topic index; `None` = `all`.
    per_topic: Vec<Option<Vec<usize>>>,
    /// Pointer indices for the other topics and the control file; empty = the message
    /// bytes.
    all: Vec<usize>,
}

impl KeyRule {
    /// Adds the pointers of `d` to `ptrs` (a pointer already there is shared).
    pub(crate) fn new(
        d: &DedupeBy,
        topics: &[String],
        ptrs: &mut Pointers,
    ) -> Result<KeyRule, String> {
        let mut add = |list: &[String]| -> Result<Vec<usize>, String> {
            let mut out = Vec::with_capacity(list.len());
            for p in list {
                out.push(ptrs.add(p)?);
            }
            Ok(out)
        };
        let all = add(&d.all)?;
        let mut per_topic = Vec::with_capacity(topics.len());
        for t in topics {
            per_topic.push(match d.topics.iter().find(|(name, _)| name == t) {
                Some((_, list)) => Some(add(list)?),
                None => None,
            });
        }
        Ok(KeyRule { per_topic, all })
    }

    /// The key of a checked message going to `topic` (`None`: the control file),
    /// whose pointer values the check put in `found`: the values of its topic's
    /// pointers, each with its place, or its bytes when it has none of them.
    pub(crate) fn key(
        &self,
        topic: Option<usize>,
        msg: &[u8],
        found: &[Option<Range<usize>>],
    ) -> u64 {
        let ptrs = match topic.and_then(|t| self.per_topic[t].as_ref()) {
            Some(p) => p,
            None => &self.all,
        };
        if ptrs.iter().all(|&i| found[i].is_none()) {
            return bytes_key(msg);
        }
        // Chained through the seed: each value (never empty: a JSON value has a
        // byte at least) hashed with what came before; an absent one as no bytes.
        let mut h = topic.map_or(u64::MAX, |t| t as u64);
        for &i in ptrs {
            let value = match &found[i] {
                Some(r) => &msg[r.clone()],
                None => &[][..],
            };
            h = seeded_key(value, h);
        }
        h
    }
}

/// XXH3 of `value` seeded with what came before. Out of line, as [`bytes_key`].
#[inline(never)]
fn seeded_key(value: &[u8], seed: u64) -> u64 {
    xxh3_64_with_seed(value, seed)
}

/// The key of a message by its bytes: XXH3, 64 bits (SipHash, std's, cost about
/// 2.8 instructions a byte here, XXH3 a fraction of that: a key is made for every
/// message on two lines, and on the Pi Zero's 32-bit core SipHash's 64-bit
/// arithmetic is dearer still). Out of line: XXH3's paths for each input length
/// are kilobytes of code, emitted once here rather than at every caller.
#[inline(never)]
pub(crate) fn bytes_key(msg: &[u8]) -> u64 {
    xxh3_64(msg)
}

/// Works out each message's key on its own: checks it for the pointers of its rule,
/// finds the topic (as routing does, but without ids learnt on a connection) and
/// keys it by [`KeyRule::key`]. For the handover, which keys messages before the
/// line sink judges them; the line sink's keys come from its judge.
pub(crate) struct Keys {
    ptrs: Pointers,
    found: Vec<Option<Range<usize>>>,
    rule: KeyRule,
    /// How many pointers (from the start) make the route key; 0 = one topic.
    route: usize,
    separator: Vec<u8>,
    topic_index: HashMap<Vec<u8>, usize>,
    /// Whether any pointer is configured (else no parse at all).
    parse: bool,
    route_key: Vec<u8>,
    decoder: Decoder,
}

impl Keys {
    /// The key rules of `cfg` (its pointers were checked when it was loaded).
    pub(crate) fn new(cfg: &Config) -> Keys {
        let d = &cfg.continuity.dedupe_by;
        let mut ptrs = Pointers::default();
        let (route_by, separator): (&[String], &str) = match &cfg.messages.routing {
            Routing::Single => (&[], ""),
            Routing::ByKey {
                route_by,
                separator,
            } => (route_by, separator),
        };
        let parse = !d.all.is_empty() || !d.topics.is_empty();
        let route = if parse {
            for p in route_by {
                ptrs.add(p).expect("checked when the config was loaded");
            }
            route_by.len()
        } else {
            0
        };
        let rule = KeyRule::new(d, &cfg.messages.topics, &mut ptrs)
            .expect("checked when the config was loaded");
        Keys {
            found: vec![None; ptrs.len()],
            ptrs,
            rule,
            route,
            separator: separator.as_bytes().to_vec(),
            topic_index: cfg
                .messages
                .topics
                .iter()
                .enumerate()
                .map(|(i, t)| (t.as_bytes().to_vec(), i))
                .collect(),
            parse,
            route_key: Vec::new(),
            decoder: Decoder::new(cfg.messages.binary, cfg.connection.max_message_bytes),
        }
    }

    /// The key of a text message.
    pub(crate) fn key(&mut self, msg: &[u8]) -> u64 {
        if !self.parse {
            return bytes_key(msg);
        }
        let Ok(valid) = jsonline::check_with(msg, &self.ptrs, &mut self.found) else {
            return bytes_key(msg);
        };
        let topic = self.topic(msg, valid.escaped);
        self.rule.key(topic, msg, &self.found)
    }

    /// The text of a binary frame (as the line sink decodes it) and its key; `None`
    /// if it does not decode (the line sink refuses it).
    pub(crate) fn decode(&mut self, frame: &[u8]) -> Option<(Vec<u8>, u64)> {
        let text = self.decoder.decode(frame).ok()?.to_vec();
        let key = self.key(&text);
        Some((text, key))
    }

    /// The key of a binary frame.
    pub(crate) fn key_binary(&mut self, frame: &[u8]) -> u64 {
        match self.decode(frame) {
            Some((_, k)) => k,
            None => bytes_key(frame),
        }
    }

    /// The topic index of a checked message, as routing finds it (values compared
    /// as the strings they are, as the router does).
    fn topic(&mut self, msg: &[u8], escaped: u32) -> Option<usize> {
        if self.route == 0 {
            return (self.topic_index.len() == 1).then_some(0);
        }
        self.route_key.clear();
        for (n, r) in self.found[..self.route].iter().enumerate() {
            let r = r.clone()?;
            if n > 0 {
                self.route_key.extend_from_slice(&self.separator);
            }
            jsonline::push_text(&msg[r], escaped >> n & 1 != 0, &mut self.route_key);
        }
        self.topic_index.get(&self.route_key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_ring_forgets_the_oldest_key_beyond_its_bound() {
        let mut r = KeyRing::new();
        for k in 0..KEY_CAPACITY as u64 + 10 {
            assert!(r.insert(k));
        }
        assert!(!r.insert(KEY_CAPACITY as u64));
        assert_eq!(r.len(), KEY_CAPACITY);
        assert!(!r.contains(9));
        assert!(r.contains(10));
    }

    #[test]
    fn keys_by_topic_pointers_or_bytes() {
        let cfg = Config::for_test(json!({
            "topics": ["trade", "book"],
            "dedupe_by": {"trade": ["/data/t"], "*": ["/u"]},
        }));
        let mut k = Keys::new(&cfg);
        // Same trade id, different bytes (a per-connection field): one key.
        assert_eq!(
            k.key(br#"{"topic":"trade","conn":1,"data":{"t":7}}"#),
            k.key(br#"{"topic":"trade","conn":2,"data":{"t":7}}"#)
        );
        assert_ne!(
            k.key(br#"{"topic":"trade","data":{"t":7}}"#),
            k.key(br#"{"topic":"trade","data":{"t":8}}"#)
        );
        // "*" for book; the same value in another topic is another key.
        assert_eq!(
            k.key(br#"{"topic":"book","u":5,"x":1}"#),
            k.key(br#"{"topic":"book","u":5,"x":2}"#)
        );
        assert_ne!(
            k.key(br#"{"topic":"book","u":7}"#),
            k.key(br#"{"topic":"trade","data":{"t":7}}"#)
        );
        // No value at any pointer: the bytes.
        assert_ne!(
            k.key(br#"{"topic":"book","x":1}"#),
            k.key(br#"{"topic":"book","x":2}"#)
        );
        // Some of them: those (Bitfinex: a trade has /1 and /2/0, a ticker /1/0...).
        let mut k = Keys::new(&Config::for_test(
            json!({"dedupe_by": ["/1", "/2/0", "/1/0", "/1/2", "/1/6"]}),
        ));
        assert_eq!(
            k.key(br#"[17,"te",[401597393,1574694475039,0.005,7244.9]]"#),
            k.key(br#"[5,"te",[401597393,1574694475039,0.005,7244.9]]"#)
        );
        assert_ne!(
            k.key(br#"[17,"te",[401597393,1574694475039,0.005,7244.9]]"#),
            k.key(br#"[17,"tu",[401597393,1574694475039,0.005,7244.9]]"#)
        );
        assert_eq!(
            k.key(br#"[17,[7616.5,31,7616.6,44,-49.6,-0.0065,7616.5,5227,7685.6,7530]]"#),
            k.key(br#"[8,[7616.5,31,7616.6,44,-49.6,-0.0065,7616.5,5227,7685.6,7530]]"#)
        );
        assert_ne!(
            k.key(br#"[17,[7616.5,31,7616.6,44,-49.6,-0.0065,7616.5,5227,7685.6,7530]]"#),
            k.key(br#"[17,[7616.4,31,7616.6,44,-49.6,-0.0065,7616.5,5227,7685.6,7530]]"#)
        );
        let mut bytes = Keys::new(&Config::for_test(json!({})));
        assert_eq!(bytes.key(b"{\"a\":1}"), bytes.key(b"{\"a\":1}"));
        assert_ne!(bytes.key(b"{\"a\":1}"), bytes.key(b"{\"a\": 1}"));
        assert!(parse(json!({"nope": ["/a"]}), &["t".into()]).is_err());
        assert!(parse(json!(["a"]), &["t".into()]).is_err());
    }
}
