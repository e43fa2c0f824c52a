//! The embedding API: what the application implements ([`Handler`]) and what it is given.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::net::SocketAddr;

use sockeye_proto::handshake::{Head, TokenList};
use sockeye_proto::{CloseCode, Message, ProtocolError, Request};

use crate::handle::{Handle, SendOutcome};
use crate::topics::{Publication, PublishError, SlowConsumer, TopicError};
use crate::transport::Peer;

/// An opaque, copyable identifier of a connection, valid across threads (like mio's `Token`).
/// Ids are not reused while their connection lives; a stale id simply addresses nobody.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

/// Bits of a [`ConnId`] for the slot index: at most 2^20 connections per worker.
pub(crate) const INDEX_BITS: u32 = 20;
/// Bits of a [`ConnId`] for the worker: at most 4096 workers.
pub(crate) const WORKER_BITS: u32 = 12;

impl ConnId {
    /// The id of the connection of `generation` in slot `index` of `worker`. A slot's
    /// generation grows with every connection it holds and the slot is retired before it would
    /// wrap, so an id is never handed out twice.
    pub(crate) fn new(worker: usize, index: usize, generation: u32) -> Self {
        debug_assert!(index < 1 << INDEX_BITS && worker < 1 << WORKER_BITS);
        ConnId((worker as u64) << (64 - WORKER_BITS) | (index as u64) << 32 | u64::from(generation))
    }

    /// The index of the worker that serves this connection.
    pub fn worker(self) -> usize {
        (self.0 >> (64 - WORKER_BITS)) as usize
    }

    pub(crate) fn index(self) -> usize {
        ((self.0 >> 32) & ((1 << INDEX_BITS) - 1)) as usize
    }

    pub(crate) fn generation(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ConnId({}:{}:{})",
            self.worker(),
            self.index(),
            self.generation()
        )
    }
}

/// The application: one clone per worker; every call for one connection happens on its
/// worker's thread, so no locks are needed.
pub trait Handler: Clone + Send + 'static {
    /// Per-connection state of the application (`'static`, so that
    /// [`Handle::with_conn`](crate::Handle::with_conn) can reach it from other threads).
    type Conn: 'static;

    /// Decides on an upgrade request: inspect the path, headers, `Origin` and offered
    /// subprotocols; accept with the connection's state (choosing a subprotocol or adding
    /// headers through `accept`), or reject with a status.
    ///
    /// # Errors
    ///
    /// A [`Reject`] refuses the upgrade with its HTTP status.
    fn on_upgrade(
        &mut self,
        req: &Request<'_>,
        accept: &mut Accept<'_>,
    ) -> Result<Self::Conn, Reject>;

    /// The connection is open; messages can be sent.
    fn on_open(&mut self, _conn: &mut Self::Conn, _out: &mut Outbox<'_>) {}

    /// A whole message, borrowed from the worker's buffers.
    fn on_message(&mut self, conn: &mut Self::Conn, msg: Message<'_>, out: &mut Outbox<'_>);

    /// A ping arrived (the pong is already queued).
    fn on_ping(&mut self, _conn: &mut Self::Conn, _payload: &[u8], _out: &mut Outbox<'_>) {}

    /// A pong arrived.
    fn on_pong(&mut self, _conn: &mut Self::Conn, _payload: &[u8], _out: &mut Outbox<'_>) {}

    /// The send queue fell to the low-water mark after being over the high-water mark.
    fn on_writable(&mut self, _conn: &mut Self::Conn, _out: &mut Outbox<'_>) {}

    /// The connection is over; called exactly once per opened connection.
    fn on_close(&mut self, _conn: Self::Conn, _why: CloseReason<'_>) {}

    /// A plain HTTP request (one that asks for no upgrade) on the WebSocket port, of any method
    /// and of HTTP/1.0 or 1.1: a page, a health check, a load balancer's probe. The answer's
    /// body is left out for `HEAD`; the connection closes after it. `handle` reaches the server
    /// (its counters, other connections). The default answers `426 Upgrade Required`.
    fn on_http(&mut self, _head: &Head<'_>, _handle: &Handle) -> HttpResponse {
        HttpResponse::upgrade_required()
    }
}

/// The application's additions to a `101` answer.
#[derive(Debug)]
pub struct Accept<'a> {
    offered: TokenList<'a>,
    pub(crate) protocol: Option<&'a str>,
    pub(crate) headers: Vec<(String, String)>,
    peer: Peer<'a>,
}

impl<'a> Accept<'a> {
    pub(crate) fn new(req: &Request<'a>, peer: Peer<'a>) -> Self {
        Accept {
            offered: req.protocols(),
            protocol: None,
            headers: Vec::new(),
            peer,
        }
    }

    /// The client's address (for logs and per-address limits): the socket's peer, or behind a
    /// proxy the client it names ([`ServerConfig::proxy_protocol`](crate::ServerConfig::proxy_protocol),
    /// [`ServerConfig::trusted_proxies`](crate::ServerConfig::trusted_proxies); port 0 when a
    /// header gave none). `None` in the rare case the socket could not tell (it was reset
    /// meanwhile).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer.addr
    }

    /// The socket's peer: the client, or the proxy in front of it.
    pub fn socket_peer_addr(&self) -> Option<SocketAddr> {
        self.peer.socket
    }

    /// The local address the client connected to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.peer.local
    }

    /// Over TLS, the host name the client asked for (SNI, lowercased); `None` when it sent
    /// none (a client that connects to an IP address) or over plain TCP.
    #[cfg(feature = "tls")]
    pub fn server_name(&self) -> Option<&'a str> {
        self.peer.server_name
    }

    /// Over TLS, the application protocol ALPN chose (`http/1.1`); `None` over plain TCP.
    #[cfg(feature = "tls")]
    pub fn alpn(&self) -> Option<&'a [u8]> {
        self.peer.alpn
    }

    /// Over TLS with client authentication, the client's certificate chain (leaf first),
    /// verified against the configured CA; `None` when the client sent none, or over plain TCP.
    #[cfg(feature = "tls")]
    pub fn client_certificates(&self) -> Option<&'a [rustls::pki_types::CertificateDer<'static>]> {
        self.peer.certificates
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn offered_protocols(&self) -> TokenList<'a> {
        self.offered.clone()
    }

    /// Selects the first subprotocol of `supported` that the client offered; returns it.
    pub fn select_protocol(&mut self, supported: &[&str]) -> Option<&'a str> {
        self.protocol = self.offered.clone().find(|p| supported.contains(p));
        self.protocol
    }

    /// Adds a header to the `101` answer (`Set-Cookie`, ...).
    pub fn header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.headers.push((name.into(), value.into()));
    }
}

/// A refused upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reject {
    /// The HTTP status (403 for a refused `Origin`, 404 for an unknown path, ...).
    pub status: u16,
    /// A short body.
    pub body: Cow<'static, str>,
    /// Extra headers (`WWW-Authenticate` with a 401, `Retry-After` with a 429 or 503).
    pub headers: Vec<(String, String)>,
}

impl Reject {
    /// A refusal with `status` and a body.
    pub fn new(status: u16, body: impl Into<Cow<'static, str>>) -> Self {
        Reject {
            status,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header to the refusal (names and values with CR or LF are left out).
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// `403 Forbidden`, for an `Origin` the application does not serve.
    pub fn forbidden() -> Self {
        Reject::new(403, "forbidden\n")
    }

    /// `404 Not Found`.
    pub fn not_found() -> Self {
        Reject::new(404, "not found\n")
    }
}

/// An answer to a plain HTTP request; the connection closes after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: Cow<'static, str>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Cow<'static, [u8]>,
}

impl HttpResponse {
    /// A response with `status`, a content type and a body.
    pub fn new(
        status: u16,
        content_type: impl Into<Cow<'static, str>>,
        body: impl Into<Cow<'static, [u8]>>,
    ) -> Self {
        HttpResponse {
            status,
            content_type: content_type.into(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// `426 Upgrade Required` with `Upgrade: websocket`.
    pub fn upgrade_required() -> Self {
        let mut res = HttpResponse::new(426, "text/plain", &b"WebSocket upgrade required\n"[..]);
        res.headers.push(("Upgrade".into(), "websocket".into()));
        res.headers
            .push(("Sec-WebSocket-Version".into(), "13".into()));
        res
    }

    /// `404 Not Found`.
    pub fn not_found() -> Self {
        HttpResponse::new(404, "text/plain", &b"not found\n"[..])
    }

    /// Writes the response; for a `HEAD` request (`head_only`), without its body.
    pub(crate) fn write(&self, out: &mut Vec<u8>, head_only: bool) {
        use std::io::Write as _;
        let valid = |s: &str| !s.bytes().any(|b| b == b'\r' || b == b'\n');
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason_phrase(self.status),
            if valid(&self.content_type) {
                &self.content_type
            } else {
                "text/plain"
            },
            self.body.len()
        );
        for (name, value) in &self.headers {
            if valid(name) && valid(value) {
                let _ = write!(out, "{name}: {value}\r\n");
            }
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

/// Which timer ended a connection.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// No bytes (not even a pong to the keepalive ping) within the idle timeout.
    Idle,
    /// The peer did not answer our close frame in time.
    CloseHandshake,
    /// The connection reached its maximum lifetime.
    Lifetime,
    /// A message (or frame) took longer than `message_timeout` to arrive whole.
    Message,
}

/// Why a connection ended, given to [`Handler::on_close`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason<'a> {
    /// The peer sent a close frame (its code and reason); the echo is on its way.
    Remote {
        /// The peer's code, `None` for an empty close frame.
        code: Option<CloseCode>,
        /// The peer's reason text.
        reason: &'a str,
    },
    /// We closed (through [`Outbox::close`] or [`Handle::close`]) and the peer answered.
    Local(CloseCode),
    /// The peer broke the protocol; we sent the close code of the error.
    Protocol(ProtocolError),
    /// A timer ran out.
    Timeout(Timeout),
    /// The socket failed.
    Io(io::ErrorKind),
    /// TLS failed: a bad record or an alert from the peer; the text is the TLS library's
    /// description. (TCP closed without `close_notify` is an end of stream, as over plain TCP:
    /// [`Disconnected`](Self::Disconnected) for an open connection.)
    Tls(&'a str),
    /// The peer closed TCP without a close frame (1006).
    Disconnected,
    /// The server is shutting down.
    Shutdown,
    /// The send queue went over its limit with [`BackpressurePolicy::Close`](crate::BackpressurePolicy::Close).
    Backpressure,
    /// A callback of the application panicked for this connection: it was closed with 1011
    /// (the panic is counted in [`Stats::handler_panics`](crate::Stats::handler_panics) and
    /// logged), and the worker went on.
    HandlerPanic,
}

/// Why a send failed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The connection is closing or closed.
    Closed,
    /// The queue is over the backpressure limit (policy `Fail`).
    Backpressure,
    /// A ping or pong payload over 125 bytes.
    ControlTooLong,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Closed => "connection closed",
            SendError::Backpressure => "send queue over its limit",
            SendError::ControlTooLong => "control payload over 125 bytes",
        })
    }
}

impl std::error::Error for SendError {}

/// Sends to the connection whose event is being handled (and reaches others through
/// [`Outbox::handle`]).
pub struct Outbox<'a> {
    pub(crate) id: ConnId,
    pub(crate) sink: &'a mut dyn Sink,
    pub(crate) handle: &'a Handle,
}

impl fmt::Debug for Outbox<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The worker side of an [`Outbox`].
pub(crate) trait Sink {
    /// Sends `msg`: `Ok(true)` when queued, `Ok(false)` when dropped by the backpressure
    /// policy `Drop`.
    fn send(&mut self, msg: Message<'_>) -> Result<bool, SendError>;
    fn close(&mut self, code: CloseCode, reason: &str);
    fn buffered_amount(&self) -> usize;
    /// Subscribes this connection; `None` takes the policy from the server's backpressure
    /// policy.
    fn subscribe(
        &mut self,
        id: ConnId,
        pattern: &str,
        policy: Option<SlowConsumer>,
    ) -> Result<bool, TopicError>;
    fn unsubscribe(&mut self, id: ConnId, pattern: &str) -> bool;
    fn is_subscribed(&self, id: ConnId, topic: &str) -> bool;
    /// Publishes: to this worker's subscribers after this connection's read, to the others through
    /// their channels.
    fn publish(&mut self, id: ConnId, handle: &Handle, p: Publication) -> Result<(), PublishError>;
}

impl Outbox<'_> {
    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Queues a message; frames queued in one loop turn leave in one write.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] after a close, [`SendError::Backpressure`] when the queue is over
    /// its limit and the policy is `Fail`, [`SendError::ControlTooLong`] for a ping or pong over
    /// 125 bytes.
    pub fn send(&mut self, msg: Message<'_>) -> Result<(), SendError> {
        self.sink.send(msg).map(|_| ())
    }

    /// Sends `msg` and says what became of it, dropped by the policy `Drop` included.
    pub fn send_outcome(&mut self, msg: Message<'_>) -> SendOutcome {
        match self.sink.send(msg) {
            Ok(true) => SendOutcome::Queued,
            Ok(false) => SendOutcome::Dropped,
            Err(SendError::Backpressure) => SendOutcome::Backpressure,
            Err(SendError::ControlTooLong) => SendOutcome::ControlTooLong,
            Err(SendError::Closed) => SendOutcome::Closed,
        }
    }

    /// Starts the closing handshake with `code` and `reason`.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        self.sink.close(code, reason);
    }

    /// Bytes queued for this connection and not yet taken by the kernel.
    pub fn buffered_amount(&self) -> usize {
        self.sink.buffered_amount()
    }

    /// The server's handle: send to other connections, broadcast, shut down.
    pub fn handle(&self) -> &Handle {
        self.handle
    }

    /// Subscribes this connection to `pattern`, with the slow-consumer policy that matches the
    /// server's backpressure policy (`Fail`, `Drop` or `Close`); `Ok(false)` when it was
    /// subscribed already. See [`subscribe_with`](Self::subscribe_with).
    ///
    /// # Errors
    ///
    /// A [`TopicError`] for a pattern that is not valid.
    pub fn subscribe(&mut self, pattern: &str) -> Result<bool, TopicError> {
        self.sink.subscribe(self.id, pattern, None)
    }

    /// Subscribes this connection to `pattern`, with `policy` for when it cannot keep up;
    /// `Ok(false)` when it was subscribed already (the policy is replaced).
    ///
    /// `pattern` is a topic in the NATS subject syntax: tokens separated by `.`, none empty, no
    /// whitespace, at most 256 bytes (`prices.EUR.USD`); a subscription may use the wildcards
    /// `*` (one token: `prices.*.USD`) and `>` (one or more tokens, last: `prices.>`). A
    /// connection gets one copy of a publish even when several of its subscriptions match; the
    /// first that matches (an exact one before patterns) gives the policy. A connection leaves
    /// its topics when it ends.
    ///
    /// # Errors
    ///
    /// A [`TopicError`] for a pattern that is not valid.
    pub fn subscribe_with(
        &mut self,
        pattern: &str,
        policy: SlowConsumer,
    ) -> Result<bool, TopicError> {
        self.sink.subscribe(self.id, pattern, Some(policy))
    }

    /// Unsubscribes this connection from `pattern` (the text it subscribed with); `false` when
    /// it was not subscribed.
    pub fn unsubscribe(&mut self, pattern: &str) -> bool {
        self.sink.unsubscribe(self.id, pattern)
    }

    /// Publishes `msg` to every subscriber of `topic` on every worker, this connection
    /// included when it subscribed: its own copy is sent at once, in order with what this
    /// callback sends, the other subscribers of this worker get theirs right after this read
    /// (or at the end of the loop turn), those of other workers through one command per worker. The frame is encoded once
    /// and shared. [`Handle::publish_tracked`] reports outcomes.
    ///
    /// # Errors
    ///
    /// As [`Handle::publish`].
    pub fn publish(&mut self, topic: &str, msg: Message<'_>) -> Result<(), PublishError> {
        let p = Publication::new(topic, msg)?;
        // Refused before its own copy goes: a message reaches everyone or no one.
        self.handle.admit(&p)?;
        if self.sink.is_subscribed(self.id, topic) {
            let _ = self.sink.send(msg);
        }
        self.sink.publish(self.id, self.handle, p)
    }

    /// Publishes `msg` to every subscriber of `topic` but this connection (a chat room).
    ///
    /// # Errors
    ///
    /// As [`Handle::publish`].
    pub fn publish_to_others(&mut self, topic: &str, msg: Message<'_>) -> Result<(), PublishError> {
        let p = Publication::new(topic, msg)?;
        self.sink.publish(self.id, self.handle, p)
    }
}
