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
use dedupe::{KeyRing, Keys};
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
}

impl Lookups {
    /// Whether `sequence` has rules.
    pub(crate) fn has_sequences(&self) -> bool {
        !self.sequences.is_empty()
    }
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
        })
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
    /// With `cursor`: the keys of recent data messages, so that a resume's replay is
    /// written once.
    resume: Option<Resume>,
}

/// The keys of the data messages recorded lately (`dedupe_by`).
struct Resume {
    keys: Keys,
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

    /// Resumes from `newest` (the value saved by the last run) and, with `keys`,
    /// writes each data message once however often a resume replays it.
    pub(crate) fn with_cursor(mut self, newest: Option<i128>, keys: Option<Keys>) -> Self {
        self.state.newest = newest;
        self.state.resume = keys.map(|keys| Resume {
            keys,
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
        let mut dest = router.dest(msg, found, valid.escaped);
        // About the subscription, not data, whatever its route key says (the router
        // still sees it: a route_ids announcement may be one).
        if lookups.control.is_control(msg, found, valid.escaped) {
            dest = Dest::Control;
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

    /// A data message of `topic` with cursor or sequence rules: true if a resume
    /// replayed it (recorded already); else its cursor value and its number.
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
            if !r.ring.insert(r.keys.key(msg)) {
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

    /// Remembers the key of a data message recorded before this process started.
    pub(crate) fn remember(&mut self, msg: &[u8]) {
        if let Some(r) = self.state.resume.as_mut() {
            r.ring.insert(r.keys.key(msg));
        }
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
