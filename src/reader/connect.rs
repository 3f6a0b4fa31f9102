//! Opening a connection: TCP connect, TLS handshake and WebSocket upgrade, each with a
//! deadline. A failure comes back as a [`ConnectError`] that says why in one line and
//! carries the server's Retry-After, if it gave one.

use std::fmt;
use std::io::{self, ErrorKind, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::http::{HeaderName, HeaderValue};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Error as WsError, HandshakeError, WebSocket};

use super::backoff::parse_retry_after;
use crate::config::{Connection, UrlCommand, WsUrl, parse_ws_url};

/// The connection the reader owns.
pub(crate) type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

/// Deadline for TCP connect, the TLS handshake and the HTTP upgrade, each.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// tungstenite's read buffer: one read takes up to this much from the socket.
const READ_BUFFER: usize = 64 * 1024;

/// Why a connection could not be opened.
#[derive(Debug)]
pub(crate) struct ConnectError {
    /// What failed, naming the host or URL.
    pub(crate) reason: String,
    /// The server asked us to wait this long (429/503 with Retry-After).
    pub(crate) retry_after: Option<Duration>,
}

impl ConnectError {
    fn new(reason: impl Into<String>) -> ConnectError {
        ConnectError {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// The TCP socket under the (maybe TLS) stream.
pub(crate) fn tcp_of(ws: &Ws) -> &TcpStream {
    match ws.get_ref() {
        MaybeTlsStream::Plain(s) => s,
        MaybeTlsStream::NativeTls(s) => s.get_ref(),
        _ => unreachable!("only plain and native-tls streams are built"),
    }
}

/// TCP connect, TLS handshake and WebSocket upgrade, each with a deadline; first the
/// URL command, if there is one; else `url` (a redundant line's own
/// URL, `ws_url_b`, and `{cursor}` filled in), or `ws_url`.
pub(crate) fn connect(conn: &Connection, url: Option<&WsUrl>) -> Result<Ws, ConnectError> {
    let fetched;
    let url = match &conn.ws_url_command {
        Some(c) => {
            fetched = url_from_command(c)?;
            &fetched
        }
        None => url.unwrap_or(&conn.ws_url),
    };
    let hostport = format!("{}:{}", url.host, url.port);
    let tcp = tcp(&url.host, url.port)
        .map_err(|e| ConnectError::new(format!("connect to {hostport}: {e}")))?;
    let stream = if url.tls {
        MaybeTlsStream::NativeTls(tls(&url.host, &hostport, tcp)?)
    } else {
        MaybeTlsStream::Plain(tcp)
    };
    upgrade(conn, url, stream)
}

/// Runs the URL command (KuCoin's token, for example) with its timeout; the first line
/// it prints is the URL.
fn url_from_command(c: &UrlCommand) -> Result<WsUrl, ConnectError> {
    let fail = |why: String| ConnectError::new(format!("ws_url_command: {why}"));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&c.command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run sh: {e}")))?;
    let deadline = Instant::now() + c.timeout;
    // The output is a line or two: it fits the pipe, so waiting before reading is safe.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "still running after {:.1}s; killed",
                    c.timeout.as_secs_f64()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(fail(format!("wait: {e}"))),
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if !status.success() {
        let err = err.lines().last().unwrap_or("").trim();
        return Err(fail(format!("{status}: {err}")));
    }
    let line = out.lines().next().unwrap_or("").trim();
    parse_ws_url(line).map_err(|e| fail(format!("printed no usable URL: {e}")))
}

/// The first address of `host` that accepts a connection, set up for the handshakes.
fn tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot resolve {host}: {e}")))?
        .collect();
    let mut last_err = io::Error::new(ErrorKind::NotFound, "no address");
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_nodelay(true)?;
                // Timeouts before the TLS handshake are safe here because we run that
                // handshake ourselves and treat WouldBlock as a timeout (tungstenite #450).
                s.set_read_timeout(Some(CONNECT_TIMEOUT))?;
                s.set_write_timeout(Some(CONNECT_TIMEOUT))?;
                return Ok(s);
            }
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

fn tls(
    host: &str,
    hostport: &str,
    tcp: TcpStream,
) -> Result<native_tls::TlsStream<TcpStream>, ConnectError> {
    let connector = native_tls::TlsConnector::new()
        .map_err(|e| ConnectError::new(format!("TLS setup: {e}")))?;
    match connector.connect(host, tcp) {
        Ok(s) => Ok(s),
        Err(native_tls::HandshakeError::Failure(e)) => {
            let text = e.to_string();
            // 0A000086 is OpenSSL 3's "certificate verify failed", for builds without
            // error strings (the static build); the verify result follows in words.
            Err(ConnectError::new(
                if text.contains("certificate verify failed") || text.contains("0A000086") {
                    format!(
                        "TLS: the certificate of {hostport} is not trusted (is its CA in the system trust store, or in SSL_CERT_FILE?): {text}"
                    )
                } else {
                    format!("TLS handshake with {hostport} failed: {text}")
                },
            ))
        }
        Err(native_tls::HandshakeError::WouldBlock(_)) => Err(ConnectError::new(format!(
            "TLS handshake with {hostport} timed out"
        ))),
    }
}

fn upgrade(
    conn: &Connection,
    url: &WsUrl,
    stream: MaybeTlsStream<TcpStream>,
) -> Result<Ws, ConnectError> {
    let url = &url.url;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ConnectError::new(format!("handshake with {url}: {e}")))?;
    for (k, v) in &conn.handshake_headers {
        // Both were checked when the config was loaded.
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            request.headers_mut().insert(k, v);
        }
    }
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(conn.max_message_bytes))
        .max_frame_size(Some(conn.max_message_bytes))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0);
    match tungstenite::client::client_with_config(request, stream, Some(ws_config)) {
        Ok((ws, _)) => Ok(ws),
        Err(HandshakeError::Failure(WsError::Http(resp))) => {
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let mut reason = format!("handshake refused: HTTP {}", resp.status());
            if let Some(ra) = retry_after {
                reason.push_str(&format!(" (Retry-After {}s)", ra.as_secs()));
            }
            Err(ConnectError {
                reason,
                retry_after,
            })
        }
        Err(HandshakeError::Failure(e)) => {
            Err(ConnectError::new(format!("handshake with {url}: {e}")))
        }
        Err(HandshakeError::Interrupted(_)) => {
            Err(ConnectError::new(format!("handshake with {url} timed out")))
        }
    }
}
