//! The HTTP/1.1 upgrade handshake (RFC 6455 §4), for both roles.
//!
//! - [`parse_request`] scans a client's upgrade request eight bytes at a time, checks every
//!   rule of §4.2.1 and returns views borrowed from the input; bytes after the head (frames a
//!   client pipelined) stay in the caller's buffer at `Request::head_len()..`.
//! - [`Response`] writes the `101 Switching Protocols` answer into a caller buffer;
//!   [`HandshakeError::response`] is the ready-made refusal for each error.
//! - [`ClientRequest`] and [`parse_response`] are the client role (§4.1);
//!   [`ClientHandshake`] drives them without I/O, from the request out to an open client
//!   `Connection` and the bytes that followed the answer.

mod accept_key;
mod client;
mod error;
mod http;
mod opening;
mod request;
mod response;
mod scan;

pub use accept_key::{AcceptKey, GUID};
pub use client::{ClientRequest, ResponseError, ServerResponse, encode_key, parse_response};
pub use error::{HandshakeError, WriteError};
pub use http::{Headers, TokenList};
pub use opening::{ClientHandshake, OpenError, Opened};
pub use request::{Head, Request, parse_head, parse_request};
pub use response::Response;

/// Limits on the handshake, each bounding what a client can make the server hold.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest request head (request line, headers and the blank line), in bytes.
    ///
    /// Default 8 KiB (browsers send well under 2 KiB). Bounds the bytes a slow or hostile client
    /// can make the server buffer before it answers 431.
    pub max_head_len: usize,
    /// The largest number of header lines. Default 64. Bounds the work per request (431 above).
    pub max_headers: usize,
}

impl Limits {
    /// The defaults: 8 KiB of head, 64 headers.
    pub const DEFAULT: Limits = Limits {
        max_head_len: 8 * 1024,
        max_headers: 64,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
