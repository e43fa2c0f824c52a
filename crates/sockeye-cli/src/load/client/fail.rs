//! Why a connection ended early.

use core::fmt;
use std::io;

use sockeye_proto::handshake::{ResponseError, WriteError};
use sockeye_proto::{CloseCode, NegotiationError, ProtocolError, SendError};

use crate::load::payload::Mismatch;
use crate::load::stream;

/// Why a connection ended early.
#[derive(Debug)]
pub(crate) enum Fail {
    /// The TCP connect failed.
    Connect(io::Error),
    /// A socket error after connecting.
    Io(io::Error),
    /// The TLS handshake failed, or a TLS record was refused.
    Tls(String),
    /// The upgrade request could not be written (a URL the request grammar refuses).
    Request(WriteError),
    /// The server's answer to the upgrade was refused.
    Handshake(ResponseError),
    /// The server's permessage-deflate answer is not one our offer allows.
    Deflate {
        /// What is wrong with it.
        error: NegotiationError,
        /// Our `Sec-WebSocket-Extensions` offer.
        offer: String,
    },
    /// The server closed TCP before answering the upgrade.
    HandshakeEof,
    /// No 101 within the handshake timeout.
    HandshakeTimeout,
    /// The server closed TCP without a close frame.
    Eof,
    /// The server broke the protocol.
    Protocol(ProtocolError),
    /// A message could not be queued.
    Send(SendError),
    /// An echo differed from what was sent.
    Mismatch(Mismatch),
    /// The server sent a close frame before we did.
    ServerClosed(Option<CloseCode>, String),
    /// Fanout: not every `sub` was answered in time.
    SubscribeTimeout,
}

impl Fail {
    /// A failure of the stream: TLS when it carries one, else the socket's.
    pub(super) fn stream(err: io::Error) -> Fail {
        match stream::tls_failure(&err) {
            Some(text) => Fail::Tls(text),
            None => Fail::Io(err),
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Connect(e) => write!(f, "connect: {e}"),
            Fail::Io(e) => write!(f, "socket: {e}"),
            Fail::Tls(e) => write!(f, "tls: {e}"),
            Fail::Request(e) => write!(f, "upgrade request: {e}"),
            Fail::Handshake(e) => write!(f, "handshake: {e}"),
            Fail::Deflate { error, offer } => write!(
                f,
                "handshake: refused the server's permessage-deflate answer to the offer \
                 `Sec-WebSocket-Extensions: {offer}`: {error}"
            ),
            Fail::HandshakeEof => f.write_str("handshake: the server closed the connection"),
            Fail::HandshakeTimeout => f.write_str("handshake: no answer in time"),
            Fail::Eof => f.write_str("the server closed TCP without a close frame"),
            Fail::Protocol(e) => write!(f, "protocol error from the server: {e}"),
            Fail::Send(e) => write!(f, "send: {e}"),
            Fail::Mismatch(m) => write!(f, "echo mismatch: {m}"),
            Fail::ServerClosed(code, reason) => {
                let code = code.map_or_else(|| "no code".to_owned(), |c| c.to_string());
                write!(f, "the server closed the connection ({code} {reason:?})")
            }
            Fail::SubscribeTimeout => f.write_str("no `ok sub` reply to every `sub` in time"),
        }
    }
}
