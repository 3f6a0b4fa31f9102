//! Faults, bad input and crash safety (CONTRACT.md "Shutdown and faults"): each test
//! runs the real binary against a real server on 127.0.0.1 and checks the files.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
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

#[test]
fn stalled_server_is_left_after_stale_timeout() {
    // Connection 0 sends one message, then nothing at all (no pongs either: it never
    // reads) with TCP open; connection 1 sends the next.
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    let at = Arc::new(Mutex::new(Vec::new()));
    let a = at.clone();
    let server = Server::start(move |i, stream| {
        a.lock().unwrap().push(Instant::now());
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
        at.lock().unwrap().len() >= 2
    });
    let at = at.lock().unwrap().clone();
    let gap = (at[1] - at[0]).as_secs_f64();
    // stale_timeout + the first back-off delay (at most 0.05 s) + scheduling slack.
    assert!((1.5..2.5).contains(&gap), "reconnected after {gap:.2}s");
    wait_until(Duration::from_secs(5), "the new session recorded", || {
        s.seqs() == vec![0, 1]
    });
    assert!(s.log_text().contains("stale"), "{}", s.log_text());
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
    let at = Arc::new(Mutex::new(Vec::new()));
    let a = at.clone();
    let server = Server::start(move |i, mut stream| {
        a.lock().unwrap().push(Instant::now());
        match i {
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
                let (mut ws, _) = accept_subscribed(stream);
                send_range(&mut ws, 0..10);
                hold(ws);
            }
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
    let at = at.lock().unwrap().clone();
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

/// Writes one raw unmasked server frame.
fn raw_frame(s: &mut TcpStream, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut head = vec![0x80 | opcode];
    let n = payload.len();
    if n < 126 {
        head.push(n as u8);
    } else if n < 65536 {
        head.push(126);
        head.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        head.push(127);
        head.extend_from_slice(&(n as u64).to_be_bytes());
    }
    s.write_all(&head)?;
    s.write_all(payload)
}

#[test]
fn bad_frames_are_refused_counted_and_survived() {
    const PRETTY: &str = "{\n  \"topic\": \"t\",\n  \"pretty\": [1, 2],\n  \"s\": \"a b\\n c\"\n}";
    let server = Server::start(|i, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        let i = i as u64;
        send_range(&mut ws, 2 * i..2 * i + 1);
        let mut tcp = ws.get_ref().try_clone().unwrap();
        let survivable = match i {
            0 => {
                raw_frame(&mut tcp, 1, b"{\"bad\":\"\xff\xfe\"}").unwrap();
                false
            }
            1 => {
                ws.send(Message::binary(vec![1u8, 2, 3])).unwrap();
                true
            }
            2 => {
                ws.send(Message::text("")).unwrap();
                true
            }
            3 => {
                ws.send(Message::text(PRETTY)).unwrap();
                true
            }
            4 => {
                ws.send(Message::text("hello, not json")).unwrap();
                true
            }
            5 => {
                // A 64 MiB text frame, streamed; the client hangs up after the header.
                let header_len = 64u64 << 20;
                let mut head = vec![0x81, 127];
                head.extend_from_slice(&header_len.to_be_bytes());
                let _ = tcp.write_all(&head);
                let chunk = vec![b'a'; 1 << 20];
                for _ in 0..64 {
                    if tcp.write_all(&chunk).is_err() {
                        break;
                    }
                }
                false
            }
            _ => {
                send_range(&mut ws, 100..110);
                hold(ws);
                return;
            }
        };
        if survivable {
            send_range(&mut ws, 2 * i + 1..2 * i + 2);
            let _ = ws.close(None);
        }
        let _ = ws.get_ref().set_read_timeout(Some(Duration::from_secs(5)));
        while ws.read().is_ok() {}
    });
    let s = Setup::new(
        "badframes",
        &server.url(),
        json!({"max_message_bytes": 1 << 20}),
    );
    let rec = s.start();
    wait_until(
        Duration::from_secs(30),
        "the messages after the bad ones",
        || s.seqs().ends_with(&[109]),
    );
    let mut expect = vec![0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12];
    expect.extend(100..110);
    assert_eq!(s.seqs(), expect);
    let lines = s.lines("t");
    let compact = r#"{"topic":"t","pretty":[1,2],"s":"a b\n c"}"#;
    assert_eq!(
        lines.iter().filter(|l| *l == compact).count(),
        1,
        "{lines:?}"
    );
    assert_eq!(
        lines.len(),
        expect.len() + 1,
        "nothing else written: {lines:?}"
    );
    let rss = rec.peak_rss_kib();
    assert!(rss > 0 && rss < 64 * 1024, "peak RSS {rss} KiB");
    let st = s.wait_status();
    let r = &st["rejected"];
    for reason in ["invalid_utf8", "binary", "empty", "not_json", "too_large"] {
        assert_eq!(r[reason], 1, "{reason} in {st}");
    }
    assert!(server.connections() == 7);
}

/// A server that sends to each connection as fast as `rate` msgs/s allows, with one
/// sequence counter across connections, until the client goes away.
fn paced_server(rate: u64, next: Arc<AtomicU64>) -> Server {
    Server::start(move |_, stream| {
        let next = next.clone();
        thread::spawn(move || {
            let (mut ws, _) = accept_subscribed(stream);
            let start = Instant::now();
            let mut sent = 0u64;
            loop {
                let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
                if sent >= due {
                    thread::sleep(Duration::from_millis(1));
                    continue;
                }
                let burst = (due - sent).min(1000);
                for _ in 0..burst {
                    let seq = next.fetch_add(1, SeqCst);
                    if ws.write(Message::text(msg(seq))).is_err() {
                        return;
                    }
                }
                sent += burst;
                if ws.flush().is_err() {
                    return;
                }
            }
        });
    })
}

/// Every line of every file parses and each file ends with a newline; seqs increase.
fn assert_whole_and_increasing(s: &Setup) -> Vec<u64> {
    let seqs = s.seqs(); // panics on a line that does not parse or a partial tail
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "no duplicates, in order"
    );
    seqs
}

#[test]
fn sigterm_at_50k_per_second() {
    let server = paced_server(50_000, Arc::new(AtomicU64::new(0)));
    let s = Setup::new("term50k", &server.url(), json!({}));
    let mut rec = s.start();
    wait_until(Duration::from_secs(10), "50k lines", || {
        s.wait_status()["total_messages"].as_u64().unwrap() > 50_000
    });
    let t = Instant::now();
    rec.term();
    let st = rec
        .wait_exit(Duration::from_secs(3))
        .expect("exit within 3 s");
    assert_eq!(st.code(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(!s.socket.exists(), "status socket removed");
    let seqs = assert_whole_and_increasing(&s);
    assert_eq!(
        seqs,
        (0..seqs.len() as u64).collect::<Vec<_>>(),
        "everything received up to the end is on disk"
    );
    assert!(seqs.len() > 50_000);
    let log = s.log_text();
    let stopped = log
        .lines()
        .find(|l| l.contains("stopped: Uptime"))
        .expect(&log);
    assert!(
        stopped.contains(&format!("Total Msgs: {}", seqs.len())),
        "{stopped}"
    );
}

#[test]
fn sigkill_twice_then_restart_appends_whole_lines() {
    let next = Arc::new(AtomicU64::new(0));
    let server = paced_server(50_000, next.clone());
    let s = Setup::new("kill9", &server.url(), json!({}));
    for round in 0..2 {
        let mut rec = s.start();
        let before = next.load(SeqCst);
        // Polled through the status socket: the files may end in a torn line until
        // the next start repairs them.
        wait_until(Duration::from_secs(10), "recording", || {
            next.load(SeqCst) > before + 30_000
                && s.status_json()
                    .is_some_and(|v| v["lines_written"].as_u64().unwrap() > 20_000)
        });
        rec.kill9();
        if round == 1 {
            // A crash mid-write can leave a torn tail; simulate the worst case.
            let f = s.files("t").pop().unwrap();
            let mut file = fs::OpenOptions::new().append(true).open(&f).unwrap();
            file.write_all(br#"{"topic":"t","seq":99999999,"da"#)
                .unwrap();
        }
    }
    let before_restart: Vec<_> = s.files("t");
    let mut rec = s.start();
    let n = next.load(SeqCst);
    wait_until(Duration::from_secs(10), "recording after restart", || {
        s.status_json()
            .is_some_and(|v| v["lines_written"].as_u64().unwrap() > 20_000)
    });
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(3)).unwrap().code(),
        Some(0)
    );
    let seqs = assert_whole_and_increasing(&s);
    assert!(!seqs.contains(&99_999_999), "the torn tail was removed");
    // The restart appended to the same hour's file (unless the hour ended meanwhile).
    let after = s.files("t");
    assert!(after.len() <= before_restart.len() + 1);
    if after.len() == 1 {
        let seqs_in_one = seqs.len();
        assert!(seqs_in_one > 20_000);
        assert!(seqs[0] < 30_000 && *seqs.last().unwrap() > n + 10_000);
    }
}

/// Mounts a tmpfs of `size` at `dir`; unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Result<Tmpfs, String> {
        if unsafe { libc::geteuid() } != 0 {
            return Err("not running as root".into());
        }
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A server that sends messages 0..n with blocking sends, so that TCP back-pressure
/// reaches it when the recorder stops reading, then holds the connection.
fn blocking_sender(n: u64) -> Server {
    Server::start(move |_, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        thread::spawn(move || {
            for i in 0..n {
                if ws.send(Message::text(msg(i))).is_err() {
                    return;
                }
            }
            hold(ws);
        });
    })
}

/// The disk-full scenario: output_dir on a 2 MiB tmpfs, nearly filled with ballast;
/// the server sends `n` messages; the ballast is removed after the recorder has hit
/// the wall for a while. Returns (setup, recorder CPU while the disk was full).
fn disk_full(on_full: &str, n: u64) -> (Setup, Duration, Duration, String, serde_json::Value) {
    let server = blocking_sender(n);
    let s = Setup::new(
        "diskfull",
        &server.url(),
        json!({"on_full": on_full, "buffer_size": 1000}),
    );
    let _mnt = match Tmpfs::mount(&s.out, "2m") {
        Ok(m) => m,
        Err(why) => missing(&format!("a tmpfs for the disk-full test: {why}")),
    };
    let ballast = s.out.join("ballast");
    let mut b = fs::File::create(&ballast).unwrap();
    let _ = b.write_all(&vec![0u8; (2 << 20) - (256 << 10)]);
    drop(b);
    let mut rec = s.start();
    wait_until(Duration::from_secs(15), "a write error in the log", || {
        s.log_text().contains("No space left")
    });
    // Stay full for 3 s: the recorder must neither crash nor spin.
    let cpu0 = rec.cpu_time();
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs(3));
    let cpu = rec.cpu_time() - cpu0;
    let wall = t0.elapsed();
    assert!(rec.child.try_wait().unwrap().is_none(), "still running");
    let log_full = s.log_text();
    fs::remove_file(&ballast).unwrap();
    // Everything received is written (or, with drop, was counted as dropped).
    let mut last = json!(null);
    wait_until(
        Duration::from_secs(20),
        "all messages handled after space returns",
        || {
            last = s.status_json().unwrap_or_default();
            last["total_messages"] == n
                && last["queue_depth"] == 0
                && last["lines_written"].as_u64().unwrap() + last["dropped"].as_u64().unwrap() == n
        },
    );
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(3)).unwrap().code(),
        Some(0)
    );
    // Keep the mount until the files have been read.
    let lines = s.lines("t");
    let s2 = Setup {
        dir: TempDir::new("diskfull-copy"),
        out: std::path::PathBuf::new(),
        config: std::path::PathBuf::new(),
        socket: std::path::PathBuf::new(),
        log: std::path::PathBuf::new(),
    };
    let out = s2.dir.path().join("out");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("t_0.jsonl"), lines.join("\n") + "\n").unwrap();
    fs::write(s2.dir.path().join("wsrec.log"), s.log_text()).unwrap();
    drop(_mnt);
    let s2 = Setup {
        out,
        log: s2.dir.path().join("wsrec.log"),
        ..s2
    };
    (s2, cpu, wall, log_full, last)
}

#[test]
fn disk_full_with_block_loses_nothing_and_does_not_spin() {
    let n = 12_000;
    let (s, cpu, wall, log, st) = disk_full("block", n);
    assert!(
        cpu.as_secs_f64() < 0.1 * wall.as_secs_f64(),
        "CPU {cpu:?} in {wall:?} while the disk was full"
    );
    let errors = log.lines().filter(|l| l.contains("No space left")).count();
    assert!(
        errors <= 3,
        "rate-limited: {errors} error lines in a few seconds"
    );
    assert!(
        log.contains("pausing reads"),
        "the full channel is reported: {log}"
    );
    assert_eq!(
        s.seqs(),
        (0..n).collect::<Vec<_>>(),
        "nothing lost with on_full block"
    );
    assert_eq!(st["dropped"], 0);
    assert!(st["write_errors"].as_u64().unwrap() > 0, "{st}");
}

#[test]
fn disk_full_with_drop_counts_what_it_drops() {
    let n = 30_000;
    let (s, cpu, wall, log, st) = disk_full("drop", n);
    assert!(cpu.as_secs_f64() < 0.1 * wall.as_secs_f64(), "CPU {cpu:?}");
    assert!(log.contains("dropped"), "the drops are logged: {log}");
    let seqs = assert_whole_and_increasing(&s);
    let dropped = st["dropped"].as_u64().unwrap();
    assert!(dropped > 0, "{st}");
    assert_eq!(
        seqs.len() as u64 + dropped,
        n,
        "every message written or counted"
    );
}

#[test]
fn status_socket_leftover_live_and_absent() {
    let server = Server::start(|_, stream| {
        let (ws, _) = accept_subscribed(stream);
        hold(ws);
    });
    let s = Setup::new("sock", &server.url(), json!({}));
    // A leftover socket file of a dead process.
    drop(UnixListener::bind(&s.socket).unwrap());
    assert!(s.socket.exists());
    let mut first = s.start();
    let st = s.wait_status();
    assert_eq!(st["pid"], first.pid());

    // A second instance on the live socket refuses to start.
    let t = Instant::now();
    let out = Command::new(bin())
        .args(["--config", s.config.to_str().unwrap()])
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(s.socket.to_str().unwrap()), "{err}");
    assert_eq!(
        s.wait_status()["pid"],
        first.pid(),
        "the first one still answers"
    );

    first.term();
    assert_eq!(
        first.wait_exit(Duration::from_secs(3)).unwrap().code(),
        Some(0)
    );
    let t = Instant::now();
    let out = Command::new(bin())
        .args(["--config", s.config.to_str().unwrap(), "--status"])
        .output()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(s.socket.to_str().unwrap()));
}

mod tls {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::pkey::{PKey, Private};
    use openssl::ssl::{SslAcceptor, SslMethod, SslStream};
    use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
    use openssl::x509::{X509, X509NameBuilder};

    fn key() -> PKey<Private> {
        PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap()
    }

    fn cert(cn: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(
            &BigNum::from_u32(rand_serial())
                .unwrap()
                .to_asn1_integer()
                .unwrap(),
        )
        .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        match issuer {
            None => {
                b.set_issuer_name(&name).unwrap();
                b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                    .unwrap();
                b.sign(key, MessageDigest::sha256()).unwrap();
            }
            Some((ca, ca_key)) => {
                b.set_issuer_name(ca.subject_name()).unwrap();
                let san = SubjectAlternativeName::new()
                    .ip("127.0.0.1")
                    .dns("localhost")
                    .build(&b.x509v3_context(Some(ca), None))
                    .unwrap();
                b.append_extension(san).unwrap();
                b.sign(ca_key, MessageDigest::sha256()).unwrap();
            }
        }
        b.build()
    }

    fn rand_serial() -> u32 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    }

    /// A wss:// server with a fresh CA; returns it and the CA's PEM.
    pub fn server(
        on_session: impl Fn(usize, tungstenite::WebSocket<SslStream<TcpStream>>) + Send + Sync + 'static,
    ) -> (Server, Vec<u8>, Arc<AtomicU64>) {
        let ca_key = key();
        let ca = cert("wsrec test CA", &ca_key, None);
        let srv_key = key();
        let srv = cert("localhost", &srv_key, Some((&ca, &ca_key)));
        let mut acc = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        acc.set_private_key(&srv_key).unwrap();
        acc.set_certificate(&srv).unwrap();
        let acc = Arc::new(acc.build());
        let handshakes = Arc::new(AtomicU64::new(0));
        let h = handshakes.clone();
        let on_session = Arc::new(on_session);
        let server = Server::start(move |i, stream| {
            h.fetch_add(1, SeqCst);
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let Ok(tls) = acc.accept(stream) else { return };
            let Ok(ws) = tungstenite::accept(tls) else {
                return;
            };
            let f = on_session.clone();
            thread::spawn(move || f(i, ws));
        });
        (server, ca.to_pem().unwrap(), handshakes)
    }

    /// A session handler: reads the subscribe message, sends `n` messages, then
    /// keeps reading until the client leaves.
    fn feed_tls(n: u64) -> impl Fn(usize, tungstenite::WebSocket<SslStream<TcpStream>>) {
        move |_, mut ws| {
            let _ = read_text(&mut ws);
            send_range(&mut ws, 0..n);
            let _ = ws
                .get_ref()
                .get_ref()
                .set_read_timeout(Some(Duration::from_secs(60)));
            while ws.read().is_ok() {}
        }
    }

    /// Runs the recorder with `env` until it has the feed's 100 lines, then checks
    /// that SIGTERM ends it cleanly with every line in order.
    fn records_100_lines_then_stops(s: &Setup, env: &[(&str, &str)]) {
        let mut rec = s.start_with(&["--config"], env);
        wait_until(Duration::from_secs(15), "100 lines over TLS", || {
            s.seqs().len() == 100
        });
        rec.term();
        assert_eq!(
            rec.wait_exit(Duration::from_secs(3)).unwrap().code(),
            Some(0)
        );
        assert_eq!(s.seqs(), (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn wss_with_ssl_cert_file_records() {
        let (server, ca_pem, _) = server(feed_tls(100));
        let url = format!("wss://127.0.0.1:{}/", server.addr.port());
        let s = Setup::new("wss", &url, json!({}));
        let ca = s.dir.path().join("ca.pem");
        fs::write(&ca, ca_pem).unwrap();
        records_100_lines_then_stops(&s, &[("SSL_CERT_FILE", ca.to_str().unwrap())]);
    }

    /// SSL_CERT_DIR: a directory of certificates named by subject hash (`c_rehash`
    /// style, as /etc/ssl/certs is on Debian), and no SSL_CERT_FILE.
    #[test]
    fn wss_with_ssl_cert_dir_records() {
        let (server, ca_pem, _) = server(feed_tls(100));
        let url = format!("wss://127.0.0.1:{}/", server.addr.port());
        let s = Setup::new("wss-dir", &url, json!({}));
        let dir = s.dir.path().join("certs");
        fs::create_dir_all(&dir).unwrap();
        let hash = X509::from_pem(&ca_pem).unwrap().subject_name_hash();
        fs::write(dir.join(format!("{hash:08x}.0")), &ca_pem).unwrap();
        records_100_lines_then_stops(&s, &[("SSL_CERT_DIR", dir.to_str().unwrap())]);
    }

    /// The system trust store as Debian and Raspberry Pi OS lay it out: the test CA is
    /// /etc/ssl/certs/ca-certificates.crt for the recorder alone.
    #[test]
    fn wss_with_the_system_trust_store_records() {
        system_trust_store_records("/etc/ssl/certs", "ca-certificates.crt");
    }

    /// The system trust store as Alpine lays it out: /etc/ssl/cert.pem, and no
    /// /etc/ssl/certs at all.
    #[test]
    fn wss_with_the_alpine_trust_store_records() {
        system_trust_store_records("/etc/ssl", "cert.pem");
    }

    /// Records over TLS with the test CA as `file` in a directory bind-mounted over
    /// `mount_point` in a private mount namespace (root only), SSL_CERT_FILE and
    /// SSL_CERT_DIR unset: the recorder must find it where the distribution keeps it.
    fn system_trust_store_records(mount_point: &str, file: &str) {
        require_root(&format!("bind-mount a test trust store over {mount_point}"));
        if !Path::new(mount_point).is_dir() {
            missing(&format!(
                "{mount_point}, to bind-mount a test trust store over"
            ));
        }
        let (server, ca_pem, _) = server(feed_tls(50));
        let url = format!("wss://127.0.0.1:{}/", server.addr.port());
        let s = Setup::new("wss-sys", &url, json!({}));
        let store = s.dir.path().join("store");
        fs::create_dir_all(&store).unwrap();
        fs::write(store.join(file), &ca_pem).unwrap();
        let stderr = s.dir.path().join("stderr.sys");
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind "$0" "$3" && exec "$1" --config "$2""#)
            .arg(&store)
            .arg(bin())
            .arg(&s.config)
            .arg(mount_point)
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .current_dir(s.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn();
        let Ok(child) = child else {
            missing("unshare (util-linux)");
        };
        let mut rec = Recorder {
            child,
            stderr: stderr.clone(),
            stdout: stderr,
        };
        let mut ok = false;
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            if s.seqs().len() == 50 {
                ok = true;
                break;
            }
            if let Some(st) = rec.child.try_wait().unwrap() {
                let err = rec.stderr_text();
                if err.contains("unshare") || err.contains("mount") {
                    missing(&format!("a private mount namespace ({st}): {}", err.trim()));
                }
                panic!("recorder exited: {st} {err}");
            }
            thread::sleep(Duration::from_millis(20));
        }
        assert!(
            ok,
            "50 lines over TLS with the CA as {mount_point}/{file}: {}",
            s.log_text()
        );
        rec.term();
        assert_eq!(
            rec.wait_exit(Duration::from_secs(3)).unwrap().code(),
            Some(0)
        );
    }

    #[test]
    fn wss_without_the_ca_is_a_plain_certificate_error_retried() {
        let (server, _, handshakes) = server(|_, mut ws| {
            send_range(&mut ws, 0..10);
        });
        let url = format!("wss://127.0.0.1:{}/", server.addr.port());
        let s = Setup::new(
            "wss-noca",
            &url,
            json!({"reconnect_initial_delay": 0.2, "reconnect_max_delay": 0.5}),
        );
        let rec = s.start();
        wait_until(Duration::from_secs(15), "three TLS attempts", || {
            handshakes.load(SeqCst) >= 3
        });
        let t = Instant::now();
        let before = handshakes.load(SeqCst);
        thread::sleep(Duration::from_secs(2));
        let rate = (handshakes.load(SeqCst) - before) as f64 / t.elapsed().as_secs_f64();
        assert!(rate <= 8.0, "backs off: {rate:.1} attempts/s");
        assert!(rec.stderr_text().is_empty() || !rec.stderr_text().contains("panicked"));
        let log = s.log_text();
        let line = log
            .lines()
            .find(|l| l.contains("certificate"))
            .unwrap_or_else(|| panic!("certificate error logged: {log}"));
        assert!(line.contains("SSL_CERT_FILE"), "says what to do: {line}");
        assert!(s.lines("t").is_empty(), "nothing recorded");
    }
}

/// The files of topic `t` under `dir` plus `extra` files, their seqs in order of
/// the files given (each file's lines whole).
fn seqs_of(files: &[std::path::PathBuf]) -> Vec<u64> {
    let mut all = Vec::new();
    for f in files {
        let text = fs::read_to_string(f).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends in a partial line",
            f.display()
        );
        all.extend(seqs(&text.lines().map(str::to_string).collect::<Vec<_>>()));
    }
    all
}

/// Waits until the wall clock is at least `margin` seconds into a period of `period`
/// seconds and at least `margin` seconds before its end.
fn mid_period(period: u64, margin: f64) {
    wait_until(
        Duration::from_secs(period + 5),
        "the middle of a period",
        || {
            let into = unix_now() % period as f64;
            into >= margin && into <= period as f64 - margin
        },
    );
}

#[test]
fn output_dir_deleted_is_created_again_and_recording_goes_on() {
    const PERIOD: u64 = 10;
    let next = Arc::new(AtomicU64::new(0));
    let server = paced_server(2000, next.clone());
    let s = Setup::new("rmdir", &server.url(), json!({}));
    let mut rec = s.start_with(&["--config"], &[("WSREC_PERIOD_SECS", "10")]);
    wait_until(Duration::from_secs(10), "recording", || {
        s.status_json()
            .is_some_and(|v| v["lines_written"].as_u64().unwrap() > 1000)
    });
    // Not at a rotation: the open file is what the check must notice.
    mid_period(PERIOD, 3.0);
    let sent_before = next.load(SeqCst);
    let deleted_in = (unix_now() as u64) / PERIOD * PERIOD;
    fs::remove_dir_all(&s.out).unwrap();
    let t = Instant::now();
    wait_until(Duration::from_secs(5), "a new file at the path", || {
        s.files("t")
            .iter()
            .any(|f| fs::metadata(f).is_ok_and(|m| m.len() > 0))
    });
    let noticed = t.elapsed();
    println!("deleted output_dir noticed and recreated after {noticed:?}");
    // Today's failure was no file at all 20 s later: rotation must go on.
    wait_until(
        Duration::from_secs(30),
        "files of two later periods",
        || {
            s.files("t")
                .iter()
                .any(|f| period_of(f) >= deleted_in + 2 * PERIOD)
        },
    );
    let st = s.wait_status();
    assert_eq!(st["output_reopened"], 1, "{st}");
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(3)).unwrap().code(),
        Some(0)
    );
    let seqs = assert_whole_and_increasing(&s);
    let (first, last) = (seqs[0], *seqs.last().unwrap());
    assert_eq!(
        seqs,
        (first..=last).collect::<Vec<_>>(),
        "nothing lost after the deletion"
    );
    assert!(
        first <= sent_before,
        "the lines written to the deleted file after the last check were saved: first {first}, sent before the deletion {sent_before}"
    );
    let log = s.log_text();
    assert_eq!(log.matches("was deleted").count(), 1, "logged once: {log}");
    assert!(log.contains("created it again"), "{log}");
}

#[test]
fn current_file_moved_away_goes_on_in_a_new_file_without_loss_or_duplicate() {
    const PERIOD: u64 = 30;
    let next = Arc::new(AtomicU64::new(0));
    let server = paced_server(2000, next.clone());
    let s = Setup::new("mvfile", &server.url(), json!({}));
    let mut rec = s.start_with(&["--config"], &[("WSREC_PERIOD_SECS", "30")]);
    mid_period(PERIOD, 8.0);
    wait_until(Duration::from_secs(10), "recording", || {
        s.status_json()
            .is_some_and(|v| v["lines_written"].as_u64().unwrap() > 1000)
    });
    let current = s.files("t").pop().unwrap();
    let moved = s.dir.path().join("moved.jsonl");
    fs::rename(&current, &moved).unwrap();
    let t = Instant::now();
    wait_until(Duration::from_secs(5), "a new file at the path", || {
        fs::metadata(&current).is_ok_and(|m| m.len() > 0)
    });
    println!("moved file noticed after {:?}", t.elapsed());
    let at = next.load(SeqCst);
    wait_until(Duration::from_secs(10), "more lines", || {
        next.load(SeqCst) > at + 2000
    });
    let st = s.wait_status();
    assert_eq!(st["output_reopened"], 1, "{st}");
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(3)).unwrap().code(),
        Some(0)
    );
    let in_moved = seqs_of(&[moved]);
    assert!(in_moved.len() > 1000, "the moved file keeps its lines");
    let mut files = s.files("t");
    files.retain(|f| period_of(f) >= period_of(&current));
    let after = seqs_of(&files);
    let mut all = seqs_of(
        &s.files("t")
            .into_iter()
            .filter(|f| period_of(f) < period_of(&current))
            .collect::<Vec<_>>(),
    );
    all.extend(&in_moved);
    all.extend(&after);
    assert_eq!(
        all,
        (0..all.len() as u64).collect::<Vec<_>>(),
        "every line once, in order, across the moved file and the new one"
    );
    assert_eq!(after[0], in_moved.last().unwrap() + 1);
    let log = s.log_text();
    assert_eq!(log.matches("moved away").count(), 1, "logged once: {log}");
}

#[test]
fn sigterm_with_the_disk_full_exits_within_3s_reporting_the_loss() {
    let n = 50_000;
    let server = blocking_sender(n);
    let s = Setup::new(
        "fullterm",
        &server.url(),
        json!({"on_full": "block", "buffer_size": 1000}),
    );
    let _mnt = match Tmpfs::mount(&s.out, "2m") {
        Ok(m) => m,
        Err(why) => missing(&format!("a tmpfs for the disk-full test: {why}")),
    };
    let mut b = fs::File::create(s.out.join("ballast")).unwrap();
    let _ = b.write_all(&vec![0u8; (2 << 20) - (256 << 10)]);
    drop(b);
    let mut rec = s.start();
    wait_until(
        Duration::from_secs(15),
        "the disk full and the channel too",
        || s.log_text().contains("No space left") && s.log_text().contains("pausing reads"),
    );
    let t = Instant::now();
    rec.term();
    let st = rec
        .wait_exit(Duration::from_secs(5))
        .expect("exits whatever the disk does");
    let took = t.elapsed();
    println!("exit {st:?} {took:?} after SIGTERM with the disk full");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(st.code(), Some(4), "lines were lost: exit code 4");
    let log = s.log_text();
    let lost: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("could not be written"))
        .collect();
    assert_eq!(lost.len(), 1, "logged once: {log}");
    let num = |after: &str| -> u64 {
        let rest = &lost[0][lost[0].find(after).unwrap() + after.len()..];
        rest.split_whitespace()
            .next()
            .unwrap()
            .trim_matches('(')
            .parse()
            .unwrap()
    };
    let (lines, bytes) = (num("shutdown: "), num("lines ("));
    println!("{}", lost[0]);
    let stopped = log.lines().find(|l| l.contains("stopped: Uptime")).unwrap();
    let total: u64 = stopped
        .split("Total Msgs: ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let written = s.seqs(); // every line whole: panics on a torn one
    assert_eq!(
        written,
        (0..written.len() as u64).collect::<Vec<_>>(),
        "what was written is a prefix"
    );
    assert_eq!(written.len() as u64 + lines, total, "{lost:?} {stopped}");
    assert!(lines > 0 && bytes >= lines * 60, "{lost:?}");
    assert!(
        lines <= 3000,
        "at most the channel and a batch or two: {lost:?}"
    );
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

/// `wsrec --status` against `s`; (exit code, how long it took).
fn probe(s: &Setup) -> (Option<i32>, Duration) {
    let t = Instant::now();
    let out = Command::new(bin())
        .args(["--config", s.config.to_str().unwrap(), "--status"])
        .output()
        .unwrap();
    (out.status.code(), t.elapsed())
}

#[test]
fn status_answers_within_1s_beside_idle_and_streaming_clients() {
    use std::os::unix::net::UnixStream;
    let server = Server::start(|_, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        send_range(&mut ws, 0..10);
        hold(ws);
    });
    let s = Setup::new("sockdos", &server.url(), json!({}));
    let mut rec = s.start();
    s.wait_status();
    let rss0 = rss_kib(rec.pid());
    let stop = Arc::new(AtomicBool::new(false));
    let streamed = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    // 20 clients that connect and send nothing, connecting again whenever dropped.
    for _ in 0..20 {
        let (stop, path) = (stop.clone(), s.socket.clone());
        threads.push(thread::spawn(move || {
            while !stop.load(SeqCst) {
                if let Ok(mut c) = UnixStream::connect(&path) {
                    let mut buf = [0u8; 512];
                    let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
                    while !stop.load(SeqCst)
                        && matches!(std::io::Read::read(&mut c, &mut buf), Ok(n) if n > 0)
                    {
                    }
                } else {
                    thread::sleep(Duration::from_millis(5));
                }
            }
        }));
    }
    // One that streams megabytes at it.
    {
        let (stop, path, streamed) = (stop.clone(), s.socket.clone(), streamed.clone());
        threads.push(thread::spawn(move || {
            let chunk = vec![b'x'; 1 << 20];
            while !stop.load(SeqCst) {
                if let Ok(mut c) = UnixStream::connect(&path) {
                    while let Ok(n) = std::io::Write::write(&mut c, &chunk) {
                        streamed.fetch_add(n as u64, SeqCst);
                        if stop.load(SeqCst) {
                            break;
                        }
                    }
                }
            }
        }));
    }
    thread::sleep(Duration::from_millis(300));
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let (code, took) = probe(&s);
        assert_eq!(code, Some(0), "--status answers");
        assert!(took < Duration::from_secs(1), "--status took {took:?}");
        worst = worst.max(took);
        thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let rss1 = rss_kib(rec.pid());
    let mib = streamed.load(SeqCst) >> 20;
    println!(
        "slowest --status {worst:?}; {mib} MiB streamed at the socket; RSS {rss0} -> {rss1} KiB"
    );
    assert!(
        mib >= 2,
        "the streaming client pushed megabytes ({mib} MiB)"
    );
    assert!(
        rss1 < rss0 + 4096,
        "memory stays bounded: {rss0} -> {rss1} KiB"
    );
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(3)).unwrap().code(),
        Some(0)
    );
}

#[test]
fn status_socket_is_0660_and_bound_again_when_removed() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start(|_, stream| {
        let (ws, _) = accept_subscribed(stream);
        hold(ws);
    });
    let s = Setup::new("sockrm", &server.url(), json!({}));
    let mut rec = s.start();
    s.wait_status();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.socket), 0o660, "owner and group only");
    fs::remove_file(&s.socket).unwrap();
    let t = Instant::now();
    wait_until(Duration::from_secs(5), "--status answers again", || {
        probe(&s).0 == Some(3) || probe(&s).0 == Some(0)
    });
    println!("status socket bound again after {:?}", t.elapsed());
    assert_eq!(mode(&s.socket), 0o660);
    assert!(s.log_text().contains("listening on it again"));
    let t = Instant::now();
    rec.term();
    let st = rec
        .wait_exit(Duration::from_secs(3))
        .expect("exit within 3 s after the socket was removed");
    println!("exit after {:?}", t.elapsed());
    assert_eq!(st.code(), Some(0));
    assert!(!s.socket.exists(), "the socket is removed at exit");
}

/// Starts a recorder on `s` whose server sends 100 messages; waits for them on disk
/// (in whichever file) and stops it.
fn record_100(s: &Setup) {
    let mut rec = s.start();
    wait_until(Duration::from_secs(10), "100 lines written", || {
        s.status_json()
            .is_some_and(|v| v["lines_written"].as_u64().unwrap() >= 100)
    });
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(3)).unwrap().code(),
        Some(0)
    );
}

#[test]
fn clock_behind_the_files_never_writes_to_a_closed_hour() {
    let server = Server::start(|_, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        send_range(&mut ws, 0..100);
        hold(ws);
    });
    mid_period(3600, 20.0);
    let hour = (unix_now() as u64) / 3600 * 3600;
    let gz = b"\x1f\x8b compressed by cron";

    // A future hour's file exists (the files are ahead of the clock), and the
    // current hour is already compressed: the lines go to the future hour's file.
    let s = Setup::new("clock", &server.url(), json!({}));
    fs::create_dir_all(&s.out).unwrap();
    let future = s.out.join(format!("t_{}.jsonl", hour + 7200));
    fs::write(&future, "{\"before\":1}\n").unwrap();
    let cur_gz = s.out.join(format!("t_{hour}.jsonl.gz"));
    fs::write(&cur_gz, gz).unwrap();
    record_100(&s);
    assert_eq!(
        fs::read(&cur_gz).unwrap(),
        gz,
        "the compressed hour is untouched"
    );
    assert_eq!(s.files("t"), vec![future.clone()], "no other hour file");
    let lines = s.lines("t");
    assert_eq!(lines[0], "{\"before\":1}");
    assert_eq!(seqs(&lines), (0..100).collect::<Vec<_>>());
    let log = s.log_text();
    let warn = log.lines().find(|l| l.contains("is behind")).expect(&log);
    let name = |t: u64| {
        let out = Command::new("date")
            .args(["-u", "-d", &format!("@{t}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert!(
        warn.contains(&name(hour + 7200)),
        "names the files' hour: {warn}"
    );
    assert!(
        warn.contains(&name(hour)[..13]),
        "names the clock's time: {warn}"
    );

    // Only the current hour exists, compressed: the next hour's file, never the gz.
    let s = Setup::new("clock2", &server.url(), json!({}));
    fs::create_dir_all(&s.out).unwrap();
    let cur_gz = s.out.join(format!("t_{hour}.jsonl.gz"));
    fs::write(&cur_gz, gz).unwrap();
    record_100(&s);
    assert_eq!(fs::read(&cur_gz).unwrap(), gz);
    assert_eq!(
        s.files("t"),
        vec![s.out.join(format!("t_{}.jsonl", hour + 3600))]
    );
    assert_eq!(s.seqs(), (0..100).collect::<Vec<_>>());
    assert!(
        s.log_text().contains("already compressed"),
        "{}",
        s.log_text()
    );
}
