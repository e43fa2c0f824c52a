//! Word-at-a-time searches for the byte classes of an HTTP head, in safe Rust.
//!
//! A search reads its input as little-endian `u64` words. A class is a function from a word to a
//! mask whose lowest set bit is the high bit of the first byte in the class. Bits above it may be
//! wrong: the classic `(x - 0x01..) & !x & 0x80..` borrows only out of a matching byte, so every
//! byte below the first match is exact. The few tail bytes go through the same function in a
//! zero-padded word. Every class has a bytewise twin, the oracle of the tests below.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The bytes of `x` below `n` (`n <= 0x80`); exact up to the first one.
const fn below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(LO * n as u64) & !x & HI
}

/// The bytes of `x` equal to `b`; exact up to the first one.
const fn equal(x: u64, b: u8) -> u64 {
    below(x ^ (LO * b as u64), 1)
}

/// Controls (HTAB included: a caller steps over it) and DEL, the bytes that stop a field value
/// (RFC 7230 §3.2). CR and LF are among them, so the first one ends a clean line.
pub(crate) const fn ctl(x: u64) -> u64 {
    below(x, 0x20) | equal(x, 0x7f)
}

/// The colon that ends a header name, or the LF that ends its line first.
pub(crate) const fn colon_or_lf(x: u64) -> u64 {
    equal(x, b':') | equal(x, b'\n')
}

/// Bytes outside `0x21..=0x7e`, the ones a request target cannot hold (RFC 7230 §3.1.1, §5.3).
pub(crate) const fn not_target(x: u64) -> u64 {
    below(x, 0x21) | (x & HI) | equal(x, 0x7f)
}

/// The position of the first byte of `buf[from..]` in `class`, as an index into `buf`.
#[inline]
pub(crate) fn find(buf: &[u8], from: usize, class: impl Fn(u64) -> u64) -> Option<usize> {
    let rest = buf.get(from..)?;
    let mut words = rest.chunks_exact(8);
    let mut pos = from;
    for word in words.by_ref() {
        let mask = class(u64::from_le_bytes(word.try_into().ok()?));
        if mask != 0 {
            return Some(pos + (mask.trailing_zeros() / 8) as usize);
        }
        pos += 8;
    }
    let tail = words.remainder().len();
    if tail == 0 {
        return None;
    }
    // Padding bytes may match; a match there is past the end.
    let at = (class(tail_word(buf, tail)).trailing_zeros() / 8) as usize;
    (at < tail).then_some(pos + at)
}

/// The last `n` (1 to 7) bytes of `buf` in the low lanes of a word, zeros above.
fn tail_word(buf: &[u8], n: usize) -> u64 {
    let len = buf.len();
    if let Some(last) = buf.get(len.wrapping_sub(8)..) {
        let word: [u8; 8] = last.try_into().unwrap_or_default();
        return u64::from_le_bytes(word) >> (8 * (8 - n));
    }
    let mut word = [0u8; 8];
    word[..n].copy_from_slice(&buf[len - n..]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytewise twins of the classes.
    fn naive_ctl(b: u8) -> bool {
        b < 0x20 || b == 0x7f
    }
    fn naive_colon_or_lf(b: u8) -> bool {
        b == b':' || b == b'\n'
    }
    fn naive_not_target(b: u8) -> bool {
        !(0x21..=0x7e).contains(&b)
    }

    type Class = (fn(u64) -> u64, fn(u8) -> bool);
    const CLASSES: [Class; 3] = [
        (ctl, naive_ctl),
        (colon_or_lf, naive_colon_or_lf),
        (not_target, naive_not_target),
    ];

    /// The lane of the lowest set bit of a class mask (8 for none).
    fn first_lane(mask: u64) -> usize {
        (mask.trailing_zeros() / 8) as usize
    }

    #[test]
    fn every_byte_in_every_lane_after_every_neighbour() {
        // Each byte value at each lane, the lanes below filled with one value and the lanes
        // above with another: the first match is exact whatever surrounds it.
        for (class, naive) in CLASSES {
            for b in 0..=255u8 {
                for below in 0..=255u8 {
                    for lane in 0..8 {
                        let mut word = [below; 8];
                        word[lane] = b;
                        word[lane + 1..].fill(b ^ below);
                        let expected = word.iter().position(|&b| naive(b)).unwrap_or(8);
                        let mask = class(u64::from_le_bytes(word));
                        assert_eq!(first_lane(mask), expected, "{word:x?}");
                        assert_eq!(mask & !HI, 0);
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn find_agrees_with_position(
            buf in proptest::collection::vec(
                proptest::sample::select(b"\0\t\r\n\x1f :a~\x7f\x80\xff".to_vec()), 0..40),
            from in 0usize..44,
        ) {
            for (class, naive) in CLASSES {
                let expected = buf
                    .get(from..)
                    .and_then(|rest| rest.iter().position(|&b| naive(b)).map(|at| from + at));
                proptest::prop_assert_eq!(find(&buf, from, class), expected);
            }
        }
    }
}
