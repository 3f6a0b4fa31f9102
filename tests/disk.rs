//! The output directory and the disk: disk full with `on_full` block or drop (and SIGTERM
//! meanwhile), the directory deleted, the current file moved away.

use crate::common::*;
use serde_json::json;
use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};
use std::{fs, thread};
use tungstenite::Message;

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
