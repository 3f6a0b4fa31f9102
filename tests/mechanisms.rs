//! The generic mechanisms that venues need, each against a local server that behaves
//! like the venue in the one respect under test: heartbeat replies under a flood,
//! binary frames of every kind (and a bomb), a message over the size limit that comes
//! again after every reconnect, a URL command that fails and times out, and many topics.
//! The venues themselves are in tests/presets.rs.

mod common;

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use flate2::Compression;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use serde_json::{Value, json};
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

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
        s.lines("t").len() == 200_000
    });
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

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// gzip, zlib, raw deflate and plain JSON in binary frames are decoded and recorded
/// verbatim; undecodable binary is refused and counted; a gzip bomb (1 GiB of white
/// space in about 1 MiB) is refused and counted without taking the memory.
#[test]
fn binary_frames_are_decoded_and_a_bomb_is_refused() {
    let bomb = {
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..1024 {
            e.write_all(&chunk).unwrap();
        }
        e.finish().unwrap()
    };
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    let server = Server::start(move |_, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        let m = |i| msg(i).into_bytes();
        let zlib = {
            let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
            e.write_all(&m(1)).unwrap();
            e.finish().unwrap()
        };
        let deflate = {
            let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
            e.write_all(&m(2)).unwrap();
            e.finish().unwrap()
        };
        for frame in [
            Message::binary(gzip(&m(0))),
            Message::binary(zlib),
            Message::binary(deflate),
            Message::binary(m(3)),
            Message::text(msg(4)),
            Message::binary(vec![0u8, 1, 2, 3, 0xff, 0xfe]),
            Message::binary(bomb.clone()),
            Message::binary(gzip(&m(5))),
        ] {
            ws.send(frame).unwrap();
        }
        hold(ws);
    });
    let s = Setup::new("binary", &server.url(), json!({}));
    let mut rec = s.start();
    wait_until(Duration::from_secs(20), "6 lines", || s.seqs().len() == 6);
    assert_eq!(s.seqs(), [0, 1, 2, 3, 4, 5]);
    let expected: Vec<String> = (0..6).map(msg).collect();
    assert_eq!(s.lines("t"), expected, "decoded text verbatim");
    let st = s.wait_status();
    assert_eq!(st["rejected"]["binary"], 1, "{st}");
    assert_eq!(st["rejected"]["too_large"], 1, "{st}");
    rec.term();
    rec.wait_exit(Duration::from_secs(5)).unwrap();
    let rss = rec.peak_rss_kib();
    assert!(rss < 64 * 1024, "peak RSS {rss} KiB");
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
    let server = Server::start(|_, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        send_range(&mut ws, 0..5);
        hold(ws);
    });
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

/// Many topics: each gets its file, and the number of files open at once stays bounded.
#[test]
fn open_files_stay_bounded_with_many_topics() {
    const TOPICS: u64 = 400;
    let server = Server::start(|_, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        for round in 0..3 {
            for t in 0..TOPICS {
                let m = format!(r#"{{"topic":"t{t}","seq":{round}}}"#);
                ws.write(Message::text(m)).unwrap();
            }
        }
        ws.flush().unwrap();
        hold(ws);
    });
    let topics: Vec<String> = (0..TOPICS).map(|t| format!("t{t}")).collect();
    let s = Setup::new(
        "manyfiles",
        &server.url(),
        json!({"topic": null, "topics": topics, "subscribe_message": "{\"op\":\"subscribe\",\"args\":[{topics}]}"}),
    );
    let mut rec = s.start();
    let open_hour_files = |rec: &Recorder| {
        rec.open_files()
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .count()
    };
    let mut most = 0;
    wait_until(
        Duration::from_secs(30),
        "3 lines in every topic's file",
        || {
            most = most.max(open_hour_files(&rec));
            (0..TOPICS).all(|t| s.lines(&format!("t{t}")).len() == 3)
        },
    );
    most = most.max(open_hour_files(&rec));
    assert!(most <= 256, "{most} files open at once");
    assert!(s.lines("_control").is_empty());
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(5)).unwrap().code(),
        Some(0)
    );
}

/// Coinbase's level2 snapshot is bigger than the old 16 MiB limit: with the default
/// (64 MiB) an 18 MiB message is recorded, verbatim, on one connection.
#[test]
fn an_18_mib_snapshot_is_recorded_with_the_default_limit() {
    let big = format!(
        r#"{{"topic":"t","type":"snapshot","seq":0,"bids":[{}]}}"#,
        vec![r#"["67012.12","0.5"]"#; 18 << 20 >> 4].join(",")
    );
    assert!(big.len() > 18 << 20);
    let sent = big.clone();
    let server = Server::start(move |_, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        ws.send(Message::text(sent.clone())).unwrap();
        send_range(&mut ws, 1..3);
        hold(ws);
    });
    let s = Setup::new("snapshot", &server.url(), json!({}));
    let mut rec = s.start();
    // The counter first: reading the file while 18 MiB are being written to it would
    // see a partial line.
    wait_until(Duration::from_secs(60), "3 lines written", || {
        s.status_json()
            .is_some_and(|v| v["lines_written"].as_u64() == Some(3))
    });
    assert_eq!(s.lines("t")[0], big);
    assert_eq!(server.connections(), 1);
    rec.term();
    rec.wait_exit(Duration::from_secs(5)).unwrap();
}
