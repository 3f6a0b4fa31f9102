//! Redundant lines (`redundant: true`, issue 21): two connections to the same streams,
//! first arrival wins, a gap only where both lines missed it.
//!
//! The venue has two listeners, line A's (`ws_url`) and line B's (`ws_url_b`), and
//! sends one sequence by wall time on every connection of either (message N is due at
//! N / rate seconds after the venue started), so both lines carry the same messages,
//! with the same bytes, at about the same time. Each message holds its sequence
//! number: a number missing from the files is lost, one there twice is duplicated. The
//! test resets a line's connections (TCP reset, no close frame: what is in flight on
//! that line is gone) or closes the venue for a while. The rate is 20,000 msg/s on each
//! connection; `WSREC_TEST_RATE` lowers it (qemu for ARMv6), and every count is checked
//! in terms of the rate.

use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{Value, json};
use tungstenite::Message;

/// Messages a second on every connection.
fn rate() -> u64 {
    std::env::var("WSREC_TEST_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn ms() -> u64 {
    (unix_now() * 1000.0) as u64
}

/// The venue of both lines.
struct Venue {
    epoch: Instant,
    rate: u64,
    /// Bumping line N's generation resets its live connections.
    generation: [AtomicU64; 2],
    /// Until this Unix ms, new connections are closed before their handshake.
    closed_until: AtomicU64,
    /// Every connection sends a close notice (OKX's 64008) at each multiple of this
    /// since the venue started: both lines get it at once.
    notice_every: Option<Duration>,
}

impl Venue {
    fn new() -> Arc<Venue> {
        Arc::new(Venue {
            epoch: Instant::now(),
            rate: rate(),
            generation: Default::default(),
            closed_until: AtomicU64::new(0),
            notice_every: None,
        })
    }

    /// Line `line`'s listener.
    fn listen(self: &Arc<Venue>, line: usize) -> Server {
        let v = self.clone();
        Server::start(move |_, stream| {
            let v = v.clone();
            thread::spawn(move || v.serve(line, stream));
        })
    }

    /// Resets line `line`'s live connections.
    fn reset(&self, line: usize) {
        self.generation[line].fetch_add(1, SeqCst);
    }

    /// Resets both lines and refuses connections for `d`; returns when (Unix ms).
    fn outage(&self, d: Duration) -> u64 {
        let at = ms();
        self.closed_until.store(at + d.as_millis() as u64, SeqCst);
        self.reset(0);
        self.reset(1);
        at
    }

    /// The number of the message due now.
    fn due(&self) -> u64 {
        (self.epoch.elapsed().as_secs_f64() * self.rate as f64) as u64
    }

    fn serve(&self, line: usize, stream: TcpStream) {
        if ms() < self.closed_until.load(SeqCst) {
            return;
        }
        let generation = self.generation[line].load(SeqCst);
        let raw = stream.try_clone().unwrap();
        let (mut ws, _) = accept_subscribed(stream);
        let mut next = self.due();
        let notices = |v: &Venue| {
            v.notice_every.map_or(0, |e| {
                (v.epoch.elapsed().as_secs_f64() / e.as_secs_f64()) as u64
            })
        };
        let mut noticed = notices(self);
        loop {
            if notices(self) > noticed {
                noticed = notices(self);
                if ws.write(Message::text(OKX_NOTICE)).is_err() {
                    return;
                }
            }
            if self.generation[line].load(SeqCst) != generation {
                // The last descriptor goes with `ws`: the kernel sends a reset.
                reset(raw);
                return;
            }
            if !send_due(&mut ws, &mut next, self.due()) {
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A redundant recorder of `venue`'s two lines.
fn setup(tag: &str, a: &Server, b_url: &str, extra: Value) -> Setup {
    let mut cfg = json!({
        "redundant": true,
        "ws_url_b": b_url,
        "coverage_journal": true,
        "buffer_size": 100_000,
        "reconnect_initial_delay": 0.05,
        "reconnect_max_delay": 0.1,
    });
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    Setup::new(tag, &a.url(), cfg)
}

/// The journal's lines.
fn journal(s: &Setup) -> Vec<Value> {
    std::fs::read_to_string(s.out.join("coverage.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Lost and duplicated sequence numbers between the first and the last recorded, and
/// how many distinct ones.
fn lost_and_dups(seqs: &[u64]) -> (u64, u64, u64) {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    let total = sorted.len() as u64;
    sorted.dedup();
    let unique = sorted.len() as u64;
    let span = sorted.last().unwrap() - sorted[0] + 1;
    (span - unique, total - unique, unique)
}

/// `wsrec gaps --json` over `[from, to]` (Unix ms), gaps of 1 ms and up: `(start, end)`.
fn gaps(s: &Setup, from: u64, to: u64) -> Vec<(u64, u64)> {
    let out = Command::new(bin())
        .args(["--config", s.config.to_str().unwrap(), "gaps", "--json"])
        .args(["--from", &format!("{:.3}", from as f64 / 1000.0)])
        .args(["--to", &format!("{:.3}", to as f64 / 1000.0)])
        .args(["--min-gap", "0.001"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["start_ms"].as_u64().unwrap(),
                v["end_ms"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The status JSON, once the instance answers.
fn status(s: &Setup) -> Value {
    let mut v = None;
    wait_until(Duration::from_secs(10), "the status socket answers", || {
        v = s.status_json();
        v.is_some()
    });
    v.unwrap()
}

fn line_up(st: &Value, line: &str) -> bool {
    st[format!("line_{line}")]["connected"] == true
}

fn line_count(st: &Value, line: &str, what: &str) -> u64 {
    st[format!("line_{line}")][what].as_u64().unwrap_or(0)
}

/// Waits until `line` is connected and has delivered more than `since` messages.
fn wait_delivering(s: &Setup, line: &str, since: u64) {
    wait_until(
        Duration::from_secs(20),
        &format!("line {line} delivers"),
        || {
            s.status_json()
                .is_some_and(|st| line_up(&st, line) && line_count(&st, line, "messages") > since)
        },
    );
}

/// Issue 21's test: 20,000 msg/s on both lines, the venue resets line A and line B in
/// turn every 5 s for 60 s. One line is always up, so nothing may be missing, and
/// nothing may be there twice.
#[test]
fn alternating_resets_lose_nothing_and_duplicate_nothing() {
    let venue = Venue::new();
    let (a, b) = (venue.listen(0), venue.listen(1));
    let s = setup("alternate", &a, &b.url(), json!({}));
    let mut rec = s.start();
    wait_delivering(&s, "a", 0);
    wait_delivering(&s, "b", 0);
    let start = Instant::now();
    let cpu0 = rec.cpu_time();
    let mut delivered = [0u64; 2];
    for k in 1..=12u32 {
        let line = (k as usize + 1) % 2; // A first, then B, ...
        // Not before the other line is back (the test would make a true gap).
        let other = 1 - line;
        wait_delivering(&s, ["a", "b"][other], delivered[other]);
        let at = start + Duration::from_secs(5) * k;
        thread::sleep(at.saturating_duration_since(Instant::now()));
        delivered[line] = line_count(&status(&s), ["a", "b"][line], "messages");
        venue.reset(line);
    }
    // A last stretch with both lines back.
    wait_delivering(&s, "a", delivered[0]);
    wait_delivering(&s, "b", delivered[1]);
    thread::sleep(Duration::from_secs(1));
    let wall = start.elapsed();
    let cpu = rec.cpu_time() - cpu0;
    let rss = rec.peak_rss_kib();
    let st = status(&s);
    rec.term();
    assert!(rec.wait_exit(Duration::from_secs(10)).is_some());
    let seqs = s.seqs();
    let (lost, dups, unique) = lost_and_dups(&seqs);
    let j = journal(&s);
    let closes = |line: &str| {
        j.iter()
            .filter(|v| v["event"] == "close" && v["line"] == line)
            .count()
    };
    let removed =
        line_count(&st, "a", "duplicates_removed") + line_count(&st, "b", "duplicates_removed");
    eprintln!(
        "alternating resets: {unique} messages, {lost} lost, {dups} duplicated; line a {} first of {}, line b {} first of {}, {removed} duplicates removed; \
         sessions a {}, b {}; {:.2} us CPU per message written ({} msg/s on each line), peak RSS {rss} KiB",
        line_count(&st, "a", "first_arrivals"),
        line_count(&st, "a", "messages"),
        line_count(&st, "b", "first_arrivals"),
        line_count(&st, "b", "messages"),
        closes("a"),
        closes("b"),
        cpu.as_secs_f64() * 1e6 / (wall.as_secs_f64() * rate() as f64),
        rate()
    );
    assert_eq!((lost, dups), (0, 0), "lost and duplicated messages");
    // 61 s or more of the venue's sequence (a busy machine may lag, not lose).
    assert!(
        unique >= rate() * 60,
        "{unique} messages at {} msg/s",
        rate()
    );
    // Each line was reset six times and reconnected each time.
    assert!(closes("a") >= 6 && closes("b") >= 6, "{j:?}");
    for line in ["a", "b"] {
        assert!(line_count(&st, line, "first_arrivals") > 0, "{st}");
        assert!(line_count(&st, line, "duplicates_removed") > 0, "{st}");
    }
    assert_eq!(
        line_count(&st, "a", "messages") + line_count(&st, "b", "messages"),
        line_count(&st, "a", "first_arrivals") + line_count(&st, "b", "first_arrivals") + removed,
        "{st}"
    );
    assert_eq!(st["redundancy"], "full", "{st}");
    // No gap from the first subscribe to the last close: one line always covered.
    let from = j
        .iter()
        .filter_map(|v| v["subscribed_ms"].as_u64())
        .min()
        .unwrap();
    let to = j
        .iter()
        .filter(|v| v["event"] == "close")
        .filter_map(|v| v["closed_ms"].as_u64())
        .max()
        .unwrap();
    assert_eq!(gaps(&s, from, to), vec![], "{j:?}");
    let log = s.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

/// Both lines dropped at once and the venue closed for 2 s: `wsrec gaps` states the
/// gap, and it matches the hole in the sequence within 0.2 s.
#[test]
fn both_lines_down_is_a_gap_that_matches_the_outage() {
    let venue = Venue::new();
    let (a, b) = (venue.listen(0), venue.listen(1));
    let s = setup("bothdown", &a, &b.url(), json!({}));
    let mut rec = s.start();
    wait_delivering(&s, "a", 0);
    wait_delivering(&s, "b", 0);
    thread::sleep(Duration::from_secs(1));
    let before = status(&s);
    let down_at = venue.outage(Duration::from_secs(2));
    wait_until(Duration::from_secs(10), "both lines down", || {
        s.status_json().is_some_and(|st| st["redundancy"] == "down")
    });
    wait_delivering(&s, "a", line_count(&before, "a", "messages"));
    wait_delivering(&s, "b", line_count(&before, "b", "messages"));
    thread::sleep(Duration::from_secs(1));
    let end = ms();
    rec.term();
    assert!(rec.wait_exit(Duration::from_secs(10)).is_some());
    let seqs = s.seqs();
    let (_, dups, _) = lost_and_dups(&seqs);
    assert_eq!(dups, 0);
    let hole = seqs
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap() as f64
        / rate() as f64;
    let j = journal(&s);
    let from = j
        .iter()
        .filter_map(|v| v["subscribed_ms"].as_u64())
        .min()
        .unwrap();
    let g = gaps(&s, from, end);
    assert_eq!(g.len(), 1, "one gap: {g:?}");
    let secs = (g[0].1 - g[0].0) as f64 / 1000.0;
    eprintln!(
        "both down for 2 s: sequence hole {hole:.3}s, wsrec gaps {secs:.3}s, from {} ms after the drop",
        g[0].0 as i64 - down_at as i64
    );
    assert!(hole >= 1.9, "the venue's hole is {hole:.3}s");
    assert!(
        (secs - hole).abs() <= 0.2,
        "gaps says {secs:.3}s, the hole is {hole:.3}s"
    );
}

/// Line B's host refuses every connection: the recording goes on through line A, and
/// the status says the redundancy is degraded (healthy all the same).
#[test]
fn one_line_refused_records_through_the_other_and_says_degraded() {
    let venue = Venue::new();
    let a = venue.listen(0);
    // A port nothing listens on.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let s = setup(
        "degraded",
        &a,
        &format!("ws://{refused}/"),
        json!({"reconnect_max_delay": 0.5}),
    );
    let _rec = s.start();
    wait_delivering(&s, "a", 0);
    wait_until(Duration::from_secs(30), "2 s of messages", || {
        s.complete_lines("t") as u64 > rate() * 2
    });
    let st = status(&s);
    assert_eq!(st["redundancy"], "degraded", "{st}");
    assert_eq!(st["line_b"]["connected"], false, "{st}");
    assert_eq!(st["line_a"]["connected"], true, "{st}");
    assert_eq!(st["healthy"], true, "{st}");
    assert!(st["connect_attempts"].as_u64().unwrap() >= 3, "{st}");
    assert!(
        st["last_error"]
            .as_str()
            .unwrap()
            .contains(&refused.to_string()),
        "{st}"
    );
    let out = Command::new(bin())
        .args(["--config", s.config.to_str().unwrap(), "--status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("redundancy degraded"), "{text}");
    assert!(text.contains("line b down"), "{text}");
    let seqs = s.seqs();
    let (lost, dups, _) = lost_and_dups(&seqs);
    assert_eq!((lost, dups), (0, 0));
    assert_eq!(line_count(&st, "b", "messages"), 0, "{st}");
    assert_eq!(line_count(&st, "a", "duplicates_removed"), 0, "{st}");
}

/// What the second line costs, in one run: the same venue recorded for 8 s by one
/// connection, then by two lines. Prints CPU per message written and peak RSS for
/// each (docs/performance.md); checks that both recordings are whole.
#[test]
fn the_second_line_costs_about_one_more_connection() {
    let venue = Venue::new();
    let (a, b) = (venue.listen(0), venue.listen(1));
    let measure = |tag: &str, redundant: bool| {
        let s = if redundant {
            setup(tag, &a, &b.url(), json!({}))
        } else {
            Setup::new(tag, &a.url(), json!({"buffer_size": 100_000}))
        };
        let mut rec = s.start();
        wait_until(Duration::from_secs(20), "data", || {
            s.complete_lines("t") > 0
        });
        thread::sleep(Duration::from_secs(1));
        let (cpu0, t0) = (rec.cpu_time(), Instant::now());
        thread::sleep(Duration::from_secs(8));
        let cpu = (rec.cpu_time() - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
        let rss = rec.peak_rss_kib();
        rec.term();
        assert!(rec.wait_exit(Duration::from_secs(10)).is_some());
        let (lost, dups, unique) = lost_and_dups(&s.seqs());
        assert_eq!((lost, dups), (0, 0), "{tag}");
        assert!(unique >= rate() * 9, "{tag}: {unique}");
        (cpu * 1e6 / rate() as f64, rss)
    };
    let (one, rss_one) = measure("cost1", false);
    let (two, rss_two) = measure("cost2", true);
    eprintln!(
        "cost at {} msg/s: one connection {one:.2} us CPU per message written, peak RSS {rss_one} KiB; \
         two lines {two:.2} us, peak RSS {rss_two} KiB ({:.2}x the CPU)",
        rate(),
        two / one
    );
    // Each message is received, checked and keyed twice: about twice, not more.
    assert!(two < one * 4.0, "two lines {two:.2} us against {one:.2} us");
}

/// A quiet feed: ten messages on each line, the same ten. They are written at once,
/// once each (a burst goes to the writer when its line has read it, not when the
/// shared batch is full).
#[test]
fn a_quiet_feed_is_written_as_it_arrives() {
    let server = Server::sending(0..10);
    let s = Setup::new("quiet", &server.url(), json!({"redundant": true}));
    let _rec = s.start();
    wait_until(Duration::from_secs(10), "both lines connected", || {
        server.connections() >= 2
    });
    wait_until(Duration::from_secs(10), "the ten messages", || {
        s.complete_lines("t") >= 10
    });
    let st = status(&s);
    assert_eq!(s.seqs(), (0..10).collect::<Vec<u64>>());
    wait_until(Duration::from_secs(10), "both lines counted", || {
        let st = status(&s);
        line_count(&st, "a", "messages") == 10 && line_count(&st, "b", "messages") == 10
    });
    let st2 = status(&s);
    assert_eq!(
        line_count(&st2, "a", "duplicates_removed") + line_count(&st2, "b", "duplicates_removed"),
        10,
        "{st2}"
    );
    assert_eq!(st["redundancy"], "full", "{st}");
    assert_eq!(st["reconnects"], 0, "{st}");
}

/// Planned reconnects with two lines: a notice that both lines get at once every 3 s
/// (`reconnect_on`), and `max_connection_age`, which comes for both lines at about the
/// same time (they connected together). Each line just reconnects while the other
/// covers; a line whose plan comes while the other is down waits until it delivers
/// again. Nothing lost, nothing twice, no gap.
#[test]
fn planned_reconnects_take_one_line_at_a_time() {
    let mut venue = Venue::new();
    Arc::get_mut(&mut venue).unwrap().notice_every = Some(Duration::from_secs(3));
    let (a, b) = (venue.listen(0), venue.listen(1));
    let s = setup(
        "planned",
        &a,
        &b.url(),
        json!({
            "max_connection_age": 5,
            "connection_age_jitter": 0,
            "reconnect_on": [{"equals": {"/event": "notice", "/code": "64008"}}],
        }),
    );
    let mut rec = s.start();
    wait_until(
        Duration::from_secs(60),
        "four renewals of each line",
        || {
            s.status_json()
                .is_some_and(|st| st["planned_reconnects"].as_u64().unwrap_or(0) >= 8)
        },
    );
    wait_delivering(&s, "a", 0);
    wait_delivering(&s, "b", 0);
    let st = status(&s);
    let end = ms();
    rec.term();
    assert!(rec.wait_exit(Duration::from_secs(10)).is_some());
    let (lost, dups, unique) = lost_and_dups(&s.seqs());
    let log = s.log_text();
    eprintln!(
        "planned: {unique} messages, {lost} lost, {dups} duplicated, {} planned reconnects, {} waits",
        st["planned_reconnects"],
        log.matches("waits until line").count()
    );
    let seqs = s.seqs();
    let holes: Vec<String> = seqs
        .windows(2)
        .filter(|w| w[1] > w[0] + 1)
        .map(|w| {
            format!(
                "{:.3}s..{:.3}s",
                w[0] as f64 / rate() as f64,
                w[1] as f64 / rate() as f64
            )
        })
        .collect();
    assert_eq!(
        (lost, dups),
        (0, 0),
        "holes at {holes:?} (venue time)\n{log}"
    );
    assert!(log.contains("covers meanwhile"), "{log}");
    assert_eq!(st["handover"]["handovers"], 0, "no make-before-break: {st}");
    let j = journal(&s);
    let from = j
        .iter()
        .filter_map(|v| v["subscribed_ms"].as_u64())
        .min()
        .unwrap();
    assert_eq!(gaps(&s, from, end), vec![], "{j:?}");
}
