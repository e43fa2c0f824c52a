//! Incremental, fail-fast UTF-8 validation (RFC 6455 §8.1) on `simdutf8`.
//!
//! A text message may arrive in many frames and many reads, and a code point may straddle any
//! of those boundaries. [`Utf8Validator`] keeps at most three bytes of an unfinished code point
//! between chunks and reports an invalid byte as soon as the chunk holding it is fed, not when
//! the message ends: "When an endpoint is to interpret a byte stream as UTF-8 but finds that the
//! byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket
//! Connection_" (§8.1).

use simdutf8::compat;

/// The input is not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

/// Validates a byte stream fed in chunks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a stream.
    pub const fn new() -> Self {
        Utf8Validator {
            pending: [0; 4],
            pending_len: 0,
        }
    }

    /// Whether the stream so far ends on a code point boundary.
    pub fn is_complete(&self) -> bool {
        self.pending_len == 0
    }

    /// Feeds the next chunk of the stream.
    ///
    /// # Errors
    ///
    /// [`Utf8Error`] as soon as the stream so far cannot be the prefix of valid UTF-8.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), Utf8Error> {
        if self.pending_len > 0 {
            let have = usize::from(self.pending_len);
            let width = sequence_width(self.pending[0]);
            let take = (width - have).min(chunk.len());
            self.pending[have..have + take].copy_from_slice(&chunk[..take]);
            let filled = have + take;
            chunk = &chunk[take..];
            check_prefix(&self.pending[..filled])?;
            if filled < width {
                self.pending_len = filled as u8;
                return Ok(());
            }
            self.pending_len = 0;
        }
        // One fast pass over everything before a code point the chunk cuts short; the cut
        // piece (at most 3 bytes) waits for the next chunk.
        let (body, tail) = chunk.split_at(unfinished_tail(chunk));
        if simdutf8::basic::from_utf8(body).is_err() {
            return Err(Utf8Error);
        }
        check_prefix(tail)?;
        self.pending[..tail.len()].copy_from_slice(tail);
        self.pending_len = tail.len() as u8;
        Ok(())
    }

    /// Ends the stream.
    ///
    /// # Errors
    ///
    /// [`Utf8Error`] when the stream stops inside a code point.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let complete = self.is_complete();
        *self = Utf8Validator::new();
        if complete { Ok(()) } else { Err(Utf8Error) }
    }

    /// Forgets any unfinished code point.
    pub fn reset(&mut self) {
        *self = Utf8Validator::new();
    }
}

/// The length of the sequence a lead byte starts (1 for bytes that cannot lead one, so that
/// the prefix check rejects them).
fn sequence_width(lead: u8) -> usize {
    match lead {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 1,
    }
}

/// Where a code point that `chunk` cuts short starts (`chunk.len()` when none is cut): the
/// last lead byte within 3 bytes of the end whose sequence runs past the end.
fn unfinished_tail(chunk: &[u8]) -> usize {
    let end = chunk.len();
    for back in 1..=end.min(3) {
        let byte = chunk[end - back];
        if byte & 0xc0 != 0x80 {
            // A lead byte or ASCII: it starts the last sequence.
            return if sequence_width(byte) > back {
                end - back
            } else {
                end
            };
        }
    }
    end
}

/// Accepts bytes that are valid UTF-8 or an unfinished prefix of a valid code point.
fn check_prefix(bytes: &[u8]) -> Result<(), Utf8Error> {
    match compat::from_utf8(bytes) {
        Ok(_) => Ok(()),
        Err(err) if err.error_len().is_none() => Ok(()),
        Err(_) => Err(Utf8Error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(data: &[u8], splits: &[usize]) -> Result<(), Utf8Error> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for &s in splits {
            v.feed(&data[start..s])?;
            start = s;
        }
        v.feed(&data[start..])?;
        v.finish()
    }

    #[test]
    fn every_two_way_split_agrees_with_std() {
        let cases: &[&[u8]] = &[
            "κόσμε".as_bytes(),
            "Hello-µ@ßöäüàá-UTF-8!!".as_bytes(),
            &[0xf0, 0x90, 0x80, 0x80],
            &[
                0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
            ],
            &[0xf4, 0x90, 0x80, 0x80],
            &[0xc0, 0xaf],
            &[0xe0, 0x80, 0xaf],
            &[0xed, 0x9f, 0xbf],
            &[0xef, 0xbf, 0xbf],
            &[0x80],
            &[0xf8, 0x88, 0x80, 0x80, 0x80],
            &[0xe2, 0x82],
            b"",
        ];
        for case in cases {
            let expected = std::str::from_utf8(case).is_ok();
            for a in 0..=case.len() {
                for b in a..=case.len() {
                    let got = feed_split(case, &[a, b]).is_ok();
                    assert_eq!(got, expected, "{case:02x?} split at {a},{b}");
                }
            }
        }
    }

    #[test]
    fn fails_at_the_first_bad_byte_not_at_the_end() {
        // U+FFFF then a byte that can never appear, then more valid text.
        let mut v = Utf8Validator::new();
        assert!(v.feed("κόσμε".as_bytes()).is_ok());
        assert_eq!(v.feed(&[0xce, 0xba, 0xed]), Ok(()));
        assert_eq!(
            v.feed(&[0xa0]),
            Err(Utf8Error),
            "surrogate rejected on its second byte"
        );
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xf4]), Ok(()));
        assert_eq!(
            v.feed(&[0x90]),
            Err(Utf8Error),
            "above U+10FFFF rejected at once"
        );
    }

    #[test]
    fn unfinished_code_point_at_end_is_an_error() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xe2, 0x82]), Ok(()));
        assert!(!v.is_complete());
        assert_eq!(v.finish(), Err(Utf8Error));
        assert!(v.is_complete(), "finish resets");
    }
}
