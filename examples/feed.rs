//! A local stand-in for an exchange's trade stream, for the README's quick start and
//! for trying the recorder offline.
//!
//! `cargo run --example feed -- [PORT] [MSGS_PER_SEC]` listens on 127.0.0.1:PORT
//! (default 9001) and, for every client, answers the Bybit-style subscribe message with
//! an ack, then sends `publicTrade.<SYMBOL>` messages at the given rate (default 20/s)
//! and answers `{"op":"ping"}` with a pong.

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tungstenite::Message;

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map_or(9001, |a| a.parse().expect("PORT"));
    let rate: f64 = args
        .next()
        .map_or(20.0, |a| a.parse().expect("MSGS_PER_SEC"));
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    eprintln!("feed: ws://127.0.0.1:{port}/ at {rate} msg/s");
    for stream in listener.incoming().flatten() {
        thread::spawn(move || {
            let Ok(mut ws) = tungstenite::accept(stream) else {
                return;
            };
            let _ = ws
                .get_ref()
                .set_read_timeout(Some(Duration::from_millis(1)));
            let start = Instant::now();
            let mut topic = String::new();
            let mut seq = 0u64;
            loop {
                match ws.read() {
                    Ok(Message::Text(t)) if t.contains("\"subscribe\"") => {
                        // {"op":"subscribe","args":["publicTrade.BTCUSDT"]}
                        topic = t
                            .split('"')
                            .nth(7)
                            .unwrap_or("publicTrade.BTCUSDT")
                            .to_string();
                        let ack =
                            r#"{"success":true,"ret_msg":"","conn_id":"feed","op":"subscribe"}"#;
                        if ws.send(Message::text(ack)).is_err() {
                            return;
                        }
                    }
                    Ok(Message::Text(t)) if t.contains("\"ping\"") => {
                        let pong =
                            r#"{"success":true,"ret_msg":"pong","conn_id":"feed","op":"ping"}"#;
                        if ws.send(Message::text(pong)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
                if topic.is_empty() {
                    continue;
                }
                let due = (start.elapsed().as_secs_f64() * rate) as u64;
                while seq < due {
                    seq += 1;
                    let ms = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .as_millis();
                    let side = if seq % 2 == 0 { "Buy" } else { "Sell" };
                    let m = format!(
                        r#"{{"topic":"{topic}","type":"snapshot","ts":{ms},"data":[{{"T":{ms},"s":"BTCUSDT","S":"{side}","v":"0.001","p":"{}.{}","L":"PlusTick","i":"{seq}","BT":false}}]}}"#,
                        67000 + seq % 50,
                        seq % 10
                    );
                    if ws.write(Message::text(m)).is_err() {
                        return;
                    }
                }
                if ws.flush().is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(10));
            }
        });
    }
}
