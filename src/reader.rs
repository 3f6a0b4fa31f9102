//! The reader thread: owns the blocking WebSocket; connects (TCP, TLS, handshake, each
//! with a deadline), subscribes, reads, keeps the connection alive, notices a stale
//! stream, and on any failure logs why, backs off and reconnects, until told to stop.
//!
//! Reading is coalesced: after the socket is drained, the reader sleeps for as long as
//! the incoming rate lets it without the socket buffer filling (at most
//! [`MAX_COALESCE`]), then reads everything that arrived in one burst and hands it to the
//! writer as one batch. A busy stream is read back to back; a slow one costs about
//! 1/[`MAX_COALESCE`] wake-ups a second instead of one per message; an idle one blocks.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, TrySendError};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Error as WsError, HandshakeError, Message, WebSocket};

use crate::backoff::{Backoff, parse_retry_after};
use crate::batch::{Batch, Dest, ReaderSide, shape};
use crate::clock::{self, Periods};
use crate::config::{Config, LineFormat, OnFull, Ping};
use crate::coverage::{Coverage, Session};
use crate::jsonline::{self, Reject};
use crate::ratelimit::RateLimited;
use crate::stats::{RejectReason, Stats, unix_ms};

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

/// Deadline for TCP connect, the TLS handshake and the HTTP upgrade, each.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest sleep between reads of a busy socket (bounds the added latency).
pub const MAX_COALESCE: Duration = Duration::from_millis(10);
/// Bytes the reader lets pile up in the socket buffer before it reads them.
const COALESCE_TARGET_BYTES: f64 = 64.0 * 1024.0;
/// Shortest sleep worth a system call.
const MIN_COALESCE: Duration = Duration::from_micros(50);
/// Longest blocking read while idle, so that shutdown is noticed promptly.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// Batches are sent once they reach this many bytes.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// How long a shutdown waits for the server's reply to our close frame.
const CLOSE_WAIT: Duration = Duration::from_millis(300);
/// How long a shutdown waits for room in a full channel before it gives up.
const SHUTDOWN_SEND_GRACE: Duration = Duration::from_millis(2500);

/// How a session ended.
enum End {
    /// Told to stop.
    Quit,
    /// The connection failed or ended; reconnect.
    Lost {
        reason: String,
        /// A close frame from the server: logged as information, not as an error.
        clean: bool,
        /// At least one message arrived (resets the back-off).
        delivered: bool,
        /// The server asked us to wait this long (429/503 with Retry-After).
        retry_after: Option<Duration>,
    },
}

impl End {
    fn failed(reason: impl Into<String>) -> End {
        End::Lost {
            reason: reason.into(),
            clean: false,
            delivered: false,
            retry_after: None,
        }
    }
}

/// The reader thread's state.
pub struct Reader {
    cfg: Arc<Config>,
    stats: Arc<Stats>,
    side: ReaderSide,
    periods: Periods,
    quit: Arc<AtomicBool>,
    /// Disconnected when the process is told to stop: wakes the back-off sleep at once.
    quit_rx: Receiver<()>,
    per_batch: usize,
    batch: Batch,
    /// Topic name -> index, for routing in multi-topic mode.
    topic_index: HashMap<Vec<u8>, u32>,
    /// Payload bytes read since the last wake-up (the rate estimate).
    bytes_since_wake: usize,
    /// The reader sat blocked on a full channel: not a sign of a stale stream.
    was_paused: bool,
    coverage: Option<Coverage>,
    warn_reject: RateLimited,
    warn_full: RateLimited,
}

impl Reader {
    /// A reader for `cfg` feeding `side`.
    pub fn new(
        cfg: Arc<Config>,
        stats: Arc<Stats>,
        side: ReaderSide,
        periods: Periods,
        quit: Arc<AtomicBool>,
        quit_rx: Receiver<()>,
    ) -> Reader {
        let (per_batch, _) = shape(cfg.buffer_size);
        let topic_index = cfg
            .topics
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_bytes().to_vec(), i as u32))
            .collect();
        // Coverage checkpoints: a minute with real hours (a sixtieth of the period).
        let checkpoint_every = (periods.len() / 60).max(Duration::from_millis(500));
        let coverage = cfg
            .coverage_journal
            .then(|| Coverage::new(&cfg.output_dir, checkpoint_every));
        Reader {
            cfg,
            stats,
            side,
            periods,
            quit,
            quit_rx,
            per_batch,
            batch: Batch::default(),
            topic_index,
            bytes_since_wake: 0,
            was_paused: false,
            coverage,
            warn_reject: RateLimited::new(Duration::from_secs(10)),
            warn_full: RateLimited::new(Duration::from_secs(10)),
        }
    }

    /// Connects, reads and reconnects until told to stop; then hangs up the channel.
    pub fn run(mut self) {
        let mut backoff = Backoff::new(
            self.cfg.reconnect_initial_delay,
            self.cfg.reconnect_max_delay,
        );
        while !self.quit.load(Relaxed) {
            let (end, mut session) = self.session();
            let (reason, clean, delivered, retry_after) = match end {
                End::Quit => {
                    if let Some(s) = session.as_mut() {
                        s.close("shutdown");
                    }
                    self.journal(session);
                    break;
                }
                End::Lost {
                    reason,
                    clean,
                    delivered,
                    retry_after,
                } => (reason, clean, delivered, retry_after),
            };
            if let Some(s) = session.as_mut() {
                s.close(&reason);
            }
            self.journal(session);
            let url = &self.cfg.ws_url.url;
            if clean {
                log::info!("{url}: {reason}");
            } else {
                log::warn!("{url}: {reason}");
                self.stats.set_error(format!("{url}: {reason}"));
            }
            if delivered {
                backoff.reset();
            }
            let mut delay = backoff.next_delay();
            if let Some(ra) = retry_after {
                delay = delay.max(ra);
            }
            log::info!("reconnecting in {:.1}s", delay.as_secs_f64());
            if let Err(RecvTimeoutError::Disconnected) = self.quit_rx.recv_timeout(delay) {
                break;
            }
        }
        // Whatever is still in the batch goes out; dropping self hangs up the channel.
        self.ship();
        log::info!("reader: stopped");
    }

    fn journal(&mut self, session: Option<Session>) {
        if let (Some(c), Some(s)) = (self.coverage.as_mut(), session) {
            c.record(&s);
        }
    }

    /// One connection, from connect to its end.
    fn session(&mut self) -> (End, Option<Session>) {
        self.stats.attempts.fetch_add(1, Relaxed);
        let mut ws = match connect(&self.cfg) {
            Ok(ws) => ws,
            Err(end) => return (end, None),
        };
        let mut session = Session::start();
        let n = self.stats.connects.fetch_add(1, Relaxed);
        if n > 0 {
            self.stats.reconnects.fetch_add(1, Relaxed);
        }
        self.stats.connected.store(true, Relaxed);
        log::info!("connected to {}", self.cfg.ws_url.url);
        for sub in &self.cfg.subscribe_messages {
            if let Err(e) = ws.send(Message::text(sub.as_str())) {
                self.stats.connected.store(false, Relaxed);
                return (
                    End::failed(format!("sending the subscribe message: {e}")),
                    Some(session),
                );
            }
        }
        if !self.cfg.subscribe_messages.is_empty() {
            session.subscribed();
            if let Some(c) = self.coverage.as_mut() {
                c.opened(&session);
            }
            log::info!("subscribed: {}", self.cfg.topics.join(", "));
        }
        let end = self.read_loop(&mut ws, &mut session);
        self.stats.connected.store(false, Relaxed);
        (end, Some(session))
    }

    /// Reads until the connection ends or the process is told to stop.
    fn read_loop(&mut self, ws: &mut Ws, session: &mut Session) -> End {
        // A second handle on the socket, to switch between draining and waiting.
        let sock = match tcp_of(ws).try_clone() {
            Ok(s) => s,
            Err(e) => return End::failed(format!("socket: {e}")),
        };
        if let Err(e) = sock.set_nonblocking(true) {
            return End::failed(format!("socket: {e}"));
        }
        let mut blocking = false;
        let mut last_rx = Instant::now();
        let mut got_frame = false;
        let mut got_msg = false;
        // When the socket was last drained: the bytes read since, over the time since,
        // is the incoming rate (the sleep in between included).
        let mut last_drain = Instant::now();
        let mut next_ping = Instant::now() + self.cfg.ping_interval;
        let mut delivered = false;
        self.bytes_since_wake = 0;
        let stale = self.cfg.stale_timeout;
        loop {
            let res = ws.read();
            if blocking {
                let _ = sock.set_nonblocking(true);
                blocking = false;
            }
            match res {
                Ok(Message::Text(t)) => {
                    got_frame = true;
                    if self.accept(t.as_ref()) {
                        got_msg = true;
                        session.message();
                    }
                    if self.batch.lines as usize >= self.per_batch
                        || self.batch.data.len() >= MAX_BATCH_BYTES
                    {
                        if !self.ship() {
                            return End::Quit;
                        }
                        if self.quit.load(Relaxed) {
                            self.close(ws);
                            return End::Quit;
                        }
                    }
                }
                Ok(Message::Binary(b)) => {
                    got_frame = true;
                    self.reject(RejectReason::Binary, &b);
                }
                Ok(Message::Close(frame)) => {
                    self.ship();
                    let why = match frame {
                        Some(f) => format!(
                            "server closed the connection (code {}, \"{}\")",
                            u16::from(f.code),
                            f.reason
                        ),
                        None => "server closed the connection".to_string(),
                    };
                    // Let tungstenite send the close reply; failures here do not matter.
                    let _ = ws.flush();
                    return End::Lost {
                        reason: why,
                        clean: true,
                        delivered: delivered || got_msg,
                        retry_after: None,
                    };
                }
                Ok(_) => got_frame = true, // ping (pong is queued), pong, raw frame
                Err(WsError::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    // Drained: hand over the burst, do the timers, then wait.
                    if !self.ship() {
                        return End::Quit;
                    }
                    let now = Instant::now();
                    if got_frame || self.was_paused {
                        last_rx = now;
                        got_frame = false;
                        self.was_paused = false;
                        let ms = unix_ms();
                        self.stats.last_frame_ms.store(ms, Relaxed);
                        if got_msg {
                            got_msg = false;
                            delivered = true;
                            self.stats.last_message_ms.store(ms, Relaxed);
                            session.seen_until(ms);
                        }
                    }
                    if self.quit.load(Relaxed) {
                        self.close(ws);
                        return End::Quit;
                    }
                    if now.duration_since(last_rx) >= stale {
                        return End::Lost {
                            reason: format!(
                                "stale: nothing received for {:.1}s",
                                now.duration_since(last_rx).as_secs_f64()
                            ),
                            clean: false,
                            delivered,
                            retry_after: None,
                        };
                    }
                    if let Some(c) = self.coverage.as_mut() {
                        c.tick(session, now);
                    }
                    if now >= next_ping {
                        let ping = match &self.cfg.ping {
                            Ping::Text(t) => Message::text(t.as_str()),
                            Ping::Protocol => Message::Ping(Default::default()),
                        };
                        if let Err(e) = ws.write(ping) {
                            return End::Lost {
                                reason: format!("sending ping: {e}"),
                                clean: false,
                                delivered,
                                retry_after: None,
                            };
                        }
                        next_ping = now + self.cfg.ping_interval;
                    }
                    match ws.flush() {
                        Ok(()) => {}
                        Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => {
                            return End::Lost {
                                reason: format!("write: {e}"),
                                clean: false,
                                delivered,
                                retry_after: None,
                            };
                        }
                    }
                    // Wait: sleep in proportion to the rate, or block while idle.
                    let until_timer = next_ping
                        .min(last_rx + stale)
                        .saturating_duration_since(now);
                    let elapsed = now.duration_since(last_drain).as_secs_f64().max(1e-6);
                    last_drain = now;
                    let bytes = std::mem::take(&mut self.bytes_since_wake);
                    if bytes == 0 {
                        let t = until_timer.clamp(Duration::from_millis(1), IDLE_POLL);
                        if sock.set_nonblocking(false).is_ok()
                            && sock.set_read_timeout(Some(t)).is_ok()
                        {
                            blocking = true;
                        }
                    } else {
                        let rate = bytes as f64 / elapsed;
                        let d = Duration::from_secs_f64(COALESCE_TARGET_BYTES / rate)
                            .clamp(MIN_COALESCE, MAX_COALESCE)
                            .min(until_timer);
                        std::thread::sleep(d);
                    }
                }
                Err(e) => {
                    self.ship();
                    let (reason, retry_after) = self.describe_read_error(e);
                    return End::Lost {
                        reason,
                        clean: false,
                        delivered: delivered || got_msg,
                        retry_after,
                    };
                }
            }
        }
    }

    fn describe_read_error(&mut self, e: WsError) -> (String, Option<Duration>) {
        let reason = match e {
            WsError::Utf8(_) => {
                self.reject(RejectReason::InvalidUtf8, b"");
                "a text frame was not valid UTF-8; reconnecting".to_string()
            }
            WsError::Capacity(c) => {
                self.reject(RejectReason::TooLarge, b"");
                format!(
                    "{c} (max_message_bytes = {}); reconnecting",
                    self.cfg.max_message_bytes
                )
            }
            WsError::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => {
                "connection reset without a close frame".to_string()
            }
            WsError::ConnectionClosed | WsError::AlreadyClosed => "connection closed".to_string(),
            WsError::Io(e) => format!("read: {e}"),
            e => format!("read: {e}"),
        };
        (reason, None)
    }

    /// Sends a close frame and keeps reading briefly so that nothing already sent to
    /// us is lost and the server sees a clean close.
    fn close(&mut self, ws: &mut Ws) {
        let _ = ws.close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "shutdown".into(),
        }));
        let deadline = Instant::now() + CLOSE_WAIT;
        while Instant::now() < deadline {
            match ws.read() {
                Ok(Message::Text(t)) => {
                    self.accept(t.as_ref());
                }
                Ok(_) => {}
                Err(WsError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => break,
            }
        }
        self.ship();
    }

    fn reject(&mut self, reason: RejectReason, sample: &[u8]) {
        self.stats.reject(reason);
        let preview = String::from_utf8_lossy(&sample[..sample.len().min(60)]);
        self.warn_reject.log(
            log::Level::Warn,
            &format!("refused a frame ({}): {preview:?}", reason.name()),
        );
    }

    /// Checks a text message and appends its line to the batch; false if refused.
    #[inline]
    fn accept(&mut self, msg: &[u8]) -> bool {
        self.bytes_since_wake += msg.len();
        let valid = match jsonline::check(msg) {
            Ok(v) => v,
            Err(Reject::Empty) => {
                self.reject(RejectReason::Empty, msg);
                return false;
            }
            Err(Reject::NotJson) => {
                self.reject(RejectReason::NotJson, msg);
                return false;
            }
        };
        let dest = if self.cfg.multi_topic {
            match valid
                .topic
                .as_ref()
                .and_then(|r| self.topic_index.get(&msg[r.clone()]))
            {
                Some(&i) => Dest::Topic(i),
                None => Dest::Control,
            }
        } else {
            Dest::Topic(0)
        };
        let recv = match self.cfg.line_format {
            LineFormat::Timestamped => Some(clock::now()),
            LineFormat::Raw => None,
        };
        if self.batch.lines == 0 {
            let now = recv.unwrap_or_else(clock::now);
            self.batch.period = self.periods.start_of(now.as_secs());
        } else if let Some(t) = recv {
            // Each line belongs to the period it was received in.
            let p = self.periods.start_of(t.as_secs());
            if p != self.batch.period {
                self.ship();
                self.batch.period = p;
            }
        }
        let data = &mut self.batch.data;
        if let Some(t) = recv {
            data.extend_from_slice(b"{\"recv_ns\":");
            // Formatted straight into the batch: no allocation per line.
            let _ = write!(data, "{}", t.as_nanos());
            data.extend_from_slice(b",\"msg\":");
        }
        if valid.multiline {
            jsonline::compact_into(msg, data);
        } else {
            data.extend_from_slice(msg);
        }
        if recv.is_some() {
            data.push(b'}');
        }
        data.push(b'\n');
        self.batch.end_line(dest);
        true
    }

    /// Hands the batch to the writer. Returns false if the writer is gone or a shutdown
    /// could not wait any longer for room.
    fn ship(&mut self) -> bool {
        if self.batch.lines == 0 {
            return true;
        }
        let (data, segments) = self.side.pool.try_recv().unwrap_or_default();
        let next = Batch::new(0, data, segments);
        let batch = std::mem::replace(&mut self.batch, next);
        let lines = batch.lines as u64;
        self.stats.messages.fetch_add(lines, Relaxed);
        self.stats.queue_depth.fetch_add(lines, Relaxed);
        match self.cfg.on_full {
            OnFull::Block => {
                let mut batch = batch;
                let mut waited: Option<Instant> = None;
                loop {
                    match self.side.tx.send_timeout(batch, Duration::from_millis(100)) {
                        Ok(()) => return true,
                        Err(SendTimeoutError::Timeout(b)) => {
                            batch = b;
                            self.was_paused = true;
                            let since = *waited.get_or_insert_with(Instant::now);
                            self.warn_full.log(
                                log::Level::Warn,
                                "channel to the writer is full: pausing reads (on_full = block)",
                            );
                            if self.quit.load(Relaxed) && since.elapsed() > SHUTDOWN_SEND_GRACE {
                                log::error!(
                                    "shutdown: writer did not take {lines} lines; giving up on them"
                                );
                                self.stats.queue_depth.fetch_sub(lines, Relaxed);
                                return false;
                            }
                        }
                        Err(SendTimeoutError::Disconnected(_)) => {
                            self.stats.queue_depth.fetch_sub(lines, Relaxed);
                            return false;
                        }
                    }
                }
            }
            OnFull::Drop => match self.side.tx.try_send(batch) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    self.stats.queue_depth.fetch_sub(lines, Relaxed);
                    self.stats.dropped.fetch_add(lines, Relaxed);
                    self.warn_full.log(
                        log::Level::Warn,
                        &format!("channel to the writer is full: dropped {lines} messages (on_full = drop)"),
                    );
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            },
        }
    }
}

/// The TCP socket under the (maybe TLS) stream.
fn tcp_of(ws: &Ws) -> &TcpStream {
    match ws.get_ref() {
        MaybeTlsStream::Plain(s) => s,
        MaybeTlsStream::NativeTls(s) => s.get_ref(),
        _ => unreachable!("only plain and native-tls streams are built"),
    }
}

/// TCP connect, TLS handshake and WebSocket upgrade, each with a deadline.
fn connect(cfg: &Config) -> Result<Ws, End> {
    let url = &cfg.ws_url;
    let hostport = format!("{}:{}", url.host, url.port);
    let addrs: Vec<_> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| End::failed(format!("cannot resolve {}: {e}", url.host)))?
        .collect();
    let mut last_err = io::Error::new(ErrorKind::NotFound, "no address");
    let mut tcp = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last_err = e,
        }
    }
    let tcp = tcp.ok_or_else(|| End::failed(format!("connect to {hostport}: {last_err}")))?;
    let setup = |s: &TcpStream| -> io::Result<()> {
        s.set_nodelay(true)?;
        // Timeouts before the TLS handshake are safe here because we run that
        // handshake ourselves and treat WouldBlock as a timeout (tungstenite #450).
        s.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        s.set_write_timeout(Some(CONNECT_TIMEOUT))
    };
    setup(&tcp).map_err(|e| End::failed(format!("socket setup for {hostport}: {e}")))?;

    let stream = if url.tls {
        let connector =
            native_tls::TlsConnector::new().map_err(|e| End::failed(format!("TLS setup: {e}")))?;
        match connector.connect(&url.host, tcp) {
            Ok(s) => MaybeTlsStream::NativeTls(s),
            Err(native_tls::HandshakeError::Failure(e)) => {
                let text = e.to_string();
                // 0A000086 is OpenSSL 3's "certificate verify failed", for builds without
                // error strings (the static build); the verify result follows in words.
                let plain = if text.contains("certificate verify failed")
                    || text.contains("0A000086")
                {
                    format!(
                        "TLS: the certificate of {hostport} is not trusted (is its CA in the system trust store, or in SSL_CERT_FILE?): {text}"
                    )
                } else {
                    format!("TLS handshake with {hostport} failed: {text}")
                };
                return Err(End::failed(plain));
            }
            Err(native_tls::HandshakeError::WouldBlock(_)) => {
                return Err(End::failed(format!(
                    "TLS handshake with {hostport} timed out"
                )));
            }
        }
    } else {
        MaybeTlsStream::Plain(tcp)
    };

    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(cfg.max_message_bytes))
        .max_frame_size(Some(cfg.max_message_bytes))
        .read_buffer_size(64 * 1024)
        .write_buffer_size(0);
    match tungstenite::client::client_with_config(url.url.as_str(), stream, Some(ws_config)) {
        Ok((ws, _)) => Ok(ws),
        Err(HandshakeError::Failure(WsError::Http(resp))) => {
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let mut reason = format!("handshake refused: HTTP {status}");
            if let Some(ra) = retry_after {
                reason.push_str(&format!(" (Retry-After {}s)", ra.as_secs()));
            }
            Err(End::Lost {
                reason,
                clean: false,
                delivered: false,
                retry_after,
            })
        }
        Err(HandshakeError::Failure(e)) => {
            Err(End::failed(format!("handshake with {}: {e}", url.url)))
        }
        Err(HandshakeError::Interrupted(_)) => {
            Err(End::failed(format!("handshake with {} timed out", url.url)))
        }
    }
}
