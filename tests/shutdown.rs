//! Stopping: SIGTERM under load (close frame, flush, socket removed), SIGKILL and restart
//! appending whole lines.

use crate::common::*;
use serde_json::json;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use std::{fs, thread};
use tungstenite::Message;

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
