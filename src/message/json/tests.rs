//! The check against its specification, and against serde_json on mutated messages.

use super::grammar::MAX_DEPTH;
use super::*;

#[test]
fn accepts_json_values() {
    for ok in [
        r#"{"a":1}"#,
        r#"[1,-2.5e+3,"x",true,false,null,{},[]]"#,
        " {\"k\" : [ 1 , 2 ] } ",
        r#""just a string""#,
        "0",
        r#"{"s":"esc \" \\ \/ \n \u00e9 é"}"#,
    ] {
        assert!(check(ok.as_bytes()).is_ok(), "{ok}");
    }
}

#[test]
fn rejects_what_is_not_one_json_value() {
    assert_eq!(check(b""), Err(Reject::Empty));
    for bad in [
        "hello",
        "{",
        "{\"a\":}",
        "[1,]",
        "{\"a\":1}x",
        "{} {}",
        "01",
        "1.",
        "-",
        "\"a\nb\"",
        "{a:1}",
        "[1 2]",
        "\"\\x\"",
        "tru",
        "{\"a\" 1}",
        "   ",
    ] {
        assert_eq!(check(bad.as_bytes()), Err(Reject::NotJson), "{bad:?}");
    }
    let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
    assert_eq!(check(deep.as_bytes()), Err(Reject::NotJson));
}

#[test]
fn finds_the_top_level_topic() {
    let mut ptrs = Pointers::default();
    ptrs.add("/topic").unwrap();
    let mut found = [None];
    let m = br#"{"data":{"topic":"inner"},"topic":"publicTrade.ETHUSDT","ts":1}"#;
    check_with(m, &ptrs, &mut found).unwrap();
    assert_eq!(&m[found[0].clone().unwrap()], b"\"publicTrade.ETHUSDT\"");
    check_with(br#"{"op":"pong","topic":{"a":1}}"#, &ptrs, &mut found).unwrap();
    assert_eq!(found[0], None);
}

#[test]
fn finds_pointer_values_in_the_same_pass() {
    let mut ptrs = Pointers::default();
    for p in [
        "/arg/channel",
        "/arg/instId",
        "/data/0/symbol",
        "/2",
        "/stream",
        "/a~1b",
    ] {
        ptrs.add(p).unwrap();
    }
    assert_eq!(ptrs.add("/stream"), Ok(4), "a repeated pointer is shared");
    let get = |m: &[u8]| {
        let mut found = vec![None; ptrs.len()];
        check_with(m, &ptrs, &mut found).unwrap();
        found
            .into_iter()
            .map(|r| r.map(|r| String::from_utf8(m[r].to_vec()).unwrap()))
            .collect::<Vec<_>>()
    };
    let okx = br#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"px":"1"}]}"#;
    assert_eq!(
        get(okx)[..2],
        [Some("\"trades\"".into()), Some("\"BTC-USDT\"".into())]
    );
    let kraken2 = br#"{"channel":"trade","data":[{"symbol":"BTC/USD","qty":0.1},{"symbol":"X"}]}"#;
    assert_eq!(get(kraken2)[2], Some("\"BTC/USD\"".into()));
    let kraken1 = br#"[337,[["5541.2","0.1"]],"trade","XBT/USD"]"#;
    assert_eq!(get(kraken1)[3], Some("\"trade\"".into()));
    // Index 2 of an array, not key "2" of an object; numbers as written.
    assert_eq!(get(br#"{"2":7}"#)[3], Some("7".into()));
    assert_eq!(
        get(br#"[0, 1, 12345678901234567890123]"#)[3],
        Some("12345678901234567890123".into())
    );
    assert_eq!(get(br#"{"a/b":true}"#)[5], Some("true".into()));
    // The empty key, short keys near the end and long ones (each comparison path).
    let mut more = Pointers::default();
    for p in ["/", "/k", "/a_key_longer_than_sixteen_bytes", "/x/"] {
        more.add(p).unwrap();
    }
    let mut found = vec![None; more.len()];
    let m = br#"{"":1,"x":{"":2},"a_key_longer_than_sixteen_bytes":3,"k":4}"#;
    check_with(m, &more, &mut found).unwrap();
    let got: Vec<_> = found.iter().map(|r| r.clone().map(|r| &m[r])).collect();
    assert_eq!(got, [Some(&b"1"[..]), Some(b"4"), Some(b"3"), Some(b"2")]);
    // An object or array value finds nothing; nor does a deeper match elsewhere.
    assert_eq!(get(br#"{"stream":{"x":1}}"#)[4], None);
    assert_eq!(get(br#"{"x":{"arg":{"channel":"c"}}}"#)[0], None);
    assert_eq!(unquoted(b"\"a\""), b"a");
    assert_eq!(unquoted(b"12"), b"12");
    assert!(Pointers::default().add("topic").is_err());
}

#[test]
fn compacts_multiline_json() {
    let m = b"{\n  \"a\": [1, 2],\r\n  \"s\": \"x y \\\" z\"\n}\n";
    let v = check(m).unwrap();
    assert!(v.multiline);
    let mut out = Vec::new();
    compact_into(m, &mut out);
    assert_eq!(out, br#"{"a":[1,2],"s":"x y \" z"}"#);
    assert!(!check(br#"{"a": 1}"#).unwrap().multiline);
}

/// Differential test: on 300,000 mutations of valid messages, the check agrees with
/// serde_json about what is one JSON value, and compaction of what it accepts gives
/// a single line that serde_json reads as the same value. Run on
/// every build of the check ([`builds`]: SSE2 on x86_64, its x86-64-v3 build where the
/// CPU has it, and the portable SWAR scan alone, ARM's).
#[test]
fn agrees_with_serde_json_on_mutated_messages() {
    for check in builds() {
        differential(check);
    }
}

pub(super) type Check = fn(&[u8], &Pointers, &mut [Option<Range<usize>>]) -> Result<Valid, Reject>;

/// Real venue shapes (../shared/FEEDS.md) and a few made to hit the scanner's edges.
const SEEDS: [&[u8]; 17] = [
    br#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1795572754242,"data":[{"T":1795572754240,"s":"BTCUSDT","S":"Sell","v":"0.001","p":"37079.19","L":"PlusTick","i":"910a2dec","BT":false,"seq":1}]}"#,
    br#"{"a":[1,-2.5e+3,0.0,1E-7,true,false,null,{},[]],"s":"esc \" \\ \/ \n \u00e9 \t","n":{"m":{"k":[[]]}}}"#,
    b"{\n  \"pretty\": [1, 2],\r\n  \"s\": \"a b\"\n}",
    br#"[{"x":"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\\"},-0,1e5,"\u20ac"]"#,
    br#""just a string with \"quotes\" in it""#,
    b"  12345.678e-9  ",
    // Kraken v1: a top-level array, the pair last.
    br#"[119930881,[["95873.80000","0.00051182","1740353380.379186","b","l",""]],"trade","XBT/USD"]"#,
    // Binance combined stream.
    br#"{"stream":"bnbbtc@trade","data":{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}}"#,
    // OKX trade.
    br#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1051102132","px":"78808.8","sz":"0.00504905","side":"sell","ts":"1788118931677","count":"1","source":"0","seqId":80559459948}]}"#,
    // HTX, decoded from gzip: a trade id too big for any integer type.
    br#"{"ch":"market.btcusdt.trade.detail","ts":1630994963175,"tick":{"id":137005445109,"ts":1630994963173,"data":[{"id":137005445109359290000000000,"ts":1630994963173,"tradeId":102523573486,"amount":0.006754,"price":52648.62,"direction":"buy"}]}}"#,
    // Coinbase Exchange match and l2update.
    br#"{"type":"match","trade_id":1081862675,"maker_order_id":"f07e510f-1c2d","taker_order_id":"e6f50944-aa01","side":"sell","size":"0.00000001","price":"80691.53","product_id":"BTC-USD","sequence":134905860111,"time":"2026-08-25T03:35:57.198335Z"}"#,
    br#"{"type":"l2update","product_id":"BTC-USD","changes":[["buy","80688.08","0.59153273"],["sell","80745.16","0.20558981"]],"time":"2026-08-25T03:35:57.300000Z"}"#,
    // Deribit trade.
    br#"{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.agg2","data":[{"timestamp":1742627465811,"price":84295.5,"direction":"buy","index_price":84319.98,"instrument_name":"BTC-PERPETUAL","trade_seq":242126092,"amount":8430.0,"mark_price":84292.11,"tick_direction":2,"contracts":843.0,"trade_id":"356130997"}]}}"#,
    // A nostr event: UTF-8 text, escaped and raw, emoji, long content.
    "[\"EVENT\",\"sub1\",{\"id\":\"4376c65d2f232afbe9b882a35baa4f6fe8667c4e684749af565f981833ed6a65\",\"kind\":1,\"created_at\":1673347337,\"tags\":[[\"e\",\"3da979448d9ba263864c4d6f14984c423a3838364ec255f03c7904b1ae77f206\"],[\"p\",\"bf2376e17ba4ec269d10fcc996a4746b451152be9031fa48e74553dde5526bce\"]],\"content\":\"Grüße aus Zürich 🌍 — \\u00e9t\\u00e9 \\ud83d\\ude00 «quotes» \\\"nested\\\" ✓\",\"sig\":\"908a15e46fb4d8675bab026fc230a0e3542bfade63da02d542fb78b2a8513fcd\"}]".as_bytes(),
    // Kraken v2 with a 20-digit connection id, and Bitget with a long trade id string.
    br#"{"channel":"status","type":"update","data":[{"version":"2.0.10","system":"online","api_version":"v2","connection_id":18125794168470749634,"upcoming_maintenance":[],"emergency":[]}]}"#,
    br#"{"action":"snapshot","arg":{"instType":"SPOT","channel":"trade","instId":"BTCUSDT"},"data":[{"ts":"1701910980366","price":"43854.01","size":"0.0535","side":"buy","tradeId":"1116461060594286593"}],"ts":1701910980730}"#,
    // Strings whose ends fall on every offset around 8 and 16 bytes.
    br#"{"a":"","bb":"1","ccc":"1234567","dddd":"12345678","eeeee":"123456789012345","f":"1234567890123456","g":"12345678901234567","h":"\\","i":"x\"y"}"#,
];

fn differential(check: Check) {
    let seeds = SEEDS;
    // Every seed is valid as it stands.
    for m in seeds {
        assert!(
            check(m, &Pointers::default(), &mut []).is_ok(),
            "{}",
            String::from_utf8_lossy(m)
        );
    }
    let alphabet = b"{}[]:,\" \\/0123456789+-.eEtrufalsn\t\n\rabu\x01";
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let mut accepted = 0;
    for case in 0..300_000 {
        let mut m = seeds[case % seeds.len()].to_vec();
        for _ in 0..1 + rnd(3) {
            let at = rnd(m.len() + 1);
            let b = alphabet[rnd(alphabet.len())];
            match rnd(3) {
                0 if at < m.len() => m[at] = b,
                1 if at < m.len() => {
                    m.remove(at);
                }
                _ => m.insert(at, b),
            }
        }
        // Text frames are UTF-8 (tungstenite checks): a mutation that cut a
        // character in two is not a case.
        if std::str::from_utf8(&m).is_err() {
            continue;
        }
        let ours = check(&m, &Pointers::default(), &mut []);
        // Syntax only (IgnoredAny): JSON has no number range, serde_json's f64 has.
        let syntax = serde_json::from_slice::<serde::de::IgnoredAny>(&m);
        let theirs = serde_json::from_slice::<serde_json::Value>(&m);
        assert_eq!(
            ours.is_ok(),
            syntax.is_ok(),
            "disagree on {:?}: ours {ours:?}, serde_json {syntax:?}",
            String::from_utf8_lossy(&m)
        );
        if let (Ok(v), Ok(value)) = (ours, theirs) {
            accepted += 1;
            let mut line = Vec::new();
            if v.multiline {
                compact_into(&m, &mut line);
            } else {
                line.extend_from_slice(&m);
            }
            assert!(!line.contains(&b'\n') && !line.contains(&b'\r'));
            let again: serde_json::Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(again, value);
        }
    }
    assert!(
        accepted > 10_000,
        "the mutations keep enough valid cases: {accepted}"
    );
}

/// Issue 19 item 5, differential: on random messages whose keys and strings are written
/// with random escapes (`\/`, `\u0074`, surrogate pairs), every pointer's value, read
/// through [`text`] and [`equals`], is what serde_json's `Value::pointer` reads. Run on
/// each string scan.
#[test]
fn pointer_values_agree_with_serde_json_pointer() {
    for check in builds() {
        pointer_differential(check);
    }
}

/// A tiny xorshift generator: the tests need no crate for randomness.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Writes `s` as a JSON string, each character raw or escaped at random (a quote, a
/// backslash and a control character always escaped).
fn write_string(s: &str, rng: &mut Rng, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        let must = c == '"' || c == '\\' || (c as u32) < 0x20;
        if !must && rng.below(3) != 0 {
            out.push(c);
            continue;
        }
        match (c, rng.below(2)) {
            ('/', 0) => out.push_str("\\/"),
            ('"', 0) => out.push_str("\\\""),
            ('\\', 0) => out.push_str("\\\\"),
            ('\n', 0) => out.push_str("\\n"),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    if rng.below(2) == 0 {
                        out.push_str(&format!("\\u{u:04x}"));
                    } else {
                        out.push_str(&format!("\\u{u:04X}"));
                    }
                }
            }
        }
    }
    out.push('"');
}

/// A random value written with random escapes, and the pointers to every place in it.
fn random_value(
    rng: &mut Rng,
    depth: usize,
    path: &str,
    out: &mut String,
    paths: &mut Vec<String>,
) {
    const KEYS: [&str; 10] = [
        "topic", "data", "arg", "a/b", "é", "0", "1", "x~y", "ch", "€😀",
    ];
    const TEXT: [&str; 7] = [
        "/market/match:BTC-USDT",
        "publicTrade.BTCUSDT",
        "tBTCUSD",
        "a\"b\\c",
        "Grüße 🌍",
        "line\nbreak\u{1}",
        "",
    ];
    paths.push(path.to_string());
    match rng.below(if depth >= 3 { 3 } else { 5 }) {
        0 => write_string(TEXT[rng.below(TEXT.len())], rng, out),
        1 => {
            out.push_str(["17", "-0.5e3", "true", "null", "12345678901234567890123"][rng.below(5)])
        }
        2 => write_string(KEYS[rng.below(KEYS.len())], rng, out),
        3 => {
            out.push('{');
            let mut used = Vec::new();
            for _ in 0..rng.below(5) {
                let k = KEYS[rng.below(KEYS.len())];
                if used.contains(&k) {
                    continue;
                }
                if !used.is_empty() {
                    out.push(',');
                }
                used.push(k);
                write_string(k, rng, out);
                out.push(':');
                let seg = k.replace('~', "~0").replace('/', "~1");
                random_value(rng, depth + 1, &format!("{path}/{seg}"), out, paths);
            }
            out.push('}');
        }
        _ => {
            out.push('[');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                random_value(rng, depth + 1, &format!("{path}/{i}"), out, paths);
            }
            out.push(']');
        }
    }
}

fn pointer_differential(check: Check) {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut compared = 0;
    for _ in 0..20_000 {
        let (mut m, mut paths) = (String::new(), Vec::new());
        random_value(&mut rng, 0, "", &mut m, &mut paths);
        paths.retain(|p| !p.is_empty() && p.matches('/').count() <= MAX_POINTER_DEPTH);
        // Misses too: a key no message has, an index past the end.
        paths.extend(["/topicx".to_string(), "/9".to_string()]);
        paths.truncate(MAX_POINTERS);
        let mut ptrs = Pointers::default();
        for p in &paths {
            ptrs.add(p).unwrap();
        }
        let mut found = vec![None; ptrs.len()];
        let v = check(m.as_bytes(), &ptrs, &mut found).expect(&m);
        let theirs: serde_json::Value = serde_json::from_str(&m).unwrap();
        for p in &paths {
            let i = ptrs.add(p).unwrap();
            let ours = found[i].clone().map(|r| &m.as_bytes()[r]);
            let escaped = v.escaped >> i & 1 != 0;
            match theirs.pointer(p) {
                Some(serde_json::Value::String(s)) => {
                    let ours = ours.unwrap_or_else(|| panic!("{p} in {m}"));
                    assert_eq!(ours[0], b'"');
                    assert_eq!(
                        text(ours, escaped, &mut Vec::new()),
                        s.as_bytes(),
                        "{p} in {m}"
                    );
                    let compact = serde_json::to_string(s).unwrap();
                    assert!(equals(ours, escaped, compact.as_bytes()), "{p} in {m}");
                    compared += 1;
                }
                Some(serde_json::Value::Object(_) | serde_json::Value::Array(_)) | None => {
                    assert_eq!(ours, None, "{p} in {m}");
                }
                Some(value) => {
                    let ours = ours.unwrap_or_else(|| panic!("{p} in {m}"));
                    assert!(!escaped);
                    let again: serde_json::Value = serde_json::from_slice(ours).unwrap();
                    assert_eq!(&again, value, "{p} in {m}");
                    assert!(
                        equals(ours, escaped, value.to_string().as_bytes()) || value.is_number()
                    );
                }
            }
        }
    }
    assert!(compared > 10_000, "enough strings compared: {compared}");
}

/// The real corpus (bench/corpus/, issue 23): every message, each venue with its
/// preset's pointers, checked on each string scan; serde_json agrees that each is one
/// JSON value and reads every pointer's value as the check finds it. Then mutations of
/// the corpus's messages (up to 4 kB each): the check and serde_json agree on which are
/// JSON.
#[test]
fn agrees_with_serde_json_on_the_real_corpus_and_its_mutations() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(root.join("bench/corpus"))
        .expect("bench/corpus")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the corpus is there: {files:?}");
    let mut small = Vec::new();
    let mut values = 0;
    for f in &files {
        let venue = f.file_stem().unwrap().to_str().unwrap();
        let preset = root.join(format!("examples/venues/{venue}.json"));
        let preset: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&preset).unwrap()).unwrap();
        let mut paths: Vec<String> = Vec::new();
        let strings = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        };
        paths.extend(strings(&preset["route_by"]));
        for rule in preset["heartbeat_replies"].as_array().into_iter().flatten() {
            paths.extend(strings(&rule["has"]));
            paths.extend(
                rule["equals"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k.clone()),
            );
        }
        let ids = &preset["route_ids"];
        paths.extend(
            ids["when"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone()),
        );
        paths.extend(ids["id"].as_str().map(String::from));
        paths.extend(strings(&ids["key"]));
        let mut ptrs = Pointers::default();
        for p in &paths {
            ptrs.add(p).unwrap();
        }
        for m in std::fs::read(f)
            .unwrap()
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let theirs: serde_json::Value = serde_json::from_slice(m).unwrap();
            for check in builds() {
                let mut found = vec![None; ptrs.len()];
                let v = check(m, &ptrs, &mut found).unwrap();
                assert!(!v.multiline);
                for p in &paths {
                    let i = ptrs.add(p).unwrap();
                    let ours = found[i].clone().map(|r| &m[r]);
                    let esc = v.escaped >> i & 1 != 0;
                    match theirs.pointer(p) {
                        Some(serde_json::Value::String(s)) => {
                            assert_eq!(text(ours.unwrap(), esc, &mut Vec::new()), s.as_bytes());
                            values += 1;
                        }
                        Some(serde_json::Value::Object(_) | serde_json::Value::Array(_)) | None => {
                            assert_eq!(ours, None, "{venue} {p}")
                        }
                        Some(scalar) => {
                            let again: serde_json::Value =
                                serde_json::from_slice(ours.unwrap()).unwrap();
                            assert_eq!(&again, scalar, "{venue} {p}");
                            values += 1;
                        }
                    }
                }
            }
            if m.len() <= 4096 {
                small.push(m.to_vec());
            }
        }
    }
    assert!(values > 2_000, "pointer values compared: {values}");
    let alphabet = b"{}[]:,\" \\/0123456789+-.eEtrufalsn\t\n\rabu\x01";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut cases) = (0, 0);
    for case in 0..60_000 {
        let mut m = small[case % small.len()].clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(m.len() + 1);
            let b = alphabet[rng.below(alphabet.len())];
            match rng.below(3) {
                0 if at < m.len() => m[at] = b,
                1 if at < m.len() => {
                    m.remove(at);
                }
                _ => m.insert(at, b),
            }
        }
        if std::str::from_utf8(&m).is_err() {
            continue;
        }
        cases += 1;
        let syntax = serde_json::from_slice::<serde::de::IgnoredAny>(&m).is_ok();
        for check in builds() {
            let ours = check(&m, &Pointers::default(), &mut []);
            assert_eq!(
                ours.is_ok(),
                syntax,
                "disagree on {:?}: ours {ours:?}",
                String::from_utf8_lossy(&m)
            );
        }
        accepted += syntax as usize;
    }
    assert!(
        accepted > 5_000 && cases > 50_000,
        "{accepted} of {cases} mutations valid"
    );
}

/// Issue 23: the member window (32 bytes from a key's quote) and the plain-message
/// copy of the grammar, at every boundary: keys and values of every length around the
/// window's end, each kind of value, at the message's end and away from it, with and
/// without a backslash escape or a raw control byte somewhere; the verdict and the
/// pointer's value agree with serde_json, on each scan.
#[test]
fn member_windows_agree_with_serde_json_at_every_boundary() {
    let values = |n: usize| -> Vec<String> {
        let digits: String = (0..n.max(1))
            .map(|k| (b'1' + (k % 9) as u8) as char)
            .collect();
        vec![
            format!("\"{}\"", "v".repeat(n)),
            digits.clone(),
            format!("-{digits}"),
            format!("{digits}.5"),
            format!("0.{digits}"),
            format!("{digits}e7"),
            format!("{digits}.25E-3"),
            "0".into(),
            "true".into(),
            "false".into(),
            "null".into(),
            format!("\"{}\\u00e9\"", "w".repeat(n)),
            format!("\"{}\\\"\"", "q".repeat(n)),
            "{\"in\":1}".into(),
            "[1,2]".into(),
        ]
    };
    let mut cases = 0;
    for klen in [0, 1, 2, 5, 8, 9, 15, 16, 17, 26, 27, 28, 29, 30, 31, 33] {
        let key = "k".repeat(klen);
        let mut ptrs = Pointers::default();
        ptrs.add(&format!("/{key}")).unwrap();
        for vlen in [
            0, 1, 3, 7, 12, 16, 20, 24, 25, 26, 27, 28, 29, 30, 31, 32, 40,
        ] {
            for value in values(vlen) {
                for (before, after) in [
                    ("", ""),
                    ("\"a\":1,", ",\"z\":\"tail\""),
                    (
                        "\"a\":\"x\",",
                        ",\"padding_to_push_the_end_away\":[1,2,3,4,5,6,7,8,9]",
                    ),
                    ("\"e\\\\s\":1,", ""),
                    ("", " "),
                    ("", ",\"t\":\"\\t\""),
                ] {
                    let m = format!("{{{before}\"{key}\":{value}{after}}}");
                    let mut variants = vec![m.clone()];
                    // Broken forms: the member cut at each of its last bytes, a raw
                    // control byte and a lone backslash in its value.
                    for cut in 1..4.min(m.len()) {
                        variants.push(m[..m.len() - cut].to_string());
                    }
                    variants.push(m.replacen(&value, &value.replacen('v', "\u{1}", 1), 1));
                    variants.push(m.replacen(&value, &value.replacen('v', "\\", 1), 1));
                    variants.push(m.replacen(':', " :", 1));
                    for v in variants {
                        let theirs = serde_json::from_str::<serde_json::Value>(&v);
                        for check in builds() {
                            let mut found = vec![None; 1];
                            let ours = check(v.as_bytes(), &ptrs, &mut found);
                            assert_eq!(ours.is_ok(), theirs.is_ok(), "{v:?}: {ours:?}");
                            let Ok(theirs) = &theirs else { continue };
                            let ours = found[0].clone().map(|r| &v.as_bytes()[r]);
                            let esc = ours.is_some() && ours.unwrap().contains(&b'\\');
                            match theirs.pointer(&format!("/{key}")) {
                                Some(serde_json::Value::String(s)) => {
                                    let got = text(ours.expect(&v), esc, &mut Vec::new()).to_vec();
                                    assert_eq!(got, s.as_bytes(), "{v}");
                                }
                                Some(
                                    serde_json::Value::Object(_) | serde_json::Value::Array(_),
                                )
                                | None => assert_eq!(ours, None, "{v}"),
                                Some(scalar) => {
                                    let again: serde_json::Value =
                                        serde_json::from_slice(ours.expect(&v)).unwrap();
                                    assert_eq!(&again, scalar, "{v}");
                                }
                            }
                            cases += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(cases > 20_000, "{cases} cases");
}

/// The container stack past the 64 levels kept in a register: random nestings of
/// objects and arrays up to [`MAX_DEPTH`], valid as built, and each with one closing
/// bracket of the wrong kind (rejected), on each scan. (serde_json stops at 128 levels,
/// so the expectation is built, not asked.)
#[test]
fn deep_nesting_closes_each_container_with_its_own_kind() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for round in 0..400 {
        let depth = [1, 63, 64, 65, 127, 128, 129, 300, MAX_DEPTH][round % 9];
        let kinds: Vec<bool> = (0..depth).map(|_| rng.below(2) == 0).collect();
        let mut m = String::new();
        for &obj in &kinds {
            m.push_str(if obj { "{\"k\":" } else { "[" });
        }
        m.push('1');
        let mut closes = Vec::new();
        for &obj in kinds.iter().rev() {
            closes.push(m.len());
            m.push(if obj { '}' } else { ']' });
        }
        for check in builds() {
            assert!(
                check(m.as_bytes(), &Pointers::default(), &mut []).is_ok(),
                "{depth}"
            );
            let at = closes[rng.below(closes.len())];
            let mut bad = m.clone().into_bytes();
            bad[at] = if bad[at] == b'}' { b']' } else { b'}' };
            assert_eq!(
                check(&bad, &Pointers::default(), &mut []),
                Err(Reject::NotJson),
                "depth {depth}, wrong close at {at}"
            );
        }
    }
}

/// Keys of 1 to 17 bytes read from a member's window, against pointers of the same
/// length (one candidate, compared inline up to 16 bytes; two, through `key_at`): near misses at each
/// byte, prefixes and extensions before the key, at the top level and one below, and
/// the value of the pointer against serde_json's, on each scan.
#[test]
fn short_keys_match_exactly_in_the_member_window() {
    let mut cases = 0;
    for len in 1..=17 {
        let key = &"abcdefghijklmnopq"[..len];
        let mut misses: Vec<String> = (0..len)
            .map(|at| {
                let mut k = key.as_bytes().to_vec();
                k[at] ^= 0x01;
                String::from_utf8(k).unwrap()
            })
            .collect();
        misses.push(key[..len - 1].to_string());
        misses.push(format!("{key}x"));
        let other = "z".repeat(len);
        for ptrs_of in [
            vec![format!("/{key}")],
            vec![format!("/{other}"), format!("/{key}")],
        ] {
            for nested in [false, true] {
                let mut ptrs = Pointers::default();
                let wanted: Vec<String> = ptrs_of
                    .iter()
                    .map(|p| if nested { format!("/o{p}") } else { p.clone() })
                    .collect();
                for p in &wanted {
                    ptrs.add(p).unwrap();
                }
                for first in 0..=misses.len() {
                    let mut members: Vec<String> = misses
                        .iter()
                        .enumerate()
                        .map(|(n, k)| format!("\"{k}\":{n}"))
                        .collect();
                    members.insert(first, format!("\"{key}\":\"hit\""));
                    let body = format!("{{{}}}", members.join(","));
                    let m = if nested {
                        format!("{{\"o\":{body}}}")
                    } else {
                        body
                    };
                    let theirs: serde_json::Value = serde_json::from_str(&m).unwrap();
                    for check in builds() {
                        let mut found = vec![None; ptrs.len()];
                        check(m.as_bytes(), &ptrs, &mut found).unwrap();
                        for (p, range) in wanted.iter().zip(&found) {
                            let ours = range.clone().map(|r| &m.as_bytes()[r]);
                            let want = theirs.pointer(p).map(|v| v.to_string());
                            assert_eq!(ours, want.as_deref().map(str::as_bytes), "{p} in {m}");
                            cases += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(cases > 500, "{cases} cases");
}

/// What a pointer matched in one container does not leak into a later sibling's
/// contents at the same depth, when the sibling itself matches no pointer (an array no
/// index reaches, an object under a key no pointer has), on each scan.
#[test]
fn a_sibling_match_does_not_leak_into_the_next_container() {
    let cases: [(&[&str], &str); 5] = [
        (&["/a/0/b", "/a/0/z"], r#"{"a":[{"b":1}],"c":[{"z":2}]}"#),
        (&["/0/0/b", "/0/0/z"], r#"[[{"b":1}],[{"z":2}]]"#),
        (&["/0/0/b", "/0/0/z"], r#"[[{"b":1}],{"0":{"z":2}}]"#),
        (&["/a/k/b", "/a/k/z"], r#"{"a":{"k":{"b":1},"q":{"z":2}}}"#),
        (&["/a/0/0", "/a/0/1"], r#"{"a":[[1],[3,4]],"c":[[5,6]]}"#),
    ];
    for (pointers, m) in cases {
        let mut ptrs = Pointers::default();
        for p in pointers {
            ptrs.add(p).unwrap();
        }
        let theirs: serde_json::Value = serde_json::from_str(m).unwrap();
        for check in builds() {
            let mut found = vec![None; ptrs.len()];
            check(m.as_bytes(), &ptrs, &mut found).unwrap();
            for (p, range) in pointers.iter().zip(&found) {
                let ours = range.clone().map(|r| &m.as_bytes()[r]);
                let want = theirs.pointer(p).map(|v| v.to_string());
                assert_eq!(ours, want.as_deref().map(str::as_bytes), "{p} in {m}");
            }
        }
    }
}
