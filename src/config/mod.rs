//! The config file: every field declared once (name, type, default, range and README
//! meaning side by side, in [`Config::from_map`]), and validation.
//!
//! Parsed by hand from a `serde_json::Value` rather than with a derive, so that every
//! error can name the file, the field and what is wrong in one line, and so that the
//! binary carries no derive machinery. Loading reads and validates only: nothing here
//! touches `output_dir` (recording prepares it), so `--status` and `gaps` work for a
//! user who cannot write there.

mod continuity;
mod fields;
mod subscribe;
mod url;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::message::RouteIdsSpec;
use crate::message::decode::Binary;
use crate::message::heartbeat::RuleSpec;
use crate::message::jsonline::Pointers;
use crate::message::template::Template;
pub(crate) use continuity::Continuity;
use fields::{Fields, kind};
pub(crate) use url::{WsUrl, parse_ws_url};

/// What the reader does when the channel to the writer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnFull {
    /// Stop reading until there is room; TCP pushes back on the server; nothing is dropped.
    Block,
    /// Drop the frames that do not fit and count them (the seed's behaviour).
    Drop,
}

/// How each message is written to its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineFormat {
    /// The message as received (the seed's format).
    Raw,
    /// `{"recv_ns":<unix ns>,"msg":<message>}`.
    Timestamped,
}

/// How the recorder keeps the connection alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ping {
    /// A text message (for example `{"op":"ping"}`).
    Text(Template),
    /// A WebSocket protocol ping frame.
    Protocol,
}

/// Which file each message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Routing {
    /// Every message to the one topic's file (`topic`).
    Single,
    /// By the route key (the values at `route_by`, joined by `separator`) to the file
    /// of the topic it names; everything else to the control file (`topics`).
    ByKey {
        /// JSON pointers.
        route_by: Vec<String>,
        /// Joins their values.
        separator: String,
        /// Per-connection ids learnt from the messages (`route_ids`).
        ids: Option<RouteIdsSpec>,
    },
}

/// A command whose output is the URL to connect to (`ws_url_command`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlCommand {
    /// Run with `sh -c`.
    pub(crate) command: String,
    /// Killed after this long.
    pub(crate) timeout: Duration,
}

/// The validated configuration of one recorder instance.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The file it was read from (for messages).
    pub(crate) path: PathBuf,
    /// Directory of the hourly files.
    pub(crate) output_dir: PathBuf,
    /// Topics to subscribe to; one unless `topics` was given.
    pub(crate) topics: Vec<String>,
    /// Which file each message goes to.
    pub(crate) routing: Routing,
    /// Endpoint.
    pub(crate) ws_url: WsUrl,
    /// Capacity, in messages, of the reader-to-writer channel.
    pub(crate) buffer_size: usize,
    /// Interval of the status line in the log; `None` = never.
    pub(crate) status_interval: Option<Duration>,
    /// Log file; `None` = none.
    pub(crate) log_file: Option<PathBuf>,
    /// Also log to stdout.
    pub(crate) log_to_stdout: bool,
    /// Unix socket for `--status`; `None` = none.
    pub(crate) status_socket: Option<PathBuf>,
    /// Subscribe messages sent after every connect (topics expanded); empty = none.
    pub(crate) subscribe_messages: Vec<Template>,
    /// Pause between subscribe messages.
    pub(crate) subscribe_interval: Duration,
    /// A text frame equal to this is a keep-alive answer: not written, not refused.
    pub(crate) pong_text: Option<String>,
    /// Replies to the server's heartbeats.
    pub(crate) heartbeats: Vec<RuleSpec>,
    /// What binary frames hold.
    pub(crate) binary: Binary,
    /// Extra headers on the upgrade request.
    pub(crate) handshake_headers: Vec<(String, String)>,
    /// A command that prints the URL before every connect.
    pub(crate) ws_url_command: Option<UrlCommand>,
    /// Keep-alive interval.
    pub(crate) ping_interval: Duration,
    /// What the keep-alive sends.
    pub(crate) ping: Ping,
    /// Reconnect after this long without any frame.
    pub(crate) stale_timeout: Duration,
    /// First reconnect delay.
    pub(crate) reconnect_initial_delay: Duration,
    /// Reconnect delay ceiling.
    pub(crate) reconnect_max_delay: Duration,
    /// Largest message accepted; larger ones end the connection.
    pub(crate) max_message_bytes: usize,
    /// Back-pressure policy.
    pub(crate) on_full: OnFull,
    /// Line format.
    pub(crate) line_format: LineFormat,
    /// Write `coverage.jsonl` in output_dir.
    pub(crate) coverage_journal: bool,
    /// Prometheus text file rewritten every status_interval.
    pub(crate) metrics_file: Option<PathBuf>,
    /// Data timeout, planned reconnects, handover and de-duplication.
    pub(crate) continuity: Continuity,
}

/// A config problem: which file, which field, what is wrong.
#[derive(Debug)]
pub(crate) struct ConfigError {
    path: PathBuf,
    field: Option<String>,
    problem: String,
}

impl ConfigError {
    /// A problem with one field.
    pub(crate) fn field(path: &Path, field: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            path: path.to_path_buf(),
            field: Some(field.to_string()),
            problem: problem.into(),
        }
    }

    /// A problem with the whole file.
    fn whole(path: &Path, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            path: path.to_path_buf(),
            field: None,
            problem: problem.into(),
        }
    }
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

/// Largest accepted `max_message_bytes` (1 GiB): more is a typo, not a message size.
const MAX_MESSAGE_BYTES_LIMIT: u64 = 1 << 30;
/// Largest accepted `buffer_size`.
const MAX_BUFFER_SIZE: u64 = 10_000_000;
/// Longest status socket path (sun_path holds 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 100;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

impl Config {
    /// Reads and validates the config at `path`. Touches nothing else.
    pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read(path)
            .map_err(|e| ConfigError::whole(path, format!("cannot read: {e}")))?;
        let value: Value = serde_json::from_slice(&text)
            .map_err(|e| ConfigError::whole(path, format!("malformed JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(ConfigError::whole(
                path,
                format!("expected a JSON object, got {}", kind(&value)),
            ));
        };
        Self::from_map(path, map)
    }

    /// An error about one of this config's fields, found after loading.
    pub(crate) fn error(&self, field: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::field(&self.path, field, problem)
    }

    /// Validates a parsed config object; a field no declaration took is an error.
    fn from_map(path: &Path, map: Map<String, Value>) -> Result<Config, ConfigError> {
        let mut f = Fields::new(path, map);
        let config = Self::declare(path, &mut f)?;
        f.finish()?;
        Ok(config)
    }

    /// Takes and validates every field. Each field is declared here, once.
    fn declare(path: &Path, f: &mut Fields) -> Result<Config, ConfigError> {
        let output_dir = f.string(
            "output_dir",
            "./output",
            "where the `.jsonl` files go (created if missing; relative to the working directory)",
        )?;
        if output_dir.is_empty() {
            return Err(f.err("output_dir", "must not be empty"));
        }

        let topic = f.take("topic", "topic to subscribe to; also the file name prefix");
        let topics = f.take(
            "topics",
            "several topics on one connection, instead of `topic`",
        );
        let (topics, routing, field) = match (topic, topics) {
            (Some(_), Some(_)) => {
                return Err(f.err("topics", "give either \"topic\" or \"topics\", not both"));
            }
            (None, Some(Value::Array(items))) => {
                let topics = strings(items).map_err(|k| {
                    f.err("topics", format!("expected an array of strings, found {k}"))
                })?;
                if topics.is_empty() {
                    return Err(f.err("topics", "must name at least one topic"));
                }
                (
                    topics,
                    Routing::ByKey {
                        route_by: Vec::new(),
                        separator: String::new(),
                        ids: None,
                    },
                    "topics",
                )
            }
            (None, Some(v)) => {
                return Err(f.err(
                    "topics",
                    format!("expected an array of strings, got {}", kind(&v)),
                ));
            }
            (Some(Value::String(t)), None) => (vec![t], Routing::Single, "topic"),
            (Some(v), None) => {
                return Err(f.err("topic", format!("expected a string, got {}", kind(&v))));
            }
            (None, None) => (
                vec!["publicTrade.BTCUSDT".to_string()],
                Routing::Single,
                "topic",
            ),
        };
        // Any topic can name a file: its name is encoded (message::route::file_name).
        if topics.iter().any(String::is_empty) {
            return Err(f.err(field, "a topic must not be empty"));
        }
        // Declared whatever the mode, so that giving them with `topic` says why.
        let route_by = f.take(
            "route_by",
            "with `topics`: JSON pointers to the values that name a message's topic, joined by `route_separator`",
        );
        let separator = f.string(
            "route_separator",
            ".",
            "joins the `route_by` values into the route key",
        )?;
        let ids = f.take(
            "route_ids",
            "with `topics`: learn per-connection ids: `{\"when\": {pointer: value}, \"id\": pointer, \"key\": [pointers]}`; a message whose route key is a learnt id goes to the file of the key it stands for",
        );
        let routing = match routing {
            Routing::Single => {
                for (name, given) in [
                    ("route_by", route_by.is_some()),
                    ("route_ids", ids.is_some()),
                ] {
                    if given {
                        return Err(f.err(
                            name,
                            "routes between several topics: give \"topics\", not \"topic\"",
                        ));
                    }
                }
                Routing::Single
            }
            Routing::ByKey { .. } => {
                let route_by = match route_by {
                    None => vec!["/topic".to_string()],
                    Some(Value::Array(items)) if !items.is_empty() => {
                        strings(items).map_err(|k| {
                            f.err(
                                "route_by",
                                format!("expected an array of JSON pointers, found {k}"),
                            )
                        })?
                    }
                    Some(v) => {
                        return Err(f.err(
                            "route_by",
                            format!(
                                "expected a non-empty array of JSON pointers, got {}",
                                kind(&v)
                            ),
                        ));
                    }
                };
                let mut probe = Pointers::default();
                for p in &route_by {
                    probe.add(p).map_err(|e| f.err("route_by", e))?;
                }
                let ids = match ids {
                    None => None,
                    Some(v) => Some(route_ids(v).map_err(|e| f.err("route_ids", e))?),
                };
                Routing::ByKey {
                    route_by,
                    separator,
                    ids,
                }
            }
        };

        let url = f.string(
            "ws_url",
            "wss://stream.bybit.com/v5/public/linear",
            "endpoint, `ws://` or `wss://`",
        )?;
        let ws_url = url::parse_ws_url(&url).map_err(|p| f.err("ws_url", p))?;
        let command = f.string(
            "ws_url_command",
            "",
            "a shell command run before every connect; the first line it prints is the URL to connect to instead of `ws_url` (a failure counts as a failed connect)",
        )?;
        let command_timeout = f.seconds(
            "ws_url_command_timeout",
            10.0,
            0.1..=600.0,
            "seconds `ws_url_command` may take",
        )?;
        let ws_url_command = (!command.is_empty()).then(|| UrlCommand {
            command,
            timeout: secs(command_timeout),
        });
        let handshake_headers = match f.take(
            "handshake_headers",
            "extra HTTP headers on the WebSocket upgrade request",
        ) {
            None => Vec::new(),
            Some(Value::Object(m)) => {
                let mut headers = Vec::with_capacity(m.len());
                for (k, v) in m {
                    let Value::String(v) = v else {
                        return Err(f.err(
                            "handshake_headers",
                            format!("\"{k}\": expected a string value, got {}", kind(&v)),
                        ));
                    };
                    let token =
                        |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
                    if k.is_empty() || !k.chars().all(token) {
                        return Err(
                            f.err("handshake_headers", format!("\"{k}\" is not a header name"))
                        );
                    }
                    if v.contains(['\r', '\n', '\0']) {
                        return Err(f.err(
                            "handshake_headers",
                            format!("the value of \"{k}\" must be one line"),
                        ));
                    }
                    headers.push((k, v));
                }
                headers
            }
            Some(v) => {
                return Err(f.err(
                    "handshake_headers",
                    format!(
                        "expected an object of header names to values, got {}",
                        kind(&v)
                    ),
                ));
            }
        };

        let buffer_size = f.uint(
            "buffer_size",
            10_000,
            1..=MAX_BUFFER_SIZE,
            "capacity, in messages, of the channel between reader and writer",
        )? as usize;
        let status_interval = f.seconds(
            "status_interval",
            30.0,
            0.0..=86_400.0,
            "seconds between status lines in the log; `0` = none",
        )?;
        let log_file = f.string(
            "log_file",
            "system.log",
            "log file (appended to); `\"\"` = no log file",
        )?;
        let log_to_stdout = f.bool("log_to_stdout", false, "also log to stdout")?;
        let status_socket = f.string(
            "status_socket",
            "/tmp/streamer.sock",
            "Unix socket for `--status`; `\"\"` = none",
        )?;
        if status_socket.len() > MAX_SOCKET_PATH {
            return Err(f.err(
                "status_socket",
                "path is too long for a Unix socket (100 bytes at most)",
            ));
        }

        let per_message = f.uint(
            "max_topics_per_subscribe",
            0,
            0..=100_000,
            "with `{topics}`: at most this many topics per subscribe message; `0` = all in one",
        )? as usize;
        // One template, or several (Deribit: subscribe, then set_heartbeat), each
        // expanded for the topics in turn.
        let subscribe: Vec<String> = match f.take(
            "subscribe_message",
            "sent after every connect (a string, or an array of them sent in order); `{topic}` is replaced by the topic, `{topics}` by all topics",
        ) {
            None => vec![r#"{"op":"subscribe","args":["{topic}"]}"#.to_string()],
            Some(Value::String(s)) => vec![s],
            Some(Value::Array(items)) => strings(items).map_err(|k| {
                f.err("subscribe_message", format!("expected strings, found {k}"))
            })?,
            Some(v) => {
                return Err(f.err(
                    "subscribe_message",
                    format!("expected a string or an array of strings, got {}", kind(&v)),
                ));
            }
        };
        let sep = match &routing {
            Routing::ByKey { separator, .. } => separator.as_str(),
            Routing::Single => ".",
        };
        let subscribe_messages = subscribe
            .iter()
            .flat_map(|t| subscribe::expand(t, &topics, per_message, sep))
            .map(|m| Template::parse(&m, false))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| f.err("subscribe_message", e))?;
        let subscribe_interval = f.seconds(
            "subscribe_interval",
            0.0,
            0.0..=60.0,
            "seconds between subscribe messages (for venues that limit their rate)",
        )?;

        let ping_interval = f.seconds(
            "ping_interval",
            20.0,
            0.01..=86_400.0,
            "seconds between keep-alive pings",
        )?;
        let ping_message = f.string(
            "ping_message",
            r#"{"op":"ping"}"#,
            "text sent as keep-alive; `\"\"` = a WebSocket protocol ping instead",
        )?;
        let ping = if ping_message.is_empty() {
            Ping::Protocol
        } else {
            Ping::Text(Template::parse(&ping_message, false).map_err(|e| f.err("ping_message", e))?)
        };
        let pong_text = f.string(
            "pong_text",
            "",
            "a text frame equal to this (for example `pong`) answers the keep-alive: not written, not counted as refused",
        )?;
        let heartbeats = match f.take(
            "heartbeat_replies",
            "rules that answer the server's heartbeats: `{\"has\": [pointers], \"equals\": {pointer: value}, \"reply\": template}`",
        ) {
            None => Vec::new(),
            Some(v) => heartbeat_rules(v).map_err(|e| f.err("heartbeat_replies", e))?,
        };
        let continuity = continuity::declare(f, &topics)?;
        let route_by: &[String] = match &routing {
            Routing::ByKey { route_by, .. } => route_by,
            Routing::Single => &[],
        };
        let ids = match &routing {
            Routing::ByKey { ids, .. } => ids.as_ref(),
            Routing::Single => None,
        };
        crate::message::Lookups::new(route_by, &heartbeats, ids, &continuity.reconnect_on)
            .map_err(|e| f.err("heartbeat_replies", e))?;
        let stale_timeout = f.seconds(
            "stale_timeout",
            60.0,
            0.05..=86_400.0,
            "reconnect when nothing at all (data, pong, anything) arrived for this long",
        )?;
        let initial = f.seconds(
            "reconnect_initial_delay",
            1.0,
            0.01..=86_400.0,
            "first back-off delay",
        )?;
        let max = f.seconds(
            "reconnect_max_delay",
            60.0,
            0.01..=86_400.0,
            "back-off ceiling",
        )?;
        if max < initial {
            return Err(f.err(
                "reconnect_max_delay",
                format!("{max} is less than reconnect_initial_delay ({initial})"),
            ));
        }
        let max_message_bytes = f.uint(
            "max_message_bytes",
            64 << 20,
            64..=MAX_MESSAGE_BYTES_LIMIT,
            "a larger message ends the connection (reconnect) without being held in memory",
        )? as usize;
        let on_full = f.choice(
            "on_full",
            OnFull::Block,
            &[("block", OnFull::Block), ("drop", OnFull::Drop)],
            "channel full: `block` (stop reading; TCP pushes back on the server; nothing dropped) or `drop` (drop and count, the Go streamer's behaviour)",
        )?;
        let line_format = f.choice(
            "line_format",
            LineFormat::Raw,
            &[
                ("raw", LineFormat::Raw),
                ("timestamped", LineFormat::Timestamped),
            ],
            "`raw` (the message as received) or `timestamped` (`{\"recv_ns\":…,\"msg\":…}`)",
        )?;
        let binary = f.choice(
            "binary_frames",
            Binary::Auto,
            &[
                ("auto", Binary::Auto),
                ("gzip", Binary::Gzip),
                ("zlib", Binary::Zlib),
                ("deflate", Binary::Deflate),
                ("text", Binary::Text),
                ("reject", Binary::Reject),
            ],
            "what binary frames hold: `auto` (gzip and zlib by their header, JSON by its first byte, else raw deflate), `gzip`, `zlib`, `deflate`, `text` or `reject`",
        )?;
        f.take(
            "about",
            "anything: notes for people (presets say where they come from); ignored",
        );
        let coverage_journal = f.bool(
            "coverage_journal",
            false,
            "append one line per connection session to `<output_dir>/coverage.jsonl`",
        )?;
        let metrics_file = f.string(
            "metrics_file",
            "",
            "Prometheus text file rewritten every `status_interval` (node_exporter textfile collector)",
        )?;
        let non_empty = |s: String| (!s.is_empty()).then(|| PathBuf::from(s));
        Ok(Config {
            path: path.to_path_buf(),
            output_dir: PathBuf::from(output_dir),
            topics,
            routing,
            ws_url,
            buffer_size,
            status_interval: (status_interval > 0.0).then(|| secs(status_interval)),
            log_file: non_empty(log_file),
            log_to_stdout,
            status_socket: non_empty(status_socket),
            subscribe_messages,
            subscribe_interval: secs(subscribe_interval),
            pong_text: (!pong_text.is_empty()).then_some(pong_text),
            heartbeats,
            binary,
            handshake_headers,
            ws_url_command,
            ping_interval: secs(ping_interval),
            ping,
            stale_timeout: secs(stale_timeout),
            reconnect_initial_delay: secs(initial),
            reconnect_max_delay: secs(max),
            max_message_bytes,
            on_full,
            line_format,
            coverage_journal,
            metrics_file: non_empty(metrics_file),
            continuity,
        })
    }
}

/// The strings of a JSON array, or the kind of the first item that is not one.
fn strings(items: Vec<Value>) -> Result<Vec<String>, &'static str> {
    items
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            v => Err(kind(&v)),
        })
        .collect()
}

/// Parses `route_ids`.
fn route_ids(v: Value) -> Result<RouteIdsSpec, String> {
    let Value::Object(mut m) = v else {
        return Err(format!("expected an object, got {}", kind(&v)));
    };
    let when = match m.remove("when") {
        Some(Value::Object(w)) if !w.is_empty() => equals(w)?,
        _ => return Err("\"when\" must be an object of pointers to values".into()),
    };
    let id = match m.remove("id") {
        Some(Value::String(s)) => s,
        _ => return Err("\"id\" must be a JSON pointer".into()),
    };
    let key = match m.remove("key") {
        Some(Value::Array(a)) if !a.is_empty() => {
            strings(a).map_err(|k| format!("\"key\": expected pointers, found {k}"))?
        }
        _ => return Err("\"key\" must be an array of JSON pointers".into()),
    };
    if let Some(k) = m.keys().next() {
        return Err(format!("unknown key \"{k}\" (known: when, id, key)"));
    }
    let mut probe = Pointers::default();
    for p in when.iter().map(|(p, _)| p).chain([&id]).chain(&key) {
        probe.add(p)?;
    }
    Ok(RouteIdsSpec { when, id, key })
}

/// An `equals`/`when` object: pointer -> the compact JSON text of a scalar.
fn equals(m: Map<String, Value>) -> Result<Vec<(String, String)>, String> {
    m.into_iter()
        .map(|(p, v)| {
            if v.is_object() || v.is_array() {
                Err(format!(
                    "\"{p}\": only a string, number, true, false or null can be compared"
                ))
            } else {
                Ok((p, v.to_string()))
            }
        })
        .collect()
}

/// A rule's `has` pointers and its `equals` pointer -> compact JSON text.
pub(crate) type MatchParts = (Vec<String>, Vec<(String, String)>);

/// The `has` and `equals` of rule `n` (heartbeat replies, reconnect notices), taken
/// out of `rule`; at least one of them must be given.
pub(crate) fn match_parts(rule: &mut Map<String, Value>, n: usize) -> Result<MatchParts, String> {
    let has = match rule.remove("has") {
        None => Vec::new(),
        Some(Value::Array(a)) => {
            strings(a).map_err(|k| format!("rule {n}: \"has\": expected pointers, found {k}"))?
        }
        Some(v) => {
            return Err(format!(
                "rule {n}: \"has\": expected an array, got {}",
                kind(&v)
            ));
        }
    };
    let equals = match rule.remove("equals") {
        None => Vec::new(),
        Some(Value::Object(m)) => equals(m).map_err(|e| format!("rule {n}: \"equals\": {e}"))?,
        Some(v) => {
            return Err(format!(
                "rule {n}: \"equals\": expected an object, got {}",
                kind(&v)
            ));
        }
    };
    if has.is_empty() && equals.is_empty() {
        return Err(format!("rule {n}: give \"has\" or \"equals\" (or both)"));
    }
    Ok((has, equals))
}

/// Parses `heartbeat_replies`.
fn heartbeat_rules(v: Value) -> Result<Vec<RuleSpec>, String> {
    let Value::Array(items) = v else {
        return Err(format!("expected an array of rules, got {}", kind(&v)));
    };
    let mut probe = Pointers::default();
    let mut rules = Vec::with_capacity(items.len());
    for (n, item) in items.into_iter().enumerate() {
        let Value::Object(mut rule) = item else {
            return Err(format!("rule {n}: expected an object, got {}", kind(&item)));
        };
        let (has, equals) = match_parts(&mut rule, n)?;
        let reply = match rule.remove("reply") {
            Some(Value::String(s)) if !s.is_empty() => {
                Template::parse(&s, true).map_err(|e| format!("rule {n}: \"reply\": {e}"))?
            }
            _ => {
                return Err(format!(
                    "rule {n}: \"reply\" must be the reply message (a non-empty string)"
                ));
            }
        };
        if let Some(k) = rule.keys().next() {
            return Err(format!(
                "rule {n}: unknown key \"{k}\" (known: has, equals, reply)"
            ));
        }
        for p in has
            .iter()
            .chain(equals.iter().map(|(p, _)| p))
            .map(String::as_str)
            .chain(reply.pointers())
        {
            probe.add(p).map_err(|e| format!("rule {n}: {e}"))?;
        }
        rules.push(RuleSpec { has, equals, reply });
    }
    Ok(rules)
}

#[cfg(test)]
impl Config {
    /// A config from a JSON object, for unit tests; panics if it is invalid.
    pub(crate) fn for_test(v: Value) -> Config {
        let Value::Object(map) = v else {
            panic!("not an object: {v}")
        };
        Config::from_map(Path::new("test.json"), map).unwrap()
    }
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
        assert_eq!(c.topics, ["publicTrade.BTCUSDT"]);
        assert_eq!(c.routing, Routing::Single);
        assert_eq!(c.buffer_size, 10_000);
        let subs: Vec<String> = c
            .subscribe_messages
            .iter()
            .map(|t| t.render(&mut 0, |_| None))
            .collect();
        assert_eq!(
            subs,
            [r#"{"op":"subscribe","args":["publicTrade.BTCUSDT"]}"#]
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
            e.contains("\"bogus\"") && e.contains("unknown field") && e.contains("ws_url"),
            "{e}"
        );
        let e = load(r#"{"ws_url":"http://x"}"#).unwrap_err().to_string();
        assert!(e.contains("ws_url"), "{e}");
        let e = load(r#"{"reconnect_initial_delay":5,"reconnect_max_delay":1}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("reconnect_max_delay"));
        let e = load(r#"{"on_full":"wait"}"#).unwrap_err().to_string();
        assert!(e.contains("\"wait\" is not \"block\" or \"drop\""), "{e}");
    }

    /// The README's config table has a row for every field, with the meaning declared
    /// here: the declaration is the one definition, the README row its copy.
    #[test]
    fn readme_documents_every_field() {
        // The manual moves to docs/configuration.md; a row in either counts.
        let readme = concat!(
            include_str!("../../README.md"),
            include_str!("../../docs/configuration.md")
        );
        let path = Path::new("c.json");
        let mut f = Fields::new(path, Map::new());
        Config::declare(path, &mut f).unwrap();
        assert!(f.declared.len() >= 20, "{:?}", f.declared);
        for d in &f.declared {
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", d.name)))
                .unwrap_or_else(|| panic!("README has no config row for `{}`", d.name));
            assert!(
                row.contains(d.meaning),
                "README row for `{}` does not say what the code declares:\n  README: {row}\n  code:   {}",
                d.name,
                d.meaning
            );
        }
    }
}
