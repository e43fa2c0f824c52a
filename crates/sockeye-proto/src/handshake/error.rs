use core::fmt;

/// Why an upgrade request was refused; [`status`](HandshakeError::status) is the HTTP answer.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// The request line is not `METHOD SP target SP HTTP/x.y`.
    MalformedRequestLine,
    /// A header line is not `name: value` with a token name and visible characters.
    MalformedHeader,
    /// A line that ends in LF alone.
    BareLf,
    /// A CR that does not end a line.
    BareCr,
    /// A header line starting with whitespace (obsolete line folding, RFC 7230 §3.2.4).
    ObsFold,
    /// A method other than GET (§4.1: "The method of the request MUST be GET").
    MethodNotAllowed,
    /// An HTTP version before 1.1 (§4.1: "the HTTP version MUST be at least 1.1").
    HttpVersionNotSupported,
    /// The head is over `Limits::max_head_len`.
    HeadTooLarge,
    /// More header lines than `Limits::max_headers`.
    TooManyHeaders,
    /// No `Host` header.
    MissingHost,
    /// A header that must appear once appeared again.
    DuplicateHeader,
    /// No `Upgrade` header: a plain HTTP request sent to a WebSocket endpoint.
    NotUpgrade,
    /// `Upgrade` does not list `websocket`.
    UpgradeNotWebSocket,
    /// `Connection` does not list `Upgrade`.
    ConnectionNotUpgrade,
    /// `Sec-WebSocket-Key` missing, or not the base64 of exactly 16 bytes.
    InvalidKey,
    /// `Sec-WebSocket-Version` missing or not 13.
    UnsupportedVersion,
    /// `Sec-WebSocket-Protocol` is not a list of tokens.
    InvalidProtocolList,
    /// The server chose a subprotocol the client did not offer.
    ProtocolNotOffered,
    /// The application refused the `Origin`.
    OriginRejected,
}

impl HandshakeError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::MethodNotAllowed => 405,
            HandshakeError::HttpVersionNotSupported => 505,
            HandshakeError::HeadTooLarge | HandshakeError::TooManyHeaders => 431,
            HandshakeError::NotUpgrade | HandshakeError::UnsupportedVersion => 426,
            HandshakeError::OriginRejected => 403,
            HandshakeError::ProtocolNotOffered => 500,
            _ => 400,
        }
    }

    /// A complete HTTP/1.1 response for this error, closing the connection.
    ///
    /// 426 carries `Sec-WebSocket-Version: 13` (§4.4) and `Upgrade: websocket`; 405 carries
    /// `Allow: GET`.
    pub fn response(&self) -> &'static [u8] {
        match self.status() {
            405 => {
                b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nConnection: close\r\n\
                     Content-Type: text/plain\r\nContent-Length: 19\r\n\r\nmethod not allowed\n"
            }
            505 => {
                b"HTTP/1.1 505 HTTP Version Not Supported\r\nConnection: close\r\n\
                     Content-Type: text/plain\r\nContent-Length: 27\r\n\r\n\
                     HTTP/1.1 or later required\n"
            }
            431 => {
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\
                     Content-Type: text/plain\r\nContent-Length: 26\r\n\r\n\
                     request head is too large\n"
            }
            426 => {
                b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade, close\r\nSec-WebSocket-Version: 13\r\n\
                     Content-Type: text/plain\r\nContent-Length: 28\r\n\r\n\
                     WebSocket version 13 needed\n"
            }
            403 => {
                b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\
                     Content-Type: text/plain\r\nContent-Length: 10\r\n\r\nforbidden\n"
            }
            500 => {
                b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\
                     Content-Type: text/plain\r\nContent-Length: 15\r\n\r\ninternal error\n"
            }
            _ => {
                b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\
                   Content-Type: text/plain\r\nContent-Length: 12\r\n\r\nbad request\n"
            }
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::MalformedRequestLine => "malformed request line",
            HandshakeError::MalformedHeader => "malformed header line",
            HandshakeError::BareLf => "line ending without CR",
            HandshakeError::BareCr => "CR not followed by LF",
            HandshakeError::ObsFold => "obsolete header line folding",
            HandshakeError::MethodNotAllowed => "method is not GET",
            HandshakeError::HttpVersionNotSupported => "HTTP version before 1.1",
            HandshakeError::HeadTooLarge => "request head over the size limit",
            HandshakeError::TooManyHeaders => "too many header lines",
            HandshakeError::MissingHost => "missing Host header",
            HandshakeError::DuplicateHeader => "duplicate header",
            HandshakeError::NotUpgrade => "not an upgrade request",
            HandshakeError::UpgradeNotWebSocket => "Upgrade does not list websocket",
            HandshakeError::ConnectionNotUpgrade => "Connection does not list Upgrade",
            HandshakeError::InvalidKey => "missing or invalid Sec-WebSocket-Key",
            HandshakeError::UnsupportedVersion => "Sec-WebSocket-Version is not 13",
            HandshakeError::InvalidProtocolList => "malformed Sec-WebSocket-Protocol",
            HandshakeError::ProtocolNotOffered => "subprotocol not offered by the client",
            HandshakeError::OriginRejected => "origin refused",
        })
    }
}

impl std::error::Error for HandshakeError {}

/// A handshake message could not be written.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The output buffer is too small; `needed` bytes are required.
    BufferTooSmall {
        /// The size the message needs.
        needed: usize,
    },
    /// An extra header has a name that is not a token or a value with CR, LF or controls.
    InvalidHeader,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::BufferTooSmall { needed } => {
                write!(f, "output buffer too small ({needed} bytes needed)")
            }
            WriteError::InvalidHeader => f.write_str("invalid extra header"),
        }
    }
}

impl std::error::Error for WriteError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ready_made_response_has_a_correct_content_length() {
        for status in [405u16, 505, 431, 426, 403, 500, 400] {
            let err = [
                HandshakeError::MethodNotAllowed,
                HandshakeError::HttpVersionNotSupported,
                HandshakeError::HeadTooLarge,
                HandshakeError::UnsupportedVersion,
                HandshakeError::OriginRejected,
                HandshakeError::ProtocolNotOffered,
                HandshakeError::BareCr,
            ]
            .into_iter()
            .find(|e| e.status() == status)
            .unwrap();
            let text = core::str::from_utf8(err.response()).unwrap();
            assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(len, body.len(), "{status}");
        }
        let upgrade = core::str::from_utf8(HandshakeError::UnsupportedVersion.response()).unwrap();
        assert!(upgrade.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    }
}
