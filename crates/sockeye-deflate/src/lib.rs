//! permessage-deflate (RFC 7692) for sockeye: negotiation, context takeover, window bits,
//! size-bounded inflate and an optional per-worker shared compressor, on zlib-rs (compressing
//! through its own API, decompressing through flate2's).
//!
//! [`PerMessageDeflate`] plugs into [`sockeye_proto::Connection`] through the inline
//! [`Extension`](sockeye_proto::Extension) hook. What it does **not** do: frame, mask, validate
//! UTF-8 or enforce RSV1-on-the-first-frame-only (the connection does all four, after or around
//! this hook), fragment outgoing messages, or know about sockets and threads.
//!
//! ```text
//!  receive                                                send
//!  ───────                                                ────
//!  frame with RSV1 (first frame of a message)             Connection::send(msg)
//!    │ Connection: header · unmask in place                 │
//!    ▼                                                      ▼
//!  decode(piece, fin, out, max_out)  per piece, as it     encode(msg, out)  whole message
//!    │ zlib inflate into out[len..] windows, out grows      │ shorter than threshold → Rsv::NONE
//!    │ geometrically, capped at max_out (bomb → 1009)       │ deflate + sync flush, strip
//!    │ at fin: + 00 00 ff ff, then reset if the peer        │ 00 00 ff ff; reset if no context
//!    │ has no context takeover; corrupt → 1007              │ takeover; a SharedCompressor is
//!    │                                                      │ primed with the send history
//!    ▼                                                      ▼
//!  Connection: UTF-8 check of text ─▶ Event              frame with RSV1 ─▶ caller's queue
//! ```
//!
//! # Example
//!
//! ```
//! use std::time::Instant;
//! use sockeye_deflate::{DeflateConfig, PerMessageDeflate};
//! use sockeye_proto::extension::{ParamWriter, parse_offers};
//! use sockeye_proto::{Config, Connection, Event, Extension, Message};
//!
//! // Server: answer the client's Sec-WebSocket-Extensions offer.
//! let mut server_ext = PerMessageDeflate::server(DeflateConfig::default());
//! let mut buf = [0u8; 128];
//! let mut response = ParamWriter::new(&mut buf);
//! for offer in parse_offers("permessage-deflate; client_max_window_bits") {
//!     if server_ext.accept_offer(&offer.unwrap(), &mut response).unwrap() {
//!         break;
//!     }
//! }
//! let header = format!("permessage-deflate{}", std::str::from_utf8(response.as_bytes()).unwrap());
//! assert_eq!(header, "permessage-deflate");
//!
//! // Client: configure itself from the response.
//! let mut client_ext = PerMessageDeflate::client(DeflateConfig::default());
//! client_ext.accept_response(&parse_offers(&header).next().unwrap().unwrap()).unwrap();
//!
//! // A compressed message from the client to the server.
//! let mut client = Connection::client(Config::default(), client_ext, 0x5eed);
//! let mut server = Connection::server(Config::default(), server_ext);
//! let text = "a compressible message, a compressible message, a compressible message";
//! let mut wire = Vec::new();
//! client.send(Message::Text(text), &mut wire).unwrap();
//! assert!(wire.len() < text.len() && wire[0] & 0x40 != 0, "RSV1 set, payload smaller");
//! let mut msg_buf = Vec::new();
//! let read = server.handle_read(&mut wire, &mut msg_buf, Instant::now()).unwrap();
//! assert_eq!(read.event, Some(Event::Text(text)));
//! ```
//!
//! # In an engine
//!
//! - Per worker thread: one [`SharedCompressor`] (allocates on first use).
//! - Per server connection, before the upgrade:
//!   `PerMessageDeflate::server(config).with_shared_compressor(shared.clone())`. For each offer of
//!   every `Sec-WebSocket-Extensions` line, in order, call
//!   [`accept_offer`](sockeye_proto::Extension::accept_offer) until it returns `Ok(true)` (an
//!   `Err` declines that offer too) and answer `permessage-deflate` followed by the parameters it
//!   wrote; then `Connection::server(protocol_config, ext)`. Unnegotiated, it claims no RSV bit
//!   and compresses nothing.
//! - Per client connection: `permessage-deflate` and what
//!   [`write_offer`](sockeye_proto::Extension::write_offer) writes in the request; then
//!   [`accept_response`](sockeye_proto::Extension::accept_response) with the server's
//!   `permessage-deflate` element (an `Err` fails the connection), or nothing when it has none.
//! - Broadcast: group receivers by [`PerMessageDeflate::send_settings`]; per distinct settings,
//!   [`SharedCompressor::compress_for_broadcast`] once and frame the payload with RSV1 (or send
//!   it plain when it returns `Rsv::NONE`, or for receivers with no settings); after writing it
//!   to a receiver, call [`PerMessageDeflate::reset_send_context`] on it.
//!
//! # Window bits
//!
//! RFC 7692 allows windows of 8 to 15 bits; flate2's zlib-rs backend works with 9 to 15 (and
//! panics outside: this crate never asks for another). An 8 is answered with 9 where the RFC
//! allows it: a peer limited to 8 bits is decompressed with a 9-bit window, which reads any
//! 8-bit stream (RFC 7692 §7.1.2.2 lets the server ignore the client's value; the response keeps
//! the client's 8). Where *we* would have to compress within 8 bits (a client's
//! `server_max_window_bits=8`, a server's `client_max_window_bits=8`), no 9-bit compressor can
//! keep that promise: the offer is accepted as written and that direction sends every message
//! uncompressed, which the RFC always allows. Configured values are clamped to 9..=15.
//!
//! # Memory per connection
//!
//! Heap per connection (zlib-rs 0.6, counted with an instrumented allocator, level 6,
//! `memLevel` 5 as by default; `tests/memory.rs` measures the resident size of 200 states: about
//! 163 KiB at 9 bits and 290 KiB at 15 bits for both states together):
//!
//! | state                             | allocated                 | 9 bits   | 15 bits  |
//! |-----------------------------------|---------------------------|----------|----------|
//! | [`PerMessageDeflate`] itself      | inline, negotiated or not | 64 B     | 64 B     |
//! | decompressor                      | first message received    | 46.6 KiB | 46.6 KiB |
//! | compressor of its own             | first message compressed  | 147 KiB  | 273 KiB  |
//! | or: send history (see below)      | first message compressed  | 4 KiB    | 4 KiB    |
//! | compressor, shared (see below)    | once per worker           | 0        | 0        |
//! | warm streams (see below)          | up to `n` per worker      | 0        | 0        |
//!
//! "Shared": a [`SharedCompressor`] given to the connection
//! ([`PerMessageDeflate::with_shared_compressor`]). It compresses every message of the worker's
//! connections: from a fresh context when the send direction has no context takeover, else
//! primed with the connection's send history, the last
//! [`send_history`](DeflateConfig::send_history) bytes it sent compressed (4096 by default, at
//! most the window), which the peer's window ends with. A connection then holds 4 KiB instead of
//! a compressor, and the one compressor stays warm in cache. Priming costs a reset, though, which
//! small messages feel most: a [`SharedCompressor::with_warm_streams`] also lends up to `n`
//! compressors (the engine's default is [`DeflateConfig::warm_streams`], 4) to the connections
//! that compress most often, which then continue their stream as with a compressor of their own.
//!
//! zlib-rs sizes differ from C zlib's documented formula (deflate `2^(windowBits+2) +
//! 2^(memLevel+9)`: 130 KiB at 9 bits, 256 KiB at 15 with memLevel 8; inflate `2^windowBits` + about 7 KiB): its
//! compressor always has a 64 Ki-entry hash table (128 KiB) and 7 bytes of symbol buffers per
//! symbol of a block, 2^(`memLevel`+6) symbols (14 KiB at 5, 112 KiB at 8: a compressor of 245
//! and 371 KiB at 9 and 15 bits then), and its decompressor always allocates a 32 KiB window, so a smaller window saves
//! compressor memory only. The compressor is the cost to avoid: give every connection of a
//! worker the worker's [`SharedCompressor`]. The decompressor can be freed between messages when
//! the client has no context takeover ([`PerMessageDeflate::release_idle_state`]). The message being inflated lives
//! in the connection's message buffer, bounded by `Config::max_message_size`.
//!
//! # Features
//!
//! None. Dependencies: `sockeye-proto`, `zlib-rs` (pure Rust) and `flate2` on it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod deflate;
mod extension;
mod inflate;
mod negotiate;

pub use config::{DeflateConfig, MAX_WINDOW_BITS, MIN_WINDOW_BITS};
pub use deflate::{MAX_WARM_STREAMS, SendSettings, SharedCompressor};
pub use extension::PerMessageDeflate;
pub use negotiate::{DirectionParams, NAME, Negotiated};
