//! Gaps avoided and stated, against the real binary and a local server that behaves
//! like a venue closing its connections: a planned reconnect announced by a notice
//! (OKX 64008 shape) or planned by `max_connection_age` hands over make-before-break
//! with nothing lost or duplicated; a close with code 1001 reconnects at once; a
//! subscription that stops while the socket answers pings is resubscribed after
//! `data_timeout`.
//!
//! The venue server sends one shared sequence by wall time on every connection (message
//! N is due at N / rate seconds after the server started), so two connections carry
//! the same messages, with the same bytes, at about the same time. The rate is
//! 20,000 msg/s; `WSREC_TEST_RATE` lowers it where the machine (qemu for ARMv6) cannot
//! keep up with two connections at once.

use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{Value, json};
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

/// Messages a second on every connection.
fn rate() -> u64 {
    std::env::var("WSREC_TEST_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// A venue that closes every connection after `life`, sending a 64008 notice
/// `notice_before` the close (if set), and streams the shared sequence meanwhile.
#[derive(Clone)]
struct Venue {
    epoch: Instant,
    rate: u64,
    life: Duration,
    notice_before: Option<Duration>,
    /// Connection N runs N times this far ahead of the shared sequence.
    ahead: Duration,
    /// This connection is dropped before its handshake.
    refuse: Option<usize>,
    /// This connection's handshake waits this long.
    slow: Option<(usize, Duration)>,
    /// Sends KuCoin's welcome first and refuses a subscribe that comes before it.
    welcome: bool,
}

impl Venue {
    fn new(life: Duration, notice_before: Option<Duration>) -> Venue {
        Venue {
            epoch: Instant::now(),
            rate: rate(),
            life,
            notice_before,
            ahead: Duration::ZERO,
            refuse: None,
            slow: None,
            welcome: false,
        }
    }

    fn start(self) -> Server {
        let v = Arc::new(self);
        Server::start(move |i, stream| {
            let v = v.clone();
            thread::spawn(move || v.serve(i, stream));
        })
    }

    /// The number of the message due now on connection `i`.
    fn due(&self, i: usize) -> u64 {
        let t = self.epoch.elapsed() + self.ahead * i as u32;
        (t.as_secs_f64() * self.rate as f64) as u64
    }

    fn serve(&self, i: usize, stream: TcpStream) {
        if self.refuse == Some(i) {
            return;
        }
        if let Some((n, d)) = self.slow {
            if n == i {
                thread::sleep(d);
            }
        }
        let mut ws = if self.welcome {
            match welcomed(stream, i) {
                Some(ws) => ws,
                None => return,
            }
        } else {
            accept_subscribed(stream).0
        };
        let born = Instant::now();
        let mut next = self.due(i);
        let mut noticed = false;
        loop {
            let age = born.elapsed();
            if age >= self.life {
                let _ = ws.close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "connection lifetime".into(),
                }));
                let _ = ws.flush();
                return;
            }
            if let Some(before) = self.notice_before {
                if !noticed && age + before >= self.life {
                    noticed = true;
                    if ws.write(Message::text(OKX_NOTICE)).is_err() {
                        return;
                    }
                }
            }
            if !send_due(&mut ws, &mut next, self.due(i)) {
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// KuCoin's order: the connection is usable once the welcome has arrived. A subscribe
/// within 300 ms before it is refused with KuCoin's error shape and a close, so that a
/// client that does not wait gets no data on that connection.
fn welcomed(stream: TcpStream, i: usize) -> Option<tungstenite::WebSocket<TcpStream>> {
    let mut ws = accept(stream);
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    if let Some(early) = read_text(&mut ws) {
        let _ = ws.send(Message::text(format!(
            r#"{{"id":"{i}","type":"error","code":401,"data":"subscribed before the welcome: {early}"}}"#
        )));
        let _ = ws.close(None);
        let _ = ws.flush();
        return None;
    }
    let welcome = format!(r#"{{"id":"conn{i}","type":"welcome"}}"#);
    ws.send(Message::text(welcome)).ok()?;
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let sub = read_text(&mut ws)?;
    let ack = serde_json::from_str::<Value>(&sub).ok()?["id"].clone();
    ws.send(Message::text(json!({"id": ack, "type": "ack"}).to_string()))
        .ok()?;
    Some(ws)
}

/// The journal's lines.
fn journal(s: &Setup) -> Vec<Value> {
    std::fs::read_to_string(s.out.join("coverage.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn events<'a>(j: &'a [Value], event: &str) -> Vec<&'a Value> {
    j.iter().filter(|v| v["event"] == event).collect()
}

/// Lost and duplicated sequence numbers between the first and the last recorded.
fn lost_and_dups(seqs: &[u64]) -> (u64, u64, u64) {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    let total = sorted.len() as u64;
    sorted.dedup();
    let unique = sorted.len() as u64;
    let span = sorted.last().unwrap() - sorted[0] + 1;
    (span - unique, total - unique, unique)
}

/// `wsrec gaps` over `[from, to]` (Unix ms), with gaps of 1 ms and up.
fn gaps(s: &Setup, from: u64, to: u64) -> String {
    let out = Command::new(bin())
        .args(["--config", s.config.to_str().unwrap(), "gaps"])
        .args(["--from", &format!("{:.3}", from as f64 / 1000.0)])
        .args(["--to", &format!("{:.3}", to as f64 / 1000.0)])
        .args(["--min-gap", "0.001"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Five handovers against a venue that closes each connection after 10 s; `extra`
/// says how they are planned. Nothing lost, nothing twice, no gap.
fn five_handovers(tag: &str, notice: bool, extra: Value) {
    let venue = Venue::new(
        Duration::from_secs(10),
        notice.then(|| Duration::from_secs(3)),
    );
    handovers(tag, venue, 5, extra);
}

/// `n` handovers against `venue`: nothing lost, nothing twice, no gap.
fn handovers(tag: &str, venue: Venue, n: usize, extra: Value) {
    let server = venue.start();
    let mut cfg = json!({
        "coverage_journal": true,
        "handover_overlap": 2,
        "buffer_size": 100_000,
    });
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let s = Setup::new(tag, &server.url(), cfg);
    let mut rec = s.start();
    let cpu0 = Mutex::new(None);
    // Generous: 5 handovers take about 35 s; a busy machine or qemu may be slower.
    wait_until(
        Duration::from_secs(30 * n as u64),
        &format!("{n} handovers in the journal"),
        || {
            // A recorder that exited (a zombie until reaped) says why on stderr.
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", rec.pid()));
            let exited = stat.map_or(true, |st| st.contains(") Z"));
            assert!(!exited, "the recorder exited: {}", rec.stderr_text());
            let j = journal(&s);
            let got = events(&j, "handover").len();
            if got >= 1 && cpu0.lock().unwrap().is_none() {
                *cpu0.lock().unwrap() = Some((rec.cpu_time(), Instant::now()));
            }
            got >= n
        },
    );
    let (cpu_a, at_a) = cpu0.lock().unwrap().unwrap();
    let cpu = rec.cpu_time() - cpu_a;
    let wall = at_a.elapsed();
    let rss = rec.peak_rss_kib();
    rec.term();
    assert!(rec.wait_exit(Duration::from_secs(10)).is_some());
    let j = journal(&s);
    let handovers = events(&j, "handover");
    let seqs = s.seqs();
    let (lost, dups, unique) = lost_and_dups(&seqs);
    let removed: u64 = handovers
        .iter()
        .map(|h| h["duplicates_removed"].as_u64().unwrap())
        .sum();
    let overlaps: Vec<u64> = handovers
        .iter()
        .map(|h| h["overlap_ms"].as_u64().unwrap())
        .collect();
    eprintln!(
        "{tag}: {} handovers, {unique} messages, {lost} lost, {dups} duplicated, {removed} duplicates removed, overlaps {overlaps:?} ms; \
         from the first handover on: {:.2} us CPU per message ({} msg/s on each connection), peak RSS {rss} KiB",
        handovers.len(),
        cpu.as_secs_f64() * 1e6 / (wall.as_secs_f64() * rate() as f64),
        rate()
    );
    assert_eq!((lost, dups), (0, 0), "lost and duplicated messages");
    for h in &handovers {
        assert_eq!(
            h["joined"], true,
            "a handover without a common message: {h}"
        );
        assert_eq!(h["gap_ms"], 0, "{h}");
    }
    assert!(
        removed > 0,
        "both connections delivered, so copies were dropped"
    );
    // No gap from the first subscribe to the last close.
    let opens = events(&j, "open");
    let closes = events(&j, "close");
    let from = opens[0]["subscribed_ms"].as_u64().unwrap();
    let to = closes.last().unwrap()["closed_ms"].as_u64().unwrap();
    let g = gaps(&s, from, to);
    assert!(g.starts_with("0 gaps"), "{g}");
    let st = s.log_text();
    assert!(!st.contains("panicked"), "{st}");
    assert!(
        server.connections() > n,
        "{} connections",
        server.connections()
    );
}

/// The venue announces each close 3 s before (OKX's 64008 notice): `reconnect_on`.
#[test]
fn a_notice_hands_over_without_loss_or_duplicates() {
    five_handovers(
        "notice",
        true,
        json!({"reconnect_on": [{"equals": {"/event": "notice", "/code": "64008"}}]}),
    );
}

/// A venue that wants its welcome before a subscribe (KuCoin): the new connection
/// of a handover waits for it as the first connection does, or the venue would
/// refuse it and the handover would fail.
#[test]
fn the_new_connection_of_a_handover_waits_for_the_welcome() {
    let mut venue = Venue::new(Duration::from_secs(8), Some(Duration::from_secs(3)));
    venue.welcome = true;
    handovers(
        "welcome",
        venue,
        2,
        json!({
            "reconnect_on": [{"equals": {"/event": "notice", "/code": "64008"}}],
            "welcome": {"equals": {"/type": "welcome"}, "timeout": 10},
        }),
    );
}

/// The same venue without notices: `max_connection_age` renews 5-8 s after each
/// connect, before the venue's 10 s (an age at the venue's limit races its close: the
/// journal then states a gap, as `a_handover_without_overlap_states_the_true_gap`
/// checks).
#[test]
fn max_connection_age_hands_over_without_loss_or_duplicates() {
    five_handovers(
        "age",
        false,
        json!({"max_connection_age": 8, "connection_age_jitter": 3}),
    );
}

/// A close frame with code 1001 ("going away"): the recorder reconnects at once, not
/// after its back-off (5 s here), and the journal holds the short gap.
#[test]
fn a_going_away_close_reconnects_at_once() {
    let server = Server::start(|i, stream| {
        thread::spawn(move || {
            let (mut ws, _) = accept_subscribed(stream);
            let base = i as u64 * 1000;
            send_range(&mut ws, base..base + 1000);
            if i == 0 {
                wait_acked(ws.get_ref());
                let _ = ws.close(Some(CloseFrame {
                    code: CloseCode::Away,
                    reason: "server restart".into(),
                }));
                let _ = ws.flush();
                thread::sleep(Duration::from_secs(1));
            } else {
                hold(ws);
            }
        });
    });
    let s = Setup::new(
        "away",
        &server.url(),
        json!({
            "coverage_journal": true,
            "reconnect_initial_delay": 5,
            "reconnect_max_delay": 10,
        }),
    );
    let _rec = s.start();
    wait_until(Duration::from_secs(30), "2,000 messages", || {
        s.seqs().len() >= 2000
    });
    assert_eq!(s.seqs(), (0..2000).collect::<Vec<u64>>());
    let j = journal(&s);
    let close = events(&j, "close")[0];
    assert!(
        close["why"].as_str().unwrap().contains("code 1001"),
        "{close}"
    );
    let opens = events(&j, "open");
    assert_eq!(opens.len(), 2, "{j:?}");
    let gap = opens[1]["subscribed_ms"].as_u64().unwrap() - close["closed_ms"].as_u64().unwrap();
    eprintln!("1001: gap {gap} ms in the journal");
    assert!(gap < 500, "gap {gap} ms");
    let st = s.wait_status();
    assert_eq!(st["planned_reconnects"], 1, "{st}");
}

/// The server keeps answering pings but stops sending data after 100 messages; the
/// recorder resubscribes after `data_timeout` (plus the back-off). The second
/// connection waits 0.8 s (under `data_timeout`) before it sends data: until then
/// `--status` exits 3.
#[test]
fn a_stalled_subscription_is_resubscribed() {
    let last_data = Arc::new(AtomicU64::new(0));
    let resubscribed = Arc::new(AtomicU64::new(0));
    let (ld, rs) = (last_data.clone(), resubscribed.clone());
    let ms = || (unix_now() * 1000.0) as u64;
    let server = Server::start(move |i, stream| {
        let (ld, rs) = (ld.clone(), rs.clone());
        thread::spawn(move || {
            let (mut ws, _) = accept_subscribed(stream);
            if i == 0 {
                send_range(&mut ws, 0..100);
                ld.store(ms(), SeqCst);
            } else {
                rs.store(ms(), SeqCst);
                thread::sleep(Duration::from_millis(800));
                send_range(&mut ws, 100..200);
            }
            // Answer pings (tungstenite replies while reading) until the client leaves.
            ws.get_ref()
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            while ws.read().is_ok() {}
        });
    });
    let s = Setup::new(
        "stall",
        &server.url(),
        json!({
            "coverage_journal": true,
            "data_timeout": 1,
            "ping_interval": 0.2,
            "ping_message": "",
            "stale_timeout": 30,
            "reconnect_initial_delay": 0.2,
            "reconnect_max_delay": 0.5,
        }),
    );
    let _rec = s.start();
    let status_code = || {
        Command::new(bin())
            .args(["--config", s.config.to_str().unwrap(), "--status"])
            .output()
            .unwrap()
            .status
            .code()
    };
    wait_until(
        Duration::from_secs(20),
        "--status exits 3 while data stalls",
        || status_code() == Some(3),
    );
    wait_until(Duration::from_secs(30), "200 messages", || {
        s.seqs().len() >= 200
    });
    assert_eq!(s.seqs(), (0..200).collect::<Vec<u64>>());
    let back = resubscribed.load(SeqCst) - last_data.load(SeqCst);
    eprintln!(
        "stall: resubscribed {back} ms after the last data (data_timeout 1 s, back-off <= 0.5 s)"
    );
    // data_timeout + the back-off, plus slack for a busy machine.
    assert!(
        back <= 1000 + 500 + 1500,
        "resubscribed {back} ms after the data stopped"
    );
    wait_until(Duration::from_secs(10), "--status healthy again", || {
        status_code() == Some(0)
    });
    let st = s.wait_status();
    assert_eq!(st["data_timeouts"], 1, "{st}");
    let j = journal(&s);
    let close = events(&j, "close")[0];
    assert!(
        close["why"].as_str().unwrap().contains("data_timeout"),
        "{close}"
    );
    // The journal counts the session only up to its last data.
    let until = close["data_until_ms"].as_u64().unwrap();
    assert!(
        until < close["closed_ms"].as_u64().unwrap() - 500,
        "{close}"
    );
}

/// Reads the status JSON's counter at `path` (`object.key`).
fn counter(st: &Value, path: &str) -> u64 {
    match path.split_once('.') {
        Some((o, k)) => st[o][k].as_u64().unwrap_or(0),
        None => st[path].as_u64().unwrap_or(0),
    }
}

/// The new connection is refused: the old one records until the venue closes it, then
/// the recorder reconnects as after any close.
#[test]
fn a_failed_new_connection_leaves_the_old_one_recording() {
    let mut v = Venue::new(Duration::from_secs(4), Some(Duration::from_secs(2)));
    v.refuse = Some(1);
    let server = v.start();
    let s = Setup::new(
        "refused",
        &server.url(),
        json!({
            "coverage_journal": true,
            "buffer_size": 100_000,
            "reconnect_on": [{"equals": {"/event": "notice"}}],
        }),
    );
    let _rec = s.start();
    wait_until(
        Duration::from_secs(60),
        "a third connection delivers",
        || {
            events(&journal(&s), "open").len() >= 2
                && s.seqs().len() > 100_000.min(rate() as usize * 5)
        },
    );
    let st = s.wait_status();
    assert!(counter(&st, "handover.failed") >= 1, "{st}");
    let j = journal(&s);
    let first = events(&j, "close")[0];
    assert!(
        first["why"]
            .as_str()
            .unwrap()
            .contains("connection lifetime"),
        "the old connection records until the venue closes it: {first}"
    );
    // Its messages are all there: from the first to its last, nothing lost.
    let seqs = s.seqs();
    let old: Vec<u64> = seqs
        .iter()
        .copied()
        .take_while(|&n| n <= seqs[0] + rate() * 3)
        .collect();
    let (lost, dups, _) = lost_and_dups(&old);
    assert_eq!((lost, dups), (0, 0));
    assert!(
        first["messages"].as_u64().unwrap() >= rate() * 3,
        "recorded for its whole life: {first}"
    );
}

/// The venue closes the old connection right after its notice and opens the new one
/// only 0.8 s later: no overlap. The journal and `wsrec gaps` state the gap, and it
/// matches the hole in the sequence.
#[test]
fn a_handover_without_overlap_states_the_true_gap() {
    // The notice 20 ms before the close (the server writes every 5 ms).
    let mut v = Venue::new(Duration::from_secs(3), Some(Duration::from_millis(20)));
    v.slow = Some((1, Duration::from_millis(800)));
    let server = v.start();
    let s = Setup::new(
        "nooverlap",
        &server.url(),
        json!({
            "coverage_journal": true,
            "buffer_size": 100_000,
            "reconnect_on": [{"equals": {"/event": "notice"}}],
        }),
    );
    let mut rec = s.start();
    wait_until(
        Duration::from_secs(60),
        "the handover and data after it",
        || {
            let j = journal(&s);
            !events(&j, "handover").is_empty() && events(&j, "open").len() >= 2 && {
                let seqs = s.seqs();
                seqs.len() >= 2 && seqs[seqs.len() - 1] > seqs[0] + rate() * 4
            }
        },
    );
    rec.term();
    assert!(rec.wait_exit(Duration::from_secs(10)).is_some());
    let j = journal(&s);
    let h = events(&j, "handover")[0];
    assert_eq!(h["joined"], false, "{h}");
    let seqs = s.seqs();
    let (_, dups, _) = lost_and_dups(&seqs);
    assert_eq!(dups, 0);
    // The hole in the sequence, in seconds at the venue's rate.
    let hole = seqs
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap() as f64
        / rate() as f64;
    let opens = events(&j, "open");
    let from = opens[0]["subscribed_ms"].as_u64().unwrap();
    let to = events(&j, "close").last().unwrap()["closed_ms"]
        .as_u64()
        .unwrap();
    let g = gaps(&s, from, to);
    let line = g
        .lines()
        .find(|l| l.starts_with("gap "))
        .unwrap_or_else(|| panic!("{g}"));
    let secs: f64 = line
        .rsplit_once('(')
        .and_then(|(_, r)| r.strip_suffix("s)"))
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    eprintln!(
        "no overlap: sequence hole {hole:.3}s, wsrec gaps {secs:.3}s, journal gap_ms {}",
        h["gap_ms"]
    );
    assert!(hole > 0.5, "the venue's hole is {hole:.3}s");
    // The first gap is the slow connection's (later handovers may show their own
    // few milliseconds: the venue closes 20 ms after each notice).
    assert!(
        (secs - hole).abs() < 0.25,
        "gaps says {secs:.3}s, the hole is {hole:.3}s: {g}"
    );
    let journal_gap = h["gap_ms"].as_f64().unwrap() / 1000.0;
    assert!(
        (journal_gap - hole).abs() < 0.25,
        "the journal says {journal_gap:.3}s, the hole is {hole:.3}s"
    );
}

/// Each new connection runs 1 s ahead of the one before: the overlap lasts until the
/// old connection catches up with the first message the new one holds, with both
/// reader threads busy. Reports CPU per message and RSS during the overlaps against
/// the single connection before them.
#[test]
fn a_long_overlap_costs_and_loses_nothing() {
    let mut v = Venue::new(Duration::from_secs(8), Some(Duration::from_secs(4)));
    v.ahead = Duration::from_secs(1);
    let server = v.start();
    let s = Setup::new(
        "overlap",
        &server.url(),
        json!({
            "coverage_journal": true,
            "buffer_size": 100_000,
            "handover_overlap": 5,
            "reconnect_on": [{"equals": {"/event": "notice"}}],
        }),
    );
    let mut rec = s.start();
    let sample = |rec: &Recorder| (rec.cpu_time(), Instant::now());
    // One connection: from its first second to the notice.
    wait_until(Duration::from_secs(20), "data", || !s.seqs().is_empty());
    let a = sample(&rec);
    thread::sleep(Duration::from_secs(2));
    let b = sample(&rec);
    let single = (b.0 - a.0).as_secs_f64() * 1e6 / (b.1 - a.1).as_secs_f64() / rate() as f64;
    let rss_single = rec.peak_rss_kib();
    // The overlaps: from each planned reconnect in the log to its handover line.
    let mut overlap_cpu = Duration::ZERO;
    let mut overlap_wall = Duration::ZERO;
    for n in 1..=2 {
        wait_until(Duration::from_secs(60), "a planned reconnect", || {
            s.log_text().matches("planned reconnect").count() >= n
        });
        let a = sample(&rec);
        wait_until(Duration::from_secs(60), "its handover", || {
            events(&journal(&s), "handover").len() >= n
        });
        let b = sample(&rec);
        overlap_cpu += b.0 - a.0;
        overlap_wall += b.1 - a.1;
    }
    let rss = rec.peak_rss_kib();
    rec.term();
    assert!(rec.wait_exit(Duration::from_secs(10)).is_some());
    let j = journal(&s);
    let hs = events(&j, "handover");
    let (lost, dups, unique) = lost_and_dups(&s.seqs());
    // Both connections deliver `rate` a second during the overlap.
    let during = overlap_cpu.as_secs_f64() * 1e6 / overlap_wall.as_secs_f64() / (2 * rate()) as f64;
    eprintln!(
        "overlap: {unique} messages, {lost} lost, {dups} duplicated; overlaps {:?} ms; CPU per message received: one connection {single:.2} us, during the overlaps {during:.2} us ({} msg/s on each connection); peak RSS {rss_single} KiB before, {rss} KiB after",
        hs.iter()
            .map(|h| h["overlap_ms"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        rate()
    );
    assert_eq!((lost, dups), (0, 0));
    for h in &hs {
        assert_eq!(h["joined"], true, "{h}");
        assert!(
            h["overlap_ms"].as_u64().unwrap() >= 500,
            "a real overlap: {h}"
        );
    }
}
