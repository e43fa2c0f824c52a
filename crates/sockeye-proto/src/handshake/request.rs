use memchr::memchr;

use super::http::{self, Headers, TokenList};
use super::{AcceptKey, HandshakeError, Limits, scan};
use crate::extension::{Offers, is_tchar, parse_offers};
use crate::status::Status;

/// A validated HTTP/1.1 request head of any kind, borrowed from the input.
///
/// [`parse_head`] returns it for every syntactically valid request, upgrade or not, so that an
/// engine can answer plain HTTP (a page, a health check) on the same port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head<'b> {
    /// The method (`GET`).
    pub method: &'b str,
    /// The request target (`/chat?room=1`).
    pub path: &'b str,
    /// The minor HTTP version (`1` for HTTP/1.1).
    pub minor_version: u8,
    block: &'b [u8],
    len: usize,
}

impl<'b> Head<'b> {
    /// The length of the head in bytes, blank line included; the next request or the WebSocket
    /// stream starts there.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: a head has at least a request line.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every header line as `(name, value)`, value trimmed of surrounding whitespace.
    pub fn headers(&self) -> Headers<'b> {
        Headers::new(self.block)
    }

    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// A valid WebSocket upgrade request (RFC 6455 §4.2.1), borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'b> {
    head: Head<'b>,
    host: &'b str,
    key: &'b str,
    origin: Option<&'b str>,
}

impl<'b> Request<'b> {
    /// The method; always `GET`.
    pub fn method(&self) -> &'b str {
        self.head.method
    }

    /// The request target (`/chat`).
    pub fn path(&self) -> &'b str {
        self.head.path
    }

    /// The `Host` header.
    pub fn host(&self) -> &'b str {
        self.host
    }

    /// The `Sec-WebSocket-Key` header (base64 of 16 bytes).
    pub fn key(&self) -> &'b str {
        self.key
    }

    /// The `Sec-WebSocket-Version`; always 13.
    pub fn version(&self) -> u8 {
        13
    }

    /// The `Origin` header, when sent (browsers always send it).
    pub fn origin(&self) -> Option<&'b str> {
        self.origin
    }

    /// The subprotocols the client offered, in its order of preference, across every
    /// `Sec-WebSocket-Protocol` line.
    pub fn protocols(&self) -> TokenList<'b> {
        TokenList::new(self.head.block, "sec-websocket-protocol")
    }

    /// The extension offers across every `Sec-WebSocket-Extensions` line, in order.
    pub fn extensions(&self) -> impl Iterator<Item = Offers<'b>> + 'b {
        self.head
            .headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
            .map(|(_, v)| parse_offers(core::str::from_utf8(v).unwrap_or("\u{0}")))
    }

    /// Every header line.
    pub fn headers(&self) -> Headers<'b> {
        self.head.headers()
    }

    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.head.header(name)
    }

    /// The general view of the request head.
    pub fn head(&self) -> &Head<'b> {
        &self.head
    }

    /// The length of the head: the WebSocket stream starts at this offset of the input.
    pub fn head_len(&self) -> usize {
        self.head.len
    }

    /// The `Sec-WebSocket-Accept` value answering this request.
    pub fn accept_key(&self) -> AcceptKey {
        AcceptKey::from_key(self.key.as_bytes())
    }
}

/// Parses the head of any HTTP/1.x request, checking the grammar but not the upgrade rules.
///
/// # Errors
///
/// A [`HandshakeError`] as soon as the bytes so far cannot start a valid request, or when the
/// head does not fit `limits`.
pub fn parse_head<'b>(buf: &'b [u8], limits: &Limits) -> Result<Status<Head<'b>>, HandshakeError> {
    parse_with(buf, limits, |_, _| Ok(()))
}

/// The parser: each line is first tried by the word-at-a-time checks for clean, complete lines.
fn parse_with<'b>(
    buf: &'b [u8],
    limits: &Limits,
    on_header: impl FnMut(&'b [u8], &'b [u8]) -> Result<(), HandshakeError>,
) -> Result<Status<Head<'b>>, HandshakeError> {
    parse_lines_with(buf, limits, true, on_header)
}

/// The naive twin of [`parse_with`]: every line checked byte by byte, as it arrives.
#[cfg(test)]
fn parse_lines<'b>(
    buf: &'b [u8],
    limits: &Limits,
    on_header: impl FnMut(&'b [u8], &'b [u8]) -> Result<(), HandshakeError>,
) -> Result<Status<Head<'b>>, HandshakeError> {
    parse_lines_with(buf, limits, false, on_header)
}

fn parse_lines_with<'b>(
    buf: &'b [u8],
    limits: &Limits,
    fast: bool,
    on_header: impl FnMut(&'b [u8], &'b [u8]) -> Result<(), HandshakeError>,
) -> Result<Status<Head<'b>>, HandshakeError> {
    let window = &buf[..buf.len().min(limits.max_head_len)];
    let clean = if fast {
        clean_request_line(window)
    } else {
        None
    };
    let (method, path, minor_version, start) = match clean {
        Some(found) => found,
        None => {
            let (line, start) = match http::next_line(buf, 0, limits)? {
                Status::Complete(found) => found,
                Status::Incomplete { needed } => {
                    check_partial_method(buf)?;
                    return Ok(Status::Incomplete { needed });
                }
            };
            let (method, path, minor_version) = parse_request_line(line)?;
            (method, path, minor_version, start)
        }
    };
    let len = match http::scan_headers(buf, start, limits, fast, on_header)? {
        Status::Complete(len) => len,
        Status::Incomplete { needed } => return Ok(Status::Incomplete { needed }),
    };
    Ok(Status::Complete(Head {
        method,
        path,
        minor_version,
        block: &buf[start..len],
        len,
    }))
}

/// A request line that [`parse_request_line`] accepts, complete within `window`: a token, SP,
/// a target of visible ASCII, SP, `HTTP/1.x`, CRLF. Returns the parts and the
/// start of the next line; `None` declines the line to the bytewise checks.
fn clean_request_line(window: &[u8]) -> Option<(&str, &str, u8, usize)> {
    let method_len = window
        .iter()
        .take_while(|&&b| http::is_token_byte(b))
        .count();
    let target_end = scan::find(window, method_len + 1, scan::not_target)?;
    let (method, sp, target) = (
        &window[..method_len],
        window.get(method_len)?,
        &window[method_len + 1..target_end],
    );
    if method.is_empty() || *sp != b' ' || target.is_empty() || window[target_end] != b' ' {
        return None;
    }
    let version = window.get(target_end + 1..target_end + 11)?;
    let (b"HTTP/1.", &[minor @ b'0'..=b'9', b'\r', b'\n']) = version.split_at(7) else {
        return None;
    };
    // One UTF-8 check for both: they are ASCII.
    let text = core::str::from_utf8(&window[..target_end]).ok()?;
    let (method, target) = (text.get(..method_len)?, text.get(method_len + 1..)?);
    Some((method, target, minor - b'0', target_end + 11))
}

/// Rejects a partial request line whose method can no longer be a token.
fn check_partial_method(buf: &[u8]) -> Result<(), HandshakeError> {
    let method = buf.split(|&b| b == b' ').next().unwrap_or_default();
    let method = method.strip_suffix(b"\r").unwrap_or(method);
    if method.iter().all(|&b| is_tchar(b)) {
        Ok(())
    } else if memchr(b'\r', method).is_some() {
        Err(HandshakeError::BareCr)
    } else {
        Err(HandshakeError::MalformedRequestLine)
    }
}

fn parse_request_line(line: &[u8]) -> Result<(&str, &str, u8), HandshakeError> {
    if memchr(b'\r', line).is_some() {
        return Err(HandshakeError::BareCr);
    }
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(HandshakeError::MalformedRequestLine);
    };
    let target_ok = !target.is_empty() && target.iter().all(|&b| (0x21..0x7f).contains(&b));
    if !http::is_token(method) || !target_ok {
        return Err(HandshakeError::MalformedRequestLine);
    }
    let Some((major, minor)) = http::parse_version(version) else {
        return Err(HandshakeError::MalformedRequestLine);
    };
    // HTTP/1.0 is a valid request (a load balancer's probe, say); only an upgrade needs 1.1.
    if major != 1 {
        return Err(HandshakeError::HttpVersionNotSupported);
    }
    // Both are ASCII after the checks above.
    let method = core::str::from_utf8(method).map_err(|_| HandshakeError::MalformedRequestLine)?;
    let target = core::str::from_utf8(target).map_err(|_| HandshakeError::MalformedRequestLine)?;
    Ok((method, target, minor))
}

/// Headers that decide the upgrade, collected in one pass.
#[derive(Default)]
struct Upgrade<'b> {
    host: Option<&'b [u8]>,
    key: Option<&'b [u8]>,
    version: Option<&'b [u8]>,
    origin: Option<&'b [u8]>,
    upgrade_seen: bool,
    upgrade_websocket: bool,
    connection_upgrade: bool,
}

impl<'b> Upgrade<'b> {
    fn visit(&mut self, name: &'b [u8], value: &'b [u8]) -> Result<(), HandshakeError> {
        // Names are tokens, which `eq_folded` compares exactly.
        let is = |expected: &str| http::eq_folded(name, expected.as_bytes());
        match name.len() {
            4 if is("host") => set_once(&mut self.host, value),
            6 if is("origin") => set_once(&mut self.origin, value),
            7 if is("upgrade") => {
                self.upgrade_seen = true;
                self.upgrade_websocket |= http::list_contains(value, "websocket");
                Ok(())
            }
            10 if is("connection") => {
                self.connection_upgrade |= http::list_contains(value, "upgrade");
                Ok(())
            }
            17 if is("sec-websocket-key") => set_once(&mut self.key, value),
            21 if is("sec-websocket-version") => set_once(&mut self.version, value),
            22 if is("sec-websocket-protocol") => {
                if http::is_token_list(value) {
                    Ok(())
                } else {
                    Err(HandshakeError::InvalidProtocolList)
                }
            }
            _ => Ok(()),
        }
    }
}

fn set_once<'b>(slot: &mut Option<&'b [u8]>, value: &'b [u8]) -> Result<(), HandshakeError> {
    match slot.replace(value) {
        Some(_) => Err(HandshakeError::DuplicateHeader),
        None => Ok(()),
    }
}

/// Parses and validates a WebSocket upgrade request (RFC 6455 §4.2.1).
///
/// Returns `Incomplete` while the head has not ended and is under `limits.max_head_len`; bytes
/// after the head are not looked at and belong to the WebSocket stream.
///
/// # Errors
///
/// The first [`HandshakeError`] found; its `status()` is the HTTP answer. The syntax is checked
/// as bytes arrive, so a hopeless prefix fails before the head is complete.
pub fn parse_request<'b>(
    buf: &'b [u8],
    limits: &Limits,
) -> Result<Status<Request<'b>>, HandshakeError> {
    let mut upgrade = Upgrade::default();
    let head = match parse_with(buf, limits, |name, value| upgrade.visit(name, value))? {
        Status::Complete(head) => head,
        Status::Incomplete { needed } => return Ok(Status::Incomplete { needed }),
    };
    // A request that asks for no upgrade is plain HTTP, whatever its method or version: the
    // application may answer it (`NotUpgrade`). The rules below are the upgrade's.
    if !upgrade.upgrade_seen {
        return Err(HandshakeError::NotUpgrade);
    }
    // "The method of the request MUST be GET, and the HTTP version MUST be at least 1.1" (§4.1).
    if head.minor_version < 1 {
        return Err(HandshakeError::HttpVersionNotSupported);
    }
    if head.method != "GET" {
        return Err(HandshakeError::MethodNotAllowed);
    }
    // "A |Host| header field containing the server's authority" (§4.2.1, item 2).
    let host = upgrade.host.ok_or(HandshakeError::MissingHost)?;
    // "An |Upgrade| header field containing the value "websocket"" (item 3).
    if !upgrade.upgrade_websocket {
        return Err(HandshakeError::UpgradeNotWebSocket);
    }
    // "A |Connection| header field that includes the token "Upgrade"" (item 4).
    if !upgrade.connection_upgrade {
        return Err(HandshakeError::ConnectionNotUpgrade);
    }
    // "A |Sec-WebSocket-Key| header field with a base64-encoded value that, when decoded, is
    // 16 bytes in length" (item 5).
    let key = upgrade.key.ok_or(HandshakeError::InvalidKey)?;
    if !is_valid_key(key) {
        return Err(HandshakeError::InvalidKey);
    }
    // "A |Sec-WebSocket-Version| header field, with a value of 13" (item 6).
    if upgrade.version != Some(b"13") {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let text = HeadText::new(&buf[..head.len]);
    let text = |v: &'b [u8]| text.field(v).ok_or(HandshakeError::MalformedHeader);
    Ok(Status::Complete(Request {
        head,
        host: text(host)?,
        key: text(key)?,
        origin: upgrade.origin.map(text).transpose()?,
    }))
}

/// The head as text, for the fields kept as `&str`: one UTF-8 check over the whole head (one
/// call to `simdutf8` costs less than one `from_utf8` per field), and a check per field only
/// when the head holds obs-text that is not UTF-8.
struct HeadText<'b> {
    head: &'b [u8],
    text: Option<&'b str>,
}

impl<'b> HeadText<'b> {
    fn new(head: &'b [u8]) -> Self {
        let text = simdutf8::basic::from_utf8(head).ok();
        HeadText { head, text }
    }

    /// `field`, a slice of the head, as text, or `None` when it is not UTF-8.
    fn field(&self, field: &'b [u8]) -> Option<&'b str> {
        // Its offset in the head; a field starts and ends next to ASCII bytes (`:`, OWS, CR),
        // so it starts and ends on char boundaries of the head.
        let start = (field.as_ptr() as usize).wrapping_sub(self.head.as_ptr() as usize);
        let whole = self
            .text
            .and_then(|text| text.get(start..)?.get(..field.len()));
        whole.or_else(|| core::str::from_utf8(field).ok())
    }
}

/// The base64 alphabet (RFC 4648 §4).
static BASE64: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
        b += 1;
    }
    table
};

/// Whether `key` is the padded base64 of exactly 16 bytes: 22 characters of the alphabet, then
/// `==`. 22 characters carry 132 bits; the last one's four spare bits must be zero (RFC 4648
/// §3.5, canonical encoding), which leaves `A`, `Q`, `g` and `w`.
pub(crate) fn is_valid_key(key: &[u8]) -> bool {
    let [data @ .., last, b'=', b'='] = key else {
        return false;
    };
    key.len() == 24
        && data.iter().fold(true, |ok, &b| ok & BASE64[usize::from(b)])
        && matches!(last, b'A' | b'Q' | b'g' | b'w')
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
                         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                         Sec-WebSocket-Version: 13\r\nOrigin: http://example.com\r\n\
                         Sec-WebSocket-Protocol: chat, superchat\r\n\r\n";

    fn parse(text: &str) -> Result<Status<Request<'_>>, HandshakeError> {
        parse_request(text.as_bytes(), &Limits::default())
    }

    /// `VALID` with one header line replaced (or removed when `with` is empty).
    fn with_header(name: &str, with: &str) -> String {
        let mut out = String::new();
        for line in VALID.split_inclusive("\r\n") {
            if line
                .to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            {
                out.push_str(with);
            } else {
                out.push_str(line);
            }
        }
        out
    }

    #[test]
    fn seed_request_views() {
        let req = parse(VALID).unwrap().complete().unwrap();
        assert_eq!(req.method(), "GET");
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.host(), "server.example.com");
        assert_eq!(req.key(), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(req.version(), 13);
        assert_eq!(req.origin(), Some("http://example.com"));
        assert_eq!(req.protocols().collect::<Vec<_>>(), ["chat", "superchat"]);
        assert_eq!(req.head_len(), VALID.len());
        assert_eq!(req.accept_key().as_str(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(req.header("upgrade"), Some(&b"websocket"[..]));
        assert_eq!(req.headers().count(), 7);
    }

    #[test]
    fn pipelined_bytes_stay_after_the_head() {
        let text = format!("{VALID}\u{81}");
        let req = parse(&text).unwrap().complete().unwrap();
        assert_eq!(req.head_len(), VALID.len());
        assert_eq!(&text.as_bytes()[req.head_len()..], "\u{81}".as_bytes());
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        for cut in 0..VALID.len() {
            let got = parse(&VALID[..cut]);
            assert!(
                matches!(got, Ok(Status::Incomplete { .. })),
                "prefix {cut}: {got:?}"
            );
        }
    }

    #[test]
    fn token_lists_and_case() {
        let text = with_header("connection", "connection: keep-alive, UPGRADE\r\n");
        let text = text.replace("Upgrade: websocket", "UPGRADE:  WebSocket ");
        assert!(parse(&text).unwrap().is_complete());
        let text = with_header(
            "sec-websocket-protocol",
            "Sec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: b, c\r\n",
        );
        let req = parse(&text).unwrap().complete().unwrap();
        assert_eq!(req.protocols().collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn extension_offers_across_lines() {
        let text = with_header(
            "origin",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
             Sec-WebSocket-Extensions: x-foo, permessage-deflate\r\n",
        );
        let req = parse(&text).unwrap().complete().unwrap();
        let names: Vec<_> = req
            .extensions()
            .flatten()
            .map(|o| o.unwrap().name())
            .collect();
        assert_eq!(names, ["permessage-deflate", "x-foo", "permessage-deflate"]);
    }

    #[test]
    fn rule_table() {
        use HandshakeError::*;
        let long_line = format!("X-Pad: {}\r\n", "a".repeat(9000));
        let many: String = (0..70).map(|i| format!("X-H{i}: v\r\n")).collect();
        let table: Vec<(String, HandshakeError, u16)> = vec![
            (VALID.replacen("GET", "POST", 1), MethodNotAllowed, 405),
            (
                VALID.replacen("HTTP/1.1", "HTTP/1.0", 1),
                HttpVersionNotSupported,
                505,
            ),
            (
                VALID.replacen("HTTP/1.1", "HTTP/2.0", 1),
                HttpVersionNotSupported,
                505,
            ),
            (
                VALID.replacen("HTTP/1.1", "HTTP/1", 1),
                MalformedRequestLine,
                400,
            ),
            (
                VALID.replacen("GET /chat", "GET  /chat", 1),
                MalformedRequestLine,
                400,
            ),
            (VALID.replacen("G", "G\u{1}", 1), MalformedRequestLine, 400),
            (with_header("host", ""), MissingHost, 400),
            (
                with_header("host", "Host: a\r\nHost: b\r\n"),
                DuplicateHeader,
                400,
            ),
            (with_header("upgrade", ""), NotUpgrade, 426),
            (
                with_header("upgrade", "Upgrade: h2c\r\n"),
                UpgradeNotWebSocket,
                400,
            ),
            (with_header("connection", ""), ConnectionNotUpgrade, 400),
            (
                with_header("connection", "Connection: keep-alive\r\n"),
                ConnectionNotUpgrade,
                400,
            ),
            (with_header("sec-websocket-key", ""), InvalidKey, 400),
            (
                with_header("sec-websocket-key", "Sec-WebSocket-Key: abc\r\n"),
                InvalidKey,
                400,
            ),
            (
                with_header(
                    "sec-websocket-key",
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n",
                ),
                InvalidKey,
                400,
            ),
            (
                // 17 bytes once decoded.
                with_header(
                    "sec-websocket-key",
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZTE=\r\n",
                ),
                InvalidKey,
                400,
            ),
            (
                with_header(
                    "sec-websocket-key",
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
                ),
                DuplicateHeader,
                400,
            ),
            (
                with_header("sec-websocket-version", ""),
                UnsupportedVersion,
                426,
            ),
            (
                with_header("sec-websocket-version", "Sec-WebSocket-Version: 8\r\n"),
                UnsupportedVersion,
                426,
            ),
            (
                with_header(
                    "sec-websocket-version",
                    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n",
                ),
                DuplicateHeader,
                400,
            ),
            (
                with_header(
                    "sec-websocket-protocol",
                    "Sec-WebSocket-Protocol: chat;v=1\r\n",
                ),
                InvalidProtocolList,
                400,
            ),
            (
                with_header("origin", "Origin: a\r\nOrigin: b\r\n"),
                DuplicateHeader,
                400,
            ),
            (with_header("origin", "Origin: a\r\n b\r\n"), ObsFold, 400),
            (
                with_header("origin", "Origin : a\r\n"),
                MalformedHeader,
                400,
            ),
            (with_header("origin", "Origin: a\rb\r\n"), BareCr, 400),
            (
                with_header("origin", "Origin: a\u{7f}\r\n"),
                MalformedHeader,
                400,
            ),
            (with_header("origin", "Origin: a\n"), BareLf, 400),
            (with_header("origin", &long_line), HeadTooLarge, 431),
            (with_header("origin", &many), TooManyHeaders, 431),
        ];
        for (text, expected, status) in table {
            let got = parse(&text);
            assert_eq!(got, Err(expected), "{text:?}");
            assert_eq!(expected.status(), status, "{expected:?}");
        }
    }

    #[test]
    fn plain_requests_of_any_method_and_version_are_not_upgrades() {
        for text in [
            "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
            "OPTIONS / HTTP/1.0\r\n\r\n",
            "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
        ] {
            assert_eq!(parse(text), Err(HandshakeError::NotUpgrade), "{text:?}");
            let Ok(Status::Complete(head)) = parse_head(text.as_bytes(), &Limits::default()) else {
                panic!("{text:?} is a valid head");
            };
            assert_eq!(head.len(), text.len());
        }
        let old = parse_head(b"OPTIONS * HTTP/1.0\r\n\r\n", &Limits::default());
        assert!(
            matches!(old, Ok(Status::Complete(h)) if h.minor_version == 0 && h.method == "OPTIONS")
        );
    }

    #[test]
    fn hopeless_prefixes_fail_before_the_head_ends() {
        let cases: &[(&str, HandshakeError)] = &[
            ("G\rET", HandshakeError::BareCr),
            ("GE(T /", HandshakeError::MalformedRequestLine),
            ("GET / HTTP/1.1\r\nHost: a\r\n b", HandshakeError::ObsFold),
            (
                "GET / HTTP/2.0\r\n",
                HandshakeError::HttpVersionNotSupported,
            ),
            ("GET / HTTP/1.1\r\nHost: a\rb", HandshakeError::BareCr),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Err(*expected), "{text:?}");
        }
    }

    #[test]
    fn head_limit_applies_to_incomplete_input() {
        let limits = Limits {
            max_head_len: 64,
            ..Limits::default()
        };
        let text = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(60));
        assert_eq!(
            parse_request(text.as_bytes(), &limits),
            Err(HandshakeError::HeadTooLarge)
        );
        assert!(matches!(
            parse_request(&text.as_bytes()[..40], &limits),
            Ok(Status::Incomplete { .. })
        ));
    }

    proptest::proptest! {
        /// The fast path for clean, complete heads and the line-by-line path agree on every
        /// input: valid requests with random bytes inserted, replaced or cut.
        #[test]
        fn fast_and_line_by_line_paths_agree(
            edits in proptest::collection::vec(
                (0usize..400, proptest::sample::select(b" \t\r\n:\x00\x7f\x80aA,;=\"".to_vec()), 0u8..3),
                0..4,
            ),
            cut in 0usize..400,
        ) {
            let mut bytes = VALID.as_bytes().to_vec();
            bytes.extend_from_slice(b"\x81\x85");
            for (at, byte, kind) in edits {
                let at = at % bytes.len();
                match kind {
                    0 => bytes.insert(at, byte),
                    1 => bytes[at] = byte,
                    _ => { bytes.remove(at); }
                }
            }
            let bytes = &bytes[..cut.min(bytes.len())];
            let limits = Limits::default();
            let fast = parse_with(bytes, &limits, |_, _| Ok(()));
            let slow = parse_lines(bytes, &limits, |_, _| Ok(()));
            proptest::prop_assert_eq!(fast, slow);
        }
    }

    #[test]
    fn obs_text_that_is_not_utf8() {
        // Latin-1 `é`: obs-text, allowed in any value, but not UTF-8.
        let with_e9 = |text: String| -> Vec<u8> {
            let byte = |b: u8| if b == b'~' { 0xe9 } else { b };
            text.into_bytes().into_iter().map(byte).collect()
        };
        // In a value the engine does not keep as text: accepted.
        let junk = with_e9(with_header("origin", "X-Junk: caf~\r\n"));
        let req = parse_request(&junk, &Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(req.host(), "server.example.com");
        assert_eq!(req.header("x-junk"), Some(&b"caf\xe9"[..]));
        // In one it returns as `&str`: refused.
        let bad_host = with_e9(with_header("host", "Host: caf~\r\n"));
        let got = parse_request(&bad_host, &Limits::default());
        assert_eq!(got, Err(HandshakeError::MalformedHeader));
        // UTF-8 text is fine anywhere.
        let utf8_host = with_header("host", "Host: caf\u{e9}\r\n");
        assert_eq!(
            parse(&utf8_host).unwrap().complete().unwrap().host(),
            "caf\u{e9}"
        );
    }

    /// The naive twin of [`is_valid_key`]: a base64 decode.
    fn decodes_to_16_bytes(key: &[u8]) -> bool {
        use base64::Engine as _;
        let mut raw = [0u8; 18];
        let decoded = base64::engine::general_purpose::STANDARD.decode_slice(key, &mut raw);
        key.len() == 24 && matches!(decoded, Ok(16))
    }

    #[test]
    fn key_check_agrees_with_a_decode() {
        let key = *b"dGhlIHNhbXBsZSBub25jZQ==";
        let mut valid = 0;
        // Every byte at every position, and every length around 24.
        for at in 0..key.len() {
            for b in 0..=255u8 {
                let mut k = key;
                k[at] = b;
                assert_eq!(is_valid_key(&k), decodes_to_16_bytes(&k), "{k:?}");
                valid += usize::from(is_valid_key(&k));
            }
        }
        // 64 characters at 21 places, 4 at the last, `=` only at its own two.
        assert_eq!(valid, 21 * 64 + 4 + 2);
        for len in 0..40 {
            let k: Vec<u8> = key.iter().copied().cycle().take(len).collect();
            assert_eq!(is_valid_key(&k), decodes_to_16_bytes(&k), "{k:?}");
        }
    }

    #[test]
    fn plain_http_head() {
        let text = b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
        let head = parse_head(text, &Limits::default())
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(
            (head.method, head.path, head.minor_version),
            ("POST", "/form", 1)
        );
        assert_eq!(head.header("content-length"), Some(&b"0"[..]));
        assert_eq!(head.len(), text.len());
    }
}
