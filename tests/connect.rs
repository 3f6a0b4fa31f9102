//! Connecting, subscribing and reconnecting: resets and closes, handshake refusals and
//! Retry-After, back-off with jitter, resubscribing, a failing `ws_url_command`.

use crate::common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Write as _};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

#[test]
fn tcp_reset_three_times_loses_nothing() {
    const K: u64 = 3000;
    let subs = Arc::new(Mutex::new(Vec::new()));
    let seen = subs.clone();
    let server = Server::start(move |i, stream| {
        let (mut ws, sub) = accept_subscribed(stream);
        seen.lock().unwrap().push(sub);
        let i = i as u64;
        send_range(&mut ws, i * K..(i + 1) * K);
        if i < 3 {
            let tcp = ws.get_ref().try_clone().unwrap();
            wait_acked(&tcp);
            drop(ws);
            reset(tcp);
        } else {
            hold(ws);
        }
    });
    let s = Setup::new("rst", &server.url(), json!({}));
    let _rec = s.start();
    wait_until(Duration::from_secs(20), "4 sessions of messages", || {
        s.seqs().len() as u64 >= 4 * K
    });
    assert_eq!(
        s.seqs(),
        (0..4 * K).collect::<Vec<_>>(),
        "each exactly once, in order"
    );
    let subs = subs.lock().unwrap();
    assert_eq!(subs.len(), 4, "resubscribed on each connection");
    assert!(
        subs.iter()
            .all(|x| x == r#"{"op":"subscribe","args":["t"]}"#)
    );
    let st = s.wait_status();
    assert_eq!(st["reconnects"], 3);
}

#[test]
fn close_1001_is_clean_and_both_sessions_are_recorded() {
    let server = Server::start(|i, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        let i = i as u64;
        send_range(&mut ws, i * 10..i * 10 + 10);
        if i == 0 {
            ws.close(Some(CloseFrame {
                code: CloseCode::Away,
                reason: "restarting".into(),
            }))
            .unwrap();
            while ws.read().is_ok() {}
        } else {
            hold(ws);
        }
    });
    let s = Setup::new("close1001", &server.url(), json!({}));
    let _rec = s.start();
    wait_until(Duration::from_secs(10), "both sessions", || {
        s.seqs().len() >= 20
    });
    assert_eq!(s.seqs(), (0..20).collect::<Vec<_>>());
    let log = s.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("code 1001") || l.to_lowercase().contains("going away"))
        .unwrap_or_else(|| panic!("close logged: {log}"));
    assert!(
        line.contains("[INFO]"),
        "a clean close is not an error: {line}"
    );
    assert!(
        line.contains("restarting"),
        "the server's reason is kept: {line}"
    );
    assert!(!log.contains("[ERROR]"), "{log}");
    assert_eq!(
        s.wait_status()["last_error"],
        "",
        "a clean close is not an error"
    );
}

/// Reads an HTTP request head from `s`.
fn read_request(s: &TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            return head;
        }
        head.push_str(&line);
    }
}

#[test]
fn handshake_refusals_back_off_and_honour_retry_after() {
    let server = Server::start(move |i, mut stream| match i {
        0..=2 => {
            read_request(&stream);
            let _ = stream.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
        }
        3 => {
            read_request(&stream);
            let _ = stream.write_all(
                    b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
        }
        _ => {
            send_and_hold(stream, 0..10);
        }
    });
    let s = Setup::new(
        "refuse",
        &server.url(),
        json!({"reconnect_initial_delay": 0.1, "reconnect_max_delay": 0.4}),
    );
    let _rec = s.start();
    wait_until(Duration::from_secs(15), "recorded after refusals", || {
        s.seqs().len() == 10
    });
    let at = server.connect_times();
    assert_eq!(at.len(), 5, "one attempt per refusal, no tight loop");
    let gaps: Vec<f64> = at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    for (k, g) in gaps[..3].iter().enumerate() {
        assert!(*g >= 0.045, "back-off before attempt {}: {gaps:?}", k + 1);
    }
    assert!(gaps[3] >= 0.98, "Retry-After: 1 honoured: {gaps:?}");
    let log = s.log_text();
    assert!(log.contains("503"), "{log}");
    assert!(log.contains("429"), "{log}");
}

/// A message over max_message_bytes that comes again right after every connect (as a
/// big snapshot does) must not become a tight refetch loop: the back-off grows, and the
/// log says which limit to raise. What came before it on each connection is kept.
#[test]
fn an_oversize_message_after_every_connect_grows_the_back_off() {
    let server = Server::start(|_, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        send_range(&mut ws, 0..3);
        let big = format!(r#"{{"topic":"t","snapshot":"{}"}}"#, "x".repeat(8192));
        let _ = ws.send(Message::text(big));
        hold(ws);
    });
    let s = Setup::new(
        "oversize",
        &server.url(),
        json!({"max_message_bytes": 4096, "reconnect_initial_delay": 0.1, "reconnect_max_delay": 5}),
    );
    let mut rec = s.start();
    thread::sleep(Duration::from_secs(6));
    let connections = server.connections();
    // Without growth: about 6 s / 0.1 s = 60 connections; with it: 0.1+0.2+0.4+...
    assert!(
        (2..=8).contains(&connections),
        "{connections} connections in 6 s"
    );
    let log = s.log_text();
    assert!(
        log.contains("raise max_message_bytes in"),
        "the log names the limit:\n{log}"
    );
    assert_eq!(
        s.lines("t").len(),
        3 * connections,
        "lines before the big one"
    );
    let st = s.wait_status();
    assert!(st["rejected"]["too_large"].as_u64() >= Some(2), "{st}");
    rec.term();
    rec.wait_exit(Duration::from_secs(5)).unwrap();
}

/// The URL comes from a command run before every connect (KuCoin's token). It fails
/// twice (like a token service that is down), then works; a hanging command is killed
/// at its timeout. Both failures are handled like a refused connect.
#[test]
fn ws_url_command_failures_are_retried_like_refused_connects() {
    let server = Server::sending(0..5);
    let dir = TempDir::new("urlcmd-state");
    let count = dir.path().join("n");
    let cmd = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); echo $((n+1)) > {c}; \
         if [ $n -lt 2 ]; then echo 'token service down' >&2; exit 1; fi; \
         if [ $n -eq 2 ]; then sleep 5; fi; \
         echo '{url}?token=t'",
        c = count.display(),
        url = server.url()
    );
    let s = Setup::new(
        "urlcmd",
        "ws://127.0.0.1:9/unused",
        json!({"ws_url_command": cmd, "ws_url_command_timeout": 0.5,
               "reconnect_initial_delay": 0.05, "reconnect_max_delay": 0.2}),
    );
    let started = Instant::now();
    let mut rec = s.start();
    wait_until(Duration::from_secs(20), "5 lines", || s.seqs().len() == 5);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the sleep was cut"
    );
    let log = s.log_text();
    assert!(
        log.contains("ws_url_command: exit status: 1: token service down"),
        "{log}"
    );
    assert!(log.contains("killed"), "{log}");
    assert_eq!(server.connections(), 1);
    rec.term();
    rec.wait_exit(Duration::from_secs(5)).unwrap();
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

#[test]
fn backoff_grows_with_jitter_and_resets_after_data() {
    // Connections 0..5 are closed at once (no handshake); connection 6 delivers a
    // message and closes; connection 7 is accepted for good.
    let server = Server::start(move |i, stream| {
        if i < 6 {
            drop(stream);
        } else if i == 6 {
            let (mut ws, _) = accept_subscribed(stream);
            send_range(&mut ws, 0..1);
            ws.close(None).unwrap();
            let _ = ws.flush();
            while ws.read().is_ok() {}
        } else {
            send_and_hold(stream, 1..2);
        }
    });
    let s = Setup::new(
        "backoff",
        &server.url(),
        json!({"reconnect_initial_delay": 0.2, "reconnect_max_delay": 0.8}),
    );
    let _rec = s.start();
    wait_until(Duration::from_secs(20), "8 connections", || {
        server.connect_times().len() >= 8
    });
    wait_until(Duration::from_secs(5), "both lines", || {
        s.seqs() == vec![0, 1]
    });
    let times = server.connect_times();
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
