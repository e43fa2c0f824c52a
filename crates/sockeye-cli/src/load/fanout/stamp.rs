//! The stamp at the front of every fanout payload: who published it, its sequence number on
//! its topic, and when it was sent, in 16 ASCII characters of 6 bits each (the digits, the
//! capital and small letters, `-` and `_`, in that order), most significant first:
//!
//! ```text
//!   PPP SSSSSS TTTTTTT filler...
//!   │   │      └ send time: nanoseconds since the run's epoch, modulo 2^42 (about 73 minutes)
//!   │   └ sequence number of the publisher on the topic, 36 bits
//!   └ publisher index, 18 bits
//! ```
//!
//! The time wraps: a delivery's age is `(now - time) mod 2^42`, right for any delivery younger
//! than 73 minutes (the latency histogram saturates at 60 s anyway).

/// The stamp's length in bytes: the smallest `--size`.
pub(super) const STAMP_LEN: usize = 16;

/// Publishers the stamp can name: 2^18.
pub(super) const MAX_PUBLISHERS: usize = 1 << PUBLISHER_BITS;

/// Sequence numbers the stamp can carry per topic: 2^36 (a publisher stops publishing on a topic
/// there).
pub(super) const SEQ_LIMIT: u64 = 1 << SEQ_BITS;

const PUBLISHER_BITS: u32 = 18;
const SEQ_BITS: u32 = 36;
const TIME_BITS: u32 = 42;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;

/// The 64 digits, by value.
const DIGITS: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

/// The value of each byte as a digit; `NOT_A_DIGIT` for the others.
const VALUES: [u8; 256] = {
    let mut values = [NOT_A_DIGIT; 256];
    let mut i = 0;
    while i < DIGITS.len() {
        values[DIGITS[i] as usize] = i as u8;
        i += 1;
    }
    values
};

const NOT_A_DIGIT: u8 = 0xff;

/// What a stamp says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    /// The publisher's index (below [`MAX_PUBLISHERS`]).
    pub(super) publisher: usize,
    /// Its sequence number on the topic (below [`SEQ_LIMIT`]).
    pub(super) seq: u64,
    /// The send time in nanoseconds since the epoch, modulo 2^42 (higher bits are dropped).
    pub(super) time: u64,
}

impl Stamp {
    /// The stamp's characters. Fields too large for their digits lose their high bits.
    pub(super) fn encode(&self) -> [u8; STAMP_LEN] {
        let mut out = [0u8; STAMP_LEN];
        let (publisher, rest) = out.split_at_mut(3);
        let (seq, time) = rest.split_at_mut(6);
        write_digits(publisher, self.publisher as u64);
        write_digits(seq, self.seq);
        write_digits(time, self.time & TIME_MASK);
        out
    }

    /// The stamp at the front of `payload`; `None` when it is shorter than a stamp or has a
    /// byte that is not a digit.
    pub(super) fn decode(payload: &[u8]) -> Option<Stamp> {
        let stamp = payload.get(..STAMP_LEN)?;
        Some(Stamp {
            publisher: read_digits(&stamp[..3])? as usize,
            seq: read_digits(&stamp[3..9])?,
            time: read_digits(&stamp[9..])?,
        })
    }

    /// Nanoseconds from the send time to `now_ns` (nanoseconds since the same epoch), modulo
    /// 2^42.
    pub(super) fn age(&self, now_ns: u64) -> u64 {
        now_ns.wrapping_sub(self.time) & TIME_MASK
    }
}

/// Writes the low-order `out.len()` digits of `value`, most significant first.
fn write_digits(out: &mut [u8], mut value: u64) {
    for digit in out.iter_mut().rev() {
        *digit = DIGITS[(value & 63) as usize];
        value >>= 6;
    }
}

fn read_digits(input: &[u8]) -> Option<u64> {
    input.iter().try_fold(0u64, |value, &byte| {
        let digit = VALUES[usize::from(byte)];
        (digit != NOT_A_DIGIT).then_some(value << 6 | u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let table = [
            (
                Stamp {
                    publisher: 0,
                    seq: 0,
                    time: 0,
                },
                "0000000000000000",
            ),
            (
                Stamp {
                    publisher: 1,
                    seq: 2,
                    time: 3,
                },
                "0010000020000003",
            ),
            (
                Stamp {
                    publisher: 64,
                    seq: 64,
                    time: 64,
                },
                "0100000100000010",
            ),
            (
                Stamp {
                    publisher: MAX_PUBLISHERS - 1,
                    seq: SEQ_LIMIT - 1,
                    time: TIME_MASK,
                },
                "________________",
            ),
        ];
        for (stamp, text) in table {
            assert_eq!(&stamp.encode(), text.as_bytes(), "{stamp:?}");
            assert_eq!(Stamp::decode(text.as_bytes()), Some(stamp), "{text}");
            let padded = format!("{text}filler text");
            assert_eq!(Stamp::decode(padded.as_bytes()), Some(stamp), "{text}");
        }
    }

    #[test]
    fn time_wraps_and_age_follows() {
        let stamp = Stamp {
            publisher: 3,
            seq: 9,
            time: TIME_MASK + 5,
        };
        let decoded = Stamp::decode(&stamp.encode()).unwrap();
        assert_eq!(decoded.time, 4);
        // (now, the age of a stamp sent at TIME_MASK + 5)
        for (now, age) in [
            (TIME_MASK + 5, 0),
            (TIME_MASK + 1005, 1000),
            (1 << 43, TIME_MASK - 3),
        ] {
            assert_eq!(decoded.age(now), age, "{now}");
        }
    }

    #[test]
    fn bad_stamps_are_refused() {
        for bad in [
            "",
            "000000000000000",
            "00000000 0000000",
            "000000000000000~",
            "é0000000000000",
        ] {
            assert_eq!(Stamp::decode(bad.as_bytes()), None, "{bad:?}");
        }
    }
}
