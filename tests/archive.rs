//! From hourly files to an archive: `scripts/ship-closed-hours` against a real S3 API
//! server (moto's standalone server) on 127.0.0.1 with Debian's rclone as the client,
//! and the recorded, compressed files read by DuckDB, polars and jq with the exact
//! commands of docs/analysis.md.
//!
//! Everything these tests need beyond Rust is installed by scripts/install-test-deps;
//! a missing tool fails the test (it never skips).

use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::common::*;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Fails (never skips) when `tool` cannot be run.
fn need(tool: &str, probe: &[&str]) {
    let ok = Command::new(tool)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        missing(&format!("`{tool} {}` does not run", probe.join(" ")));
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn now() -> u64 {
    unix_now() as u64
}

/// A free port on 127.0.0.1 (bound and released; moto binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// moto's S3 server as a child process on 127.0.0.1; killed when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts `moto_server`. With `auth`, requests must be signed with the key of an
    /// IAM user: the first 4 requests (creating the user, its key and policy, and the
    /// bucket) are let through unsigned (moto's INITIAL_NO_AUTH_ACTION_COUNT).
    fn start(dir: &Path, auth: bool) -> Moto {
        need("moto_server", &["--help"]);
        let port = free_port();
        let log = fs::File::create(dir.join(format!("moto-{port}.log"))).unwrap();
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if auth {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "4");
        }
        let child = cmd.spawn().expect("moto_server starts");
        let mut m = Moto { child, port };
        wait_until(Duration::from_secs(60), "moto_server listens", || {
            assert!(
                m.child.try_wait().unwrap().is_none(),
                "moto_server exited: {}",
                fs::read_to_string(dir.join(format!("moto-{port}.log"))).unwrap_or_default()
            );
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        m
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An rclone remote named `archive` in a temporary rclone.conf (never the user's).
struct Remote {
    conf: PathBuf,
    home: PathBuf,
}

impl Remote {
    fn new(dir: &Path, endpoint: &str, key: &str, secret: &str) -> Remote {
        need("rclone", &["version"]);
        let home = dir.join("rclone-home");
        fs::create_dir_all(&home).unwrap();
        let conf = dir.join("rclone.conf");
        fs::write(
            &conf,
            format!(
                "[archive]\ntype = s3\nprovider = Other\naccess_key_id = {key}\n\
                 secret_access_key = {secret}\nendpoint = {endpoint}\nregion = us-east-1\n\
                 force_path_style = true\n"
            ),
        )
        .unwrap();
        Remote { conf, home }
    }

    /// A command with this remote's environment: its own config and home, one try per
    /// request (a dead server fails the run at once instead of after minutes of
    /// retries), and no AWS_* variables of the machine's (AWS_CA_BUNDLE breaks rclone's
    /// S3 client on plain http).
    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("AWS_") || k.starts_with("RCLONE_") {
                c.env_remove(&k);
            }
        }
        c.env("RCLONE_CONFIG", &self.conf)
            .env("HOME", &self.home)
            .env("XDG_CACHE_HOME", self.home.join("cache"))
            .env("RCLONE_RETRIES", "1")
            .env("RCLONE_LOW_LEVEL_RETRIES", "1")
            .env("RCLONE_CONTIMEOUT", "5s")
            .env("RCLONE_TIMEOUT", "20s")
            .stdin(Stdio::null());
        c
    }

    fn rclone(&self, args: &[&str]) -> Output {
        self.command(Path::new("rclone"))
            .args(args)
            .output()
            .unwrap()
    }

    /// `scripts/ship-closed-hours ARGS` with this remote.
    fn ship(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.command(&repo().join("scripts/ship-closed-hours"));
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    /// Every object in the bucket `wsrec`, downloaded: name -> bytes.
    fn objects(&self, into: &Path) -> BTreeMap<String, Vec<u8>> {
        let _ = fs::remove_dir_all(into);
        fs::create_dir_all(into).unwrap();
        let out = self.rclone(&[
            "copy",
            "--fast-list",
            "archive:wsrec",
            into.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "download the bucket: {}", text(&out));
        let mut m = BTreeMap::new();
        for e in fs::read_dir(into).unwrap() {
            let e = e.unwrap();
            m.insert(
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            );
        }
        m
    }
}

/// moto without authentication (any key is accepted) and a bucket `wsrec`. moto 5's
/// signature check rejects keys with percent-encoded characters (the `%2F`, `:` and
/// UTF-8 of encoded topic names) that real S3 accepts, so only the credential test
/// turns it on.
fn open_bucket(dir: &Path) -> (Moto, Remote) {
    let moto = Moto::start(dir, false);
    let remote = Remote::new(dir, &moto.endpoint(), "test", "test");
    let out = remote.rclone(&["mkdir", "archive:wsrec"]);
    assert!(out.status.success(), "create the bucket: {}", text(&out));
    (moto, remote)
}

fn compress(dir: &Path, extra: &[&str]) {
    let out = Command::new(repo().join("scripts/compress-closed-hours"))
        .args(extra)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "compress-closed-hours: {}",
        text(&out)
    );
}

/// Closed hours of two topics (one with an encoded name), compressed as cron does:
/// returns name -> bytes of the compressed files.
fn closed_hours(dir: &Path, hours: u64, lines: usize) -> BTreeMap<String, Vec<u8>> {
    fs::create_dir_all(dir).unwrap();
    let cur = now() / 3600 * 3600;
    for h in 1..=hours {
        for prefix in ["t", "trade.BTC%2FUSD"] {
            let period = cur - 3600 * (h + 1);
            // Lines that compress badly, so that the files are big enough for an
            // upload to be cut in the middle.
            let body: String = (0..lines)
                .map(|i| {
                    let x = (period ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    format!(
                        "{{\"topic\":\"{prefix}\",\"seq\":{i},\"id\":\"{x:016x}{:016x}\"}}\n",
                        x.rotate_left(17)
                    )
                })
                .collect();
            fs::write(dir.join(format!("{prefix}_{period}.jsonl")), body).unwrap();
        }
    }
    compress(dir, &[]);
    compressed(dir)
}

/// The compressed hour files in `dir`: name -> bytes.
fn compressed(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            !n.starts_with('.') && (n.ends_with(".jsonl.gz") || n.ends_with(".jsonl.zst"))
        })
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn shipped_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(" shipped "))
        .map(str::to_string)
        .collect()
}

#[test]
fn ship_uploads_every_closed_hour_verified_then_deletes_it() {
    let d = TempDir::new("ship");
    let (_moto, remote) = open_bucket(d.path());
    let out_dir = d.path().join("output");
    let want = closed_hours(&out_dir, 3, 200);
    assert_eq!(want.len(), 6);

    let started = std::time::Instant::now();
    let out = remote.ship(&[out_dir.to_str().unwrap(), "archive:wsrec"], &[]);
    eprintln!("ship of {} hours took {:?}", want.len(), started.elapsed());
    assert!(out.status.success(), "{}", text(&out));
    // One line per hour shipped, each naming the verification.
    let lines = shipped_lines(&out);
    assert_eq!(lines.len(), want.len(), "{}", text(&out));
    for (name, bytes) in &want {
        let line = lines
            .iter()
            .find(|l| l.contains(&format!("archive:wsrec/{name} ")))
            .unwrap_or_else(|| panic!("no line for {name}: {}", text(&out)));
        assert!(
            line.contains(&format!("({} bytes, md5 ", bytes.len())),
            "{line}"
        );
    }
    assert_eq!(
        remote.objects(&d.path().join("bucket")),
        want,
        "right bytes"
    );
    assert!(compressed(&out_dir).is_empty(), "gone locally");

    // With the byte-for-byte check instead of the hashes: the same, for a new hour.
    let more = closed_hours(&d.path().join("output2"), 1, 50);
    let out = remote.ship(
        &[
            "--download-check",
            d.path().join("output2").to_str().unwrap(),
            "archive:wsrec",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        shipped_lines(&out)
            .iter()
            .all(|l| l.contains("downloaded and compared")),
        "{}",
        text(&out)
    );
    let all = remote.objects(&d.path().join("bucket"));
    for (name, bytes) in &more {
        assert_eq!(all.get(name), Some(bytes));
    }
    // Nothing left: a rerun does nothing and succeeds.
    let out = remote.ship(&[out_dir.to_str().unwrap(), "archive:wsrec"], &[]);
    assert!(
        out.status.success() && shipped_lines(&out).is_empty(),
        "{}",
        text(&out)
    );
}

#[test]
fn ship_never_uploads_the_open_hour_nor_an_unfinished_compression() {
    let d = TempDir::new("ship-open");
    let (_moto, remote) = open_bucket(d.path());
    let dir = d.path().join("output");
    fs::create_dir_all(&dir).unwrap();
    let cur = now() / 3600 * 3600;
    let old = cur - 7200;
    let prev = cur - 3600;
    fs::write(dir.join(format!("t_{old}.jsonl")), msg(1) + "\n").unwrap();
    compress(&dir, &[]);
    // The open hour, as wsrec writes it; a compressed copy of it made by hand (its hour
    // has not ended); and an hour that compress-closed-hours has renamed into place but
    // not yet finished (its original still beside it).
    fs::write(dir.join(format!("t_{cur}.jsonl")), msg(2) + "\n").unwrap();
    fs::copy(
        dir.join(format!("t_{old}.jsonl.gz")),
        dir.join(format!("t_{cur}.jsonl.gz")),
    )
    .unwrap();
    fs::write(dir.join(format!("t_{prev}.jsonl")), msg(3) + "\n").unwrap();
    fs::copy(
        dir.join(format!("t_{old}.jsonl.gz")),
        dir.join(format!("t_{prev}.jsonl.gz")),
    )
    .unwrap();
    fs::write(dir.join("coverage.jsonl"), "{}\n").unwrap();

    let out = remote.ship(&[dir.to_str().unwrap(), "archive:wsrec"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let objects = remote.objects(&d.path().join("bucket"));
    assert_eq!(
        objects.keys().cloned().collect::<Vec<_>>(),
        vec![format!("t_{old}.jsonl.gz")],
        "only the closed, finished hour"
    );
    for name in [
        format!("t_{cur}.jsonl"),
        format!("t_{cur}.jsonl.gz"),
        format!("t_{prev}.jsonl"),
        format!("t_{prev}.jsonl.gz"),
        "coverage.jsonl".to_string(),
    ] {
        assert!(dir.join(&name).exists(), "{name} left alone");
    }
}

/// A TCP front for the S3 server that dies like a killed server once `limit` bytes of
/// requests have passed: every open connection is reset in the middle of whatever it
/// carries and the port stops accepting. The objects the server stored before stay,
/// as they do on a real S3 (moto's memory would not survive a real kill, and then
/// nothing could be checked).
struct DyingFront {
    port: u16,
    dead: Arc<AtomicBool>,
}

impl DyingFront {
    fn start(upstream: u16, limit: u64) -> DyingFront {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let dead = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let d = dead.clone();
        thread::spawn(move || {
            while !d.load(SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                        {
                            let mut c = conns.lock().unwrap();
                            c.push(client.try_clone().unwrap());
                            c.push(server.try_clone().unwrap());
                        }
                        let kill_all = {
                            let conns = conns.clone();
                            let d = d.clone();
                            move || {
                                d.store(true, SeqCst);
                                for s in conns.lock().unwrap().drain(..) {
                                    reset(s);
                                }
                            }
                        };
                        let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                        let sent = sent.clone();
                        let d2 = d.clone();
                        let k = kill_all.clone();
                        thread::spawn(move || pump(client, server, Some((sent, limit, k)), d2));
                        let d3 = d.clone();
                        thread::spawn(move || pump::<fn()>(s2, c2, None, d3));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
            // Dropping the listener: connections are refused from now on.
        });
        DyingFront { port, dead }
    }
}

fn pump<K: Fn()>(
    mut from: TcpStream,
    mut to: TcpStream,
    budget: Option<(Arc<AtomicU64>, u64, K)>,
    dead: Arc<AtomicBool>,
) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if dead.load(SeqCst) {
            break;
        }
        if let Some((sent, limit, kill_all)) = &budget {
            let before = sent.fetch_add(n as u64, SeqCst);
            if before + n as u64 > *limit {
                // Pass on only what fits, then die in the middle of the request.
                let fits = limit.saturating_sub(before) as usize;
                let _ = to.write_all(&buf[..fits.min(n)]);
                kill_all();
                break;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[test]
fn ship_with_the_server_killed_mid_run_deletes_only_what_is_in_the_bucket() {
    let d = TempDir::new("ship-kill");
    let (moto, remote) = open_bucket(d.path());
    let dir = d.path().join("output");
    let want = closed_hours(&dir, 4, 3000);
    let sizes: Vec<u64> = want.values().map(|b| b.len() as u64).collect();
    // Dies in the middle of the fourth upload (the first three and a half fit).
    let limit: u64 = sizes.iter().take(3).sum::<u64>() + sizes[3] / 2 + 4000;
    let front = DyingFront::start(moto.port, limit);
    let cut = Remote::new(
        &d.path().join("cut"),
        &format!("http://127.0.0.1:{}", front.port),
        "test",
        "test",
    );

    let out = cut.ship(&[dir.to_str().unwrap(), "archive:wsrec"], &[]);
    eprintln!("the run the server died in: {}", text(&out));
    assert!(front.dead.load(SeqCst), "the server died during the run");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kept it") || err.contains("kept "),
        "{}",
        text(&out)
    );
    let shipped = shipped_lines(&out);
    assert!(
        !shipped.is_empty() && shipped.len() < want.len(),
        "some but not all shipped before the server died: {}",
        text(&out)
    );
    // Nothing gone locally that is not in the bucket with exactly its bytes.
    let left = compressed(&dir);
    let objects = remote.objects(&d.path().join("bucket"));
    for (name, bytes) in &want {
        if !left.contains_key(name) {
            assert_eq!(
                objects.get(name),
                Some(bytes),
                "{name} deleted, so it is in the bucket"
            );
        }
    }
    assert_eq!(
        want.len() - left.len(),
        shipped.len(),
        "one line per deleted hour"
    );

    // The server is back: the next run completes.
    let out = remote.ship(&[dir.to_str().unwrap(), "archive:wsrec"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(shipped_lines(&out).len(), left.len());
    assert!(compressed(&dir).is_empty());
    assert_eq!(remote.objects(&d.path().join("bucket")), want);
}

#[test]
fn ship_after_a_crash_at_any_step_completes_on_the_next_run() {
    let d = TempDir::new("ship-crash");
    let (_moto, remote) = open_bucket(d.path());
    for step in ["uploaded", "verified"] {
        let dir = d.path().join(format!("output-{step}"));
        let want = closed_hours(&dir, 1, 20);
        let out = remote.ship(
            &[dir.to_str().unwrap(), "archive:wsrec"],
            &[("SHIP_CRASH_AT", step)],
        );
        assert!(!out.status.success(), "{step}: the hook killed the run");
        assert_eq!(
            compressed(&dir),
            want,
            "{step}: nothing deleted by the crashed run"
        );
        let out = remote.ship(&[dir.to_str().unwrap(), "archive:wsrec"], &[]);
        assert!(out.status.success(), "{step}: {}", text(&out));
        assert_eq!(
            shipped_lines(&out).len(),
            want.len(),
            "{step}: {}",
            text(&out)
        );
        assert!(compressed(&dir).is_empty(), "{step}");
        let objects = remote.objects(&d.path().join("bucket"));
        for (name, bytes) in &want {
            assert_eq!(objects.get(name), Some(bytes), "{step}: {name}");
        }
    }
}

#[test]
fn ship_a_second_run_at_the_same_time_skips_the_directory() {
    let d = TempDir::new("ship-lock");
    let (_moto, remote) = open_bucket(d.path());
    let dir = d.path().join("output");
    let want = closed_hours(&dir, 1, 10);
    let lock = fs::File::create(dir.join(".ship-closed-hours.lock")).unwrap();
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let out = remote.ship(&[dir.to_str().unwrap(), "archive:wsrec"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("another run holds"));
    assert_eq!(
        compressed(&dir),
        want,
        "untouched while another run holds it"
    );
    assert!(remote.objects(&d.path().join("bucket")).is_empty());
    drop(lock);
    let out = remote.ship(&[dir.to_str().unwrap(), "archive:wsrec"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(compressed(&dir).is_empty());
}

#[test]
fn ship_with_a_wrong_credential_says_so_and_deletes_nothing() {
    let d = TempDir::new("ship-cred");
    let moto = Moto::start(d.path(), true);
    need("python3", &["-c", "import boto3"]);
    // The IAM user whose key may write the bucket (moto checks signatures with it).
    let setup = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import json, sys, boto3
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1",
          aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="wsrec")
key = iam.create_access_key(UserName="wsrec")["AccessKey"]
iam.put_user_policy(UserName="wsrec", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
boto3.client("s3", **kw).create_bucket(Bucket="wsrec")
print(key["AccessKeyId"], key["SecretAccessKey"])
"#,
        )
        .arg(moto.endpoint())
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap();
    assert!(setup.status.success(), "IAM setup: {}", text(&setup));
    let creds = String::from_utf8(setup.stdout).unwrap();
    let (key, secret) = creds.trim().split_once(' ').unwrap();

    // Plain names: moto's signature check mishandles percent-encoded keys.
    let dir = d.path().join("output");
    fs::create_dir_all(&dir).unwrap();
    let cur = now() / 3600 * 3600;
    for h in 2..5 {
        fs::write(
            dir.join(format!("t_{}.jsonl", cur - 3600 * h)),
            msg(h) + "\n",
        )
        .unwrap();
    }
    compress(&dir, &["--zstd"]);
    let want = compressed(&dir);
    assert_eq!(want.len(), 3);

    let bad = Remote::new(
        &d.path().join("bad"),
        &moto.endpoint(),
        key,
        "not-the-secret",
    );
    let out = bad.ship(&[dir.to_str().unwrap(), "archive:wsrec"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("ship-closed-hours: upload of ")
            && first.contains("403")
            && first.contains("refused the credentials")
            && first.contains("kept it"),
        "one clear line: {}",
        text(&out)
    );
    assert!(shipped_lines(&out).is_empty());
    assert_eq!(compressed(&dir), want, "nothing deleted");

    // The right secret ships them (and the check of signatures was real).
    let good = Remote::new(&d.path().join("good"), &moto.endpoint(), key, secret);
    let out = good.ship(&[dir.to_str().unwrap(), "archive:wsrec"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(shipped_lines(&out).len(), 3);
    assert!(compressed(&dir).is_empty());
}

#[test]
fn ship_two_runs_started_together_ship_each_hour_once() {
    let d = TempDir::new("ship-twice");
    let (_moto, remote) = open_bucket(d.path());
    let dir = d.path().join("output");
    let want = closed_hours(&dir, 3, 500);
    let spawn = || {
        let mut c = remote.command(&repo().join("scripts/ship-closed-hours"));
        c.args([dir.to_str().unwrap(), "archive:wsrec"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", text(&a));
    assert!(b.status.success(), "{}", text(&b));
    assert_eq!(
        shipped_lines(&a).len() + shipped_lines(&b).len(),
        want.len(),
        "each hour shipped once:\n{}\n{}",
        text(&a),
        text(&b)
    );
    assert!(compressed(&dir).is_empty());
    assert_eq!(remote.objects(&d.path().join("bucket")), want);
}

/// An object of the same name, size and time but other bytes is already in the bucket:
/// rclone's copy takes it for the same file and skips the upload; the verification
/// catches it, the file is sent again, verified, and only then deleted.
#[test]
fn ship_replaces_a_copy_in_the_bucket_that_differs() {
    let d = TempDir::new("ship-differs");
    let (_moto, remote) = open_bucket(d.path());
    let dir = d.path().join("output");
    let want = closed_hours(&dir, 1, 100);
    let (name, bytes) = want.iter().find(|(n, _)| n.starts_with("t_")).unwrap();
    let fake = d.path().join("fake").join(name);
    fs::create_dir_all(fake.parent().unwrap()).unwrap();
    let mut other = bytes.clone();
    let mid = other.len() / 2;
    other[mid] ^= 0xff;
    fs::write(&fake, &other).unwrap();
    let out = Command::new("touch")
        .arg("-r")
        .arg(dir.join(name))
        .arg(&fake)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = remote.rclone(&[
        "copyto",
        fake.to_str().unwrap(),
        &format!("archive:wsrec/{name}"),
    ]);
    assert!(out.status.success(), "{}", text(&out));

    let out = remote.ship(&[dir.to_str().unwrap(), "archive:wsrec"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("archive:wsrec/{name} did not verify (md5 "))
            && err.contains("uploaded it again"),
        "{}",
        text(&out)
    );
    assert_eq!(shipped_lines(&out).len(), want.len());
    assert_eq!(
        remote.objects(&d.path().join("bucket")),
        want,
        "the right bytes now"
    );
    assert!(compressed(&dir).is_empty());
}

/// rclone's crypt keeps no hashes: the copy is then checked by downloading it.
#[test]
fn ship_to_a_remote_without_hashes_verifies_by_download() {
    let d = TempDir::new("ship-crypt");
    let (_moto, remote) = open_bucket(d.path());
    let pw = remote.rclone(&["obscure", "wsrec-test-words"]);
    assert!(pw.status.success(), "{}", text(&pw));
    let mut conf = fs::read_to_string(&remote.conf).unwrap();
    conf += &format!(
        "\n[sealed]\ntype = crypt\nremote = archive:wsrec/sealed\npassword = {}\n",
        String::from_utf8_lossy(&pw.stdout).trim()
    );
    fs::write(&remote.conf, conf).unwrap();
    let dir = d.path().join("output");
    let want = closed_hours(&dir, 1, 100);
    let out = remote.ship(&[dir.to_str().unwrap(), "sealed:"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let lines = shipped_lines(&out);
    assert_eq!(lines.len(), want.len(), "{}", text(&out));
    assert!(
        lines.iter().all(|l| l.contains("downloaded and compared")),
        "{}",
        text(&out)
    );
    assert!(compressed(&dir).is_empty());
    let back = d.path().join("back");
    let out = remote.rclone(&["copy", "sealed:", back.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(compressed(&back), want);
}

/// The cron line's shipping part, run by sh as written, with its paths moved under a
/// test root: every instance directory below the output directory ships to its own
/// prefix in the bucket.
#[test]
fn ship_as_the_cron_line_calls_it() {
    let cron = fs::read_to_string(repo().join("deploy/wsrec.cron")).unwrap();
    let line = cron
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("ship-closed-hours"))
        .expect("deploy/wsrec.cron ships");
    let cmd = line.split_once("; ").expect("after the compress command").1;
    let d = TempDir::new("ship-cron");
    let (_moto, remote) = open_bucket(d.path());
    let out_dir = d.path().join("output");
    let want = closed_hours(&out_dir.join("okx"), 1, 10);
    let script = repo().join("scripts/ship-closed-hours");
    let cmd = cmd
        .replace("/var/lib/wsrec/output", out_dir.to_str().unwrap())
        .replace("/usr/local/bin/ship-closed-hours", script.to_str().unwrap())
        .replace("/var/log/wsrec/", &format!("{}/", d.path().display()));
    let mut sh = remote.command(Path::new("/bin/sh"));
    let out = sh.arg("-c").arg(&cmd).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", text(&out));
    let log = fs::read_to_string(d.path().join("ship.log")).unwrap();
    assert_eq!(log.lines().count(), want.len(), "one line per hour: {log}");
    let out = remote.rclone(&[
        "copy",
        "archive:wsrec/okx",
        d.path().join("bucket-okx").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let mut got = BTreeMap::new();
    for e in fs::read_dir(d.path().join("bucket-okx")).unwrap() {
        let e = e.unwrap();
        got.insert(
            e.file_name().to_string_lossy().into_owned(),
            fs::read(e.path()).unwrap(),
        );
    }
    assert_eq!(got, want);
}

#[test]
fn ship_usage_errors_exit_2() {
    let d = TempDir::new("ship-usage");
    let remote = Remote::new(d.path(), "http://127.0.0.1:9", "x", "y");
    assert_eq!(remote.ship(&[], &[]).status.code(), Some(2));
    assert_eq!(remote.ship(&["/tmp"], &[]).status.code(), Some(2));
    assert_eq!(
        remote.ship(&["/tmp", "no-colon"], &[]).status.code(),
        Some(2)
    );
    assert_eq!(
        remote.ship(&["--bogus", "/tmp", "a:b"], &[]).status.code(),
        Some(2)
    );
    let help = remote.ship(&["--help"], &[]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--download-check"));
}

// ---------------------------------------------------------------------------------
// docs/analysis.md, run as written against a real recording.

/// The blocks of docs/analysis.md marked `<!-- analysis-test: NAME -->`: name -> code.
fn doc_blocks() -> BTreeMap<String, String> {
    let doc = fs::read_to_string(repo().join("docs/analysis.md")).unwrap();
    let mut blocks = BTreeMap::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- analysis-test:")
            .and_then(|r| r.strip_suffix("-->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "{name}: a fenced block must follow its marker"
        );
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let prev = blocks.insert(name.trim().to_string(), body.join("\n") + "\n");
        assert!(prev.is_none(), "{name} twice");
    }
    blocks
}

const HTX: &str = "market.btcusdt.trade.detail";
const NEWS: &str = "news/東京:速報";
const NEWS_TEXT: &str = "Ünïcødé — 東京の速報 🚀 \\\"quoted\\\"";

/// HTX's trade id of the n-th trade: 27 digits.
fn big_id(n: u64) -> String {
    format!("137005445109359{:012}", 286_410_323_766 + n)
}

/// A local feed in HTX's trade-detail shape plus a topic of non-ASCII text. The first
/// connection streams for `first`, then closes and every connection is refused for
/// `outage`; the next one streams until `stop`.
struct Feed {
    htx: AtomicU64,
    news: AtomicU64,
    acks: AtomicU64,
    sessions: AtomicU64,
    stop: AtomicBool,
    refuse_until: Mutex<Option<std::time::Instant>>,
    closed_at: Mutex<Option<f64>>,
    reopened_at: Mutex<Option<f64>>,
}

fn feed_server(first: Duration, outage: Duration) -> (Server, Arc<Feed>) {
    let feed = Arc::new(Feed {
        htx: AtomicU64::new(0),
        news: AtomicU64::new(0),
        acks: AtomicU64::new(0),
        sessions: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        refuse_until: Mutex::new(None),
        closed_at: Mutex::new(None),
        reopened_at: Mutex::new(None),
    });
    let f = feed.clone();
    let server = Server::start(move |_, stream| {
        let refusing = f
            .refuse_until
            .lock()
            .unwrap()
            .is_some_and(|t| std::time::Instant::now() < t);
        if refusing {
            return; // dropped: the handshake fails and the recorder retries
        }
        let f = f.clone();
        thread::spawn(move || {
            let (mut ws, sub) = accept_subscribed(stream);
            let mut subs = vec![sub];
            subs.extend(read_text(&mut ws));
            let session = f.sessions.fetch_add(1, SeqCst);
            if session == 1 {
                *f.reopened_at.lock().unwrap() = Some(unix_now());
            }
            for s in &subs {
                let v: serde_json::Value = serde_json::from_str(s).unwrap();
                let ack = format!(
                    r#"{{"id":{},"status":"ok","subbed":{},"ts":{}}}"#,
                    v["id"],
                    v["sub"],
                    (unix_now() * 1000.0) as u64
                );
                ws.send(tungstenite::Message::text(ack)).unwrap();
                f.acks.fetch_add(1, SeqCst);
            }
            let until = (session == 0).then(|| std::time::Instant::now() + first);
            let mut k = 0u64;
            while !f.stop.load(SeqCst) {
                if until.is_some_and(|t| std::time::Instant::now() >= t) {
                    *f.refuse_until.lock().unwrap() = Some(std::time::Instant::now() + outage);
                    *f.closed_at.lock().unwrap() = Some(unix_now());
                    let _ = ws.close(None);
                    let _ = ws.flush();
                    while ws.read().is_ok() {}
                    return;
                }
                let ms = (unix_now() * 1000.0) as u64;
                let text = if k % 5 == 4 {
                    let n = f.news.fetch_add(1, SeqCst);
                    format!(r#"{{"ch":"{NEWS}","ts":{ms},"text":"{NEWS_TEXT} n={n}"}}"#)
                } else {
                    let n = f.htx.fetch_add(1, SeqCst);
                    format!(
                        r#"{{"ch":"{HTX}","ts":{ms},"tick":{{"id":{},"ts":{ms},"data":[{{"id":{},"ts":{ms},"tradeId":{},"amount":0.0014,"price":52648.62,"direction":"buy"}}]}}}}"#,
                        137_005_445_109 + n,
                        big_id(n),
                        102_523_573_486 + n
                    )
                };
                k += 1;
                if ws.send(tungstenite::Message::text(text)).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
            hold(ws);
        });
    });
    (server, feed)
}

/// Runs `python3 -c code args` in `cwd`; returns stdout.
fn python(cwd: &Path, code: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(code)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(out.status.success(), "python: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn sh(cwd: &Path, script: &str) -> String {
    let out = Command::new("bash")
        .args(["-e", "-o", "pipefail", "-c", script])
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}\n{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn analysis_examples_run_as_written_on_a_compressed_recording() {
    need("python3", &["-c", "import duckdb, polars, pandas"]);
    need("zstd", &["--version"]);
    need("jq", &["--version"]);
    let blocks = doc_blocks();
    assert_eq!(
        blocks.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "duckdb-files",
            "duckdb-gaps",
            "duckdb-parameters",
            "duckdb-text",
            "duckdb-trades",
            "jq",
            "jq-gaps",
            "pandas",
            "polars",
            "shell-topics"
        ],
        "the marked blocks of docs/analysis.md"
    );

    // Record: 2-second "hours", 4 s of data, a 2.5 s outage, 4 s more.
    let (server, feed) = feed_server(Duration::from_secs(4), Duration::from_millis(2500));
    let period = 2u64;
    let s = Setup::new(
        "analysis",
        &server.url(),
        serde_json::json!({
            "topic": null,
            "topics": [HTX, NEWS],
            "route_by": ["/ch"],
            "subscribe_message": "{\"sub\":\"{topic}\",\"id\":\"id{counter}\"}",
            "coverage_journal": true,
        }),
    );
    let d = s.dir.path();
    let out = d.join("output");
    let mut cfg: serde_json::Value = serde_json::from_slice(&fs::read(&s.config).unwrap()).unwrap();
    cfg["output_dir"] = serde_json::json!(out);
    fs::write(&s.config, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let t0 = unix_now().floor() as u64 - 1;
    let mut rec = s.start_with(
        &["--config"],
        &[
            ("WSREC_PERIOD_SECS", "2"),
            ("WSREC_CLOSE_GRACE_SECS", "0.5"),
        ],
    );
    let compress_run = |codec: &[&str]| {
        let mut args = codec.to_vec();
        args.extend(["--period", "2", "--grace", "1"]);
        compress(&out, &args);
    };
    // During the outage, the hours that have closed go to zstd.
    wait_until(Duration::from_secs(30), "the outage", || {
        feed.closed_at.lock().unwrap().is_some()
    });
    compress_run(&["--zstd"]);
    wait_until(Duration::from_secs(30), "the second connection", || {
        feed.reopened_at.lock().unwrap().is_some()
    });
    let reopened = feed.reopened_at.lock().unwrap().unwrap();
    wait_until(Duration::from_secs(30), "4 s after the outage", || {
        unix_now() > reopened + 4.0
    });
    feed.stop.store(true, SeqCst);
    let sent = || feed.htx.load(SeqCst) + feed.news.load(SeqCst) + feed.acks.load(SeqCst);
    wait_until(Duration::from_secs(20), "every line written", || {
        s.status_json()
            .is_some_and(|v| v["lines_written"].as_u64() == Some(sent()))
    });
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(10)).unwrap().code(),
        Some(0)
    );
    let t1 = unix_now().ceil() as u64 + 1;
    // The rest goes to gzip once every hour has closed.
    wait_until(Duration::from_secs(30), "the last hour closes", || {
        unix_now() as u64 > t1 + period
    });
    compress_run(&[]);
    let names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != "coverage.jsonl")
        .collect();
    assert!(
        !names.iter().any(|n| n.ends_with(".jsonl")),
        "all compressed: {names:?}"
    );
    let hours = names.iter().filter(|n| n.starts_with(HTX)).count();
    assert!(hours >= 4, "a few hours of {HTX}: {names:?}");
    assert!(names.iter().any(|n| n.ends_with(".jsonl.zst")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(".jsonl.gz")), "{names:?}");
    let trades = feed.htx.load(SeqCst);
    let news = feed.news.load(SeqCst);

    // wsrec gaps --json, as the doc says, over the recorded range.
    let g = Command::new(bin())
        .arg("--config")
        .arg(&s.config)
        .args([
            "gaps",
            "--json",
            "--from",
            &t0.to_string(),
            "--to",
            &t1.to_string(),
        ])
        .output()
        .unwrap();
    assert!(g.status.success(), "{}", text(&g));
    fs::write(d.join("gaps.jsonl"), &g.stdout).unwrap();
    let gaps: Vec<serde_json::Value> = String::from_utf8(g.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let closed = feed.closed_at.lock().unwrap().unwrap();
    let outage: Vec<&serde_json::Value> = gaps
        .iter()
        .filter(|g| {
            let (a, b) = (
                g["start_ms"].as_f64().unwrap() / 1e3,
                g["end_ms"].as_f64().unwrap() / 1e3,
            );
            a < reopened && b > closed
        })
        .collect();
    assert_eq!(outage.len(), 1, "one gap for the outage: {gaps:?}");
    let gap = outage[0];
    let (g0, g1) = (
        gap["start_ms"].as_f64().unwrap() / 1e3,
        gap["end_ms"].as_f64().unwrap() / 1e3,
    );
    assert!(
        (g0 - closed).abs() < 1.0,
        "gap starts at the close ({closed}): {gap}"
    );
    assert!(
        g1 >= reopened - 0.2 && g1 < reopened + 1.5,
        "gap ends at the reconnect ({reopened}): {gap}"
    );
    eprintln!(
        "recorded {trades} trades and {news} texts in {} files ({hours} hours of {HTX}); \
         outage {closed:.3}..{reopened:.3}, gap {g0:.3}..{g1:.3}",
        names.len()
    );
    assert_eq!(gap["kind"], "connection");
    assert!(gap["topic"].is_null());
    assert_eq!(
        gap["seconds"].as_f64().unwrap(),
        ((gap["end_ms"].as_u64().unwrap() - gap["start_ms"].as_u64().unwrap()) as f64 / 1000.0)
    );
    let csv = Command::new(bin())
        .arg("--config")
        .arg(&s.config)
        .args([
            "gaps",
            "--csv",
            "--from",
            &t0.to_string(),
            "--to",
            &t1.to_string(),
        ])
        .output()
        .unwrap();
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert_eq!(
        csv.lines().next(),
        Some("start,end,seconds,kind,topic,start_ms,end_ms,last,next")
    );
    assert_eq!(csv.lines().count(), gaps.len() + 1);

    // DuckDB: the doc's parameters (checked for syntax), then the test's range, then
    // the doc's queries word for word.
    let mine = format!(
        "SET VARIABLE t0 = make_timestamp({t0}000000::BIGINT);\n\
         SET VARIABLE t1 = make_timestamp({t1}000000::BIGINT);\n\
         SET VARIABLE bucket = INTERVAL 1 SECOND;\n"
    );
    let run: Vec<(&str, &str)> = vec![
        ("duckdb-parameters", &blocks["duckdb-parameters"]),
        ("test-parameters", &mine),
        ("duckdb-files", &blocks["duckdb-files"]),
        ("duckdb-trades", &blocks["duckdb-trades"]),
        ("duckdb-text", &blocks["duckdb-text"]),
        ("duckdb-gaps", &blocks["duckdb-gaps"]),
    ];
    fs::write(d.join("blocks.json"), serde_json::to_vec(&run).unwrap()).unwrap();
    let started = std::time::Instant::now();
    let res = python(
        d,
        r#"
import calendar, datetime, duckdb, json, sys
def plain(o):  # timestamps as Unix seconds (DuckDB's TIMESTAMP is UTC)
    if isinstance(o, datetime.datetime):
        return calendar.timegm(o.utctimetuple()) + o.microsecond / 1e6
    return str(o)
con = duckdb.connect()
out = {}
for name, sql in json.load(open(sys.argv[1])):
    r = con.execute(sql)
    cols = [c[0] for c in r.description] if r.description else []
    out[name] = {"columns": cols, "rows": r.fetchall() if cols else []}
print(json.dumps(out, default=plain, ensure_ascii=False))
"#,
        &["blocks.json"],
    );
    eprintln!("DuckDB ran the doc's queries in {:?}", started.elapsed());
    let res: serde_json::Value = serde_json::from_str(&res).unwrap();
    let files = res["duckdb-files"]["rows"].as_array().unwrap();
    assert_eq!(
        files.len(),
        names.len(),
        "every compressed file (not coverage.jsonl)"
    );
    let topics: std::collections::BTreeSet<&str> =
        files.iter().map(|r| r[0].as_str().unwrap()).collect();
    assert_eq!(
        topics.into_iter().collect::<Vec<_>>(),
        ["_control", HTX, NEWS]
    );
    let t = &res["duckdb-trades"]["rows"][0];
    assert_eq!(t[0].as_u64(), Some(trades), "every trade, once: {t}");
    assert_eq!(t[1], big_id(0), "the first 27-digit id, exactly, as text");
    assert_eq!(t[2], big_id(trades - 1));
    let texts = &res["duckdb-text"]["rows"];
    assert_eq!(texts[0][0], NEWS);
    assert_eq!(texts[0][1], "Ünïcødé — 東京の速報 🚀 \"quoted\" n=0");
    // The buckets marked unrecorded: every second inside the outage, none well inside
    // the recording.
    let unrecorded: Vec<f64> = res["duckdb-gaps"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r[2], false);
            r[0].as_f64().unwrap()
        })
        .collect();
    for sec in (closed.ceil() as u64)..(reopened.floor() as u64) {
        assert!(
            unrecorded.contains(&(sec as f64)),
            "second {sec} (in the outage {closed}..{reopened}) is unrecorded: {unrecorded:?}"
        );
    }
    // Inside the first connection's 4 s and the second's.
    for sec in [closed as u64 - 2, reopened as u64 + 2] {
        assert!(
            !unrecorded.contains(&(sec as f64)),
            "second {sec} was recorded"
        );
    }

    // polars, as written.
    let started = std::time::Instant::now();
    let p = python(d, &blocks["polars"], &[]);
    eprintln!("polars ran in {:?}", started.elapsed());
    assert!(p.contains(&format!("{trades} trades")), "{p}");
    assert!(p.contains(&big_id(0)), "the 27-digit id, exact: {p}");

    let p = python(d, &blocks["pandas"], &[]);
    assert!(
        p.contains(&format!("{trades} trades; first id {}", big_id(0))),
        "{p}"
    );

    // The shell and jq.
    let topics_out = sh(d, &blocks["shell-topics"]);
    assert!(
        topics_out
            .lines()
            .any(|l| l.starts_with(&format!("{NEWS}\t"))),
        "{topics_out}"
    );
    assert!(
        topics_out
            .lines()
            .any(|l| l.starts_with(&format!("{HTX}\t"))),
        "{topics_out}"
    );
    let jq_out = sh(d, &blocks["jq"]);
    assert_eq!(
        jq_out.lines().last(),
        Some(trades.to_string().as_str()),
        "{jq_out}"
    );
    let tsv = fs::read_to_string(d.join("trades.tsv")).unwrap();
    let ids: Vec<&str> = tsv.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(ids.len() as u64, trades);
    assert!(ids.contains(&big_id(0).as_str()) && ids.contains(&big_id(trades - 1).as_str()));
    let gaps_out = sh(d, &blocks["jq-gaps"]);
    assert!(
        gaps_out
            .lines()
            .any(|l| l.ends_with("\tconnection\tall topics")),
        "{gaps_out}"
    );
    assert!(news > 0);
}
