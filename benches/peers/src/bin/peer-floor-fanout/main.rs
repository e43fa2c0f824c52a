//! The fan-out floor: the least work any WebSocket engine can do per delivery on this kernel,
//! speaking the `/pubsub` text protocol of `sockeye serve` (benches/README.md).
//!
//! A raw `mio` loop per worker, with `peer-floor`'s wire code (`sockeye_peers::wire`): the
//! upgrade is read only as far as `Sec-WebSocket-Key` (any path is taken), frames are decoded
//! with no validation beyond a length cap (no UTF-8 check, no reassembly: a fragmented or
//! binary message gets an `error` reply). Text messages are the commands `sub`, `unsub`, `pub`
//! and `pubx` on **exact topics only** (a wildcard subscription gets an `error` reply). A
//! publish is encoded once as the `msg TOPIC PAYLOAD` frame and that frame written to each
//! subscriber with one `write`; what the kernel does not take is queued per connection and
//! written when the socket is writable again (`conn.rs`).
//!
//! With `--workers N` each worker has its own `SO_REUSEPORT` listener, connections and
//! subscriptions; a publish is delivered to the publishing worker's subscribers at once and
//! handed, as the one shared frame, to every other worker, which delivers it to its own
//! (`bus.rs`).
//!
//! ```text
//! socket ─read─> frames ─> command::parse ─> sub/unsub: Topics (this worker)
//!                                           └> pub: encode_msg once ─write─> each local subscriber
//!                                                                  └─> Bus ─> other workers
//! ```
//!
//! Bounds: frames up to 16 MiB, topics up to 256 bytes, 1024 subscriptions per connection,
//! 16 MiB queued per connection (then it is closed), an upgrade head up to 8 KiB.
//!
//! `peer-floor-fanout [--addr HOST:PORT] [--workers N]`

mod bus;
mod command;
mod conn;
mod topics;

use std::io::{self, ErrorKind, Read};
use std::mem;
use std::net::TcpListener as StdListener;
use std::sync::Arc;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use sockeye_peers::Options;
use sockeye_peers::listen::run_numbered;
use sockeye_peers::wire::{
    FIN, Header, MAX_HEAD, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
    head_end, push_frame, unmask, upgrade_response,
};

use bus::{Bus, Publish};
use command::{Command, encode_msg, encode_text};
use conn::{Conns, HIGH_WATER, State};
use topics::Topics;

const NAME: &str = "peer-floor-fanout";
/// The worker's receive buffer.
const RECV_BUFFER: usize = 256 * 1024;
/// The longest frame taken; a longer announced length closes the connection.
const MAX_FRAME: usize = 16 << 20;
/// Subscriptions one connection may hold.
const MAX_SUBSCRIPTIONS: usize = 1024;
/// A carry buffer larger than this is freed, not kept, once emptied.
const KEEP_CARRY: usize = 64 * 1024;
const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);

fn main() {
    let options = Options::from_args(NAME, false);
    let bus = (options.workers > 1).then(|| Arc::new(Bus::new(options.workers)));
    run_numbered(NAME, options.addr, options.workers, move |me, listener| {
        Worker::new(me, listener, bus.clone())?.run()
    });
}

#[derive(Debug)]
struct Worker {
    poll: Poll,
    listener: TcpListener,
    buf: Vec<u8>,
    conns: Conns,
    hub: Hub,
}

impl Worker {
    fn new(me: usize, listener: StdListener, bus: Option<Arc<Bus>>) -> io::Result<Worker> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        if let Some(bus) = &bus {
            bus.set_waker(me, Waker::new(poll.registry(), WAKER)?);
        }
        let conns = Conns::new(poll.registry().try_clone()?);
        Ok(Worker {
            poll,
            listener,
            buf: vec![0; RECV_BUFFER],
            conns,
            hub: Hub {
                me,
                topics: Topics::default(),
                bus,
                frame: Vec::new(),
                inbox: Vec::new(),
            },
        })
    }

    fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        // Publishes sent before this worker's waker was set.
        self.hub.deliver_inbox(&mut self.conns);
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in &events {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => self.hub.deliver_inbox(&mut self.conns),
                    Token(index) => {
                        let readable =
                            event.is_readable() || event.is_read_closed() || event.is_error();
                        let closed = event.is_read_closed() || event.is_error();
                        self.turn(index, readable, closed);
                    }
                }
                while let Some((index, topics)) = self.conns.reap() {
                    self.hub.forget(index, &topics);
                }
            }
        }
    }

    fn accept(&mut self) {
        // Until WouldBlock, or out of descriptors: then wait for the next readiness.
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nodelay(true).is_ok() {
                let _ = self.conns.insert(stream);
            }
        }
    }

    /// Reads what arrived and handles it, then one write of what is queued. `closed`: the
    /// event says the peer has finished sending.
    fn turn(&mut self, index: usize, readable: bool, closed: bool) {
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        conn.peer_closed |= closed;
        let mut keep = true;
        if readable || conn.read_paused {
            keep = self.read(index);
        }
        self.conns.flush(index);
        // A write that took the queue under the high-water mark releases reading; the socket
        // may hold data that no new event will announce.
        while keep {
            let Some(conn) = self.conns.get_mut(index) else {
                return;
            };
            if conn.state == State::Closing && conn.queued() == 0 {
                keep = false;
            } else if conn.read_paused && conn.queued() < HIGH_WATER {
                keep = self.read(index);
                self.conns.flush(index);
            } else {
                break;
            }
        }
        if !keep {
            self.conns.kill(index);
        }
    }

    /// Reads until the socket is drained (a short read, or the end of the stream once the peer
    /// has closed), the connection's queue is over the high-water mark, or it is closing. `false` when the connection is finished.
    fn read(&mut self, index: usize) -> bool {
        loop {
            let Some(conn) = self.conns.get_mut(index) else {
                return false;
            };
            if conn.state == State::Closing {
                return true;
            }
            if conn.queued() >= HIGH_WATER {
                conn.read_paused = true;
                return true;
            }
            conn.read_paused = false;
            let n = match conn.stream.read(&mut self.buf) {
                Ok(0) => return false,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return false,
            };
            if !self.absorb(index, n) {
                return false;
            }
            if n < self.buf.len() && !self.conns.get_mut(index).is_some_and(|c| c.peer_closed) {
                return true;
            }
        }
    }

    /// Handles `n` freshly read bytes. `false` when the connection is to be dropped.
    fn absorb(&mut self, index: usize, n: usize) -> bool {
        let Worker {
            buf, conns, hub, ..
        } = self;
        let data = &mut buf[..n];
        let Some(conn) = conns.get_mut(index) else {
            return false;
        };
        let mut input = match conn.state {
            State::Handshake => {
                let searched = conn.carry.len();
                conn.carry.extend_from_slice(data);
                let Some(end) = head_end(&conn.carry, searched) else {
                    return conn.carry.len() <= MAX_HEAD;
                };
                let rest = conn.carry.split_off(end);
                let head = mem::take(&mut conn.carry);
                let Some(response) = upgrade_response(&head) else {
                    return false;
                };
                conn.state = State::Open;
                conns.send(index, &response);
                rest
            }
            State::Open if conn.carry.is_empty() => {
                let Some(used) = hub.frames(conns, index, data) else {
                    return false;
                };
                if let Some(conn) = conns.get_mut(index) {
                    conn.carry.extend_from_slice(&data[used..]);
                }
                return true;
            }
            State::Open => {
                let mut carry = mem::take(&mut conn.carry);
                carry.extend_from_slice(data);
                carry
            }
            State::Closing | State::Dead => return true,
        };
        let Some(used) = hub.frames(conns, index, &mut input) else {
            return false;
        };
        input.drain(..used);
        if input.is_empty() && input.capacity() > KEEP_CARRY {
            input = Vec::new();
        }
        if let Some(conn) = conns.get_mut(index) {
            conn.carry = input;
        }
        true
    }
}

/// What a worker knows of topics: its subscriptions, the bus to the other workers, and a
/// scratch frame.
#[derive(Debug)]
struct Hub {
    me: usize,
    topics: Topics,
    bus: Option<Arc<Bus>>,
    /// The frame being sent: a reply or a publish, encoded once.
    frame: Vec<u8>,
    /// Publishes taken from the bus, kept for its allocation.
    inbox: Vec<Arc<Publish>>,
}

impl Hub {
    /// Handles every whole frame at the start of `data`, unmasking in place; returns the bytes
    /// used, or `None` when the connection is to be dropped (a frame over the length cap).
    fn frames(&mut self, conns: &mut Conns, from: usize, data: &mut [u8]) -> Option<usize> {
        let mut pos = 0;
        while let Some(frame) = Header::decode(&data[pos..]) {
            if frame.payload_len > MAX_FRAME {
                return None;
            }
            let end = pos + frame.header_len + frame.payload_len;
            if end > data.len() {
                break;
            }
            let payload = &mut data[pos + frame.header_len..end];
            pos = end;
            if let Some(mask) = frame.mask {
                unmask(payload, mask);
            }
            let fin = frame.first & FIN != 0;
            match frame.opcode() {
                OP_TEXT if fin => self.message(conns, from, payload),
                OP_PING => {
                    self.frame.clear();
                    push_frame(&mut self.frame, FIN | OP_PONG, None, payload);
                    conns.send(from, &self.frame);
                }
                OP_PONG | OP_CONTINUATION => {}
                OP_CLOSE => {
                    self.close(conns, from, frame.first, payload);
                    break;
                }
                OP_TEXT => self.error(conns, from, "fragmented messages are not supported"),
                OP_BINARY => self.error(conns, from, "binary messages are not supported"),
                _ => self.error(conns, from, "unknown opcode"),
            }
            if conns.get_mut(from).is_none() {
                break;
            }
        }
        Some(pos)
    }

    /// One command from `from`.
    fn message(&mut self, conns: &mut Conns, from: usize, message: &[u8]) {
        let command = match command::parse(message) {
            Ok(command) => command,
            Err(text) => return self.error(conns, from, text),
        };
        let Some(conn) = conns.get_mut(from) else {
            return;
        };
        match command {
            Command::Sub(topic) => {
                if !conn.topics.iter().any(|t| **t == *topic) {
                    if conn.topics.len() >= MAX_SUBSCRIPTIONS {
                        return self.error(conns, from, "too many subscriptions");
                    }
                    conn.topics.push(topic.into());
                    self.topics.subscribe(topic, from);
                }
                encode_text(&mut self.frame, &[b"ok sub ", topic]);
                conns.send(from, &self.frame);
            }
            Command::Unsub(topic) => {
                if let Some(i) = conn.topics.iter().position(|t| **t == *topic) {
                    conn.topics.swap_remove(i);
                    self.topics.unsubscribe(topic, from);
                }
                encode_text(&mut self.frame, &[b"ok unsub ", topic]);
                conns.send(from, &self.frame);
            }
            Command::Publish {
                topic,
                payload,
                to_sender,
            } => self.publish(conns, from, topic, payload, to_sender),
        }
    }

    /// Encodes the `msg` frame once and writes it to every local subscriber (but the sender
    /// for `pubx`), then hands it to the other workers.
    fn publish(
        &mut self,
        conns: &mut Conns,
        from: usize,
        topic: &[u8],
        payload: &[u8],
        to_sender: bool,
    ) {
        let subscribers = self.topics.subscribers(topic);
        if subscribers.is_empty() && self.bus.is_none() {
            return;
        }
        let range = encode_msg(&mut self.frame, topic, payload);
        for &to in subscribers {
            if to != from || to_sender {
                conns.send(to, &self.frame);
            }
        }
        if let Some(bus) = &self.bus {
            let frame = mem::take(&mut self.frame);
            bus.send(
                self.me,
                &Arc::new(Publish {
                    frame,
                    topic: range,
                }),
            );
        }
    }

    /// Writes the publishes other workers handed over to this worker's subscribers.
    fn deliver_inbox(&mut self, conns: &mut Conns) {
        let Some(bus) = &self.bus else {
            return;
        };
        bus.take(self.me, &mut self.inbox);
        for publish in self.inbox.drain(..) {
            for &to in self.topics.subscribers(publish.topic()) {
                conns.send(to, &publish.frame);
            }
        }
    }

    /// The client's close: no more deliveries, the close echoed, then the socket closed once
    /// the echo is written.
    fn close(&mut self, conns: &mut Conns, from: usize, first: u8, payload: &mut [u8]) {
        let Some(conn) = conns.get_mut(from) else {
            return;
        };
        conn.state = State::Closing;
        let topics = mem::take(&mut conn.topics);
        self.forget(from, &topics);
        self.frame.clear();
        push_frame(&mut self.frame, first, None, payload);
        conns.send(from, &self.frame);
    }

    fn error(&mut self, conns: &mut Conns, to: usize, text: &str) {
        encode_text(&mut self.frame, &[b"error ", text.as_bytes()]);
        conns.send(to, &self.frame);
    }

    /// Unsubscribes a connection that is going from its topics.
    fn forget(&mut self, index: usize, topics: &[Box<[u8]>]) {
        for topic in topics {
            self.topics.unsubscribe(topic, index);
        }
    }
}
