//! The client without I/O: bytes from the socket in, bytes for the socket and messages out.
//! Both front ends drive it, and so can any event loop (the `sockeye load` generator does).
//!
//! Under TLS the session holds the rustls connection too: what goes in and out is then
//! ciphertext, and the front ends never see a record.

use std::io::{Read as _, Write as _};
use std::time::Instant;

use rustls::ClientConnection;
use sockeye_deflate::PerMessageDeflate;
use sockeye_proto::handshake::{ClientHandshake, ClientRequest, encode_key};
use sockeye_proto::{CloseCode, Config, Connection, Event, State};

use crate::error::Error;
use crate::message::{CloseFrame, Message};
use crate::options::Options;
use crate::random::Random;
use crate::url::WsUrl;

/// The extension a client connection runs: permessage-deflate when offered.
type Ext = Option<Box<PerMessageDeflate>>;

/// Bytes of room [`Session::input`] offers at least.
const READ_ROOM: usize = 128 << 10;

/// Where the connection is.
#[derive(Debug)]
enum Phase {
    Handshake(Box<ClientHandshake<Ext>>),
    Open(Box<Connection<Ext>>),
    /// Only while the handshake turns into the connection.
    Switching,
}

/// One client connection, from its upgrade request to its end, without I/O.
///
/// The loop around it: write [`output`](Self::output) to the socket and report it with
/// [`wrote`](Self::wrote); read the socket into [`input`](Self::input) and report it with
/// [`received`](Self::received) (or the end of the stream with
/// [`end_of_input`](Self::end_of_input)); once [`is_open`](Self::is_open), take messages with
/// [`poll_message`](Self::poll_message) and send with [`send`](Self::send). Replies the protocol
/// owes (pongs, the close echo) join the output by themselves.
#[derive(Debug)]
pub struct Session {
    phase: Phase,
    tls: Option<Box<ClientConnection>>,
    /// Ciphertext read from the socket (TLS only).
    raw: Vec<u8>,
    /// Plaintext received; `rbuf[start..end]` is not decoded yet.
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    /// The reassembly buffer of messages that span frames or reads.
    message: Vec<u8>,
    /// Plaintext on its way into TLS records (TLS only).
    staged: Vec<u8>,
    /// Bytes for the socket; `out[sent..]` is not written yet.
    out: Vec<u8>,
    sent: usize,
    protocol: Option<String>,
    extensions: String,
    compressed: bool,
    /// The server's close frame was delivered.
    close_delivered: bool,
    /// The server ended its side.
    eof: bool,
    /// An error ended the connection: only `Closed` from now on.
    failed: bool,
    /// When the closing handshake gives up: set by our close frame or the server's.
    close_deadline: Option<Instant>,
    config: Config,
}

impl Session {
    /// A session for `url`, its upgrade request (and TLS ClientHello) already in the output.
    ///
    /// # Errors
    ///
    /// [`Error::Options`] for a header that cannot go into a request or a TLS setting rustls
    /// refuses, or when the operating system gives no randomness.
    pub fn new(url: &WsUrl, options: &Options) -> Result<Self, Error> {
        let mut random = Random::from_os()?;
        let key = encode_key(random.nonce());
        let protocols: Vec<&str> = options.protocols.iter().map(String::as_str).collect();
        let headers: Vec<(&str, &str)> = options
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let mut request = ClientRequest::new(&url.authority, &url.target, &key);
        request.protocols = &protocols;
        request.headers = &headers;
        request.origin = options.origin.as_deref();
        let mut config = Config::default();
        config.max_message_size = options.max_message_size;
        config.max_frame_size = options.max_message_size as u64;
        config.close_timeout = options.close_timeout;
        let ext = options
            .deflate
            .map(|deflate| Box::new(PerMessageDeflate::client(deflate)));
        let handshake = ClientHandshake::new(&request, ext, config, Box::new(random))?;
        let tls = if url.secure {
            let name = options.tls.name_for(&url.host)?;
            let mut tls = ClientConnection::new(options.tls.client_config()?, name)?;
            tls.set_buffer_limit(None);
            Some(Box::new(tls))
        } else {
            None
        };
        let mut session = Session {
            phase: Phase::Handshake(Box::new(handshake)),
            tls,
            raw: Vec::new(),
            rbuf: Vec::new(),
            start: 0,
            end: 0,
            message: Vec::new(),
            staged: Vec::new(),
            out: Vec::new(),
            sent: 0,
            protocol: None,
            extensions: String::new(),
            compressed: false,
            close_delivered: false,
            eof: false,
            failed: false,
            close_deadline: None,
            config,
        };
        let Phase::Handshake(handshake) = &session.phase else {
            unreachable!("a new session is in its handshake");
        };
        let request = handshake.request().to_vec();
        session.queue(&request);
        session.seal()?;
        Ok(session)
    }

    /// Whether the upgrade is done: messages flow.
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open(_))
    }

    /// The subprotocol the server chose.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The server's `Sec-WebSocket-Extensions` answer (empty when it accepted none).
    pub fn extensions(&self) -> &str {
        &self.extensions
    }

    /// Whether permessage-deflate runs on this connection.
    pub fn is_compressed(&self) -> bool {
        self.compressed
    }

    /// The TLS connection, for its negotiated version, ALPN or the server's certificates.
    pub fn tls(&self) -> Option<&ClientConnection> {
        self.tls.as_deref()
    }

    /// Bytes to write to the socket (empty when none).
    pub fn output(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    /// Reports that the socket took the first `n` bytes of [`output`](Self::output).
    pub fn wrote(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.out.len());
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        }
    }

    /// Where the next socket read goes: at least 128 KiB of room.
    pub fn input(&mut self) -> &mut [u8] {
        let buf = if self.tls.is_some() {
            self.raw.clear();
            &mut self.raw
        } else {
            self.compact();
            &mut self.rbuf
        };
        let at = if self.tls.is_some() { 0 } else { self.end };
        if buf.len() < at + READ_ROOM {
            buf.resize(at + READ_ROOM, 0);
        }
        &mut buf[at..]
    }

    /// Reports that the socket put `n` bytes into [`input`](Self::input).
    ///
    /// # Errors
    ///
    /// A TLS failure (its alert is in the output), or a bad answer to the upgrade.
    pub fn received(&mut self, n: usize) -> Result<(), Error> {
        if self.tls.is_some() {
            let raw = std::mem::take(&mut self.raw);
            let result = self.decrypt(&raw[..n.min(raw.len())]);
            self.raw = raw;
            result?;
        } else {
            self.end = (self.end + n).min(self.rbuf.len());
        }
        self.advance_handshake()
    }

    /// Takes `bytes` read from the socket (a copy; [`input`](Self::input) avoids it).
    ///
    /// # Errors
    ///
    /// As [`received`](Self::received).
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.tls.is_some() {
            self.decrypt(bytes)?;
        } else {
            self.compact();
            self.rbuf.truncate(self.end);
            self.rbuf.extend_from_slice(bytes);
            self.end = self.rbuf.len();
        }
        self.advance_handshake()
    }

    /// Reports that the server ended its side of the connection.
    pub fn end_of_input(&mut self) {
        self.eof = true;
    }

    /// Whether the server ended its side.
    pub fn is_end_of_input(&self) -> bool {
        self.eof
    }

    /// The next message, `Ok(None)` when more input is needed. After the server's close frame
    /// ([`Message::Close`], delivered once, its echo already in the output) and the end of the
    /// stream: [`Error::Closed`].
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] when the server broke the protocol (the close frame with its code is
    /// in the output); [`Error::Reset`] when the stream ended without a closing handshake;
    /// [`Error::Closed`] once the connection is over.
    pub fn poll_message(&mut self) -> Result<Option<Message>, Error> {
        if self.failed {
            return Err(Error::Closed);
        }
        if !self.is_open() {
            return if self.eof {
                self.failed = true;
                Err(Error::Reset)
            } else {
                Ok(None)
            };
        }
        while self.start < self.end {
            let Phase::Open(ws) = &mut self.phase else {
                break;
            };
            let input = &mut self.rbuf[self.start..self.end];
            let input_at = input.as_ptr() as usize;
            let input_range = input_at..input_at + input.len();
            let read = ws.handle_read(input, &mut self.message, Instant::now());
            let owed = if self.tls.is_some() {
                &mut self.staged
            } else {
                &mut self.out
            };
            let (consumed, message) = match read {
                Ok(read) => (read.consumed, decode(read.event, &input_range)),
                Err(e) => {
                    self.failed = true;
                    ws.poll_transmit(owed);
                    self.seal()?;
                    return Err(Error::Protocol(e));
                }
            };
            self.start += consumed;
            if ws.poll_transmit(owed) {
                self.seal()?;
            }
            let message = match message {
                Decoded::Nothing if consumed == 0 => break,
                Decoded::Nothing => continue,
                Decoded::Ready(message) => message,
                Decoded::Reassembled { text, at, len } => {
                    // The connection's contract: a message that is not in the input is the
                    // whole reassembly buffer. Hand the buffer over instead of copying it.
                    if at != self.message.as_ptr() as usize || len != self.message.len() {
                        self.failed = true;
                        return Err(Error::Closed);
                    }
                    let bytes = std::mem::take(&mut self.message);
                    if text {
                        // Validated as it arrived; checked again rather than trusted blindly.
                        match String::from_utf8(bytes) {
                            Ok(text) => Message::Text(text),
                            Err(_) => {
                                self.failed = true;
                                return Err(Error::Closed);
                            }
                        }
                    } else {
                        Message::Binary(bytes)
                    }
                }
            };
            if matches!(message, Message::Close(_)) {
                self.close_delivered = true;
                self.arm_close_deadline();
            }
            return Ok(Some(message));
        }
        if self.eof {
            self.failed = true;
            return Err(if self.close_delivered {
                Error::Closed
            } else {
                Error::Reset
            });
        }
        let expired = self.close_deadline.is_some_and(|at| Instant::now() >= at);
        if expired || matches!(&self.phase, Phase::Open(ws) if ws.is_timed_out()) {
            self.failed = true;
            return Err(Error::Timeout(crate::Phase::Close));
        }
        Ok(None)
    }

    /// Sends a message (compressed when permessage-deflate runs and the message is over its
    /// threshold). Ping and pong payloads are at most 125 bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after a close frame was sent or the connection failed;
    /// [`Error::Send`] for a control payload over 125 bytes; [`Error::Closed`] before the
    /// upgrade is done.
    pub fn send(&mut self, msg: sockeye_proto::Message<'_>) -> Result<(), Error> {
        let Phase::Open(ws) = &mut self.phase else {
            return Err(Error::Closed);
        };
        if self.failed {
            return Err(Error::Closed);
        }
        if self.tls.is_some() {
            ws.send(msg, &mut self.staged)?;
        } else {
            ws.send(msg, &mut self.out)?;
        }
        self.seal()
    }

    /// Starts the closing handshake with `code` and `reason` (cut to 123 bytes). The server's
    /// close frame then arrives as [`Message::Close`], after the messages it sent before it.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when a close frame was already sent or the connection is over.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        let Phase::Open(ws) = &mut self.phase else {
            return Err(Error::Closed);
        };
        if self.failed {
            return Err(Error::Closed);
        }
        ws.close(code, reason, Instant::now())?;
        let mut owed = Vec::new();
        ws.poll_transmit(&mut owed);
        self.queue(&owed);
        self.arm_close_deadline();
        self.seal()
    }

    /// Starts the closing handshake's clock (once).
    fn arm_close_deadline(&mut self) {
        if self.close_deadline.is_none() {
            // A timeout too long to add means none.
            self.close_deadline = Instant::now().checked_add(self.config.close_timeout);
        }
    }

    /// When the closing handshake gives up waiting (after our close frame or the server's):
    /// call [`handle_timeout`](Self::handle_timeout) then, and
    /// [`poll_message`](Self::poll_message) reports [`Error::Timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ws = match &self.phase {
            Phase::Open(ws) => ws.poll_timeout(),
            Phase::Handshake(_) | Phase::Switching => None,
        };
        match (ws, self.close_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Advances the clock for the closing handshake's timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Phase::Open(ws) = &mut self.phase {
            ws.handle_timeout(now);
        }
    }

    /// Whether the connection is over on the WebSocket level (closing handshake done, failed or
    /// timed out): write the output, then close the socket.
    pub fn is_finished(&self) -> bool {
        self.failed
            || match &self.phase {
                Phase::Open(ws) => ws.state() == State::Closed,
                Phase::Handshake(_) | Phase::Switching => false,
            }
    }

    /// Whether a close frame of ours went out (or is in the output).
    pub fn is_closing(&self) -> bool {
        match &self.phase {
            Phase::Open(ws) => ws.state() != State::Open,
            Phase::Handshake(_) | Phase::Switching => false,
        }
    }

    /// The configuration of the connection (limits and close timeout).
    pub fn config(&self) -> Config {
        self.config
    }

    /// Feeds the handshake the plaintext received, and opens the connection when the answer is
    /// whole.
    fn advance_handshake(&mut self) -> Result<(), Error> {
        let Phase::Handshake(handshake) = &mut self.phase else {
            return Ok(());
        };
        let done = handshake.receive(&self.rbuf[self.start..self.end]);
        self.start = 0;
        self.end = 0;
        match done {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => {
                self.failed = true;
                return Err(e.into());
            }
        }
        let Phase::Handshake(handshake) = std::mem::replace(&mut self.phase, Phase::Switching)
        else {
            unreachable!("checked above");
        };
        let opened = handshake.finish().inspect_err(|_| self.failed = true)?;
        self.protocol = opened.protocol;
        self.extensions = opened.extensions;
        self.compressed = opened
            .connection
            .extension()
            .as_deref()
            .is_some_and(PerMessageDeflate::is_negotiated);
        self.rbuf = opened.leftover;
        self.end = self.rbuf.len();
        self.phase = Phase::Open(Box::new(opened.connection));
        Ok(())
    }

    /// Moves unread plaintext to the front of the buffer.
    fn compact(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 {
            self.rbuf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Appends plaintext for the socket.
    fn queue(&mut self, bytes: &[u8]) {
        if self.tls.is_some() {
            self.staged.extend_from_slice(bytes);
        } else {
            self.out.extend_from_slice(bytes);
        }
    }

    /// Under TLS: encrypts the staged plaintext and moves every pending record to the output.
    fn seal(&mut self) -> Result<(), Error> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(());
        };
        if !self.staged.is_empty() {
            tls.writer().write_all(&self.staged)?;
            self.staged.clear();
        }
        while tls.wants_write() {
            tls.write_tls(&mut self.out)?;
        }
        Ok(())
    }

    /// Under TLS: takes ciphertext, appends the plaintext it carries to the input, and moves the
    /// records rustls owes (handshake, alerts, key updates) to the output.
    fn decrypt(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(());
        };
        while !bytes.is_empty() {
            // rustls takes nothing more after the peer's close_notify: the rest is dropped.
            if tls.read_tls(&mut bytes)? == 0 {
                break;
            }
            let state = match tls.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    // The alert rustls queued goes out before the socket is dropped.
                    let _ = tls.write_tls(&mut self.out);
                    self.failed = true;
                    return Err(Error::Tls(e));
                }
            };
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                // What was decoded goes, so that the buffer holds only what is not yet: its
                // size is bounded by the records in flight, not by the traffic so far.
                if self.start == self.end {
                    self.start = 0;
                    self.end = 0;
                } else if self.start > 0 {
                    self.rbuf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                }
                self.rbuf.truncate(self.end);
                self.rbuf.resize(self.end + n, 0);
                tls.reader().read_exact(&mut self.rbuf[self.end..])?;
                self.end += n;
            }
            if state.peer_has_closed() {
                self.eof = true;
            }
        }
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(());
        };
        while tls.wants_write() {
            tls.write_tls(&mut self.out)?;
        }
        // A handshake that just finished lets the upgrade request out.
        self.seal()
    }
}

/// What one step of the connection delivered.
enum Decoded {
    Nothing,
    /// A message copied out of the input.
    Ready(Message),
    /// A text or binary message in the reassembly buffer (its address and length).
    Reassembled {
        text: bool,
        at: usize,
        len: usize,
    },
}

/// Copies a message that lies in the input (`input` is its address range); one gathered in
/// the reassembly buffer is taken afterwards, without a copy.
fn decode(event: Option<Event<'_>>, input: &core::ops::Range<usize>) -> Decoded {
    let outside = |bytes: &[u8]| !bytes.is_empty() && !input.contains(&(bytes.as_ptr() as usize));
    match event {
        None => Decoded::Nothing,
        Some(Event::Binary(bytes)) if outside(bytes) => Decoded::Reassembled {
            text: false,
            at: bytes.as_ptr() as usize,
            len: bytes.len(),
        },
        Some(Event::Text(text)) if outside(text.as_bytes()) => Decoded::Reassembled {
            text: true,
            at: text.as_ptr() as usize,
            len: text.len(),
        },
        Some(event) => Decoded::Ready(owned(event)),
    }
}

/// A message copied out of the connection's buffers.
fn owned(event: Event<'_>) -> Message {
    match event {
        Event::Text(text) => Message::Text(text.to_owned()),
        Event::Binary(bytes) => Message::Binary(bytes.to_vec()),
        Event::Ping(bytes) => Message::Ping(bytes.to_vec()),
        Event::Pong(bytes) => Message::Pong(bytes.to_vec()),
        Event::Close(frame) => Message::Close(frame.code.map(|code| CloseFrame {
            code,
            reason: frame.reason.to_owned(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::ServerConnection;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use sockeye_proto::handshake::AcceptKey;

    use super::*;
    use crate::TlsOptions;

    /// A rustls server for `localhost` with a self-signed certificate.
    fn tls_server() -> ServerConnection {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a certificate");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
        let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
        let provider = Arc::new(crate::tls::ring_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a server config");
        ServerConnection::new(Arc::new(config)).expect("a server session")
    }

    /// Moves bytes both ways until the client's upgrade request has reached the server, and
    /// answers it; returns the server side.
    fn open_over_tls(session: &mut Session) -> ServerConnection {
        let mut server = tls_server();
        let mut request = Vec::new();
        for _ in 0..20 {
            let mut out = session.output();
            while !out.is_empty() {
                server.read_tls(&mut out).expect("records");
                server.process_new_packets().expect("a valid client");
            }
            let n = session.output().len();
            session.wrote(n);
            let _ = server.reader().read_to_end(&mut request);
            if request.ends_with(b"\r\n\r\n") {
                break;
            }
            let mut records = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut records).expect("records");
            }
            session.receive(&records).expect("a valid server");
        }
        let text = String::from_utf8(request).expect("an ASCII request");
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .expect("a key");
        let key: &[u8; 24] = key.as_bytes().try_into().expect("24 bytes");
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            AcceptKey::from_key(key).as_str()
        );
        server
            .writer()
            .write_all(answer.as_bytes())
            .expect("the answer");
        server
    }

    fn records(server: &mut ServerConnection) -> Vec<u8> {
        let mut out = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut out).expect("records");
        }
        out
    }

    fn wss_session() -> Session {
        let url = WsUrl::parse("wss://localhost/").expect("a URL");
        let options = Options::default().tls(TlsOptions::insecure());
        Session::new(&url, &options).expect("a session")
    }

    #[test]
    fn bytes_after_close_notify_end_the_read_instead_of_spinning() {
        let mut session = wss_session();
        let mut server = open_over_tls(&mut session);
        server.writer().write_all(b"\x81\x02hi").expect("a frame");
        server.send_close_notify();
        let mut wire = records(&mut server);
        // More than rustls takes in one read after its close_notify.
        wire.extend_from_slice(&[0x17; 20_000]);
        session.receive(&wire).expect("taken");
        assert!(session.is_open());
        assert!(session.is_end_of_input());
        assert_eq!(
            session.poll_message().expect("the frame"),
            Some(Message::Text("hi".into()))
        );
        assert!(matches!(session.poll_message(), Err(Error::Reset)));
    }

    #[test]
    fn tls_input_cut_inside_frames_does_not_grow_the_buffer() {
        let mut session = wss_session();
        let mut server = open_over_tls(&mut session);
        session.receive(&records(&mut server)).expect("the answer");
        assert!(session.is_open());
        // Each record ends one byte into the next frame's header, 4000 times (16 KB in all).
        server.writer().write_all(b"\x81").expect("a header byte");
        for _ in 0..4000 {
            server.writer().write_all(b"\x02hi\x81").expect("a frame");
            session.receive(&records(&mut server)).expect("taken");
            assert_eq!(
                session.poll_message().expect("a message"),
                Some(Message::Text("hi".into()))
            );
            assert_eq!(session.poll_message().expect("no more"), None);
        }
        assert!(
            session.rbuf.len() < 1024,
            "{} bytes held",
            session.rbuf.len()
        );
    }
}
