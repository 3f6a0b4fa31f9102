//! Beyond the seed: several topics on one connection, the coverage journal and
//! `wsrec gaps`, timestamped lines, and the Prometheus metrics file.

mod common;

use std::fs;
use std::process::Command;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tungstenite::Message;

#[test]
fn several_topics_route_to_their_own_files() {
    let (tx, rx) = mpsc::channel();
    let sent: Vec<(&str, String)> = vec![
        ("_control", r#"{"success":true,"op":"subscribe","conn_id":"c1"}"#.into()),
        ("a.X", r#"{"topic":"a.X","seq":0}"#.into()),
        ("b.Y", r#"{"type":"snapshot","data":{"topic":"nested","v":[1,{"topic":"deep"}]},"topic":"b.Y","seq":1}"#.into()),
        ("c.Z", r#"{ "topic" : "c.Z" , "seq":2}"#.into()),
        // A topic nobody subscribed to, a nested "topic" only, and an escaped key.
        ("_control", r#"{"topic":"other","seq":3}"#.into()),
        ("_control", r#"{"data":{"topic":"a.X"},"seq":4}"#.into()),
        ("_control", r#"{"top\u0069c":"a.X","seq":5}"#.into()),
        ("a.X", r#"{"topic":"a.X","seq":6,"s":"}{\"topic\":\"b.Y\""}"#.into()),
        ("_control", r#"[{"topic":"a.X"}]"#.into()),
        ("_control", r#"{"op":"pong"}"#.into()),
    ];
    let to_send = sent.clone();
    let server = Server::start(move |_, stream| {
        let (mut ws, first) = accept_subscribed(stream);
        let second = read_text(&mut ws).unwrap();
        tx.send(vec![first, second]).unwrap();
        for (_, m) in &to_send {
            ws.send(Message::text(m.as_str())).unwrap();
        }
        hold(ws);
    });
    let s = Setup::new(
        "topics",
        &server.url(),
        json!({
            "topic": null,
            "topics": ["a.X", "b.Y", "c.Z"],
            "subscribe_message": "{\"op\":\"subscribe\",\"args\":[{topics}]}",
            "max_topics_per_subscribe": 2,
        }),
    );
    let mut rec = s.start();
    let subs = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        subs,
        vec![
            r#"{"op":"subscribe","args":["a.X","b.Y"]}"#,
            r#"{"op":"subscribe","args":["c.Z"]}"#
        ]
    );
    wait_until(Duration::from_secs(10), "every line written", || {
        s.status_json()
            .is_some_and(|v| v["lines_written"].as_u64() == Some(sent.len() as u64))
    });
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(3)).unwrap().code(),
        Some(0)
    );
    for prefix in ["a.X", "b.Y", "c.Z", "_control"] {
        let expect: Vec<String> = sent
            .iter()
            .filter(|(p, _)| *p == prefix)
            .map(|(_, m)| m.clone())
            .collect();
        assert_eq!(s.lines(prefix), expect, "{prefix}");
        assert_eq!(s.files(prefix).len(), 1, "{prefix}: one hour file");
    }
}

#[test]
fn topics_with_the_default_subscribe_send_one_message_per_topic() {
    let (tx, rx) = mpsc::channel();
    let server = Server::start(move |_, stream| {
        let (mut ws, first) = accept_subscribed(stream);
        let second = read_text(&mut ws).unwrap();
        tx.send(vec![first, second]).unwrap();
        hold(ws);
    });
    let s = Setup::new(
        "topics1",
        &server.url(),
        json!({"topic": null, "topics": ["a", "b"]}),
    );
    let _rec = s.start();
    let subs = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        subs,
        vec![
            r#"{"op":"subscribe","args":["a"]}"#,
            r#"{"op":"subscribe","args":["b"]}"#
        ]
    );
}

#[test]
fn topic_and_topics_together_is_a_config_error() {
    let s = Setup::new("topics2", "ws://127.0.0.1:1/", json!({"topics": ["a"]}));
    let out = Command::new(bin())
        .args(["--config", s.config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"topics\""));
}

#[test]
fn timestamped_lines_embed_the_message_verbatim() {
    let sent = [
        r#"{"topic":"t","seq":0}"#,
        r#"{ "topic" : "t",  "seq" : 1, "s":"\u00e9 \"x\"" }"#,
        "[1, 2,3]",
    ];
    let server = Server::start(move |_, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        for m in sent {
            ws.send(Message::text(m)).unwrap();
        }
        hold(ws);
    });
    let s = Setup::new(
        "stamped",
        &server.url(),
        json!({"line_format": "timestamped"}),
    );
    let t0 = (unix_now() * 1e9) as u128;
    let _rec = s.start();
    wait_until(Duration::from_secs(10), "3 lines", || {
        s.lines("t").len() == 3
    });
    let t1 = (unix_now() * 1e9) as u128;
    let mut last = 0;
    for (line, m) in s.lines("t").iter().zip(sent) {
        let v: Value = serde_json::from_str(line).unwrap();
        let ns: u128 = v["recv_ns"].as_u64().unwrap() as u128;
        assert!(
            ns >= t0 && ns <= t1 && ns >= last,
            "recv_ns {ns} within the run"
        );
        last = ns;
        assert_eq!(
            *line,
            format!(r#"{{"recv_ns":{ns},"msg":{m}}}"#),
            "verbatim"
        );
    }
}

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
fn coverage_journal_and_gaps() {
    // Session 0: 10 messages, then the server closes; connections 1 and 2 are refused;
    // session 3: 10 messages, held. The outage between them is the gap.
    let times = Arc::new(Mutex::new(Vec::new()));
    let t = times.clone();
    let server = Server::start(move |i, stream| {
        t.lock().unwrap().push(unix_now());
        match i {
            0 => {
                let (mut ws, _) = accept_subscribed(stream);
                send_range(&mut ws, 0..10);
                ws.close(None).unwrap();
                while ws.read().is_ok() {}
            }
            1 | 2 => drop(stream),
            _ => {
                let (mut ws, _) = accept_subscribed(stream);
                send_range(&mut ws, 10..20);
                hold(ws);
            }
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
    let server = Server::start(|_, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        send_range(&mut ws, 0..5);
        hold(ws);
    });
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
