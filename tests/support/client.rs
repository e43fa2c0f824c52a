//! A small blocking WebSocket client over a real loopback socket, a test echo handler and a
//! probe handler that reports its connections' lives through channels, for the loopback
//! integration tests of the engine.
//!
//! The client runs over any blocking byte stream ([`Pending::send_on`]): a [`TcpStream`] by
//! default, or TLS over one (`crate::tls`).
//!
//! Every socket this module opens has read and write timeouts ([`TIMEOUT`]), so a test that
//! waits for something the server never sends fails instead of hanging.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use sockeye::proto::handshake::{ClientHandshake, ClientRequest, Head, encode_key};
use sockeye::proto::mask::SeededMasks;
use sockeye::proto::{
    CloseCode, Config, Connection, Message, NoExtension, ProtocolError, Request as UpgradeRequest,
};
use sockeye::server::{
    Accept, CloseReason, ConnId, Handler, HttpResponse, Outbox, Reject, Running, Server,
    ServerConfig, Timeout,
};

pub use crate::engine::OwnedEvent;
use crate::wire::client_frame;
use sockeye::proto::frame::OpCode;

/// How long any single wait of a test may take before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The largest message the test client accepts (above every server limit the tests use).
pub const CLIENT_MAX_MESSAGE: usize = 64 << 20;

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 64 << 10;

/// A server configuration for tests: `127.0.0.1:0`, one worker, a 2 s shutdown timeout; the
/// other values are the engine's defaults.
pub fn test_config() -> ServerConfig {
    let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.workers = 1;
    config.shutdown_timeout = Duration::from_secs(2);
    config
}

/// Binds and spawns a server; returns it with the address it listens on.
///
/// # Panics
///
/// When the server cannot be bound or started.
pub fn start<H: Handler>(config: ServerConfig, handler: H) -> (Running, SocketAddr) {
    let server = Server::bind(config, handler).expect("bind the test server");
    let running = server.spawn().expect("spawn the test server");
    let addr = running.local_addrs()[0];
    (running, addr)
}

/// Joins the server's workers, failing if that takes longer than `limit`; returns how long
/// it took.
///
/// # Panics
///
/// When the workers are still running after `limit`.
pub fn join_within(running: Running, limit: Duration) -> Duration {
    let started = Instant::now();
    let (done, joined) = mpsc::channel();
    std::thread::spawn(move || {
        running.join().expect("no worker died");
        let _ = done.send(());
    });
    joined
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("the workers did not return within {limit:?}"));
    started.elapsed()
}

/// Opens a TCP connection with [`TIMEOUT`] on reads and writes and `TCP_NODELAY`.
///
/// # Errors
///
/// The connect error.
pub fn connect_tcp(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A distinct number per call, for mask seeds and handshake nonces.
fn next_seed() -> u64 {
    static SEED: AtomicU64 = AtomicU64::new(0x5eed_c0de_0000_0001);
    SEED.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
}

/// What the client puts in its upgrade request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The request target; `/` when empty.
    pub path: String,
    /// Subprotocols offered.
    pub protocols: Vec<String>,
    /// The `Origin` header.
    pub origin: Option<String>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Bytes written right after the head, in the same write (pipelined frames).
    pub trailing: Vec<u8>,
}

impl Request {
    /// A request offering `protocols`.
    pub fn with_protocols(protocols: &[&str]) -> Self {
        Request {
            protocols: protocols.iter().map(|p| (*p).to_owned()).collect(),
            ..Request::default()
        }
    }

    /// The head (and trailing bytes) for `host` with `key`.
    ///
    /// # Panics
    ///
    /// When a field is not valid in a request head.
    pub fn encode(&self, host: &str, key: &[u8; 24]) -> Vec<u8> {
        let mut out = self.with_head(host, key, |head| {
            let room = 1024
                + head
                    .headers
                    .iter()
                    .map(|(n, v)| n.len() + v.len() + 4)
                    .sum::<usize>();
            let mut out = vec![0u8; room];
            let n = head.encode(&mut out).expect("a valid request head");
            out.truncate(n);
            out
        });
        out.extend_from_slice(&self.trailing);
        out
    }

    /// Runs `f` on the request's fields as sockeye-proto's [`ClientRequest`].
    fn with_head<R>(
        &self,
        host: &str,
        key: &[u8; 24],
        f: impl FnOnce(&ClientRequest<'_>) -> R,
    ) -> R {
        let protocols: Vec<&str> = self.protocols.iter().map(String::as_str).collect();
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        f(&ClientRequest {
            protocols: &protocols,
            origin: self.origin.as_deref(),
            headers: &headers,
            ..ClientRequest::new(host, path, key)
        })
    }
}

/// An upgrade request that is written and whose answer has not been read yet.
#[derive(Debug)]
pub struct Pending<S = TcpStream> {
    stream: S,
    handshake: ClientHandshake<NoExtension>,
}

impl Pending {
    /// Connects to `addr` and writes the upgrade request.
    ///
    /// # Errors
    ///
    /// Connect or write errors.
    pub fn send(addr: SocketAddr, request: &Request) -> io::Result<Pending> {
        Pending::send_on(connect_tcp(addr)?, &addr.to_string(), request)
    }

    /// Whether any answer byte arrives within `wait` (nothing is consumed).
    ///
    /// # Errors
    ///
    /// Socket errors other than the timeout.
    pub fn answered_within(&self, wait: Duration) -> io::Result<bool> {
        self.stream.set_read_timeout(Some(wait))?;
        let mut byte = [0u8; 1];
        let result = match self.stream.peek(&mut byte) {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        };
        self.stream.set_read_timeout(Some(TIMEOUT))?;
        result
    }
}

impl<S: Read + Write> Pending<S> {
    /// Writes the upgrade request for `host` (the `Host` header) on a connected `stream`: the
    /// client's opening handshake is sockeye-proto's [`ClientHandshake`], as every client of
    /// the repository's is.
    ///
    /// # Errors
    ///
    /// Write errors; `InvalidInput` for a field that is not valid in a request head.
    pub fn send_on(mut stream: S, host: &str, request: &Request) -> io::Result<Pending<S>> {
        let key =
            encode_key((u128::from(next_seed()) << 64 | u128::from(next_seed())).to_le_bytes());
        let mut config = Config::default();
        config.max_message_size = CLIENT_MAX_MESSAGE;
        config.max_frame_size = CLIENT_MAX_MESSAGE as u64;
        let masks = Box::new(SeededMasks::new(next_seed()));
        let handshake = request
            .with_head(host, &key, |head| {
                ClientHandshake::new(head, NoExtension, config, masks)
            })
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let mut bytes = handshake.request().to_vec();
        bytes.extend_from_slice(&request.trailing);
        stream.write_all(&bytes)?;
        stream.flush()?;
        Ok(Pending { stream, handshake })
    }

    /// The stream.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// Reads the answer and checks it (status 101, `Sec-WebSocket-Accept`, subprotocol
    /// offered, ...).
    ///
    /// # Errors
    ///
    /// Socket errors, EOF, or `InvalidData` naming the check the answer failed (a refusal's
    /// status included).
    pub fn finish(mut self) -> io::Result<Client<S>> {
        let mut received = Vec::new();
        loop {
            let start = received.len();
            if read_more(&mut self.stream, &mut received)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            match self.handshake.receive(&received[start..]) {
                Ok(true) => break,
                Ok(false) => {}
                Err(err) => {
                    let text = String::from_utf8_lossy(&received);
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("upgrade refused: {err}: {text:?}"),
                    ));
                }
            }
        }
        let opened = self
            .handshake
            .finish()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let head_len = received.len() - opened.leftover.len();
        Ok(Client {
            stream: self.stream,
            conn: opened.connection,
            input: opened.leftover,
            start: 0,
            message: Vec::new(),
            protocol: opened.protocol,
            head: String::from_utf8_lossy(&received[..head_len]).into_owned(),
        })
    }
}

/// Appends one read's worth of bytes to `buf`; returns how many.
fn read_more(stream: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<usize> {
    // Through a stack buffer: an idle client's input keeps no more capacity than its bytes.
    let mut chunk = [0u8; READ_CHUNK];
    let n = loop {
        match stream.read(&mut chunk) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => break other?,
        }
    };
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// A connected, upgraded WebSocket client on a blocking stream, driving a client-role
/// [`Connection`] the way an engine does (unconsumed bytes kept in front of the next read).
#[derive(Debug)]
pub struct Client<S = TcpStream> {
    stream: S,
    conn: Connection,
    input: Vec<u8>,
    start: usize,
    message: Vec<u8>,
    protocol: Option<String>,
    head: String,
}

impl Client {
    /// Connects and upgrades with a plain request.
    ///
    /// # Panics
    ///
    /// When the connection or the upgrade fails.
    pub fn connect(addr: SocketAddr) -> Client {
        Client::connect_with(addr, &Request::default()).expect("upgrade")
    }

    /// Connects and upgrades with `request`.
    ///
    /// # Errors
    ///
    /// What [`Pending::send`] and [`Pending::finish`] return.
    pub fn connect_with(addr: SocketAddr, request: &Request) -> io::Result<Client> {
        Pending::send(addr, request)?.finish()
    }

    /// Closes the write side of the socket (FIN) without a close frame.
    ///
    /// # Errors
    ///
    /// The `shutdown` error.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }
}

impl<S: Read + Write> Client<S> {
    /// The subprotocol the server selected.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The server's `101` head, as text.
    pub fn response_head(&self) -> &str {
        &self.head
    }

    /// The stream (to change its timeouts or shut it down).
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// The stream, to write under the client (bytes below the TLS layer, for example).
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Sends a message (masked by the client connection).
    ///
    /// # Errors
    ///
    /// Write errors, or `InvalidInput` when the connection refuses the message.
    pub fn send(&mut self, msg: Message<'_>) -> io::Result<()> {
        let mut out = Vec::new();
        self.conn
            .send(msg, &mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        self.write(&out)
    }

    /// Writes arbitrary bytes (protocol violations, hand-made frames).
    ///
    /// # Errors
    ///
    /// Write errors.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write(bytes)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Writes the frames the client connection owes (a pong, the close echo); whether there
    /// were any.
    ///
    /// # Errors
    ///
    /// Write errors.
    pub fn send_owed(&mut self) -> io::Result<bool> {
        let mut out = Vec::new();
        if !self.conn.poll_transmit(&mut out) {
            return Ok(false);
        }
        self.write(&out)?;
        Ok(true)
    }

    /// Starts the closing handshake with `code`.
    ///
    /// # Errors
    ///
    /// Write errors, or `InvalidInput` when a close was already sent.
    pub fn close(&mut self, code: u16) -> io::Result<()> {
        self.conn
            .close(CloseCode(code), "", Instant::now())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        self.send_owed().map(|_| ())
    }

    /// The next event from the server (replies it makes the client owe are not sent: see
    /// [`Client::send_owed`]).
    ///
    /// # Errors
    ///
    /// Socket errors (`WouldBlock`/`TimedOut` after the read timeout), `UnexpectedEof`, or
    /// `InvalidData` for a protocol error of the server.
    pub fn recv(&mut self) -> io::Result<OwnedEvent> {
        loop {
            while self.start < self.input.len() {
                let input = &mut self.input[self.start..];
                let read = self
                    .conn
                    .handle_read(input, &mut self.message, Instant::now())
                    .map_err(|e| protocol_error(&e))?;
                let consumed = read.consumed;
                let event = read.event.as_ref().map(OwnedEvent::from_event);
                self.start += consumed;
                if let Some(event) = event {
                    return Ok(event);
                }
                if consumed == 0 {
                    break;
                }
            }
            // Keep only the unconsumed tail (a partial header or control frame).
            self.input.drain(..self.start);
            self.start = 0;
            if read_more(&mut self.stream, &mut self.input)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// A ping/pong round trip. The worker publishes its stats at the end of each loop turn,
    /// so once the pong is back, every turn before the one that answered has published: a
    /// barrier for `Handle::stats` (with one worker).
    ///
    /// # Panics
    ///
    /// When anything but the pong arrives first.
    pub fn sync(&mut self) {
        let token = next_seed().to_le_bytes();
        self.send(Message::Ping(&token)).expect("send the ping");
        match self.recv() {
            Ok(OwnedEvent::Pong(payload)) if payload == token => {}
            other => panic!("expected the pong of a sync, got {other:?}"),
        }
    }

    /// Sends `count` messages in one write, text and binary in turn (`message {i}`), then
    /// checks that each comes back, in order and of its type.
    ///
    /// # Panics
    ///
    /// On a write error or an echo that differs.
    pub fn pipelined_echoes(&mut self, count: usize) {
        let mut wire = Vec::new();
        for i in 0..count {
            let opcode = if i % 2 == 0 {
                OpCode::Text
            } else {
                OpCode::Binary
            };
            wire.extend(client_frame(
                true,
                opcode,
                format!("message {i}").as_bytes(),
            ));
        }
        self.send_raw(&wire).unwrap();
        for i in 0..count {
            let payload = format!("message {i}");
            let expected = if i % 2 == 0 {
                OwnedEvent::Text(payload)
            } else {
                OwnedEvent::Binary(payload.into_bytes())
            };
            assert_eq!(self.recv().unwrap(), expected, "echo {i}");
        }
    }

    /// The next event, which must be a text message.
    ///
    /// # Panics
    ///
    /// On any other event or error.
    pub fn recv_text(&mut self) -> String {
        match self.recv() {
            Ok(OwnedEvent::Text(text)) => text,
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// The next event, which must be a close frame; returns its code and reason.
    ///
    /// # Panics
    ///
    /// On any other event or error.
    pub fn recv_close(&mut self) -> (Option<u16>, String) {
        match self.recv() {
            Ok(OwnedEvent::Close(code, reason)) => (code, reason),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    /// Reads until the server closes TCP; any byte before the EOF is an error.
    ///
    /// # Errors
    ///
    /// `InvalidData` when bytes arrive, the read timeout, or a socket error (a reset included).
    pub fn expect_eof(&mut self) -> io::Result<()> {
        let unread = self.input.len() - self.start;
        if unread > 0 && self.conn.state() == sockeye::proto::State::Open {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{unread} unread bytes before EOF"),
            ));
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{n} bytes instead of EOF: {:?}", &buf[..n.min(32)]),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn protocol_error(err: &ProtocolError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("server broke the protocol: {err}"),
    )
}

/// A plain HTTP answer read to EOF.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The head (status line and headers), as text.
    pub head: String,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `bytes` on a new connection and reads the answer until the server closes.
///
/// # Panics
///
/// On socket errors, a timeout, or an answer that is not an HTTP/1.1 response.
pub fn http_exchange(addr: SocketAddr, bytes: &[u8]) -> HttpAnswer {
    let mut stream = connect_tcp(addr).expect("connect");
    stream.write_all(bytes).expect("write the request");
    let mut answer = Vec::new();
    while read_more(&mut stream, &mut answer).expect("read the answer") > 0 {}
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head in {:?}", String::from_utf8_lossy(&answer)));
    let head = String::from_utf8(answer[..end].to_vec()).expect("an ASCII head");
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 status line: {head:?}"));
    HttpAnswer {
        status,
        head,
        body: answer[end + 4..].to_vec(),
    }
}

/// The echo handler of `sockeye serve`: sends every message back, selects the `echo`
/// subprotocol when offered, and serves a page on `GET /`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

/// The body [`Echo`] serves on `GET /`.
pub const ECHO_PAGE: &str = "<!doctype html><title>sockeye echo</title>\n";

impl Handler for Echo {
    type Conn = ();

    fn on_upgrade(
        &mut self,
        _req: &UpgradeRequest<'_>,
        accept: &mut Accept<'_>,
    ) -> Result<(), Reject> {
        accept.select_protocol(&["echo"]);
        Ok(())
    }

    fn on_message(&mut self, _conn: &mut (), msg: Message<'_>, out: &mut Outbox<'_>) {
        let _ = out.send(msg);
    }

    fn on_http(&mut self, head: &Head<'_>, _: &sockeye::server::Handle) -> HttpResponse {
        match (head.method, head.path) {
            ("GET", "/") | ("GET", "/index.html") => {
                HttpResponse::new(200, "text/html; charset=utf-8", ECHO_PAGE.as_bytes())
            }
            _ => HttpResponse::not_found(),
        }
    }
}

/// [`CloseReason`] copied out of the borrow, so it can cross a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// The peer's close frame.
    Remote {
        /// Its code.
        code: Option<u16>,
        /// Its reason.
        reason: String,
    },
    /// Our close, answered.
    Local(u16),
    /// A protocol error of the peer.
    Protocol(ProtocolError),
    /// A timer.
    Timeout(Timeout),
    /// A socket error.
    Io(io::ErrorKind),
    /// A TLS failure, as the TLS library described it.
    Tls(String),
    /// TCP closed without a close frame.
    Disconnected,
    /// Server shutdown.
    Shutdown,
    /// The send queue went over its limit.
    Backpressure,
    /// A reason this enum does not know yet.
    Other(String),
}

impl From<CloseReason<'_>> for Closed {
    fn from(why: CloseReason<'_>) -> Self {
        match why {
            CloseReason::Remote { code, reason } => Closed::Remote {
                code: code.map(|c| c.0),
                reason: reason.to_owned(),
            },
            CloseReason::Local(code) => Closed::Local(code.0),
            CloseReason::Protocol(err) => Closed::Protocol(err),
            CloseReason::Timeout(t) => Closed::Timeout(t),
            CloseReason::Io(kind) => Closed::Io(kind),
            CloseReason::Tls(text) => Closed::Tls(text.to_owned()),
            CloseReason::Disconnected => Closed::Disconnected,
            CloseReason::Shutdown => Closed::Shutdown,
            CloseReason::Backpressure => Closed::Backpressure,
            other => Closed::Other(format!("{other:?}")),
        }
    }
}

/// An echo handler that reports each opened connection's id and each `on_close` reason.
#[derive(Debug, Clone)]
pub struct Probe {
    opened: Sender<ConnId>,
    closed: Sender<Closed>,
}

/// The receiving ends of a [`Probe`].
#[derive(Debug)]
pub struct ProbeEvents {
    /// Ids of opened connections, in order.
    pub opened: Receiver<ConnId>,
    /// `on_close` reasons, in order.
    pub closed: Receiver<Closed>,
}

impl Probe {
    /// A probe and its receivers.
    pub fn new() -> (Probe, ProbeEvents) {
        let (opened_tx, opened) = mpsc::channel();
        let (closed_tx, closed) = mpsc::channel();
        let probe = Probe {
            opened: opened_tx,
            closed: closed_tx,
        };
        (probe, ProbeEvents { opened, closed })
    }
}

impl ProbeEvents {
    /// The next opened connection's id, within [`TIMEOUT`].
    ///
    /// # Panics
    ///
    /// When none comes.
    pub fn next_open(&self) -> ConnId {
        self.opened
            .recv_timeout(TIMEOUT)
            .expect("on_open within the timeout")
    }

    /// The next `on_close` reason, within [`TIMEOUT`].
    ///
    /// # Panics
    ///
    /// When none comes.
    pub fn next_close(&self) -> Closed {
        self.closed
            .recv_timeout(TIMEOUT)
            .expect("on_close within the timeout")
    }
}

impl Handler for Probe {
    type Conn = ();

    fn on_upgrade(
        &mut self,
        _req: &UpgradeRequest<'_>,
        _accept: &mut Accept<'_>,
    ) -> Result<(), Reject> {
        Ok(())
    }

    fn on_open(&mut self, _conn: &mut (), out: &mut Outbox<'_>) {
        let _ = self.opened.send(out.id());
    }

    fn on_message(&mut self, _conn: &mut (), msg: Message<'_>, out: &mut Outbox<'_>) {
        let _ = out.send(msg);
    }

    fn on_close(&mut self, _conn: (), why: CloseReason<'_>) {
        let _ = self.closed.send(why.into());
    }
}
