//! The scanning kernels: the loops that run over many bytes at once. The only
//! `unsafe` code and the only `cfg(target_arch)` of the JSON check live here.

use super::grammar::MAX_DEPTH;

/// The word of `s` at `a`, which the caller knows to be aligned, or `None` when it is
/// not wholly inside `s`.
#[inline(always)]
fn aligned_word(s: &[u8], a: usize) -> Option<Word> {
    debug_assert_eq!((s.as_ptr() as usize).wrapping_add(a) % size_of::<Word>(), 0);
    if a + size_of::<Word>() > s.len() {
        return None;
    }
    // SAFETY: `a + size_of::<Word>() <= s.len()`, and the caller's `a` makes
    // `s.as_ptr() + a` a multiple of the word's size (checked in debug builds); every
    // bit pattern is a valid Word.
    Some(Word::from_le(unsafe {
        s.as_ptr().add(a).cast::<Word>().read()
    }))
}

/// Index of the first byte at or after `i` that may end a run of plain string bytes
/// (a quote, a backslash or a control character), or the length (or, on the SWAR
/// path, the start of the last few bytes, which the caller then takes one by one).
///
/// Strings are most of a market-data message and this is the hottest loop of the
/// check, so it looks at 16 bytes at a time with SSE2 on x86_64 (always present there),
/// and 8 at a time with plain integer arithmetic (SWAR) on every other target. `SIMD =
/// false` is the SWAR path alone, as on ARM (the tests run the check both ways).
#[inline(always)]
pub(super) fn skip_plain<const SIMD: bool>(s: &[u8], i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    if SIMD {
        return skip_plain_sse2(s, i);
    }
    skip_plain_swar(s, i)
}

/// Whether `s` holds no backslash and no control byte at all, as most market data
/// does: then a string ends at the next quote, and the scans look for quotes alone.
/// On x86_64 with `SIMD`, 16 bytes at a time: a running unsigned minimum (a control
/// byte is below 0x20) and a running OR of the backslash compares, one test at the
/// end. Elsewhere `false`, and the scans look for all three.
#[inline(always)]
pub(super) fn plain<const SIMD: bool>(s: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if SIMD && s.len() >= 16 {
        use std::arch::x86_64::*;
        // SAFETY (every block below): SSE2 is part of the x86_64 baseline, and each
        // 16 bytes read start at an index at most `s.len() - 16` (unaligned loads are
        // allowed).
        unsafe {
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let mut low = _mm_set1_epi8(-1);
            let mut bs = _mm_setzero_si128();
            let last = s.len() - 16;
            let mut i = 0;
            while i < last {
                let v = _mm_loadu_si128(s.as_ptr().add(i).cast());
                low = _mm_min_epu8(low, v);
                bs = _mm_or_si128(bs, _mm_cmpeq_epi8(v, backslash));
                i += 16;
            }
            // The last bytes: in the last 16, read again.
            let v = _mm_loadu_si128(s.as_ptr().add(last).cast());
            low = _mm_min_epu8(low, v);
            bs = _mm_or_si128(bs, _mm_cmpeq_epi8(v, backslash));
            let limit = _mm_set1_epi8(0x1f);
            let control = _mm_cmpeq_epi8(_mm_max_epu8(low, limit), limit);
            return _mm_movemask_epi8(_mm_or_si128(bs, control)) == 0;
        }
    }
    let _ = s;
    false
}

/// Index of the first quote at or after `i`, or the length: [`skip_plain`] for a
/// message that is [`plain`] (x86_64 with `SIMD` only).
#[inline(always)]
pub(super) fn skip_to_quote<const SIMD: bool>(s: &[u8], i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    if SIMD {
        use std::arch::x86_64::*;
        let mut i = i;
        while s.len() >= 16 && i <= s.len() - 16 {
            // SAFETY: SSE2 is part of the x86_64 baseline, and the 16 bytes read start
            // at `i` with `i + 16 <= s.len()` (an unaligned load is allowed).
            let mask = unsafe {
                let v = _mm_loadu_si128(s.as_ptr().add(i).cast());
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8))) as u32
            };
            if mask != 0 {
                return i + mask.trailing_zeros() as usize;
            }
            i += 16;
        }
        return skip_plain_end(s, i);
    }
    skip_plain::<SIMD>(s, i)
}

/// The mask of the quotes, backslashes and control bytes among the 16 bytes at `i`
/// (bit k for byte i + k), or `None` when fewer than 16 bytes are left.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn special16(s: &[u8], i: usize) -> Option<u32> {
    use std::arch::x86_64::*;
    if s.len() < 16 || i > s.len() - 16 {
        return None;
    }
    // SAFETY: SSE2 is part of the x86_64 baseline, and the 16 bytes read start at `i`
    // with `i + 16 <= s.len()` (an unaligned load is allowed).
    Some(unsafe {
        let v = _mm_loadu_si128(s.as_ptr().add(i).cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned v <= 0x1f exactly when max(v, 0x1f) == 0x1f.
        let limit = _mm_set1_epi8(0x1f);
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, limit), limit);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    })
}

/// [`skip_plain`] with SSE2: 16 bytes at a time, and the last bytes in the message's
/// last 16 (read again from the left); the exact index, or the length.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn skip_plain_sse2(s: &[u8], mut i: usize) -> usize {
    while let Some(mask) = special16(s, i) {
        if mask != 0 {
            return i + mask.trailing_zeros() as usize;
        }
        i += 16;
    }
    skip_plain_end(s, i)
}

/// [`skip_plain_sse2`] in the last 15 bytes, out of line (a few strings a message).
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn skip_plain_end(s: &[u8], i: usize) -> usize {
    let len = s.len();
    if i >= len {
        return len;
    }
    if len >= 16 {
        let base = len - 16;
        // Bytes before `i` (base..i) were scanned already: shifted out.
        let mask = special16(s, base).unwrap_or(0) >> (i - base);
        return if mask != 0 {
            i + mask.trailing_zeros() as usize
        } else {
            len
        };
    }
    // A message shorter than 16 bytes.
    i + s[i..].iter().take_while(|&&b| PLAIN[b as usize]).count()
}

/// Words the SWAR scans work on.
trait SwarWord: Copy {
    /// The high bit of each byte that is a quote, a backslash or a control byte. A
    /// flag can be spurious only in a byte above a genuine one, so the lowest flag is
    /// always exact.
    fn special(self) -> Self;
    /// The high bit of each byte that is not an ASCII digit; the lowest flag is exact.
    fn nondigit(self) -> Self;
}

macro_rules! swar_word {
    ($t:ty) => {
        impl SwarWord for $t {
            #[inline(always)]
            fn special(self) -> $t {
                const LO: $t = <$t>::MAX / 0xff;
                const HI: $t = LO << 7;
                // A byte's `x - 1` (x = the byte xor a quote, or a backslash) or `b -
                // 0x20` has its high bit set when it borrowed, or when the byte's own
                // high bit is set, the same bit in all three: cleared once, by `!self`.
                let quote = (self ^ LO * b'"' as $t).wrapping_sub(LO);
                let backslash = (self ^ LO * b'\\' as $t).wrapping_sub(LO);
                let control = self.wrapping_sub(LO * 0x20);
                (quote | backslash | control) & !self & HI
            }
            #[inline(always)]
            fn nondigit(self) -> $t {
                const LO: $t = <$t>::MAX / 0xff;
                const HI: $t = LO << 7;
                // Below '0': `b - 0x30` borrows; above '9': `b + 0x46` reaches 0x80; a
                // carry or borrow leaves only a flagged byte.
                (self.wrapping_add(LO * 0x46) | self.wrapping_sub(LO * b'0' as $t) | self) & HI
            }
        }
    };
}
swar_word!(u64);
swar_word!(u32);

/// The aligned word of `s` that holds byte `i`: its first index and its value, or
/// `None` when that word is not wholly inside `s` (the message's first and last few
/// bytes). ARMv6 (the Pi Zero) has strict alignment: an unaligned word would be
/// assembled from byte loads.
#[inline(always)]
fn word_at(s: &[u8], i: usize) -> Option<(usize, Word)> {
    let a = i.checked_sub((s.as_ptr() as usize).wrapping_add(i) % size_of::<Word>())?;
    aligned_word(s, a).map(|w| (a, w))
}

/// Masks of the 32 bytes of a message from one index: bit k stands for byte k.
#[derive(Clone, Copy)]
pub(super) struct Window {
    /// Quotes.
    pub(super) quote: u32,
    /// Backslashes and control bytes: a string must not hold one as it is.
    pub(super) special: u32,
    /// ASCII digits.
    pub(super) digit: u32,
}

/// Whether [`window`] reads windows here (x86_64 with `SIMD`).
#[inline(always)]
pub(super) const fn windows<const SIMD: bool>() -> bool {
    cfg!(target_arch = "x86_64") && SIMD
}

/// The [`Window`] of the 32 bytes `w`, on x86_64 with `SIMD` (two SSE2 loads); `None`
/// elsewhere (the grammar then takes its general path, which is complete on its own).
/// `plain`: the message holds no backslash and no control byte ([`plain`]), so
/// `special` is 0 without looking.
#[inline(always)]
pub(super) fn window<const SIMD: bool>(w: &[u8; 32], plain: bool) -> Option<Window> {
    #[cfg(target_arch = "x86_64")]
    if SIMD {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86_64 baseline, and the 16 bytes read at `at`
        // (0 or 16) are inside the 32 of `w` (unaligned loads are allowed).
        let half = |at: usize| unsafe {
            let v = _mm_loadu_si128(w.as_ptr().add(at).cast());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            // A plain message has none: not looked for.
            let special = if plain {
                0
            } else {
                let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
                let limit = _mm_set1_epi8(0x1f);
                let control = _mm_cmpeq_epi8(_mm_max_epu8(v, limit), limit);
                _mm_movemask_epi8(_mm_or_si128(backslash, control)) as u32
            };
            let d = _mm_sub_epi8(v, _mm_set1_epi8(b'0' as i8));
            let digit = _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d);
            (
                _mm_movemask_epi8(quote) as u32,
                special,
                _mm_movemask_epi8(digit) as u32,
            )
        };
        let (q0, s0, d0) = half(0);
        let (q1, s1, d1) = half(16);
        return Some(Window {
            quote: q0 | q1 << 16,
            special: s0 | s1 << 16,
            digit: d0 | d1 << 16,
        });
    }
    let _ = (w, plain);
    None
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

/// Index of the first byte at or after `i` that is not an ASCII digit (or the length).
/// Timestamps and ids are 10-20 digits: 16 at a time with SSE2 on x86_64.
#[inline(always)]
pub(super) fn digits<const SIMD: bool>(s: &[u8], i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    if SIMD {
        let mut i = i;
        while let Some(n) = digits_sse2(s, i) {
            i += n;
            if n < 16 {
                return i;
            }
        }
        while matches!(s.get(i), Some(b'0'..=b'9')) {
            i += 1;
        }
        return i;
    }
    digits_swar(s, i)
}

/// [`digits`] as ARM runs it: [`swar_run`] over digits.
#[inline(always)]
fn digits_swar(s: &[u8], i: usize) -> usize {
    swar_run::<Digits>(s, i)
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

/// The portable string scan (ARM's): [`swar_run`] over plain string bytes; the index
/// of the first quote, backslash or control byte at or after `i`, or the length.
#[inline(always)]
pub(super) fn skip_plain_swar(s: &[u8], i: usize) -> usize {
    swar_run::<Plain>(s, i)
}

/// A class of bytes a portable scan runs over.
trait Class {
    /// Which bytes are in the class.
    fn table() -> &'static [bool; 256];
    /// The high bit of each byte of `w` not in the class; the lowest flag is exact.
    fn outside(w: Word) -> Word;
}

/// Plain string bytes ([`PLAIN`]).
struct Plain;

impl Class for Plain {
    #[inline(always)]
    fn table() -> &'static [bool; 256] {
        &PLAIN
    }
    #[inline(always)]
    fn outside(w: Word) -> Word {
        SwarWord::special(w)
    }
}

/// ASCII digits.
struct Digits;

impl Class for Digits {
    #[inline(always)]
    fn table() -> &'static [bool; 256] {
        static DIGIT: [bool; 256] = {
            let mut t = [false; 256];
            let mut b = b'0';
            while b <= b'9' {
                t[b as usize] = true;
                b += 1;
            }
            t
        };
        &DIGIT
    }
    #[inline(always)]
    fn outside(w: Word) -> Word {
        SwarWord::nondigit(w)
    }
}

/// The index of the first byte at or after `i` not in class `C`, or the length. The
/// first 16 bytes one by one, unrolled, two a test through the class's table (most
/// strings, keys, symbols, sides, prices and timestamps end there: on ARMv6 three
/// instructions a byte, where a word costs 15 and the alignment wastes some); then
/// out of line a word (8 bytes; 4 on 32-bit targets) at a time with integer
/// arithmetic (SWAR), aligned words only, from the one that holds the next byte; the
/// message's first and last few bytes one by one.
#[inline(always)]
fn swar_run<C: Class>(s: &[u8], i: usize) -> usize {
    let Some(first) = s.get(i..).and_then(<[u8]>::first_chunk::<16>) else {
        return swar_bytes::<C>(s, i);
    };
    let table = C::table();
    // The first of two bytes that is not in the class is the second when the first is.
    for k in (0..16).step_by(2) {
        let (a, b) = (table[first[k] as usize], table[first[k + 1] as usize]);
        if !(a & b) {
            return i + k + a as usize;
        }
    }
    swar_long::<C>(s, i + 16)
}

/// [`swar_run`] after the first 16 bytes, out of line: the loop keeps its constants
/// in registers.
#[inline(never)]
fn swar_long<C: Class>(s: &[u8], i: usize) -> usize {
    let Some((a, w)) = word_at(s, i) else {
        return swar_bytes::<C>(s, i);
    };
    // The bytes before `i` shifted out; the zero bytes shifted in are outside either
    // class (a control byte, not a digit) and above every real byte, so a flag there
    // only says that the word's bytes from `i` on are all in the class.
    let m = C::outside(w >> (8 * (i - a)));
    let end = i + (m.trailing_zeros() / 8) as usize;
    if end < a + size_of::<Word>() {
        return end;
    }
    let mut a = a + size_of::<Word>();
    while let Some(w) = aligned_word(s, a) {
        let m = C::outside(w);
        if m != 0 {
            return a + (m.trailing_zeros() / 8) as usize;
        }
        a += size_of::<Word>();
    }
    swar_bytes::<C>(s, a)
}

/// [`swar_run`] one byte at a time, up to the first aligned word wholly inside `s`.
#[inline(never)]
fn swar_bytes<C: Class>(s: &[u8], mut i: usize) -> usize {
    let table = C::table();
    while let Some(&b) = s.get(i) {
        if !table[b as usize] {
            return i;
        }
        i += 1;
        if (s.as_ptr() as usize).wrapping_add(i) % size_of::<Word>() == 0
            && i + size_of::<Word>() <= s.len()
        {
            return swar_run::<C>(s, i);
        }
    }
    i
}

/// The SWAR word: a register's width (32-bit ARM does 64-bit arithmetic in pairs).
#[cfg(target_pointer_width = "64")]
type Word = u64;
#[cfg(not(target_pointer_width = "64"))]
type Word = u32;

/// The grammar's bit stack of the containers deeper than the 64 it keeps in a register,
/// as words indexed by `level / 64`: an array of zeros, which real messages never
/// touch. On 32-bit ARM zeroing it was a call of `memset` per message (some 60
/// instructions on ARMv6), so there it is made on the first write.
#[cfg(not(target_arch = "arm"))]
#[inline(always)]
pub(super) fn deep_stack() -> [u64; MAX_DEPTH / 64] {
    [0; MAX_DEPTH / 64]
}

/// [`deep_stack`] on 32-bit ARM: reads as zeros until written.
#[cfg(target_arch = "arm")]
#[inline(always)]
pub(super) fn deep_stack() -> DeepStack {
    DeepStack(None)
}

/// The bit stack of [`deep_stack`], made on the first write.
#[cfg(target_arch = "arm")]
pub(super) struct DeepStack(Option<[u64; MAX_DEPTH / 64]>);

#[cfg(target_arch = "arm")]
impl std::ops::Index<usize> for DeepStack {
    type Output = u64;
    #[inline(always)]
    fn index(&self, word: usize) -> &u64 {
        self.0.as_ref().map_or(&0, |stack| &stack[word])
    }
}

#[cfg(target_arch = "arm")]
impl std::ops::IndexMut<usize> for DeepStack {
    #[inline(always)]
    fn index_mut(&mut self, word: usize) -> &mut u64 {
        &mut self.0.get_or_insert([0; MAX_DEPTH / 64])[word]
    }
}

/// Appends `msg` to `out`, as `extend_from_slice` does. On 32-bit ARM a message of
/// 16 bytes or more is copied a word at a time here instead. zig's compiler-rt
/// `memcpy` stores every byte alone on ARMv6 (built strict-align); the one the static
/// builds use now (`compiler_builtins`', scripts/cross-build) copies by words, but
/// this copy still beats it for the line sink's message, whose source and
/// destination are rarely aligned alike: 4,320 against 4,554 instructions per
/// message, whole process (`scripts/arm-insn-count`, 2026-12-02).
#[inline(always)]
pub(super) fn copy_into(msg: &[u8], out: &mut Vec<u8>) {
    #[cfg(target_arch = "arm")]
    if msg.len() >= 16 {
        return copy_words(msg, out);
    }
    out.extend_from_slice(msg);
}

/// [`copy_into`] by words: bytes one by one until the destination is word-aligned
/// (and the source word that holds the next byte starts inside `msg`), then aligned
/// words only, each destination word put together from two source words by shifts
/// (a strict-alignment target has no unaligned word load), then the last bytes one by
/// one. Every target compiles it, so that the tests run it natively.
#[cfg_attr(not(target_arch = "arm"), allow(dead_code))]
#[inline(never)]
pub(super) fn copy_words(msg: &[u8], out: &mut Vec<u8>) {
    let n = msg.len();
    if n < 16 {
        out.extend_from_slice(msg);
        return;
    }
    out.reserve(n);
    let len = out.len();
    let src = msg.as_ptr();
    // SAFETY: `reserve` made room for `n` more bytes after `len`, and every write
    // below is at `dst + j` with `j < n`; every read is of `msg`: the byte reads at
    // indices below `n`, the word reads of aligned words whose four bytes lie inside
    // `msg` (the first at `k - r >= 0`, the last ending at `base + 4 * (words + 1) <=
    // n`). The `n` bytes are all written before `set_len`.
    unsafe {
        let dst = out.as_mut_ptr().add(len);
        // Destination bytes before its first aligned word (0-3), and the offset `r`
        // of the source byte that lands there within its own aligned word: the
        // source word read first starts `r` bytes before it, so at least `r` bytes
        // are copied one by one first (4 more when that would start before `msg`).
        let mut k = (4 - (dst as usize & 3)) & 3;
        let r = (src as usize + k) & 3;
        if k < r {
            k += 4;
        }
        for j in 0..k {
            *dst.add(j) = *src.add(j);
        }
        // Source bytes `base..base + 4` are the aligned word that holds byte `k`.
        let base = k - r;
        // Destination words formed from two whole source words each.
        let words = (n - base) / 4 - 1;
        let mut s = src.add(base).cast::<u32>();
        let mut d = dst.add(k).cast::<u32>();
        // Eight words a round, then one at a time.
        let (rounds, rest) = (words / 8, words % 8);
        if r == 0 {
            // Volatile, so that the compiler does not turn the loop back into a call
            // of `memcpy`.
            for _ in 0..rounds {
                let w = [0, 1, 2, 3, 4, 5, 6, 7].map(|j| s.add(j).read_volatile());
                for (j, w) in w.into_iter().enumerate() {
                    d.add(j).write_volatile(w);
                }
                s = s.add(8);
                d = d.add(8);
            }
            for j in 0..rest {
                d.add(j).write_volatile(s.add(j).read_volatile());
            }
        } else {
            // Little-endian: byte `r` of `lo` is the first, then `hi`'s bytes.
            let (right, left) = (8 * r as u32, 32 - 8 * r as u32);
            let mut lo = u32::from_le(s.read());
            for _ in 0..rounds {
                let w = [1, 2, 3, 4, 5, 6, 7, 8].map(|j| u32::from_le(s.add(j).read()));
                let mut prev = lo;
                for (j, &w) in w.iter().enumerate() {
                    d.add(j).write((prev >> right | w << left).to_le());
                    prev = w;
                }
                lo = w[7];
                s = s.add(8);
                d = d.add(8);
            }
            for _ in 0..rest {
                let hi = u32::from_le(s.add(1).read());
                d.write((lo >> right | hi << left).to_le());
                lo = hi;
                s = s.add(1);
                d = d.add(1);
            }
        }
        for j in k + 4 * words..n {
            *dst.add(j) = *src.add(j);
        }
        out.set_len(len + n);
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

    #[test]
    fn swar_scans_are_exact_from_every_index_at_every_alignment() {
        // Bytes around each class's edges: specials, digits and their neighbours,
        // high bytes, and the values the fill and the borrows could confuse.
        let alphabet = [
            b'"', b'\\', 0x00, 0x1f, b'\n', b' ', b'!', b'#', b'0', b'9', b'/', b':', b'1', b'5',
            b'a', b'x', 0x5b, 0x5d, 0x60, 0x7f, 0x80, 0xa2, 0xb0, 0xba, 0xdc, 0xff,
        ];
        let mut state = 0x9e37_79b9_u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for round in 0..400 {
            let len = (next() % 48) as usize;
            // Mostly plain or mostly digits, so that runs reach across words.
            let dense = round % 3;
            let mut buf = vec![0u8; len + 8];
            for b in buf.iter_mut() {
                let r = next();
                *b = match (dense, r % 8) {
                    (0, 0..=5) => b'q',
                    (1, 0..=5) => b'0' + (r / 8 % 10) as u8,
                    _ => alphabet[(r / 8) as usize % alphabet.len()],
                };
            }
            for start in 0..8 {
                let s = &buf[start..start + len];
                for i in 0..=len {
                    let plain = i + s[i..].iter().take_while(|&&b| PLAIN[b as usize]).count();
                    assert_eq!(skip_plain_swar(s, i), plain, "{s:?} from {i}");
                    let want = i + s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
                    assert_eq!(digits_swar(s, i), want, "{s:?} from {i}");
                    assert_eq!(digits::<true>(s, i), want, "{s:?} from {i}");
                }
            }
        }
    }

    #[test]
    fn word_copy_copies_every_length_at_every_alignment() {
        let msg: Vec<u8> = (0..200u32).map(|k| (k * 7 + 3) as u8).collect();
        for start in 0..8 {
            for n in 0..80 {
                for prefix in 0..8 {
                    let mut out: Vec<u8> = Vec::with_capacity(4);
                    out.extend((0..prefix).map(|k| k as u8 ^ 0xaa));
                    let part = &msg[start..start + n];
                    copy_words(part, &mut out);
                    assert_eq!(
                        &out[..prefix],
                        &(0..prefix).map(|k| k as u8 ^ 0xaa).collect::<Vec<_>>()[..]
                    );
                    assert_eq!(
                        &out[prefix..],
                        part,
                        "start {start}, length {n}, after {prefix}"
                    );
                    let mut again = out.clone();
                    copy_into(part, &mut again);
                    assert_eq!(&again[prefix + n..], part);
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
}
