//! The command line and config validation, and the quick start: flags, `--help`/`--version`,
//! config errors (exit 2, one line), the default `config.json`, the shipped example config.

use crate::common::*;
use serde_json::{Value, json};
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> (i32, String, String, Duration) {
    let t = Instant::now();
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        t.elapsed(),
    )
}

#[test]
fn version_and_help() {
    for flag in ["--version", "-version"] {
        let (code, out, _, _) = run(&[flag]);
        assert_eq!(code, 0, "{flag}");
        assert_eq!(out.trim(), format!("wsrec {}", env!("CARGO_PKG_VERSION")));
    }
    let (code, out, _, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for flag in ["--config", "--debug", "--status", "--json", "--version"] {
        assert!(out.contains(flag), "--help does not mention {flag}:\n{out}");
    }
    let (code, _, err, _) = run(&["--no-such-flag"]);
    assert_eq!(code, 2);
    assert!(err.contains("no-such-flag"), "{err}");
}

/// One config error: exit 2 within 2 s, one line on stderr naming file, field, problem.
fn assert_config_error(cfg: &std::path::Path, field: Option<&str>, problem: &str) {
    let (code, out, err, took) = run(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "exit code for {problem}: stderr {err}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(out.is_empty(), "stdout: {out}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(&cfg.display().to_string()),
        "names the file: {err}"
    );
    if let Some(f) = field {
        assert!(err.contains(&format!("\"{f}\"")), "names field {f}: {err}");
    }
    assert!(
        err.to_lowercase().contains(problem),
        "says {problem:?}: {err}"
    );
}

#[test]
fn bad_configs_exit_2_with_one_line() {
    let dir = TempDir::new("badcfg");
    let cfg = dir.path().join("config.json");
    let out = dir.path().join("out");
    let base = |extra: serde_json::Value| {
        let mut v = json!({"output_dir": out, "status_socket": "", "log_file": ""});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v.to_string()
    };
    let cases: Vec<(String, Option<&str>, &str)> = vec![
        (base(json!({"tpoic": "x"})), Some("tpoic"), "unknown field"),
        (
            base(json!({"buffer_size": "many"})),
            Some("buffer_size"),
            "expected a whole number",
        ),
        (
            base(json!({"buffer_size": 0})),
            Some("buffer_size"),
            "out of range",
        ),
        (
            base(json!({"buffer_size": 1.5})),
            Some("buffer_size"),
            "whole number",
        ),
        (
            base(json!({"status_interval": -1})),
            Some("status_interval"),
            "out of range",
        ),
        (
            base(json!({"log_to_stdout": "yes"})),
            Some("log_to_stdout"),
            "true or false",
        ),
        (
            base(json!({"ws_url": "http://x/"})),
            Some("ws_url"),
            "ws://",
        ),
        (
            base(json!({"on_full": "wait"})),
            Some("on_full"),
            "\"block\" or \"drop\"",
        ),
        // Any topic can name a file now (its name is encoded); a bad pointer cannot.
        (
            base(json!({"topics": ["a/b"], "route_by": ["topic"]})),
            Some("route_by"),
            "must start with /",
        ),
        (
            base(json!({"heartbeat_replies": [{"reply": "{}"}]})),
            Some("heartbeat_replies"),
            "\"has\" or \"equals\"",
        ),
        (
            base(json!({"binary_frames": "brotli"})),
            Some("binary_frames"),
            "\"gzip\"",
        ),
        (
            base(json!({"reconnect_initial_delay": 5, "reconnect_max_delay": 1})),
            Some("reconnect_max_delay"),
            "less than",
        ),
        (r#"{"output_dir": "x",}"#.into(), None, "malformed json"),
        ("[1,2]".into(), None, "expected a json object"),
    ];
    for (text, field, problem) in cases {
        fs::write(&cfg, &text).unwrap();
        assert_config_error(&cfg, field, problem);
    }

    // Missing file.
    let missing = dir.path().join("nope.json");
    assert_config_error(&missing, None, "cannot read");

    // output_dir that cannot be created: its parent is a regular file (fails for root too).
    let blocker = dir.path().join("file");
    fs::write(&blocker, "x").unwrap();
    fs::write(
        &cfg,
        json!({"output_dir": blocker.join("out"), "status_socket": "", "log_file": ""}).to_string(),
    )
    .unwrap();
    assert_config_error(&cfg, Some("output_dir"), "cannot");
}

#[test]
fn default_config_file_is_config_json_in_the_working_directory() {
    let dir = TempDir::new("defcfg");
    let out = Command::new(bin())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn the_shipped_config_json_is_valid() {
    // The repository's example config parses (it points at Bybit, so it is not run).
    let dir = TempDir::new("shipped");
    let text = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["output_dir"] = json!(dir.path().join("out"));
    v["status_socket"] = json!(dir.path().join("s.sock"));
    let cfg = dir.path().join("config.json");
    fs::write(&cfg, v.to_string()).unwrap();
    // `--status` loads and validates the config, then finds no instance: exit 1, not 2.
    let (code, _, err, _) = run(&["--config", cfg.to_str().unwrap(), "--status"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("s.sock"), "{err}");
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The example feed, from cargo's own build of this package (next to the `wsrec` that
/// cargo built for these tests), never next to `bin()`: `WSREC_BIN` may be a static or
/// cross-built binary, or a qemu wrapper, anywhere.
fn feed_binary() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_wsrec")).parent().unwrap();
    let feed = dir.join("examples/feed");
    if !feed.exists() {
        // `cargo test` builds the examples; a filtered run (`--test quickstart`) does not.
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "--example", "feed"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.ends_with("release") {
            cargo.arg("--release");
        }
        let st = cargo.status().unwrap();
        assert!(st.success(), "cargo build --example feed failed: {st}");
    }
    assert!(
        feed.exists(),
        "{} is missing after the build",
        feed.display()
    );
    feed
}

#[test]
fn quick_start_records_from_the_example_feed() {
    let feed = feed_binary();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _feed = Kill(
        Command::new(&feed)
            .args([port.to_string(), "200".into()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let shipped: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/local.json"))
            .unwrap(),
    )
    .unwrap();
    let url = format!("ws://127.0.0.1:{port}/");
    assert_eq!(shipped["ws_url"], "ws://127.0.0.1:9001/");
    let s = Setup::new(
        "quickstart",
        &url,
        json!({"topic": shipped["topic"], "log_to_stdout": true, "reconnect_initial_delay": 0.1}),
    );
    let mut rec = s.start();
    wait_until(Duration::from_secs(15), "100 trades", || {
        s.lines("publicTrade.BTCUSDT").len() > 100
    });
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(3)).unwrap().code(),
        Some(0)
    );
    let lines = s.lines("publicTrade.BTCUSDT");
    assert!(
        lines[0].contains(r#""op":"subscribe""#),
        "the ack is kept: {}",
        lines[0]
    );
    let v: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(v["topic"], "publicTrade.BTCUSDT");
    assert!(rec.stdout_text().contains("subscribed"));
}

fn records_with(flag: &[&str]) {
    let (tx, rx) = mpsc::channel();
    let server = feed(100, tx);
    let s = Setup::new("flags", &server.url(), json!({}));
    let mut rec = s.start_with(flag, &[]);
    let sub = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(sub, r#"{"op":"subscribe","args":["t"]}"#);
    wait_until(Duration::from_secs(10), "100 lines", || {
        s.seqs().len() == 100
    });
    rec.term();
    assert!(rec.wait_exit(Duration::from_secs(3)).unwrap().success());
    assert_eq!(s.seqs(), (0..100).collect::<Vec<_>>());
}

#[test]
fn seed_flag_spellings_record() {
    records_with(&["--config"]);
    records_with(&["-config"]);
    records_with(&["-config="]);
    records_with(&["--config="]);
}

#[test]
fn debug_logs_to_stdout() {
    let (tx, _rx) = mpsc::channel();
    let server = feed(1, tx);
    let s = Setup::new("debug", &server.url(), json!({}));
    let mut rec = s.start_with(&["--debug", "--config"], &[]);
    wait_until(Duration::from_secs(10), "1 line", || s.seqs().len() == 1);
    wait_until(Duration::from_secs(5), "log on stdout", || {
        rec.stdout_text().contains("connected to")
    });
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(3)).unwrap().code(),
        Some(0)
    );
    assert!(rec.stdout_text().contains("DEBUG") || rec.stdout_text().contains("subscribed"));
}
