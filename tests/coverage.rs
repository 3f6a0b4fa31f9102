//! The coverage journal and `wsrec gaps`, also after a crash.

use crate::common::*;
use serde_json::{Value, json};
use std::fs;
use std::process::Command;
use std::time::Duration;

#[test]
fn coverage_journal_and_gaps() {
    // Session 0: 10 messages, then the server closes; connections 1 and 2 are refused;
    // session 3: 10 messages, held. The outage between them is the gap.
    let server = Server::start(move |i, stream| match i {
        0 => {
            let (mut ws, _) = accept_subscribed(stream);
            send_range(&mut ws, 0..10);
            ws.close(None).unwrap();
            while ws.read().is_ok() {}
        }
        1 | 2 => drop(stream),
        _ => {
            send_and_hold(stream, 10..20);
        }
    });
    let s = Setup::new(
        "coverage",
        &server.url(),
        json!({"coverage_journal": true, "reconnect_initial_delay": 0.4, "reconnect_max_delay": 0.8}),
    );
    let mut rec = s.start_with(&["--config"], &[("WSREC_CHECKPOINT_SECS", "1")]);
    wait_until(Duration::from_secs(20), "both sessions", || {
        s.seqs().len() == 20
    });
    // Progress checkpoints come every 1 s (WSREC_CHECKPOINT_SECS).
    let journal = s.out.join("coverage.jsonl");
    wait_until(Duration::from_secs(5), "a progress line", || {
        fs::read_to_string(&journal).is_ok_and(|j| j.contains("\"progress\""))
    });
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(3)).unwrap().code(),
        Some(0)
    );
    let end = unix_now();

    let lines: Vec<Value> = fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let closes: Vec<&Value> = lines.iter().filter(|v| v["event"] == "close").collect();
    let opens: Vec<&Value> = lines.iter().filter(|v| v["event"] == "open").collect();
    assert_eq!(opens.len(), 2, "{lines:?}");
    assert_eq!(closes.len(), 2, "{lines:?}");
    for c in &closes {
        assert_eq!(c["messages"], 10);
        for k in [
            "connected_ms",
            "subscribed_ms",
            "first_msg_ms",
            "last_msg_ms",
            "closed_ms",
        ] {
            assert!(c[k].as_u64().is_some(), "{k} in {c}");
        }
        assert!(c["first_msg_ms"].as_u64() <= c["last_msg_ms"].as_u64());
        assert!(c["last_msg_ms"].as_u64() <= c["closed_ms"].as_u64());
    }
    assert!(
        closes[0]["why"].as_str().unwrap().contains("server closed"),
        "{}",
        closes[0]
    );
    assert_eq!(closes[1]["why"], "shutdown");

    // The gap: from the close of session 0 to the subscribe of session 3.
    let gap_from = closes[0]["closed_ms"].as_u64().unwrap() as f64 / 1000.0;
    let gap_to = closes[1]["subscribed_ms"].as_u64().unwrap() as f64 / 1000.0;
    assert!(
        gap_to - gap_from > 0.5,
        "an outage of {:.2}s",
        gap_to - gap_from
    );
    let out = Command::new(bin())
        .args(["--config", s.config.to_str().unwrap(), "gaps"])
        // From the first subscribe, not from the test's start: the recorder's own
        // start-up (slow under qemu) is not an outage.
        .args([
            "--from",
            &format!(
                "{:.3}",
                opens[0]["subscribed_ms"].as_u64().unwrap() as f64 / 1000.0
            ),
            "--to",
            &format!("{end:.3}"),
        ])
        .args(["--min-gap", "0.3"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let gaps: Vec<&str> = text.lines().filter(|l| l.starts_with("gap ")).collect();
    assert_eq!(gaps.len(), 1, "one outage reported:\n{text}");
    let secs: f64 = gaps[0]
        .rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches("s)")
        .parse()
        .unwrap();
    assert!(
        (secs - (gap_to - gap_from)).abs() < 0.01,
        "{secs} vs {}",
        gap_to - gap_from
    );
    assert!(text.contains("% covered"), "{text}");
}

#[test]
fn coverage_after_a_crash_counts_up_to_the_last_checkpoint() {
    let server = Server::sending(0..5);
    let s = Setup::new(
        "coverage-kill",
        &server.url(),
        json!({"coverage_journal": true}),
    );
    let mut rec = s.start_with(&["--config"], &[("WSREC_CHECKPOINT_SECS", "1")]);
    let journal = s.out.join("coverage.jsonl");
    wait_until(Duration::from_secs(10), "two progress lines", || {
        fs::read_to_string(&journal).is_ok_and(|j| j.matches("\"progress\"").count() >= 2)
    });
    rec.kill9();
    let text = fs::read_to_string(&journal).unwrap();
    assert!(!text.contains("\"close\""));
    let last_progress: u64 = text
        .lines()
        .filter(|l| l.contains("\"progress\""))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["at_ms"].as_u64())
        .max()
        .unwrap();
    // Ask about a window long after the crash: the session counts up to its last
    // checkpoint, then the gap starts.
    let to = last_progress as f64 / 1000.0 + 300.0;
    let out = Command::new(bin())
        .args([
            "--config",
            s.config.to_str().unwrap(),
            "gaps",
            "--to",
            &format!("{to:.3}"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let gaps: Vec<&str> = text.lines().filter(|l| l.starts_with("gap ")).collect();
    assert_eq!(gaps.len(), 1, "{text}");
    assert!(gaps[0].contains("(300.000s)"), "{text}");
}
