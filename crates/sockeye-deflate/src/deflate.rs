//! Compression of whole messages (RFC 7692 §7.2.1), per connection or with a per-worker
//! [`SharedCompressor`].

use core::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use flate2::{Compress, Compression, FlushCompress};
use sockeye_proto::{ExtensionError, Rsv};

use crate::inflate::TAIL;

/// A raw DEFLATE compressor that knows whether it holds history.
pub(crate) struct Deflater {
    inner: Compress,
    /// Messages went through since the last reset.
    dirty: bool,
}

impl Deflater {
    /// A compressor with a window of `window_bits` at `level`, clamped to 9..=15 (flate2 panics
    /// outside) and 0..=9.
    pub(crate) fn new(window_bits: u8, level: u32) -> Self {
        let (window_bits, level) = (crate::config::clamp_bits(window_bits), level.min(9));
        Deflater {
            inner: Compress::new_with_window_bits(Compression::new(level), false, window_bits),
            dirty: false,
        }
    }

    /// Appends the compressed payload of the message `input` to `out`; `reset` forgets the
    /// history afterwards (no context takeover).
    pub(crate) fn compress(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        reset: bool,
    ) -> Result<(), ExtensionError> {
        let start = out.len();
        if input.is_empty() {
            // An empty message compresses to an empty stored block, flushed: 00 00 00 ff ff,
            // which is 00 once the tail is removed. zlib emits nothing for a flush with no new
            // input after a flush, so it is written here; the history is unchanged.
            out.push(0x00);
            return Ok(());
        }
        self.dirty = true;
        let result = self.run(input, out);
        if result.is_err() {
            out.truncate(start);
        }
        if reset || result.is_err() {
            self.reset();
        }
        result
    }

    fn run(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), ExtensionError> {
        let start = out.len();
        loop {
            let len = out.len();
            // Enough for incompressible input in one call: stored blocks cost 5 bytes a 64 KiB.
            let room = input.len() + input.len() / 1024 + 64;
            out.resize(len + room, 0);
            let (before_in, before_out) = (self.inner.total_in(), self.inner.total_out());
            // "Compress all the octets of the payload of the message using DEFLATE" and end with
            // an empty DEFLATE block with no compression (§7.2.1): a sync flush.
            let status = self
                .inner
                .compress(input, &mut out[len..], FlushCompress::Sync);
            let consumed = (self.inner.total_in() - before_in) as usize;
            let produced = (self.inner.total_out() - before_out) as usize;
            out.truncate(len + produced);
            status.map_err(|_| ExtensionError::InvalidData)?;
            input = &input[consumed..];
            // zlib's flush is complete when it returns with output space left.
            if input.is_empty() && produced < room {
                break;
            }
        }
        // "Remove 4 octets (that are 0x00 0x00 0xff 0xff) from the tail end" (§7.2.1).
        if !out[start..].ends_with(&TAIL) {
            return Err(ExtensionError::InvalidData);
        }
        out.truncate(out.len() - TAIL.len());
        Ok(())
    }

    /// Appends the compressed payload of `input` to `out` from a fresh context primed with
    /// `dictionary` (the peer's most recent decompressed bytes, so the output may refer to them),
    /// and forgets everything afterwards.
    pub(crate) fn compress_primed(
        &mut self,
        dictionary: &[u8],
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ExtensionError> {
        self.reset();
        if !dictionary.is_empty() && !input.is_empty() {
            self.dirty = true;
            if self.inner.set_dictionary(dictionary).is_err() {
                self.reset();
                return Err(ExtensionError::InvalidData);
            }
        }
        self.compress(input, out, true)
    }

    /// Forgets the history, if there is any.
    pub(crate) fn reset(&mut self) {
        if self.dirty {
            self.inner.reset();
            self.dirty = false;
        }
    }
}

/// The most recent bytes a connection sent compressed, up to a cap: what the peer's window ends
/// with, primed into the shared compressor so that the next message may refer to them.
pub(crate) struct History {
    bytes: Vec<u8>,
    cap: usize,
}

impl History {
    /// An empty history that keeps at most `cap` bytes (allocated once, at that size).
    pub(crate) fn new(cap: usize) -> Self {
        History {
            bytes: Vec::with_capacity(cap),
            cap,
        }
    }

    /// The bytes kept, oldest first.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Records a message sent compressed: its bytes follow the history in the peer's window.
    pub(crate) fn push(&mut self, sent: &[u8]) {
        if sent.len() >= self.cap {
            self.bytes.clear();
            self.bytes.extend_from_slice(&sent[sent.len() - self.cap..]);
        } else {
            let excess = (self.bytes.len() + sent.len()).saturating_sub(self.cap);
            self.bytes.drain(..excess);
            self.bytes.extend_from_slice(sent);
        }
    }
}

/// The settings that determine the compressed bytes of a message sent on a connection: every
/// connection with equal settings can be sent the same payload, compressed once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SendSettings {
    /// The LZ77 window, in bits (9..=15).
    pub window_bits: u8,
    /// The zlib level (0..=9).
    pub level: u32,
    /// Messages shorter than this are sent uncompressed.
    pub threshold: usize,
}

/// A compressor shared by the connections of one worker thread: for the directions that reset
/// after every message (`server_no_context_takeover`), for context takeover through each
/// connection's short history
/// ([`DeflateConfig::send_history`](crate::DeflateConfig::send_history)), and for broadcast.
///
/// Reset between messages, a compressor holds nothing of any connection, so one per worker, per
/// window size and level, serves every connection, and stays warm in cache: no compressor memory
/// per connection (about 370 KiB at 15 bits with zlib-rs, see the crate docs). Create one per
/// worker thread and give each connection's [`PerMessageDeflate`](crate::PerMessageDeflate) a clone
/// ([`with_shared_compressor`](crate::PerMessageDeflate::with_shared_compressor)). Clones share
/// one set of compressors behind a mutex, which keeps extensions `Send` (a connection may move
/// to another thread) and costs one uncontended lock per compressed message when every clone
/// stays on its worker. Compressors are allocated on first use and kept.
#[derive(Clone, Default)]
pub struct SharedCompressor {
    inner: Arc<Mutex<Vec<SharedEntry>>>,
}

struct SharedEntry {
    window_bits: u8,
    level: u32,
    deflater: Box<Deflater>,
}

impl SharedCompressor {
    /// An empty shared compressor (no allocation until first use).
    pub fn new() -> Self {
        SharedCompressor::default()
    }

    /// How many compressors it holds (one per distinct window size and level used).
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// The compressors, locked. A panic while one was compressing leaves its state unknown: the
    /// set is then emptied and rebuilt on use.
    fn entries(&self) -> MutexGuard<'_, Vec<SharedEntry>> {
        self.inner.lock().unwrap_or_else(|poisoned| {
            let mut entries = poisoned.into_inner();
            entries.clear();
            self.inner.clear_poison();
            entries
        })
    }

    /// Whether it holds no compressor yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Compresses a whole message from a fresh context, as any connection with `settings` can
    /// receive it, and appends the payload to `out`.
    ///
    /// Returns [`Rsv::RSV1`] (frame it with RSV1 set), or [`Rsv::NONE`] with nothing written when
    /// the message is under the threshold (send it as it is). This is the broadcast path: compress
    /// once per distinct [`SendSettings`] and send the same frame to every connection with them.
    /// A connection with context takeover must then be told with
    /// [`PerMessageDeflate::reset_send_context`](crate::PerMessageDeflate::reset_send_context)
    /// that a message left its compressor's history behind.
    ///
    /// # Errors
    ///
    /// [`ExtensionError::InvalidData`] if zlib fails (it does not on valid settings).
    pub fn compress_for_broadcast(
        &self,
        settings: &SendSettings,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Rsv, ExtensionError> {
        if input.len() < settings.threshold {
            return Ok(Rsv::NONE);
        }
        let window_bits = crate::config::clamp_bits(settings.window_bits);
        self.compress(window_bits, settings.level.min(9), &[], input, out)?;
        Ok(Rsv::RSV1)
    }

    /// Compresses `input` from a fresh context primed with `dictionary` (empty: none) and resets
    /// the compressor afterwards.
    pub(crate) fn compress(
        &self,
        window_bits: u8,
        level: u32,
        dictionary: &[u8],
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ExtensionError> {
        let mut entries = self.entries();
        let index = match entries
            .iter()
            .position(|e| e.window_bits == window_bits && e.level == level)
        {
            Some(index) => index,
            None => {
                entries.push(SharedEntry {
                    window_bits,
                    level,
                    deflater: Box::new(Deflater::new(window_bits, level)),
                });
                entries.len() - 1
            }
        };
        entries[index]
            .deflater
            .compress_primed(dictionary, input, out)
    }
}

impl fmt::Debug for SharedCompressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.entries();
        let keys: Vec<(u8, u32)> = entries.iter().map(|e| (e.window_bits, e.level)).collect();
        f.debug_struct("SharedCompressor")
            .field("window_bits_and_levels", &keys)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compress_table() {
        // (level, takeover, messages) → payloads (RFC 7692 §7.2.3.1–3)
        let hello: &[u8] = &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let stored: &[u8] = &[
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        let cases: [(u32, bool, &[&[u8]]); 4] = [
            (6, false, &[hello, hello]),
            (6, true, &[hello, &[0xf2, 0x00, 0x11, 0x00, 0x00]]),
            (0, false, &[stored, stored]),
            (6, true, &[hello, &[0x00], &[0xf2, 0x00, 0x11, 0x00, 0x00]]),
        ];
        for (level, takeover, want) in cases {
            let mut deflater = Deflater::new(15, level);
            for (i, payload) in want.iter().enumerate() {
                let input: &[u8] = if *payload == [0x00] { b"" } else { b"Hello" };
                let mut out = vec![0xaa];
                deflater.compress(input, &mut out, !takeover).unwrap();
                assert_eq!(
                    &out[1..],
                    *payload,
                    "level {level} takeover {takeover} #{i}"
                );
            }
        }
    }

    #[test]
    fn shared_keys_by_window_and_level() {
        let shared = SharedCompressor::new();
        let settings = |window_bits, level| SendSettings {
            window_bits,
            level,
            threshold: 0,
        };
        let mut out = Vec::new();
        for (bits, level) in [(15, 6), (9, 6), (15, 6), (15, 1), (9, 6)] {
            out.clear();
            let rsv = shared
                .compress_for_broadcast(&settings(bits, level), b"Hello", &mut out)
                .unwrap();
            assert_eq!(
                (rsv, out.as_slice()),
                (Rsv::RSV1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00][..])
            );
        }
        assert_eq!(shared.len(), 3);
        out.clear();
        let small = SendSettings {
            threshold: 6,
            ..settings(15, 6)
        };
        assert_eq!(
            shared.compress_for_broadcast(&small, b"Hello", &mut out),
            Ok(Rsv::NONE)
        );
        assert!(out.is_empty());
    }
}
