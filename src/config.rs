//! The config file: fields, defaults and validation.
//!
//! Parsed by hand from a `serde_json::Value` rather than with a derive, so that every
//! error can name the file, the field and what is wrong in one line, and so that the
//! binary carries no derive machinery.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

/// What the reader does when the channel to the writer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    /// Stop reading until there is room; TCP pushes back on the server; nothing is dropped.
    Block,
    /// Drop the frames that do not fit and count them (the seed's behaviour).
    Drop,
}

/// How each message is written to its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// The message as received (the seed's format).
    Raw,
    /// `{"recv_ns":<unix ns>,"msg":<message>}`.
    Timestamped,
}

/// How the recorder keeps the connection alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ping {
    /// A text message (for example `{"op":"ping"}`).
    Text(String),
    /// A WebSocket protocol ping frame.
    Protocol,
}

/// A validated `ws://` or `wss://` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// The URL as configured.
    pub url: String,
    /// Host name or address (without brackets for IPv6).
    pub host: String,
    /// TCP port (explicit, or 80/443 by scheme).
    pub port: u16,
    /// `true` for `wss://`.
    pub tls: bool,
}

/// The validated configuration of one recorder instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    /// Directory of the hourly files.
    pub output_dir: PathBuf,
    /// Topics to subscribe to; one unless `topics` was given.
    pub topics: Vec<String>,
    /// `true` when the config used `topics` (lines are routed by their "topic" field).
    pub multi_topic: bool,
    /// Endpoint.
    pub ws_url: WsUrl,
    /// Capacity, in messages, of the reader-to-writer channel.
    pub buffer_size: usize,
    /// Interval of the status line in the log; `None` = never.
    pub status_interval: Option<Duration>,
    /// Log file; `None` = none.
    pub log_file: Option<PathBuf>,
    /// Also log to stdout.
    pub log_to_stdout: bool,
    /// Unix socket for `--status`; `None` = none.
    pub status_socket: Option<PathBuf>,
    /// Subscribe messages sent after every connect (already expanded); empty = none.
    pub subscribe_messages: Vec<String>,
    /// Keep-alive interval.
    pub ping_interval: Duration,
    /// What the keep-alive sends.
    pub ping: Ping,
    /// Reconnect after this long without any frame.
    pub stale_timeout: Duration,
    /// First reconnect delay.
    pub reconnect_initial_delay: Duration,
    /// Reconnect delay ceiling.
    pub reconnect_max_delay: Duration,
    /// Largest message accepted; larger ones end the connection.
    pub max_message_bytes: usize,
    /// Back-pressure policy.
    pub on_full: OnFull,
    /// Line format.
    pub line_format: LineFormat,
    /// Write `coverage.jsonl` in output_dir.
    pub coverage_journal: bool,
    /// Prometheus text file rewritten every status_interval.
    pub metrics_file: Option<PathBuf>,
    /// Topics per subscribe message when `{topics}` is used; 0 = all in one.
    pub max_topics_per_subscribe: usize,
}

/// A config problem: which file, which field, what is wrong.
#[derive(Debug)]
pub struct ConfigError {
    /// The config file.
    pub path: PathBuf,
    /// The field, when the problem is with one.
    pub field: Option<String>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(
                f,
                "config {}: field \"{}\": {}",
                self.path.display(),
                field,
                self.problem
            ),
            None => write!(f, "config {}: {}", self.path.display(), self.problem),
        }
    }
}

impl std::error::Error for ConfigError {}

const FIELDS: &[&str] = &[
    "output_dir",
    "topic",
    "topics",
    "ws_url",
    "buffer_size",
    "status_interval",
    "log_file",
    "log_to_stdout",
    "status_socket",
    "subscribe_message",
    "ping_interval",
    "ping_message",
    "stale_timeout",
    "reconnect_initial_delay",
    "reconnect_max_delay",
    "max_message_bytes",
    "on_full",
    "line_format",
    "coverage_journal",
    "metrics_file",
    "max_topics_per_subscribe",
];

/// Largest accepted `max_message_bytes` (1 GiB): more is a typo, not a message size.
const MAX_MESSAGE_BYTES_LIMIT: usize = 1 << 30;
/// Largest accepted `buffer_size`.
const MAX_BUFFER_SIZE: usize = 10_000_000;

/// Field-level reader over the JSON object; it remembers the file for error messages.
struct Fields<'a> {
    path: &'a Path,
    map: Map<String, Value>,
}

impl Fields<'_> {
    fn err(&self, field: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.path.to_path_buf(),
            field: Some(field.to_string()),
            problem: problem.into(),
        }
    }

    fn string(&self, field: &str, default: &str) -> Result<String, ConfigError> {
        match self.map.get(field) {
            None => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(self.err(field, format!("expected a string, got {}", kind(v)))),
        }
    }

    fn bool(&self, field: &str, default: bool) -> Result<bool, ConfigError> {
        match self.map.get(field) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.err(field, format!("expected true or false, got {}", kind(v)))),
        }
    }

    fn uint(&self, field: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        let n = match self.map.get(field) {
            None => return Ok(default),
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or_else(|| self.err(field, format!("expected a whole number, got {n}")))?,
            Some(v) => {
                return Err(self.err(field, format!("expected a whole number, got {}", kind(v))));
            }
        };
        if n < min || n > max {
            return Err(self.err(field, format!("{n} is out of range {min}..={max}")));
        }
        Ok(n)
    }

    /// Seconds, integer or fraction, within `min..=max`.
    fn seconds(&self, field: &str, default: f64, min: f64, max: f64) -> Result<f64, ConfigError> {
        let s = match self.map.get(field) {
            None => return Ok(default),
            Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            Some(v) => {
                return Err(self.err(
                    field,
                    format!("expected seconds (a number), got {}", kind(v)),
                ));
            }
        };
        if !(s >= min && s <= max) {
            return Err(self.err(field, format!("{s} seconds is out of range {min}..={max}")));
        }
        Ok(s)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

impl Config {
    /// Reads, validates and prepares the config at `path` (creating `output_dir`).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let whole = |problem: String| ConfigError {
            path: path.to_path_buf(),
            field: None,
            problem,
        };
        let text = fs::read(path).map_err(|e| whole(format!("cannot read: {e}")))?;
        let value: Value =
            serde_json::from_slice(&text).map_err(|e| whole(format!("malformed JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(whole(format!(
                "expected a JSON object, got {}",
                kind(&value)
            )));
        };
        let config = Self::from_map(path, map)?;
        config.prepare_output_dir()?;
        Ok(config)
    }

    /// Validates a parsed config object without touching the file system.
    pub fn from_map(path: &Path, map: Map<String, Value>) -> Result<Config, ConfigError> {
        let f = Fields { path, map };
        if let Some(unknown) = f.map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(f.err(
                unknown,
                format!("unknown field (known fields: {})", FIELDS.join(", ")),
            ));
        }

        let output_dir = f.string("output_dir", "./output")?;
        if output_dir.is_empty() {
            return Err(f.err("output_dir", "must not be empty"));
        }

        let (topics, multi_topic) = match f.map.get("topics") {
            None => (vec![f.string("topic", "publicTrade.BTCUSDT")?], false),
            Some(_) if f.map.contains_key("topic") => {
                return Err(f.err("topics", "give either \"topic\" or \"topics\", not both"));
            }
            Some(Value::Array(items)) => {
                let mut topics = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) => topics.push(s.clone()),
                        v => {
                            return Err(f.err(
                                "topics",
                                format!("expected an array of strings, found {}", kind(v)),
                            ));
                        }
                    }
                }
                if topics.is_empty() {
                    return Err(f.err("topics", "must name at least one topic"));
                }
                (topics, true)
            }
            Some(v) => {
                return Err(f.err(
                    "topics",
                    format!("expected an array of strings, got {}", kind(v)),
                ));
            }
        };
        for t in &topics {
            let field = if multi_topic { "topics" } else { "topic" };
            if t.is_empty() {
                return Err(f.err(field, "a topic must not be empty"));
            }
            if t.contains(['/', '\0']) || t == "." || t == ".." {
                return Err(f.err(field, format!("\"{t}\" cannot be part of a file name")));
            }
        }

        let url = f.string("ws_url", "wss://stream.bybit.com/v5/public/linear")?;
        let ws_url = parse_ws_url(&url).map_err(|p| f.err("ws_url", p))?;

        let buffer_size = f.uint("buffer_size", 10_000, 1, MAX_BUFFER_SIZE as u64)? as usize;
        let status_interval = f.seconds("status_interval", 30.0, 0.0, 86_400.0)?;
        let log_file = f.string("log_file", "system.log")?;
        let log_to_stdout = f.bool("log_to_stdout", false)?;
        let status_socket = f.string("status_socket", "/tmp/streamer.sock")?;
        if status_socket.len() > 100 {
            return Err(f.err(
                "status_socket",
                "path is too long for a Unix socket (100 bytes at most)",
            ));
        }

        let max_topics_per_subscribe = f.uint("max_topics_per_subscribe", 0, 0, 100_000)? as usize;
        let subscribe = f.string(
            "subscribe_message",
            r#"{"op":"subscribe","args":["{topic}"]}"#,
        )?;
        let subscribe_messages = expand_subscribe(&subscribe, &topics, max_topics_per_subscribe)
            .map_err(|p| f.err("subscribe_message", p))?;

        let ping_interval = f.seconds("ping_interval", 20.0, 0.01, 86_400.0)?;
        let ping_message = f.string("ping_message", r#"{"op":"ping"}"#)?;
        let stale_timeout = f.seconds("stale_timeout", 60.0, 0.05, 86_400.0)?;
        let initial = f.seconds("reconnect_initial_delay", 1.0, 0.01, 86_400.0)?;
        let max = f.seconds("reconnect_max_delay", 60.0, 0.01, 86_400.0)?;
        if max < initial {
            return Err(f.err(
                "reconnect_max_delay",
                format!("{max} is less than reconnect_initial_delay ({initial})"),
            ));
        }
        let max_message_bytes = f.uint(
            "max_message_bytes",
            16 << 20,
            64,
            MAX_MESSAGE_BYTES_LIMIT as u64,
        )? as usize;
        let on_full = match f.string("on_full", "block")?.as_str() {
            "block" => OnFull::Block,
            "drop" => OnFull::Drop,
            other => {
                return Err(f.err(
                    "on_full",
                    format!("\"{other}\" is not \"block\" or \"drop\""),
                ));
            }
        };
        let line_format = match f.string("line_format", "raw")?.as_str() {
            "raw" => LineFormat::Raw,
            "timestamped" => LineFormat::Timestamped,
            other => {
                return Err(f.err(
                    "line_format",
                    format!("\"{other}\" is not \"raw\" or \"timestamped\""),
                ));
            }
        };
        let coverage_journal = f.bool("coverage_journal", false)?;
        let metrics_file = f.string("metrics_file", "")?;

        let non_empty = |s: String| (!s.is_empty()).then(|| PathBuf::from(s));
        Ok(Config {
            path: path.to_path_buf(),
            output_dir: PathBuf::from(output_dir),
            topics,
            multi_topic,
            ws_url,
            buffer_size,
            status_interval: (status_interval > 0.0).then(|| secs(status_interval)),
            log_file: non_empty(log_file),
            log_to_stdout,
            status_socket: non_empty(status_socket),
            subscribe_messages,
            ping_interval: secs(ping_interval),
            ping: if ping_message.is_empty() {
                Ping::Protocol
            } else {
                Ping::Text(ping_message)
            },
            stale_timeout: secs(stale_timeout),
            reconnect_initial_delay: secs(initial),
            reconnect_max_delay: secs(max),
            max_message_bytes,
            on_full,
            line_format,
            coverage_journal,
            metrics_file: non_empty(metrics_file),
            max_topics_per_subscribe,
        })
    }

    /// Creates `output_dir` if needed and proves it writable with a probe file.
    fn prepare_output_dir(&self) -> Result<(), ConfigError> {
        let err = |problem: String| ConfigError {
            path: self.path.clone(),
            field: Some("output_dir".into()),
            problem,
        };
        let dir = &self.output_dir;
        fs::create_dir_all(dir)
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        let probe = dir.join(format!(".wsrec-probe-{}", std::process::id()));
        fs::write(&probe, b"")
            .map_err(|e| err(format!("{} is not writable: {e}", dir.display())))?;
        let _ = fs::remove_file(&probe);
        Ok(())
    }

    /// The one topic of a single-topic config (the file name prefix).
    pub fn topic(&self) -> &str {
        &self.topics[0]
    }
}

/// Splits a `ws://` / `wss://` URL into what the connector needs.
pub fn parse_ws_url(url: &str) -> Result<WsUrl, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("ws://") {
        (false, r)
    } else {
        return Err(format!("\"{url}\" must start with ws:// or wss://"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(format!(
            "\"{url}\": user information in the URL is not supported"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("\"{url}\": unclosed [ in the host"))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("\"{url}\" has no host"));
    }
    let port = match port {
        None => {
            if tls {
                443
            } else {
                80
            }
        }
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("\"{url}\": \"{p}\" is not a port number"))?,
    };
    Ok(WsUrl {
        url: url.to_string(),
        host: host.to_string(),
        port,
        tls,
    })
}

/// Expands `{topic}` / `{topics}` in the subscribe template into the messages to send.
///
/// `{topics}` becomes the topics as JSON string items (`"a","b"`), split into groups of
/// `per_message` (0 = one message for all). `{topic}` with several topics sends one
/// message per topic.
fn expand_subscribe(
    template: &str,
    topics: &[String],
    per_message: usize,
) -> Result<Vec<String>, String> {
    if template.is_empty() {
        return Ok(Vec::new());
    }
    let quote = |t: &String| serde_json::to_string(t).unwrap_or_default();
    let messages: Vec<String> = if template.contains("{topics}") {
        let chunk = if per_message == 0 {
            topics.len()
        } else {
            per_message
        };
        topics
            .chunks(chunk)
            .map(|group| {
                let items: Vec<String> = group.iter().map(quote).collect();
                template.replace("{topics}", &items.join(","))
            })
            .collect()
    } else if template.contains("{topic}") {
        // Inside a JSON string the topic must be escaped but not quoted again.
        topics
            .iter()
            .map(|t| {
                let q = quote(t);
                template.replace("{topic}", &q[1..q.len() - 1])
            })
            .collect()
    } else {
        vec![template.to_string()]
    };
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(json: &str) -> Result<Config, ConfigError> {
        let Value::Object(map) = serde_json::from_str(json).unwrap() else {
            panic!()
        };
        Config::from_map(Path::new("c.json"), map)
    }

    #[test]
    fn defaults_match_the_seed() {
        let c = load("{}").unwrap();
        assert_eq!(c.topic(), "publicTrade.BTCUSDT");
        assert_eq!(c.buffer_size, 10_000);
        assert_eq!(
            c.subscribe_messages,
            vec![r#"{"op":"subscribe","args":["publicTrade.BTCUSDT"]}"#]
        );
        assert_eq!(c.ws_url.port, 443);
        assert_eq!(
            c.status_socket.as_deref(),
            Some(Path::new("/tmp/streamer.sock"))
        );
        assert_eq!(c.on_full, OnFull::Block);
    }

    #[test]
    fn errors_name_the_field() {
        let e = load(r#"{"buffer_size":"x"}"#).unwrap_err().to_string();
        assert!(
            e.contains("\"buffer_size\"") && e.contains("whole number"),
            "{e}"
        );
        let e = load(r#"{"bogus":1}"#).unwrap_err().to_string();
        assert!(
            e.contains("\"bogus\"") && e.contains("unknown field"),
            "{e}"
        );
        let e = load(r#"{"ws_url":"http://x"}"#).unwrap_err().to_string();
        assert!(e.contains("ws_url"), "{e}");
        let e = load(r#"{"reconnect_initial_delay":5,"reconnect_max_delay":1}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("reconnect_max_delay"));
    }

    #[test]
    fn urls() {
        let u = parse_ws_url("ws://127.0.0.1:9001/x?y").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.tls), ("127.0.0.1", 9001, false));
        let u = parse_ws_url("wss://[::1]/").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.tls), ("::1", 443, true));
        assert!(parse_ws_url("ws://:80").is_err());
        assert!(parse_ws_url("ws://h:99999").is_err());
    }

    #[test]
    fn subscribe_expansion() {
        let t = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let m = expand_subscribe(r#"{"args":[{topics}]}"#, &t, 2).unwrap();
        assert_eq!(m, vec![r#"{"args":["a","b"]}"#, r#"{"args":["c"]}"#]);
        let m = expand_subscribe(r#"{"args":["{topic}"]}"#, &t[..1], 0).unwrap();
        assert_eq!(m, vec![r#"{"args":["a"]}"#]);
    }
}
