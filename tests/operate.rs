//! Operating it: log rotation by copytruncate, the systemd units, cron line and logrotate
//! config that ship in deploy/.

use crate::common::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use std::{fs, thread};

#[test]
fn log_file_survives_copytruncate() {
    let server = Server::start(|_, stream| {
        thread::spawn(move || {
            send_and_hold(stream, 0..10);
        });
    });
    let s = Setup::new("logrot", &server.url(), json!({"status_interval": 0.2}));
    let _rec = s.start();
    wait_until(Duration::from_secs(10), "a status line", || {
        s.log_text().contains("Total Msgs: 10")
    });
    // What logrotate's copytruncate does: copy, then truncate in place.
    let rotated = s.dir.path().join("wsrec.log.1");
    fs::copy(&s.log, &rotated).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&s.log)
        .unwrap()
        .set_len(0)
        .unwrap();
    wait_until(
        Duration::from_secs(5),
        "a new line after the truncation",
        || fs::read(&s.log).is_ok_and(|b| b.len() > 10),
    );
    let bytes = fs::read(&s.log).unwrap();
    assert_ne!(bytes[0], 0, "no hole of zero bytes at the start");
    assert!(!bytes.contains(&0));
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.starts_with("20"),
        "starts with a timestamped line: {text:.80}"
    );
    assert!(
        fs::read_to_string(&rotated)
            .unwrap()
            .contains("connected to")
    );
}

fn deploy(name: &str) -> String {
    fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy")
            .join(name),
    )
    .unwrap()
}

#[test]
fn systemd_units_verify() {
    require_command("systemd-analyze", "--version");
    let d = TempDir::new("units");
    for (src, name) in [
        ("wsrec.service", "wsrec.service"),
        ("wsrec@.service", "wsrec@btc.service"),
    ] {
        // verify checks that ExecStart exists: point it at the binary under test.
        let unit = deploy(src).replace("/usr/local/bin/wsrec", bin());
        let p = d.path().join(name);
        fs::write(&p, unit).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&p)
            .current_dir(d.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {err}");
        let complaints: Vec<&str> = err
            .lines()
            .filter(|l| l.contains(name) || l.contains("Unknown"))
            .collect();
        assert!(complaints.is_empty(), "{name}: {complaints:?}");
    }
}

#[test]
fn deploy_files_are_consistent_and_in_the_operations_doc() {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
            .unwrap();
    for f in ["wsrec.service", "wsrec.cron", "logrotate.conf"] {
        let text = deploy(f);
        assert!(
            readme.contains(text.trim()),
            "docs/operations.md shows deploy/{f} as it is (copy it in again after editing)"
        );
    }
    // The template unit differs from the plain one in its ExecStart, which is shown.
    let template = deploy("wsrec@.service");
    let exec = template
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .unwrap();
    assert!(
        readme.contains(exec),
        "docs/operations.md shows the template's {exec}"
    );
    // The cron line calls the script with options it accepts.
    let cron = deploy("wsrec.cron");
    let line = cron
        .lines()
        .find(|l| l.contains("compress-closed-hours"))
        .unwrap();
    assert!(line.contains("--keep-days"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/compress-closed-hours");
    let d = TempDir::new("cronline");
    let out = Command::new(&script)
        .args(["--keep-days", "90"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    // The example config for the units is valid and uses the units' directories.
    let cfg: serde_json::Value = serde_json::from_str(&deploy("config.json")).unwrap();
    assert!(
        cfg["output_dir"]
            .as_str()
            .unwrap()
            .starts_with("/var/lib/wsrec")
    );
    assert!(
        cfg["status_socket"]
            .as_str()
            .unwrap()
            .starts_with("/run/wsrec")
    );
    let unit = deploy("wsrec.service");
    for dir in ["/var/lib/wsrec", "/var/log/wsrec", "/run/wsrec"] {
        assert!(unit.contains(dir), "{dir} is writable in the unit");
    }
}
