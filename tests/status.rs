//! Watching it: `--status` text, JSON and exit codes, the status socket (leftover, mode,
//! bound again, answering beside busy clients), the Prometheus metrics file.

use crate::common::*;
use serde_json::json;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use std::{fs, thread};
use tungstenite::Message;

#[test]
fn metrics_file_is_prometheus_text_rewritten_atomically() {
    let server = Server::start(|_, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        send_range(&mut ws, 0..50);
        ws.send(Message::binary(vec![0u8])).unwrap();
        ws.send(Message::text("not json")).unwrap();
        hold(ws);
    });
    let dir = TempDir::new("metrics-dir");
    let prom = dir.path().join("wsrec.prom");
    let s = Setup::new(
        "metrics",
        &server.url(),
        json!({"metrics_file": prom, "status_interval": 0.2}),
    );
    let _rec = s.start();
    let mut text = String::new();
    wait_until(Duration::from_secs(10), "metrics with 50 messages", || {
        text = fs::read_to_string(&prom).unwrap_or_default();
        text.contains("wsrec_messages_total 50\n")
    });
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ']))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    for (name, kind) in [
        ("wsrec_messages_total", "counter"),
        ("wsrec_reconnects_total", "counter"),
        ("wsrec_connects_total", "counter"),
        ("wsrec_bytes_written_total", "counter"),
        ("wsrec_dropped_total", "counter"),
        ("wsrec_queue_depth", "gauge"),
        ("wsrec_queue_capacity", "gauge"),
        ("wsrec_connected", "gauge"),
        ("wsrec_last_message_age_seconds", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "# TYPE {name} {kind} in\n{text}"
        );
        assert!(text.contains(&format!("# HELP {name} ")), "HELP {name}");
    }
    assert_eq!(value("wsrec_connected"), 1.0);
    assert_eq!(value("wsrec_queue_capacity"), 10000.0);
    assert!(
        text.contains("wsrec_dropped_total{reason=\"binary\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("wsrec_dropped_total{reason=\"not_json\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("wsrec_dropped_total{reason=\"queue_full\"} 0\n"),
        "{text}"
    );
    // The same figures over the status socket.
    let st = s.wait_status();
    assert_eq!(st["total_messages"], 50);
    assert_eq!(st["rejected"]["binary"], 1);
    // Written atomically: never a temporary file left beside it.
    let others: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(others.len(), 1, "{others:?}");
}

#[test]
fn status_socket_leftover_live_and_absent() {
    let server = Server::sending(0..0);
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
    let server = Server::sending(0..10);
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
    let server = Server::sending(0..0);
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

fn status_code(s: &Setup) -> (Option<i32>, String) {
    let out = Command::new(bin())
        .args(["--config", s.config.to_str().unwrap(), "--status"])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn status_exit_codes_healthy_stale_disconnected_absent() {
    // Connection 0: one message, then only protocol pongs (no messages) for a while,
    // then the server goes away and refuses every later connection.
    let release = Arc::new(Mutex::new(false));
    let r = release.clone();
    let server = Server::start(move |i, stream| {
        if i > 0 {
            return; // refused: closed before the handshake
        }
        let (mut ws, _) = accept_subscribed(stream);
        send_range(&mut ws, 0..1);
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        // Reading answers the client's protocol pings, so the stream is not stale.
        while !*r.lock().unwrap() {
            match ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let _ = ws.flush();
                }
                Err(_) => break,
            }
        }
    });
    let s = Setup::new(
        "probe",
        &server.url(),
        json!({"ping_message": "", "ping_interval": 0.2, "stale_timeout": 1.5,
               "reconnect_initial_delay": 0.5, "reconnect_max_delay": 1}),
    );
    let _rec = s.start();
    wait_until(Duration::from_secs(10), "first message", || {
        s.seqs() == vec![0]
    });
    let (code, out) = status_code(&s);
    assert_eq!(code, Some(0), "healthy: {out}");

    // Connected and answering pings, but no message for longer than stale_timeout.
    wait_until(Duration::from_secs(10), "probe reports no messages", || {
        status_code(&s).0 == Some(3)
    });
    let v = s.wait_status();
    assert_eq!(v["connected"], true, "still connected: {v}");
    assert_eq!(v["healthy"], false);

    // Disconnected: the server is gone and refuses.
    *release.lock().unwrap() = true;
    wait_until(Duration::from_secs(10), "disconnected", || {
        s.status_json().is_some_and(|v| v["connected"] == false)
    });
    assert_eq!(status_code(&s).0, Some(3));

    // No instance at all.
    drop(_rec);
    let _ = fs::remove_file(&s.socket);
    let (code, out) = status_code(&s);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(s.socket.to_str().unwrap()));
}

/// A read-only view of `src` at `dst` (a bind mount, remounted read-only); unmounted on
/// drop. Root only.
struct ReadOnlyBind(std::path::PathBuf);

impl ReadOnlyBind {
    fn mount(src: &Path, dst: &Path) -> Result<ReadOnlyBind, String> {
        if unsafe { libc::geteuid() } != 0 {
            return Err("not running as root".into());
        }
        fs::create_dir_all(dst).unwrap();
        let run = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("mount")
                .args(args)
                .output()
                .map_err(|e| format!("cannot run mount: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "mount {args:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        let (s, d) = (src.to_str().unwrap(), dst.to_str().unwrap());
        run(&["--bind", s, d])?;
        let bind = ReadOnlyBind(dst.to_path_buf());
        run(&["-o", "remount,bind,ro", d])?;
        Ok(bind)
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A monitoring user who cannot write to output_dir can still ask for the status and
/// the gaps: loading the config touches nothing.
#[test]
fn status_and_gaps_work_with_a_read_only_output_dir() {
    let server = Server::sending(0..5);
    let s = Setup::new("readonly", &server.url(), json!({"coverage_journal": true}));
    let mut rec = s.start();
    wait_until(Duration::from_secs(10), "5 lines", || s.seqs().len() == 5);
    let ro = s.dir.path().join("ro");
    let _bind = match ReadOnlyBind::mount(&s.out, &ro) {
        Ok(b) => b,
        Err(why) => missing(&format!("a read-only bind mount for output_dir: {why}")),
    };
    assert!(
        fs::write(ro.join("probe"), b"").is_err(),
        "the bind mount is writable"
    );
    let mut cfg: serde_json::Value = serde_json::from_slice(&fs::read(&s.config).unwrap()).unwrap();
    cfg["output_dir"] = json!(ro);
    let ro_config = s.dir.path().join("ro.json");
    fs::write(&ro_config, cfg.to_string()).unwrap();
    let run = |args: &[&str]| {
        Command::new(bin())
            .arg("--config")
            .arg(&ro_config)
            .args(args)
            .output()
            .unwrap()
    };
    let status = run(&["--status"]);
    assert_eq!(status.status.code(), Some(0), "{status:?}");
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("Total Msgs: 5"),
        "{status:?}"
    );
    let gaps = run(&["gaps"]);
    assert_eq!(gaps.status.code(), Some(0), "{gaps:?}");
    assert!(
        String::from_utf8_lossy(&gaps.stdout).contains("% covered"),
        "{gaps:?}"
    );
    rec.term();
    assert!(rec.wait_exit(Duration::from_secs(5)).is_some());
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
