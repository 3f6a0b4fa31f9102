//! Sequence checks (`sequence`) against a local server that numbers its messages as
//! venues do: contiguous ids with a documented reset (Bybit's snapshot with `u` = 1),
//! a chained sequence (Binance futures `pu`/`u`), and one past 64 bits written as
//! strings. The breaks it injects are exactly the sequence gaps `wsrec gaps` lists,
//! `--status --json` counts and the metrics file exports; the reset and the first
//! message after a reconnect are none.

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};
use tungstenite::Message;

/// Connection 0's messages, interleaved by topic.
fn first_connection() -> Vec<String> {
    let mut a = vec![r#"{"topic":"a","type":"snapshot","data":{"u":1}}"#.to_string()];
    // Break 1: 51 and 52 never come.
    for u in (2..=50).chain(53..=100) {
        a.push(format!(
            r#"{{"topic":"a","type":"delta","data":{{"u":{u}}}}}"#
        ));
    }
    // The documented reset: a snapshot starts again at 1.
    a.push(r#"{"topic":"a","type":"snapshot","data":{"u":1}}"#.to_string());
    for u in 2..=20 {
        a.push(format!(
            r#"{{"topic":"a","type":"delta","data":{{"u":{u}}}}}"#
        ));
    }
    let mut b = Vec::new();
    let mut last = 7u64;
    for u in (10..=40).step_by(3).chain((50..=80).step_by(5)) {
        // Break 2: u 50 names 45 as its previous, but the last was 40.
        let pu = if u == 50 { 45 } else { last };
        b.push(format!(r#"{{"topic":"b","u":{u},"pu":{pu}}}"#));
        last = u;
    }
    interleave(a, b)
}

/// Connection 1's: a's numbers do not continue connection 0's (not compared), then
/// break 3; c past 64 bits with break 4.
fn second_connection() -> Vec<String> {
    let mut a = Vec::new();
    for u in (1000..=1010).chain(1012..=1020) {
        a.push(format!(
            r#"{{"topic":"a","type":"delta","data":{{"u":{u}}}}}"#
        ));
    }
    let base: u128 = 18_446_744_073_709_551_610;
    let mut c = Vec::new();
    let mut last = base;
    for s in (base + 1..=base + 10).chain(base + 15..=base + 20) {
        let prev = if s == base + 15 { base + 14 } else { last };
        c.push(format!(
            r#"{{"topic":"c","seqId":"{s}","prevSeqId":"{prev}"}}"#
        ));
        last = s;
    }
    interleave(a, c)
}

fn interleave(a: Vec<String>, b: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    let (mut a, mut b) = (a.into_iter(), b.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

#[test]
fn injected_breaks_are_the_sequence_gaps_and_a_documented_reset_is_not() {
    let (one, two) = (first_connection(), second_connection());
    let total = one.len() + two.len();
    let server = Server::start(move |i, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        let msgs = if i == 0 { &one } else { &two };
        for m in msgs {
            ws.write(Message::text(m.clone())).unwrap();
        }
        ws.flush().unwrap();
        if i == 0 {
            // The venue closes: the next connection's numbers start afresh.
            let _ = ws.close(None);
            let _ = ws.flush();
            while ws.read().is_ok() {}
        } else {
            hold(ws);
        }
    });
    let s = Setup::new("sequence", &server.url(), json!({}));
    let prom = s.dir.path().join("wsrec.prom");
    s.write_config(
        &server.url(),
        json!({
            "topic": null,
            "topics": ["a", "b", "c"],
            "route_by": ["/topic"],
            "subscribe_message": "{\"op\":\"subscribe\",\"args\":[{topics}]}",
            "coverage_journal": true,
            "metrics_file": prom,
            "status_interval": 0.2,
            "sequence": {
                "a": {"at": "/data/u", "step": 1, "reset_when": [{"equals": {"/type": "snapshot"}}]},
                "b": {"at": "/u", "prev": "/pu"},
                "c": {"at": "/seqId", "prev": "/prevSeqId"},
            },
        }),
    );
    let mut rec = s.start();
    let lines = |s: &Setup| {
        ["a", "b", "c"]
            .iter()
            .map(|t| s.complete_lines(t))
            .sum::<usize>()
    };
    wait_until(Duration::from_secs(20), "every message recorded", || {
        lines(&s) == total
    });
    let mut st = Value::Null;
    wait_until(Duration::from_secs(10), "status counts the gaps", || {
        st = s.wait_status();
        st["sequence_gaps"] == 4
    });
    let mut metrics = String::new();
    wait_until(
        Duration::from_secs(10),
        "the metrics file exports them",
        || {
            metrics = std::fs::read_to_string(&prom).unwrap_or_default();
            metrics.lines().any(|l| l == "wsrec_sequence_gaps_total 4")
        },
    );

    let gaps = |args: &[&str]| {
        let out = Command::new(bin())
            .args(["--config", s.config.to_str().unwrap(), "gaps"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let rows: Vec<Value> = gaps(&["--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["kind"] == "sequence")
        .collect();
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            let text = |v: &Value| v.as_str().map_or(v.to_string(), str::to_string);
            (text(&r["topic"]), text(&r["last"]), text(&r["next"]))
        })
        .collect();
    let want = [
        ("a", "50", "53"),
        ("b", "40", "50"),
        ("a", "1010", "1012"),
        ("c", "18446744073709551620", "18446744073709551625"),
    ];
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut want_sorted: Vec<(String, String, String)> = want
        .iter()
        .map(|(t, l, n)| (t.to_string(), l.to_string(), n.to_string()))
        .collect();
    want_sorted.sort();
    assert_eq!(got_sorted, want_sorted, "{rows:?}");
    for r in &rows {
        assert!(r["start_ms"].as_u64() <= r["end_ms"].as_u64(), "{r}");
    }
    let text = gaps(&[]);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("sequence gap "))
            .count(),
        4,
        "{text}"
    );
    assert!(
        text.contains("sequence gap a ") && text.contains(": last 50, next 53"),
        "{text}"
    );
    assert!(text.contains("4 sequence gaps"), "{text}");
    let csv = gaps(&["--csv"]);
    assert!(
        csv.starts_with("start,end,seconds,kind,topic,start_ms,end_ms,last,next\n"),
        "{csv}"
    );
    assert!(
        csv.contains(",sequence,c,") && csv.contains(",18446744073709551620,18446744073709551625"),
        "{csv}"
    );
    assert!(
        s.log_text().contains("sequence gap in b: last 40, next 50"),
        "{}",
        s.log_text()
    );
    rec.term();
    assert!(rec.wait_exit(Duration::from_secs(10)).unwrap().success());
}
