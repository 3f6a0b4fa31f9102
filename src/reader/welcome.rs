//! Subscribe after a welcome (`welcome`): after connecting, read (and record) until
//! the venue's welcome message arrives, and only then send the subscribe messages.
//! KuCoin documents that a connection is usable only once its
//! `{"id":...,"type":"welcome"}` has arrived; a subscribe sent before it may be lost,
//! and then nothing is recorded while the pings keep the connection looking healthy.
//!
//! The welcome is recognised by the `has`/`equals` pattern of `heartbeat_replies`
//! (a JSON welcome, recorded like any other message: it goes to `_control`), or by
//! its exact `text` (a venue's plain-text greeting, such as Hyperliquid's
//! `Websocket connection established.`): a text welcome is not JSON, so it is not
//! written (every line of every file is JSON) and, being documented, not counted as
//! rejected either, whenever it comes. When no welcome comes within `timeout`, wsrec
//! logs it and subscribes anyway: a venue that stopped greeting should not stop the
//! recording.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::{Error as WsError, Message};

use super::connect::{Ws, tcp_of};
use super::lines::LineSink;
use super::session::{Cause, End};
use crate::journal::coverage::Span;
use crate::message::Frame;
use crate::message::heartbeat::{Pattern, PatternSpec};
use crate::message::jsonline::{Pointers, check_with};
use crate::shutdown::Shutdown;

/// Longest single read while waiting, so that a shutdown is noticed promptly.
const POLL: Duration = Duration::from_millis(100);
/// `timeout` when the config gives none.
const DEFAULT_TIMEOUT: f64 = 10.0;

/// How the welcome is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Greeting {
    /// A JSON message matching the pattern.
    Json(PatternSpec),
    /// A text frame equal to this.
    Text(String),
}

/// `welcome` as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Welcome {
    /// What the welcome looks like.
    pub(crate) greeting: Greeting,
    /// How long to wait for it before subscribing anyway.
    pub(crate) timeout: Duration,
}

impl Welcome {
    /// Parses `welcome`: `{"has": [...], "equals": {...}}` or `{"text": "..."}`, with
    /// an optional `"timeout"` in seconds.
    pub(crate) fn parse(v: Value) -> Result<Welcome, String> {
        let Value::Object(mut m) = v else {
            return Err(
                "expected an object: {\"equals\": {pointer: value}} or {\"text\": \"...\"}".into(),
            );
        };
        let timeout = match m.remove("timeout") {
            None => DEFAULT_TIMEOUT,
            Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            Some(_) => return Err("\"timeout\": expected seconds (a number)".into()),
        };
        if !(0.01..=600.0).contains(&timeout) {
            return Err(format!(
                "\"timeout\": {timeout} seconds is out of range 0.01..=600"
            ));
        }
        let greeting = match m.remove("text") {
            Some(Value::String(t)) if !t.is_empty() => {
                if m.contains_key("has") || m.contains_key("equals") {
                    return Err("give \"text\" or \"has\"/\"equals\", not both".into());
                }
                Greeting::Text(t)
            }
            Some(_) => return Err("\"text\": expected a non-empty string".into()),
            None => Greeting::Json(PatternSpec::take(&mut m)?),
        };
        if let Some(k) = m.keys().next() {
            return Err(format!(
                "unknown key \"{k}\" (known: has, equals, text, timeout)"
            ));
        }
        Ok(Welcome {
            greeting,
            timeout: Duration::from_secs_f64(timeout),
        })
    }

    /// Whether `text` is the (plain-text) welcome: neither written nor rejected.
    #[inline]
    pub(crate) fn is_text(&self, text: &str) -> bool {
        matches!(&self.greeting, Greeting::Text(t) if t == text)
    }

    /// The plain-text welcome, if it is one (the message judge lets it through).
    pub(crate) fn text(&self) -> Option<&[u8]> {
        match &self.greeting {
            Greeting::Text(t) => Some(t.as_bytes()),
            Greeting::Json(_) => None,
        }
    }
}

/// Reads until the welcome arrives (recording what comes before it and with it), or
/// until its timeout; `Err` when the connection ends or a shutdown is asked for.
pub(super) fn wait(
    w: &Welcome,
    ws: &mut Ws,
    lines: &mut LineSink<'_>,
    span: &mut Span,
    shutdown: &Shutdown,
) -> Result<(), End> {
    let mut ptrs = Pointers::default();
    let pattern: Option<Pattern> = match &w.greeting {
        Greeting::Json(p) => Some(
            p.resolve(&mut ptrs)
                .expect("the pointers were checked when the config was loaded"),
        ),
        Greeting::Text(_) => None,
    };
    let mut found = vec![None; ptrs.len()];
    let end = Instant::now() + w.timeout;
    let result = loop {
        if shutdown.requested() {
            break Err(End::Quit);
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            log::warn!(
                "no welcome message within {:.1}s of connecting; subscribing anyway",
                w.timeout.as_secs_f64()
            );
            break Ok(());
        }
        if let Err(e) = tcp_of(ws).set_read_timeout(Some(left.min(POLL))) {
            break Err(End::failed(format!("socket: {e}")));
        }
        match ws.read() {
            Ok(Message::Text(t)) => {
                if w.is_text(&t) {
                    break Ok(());
                }
                let welcomed = pattern.as_ref().is_some_and(|p| {
                    check_with(t.as_bytes(), &ptrs, &mut found).is_ok()
                        && p.matches(t.as_bytes(), &found)
                });
                if lines.accept(Frame::Text(t.as_bytes())) {
                    span.message();
                    if let Some(reply) = lines.take_reply() {
                        if let Err(e) = ws.send(Message::text(reply)) {
                            break Err(End::failed(format!("sending a heartbeat reply: {e}")));
                        }
                    }
                }
                if welcomed {
                    break Ok(());
                }
            }
            Ok(Message::Binary(b)) => {
                if lines.accept(Frame::Binary(&b)) {
                    span.message();
                }
            }
            Ok(Message::Close(_)) => {
                let _ = ws.flush();
                break Err(End::Lost {
                    reason: "server closed the connection before its welcome message".into(),
                    cause: Cause::ServerClosed,
                });
            }
            // Protocol pings: tungstenite queues the pong, flushed below.
            Ok(_) => {}
            Err(WsError::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => break Err(End::failed(format!("waiting for the welcome message: {e}"))),
        }
        match ws.flush() {
            Ok(()) => {}
            Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => break Err(End::failed(format!("write: {e}"))),
        }
    };
    lines.ship();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_json_and_text_welcomes() {
        let w = Welcome::parse(json!({"equals": {"/type": "welcome"}, "timeout": 5})).unwrap();
        assert_eq!(w.timeout, Duration::from_secs(5));
        assert!(
            matches!(&w.greeting, Greeting::Json(p) if p.equals == [("/type".to_string(), "\"welcome\"".to_string())])
        );
        assert!(!w.is_text("welcome"));
        let w = Welcome::parse(json!({"text": "Websocket connection established."})).unwrap();
        assert_eq!(w.timeout, Duration::from_secs(10));
        assert!(w.is_text("Websocket connection established."));
        assert!(!w.is_text("Websocket connection established"));
        for (v, want) in [
            (json!("welcome"), "expected an object"),
            (json!({}), "give \"has\" or \"equals\""),
            (json!({"text": ""}), "non-empty string"),
            (json!({"text": "x", "has": ["/a"]}), "not both"),
            (json!({"has": ["/a"], "timeout": 0}), "out of range"),
            (json!({"has": ["/a"], "timeout": "5"}), "expected seconds"),
            (json!({"has": ["/a"], "wait": 1}), "unknown key \"wait\""),
        ] {
            let e = Welcome::parse(v).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
