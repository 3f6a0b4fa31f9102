//! Keeping a connection alive and leaving a dead one: client pings (text and protocol),
//! answering the server's pings, heartbeat replies under a flood, the stale timeout.

use crate::common::*;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

#[test]
fn stalled_server_is_left_after_stale_timeout() {
    // Connection 0 sends one message, then nothing at all (no pongs either: it never
    // reads) with TCP open; connection 1 sends the next.
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    let server = Server::start(move |i, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        send_range(&mut ws, i as u64..i as u64 + 1);
        if i == 0 {
            h.lock().unwrap().push(ws);
        } else {
            hold(ws);
        }
    });
    let s = Setup::new(
        "stall",
        &server.url(),
        json!({"stale_timeout": 1.5, "ping_interval": 0.5}),
    );
    let _rec = s.start();
    wait_until(Duration::from_secs(10), "a new connection", || {
        server.connect_times().len() >= 2
    });
    let at = server.connect_times();
    let gap = (at[1] - at[0]).as_secs_f64();
    // stale_timeout + the first back-off delay (at most 0.05 s) + scheduling slack.
    assert!((1.5..2.5).contains(&gap), "reconnected after {gap:.2}s");
    wait_until(Duration::from_secs(5), "the new session recorded", || {
        s.seqs() == vec![0, 1]
    });
    assert!(s.log_text().contains("stale"), "{}", s.log_text());
}

#[test]
fn application_ping_keeps_a_strict_server_happy() {
    // The server drops a client that sent no {"op":"ping"} for ping_interval + 1 s.
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    let server = Server::start(move |_, stream| {
        let d = d.clone();
        thread::spawn(move || {
            let (mut ws, _) = accept_subscribed(stream);
            ws.get_ref()
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut last_ping = Instant::now();
            let start = Instant::now();
            loop {
                if last_ping.elapsed() > Duration::from_secs(2) {
                    d.store(true, SeqCst);
                    return;
                }
                if start.elapsed() > Duration::from_secs(5) {
                    send_range(&mut ws, 0..1);
                    hold(ws);
                    return;
                }
                match ws.read() {
                    Ok(Message::Text(t)) if t.as_str() == r#"{"op":"ping"}"# => {
                        last_ping = Instant::now();
                        ws.send(Message::text(r#"{"op":"pong"}"#)).unwrap();
                    }
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        });
    });
    let s = Setup::new("appping", &server.url(), json!({"ping_interval": 1}));
    let _rec = s.start();
    wait_until(Duration::from_secs(15), "the message after 5 s", || {
        s.seqs() == vec![0]
    });
    assert!(!dropped.load(SeqCst), "the server dropped the client");
    assert_eq!(server.connections(), 1);
    let lines = s.lines("t");
    let pongs = lines.iter().filter(|l| *l == r#"{"op":"pong"}"#).count();
    assert!(pongs >= 4, "pongs are kept as lines: {pongs}");
}

fn ms_now() -> u64 {
    (unix_now() * 1000.0) as u64
}

/// The server floods data (20,000 messages a second for 10 s) and, every 20,000
/// messages, sends an HTX-style `{"ping":N}`
/// (N its send time in ms); a second handle on the socket reads the `{"pong":N}`
/// replies as they come. Each reply must come within 1 s of its ping, however much
/// data is queued around it, and the pings are recorded like any other message.
#[test]
fn heartbeat_replies_go_out_within_a_second_during_a_flood() {
    let delays = Arc::new(Mutex::new(Vec::<u64>::new()));
    let d = delays.clone();
    let server = Server::start(move |_, stream| {
        let (ws, _) = accept_subscribed(stream);
        let read_half = ws.get_ref().try_clone().unwrap();
        let d = d.clone();
        thread::spawn(move || {
            let mut r = WebSocket::from_raw_socket(read_half, Role::Server, None);
            loop {
                // hold() sets a read timeout on the (shared) socket: not an end.
                let m = match r.read() {
                    Ok(m) => m,
                    Err(tungstenite::Error::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        continue;
                    }
                    Err(_) => return,
                };
                if let Message::Text(t) = m {
                    if let Ok(v) = serde_json::from_str::<Value>(t.as_str()) {
                        if let Some(sent) = v["pong"].as_u64() {
                            d.lock().unwrap().push(ms_now().saturating_sub(sent));
                        }
                    }
                }
            }
        });
        let mut ws = ws;
        // 20,000 messages a second, in bursts of 200 every 10 ms: a venue's busiest
        // hour, not a loopback blast (whose backlog in the socket buffers alone would
        // take a slow CPU, or qemu, more than a second to read through).
        let start = Instant::now();
        for seq in 0..200_000u64 {
            if seq % 200 == 0 {
                let due = start + Duration::from_millis(seq / 20);
                thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            if seq % 20_000 == 10_000 {
                let ping = format!(r#"{{"ping":{}}}"#, ms_now());
                if ws.send(Message::text(ping)).is_err() {
                    return;
                }
            }
            if ws.write(Message::text(msg(seq))).is_err() {
                return;
            }
        }
        let _ = ws.flush();
        // Keep the connection open; hold() would read, and the replies are the other
        // thread's to read.
        thread::spawn(move || {
            let _ws = ws;
            thread::sleep(Duration::from_secs(120));
        });
    });
    let s = Setup::new(
        "hb-flood",
        &server.url(),
        json!({
            "topic": null,
            "topics": ["t"],
            "heartbeat_replies": [{"has": ["/ping"], "reply": "{\"pong\":{/ping}}"}],
        }),
    );
    let mut rec = s.start();
    wait_until(Duration::from_secs(60), "200,000 lines", || {
        s.complete_lines("t") == 200_000
    });
    assert_eq!(
        s.lines("t").len(),
        200_000,
        "every line whole once all are in"
    );
    wait_until(Duration::from_secs(5), "10 pongs", || {
        delays.lock().unwrap().len() == 10
    });
    let delays = delays.lock().unwrap().clone();
    assert!(
        delays.iter().all(|&d| d < 1000),
        "reply delays in ms: {delays:?}"
    );
    let pings = s.lines("_control");
    assert_eq!(pings.len(), 10, "the pings are recorded in _control");
    assert!(pings.iter().all(|l| l.starts_with(r#"{"ping":"#)));
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(5)).unwrap().code(),
        Some(0)
    );
}

/// Collects what a client sends for `secs`: (text messages, protocol pings).
fn keepalive_server(
    secs: f64,
    ping: bool,
) -> (Server, mpsc::Receiver<(Vec<String>, usize, usize)>) {
    let (tx, rx) = mpsc::channel();
    let server = Server::start(move |_, stream| {
        let tx = tx.clone();
        thread::spawn(move || {
            stream
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let mut ws = accept(stream);
            let end = Instant::now() + Duration::from_secs_f64(secs);
            let (mut texts, mut pings, mut pongs) = (Vec::new(), 0, 0);
            let mut asked = false;
            while Instant::now() < end {
                if ping && !asked {
                    ws.send(Message::Ping(b"hello"[..].into())).unwrap();
                    asked = true;
                }
                match ws.read() {
                    Ok(Message::Text(t)) => texts.push(t.to_string()),
                    Ok(Message::Ping(_)) => pings += 1,
                    Ok(Message::Pong(p)) => {
                        assert_eq!(&p[..], b"hello");
                        pongs += 1
                    }
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if e.kind() == std::io::ErrorKind::WouldBlock =>
                    {
                        let _ = ws.flush();
                    }
                    Err(_) => break,
                }
            }
            tx.send((texts, pings, pongs)).unwrap();
        });
    });
    (server, rx)
}

#[test]
fn ping_message_every_ping_interval() {
    let (server, rx) = keepalive_server(2.0, false);
    let s = Setup::new("ping", &server.url(), json!({"ping_interval": 0.3}));
    let _rec = s.start();
    let (texts, pings, _) = rx.recv_timeout(Duration::from_secs(15)).unwrap();
    assert_eq!(texts[0], r#"{"op":"subscribe","args":["t"]}"#);
    let n = texts.iter().filter(|t| *t == r#"{"op":"ping"}"#).count();
    assert!((4..=8).contains(&n), "{n} pings in 2 s at 0.3 s: {texts:?}");
    assert_eq!(pings, 0, "no protocol pings when ping_message is set");
}

#[test]
fn empty_ping_message_sends_protocol_pings() {
    let (server, rx) = keepalive_server(2.0, false);
    let s = Setup::new(
        "pping",
        &server.url(),
        json!({"ping_interval": 0.3, "ping_message": ""}),
    );
    let _rec = s.start();
    let (texts, pings, _) = rx.recv_timeout(Duration::from_secs(15)).unwrap();
    assert_eq!(texts.len(), 1, "only the subscribe: {texts:?}");
    assert!((4..=8).contains(&pings), "{pings} protocol pings");
}

#[test]
fn server_pings_are_answered() {
    let (server, rx) = keepalive_server(1.5, true);
    let s = Setup::new("spong", &server.url(), json!({}));
    let _rec = s.start();
    let (_, _, pongs) = rx.recv_timeout(Duration::from_secs(15)).unwrap();
    assert_eq!(pongs, 1);
}
