//! Resume by cursor, against a local server that behaves like Bluesky Jetstream: it
//! streams events stamped `time_us` by wall time and, when the URL names a `cursor`,
//! replays from that time; without one it tails live. A dropped connection, a
//! SIGTERM and a SIGKILL each resume where the recording stopped: nothing lost, nothing
//! written twice.
//!
//! The rate is 5,000 events a second (`WSREC_TEST_RATE` lowers it, as for the
//! handover tests); the checks are counts and sets, so they hold at any rate.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{Value, json};
use tungstenite::Message;
use tungstenite::handshake::server::{Request, Response};

fn rate() -> u64 {
    std::env::var("WSREC_TEST_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(5_000, |r: u64| r.min(5_000))
}

/// The Jetstream imitation: event N has `time_us` = T0 + N * 1e6 / rate and is due
/// N / rate seconds after the start.
struct Jetstream {
    server: Server,
    /// The `cursor` each connection asked for (`None`: absent).
    cursors: Arc<Mutex<Vec<Option<u64>>>>,
    /// Drop the connection whose index is stored here once it sent this many events.
    drop_after: Arc<AtomicU64>,
    drop_conn: Arc<AtomicUsize>,
}

const T0: u64 = 1_700_000_000_000_000;

fn event(n: u64, rate: u64) -> String {
    let t = T0 + n * 1_000_000 / rate;
    format!(
        r#"{{"did":"did:plc:{n:08x}","time_us":{t},"kind":"commit","commit":{{"rev":"3l{n}","operation":"create","collection":"app.bsky.feed.post","rkey":"{n}","record":{{"text":"post {n}"}}}}}}"#
    )
}

impl Jetstream {
    fn start() -> Jetstream {
        let rate = rate();
        let epoch = Instant::now();
        let cursors = Arc::new(Mutex::new(Vec::new()));
        let drop_after = Arc::new(AtomicU64::new(u64::MAX));
        let drop_conn = Arc::new(AtomicUsize::new(usize::MAX));
        let (c, da, dc) = (cursors.clone(), drop_after.clone(), drop_conn.clone());
        let server = Server::start(move |i, stream| {
            let (c, da, dc) = (c.clone(), da.clone(), dc.clone());
            thread::spawn(move || {
                let mut cursor = None;
                #[allow(clippy::result_large_err)] // tungstenite's callback type
                let ws = tungstenite::accept_hdr(stream, |req: &Request, resp: Response| {
                    cursor = req.uri().query().and_then(|q| {
                        q.split('&')
                            .find_map(|p| p.strip_prefix("cursor="))
                            .map(|v| v.parse::<u64>().expect("cursor is a number"))
                    });
                    Ok(resp)
                });
                let Ok(mut ws) = ws else { return };
                c.lock().unwrap().push(cursor);
                let tip = || (epoch.elapsed().as_secs_f64() * rate as f64) as u64;
                // From the cursor (rounded up to the next event), or live.
                let mut next = match cursor {
                    Some(c) if c >= T0 => ((c - T0) * rate).div_ceil(1_000_000).min(tip()),
                    Some(_) => 0,
                    None => tip(),
                };
                let mut sent = 0u64;
                ws.get_ref().set_nonblocking(true).unwrap();
                loop {
                    let due = tip();
                    while next < due {
                        if ws.write(Message::text(event(next, rate))).is_err() {
                            return;
                        }
                        next += 1;
                        sent += 1;
                        if dc.load(SeqCst) == i && sent >= da.load(SeqCst) {
                            let _ = ws.flush();
                            // Dropped without a close frame, as a network fault.
                            reset(ws.get_ref().try_clone().unwrap());
                            return;
                        }
                    }
                    match ws.flush() {
                        Ok(()) => {}
                        Err(tungstenite::Error::Io(e))
                            if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                    loop {
                        match ws.read() {
                            Ok(_) => continue,
                            Err(tungstenite::Error::Io(e))
                                if e.kind() == std::io::ErrorKind::WouldBlock =>
                            {
                                break;
                            }
                            Err(_) => return,
                        }
                    }
                    thread::sleep(Duration::from_millis(2));
                }
            });
        });
        Jetstream {
            server,
            cursors,
            drop_after,
            drop_conn,
        }
    }

    fn url(&self) -> String {
        format!(
            "ws://{}/subscribe?wantedCollections=app.bsky.feed.post&cursor={{cursor}}",
            self.server.addr
        )
    }
}

/// The event numbers recorded, in file order.
fn recorded(s: &Setup) -> Vec<u64> {
    s.lines("t")
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["commit"]["rkey"].as_str().unwrap().parse().unwrap()
        })
        .collect()
}

fn config(js: &Jetstream, s: &Setup) {
    s.write_config(
        &js.url(),
        json!({
            "subscribe_message": "",
            "cursor": {"at": "/time_us", "rewind": 1_000_000, "unit": "us"},
            "dedupe_by": ["/did", "/time_us"],
            "coverage_journal": true,
        }),
    );
}

#[test]
fn a_dropped_connection_and_restarts_resume_with_nothing_lost_or_doubled() {
    let rate = rate();
    let js = Jetstream::start();
    let s = Setup::new("resume-cursor", &js.url(), json!({}));
    config(&js, &s);
    let mut rec = s.start();
    let count = |s: &Setup| s.complete_lines("t") as u64;
    wait_until(Duration::from_secs(20), "first events", || {
        count(&s) >= rate / 2
    });

    // 1. The network drops the connection: the reconnect resumes by cursor.
    let first = js.server.connections() - 1;
    js.drop_after.store(rate / 2, SeqCst);
    js.drop_conn.store(first, SeqCst);
    wait_until(Duration::from_secs(20), "a reconnect", || {
        js.server.connections() > first + 1
    });
    let before = count(&s);
    wait_until(Duration::from_secs(20), "recording again", || {
        count(&s) > before + rate / 2
    });
    let st = s.wait_status();
    let removed = st["resume_duplicates_removed"].as_u64().unwrap();
    assert!(removed > 0, "the replayed overlap was removed: {st}");
    eprintln!("resume: after the drop, {removed} replayed events not written again");

    // 2. SIGTERM: the cursor is saved at the stop; events go on meanwhile.
    rec.term();
    assert!(rec.wait_exit(Duration::from_secs(10)).unwrap().success());
    let saved: Value =
        serde_json::from_slice(&std::fs::read(s.out.join("cursor.json")).unwrap()).unwrap();
    assert_eq!(saved["at"], "/time_us", "{saved}");
    thread::sleep(Duration::from_millis(500)); // the outage itself, not a wait for a state
    let mut rec = s.start();
    let before = count(&s);
    wait_until(Duration::from_secs(20), "recording after a restart", || {
        count(&s) > before + rate
    });

    // 3. SIGKILL: the cursor saved last (at most 2 s old) and the rewind cover what
    // was not yet written.
    rec.kill9();
    let mut rec = s.start();
    let before = count(&s);
    wait_until(Duration::from_secs(20), "recording after a kill", || {
        count(&s) > before + rate
    });
    rec.term();
    assert!(rec.wait_exit(Duration::from_secs(10)).unwrap().success());

    let cursors = js.cursors.lock().unwrap().clone();
    assert_eq!(
        cursors[0], None,
        "the first connection tails live: {cursors:?}"
    );
    assert!(
        cursors.len() >= 4 && cursors[1..].iter().all(Option::is_some),
        "each later connection names a cursor: {cursors:?}"
    );
    let got = recorded(&s);
    let distinct: HashSet<u64> = got.iter().copied().collect();
    assert_eq!(distinct.len(), got.len(), "no event is written twice");
    let (lo, hi) = (got[0], *got.iter().max().unwrap());
    let lost: Vec<u64> = (lo..=hi).filter(|n| !distinct.contains(n)).collect();
    assert!(
        lost.is_empty(),
        "{} events lost, first {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(got.len() as u64 > 3 * rate, "{} events", got.len());
    eprintln!(
        "resume: {} events at {rate}/s over {} connections, 0 lost, 0 duplicated",
        got.len(),
        cursors.len()
    );
}

/// With `redundant`, both lines fill in `{cursor}`: after a restart each names the
/// saved cursor, and what the two lines replay is written once.
#[test]
fn redundant_lines_resume_by_cursor_too() {
    let rate = rate();
    let js = Jetstream::start();
    let s = Setup::new("resume-redundant", &js.url(), json!({}));
    config(&js, &s);
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&s.config).unwrap()).unwrap();
    cfg["redundant"] = json!(true);
    std::fs::write(&s.config, cfg.to_string()).unwrap();
    let count = |s: &Setup| s.complete_lines("t") as u64;
    let mut rec = s.start();
    wait_until(Duration::from_secs(20), "first events", || {
        count(&s) >= rate / 2 && js.server.connections() >= 2
    });
    rec.term();
    assert!(rec.wait_exit(Duration::from_secs(10)).unwrap().success());
    let mut rec = s.start();
    let before = count(&s);
    wait_until(Duration::from_secs(20), "both lines again", || {
        count(&s) > before + rate && js.server.connections() >= 4
    });
    rec.term();
    assert!(rec.wait_exit(Duration::from_secs(10)).unwrap().success());
    let cursors = js.cursors.lock().unwrap().clone();
    assert!(
        cursors[..2].iter().all(Option::is_none) && cursors[2..].iter().all(Option::is_some),
        "the first start tails live on both lines, the restart names a cursor on both: {cursors:?}"
    );
    let got = recorded(&s);
    let distinct: HashSet<u64> = got.iter().copied().collect();
    assert_eq!(distinct.len(), got.len(), "no event is written twice");
    let (lo, hi) = (got[0], *got.iter().max().unwrap());
    let lost = (lo..=hi).filter(|n| !distinct.contains(n)).count();
    assert_eq!(lost, 0, "events lost across the restart");
}
