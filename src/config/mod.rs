//! The config file: every field declared once (name, type, default, range and README
//! meaning side by side, in [`Config::from_map`]), and validation.
//!
//! Parsed by hand from a `serde_json::Value` rather than with a derive, so that every
//! error can name the file, the field and what is wrong in one line, and so that the
//! binary carries no derive machinery. Loading reads and validates only: nothing here
//! touches `output_dir` (recording prepares it), so `--status` and `gaps` work for a
//! user who cannot write there.

mod continuity;
mod error;
mod fields;
mod subscribe;
mod url;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::message::Lookups;
use crate::message::decode::Binary;
use crate::message::heartbeat::RuleSpec;
use crate::message::pong::PongText;
use crate::message::route_ids::RouteIdsSpec;
use crate::message::template::Template;
pub(crate) use continuity::{Continuity, Redundant};
pub(crate) use error::ConfigError;
use fields::Fields;
pub(crate) use fields::{kind, scalars, strings};
pub(crate) use url::{WsUrl, parse_ws_url};

/// What the reader does when the channel to the writer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnFull {
    /// Stop reading until there is room; TCP pushes back on the server; nothing is dropped.
    Block,
    /// Drop the frames that do not fit and count them (the Go streamer's behaviour).
    Drop,
}

/// How each message is written to its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineFormat {
    /// The message as received (the Go streamer's format).
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
    },
}

impl Routing {
    /// What joins the route values (`""` with one topic).
    pub(crate) fn separator(&self) -> &str {
        match self {
            Routing::Single => "",
            Routing::ByKey { separator, .. } => separator,
        }
    }
}

/// A command whose output is the URL to connect to (`ws_url_command`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlCommand {
    /// Run with `sh -c`.
    pub(crate) command: String,
    /// Killed after this long.
    pub(crate) timeout: Duration,
}

/// The validated configuration of one recorder instance, in sections: each consumer
/// takes the sections it uses.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The file it was read from (for messages).
    pub(crate) path: PathBuf,
    /// Where to connect and how to subscribe and reconnect.
    pub(crate) connection: Connection,
    /// Keeping the connection alive and noticing a stale one.
    pub(crate) keep_alive: KeepAlive,
    /// What becomes of each message: topics, routing, the mechanisms' parsed specs.
    pub(crate) messages: Messages,
    /// Where and how lines are written.
    pub(crate) output: Output,
    /// The log, the status socket, the status line and the metrics file.
    pub(crate) operations: Operations,
    /// Data timeout, planned reconnects, handover and de-duplication.
    pub(crate) continuity: Continuity,
}

/// Where to connect and how to subscribe and reconnect.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    /// Endpoint.
    pub(crate) ws_url: WsUrl,
    /// A command that prints the URL before every connect.
    pub(crate) ws_url_command: Option<UrlCommand>,
    /// Extra headers on the upgrade request.
    pub(crate) handshake_headers: Vec<(String, String)>,
    /// Subscribe messages sent after every connect (topics expanded); empty = none.
    pub(crate) subscribe_messages: Vec<Template>,
    /// Pause between subscribe messages.
    pub(crate) subscribe_interval: Duration,
    /// First reconnect delay.
    pub(crate) reconnect_initial_delay: Duration,
    /// Reconnect delay ceiling.
    pub(crate) reconnect_max_delay: Duration,
    /// Largest message accepted; larger ones end the connection.
    pub(crate) max_message_bytes: usize,
}

/// Keeping the connection alive.
#[derive(Debug, Clone)]
pub(crate) struct KeepAlive {
    /// Keep-alive interval.
    pub(crate) ping_interval: Duration,
    /// What the keep-alive sends.
    pub(crate) ping: Ping,
    /// Reconnect after this long without any frame.
    pub(crate) stale_timeout: Duration,
}

/// What becomes of each message.
#[derive(Debug, Clone)]
pub(crate) struct Messages {
    /// Topics to subscribe to; one unless `topics` was given.
    pub(crate) topics: Vec<String>,
    /// Which file each message goes to.
    pub(crate) routing: Routing,
    /// The pointers the JSON check finds for routing, heartbeat replies and
    /// `route_ids`, resolved once here.
    pub(crate) lookups: Lookups,
    /// A text frame equal to this is a keep-alive answer: not written, not refused.
    pub(crate) pong_text: PongText,
    /// The venue's welcome: the reader waits for it before subscribing; a plain-text
    /// one is neither written nor refused.
    pub(crate) welcome: Option<crate::reader::welcome::Welcome>,
    /// What binary frames hold.
    pub(crate) binary: Binary,
}

/// Where and how lines are written.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    /// Directory of the hourly files.
    pub(crate) output_dir: PathBuf,
    /// Capacity, in messages, of the reader-to-writer channel.
    pub(crate) buffer_size: usize,
    /// Back-pressure policy.
    pub(crate) on_full: OnFull,
    /// Line format.
    pub(crate) line_format: LineFormat,
    /// Write `coverage.jsonl` in output_dir.
    pub(crate) coverage_journal: bool,
}

/// Operating the recorder.
#[derive(Debug, Clone)]
pub(crate) struct Operations {
    /// Interval of the status line in the log; `None` = never.
    pub(crate) status_interval: Option<Duration>,
    /// Log file; `None` = none.
    pub(crate) log_file: Option<PathBuf>,
    /// Also log to stdout.
    pub(crate) log_to_stdout: bool,
    /// Unix socket for `--status`; `None` = none.
    pub(crate) status_socket: Option<PathBuf>,
    /// Prometheus text file rewritten every status_interval.
    pub(crate) metrics_file: Option<PathBuf>,
}

/// The routing fields as written, before the mechanisms' specs are resolved.
struct Topics {
    topics: Vec<String>,
    routing: Routing,
    route_ids: Option<Value>,
}

/// The keep-alive fields as written, and the mechanisms they feed.
struct KeepAliveFields {
    keep_alive: KeepAlive,
    pong_text: String,
    heartbeats: Vec<RuleSpec>,
}

fn non_empty(s: String) -> Option<PathBuf> {
    (!s.is_empty()).then(|| PathBuf::from(s))
}

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

    /// Takes and validates every field (each is declared once, in the section
    /// function that owns it: what the user wrote, validated), then derives what the
    /// reader needs from them (the pointer lookups, the expanded subscribe messages).
    fn declare(path: &Path, f: &mut Fields) -> Result<Config, ConfigError> {
        let output = Self::output(f)?;
        let Topics {
            topics,
            routing,
            route_ids: ids,
        } = Self::topics(f)?;
        let connection = Self::connection(f, &topics, &routing)?;
        let operations = Self::operations(f)?;
        let KeepAliveFields {
            keep_alive,
            pong_text,
            heartbeats,
        } = Self::keep_alive(f)?;
        let continuity = continuity::declare(f, &topics)?;
        Self::check_cursor(f, &connection, &continuity)?;
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
        let welcome = match f.take(
            "welcome",
            "wait for the venue's welcome before sending `subscribe_message`: `{\"equals\": {pointer: value}}` (or `has`) for a JSON welcome, `{\"text\": \"...\"}` for a plain-text one (neither written nor counted as rejected); `\"timeout\"` seconds (default 10), after which it subscribes anyway",
        ) {
            None => None,
            Some(v) => Some(
                crate::reader::welcome::Welcome::parse(v).map_err(|e| f.err("welcome", e))?,
            ),
        };
        let control_messages = match f.take(
            "control_messages",
            "rules for messages about the subscription (acks, errors, notices) that go to `_control` even when their route key names a topic: `[{\"has\": [pointers], \"equals\": {pointer: value}}]`",
        ) {
            None => Vec::new(),
            Some(v) => crate::message::control::parse(v).map_err(|e| f.err("control_messages", e))?,
        };
        // Derived: every pointer the check looks for, resolved once.
        let route_ids = ids
            .map(RouteIdsSpec::parse)
            .transpose()
            .map_err(|e| f.err("route_ids", e))?;
        let route_by: &[String] = match &routing {
            Routing::ByKey { route_by, .. } => route_by,
            Routing::Single => &[],
        };
        let lookups = Lookups::new(
            route_by,
            &heartbeats,
            route_ids.as_ref(),
            &control_messages,
            &continuity.reconnect_on,
            &topics,
            &continuity.sequence,
            continuity.cursor.as_ref(),
            // Keys are made only where something compares them.
            (continuity.cursor.is_some() || continuity.redundant.is_some())
                .then_some(&continuity.dedupe_by),
        )
        .map_err(|(field, e)| f.err(field, e))?;
        Ok(Config {
            path: path.to_path_buf(),
            connection,
            keep_alive,
            messages: Messages {
                topics,
                routing,
                lookups,
                pong_text: PongText::parse(pong_text),
                welcome,
                binary,
            },
            output,
            operations,
            continuity,
        })
    }

    /// `{cursor}` and `cursor` come together; a message cannot leave the value out,
    /// so it needs `initial`.
    fn check_cursor(f: &Fields, c: &Connection, k: &Continuity) -> Result<(), ConfigError> {
        let in_url = c.ws_url.url.contains(crate::message::cursor::PLACEHOLDER);
        let in_msg = c.subscribe_messages.iter().any(Template::uses_cursor);
        match &k.cursor {
            None if in_url => Err(f.err("ws_url", "{cursor} needs the `cursor` field")),
            None if in_msg => Err(f.err("subscribe_message", "{cursor} needs the `cursor` field")),
            Some(_) if !in_url && !in_msg => Err(f.err(
                "cursor",
                "no {cursor} in ws_url or subscribe_message to fill in",
            )),
            Some(s) if in_msg && s.initial.is_none() => Err(f.err(
                "cursor",
                "{cursor} in subscribe_message needs \"initial\" (a message cannot leave the value out)",
            )),
            _ => Ok(()),
        }
    }

    /// The output section.
    fn output(f: &mut Fields) -> Result<Output, ConfigError> {
        let output_dir = f.string(
            "output_dir",
            "./output",
            "the directory the hourly `.jsonl` files are written to (created if missing; a relative path starts from the working directory)",
        )?;
        if output_dir.is_empty() {
            return Err(f.err("output_dir", "must not be empty"));
        }
        let buffer_size = f.uint(
            "buffer_size",
            10_000,
            1..=MAX_BUFFER_SIZE,
            "how many messages may wait between the reader and the writer; when that many wait, `on_full` decides",
        )? as usize;
        let on_full = f.choice(
            "on_full",
            OnFull::Block,
            &[("block", OnFull::Block), ("drop", OnFull::Drop)],
            "what the reader does when `buffer_size` messages wait: `block` (stop reading; TCP pushes back on the server; nothing dropped) or `drop` (drop and count, the Go streamer's behaviour)",
        )?;
        let line_format = f.choice(
            "line_format",
            LineFormat::Raw,
            &[
                ("raw", LineFormat::Raw),
                ("timestamped", LineFormat::Timestamped),
            ],
            "how each line is written: `raw` (the message as received) or `timestamped` (`{\"recv_ns\":…,\"msg\":…}`)",
        )?;
        let coverage_journal = f.bool(
            "coverage_journal",
            false,
            "append one line per connection session to `<output_dir>/coverage.jsonl`, from which `wsrec gaps` tells where the record has holes",
        )?;
        Ok(Output {
            output_dir: PathBuf::from(output_dir),
            buffer_size,
            on_full,
            line_format,
            coverage_journal,
        })
    }

    /// The topics and how messages are routed to their files.
    fn topics(f: &mut Fields) -> Result<Topics, ConfigError> {
        let topic = f.take("topic", "the one topic to record: it replaces `{topic}` in `subscribe_message` and starts every file name");
        let topics = f.take(
            "topics",
            "several topics on one connection, instead of `topic`: each topic gets its own files, and `route_by` says which message belongs to which",
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
            "with `topics`: JSON pointers to the values in each message that name its topic, joined by `route_separator`",
        );
        let separator = f.string(
            "route_separator",
            ".",
            "joins the `route_by` values into the route key (pick a text that never occurs in the values)",
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
                Routing::ByKey {
                    route_by,
                    separator,
                }
            }
        };
        Ok(Topics {
            topics,
            routing,
            route_ids: ids,
        })
    }

    /// The connection section: endpoint, subscribe messages for `topics`, reconnects.
    fn connection(
        f: &mut Fields,
        topics: &[String],
        routing: &Routing,
    ) -> Result<Connection, ConfigError> {
        let url = f.string(
            "ws_url",
            "wss://stream.bybit.com/v5/public/linear",
            "the WebSocket URL to record from, `ws://` or `wss://`",
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
            "seconds `ws_url_command` may run; a command still running then is killed and the connect counts as failed",
        )?;
        let ws_url_command = (!command.is_empty()).then(|| UrlCommand {
            command,
            timeout: secs(command_timeout),
        });
        let handshake_headers = match f.take(
            "handshake_headers",
            "extra HTTP headers (name to value) sent with the WebSocket upgrade request",
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
            .flat_map(|t| subscribe::expand(t, topics, per_message, sep))
            .map(|m| Template::parse(&m, false))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| f.err("subscribe_message", e))?;
        let subscribe_interval = f.seconds(
            "subscribe_interval",
            0.0,
            0.0..=60.0,
            "seconds between subscribe messages (for venues that limit their rate)",
        )?;
        let initial = f.seconds(
            "reconnect_initial_delay",
            1.0,
            0.01..=86_400.0,
            "seconds to wait before the first reconnect; each failed attempt doubles it, with jitter, up to `reconnect_max_delay`",
        )?;
        let max = f.seconds(
            "reconnect_max_delay",
            60.0,
            0.01..=86_400.0,
            "the longest wait between reconnects, in seconds",
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
        Ok(Connection {
            ws_url,
            ws_url_command,
            handshake_headers,
            subscribe_messages,
            subscribe_interval: secs(subscribe_interval),
            reconnect_initial_delay: secs(initial),
            reconnect_max_delay: secs(max),
            max_message_bytes,
        })
    }

    /// The keep-alive section, with the pong and heartbeat mechanisms' fields.
    fn keep_alive(f: &mut Fields) -> Result<KeepAliveFields, ConfigError> {
        let ping_interval = f.seconds(
            "ping_interval",
            20.0,
            0.01..=86_400.0,
            "seconds between the keep-alive pings wsrec sends",
        )?;
        let ping_message = f.string(
            "ping_message",
            r#"{"op":"ping"}"#,
            "the text wsrec sends as its keep-alive; `\"\"` = a WebSocket protocol ping instead",
        )?;
        let ping = if ping_message.is_empty() {
            Ping::Protocol
        } else {
            Ping::Text(Template::parse(&ping_message, false).map_err(|e| f.err("ping_message", e))?)
        };
        let pong_text = f.string(
            "pong_text",
            "",
            "the venue's answer to a text ping when it is not JSON (for example `pong`): such a frame counts as traffic but is neither written nor counted as rejected",
        )?;
        let heartbeats = match f.take(
            "heartbeat_replies",
            "rules that answer the pings and heartbeats the server sends: `{\"has\": [pointers], \"equals\": {pointer: value}, \"reply\": template}`",
        ) {
            None => Vec::new(),
            Some(v) => RuleSpec::parse_all(v).map_err(|e| f.err("heartbeat_replies", e))?,
        };
        let stale_timeout = f.seconds(
            "stale_timeout",
            60.0,
            0.05..=86_400.0,
            "reconnect when nothing at all (data, pong, anything) arrived for this long; `--status` then reports unhealthy",
        )?;
        Ok(KeepAliveFields {
            keep_alive: KeepAlive {
                ping_interval: secs(ping_interval),
                ping,
                stale_timeout: secs(stale_timeout),
            },
            pong_text,
            heartbeats,
        })
    }

    /// The operations section.
    fn operations(f: &mut Fields) -> Result<Operations, ConfigError> {
        let status_interval = f.seconds(
            "status_interval",
            30.0,
            0.0..=86_400.0,
            "seconds between status lines in the log and rewrites of `metrics_file`; `0` = neither",
        )?;
        let log_file = f.string(
            "log_file",
            "system.log",
            "where the log goes (appended to; logrotate's `copytruncate` is safe); `\"\"` = no log file",
        )?;
        let log_to_stdout = f.bool("log_to_stdout", false, "also write the log to stdout")?;
        let status_socket = f.string(
            "status_socket",
            "/tmp/streamer.sock",
            "the Unix socket `--status` asks (mode 0660: the user and group wsrec runs as); `\"\"` = no socket",
        )?;
        if status_socket.len() > MAX_SOCKET_PATH {
            return Err(f.err(
                "status_socket",
                "path is too long for a Unix socket (100 bytes at most)",
            ));
        }
        let metrics_file = f.string(
            "metrics_file",
            "",
            "a Prometheus text file rewritten every `status_interval`, for node_exporter's textfile collector; `\"\"` = none",
        )?;
        Ok(Operations {
            status_interval: (status_interval > 0.0).then(|| secs(status_interval)),
            log_file: non_empty(log_file),
            log_to_stdout,
            status_socket: non_empty(status_socket),
            metrics_file: non_empty(metrics_file),
        })
    }
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
    fn defaults_match_the_go_streamer() {
        let c = load("{}").unwrap();
        assert_eq!(c.messages.topics, ["publicTrade.BTCUSDT"]);
        assert_eq!(c.messages.routing, Routing::Single);
        assert_eq!(c.output.buffer_size, 10_000);
        let subs: Vec<String> = c
            .connection
            .subscribe_messages
            .iter()
            .map(|t| t.render(&mut 0, None, |_| None))
            .collect();
        assert_eq!(
            subs,
            [r#"{"op":"subscribe","args":["publicTrade.BTCUSDT"]}"#]
        );
        assert_eq!(c.connection.ws_url.port, 443);
        assert_eq!(
            c.operations.status_socket.as_deref(),
            Some(Path::new("/tmp/streamer.sock"))
        );
        assert_eq!(c.output.on_full, OnFull::Block);
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

    /// docs/configuration.md has a row for every field, with the meaning declared
    /// here: the declaration is the one definition, the doc row its copy.
    #[test]
    fn configuration_doc_documents_every_field() {
        let doc = include_str!("../../docs/configuration.md");
        let path = Path::new("c.json");
        let mut f = Fields::new(path, Map::new());
        Config::declare(path, &mut f).unwrap();
        assert!(f.declared.len() >= 20, "{:?}", f.declared);
        for d in &f.declared {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", d.name)))
                .unwrap_or_else(|| panic!("docs/configuration.md has no row for `{}`", d.name));
            assert!(
                row.contains(d.meaning),
                "docs/configuration.md row for `{}` does not say what the code declares:\n  doc:  {row}\n  code: {}",
                d.name,
                d.meaning
            );
        }
    }
}
