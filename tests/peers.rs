//! Servers no one here wrote: Python's `websockets` and Node's `ws`. Each sends 20,000
//! messages; all must be recorded verbatim and in order. `scripts/install-test-deps`
//! installs them; without them these tests fail, saying why.

use crate::common::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const N: u64 = 20_000;

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and reads the port it prints on its first line.
fn start_peer(mut cmd: Command) -> Result<(Peer, u16), String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let port = line.trim().parse().map_err(|_| {
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
        format!("peer printed no port: {line:?} {err}")
    })?;
    Ok((Peer(child), port))
}

fn record_from(tag: &str, port: u16) {
    let s = Setup::new(tag, &format!("ws://127.0.0.1:{port}/"), json!({}));
    let mut rec = s.start();
    wait_until(Duration::from_secs(60), "20,000 lines", || {
        s.status_json()
            .is_some_and(|v| v["lines_written"].as_u64() == Some(N))
    });
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(3)).unwrap().code(),
        Some(0)
    );
    let lines = s.lines("t");
    let expect: Vec<String> = (0..N).map(msg).collect();
    assert_eq!(lines.len() as u64, N);
    assert!(lines == expect, "verbatim and in order");
}

#[test]
fn python_websockets_peer() {
    require_python_websockets();
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/server.py"
    ))
    .arg(N.to_string());
    let (_peer, port) = start_peer(cmd).unwrap();
    record_from("py-peer", port);
}

#[test]
fn node_ws_peer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    if !dir.join("node_modules/ws").exists() {
        missing("tests/node/node_modules/ws (npm install in tests/node)");
    }
    require_command("node", "--version");
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("server.js")).arg(N.to_string());
    let (_peer, port) = start_peer(cmd).unwrap();
    record_from("node-peer", port);
}
