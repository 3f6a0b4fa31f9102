//! The 17 venue presets (`wsrec init <name>`, examples/venues/*.json), each against a
//! local imitation of its venue (tests/venues/sim.py, Python `websockets`): the sim
//! checks the subscription as the venue would, sends the venue's real message
//! shapes, and enforces the venue's keep-alive rule on a clock scaled by `S`; the
//! recorder runs with the preset's durations scaled the same way.
//!
//! Each test passes when one connection was held for the whole test (at least three
//! keep-alive timeouts), the sim dropped nothing, every data message the sim sent is
//! verbatim and in order in its topic's file (decoded, for gzip frames), every
//! message the venue sends about the subscription (acks, errors, welcomes, notices,
//! heartbeats) is in `_control` even when it carries the routing fields, every line
//! of every topic file has the shape of that topic's data, and nothing the recorder
//! must not write (text pongs, a plain-text greeting) was written or counted as
//! rejected.
//!
//! Without python3 and its `websockets` package the tests FAIL, saying why
//! (`scripts/install-test-deps` installs it): a preset nobody ran against its venue's
//! imitation is not tested.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{Value, json};

/// The scale of every venue duration (keep-alive rules in the sim, ping_interval and
/// friends in the config).
const S: f64 = 0.05;

const NAMES: [&str; 17] = [
    "bybit",
    "binance",
    "binance-futures",
    "okx",
    "coinbase",
    "kraken",
    "deribit",
    "bitmex",
    "htx",
    "bitget",
    "gate",
    "kucoin",
    "bitfinex",
    "hyperliquid",
    "jetstream",
    "mempool",
    "nostr",
];

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A running tests/venues/sim.py; killed when dropped.
struct Sim {
    child: Child,
    port: u16,
    record: PathBuf,
    stderr: PathBuf,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sim {
    fn start(dir: &Path, venue: &str, scale: f64, quirk: &str) -> Sim {
        let port_file = dir.join("sim.port");
        let record = dir.join("sim.record.jsonl");
        let stderr = dir.join("sim.stderr");
        let child = Command::new("python3")
            .arg(manifest().join("tests/venues/sim.py"))
            .arg(venue)
            .arg("--port-file")
            .arg(&port_file)
            .arg("--record")
            .arg(&record)
            .arg("--scale")
            .arg(scale.to_string())
            .arg("--quirk")
            .arg(quirk)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start python3 tests/venues/sim.py");
        let mut sim = Sim {
            child,
            port: 0,
            record,
            stderr,
        };
        let mut port = None;
        wait_until(Duration::from_secs(30), "the sim writes its port", || {
            if let Ok(Some(st)) = sim.child.try_wait() {
                panic!(
                    "sim.py exited ({st}): {}",
                    fs::read_to_string(&sim.stderr).unwrap_or_default()
                );
            }
            port = fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            port.is_some()
        });
        sim.port = port.unwrap();
        sim
    }

    /// The complete lines of the record so far.
    fn events(&self) -> Vec<Value> {
        let text = fs::read_to_string(&self.record).unwrap_or_default();
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("record line ({e}): {l}")))
            .collect()
    }

    fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// The texts the sim sent, by the file they must land in (None: must not be written).
fn sent_by_file(events: &[Value]) -> BTreeMap<Option<String>, Vec<String>> {
    let mut m: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    for e in of_kind(events, "sent") {
        m.entry(e["file"].as_str().map(str::to_string))
            .or_default()
            .push(e["text"].as_str().unwrap().to_string());
    }
    m
}

/// The file-name form of a topic (SCHEMA-DRAFT.md "File names"): `/ \ : * ? " < > | %`,
/// control bytes and a leading `.` become `%XX`.
fn encode_name(topic: &str) -> String {
    let mut out = Vec::new();
    for (i, b) in topic.bytes().enumerate() {
        if b < 0x20 || b == 0x7f || b"/\\:*?\"<>|%".contains(&b) || (i == 0 && b == b'.') {
            out.extend(format!("%{b:02X}").bytes());
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).unwrap()
}

/// The complete lines written so far to the files of `file` (a line being written
/// may be cut; it is not counted).
fn lines_so_far(dir: &Path, file: &str) -> usize {
    hour_files(dir, &encode_name(file))
        .iter()
        .map(|p| {
            fs::read(p)
                .unwrap_or_default()
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
        })
        .sum()
}

/// `wsrec init <args>`.
fn init(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("init")
        .args(args)
        .output()
        .expect("run wsrec init")
}

/// `ws://127.0.0.1:PORT` + the path and query of `url`.
fn local_url(url: &str, port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let tail = match rest.find(['/', '?']) {
        Some(i) => &rest[i..],
        None => "/",
    };
    let tail = if tail.starts_with('?') {
        format!("/{tail}")
    } else {
        tail.to_string()
    };
    format!("ws://127.0.0.1:{port}{tail}")
}

fn scaled(cfg: &Value, field: &str, default: f64, scale: f64) -> Value {
    json!(cfg.get(field).and_then(Value::as_f64).unwrap_or(default) * scale)
}

/// One preset test.
struct Case {
    name: &'static str,
    /// The longest keep-alive timeout the sim enforces, in venue seconds.
    timeout: f64,
    scale: f64,
    /// A departure from the venue's behaviour for the sim (`--quirk`).
    quirk: &'static str,
    edit: fn(&mut Value),
    /// Whether a line of topic `.0`'s file has the shape of that topic's data.
    shape: fn(&str, &Value) -> bool,
    /// More checks on the sim's record and the recorder's files.
    extra: fn(&[Value], &Run),
}

impl Case {
    fn new(name: &'static str, timeout: f64, shape: fn(&str, &Value) -> bool) -> Case {
        Case {
            name,
            timeout,
            scale: S,
            quirk: "",
            edit: |_| {},
            shape,
            extra: |_, _| {},
        }
    }
}

struct Run {
    setup: Setup,
    sim: Sim,
    rec: Recorder,
    cfg: Value,
}

fn start(case: &Case) -> Run {
    require_python_websockets();
    let out = init(&[case.name, "--systemd"]);
    assert!(
        out.status.success(),
        "wsrec init {} --systemd: {}",
        case.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let file = manifest().join(format!("examples/venues/{}.json", case.name));
    assert_eq!(
        text,
        fs::read_to_string(&file).unwrap(),
        "wsrec init {} --systemd prints {} verbatim",
        case.name,
        file.display()
    );
    let mut cfg: Value = serde_json::from_str(&text).expect("the preset is JSON");
    (case.edit)(&mut cfg);

    let dir = TempDir::new(&format!("preset-{}", case.name));
    let sim = Sim::start(dir.path(), case.name, case.scale, case.quirk);
    let setup = Setup {
        out: dir.path().join("out"),
        config: dir.path().join("config.json"),
        socket: dir.path().join("status.sock"),
        log: dir.path().join("wsrec.log"),
        dir,
    };
    let sc = case.scale;
    cfg["ws_url"] = json!(local_url(cfg["ws_url"].as_str().unwrap(), sim.port));
    cfg["output_dir"] = json!(setup.out);
    cfg["status_socket"] = json!(setup.socket);
    cfg["log_file"] = json!(setup.log);
    cfg["status_interval"] = json!(0);
    cfg["ping_interval"] = scaled(&cfg, "ping_interval", 20.0, sc);
    cfg["stale_timeout"] = scaled(&cfg, "stale_timeout", 60.0, sc);
    cfg["reconnect_initial_delay"] = scaled(&cfg, "reconnect_initial_delay", 1.0, sc);
    cfg["reconnect_max_delay"] = scaled(&cfg, "reconnect_max_delay", 60.0, sc);
    fs::write(&setup.config, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();

    let rest = format!("http://127.0.0.1:{}", sim.port);
    let env: Vec<(&str, &str)> = vec![("KUCOIN_REST", rest.as_str())];
    let rec = Recorder::spawn(
        setup.dir.path(),
        &["--config".to_string(), setup.config.display().to_string()],
        &env,
    );
    Run {
        setup,
        sim,
        rec,
        cfg,
    }
}

impl Run {
    /// Context for a failure: the sim's stderr and the recorder's log and stderr.
    fn context(&self) -> String {
        format!(
            "\n--- sim stderr:\n{}\n--- wsrec log:\n{}\n--- wsrec stderr:\n{}",
            self.sim.stderr_text(),
            tail(&self.setup.log_text(), 3000),
            tail(&self.rec.stderr_text(), 2000)
        )
    }

    /// Fails at once on a drop by the sim or an exit of the recorder.
    fn check_alive(&mut self) {
        let ev = self.sim.events();
        if let Some(d) = of_kind(&ev, "drop").first() {
            panic!(
                "the sim dropped the recorder: {}{}",
                d["why"],
                self.context()
            );
        }
        if let Ok(Some(st)) = self.rec.child.try_wait() {
            panic!("wsrec exited early ({st}){}", self.context());
        }
    }

    /// Waits for the connection, then holds it for `hold`, failing on a drop.
    fn hold(&mut self, hold: Duration) {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            self.check_alive();
            let ev = self.sim.events();
            if of_kind(&ev, "sent").len() >= 3 {
                break;
            }
            assert!(
                Instant::now() < end,
                "timed out after 60 s waiting for the recorder to connect and subscribe{}",
                self.context()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let end = Instant::now() + hold;
        while Instant::now() < end {
            self.check_alive();
            std::thread::sleep(Duration::from_millis(50));
        }
        self.check_alive();
    }

    fn lines(&self, file: &str) -> Vec<String> {
        self.setup.lines(&encode_name(file))
    }

    /// Waits until everything the sim sent so far is written, checks the status
    /// counters, stops the recorder with SIGTERM and returns the final record.
    fn stop(&mut self) -> (Vec<Value>, BTreeMap<Option<String>, usize>) {
        let snap: BTreeMap<Option<String>, usize> = sent_by_file(&self.sim.events())
            .into_iter()
            .map(|(k, v)| (k, v.len()))
            .collect();
        let mut lag = String::new();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            lag.clear();
            for (f, n) in &snap {
                if let Some(f) = f {
                    let got = lines_so_far(&self.setup.out, f);
                    if got < *n {
                        lag += &format!(" {f}: {got} of {n};");
                    }
                }
            }
            if lag.is_empty() {
                break;
            }
            assert!(
                Instant::now() < end,
                "timed out after 30 s waiting for the sent messages to be written:{lag}{}",
                self.context()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(st) = self.setup.status_json() {
            let rejected: u64 = st["rejected"]
                .as_object()
                .map(|o| o.values().filter_map(Value::as_u64).sum())
                .unwrap_or(0);
            assert_eq!(
                rejected,
                0,
                "nothing the venue sends is rejected: {}{}",
                st["rejected"],
                self.context()
            );
            assert_eq!(st["connects"], json!(1), "one connect: {st}");
        }
        self.check_alive();
        self.rec.term();
        let st = self.rec.wait_exit(Duration::from_secs(10));
        assert_eq!(
            st.and_then(|s| s.code()),
            Some(0),
            "wsrec exits 0 on SIGTERM{}",
            self.context()
        );
        (self.sim.events(), snap)
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

fn run_case(case: Case) {
    let mut run = start(&case);
    let hold = (3.0 * case.timeout * case.scale).max(4.0);
    run.hold(Duration::from_secs_f64(hold));
    let (events, snap) = run.stop();
    let ctx = run.context();

    assert_eq!(
        of_kind(&events, "connect").len(),
        1,
        "one connection for the whole test{ctx}"
    );
    assert!(of_kind(&events, "drop").is_empty(), "no drop{ctx}");

    let sent = sent_by_file(&events);
    let mut expected_files = BTreeSet::new();
    for (file, texts) in &sent {
        let Some(file) = file else { continue };
        expected_files.insert(format!("{}_", encode_name(file)));
        let got = run.lines(file);
        let min = snap.get(&Some(file.clone())).copied().unwrap_or(0);
        assert!(
            got.len() >= min && got.len() <= texts.len(),
            "{file}: {} lines written, the sim sent {} ({} before SIGTERM){ctx}",
            got.len(),
            texts.len(),
            min
        );
        for (i, (g, s)) in got.iter().zip(texts).enumerate() {
            assert!(
                g == s,
                "{file} line {i} is not what the sim sent, verbatim:\n written: {g:.300}\n sent:    {s:.300}{ctx}"
            );
        }
    }
    // Nothing the recorder must not write.
    let never: BTreeSet<&String> = sent.get(&None).into_iter().flatten().collect();
    let mut names = Vec::new();
    for e in fs::read_dir(&run.setup.out).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        if !name.ends_with(".jsonl") || name == "coverage.jsonl" {
            continue;
        }
        assert!(
            expected_files.iter().any(|p| name.starts_with(p.as_str())
                && name[p.len()..]
                    .trim_end_matches(".jsonl")
                    .parse::<u64>()
                    .is_ok()),
            "{name} holds nothing the sim sent (expected only {expected_files:?}){ctx}"
        );
        let text = fs::read_to_string(run.setup.out.join(&name)).unwrap();
        for l in text.lines() {
            assert!(!never.contains(&l.to_string()), "{name} holds {l:?}{ctx}");
        }
        names.push(name);
    }
    // Every topic got data in its own file (a preset that routes nothing to topics
    // says so in about.caveats).
    let topics: Vec<String> = match run.cfg.get("topics") {
        Some(t) => t
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect(),
        None => vec![run.cfg["topic"].as_str().unwrap().to_string()],
    };
    for t in &topics {
        let lines = run.lines(t);
        assert!(
            lines.len() >= 10,
            "{t}: only {} lines in its own file{ctx}",
            lines.len()
        );
        // Data only: an ack, error or notice in a topic file fails here.
        for (i, l) in lines.iter().enumerate() {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{t} line {i} is not JSON ({e}): {l:.300}{ctx}"));
            assert!(
                (case.shape)(t, &v),
                "{t} line {i} is not {t} data:\n {l:.300}{ctx}"
            );
        }
    }
    (case.extra)(&events, &run);
}

fn recv_texts(events: &[Value]) -> Vec<String> {
    of_kind(events, "recv")
        .iter()
        .filter_map(|e| e["text"].as_str().map(str::to_string))
        .collect()
}

fn lines_of(run: &Run, topic: &str) -> usize {
    run.lines(topic).len()
}

fn has_event(v: &Value) -> bool {
    v.get("event").is_some()
}

/// One test per preset: `name: Case`.
macro_rules! preset_tests {
    ($($test:ident: $case:expr;)*) => {
        $(
            #[test]
            fn $test() {
                run_case($case);
            }
        )*
    };
}

preset_tests! {
    preset_bybit: Case {
        extra: |ev, run| {
            let pings = recv_texts(ev)
                .iter()
                .filter(|t| t.contains("\"ping\""))
                .count();
            assert!(pings >= 3, "{pings} pings");
            // The book's u is checked, and its snapshots (the first, the re-sent
            // one, the restart's u = 1) are no sequence gaps.
            let book = run.lines("orderbook.1.BTCUSDT");
            let us: Vec<u64> = book.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()?["data"]["u"].as_u64()).collect();
            assert!(us.len() >= 10 && us.windows(2).all(|w| w[1] == w[0] + 1 || w[1] == w[0] || w[1] == 1), "{us:?}");
            let log = run.setup.log_text();
            assert!(!log.contains("sequence gap"), "no sequence gap in the log:\n{log}");
        },
        ..Case::new("bybit", 45.0, |t, v| v["topic"] == t && !v["data"].is_null() && v.get("op").is_none())
    };
    preset_binance: Case::new("binance", 60.0, |t, v| v["stream"] == t
        && (v["data"]["e"].is_string() || v["data"]["u"].is_u64()));
    preset_binance_futures: Case::new("binance-futures", 60.0, |t, v| v["stream"] == t && v["data"]["e"].is_string());
    preset_okx: Case {
        extra: |ev, _| {
            let pings = recv_texts(ev).iter().filter(|t| *t == "ping").count();
            assert!(pings >= 3, "{pings} text pings");
        },
        ..Case::new("okx", 30.0, |t, v| {
            !has_event(v)
                && format!("{}.{}", v["arg"]["channel"].as_str().unwrap_or(""), v["arg"]["instId"].as_str().unwrap_or("")) == t
                && v["data"].is_array()
        })
    };
    preset_coinbase: Case::new("coinbase", 5.0, |t, v| {
        let kind = t.split('.').next().unwrap();
        v["type"] == kind && v["product_id"].is_string() && v["trade_id"].is_u64()
    });
    preset_kraken: Case {
        extra: |ev, run| {
            let subs = recv_texts(ev);
            assert!(
                subs.iter().any(|t| t.contains("\"channel\":\"ticker\"") && t.contains("\"event_trigger\":\"bbo\"")),
                "the ticker is subscribed with event_trigger bbo: {subs:?}"
            );
            // With bbo the ticker follows the book, not the trades: it moves more often.
            let (trades, tickers) = (lines_of(run, "trade.BTC/USD"), lines_of(run, "ticker.BTC/USD"));
            assert!(tickers >= trades + 10, "{tickers} ticker lines for {trades} trades");
        },
        ..Case::new("kraken", 60.0, |t, v| {
            format!("{}.{}", v["channel"].as_str().unwrap_or(""), v["data"][0]["symbol"].as_str().unwrap_or("")) == t
                && (v["type"] == "update" || v["type"] == "snapshot")
        })
    };
    preset_deribit: Case {
        extra: |ev, _| {
            let r = recv_texts(ev);
            assert_eq!(
                r.iter()
                    .filter(|t| t.contains("public/set_heartbeat"))
                    .count(),
                1,
                "set_heartbeat once, after the subscribe response: {r:?}"
            );
            let tests = r.iter().filter(|t| t.contains("public/test")).count();
            assert!(tests >= 2, "{tests} test_requests answered");
        },
        // 3 s to answer a test_request: above the 1 s the recorder promises.
        scale: 0.1,
        ..Case::new("deribit", 30.0, |t, v| {
            v["method"] == "subscription" && v["params"]["channel"] == t && !v["params"]["data"].is_null()
        })
    };
    preset_bitmex: Case::new("bitmex", 60.0, |t, v| {
        let row = &v["data"][0];
        format!("{}:{}", v["table"].as_str().unwrap_or(""), row["symbol"].as_str().unwrap_or("")) == t
            && v["action"].is_string()
    });
    preset_htx: Case {
        extra: |ev, _| {
            let pongs = recv_texts(ev)
                .iter()
                .filter(|t| t.contains("\"pong\""))
                .count();
            assert!(pongs >= 5, "{pongs} pongs to the gzipped pings");
        },
        // Pings every 1 s, about 2 s to answer one: above the 1 s the recorder
        // promises for a heartbeat reply.
        scale: 0.2,
        ..Case::new("htx", 10.0, |t, v| v["ch"] == t && v["tick"].is_object())
    };
    preset_bitget: Case {
        scale: 0.025,
        extra: |ev, _| {
            let subs: Vec<f64> = of_kind(ev, "recv")
                .iter()
                .filter(|e| e["text"].as_str().is_some_and(|t| t.contains("subscribe")))
                .map(|e| e["t"].as_f64().unwrap())
                .collect();
            assert_eq!(subs.len(), 2, "one subscribe per topic");
            assert!(
                subs[1] - subs[0] >= 0.19,
                "subscribes paced by subscribe_interval 0.2: {:.3} s apart",
                subs[1] - subs[0]
            );
        },
        ..Case::new("bitget", 30.0, |t, v| {
            !has_event(v)
                && format!("{}.{}", v["arg"]["channel"].as_str().unwrap_or(""), v["arg"]["instId"].as_str().unwrap_or("")) == t
                && v["data"].is_array()
        })
    };
    preset_gate: Case {
        extra: |ev, _| {
            assert_eq!(
                of_kind(ev, "connect")[0]["x_gate_size_decimal"],
                json!("1"),
                "the handshake carries X-Gate-Size-Decimal: 1"
            );
        },
        ..Case::new("gate", 60.0, |t, v| v["channel"] == t && v["event"] == "update" && !v["result"].is_null())
    };
    preset_kucoin: Case {
        extra: |ev, _| {
            assert_eq!(of_kind(ev, "bullet").len(), 1, "one token fetched");
            let path = of_kind(ev, "connect")[0]["path"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(
                path.starts_with("/endpoint?token=") && path.contains("&connectId="),
                "{path}"
            );
            let lost = of_kind(ev, "lost");
            assert!(lost.is_empty(), "nothing was sent before the welcome: {lost:?}");
        },
        ..Case::new("kucoin", 28.0, |t, v| v["topic"] == t && v["type"] == "message" && v["data"].is_object())
    };
    preset_bitfinex: Case {
        extra: |_, run| {
            // The docs' own book snapshot and update (chanId 17082), verbatim.
            let book = run.lines("book.tBTCUSD");
            assert_eq!(book[..2], ["[17082,[[7254.7,3,3.3]]]", "[17082,[7254.5,0,1]]"]);
        },
        ..Case::new("bitfinex", 60.0, |_, v| v[0].is_u64() && (v[1].is_array() || v[1].is_string()))
    };
    preset_hyperliquid: Case::new("hyperliquid", 60.0, |t, v| v["channel"] == t && !v["data"].is_null());
    preset_jetstream: Case::new("jetstream", 30.0, |t, v| {
        v["kind"] == "commit" && format!("commit.{}", v["commit"]["collection"].as_str().unwrap_or("")) == t
    });
    preset_mempool: Case::new("mempool", 60.0, |_, v| v.is_object());
    preset_nostr: Case::new("nostr", 60.0, |t, v| v[0] == t && v[2]["id"].is_string());
}

/// A venue that stops greeting does not stop the recording: after the welcome's
/// timeout wsrec subscribes anyway, and says so in the log.
#[test]
fn preset_kucoin_without_a_welcome_subscribes_after_the_timeout() {
    run_case(Case {
        quirk: "no-welcome",
        edit: |cfg| cfg["welcome"]["timeout"] = json!(0.5),
        extra: |_, run| {
            let log = run.setup.log_text();
            assert!(
                log.contains("no welcome message within 0.5s"),
                "the log says why it subscribed without a welcome:\n{log}"
            );
        },
        ..Case::new("kucoin", 28.0, |t, v| {
            v["topic"] == t && v["type"] == "message"
        })
    });
}

/// A book update the venue never sent is a sequence gap in the venue's numbers,
/// found by the preset's `sequence` rule on the venue's own shape.
#[test]
fn preset_bybit_states_a_lost_book_update() {
    run_case(Case {
        quirk: "book-gap",
        edit: |cfg| cfg["coverage_journal"] = json!(true),
        extra: |_, run| {
            let out = Command::new(bin())
                .args([
                    "--config",
                    run.setup.config.to_str().unwrap(),
                    "gaps",
                    "--json",
                ])
                .output()
                .unwrap();
            let rows: Vec<Value> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .filter(|r: &Value| r["kind"] == "sequence")
                .collect();
            assert_eq!(rows.len(), 1, "{rows:?}");
            assert_eq!(
                (&rows[0]["topic"], &rows[0]["last"], &rows[0]["next"]),
                (&json!("orderbook.1.BTCUSDT"), &json!(20), &json!(22)),
                "{rows:?}"
            );
        },
        ..Case::new("bybit", 45.0, |t, v| {
            v["topic"] == t && !v["data"].is_null()
        })
    });
}

/// A connection the network cuts: the preset resumes by cursor (Jetstream's `cursor`
/// in the URL, Nostr's `since` in the REQ), the venue replays from there, and every
/// data message is in its file once: none lost in the cut, none written twice.
fn resumes_after_a_cut(case: Case, asked: fn(&[Value]) -> bool) {
    let mut run = start(&Case {
        quirk: "cut-once",
        ..case
    });
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        run.check_alive();
        let ev = run.sim.events();
        let after = ev
            .iter()
            .skip_while(|e| e["event"] != "cut")
            .filter(|e| e["event"] == "sent")
            .count();
        if of_kind(&ev, "connect").len() == 2 && after >= 60 {
            break;
        }
        assert!(
            Instant::now() < end,
            "timed out waiting for the cut and the resume{}",
            run.context()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every distinct data message sent so far is written.
    let sent = sent_by_file(&run.sim.events());
    let topics: Vec<&String> = sent.keys().flatten().filter(|f| *f != "_control").collect();
    let want =
        |f: &String| -> BTreeSet<String> { sent[&Some(f.clone())].iter().cloned().collect() };
    wait_until(Duration::from_secs(30), "the sent messages written", || {
        topics.iter().all(|f| {
            let got: BTreeSet<String> = run.lines(f).into_iter().collect();
            got.is_superset(&want(f))
        })
    });
    let st = run.setup.wait_status();
    run.rec.term();
    let code = run
        .rec
        .wait_exit(Duration::from_secs(10))
        .and_then(|s| s.code());
    assert_eq!(code, Some(0), "wsrec exits 0 on SIGTERM{}", run.context());
    let events = run.sim.events();
    let ctx = run.context();
    assert!(
        asked(&events),
        "the second connection asks for a replay{ctx}"
    );
    let sent = sent_by_file(&events);
    let mut replayed = 0;
    for f in &topics {
        let texts = &sent[&Some((*f).clone())];
        let distinct: BTreeSet<&String> = texts.iter().collect();
        replayed += texts.len() - distinct.len();
        let got = run.lines(f);
        let unique: BTreeSet<&String> = got.iter().collect();
        assert_eq!(
            unique.len(),
            got.len(),
            "{f}: no message written twice{ctx}"
        );
        assert_eq!(
            unique, distinct,
            "{f}: every message the venue sent, once{ctx}"
        );
    }
    assert!(
        replayed > 0,
        "the venue replayed what was recorded already{ctx}"
    );
    // A message lost in the cut was sent twice but received once.
    let removed = st["resume_duplicates_removed"].as_u64().unwrap();
    assert!(
        removed > 0 && removed <= replayed as u64,
        "the replayed messages received twice are counted ({replayed} sent twice): {st}"
    );
}

#[test]
fn preset_jetstream_resumes_by_cursor_after_a_cut() {
    resumes_after_a_cut(Case::new("jetstream", 30.0, |_, _| true), |ev| {
        let paths: Vec<&str> = of_kind(ev, "connect")
            .iter()
            .map(|e| e["path"].as_str().unwrap())
            .collect();
        !paths[0].contains("cursor") && paths[1].contains("&cursor=")
    });
}

#[test]
fn preset_nostr_resumes_by_since_after_a_cut() {
    resumes_after_a_cut(Case::new("nostr", 60.0, |_, _| true), |ev| {
        let reqs: Vec<Value> = recv_texts(ev)
            .iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect();
        reqs.len() == 2
            && reqs.iter().all(|r| r[2]["since"].is_u64())
            && reqs[1][2]["since"].as_u64() <= reqs[0][2]["since"].as_u64().map(|s| s + 60)
    });
}

/// A subscribe the venue refuses: its error reply lands in `_control` (Gate's carries
/// the channel the files are routed by), and no data comes, so no topic file is made.
fn wrong_subscribe_gets_no_data(case: Case, error: &str) {
    let mut run = start(&case);
    let end = Instant::now() + Duration::from_secs(60);
    while !hour_files(&run.setup.out, "_control")
        .iter()
        .any(|p| fs::read_to_string(p).is_ok_and(|t| t.contains(error)))
    {
        run.check_alive();
        assert!(
            Instant::now() < end,
            "timed out after 60 s waiting for {} in _control{}",
            error,
            run.context()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Long enough for data to have come, had it been granted (the sim sends every
    // 20-50 ms), and for several pings.
    let hold = Instant::now() + Duration::from_secs(2);
    while Instant::now() < hold {
        run.check_alive();
        std::thread::sleep(Duration::from_millis(50));
    }
    let (events, _) = run.stop();
    let ctx = run.context();
    let sent = sent_by_file(&events);
    let files: Vec<&Option<String>> = sent.keys().collect();
    assert!(
        files
            .iter()
            .all(|f| matches!(f.as_deref(), None | Some("_control"))),
        "the sim sent only control messages and pongs: {files:?}{ctx}"
    );
    for t in run.cfg["topics"].as_array().unwrap() {
        let t = t.as_str().unwrap();
        assert!(run.lines(t).is_empty(), "no {t} file{ctx}");
    }
    let control = run.lines("_control");
    assert_eq!(
        control,
        sent[&Some("_control".to_string())][..control.len()],
        "_control holds the error verbatim{ctx}"
    );
}

/// OKX with an instrument that does not exist (error 60018).
#[test]
fn preset_okx_wrong_subscribe_gets_no_data() {
    wrong_subscribe_gets_no_data(
        Case {
            edit: |cfg| cfg["topics"] = json!(["trades.BTC-NOPE"]),
            ..Case::new("okx", 30.0, |_, _| false)
        },
        "\"code\":\"60018\"",
    );
}

/// Gate with a contract that does not exist: its failed-subscribe reply carries the
/// channel, and still goes to `_control`.
#[test]
fn preset_gate_wrong_subscribe_gets_no_data() {
    wrong_subscribe_gets_no_data(
        Case {
            edit: |cfg| {
                let m = cfg["subscribe_message"]
                    .as_str()
                    .unwrap()
                    .replace("BTC_USDT", "BTC_NOPE");
                cfg["subscribe_message"] = json!(m);
            },
            ..Case::new("gate", 60.0, |_, _| false)
        },
        "\"status\":\"failed\"",
    );
}

#[test]
fn init_lists_presets_and_refuses_unknown() {
    let out = init(&[]);
    assert!(
        out.status.success(),
        "wsrec init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), NAMES.len(), "one line per preset:\n{text}");
    let listed: BTreeSet<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(listed, NAMES.iter().copied().collect(), "{text}");
    for l in &lines {
        assert!(
            l.split_whitespace().count() >= 2,
            "each line says what the preset records: {l:?}"
        );
    }
    // Every preset in the repository is embedded, and nothing else.
    let mut files: Vec<String> = fs::read_dir(manifest().join("examples/venues"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
        .collect();
    files.sort();
    let mut names: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    names.sort();
    assert_eq!(files, names);

    let out = init(&["nosuch"]);
    assert_eq!(out.status.code(), Some(2), "unknown preset: exit 2");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(said.contains("nosuch"), "names the unknown preset: {said}");
    for n in NAMES {
        assert!(said.contains(n), "names the known preset {n}: {said}");
    }
}

/// The presets are configs wsrec accepts, with the fields the presets promise.
#[test]
fn presets_are_documented_configs() {
    for n in NAMES {
        let p = manifest().join(format!("examples/venues/{n}.json"));
        let cfg: Value = serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
        let about = &cfg["about"];
        for k in ["venue", "docs", "checked", "records", "keepalive", "needs"] {
            assert!(about[k].is_string(), "{n}: about.{k}");
        }
        assert_eq!(about["checked"], json!("2026-12-01"), "{n}");
        assert!(about["caveats"].is_array(), "{n}: about.caveats");
        assert_eq!(
            cfg["output_dir"],
            json!(format!("/var/lib/wsrec/output/{n}")),
            "{n}"
        );
        assert_eq!(
            cfg["log_file"],
            json!(format!("/var/log/wsrec/{n}.log")),
            "{n}"
        );
        assert_eq!(
            cfg["status_socket"],
            json!(format!("/run/wsrec/{n}.sock")),
            "{n}"
        );
        // wsrec itself accepts it: a status query against it fails only because no
        // instance runs (exit 1), not because of the config (exit 2).
        let dir = TempDir::new(&format!("preset-cfg-{n}"));
        let mut local = cfg.clone();
        local["status_socket"] = json!(dir.path().join("s.sock"));
        local["output_dir"] = json!(dir.path().join("out"));
        local["log_file"] = json!(dir.path().join("log"));
        let path = dir.path().join("c.json");
        fs::write(&path, serde_json::to_vec(&local).unwrap()).unwrap();
        let out = Command::new(bin())
            .arg("--config")
            .arg(&path)
            .arg("--status")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{n}: the config is accepted: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The value(s) of `key=` lines in a systemd unit.
fn unit_values<'u>(unit: &'u str, key: &str) -> Vec<&'u str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .flat_map(str::split_whitespace)
        .collect()
}

/// `path` (absolute) moved under `root`.
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// What the docs install (`wsrec init NAME > /etc/wsrec/NAME.json`, `systemctl enable
/// --now wsrec@NAME`, deploy/wsrec.cron) lines up: every preset's output_dir, log
/// file and status socket are where deploy/wsrec@.service lets the recorder write
/// (and the socket not in /tmp, which PrivateTmp hides from a shell), and its
/// output_dir is one the cron job compresses. Then the OKX preset runs with exactly
/// those paths (moved under a temporary root): `--status` answers on the unit's socket
/// path, and the cron job's compress command compresses its closed hours.
#[test]
fn presets_line_up_with_the_unit_and_the_cron_job() {
    let unit = fs::read_to_string(manifest().join("deploy/wsrec@.service")).unwrap();
    let cron = fs::read_to_string(manifest().join("deploy/wsrec.cron")).unwrap();
    assert!(
        unit_values(&unit, "ExecStart").contains(&"/etc/wsrec/%i.json"),
        "the unit runs /etc/wsrec/<instance>.json, where the docs put `wsrec init <name>`"
    );
    let state = format!("/var/lib/{}/", unit_values(&unit, "StateDirectory")[0]);
    let logs = format!("/var/log/{}/", unit_values(&unit, "LogsDirectory")[0]);
    let run_dir = format!("/run/{}/", unit_values(&unit, "RuntimeDirectory")[0]);
    let writable = unit_values(&unit, "ReadWritePaths");
    let private_tmp = unit_values(&unit, "PrivateTmp") == ["yes"];
    // The compress command of the cron line, up to its log redirection.
    let line = cron
        .lines()
        .find(|l| l.contains("compress-closed-hours") && !l.starts_with('#'))
        .expect("deploy/wsrec.cron runs compress-closed-hours");
    let start = line.find("/usr/local/bin/compress-closed-hours").unwrap();
    let compress = &line[start..line[start..].find(" >>").unwrap() + start];

    let root = TempDir::new("preset-unit");
    let root_str = root.path().to_str().unwrap();
    // The directories the cron job hands to compress-closed-hours, on this root.
    let cron_dirs = || -> Vec<PathBuf> {
        let args = compress
            .trim_start_matches("/usr/local/bin/compress-closed-hours")
            .replace("/var/lib/wsrec", &format!("{root_str}/var/lib/wsrec"));
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("for a in {args}; do echo \"$a\"; done"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| PathBuf::from(l.trim_end_matches('/')))
            .collect()
    };
    for n in NAMES {
        let cfg: Value = serde_json::from_str(
            &fs::read_to_string(manifest().join(format!("examples/venues/{n}.json"))).unwrap(),
        )
        .unwrap();
        let out = cfg["output_dir"].as_str().unwrap();
        let log = cfg["log_file"].as_str().unwrap();
        let sock = cfg["status_socket"].as_str().unwrap();
        assert!(
            out.starts_with(&state),
            "{n}: output_dir {out} is under {state}"
        );
        assert!(
            log.starts_with(&logs),
            "{n}: log_file {log} is under {logs}"
        );
        assert!(
            sock.starts_with(&run_dir),
            "{n}: status_socket {sock} is under {run_dir}"
        );
        for p in [out, log, sock] {
            assert!(
                writable.iter().any(|w| p.starts_with(&format!("{w}/"))),
                "{n}: {p} is in the unit's ReadWritePaths {writable:?}"
            );
            assert!(
                !(private_tmp && p.starts_with("/tmp/")),
                "{n}: {p} is in the unit's private /tmp, out of reach of a shell"
            );
        }
        fs::create_dir_all(under(root.path(), out)).unwrap();
        assert!(
            cron_dirs().contains(&under(root.path(), out)),
            "{n}: the cron job compresses {out} ({compress})"
        );
    }

    // The OKX preset with the unit's paths, under the temporary root.
    require_python_websockets();
    let text = String::from_utf8(init(&["okx", "--systemd"]).stdout).unwrap();
    let mut cfg: Value = serde_json::from_str(&text).unwrap();
    let sim = Sim::start(root.path(), "okx", S, "");
    for k in ["output_dir", "log_file", "status_socket"] {
        let moved = under(root.path(), cfg[k].as_str().unwrap());
        cfg[k] = json!(moved);
    }
    // systemd makes these (StateDirectory, LogsDirectory, RuntimeDirectory).
    for d in [&state, &logs, &run_dir] {
        fs::create_dir_all(under(root.path(), d)).unwrap();
    }
    cfg["ws_url"] = json!(local_url(cfg["ws_url"].as_str().unwrap(), sim.port));
    for (k, d) in [("ping_interval", 20.0), ("stale_timeout", 60.0)] {
        cfg[k] = scaled(&cfg, k, d, S);
    }
    let etc = under(root.path(), "/etc/wsrec/okx.json");
    fs::create_dir_all(etc.parent().unwrap()).unwrap();
    fs::write(&etc, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let mut rec = Recorder::spawn(
        root.path(),
        &["--config".to_string(), etc.display().to_string()],
        &[
            ("WSREC_PERIOD_SECS", "2"),
            ("WSREC_CLOSE_GRACE_SECS", "0.5"),
        ],
    );
    let status = || {
        Command::new(bin())
            .arg("--config")
            .arg(&etc)
            .arg("--status")
            .output()
            .unwrap()
    };
    wait_until(
        Duration::from_secs(30),
        "--status answers on the unit's socket path",
        || status().status.success(),
    );
    let said = String::from_utf8_lossy(&status().stdout).to_string();
    assert!(said.contains("Total Msgs:"), "{said}");
    assert!(
        under(root.path(), "/run/wsrec/okx.sock").exists(),
        "the socket is /run/wsrec/okx.sock"
    );
    // The cron job's own compress command (with 2 s hours) compresses a closed hour.
    let out_dir = under(root.path(), "/var/lib/wsrec/output/okx");
    let command = compress
        .replace(
            "/usr/local/bin/compress-closed-hours",
            &format!(
                "{} --period 2 --grace 1",
                manifest().join("scripts/compress-closed-hours").display()
            ),
        )
        .replace("/var/lib/wsrec", &format!("{root_str}/var/lib/wsrec"));
    wait_until(
        Duration::from_secs(30),
        "the cron job compresses an okx hour",
        || {
            let _ = Command::new("sh").arg("-c").arg(&command).output();
            fs::read_dir(&out_dir).is_ok_and(|rd| {
                rd.filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().ends_with(".jsonl.gz"))
            })
        },
    );
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0),
        "{}",
        rec.stderr_text()
    );
    drop(sim);
}
