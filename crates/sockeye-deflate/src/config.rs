//! What an endpoint asks for when it negotiates permessage-deflate, and how hard it compresses.

/// The smallest LZ77 window (in bits) the zlib-rs backend can use: flate2 panics below it.
pub const MIN_WINDOW_BITS: u8 = 9;

/// The largest LZ77 window (in bits) RFC 7692 allows: 32 KiB.
pub const MAX_WINDOW_BITS: u8 = 15;

/// The configuration of permessage-deflate for one endpoint (server or client).
///
/// The server decides what it asks the client for; the client decides what it offers. Each field
/// documents its default. Out-of-range values are clamped when an extension is built from the
/// configuration, never rejected: window bits to 9..=15, `level` to 0..=9, `mem_level` to 1..=9.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeflateConfig {
    /// The server resets its compressor after every message (RFC 7692 §7.1.1.1). Default `false`.
    ///
    /// Server role: always included in the response (a client may also ask for it); with a
    /// [`SharedCompressor`] a connection then keeps no send history either. Client role:
    /// offered, and a response without it fails.
    ///
    /// [`SharedCompressor`]: crate::SharedCompressor
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message (RFC 7692 §7.1.1.2). Default `false`.
    ///
    /// Server role: included in the response, so the server resets its decompressor after each
    /// message. Client role: offered as a hint, and honoured.
    pub client_no_context_takeover: bool,
    /// The largest LZ77 window the server compresses with, in bits (RFC 7692 §7.1.2.1).
    /// Default 15 (32 KiB), the most the RFC allows.
    ///
    /// Server role: the window of its compressor; a client offer may lower it. Client role:
    /// offered when below 15. Bounds the memory of the server's compressor (see the crate docs).
    pub server_max_window_bits: u8,
    /// The largest LZ77 window the client compresses with, in bits (RFC 7692 §7.1.2.2).
    /// Default 15.
    ///
    /// Server role: asked of clients that announce support for the parameter (a client that does
    /// not may use 15 bits). Client role: the window of its compressor, offered.
    pub client_max_window_bits: u8,
    /// The zlib compression level, 0 (stored blocks only) to 9. Default 6, zlib's default.
    pub level: u32,
    /// zlib's `memLevel` (1..=9) for this endpoint's compressors. Default 5 (zlib's is 8).
    ///
    /// With zlib-rs it sizes the symbol buffer only (the hash table is always 64 Ki entries):
    /// 2^(memLevel+6) symbols a block, 7 bytes each, so 14 KiB at 5 and 112 KiB at 8 (a
    /// compressor of 273 against 371 KiB at 15 bits). zlib-rs clears the buffer at every block,
    /// and a message is at least one block, so a smaller one costs less per message: at 5,
    /// 13 % fewer instructions per 4 KiB JSON-like message and 56 % fewer per 256 B one through
    /// a warm stream than at 8, for the same compressed size at 4 KiB and 64 KiB and 0.6 % more
    /// at 1 MiB (more, shorter blocks). Python `websockets` uses 5 too.
    pub mem_level: u8,
    /// Messages shorter than this many bytes are sent uncompressed (RSV1 clear). Default 64;
    /// 0 compresses every message, the empty one included.
    ///
    /// Bounds the CPU spent on messages too small to gain from compression (a deflated message
    /// carries at least a byte of block header, and small messages rarely shrink).
    pub threshold: usize,
    /// With a [`SharedCompressor`] and context takeover in the send direction: how many of the
    /// most recent bytes this endpoint sent compressed each connection keeps (at most the
    /// window). Default 4096.
    ///
    /// Each message is then compressed by the worker's shared compressor, primed with these
    /// bytes as a dictionary: the peer's window ends with them, so the message may refer to
    /// them, as with a compressor of its own, without one per connection (about 270 KiB at 15
    /// bits, cold in cache when many connections send). On JSON-like 4 KiB messages, 4096 bytes
    /// of history make the output about 5 % larger than a full context's and cost about a third
    /// of the CPU of a compressor per connection among 100 connections; 0 compresses each
    /// message from a fresh context (RFC 7692 lets a sender decide that alone). Small messages
    /// pay for it: each starts with a reset of the shared compressor, which clears zlib-rs'
    /// 128 KiB hash table (about 10 µs), so below about 1 KiB a connection that sends often
    /// would compress for less with a compressor of its own, warm in cache; the
    /// [`warm_streams`](DeflateConfig::warm_streams) give the most frequent senders one
    /// (`benches/README.md`, "Warm streams for frequent senders"). The history is
    /// dropped after a broadcast and by
    /// [`release_idle_state`](crate::PerMessageDeflate::release_idle_state). Without a
    /// [`SharedCompressor`] a connection keeps a compressor of its own and this is unused.
    ///
    /// [`SharedCompressor`]: crate::SharedCompressor
    pub send_history: u32,
    /// How many warm streams a worker's [`SharedCompressor`] lends to the connections that send
    /// compressed messages most often (see its docs). Default 4: at most 4 compressors more per
    /// worker (about 1.1 MiB at 15 bits), which spare frequent senders of small messages the
    /// shared compressor's reset. 0 sends every message with context takeover through the shared
    /// compressor and the send history; at most [`MAX_WARM_STREAMS`](crate::MAX_WARM_STREAMS)
    /// are lent. Read by the engine when it makes each worker's
    /// compressor ([`SharedCompressor::with_warm_streams`]); unused otherwise.
    ///
    /// [`SharedCompressor`]: crate::SharedCompressor
    /// [`SharedCompressor::with_warm_streams`]: crate::SharedCompressor::with_warm_streams
    pub warm_streams: u16,
}

impl DeflateConfig {
    /// The defaults: context takeover both ways, 15-bit windows, level 6, `memLevel` 5, a
    /// 64-byte threshold, 4096 bytes of send history, 4 warm streams per worker.
    pub const DEFAULT: DeflateConfig = DeflateConfig {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: MAX_WINDOW_BITS,
        client_max_window_bits: MAX_WINDOW_BITS,
        level: 6,
        mem_level: 5,
        threshold: 64,
        send_history: 4096,
        warm_streams: 4,
    };

    /// The configuration with every value in range (see the type docs).
    pub(crate) fn clamped(self) -> DeflateConfig {
        DeflateConfig {
            server_max_window_bits: clamp_bits(self.server_max_window_bits),
            client_max_window_bits: clamp_bits(self.client_max_window_bits),
            level: self.level.min(9),
            mem_level: self.mem_level.clamp(1, 9),
            ..self
        }
    }
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig::DEFAULT
    }
}

/// Window bits as the zlib-rs backend can use them: 8 (allowed by RFC 7692) becomes 9.
pub(crate) fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamped_table() {
        let cases: [(u8, u32, u8, u8, u32, u8); 5] = [
            // (window bits, level, mem_level) in → out
            (0, 0, 0, 9, 0, 1),
            (8, 1, 1, 9, 1, 1),
            (9, 6, 8, 9, 6, 8),
            (15, 9, 9, 15, 9, 9),
            (255, 100, 200, 15, 9, 9),
        ];
        for (bits, level, mem, want_bits, want_level, want_mem) in cases {
            let config = DeflateConfig {
                server_max_window_bits: bits,
                client_max_window_bits: bits,
                level,
                mem_level: mem,
                ..DeflateConfig::DEFAULT
            }
            .clamped();
            assert_eq!(config.server_max_window_bits, want_bits, "{bits}");
            assert_eq!(config.client_max_window_bits, want_bits, "{bits}");
            assert_eq!(config.level, want_level, "{level}");
            assert_eq!(config.mem_level, want_mem, "{mem}");
        }
    }
}
