//! The pointer layer: which JSON pointers (RFC 6901) a check looks for, and which of
//! them are still matching as the grammar walks into a message.

use std::ops::Range;

use super::text;

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

/// A set of JSON pointers (RFC 6901) that [`check_with`](super::check_with) finds in the same pass. A
/// pointer finds a scalar value only (string, number, literal): one that leads to an
/// object or an array finds nothing. Keys are compared as the strings they are: a key
/// written with escapes (`"\u0074opic"`, `"a\/b"`) is decoded first (only then).
#[derive(Debug, Clone)]
pub struct Pointers {
    list: Vec<Vec<Segment>>,
    /// `by_len[level][n]`: the pointers whose segment at `level` is a key of `n` bytes
    /// (`n` = [`LONG_KEY`]: that long or longer). Most keys of a message match no
    /// pointer, and most differ from every pointer's key in length: one load tells.
    by_len: Box<[[u32; LONG_KEY + 1]; MAX_POINTER_DEPTH]>,
    /// `by_index[level][i]`: the pointers whose segment at `level` is array index `i`
    /// (`i` = [`LAST_INDEX`]: that index or a higher one, compared one by one).
    by_index: Box<[[u32; LAST_INDEX + 1]; MAX_POINTER_DEPTH]>,
    /// `words[level][p]`: pointer p's key at `level` as a little-endian number, when it
    /// is at most [`WORD_KEY`] bytes long: a key of the same length is compared in one
    /// compare, not a call to memcmp.
    words: Box<[[u128; MAX_POINTERS]; MAX_POINTER_DEPTH]>,
    /// `short[level][p]`: pointer p's key at `level` when it is 1 to 8 bytes long,
    /// in the top bytes of a little-endian `u64` (shifted left by `64 - 8 * len`): a
    /// member read from a window compares its key with one shift and one compare,
    /// inline ([`Track::member_key`]).
    short: Box<[[u64; MAX_POINTERS]; MAX_POINTER_DEPTH]>,
    /// Mask of every pointer.
    all: u32,
    /// Bit p set in `ends_at[d]` when pointer p has d segments.
    ends_at: [u32; MAX_POINTER_DEPTH + 1],
    /// Longest pointer, in segments (0 when there are none: nothing to track).
    depth: usize,
}

/// Keys this long or longer share the last slot of [`Pointers::by_len`].
const LONG_KEY: usize = 63;
/// Keys up to this long are compared as one number (`Pointers::words`).
const WORD_KEY: usize = 16;
/// Array indices from this one on share the last slot of [`Pointers::by_index`].
const LAST_INDEX: usize = 31;

impl Default for Pointers {
    fn default() -> Self {
        Pointers {
            list: Vec::new(),
            by_len: Box::new([[0; LONG_KEY + 1]; MAX_POINTER_DEPTH]),
            by_index: Box::new([[0; LAST_INDEX + 1]; MAX_POINTER_DEPTH]),
            words: Box::new([[0; MAX_POINTERS]; MAX_POINTER_DEPTH]),
            short: Box::new([[0; MAX_POINTERS]; MAX_POINTER_DEPTH]),
            all: 0,
            ends_at: [0; MAX_POINTER_DEPTH + 1],
            depth: 0,
        }
    }
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
        for (level, seg) in segs.iter().enumerate() {
            self.by_len[level][seg.key.len().min(LONG_KEY)] |= 1 << i;
            if seg.key.len() <= WORD_KEY {
                let mut w = [0; WORD_KEY];
                w[..seg.key.len()].copy_from_slice(&seg.key);
                self.words[level][i] = u128::from_le_bytes(w);
                if (1..=8).contains(&seg.key.len()) {
                    self.short[level][i] =
                        u64::from_le_bytes(w[..8].try_into().unwrap()) << (64 - 8 * seg.key.len());
                }
            }
            if let Some(n) = seg.index {
                self.by_index[level][(n as usize).min(LAST_INDEX)] |= 1 << i;
            }
        }
        self.all |= 1 << i;
        self.ends_at[segs.len()] |= 1 << i;
        self.depth = self.depth.max(segs.len());
        self.list.push(segs);
        Ok(i)
    }

    /// How many pointers there are (the length [`check_with`](super::check_with) wants for `found`).
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

    /// [`Pointers::by_key`] for a key written with escapes: compared as decoded.
    #[cold]
    #[inline(never)]
    fn by_escaped_key(&self, mut live: u32, level: usize, key: &[u8]) -> u32 {
        let mut out = 0;
        while live != 0 {
            let p = live.trailing_zeros() as usize;
            live &= live - 1;
            if self.list[p]
                .get(level)
                .is_some_and(|s| text::unescaped(key).eq(s.key.iter().copied()))
            {
                out |= 1 << p;
            }
        }
        out
    }

    /// The pointers of `live` whose segment at `level` is the array index `index`
    /// (from [`LAST_INDEX`] on, where the table cannot tell).
    #[cold]
    #[inline(never)]
    fn by_high_index(&self, mut live: u32, level: usize, index: u32) -> u32 {
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
pub(super) struct Track<'p, 'f> {
    ptrs: &'p Pointers,
    /// Where the values go ([`check_with`](super::check_with)'s `found`): here, not
    /// in the grammar's registers, which have no use for it until a value is found.
    found: &'f mut [Option<Range<usize>>],
    live: [u32; MAX_POINTER_DEPTH + 1],
    index: [u32; MAX_POINTER_DEPTH + 1],
    /// Pointers found so far (the first value wins).
    found_mask: u32,
    /// Pointers whose value is a string written with backslash escapes.
    escaped_mask: u32,
    /// `ptrs.depth`, at hand: deeper levels need no tracking (0 once every pointer
    /// is found).
    depth: usize,
}

impl<'p, 'f> Track<'p, 'f> {
    /// Tracking for one message: every pointer is live at the root.
    #[inline(always)]
    pub(super) fn new(ptrs: &'p Pointers, found: &'f mut [Option<Range<usize>>]) -> Self {
        let mut live = [0; MAX_POINTER_DEPTH + 1];
        live[0] = ptrs.all;
        Track {
            ptrs,
            found,
            live,
            index: [0; MAX_POINTER_DEPTH + 1],
            found_mask: 0,
            escaped_mask: 0,
            depth: ptrs.depth,
        }
    }

    /// Whether a pointer still being looked for reaches `depth` (else [`Track::key`]
    /// and [`Track::item`] there return 0).
    #[inline(always)]
    pub(super) fn reaches(&self, depth: usize) -> bool {
        depth <= self.depth
    }

    /// Entering the value of `key` in an object at `depth`: the pointers that end here.
    /// The common cases, a level no pointer reaches or a key whose length no live
    /// pointer has there, are a few instructions, inline. `key` is the key's bytes as
    /// written; `escaped` when it holds a backslash escape (its length then says
    /// nothing: it is compared decoded).
    #[inline(always)]
    pub(super) fn key(&mut self, depth: usize, s: &[u8], key: Range<usize>, escaped: bool) -> u32 {
        if depth > self.depth {
            return 0;
        }
        let level = depth - 1;
        let live = self.live[level];
        let same_len = live & self.ptrs.by_len[level][key.len().min(LONG_KEY)];
        if same_len == 0 && !escaped {
            // Also for the levels below: what an earlier sibling left there is stale.
            self.live[depth] = 0;
            return 0;
        }
        self.key_at(depth, s, key, escaped)
    }

    /// [`Track::key`] for a member's plain key read from a window at a level a pointer
    /// reaches (the caller knows: [`Track::reaches`]): `w` is the window, the key's
    /// opening quote its first byte. A key with one candidate of its length is
    /// compared inline: of 1 to 8 bytes with one shift and one compare, of 9 to 16
    /// with two; the rest, by [`Track::key_at`].
    #[inline(always)]
    pub(super) fn member_key(
        &mut self,
        depth: usize,
        s: &[u8],
        start: usize,
        len: usize,
        w: &[u8; 32],
    ) -> u32 {
        let level = depth - 1;
        if level >= MAX_POINTER_DEPTH {
            // Not reached: a tracked level is at most the longest pointer's. (One test
            // for the tables' bounds below.)
            return 0;
        }
        let same_len = self.live[level] & self.ptrs.by_len[level][len.min(LONG_KEY)];
        if same_len == 0 {
            // Also for the levels below: what an earlier sibling left there is stale.
            self.live[depth] = 0;
            return 0;
        }
        if same_len & (same_len - 1) == 0 && len.wrapping_sub(1) < 8 {
            let word = u64::from_le_bytes(w[1..9].try_into().unwrap());
            let p = same_len.trailing_zeros() as usize;
            // The bytes after the key leave at the top: the key's alone are compared.
            let live = if word << (64 - 8 * len) == self.ptrs.short[level][p] {
                same_len
            } else {
                0
            };
            self.live[depth] = live;
            return live & self.ptrs.ends_at[depth] & !self.found_mask;
        }
        if same_len & (same_len - 1) == 0 && len.wrapping_sub(9) < 8 {
            // 9 to 16 bytes (Coinbase's `product_id`): two words, the second shifted.
            let p = same_len.trailing_zeros() as usize;
            let key = self.ptrs.words[level][p];
            let lo = u64::from_le_bytes(w[1..9].try_into().unwrap());
            let hi = u64::from_le_bytes(w[9..17].try_into().unwrap());
            let live = if lo == key as u64 && (hi ^ (key >> 64) as u64) << (128 - 8 * len) == 0 {
                same_len
            } else {
                0
            };
            self.live[depth] = live;
            return live & self.ptrs.ends_at[depth] & !self.found_mask;
        }
        self.key_at(depth, s, start..start + len, false)
    }

    /// [`Track::key`] for a key that may match: `s[key]` is the key as written. Short
    /// keys away from the message's end are compared as numbers, in registers; the
    /// rest, out of line (which keeps this one's prologue small).
    #[cold]
    #[inline(never)]
    fn key_at(&mut self, depth: usize, s: &[u8], key: Range<usize>, escaped: bool) -> u32 {
        let len = key.len();
        // A short key (most are) as one u64 against each candidate's.
        if let Some(w) = s.get(key.start..).and_then(<[u8]>::first_chunk::<8>)
            && len <= 8
            && !escaped
        {
            let level = depth - 1;
            let w = u64::from_le_bytes(*w) & u64::MAX.checked_shr(64 - 8 * len as u32).unwrap_or(0);
            let words = &self.ptrs.words[level];
            let mut same_len = self.live[level] & self.ptrs.by_len[level][len];
            let mut live = 0;
            while same_len != 0 {
                let p = same_len.trailing_zeros() as usize;
                same_len &= same_len - 1;
                // A key of at most 8 bytes has nothing in the high half.
                if words[p] == w as u128 {
                    live |= 1 << p;
                }
            }
            self.live[depth] = live;
            return live & self.ptrs.ends_at[depth] & !self.found_mask;
        }
        let window = match s.get(key.start..key.start + WORD_KEY) {
            Some(w) if !escaped && len <= WORD_KEY => w,
            _ => return self.key_slow(depth, &s[key], escaped),
        };
        let level = depth - 1;
        let ptrs = self.ptrs;
        let w = u128::from_le_bytes(window.try_into().unwrap());
        // The key's bytes only (none for the empty key).
        let w = w & u128::MAX
            .checked_shr(8 * (WORD_KEY - len) as u32)
            .unwrap_or(0);
        let mut same_len = self.live[level] & ptrs.by_len[level][len];
        let words = &ptrs.words[level];
        let mut live = 0;
        while same_len != 0 {
            let p = same_len.trailing_zeros() as usize;
            same_len &= same_len - 1;
            if words[p] == w {
                live |= 1 << p;
            }
        }
        self.live[depth] = live;
        live & ptrs.ends_at[depth] & !self.found_mask
    }

    /// [`Track::key_at`] for a long key, one near the message's end, or one written with
    /// escapes (compared decoded).
    #[cold]
    #[inline(never)]
    fn key_slow(&mut self, depth: usize, key: &[u8], escaped: bool) -> u32 {
        let level = depth - 1;
        let live = if escaped {
            self.ptrs.by_escaped_key(self.live[level], level, key)
        } else {
            let same_len = self.live[level] & self.ptrs.by_len[level][key.len().min(LONG_KEY)];
            self.ptrs.by_key(same_len, level, key)
        };
        self.live[depth] = live;
        live & self.ptrs.ends_at[depth] & !self.found_mask
    }

    /// Entering item `index` of an array at `depth`: the pointers that end here. One
    /// table load below [`LAST_INDEX`].
    #[inline(always)]
    pub(super) fn item(&mut self, depth: usize, index: u32) -> u32 {
        if depth > self.depth {
            return 0;
        }
        let level = depth - 1;
        if self.live[level] == 0 {
            // No pointer goes into this array (Kraken's, inside the objects its arrays
            // hold): no item is a pointer's, and the index is never asked for.
            self.live[depth] = 0;
            return 0;
        }
        self.index[depth] = index;
        let mut live =
            self.live[level] & self.ptrs.by_index[level][(index as usize).min(LAST_INDEX)];
        if index as usize >= LAST_INDEX && live != 0 {
            // The last slot holds every pointer with a high index here: which one.
            live = self.ptrs.by_high_index(live, level, index);
        }
        self.live[depth] = live;
        live & self.ptrs.ends_at[depth] & !self.found_mask
    }

    /// The pointers in `want` found a string written with escapes.
    #[cold]
    pub(super) fn escaped(&mut self, want: u32) {
        self.escaped_mask |= want;
    }

    /// Pointers whose value is a string written with escapes (see [`Valid::escaped`]).
    ///
    /// [`Valid::escaped`]: super::Valid::escaped
    #[inline(always)]
    pub(super) fn escaped_mask(&self) -> u32 {
        self.escaped_mask
    }

    #[inline(always)]
    pub(super) fn next_item(&mut self, depth: usize) -> u32 {
        if depth > self.depth {
            return 0;
        }
        self.item(depth, self.index[depth] + 1)
    }

    /// [`Track::record`] in the tracked member loop, where `want` is most often one
    /// pointer: that one without a loop.
    #[inline(always)]
    pub(super) fn record_member(&mut self, want: u32, range: Range<usize>) {
        if want & (want - 1) == 0 {
            self.found[want.trailing_zeros() as usize] = Some(range);
            self.found_mask |= want;
            if self.found_mask == self.ptrs.all {
                self.depth = 0;
            }
        } else {
            self.record(want, range);
        }
    }

    /// Records `range` as the value of every pointer in `want`.
    #[inline]
    pub(super) fn record(&mut self, want: u32, range: Range<usize>) {
        let mut w = want;
        while w != 0 {
            let p = w.trailing_zeros() as usize;
            w &= w - 1;
            self.found[p] = Some(range.clone());
        }
        self.found_mask |= want;
        if self.found_mask == self.ptrs.all {
            // Every pointer has its value (the first wins): the rest of the message is
            // checked as if there were none, at no level's cost.
            self.depth = 0;
        }
    }
}
