//! Times the per-message JSON check on a Bybit-like trade message (the firehose's
//! shape): `cargo run --release --example check_speed`. Used to tune `jsonline`.

use std::time::Instant;

fn main() {
    let msg = br#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1795572754242,"data":[{"T":1795572754240,"s":"BTCUSDT","S":"Sell","v":"0.001","p":"37079.19","L":"PlusTick","i":"910a2dec-8902-4cc1-81cb-7a6b9bd4c0b0","BT":false,"seq":1}],"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
    // CHECK_SPEED_N=200000 under `valgrind --tool=callgrind` gives instructions per check.
    let n = std::env::var("CHECK_SPEED_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000u64);
    // CHECK_SPEED_ROUTE=/topic: the check as Bybit routing runs it, finding /topic.
    let mut ptrs = wsrec::jsonline::Pointers::default();
    if let Ok(p) = std::env::var("CHECK_SPEED_ROUTE") {
        ptrs.add(&p).expect("a JSON pointer");
    }
    let mut found = vec![None; ptrs.len()];
    let mut ok = 0u64;
    let t = Instant::now();
    for _ in 0..n {
        if wsrec::jsonline::check_with(std::hint::black_box(&msg[..]), &ptrs, &mut found).is_ok() {
            ok += 1;
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "{ns:.1} ns per {}-byte message ({:.2} GB/s), {ok} valid, {} pointers",
        msg.len(),
        msg.len() as f64 / ns,
        ptrs.len()
    );
}
