//! Shared test harness: a temporary directory with a config, the real `wsrec` binary
//! as a child process, a real WebSocket server on 127.0.0.1, and polling helpers.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// Fails the test, in one line, because something it needs is missing. A test never
/// skips: a skipped test shows `ok` and proves nothing. `scripts/install-test-deps`
/// installs every tool and package the tests use; a few tests also need root (mounts).
pub fn missing(what: &str) -> ! {
    panic!(
        "test dependency missing: {what} (run scripts/install-test-deps, as root for the mount tests)"
    )
}

/// `cmd --version` (or `arg`) runs and succeeds; else the test fails naming `cmd`.
pub fn require_command(cmd: &str, arg: &str) {
    let ok = Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        missing(&format!("`{cmd} {arg}` does not run"));
    }
}

/// python3 with the `websockets` package; else the test fails.
pub fn require_python_websockets() {
    let ok = Command::new("python3")
        .args(["-c", "import websockets"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        missing("python3 with the websockets package");
    }
}

/// The tests run as root (bind mounts, tmpfs, mount namespaces); else the test fails.
pub fn require_root(why: &str) {
    if unsafe { libc::geteuid() } != 0 {
        missing(&format!("root, to {why}"));
    }
}

/// The binary under test: `WSREC_BIN` when set (scripts/static-build runs the tests
/// against the static build that way), else the one cargo built.
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("WSREC_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_wsrec").to_string())
    })
}

/// A directory removed when dropped (kept when `WSREC_KEEP_TEST_DIRS` is set).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "wsrec-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, SeqCst)
        ));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("WSREC_KEEP_TEST_DIRS").is_none() {
            let _ = fs::remove_dir_all(&self.0);
        } else {
            eprintln!("kept {}", self.0.display());
        }
    }
}

/// Polls `cond` until it holds or `timeout` passes; panics naming `what` on timeout.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if Instant::now() > end {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A test's directory, config file and the paths the recorder will use.
pub struct Setup {
    pub dir: TempDir,
    pub out: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Setup {
    /// A config for `url` with quick reconnects, merged with `extra`.
    pub fn new(tag: &str, url: &str, extra: Value) -> Setup {
        let dir = TempDir::new(tag);
        let s = Setup {
            out: dir.path().join("out"),
            config: dir.path().join("config.json"),
            socket: dir.path().join("status.sock"),
            log: dir.path().join("wsrec.log"),
            dir,
        };
        s.write_config(url, extra);
        s
    }

    pub fn write_config(&self, url: &str, extra: Value) {
        let mut cfg = json!({
            "output_dir": self.out,
            "topic": "t",
            "ws_url": url,
            "log_file": self.log,
            "status_socket": self.socket,
            "status_interval": 0,
            "ping_interval": 30,
            "stale_timeout": 30,
            "reconnect_initial_delay": 0.05,
            "reconnect_max_delay": 0.5,
        });
        for (k, v) in extra.as_object().expect("extra is an object") {
            if v.is_null() {
                cfg.as_object_mut().unwrap().remove(k);
            } else {
                cfg[k] = v.clone();
            }
        }
        fs::write(&self.config, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    }

    /// Starts the recorder with `--config`.
    pub fn start(&self) -> Recorder {
        self.start_with(&["--config"], &[])
    }

    /// Starts the recorder with `flag` spelling(s) before the config path and extra env.
    pub fn start_with(&self, flag: &[&str], env: &[(&str, &str)]) -> Recorder {
        let mut args: Vec<String> = flag.iter().map(|s| s.to_string()).collect();
        match args.last() {
            Some(last) if last.ends_with('=') => {
                let last = args.pop().unwrap();
                args.push(format!("{last}{}", self.config.display()));
            }
            _ => args.push(self.config.display().to_string()),
        }
        Recorder::spawn(self.dir.path(), &args, env)
    }

    /// `wsrec --status --json` against this setup's instance.
    pub fn status_json(&self) -> Option<Value> {
        let out = Command::new(bin())
            .args(["--config"])
            .arg(&self.config)
            .args(["--status", "--json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Waits for the status socket to answer, then returns the JSON status.
    pub fn wait_status(&self) -> Value {
        let mut v = None;
        wait_until(Duration::from_secs(10), "status socket answers", || {
            v = self.status_json();
            v.is_some()
        });
        v.unwrap()
    }

    /// The log file so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every `.jsonl` data file in output_dir whose name starts with `prefix_`, by period.
    pub fn files(&self, prefix: &str) -> Vec<PathBuf> {
        hour_files(&self.out, prefix)
    }

    /// Complete lines in the `prefix` files so far: for polling while the recorder
    /// writes, when a read can land in the middle of a write and see half a line.
    pub fn complete_lines(&self, prefix: &str) -> usize {
        self.files(prefix)
            .iter()
            .map(|f| fs::read(f).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count()))
            .sum()
    }

    /// All lines of the `prefix` files, in period order.
    pub fn lines(&self, prefix: &str) -> Vec<String> {
        let mut all = Vec::new();
        for f in self.files(prefix) {
            // A read that lands while the writer's write(2) copies a batch can see half
            // a line for a moment; a torn line stays torn. Read again for up to 2 s.
            let end = Instant::now() + Duration::from_secs(2);
            let mut text = fs::read_to_string(&f).unwrap();
            while !(text.is_empty() || text.ends_with('\n')) && Instant::now() < end {
                thread::sleep(Duration::from_millis(5));
                text = fs::read_to_string(&f).unwrap();
            }
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "{} ends in a partial line",
                f.display()
            );
            all.extend(text.lines().map(str::to_string));
        }
        all
    }

    /// The `seq` fields of the recorded data lines of topic `t`, in order.
    pub fn seqs(&self) -> Vec<u64> {
        seqs(&self.lines("t"))
    }
}

/// `<dir>/<prefix>_<period>.jsonl` files sorted by period.
pub fn hour_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    let rest = name.strip_prefix(prefix)?.strip_prefix('_')?;
                    let period = rest.strip_suffix(".jsonl")?.parse().ok()?;
                    Some((period, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// The period of an hour file's name.
pub fn period_of(p: &Path) -> u64 {
    let name = p.file_name().unwrap().to_string_lossy().to_string();
    let (_, rest) = name.rsplit_once('_').unwrap();
    rest.strip_suffix(".jsonl").unwrap().parse().unwrap()
}

/// The `seq` fields of the lines that have one.
pub fn seqs(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("line does not parse ({e}): {l:.200}"));
            v.get("seq").and_then(Value::as_u64)
        })
        .collect()
}

/// A running recorder; killed when dropped.
pub struct Recorder {
    pub child: Child,
    pub stderr: PathBuf,
    pub stdout: PathBuf,
}

impl Recorder {
    pub fn spawn(dir: &Path, args: &[String], env: &[(&str, &str)]) -> Recorder {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, SeqCst);
        let stderr = dir.join(format!("stderr.{n}"));
        let stdout = dir.join(format!("stdout.{n}"));
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        Recorder {
            child,
            stderr,
            stdout,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Sends SIGTERM.
    pub fn term(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Waits up to `timeout` for the process to end.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            if Instant::now() > end {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn stdout_text(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Peak resident set size so far, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        proc_field(self.pid(), "VmHWM:")
    }

    /// CPU time used so far (user + system), from /proc/<pid>/stat.
    pub fn cpu_time(&self) -> Duration {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// The paths of the files the process has open.
    pub fn open_files(&self) -> Vec<PathBuf> {
        fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| fs::read_link(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_field(pid: i32, key: &str) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A TCP server on 127.0.0.1 calling `handler(connection_index, stream)` for each
/// connection, one after another on its own thread. It notes when each connection
/// was accepted (`connect_times`), for tests of back-off and reconnect timing.
pub struct Server {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    times: Arc<Mutex<Vec<Instant>>>,
}

impl Server {
    pub fn start(mut handler: impl FnMut(usize, TcpStream) + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let times = Arc::new(Mutex::new(Vec::new()));
        let (count, t) = (accepted.clone(), times.clone());
        thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                t.lock().unwrap().push(Instant::now());
                count.fetch_add(1, SeqCst);
                handler(i, stream);
            }
        });
        Server {
            addr,
            accepted,
            times,
        }
    }

    /// A server that subscribes every connection, sends it messages `range` and
    /// holds it (`send_and_hold`).
    pub fn sending(range: Range<u64>) -> Server {
        Server::start(move |_, stream| send_and_hold(stream, range.clone()))
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub fn connections(&self) -> usize {
        self.accepted.load(SeqCst)
    }

    /// When each connection so far was accepted, in order.
    pub fn connect_times(&self) -> Vec<Instant> {
        self.times.lock().unwrap().clone()
    }
}

/// The WebSocket handshake on a server-side stream.
pub fn accept<S: Read + Write>(stream: S) -> WebSocket<S> {
    tungstenite::accept(stream).expect("server handshake")
}

/// Reads the next text message (answering nothing, skipping control frames); the
/// stream must have a read timeout.
pub fn read_text<S: Read + Write>(ws: &mut WebSocket<S>) -> Option<String> {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

/// Accepts a plain WebSocket and reads the subscribe message.
pub fn accept_subscribed(stream: TcpStream) -> (WebSocket<TcpStream>, String) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut ws = accept(stream);
    let sub = read_text(&mut ws).expect("subscribe message");
    (ws, sub)
}

/// Keeps reading a server-side connection on its own thread (so that the client's
/// pings get pongs and its close frames are answered) until the client leaves.
pub fn hold(mut ws: WebSocket<TcpStream>) {
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    thread::spawn(move || while ws.read().is_ok() {});
}

/// Accepts a plain WebSocket, reads the subscribe message, sends messages `range` and
/// holds the connection (`hold`): the server most tests need.
pub fn send_and_hold(stream: TcpStream, range: Range<u64>) {
    let (mut ws, _) = accept_subscribed(stream);
    send_range(&mut ws, range);
    hold(ws);
}

/// A data message with sequence number `seq` for topic `t`, about 100 bytes.
pub fn msg(seq: u64) -> String {
    format!(r#"{{"topic":"t","seq":{seq},"data":[{{"p":"67011.5","v":"0.001","S":"Buy"}}]}}"#)
}

/// Sends messages `range` and flushes.
pub fn send_range<S: Read + Write>(ws: &mut WebSocket<S>, range: Range<u64>) {
    for i in range {
        ws.write(Message::text(msg(i))).unwrap();
    }
    ws.flush().unwrap();
}

/// Sends messages `*next..due` and flushes, moving `*next` on; false once the client
/// is gone.
pub fn send_due<S: Read + Write>(ws: &mut WebSocket<S>, next: &mut u64, due: u64) -> bool {
    while *next < due {
        if ws.write(Message::text(msg(*next))).is_err() {
            return false;
        }
        *next += 1;
    }
    ws.flush().is_ok()
}

/// OKX's notice of a coming close (its docs' shape: event `notice`, code 64008).
pub const OKX_NOTICE: &str = r#"{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade. Please reconnect.","connId":"a4d3ae55"}"#;

/// Waits until the peer has acknowledged everything sent on `s` (nothing left in the
/// send queue), so that a reset that follows cannot destroy data in flight.
pub fn wait_acked(s: &TcpStream) {
    wait_until(
        Duration::from_secs(10),
        "peer acknowledges sent data",
        || {
            let mut n: libc::c_int = 0;
            unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
            n == 0
        },
    );
}

/// Closes `s` with a TCP reset (SO_LINGER 0), no close frame.
pub fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

/// Unix time in seconds, fractional.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A server that sends to each connection as fast as `rate` msgs/s allows, with one
/// sequence counter across connections, until the client goes away.
pub fn paced_server(rate: u64, next: Arc<AtomicU64>) -> Server {
    Server::start(move |_, stream| {
        let next = next.clone();
        thread::spawn(move || {
            let (mut ws, _) = accept_subscribed(stream);
            let start = Instant::now();
            let mut sent = 0u64;
            loop {
                let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
                if sent >= due {
                    thread::sleep(Duration::from_millis(1));
                    continue;
                }
                let burst = (due - sent).min(1000);
                for _ in 0..burst {
                    let seq = next.fetch_add(1, SeqCst);
                    if ws.write(Message::text(msg(seq))).is_err() {
                        return;
                    }
                }
                sent += burst;
                if ws.flush().is_err() {
                    return;
                }
            }
        });
    })
}

/// Every line of every file parses and each file ends with a newline; seqs increase.
pub fn assert_whole_and_increasing(s: &Setup) -> Vec<u64> {
    let seqs = s.seqs(); // panics on a line that does not parse or a partial tail
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "no duplicates, in order"
    );
    seqs
}

/// Waits until the wall clock is at least `margin` seconds into a period of `period`
/// seconds and at least `margin` seconds before its end.
pub fn mid_period(period: u64, margin: f64) {
    wait_until(
        Duration::from_secs(period + 5),
        "the middle of a period",
        || {
            let into = unix_now() % period as f64;
            into >= margin && into <= period as f64 - margin
        },
    );
}

/// A server that subscribes each client and sends it `n` messages, then holds the
/// connection open (reading, so pings get pongs) until the client leaves.
pub fn feed(n: u64, subs: mpsc::Sender<String>) -> Server {
    Server::start(move |_, stream| {
        let subs = subs.clone();
        thread::spawn(move || {
            let (mut ws, sub) = accept_subscribed(stream);
            let _ = subs.send(sub);
            send_range(&mut ws, 0..n);
            hold(ws);
        });
    })
}
