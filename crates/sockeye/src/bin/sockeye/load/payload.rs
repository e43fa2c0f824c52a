//! The messages a load thread sends, and the byte-for-byte check of what comes back.
//!
//! Every message is the thread's template with a stamp in front: the connection id and a
//! per-connection counter (`id << 40 | n`). In binary mode the stamp is its low-order bytes
//! (little-endian, up to 8); in text mode its low-order hex digits (up to 16), so the message
//! stays ASCII. What was sent is therefore known from the stamp alone, and an echo is compared
//! with it byte for byte without keeping a copy of each message in flight.

use core::fmt;

use sockeye_proto::{Connection, Message, SendError};

use super::sys::splitmix64;

/// Stamp bits left for the per-connection counter.
const COUNTER_BITS: u32 = 40;

/// The template and the stamping rule of one thread.
#[derive(Debug)]
pub(super) struct Payload {
    /// The message bytes; the first `stamp_len` are overwritten by each send.
    template: Vec<u8>,
    text: bool,
}

/// How an echo differs from what was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Mismatch {
    /// A message came back with nothing outstanding.
    Unexpected,
    /// Text came back for binary, or the reverse.
    Kind {
        /// Whether the echo was a text message.
        got_text: bool,
    },
    /// The lengths differ.
    Length {
        /// What was sent.
        sent: usize,
        /// What came back.
        got: usize,
    },
    /// The first differing byte.
    Byte {
        /// Its offset in the message.
        offset: usize,
        /// What was sent there.
        sent: u8,
        /// What came back.
        got: u8,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Unexpected => f.write_str("a message arrived with none outstanding"),
            Mismatch::Kind { got_text: true } => f.write_str("sent binary, got text back"),
            Mismatch::Kind { got_text: false } => f.write_str("sent text, got binary back"),
            Mismatch::Length { sent, got } => write!(f, "sent {sent} bytes, got {got} back"),
            Mismatch::Byte { offset, sent, got } => write!(
                f,
                "byte {offset} differs: sent {sent:#04x}, got {got:#04x} (out of order or corrupt)"
            ),
        }
    }
}

impl Payload {
    /// A template of `size` bytes filled from `seed`: random bytes for binary, letters for text.
    pub(super) fn new(size: usize, text: bool, mut seed: u64) -> Self {
        let mut template = Vec::with_capacity(size);
        while template.len() < size {
            let word = splitmix64(&mut seed).to_le_bytes();
            let room = (size - template.len()).min(8);
            if text {
                template.extend(word[..room].iter().map(|b| b'a' + b % 26));
            } else {
                template.extend_from_slice(&word[..room]);
            }
        }
        Payload { template, text }
    }

    /// The stamp of message `n` on connection `id`.
    pub(super) fn stamp_value(id: u64, n: u64) -> u64 {
        (id << COUNTER_BITS) | (n & ((1 << COUNTER_BITS) - 1))
    }

    fn stamp_len(&self) -> usize {
        self.template.len().min(if self.text { 16 } else { 8 })
    }

    /// The stamp bytes for `value` (only the first `stamp_len` are used).
    fn stamp(&self, value: u64) -> [u8; 16] {
        let mut stamp = [0u8; 16];
        let len = self.stamp_len();
        if self.text {
            // The low-order `len` hex digits, most significant first.
            for (i, digit) in stamp[..len].iter_mut().enumerate() {
                let shift = 4 * (len - 1 - i);
                *digit = b"0123456789abcdef"[((value >> shift) & 0xf) as usize];
            }
        } else {
            stamp[..len].copy_from_slice(&value.to_le_bytes()[..len]);
        }
        stamp
    }

    /// Appends message `value` as a masked frame to `out`.
    ///
    /// # Errors
    ///
    /// When the connection refuses to send (a close is already queued).
    pub(super) fn send(
        &mut self,
        value: u64,
        ws: &mut Connection,
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        let len = self.stamp_len();
        let stamp = self.stamp(value);
        self.template[..len].copy_from_slice(&stamp[..len]);
        let message = if self.text {
            // The template and the stamp are ASCII; the fallback is never taken.
            Message::Text(core::str::from_utf8(&self.template).unwrap_or_default())
        } else {
            Message::Binary(&self.template)
        };
        ws.send(message, out)
    }

    /// Compares an echo with message `value` byte for byte.
    ///
    /// # Errors
    ///
    /// The first difference found.
    pub(super) fn verify(&self, value: u64, got: &[u8], got_text: bool) -> Result<(), Mismatch> {
        if got_text != self.text {
            return Err(Mismatch::Kind { got_text });
        }
        if got.len() != self.template.len() {
            return Err(Mismatch::Length {
                sent: self.template.len(),
                got: got.len(),
            });
        }
        let len = self.stamp_len();
        let stamp = self.stamp(value);
        if got[..len] == stamp[..len] && got[len..] == self.template[len..] {
            return Ok(());
        }
        let expected = stamp[..len].iter().chain(&self.template[len..]);
        let (offset, (got, sent)) = got
            .iter()
            .zip(expected)
            .enumerate()
            .find(|(_, (g, e))| g != e)
            .unwrap_or((0, (&0, &0)));
        Err(Mismatch::Byte {
            offset,
            sent: *sent,
            got: *got,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use sockeye_proto::{Config, Event, NoExtension};

    use super::*;

    /// Sends message `value` from a client and decodes it on a server, returning the payload.
    fn round_trip(payload: &mut Payload, value: u64) -> (Vec<u8>, bool) {
        let mut client = Connection::client(Config::default(), NoExtension, 7);
        let mut out = Vec::new();
        payload.send(value, &mut client, &mut out).expect("send");
        let mut server = Connection::server(Config::default(), NoExtension);
        let mut buf = Vec::new();
        let read = server
            .handle_read(&mut out, &mut buf, Instant::now())
            .expect("decode");
        match read.event {
            Some(Event::Binary(bytes)) => (bytes.to_vec(), false),
            Some(Event::Text(text)) => (text.as_bytes().to_vec(), true),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn echoes_verify_and_differ_per_message() {
        for text in [false, true] {
            for size in [0, 1, 7, 8, 9, 16, 17, 1000] {
                let mut payload = Payload::new(size, text, 42);
                let a = Payload::stamp_value(3, 1);
                let b = Payload::stamp_value(3, 2);
                let (got_a, is_text) = round_trip(&mut payload, a);
                let (got_b, _) = round_trip(&mut payload, b);
                assert_eq!(got_a.len(), size);
                assert_eq!(payload.verify(a, &got_a, is_text), Ok(()), "{text} {size}");
                assert_eq!(payload.verify(b, &got_b, is_text), Ok(()), "{text} {size}");
                if size > 0 {
                    assert_ne!(got_a, got_b, "{text} {size}");
                    assert!(payload.verify(b, &got_a, is_text).is_err(), "{text} {size}");
                }
            }
        }
    }

    #[test]
    fn mismatches_are_named() {
        let mut payload = Payload::new(32, false, 1);
        let value = Payload::stamp_value(1, 5);
        let (mut got, _) = round_trip(&mut payload, value);
        assert_eq!(
            payload.verify(value, &got[..31], false),
            Err(Mismatch::Length { sent: 32, got: 31 })
        );
        assert_eq!(
            payload.verify(value, &got, true),
            Err(Mismatch::Kind { got_text: true })
        );
        got[20] ^= 1;
        assert!(matches!(
            payload.verify(value, &got, false),
            Err(Mismatch::Byte { offset: 20, .. })
        ));
    }
}
