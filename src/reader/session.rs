//! One connection's read loop: reads frames into the line sink, keeps the connection
//! alive, notices a stale stream, and paces its reads.
//!
//! Reading is coalesced: after the socket is drained, the loop sleeps for as long as
//! the incoming rate lets it without the socket buffer filling (at most
//! [`MAX_COALESCE`]), then reads everything that arrived in one burst and hands it to the
//! writer as one batch. A busy stream is read back to back; a slow one costs about
//! 1/[`MAX_COALESCE`] wake-ups a second instead of one per message; an idle one blocks.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Error as WsError, Message};

use super::connect::{Ws, tcp_of};
use super::handover::{Admit, Gate, Poll};
use super::lines::LineSink;
use super::plan;
use super::stall::Stall;
use crate::batch::Shipped;
use crate::clock::unix_ms;
use crate::config::{Config, Ping};
use crate::journal::coverage::{Coverage, Span};
use crate::message::Frame;
use crate::shutdown::Shutdown;
use crate::status::{Count, Stats};

/// Longest sleep between reads of a busy socket (bounds the added latency). Each
/// sleep is two wake-ups (the reader, then the writer with the batch): 30 ms keeps a
/// 5,000 msg/s stream under 100 a second with every thread counted (10 ms: 238).
const MAX_COALESCE: Duration = Duration::from_millis(30);
/// Bytes the reader lets pile up in the socket buffer before it reads them.
const COALESCE_TARGET_BYTES: f64 = 64.0 * 1024.0;
/// Shortest sleep worth a system call.
const MIN_COALESCE: Duration = Duration::from_micros(50);
/// Longest blocking read while idle, so that shutdown is noticed promptly.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long a shutdown waits for the server's reply to our close frame.
const CLOSE_WAIT: Duration = Duration::from_millis(300);

/// The planned reconnect a notice starts (out of the per-message path).
#[cold]
fn planned(text: &[u8]) -> End {
    let preview: String = String::from_utf8_lossy(&text[..text.len().min(80)]).into();
    End::Planned(format!("notice {preview}"))
}

/// How a connection ended.
pub(crate) enum End {
    /// Told to stop (or the writer is gone).
    Quit,
    /// The connection failed or ended; reconnect.
    Lost {
        /// Why, in one line.
        reason: String,
        /// What kind of end it was: decides the log level and the back-off.
        cause: Cause,
    },
    /// A close frame with code 1001 ("going away"): reconnect at once, no back-off.
    GoingAway(String),
    /// A notice or the connection's age asks for a planned reconnect; the
    /// connection is still open (make-before-break).
    Planned(String),
    /// The new connection of a handover took over: close this one.
    HandedOver,
    /// The new connection of a handover failed: this one records on.
    HandoverFailed,
}

/// What ended a connection that is to be made again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// An error: a failed connect, a reset, a stale stream, a bad frame.
    Failed,
    /// A close frame from the server: logged as information, not as an error.
    ServerClosed,
    /// A message over max_message_bytes: it will come again, so the back-off must
    /// grow even though data arrived.
    Oversize,
}

impl End {
    /// A connection that failed for `reason`.
    pub(crate) fn failed(reason: impl Into<String>) -> End {
        End::Lost {
            reason: reason.into(),
            cause: Cause::Failed,
        }
    }
}

/// How the loop waits for the next frame.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Non-blocking reads; the loop sleeps between bursts.
    Coalescing,
    /// A blocking read with a timeout (idle stream); back to non-blocking after it.
    Blocking,
}

/// The state of one connection's read loop.
pub(crate) struct Session<'s, 'a> {
    cfg: &'a Config,
    stats: &'a Stats,
    shutdown: &'a Shutdown,
    ws: Ws,
    /// A second handle on the socket, to switch between draining and waiting.
    sock: TcpStream,
    lines: &'s mut LineSink<'a>,
    span: &'s mut Span,
    coverage: Option<&'s mut Coverage>,
    wait: Wait,
    /// When a frame last arrived (as of the last drain), for the stale check.
    last_rx: Instant,
    /// When the socket was last drained: the bytes read since, over the time since,
    /// is the incoming rate (the sleep in between included).
    last_drain: Instant,
    next_ping: Instant,
    /// Payload bytes read since the last drain.
    bytes: usize,
    /// A frame of any kind arrived since the last drain.
    got_frame: bool,
    /// A message was accepted since the last drain.
    got_msg: bool,
    /// Reading paused on a full channel since the last drain: not a sign of staleness.
    paused: bool,
    /// `data_timeout`'s timer.
    stall: Option<Stall>,
    /// Whether this connection may start a planned reconnect (not during or after a
    /// handover's overlap on it).
    plans: bool,
    /// When `max_connection_age` renews this connection (or a deferred plan of a
    /// redundant line comes back), and why.
    renew_at: Option<Instant>,
    renew_why: &'static str,
    /// During a handover: the overlap's filter (old connection) or the duplicate
    /// tail (new connection). `None` on the common path.
    gate: Option<Gate>,
}

impl<'s, 'a> Session<'s, 'a> {
    /// A read loop on a freshly connected and subscribed `ws`.
    pub(crate) fn new(
        cfg: &'a Config,
        stats: &'a Stats,
        shutdown: &'a Shutdown,
        ws: Ws,
        lines: &'s mut LineSink<'a>,
        span: &'s mut Span,
        coverage: Option<&'s mut Coverage>,
    ) -> Result<Self, End> {
        let sock = tcp_of(&ws)
            .try_clone()
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| End::failed(format!("socket: {e}")))?;
        let now = Instant::now();
        let c = &cfg.continuity;
        let renew_at = c
            .max_connection_age
            .map(|a| now + a.delay(crate::clock::now(), plan::random_fraction()));
        let stall = c.data_timeout.map(|d| Stall::new(d, lines.topic_lines()));
        Ok(Session {
            cfg,
            stats,
            shutdown,
            ws,
            sock,
            lines,
            span,
            coverage,
            wait: Wait::Coalescing,
            last_rx: now,
            last_drain: now,
            next_ping: now + cfg.keep_alive.ping_interval,
            bytes: 0,
            got_frame: false,
            got_msg: false,
            paused: false,
            stall,
            plans: c.plans(),
            renew_at,
            renew_why: "max_connection_age",
            gate: None,
        })
    }

    /// Puts a handover's filter in front of the line sink (`None`: takes it away);
    /// a connection in a handover plans no other.
    pub(crate) fn set_gate(&mut self, gate: Option<Gate>) {
        if matches!(gate, Some(ref g) if g.is_old()) {
            self.plans = false;
        }
        self.end_gate();
        self.gate = gate;
    }

    /// Writes the journal's handover line of a finished duplicate tail.
    pub(crate) fn end_gate(&mut self) {
        if let Some(record) = self.gate.take().and_then(Gate::into_record) {
            if let Some(c) = self.coverage.as_deref_mut() {
                c.handover(&record);
            }
        }
    }

    /// This connection's session in the journal.
    pub(crate) fn span(&self) -> &Span {
        self.span
    }

    /// No more planned reconnects on this connection (its handover failed).
    pub(crate) fn no_more_plans(&mut self) {
        self.plans = false;
    }

    /// Ends this connection after a handover: a close frame, no waiting (what it
    /// still sends, the new connection delivers).
    pub(crate) fn close_handed_over(&mut self) {
        self.close_now("handover");
    }

    /// Ships the batch and sends a close frame with `reason`, without waiting.
    pub(crate) fn close_now(&mut self, reason: &str) {
        self.lines.ship();
        let _ = self.ws.close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: reason.into(),
        }));
        let _ = self.ws.flush();
    }

    /// A planned reconnect that cannot happen now: it comes back after `d`.
    pub(crate) fn defer_plan(&mut self, d: Duration) {
        self.renew_at = Some(Instant::now() + d);
        self.renew_why = "a planned reconnect that waited for the other line";
    }

    /// Reads until the connection ends or the process is told to stop.
    pub(crate) fn run(&mut self) -> End {
        loop {
            let res = self.ws.read();
            if self.wait == Wait::Blocking {
                let _ = self.sock.set_nonblocking(true);
                self.wait = Wait::Coalescing;
            }
            let step = match res {
                Ok(msg) => self.on_message(msg),
                Err(WsError::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    self.drained().map(|()| self.pause())
                }
                Err(e) => {
                    self.lines.ship();
                    Err(self.read_error(e))
                }
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    fn on_message(&mut self, msg: Message) -> Result<(), End> {
        self.got_frame = true;
        match msg {
            Message::Text(_) | Message::Binary(_) => {
                if let Some(g) = self.gate.as_mut() {
                    match g.admit_message(&msg, self.stats) {
                        Admit::Write => {}
                        Admit::Skip => return Ok(()),
                        Admit::Stop => return Err(End::HandedOver),
                    }
                }
                if self.data(&msg) {
                    self.got_msg = true;
                    self.send_reply()?;
                    if self.lines.take_notice() && self.plans {
                        return Err(planned(msg_bytes(&msg)));
                    }
                }
                if self.lines.full() {
                    self.ship()?;
                    if self.shutdown.requested() {
                        return Err(self.close());
                    }
                }
            }
            Message::Close(frame) => {
                self.lines.ship();
                let going_away = frame.as_ref().is_some_and(|f| f.code == CloseCode::Away);
                let reason = match frame {
                    Some(f) => format!(
                        "server closed the connection (code {}, \"{}\")",
                        u16::from(f.code),
                        f.reason
                    ),
                    None => "server closed the connection".to_string(),
                };
                // Let tungstenite send the close reply; failures here do not matter.
                let _ = self.ws.flush();
                if going_away {
                    return Err(End::GoingAway(reason));
                }
                return Err(End::Lost {
                    reason,
                    cause: Cause::ServerClosed,
                });
            }
            // Ping (tungstenite queues the pong), pong, raw frame: traffic, nothing else.
            _ => {}
        }
        Ok(())
    }

    /// The one data path of text and binary frames, in the read loop and in the close
    /// window alike: counts the bytes, lets the message mechanisms judge the frame and
    /// appends its line. True if a message was accepted.
    #[inline]
    fn data(&mut self, msg: &Message) -> bool {
        let frame = match msg {
            Message::Text(t) => {
                self.bytes += t.len();
                Frame::Text(t.as_bytes())
            }
            Message::Binary(b) => {
                self.bytes += b.len();
                Frame::Binary(b)
            }
            _ => return false,
        };
        let accepted = self.lines.accept(frame);
        if accepted {
            self.span.message();
        }
        accepted
    }

    /// Sends the reply to a heartbeat at once: venues drop a client that answers late.
    /// The socket does not block; what it does not take now goes out at the next
    /// drain.
    fn send_reply(&mut self) -> Result<(), End> {
        if let Some(reply) = self.lines.take_reply() {
            match self.ws.send(Message::text(reply)) {
                Ok(()) => {}
                Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(End::failed(format!("sending a heartbeat reply: {e}"))),
            }
        }
        Ok(())
    }

    fn ship(&mut self) -> Result<(), End> {
        match self.lines.ship() {
            Shipped::Sent => Ok(()),
            Shipped::Paused => {
                self.paused = true;
                Ok(())
            }
            Shipped::Gone => Err(End::Quit),
        }
    }

    /// The socket is drained: hand over the burst, then do the timers.
    fn drained(&mut self) -> Result<(), End> {
        self.ship()?;
        let now = Instant::now();
        let paused = self.paused;
        if self.got_frame || self.paused {
            self.last_rx = now;
            self.got_frame = false;
            self.paused = false;
            let ms = unix_ms();
            self.stats.received_at(ms, self.got_msg);
            if self.got_msg {
                self.got_msg = false;
                self.span.seen_until(ms);
            }
        }
        if self.shutdown.requested() {
            return Err(self.close());
        }
        let silent = now.duration_since(self.last_rx);
        if silent >= self.cfg.keep_alive.stale_timeout {
            return Err(End::failed(format!(
                "stale: nothing received for {:.1}s",
                silent.as_secs_f64()
            )));
        }
        if let Some(st) = self.stall.as_mut() {
            // Not while this connection is being replaced: its data may stop then.
            if !self.gate.as_ref().is_some_and(Gate::is_old) {
                if let Err(why) = st.check(now, self.lines.topic_lines(), paused, self.stats) {
                    self.stats.add(Count::DataTimeouts, 1);
                    self.span.data_until(st.last_ms());
                    return Err(End::failed(why));
                }
            }
        }
        if let Some(g) = self.gate.as_mut() {
            match g.poll(now) {
                Poll::Go => {}
                Poll::Stop => return Err(End::HandedOver),
                Poll::Failed => {
                    self.gate = None;
                    return Err(End::HandoverFailed);
                }
                Poll::Done => self.end_gate(),
            }
        }
        if self.plans && self.renew_at.is_some_and(|t| now >= t) {
            self.renew_at = None;
            return Err(End::Planned(self.renew_why.into()));
        }
        self.lines.flush_breaks(self.coverage.as_deref_mut());
        self.lines.tick(now);
        if let Some(c) = self.coverage.as_deref_mut() {
            c.tick(self.span, now);
        }
        if now >= self.next_ping {
            let ping = match &self.cfg.keep_alive.ping {
                Ping::Text(t) => Message::text(self.lines.render(t)),
                Ping::Protocol => Message::Ping(Default::default()),
            };
            self.ws
                .write(ping)
                .map_err(|e| End::failed(format!("sending ping: {e}")))?;
            self.next_ping = now + self.cfg.keep_alive.ping_interval;
        }
        match self.ws.flush() {
            Ok(()) => Ok(()),
            Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(End::failed(format!("write: {e}"))),
        }
    }

    /// Waits for more: sleeps in proportion to the incoming rate, or blocks while idle.
    fn pause(&mut self) {
        let now = Instant::now();
        let until_timer = self
            .next_ping
            .min(self.last_rx + self.cfg.keep_alive.stale_timeout)
            .saturating_duration_since(now);
        let elapsed = now.duration_since(self.last_drain).as_secs_f64().max(1e-6);
        self.last_drain = now;
        let bytes = std::mem::take(&mut self.bytes);
        if bytes == 0 {
            let t = until_timer.clamp(Duration::from_millis(1), IDLE_POLL);
            if self.sock.set_nonblocking(false).is_ok()
                && self.sock.set_read_timeout(Some(t)).is_ok()
            {
                self.wait = Wait::Blocking;
            }
        } else {
            let rate = bytes as f64 / elapsed;
            let d = Duration::from_secs_f64(COALESCE_TARGET_BYTES / rate)
                .clamp(MIN_COALESCE, MAX_COALESCE)
                .min(until_timer);
            std::thread::sleep(d);
        }
    }

    fn read_error(&mut self, e: WsError) -> End {
        if let WsError::Capacity(c) = &e {
            self.lines.reject(Count::RejectTooLarge, b"");
            return End::Lost {
                reason: format!(
                    "{c}: a message is larger than max_message_bytes ({} bytes); raise max_message_bytes in {} to record it. Reconnecting with a growing delay, since it may come again",
                    self.cfg.connection.max_message_bytes,
                    self.cfg.path.display()
                ),
                cause: Cause::Oversize,
            };
        }
        End::failed(match e {
            WsError::Utf8(_) => {
                self.lines.reject(Count::RejectInvalidUtf8, b"");
                "a text frame was not valid UTF-8; reconnecting".to_string()
            }
            WsError::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => {
                "connection reset without a close frame".to_string()
            }
            WsError::ConnectionClosed | WsError::AlreadyClosed => "connection closed".to_string(),
            e => format!("read: {e}"),
        })
    }

    /// Sends a close frame and keeps reading briefly so that nothing already sent to
    /// us is lost and the server sees a clean close.
    fn close(&mut self) -> End {
        let _ = self.ws.close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "shutdown".into(),
        }));
        // Not past the shutdown's deadline: lines read after it could not be written.
        let mut deadline = Instant::now() + CLOSE_WAIT;
        if let Some(end) = self.shutdown.deadline() {
            deadline = deadline.min(end);
        }
        while Instant::now() < deadline {
            match self.ws.read() {
                // Recorded as in the read loop; no heartbeat reply: we are leaving.
                Ok(msg) => {
                    self.data(&msg);
                    let _ = self.lines.take_reply();
                }
                Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => break,
            }
        }
        self.lines.ship();
        End::Quit
    }
}

/// The payload of a text or binary message.
fn msg_bytes(msg: &Message) -> &[u8] {
    match msg {
        Message::Text(t) => t.as_bytes(),
        Message::Binary(b) => b,
        _ => b"",
    }
}
