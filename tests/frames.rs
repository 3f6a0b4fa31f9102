//! Frames as they arrive: bad frames refused and counted, binary frames decoded (and a
//! decompression bomb refused), a message at the size limit.

use crate::common::*;
use flate2::Compression;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use serde_json::json;
use std::io::Write as _;
use std::net::TcpStream;
use std::time::Duration;
use tungstenite::Message;

/// Writes one raw unmasked server frame.
fn raw_frame(s: &mut TcpStream, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut head = vec![0x80 | opcode];
    let n = payload.len();
    if n < 126 {
        head.push(n as u8);
    } else if n < 65536 {
        head.push(126);
        head.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        head.push(127);
        head.extend_from_slice(&(n as u64).to_be_bytes());
    }
    s.write_all(&head)?;
    s.write_all(payload)
}

#[test]
fn bad_frames_are_refused_counted_and_survived() {
    const PRETTY: &str = "{\n  \"topic\": \"t\",\n  \"pretty\": [1, 2],\n  \"s\": \"a b\\n c\"\n}";
    let server = Server::start(|i, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        let i = i as u64;
        send_range(&mut ws, 2 * i..2 * i + 1);
        let mut tcp = ws.get_ref().try_clone().unwrap();
        let survivable = match i {
            0 => {
                raw_frame(&mut tcp, 1, b"{\"bad\":\"\xff\xfe\"}").unwrap();
                false
            }
            1 => {
                ws.send(Message::binary(vec![1u8, 2, 3])).unwrap();
                true
            }
            2 => {
                ws.send(Message::text("")).unwrap();
                true
            }
            3 => {
                ws.send(Message::text(PRETTY)).unwrap();
                true
            }
            4 => {
                ws.send(Message::text("hello, not json")).unwrap();
                true
            }
            5 => {
                // A 64 MiB text frame, streamed; the client hangs up after the header.
                let header_len = 64u64 << 20;
                let mut head = vec![0x81, 127];
                head.extend_from_slice(&header_len.to_be_bytes());
                let _ = tcp.write_all(&head);
                let chunk = vec![b'a'; 1 << 20];
                for _ in 0..64 {
                    if tcp.write_all(&chunk).is_err() {
                        break;
                    }
                }
                false
            }
            _ => {
                send_range(&mut ws, 100..110);
                hold(ws);
                return;
            }
        };
        if survivable {
            send_range(&mut ws, 2 * i + 1..2 * i + 2);
            let _ = ws.close(None);
        }
        let _ = ws.get_ref().set_read_timeout(Some(Duration::from_secs(5)));
        while ws.read().is_ok() {}
    });
    let s = Setup::new(
        "badframes",
        &server.url(),
        json!({"max_message_bytes": 1 << 20}),
    );
    let rec = s.start();
    wait_until(
        Duration::from_secs(30),
        "the messages after the bad ones",
        || s.seqs().ends_with(&[109]),
    );
    let mut expect = vec![0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12];
    expect.extend(100..110);
    assert_eq!(s.seqs(), expect);
    let lines = s.lines("t");
    let compact = r#"{"topic":"t","pretty":[1,2],"s":"a b\n c"}"#;
    assert_eq!(
        lines.iter().filter(|l| *l == compact).count(),
        1,
        "{lines:?}"
    );
    assert_eq!(
        lines.len(),
        expect.len() + 1,
        "nothing else written: {lines:?}"
    );
    let rss = rec.peak_rss_kib();
    assert!(rss > 0 && rss < 64 * 1024, "peak RSS {rss} KiB");
    let st = s.wait_status();
    let r = &st["rejected"];
    for reason in ["invalid_utf8", "binary", "empty", "not_json", "too_large"] {
        assert_eq!(r[reason], 1, "{reason} in {st}");
    }
    assert!(server.connections() == 7);
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// gzip, zlib, raw deflate and plain JSON in binary frames are decoded and recorded
/// verbatim; undecodable binary is refused and counted; a gzip bomb (1 GiB of white
/// space in about 1 MiB) is refused and counted without taking the memory.
#[test]
fn binary_frames_are_decoded_and_a_bomb_is_refused() {
    let bomb = {
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..1024 {
            e.write_all(&chunk).unwrap();
        }
        e.finish().unwrap()
    };
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    let server = Server::start(move |_, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        let m = |i| msg(i).into_bytes();
        let zlib = {
            let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
            e.write_all(&m(1)).unwrap();
            e.finish().unwrap()
        };
        let deflate = {
            let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
            e.write_all(&m(2)).unwrap();
            e.finish().unwrap()
        };
        for frame in [
            Message::binary(gzip(&m(0))),
            Message::binary(zlib),
            Message::binary(deflate),
            Message::binary(m(3)),
            Message::text(msg(4)),
            Message::binary(vec![0u8, 1, 2, 3, 0xff, 0xfe]),
            Message::binary(bomb.clone()),
            Message::binary(gzip(&m(5))),
        ] {
            ws.send(frame).unwrap();
        }
        hold(ws);
    });
    let s = Setup::new("binary", &server.url(), json!({}));
    let mut rec = s.start();
    wait_until(Duration::from_secs(20), "6 lines", || s.seqs().len() == 6);
    assert_eq!(s.seqs(), [0, 1, 2, 3, 4, 5]);
    let expected: Vec<String> = (0..6).map(msg).collect();
    assert_eq!(s.lines("t"), expected, "decoded text verbatim");
    let st = s.wait_status();
    assert_eq!(st["rejected"]["binary"], 1, "{st}");
    assert_eq!(st["rejected"]["too_large"], 1, "{st}");
    rec.term();
    rec.wait_exit(Duration::from_secs(5)).unwrap();
    let rss = rec.peak_rss_kib();
    assert!(rss < 64 * 1024, "peak RSS {rss} KiB");
}

/// Coinbase's level2 snapshot is bigger than the old 16 MiB limit: with the default
/// (64 MiB) an 18 MiB message is recorded, verbatim, on one connection.
#[test]
fn an_18_mib_snapshot_is_recorded_with_the_default_limit() {
    let big = format!(
        r#"{{"topic":"t","type":"snapshot","seq":0,"bids":[{}]}}"#,
        vec![r#"["67012.12","0.5"]"#; 18 << 20 >> 4].join(",")
    );
    assert!(big.len() > 18 << 20);
    let sent = big.clone();
    let server = Server::start(move |_, stream| {
        let (mut ws, _) = accept_subscribed(stream);
        ws.send(Message::text(sent.clone())).unwrap();
        send_range(&mut ws, 1..3);
        hold(ws);
    });
    let s = Setup::new("snapshot", &server.url(), json!({}));
    let mut rec = s.start();
    // The counter first: reading the file while 18 MiB are being written to it would
    // see a partial line.
    wait_until(Duration::from_secs(60), "3 lines written", || {
        s.status_json()
            .is_some_and(|v| v["lines_written"].as_u64() == Some(3))
    });
    assert_eq!(s.lines("t")[0], big);
    assert_eq!(server.connections(), 1);
    rec.term();
    rec.wait_exit(Duration::from_secs(5)).unwrap();
}
