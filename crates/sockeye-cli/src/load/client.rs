//! One client connection: its socket, the sockeye-proto client state machine, and what the run
//! does on top: the echo flow (what is outstanding, what to send next) or a fanout [`Peer`].
//!
//! IO follows the edge-triggered rules of `mio`: read until `WouldBlock` or a short read (at
//! most [`MAX_READS_PER_TURN`] reads, then the engine comes back next turn), one write per turn
//! of whatever the output queue holds, the rest on the next `WRITABLE`. Over TLS the same
//! rules hold for the plaintext ([`Stream`]); the connection opens only once the upgrade has
//! completed over TLS.
//!
//! Modules: [`echo`] (the echo flow), [`fail`] (why a connection ends early).

mod echo;
mod fail;

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use sockeye_deflate::DeflateConfig;
use sockeye_deflate::PerMessageDeflate;
use sockeye_proto::handshake::{ClientHandshake, ClientRequest, OpenError};
use sockeye_proto::mask::SeededMasks;
use sockeye_proto::{CloseCode, Config, Connection, Event, Message, State};

pub(super) use self::echo::Flow;
pub(super) use self::fail::Fail;
use super::fanout::{Peer, Setup};
use super::payload::Payload;
use super::report::{Stats, Traffic};
use super::stream::{Connector, Input, Stream};
use sockeye_client::WsUrl;

/// Reads per connection per loop turn before the engine serves the others.
const MAX_READS_PER_TURN: usize = 16;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// TCP connect in progress.
    Connecting,
    /// Upgrade request sent, waiting for the 101.
    Handshaking,
    /// WebSocket open.
    Open,
    /// Our close is sent; waiting for its echo and the server's TCP close.
    Closing,
}

/// When echoes count and when new messages go out.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    /// Echoes received from here on count (the end of the warmup).
    pub(super) count_from: Instant,
    /// Nothing counts or is sent from here on.
    pub(super) end: Instant,
    /// Whether each verified echo is answered with the next message.
    pub(super) sending: bool,
}

impl Window {
    /// A window in which nothing counts and nothing is sent.
    pub(super) fn closed(now: Instant) -> Self {
        Window {
            count_from: now,
            end: now,
            sending: false,
        }
    }
}

/// What the per-connection work borrows from its thread.
#[derive(Debug)]
pub(super) struct Ctx<'a> {
    /// The message template and verifier.
    pub(super) payload: &'a mut Payload,
    /// The thread's counts.
    pub(super) stats: &'a mut Stats,
    /// The counting window.
    pub(super) window: Window,
    /// The URL (for the upgrade request and its check).
    pub(super) url: &'a WsUrl,
    /// The fanout publishers' URL, when not `url` (`--publish-url`).
    pub(super) publish_url: Option<&'a WsUrl>,
    /// The `Sec-WebSocket-Extensions` offer of the upgrade request (empty for none).
    pub(super) offer: &'a str,
    /// The fanout run's layout (fanout runs only).
    pub(super) fanout: Option<&'a Setup>,
}

/// What one turn on a connection produced.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Turn {
    /// The handshake completed in this turn.
    pub(super) established: bool,
    /// The read budget ran out with bytes maybe left: serve this connection again next turn.
    pub(super) again: bool,
    /// The closing handshake is over (the server closed TCP): drop the connection.
    pub(super) finished: bool,
}

/// The outcome of one read.
enum Io {
    /// `len` bytes (carried ones included) are at the front of the read buffer; `more` when
    /// more may be waiting (the read filled the buffer, or TLS may hold more records).
    Data {
        len: usize,
        more: bool,
    },
    Eof,
    Blocked,
}

/// What a connection does with the messages it gets.
#[derive(Debug)]
pub(super) enum Role {
    /// Echo and latency runs: check each echo against what was sent, send the next.
    Echo(Flow),
    /// Fanout runs: subscribe, publish, check deliveries.
    Fanout(Box<Peer>),
}

/// Where the messages of a connection go: its state machine and output queue, with the count
/// of payload bytes sent.
#[derive(Debug)]
pub(super) struct Outbox<'a> {
    ws: &'a mut Connection<PerMessageDeflate>,
    out: &'a mut Vec<u8>,
    traffic: &'a mut Traffic,
}

impl Outbox<'_> {
    /// Queues a text message.
    ///
    /// # Errors
    ///
    /// When the connection refuses to send (a close is already queued) or compression fails.
    pub(super) fn send_text(&mut self, text: &str) -> Result<(), Fail> {
        self.ws
            .send(Message::Text(text), self.out)
            .map_err(Fail::Send)?;
        self.traffic.payload_sent += text.len() as u64;
        Ok(())
    }

    /// Bytes queued and not yet taken by the socket (at most; what a partial write took may be
    /// counted).
    pub(super) fn backlog(&self) -> usize {
        self.out.len()
    }
}

/// One connection.
#[derive(Debug)]
pub(super) struct Client {
    stream: Stream,
    phase: Phase,
    /// What the upgrade request needs, until it is written.
    opening: Option<Box<Opening>>,
    /// The opening handshake, from the request written to the server's verified answer
    /// (sockeye-proto's, as every client of the repository's).
    handshake: Option<Box<ClientHandshake<PerMessageDeflate>>>,
    /// The connection: an inert stand-in until the handshake hands over the real one.
    ws: Connection<PerMessageDeflate>,
    /// Unconsumed input, put in front of the next read: a partial response head, then at most
    /// a frame header or a control frame.
    carry: Vec<u8>,
    /// The reassembly buffer for messages that span frames or reads.
    msg: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    started: Instant,
    role: Role,
    /// Bytes on the wire and in messages, both ways.
    traffic: Traffic,
    close_echoed: bool,
}

impl Client {
    /// Starts a TCP connect to `addr` (non-blocking) with `TCP_NODELAY`, registered for both
    /// directions under `token`, with TLS over it when `connector` says so.
    ///
    /// # Errors
    ///
    /// [`Fail::Connect`] when the socket cannot be created or registered, [`Fail::Tls`] when
    /// the TLS session cannot start.
    pub(super) fn connect(
        addr: SocketAddr,
        role: Role,
        opening: Opening,
        connector: &Connector,
        registry: &Registry,
        token: Token,
    ) -> Result<Self, Fail> {
        let mut tcp = TcpStream::connect(addr).map_err(Fail::Connect)?;
        tcp.set_nodelay(true).map_err(Fail::Connect)?;
        registry
            .register(&mut tcp, token, Interest::READABLE | Interest::WRITABLE)
            .map_err(Fail::Connect)?;
        let stream = connector.wrap(tcp).map_err(Fail::stream)?;
        Ok(Client {
            stream,
            phase: Phase::Connecting,
            ws: Connection::client(
                opening.config,
                PerMessageDeflate::client(DeflateConfig::default()),
                opening.seed,
            ),
            opening: Some(Box::new(opening)),
            handshake: None,
            carry: Vec::new(),
            msg: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            started: Instant::now(),
            role,
            traffic: Traffic::default(),
            close_echoed: false,
        })
    }

    /// The connection's phase.
    pub(super) fn phase(&self) -> Phase {
        self.phase
    }

    /// When the TCP connect started.
    pub(super) fn started(&self) -> Instant {
        self.started
    }

    /// Whether our close was echoed.
    pub(super) fn close_echoed(&self) -> bool {
        self.close_echoed
    }

    /// The bytes this connection wrote and read, on the wire and in messages.
    pub(super) fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// The URL this connection upgrades to: the publishers' own in a fanout run with one.
    fn url<'c>(&self, ctx: &Ctx<'c>) -> &'c WsUrl {
        match (ctx.publish_url, &self.role) {
            (Some(url), Role::Fanout(peer)) if peer.is_publisher() => url,
            _ => ctx.url,
        }
    }

    /// The fanout peer of this connection (`None` in echo runs).
    pub(super) fn peer(&self) -> Option<&Peer> {
        match &self.role {
            Role::Fanout(peer) => Some(peer),
            Role::Echo(_) => None,
        }
    }

    /// Runs `f` on the fanout peer with the connection's outbox, then writes what it queued;
    /// `Ok(None)` in echo runs.
    ///
    /// # Errors
    ///
    /// What `f` returns, or a failed write.
    pub(super) fn with_peer<T>(
        &mut self,
        f: impl FnOnce(&mut Peer, &mut Outbox<'_>) -> Result<T, Fail>,
    ) -> Result<Option<T>, Fail> {
        let Role::Fanout(peer) = &mut self.role else {
            return Ok(None);
        };
        let mut outbox = Outbox {
            ws: &mut self.ws,
            out: &mut self.out,
            traffic: &mut self.traffic,
        };
        let value = f(peer, &mut outbox)?;
        self.flush()?;
        Ok(Some(value))
    }

    /// Serves a readiness event (or a turn left over from the read budget).
    ///
    /// # Errors
    ///
    /// Why the connection must end.
    pub(super) fn on_ready(
        &mut self,
        readable: bool,
        rbuf: &mut Vec<u8>,
        ctx: &mut Ctx<'_>,
    ) -> Result<Turn, Fail> {
        let mut turn = Turn::default();
        match self.phase {
            Phase::Connecting => {
                if self.is_connected()? {
                    self.queue_request(self.url(ctx), ctx.offer)?;
                    self.phase = Phase::Handshaking;
                    self.flush()?;
                }
                return Ok(turn);
            }
            Phase::Handshaking => {
                self.flush()?;
                if !readable || !self.read_handshake(rbuf, ctx, &mut turn)? {
                    return Ok(turn);
                }
            }
            Phase::Open | Phase::Closing if readable => self.read_frames(rbuf, ctx, &mut turn)?,
            Phase::Open | Phase::Closing => {}
        }
        self.ws.poll_transmit(&mut self.out);
        self.flush()?;
        Ok(turn)
    }

    /// Sends `n` messages now (the start of the measurement of an echo run).
    ///
    /// # Errors
    ///
    /// When the connection refuses to send or the write fails.
    pub(super) fn send_messages(
        &mut self,
        n: usize,
        payload: &mut Payload,
        now: Instant,
    ) -> Result<(), Fail> {
        let Role::Echo(flow) = &mut self.role else {
            return Ok(());
        };
        let mut outbox = Outbox {
            ws: &mut self.ws,
            out: &mut self.out,
            traffic: &mut self.traffic,
        };
        for _ in 0..n {
            flow.send_next(now, &mut outbox, payload)?;
        }
        self.flush()
    }

    /// Starts the closing handshake with 1000 (normal closure).
    ///
    /// # Errors
    ///
    /// When the close cannot be queued or written.
    pub(super) fn start_close(&mut self, now: Instant) -> Result<(), Fail> {
        self.phase = Phase::Closing;
        if self.ws.state() == State::Open {
            self.ws
                .close(CloseCode::NORMAL, "", now)
                .map_err(Fail::Send)?;
        }
        self.ws.poll_transmit(&mut self.out);
        self.flush()
    }

    /// Writes what is owed (a close after a protocol error, a close echo) once, ignoring errors:
    /// the connection is being dropped.
    pub(super) fn flush_best_effort(&mut self) {
        self.ws.poll_transmit(&mut self.out);
        let _ = self.flush();
    }

    /// Sends TLS `close_notify` (best effort) and removes the socket from the poller; dropping
    /// the client then closes it.
    pub(super) fn deregister(&mut self, registry: &Registry) {
        self.stream.close_notify();
        let _ = registry.deregister(self.stream.tcp_mut());
    }

    /// Whether the non-blocking connect finished (`Ok(false)`: not yet, a spurious wakeup).
    fn is_connected(&mut self) -> Result<bool, Fail> {
        if let Some(err) = self.stream.tcp().take_error().map_err(Fail::Connect)? {
            return Err(Fail::Connect(err));
        }
        match self.stream.tcp().peer_addr() {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(err) => Err(Fail::Connect(err)),
        }
    }

    fn queue_request(&mut self, url: &WsUrl, offer: &str) -> Result<(), Fail> {
        let Some(opening) = self.opening.take() else {
            return Ok(());
        };
        let Opening {
            key,
            ext,
            config,
            seed,
        } = *opening;
        let request = ClientRequest {
            extensions: offer.as_bytes(),
            ..ClientRequest::new(&url.authority, &url.target, &key)
        };
        let masks = Box::new(SeededMasks::new(seed));
        let handshake =
            ClientHandshake::new(&request, ext, config, masks).map_err(Fail::Request)?;
        self.out.extend_from_slice(handshake.request());
        self.handshake = Some(Box::new(handshake));
        Ok(())
    }

    /// Reads the response head; `true` once the 101 is verified (and any frames that followed
    /// it are processed).
    fn read_handshake(
        &mut self,
        rbuf: &mut Vec<u8>,
        ctx: &mut Ctx<'_>,
        turn: &mut Turn,
    ) -> Result<bool, Fail> {
        for _ in 0..MAX_READS_PER_TURN {
            let (len, more) = match self.read_once(rbuf)? {
                Io::Data { len, more } => (len, more),
                Io::Eof if self.stream.is_handshaking() => {
                    return Err(Fail::Tls(
                        "the server closed the connection during the TLS handshake".into(),
                    ));
                }
                Io::Eof => return Err(Fail::HandshakeEof),
                Io::Blocked => return Ok(false),
            };
            let Some(handshake) = self.handshake.as_deref_mut() else {
                return Err(Fail::HandshakeEof);
            };
            // The handshake keeps what it is given until the answer is whole; the frames that
            // follow the answer come back as its leftover.
            let done = handshake
                .receive(&rbuf[..len])
                .map_err(|e| open_failure(e, handshake.offer()))?;
            self.carry.clear();
            if !done {
                continue;
            }
            let Some(handshake) = self.handshake.take() else {
                return Err(Fail::HandshakeEof);
            };
            let offer = handshake.offer().to_owned();
            let mut opened = handshake.finish().map_err(|e| open_failure(e, &offer))?;
            let negotiated = opened.connection.extension().is_negotiated();
            self.ws = opened.connection;
            ctx.stats.deflate_negotiated += u64::from(negotiated);
            let now = Instant::now();
            self.phase = Phase::Open;
            turn.established = true;
            ctx.stats.established += 1;
            Stats::record(&mut ctx.stats.handshake, now - self.started);
            let used = self.process(&mut opened.leftover, now, ctx)?;
            self.carry.extend_from_slice(&opened.leftover[used..]);
            // Bytes may wait behind the response: read on next turn, as no edge may announce
            // them.
            turn.again = more;
            return Ok(true);
        }
        turn.again = true;
        Ok(false)
    }

    /// Reads and handles frames until the socket is drained or the read budget is spent.
    fn read_frames(
        &mut self,
        rbuf: &mut Vec<u8>,
        ctx: &mut Ctx<'_>,
        turn: &mut Turn,
    ) -> Result<(), Fail> {
        for _ in 0..MAX_READS_PER_TURN {
            let (len, more) = match self.read_once(rbuf)? {
                Io::Data { len, more } => (len, more),
                Io::Eof if self.phase == Phase::Closing => {
                    turn.finished = true;
                    return Ok(());
                }
                Io::Eof => return Err(Fail::Eof),
                Io::Blocked => return Ok(()),
            };
            let used = self.process(&mut rbuf[..len], Instant::now(), ctx)?;
            self.carry.clear();
            self.carry.extend_from_slice(&rbuf[used..len]);
            if !more {
                return Ok(());
            }
        }
        turn.again = true;
        Ok(())
    }

    /// One read into `rbuf` after the carried bytes.
    fn read_once(&mut self, rbuf: &mut Vec<u8>) -> Result<Io, Fail> {
        let carried = self.carry.len();
        // Room for a useful read after the carry (which is small once the handshake is done).
        if rbuf.len() < carried + 4096 {
            rbuf.resize(carried + 4096, 0);
        }
        rbuf[..carried].copy_from_slice(&self.carry);
        match self
            .stream
            .read(&mut rbuf[carried..])
            .map_err(Fail::stream)?
        {
            Input::Data { len, drained } => {
                self.traffic.wire_read += len as u64;
                Ok(Io::Data {
                    len: carried + len,
                    more: !drained,
                })
            }
            Input::Eof => Ok(Io::Eof),
            Input::Empty => Ok(Io::Blocked),
        }
    }

    /// Feeds `input` to the state machine until it is blocked (call order step 1), handling each
    /// event; returns the bytes consumed.
    fn process(
        &mut self,
        input: &mut [u8],
        now: Instant,
        ctx: &mut Ctx<'_>,
    ) -> Result<usize, Fail> {
        let Client {
            ws,
            msg,
            out,
            role,
            traffic,
            phase,
            close_echoed,
            ..
        } = self;
        let mut pos = 0;
        loop {
            let read = ws
                .handle_read(&mut input[pos..], msg, now)
                .map_err(Fail::Protocol)?;
            pos += read.consumed;
            let Some(event) = read.event else {
                if read.consumed == 0 {
                    return Ok(pos);
                }
                continue;
            };
            match event {
                Event::Text(text) => {
                    traffic.payload_received += text.len() as u64;
                    let mut outbox = Outbox { ws, out, traffic };
                    match role {
                        Role::Echo(flow) => {
                            flow.on_echo(text.as_bytes(), true, now, &mut outbox, ctx)?;
                        }
                        Role::Fanout(peer) => peer.on_text(text, now, &mut outbox, ctx)?,
                    }
                }
                Event::Binary(bytes) => {
                    traffic.payload_received += bytes.len() as u64;
                    let mut outbox = Outbox { ws, out, traffic };
                    match role {
                        Role::Echo(flow) => flow.on_echo(bytes, false, now, &mut outbox, ctx)?,
                        Role::Fanout(peer) => peer.on_binary(ctx),
                    }
                }
                Event::Ping(_) | Event::Pong(_) => {}
                Event::Close(_) if *phase == Phase::Closing => *close_echoed = true,
                Event::Close(frame) => {
                    return Err(Fail::ServerClosed(frame.code, frame.reason.to_owned()));
                }
            }
        }
    }

    /// One write of the output queue (after the TLS records still pending, if any).
    pub(super) fn flush(&mut self) -> Result<(), Fail> {
        // Records the socket did not take go first; while some wait, the socket is full.
        if !self.stream.flush_pending().map_err(Fail::stream)? {
            return Ok(());
        }
        if self.out_pos < self.out.len() {
            let n = self
                .stream
                .write(&self.out[self.out_pos..])
                .map_err(Fail::stream)?;
            self.out_pos += n;
            self.traffic.wire_written += n as u64;
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        Ok(())
    }
}

/// What one connection's upgrade needs: its key, its extension (unnegotiated until the
/// server's answer; inert without `--deflate`), limits raised to fit `size`-byte messages, and
/// the seed of its mask keys.
#[derive(Debug)]
pub(super) struct Opening {
    key: [u8; 24],
    ext: PerMessageDeflate,
    config: Config,
    seed: u64,
}

impl Opening {
    /// The opening of a connection for `size`-byte messages.
    pub(super) fn new(key: [u8; 24], size: usize, ext: PerMessageDeflate, seed: u64) -> Self {
        let mut config = Config::default();
        config.max_message_size = config.max_message_size.max(size);
        // A compressed echo of incompressible bytes is a little longer than the message.
        let frame = size as u64 + (size as u64 >> 8) + 1024;
        config.max_frame_size = config.max_frame_size.max(frame);
        Opening {
            key,
            ext,
            config,
            seed,
        }
    }
}

/// The failure for a refused answer (`offer` is the extension offer, for the message).
fn open_failure(error: OpenError, offer: &str) -> Fail {
    match error {
        OpenError::Response(e) => Fail::Handshake(e),
        OpenError::Extension(error) => Fail::Deflate {
            error,
            offer: offer.to_owned(),
        },
        OpenError::Incomplete => Fail::HandshakeEof,
        // A future kind of refusal: reported as the answer being wrong.
        _ => Fail::HandshakeEof,
    }
}
