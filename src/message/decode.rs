//! Binary frames: what they hold and how to get the JSON text out of them. Some venues
//! send every message compressed (HTX: gzip), some send plain JSON in binary frames.
//! Inflating is bounded: a frame that inflates past `max_message_bytes` is refused
//! after that many bytes, so a small "bomb" cannot take the memory.

use std::io::Read;

use flate2::read::{DeflateDecoder, GzDecoder, ZlibDecoder};

/// What binary frames hold (`binary_frames` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Binary {
    /// Recognise gzip and zlib by their headers, JSON by its first byte, else try raw
    /// deflate.
    Auto,
    /// gzip (RFC 1952).
    Gzip,
    /// zlib (RFC 1950).
    Zlib,
    /// Raw deflate (RFC 1951).
    Deflate,
    /// UTF-8 JSON, as in a text frame.
    Text,
    /// Refuse every binary frame.
    Reject,
}

/// Why a binary frame gave no text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undecodable {
    /// Not in the expected format, or not UTF-8 once decoded (or `reject`).
    Binary,
    /// Inflates past the limit.
    TooLarge,
}

/// Buffers bigger than this after a frame are freed, so one huge frame does not pin
/// its memory.
const KEEP_BUFFER: usize = 1 << 20;

/// Turns binary frames into text, reusing one buffer.
#[derive(Debug)]
pub(crate) struct Decoder {
    how: Binary,
    limit: usize,
    buf: Vec<u8>,
}

impl Decoder {
    /// A decoder for `how`, refusing text longer than `limit` bytes.
    pub(crate) fn new(how: Binary, limit: usize) -> Decoder {
        Decoder {
            how,
            limit,
            buf: Vec::new(),
        }
    }

    /// The text a binary frame holds.
    pub(crate) fn decode<'a>(&'a mut self, frame: &'a [u8]) -> Result<&'a [u8], Undecodable> {
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = Vec::new();
        }
        self.buf.clear();
        let how = match self.how {
            Binary::Auto => sniff(frame),
            h => h,
        };
        let inflated = match how {
            Binary::Reject => return Err(Undecodable::Binary),
            Binary::Text | Binary::Auto => {
                return match std::str::from_utf8(frame) {
                    Ok(_) if frame.len() <= self.limit => Ok(frame),
                    Ok(_) => Err(Undecodable::TooLarge),
                    Err(_) => Err(Undecodable::Binary),
                };
            }
            Binary::Gzip => {
                // The trailer says how big the text is (mod 4 GiB): a bomb that says
                // so honestly is refused before any inflating. One that lies still
                // stops at the limit.
                if let [.., a, b, c, d] = frame {
                    if u32::from_le_bytes([*a, *b, *c, *d]) as usize > self.limit {
                        return Err(Undecodable::TooLarge);
                    }
                }
                self.inflate(GzDecoder::new(frame))
            }
            Binary::Zlib => self.inflate(ZlibDecoder::new(frame)),
            Binary::Deflate => self.inflate(DeflateDecoder::new(frame)),
        };
        inflated?;
        std::str::from_utf8(&self.buf).map_err(|_| Undecodable::Binary)?;
        Ok(&self.buf)
    }

    fn inflate(&mut self, r: impl Read) -> Result<(), Undecodable> {
        let mut r = r.take(self.limit as u64 + 1);
        r.read_to_end(&mut self.buf)
            .map_err(|_| Undecodable::Binary)?;
        if self.buf.len() > self.limit {
            self.buf = Vec::new();
            return Err(Undecodable::TooLarge);
        }
        Ok(())
    }
}

/// The format of a frame, from its first bytes.
fn sniff(frame: &[u8]) -> Binary {
    match frame {
        [0x1f, 0x8b, ..] => Binary::Gzip,
        [a, b, ..]
            if a & 0x0f == 8 && a >> 4 <= 7 && (u16::from(*a) << 8 | u16::from(*b)) % 31 == 0 =>
        {
            Binary::Zlib
        }
        _ => match frame.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{' | b'[' | b'"') => Binary::Text,
            _ => Binary::Deflate,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use std::io::Write;

    fn gz(b: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decodes_each_format_in_auto_and_by_name() {
        let msg =
            br#"{"ch":"market.btcusdt.trade.detail","tick":{"price":67012.123456789012345678}}"#;
        let zl = {
            let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
            e.write_all(msg).unwrap();
            e.finish().unwrap()
        };
        let df = {
            let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
            e.write_all(msg).unwrap();
            e.finish().unwrap()
        };
        let mut auto = Decoder::new(Binary::Auto, 1 << 20);
        for frame in [gz(msg), zl.clone(), df.clone(), msg.to_vec()] {
            assert_eq!(auto.decode(&frame), Ok(&msg[..]));
        }
        assert_eq!(
            Decoder::new(Binary::Zlib, 1 << 20).decode(&zl),
            Ok(&msg[..])
        );
        assert_eq!(
            Decoder::new(Binary::Deflate, 1 << 20).decode(&df),
            Ok(&msg[..])
        );
        assert_eq!(
            Decoder::new(Binary::Reject, 1 << 20).decode(msg),
            Err(Undecodable::Binary)
        );
        assert_eq!(
            auto.decode(b"\x00\x01\x02garbage"),
            Err(Undecodable::Binary)
        );
        assert_eq!(
            auto.decode(&gz(b"\xff\xfe not utf-8")),
            Err(Undecodable::Binary)
        );
    }

    #[test]
    fn a_bomb_is_refused_at_the_limit() {
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![b' '; 1 << 20];
        for _ in 0..64 {
            e.write_all(&zeros).unwrap();
        }
        let bomb = e.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        let mut d = Decoder::new(Binary::Auto, 1 << 20);
        assert_eq!(d.decode(&bomb), Err(Undecodable::TooLarge));
        // One whose trailer lies about its size is stopped at the limit.
        let mut liar = bomb.clone();
        let n = liar.len();
        liar[n - 4..].copy_from_slice(&100u32.to_le_bytes());
        assert_eq!(d.decode(&liar), Err(Undecodable::TooLarge));
        assert!(d.buf.capacity() <= 2 << 20);
    }
}
