//! Compression of whole messages (RFC 7692 §7.2.1), per connection or with a per-worker
//! [`SharedCompressor`].

use core::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use sockeye_proto::{ExtensionError, Rsv};
use zlib_rs::{Deflate, DeflateFlush};

use crate::inflate::TAIL;

/// A raw DEFLATE compressor that knows whether it holds history.
///
/// zlib-rs' own safe API rather than flate2's, which wraps the same compressor but fixes
/// `memLevel` at 8 (see [`DeflateConfig::mem_level`](crate::DeflateConfig::mem_level)).
pub(crate) struct Deflater {
    inner: Deflate,
    /// Messages went through since the last reset.
    dirty: bool,
}

impl Deflater {
    /// A compressor with a window of `window_bits`, at `level` and `mem_level`, clamped to
    /// 9..=15 (zlib-rs' raw streams start at 9), 0..=9 and 1..=9.
    pub(crate) fn new(window_bits: u8, level: u32, mem_level: u8) -> Self {
        let config = zlib_rs::DeflateConfig {
            level: level.min(9) as i32,
            // Negative: a raw stream, no zlib header or checksum.
            window_bits: -i32::from(crate::config::clamp_bits(window_bits)),
            mem_level: i32::from(mem_level.clamp(1, 9)),
            ..zlib_rs::DeflateConfig::default()
        };
        Deflater {
            inner: Deflate::new_with_config(config),
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
            // Enough for incompressible input in one call: stored blocks cost 5 bytes each, and
            // are as short as 2 KiB at memLevel 5 (the loop asks again if it was not enough).
            let room = input.len() + input.len() / 256 + 64;
            out.resize(len + room, 0);
            let (before_in, before_out) = (self.inner.total_in(), self.inner.total_out());
            // "Compress all the octets of the payload of the message using DEFLATE" and end with
            // an empty DEFLATE block with no compression (§7.2.1): a sync flush.
            let status = self
                .inner
                .compress(input, &mut out[len..], DeflateFlush::SyncFlush);
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
        self.prime(dictionary)?;
        self.compress(input, out, true)
    }

    /// Starts a fresh context that may refer to `dictionary` (empty: none).
    fn prime(&mut self, dictionary: &[u8]) -> Result<(), ExtensionError> {
        self.reset();
        if !dictionary.is_empty() {
            self.dirty = true;
            if self.inner.set_dictionary(dictionary).is_err() {
                self.reset();
                return Err(ExtensionError::InvalidData);
            }
        }
        Ok(())
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
///
/// It also remembers the connection's claim on a warm stream of the shared compressor: which
/// stream continues this connection's compressed bytes, and when it last compressed.
pub(crate) struct History {
    bytes: Vec<u8>,
    cap: usize,
    /// The token of the warm stream that holds this connection's context; 0: none. Tokens are
    /// never reused, so a stream taken over by another connection is never mistaken for ours.
    stream: u64,
    /// The shared compressor's count of messages compressed when this connection last compressed
    /// one through it; 0: never.
    last_tick: u64,
}

impl History {
    /// An empty history that keeps at most `cap` bytes (allocated once, at that size).
    pub(crate) fn new(cap: usize) -> Self {
        History {
            bytes: Vec::with_capacity(cap),
            cap,
            stream: 0,
            last_tick: 0,
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
    /// zlib's `memLevel` (1..=9).
    pub mem_level: u8,
    /// Messages shorter than this are sent uncompressed.
    pub threshold: usize,
}

impl SendSettings {
    /// What a compressor for these settings is made with, clamped to the ranges zlib-rs takes.
    pub(crate) fn params(&self) -> Params {
        Params {
            window_bits: crate::config::clamp_bits(self.window_bits),
            level: self.level.min(9),
            mem_level: self.mem_level.clamp(1, 9),
        }
    }
}

/// What a compressor is made with: streams with equal parameters can take each other's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params {
    pub(crate) window_bits: u8,
    pub(crate) level: u32,
    pub(crate) mem_level: u8,
}

impl Params {
    fn deflater(self) -> Box<Deflater> {
        Box::new(Deflater::new(self.window_bits, self.level, self.mem_level))
    }
}

/// The longest message a warm stream compresses. Longer ones go through the shared compressor,
/// primed with the sender's history: their reset is a small part of their cost, and a context
/// of a whole window makes zlib search longer chains than a primed 4 KiB does, so a warm stream
/// costs more CPU per message from about 1 KiB on (`benches/deflate.rs`, `deflate/takeover`).
const WARM_MAX_MESSAGE: usize = 512;

/// The most warm streams one shared compressor lends (about 17 MiB at 15 bits, `memLevel` 5).
pub const MAX_WARM_STREAMS: usize = 64;

/// The last token given to a warm stream, in the whole process: a claim can never match a
/// stream of another shared compressor either.
static LAST_TOKEN: AtomicU64 = AtomicU64::new(0);

/// A compressor shared by the connections of one worker thread: for the directions that reset
/// after every message (`server_no_context_takeover`), for context takeover through each
/// connection's short history
/// ([`DeflateConfig::send_history`](crate::DeflateConfig::send_history)), and for broadcast.
///
/// Reset between messages, a compressor holds nothing of any connection, so one per worker, per
/// window size, level and `memLevel`, serves every connection, and stays warm in cache: no compressor memory
/// per connection (about 270 KiB at 15 bits with zlib-rs, see the crate docs). Create one per
/// worker thread and give each connection's [`PerMessageDeflate`](crate::PerMessageDeflate) a clone
/// ([`with_shared_compressor`](crate::PerMessageDeflate::with_shared_compressor)). Clones share
/// one set of compressors behind a mutex, which keeps extensions `Send` (a connection may move
/// to another thread) and costs one uncontended lock per compressed message when every clone
/// stays on its worker. Compressors are allocated on first use and kept.
///
/// **Warm streams** ([`with_warm_streams`](SharedCompressor::with_warm_streams)): a reset costs
/// more than compressing a few hundred bytes (zlib-rs clears its hash table and chain links,
/// about 230 KiB), so a connection that sends small messages often would rather keep its
/// context. Up to `n` compressors are lent to the connections that compress most often: a
/// connection that compresses a message of up to 512 bytes within `n` messages of its last
/// takes the least recently used warm stream (primed with its history, as the shared one is),
/// and its next messages of up to 512 bytes continue that stream with no reset and no priming,
/// as with a compressor of its own, until another connection takes the stream over. A longer
/// message, a broadcast, idle release and the connection's end give the stream back.
/// Connections that compress less often use the shared compressor. Memory is bounded by one
/// compressor per window size, level and `memLevel` used, plus `n`, whatever the number of connections.
#[derive(Clone, Default)]
pub struct SharedCompressor {
    inner: Arc<Mutex<Shared>>,
}

#[derive(Default)]
struct Shared {
    /// One compressor per window size, level and `memLevel`, reset before every message.
    entries: Vec<SharedEntry>,
    /// The warm streams lent to frequent senders, at most `warm_limit`.
    warm: Vec<WarmStream>,
    warm_limit: usize,
    /// Messages compressed with a send history, the clock of "recently".
    tick: u64,
}

struct SharedEntry {
    params: Params,
    deflater: Box<Deflater>,
}

struct WarmStream {
    /// The claim of the connection whose context it holds (see `History::stream`); 0: none.
    token: u64,
    last_used: u64,
    params: Params,
    deflater: Box<Deflater>,
}

impl SharedCompressor {
    /// An empty shared compressor with no warm streams (no allocation until first use).
    pub fn new() -> Self {
        SharedCompressor::default()
    }

    /// An empty shared compressor that lends up to `n` warm streams (at most
    /// [`MAX_WARM_STREAMS`]) to the connections that compress most often (see the type docs): at
    /// most `n` compressors more per worker (about 270 KiB each at 15 bits), allocated as
    /// connections take them.
    pub fn with_warm_streams(n: usize) -> Self {
        let shared = SharedCompressor::default();
        shared.lock().warm_limit = n.min(MAX_WARM_STREAMS);
        shared
    }

    /// Gives back the warm stream `history`'s connection holds, if it holds one: its context
    /// is forgotten (the stream keeps none of the connection's bytes) and it is the first to be
    /// lent again. For a connection that leaves its stream behind (a broadcast, idle, closed).
    pub(crate) fn release(&self, history: &mut History) {
        let claim = std::mem::take(&mut history.stream);
        if claim == 0 {
            return;
        }
        if let Some(warm) = self.lock().warm.iter_mut().find(|w| w.token == claim) {
            (warm.token, warm.last_used) = (0, 0);
            warm.deflater.reset();
        }
    }

    /// How many compressors it holds: one per distinct window size, level and `memLevel` used,
    /// and the warm streams taken so far.
    pub fn len(&self) -> usize {
        let shared = self.lock();
        shared.entries.len() + shared.warm.len()
    }

    /// The state, locked. A panic while a compressor was compressing leaves its state unknown:
    /// every compressor is then dropped and rebuilt on use. The clock and the last token are
    /// kept, so that no claim made before matches a stream made after.
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.inner.lock().unwrap_or_else(|poisoned| {
            let mut shared = poisoned.into_inner();
            shared.entries.clear();
            shared.warm.clear();
            self.inner.clear_poison();
            shared
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
        self.compress(settings.params(), &[], input, out)?;
        Ok(Rsv::RSV1)
    }

    /// Compresses `input` from a fresh context primed with `dictionary` (empty: none) and resets
    /// the compressor afterwards.
    pub(crate) fn compress(
        &self,
        params: Params,
        dictionary: &[u8],
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ExtensionError> {
        self.lock()
            .entry(params)
            .compress_primed(dictionary, input, out)
    }

    /// Compresses `input` for the connection whose send history is `history`, so that the
    /// output may refer to what the peer's window ends with, and records `input` in the history.
    /// Continues the connection's warm stream if it still holds one, takes one over if the
    /// connection compresses often, else primes the shared compressor with the history.
    pub(crate) fn compress_with_history(
        &self,
        params: Params,
        history: &mut History,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ExtensionError> {
        if input.is_empty() {
            // An empty message changes no window (see `Deflater::compress`).
            out.push(0x00);
            return Ok(());
        }
        let mut guard = self.lock();
        let shared = &mut *guard;
        shared.tick += 1;
        let tick = shared.tick;
        let recent = history.last_tick != 0
            && tick.saturating_sub(history.last_tick) <= shared.warm_limit as u64;
        history.last_tick = tick;
        let claim = history.stream;
        history.stream = 0;
        let small = input.len() <= WARM_MAX_MESSAGE;
        let held = match claim {
            0 => None,
            claim => shared.warm.iter_mut().find(|w| w.token == claim),
        };
        if let Some(warm) = held {
            if !small {
                // Cheaper through the shared compressor below. The stream then no longer ends
                // where the peer's window does: it is free for another connection.
                (warm.token, warm.last_used) = (0, 0);
            } else {
                // Ours since the last message: the peer's window ends with all it holds.
                warm.last_used = tick;
                if warm.deflater.compress(input, out, false).is_err() {
                    (warm.token, warm.last_used) = (0, 0);
                    return Err(ExtensionError::InvalidData);
                }
                history.stream = claim;
                history.push(input);
                return Ok(());
            }
        }
        if small && recent && shared.warm_limit > 0 {
            let index = if shared.warm.len() < shared.warm_limit {
                shared.warm.push(WarmStream {
                    token: 0,
                    last_used: 0,
                    params,
                    deflater: params.deflater(),
                });
                shared.warm.len() - 1
            } else {
                let lru = shared
                    .warm
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, w)| w.last_used);
                lru.map_or(0, |(i, _)| i)
            };
            let token = LAST_TOKEN.fetch_add(1, Ordering::Relaxed) + 1;
            let warm = &mut shared.warm[index];
            if warm.params != params {
                warm.deflater = params.deflater();
                warm.params = params;
            }
            (warm.token, warm.last_used) = (0, tick);
            warm.deflater.prime(history.bytes())?;
            warm.deflater.compress(input, out, false)?;
            warm.token = token;
            history.stream = token;
            history.push(input);
            return Ok(());
        }
        shared
            .entry(params)
            .compress_primed(history.bytes(), input, out)?;
        history.push(input);
        Ok(())
    }
}

impl Shared {
    /// The reset-every-time compressor for `params`, made on first use.
    fn entry(&mut self, params: Params) -> &mut Deflater {
        let index = match self.entries.iter().position(|e| e.params == params) {
            Some(index) => index,
            None => {
                self.entries.push(SharedEntry {
                    params,
                    deflater: params.deflater(),
                });
                self.entries.len() - 1
            }
        };
        &mut self.entries[index].deflater
    }
}

impl fmt::Debug for SharedCompressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.lock();
        let params = |p: &Params| (p.window_bits, p.level, p.mem_level);
        let keys: Vec<_> = shared.entries.iter().map(|e| params(&e.params)).collect();
        let warm: Vec<_> = shared.warm.iter().map(|w| params(&w.params)).collect();
        f.debug_struct("SharedCompressor")
            .field("window_bits_level_mem_level", &keys)
            .field("warm_streams", &warm)
            .field("warm_limit", &shared.warm_limit)
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
            let mut deflater = Deflater::new(15, level, 8);
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
            mem_level: 8,
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
