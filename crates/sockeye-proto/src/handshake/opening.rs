//! The client's opening handshake without I/O: the request to write, then the server's bytes
//! as they arrive until its answer is whole; the result is an open client [`Connection`], the
//! subprotocol and extensions the server chose, and the bytes that followed the answer.

use core::fmt;

use super::client::{ClientRequest, ResponseError, parse_response};
use super::{HandshakeError, Limits, WriteError, http};
use crate::connection::{Config, Connection};
use crate::extension::{Extension, NegotiationError, ParamWriter, parse_offers};
use crate::mask::MaskSource;
use crate::status::Status;

/// Why an opening handshake failed: the client must fail the connection (RFC 6455 §4.1).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// The server's answer is not a valid `101` to this request.
    Response(ResponseError),
    /// The server accepted the extension with parameters the offer did not allow, or twice.
    Extension(NegotiationError),
    /// [`ClientHandshake::finish`] before the answer was whole.
    Incomplete,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Response(e) => write!(f, "{e}"),
            OpenError::Extension(e) => write!(f, "extension answer refused: {e}"),
            OpenError::Incomplete => f.write_str("the server's answer is not complete"),
        }
    }
}

impl std::error::Error for OpenError {}

impl From<ResponseError> for OpenError {
    fn from(e: ResponseError) -> Self {
        OpenError::Response(e)
    }
}

/// An open client connection, fresh from its handshake.
pub struct Opened<E: Extension> {
    /// The client-role connection, its extension configured from the answer.
    pub connection: Connection<E>,
    /// The subprotocol the server selected.
    pub protocol: Option<String>,
    /// The server's `Sec-WebSocket-Extensions` value (empty when none was accepted).
    pub extensions: String,
    /// Bytes that arrived after the answer's head: the first frames, to be read first.
    pub leftover: Vec<u8>,
}

impl<E: Extension> fmt::Debug for Opened<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("protocol", &self.protocol)
            .field("extensions", &self.extensions)
            .field("leftover", &self.leftover.len())
            .finish_non_exhaustive()
    }
}

/// The answer, once whole and verified.
#[derive(Debug)]
struct Answer {
    protocol: Option<String>,
    extensions: String,
}

/// A client's opening handshake: [`request`](Self::request) bytes out,
/// [`receive`](Self::receive) the server's bytes in, [`finish`](Self::finish) for the open
/// connection.
///
/// ```
/// use sockeye_proto::handshake::{AcceptKey, ClientHandshake, ClientRequest, encode_key};
/// use sockeye_proto::mask::SeededMasks;
/// use sockeye_proto::{Config, NoExtension};
///
/// let key = encode_key([7; 16]); // 16 bytes from a CSPRNG in real use
/// let mut handshake = ClientHandshake::new(
///     &ClientRequest::new("example.com", "/chat", &key),
///     NoExtension,
///     Config::default(),
///     Box::new(SeededMasks::new(0x1234)), // a CSPRNG-backed source in real use
/// )
/// .expect("a valid request");
/// assert!(handshake.request().starts_with(b"GET /chat HTTP/1.1\r\n"));
/// // The server's answer arrives in pieces, the first frame right behind it.
/// let mut answer = format!(
///     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///      Sec-WebSocket-Accept: {}\r\n\r\n",
///     AcceptKey::from_key(&key).as_str()
/// )
/// .into_bytes();
/// answer.extend_from_slice(b"\x81\x02hi"); // a text frame "hi"
/// let (first, rest) = answer.split_at(20);
/// assert!(!handshake.receive(first).expect("a valid start"));
/// assert!(handshake.receive(rest).expect("a valid answer"));
/// let opened = handshake.finish().expect("open");
/// assert_eq!(opened.leftover, b"\x81\x02hi");
/// ```
#[derive(Debug)]
pub struct ClientHandshake<E> {
    request: Vec<u8>,
    key: [u8; 24],
    protocols: Vec<String>,
    offer: String,
    limits: Limits,
    received: Vec<u8>,
    /// Where the line still arriving starts (0: the status line).
    line: usize,
    head_len: usize,
    answer: Option<Answer>,
    failed: Option<OpenError>,
    ext: E,
    config: Config,
    masks: Box<dyn MaskSource>,
}

impl<E: Extension> ClientHandshake<E> {
    /// A handshake for `request`, whose connection will run `ext` (offered as its name and the
    /// parameters of [`Extension::write_offer`], unless `request.extensions` is set: that value
    /// is then sent as it is) with `config` and mask keys from `masks`.
    ///
    /// # Errors
    ///
    /// [`WriteError::InvalidHeader`] for a path, host, protocol or header that is not valid in a
    /// request head.
    pub fn new(
        request: &ClientRequest<'_>,
        ext: E,
        config: Config,
        masks: Box<dyn MaskSource>,
    ) -> Result<Self, WriteError> {
        let offer = if !request.extensions.is_empty() {
            String::from_utf8_lossy(request.extensions).into_owned()
        } else if ext.name().is_empty() {
            String::new()
        } else {
            // Room for any offer an extension makes (an offer that does not fit is refused as
            // an invalid header).
            let mut buf = [0u8; 1024];
            let mut params = ParamWriter::new(&mut buf);
            ext.write_offer(&mut params)
                .map_err(|_| WriteError::InvalidHeader)?;
            format!(
                "{}{}",
                ext.name(),
                String::from_utf8_lossy(params.as_bytes())
            )
        };
        let with_offer = ClientRequest {
            extensions: offer.as_bytes(),
            ..*request
        };
        let mut out = vec![0u8; 512];
        let len = match with_offer.encode(&mut out) {
            Err(WriteError::BufferTooSmall { needed }) => {
                out.resize(needed, 0);
                with_offer.encode(&mut out)?
            }
            other => other?,
        };
        out.truncate(len);
        Ok(ClientHandshake {
            request: out,
            key: *request.key,
            protocols: request.protocols.iter().map(|p| (*p).to_owned()).collect(),
            offer,
            limits: Limits::default(),
            received: Vec::new(),
            line: 0,
            head_len: 0,
            answer: None,
            failed: None,
            ext,
            config,
            masks,
        })
    }

    /// Replaces the limits on the answer's head (8 KiB and 64 headers by default).
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The request head to write.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// The `Sec-WebSocket-Extensions` value offered (empty for none).
    pub fn offer(&self) -> &str {
        &self.offer
    }

    /// Takes bytes from the server; `true` once the answer is whole and verified (later bytes
    /// are kept for [`Opened::leftover`]).
    ///
    /// # Errors
    ///
    /// The answer is not a valid `101` to this request, its head is over the limits, or the
    /// extension refuses its parameters. The handshake then stays failed: later calls return
    /// the same error.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<bool, OpenError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        self.received.extend_from_slice(bytes);
        if self.answer.is_some() {
            return Ok(true);
        }
        let result = self.check(bytes.len());
        if let Err(error) = result {
            // The extension may be half configured: the handshake stays failed.
            self.failed = Some(error);
        }
        result
    }

    /// Parses what arrived; `true` once the answer is whole, verified and negotiated.
    ///
    /// Every line before the one still arriving was accepted by the last parse: until an LF
    /// arrives, only that line can change the verdict, and only it is looked at. A head that
    /// arrives a byte at a time costs its length times its longest line, not its length squared.
    fn check(&mut self, new: usize) -> Result<bool, OpenError> {
        let start = self.received.len() - new;
        let Some(lf) = memchr::memrchr(b'\n', &self.received[start..]) else {
            http::partial_line(&self.received, self.line, &self.limits, self.line > 0)
                .map_err(ResponseError::Http)?;
            return self.incomplete();
        };
        let protocols: Vec<&str> = self.protocols.iter().map(String::as_str).collect();
        let request = ClientRequest {
            protocols: &protocols,
            extensions: self.offer.as_bytes(),
            ..ClientRequest::new("", "/", &self.key)
        };
        let response = match parse_response(&self.received, &self.limits, &request)? {
            Status::Complete(response) => response,
            Status::Incomplete { .. } => {
                // Every line up to the last LF is whole and accepted.
                self.line = start + lf + 1;
                return self.incomplete();
            }
        };
        let mut accepted = false;
        for element in parse_offers(response.extensions) {
            let element = element.map_err(OpenError::Extension)?;
            if accepted || element.name() != self.ext.name() {
                return Err(OpenError::Extension(NegotiationError::NotOffered));
            }
            self.ext
                .accept_response(&element)
                .map_err(OpenError::Extension)?;
            accepted = true;
        }
        self.head_len = response.head_len;
        self.answer = Some(Answer {
            protocol: response.protocol.map(str::to_owned),
            extensions: response.extensions.to_owned(),
        });
        Ok(true)
    }

    /// The verdict on an answer whose head has not ended: wait for more, unless it is over the
    /// limit already.
    fn incomplete(&self) -> Result<bool, OpenError> {
        if self.received.len() > self.limits.max_head_len {
            return Err(ResponseError::Http(HandshakeError::HeadTooLarge).into());
        }
        Ok(false)
    }

    /// The open connection.
    ///
    /// # Errors
    ///
    /// [`OpenError::Incomplete`] before [`receive`](Self::receive) returned `true`.
    pub fn finish(mut self) -> Result<Opened<E>, OpenError> {
        let answer = self.answer.take().ok_or(OpenError::Incomplete)?;
        self.received.drain(..self.head_len);
        Ok(Opened {
            connection: Connection::client_with_masks(self.config, self.ext, self.masks),
            protocol: answer.protocol,
            extensions: answer.extensions,
            leftover: self.received,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::SeededMasks;

    fn seeded(seed: u64) -> Box<dyn MaskSource> {
        Box::new(SeededMasks::new(seed))
    }
    use crate::extension::Params;
    use crate::handshake::{AcceptKey, encode_key};
    use crate::{ExtensionError, NoExtension, Rsv};

    const HOST: &str = "example.com";

    fn answer(key: &[u8; 24], extra: &str) -> Vec<u8> {
        let accept = AcceptKey::from_key(key);
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
            accept.as_str()
        )
        .into_bytes()
    }

    /// A test extension: offers `x-test; p`, accepts an answer without parameters.
    #[derive(Debug, Default)]
    struct Probe {
        accepted: u32,
    }

    impl Extension for Probe {
        fn name(&self) -> &str {
            "x-test"
        }
        fn rsv(&self) -> Rsv {
            Rsv::NONE
        }
        fn accept_offer(
            &mut self,
            _: &Params<'_>,
            _: &mut ParamWriter<'_>,
        ) -> Result<bool, NegotiationError> {
            Ok(false)
        }
        fn write_offer(&self, offer: &mut ParamWriter<'_>) -> Result<(), NegotiationError> {
            offer.param("p", None)
        }
        fn accept_response(&mut self, params: &Params<'_>) -> Result<(), NegotiationError> {
            if params.iter().next().is_some() {
                return Err(NegotiationError::UnknownParameter);
            }
            self.accepted += 1;
            Ok(())
        }
        fn decode(
            &mut self,
            _: &[u8],
            _: bool,
            _: &mut Vec<u8>,
            _: usize,
        ) -> Result<(), ExtensionError> {
            Ok(())
        }
        fn encode(&mut self, _: &[u8], _: &mut Vec<u8>) -> Result<Rsv, ExtensionError> {
            Ok(Rsv::NONE)
        }
    }

    #[test]
    fn a_bad_byte_is_refused_as_it_arrives_with_the_whole_head_error() {
        let key = encode_key([2; 16]);
        let request = ClientRequest::new(HOST, "/", &key);
        let good = answer(&key, "");
        let status_end = good.iter().position(|&b| b == b'\n').unwrap() + 1;
        let cases: [(&[u8], usize); 5] = [
            (b"HTTP/1.1 101 OK\rx", 16),
            (b"HTTP/1.1 101 OK\r\nUpgr\x01", 21),
            (b"HTTP/1.1 101 OK\r\nX: a\x7f", 21),
            (b"HTTP/1.1 101 OK\r\n a", 17),
            (&good[..status_end + 3], usize::MAX),
        ];
        for (head, at) in cases {
            let mut hs =
                ClientHandshake::new(&request, NoExtension, Config::default(), seeded(1)).unwrap();
            let limits = Limits::default();
            for (i, byte) in head.iter().enumerate() {
                let got = hs.receive(&[*byte]);
                let whole = match parse_response(&head[..=i], &limits, &request) {
                    Ok(_) => Ok(false),
                    Err(e) => Err(OpenError::Response(e)),
                };
                assert_eq!(got, whole, "{head:?} after {} bytes", i + 1);
                assert_eq!(got.is_err(), i >= at, "{head:?} after {} bytes", i + 1);
            }
        }
        // A head over the limit, a byte at a time through one long line.
        let limits = Limits {
            max_head_len: 64,
            ..Limits::default()
        };
        let mut hs = ClientHandshake::new(&request, NoExtension, Config::default(), seeded(1))
            .unwrap()
            .with_limits(limits);
        let mut head = b"HTTP/1.1 101 OK\r\nX: ".to_vec();
        head.resize(80, b'a');
        let refused = head.iter().position(|b| hs.receive(&[*b]).is_err());
        assert_eq!(refused, Some(63), "at the 64th byte");
    }

    #[test]
    fn byte_by_byte_to_an_open_connection() {
        let key = encode_key([1; 16]);
        let protocols = ["chat", "v2"];
        let request = ClientRequest {
            protocols: &protocols,
            ..ClientRequest::new(HOST, "/ws", &key)
        };
        let mut hs =
            ClientHandshake::new(&request, NoExtension, Config::default(), seeded(9)).unwrap();
        let head = String::from_utf8(hs.request().to_vec()).unwrap();
        assert!(
            head.contains("Sec-WebSocket-Protocol: chat, v2\r\n"),
            "{head}"
        );
        assert!(!head.contains("Sec-WebSocket-Extensions"), "{head}");
        let mut bytes = answer(&key, "Sec-WebSocket-Protocol: v2\r\n");
        let head_len = bytes.len();
        bytes.extend_from_slice(b"\x81\x05hello");
        for (i, b) in bytes.iter().enumerate() {
            let whole = hs.receive(&[*b]).unwrap();
            assert_eq!(whole, i + 1 >= head_len, "after {} bytes", i + 1);
        }
        let opened = hs.finish().unwrap();
        assert_eq!(opened.protocol.as_deref(), Some("v2"));
        assert_eq!(opened.extensions, "");
        assert_eq!(opened.leftover, b"\x81\x05hello");
    }

    #[test]
    fn the_extension_offers_and_checks_the_answer() {
        let key = encode_key([2; 16]);
        let request = ClientRequest::new(HOST, "/", &key);
        let hs =
            ClientHandshake::new(&request, Probe::default(), Config::default(), seeded(1)).unwrap();
        assert_eq!(hs.offer(), "x-test; p");
        let head = String::from_utf8(hs.request().to_vec()).unwrap();
        assert!(
            head.contains("Sec-WebSocket-Extensions: x-test; p\r\n"),
            "{head}"
        );

        // (extensions header of the answer, outcome)
        let table: [(&str, Result<bool, OpenError>); 5] = [
            ("", Ok(false)),
            ("x-test", Ok(true)),
            (
                "x-test; q",
                Err(OpenError::Extension(NegotiationError::UnknownParameter)),
            ),
            (
                "x-test, x-test",
                Err(OpenError::Extension(NegotiationError::NotOffered)),
            ),
            (
                "x-other",
                Err(OpenError::Response(ResponseError::ExtensionNotOffered)),
            ),
        ];
        for (extensions, expected) in table {
            let mut hs =
                ClientHandshake::new(&request, Probe::default(), Config::default(), seeded(1))
                    .unwrap();
            let extra = if extensions.is_empty() {
                String::new()
            } else {
                format!("Sec-WebSocket-Extensions: {extensions}\r\n")
            };
            let received = hs.receive(&answer(&key, &extra));
            if let Err(error) = received {
                assert_eq!(
                    hs.receive(b""),
                    Err(error),
                    "a failed handshake stays failed"
                );
            }
            let outcome = received
                .and_then(|_| hs.finish())
                .map(|o| o.connection.extension().accepted == 1);
            assert_eq!(outcome, expected, "{extensions:?}");
        }
    }

    #[test]
    fn refusals_and_limits() {
        let key = encode_key([3; 16]);
        let request = ClientRequest::new(HOST, "/", &key);
        let new =
            || ClientHandshake::new(&request, NoExtension, Config::default(), seeded(1)).unwrap();

        let mut hs = new();
        assert_eq!(
            hs.receive(b"HTTP/1.1 403 Forbidden\r\n\r\n"),
            Err(OpenError::Response(ResponseError::Status(403)))
        );
        let mut hs = new();
        assert_eq!(
            hs.receive(&answer(&encode_key([4; 16]), "")),
            Err(OpenError::Response(ResponseError::BadAccept))
        );
        let mut hs = new().with_limits(Limits {
            max_head_len: 64,
            ..Limits::default()
        });
        let filler = format!("X-Filler: {}\r\n", "a".repeat(100));
        let result = hs
            .receive(b"HTTP/1.1 101 Switching Protocols\r\n")
            .and_then(|_| hs.receive(filler.as_bytes()));
        assert!(
            matches!(result, Err(OpenError::Response(ResponseError::Http(_)))),
            "{result:?}"
        );
        assert_eq!(new().finish().err(), Some(OpenError::Incomplete));
        assert_eq!(
            ClientHandshake::new(
                &ClientRequest::new(HOST, "/a b", &key),
                NoExtension,
                Config::default(),
                seeded(1)
            )
            .err(),
            Some(WriteError::InvalidHeader)
        );
    }
}
