//! Operating it: `--status` exit codes for monitoring, log rotation by copytruncate,
//! and the systemd units, cron line and logrotate config that ship in deploy/.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;
use serde_json::json;

fn status_code(s: &Setup) -> (Option<i32>, String) {
    let out = Command::new(bin())
        .args(["--config", s.config.to_str().unwrap(), "--status"])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn status_exit_codes_healthy_stale_disconnected_absent() {
    // Connection 0: one message, then only protocol pongs (no messages) for a while,
    // then the server goes away and refuses every later connection.
    let release = Arc::new(Mutex::new(false));
    let r = release.clone();
    let server = Server::start(move |i, stream| {
        if i > 0 {
            return; // refused: closed before the handshake
        }
        let (mut ws, _) = accept_subscribed(stream);
        send_range(&mut ws, 0..1);
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        // Reading answers the client's protocol pings, so the stream is not stale.
        while !*r.lock().unwrap() {
            match ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let _ = ws.flush();
                }
                Err(_) => break,
            }
        }
    });
    let s = Setup::new(
        "probe",
        &server.url(),
        json!({"ping_message": "", "ping_interval": 0.2, "stale_timeout": 1.5,
               "reconnect_initial_delay": 0.5, "reconnect_max_delay": 1}),
    );
    let _rec = s.start();
    wait_until(Duration::from_secs(10), "first message", || {
        s.seqs() == vec![0]
    });
    let (code, out) = status_code(&s);
    assert_eq!(code, Some(0), "healthy: {out}");

    // Connected and answering pings, but no message for longer than stale_timeout.
    wait_until(Duration::from_secs(10), "probe reports no messages", || {
        status_code(&s).0 == Some(3)
    });
    let v = s.wait_status();
    assert_eq!(v["connected"], true, "still connected: {v}");
    assert_eq!(v["healthy"], false);

    // Disconnected: the server is gone and refuses.
    *release.lock().unwrap() = true;
    wait_until(Duration::from_secs(10), "disconnected", || {
        s.status_json().is_some_and(|v| v["connected"] == false)
    });
    assert_eq!(status_code(&s).0, Some(3));

    // No instance at all.
    drop(_rec);
    let _ = fs::remove_file(&s.socket);
    let (code, out) = status_code(&s);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(s.socket.to_str().unwrap()));
}

#[test]
fn log_file_survives_copytruncate() {
    let server = Server::start(|_, stream| {
        thread::spawn(move || {
            let (mut ws, _) = accept_subscribed(stream);
            send_range(&mut ws, 0..10);
            hold(ws);
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
    let have = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        println!("skipped: systemd-analyze is not installed");
        return;
    }
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
fn deploy_files_are_consistent_and_in_the_readme() {
    // The README, and the manual in docs/ where the operations part moves to.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).unwrap()
        + &fs::read_to_string(root.join("docs/operations.md")).unwrap_or_default();
    for f in ["wsrec.service", "wsrec.cron", "logrotate.conf"] {
        let text = deploy(f);
        assert!(
            readme.contains(text.trim()),
            "README shows deploy/{f} as it is (copy it in again after editing)"
        );
    }
    // The template unit differs from the plain one in its ExecStart, which is shown.
    let template = deploy("wsrec@.service");
    let exec = template
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .unwrap();
    assert!(readme.contains(exec), "README shows the template's {exec}");
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

/// A read-only view of `src` at `dst` (a bind mount, remounted read-only); unmounted on
/// drop. Root only.
struct ReadOnlyBind(std::path::PathBuf);

impl ReadOnlyBind {
    fn mount(src: &Path, dst: &Path) -> Result<ReadOnlyBind, String> {
        if unsafe { libc::geteuid() } != 0 {
            return Err("not running as root".into());
        }
        fs::create_dir_all(dst).unwrap();
        let run = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("mount")
                .args(args)
                .output()
                .map_err(|e| format!("cannot run mount: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "mount {args:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        let (s, d) = (src.to_str().unwrap(), dst.to_str().unwrap());
        run(&["--bind", s, d])?;
        let bind = ReadOnlyBind(dst.to_path_buf());
        run(&["-o", "remount,bind,ro", d])?;
        Ok(bind)
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A monitoring user who cannot write to output_dir can still ask for the status and
/// the gaps: loading the config touches nothing.
#[test]
fn status_and_gaps_work_with_a_read_only_output_dir() {
    let server = Server::start(|_, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        send_range(&mut ws, 0..5);
        hold(ws);
    });
    let s = Setup::new("readonly", &server.url(), json!({"coverage_journal": true}));
    let mut rec = s.start();
    wait_until(Duration::from_secs(10), "5 lines", || s.seqs().len() == 5);
    let ro = s.dir.path().join("ro");
    let _bind = match ReadOnlyBind::mount(&s.out, &ro) {
        Ok(b) => b,
        Err(why) => {
            println!("skipped: a read-only output_dir needs a read-only bind mount: {why}");
            return;
        }
    };
    assert!(
        fs::write(ro.join("probe"), b"").is_err(),
        "the bind mount is writable"
    );
    let mut cfg: serde_json::Value = serde_json::from_slice(&fs::read(&s.config).unwrap()).unwrap();
    cfg["output_dir"] = json!(ro);
    let ro_config = s.dir.path().join("ro.json");
    fs::write(&ro_config, cfg.to_string()).unwrap();
    let run = |args: &[&str]| {
        Command::new(bin())
            .arg("--config")
            .arg(&ro_config)
            .args(args)
            .output()
            .unwrap()
    };
    let status = run(&["--status"]);
    assert_eq!(status.status.code(), Some(0), "{status:?}");
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("Total Msgs: 5"),
        "{status:?}"
    );
    let gaps = run(&["gaps"]);
    assert_eq!(gaps.status.code(), Some(0), "{gaps:?}");
    assert!(
        String::from_utf8_lossy(&gaps.stdout).contains("% covered"),
        "{gaps:?}"
    );
    rec.term();
    assert!(rec.wait_exit(Duration::from_secs(5)).is_some());
}
