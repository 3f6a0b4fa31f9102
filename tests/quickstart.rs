//! The README's quick start: the shipped local feed (`examples/feed.rs`) and config
//! (`examples/local.json`) record trades.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

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
