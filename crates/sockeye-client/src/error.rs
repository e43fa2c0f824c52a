//! What can go wrong, from the URL to the last byte.

use core::fmt;
use std::io;

use sockeye_proto::handshake::{OpenError, WriteError};
use sockeye_proto::{ProtocolError, SendError};

use crate::url::UrlError;

/// The step that ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opening the TCP connection ([`Options::connect_timeout`](crate::Options)).
    Connect,
    /// The TLS and WebSocket handshakes ([`Options::handshake_timeout`](crate::Options)).
    Handshake,
    /// Waiting for a message, with a read timeout set.
    Read,
    /// Writing, with a write timeout set.
    Write,
    /// The closing handshake: the server's close frame or its end of the connection.
    Close,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::Handshake => "handshake",
            Phase::Read => "read",
            Phase::Write => "write",
            Phase::Close => "closing handshake",
        })
    }
}

/// Why a connection could not be opened, or failed.
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// The URL is not a `ws://` or `wss://` URL, or its host does not resolve.
    Url(UrlError),
    /// An option cannot go into a request (a header name or value with a line break), or a
    /// TLS file or setting is unusable.
    Options(String),
    /// The socket failed.
    Io(io::Error),
    /// A step took longer than its timeout.
    Timeout(Phase),
    /// TLS failed (a certificate not trusted, a bad record, an alert from the server).
    Tls(rustls::Error),
    /// The server's answer to the upgrade is not a valid `101` for this request.
    Handshake(OpenError),
    /// The server broke RFC 6455 (or sent a message over the size limit); the close frame with
    /// the matching code was sent.
    Protocol(ProtocolError),
    /// A message could not be sent (a control payload over 125 bytes, the connection closing).
    Send(SendError),
    /// The server ended the connection without a closing handshake (during the upgrade too).
    Reset,
    /// The connection is closed: the closing handshake finished, or an earlier error ended it.
    Closed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Url(e) => write!(f, "{e}"),
            Error::Options(e) => write!(f, "{e}"),
            Error::Io(e) => write!(f, "socket: {e}"),
            Error::Timeout(phase) => write!(f, "{phase} timed out"),
            Error::Tls(e) => write!(f, "TLS: {e}"),
            Error::Handshake(e) => write!(f, "upgrade refused: {e}"),
            Error::Protocol(e) => write!(f, "the server broke the protocol: {e}"),
            Error::Send(e) => write!(f, "cannot send: {e}"),
            Error::Reset => f.write_str("the server closed the connection without a close frame"),
            Error::Closed => f.write_str("the connection is closed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Url(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::Tls(e) => Some(e),
            Error::Handshake(e) => Some(e),
            Error::Protocol(e) => Some(e),
            Error::Send(e) => Some(e),
            _ => None,
        }
    }
}

impl From<UrlError> for Error {
    fn from(e: UrlError) -> Self {
        Error::Url(e)
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<rustls::Error> for Error {
    fn from(e: rustls::Error) -> Self {
        Error::Tls(e)
    }
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Self {
        Error::Handshake(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Closed => Error::Closed,
            other => Error::Send(other),
        }
    }
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Self {
        Error::Options(format!("the upgrade request cannot be written: {e}"))
    }
}
