//! The per-message JSON check: one pass over the bytes, no value tree, no allocation.
//!
//! A line must be one complete JSON value. The check also reports whether the message
//! holds a raw CR or LF (it can only be insignificant white space, since raw control
//! characters are invalid inside JSON strings), in which case [`compact_into`] writes it
//! as one line, and, in the same pass, where the values of a few JSON pointers are
//! ([`Pointers`]: for routing and for matching heartbeats), compared as the strings
//! they are ([`text`], [`equals`]).
//!
//! Three layers, a file each: `pointer` (which values are wanted, and which pointers
//! still match where the parser is), `scan` (the byte loops, the only `unsafe` and
//! platform code) and `grammar` (the JSON grammar, which drives both); `text` reads
//! found values as the strings they are.

mod grammar;
mod pointer;
mod scan;
#[cfg(test)]
mod tests;
mod text;

use std::ops::Range;

use pointer::Track;
pub use pointer::{MAX_POINTER_DEPTH, MAX_POINTERS, Pointers};
pub use text::{equals, push_text, text, unquoted};

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
    /// Bit p set when pointer p found a string written with backslash escapes: compare
    /// it through [`text`] or [`equals`], which decode it (only then).
    pub escaped: u32,
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
    #[cfg(target_arch = "x86_64")]
    if has_v3() {
        // SAFETY: the CPU has every feature check_v3 is compiled for.
        return unsafe { check_v3(msg, ptrs, found) };
    }
    check_scan::<true, false>(msg, ptrs, found)
}

/// Whether this x86_64 CPU has what [`check_v3`] is compiled for (AVX2 and BMI2 come
/// together with BMI1, LZCNT and POPCNT on every CPU that has them: Haswell, Zen).
/// Asked once: std's own cache costs two calls per message (16 instructions on the
/// trade message), this one load and compare.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn has_v3() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    /// 0: not asked yet; 1: no; 2: yes.
    static V3: AtomicU8 = AtomicU8::new(0);
    #[cold]
    fn ask() -> bool {
        let yes = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("bmi2");
        V3.store(1 + yes as u8, Ordering::Relaxed);
        yes
    }
    match V3.load(Ordering::Relaxed) {
        0 => ask(),
        v => v == 2,
    }
}

/// The same check compiled for x86-64-v3's instructions (BMI's `tzcnt`, `blsr`,
/// `shlx`; VEX three-operand SSE), chosen at run time so that the static binary still
/// runs on any x86_64: 1,212 -> 1,087 instructions on the trade message (callgrind).
/// The SSE2 intrinsics stay 16 bytes wide; what the compiler gains is in the code
/// around them. Functions the check does not inline keep the baseline build.
///
/// # Safety
/// The CPU must have the features enabled here ([`has_v3`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
unsafe fn check_v3(
    msg: &[u8],
    ptrs: &Pointers,
    found: &mut [Option<Range<usize>>],
) -> Result<Valid, Reject> {
    check_scan::<true, true>(msg, ptrs, found)
}

/// Every build of the check this machine can run, for the tests: the SIMD scan
/// (SSE2 on x86_64), its x86-64-v3 build where the CPU has it, and the portable SWAR
/// scan alone (ARM's).
#[cfg(test)]
pub(super) fn builds() -> Vec<tests::Check> {
    let mut all: Vec<tests::Check> = vec![check_scan::<true, false>, check_scan::<false, false>];
    #[cfg(target_arch = "x86_64")]
    if has_v3() {
        fn v3(
            msg: &[u8],
            ptrs: &Pointers,
            found: &mut [Option<Range<usize>>],
        ) -> Result<Valid, Reject> {
            // SAFETY: pushed only when the CPU has the features.
            unsafe { check_v3(msg, ptrs, found) }
        }
        all.push(v3);
    }
    all
}

/// [`check_with`] with the string scan chosen: `SIMD = false` is the portable SWAR
/// scan alone (what ARM runs), for the tests. `V3` is set only by [`check_v3`]: the
/// grammar then calls the x86-64-v3 build of its out-of-line member loop, which is
/// sound only because `check_v3` runs only on a CPU with those features.
#[inline(always)]
fn check_scan<const SIMD: bool, const V3: bool>(
    msg: &[u8],
    ptrs: &Pointers,
    found: &mut [Option<Range<usize>>],
) -> Result<Valid, Reject> {
    // Before any verdict: no caller can read the last message's values as this one's.
    // (One pointer, the common routing case, is one store.)
    match &mut *found {
        [] => {}
        [one] => *one = None,
        all => all.fill(None),
    }
    if msg.is_empty() {
        return Err(Reject::Empty);
    }
    let mut track = Track::new(ptrs, found);
    // No backslash and no control byte anywhere (most market data): a copy of the
    // grammar whose string scans look for quotes alone.
    let doc = if scan::plain::<SIMD>(msg) {
        grammar::document::<SIMD, true, V3>(msg, &mut track)
    } else {
        // One copy of this grammar for both x86_64 builds: the v3 build would add
        // 10 kB for messages that are rare in market data.
        document_escaped::<SIMD>(msg, &mut track)
    };
    match doc {
        Some(multiline) => Ok(Valid {
            multiline,
            escaped: track.escaped_mask(),
        }),
        None => Err(Reject::NotJson),
    }
}

/// The grammar for messages with escapes or control bytes, out of line.
#[inline(never)]
fn document_escaped<const SIMD: bool>(msg: &[u8], track: &mut Track) -> Option<bool> {
    grammar::document::<SIMD, false, false>(msg, track)
}

/// Appends `msg` to `out` as it is (`extend_from_slice`, word by word on 32-bit ARM,
/// whose libc copies a byte at a time).
#[inline(always)]
pub fn copy_into(msg: &[u8], out: &mut Vec<u8>) {
    scan::copy_into(msg, out);
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
