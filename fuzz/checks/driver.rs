//! The engine: a worker's connection driver (`sockeye_server::fuzzing::Engine`) on a virtual
//! clock, its clients scripted by the input, step by step.
//!
//! `data[0..4]` configure the worker: the backpressure policy (Fail, Drop, Close 1008) and
//! limit (64 B to 16 KiB), echo, permessage-deflate, the idle, message and lifetime timers, the
//! receive buffer and read budget, the message size limit. The rest is a list of steps (see
//! `step`): clients connect (their upgrade request is queued to send, permessage-deflate
//! offered or not), send what they have queued in pieces, queue frames (masked, whole or
//! fragmented, compressed through a client `Connection`) or raw bytes, hang up; sockets take
//! only so many bytes, or break; the clock moves; the application sends, closes, subscribes
//! (with the server's policy, or conflating: latest value per topic) and publishes, in
//! callbacks or as a `Handle`'s commands (send, a job, broadcast, close). At the end every
//! socket takes everything, the server reads what is left, every client hangs up and the clock
//! runs out.
//!
//! After each step: the handler heard of a connection only between its `on_open` and its one
//! `on_close`; each client's bytes are a valid `101` its request accepts (or another status) and
//! then a valid server frame stream (unmasked, whole frames, text UTF-8) holding at most one close
//! frame, with nothing after it; the messages a client gets are those the application queued for
//! it, in order, skipping only publishes the report does not vouch for, but for publishes through a
//! conflating subscription: of those, each topic's arrive in publish order, any of them skipped, in
//! any order with the rest (conflation reorders across topics); whatever the policies, a topic's
//! publishes arrive in publish order; no send queue holds more than the limit plus the largest
//! message sent to it plus the pongs of one turn's reads; no callback panicked. At the end, every
//! open connection got every message queued for it and the latest publish of each topic it got
//! through a conflating subscription, and every opened connection was closed exactly once.
//!
//! Shared by `fuzz/fuzz_targets/driver.rs` and the seed replay in `tests/fuzz_seeds.rs`.
use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use sockeye_deflate::{DeflateConfig, PerMessageDeflate};
use sockeye_proto::connection::write_frame;
use sockeye_proto::extension::{ParamWriter, parse_offers};
use sockeye_proto::handshake::{ClientRequest, Limits, ResponseError, parse_response};
use sockeye_proto::{
    CloseCode, Config, Connection, Event, Extension, Message, OpCode, Rsv, Status,
};
use sockeye_server::fuzzing::{ConnState, Engine, Note};
use sockeye_server::{BackpressurePolicy, SendOutcome, ServerConfig, SlowConsumer};

type ClientConn = Connection<Option<Box<PerMessageDeflate>>>;

const KEY: &[u8; 24] = b"dGhlIHNhbXBsZSBub25jZQ==";
const TOPICS: [&str; 3] = ["a", "b.c", "d"];
const MAX_CLIENTS: usize = 6;
/// Room for an HTTP answer waiting in a queue, ahead of the frames.
const HTTP_SLACK: usize = 1024;

/// A message a client should get; `certain` unless a publish report does not vouch for it.
#[derive(Debug)]
struct Expected {
    certain: bool,
    text: bool,
    payload: Vec<u8>,
}

/// The publishes on one topic to a client that took them with a conflating subscription: it
/// gets a subsequence of them, in publish order, and the last one once its queue empties.
#[derive(Default)]
struct Lane {
    /// `(text, payload)` in publish order.
    sent: Vec<(bool, Vec<u8>)>,
    /// How many of `sent` are behind the last one received (received or skipped).
    got: usize,
}

impl Lane {
    /// Whether `payload` is a publish of a conflating subscription; it must come after those
    /// of its topic received before it.
    fn take(lanes: &mut [Lane], text: bool, payload: &[u8]) -> bool {
        // Application payloads start with '#' (see `Run::payload`); the client's own never do.
        if payload.first() != Some(&b'#') {
            return false;
        }
        for (t, lane) in lanes.iter_mut().enumerate() {
            let found = lane
                .sent
                .iter()
                .position(|(x, p)| *x == text && p == payload);
            if let Some(at) = found {
                assert!(
                    at >= lane.got,
                    "topic {t}: {payload:?} again or before a later publish"
                );
                lane.got = at + 1;
                return true;
            }
        }
        false
    }
}

/// What the check knows of one client.
#[derive(Default)]
struct Client {
    /// Bytes the client will send, in order.
    outbound: Vec<u8>,
    /// The `Sec-WebSocket-Extensions` offer of its request (empty for none).
    offer: String,
    /// The server's bytes not decoded yet.
    inbound: Vec<u8>,
    /// The client's end of the protocol, once a `101` arrived.
    conn: Option<ClientConn>,
    msg: Vec<u8>,
    /// The server answered with another status.
    refused: bool,
    /// The server's close frame arrived.
    got_close: bool,
    expected: Vec<Expected>,
    /// Expected messages matched (or skipped) so far.
    matched: usize,
    /// The largest frame the application queued for the client.
    largest: usize,
    /// The last message the handler got from it (to echo).
    last: Option<(bool, Vec<u8>)>,
    opened: bool,
    closed: bool,
    subscribed: [bool; TOPICS.len()],
    /// Whether the subscription to each topic conflates (latest value only).
    conflating: [bool; TOPICS.len()],
    /// Per topic, the publishes that reached it through a conflating subscription.
    lanes: [Lane; TOPICS.len()],
    /// The topic of each publish it was subscribed to, by serial.
    topic_of: HashMap<u32, usize>,
    /// Per topic, the serial of the last publish received.
    last_serial: [u32; TOPICS.len()],
}

impl Client {
    fn request(&self) -> ClientRequest<'_> {
        ClientRequest {
            extensions: self.offer.as_bytes(),
            ..ClientRequest::new("h", "/chat", KEY)
        }
    }

    /// A publish on topic `t` through a conflating subscription.
    fn expect_latest(&mut self, t: usize, text: bool, payload: &[u8]) {
        self.largest = self.largest.max(payload.len() + 14);
        self.lanes[t].sent.push((text, payload.to_vec()));
    }

    fn expect(&mut self, certain: bool, text: bool, payload: &[u8]) {
        self.largest = self.largest.max(payload.len() + 14);
        let payload = payload.to_vec();
        self.expected.push(Expected {
            certain,
            text,
            payload,
        });
    }

    /// Takes in what the server wrote: the answer to the upgrade, then frames.
    fn absorb(&mut self, bytes: &[u8]) {
        assert!(!self.got_close || bytes.is_empty(), "bytes after the close");
        if self.refused {
            return;
        }
        self.inbound.extend_from_slice(bytes);
        if self.conn.is_none() {
            let limits = Limits::default();
            let head_len = match parse_response(&self.inbound, &limits, &self.request()) {
                Ok(Status::Incomplete { .. }) => return,
                Ok(Status::Complete(res)) => {
                    let mut ext = None;
                    if let Some(element) = parse_offers(res.extensions).next() {
                        let mut deflate = PerMessageDeflate::client(DeflateConfig::default());
                        deflate.accept_response(&element.unwrap()).unwrap();
                        ext = Some(Box::new(deflate));
                    }
                    self.conn = Some(Connection::client(Config::default(), ext, 0x5eed));
                    res.head_len
                }
                Err(ResponseError::Status(status)) => {
                    assert_ne!(status, 101);
                    self.refused = true;
                    return;
                }
                Err(err) => panic!("an invalid answer: {err:?}"),
            };
            self.inbound.drain(..head_len);
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut off = 0;
        while off < self.inbound.len() {
            let now = Instant::now();
            let read = conn.handle_read(&mut self.inbound[off..], &mut self.msg, now);
            let read = read.unwrap_or_else(|e| panic!("invalid server frames: {e}"));
            off += read.consumed;
            let (text, payload) = match read.event {
                None if read.consumed == 0 => break,
                Some(Event::Text(text)) => (true, text.as_bytes()),
                Some(Event::Binary(bytes)) => (false, bytes),
                Some(Event::Close(_)) => {
                    self.got_close = true;
                    assert_eq!(off, self.inbound.len(), "bytes after the close frame");
                    continue;
                }
                _ => continue,
            };
            if let Some(serial) = serial(payload) {
                if let Some(&t) = self.topic_of.get(&serial) {
                    // Whatever the policies were, one topic's publishes arrive in order.
                    assert!(
                        serial > self.last_serial[t],
                        "topic {t}: #{serial} after #{}",
                        self.last_serial[t]
                    );
                    self.last_serial[t] = serial;
                }
            }
            if Lane::take(&mut self.lanes, text, payload) {
                continue;
            }
            loop {
                let Some(next) = self.expected.get(self.matched) else {
                    panic!("a message nobody sent: {text} {payload:?}");
                };
                self.matched += 1;
                if next.text == text && next.payload == payload {
                    break;
                }
                assert!(
                    !next.certain,
                    "lost or reordered: {next:?}, got {payload:?}"
                );
            }
        }
        self.inbound.drain(..off);
        conn.poll_transmit(&mut self.outbound);
    }
}

/// The serial of an application's payload (`#serial:`, see `Run::payload`).
fn serial(payload: &[u8]) -> Option<u32> {
    let rest = payload.strip_prefix(b"#")?;
    let end = rest.iter().position(|&b| b == b':')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// The input, read a byte at a time (zeros past its end).
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    fn bytes(&mut self) -> &'a [u8] {
        let len = usize::from(self.byte()).min(self.0.len());
        let (bytes, rest) = self.0.split_at(len);
        self.0 = rest;
        bytes
    }
}

struct Run {
    engine: Engine,
    clients: Vec<Client>,
    /// Makes each application message unique, so that matching is exact.
    serial: u32,
}

impl Run {
    fn new(config: [u8; 4]) -> (Self, bool) {
        let [a, b, c, d] = config;
        let mut server = ServerConfig::new(([127, 0, 0, 1], 0).into());
        let bp = &mut server.backpressure;
        bp.limit = 64 * (usize::from(b) + 1);
        (bp.high_water, bp.low_water) = (bp.limit / 2, bp.limit / 8);
        bp.policy = match a % 3 {
            0 => BackpressurePolicy::Fail,
            1 => BackpressurePolicy::Drop,
            _ => BackpressurePolicy::Close(CloseCode::POLICY_VIOLATION),
        };
        if a & 8 != 0 {
            let mut deflate = DeflateConfig::default();
            deflate.server_no_context_takeover = a & 16 != 0;
            server.deflate = Some(deflate);
        }
        let secs = |on: bool, s: u64| on.then_some(Duration::from_secs(s));
        server.idle_timeout = secs(a & 32 != 0, 60);
        server.message_timeout = secs(a & 64 != 0, 30);
        server.max_lifetime = secs(a & 128 != 0, 300);
        server.handshake.max_head_len = 1024;
        server.recv_buffer = 2048 + 1024 * usize::from(c % 4);
        server.read_budget = usize::from(c >> 6) + 1;
        server.protocol.max_message_size = 128 << (d % 10);
        server.protocol.max_frame_size = server.protocol.max_message_size as u64;
        let run = Run {
            engine: Engine::new(server, a & 4 != 0),
            clients: Vec::new(),
            serial: 0,
        };
        (run, d & 8 != 0)
    }

    /// An application message: unique, with the input's bytes (see [`amplify`]).
    fn payload(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.serial += 1;
        let mut payload = format!("#{}:", self.serial).into_bytes();
        payload.extend_from_slice(&amplify(bytes));
        payload
    }

    /// Runs one step of the input.
    fn step(&mut self, input: &mut Input<'_>, deflate_offer: bool) {
        let op = input.byte() % 13;
        if op == 0 {
            let offer = input.byte() & 1 != 0 && deflate_offer;
            if self.clients.len() < MAX_CLIENTS {
                self.connect(offer);
            }
            return;
        }
        if self.clients.is_empty() {
            return;
        }
        let c = usize::from(input.byte()) % self.clients.len();
        match op {
            1 => {
                // 255: everything queued (a large message in one step).
                let n = match input.byte() {
                    255 => usize::MAX,
                    b => usize::from(b) + 1,
                };
                let out = &mut self.clients[c].outbound;
                let bytes: Vec<u8> = out.drain(..n.min(out.len())).collect();
                self.engine.receive(c, &bytes);
            }
            2 => self.frame(c, input),
            3 => self.clients[c].outbound.extend_from_slice(input.bytes()),
            4 => self.engine.room(
                c,
                match input.byte() {
                    0 => Some(0),
                    255 => None,
                    n => Some(usize::from(n) * 8),
                },
            ),
            5 => {
                let n = u64::from(input.byte());
                self.engine.advance(Duration::from_millis(n * n * 16));
            }
            6 => self.send(c, input),
            7 => {
                let code = [1000, 1001, 1008, 3000, 4999][usize::from(input.byte() % 5)];
                let reason = String::from_utf8_lossy(input.bytes()).into_owned();
                self.engine.close(c, CloseCode(code), &reason);
            }
            8 | 9 => {
                let b = input.byte();
                let t = usize::from(b) % TOPICS.len();
                if op == 8 {
                    // 0xc0 and up: a conflating subscription (else the server's policy).
                    let conflate = b >= 0xc0;
                    let added = if conflate {
                        self.engine
                            .subscribe_with(c, TOPICS[t], SlowConsumer::Conflate)
                    } else {
                        self.engine.subscribe(c, TOPICS[t])
                    };
                    if matches!(added, Some(Ok(_))) {
                        self.clients[c].subscribed[t] = true;
                        self.clients[c].conflating[t] = conflate;
                    }
                } else if self.engine.unsubscribe(c, TOPICS[t]).is_some() {
                    self.clients[c].subscribed[t] = false;
                }
            }
            10 => self.publish(c % TOPICS.len(), input),
            11 => self.engine.hang_up(c),
            _ => match input.byte() % 5 {
                0 => self.engine.break_socket(c),
                sub => self.command(c, sub, input),
            },
        }
    }

    /// A `Handle`'s command from another thread: send to one connection (1), a job that
    /// sends through the connection's outbox (2), broadcast (3), close (4).
    fn command(&mut self, c: usize, sub: u8, input: &mut Input<'_>) {
        let text = input.byte() & 1 == 0;
        let payload = self.payload(input.bytes());
        let lossy = String::from_utf8_lossy(&payload).into_owned();
        let (msg, payload) = if text {
            (Message::Text(&lossy), lossy.as_bytes())
        } else {
            (Message::Binary(&payload), &payload[..])
        };
        // The application learns an id in on_open: no command before it.
        if !self.clients[c].opened {
            return;
        }
        match sub {
            1 | 2 => {
                let certain = self.takes(c);
                let open = self.engine.state(c) == Some(ConnState::Open);
                if sub == 1 {
                    self.engine.command(c, msg, None);
                } else {
                    let found = self.engine.job(c, msg);
                    assert!(found || self.engine.state(c).is_none() || !open);
                }
                if open {
                    self.clients[c].expect(certain, text, payload);
                }
            }
            3 => {
                let open: Vec<(usize, bool)> = (0..self.clients.len())
                    .filter(|&c| self.engine.state(c) == Some(ConnState::Open))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .map(|c| (c, self.takes(c)))
                    .collect();
                self.engine.broadcast(msg);
                for (c, certain) in open {
                    self.clients[c].expect(certain, text, payload);
                }
            }
            _ => {
                let code = [1000, 1001, 4000][usize::from(input.byte() % 3)];
                self.engine.command(c, msg, Some((CloseCode(code), "bye")));
            }
        }
    }

    fn connect(&mut self, deflate: bool) {
        let mut client = Client::default();
        if deflate {
            let mut buf = [0u8; 128];
            let mut offer = ParamWriter::new(&mut buf);
            let ext = PerMessageDeflate::client(DeflateConfig::default());
            ext.write_offer(&mut offer).unwrap();
            let params = std::str::from_utf8(offer.as_bytes()).unwrap();
            client.offer = format!("permessage-deflate{params}");
        }
        let mut head = [0u8; 512];
        let len = client.request().encode(&mut head).unwrap();
        client.outbound = head[..len].to_vec();
        assert_eq!(self.engine.connect(), self.clients.len());
        self.clients.push(client);
    }

    /// Queues a frame of the client's: raw (any opcode, FIN or not, masked) or a whole message
    /// through its `Connection` (compressed when negotiated).
    fn frame(&mut self, c: usize, input: &mut Input<'_>) {
        let flags = input.byte();
        let mut payload = Cow::Borrowed(input.bytes());
        if matches!(flags % 8, 0 | 1 | 2 | 7) && payload.first() == Some(&b'#') {
            // The client's messages never start with '#', which marks the application's.
            payload.to_mut()[0] = b'%';
        }
        let client = &mut self.clients[c];
        let opcode = match flags % 8 {
            0 => OpCode::Text,
            1 => OpCode::Binary,
            2 => OpCode::Continuation,
            3 => OpCode::Ping,
            4 => OpCode::Pong,
            5 | 6 => OpCode::Close,
            _ => {
                if let Some(conn) = client.conn.as_mut() {
                    // Large messages too (echoed straight from their bytes): as `payload`.
                    let payload = &amplify(&payload);
                    let text = String::from_utf8_lossy(payload);
                    let msg = if flags & 8 != 0 {
                        Message::Text(&text)
                    } else {
                        Message::Binary(payload)
                    };
                    let _ = conn.send(msg, &mut client.outbound);
                }
                return;
            }
        };
        let payload = match flags % 8 {
            5 => &[0x03, 0xe8][..],
            3 | 4 | 6 => &payload[..payload.len().min(125)],
            _ => &payload[..],
        };
        let start = client.outbound.len();
        let mask = [flags, 0x5a, 0xa5, 0x3c];
        write_frame(&mut client.outbound, opcode, Rsv::NONE, payload, Some(mask));
        if flags & 16 != 0 {
            client.outbound[start] &= 0x7f; // FIN clear
        }
    }

    fn send(&mut self, c: usize, input: &mut Input<'_>) {
        let kind = input.byte() % 3;
        let payload = self.payload(input.bytes());
        let text = String::from_utf8_lossy(&payload).into_owned();
        let msg = match kind {
            0 => Message::Text(&text),
            1 => Message::Binary(&payload),
            _ => Message::Ping(&payload[..payload.len().min(126)]),
        };
        if self.engine.send(c, msg) == Some(SendOutcome::Queued) {
            match msg {
                Message::Text(text) => self.clients[c].expect(true, true, text.as_bytes()),
                Message::Binary(bytes) => self.clients[c].expect(true, false, bytes),
                _ => {}
            }
        }
    }

    fn publish(&mut self, t: usize, input: &mut Input<'_>) {
        let text = input.byte() & 1 == 0;
        let payload = self.payload(input.bytes());
        let lossy = String::from_utf8_lossy(&payload).into_owned();
        let (msg, payload) = if text {
            (Message::Text(&lossy), lossy.as_bytes())
        } else {
            (Message::Binary(&payload), &payload[..])
        };
        let subscribers: Vec<usize> = (0..self.clients.len())
            .filter(|&c| self.clients[c].subscribed[t])
            .collect();
        let report = self.engine.publish(TOPICS[t], msg).unwrap();
        // Each subscriber counts once at most: delivered, conflated, or another outcome.
        let counted = (report.delivered + report.conflated) as usize;
        assert!(counted <= subscribers.len());
        let certain = counted == subscribers.len();
        for c in subscribers {
            let client = &mut self.clients[c];
            client.topic_of.insert(self.serial, t);
            if client.conflating[t] {
                client.expect_latest(t, text, payload);
            } else {
                client.expect(certain, text, payload);
            }
        }
    }

    /// Whether a message for client `c` is certain to be taken: its connection is open and
    /// has nothing queued, so no backpressure policy refuses it.
    fn takes(&mut self, c: usize) -> bool {
        self.engine.state(c) == Some(ConnState::Open) && self.engine.queued(c) == 0
    }

    /// The invariants after a step.
    fn observe(&mut self) {
        for (client, note) in self.engine.notes() {
            let c = client.unwrap_or_else(|| panic!("a callback about no connection: {note:?}"));
            let client = &mut self.clients[c];
            assert!(!client.closed, "{note:?} after on_close");
            assert!(
                client.opened || note == Note::Opened,
                "{note:?} before on_open"
            );
            match note {
                Note::Opened => {
                    assert!(!client.opened, "on_open twice");
                    client.opened = true;
                }
                Note::Closed(_) => {
                    client.closed = true;
                    client.subscribed = Default::default();
                }
                Note::Message { text, payload } => client.last = Some((text, payload)),
                Note::Echoed(outcome) => {
                    let (text, payload) = client.last.take().expect("an echo of a message");
                    if outcome == SendOutcome::Queued {
                        client.expect(true, text, &payload);
                    }
                }
                _ => {}
            }
        }
        let config = self.engine.config().clone();
        let pongs = config.read_budget * config.recv_buffer;
        for c in 0..self.clients.len() {
            let bytes = self.engine.take_written(c);
            let client = &mut self.clients[c];
            client.absorb(&bytes);
            assert!(
                client.conn.is_none() || client.opened,
                "a 101 without on_open"
            );
            let bound = config.backpressure.limit + client.largest + pongs + HTTP_SLACK;
            let queued = self.engine.queued(c);
            assert!(
                queued <= bound,
                "client {c}: {queued} bytes queued, bound {bound}"
            );
        }
        assert_eq!(self.engine.stats().handler_panics, 0, "a callback panicked");
    }

    /// Every socket takes everything and the server reads what is left: open connections get
    /// all that was queued for them.
    /// Then every client hangs up and the clock runs out: every connection ends, once.
    fn finish(&mut self) {
        for c in 0..self.clients.len() {
            self.engine.room(c, None);
        }
        self.observe();
        // What the clients sent and the server has not read yet takes turns of its own: the
        // read budget caps each turn's reads at a few receive buffers, and a connection may be
        // many buffers behind (a large message sent in one step). Every turn reads at least
        // half a buffer (the rest of the buffer holds at most a frame header), so the bound
        // is generous; reading must go on until every live connection has read everything.
        let unread = |run: &mut Self| {
            let mut most = 0;
            for c in 0..run.clients.len() {
                if run.engine.state(c).is_some() {
                    most = most.max(run.engine.unread(c));
                }
            }
            most
        };
        let turns = unread(self) / (self.engine.config().recv_buffer / 2) + 2;
        for _ in 0..turns {
            if unread(self) == 0 {
                break;
            }
            self.engine.advance(Duration::ZERO);
            self.observe();
        }
        for c in 0..self.clients.len() {
            if let Some(state) = self.engine.state(c) {
                let left = self.engine.unread(c);
                let queued = self.engine.queued(c);
                assert_eq!(
                    left, 0,
                    "client {c}: the server stopped reading, {left} B unread ({state:?}, {queued} B queued)"
                );
            }
        }
        for c in 0..self.clients.len() {
            if self.engine.state(c) == Some(ConnState::Open) {
                let client = &self.clients[c];
                let missing: Vec<_> = client.expected[client.matched..]
                    .iter()
                    .filter(|e| e.certain)
                    .collect();
                assert!(missing.is_empty(), "client {c} never got {missing:?}");
                for (t, lane) in client.lanes.iter().enumerate() {
                    let latest = lane.sent.last();
                    assert_eq!(
                        lane.got,
                        lane.sent.len(),
                        "client {c} never got the latest of topic {t}: {latest:?}"
                    );
                }
            }
            self.engine.hang_up(c);
            self.observe();
        }
        for _ in 0..4 {
            self.engine.advance(Duration::from_secs(400));
        }
        self.observe();
        for (c, client) in self.clients.iter().enumerate() {
            assert_eq!(self.engine.state(c), None, "client {c} still connected");
            assert_eq!(
                client.opened, client.closed,
                "client {c}: on_open without on_close"
            );
        }
    }
}

/// The input's bytes, or, when they start with 0xf0 or more, the bytes repeated to 16 KiB times
/// (1 + their first byte − 0xf0), up to 256 KiB: large messages take the direct and shared
/// write paths.
fn amplify(bytes: &[u8]) -> Cow<'_, [u8]> {
    match bytes.first() {
        Some(&first) if first >= 0xf0 => {
            let len = usize::from(first - 0xef) << 14;
            let mut out = bytes.repeat(len / bytes.len() + 1);
            out.truncate(len);
            out.into()
        }
        _ => bytes.into(),
    }
}

/// The invariants, for one input.
pub(crate) fn check(data: &[u8]) {
    let [a, b, c, d, script @ ..] = data else {
        return;
    };
    let (mut run, deflate_offer) = Run::new([*a, *b, *c, *d]);
    let mut input = Input(script);
    while !input.0.is_empty() {
        run.step(&mut input, deflate_offer);
        run.observe();
    }
    run.finish();
}
