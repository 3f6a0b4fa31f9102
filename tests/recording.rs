//! The core recorder against a real local WebSocket server: flags, files, rotation,
//! subscribe, pings, back-off, stale streams, status and shutdown.

mod common;

use std::fs;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tungstenite::Message;

/// A server that subscribes each client and sends it `n` messages, then holds the
/// connection open (reading, so pings get pongs) until the client leaves.
fn feed(n: u64, subs: mpsc::Sender<String>) -> Server {
    Server::start(move |_, stream| {
        let subs = subs.clone();
        thread::spawn(move || {
            let (mut ws, sub) = accept_subscribed(stream);
            let _ = subs.send(sub);
            send_range(&mut ws, 0..n);
            hold(ws);
        });
    })
}

fn records_with(flag: &[&str]) {
    let (tx, rx) = mpsc::channel();
    let server = feed(100, tx);
    let s = Setup::new("flags", &server.url(), json!({}));
    let mut rec = s.start_with(flag, &[]);
    let sub = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(sub, r#"{"op":"subscribe","args":["t"]}"#);
    wait_until(Duration::from_secs(10), "100 lines", || {
        s.seqs().len() == 100
    });
    rec.term();
    assert!(rec.wait_exit(Duration::from_secs(3)).unwrap().success());
    assert_eq!(s.seqs(), (0..100).collect::<Vec<_>>());
}

#[test]
fn seed_flag_spellings_record() {
    records_with(&["--config"]);
    records_with(&["-config"]);
    records_with(&["-config="]);
    records_with(&["--config="]);
}

#[test]
fn lines_are_verbatim_in_order_in_the_hour_file() {
    // Odd spacing, escapes, unicode, numbers written oddly: all must stay byte for byte.
    let odd: Vec<String> = vec![
        r#"{"success":true,"ret_msg":"","op":"subscribe","conn_id":"x"}"#.into(),
        r#"{ "topic" : "t", "seq" : 1 , "s":"caf\u00e9 \"q\" \\ é 日本" }"#.into(),
        r#"{"topic":"t","seq":2,"n":1.50e+3,"m":-0.0,"z":[ ],"o":{ }}"#.into(),
        r#"[1,2,3]"#.into(),
        r#""just a string""#.into(),
        "12345".into(),
        "\t{\"topic\":\"t\",\"seq\":3}  ".into(),
    ];
    let sent = odd.clone();
    let server = Server::start(move |_, stream| {
        let sent = sent.clone();
        thread::spawn(move || {
            let (mut ws, _) = accept_subscribed(stream);
            for m in &sent {
                ws.send(Message::text(m.as_str())).unwrap();
            }
            while ws.read().is_ok() {}
        });
    });
    let s = Setup::new("verbatim", &server.url(), json!({}));
    let before = unix_now() as u64 / 3600 * 3600;
    let mut rec = s.start();
    wait_until(Duration::from_secs(10), "all lines", || {
        s.lines("t").len() == odd.len()
    });
    rec.term();
    assert!(rec.wait_exit(Duration::from_secs(3)).unwrap().success());
    let after = unix_now() as u64 / 3600 * 3600;
    let files = s.files("t");
    assert!(files.len() == 1 || before != after, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name == format!("t_{before}.jsonl") || name == format!("t_{after}.jsonl"),
        "file name {name}"
    );
    assert_eq!(s.lines("t"), odd);
    // Nothing else in output_dir: no temp files, no control file in single-topic mode.
    let names: Vec<_> = fs::read_dir(&s.out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, vec![name]);
}

#[test]
fn hourly_rotation_closes_past_hours_without_traffic() {
    // The hour is shortened to 2 s for the test (WSREC_PERIOD_SECS, documented as a
    // test hook). The server sends a message every 20 ms for 5 s, each stamped with its
    // send time, then stops and keeps the connection open.
    let server = Server::start(|_, stream| {
        thread::spawn(move || {
            let (mut ws, _) = accept_subscribed(stream);
            let end = Instant::now() + Duration::from_secs(5);
            let mut i = 0u64;
            while Instant::now() < end {
                let m = format!(r#"{{"topic":"t","seq":{i},"at":{:.6}}}"#, unix_now());
                ws.send(Message::text(m)).unwrap();
                i += 1;
                thread::sleep(Duration::from_millis(20));
            }
            hold(ws);
        });
    });
    let s = Setup::new("rotate", &server.url(), json!({}));
    let rec = s.start_with(
        &["--config"],
        &[
            ("WSREC_PERIOD_SECS", "2"),
            ("WSREC_CLOSE_GRACE_SECS", "0.5"),
        ],
    );

    // After the traffic stops, every file gets closed: none stays open in the process.
    thread::sleep(Duration::from_secs(5));
    wait_until(Duration::from_secs(6), "every hour file closed", || {
        !rec.open_files()
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".jsonl"))
    });
    let files = s.files("t");
    assert!(files.len() >= 3, "5 s of 2 s periods: {files:?}");
    let mut seq = Vec::new();
    for f in &files {
        let p = period_of(f);
        assert_eq!(p % 2, 0, "period start {p} is aligned");
        for line in fs::read_to_string(f).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if let Some(at) = v["at"].as_f64() {
                // Received within the period (the send stamp precedes receipt slightly).
                assert!(
                    at >= p as f64 - 0.2 && at < (p + 2) as f64,
                    "message sent at {at} is in the file of period {p}"
                );
                seq.push(v["seq"].as_u64().unwrap());
            }
        }
    }
    assert_eq!(
        seq,
        (0..seq.len() as u64).collect::<Vec<_>>(),
        "in order, none lost"
    );
    assert!(seq.len() > 150, "only {} messages", seq.len());
    assert!(rec.child.id() > 0);
}

#[test]
fn resubscribes_after_every_connect() {
    let subs = Arc::new(Mutex::new(Vec::new()));
    let seen = subs.clone();
    let server = Server::start(move |i, stream| {
        let (mut ws, sub) = accept_subscribed(stream);
        seen.lock().unwrap().push(sub);
        let base = i as u64 * 10;
        send_range(&mut ws, base..base + 10);
        if i < 2 {
            ws.close(None).unwrap();
            let _ = ws.flush();
            while ws.read().is_ok() {}
        } else {
            hold(ws);
        }
    });
    let s = Setup::new(
        "resub",
        &server.url(),
        json!({"subscribe_message": "{\"op\":\"subscribe\",\"args\":[\"trade.{topic}\"]}"}),
    );
    let _rec = s.start();
    wait_until(Duration::from_secs(10), "30 lines", || s.seqs().len() == 30);
    assert_eq!(s.seqs(), (0..30).collect::<Vec<_>>());
    let subs = subs.lock().unwrap().clone();
    assert_eq!(subs.len(), 3);
    for sub in subs {
        assert_eq!(sub, r#"{"op":"subscribe","args":["trade.t"]}"#);
    }
    let st = s.wait_status();
    assert_eq!(st["connects"], 3);
    assert_eq!(st["reconnects"], 2);
}

#[test]
fn empty_subscribe_message_sends_nothing() {
    let (tx, rx) = mpsc::channel();
    let server = Server::start(move |_, stream| {
        stream
            .set_read_timeout(Some(Duration::from_millis(800)))
            .unwrap();
        let mut ws = accept(stream);
        // Nothing but the client's pings may arrive.
        let got = read_text(&mut ws);
        tx.send(got).unwrap();
        send_range(&mut ws, 0..3);
        hold(ws);
    });
    let s = Setup::new("nosub", &server.url(), json!({"subscribe_message": ""}));
    let _rec = s.start();
    let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(got, None, "received {got:?}");
    wait_until(Duration::from_secs(10), "3 lines", || s.seqs().len() == 3);
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

#[test]
fn backoff_grows_with_jitter_and_resets_after_data() {
    // Connections 0..5 are closed at once (no handshake); connection 6 delivers a
    // message and closes; connection 7 is accepted for good.
    let times = Arc::new(Mutex::new(Vec::new()));
    let t = times.clone();
    let server = Server::start(move |i, stream| {
        t.lock().unwrap().push(Instant::now());
        if i < 6 {
            drop(stream);
        } else if i == 6 {
            let (mut ws, _) = accept_subscribed(stream);
            send_range(&mut ws, 0..1);
            ws.close(None).unwrap();
            let _ = ws.flush();
            while ws.read().is_ok() {}
        } else {
            let (mut ws, _) = accept_subscribed(stream);
            send_range(&mut ws, 1..2);
            hold(ws);
        }
    });
    let s = Setup::new(
        "backoff",
        &server.url(),
        json!({"reconnect_initial_delay": 0.2, "reconnect_max_delay": 0.8}),
    );
    let _rec = s.start();
    wait_until(Duration::from_secs(20), "8 connections", || {
        times.lock().unwrap().len() >= 8
    });
    wait_until(Duration::from_secs(5), "both lines", || {
        s.seqs() == vec![0, 1]
    });
    let times = times.lock().unwrap().clone();
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    // Equal jitter: each delay d is in [d/2, d]; d doubles from 0.2 up to 0.8.
    let expect = [0.2, 0.4, 0.8, 0.8, 0.8];
    for (k, d) in expect.iter().enumerate() {
        assert!(
            gaps[k] >= d / 2.0 - 0.02 && gaps[k] <= d + 0.4,
            "gap {k} = {:.3}s, expected within [{:.2}, {:.2}]: {gaps:?}",
            gaps[k],
            d / 2.0,
            d
        );
    }
    // After the connection that delivered data, the delay starts again from 0.2.
    assert!(gaps[6] <= 0.2 + 0.3, "reset after data: {gaps:?}");
}

#[test]
fn status_text_json_and_no_instance() {
    let (tx, _rx) = mpsc::channel();
    let server = feed(500, tx);
    let s = Setup::new("status", &server.url(), json!({"status_interval": 0.5}));
    let mut rec = s.start();
    wait_until(Duration::from_secs(10), "500 lines", || {
        s.seqs().len() == 500
    });

    let t = Instant::now();
    let out = std::process::Command::new(bin())
        .args(["-config", s.config.to_str().unwrap(), "-status"])
        .output()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(out.status.code(), Some(0));
    let line = String::from_utf8(out.stdout).unwrap();
    assert_seed_line(line.trim_end(), 500);
    assert_eq!(line.lines().count(), 1);

    let v = s.wait_status();
    for key in [
        "uptime_s",
        "total_messages",
        "rate_per_min",
        "connected",
        "connects",
        "reconnects",
        "queue_depth",
        "queue_capacity",
        "dropped",
        "rejected",
        "bytes_written",
        "current_file",
        "last_message_age_s",
        "last_error",
        "status_line",
    ] {
        assert!(v.get(key).is_some(), "no {key} in {v}");
    }
    assert_eq!(v["total_messages"], 500);
    assert_eq!(v["connected"], true);
    assert_eq!(v["queue_capacity"], 10000);
    assert_eq!(v["dropped"], 0);
    assert!(v["current_file"].as_str().unwrap().contains("t_"));
    assert!(v["bytes_written"].as_u64().unwrap() > 500 * 50);

    // The same line goes to the log every status_interval.
    wait_until(Duration::from_secs(5), "status line in the log", || {
        s.log_text()
            .lines()
            .any(|l| l.contains("Uptime: ") && l.contains("Total Msgs: 500"))
    });

    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(3)).unwrap().code(),
        Some(0)
    );
    assert!(!s.socket.exists(), "socket removed on exit");

    // No instance: non-zero within 1 s, one line naming the socket.
    let t = Instant::now();
    let out = std::process::Command::new(bin())
        .args(["--config", s.config.to_str().unwrap(), "--status"])
        .output()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(s.socket.to_str().unwrap()), "{err}");
}

/// `Uptime: 12m34s | Total Msgs: 152340 | Rate: 7260.12 msg/min`
fn assert_seed_line(line: &str, total: u64) {
    let parts: Vec<&str> = line.split(" | ").collect();
    assert_eq!(parts.len(), 3, "{line}");
    let up = parts[0].strip_prefix("Uptime: ").expect(line);
    assert!(
        up.ends_with('s') && up.chars().next().unwrap().is_ascii_digit(),
        "{line}"
    );
    assert_eq!(parts[1], format!("Total Msgs: {total}"));
    let rate = parts[2]
        .strip_prefix("Rate: ")
        .and_then(|r| r.strip_suffix(" msg/min"))
        .expect(line);
    let (_, decimals) = rate.split_once('.').expect(line);
    assert_eq!(decimals.len(), 2, "{line}");
    assert!(rate.parse::<f64>().unwrap() > 0.0);
}

#[test]
fn sigterm_sends_close_frame_flushes_and_removes_socket() {
    let (tx, rx) = mpsc::channel();
    let server = Server::start(move |_, stream| {
        let tx = tx.clone();
        thread::spawn(move || {
            let (mut ws, _) = accept_subscribed(stream);
            send_range(&mut ws, 0..1000);
            ws.get_ref()
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut close = None;
            loop {
                match ws.read() {
                    Ok(Message::Close(f)) => {
                        close = Some(f.map(|f| u16::from(f.code)));
                        let _ = ws.flush();
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            tx.send(close).unwrap();
        });
    });
    let s = Setup::new("sigterm", &server.url(), json!({}));
    let mut rec = s.start();
    wait_until(Duration::from_secs(10), "1000 lines", || {
        s.seqs().len() == 1000
    });
    s.wait_status();
    let t = Instant::now();
    rec.term();
    let st = rec
        .wait_exit(Duration::from_secs(3))
        .expect("exit within 3 s");
    assert_eq!(st.code(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(3));
    let close = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(close, Some(Some(1000)), "a normal close frame");
    assert!(!s.socket.exists());
    assert_eq!(s.seqs(), (0..1000).collect::<Vec<_>>());
    let log = s.log_text();
    assert!(log.contains("shutting down"), "{log}");
}

#[test]
fn debug_logs_to_stdout() {
    let (tx, _rx) = mpsc::channel();
    let server = feed(1, tx);
    let s = Setup::new("debug", &server.url(), json!({}));
    let mut rec = s.start_with(&["--debug", "--config"], &[]);
    wait_until(Duration::from_secs(10), "1 line", || s.seqs().len() == 1);
    wait_until(Duration::from_secs(5), "log on stdout", || {
        rec.stdout_text().contains("connected to")
    });
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(3)).unwrap().code(),
        Some(0)
    );
    assert!(rec.stdout_text().contains("DEBUG") || rec.stdout_text().contains("subscribed"));
}
