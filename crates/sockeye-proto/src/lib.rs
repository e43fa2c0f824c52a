//! The sans-IO WebSocket protocol core of sockeye (RFC 6455).
//!
//! This crate parses and produces bytes; it never touches a socket, a clock or an entropy source.
//! Time (`Instant`) and mask-key seeds come in as arguments, so every behaviour is deterministic and
//! can be driven from tests, fuzzers and any IO engine (sockeye's own `mio` engine among them).
//!
//! What it does **not** do: read or write sockets, allocate per message on the common path, spawn
//! threads, or compress (permessage-deflate plugs in through [`Extension`]).
//!
//! ```text
//!  bytes from the peer                                   bytes to the peer
//!  ───────────────────                                   ─────────────────
//!  parse_request(buf) ──▶ Request<'buf> ──▶ Response::encode(out)          (HTTP upgrade)
//!
//!  &mut [u8] ──▶ Connection::handle_read ──▶ Event<'buf>   (Text/Binary/Ping/Pong/Close)
//!                 │  decode header · unmask in place ·      borrowed from the input, or from
//!                 │  validate UTF-8 as bytes arrive ·       the caller's message buffer when a
//!                 │  enforce limits · Extension::decode     message spans frames or reads
//!                 ▼
//!            owed replies (pong, close echo) ──▶ Connection::poll_transmit(out)
//!  Connection::send(msg, out) ──▶ header (≤ 14 B) + payload appended to the caller's queue
//! ```
//!
//! # Example
//!
//! ```
//! use std::time::Instant;
//! use sockeye_proto::{Config, Connection, Event, NoExtension, Message};
//!
//! // A masked client text frame "Hello" (RFC 6455 §5.7).
//! let mut wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
//! let mut conn = Connection::server(Config::default(), NoExtension);
//! let mut msg_buf = Vec::new();
//! let read = conn.handle_read(&mut wire, &mut msg_buf, Instant::now()).unwrap();
//! assert_eq!(read.consumed, 11);
//! let Some(Event::Text(text)) = read.event else { panic!("expected text") };
//! assert_eq!(text, "Hello");
//!
//! let mut out = Vec::new();
//! conn.send(Message::Text("Hello"), &mut out).unwrap();
//! assert_eq!(out, [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
//! ```
//!
//! # Features
//!
//! None: the crate depends on `memchr`, `simdutf8`, `sha1` and `base64` only.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod close;
pub mod connection;
pub mod extension;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod utf8;

mod error;
mod status;

pub use close::{CloseCode, CloseFrame};
pub use connection::{Config, Connection, Event, Message, Read, SendError, State};
pub use error::ProtocolError;
pub use extension::{Extension, ExtensionError, NegotiationError, NoExtension};
pub use frame::{FrameHeader, OpCode, Rsv};
pub use handshake::{HandshakeError, Limits, Request, Response, parse_request};
pub use status::Status;

/// Which end of the connection this endpoint is.
///
/// RFC 6455 §5.1: clients mask every frame they send; servers never mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The end that sent the HTTP upgrade request; it masks its frames.
    Client,
    /// The end that accepted the upgrade; its frames are never masked.
    Server,
}
