//! Redundant lines (`redundant: true`): two connections to the same streams at once,
//! line A and line B, as exchanges run their multicast feeds twice. First arrival wins:
//! each message is written once, from the line that delivered it first, and a stretch
//! is a gap only when both lines missed it.
//!
//! Each line is a whole [`Reader`] on its own thread (its connect, back-off,
//! keep-alive, staleness, `data_timeout`, heartbeat replies, learnt `route_ids` and
//! journal sessions), whose line sink feeds the [`Arbiter`] instead of the channel:
//!
//! - while a line reads a burst, its sink keeps each message's key
//!   ([`dedupe`](crate::message::dedupe)) beside its line ([`Feed::keep`]);
//! - when the line ships the burst, it locks the arbiter once and moves the lines whose
//!   keys the arbiter's [`KeyRing`] did not hold into the one shared batch; the rest
//!   are the other line's copies, counted and dropped ([`Feed::ship`]);
//! - the arbiter alone holds the channel's sender, so the writer still sees one
//!   sender, and the lines reach the files in the order the bursts were arbitrated.
//!
//! A planned reconnect (`reconnect_on`, `max_connection_age`) of one line closes and
//! reopens that line at once while the other covers: no make-before-break. If the
//! other line is down then, the plan waits until it is up again.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::Reader;
use super::lines::{MAX_BATCH_BYTES, Out};
use super::session::{End, Session};
use crate::batch::{Batch, ReaderSide, Shipped, shape};
use crate::clock::Timing;
use crate::config::{Config, Output, Redundant, WsUrl};
use crate::message::dedupe::KeyRing;
use crate::shutdown::Shutdown;
use crate::status::{Count, Stats};

/// The lines' names, in the journal, the log and the status.
pub(crate) const NAMES: [&str; 2] = ["a", "b"];

/// What the two lines share.
pub(crate) struct Shared {
    arbiter: Mutex<Arbiter>,
    /// Whether each line is connected.
    up: [AtomicBool; 2],
}

/// First arrival wins: the keys written lately, and the one batch to the writer.
struct Arbiter {
    seen: KeyRing,
    batch: Batch,
    side: ReaderSide,
    per_batch: usize,
    /// Per line: the first message its connection wrote (a first arrival).
    first_written: [Option<u64>; 2],
    /// Per line: its connection's stream is known to start at or before the other
    /// line's position, so it delivers whatever the other would from there on: it
    /// shipped a copy of a message the other had written, or the other shipped a copy
    /// of this connection's first written message.
    joined: [bool; 2],
}

fn lock(m: &Mutex<Arbiter>) -> MutexGuard<'_, Arbiter> {
    // A line that panicked aborts the process (release) or the test: the batch behind
    // a poisoned lock is still whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The worse of two ship results: gone over paused over sent.
fn worse(a: Shipped, b: Shipped) -> Shipped {
    match (a, b) {
        (Shipped::Gone, _) | (_, Shipped::Gone) => Shipped::Gone,
        (Shipped::Paused, _) | (_, Shipped::Paused) => Shipped::Paused,
        _ => Shipped::Sent,
    }
}

/// A line's side of the arbiter: its sink's [`Out`].
pub(crate) struct Feed<'a> {
    shared: &'a Shared,
    line: usize,
    /// The key and end offset of each line in the sink's batch, in order.
    ends: Vec<(u64, usize)>,
}

impl Feed<'_> {
    /// The sink appended the line of a message whose `dedupe_by` key is `key`
    /// (its judge's), ending at `end` in its batch.
    #[inline]
    pub(crate) fn keep(&mut self, key: u64, end: usize) {
        self.ends.push((key, end));
    }

    /// Arbitrates the sink's batch: its first arrivals go into the shared batch (which
    /// ships when full), the other line's copies are dropped; `staged` is left empty.
    pub(crate) fn ship(
        &mut self,
        staged: &mut Batch,
        output: &Output,
        stats: &Stats,
        shutdown: &Shutdown,
    ) -> Shipped {
        let mut shipped = Shipped::Sent;
        if staged.lines == 0 {
            return shipped;
        }
        let (mut first, mut dups) = (0u64, 0u64);
        {
            let mut guard = lock(&self.shared.arbiter);
            let a = &mut *guard;
            if a.batch.lines > 0 && a.batch.period != staged.period {
                shipped = a.side.ship(&mut a.batch, output.on_full, stats, shutdown);
            }
            a.batch.period = staged.period;
            let mut ends = self.ends.iter();
            let mut start = 0;
            for seg in &staged.segments {
                for _ in 0..seg.lines {
                    let Some(&(key, end)) = ends.next() else {
                        break;
                    };
                    if a.seen.insert(key) {
                        if a.first_written[self.line].is_none() {
                            a.first_written[self.line] = Some(key);
                        }
                        a.batch.data.extend_from_slice(&staged.data[start..end]);
                        a.batch.end_line(seg.dest);
                        first += 1;
                        if a.batch.lines as usize >= a.per_batch
                            || a.batch.data.len() >= MAX_BATCH_BYTES
                        {
                            let s = a.side.ship(&mut a.batch, output.on_full, stats, shutdown);
                            shipped = worse(shipped, s);
                            a.batch.period = staged.period;
                        }
                    } else {
                        dups += 1;
                        // This line is level with or behind the other here.
                        a.joined[self.line] = true;
                        if a.first_written[1 - self.line] == Some(key) {
                            a.joined[1 - self.line] = true;
                        }
                    }
                    start = end;
                }
            }
            // The line's drain is the moment its burst goes to the writer, as on one
            // connection: never held back for the other line's next burst.
            if a.batch.lines > 0 {
                let s = a.side.ship(&mut a.batch, output.on_full, stats, shutdown);
                shipped = worse(shipped, s);
            }
        }
        let [messages, firsts, duplicates] = LINE_COUNTS[self.line];
        stats.add(messages, staged.lines as u64);
        stats.add(firsts, first);
        stats.add(duplicates, dups);
        self.ends.clear();
        let b = std::mem::take(staged);
        *staged = Batch::new(0, b.data, b.segments);
        shipped
    }
}

/// Each line's counters: messages, first arrivals, duplicates removed.
const LINE_COUNTS: [[Count; 3]; 2] = [
    [
        Count::LineAMessages,
        Count::LineAFirstArrivals,
        Count::LineADuplicates,
    ],
    [
        Count::LineBMessages,
        Count::LineBFirstArrivals,
        Count::LineBDuplicates,
    ],
];

/// Which line a [`Reader`] is.
pub(crate) struct LineOf<'a> {
    shared: &'a Shared,
    /// Whether the line has connected before.
    connected_before: std::cell::Cell<bool>,
    /// Since when a planned reconnect waits for the other line.
    waiting_since: std::cell::Cell<Option<Instant>>,
    /// 0 for A, 1 for B.
    pub(crate) index: usize,
    /// Its URL, when it is not the configured one (`ws_url_b`).
    pub(crate) url: Option<&'a WsUrl>,
}

impl LineOf<'_> {
    /// The line's name.
    pub(crate) fn name(&self) -> &'static str {
        NAMES[self.index]
    }

    /// True at the line's first connect (then not a reconnect).
    pub(crate) fn first_connect(&self) -> bool {
        !self.connected_before.replace(true)
    }

    /// The line is connected and subscribed (or not): the status follows.
    pub(crate) fn set_up(&self, up: bool, stats: &Stats) {
        // Under the lock, so that the two lines' updates of the one gauge do not race.
        let mut a = lock(&self.shared.arbiter);
        self.shared.up[self.index].store(up, Relaxed);
        // A new connection (or none): what the last one proved is void.
        self.waiting_since.set(None);
        a.first_written[self.index] = None;
        a.joined[self.index] = false;
        stats.set_line_connected(self.index, up);
        stats.set_connected(self.shared.up.iter().any(|u| u.load(Relaxed)));
    }

    /// If the other line is up and its connection is joined with this one's (it
    /// delivers every message this one would from here on), this line counts as
    /// down from now, so that the other, asking the same at the same moment, waits;
    /// true: it may reconnect for a plan. `anyway`: joined or not, if the other is
    /// up and has written something.
    pub(crate) fn leave_if_covered(&self, stats: &Stats, anyway: bool) -> bool {
        // Under the lock: two lines planning at once must not both see the other up.
        let mut a = lock(&self.shared.arbiter);
        let o = 1 - self.index;
        let up = self.shared.up[o].load(Relaxed);
        let covered = up && (a.joined[o] || (anyway && a.first_written[o].is_some()));
        if covered {
            self.shared.up[self.index].store(false, Relaxed);
            a.first_written[self.index] = None;
            a.joined[self.index] = false;
            stats.set_line_connected(self.index, false);
        }
        covered
    }
}

/// Records through two lines until told to stop; `side` is the channel to the writer.
pub(crate) fn run(
    cfg: &Config,
    stats: &Stats,
    shutdown: &Shutdown,
    side: ReaderSide,
    timing: Timing,
    r: &Redundant,
) {
    let (per_batch, _) = shape(cfg.output.buffer_size);
    let shared = Shared {
        arbiter: Mutex::new(Arbiter {
            seen: KeyRing::new(),
            batch: Batch::default(),
            side,
            per_batch,
            first_written: [None; 2],
            joined: [false; 2],
        }),
        up: Default::default(),
    };
    stats.set_redundant();
    log::info!(
        "redundant: line a to {}, line b to {}",
        cfg.connection.ws_url.url,
        r.ws_url_b.as_ref().unwrap_or(&cfg.connection.ws_url).url
    );
    thread::scope(|scope| {
        for (index, name) in NAMES.into_iter().enumerate() {
            let line = LineOf {
                shared: &shared,
                connected_before: Default::default(),
                waiting_since: Default::default(),
                index,
                url: if index == 1 {
                    r.ws_url_b.as_ref()
                } else {
                    None
                },
            };
            let feed = Feed {
                shared: &shared,
                line: index,
                ends: Vec::new(),
            };
            let out = Out::Line(Box::new(feed));
            let reader = Reader::with(cfg, stats, shutdown, out, timing, Some(line));
            let spawned = thread::Builder::new()
                .name(format!("reader-{}", name))
                .spawn_scoped(scope, move || reader.run());
            if let Err(e) = spawned {
                log::error!("redundant: cannot start line {}'s reader thread: {e}", name);
                stats.set_error(format!("redundant: line {} not started: {e}", name));
            }
        }
    });
    // Both lines have shipped their last bursts: what the arbiter holds goes out.
    let mut a = shared
        .arbiter
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let a = &mut a;
    a.side
        .ship(&mut a.batch, cfg.output.on_full, stats, shutdown);
    log::info!("reader: both lines stopped");
}

/// A planned reconnect of `line` (`why`): if the other line covers (its connection is
/// joined with this one's), closes this connection and returns the end that reconnects
/// at once. Else the plan waits: the session reads on and asks again every
/// [`PLAN_RETRY`]; after `overlap` (`handover_overlap`) it goes if the other line is
/// up and writing at all, as a handover goes without a common message.
pub(crate) fn planned(
    line: &LineOf<'_>,
    session: &mut Session<'_, '_>,
    stats: &Stats,
    overlap: Duration,
    why: String,
) -> Option<End> {
    let other = NAMES[1 - line.index];
    let now = Instant::now();
    let since = line.waiting_since.get();
    let anyway = since.is_some_and(|t| now.duration_since(t) >= overlap);
    if line.leave_if_covered(stats, anyway) {
        line.waiting_since.set(None);
        log::info!(
            "line {}: planned reconnect ({why}); line {other} covers meanwhile{}",
            line.name(),
            if anyway {
                " (no message both delivered within handover_overlap)"
            } else {
                ""
            }
        );
        session.close_now("planned reconnect");
        return Some(End::GoingAway(format!("planned reconnect ({why})")));
    }
    if since.is_none() {
        line.waiting_since.set(Some(now));
        log::info!(
            "line {}: planned reconnect ({why}) waits until line {other} delivers what this one does",
            line.name()
        );
    }
    session.defer_plan(PLAN_RETRY);
    None
}

/// How often a waiting planned reconnect asks again.
const PLAN_RETRY: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::super::lines::LineSink;
    use super::*;
    use crate::batch;
    use crate::clock::Periods;
    use crate::message::Frame;
    use serde_json::json;

    #[test]
    fn first_arrival_wins_per_burst_in_order() {
        let cfg = Config::for_test(json!({"buffer_size": 64, "redundant": true}));
        let stats = Stats::new(64, 60.0);
        let shutdown = Shutdown::new().unwrap();
        let (side, w) = batch::channel(64);
        let shared = Shared {
            arbiter: Mutex::new(Arbiter {
                seen: KeyRing::new(),
                batch: Batch::default(),
                side,
                per_batch: 1000,
                first_written: [None; 2],
                joined: [false; 2],
            }),
            up: Default::default(),
        };
        let sink = |line| {
            LineSink::new(
                &cfg.messages,
                &cfg.output,
                cfg.connection.max_message_bytes,
                &stats,
                &shutdown,
                Out::Line(Box::new(Feed {
                    shared: &shared,
                    line,
                    ends: Vec::new(),
                })),
                Periods::of_secs(3600),
            )
        };
        let (mut a, mut b) = (sink(0), sink(1));
        let m = |n: u32| format!("{{\"seq\":{n}}}");
        for n in [1, 2, 3] {
            assert!(a.accept(Frame::Text(m(n).as_bytes())));
        }
        for n in [2, 3, 4, 5] {
            assert!(b.accept(Frame::Text(m(n).as_bytes())));
        }
        // B's burst is arbitrated first: it wins 2 and 3. Each burst goes to the
        // writer when its line ships it, whatever the other line does.
        let text = |b: Batch| String::from_utf8(b.data).unwrap();
        assert_eq!(b.ship(), Shipped::Sent);
        let got: Vec<String> = w.rx.try_iter().map(text).collect();
        assert_eq!(
            got,
            ["{\"seq\":2}\n{\"seq\":3}\n{\"seq\":4}\n{\"seq\":5}\n"]
        );
        assert_eq!(a.ship(), Shipped::Sent);
        let got: Vec<String> = w.rx.try_iter().map(text).collect();
        assert_eq!(got, ["{\"seq\":1}\n"]);
        assert_eq!(stats.get(Count::LineBFirstArrivals), 4);
        assert_eq!(stats.get(Count::LineAFirstArrivals), 1);
        assert_eq!(stats.get(Count::LineADuplicates), 2);
        assert_eq!(stats.get(Count::LineAMessages), 3);
        assert_eq!(stats.get(Count::Messages), 5);
        // Each line's sink is empty again, its keys with it.
        assert_eq!(a.topic_lines(), 3);
        assert!(!a.full());
    }
}
