use super::http::{self, TokenList};
use super::{AcceptKey, HandshakeError, Request, WriteError};

/// The `101 Switching Protocols` answer to a [`Request`], written without allocation.
///
/// ```
/// use sockeye_proto::handshake::{Limits, Response, parse_request};
///
/// let req = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
///             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n\r\n";
/// let req = parse_request(req, &Limits::default()).unwrap().complete().unwrap();
/// let res = Response::new(&req).with_protocol("chat").unwrap();
/// let mut out = [0u8; 256];
/// let n = res.encode(&mut out).unwrap();
/// assert!(out[..n].starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
/// ```
#[derive(Debug, Clone)]
pub struct Response<'a> {
    accept: AcceptKey,
    offered: TokenList<'a>,
    protocol: Option<&'a str>,
    extensions: &'a [u8],
    headers: &'a [(&'a str, &'a str)],
}

impl<'a> Response<'a> {
    /// The answer accepting `request`, with no subprotocol and no extension.
    pub fn new(request: &Request<'a>) -> Self {
        Response {
            accept: request.accept_key(),
            offered: request.protocols(),
            protocol: None,
            extensions: &[],
            headers: &[],
        }
    }

    /// Selects a subprotocol.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::ProtocolNotOffered`] when the client did not offer `protocol`: "the
    /// server MUST select one of the values from the client's handshake" (§4.2.2).
    pub fn with_protocol(mut self, protocol: &'a str) -> Result<Self, HandshakeError> {
        if !self.offered.clone().any(|p| p == protocol) {
            return Err(HandshakeError::ProtocolNotOffered);
        }
        self.protocol = Some(protocol);
        Ok(self)
    }

    /// Sets the `Sec-WebSocket-Extensions` value (the accepted extension and its parameters).
    pub fn with_extensions(mut self, value: &'a [u8]) -> Self {
        self.extensions = value;
        self
    }

    /// Adds headers of the application's (`Set-Cookie`, ...).
    pub fn with_headers(mut self, headers: &'a [(&'a str, &'a str)]) -> Self {
        self.headers = headers;
        self
    }

    /// The subprotocol selected, if any.
    pub fn protocol(&self) -> Option<&'a str> {
        self.protocol
    }

    /// The number of bytes [`encode`](Response::encode) writes.
    pub fn encoded_len(&self) -> usize {
        let mut len = STATUS.len() + ACCEPT.len() + 28 + 2 + 2;
        if let Some(p) = self.protocol {
            len += PROTOCOL.len() + p.len() + 2;
        }
        if !self.extensions.is_empty() {
            len += EXTENSIONS.len() + self.extensions.len() + 2;
        }
        for (name, value) in self.headers {
            len += name.len() + 2 + value.len() + 2;
        }
        len
    }

    /// Writes the response into `out`, returning its length.
    ///
    /// # Errors
    ///
    /// [`WriteError::BufferTooSmall`] when `out` is shorter than
    /// [`encoded_len`](Response::encoded_len); [`WriteError::InvalidHeader`] when an extra
    /// header or the extension value could split the response (CR, LF, controls).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WriteError> {
        let valid_extra = self
            .headers
            .iter()
            .all(|(n, v)| http::is_token(n.as_bytes()) && http::is_field_value(v.as_bytes()));
        if !valid_extra || !http::is_field_value(self.extensions) {
            return Err(WriteError::InvalidHeader);
        }
        let mut w = Cursor::new(out);
        w.put(STATUS);
        w.put(ACCEPT);
        w.put(self.accept.as_bytes());
        w.put(b"\r\n");
        if let Some(p) = self.protocol {
            w.put(PROTOCOL);
            w.put(p.as_bytes());
            w.put(b"\r\n");
        }
        if !self.extensions.is_empty() {
            w.put(EXTENSIONS);
            w.put(self.extensions);
            w.put(b"\r\n");
        }
        for (name, value) in self.headers {
            w.put(name.as_bytes());
            w.put(b": ");
            w.put(value.as_bytes());
            w.put(b"\r\n");
        }
        w.put(b"\r\n");
        w.finish()
    }
}

const STATUS: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
const ACCEPT: &[u8] = b"Sec-WebSocket-Accept: ";
const PROTOCOL: &[u8] = b"Sec-WebSocket-Protocol: ";
const EXTENSIONS: &[u8] = b"Sec-WebSocket-Extensions: ";

/// Writes into a caller buffer, counting what does not fit so the caller can report the size
/// needed.
pub(crate) struct Cursor<'o> {
    out: &'o mut [u8],
    len: usize,
}

impl<'o> Cursor<'o> {
    pub(crate) fn new(out: &'o mut [u8]) -> Self {
        Cursor { out, len: 0 }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if let Some(dst) = self.out.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
        }
        self.len = end;
    }

    /// The length written, or the length needed when the buffer was too small.
    pub(crate) fn finish(self) -> Result<usize, WriteError> {
        if self.len > self.out.len() {
            Err(WriteError::BufferTooSmall { needed: self.len })
        } else {
            Ok(self.len)
        }
    }
}
