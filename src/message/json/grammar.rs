//! The grammar: one iterative pass that proves a message is one complete JSON value
//! (RFC 8259) and tells the pointer layer where it is.

use std::ops::Range;

use super::pointer::{Track, record};
use super::scan;

/// Deepest nesting accepted: a bound on the check's state, not on real messages.
pub(super) const MAX_DEPTH: usize = 512;

/// The grammar's state over one message. `SIMD = false` scans with the portable SWAR
/// kernels alone (what ARM runs), for the tests.
pub(super) struct Parser<'a, const SIMD: bool> {
    s: &'a [u8],
    i: usize,
    multiline: bool,
}

impl<'a, const SIMD: bool> Parser<'a, SIMD> {
    /// A parser at the start of `s`.
    #[inline(always)]
    pub(super) fn new(s: &'a [u8]) -> Self {
        Parser {
            s,
            i: 0,
            multiline: false,
        }
    }

    /// Whether the message held a raw CR or LF (white space), once parsed.
    #[inline(always)]
    pub(super) fn multiline(&self) -> bool {
        self.multiline
    }

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

    /// Parses a string whose opening quote is at `self.i`; returns whether it holds a
    /// backslash escape (its text then differs from its bytes).
    #[inline(always)]
    fn string(&mut self) -> Option<bool> {
        let mut i = self.i + 1;
        let s = self.s;
        let mut escaped = false;
        loop {
            i = scan::skip_plain::<SIMD>(s, i);
            // Usually the closing quote: test for it first, without a table lookup.
            match *s.get(i)? {
                b'"' => {
                    self.i = i + 1;
                    return Some(escaped);
                }
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
        }
    }

    #[inline]
    fn digits(&mut self) -> bool {
        let start = self.i;
        self.i = scan::digits::<SIMD>(self.s, self.i);
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
    pub(super) fn document(
        &mut self,
        track: &mut Track,
        found: &mut [Option<Range<usize>>],
    ) -> Option<()> {
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
                let escaped = self.string()?;
                if want != 0 {
                    record(found, track, want, start..self.i);
                    if escaped {
                        track.escaped(want);
                    }
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
        let start = self.i + 1;
        let escaped = self.string()?;
        let k = start..self.i - 1;
        if self.ws_peek()? != b':' {
            return None;
        }
        self.i += 1;
        Some(track.key(depth, self.s, k, escaped))
    }
}
