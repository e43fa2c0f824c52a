//! Size-bounded, incremental decompression of permessage-deflate messages (RFC 7692 §7.2.2).
//!
//! Payload pieces are inflated as they arrive, straight into the caller's message buffer. The
//! buffer grows geometrically with `reserve_exact`, never past the message limit, and output is
//! produced into `&mut out[len..]` windows of the room that is left: a decompression bomb stops
//! with [`ExtensionError::OutputLimit`] before a byte past the limit exists.

use flate2::{Decompress, FlushDecompress, Status};
use sockeye_proto::ExtensionError;

/// "Append 4 octets of 0x00 0x00 0xff 0xff to the tail end of the payload of the message"
/// (RFC 7692 §7.2.2).
pub(crate) const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The smallest output window zeroed per step, and the first growth of an empty buffer.
const MIN_STEP: usize = 1024;
/// The largest output window zeroed per step (the buffer's capacity may be much larger).
const MAX_STEP: usize = 256 * 1024;

/// A raw DEFLATE decompressor and where the current message starts in the output buffer.
pub(crate) struct Inflater {
    inner: Decompress,
    window_bits: u8,
    /// Where the message being decoded starts in the caller's buffer.
    msg_start: usize,
    in_message: bool,
    /// Input was fed since the message started or the stream restarted after a final block.
    fed: bool,
}

impl Inflater {
    /// A decompressor with a window of `window_bits`, clamped to 9..=15 (flate2 panics outside).
    pub(crate) fn new(window_bits: u8) -> Self {
        let window_bits = crate::config::clamp_bits(window_bits);
        Inflater {
            inner: Decompress::new_with_window_bits(false, window_bits),
            window_bits,
            msg_start: 0,
            in_message: false,
            fed: false,
        }
    }

    /// Whether a message is partly decoded.
    pub(crate) fn in_message(&self) -> bool {
        self.in_message
    }

    /// Forgets the LZ77 window (no context takeover), between messages.
    pub(crate) fn reset(&mut self) {
        self.inner.reset(false);
    }

    /// Inflates one piece of a message, appending to `out`; `fin` ends the message.
    pub(crate) fn decode(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        max_out: usize,
    ) -> Result<(), ExtensionError> {
        if !self.in_message {
            self.in_message = true;
            self.fed = false;
            self.msg_start = out.len();
        }
        let mut result = self.feed(input, out, max_out);
        // The tail completes the empty stored block the sender's flush ended with. A message
        // whose payload is empty, or ends right after a final block, has nothing to complete:
        // feeding the tail there would leave the decompressor inside a stored block.
        if result.is_ok() && fin && self.fed {
            result = self.feed(&TAIL, out, max_out);
        }
        if fin || result.is_err() {
            self.in_message = false;
        }
        if result.is_err() {
            // The connection fails; leave the decompressor usable all the same.
            self.inner.reset(false);
        }
        result
    }

    fn feed(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        max_out: usize,
    ) -> Result<(), ExtensionError> {
        if input.is_empty() {
            // zlib stops early only when its input runs out: no output is pending.
            return Ok(());
        }
        let mut step = input.len().saturating_mul(4).clamp(MIN_STEP, MAX_STEP);
        loop {
            let len = out.len();
            let (consumed, produced, room, status) = if len < max_out {
                grow(out, max_out, step);
                let room = (out.capacity() - len).min(max_out - len).min(step);
                out.resize(len + room, 0);
                let (consumed, produced, status) = self.run(input, &mut out[len..]);
                out.truncate(len + produced);
                (consumed, produced, room, status?)
            } else {
                // At the limit: one more byte of output is one too many.
                let mut probe = [0u8; 1];
                let (consumed, produced, status) = self.run(input, &mut probe);
                if produced > 0 {
                    return Err(ExtensionError::OutputLimit { max: max_out });
                }
                (consumed, produced, 1, status?)
            };
            input = &input[consumed..];
            self.fed |= consumed > 0;
            if status == Status::StreamEnd {
                self.restart(out)?;
                if input.is_empty() {
                    return Ok(());
                }
                continue;
            }
            if input.is_empty() && produced < room {
                return Ok(());
            }
            if consumed == 0 && produced == 0 {
                // Input and room, yet no progress: the decompressor is stuck on bad data.
                return Err(ExtensionError::InvalidData);
            }
            step = (step * 2).min(MAX_STEP);
        }
    }

    /// One call into zlib: (bytes consumed, bytes produced, status).
    fn run(
        &mut self,
        input: &[u8],
        output: &mut [u8],
    ) -> (usize, usize, Result<Status, ExtensionError>) {
        let (before_in, before_out) = (self.inner.total_in(), self.inner.total_out());
        let status = self.inner.decompress(input, output, FlushDecompress::None);
        // Both deltas are bounded by the slice lengths.
        let consumed = (self.inner.total_in() - before_in) as usize;
        let produced = (self.inner.total_out() - before_out) as usize;
        (
            consumed,
            produced,
            status.map_err(|_| ExtensionError::InvalidData),
        )
    }

    /// A DEFLATE block with BFINAL set ended the stream (RFC 7692 §7.2.3.4): start a new one,
    /// seeded with the message so far, so that later blocks may still refer back to it.
    fn restart(&mut self, out: &[u8]) -> Result<(), ExtensionError> {
        self.inner.reset(false);
        self.fed = false;
        let message = out.get(self.msg_start..).unwrap_or_default();
        let window = 1usize << self.window_bits;
        let history = &message[message.len().saturating_sub(window)..];
        if !history.is_empty() {
            self.inner
                .set_dictionary(history)
                .map_err(|_| ExtensionError::InvalidData)?;
        }
        Ok(())
    }
}

/// Makes room in a full `out`: doubles its capacity (at least `step` more), capped at `max_out`.
fn grow(out: &mut Vec<u8>, max_out: usize, step: usize) {
    let (len, capacity) = (out.len(), out.capacity());
    if capacity > len {
        return;
    }
    let target = capacity
        .saturating_mul(2)
        .max(len.saturating_add(step))
        .min(max_out);
    out.reserve_exact(target - len);
}

#[cfg(test)]
mod tests {
    use flate2::{Compress, Compression, FlushCompress};

    use super::*;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut c = Compress::new_with_window_bits(Compression::new(6), false, 15);
        let mut out = Vec::with_capacity(data.len() + 64);
        c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
        assert!(out.ends_with(&TAIL));
        out.truncate(out.len() - 4);
        out
    }

    #[test]
    fn limit_table() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let payload = deflate(&data);
        // (limit, chunk) → whole message or the limit error; capacity never above the limit.
        let cases = [
            (10_000, 1),
            (10_000, 7),
            (10_000, usize::MAX),
            (9_999, 3),
            (9_999, usize::MAX),
            (1, usize::MAX),
            (0, 5),
        ];
        for (limit, chunk) in cases {
            let mut inflater = Inflater::new(15);
            let mut out = Vec::new();
            let pieces: Vec<&[u8]> = payload.chunks(chunk.min(payload.len())).collect();
            let mut result = Ok(());
            for (i, piece) in pieces.iter().enumerate() {
                result = inflater.decode(piece, i + 1 == pieces.len(), &mut out, limit);
                assert!(out.len() <= limit && out.capacity() <= limit);
                if result.is_err() {
                    break;
                }
            }
            if limit >= data.len() {
                assert_eq!(result, Ok(()), "{limit} {chunk}");
                assert_eq!(out, data);
            } else {
                assert_eq!(result, Err(ExtensionError::OutputLimit { max: limit }));
            }
        }
    }

    #[test]
    fn invalid_data_table() {
        let cases: [&[u8]; 4] = [
            &[0xff, 0xff, 0xff, 0xff],
            &[0x07],                         // BTYPE 11 is reserved
            &[0x00, 0x05, 0x00, 0x00, 0x00], // stored block with a bad NLEN
            &[0xf2, 0x00, 0x11, 0x00, 0x00], // a back reference with no history
        ];
        for payload in cases {
            let mut inflater = Inflater::new(15);
            let mut out = Vec::new();
            let got = inflater.decode(payload, true, &mut out, 1 << 20);
            assert_eq!(got, Err(ExtensionError::InvalidData), "{payload:02x?}");
            // Usable afterwards.
            out.clear();
            inflater
                .decode(
                    &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
                    true,
                    &mut out,
                    5,
                )
                .unwrap();
            assert_eq!(out, b"Hello");
        }
    }

    #[test]
    fn empty_pieces_and_messages() {
        let mut inflater = Inflater::new(9);
        let mut out = Vec::new();
        // An empty payload (not RFC-conformant, 0x00 is) decodes to an empty message.
        inflater.decode(&[], true, &mut out, 10).unwrap();
        assert!(out.is_empty());
        inflater.decode(&[0x00], true, &mut out, 10).unwrap();
        assert!(out.is_empty());
        for piece in [&[][..], &[0xf2, 0x48], &[], &[0xcd, 0xc9, 0xc9, 0x07, 0x00]] {
            inflater.decode(piece, false, &mut out, 10).unwrap();
        }
        inflater.decode(&[], true, &mut out, 10).unwrap();
        assert_eq!(out, b"Hello");
    }
}
