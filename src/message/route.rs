//! Which file a message goes to, and the file names topics get.

/// A topic (or `_control`) as a file name prefix, encoded reversibly: every byte that
/// cannot or should not be in a file name (`/`, `\`, NUL and other control bytes, `:`,
/// `*`, `?`, `"`, `<`, `>`, `|`, `%`, and a `.` in first position) becomes `%XX`. So
/// `trade.BTC/USD` -> `trade.BTC%2FUSD`: nothing is ever written outside output_dir.
pub(crate) fn file_name(topic: &str) -> String {
    let mut out = Vec::with_capacity(topic.len());
    for (i, b) in topic.bytes().enumerate() {
        let bad = matches!(
            b,
            0..=0x1f | 0x7f | b'/' | b'\\' | b':' | b'*' | b'?' | b'"' | b'<' | b'>' | b'|' | b'%'
        ) || (i == 0 && b == b'.');
        if bad {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    // Only ASCII bytes were replaced, by ASCII: still UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// The topic a file name prefix stands for (the inverse of [`file_name`]).
#[cfg(test)]
pub(crate) fn topic_of(name: &str) -> Option<String> {
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_and_reversible() {
        for (topic, name) in [
            ("publicTrade.BTCUSDT", "publicTrade.BTCUSDT"),
            ("trade.BTC/USD", "trade.BTC%2FUSD"),
            ("/market/match:BTC-USDT", "%2Fmarket%2Fmatch%3ABTC-USDT"),
            ("..", "%2E."),
            (".hidden", "%2Ehidden"),
            (
                "a\\b*c?d\"e<f>g|h%i\nj\0",
                "a%5Cb%2Ac%3Fd%22e%3Cf%3Eg%7Ch%25i%0Aj%00",
            ),
            ("btcusdt@trade", "btcusdt@trade"),
            ("ticker.BTC€", "ticker.BTC€"),
        ] {
            assert_eq!(file_name(topic), name, "{topic:?}");
            assert_eq!(topic_of(name).as_deref(), Some(topic));
            assert!(!file_name(topic).contains('/'));
        }
    }
}
