//! The per-message JSON check: one pass over the bytes, no value tree, no allocation.
//!
//! A line must be one complete JSON value. The check also reports whether the message
//! holds a raw CR or LF (it can only be insignificant white space, since raw control
//! characters are invalid inside JSON strings), in which case [`compact_into`] writes it
//! as one line, and, in the same pass, where the values of a few JSON pointers are
//! ([`Pointers`]: for routing and for matching heartbeats).

use std::ops::Range;

/// Why a text message is not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// A zero-length text message.
    Empty,
    /// Text that is not one complete JSON value.
    NotJson,
}

/// What the check learnt about a valid message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Valid {
    /// The message holds a raw CR or LF and must be compacted before writing.
    pub multiline: bool,
}

/// Most pointers one check looks for (a bit each in a mask).
pub const MAX_POINTERS: usize = 32;
/// Most segments in one pointer (path levels tracked while parsing).
pub const MAX_POINTER_DEPTH: usize = 8;

/// One segment of a JSON pointer: an object key, which also matches an array index
/// when it is a number.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    key: Vec<u8>,
    index: Option<u32>,
}

/// A set of JSON pointers (RFC 6901) that [`check_with`] finds in the same pass. A
/// pointer finds a scalar value only (string, number, literal): one that leads to an
/// object or an array finds nothing. Keys are compared as they are written in the
/// message, without unescaping.
#[derive(Debug, Clone, Default)]
pub struct Pointers {
    list: Vec<Vec<Segment>>,
    /// Mask of every pointer.
    all: u32,
    /// Bit p set in `ends_at[d]` when pointer p has d segments.
    ends_at: [u32; MAX_POINTER_DEPTH + 1],
    /// Longest pointer, in segments (0 when there are none: nothing to track).
    depth: usize,
}

impl Pointers {
    /// Adds a pointer such as `/arg/instId` or `/data/0/symbol`; returns its index.
    pub fn add(&mut self, pointer: &str) -> Result<usize, String> {
        let Some(rest) = pointer.strip_prefix('/') else {
            return Err(format!(
                "\"{pointer}\" is not a JSON pointer (it must start with /)"
            ));
        };
        let segs: Vec<Segment> = rest
            .split('/')
            .map(|raw| {
                let key = raw.replace("~1", "/").replace("~0", "~").into_bytes();
                let index = (!key.is_empty()
                    && key.iter().all(u8::is_ascii_digit)
                    && (key == b"0" || key[0] != b'0'))
                    .then(|| std::str::from_utf8(&key).ok()?.parse().ok())
                    .flatten();
                Segment { key, index }
            })
            .collect();
        if segs.len() > MAX_POINTER_DEPTH {
            return Err(format!(
                "\"{pointer}\" is deeper than {MAX_POINTER_DEPTH} levels"
            ));
        }
        if let Some(i) = self.list.iter().position(|p| *p == segs) {
            return Ok(i);
        }
        let i = self.list.len();
        if i == MAX_POINTERS {
            return Err(format!("more than {MAX_POINTERS} different pointers"));
        }
        self.all |= 1 << i;
        self.ends_at[segs.len()] |= 1 << i;
        self.depth = self.depth.max(segs.len());
        self.list.push(segs);
        Ok(i)
    }

    /// How many pointers there are (the length [`check_with`] wants for `found`).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The pointers of `live` whose segment at `level` is the object key `key`.
    #[inline]
    fn by_key(&self, mut live: u32, level: usize, key: &[u8]) -> u32 {
        let mut out = 0;
        while live != 0 {
            let p = live.trailing_zeros() as usize;
            live &= live - 1;
            if self.list[p].get(level).is_some_and(|s| s.key == key) {
                out |= 1 << p;
            }
        }
        out
    }

    /// The pointers of `live` whose segment at `level` is the array index `index`.
    #[inline]
    fn by_index(&self, mut live: u32, level: usize, index: u32) -> u32 {
        let mut out = 0;
        while live != 0 {
            let p = live.trailing_zeros() as usize;
            live &= live - 1;
            if self.list[p]
                .get(level)
                .is_some_and(|s| s.index == Some(index))
            {
                out |= 1 << p;
            }
        }
        out
    }
}

/// What the parser tracks for the pointers: the pointers still matching at each level,
/// and the array index at each level.
struct Track<'p> {
    ptrs: &'p Pointers,
    live: [u32; MAX_POINTER_DEPTH + 1],
    index: [u32; MAX_POINTER_DEPTH + 1],
    /// Pointers found so far (the first value wins).
    found_mask: u32,
    /// `ptrs.depth`, at hand: deeper levels need no tracking.
    depth: usize,
}

impl Track<'_> {
    /// Entering the value of `key` in an object at `depth`: the pointers that end here.
    /// The common case, a level no pointer reaches, is one compare, inline.
    #[inline(always)]
    fn key(&mut self, depth: usize, key: &[u8]) -> u32 {
        if depth > self.depth {
            return 0;
        }
        self.key_at(depth, key)
    }

    #[inline(never)]
    fn key_at(&mut self, depth: usize, key: &[u8]) -> u32 {
        let live = self.ptrs.by_key(self.live[depth - 1], depth - 1, key);
        self.live[depth] = live;
        live & self.ptrs.ends_at[depth] & !self.found_mask
    }

    /// Entering item `index` of an array at `depth`: the pointers that end here.
    #[inline]
    fn item(&mut self, depth: usize, index: u32) -> u32 {
        if depth > self.depth {
            return 0;
        }
        self.index[depth] = index;
        let live = self.ptrs.by_index(self.live[depth - 1], depth - 1, index);
        self.live[depth] = live;
        live & self.ptrs.ends_at[depth] & !self.found_mask
    }

    #[inline(always)]
    fn next_item(&mut self, depth: usize) -> u32 {
        if depth > self.depth {
            return 0;
        }
        self.item(depth, self.index[depth] + 1)
    }
}

/// Deepest nesting accepted: a bound on the check's state, not on real messages.
const MAX_DEPTH: usize = 512;

/// Index of the first byte at or after `i` that may end a run of plain string bytes
/// (a quote, a backslash or a control character), or of the last few bytes' start.
///
/// Strings are most of a market-data message and this is the hottest loop of the
/// check, so it looks at 16 bytes at a time with SSE2 on x86_64 (always present there),
/// then 8 at a time with plain integer arithmetic (SWAR) on every target. `SIMD =
/// false` is the SWAR path alone, as on ARM (the tests run the check both ways).
#[inline(always)]
fn skip_plain<const SIMD: bool>(s: &[u8], i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    if SIMD {
        return match skip_plain_sse2(s, i) {
            Ok(found) => found,
            Err(tail) => skip_plain_unaligned(s, tail),
        };
    }
    skip_plain_swar(s, i)
}

/// The last 15 bytes after the SSE2 scan: eight at a time with unaligned loads (cheap
/// on x86_64); returns the first special byte's index or the last few bytes' start.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn skip_plain_unaligned(s: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = s.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap());
        let m = SwarWord::special(w);
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i
}

/// Words the SWAR scan works on.
trait SwarWord: Copy {
    /// The high bit of each byte that is a quote, a backslash or a control byte. A
    /// flag can be spurious only in a byte above a genuine one, so the lowest flag is
    /// always exact.
    fn special(self) -> Self;
}

macro_rules! swar_word {
    ($t:ty) => {
        impl SwarWord for $t {
            #[inline(always)]
            fn special(self) -> $t {
                const LO: $t = <$t>::MAX / 0xff;
                const HI: $t = LO << 7;
                let zero_in = |v: $t| v.wrapping_sub(LO) & !v & HI;
                let control = self.wrapping_sub(LO * 0x20) & !self & HI;
                zero_in(self ^ (LO * b'"' as $t)) | zero_in(self ^ (LO * b'\\' as $t)) | control
            }
        }
    };
}
swar_word!(u64);
swar_word!(u32);

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn skip_plain_sse2(s: &[u8], mut i: usize) -> Result<usize, usize> {
    use std::arch::x86_64::*;
    while i + 16 <= s.len() {
        // SAFETY: SSE2 is part of the x86_64 baseline, and the 16 bytes read start at
        // `i` with `i + 16 <= s.len()` (an unaligned load is allowed).
        let mask = unsafe {
            let v = _mm_loadu_si128(s.as_ptr().add(i).cast());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            // Unsigned v <= 0x1f exactly when max(v, 0x1f) == 0x1f.
            let limit = _mm_set1_epi8(0x1f);
            let control = _mm_cmpeq_epi8(_mm_max_epu8(v, limit), limit);
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
        };
        if mask != 0 {
            return Ok(i + mask.trailing_zeros() as usize);
        }
        i += 16;
    }
    Err(i)
}

/// How many of the 16 bytes at `i` are ASCII digits before the first that is not;
/// `None` when fewer than 16 bytes are left.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn digits_sse2(s: &[u8], i: usize) -> Option<usize> {
    use std::arch::x86_64::*;
    if i + 16 > s.len() {
        return None;
    }
    // SAFETY: SSE2 is part of the x86_64 baseline, and the 16 bytes read start at `i`
    // with `i + 16 <= s.len()` (an unaligned load is allowed).
    let digit = unsafe {
        let v = _mm_loadu_si128(s.as_ptr().add(i).cast());
        // A digit is v - '0' <= 9 unsigned, that is min(v - '0', 9) == v - '0'.
        let d = _mm_sub_epi8(v, _mm_set1_epi8(b'0' as i8));
        _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d)) as u32
    };
    Some((!digit | 1 << 16).trailing_zeros() as usize)
}

/// Bytes that may sit inside a string as they are (not a quote, a backslash or a
/// control character).
static PLAIN: [bool; 256] = {
    let mut t = [true; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = false;
        b += 1;
    }
    t[b'"' as usize] = false;
    t[b'\\' as usize] = false;
    t
};

/// The portable scan (ARM's): the first 8 bytes one by one (most strings end there),
/// then up to a word boundary, then a word (8 bytes; 4 on 32-bit targets) at a time
/// with integer arithmetic (SWAR), then the last bytes one by one; returns the index
/// of the first quote, backslash or control byte, or the length. Aligned words,
/// because ARMv6 (the Pi Zero) has strict alignment: there an unaligned word is
/// assembled from byte loads.
#[inline(always)]
fn skip_plain_swar(s: &[u8], mut i: usize) -> usize {
    // Most strings (keys, symbols, sides) end within a few bytes: bytes first.
    let Some(first) = s.get(i..(i + 8).min(s.len())) else {
        return i;
    };
    for &b in first {
        if !PLAIN[b as usize] {
            return i;
        }
        i += 1;
    }
    let rest = &s[i..];
    // SAFETY: every bit pattern is a valid Word; align_to only splits the slice.
    let (head, words, tail) = unsafe { rest.align_to::<Word>() };
    for &b in head {
        if !PLAIN[b as usize] {
            return i;
        }
        i += 1;
    }
    for &w in words {
        let m = SwarWord::special(Word::from_le(w));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += size_of::<Word>();
    }
    for &b in tail {
        if !PLAIN[b as usize] {
            return i;
        }
        i += 1;
    }
    i
}

/// The SWAR word: a register's width (32-bit ARM does 64-bit arithmetic in pairs).
#[cfg(target_pointer_width = "64")]
type Word = u64;
#[cfg(not(target_pointer_width = "64"))]
type Word = u32;

struct Parser<'a, const SIMD: bool> {
    s: &'a [u8],
    i: usize,
    multiline: bool,
}

/// Records `range` as the value of every pointer in `want`.
#[inline]
fn record(found: &mut [Option<Range<usize>>], track: &mut Track, want: u32, range: Range<usize>) {
    let mut w = want;
    while w != 0 {
        let p = w.trailing_zeros() as usize;
        w &= w - 1;
        found[p] = Some(range.clone());
    }
    track.found_mask |= want;
}

impl<const SIMD: bool> Parser<'_, SIMD> {
    /// Skips white space and returns the byte there (one load, one bounds check, in
    /// the common compact case).
    #[inline(always)]
    fn ws_peek(&mut self) -> Option<u8> {
        // Compact JSON has no white space: one compare decides.
        let b = *self.s.get(self.i)?;
        if b > b' ' {
            return Some(b);
        }
        self.ws_skip()
    }

    /// [`Parser::ws_peek`]'s loop, for the white space that is there.
    #[cold]
    #[inline(never)]
    fn ws_skip(&mut self) -> Option<u8> {
        loop {
            let b = *self.s.get(self.i)?;
            match b {
                b' ' | b'\t' => {}
                b'\n' | b'\r' => self.multiline = true,
                _ => return Some(b),
            }
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// Parses a string whose opening quote is at `self.i`; returns the content range.
    #[inline(always)]
    fn string(&mut self) -> Option<Range<usize>> {
        let start = self.i + 1;
        let mut i = start;
        let s = self.s;
        loop {
            i = skip_plain::<SIMD>(s, i);
            // Usually the closing quote: test for it first, without a table lookup.
            match *s.get(i)? {
                b'"' => {
                    self.i = i + 1;
                    return Some(start..i);
                }
                b'\\' => match *s.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    b'u' => {
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
        }
    }

    #[inline]
    fn digits(&mut self) -> bool {
        let start = self.i;
        #[cfg(target_arch = "x86_64")]
        if SIMD {
            // Timestamps and ids are 10-20 digits: 16 at a time.
            while let Some(n) = digits_sse2(self.s, self.i) {
                self.i += n;
                if n < 16 {
                    return self.i > start;
                }
            }
        }
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i > start
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !self.digits() {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !self.digits() {
                return None;
            }
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.s.get(self.i..self.i + word.len())? == word {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// Parses one complete JSON document, iteratively, with a bit stack of containers;
    /// records the scalar values that `track`'s pointers lead to in `found`.
    ///
    /// Laid out for compact market data: strings first, the kind of the innermost
    /// container kept in a register, and a comma tested before a closing bracket.
    fn document(&mut self, track: &mut Track, found: &mut [Option<Range<usize>>]) -> Option<()> {
        // One bit per level (1 = object): 64 bytes to clear per message, not 512.
        let mut stack = [0u64; MAX_DEPTH / 64];
        let mut depth = 0usize;
        // The innermost container is an object (meaningless at depth 0).
        let mut in_object = false;
        // The pointers that end at the value about to be parsed.
        let mut want = 0u32;
        'value: loop {
            let b = self.ws_peek()?;
            let start = self.i;
            if b == b'"' {
                self.string()?;
                if want != 0 {
                    record(found, track, want, start..self.i);
                }
            } else if b == b'{' || b == b'[' {
                if depth == MAX_DEPTH {
                    return None;
                }
                in_object = b == b'{';
                if in_object {
                    stack[depth / 64] |= 1 << (depth % 64);
                } else {
                    stack[depth / 64] &= !(1 << (depth % 64));
                }
                depth += 1;
                self.i += 1;
                let close = if in_object { b'}' } else { b']' };
                if self.ws_peek()? != close {
                    want = if in_object {
                        self.key(depth, track)?
                    } else {
                        track.item(depth, 0)
                    };
                    continue 'value;
                }
                // An empty container: it is the value just parsed.
                self.i += 1;
                depth -= 1;
                in_object = depth > 0 && stack[(depth - 1) / 64] >> ((depth - 1) % 64) & 1 == 1;
            } else {
                match b {
                    b't' => self.literal(b"true")?,
                    b'f' => self.literal(b"false")?,
                    b'n' => self.literal(b"null")?,
                    _ => self.number()?,
                }
                if want != 0 {
                    record(found, track, want, start..self.i);
                }
            }
            // After a value: the next item, or close containers.
            loop {
                let next = self.ws_peek();
                if depth == 0 {
                    return next.is_none().then_some(());
                }
                let next = next?;
                self.i += 1;
                if next == b',' {
                    want = if in_object {
                        self.key(depth, track)?
                    } else {
                        track.next_item(depth)
                    };
                    continue 'value;
                }
                if next != if in_object { b'}' } else { b']' } {
                    return None;
                }
                depth -= 1;
                in_object = depth > 0 && stack[(depth - 1) / 64] >> ((depth - 1) % 64) & 1 == 1;
            }
        }
    }

    /// Parses `"key" :`; returns the pointers that end at its value.
    #[inline(always)]
    fn key(&mut self, depth: usize, track: &mut Track) -> Option<u32> {
        if self.ws_peek()? != b'"' {
            return None;
        }
        let k = self.string()?;
        if self.ws_peek()? != b':' {
            return None;
        }
        self.i += 1;
        Some(track.key(depth, &self.s[k]))
    }
}

/// Checks that `msg` is exactly one JSON value (surrounding white space allowed).
pub fn check(msg: &[u8]) -> Result<Valid, Reject> {
    check_with(msg, &Pointers::default(), &mut [])
}

/// [`check`], also finding the values of `ptrs`: `found[p]` becomes the byte range of
/// pointer p's value as written (a string with its quotes), or `None`. `found` must
/// have `ptrs.len()` entries.
pub fn check_with(
    msg: &[u8],
    ptrs: &Pointers,
    found: &mut [Option<Range<usize>>],
) -> Result<Valid, Reject> {
    check_scan::<true>(msg, ptrs, found)
}

/// [`check_with`] with the string scan chosen: `SIMD = false` is the portable SWAR
/// scan alone (what ARM runs), for the tests.
#[inline(always)]
fn check_scan<const SIMD: bool>(
    msg: &[u8],
    ptrs: &Pointers,
    found: &mut [Option<Range<usize>>],
) -> Result<Valid, Reject> {
    if msg.is_empty() {
        return Err(Reject::Empty);
    }
    found.fill(None);
    let mut track = Track {
        ptrs,
        live: [0; MAX_POINTER_DEPTH + 1],
        index: [0; MAX_POINTER_DEPTH + 1],
        found_mask: 0,
        depth: ptrs.depth,
    };
    track.live[0] = ptrs.all;
    let mut p = Parser::<SIMD> {
        s: msg,
        i: 0,
        multiline: false,
    };
    match p.document(&mut track, found) {
        Some(()) => Ok(Valid {
            multiline: p.multiline,
        }),
        None => Err(Reject::NotJson),
    }
}

/// The text a found value stands for in a route key: a string's contents (without the
/// quotes, as written), or a number or literal as written.
pub fn unquoted(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        v => v,
    }
}

/// Appends `msg` (already checked) to `out` without white space outside strings.
pub fn compact_into(msg: &[u8], out: &mut Vec<u8>) {
    let mut in_string = false;
    let mut escaped = false;
    for &b in msg {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            if b == b'"' {
                in_string = true;
            }
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_scan_finds_every_special_byte_at_every_offset() {
        for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
            for len in 0..40 {
                for pos in 0..len {
                    let mut v = vec![b'a'; len];
                    // Bytes that must not stop the scan: high UTF-8 bytes and 0x20.
                    for (k, b) in v.iter_mut().enumerate() {
                        *b = [b'a', 0xc3, 0xa9, b' ', 0x7f, 0xff][k % 6];
                    }
                    v[pos] = special;
                    let got = skip_plain::<true>(&v, 0);
                    assert!(skip_plain_swar(&v, 0) <= pos);
                    assert!(got <= pos, "special {special:#x} at {pos} of {len}: {got}");
                    // Every byte before the answer is plain.
                    assert!(
                        v[..got]
                            .iter()
                            .all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
                    );
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn digit_scan_stops_at_the_first_non_digit() {
        // Neighbours of '0'..'9' and bytes whose low bits look like digits.
        for stop in [b'/', b':', b'.', b'e', b'-', 0x00, 0xb0, 0xff, b' '] {
            for len in 16..40 {
                for k in 0..len {
                    let mut v: Vec<u8> = (0..len).map(|j| b'0' + (j % 10) as u8).collect();
                    v[k] = stop;
                    let want = k.min(16);
                    for at in 0..=len - 16 {
                        let got = digits_sse2(&v, at).unwrap();
                        let expect = if at <= k {
                            (k - at).min(16)
                        } else {
                            16.min(len - at)
                        };
                        assert_eq!(got, expect.min(16), "stop {stop:#x} at {k}, from {at}");
                    }
                    assert_eq!(digits_sse2(&v, 0), Some(want));
                }
                assert_eq!(digits_sse2(&vec![b'1'; len], len - 15), None);
            }
        }
    }

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
        let kraken2 =
            br#"{"channel":"trade","data":[{"symbol":"BTC/USD","qty":0.1},{"symbol":"X"}]}"#;
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
    /// a single line that serde_json reads as the same value. Run on each string scan:
    /// SIMD (SSE2 on x86_64) and the portable SWAR scan alone (ARM's).
    #[test]
    fn agrees_with_serde_json_on_mutated_messages() {
        differential(check_scan::<true>);
        differential(check_scan::<false>);
    }

    type Check = fn(&[u8], &Pointers, &mut [Option<Range<usize>>]) -> Result<Valid, Reject>;

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
}
