//! Make-before-break: a planned reconnect opens and subscribes a new connection on a
//! second reader thread while the old connection still delivers on the first, and
//! hands over once both have delivered a common message (or after
//! `handover_overlap`). Every message is written once, in order, by the one thread
//! that owns the line sink:
//!
//! - the old connection writes as usual and remembers each message's key
//!   ([`dedupe`](crate::message::dedupe)) in a bounded [`KeyRing`];
//! - the new connection writes nothing: it keeps its messages, with their keys, as
//!   pending;
//! - the handover comes when the new connection delivers a key the old one wrote
//!   (it is behind or level), or the old one delivers a key the new one holds (it is
//!   ahead). The old connection stops there; the first thread takes over the new
//!   connection's socket, writes the pending messages the old one did not, and, for
//!   `handover_overlap` more, drops the new connection's messages whose keys the old
//!   one wrote (the duplicate tail);
//! - if the new connection fails, the old one records on until it closes; if the old
//!   one closes first, the new one takes over at once (the journal says whether they
//!   overlapped, and the gap if not).
//!
//! Outside a handover nothing here runs: the session's gate is `None`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::Message;

use super::connect::{self, Ws, tcp_of};
use super::session::{End, Session};
use crate::clock::unix_ms;
use crate::config::{Config, WsUrl};
use crate::journal::coverage::{Handover, Span};
use crate::message::dedupe::{KEY_CAPACITY, KeyRing, KeySet, Keys};
use crate::shutdown::Shutdown;
use crate::status::{Count, Stats};

/// The new connection may run ahead of the old one by at most this many bytes of
/// pending messages (and [`KEY_CAPACITY`] messages); then it takes over at once.
const PENDING_MAX_BYTES: usize = 32 << 20;
/// How long the new connection's reads wait, so that it notices the handover.
const NEW_POLL: Duration = Duration::from_millis(20);

/// What the session does with a message, as the gate decides.
pub(crate) enum Admit {
    /// Write it.
    Write,
    /// Drop it: the other connection's copy is written.
    Skip,
    /// Drop it and stop reading: the handover happens here.
    Stop,
}

/// What the session does at a drain, as the gate decides.
pub(crate) enum Poll {
    /// Nothing to do.
    Go,
    /// The handover happens now: stop reading.
    Stop,
    /// The new connection failed: record on without the gate.
    Failed,
    /// The duplicate tail is over: the gate goes (and its journal line is written).
    Done,
}

/// Where the handover stands.
#[derive(Debug)]
enum Phase {
    /// The new connection is connecting or subscribing.
    Opening,
    /// The new connection is subscribed (since then) and delivering to pending.
    Subscribed(Instant),
    /// The handover happens, for this reason; `true` if a common message decided it.
    Joined(&'static str, bool),
    /// The old connection ended first.
    OldGone,
    /// The new connection failed.
    Failed(String),
    /// Shutdown.
    Quit,
}

/// What the two readers share during the overlap.
struct Overlap {
    phase: Phase,
    /// Keys of the messages the old connection wrote during the overlap.
    seen: KeyRing,
    /// The new connection's messages (text) and keys, in order.
    pending: Vec<(Vec<u8>, u64)>,
    pending_keys: KeySet,
    pending_bytes: usize,
    /// Copies not written, so far.
    duplicates: u64,
}

fn lock(m: &Mutex<Overlap>) -> MutexGuard<'_, Overlap> {
    // A reader that panicked aborts the process (release) or the test: the data
    // behind a poisoned lock is still whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The filter in front of a session's line sink during a handover.
pub(crate) struct Gate {
    keys: Keys,
    role: Role,
}

enum Role {
    /// The old connection, during the overlap.
    Old {
        shared: Arc<Mutex<Overlap>>,
        overlap: Duration,
    },
    /// The new connection, after the handover: drop what the old one wrote.
    Tail {
        seen: KeyRing,
        until: Instant,
        record: Handover,
    },
}

impl Gate {
    /// Whether this is the old connection's filter.
    pub(crate) fn is_old(&self) -> bool {
        matches!(self.role, Role::Old { .. })
    }

    /// The journal line of a finished tail.
    pub(crate) fn into_record(self) -> Option<Handover> {
        match self.role {
            Role::Tail { record, .. } => Some(record),
            Role::Old { .. } => None,
        }
    }

    /// Decides about a text or binary message (a binary one by the key of the text
    /// it decodes to).
    pub(crate) fn admit_message(&mut self, msg: &Message, stats: &Stats) -> Admit {
        let key = match msg {
            Message::Text(t) => self.keys.key(t.as_bytes()),
            Message::Binary(b) => self.keys.key_binary(b),
            _ => return Admit::Write,
        };
        self.admit_key(key, stats)
    }

    fn admit_key(&mut self, key: u64, stats: &Stats) -> Admit {
        match &mut self.role {
            Role::Old { shared, .. } => {
                let mut o = lock(shared);
                match o.phase {
                    Phase::Opening | Phase::Subscribed(_) => {
                        if o.pending_keys.contains(&key) {
                            // The new connection is ahead: it has this one and all after.
                            o.phase = Phase::Joined(
                                "the old connection delivered a message the new one had",
                                true,
                            );
                            o.duplicates += 1;
                            stats.add(Count::HandoverDuplicates, 1);
                            Admit::Stop
                        } else {
                            o.seen.insert(key);
                            Admit::Write
                        }
                    }
                    Phase::Failed(_) => Admit::Write,
                    Phase::Joined(..) | Phase::OldGone | Phase::Quit => Admit::Stop,
                }
            }
            Role::Tail { seen, record, .. } => {
                if seen.contains(key) {
                    record.duplicates += 1;
                    stats.add(Count::HandoverDuplicates, 1);
                    Admit::Skip
                } else {
                    Admit::Write
                }
            }
        }
    }

    /// Decides at a drain: the overlap's deadline, a failed new connection, the
    /// tail's end.
    pub(crate) fn poll(&mut self, now: Instant) -> Poll {
        match &mut self.role {
            Role::Old { shared, overlap } => {
                let mut o = lock(shared);
                match o.phase {
                    Phase::Opening => Poll::Go,
                    Phase::Subscribed(at) if now.duration_since(at) >= *overlap => {
                        o.phase = Phase::Joined(
                            "handover_overlap passed without a message both delivered",
                            false,
                        );
                        Poll::Stop
                    }
                    Phase::Subscribed(_) => Poll::Go,
                    Phase::Failed(_) => Poll::Failed,
                    Phase::Joined(..) | Phase::OldGone | Phase::Quit => Poll::Stop,
                }
            }
            Role::Tail { until, .. } => {
                if now >= *until {
                    Poll::Done
                } else {
                    Poll::Go
                }
            }
        }
    }
}

/// The new connection, handed to the first thread.
pub(crate) struct Handed {
    /// Its socket.
    pub(crate) ws: Ws,
    /// Its session in the journal.
    pub(crate) span: Span,
    /// Whether the old connection still needs its close frame.
    pub(crate) old_open: bool,
    /// Why the old connection's session ended.
    pub(crate) old_why: String,
    /// When it stopped delivering (Unix ms).
    pub(crate) old_closed_ms: u64,
    pending: Vec<(Vec<u8>, u64)>,
    seen: KeyRing,
    keys: Keys,
    record: Handover,
}

impl Handed {
    /// Writes the pending messages the old connection did not, through `write`
    /// (which returns whether the line sink took it); then the gate for the new
    /// connection's duplicate tail.
    pub(crate) fn take_over(
        mut self,
        cfg: &Config,
        stats: &Stats,
        mut write: impl FnMut(&[u8], &mut Ws) -> bool,
    ) -> (Ws, Span, Gate) {
        for (text, key) in std::mem::take(&mut self.pending) {
            if self.seen.contains(key) {
                self.record.duplicates += 1;
                stats.add(Count::HandoverDuplicates, 1);
            } else if write(&text, &mut self.ws) {
                self.span.message();
            }
        }
        let gate = Gate {
            keys: self.keys,
            role: Role::Tail {
                seen: self.seen,
                until: Instant::now() + cfg.continuity.handover_overlap,
                record: self.record,
            },
        };
        (self.ws, self.span, gate)
    }
}

/// How a handover ended.
pub(crate) enum Outcome {
    /// The new connection takes over.
    Handed(Box<Handed>),
    /// The new connection failed; the old one records on.
    Failed,
    /// The old connection ended and the new one failed (or shutdown): reconnect as
    /// after any end.
    End(End),
}

/// Runs a handover: opens the new connection on a second thread while `session`
/// (the old connection, `old` its journal session) reads on; `subs` are the
/// subscribe messages, rendered.
pub(crate) fn overlap(
    cfg: &Config,
    stats: &Stats,
    shutdown: &Shutdown,
    session: &mut Session<'_, '_>,
    old: &Span,
    subs: &[String],
    url: Option<&WsUrl>,
) -> Outcome {
    let shared = Arc::new(Mutex::new(Overlap {
        phase: Phase::Opening,
        seen: KeyRing::new(),
        pending: Vec::new(),
        pending_keys: KeySet::default(),
        pending_bytes: 0,
        duplicates: 0,
    }));
    session.set_gate(Some(Gate {
        keys: Keys::new(cfg),
        role: Role::Old {
            shared: shared.clone(),
            overlap: cfg.continuity.handover_overlap,
        },
    }));
    let set_phase = |p: Phase| {
        let mut o = lock(&shared);
        if !matches!(o.phase, Phase::Failed(_)) {
            o.phase = p;
        }
    };
    thread::scope(|scope| {
        let child = thread::Builder::new()
            .name("reader-new".into())
            .spawn_scoped(scope, || open_new(cfg, stats, shutdown, subs, url, &shared));
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                log::warn!("handover: cannot start a second reader thread: {e}");
                session.set_gate(None);
                stats.add(Count::HandoversFailed, 1);
                return Outcome::Failed;
            }
        };
        let old_end = match session.run() {
            End::HandedOver => None,
            End::HandoverFailed => {
                let _ = child.join();
                let why = match &lock(&shared).phase {
                    Phase::Failed(why) => why.clone(),
                    _ => "failed".into(),
                };
                log::warn!("handover: {why}; the old connection records on until it closes");
                stats.add(Count::HandoversFailed, 1);
                stats.set_error(format!("handover: {why}"));
                session.no_more_plans();
                return Outcome::Failed;
            }
            End::Quit => {
                set_phase(Phase::Quit);
                let _ = child.join();
                return Outcome::End(End::Quit);
            }
            other => {
                set_phase(Phase::OldGone);
                Some(other)
            }
        };
        session.set_gate(None);
        let handover_ms = unix_ms();
        let opened = child.join().ok().flatten();
        let old_why = match &old_end {
            None => "handover".to_string(),
            Some(End::Lost { reason, .. } | End::GoingAway(reason)) => reason.clone(),
            Some(_) => "ended".to_string(),
        };
        let Some(new) = opened else {
            let why = match &lock(&shared).phase {
                Phase::Failed(why) => why.clone(),
                _ => "the new connection did not open".into(),
            };
            log::warn!("handover: {why}, and the old connection ended ({old_why})");
            stats.add(Count::HandoversFailed, 1);
            return Outcome::End(old_end.unwrap_or(End::failed(why)));
        };
        let mut o = lock(&shared);
        let (why, joined) = match o.phase {
            Phase::Joined(why, joined) => (why, joined),
            _ => ("the old connection ended first", false),
        };
        let mut span = new.span;
        let old_last = old.last_msg_ms.unwrap_or(handover_ms);
        let gap_ms = if joined {
            0
        } else {
            let first = span.first_msg_ms.unwrap_or(new.subscribed_ms);
            // Without a common message, the new connection covers from its first
            // message: what came before it is not known to be recorded.
            span.subscribed_ms = Some(first.max(span.connected_ms));
            first.saturating_sub(old_last)
        };
        let record = Handover {
            old_connected_ms: old.connected_ms,
            new_connected_ms: span.connected_ms,
            new_subscribed_ms: new.subscribed_ms,
            handover_ms,
            joined,
            why: why.to_string(),
            duplicates: o.duplicates,
            gap_ms,
        };
        log::info!(
            "handover: {why}; overlap {:.3}s, {} messages pending on the new connection",
            handover_ms.saturating_sub(new.subscribed_ms) as f64 / 1000.0,
            o.pending.len()
        );
        Outcome::Handed(Box::new(Handed {
            ws: new.ws,
            span,
            old_open: old_end.is_none(),
            old_why,
            old_closed_ms: handover_ms,
            pending: std::mem::take(&mut o.pending),
            seen: std::mem::take(&mut o.seen),
            keys: Keys::new(cfg),
            record,
        }))
    })
}

/// The new connection as the second thread leaves it.
struct Opened {
    ws: Ws,
    span: Span,
    subscribed_ms: u64,
}

/// The second reader thread: connects, subscribes, and keeps what the new connection
/// delivers as pending until the handover.
fn open_new(
    cfg: &Config,
    stats: &Stats,
    shutdown: &Shutdown,
    subs: &[String],
    url: Option<&WsUrl>,
    shared: &Mutex<Overlap>,
) -> Option<Opened> {
    let fail = |why: String| {
        lock(shared).phase = Phase::Failed(why);
        None
    };
    stats.add(Count::Attempts, 1);
    let mut ws = match connect::connect(&cfg.connection, url) {
        Ok(ws) => ws,
        Err(e) => return fail(format!("the new connection: {e}")),
    };
    let mut span = Span::start();
    let mut keys = Keys::new(cfg);
    // A venue that wants its welcome first (KuCoin, Hyperliquid) gets the same wait as
    // on any connect; what arrives meanwhile is kept with the rest.
    let mut early = Vec::new();
    if let Some(w) = &cfg.messages.welcome {
        if let Err(e) = await_welcome(w, &mut ws, &mut keys, &mut early, shutdown) {
            return fail(format!("the new connection: waiting for the welcome: {e}"));
        }
    }
    let interval = cfg.connection.subscribe_interval;
    for (i, sub) in subs.iter().enumerate() {
        if i > 0 && !interval.is_zero() && !shutdown.sleep(interval) {
            return None;
        }
        if let Err(e) = ws.send(Message::text(sub.as_str())) {
            return fail(format!(
                "the new connection: sending the subscribe message: {e}"
            ));
        }
    }
    span.subscribed();
    let subscribed_ms = span.subscribed_ms.unwrap_or(span.connected_ms);
    {
        let mut o = lock(shared);
        if matches!(o.phase, Phase::Opening) {
            o.phase = Phase::Subscribed(Instant::now());
        }
        // Not in the old connection's stream: written after the handover as they are.
        o.pending.extend(early);
    }
    log::info!(
        "handover: new connection to {} subscribed",
        cfg.connection.ws_url.url
    );
    if let Err(e) = tcp_of(&ws).set_read_timeout(Some(NEW_POLL)) {
        return fail(format!("the new connection: socket: {e}"));
    }
    let done = |ws, span| {
        Some(Opened {
            ws,
            span,
            subscribed_ms,
        })
    };
    loop {
        match lock(shared).phase {
            Phase::Joined(..) | Phase::OldGone => return done(ws, span),
            Phase::Quit => return None,
            _ => {}
        }
        if shutdown.requested() {
            return None;
        }
        let got = match ws.read() {
            Ok(Message::Text(t)) => {
                if cfg.messages.pong_text.is_pong(t.as_bytes()) {
                    continue;
                }
                let key = keys.key(t.as_bytes());
                Some((t.as_bytes().to_vec(), key))
            }
            Ok(Message::Binary(b)) => keys.decode(&b),
            Ok(Message::Close(f)) => {
                let _ = ws.flush();
                return fail(format!(
                    "the new connection was closed by the server ({})",
                    f.map(|f| format!("code {}", u16::from(f.code)))
                        .unwrap_or_default()
                ));
            }
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => return fail(format!("the new connection: read: {e}")),
        };
        let Some((text, key)) = got else { continue };
        if span.first_msg_ms.is_none() {
            span.first_msg_ms = Some(unix_ms());
        }
        let mut o = lock(shared);
        match o.phase {
            Phase::Opening | Phase::Subscribed(_) => {
                if o.seen.contains(key) {
                    // Behind or level with the old connection: the handover is here.
                    o.duplicates += 1;
                    stats.add(Count::HandoverDuplicates, 1);
                    o.phase = Phase::Joined(
                        "the new connection delivered a message the old one had",
                        true,
                    );
                    drop(o);
                    return done(ws, span);
                }
                o.pending_bytes += text.len();
                o.pending_keys.insert(key);
                o.pending.push((text, key));
                if o.pending.len() >= KEY_CAPACITY || o.pending_bytes >= PENDING_MAX_BYTES {
                    o.phase = Phase::Joined(
                        "the new connection ran ahead of the old one by more than the pending bound",
                        false,
                    );
                    drop(o);
                    return done(ws, span);
                }
            }
            // After the decision: the first thread filters it with the rest.
            _ => o.pending.push((text, key)),
        }
    }
}

/// Reads the new connection until its welcome (or the welcome's timeout), keeping
/// every other message in `early` (with a key no old message has).
fn await_welcome(
    w: &crate::reader::welcome::Welcome,
    ws: &mut Ws,
    keys: &mut Keys,
    early: &mut Vec<(Vec<u8>, u64)>,
    shutdown: &Shutdown,
) -> Result<(), String> {
    use crate::message::jsonline::{self, Pointers};
    use crate::reader::welcome::Greeting;
    let mut ptrs = Pointers::default();
    let pattern = match &w.greeting {
        Greeting::Json(p) => Some(p.resolve(&mut ptrs)?),
        Greeting::Text(_) => None,
    };
    let mut found = vec![None; ptrs.len()];
    tcp_of(ws)
        .set_read_timeout(Some(NEW_POLL))
        .map_err(|e| e.to_string())?;
    let end = Instant::now() + w.timeout;
    while Instant::now() < end && !shutdown.requested() {
        let text = match ws.read() {
            Ok(Message::Text(t)) => t.as_bytes().to_vec(),
            Ok(Message::Binary(b)) => match keys.decode(&b) {
                Some((t, _)) => t,
                None => continue,
            },
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        let is_welcome = match &pattern {
            None => w.is_text(&String::from_utf8_lossy(&text)),
            Some(p) => jsonline::check_with(&text, &ptrs, &mut found)
                .is_ok_and(|v| p.matches(&text, &found, v.escaped)),
        };
        // A text welcome is written nowhere (the judge drops it too); a JSON one is
        // recorded like the first welcome.
        if !(is_welcome && pattern.is_none()) {
            early.push((text, u64::MAX - early.len() as u64));
        }
        if is_welcome {
            return Ok(());
        }
    }
    Ok(())
}
