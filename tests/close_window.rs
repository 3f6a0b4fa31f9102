//! The close window: after SIGTERM the recorder sends a close frame and keeps reading
//! briefly, so that what the server sent before it saw the close is not lost. A binary
//! frame (HTX, OKX: gzip) that arrives then is decoded and recorded exactly as a text
//! frame is.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::common::*;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use tungstenite::{Message, WebSocket};

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// A server's unmasked, final frame of `opcode` (1 text, 2 binary) with `payload`.
fn raw_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= 0xffff => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// Sends messages 1..=5 (binary gzip frames when `binary`, else text), waits for the
/// recorder's close frame, and only then sends message 6 the same way before it
/// answers the close: message 6 arrives in the close window every time.
fn serve(binary: bool) -> Server {
    Server::start(move |_, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        let frame = |i: u64| {
            if binary {
                Message::binary(gzip(msg(i).as_bytes()))
            } else {
                Message::text(msg(i))
            }
        };
        for i in 1..=5 {
            ws.send(frame(i)).unwrap();
        }
        std::thread::spawn(move || after_close(ws, binary));
    })
}

fn after_close(mut ws: WebSocket<TcpStream>, binary: bool) {
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => break,
            Ok(_) => {}
            Err(_) => return,
        }
    }
    // tungstenite sends nothing after a peer's close: the frame goes out raw, ahead of
    // the close reply that tungstenite has queued.
    let last = if binary {
        raw_frame(2, &gzip(msg(6).as_bytes()))
    } else {
        raw_frame(1, msg(6).as_bytes())
    };
    let _ = ws.get_mut().write_all(&last);
    let _ = ws.flush();
    while ws.read().is_ok() {}
}

fn message_in_the_close_window_is_recorded(binary: bool) {
    let server = serve(binary);
    let s = Setup::new("close-window", &server.url(), json!({}));
    let mut rec = s.start();
    wait_until(Duration::from_secs(20), "5 lines", || s.seqs().len() == 5);
    rec.term();
    let st = rec.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(st.code(), Some(0), "{}", rec.stderr_text());
    assert_eq!(s.seqs(), [1, 2, 3, 4, 5, 6], "{}", s.log_text());
    let expected: Vec<String> = (1..=6).map(msg).collect();
    assert_eq!(s.lines("t"), expected, "recorded verbatim");
}

/// The HTX-like case: gzip binary frames.
#[test]
fn binary_frame_in_the_close_window_is_recorded() {
    message_in_the_close_window_is_recorded(true);
}

/// The same replay in text frames, the reference the binary case must match.
#[test]
fn text_frame_in_the_close_window_is_recorded() {
    message_in_the_close_window_is_recorded(false);
}
