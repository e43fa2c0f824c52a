use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::http;
use super::response::Cursor;
use super::{AcceptKey, HandshakeError, Limits, WriteError};
use crate::extension::parse_offers;
use crate::status::Status;

/// Encodes 16 random bytes (from the caller's entropy source) as a `Sec-WebSocket-Key`.
pub fn encode_key(nonce: [u8; 16]) -> [u8; 24] {
    let mut out = [0u8; 24];
    let written = STANDARD.encode_slice(nonce, &mut out).unwrap_or(0);
    debug_assert_eq!(written, 24);
    out
}

/// A client's upgrade request (RFC 6455 §4.1), written without allocation.
#[derive(Debug, Clone, Copy)]
pub struct ClientRequest<'a> {
    /// The `Host` header (`example.com:9001`).
    pub host: &'a str,
    /// The request target (`/chat`).
    pub path: &'a str,
    /// The `Sec-WebSocket-Key`, from [`encode_key`].
    pub key: &'a [u8; 24],
    /// Subprotocols offered, in order of preference.
    pub protocols: &'a [&'a str],
    /// The `Sec-WebSocket-Extensions` offer (empty for none).
    pub extensions: &'a [u8],
    /// The `Origin` header, if any.
    pub origin: Option<&'a str>,
    /// Extra headers.
    pub headers: &'a [(&'a str, &'a str)],
}

impl<'a> ClientRequest<'a> {
    /// A request for `path` on `host` with `key` and nothing else.
    pub fn new(host: &'a str, path: &'a str, key: &'a [u8; 24]) -> Self {
        ClientRequest {
            host,
            path,
            key,
            protocols: &[],
            extensions: &[],
            origin: None,
            headers: &[],
        }
    }

    /// Writes the request into `out`, returning its length.
    ///
    /// # Errors
    ///
    /// [`WriteError::BufferTooSmall`] when `out` is too short, [`WriteError::InvalidHeader`] for a
    /// path, host, protocol or header that is not valid in a request head.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WriteError> {
        let path_ok = !self.path.is_empty() && self.path.bytes().all(|b| (0x21..0x7f).contains(&b));
        let fields_ok = [
            self.host.as_bytes(),
            self.extensions,
            self.origin.unwrap_or("").as_bytes(),
        ]
        .iter()
        .all(|v| http::is_field_value(v));
        let protocols_ok = self.protocols.iter().all(|p| http::is_token(p.as_bytes()));
        let headers_ok = self
            .headers
            .iter()
            .all(|(n, v)| http::is_token(n.as_bytes()) && http::is_field_value(v.as_bytes()));
        if !(path_ok && fields_ok && protocols_ok && headers_ok) {
            return Err(WriteError::InvalidHeader);
        }
        let mut w = Cursor::new(out);
        w.put(b"GET ");
        w.put(self.path.as_bytes());
        w.put(b" HTTP/1.1\r\nHost: ");
        w.put(self.host.as_bytes());
        w.put(b"\r\n");
        w.put(FIXED);
        w.put(b"Sec-WebSocket-Key: ");
        w.put(self.key);
        w.put(b"\r\n");
        if let Some((first, rest)) = self.protocols.split_first() {
            w.put(b"Sec-WebSocket-Protocol: ");
            w.put(first.as_bytes());
            for p in rest {
                w.put(b", ");
                w.put(p.as_bytes());
            }
            w.put(b"\r\n");
        }
        if !self.extensions.is_empty() {
            w.put(b"Sec-WebSocket-Extensions: ");
            w.put(self.extensions);
            w.put(b"\r\n");
        }
        if let Some(origin) = self.origin {
            w.put(b"Origin: ");
            w.put(origin.as_bytes());
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

const FIXED: &[u8] = b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n";

/// Why a client refuses the server's answer (RFC 6455 §4.1: the client "MUST _Fail the
/// WebSocket Connection_").
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// The head is not valid HTTP/1.1.
    Http(HandshakeError),
    /// The status line is malformed.
    MalformedStatusLine,
    /// The status is not 101; the server refused with this status.
    Status(u16),
    /// `Upgrade` is missing or is not `websocket`.
    UpgradeNotWebSocket,
    /// `Connection` does not list `Upgrade`.
    ConnectionNotUpgrade,
    /// `Sec-WebSocket-Accept` is missing, repeated or wrong.
    BadAccept,
    /// A subprotocol the client did not offer, or more than one.
    ProtocolNotOffered,
    /// An extension the client did not offer, or a malformed extension header.
    ExtensionNotOffered,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Http(e) => write!(f, "invalid response head: {e}"),
            ResponseError::MalformedStatusLine => f.write_str("malformed status line"),
            ResponseError::Status(s) => write!(f, "server answered {s} instead of 101"),
            ResponseError::UpgradeNotWebSocket => f.write_str("Upgrade is not websocket"),
            ResponseError::ConnectionNotUpgrade => f.write_str("Connection does not list Upgrade"),
            ResponseError::BadAccept => f.write_str("missing or wrong Sec-WebSocket-Accept"),
            ResponseError::ProtocolNotOffered => f.write_str("subprotocol was not offered"),
            ResponseError::ExtensionNotOffered => f.write_str("extension was not offered"),
        }
    }
}

impl std::error::Error for ResponseError {}

/// A server's valid `101` answer, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerResponse<'b> {
    /// The subprotocol the server selected.
    pub protocol: Option<&'b str>,
    /// The `Sec-WebSocket-Extensions` value (empty when none was accepted).
    pub extensions: &'b str,
    /// The length of the head: the WebSocket stream starts at this offset.
    pub head_len: usize,
}

/// Parses and verifies the server's answer to `request` (RFC 6455 §4.1, "the client MUST
/// validate the server's response").
///
/// # Errors
///
/// A [`ResponseError`] naming the first check that failed.
pub fn parse_response<'b>(
    buf: &'b [u8],
    limits: &Limits,
    request: &ClientRequest<'_>,
) -> Result<Status<ServerResponse<'b>>, ResponseError> {
    let (line, start) = match http::next_line(buf, 0, limits).map_err(ResponseError::Http)? {
        Status::Complete(found) => found,
        Status::Incomplete { needed } => return Ok(Status::Incomplete { needed }),
    };
    let status = parse_status_line(line)?;
    let mut seen = Seen::default();
    let head_len = match http::scan_headers(buf, start, limits, true, |n, v| seen.visit(n, v))
        .map_err(ResponseError::Http)?
    {
        Status::Complete(len) => len,
        Status::Incomplete { needed } => return Ok(Status::Incomplete { needed }),
    };
    if status != 101 {
        return Err(ResponseError::Status(status));
    }
    if seen.duplicate_accept || seen.duplicate_protocol {
        return Err(if seen.duplicate_accept {
            ResponseError::BadAccept
        } else {
            ResponseError::ProtocolNotOffered
        });
    }
    if !seen.upgrade_websocket {
        return Err(ResponseError::UpgradeNotWebSocket);
    }
    if !seen.connection_upgrade {
        return Err(ResponseError::ConnectionNotUpgrade);
    }
    let expected = AcceptKey::from_key(request.key);
    if seen.accept != Some(expected.as_bytes().as_slice()) {
        return Err(ResponseError::BadAccept);
    }
    let text =
        |v: &'b [u8]| core::str::from_utf8(v).map_err(|_| ResponseError::ExtensionNotOffered);
    let protocol = match seen.protocol {
        None => None,
        Some(p) => {
            let p = text(p).map_err(|_| ResponseError::ProtocolNotOffered)?;
            if !request.protocols.contains(&p) {
                return Err(ResponseError::ProtocolNotOffered);
            }
            Some(p)
        }
    };
    let extensions = text(seen.extensions.unwrap_or_default())?;
    check_extensions(extensions, request.extensions)?;
    Ok(Status::Complete(ServerResponse {
        protocol,
        extensions,
        head_len,
    }))
}

/// Every extension in the response must be one the client offered.
fn check_extensions(response: &str, offered: &[u8]) -> Result<(), ResponseError> {
    let offered = core::str::from_utf8(offered).unwrap_or("");
    for ext in parse_offers(response) {
        let ext = ext.map_err(|_| ResponseError::ExtensionNotOffered)?;
        let was_offered = parse_offers(offered).any(|o| o.is_ok_and(|o| o.name() == ext.name()));
        if !was_offered {
            return Err(ResponseError::ExtensionNotOffered);
        }
    }
    Ok(())
}

fn parse_status_line(line: &[u8]) -> Result<u16, ResponseError> {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(ResponseError::MalformedStatusLine);
    };
    // "reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )" (RFC 9112 §4): no other controls.
    if !http::is_field_value(parts.next().unwrap_or_default()) {
        return Err(ResponseError::MalformedStatusLine);
    }
    let Some((major, minor)) = http::parse_version(version) else {
        return Err(ResponseError::MalformedStatusLine);
    };
    let [a, b, c] = code else {
        return Err(ResponseError::MalformedStatusLine);
    };
    if ![a, b, c].iter().all(|d| d.is_ascii_digit()) {
        return Err(ResponseError::MalformedStatusLine);
    }
    let status = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
    // An older server's refusal keeps its status; only a 101 must come from HTTP/1.1 or a later
    // minor version of it (RFC 9112 §2.3): the upgrade is HTTP/1.1's (RFC 6455 §4.1).
    if status == 101 && (major != 1 || minor < 1) {
        return Err(ResponseError::MalformedStatusLine);
    }
    Ok(status)
}

#[derive(Default)]
struct Seen<'b> {
    upgrade_websocket: bool,
    connection_upgrade: bool,
    accept: Option<&'b [u8]>,
    duplicate_accept: bool,
    protocol: Option<&'b [u8]>,
    duplicate_protocol: bool,
    extensions: Option<&'b [u8]>,
}

impl<'b> Seen<'b> {
    fn visit(&mut self, name: &'b [u8], value: &'b [u8]) -> Result<(), HandshakeError> {
        let is = |expected: &str| name.eq_ignore_ascii_case(expected.as_bytes());
        if is("upgrade") {
            self.upgrade_websocket |= value.eq_ignore_ascii_case(b"websocket");
        } else if is("connection") {
            self.connection_upgrade |= http::list_contains(value, "upgrade");
        } else if is("sec-websocket-accept") {
            self.duplicate_accept |= self.accept.replace(value).is_some();
        } else if is("sec-websocket-protocol") {
            self.duplicate_protocol |= self.protocol.replace(value).is_some();
        } else if is("sec-websocket-extensions") {
            // Several lines are one list; keep the first and require the rest to be offered too
            // by refusing repeats (servers send one line).
            if self.extensions.replace(value).is_some() {
                return Err(HandshakeError::DuplicateHeader);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{Limits, Response, parse_request};

    const KEY: &[u8; 24] = b"dGhlIHNhbXBsZSBub25jZQ==";

    fn request() -> ClientRequest<'static> {
        ClientRequest {
            protocols: &["chat", "superchat"],
            extensions: b"permessage-deflate; client_max_window_bits",
            origin: Some("http://example.com"),
            headers: &[("X-Trace", "1")],
            ..ClientRequest::new("server.example.com", "/chat", KEY)
        }
    }

    #[test]
    fn request_round_trips_through_the_server_parser() {
        let mut buf = [0u8; 512];
        let n = request().encode(&mut buf).unwrap();
        let req = parse_request(&buf[..n], &Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.host(), "server.example.com");
        assert_eq!(req.protocols().collect::<Vec<_>>(), ["chat", "superchat"]);
        assert_eq!(req.origin(), Some("http://example.com"));
        assert_eq!(req.header("x-trace"), Some(&b"1"[..]));
        assert_eq!(req.head_len(), n);
        assert_eq!(
            request().encode(&mut buf[..n - 1]),
            Err(WriteError::BufferTooSmall { needed: n })
        );
    }

    #[test]
    fn server_response_is_verified() {
        let mut buf = [0u8; 512];
        let n = request().encode(&mut buf).unwrap();
        let req = parse_request(&buf[..n], &Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        let mut out = [0u8; 512];
        let res = Response::new(&req)
            .with_protocol("superchat")
            .unwrap()
            .with_extensions(b"permessage-deflate");
        let len = res.encode(&mut out).unwrap();
        assert_eq!(len, res.encoded_len());
        let got = parse_response(&out[..len], &Limits::default(), &request())
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(got.protocol, Some("superchat"));
        assert_eq!(got.extensions, "permessage-deflate");
        assert_eq!(got.head_len, len);
        for cut in 0..len {
            assert!(
                matches!(
                    parse_response(&out[..cut], &Limits::default(), &request()),
                    Ok(Status::Incomplete { .. })
                ),
                "prefix {cut}"
            );
        }
        assert_eq!(
            Response::new(&req).with_protocol("other").unwrap_err(),
            HandshakeError::ProtocolNotOffered
        );
    }

    #[test]
    fn response_rule_table() {
        let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
        let table: &[(String, ResponseError)] = &[
            (
                "HTTP/1.1 403 Forbidden\r\n\r\n".to_owned(),
                ResponseError::Status(403),
            ),
            (
                "HTTP/1.1 1x1 Nope\r\n\r\n".to_owned(),
                ResponseError::MalformedStatusLine,
            ),
            (
                "HTTP/1.0 501 Nope\r\n\r\n".to_owned(),
                ResponseError::Status(501),
            ),
            (
                "HTTP/1.0 101 Hm\r\n\r\n".to_owned(),
                ResponseError::MalformedStatusLine,
            ),
            (
                "HTTP/2.0 101 Hm\r\n\r\n".to_owned(),
                ResponseError::MalformedStatusLine,
            ),
            (
                "HTTP/1.1 101 Switch\x16ing\r\n\r\n".to_owned(),
                ResponseError::MalformedStatusLine,
            ),
            (
                ok.replace("Upgrade: websocket", "Upgrade: h2c") + "\r\n",
                ResponseError::UpgradeNotWebSocket,
            ),
            (
                ok.replace("Connection: Upgrade", "Connection: close") + "\r\n",
                ResponseError::ConnectionNotUpgrade,
            ),
            (
                ok.replace("xOo=", "xOp=") + "\r\n",
                ResponseError::BadAccept,
            ),
            (
                format!("{ok}Sec-WebSocket-Protocol: mqtt\r\n\r\n"),
                ResponseError::ProtocolNotOffered,
            ),
            (
                format!("{ok}Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n\r\n"),
                ResponseError::ExtensionNotOffered,
            ),
        ];
        let plain = ClientRequest::new("h", "/", KEY);
        let offered = ClientRequest {
            protocols: &["chat"],
            ..plain
        };
        for (text, expected) in table {
            let got = parse_response(text.as_bytes(), &Limits::default(), &offered);
            assert_eq!(got, Err(*expected), "{text:?}");
        }
        let fine = format!("{ok}\r\n");
        assert!(
            parse_response(fine.as_bytes(), &Limits::default(), &plain)
                .unwrap()
                .is_complete()
        );
    }

    #[test]
    fn key_encoding() {
        assert_eq!(&encode_key(*b"the sample nonce"), KEY);
    }
}
