//! Several topics on one connection: each to its own file, the default subscribe per
//! topic, `topic` with `topics` refused, open files bounded with many topics.

use crate::common::*;
use serde_json::json;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;
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
