//! The grammar: one iterative pass that proves a message is one complete JSON value
//! (RFC 8259) and tells the pointer layer where it is.
//!
//! Written as one function over local variables (the message, the index, the depth,
//! the kinds of the innermost 64 containers): nothing of the parser's state lives in
//! memory, so that the index stays in a register from token to token. On x86_64 the
//! common object member is read from one 32-byte window of masks ([`members`]), and a
//! message with no backslash or control byte gets a copy of the grammar whose strings
//! end at the next quote (`PLAIN`). Everything off the compact market-data path (white
//! space, escapes, the message's last bytes) is out of line.

use super::pointer::Track;
use super::scan;

/// Deepest nesting accepted: a bound on the check's state, not on real messages.
pub(super) const MAX_DEPTH: usize = 512;

/// Skips the white space at `i`; returns the index of the first other byte (or the
/// length) and whether a CR or LF was among it. Out of line: compact JSON has none.
#[cold]
#[inline(never)]
fn ws_skip(s: &[u8], mut i: usize) -> (usize, bool) {
    let mut newline = false;
    while let Some(&b) = s.get(i) {
        match b {
            b' ' | b'\t' => {}
            b'\n' | b'\r' => newline = true,
            _ => break,
        }
        i += 1;
    }
    (i, newline)
}

/// A string whose opening quote is at `open`: the index after its closing quote, and
/// whether it holds a backslash escape (its text then differs from its bytes).
#[inline(always)]
fn string<const SIMD: bool, const PLAIN: bool>(s: &[u8], open: usize) -> Option<(usize, bool)> {
    let i = if PLAIN {
        scan::skip_to_quote::<SIMD>(s, open + 1)
    } else {
        scan::skip_plain::<SIMD>(s, open + 1)
    };
    // Usually the closing quote: the rest is out of line.
    if *s.get(i)? == b'"' {
        return Some((i + 1, false));
    }
    string_rest::<SIMD>(s, i)
}

/// [`string`] from a backslash, a control byte or the last bytes of the message at `i`.
#[inline(never)]
fn string_rest<const SIMD: bool>(s: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        match *s.get(i)? {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => match *s.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                    escaped = true;
                    i += 2
                }
                b'u' => {
                    escaped = true;
                    let hex = s.get(i + 2..i + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    i += 6;
                }
                _ => return None,
            },
            0..=0x1f => return None,
            _ => i += 1,
        }
        i = scan::skip_plain::<SIMD>(s, i);
    }
}

/// A number starting at `i` (a minus or a digit, or not a number): the index after it.
#[inline(always)]
fn number<const SIMD: bool>(s: &[u8], mut i: usize) -> Option<usize> {
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    match *s.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = scan::digits::<SIMD>(s, i + 1),
        _ => return None,
    }
    match s.get(i) {
        Some(b'.' | b'e' | b'E') => fraction::<SIMD>(s, i),
        _ => Some(i),
    }
}

/// [`number`]'s fraction and exponent, from the `.`, `e` or `E` at `i`. Inline: prices
/// in arrays (order books) are most of some venues' bytes.
#[inline(always)]
fn fraction<const SIMD: bool>(s: &[u8], mut i: usize) -> Option<usize> {
    if s[i] == b'.' {
        let j = scan::digits::<SIMD>(s, i + 1);
        if j == i + 1 {
            return None;
        }
        i = j;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let j = scan::digits::<SIMD>(s, i);
        if j == i {
            return None;
        }
        i = j;
    }
    Some(i)
}

/// `true`, `false` or `null` at `i` (its first byte is `b`): the index after it.
#[inline(always)]
fn literal(s: &[u8], i: usize, b: u8) -> Option<usize> {
    let (word, n): (&[u8; 4], usize) = match b {
        b't' => (b"true", 4),
        b'n' => (b"null", 4),
        // "false" is "f" and "alse".
        b'f' => (b"alse", 5),
        _ => return None,
    };
    let at = i + n - 4;
    (s.get(at..at + 4)? == word).then_some(i + n)
}

/// Where [`members`] left an object for the general path.
enum Member {
    /// After a member's value, at this index.
    After(usize),
    /// At the first byte of a value whose key was parsed (with the pointers that end
    /// at it): a container, a long or escaped string, an exponent, white space.
    Value(usize, u32),
    /// At the opening quote of a key not in the common shape (escaped, long, white
    /// space before the colon, the message's last 32 bytes).
    Key(usize),
}

/// Object members in the common shape, `"key":value` with a plain key of at most 28
/// bytes and a plain string, a number without exponent or a literal as its value, one
/// after another while a member is followed by `,"`: each is read from one
/// [`scan::Window`] of the 32 bytes at its key's opening quote (`i`), and its value
/// recorded for the pointers that end at it. The general path takes over where a
/// member is not in that shape ([`Member`]); on targets without the window, at once.
///
/// `TRACKED`: a pointer reaches this level ([`Track::reaches`]). That copy runs out of
/// line ([`members_tracked`]), and goes on as the other once every pointer is found,
/// so that the member loop of most objects has no pointer code in its registers.
#[inline(always)]
fn members<const SIMD: bool, const PLAIN: bool, const TRACKED: bool>(
    s: &[u8],
    mut i: usize,
    depth: usize,
    track: &mut Track,
) -> Member {
    loop {
        let Some(w) = s.get(i..).and_then(<[u8]>::first_chunk::<32>) else {
            return Member::Key(i);
        };
        let Some(m) = scan::window::<SIMD>(w, PLAIN) else {
            return Member::Key(i);
        };
        // The first byte a string may not hold as it is (32: none in the window).
        let special = m.special.trailing_zeros() as usize;
        // The key's closing quote (bit 0 is its opening one).
        let k = (m.quote & !1).trailing_zeros() as usize;
        if k >= special || k > 28 || w[k + 1] != b':' {
            return Member::Key(i);
        }
        let v = k + 2;
        // The pointers that end at this member's value, asked here, in one place (the
        // tracked copy is out of line: its registers are its own).
        let wanted = if TRACKED {
            track.member_key(depth, s, i + 1, k - 1, w)
        } else {
            0
        };
        // Strings first, told by the quote mask (a bit test in a register: a compare
        // of `w[v]` would be merged into the match below, which orders by value).
        let end = if m.quote >> v & 1 != 0 {
            // Its closing quote, before any special byte, in the window.
            let e = (m.quote >> (v + 1)).trailing_zeros() as usize + v + 1;
            if e >= 32 && special >= 32 {
                // Plain to the window's end: a long string (ids, text) goes on.
                let j = if PLAIN {
                    scan::skip_to_quote::<SIMD>(s, i + 32)
                } else {
                    scan::skip_plain::<SIMD>(s, i + 32)
                };
                if s.get(j) != Some(&b'"') {
                    return Member::Value(i + v, wanted);
                }
                if wanted != 0 {
                    track.record(wanted, i + v..j + 1);
                }
                return Member::After(j + 1);
            }
            if e >= special {
                return Member::Value(i + v, wanted);
            }
            e + 1
        } else {
            match w[v] {
                b'-' | b'0'..=b'9' => {
                    let n = v + (w[v] == b'-') as usize;
                    let e = match w[n] {
                        b'0' => n + 1,
                        b'1'..=b'9' => (!m.digit >> n).trailing_zeros() as usize + n,
                        _ => return Member::Value(i + v, wanted),
                    };
                    if e >= 31 {
                        return Member::Value(i + v, wanted);
                    }
                    let e = if w[e] == b'.' {
                        let f = (!m.digit >> (e + 1)).trailing_zeros() as usize + e + 1;
                        if f == e + 1 || f >= 32 {
                            return Member::Value(i + v, wanted);
                        }
                        f
                    } else {
                        e
                    };
                    if w[e] | 0x20 == b'e' {
                        return Member::Value(i + v, wanted);
                    }
                    e
                }
                b't' if v <= 28 && w[v..v + 4] == *b"true" => v + 4,
                b'n' if v <= 28 && w[v..v + 4] == *b"null" => v + 4,
                b'f' if v <= 27 && w[v + 1..v + 5] == *b"alse" => v + 5,
                _ => return Member::Value(i + v, wanted),
            }
        };
        if wanted != 0 {
            track.record_member(wanted, i + v..i + end);
        }
        // The next member at once: `,"` as one 16-bit compare.
        if end < 31 && u16::from_le_bytes([w[end], w[end + 1]]) == u16::from_le_bytes(*b",\"") {
            i += end + 1;
            if TRACKED && !track.reaches(depth) {
                // Every pointer has its value: the rest without tracking.
                return members::<SIMD, PLAIN, false>(s, i, depth, track);
            }
            continue;
        }
        return Member::After(i + end);
    }
}

/// [`members`] at a level a pointer reaches, out of line.
#[inline(never)]
fn members_tracked<const SIMD: bool, const PLAIN: bool>(
    s: &[u8],
    i: usize,
    depth: usize,
    track: &mut Track,
) -> Member {
    members::<SIMD, PLAIN, true>(s, i, depth, track)
}

/// [`members_tracked`] compiled for x86-64-v3, for the check's v3 build
/// (`super::check_v3`): out of line, it would otherwise keep the baseline build.
///
/// # Safety
/// The CPU must have the features enabled here.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
#[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
unsafe fn members_tracked_v3<const SIMD: bool, const PLAIN: bool>(
    s: &[u8],
    i: usize,
    depth: usize,
    track: &mut Track,
) -> Member {
    members::<SIMD, PLAIN, true>(s, i, depth, track)
}

/// Parses one complete JSON document, iteratively, with a bit stack of containers
/// (the innermost 64 in a register);
/// records the scalar values that `track`'s pointers lead to in `found`. Returns
/// whether the message held a raw CR or LF (white space), or `None` when it is not
/// one JSON value.
///
/// Laid out for compact market data: strings first, the kind of the innermost
/// container kept in a register, a comma tested before a closing bracket, and a key
/// parsed where the grammar knows one must come (after `{` and after `,` in an
/// object) instead of going round the value loop.
#[inline(always)]
pub(super) fn document<const SIMD: bool, const PLAIN: bool, const V3: bool>(
    s: &[u8],
    track: &mut Track,
) -> Option<bool> {
    let mut multiline = false;
    // The byte at `$i`, after any white space there (one load and one compare when
    // there is none).
    macro_rules! peek {
        ($i:ident) => {{
            let b = *s.get($i)?;
            if b > b' ' {
                b
            } else {
                let (j, newline) = ws_skip(s, $i);
                multiline |= newline;
                $i = j;
                *s.get($i)?
            }
        }};
    }
    // The kinds of the open containers, one bit each (1 = object): the innermost 64
    // in a register (`kinds`, the innermost in bit 0), deeper ones in `stack`, which
    // real messages never reach.
    let mut kinds = 0u64;
    let mut stack = scan::deep_stack();
    let mut depth = 0usize;
    // The innermost container is an object (meaningless at depth 0).
    let mut in_object = false;
    // Closes the innermost container.
    macro_rules! pop {
        () => {{
            depth -= 1;
            kinds >>= 1;
            if depth >= 64 {
                let level = depth - 64;
                kinds |= (stack[level / 64] >> (level % 64) & 1) << 63;
            }
            in_object = kinds & 1 != 0;
        }};
    }
    // The pointers that end at the value about to be parsed.
    let mut want = 0u32;
    let mut i = 0;
    let mut b = peek!(i);
    // A key at `i` (`b` is its opening quote), its colon, and the first byte of its
    // value into `b`.
    macro_rules! key {
        () => {{
            let (end, escaped) = string::<SIMD, PLAIN>(s, i)?;
            want = track.key(depth, s, i + 1..end - 1, escaped);
            i = end;
            if peek!(i) != b':' {
                return None;
            }
            i += 1;
            b = peek!(i);
        }};
    }
    // Members from the key at `i`; on [`Member::After`], `$after`, else the value
    // loop (`$value`, its label) takes over.
    macro_rules! members {
        ($value:lifetime, $after:expr) => {
            let member = if scan::windows::<SIMD>() && track.reaches(depth) {
                #[cfg(target_arch = "x86_64")]
                if V3 {
                    // SAFETY: V3 is set only by the v3 build of the check, which runs
                    // only on a CPU with these features.
                    unsafe { members_tracked_v3::<SIMD, PLAIN>(s, i, depth, track) }
                } else {
                    members_tracked::<SIMD, PLAIN>(s, i, depth, track)
                }
                #[cfg(not(target_arch = "x86_64"))]
                members_tracked::<SIMD, PLAIN>(s, i, depth, track)
            } else {
                members::<SIMD, PLAIN, false>(s, i, depth, track)
            };
            match member {
                Member::After(end) => {
                    i = end;
                    $after
                }
                Member::Value(at, w) => {
                    want = w;
                    i = at;
                    b = peek!(i);
                    continue $value;
                }
                Member::Key(at) => {
                    i = at;
                    key!();
                    continue $value;
                }
            }
        };
    }
    'value: loop {
        // `b` is the first byte of a value, at `i`.
        if b == b'"' {
            let (end, escaped) = string::<SIMD, PLAIN>(s, i)?;
            if want != 0 {
                track.record(want, i..end);
                if escaped {
                    track.escaped(want);
                }
            }
            i = end;
        } else if b == b'{' || b == b'[' {
            if depth == MAX_DEPTH {
                return None;
            }
            in_object = b == b'{';
            if depth >= 64 {
                // The container 64 levels out leaves the register for the stack.
                let level = depth - 64;
                let word = &mut stack[level / 64];
                *word = *word & !(1 << (level % 64)) | (kinds >> 63) << (level % 64);
            }
            kinds = kinds << 1 | in_object as u64;
            depth += 1;
            i += 1;
            b = peek!(i);
            if in_object {
                if b == b'"' {
                    // Then the after-value loop below, as after any value.
                    members!('value, {});
                } else if b != b'}' {
                    return None;
                } else {
                    // An empty object: it is the value just parsed.
                    i += 1;
                    pop!();
                }
            } else if b != b']' {
                want = track.item(depth, 0);
                continue 'value;
            } else {
                // An empty array: it is the value just parsed.
                i += 1;
                pop!();
            }
        } else {
            let end = if b == b'-' || b.is_ascii_digit() {
                number::<SIMD>(s, i)?
            } else {
                literal(s, i, b)?
            };
            if want != 0 {
                track.record(want, i..end);
            }
            i = end;
            // Numbers one after another in an array no pointer reaches (prices,
            // sizes, order-book levels): the next at once, without the rounds of
            // the value loop. (Depth 0 is reached by every `Track`.)
            if !in_object && !track.reaches(depth) {
                while s.get(i) == Some(&b',') && matches!(s.get(i + 1), Some(b'-' | b'0'..=b'9')) {
                    i = number::<SIMD>(s, i + 1)?;
                }
            }
        }
        // After a value: the next item, or close containers.
        loop {
            if depth == 0 {
                // Nothing but white space may follow the value.
                if i < s.len() {
                    let (j, newline) = ws_skip(s, i);
                    multiline |= newline;
                    i = j;
                }
                return (i == s.len()).then_some(multiline);
            }
            let next = peek!(i);
            i += 1;
            if next == b',' {
                b = peek!(i);
                if in_object {
                    if b != b'"' {
                        return None;
                    }
                    members!('value, continue);
                } else {
                    want = track.next_item(depth);
                }
                continue 'value;
            }
            if next != if in_object { b'}' } else { b']' } {
                return None;
            }
            pop!();
        }
    }
}
