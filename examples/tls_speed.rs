//! Times TLS client work with the OpenSSL this build links, to compare builds of the
//! vendored OpenSSL (for example its C code at -O2 against -Os): N full handshakes
//! (a new connection each, certificate verification included, no resumption) and
//! one bulk download, from a local server that answers `GET /FILE` with the file
//! (`openssl s_server -WWW`, the system's OpenSSL, the same for every build compared).
//!
//! ```sh
//! openssl s_server -accept 4433 -cert cert.pem -key key.pem -WWW -num_tickets 0 -no_cache &
//! cargo run --release --example tls_speed -- 4433 ca.pem FILE 200
//! ```
//!
//! Prints one line: milliseconds per handshake and bulk MB/s.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port, ca, file, n] = &args[..] else {
        eprintln!("usage: tls_speed PORT CA_PEM FILE HANDSHAKES");
        std::process::exit(2);
    };
    let port: u16 = port.parse().expect("PORT is a number");
    let n: u32 = n.parse().expect("HANDSHAKES is a number");
    let ca = std::fs::read(ca).expect("CA_PEM is readable");
    let connector = native_tls::TlsConnector::builder()
        .add_root_certificate(native_tls::Certificate::from_pem(&ca).expect("CA_PEM is a PEM"))
        .build()
        .expect("TLS connector");
    let connect = || {
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        tcp.set_nodelay(true).unwrap();
        connector.connect("localhost", tcp).expect("TLS handshake")
    };

    let t = Instant::now();
    for _ in 0..n {
        let mut s = connect();
        let _ = s.shutdown();
    }
    let per_handshake = t.elapsed().as_secs_f64() * 1000.0 / f64::from(n);

    let mut s = connect();
    write!(s, "GET /{file} HTTP/1.0\r\n\r\n").unwrap();
    let t = Instant::now();
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => total += k as u64,
            // s_server closes without close_notify after the file.
            Err(_) if total > 0 => break,
            Err(e) => panic!("bulk read: {e}"),
        }
    }
    let mbps = total as f64 / t.elapsed().as_secs_f64() / 1e6;
    println!("handshake {per_handshake:.2} ms ({n}); bulk {total} bytes {mbps:.1} MB/s");
}
