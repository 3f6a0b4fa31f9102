//! Found values as the text they stand for: a JSON string compared as the string it is
//! (`"\/market\/match:BTC-USDT"` is `/market/match:BTC-USDT`, as serde_json reads it),
//! decoded only when the check saw a backslash in it. The line itself stays verbatim.

/// The text a found value stands for in a route key: a string's contents (without the
/// quotes, as written), or a number or literal as written. For a string written with
/// escapes (`escaped`, from [`Valid::escaped`](super::Valid::escaped)), use [`text`].
pub fn unquoted(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        v => v,
    }
}

/// The text a found value stands for: [`unquoted`], and a string written with escapes
/// (`escaped`) decoded into `scratch` (UTF-8; a lone surrogate escape becomes the three
/// bytes it would be in WTF-8, so it equals no configured text).
#[inline]
pub fn text<'a>(value: &'a [u8], escaped: bool, scratch: &'a mut Vec<u8>) -> &'a [u8] {
    if !escaped {
        return unquoted(value);
    }
    scratch.clear();
    push_text(value, escaped, scratch);
    scratch
}

/// Appends the text `value` stands for (as [`text`] gives it) to `out`.
#[inline]
pub fn push_text(value: &[u8], escaped: bool, out: &mut Vec<u8>) {
    if escaped {
        out.extend(unescaped(unquoted(value)));
    } else {
        out.extend_from_slice(unquoted(value));
    }
}

/// Whether a found value equals `want`, the compact JSON text of a scalar (as
/// serde_json writes it: `"ping"`, `17`, `true`). A string written with escapes
/// (`escaped`) is compared as decoded, against `want` decoded.
#[inline]
pub fn equals(value: &[u8], escaped: bool, want: &[u8]) -> bool {
    if !escaped {
        return value == want;
    }
    match (value, want) {
        ([b'"', v @ .., b'"'], [b'"', w @ .., b'"']) => unescaped(v).eq(unescaped(w)),
        _ => false,
    }
}

/// The bytes of a checked string's contents (escapes known to be well formed), decoded.
pub(super) fn unescaped(content: &[u8]) -> Unescaped<'_> {
    Unescaped {
        s: content,
        i: 0,
        pending: [0; 4],
        at: 0,
        len: 0,
    }
}

/// The iterator of [`unescaped`]: bytes as they are, an escape as its UTF-8 bytes.
pub(super) struct Unescaped<'a> {
    s: &'a [u8],
    i: usize,
    /// The rest of a decoded character's UTF-8 bytes.
    pending: [u8; 4],
    at: u8,
    len: u8,
}

impl Unescaped<'_> {
    fn hex4(&self, at: usize) -> Option<u32> {
        let h = std::str::from_utf8(self.s.get(at..at + 4)?).ok()?;
        u32::from_str_radix(h, 16).ok()
    }
}

impl Iterator for Unescaped<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        if self.at < self.len {
            self.at += 1;
            return Some(self.pending[self.at as usize - 1]);
        }
        let b = *self.s.get(self.i)?;
        if b != b'\\' {
            self.i += 1;
            return Some(b);
        }
        let e = *self.s.get(self.i + 1)?;
        self.i += 2;
        let one = match e {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let mut cp = self.hex4(self.i)?;
                self.i += 4;
                if (0xd800..0xdc00).contains(&cp)
                    && self.s.get(self.i..self.i + 2) == Some(b"\\u")
                    && let Some(lo @ 0xdc00..0xe000) = self.hex4(self.i + 2)
                {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    self.i += 6;
                }
                // Surrogates are not chars: encode by hand, WTF-8 for a lone one.
                let n = match cp {
                    0..0x80 => return Some(cp as u8),
                    0x80..0x800 => {
                        self.pending[..2]
                            .copy_from_slice(&[0xc0 | (cp >> 6) as u8, 0x80 | (cp & 0x3f) as u8]);
                        2
                    }
                    0x800..0x10000 => {
                        self.pending[..3].copy_from_slice(&[
                            0xe0 | (cp >> 12) as u8,
                            0x80 | (cp >> 6 & 0x3f) as u8,
                            0x80 | (cp & 0x3f) as u8,
                        ]);
                        3
                    }
                    _ => {
                        self.pending = [
                            0xf0 | (cp >> 18) as u8,
                            0x80 | (cp >> 12 & 0x3f) as u8,
                            0x80 | (cp >> 6 & 0x3f) as u8,
                            0x80 | (cp & 0x3f) as u8,
                        ];
                        4
                    }
                };
                self.len = n;
                self.at = 1;
                return Some(self.pending[0]);
            }
            // `"`, `\` and `/` stand for themselves.
            other => other,
        };
        Some(one)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_as_serde_json_does() {
        for raw in [
            r#"\/market\/match:BTC-USDT"#,
            r#"\u0074opic"#,
            r#"a\"b\\c\/d\b\f\n\r\t"#,
            r#"\u00e9t\u00E9 \u20ac \ud83d\ude00 é"#,
            r#"\u0000x\u001f"#,
            "plain",
            "",
        ] {
            let want: String = serde_json::from_str(&format!("\"{raw}\"")).unwrap();
            let got: Vec<u8> = unescaped(raw.as_bytes()).collect();
            assert_eq!(got, want.as_bytes(), "{raw}");
            let quoted = format!("\"{raw}\"");
            let mut scratch = Vec::new();
            assert_eq!(text(quoted.as_bytes(), true, &mut scratch), want.as_bytes());
            let compact = serde_json::to_string(&want).unwrap();
            assert!(equals(quoted.as_bytes(), true, compact.as_bytes()), "{raw}");
        }
        // A lone surrogate: WTF-8 bytes, not UTF-8, so no configured text equals it.
        assert_eq!(unescaped(br"\ud800x").collect::<Vec<_>>(), b"\xed\xa0\x80x");
        assert_eq!(unescaped(br"\udc00").collect::<Vec<_>>(), b"\xed\xb0\x80");
        assert!(
            !equals(br#""\u0031""#, true, b"1"),
            "a string is not a number"
        );
        assert!(equals(b"17", false, b"17"));
        assert_eq!(text(b"17", false, &mut Vec::new()), b"17");
    }
}
