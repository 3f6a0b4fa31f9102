//! The README's quick start: the shipped local feed (`examples/feed.rs`) and config
//! (`examples/local.json`) record trades.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
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

#[test]
fn quick_start_records_from_the_example_feed() {
    // `cargo test` builds the examples next to the binary; a filtered run may not.
    let feed = PathBuf::from(bin()).parent().unwrap().join("examples/feed");
    if !feed.exists() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "--example", "feed"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(st.success(), "cargo build --example feed");
    }
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
