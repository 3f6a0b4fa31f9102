//! Each message's fate, decided without a socket: one call ([`Judge::judge`]) per
//! frame returns the [`Verdict`]: the line to write and its file (a topic's: data; or
//! the control file), or that the frame is keep-alive traffic, or why it is refused; a
//! heartbeat reply it calls for waits in the judge ([`Judge::take_reply`]).
//!
//! Each mechanism is one file that parses its piece of the config and applies its
//! rule: [`decode`] (`binary_frames`), [`pong`] (`pong_text`), [`heartbeat`]
//! (`heartbeat_replies`), [`route_ids`] (`route_ids`), [`control`]
//! (`control_messages`), [`template`] (subscribe, ping and reply messages),
//! [`sequence`] (sequence gaps), [`cursor`] (resume by cursor, with the replay
//! written once by [`dedupe`] keys); the
//! reader's `welcome` gives the judge its plain-text greeting, if any. [`route`] decides the file; [`jsonline`] is the JSON check that
//! finds every pointer the mechanisms look at in one pass.

pub(crate) mod control;
pub(crate) mod cursor;
pub(crate) mod decode;
pub(crate) mod dedupe;
pub(crate) mod heartbeat;
pub mod json;
// The path the crate and examples/check_speed.rs (through lib.rs) use.
pub use json as jsonline;
pub(crate) mod pong;
pub(crate) mod reconnect_on;
pub(crate) mod route;
pub(crate) mod route_ids;
pub(crate) mod sequence;
pub(crate) mod template;

use std::ops::Range;

use crate::batch::Dest;
use crate::status::Count;
use control::ControlRules;
use cursor::CursorSpec;
use decode::{Decoder, Undecodable};
use dedupe::{DedupeBy, KeyRing, KeyRule, bytes_key};
use heartbeat::{Heartbeats, PatternSpec, RuleSpec};
use jsonline::{Pointers, Reject};
use pong::PongText;
use reconnect_on::{NoticeSpec, ReconnectOn};
use route::Router;
use route_ids::{RouteIds, RouteIdsSpec};
use sequence::{Break, SequenceSpec, Sequences, Tracker};
use template::Template;

/// The pointer lookups one check pass does for a config, resolved once when the config
/// is loaded: the route pointers first (indices `0..route`), then the heartbeat rules'
/// and `route_ids`' pointers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lookups {
    /// Every pointer the check finds.
    ptrs: Pointers,
    /// How many of them (from the start) make the route key.
    route: usize,
    /// The heartbeat rules, resolved against `ptrs`.
    heartbeats: Heartbeats,
    /// `route_ids`, resolved against `ptrs`.
    learn: Option<RouteIds>,
    /// `control_messages`, resolved against `ptrs`.
    control: ControlRules,
    /// The notices that start a planned reconnect (`reconnect_on`), resolved against
    /// `ptrs`.
    reconnect_on: ReconnectOn,
    /// The `sequence` rules per topic, resolved against `ptrs`.
    sequences: Sequences,
    /// The pointer of `cursor`, in `ptrs`.
    cursor: Option<usize>,
    /// Whether `cursor` or `sequence` looks at each data message.
    per_data: bool,
    /// `dedupe_by`, resolved against `ptrs`, when something keys messages (a
    /// resume's replay, redundant lines): each kept message's key comes from this
    /// check's values, with no second parse.
    keys: Option<KeyRule>,
}

/// A [`Lookups`] that cannot be built: the config field to blame, and why.
pub(crate) type LookupError = (&'static str, String);

impl Lookups {
    /// Resolves `route_by`, the heartbeat rules, `route_ids`, the control rules, the
    /// notices, the sequence rules and the cursor into one set of pointers.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        route_by: &[String],
        rules: &[RuleSpec],
        ids: Option<&RouteIdsSpec>,
        control: &[PatternSpec],
        notices: &[NoticeSpec],
        topics: &[String],
        sequence: &SequenceSpec,
        cursor: Option<&CursorSpec>,
        dedupe: Option<&DedupeBy>,
    ) -> Result<Lookups, LookupError> {
        let mut ptrs = Pointers::default();
        for p in route_by {
            ptrs.add(p).map_err(|e| ("route_by", e))?;
        }
        let route = route_by.len();
        if ptrs.len() != route {
            return Err(("route_by", "names the same pointer twice".into()));
        }
        let heartbeats = Heartbeats::new(rules, &mut ptrs).map_err(|e| ("heartbeat_replies", e))?;
        let learn = ids
            .map(|spec| RouteIds::new(spec, &mut ptrs))
            .transpose()
            .map_err(|e| ("route_ids", e))?;
        let control = ControlRules::new(control, &mut ptrs).map_err(|e| ("control_messages", e))?;
        let reconnect_on = ReconnectOn::new(notices, &mut ptrs).map_err(|e| ("reconnect_on", e))?;
        let sequences = Sequences::new(sequence, topics, &mut ptrs).map_err(|e| ("sequence", e))?;
        let cursor = cursor
            .map(|c| ptrs.add(&c.at))
            .transpose()
            .map_err(|e| ("cursor", e))?;
        let keys = dedupe
            .map(|d| KeyRule::new(d, topics, &mut ptrs))
            .transpose()
            .map_err(|e| ("dedupe_by", e))?;
        Ok(Lookups {
            ptrs,
            route,
            heartbeats,
            learn,
            control,
            reconnect_on,
            per_data: cursor.is_some() || !sequences.is_empty(),
            sequences,
            cursor,
            keys,
        })
    }

    /// Whether `sequence` has rules.
    pub(crate) fn has_sequences(&self) -> bool {
        !self.sequences.is_empty()
    }
}

/// A frame as it came off the socket.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Frame<'m> {
    /// A text frame's payload (UTF-8, checked by tungstenite).
    Text(&'m [u8]),
    /// A binary frame's payload.
    Binary(&'m [u8]),
}

/// What becomes of one frame.
#[derive(Debug)]
pub(crate) enum Verdict<'m> {
    /// A message to record.
    Keep {
        /// Its JSON text (decoded, for a binary frame).
        text: &'m [u8],
        /// It spans lines: its line is the compact form.
        multiline: bool,
        /// Its file: a topic's (data) or the control file.
        dest: Dest,
    },
    /// The answer to our keep-alive: traffic, not data.
    Pong,
    /// A data message recorded already (a resume's replay, by its `dedupe_by` key):
    /// not written again.
    Duplicate,
    /// The venue's documented plain-text greeting (`welcome.text`): not JSON, so not
    /// written, and not refused either.
    Greeting,
    /// Refused, and counted under `why`; `sample` is what the log shows of it.
    Refused {
        /// The counter of the reason.
        why: Count,
        /// The start of the frame.
        sample: &'m [u8],
    },
}

/// Judges one connection's frames for a config.
#[derive(Debug)]
pub(crate) struct Judge<'a> {
    lookups: &'a Lookups,
    pong: &'a PongText,
    /// The plain-text greeting of `welcome`, if the venue sends one.
    greeting: Option<&'a [u8]>,
    /// Where the check put each pointer's value in the current message.
    found: Vec<Option<Range<usize>>>,
    router: Router<'a>,
    /// Turns binary frames into text.
    decoder: Decoder,
    /// What the mechanisms keep from message to message.
    state: State,
}

/// The judge's state across messages, apart from routing.
#[derive(Debug, Default)]
struct State {
    /// `{counter}` in templates: one more for every message that uses it.
    counter: u64,
    /// The heartbeat reply to the last kept message, if one is due.
    reply: Option<String>,
    /// A kept message matched `reconnect_on`.
    notice: bool,
    /// The sequence rules' expectations and breaks (`sequence`).
    seq: Tracker,
    /// The newest value at the `cursor` pointer.
    newest: Option<i128>,
    /// The `dedupe_by` key of the last kept message, when [`Lookups::keys`] is set.
    key: u64,
    /// With `cursor`: the keys of recent data messages, so that a resume's replay is
    /// written once.
    resume: Option<Resume>,
}

/// The keys of the data messages recorded lately (`dedupe_by`).
struct Resume {
    ring: KeyRing,
}

impl std::fmt::Debug for Resume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resume")
    }
}

impl<'a> Judge<'a> {
    /// A judge for the routing, keep-alive and binary settings of a config.
    pub(crate) fn new(
        lookups: &'a Lookups,
        topics: &[String],
        separator: &'a str,
        pong: &'a PongText,
        greeting: Option<&'a [u8]>,
        decoder: Decoder,
    ) -> Judge<'a> {
        Judge {
            lookups,
            pong,
            greeting,
            found: vec![None; lookups.ptrs.len()],
            router: Router::new(topics, lookups.route, separator, lookups.learn.as_ref()),
            decoder,
            state: State::default(),
        }
    }

    /// Resumes from `newest` (the value saved by the last run) and writes each data
    /// message once (by its `dedupe_by` key) however often a resume replays it.
    pub(crate) fn with_cursor(mut self, newest: Option<i128>) -> Self {
        self.state.newest = newest;
        self.state.resume = Some(Resume {
            ring: KeyRing::new(),
        });
        self
    }

    /// The fate of one frame.
    #[inline]
    pub(crate) fn judge<'m>(&'m mut self, frame: Frame<'m>) -> Verdict<'m> {
        match frame {
            Frame::Text(t) => {
                if self.pong.is_pong(t) {
                    return Verdict::Pong;
                }
                if self.greeting == Some(t) {
                    return Verdict::Greeting;
                }
                self.message(t)
            }
            Frame::Binary(b) => self.binary(b),
        }
    }

    /// A binary frame: decoded, then judged as the text it holds. Out of line, so that
    /// the text path stays small.
    #[inline(never)]
    fn binary<'m>(&'m mut self, b: &'m [u8]) -> Verdict<'m> {
        let Judge {
            decoder,
            lookups,
            found,
            router,
            state,
            ..
        } = self;
        match decoder.decode(b) {
            Ok(text) => Self::judge_message(lookups, found, router, state, text),
            Err(Undecodable::Binary) => Verdict::Refused {
                why: Count::RejectBinary,
                sample: b,
            },
            Err(Undecodable::TooLarge) => Verdict::Refused {
                why: Count::RejectTooLarge,
                sample: &b[..b.len().min(16)],
            },
        }
    }

    /// A message's text.
    #[inline(always)]
    fn message<'m>(&mut self, msg: &'m [u8]) -> Verdict<'m> {
        Self::judge_message(
            self.lookups,
            &mut self.found,
            &mut self.router,
            &mut self.state,
            msg,
        )
    }

    /// The JSON check, the heartbeat rules and the route of one message.
    #[inline(always)]
    fn judge_message<'m>(
        lookups: &Lookups,
        found: &mut [Option<Range<usize>>],
        router: &mut Router<'_>,
        state: &mut State,
        msg: &'m [u8],
    ) -> Verdict<'m> {
        let valid = match jsonline::check_with(msg, &lookups.ptrs, found) {
            Ok(v) => v,
            Err(Reject::Empty) => {
                return Verdict::Refused {
                    why: Count::RejectEmpty,
                    sample: msg,
                };
            }
            Err(Reject::NotJson) => {
                return Verdict::Refused {
                    why: Count::RejectNotJson,
                    sample: msg,
                };
            }
        };
        let heartbeats = &lookups.heartbeats;
        if !heartbeats.is_empty() {
            state.reply = heartbeats.reply(msg, found, valid.escaped, &mut state.counter);
        }
        // Set here, cleared by take_notice: no store per message on the common path.
        if !lookups.reconnect_on.is_empty()
            && lookups.reconnect_on.matches(msg, found, valid.escaped)
        {
            state.notice = true;
        }
        let dest = Self::dest(lookups, router, msg, found, valid.escaped);
        // One test on the common path, where nothing keys messages.
        if let Some(rule) = &lookups.keys {
            state.key = Self::key(rule, dest, msg, found);
        }
        // One test on the common path, where neither cursor nor sequence is set.
        if let (true, Dest::Topic(topic)) = (lookups.per_data, dest) {
            if Self::replayed(lookups, found, state, topic as usize, msg, valid.escaped) {
                return Verdict::Duplicate;
            }
        }
        Verdict::Keep {
            text: msg,
            multiline: valid.multiline,
            dest,
        }
    }

    /// The file of a checked message.
    #[inline(always)]
    fn dest(
        lookups: &Lookups,
        router: &mut Router<'_>,
        msg: &[u8],
        found: &[Option<Range<usize>>],
        escaped: u32,
    ) -> Dest {
        let dest = router.dest(msg, found, escaped);
        // About the subscription, not data, whatever its route key says (the router
        // still sees it: a route_ids announcement may be one).
        if lookups.control.is_control(msg, found, escaped) {
            return Dest::Control;
        }
        dest
    }

    /// The `dedupe_by` key of a checked message going to `dest`. Out of line: the
    /// common path only tests whether there is a rule.
    #[inline(never)]
    fn key(rule: &KeyRule, dest: Dest, msg: &[u8], found: &[Option<Range<usize>>]) -> u64 {
        let topic = match dest {
            Dest::Topic(t) => Some(t as usize),
            Dest::Control => None,
        };
        rule.key(topic, msg, found)
    }

    /// The `dedupe_by` key of the message kept last (by the last [`Judge::judge`]
    /// that kept one), when the config keys messages (`cursor`, `redundant`).
    #[inline]
    pub(crate) fn last_key(&self) -> u64 {
        self.state.key
    }

    /// A data message of `topic` with cursor or sequence rules: true if a resume
    /// replayed it (recorded already); else notes its cursor value and checks its
    /// number. Out of line: the common path only tests the flag.
    #[inline(never)]
    fn replayed(
        lookups: &Lookups,
        found: &[Option<Range<usize>>],
        state: &mut State,
        topic: usize,
        msg: &[u8],
        escaped: u32,
    ) -> bool {
        if let Some(r) = state.resume.as_mut() {
            if !r.ring.insert(state.key) {
                return true;
            }
        }
        if let Some(at) = lookups.cursor {
            if let Some(v) = sequence::number(msg, found, at) {
                state.newest = Some(state.newest.map_or(v, |n| n.max(v)));
            }
        }
        if !lookups.sequences.is_empty() {
            state
                .seq
                .check(&lookups.sequences, topic, msg, found, escaped);
        }
        false
    }

    /// Whether a message kept since the last call announced a close
    /// (`reconnect_on`); clears it.
    #[inline]
    pub(crate) fn take_notice(&mut self) -> bool {
        if self.state.notice {
            self.state.notice = false;
            return true;
        }
        false
    }

    /// The sequence breaks found since the last call; `now_ms` is the time now, and
    /// the time of the messages judged next.
    #[inline]
    pub(crate) fn take_breaks(&mut self, now_ms: u64) -> Option<Vec<Break>> {
        self.state.seq.take_breaks(now_ms)
    }

    /// Remembers the key of a data message recorded before this process started,
    /// keyed as [`Judge::judge`] keys it (the router may learn an id from it: the
    /// connection that follows forgets it).
    pub(crate) fn remember(&mut self, msg: &[u8]) {
        let Some(r) = self.state.resume.as_mut() else {
            return;
        };
        let lookups = self.lookups;
        let key = match (
            &lookups.keys,
            jsonline::check_with(msg, &lookups.ptrs, &mut self.found),
        ) {
            (Some(rule), Ok(valid)) => {
                let dest = Self::dest(lookups, &mut self.router, msg, &self.found, valid.escaped);
                Self::key(rule, dest, msg, &self.found)
            }
            _ => bytes_key(msg),
        };
        r.ring.insert(key);
    }

    /// The newest value recorded at the `cursor` pointer.
    pub(crate) fn newest(&self) -> Option<i128> {
        self.state.newest
    }

    /// The heartbeat reply due for the last kept message, if one is: held here rather
    /// than in the verdict, so that the verdict of a message stays two words and a
    /// tag.
    #[inline]
    pub(crate) fn take_reply(&mut self) -> Option<String> {
        self.state.reply.take()
    }

    /// A template's text now (placeholders filled in; `cursor`: what `{cursor}`
    /// becomes).
    pub(crate) fn render(&mut self, t: &Template, cursor: Option<&str>) -> String {
        t.render(&mut self.state.counter, cursor, |_| None)
    }

    /// A new connection: ids learnt on the last one and the sequence expectations
    /// mean nothing now.
    pub(crate) fn new_connection(&mut self) {
        self.router.new_connection();
        self.state.reply = None;
        self.state.notice = false;
        self.state.seq.new_connection();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use dedupe::Keys;
    use serde_json::json;

    fn kept(v: &Verdict) -> bool {
        matches!(v, Verdict::Keep { .. })
    }

    #[test]
    fn keys_come_from_the_checks_own_values() {
        let cfg = Config::for_test(json!({
            "ws_url": "ws://127.0.0.1:1/?cursor={cursor}",
            "topics": ["a", "b"],
            "route_by": ["/t"],
            "cursor": {"at": "/n"},
            "dedupe_by": {"a": ["/id"]},
        }));
        let m = &cfg.messages;
        let judge = Judge::new(
            &m.lookups,
            &m.topics,
            m.routing.separator(),
            &m.pong_text,
            None,
            Decoder::new(m.binary, 1 << 20),
        );
        let mut j = judge.with_cursor(None);
        // Recorded by the last run; replayed over another connection (another
        // per-connection field): the same id, so written once.
        j.remember(br#"{"t":"a","id":1,"n":5,"conn":"x"}"#);
        assert!(matches!(
            j.judge(Frame::Text(br#"{"t":"a","id":1,"n":5,"conn":"y"}"#)),
            Verdict::Duplicate
        ));
        assert!(kept(&j.judge(Frame::Text(br#"{"t":"a","id":2,"n":6}"#))));
        // The route value is the string it is, escaped or not.
        assert!(matches!(
            j.judge(Frame::Text(br#"{"t":"\u0061","id":2,"n":6}"#)),
            Verdict::Duplicate
        ));
        // "b" has no pointers: its key is its bytes.
        assert!(kept(&j.judge(Frame::Text(br#"{"t":"b","id":1,"n":7}"#))));
        assert!(matches!(
            j.judge(Frame::Text(br#"{"t":"b","id":1,"n":7}"#)),
            Verdict::Duplicate
        ));
        assert!(kept(&j.judge(Frame::Text(br#"{"t":"b","id":1, "n":7}"#))));
        // The handover's own keys (a parse of their own) agree with the judge's.
        let mut keys = Keys::new(&cfg);
        for msg in [
            &br#"{"t":"a","id":3,"n":8}"#[..],
            br#"{"t":"b","id":3,"n":8}"#,
            br#"{"t":"\u0061","id":4}"#,
        ] {
            assert!(kept(&j.judge(Frame::Text(msg))));
            assert_eq!(
                j.last_key(),
                keys.key(msg),
                "{}",
                String::from_utf8_lossy(msg)
            );
        }
    }
}
