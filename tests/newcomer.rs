//! A newcomer's first minutes: what someone who just installed wsrec meets when they
//! start it by hand, mistype a flag, forget the config, or ask `--status` why.

use std::fs;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::common::*;
use serde_json::json;

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn short_flags_h_and_v_work_like_help_and_version() {
    let dir = TempDir::new("nc-short");
    let long = run_in(dir.path(), &["--help"]);
    let short = run_in(dir.path(), &["-h"]);
    assert_eq!(short.status.code(), Some(0), "{}", text(&short.stderr));
    assert_eq!(text(&short.stdout), text(&long.stdout));
    assert!(text(&short.stdout).contains("--config"));

    let v = run_in(dir.path(), &["-V"]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v.stderr));
    assert_eq!(
        text(&v.stdout).trim(),
        format!("wsrec {}", env!("CARGO_PKG_VERSION"))
    );

    // A subcommand's help too.
    let gaps = run_in(dir.path(), &["gaps", "-h"]);
    assert_eq!(gaps.status.code(), Some(0), "{}", text(&gaps.stderr));
    assert!(text(&gaps.stdout).contains("--min-gap"));
}

#[test]
fn argument_errors_say_wsrec_and_where_the_help_is() {
    let dir = TempDir::new("nc-args");
    let out = run_in(dir.path(), &["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.starts_with("wsrec: "), "{err}");
    assert!(err.contains("--bogus"), "{err}");
    assert!(err.contains("`wsrec --help`"), "{err}");

    let out = run_in(dir.path(), &["gaps", "--nope"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.starts_with("wsrec: "), "{err}");
    assert!(err.contains("`wsrec gaps --help`"), "{err}");
}

#[test]
fn a_missing_config_points_at_config_and_init() {
    let dir = TempDir::new("nc-noconfig");
    let out = run_in(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("wsrec: config config.json"), "{err}");
    assert!(err.contains("--config"), "{err}");
    assert!(err.contains("wsrec init"), "{err}");
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn gaps_refuses_to_before_from() {
    let dir = TempDir::new("nc-gaps");
    let cfg = dir.path().join("c.json");
    fs::write(
        &cfg,
        json!({"output_dir": dir.path().join("out")}).to_string(),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let out = run_in(
        dir.path(),
        &[
            "--config",
            c,
            "gaps",
            "--from",
            "2026-11-25T12:00:00Z",
            "--to",
            "2026-11-25T00:00:00Z",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.starts_with("wsrec: gaps: --to "), "{err}");
    assert!(err.contains("is before --from"), "{err}");
    assert!(text(&out.stdout).is_empty(), "no report printed");

    let out = run_in(dir.path(), &["--config", c, "gaps", "--min-gap", "-1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn compress_script_help_is_its_usage() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/compress-closed-hours");
    let out = Command::new(&script).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(
        help.contains("compress-closed-hours [--zstd] [--keep-days N]"),
        "{help}"
    );
    assert!(help.contains("Exit status"), "{help}");
    assert!(
        !help.contains("set -euo"),
        "a line of code in the help:\n{help}"
    );
    assert!(!help.lines().any(|l| l.starts_with('#')), "{help}");

    let out = Command::new(&script).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--help"),
        "{}",
        text(&out.stderr)
    );
}

/// A server that sends three messages on the first connection and refuses later ones.
fn three_then_refuse() -> Server {
    Server::start(|i, stream| {
        if i > 0 {
            return;
        }
        let (mut ws, _) = accept_subscribed(stream);
        send_range(&mut ws, 0..3);
        hold(ws);
    })
}

/// A pseudo-terminal: the child gets the slave as its stderr; what it writes there is
/// collected from the master.
struct Pty {
    slave: Option<fs::File>,
    seen: Arc<Mutex<String>>,
}

impl Pty {
    fn open() -> Pty {
        unsafe {
            let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
            assert!(
                master >= 0,
                "posix_openpt: {}",
                std::io::Error::last_os_error()
            );
            assert_eq!(libc::grantpt(master), 0);
            assert_eq!(libc::unlockpt(master), 0);
            let mut name = [0 as libc::c_char; 128];
            assert_eq!(libc::ptsname_r(master, name.as_mut_ptr(), name.len()), 0);
            let slave = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
            assert!(
                slave >= 0,
                "open pty slave: {}",
                std::io::Error::last_os_error()
            );
            let seen = Arc::new(Mutex::new(String::new()));
            let sink = seen.clone();
            let mut master = fs::File::from_raw_fd(master);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                // EIO once the child (the last holder of the slave) is gone.
                while let Ok(n @ 1..) = master.read(&mut buf) {
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
            Pty {
                slave: Some(fs::File::from_raw_fd(slave)),
                seen,
            }
        }
    }

    fn text(&self) -> String {
        self.seen.lock().unwrap().clone()
    }
}

#[test]
fn a_run_in_a_terminal_says_what_it_is_doing() {
    let server = three_then_refuse();
    let s = Setup::new("nc-tty", &server.url(), json!({}));
    let mut pty = Pty::open();
    // The child holds the only copy of the slave from here on.
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(&s.config)
        .current_dir(s.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(pty.slave.take().unwrap())
        .spawn()
        .unwrap();
    let file = s.out.join("t_");
    wait_until(
        Duration::from_secs(15),
        "the terminal shows connecting, subscribing and the first file",
        || {
            let t = pty.text();
            t.contains("connected to")
                && t.contains("subscribed: t")
                && t.contains(&format!("writing {}", file.display()))
        },
    );
    let t = pty.text();
    assert!(
        t.contains(&format!("log in {}", s.log.display())),
        "says where the log is:\n{t}"
    );
    assert!(t.contains("--status"), "says how to ask:\n{t}");
    // The log file is as it was: the same lines are there too.
    wait_until(Duration::from_secs(5), "the log file has them", || {
        let log = s.log_text();
        log.contains("connected to") && log.contains("subscribed: t")
    });
    wait_until(Duration::from_secs(5), "three lines", || {
        s.seqs().len() == 3
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn a_run_without_a_terminal_says_where_the_log_is_and_nothing_more() {
    let server = three_then_refuse();
    let s = Setup::new("nc-notty", &server.url(), json!({}));
    let mut rec = s.start();
    wait_until(Duration::from_secs(15), "three lines", || {
        s.seqs().len() == 3
    });
    wait_until(Duration::from_secs(5), "the start line on stderr", || {
        rec.stderr_text().contains("wsrec: recording")
    });
    let err = rec.stderr_text();
    assert!(
        err.contains(&format!("log in {}", s.log.display())),
        "{err}"
    );
    assert!(err.contains(&server.url()), "{err}");
    assert!(
        !err.contains("connected to"),
        "the log stays in its file: {err}"
    );
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(5)).unwrap().code(),
        Some(0)
    );
    assert_eq!(
        rec.stderr_text().lines().count(),
        1,
        "{}",
        rec.stderr_text()
    );
}

fn status(s: &Setup) -> Output {
    Command::new(bin())
        .arg("--config")
        .arg(&s.config)
        .arg("--status")
        .output()
        .unwrap()
}

/// The Go streamer's line alone on stdout: `Uptime: 5s | Total Msgs: 0 | Rate: 0.00 msg/min`.
fn assert_status_line(out: &Output) {
    let line = text(&out.stdout);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.starts_with("Uptime: ")
            && line.contains(" | Total Msgs: ")
            && line.contains(" msg/min"),
        "{line}"
    );
}

#[test]
fn status_says_why_a_recorder_that_never_connected_is_unhealthy() {
    // Nothing listens on the port: every connect is refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = Setup::new("nc-never", &format!("ws://127.0.0.1:{port}/"), json!({}));
    let _rec = s.start();
    let mut out = None;
    wait_until(
        Duration::from_secs(10),
        "an unhealthy answer with an error",
        || {
            let o = status(&s);
            let done = o.status.code() == Some(3) && text(&o.stderr).contains("last error");
            out = Some(o);
            done
        },
    );
    let out = out.unwrap();
    assert_status_line(&out);
    assert!(text(&out.stdout).contains("Total Msgs: 0"));
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("wsrec: unhealthy: never connected"),
        "{err}"
    );
}

#[test]
fn status_says_since_when_a_recorder_is_disconnected() {
    // Three messages, then the connection ends; every later one is refused.
    let server = Server::start(|i, stream| {
        if i > 0 {
            return;
        }
        let (mut ws, _) = accept_subscribed(stream);
        send_range(&mut ws, 0..3);
        wait_acked(ws.get_ref());
    });
    let s = Setup::new("nc-lost", &server.url(), json!({}));
    let _rec = s.start();
    wait_until(Duration::from_secs(10), "three lines", || {
        s.seqs().len() == 3
    });
    let mut out = None;
    wait_until(Duration::from_secs(10), "an unhealthy answer", || {
        let o = status(&s);
        let done = o.status.code() == Some(3);
        out = Some(o);
        done
    });
    let out = out.unwrap();
    assert_status_line(&out);
    assert!(text(&out.stdout).contains("Total Msgs: 3"));
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("wsrec: unhealthy: disconnected, reconnecting; the last frame came "),
        "{err}"
    );
    assert!(err.contains(" ago, at 20"), "says since when: {err}");
    assert!(err.contains("; last error: "), "{err}");
}

#[test]
fn status_refused_by_the_sockets_permissions_says_so() {
    let server = three_then_refuse();
    let s = Setup::new("nc-perm", &server.url(), json!({}));
    let _rec = s.start();
    s.wait_status();
    // A socket nobody may write to. Root passes every permission check through
    // CAP_DAC_OVERRIDE (and CAP_DAC_READ_SEARCH): the probe runs without them, as an
    // unprivileged monitoring user would. (Not by switching to another user: the
    // binary may sit in a directory only root can enter.)
    fs::set_permissions(&s.socket, fs::Permissions::from_mode(0o000)).unwrap();
    let mut probe = Command::new(bin());
    probe.arg("--config").arg(&s.config).arg("--status");
    if unsafe { libc::geteuid() } == 0 {
        unsafe {
            probe.pre_exec(|| {
                for cap in [1, 2] {
                    // CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH: out of the bounding set,
                    // so that exec does not give them back to uid 0.
                    if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
    let out = probe.output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("permission denied on {}", s.socket.display())),
        "{err}"
    );
    assert!(!err.contains("no wsrec instance"), "{err}");
}
