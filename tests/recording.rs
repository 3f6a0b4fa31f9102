//! What lands in the files: every message verbatim and in order in its hour's file, hourly
//! rotation with or without traffic, timestamped lines, and a clock behind the files.

use crate::common::*;
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};
use std::{fs, thread};
use tungstenite::Message;

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
    let server = Server::sending(0..100);
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

#[test]
fn lines_are_verbatim_in_order_in_the_hour_file() {
    // Odd spacing, escapes, unicode, numbers written oddly: all must stay byte for byte.
    let odd: Vec<String> = vec![
        r#"{"success":true,"ret_msg":"","op":"subscribe","conn_id":"x"}"#.into(),
        r#"{ "topic" : "t", "seq" : 1 , "s":"caf\u00e9 \"q\" \\ é 日本" }"#.into(),
        r#"{"topic":"t","seq":2,"n":1.50e+3,"m":-0.0,"z":[ ],"o":{ }}"#.into(),
        r#"[1,2,3]"#.into(),
        r#""just a string""#.into(),
        "12345".into(),
        "\t{\"topic\":\"t\",\"seq\":3}  ".into(),
    ];
    let sent = odd.clone();
    let server = Server::start(move |_, stream| {
        let sent = sent.clone();
        thread::spawn(move || {
            let (mut ws, _) = accept_subscribed(stream);
            for m in &sent {
                ws.send(Message::text(m.as_str())).unwrap();
            }
            while ws.read().is_ok() {}
        });
    });
    let s = Setup::new("verbatim", &server.url(), json!({}));
    let before = unix_now() as u64 / 3600 * 3600;
    let mut rec = s.start();
    wait_until(Duration::from_secs(10), "all lines", || {
        s.lines("t").len() == odd.len()
    });
    rec.term();
    assert!(rec.wait_exit(Duration::from_secs(3)).unwrap().success());
    let after = unix_now() as u64 / 3600 * 3600;
    let files = s.files("t");
    assert!(files.len() == 1 || before != after, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name == format!("t_{before}.jsonl") || name == format!("t_{after}.jsonl"),
        "file name {name}"
    );
    assert_eq!(s.lines("t"), odd);
    // Nothing else in output_dir: no temp files, no control file in single-topic mode.
    let names: Vec<_> = fs::read_dir(&s.out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, vec![name]);
}

#[test]
fn hourly_rotation_closes_past_hours_without_traffic() {
    // The hour is shortened to 2 s for the test (WSREC_PERIOD_SECS, documented as a
    // test hook). The server sends a message every 20 ms for 5 s, each stamped with its
    // send time, then stops and keeps the connection open.
    let server = Server::start(|_, stream| {
        thread::spawn(move || {
            let (mut ws, _) = accept_subscribed(stream);
            let end = Instant::now() + Duration::from_secs(5);
            let mut i = 0u64;
            while Instant::now() < end {
                let m = format!(r#"{{"topic":"t","seq":{i},"at":{:.6}}}"#, unix_now());
                ws.send(Message::text(m)).unwrap();
                i += 1;
                thread::sleep(Duration::from_millis(20));
            }
            hold(ws);
        });
    });
    let s = Setup::new("rotate", &server.url(), json!({}));
    let rec = s.start_with(
        &["--config"],
        &[
            ("WSREC_PERIOD_SECS", "2"),
            ("WSREC_CLOSE_GRACE_SECS", "0.5"),
        ],
    );

    // After the traffic stops, every file gets closed: none stays open in the process.
    thread::sleep(Duration::from_secs(5));
    wait_until(Duration::from_secs(6), "every hour file closed", || {
        !rec.open_files()
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".jsonl"))
    });
    let files = s.files("t");
    assert!(files.len() >= 3, "5 s of 2 s periods: {files:?}");
    let mut seq = Vec::new();
    for f in &files {
        let p = period_of(f);
        assert_eq!(p % 2, 0, "period start {p} is aligned");
        for line in fs::read_to_string(f).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if let Some(at) = v["at"].as_f64() {
                // Received within the period (the send stamp precedes receipt slightly).
                assert!(
                    at >= p as f64 - 0.2 && at < (p + 2) as f64,
                    "message sent at {at} is in the file of period {p}"
                );
                seq.push(v["seq"].as_u64().unwrap());
            }
        }
    }
    assert_eq!(
        seq,
        (0..seq.len() as u64).collect::<Vec<_>>(),
        "in order, none lost"
    );
    assert!(seq.len() > 150, "only {} messages", seq.len());
    assert!(rec.child.id() > 0);
}
