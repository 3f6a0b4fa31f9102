//! Command line and config validation, against the real binary.

mod common;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

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
