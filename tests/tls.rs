//! wss://: the CA from SSL_CERT_FILE, SSL_CERT_DIR and the system trust store (Debian and
//! Alpine layouts), and a certificate error retried.

use crate::common::*;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslMethod, SslStream};
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};
use serde_json::json;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};
use std::{fs, thread};

fn key() -> PKey<Private> {
    PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap()
}

fn cert(cn: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(
        &BigNum::from_u32(rand_serial())
            .unwrap()
            .to_asn1_integer()
            .unwrap(),
    )
    .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    match issuer {
        None => {
            b.set_issuer_name(&name).unwrap();
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            b.sign(key, MessageDigest::sha256()).unwrap();
        }
        Some((ca, ca_key)) => {
            b.set_issuer_name(ca.subject_name()).unwrap();
            let san = SubjectAlternativeName::new()
                .ip("127.0.0.1")
                .dns("localhost")
                .build(&b.x509v3_context(Some(ca), None))
                .unwrap();
            b.append_extension(san).unwrap();
            b.sign(ca_key, MessageDigest::sha256()).unwrap();
        }
    }
    b.build()
}

fn rand_serial() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// A wss:// server with a fresh CA; returns it and the CA's PEM.
pub fn server(
    on_session: impl Fn(usize, tungstenite::WebSocket<SslStream<TcpStream>>) + Send + Sync + 'static,
) -> (Server, Vec<u8>, Arc<AtomicU64>) {
    let ca_key = key();
    let ca = cert("wsrec test CA", &ca_key, None);
    let srv_key = key();
    let srv = cert("localhost", &srv_key, Some((&ca, &ca_key)));
    let mut acc = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    acc.set_private_key(&srv_key).unwrap();
    acc.set_certificate(&srv).unwrap();
    let acc = Arc::new(acc.build());
    let handshakes = Arc::new(AtomicU64::new(0));
    let h = handshakes.clone();
    let on_session = Arc::new(on_session);
    let server = Server::start(move |i, stream| {
        h.fetch_add(1, SeqCst);
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let Ok(tls) = acc.accept(stream) else { return };
        let Ok(ws) = tungstenite::accept(tls) else {
            return;
        };
        let f = on_session.clone();
        thread::spawn(move || f(i, ws));
    });
    (server, ca.to_pem().unwrap(), handshakes)
}

/// A session handler: reads the subscribe message, sends `n` messages, then
/// keeps reading until the client leaves.
fn feed_tls(n: u64) -> impl Fn(usize, tungstenite::WebSocket<SslStream<TcpStream>>) {
    move |_, mut ws| {
        let _ = read_text(&mut ws);
        send_range(&mut ws, 0..n);
        let _ = ws
            .get_ref()
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(60)));
        while ws.read().is_ok() {}
    }
}

/// Runs the recorder with `env` until it has the feed's 100 lines, then checks
/// that SIGTERM ends it cleanly with every line in order.
fn records_100_lines_then_stops(s: &Setup, env: &[(&str, &str)]) {
    let mut rec = s.start_with(&["--config"], env);
    wait_until(Duration::from_secs(15), "100 lines over TLS", || {
        s.seqs().len() == 100
    });
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(3)).unwrap().code(),
        Some(0)
    );
    assert_eq!(s.seqs(), (0..100).collect::<Vec<_>>());
}

#[test]
fn wss_with_ssl_cert_file_records() {
    let (server, ca_pem, _) = server(feed_tls(100));
    let url = format!("wss://127.0.0.1:{}/", server.addr.port());
    let s = Setup::new("wss", &url, json!({}));
    let ca = s.dir.path().join("ca.pem");
    fs::write(&ca, ca_pem).unwrap();
    records_100_lines_then_stops(&s, &[("SSL_CERT_FILE", ca.to_str().unwrap())]);
}

/// SSL_CERT_DIR: a directory of certificates named by subject hash (`c_rehash`
/// style, as /etc/ssl/certs is on Debian), and no SSL_CERT_FILE.
#[test]
fn wss_with_ssl_cert_dir_records() {
    let (server, ca_pem, _) = server(feed_tls(100));
    let url = format!("wss://127.0.0.1:{}/", server.addr.port());
    let s = Setup::new("wss-dir", &url, json!({}));
    let dir = s.dir.path().join("certs");
    fs::create_dir_all(&dir).unwrap();
    let hash = X509::from_pem(&ca_pem).unwrap().subject_name_hash();
    fs::write(dir.join(format!("{hash:08x}.0")), &ca_pem).unwrap();
    records_100_lines_then_stops(&s, &[("SSL_CERT_DIR", dir.to_str().unwrap())]);
}

/// The system trust store as Debian and Raspberry Pi OS lay it out: the test CA is
/// /etc/ssl/certs/ca-certificates.crt for the recorder alone.
#[test]
fn wss_with_the_system_trust_store_records() {
    system_trust_store_records("/etc/ssl/certs", "ca-certificates.crt");
}

/// The system trust store as Alpine lays it out: /etc/ssl/cert.pem, and no
/// /etc/ssl/certs at all.
#[test]
fn wss_with_the_alpine_trust_store_records() {
    system_trust_store_records("/etc/ssl", "cert.pem");
}

/// Records over TLS with the test CA as `file` in a directory bind-mounted over
/// `mount_point` in a private mount namespace (root only), SSL_CERT_FILE and
/// SSL_CERT_DIR unset: the recorder must find it where the distribution keeps it.
fn system_trust_store_records(mount_point: &str, file: &str) {
    require_root(&format!("bind-mount a test trust store over {mount_point}"));
    if !Path::new(mount_point).is_dir() {
        missing(&format!(
            "{mount_point}, to bind-mount a test trust store over"
        ));
    }
    let (server, ca_pem, _) = server(feed_tls(50));
    let url = format!("wss://127.0.0.1:{}/", server.addr.port());
    let s = Setup::new("wss-sys", &url, json!({}));
    let store = s.dir.path().join("store");
    fs::create_dir_all(&store).unwrap();
    fs::write(store.join(file), &ca_pem).unwrap();
    let stderr = s.dir.path().join("stderr.sys");
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$0" "$3" && exec "$1" --config "$2""#)
        .arg(&store)
        .arg(bin())
        .arg(&s.config)
        .arg(mount_point)
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .current_dir(s.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&stderr).unwrap())
        .spawn();
    let Ok(child) = child else {
        missing("unshare (util-linux)");
    };
    let mut rec = Recorder {
        child,
        stderr: stderr.clone(),
        stdout: stderr,
    };
    let mut ok = false;
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        if s.seqs().len() == 50 {
            ok = true;
            break;
        }
        if let Some(st) = rec.child.try_wait().unwrap() {
            let err = rec.stderr_text();
            if err.contains("unshare") || err.contains("mount") {
                missing(&format!("a private mount namespace ({st}): {}", err.trim()));
            }
            panic!("recorder exited: {st} {err}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        ok,
        "50 lines over TLS with the CA as {mount_point}/{file}: {}",
        s.log_text()
    );
    rec.term();
    assert_eq!(
        rec.wait_exit(Duration::from_secs(3)).unwrap().code(),
        Some(0)
    );
}

#[test]
fn wss_without_the_ca_is_a_plain_certificate_error_retried() {
    let (server, _, handshakes) = server(|_, mut ws| {
        send_range(&mut ws, 0..10);
    });
    let url = format!("wss://127.0.0.1:{}/", server.addr.port());
    let s = Setup::new(
        "wss-noca",
        &url,
        json!({"reconnect_initial_delay": 0.2, "reconnect_max_delay": 0.5}),
    );
    let rec = s.start();
    wait_until(Duration::from_secs(15), "three TLS attempts", || {
        handshakes.load(SeqCst) >= 3
    });
    let t = Instant::now();
    let before = handshakes.load(SeqCst);
    thread::sleep(Duration::from_secs(2));
    let rate = (handshakes.load(SeqCst) - before) as f64 / t.elapsed().as_secs_f64();
    assert!(rate <= 8.0, "backs off: {rate:.1} attempts/s");
    assert!(rec.stderr_text().is_empty() || !rec.stderr_text().contains("panicked"));
    let log = s.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("certificate"))
        .unwrap_or_else(|| panic!("certificate error logged: {log}"));
    assert!(line.contains("SSL_CERT_FILE"), "says what to do: {line}");
    assert!(s.lines("t").is_empty(), "nothing recorded");
}
