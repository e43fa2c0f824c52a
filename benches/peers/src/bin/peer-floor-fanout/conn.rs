//! The connections of one worker: each one's socket, unfinished input and unwritten output,
//! in slots numbered as their mio tokens.
//!
//! A frame for a connection with nothing queued is written at once, one `write`; what the
//! kernel does not take is queued and the connection registered for writability, and the
//! queue is written one `write` per writable event. A connection whose queue would pass
//! [`MAX_QUEUE`] (a subscriber that does not read) is closed, as NATS closes a slow consumer.

use std::io::{self, ErrorKind, Write};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// Queued bytes above which a connection's own commands are not read until it catches up.
pub(crate) const HIGH_WATER: usize = 4 << 20;
/// Queued bytes above which a connection is closed: the bound on its memory.
pub(crate) const MAX_QUEUE: usize = 16 << 20;
/// A queue buffer larger than this is freed, not kept, once emptied.
const KEEP_OUT: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Waiting for the end of the upgrade request.
    Handshake,
    /// Taking commands.
    Open,
    /// The close echo is queued; the socket closes once it is written.
    Closing,
    /// Broken or over its queue: dropped at the end of the event.
    Dead,
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) state: State,
    /// An unfinished request head or frame, carried to the next read.
    pub(crate) carry: Vec<u8>,
    /// Reading stopped at the high-water mark; the socket may hold more.
    pub(crate) read_paused: bool,
    /// The topics this connection is subscribed to.
    pub(crate) topics: Vec<Box<[u8]>>,
    /// The peer has finished sending: read on to the end of the stream, since a short read
    /// no longer means that no event will come (the last edge announced the end already).
    pub(crate) peer_closed: bool,
    /// Bytes to write, from `written` on.
    out: Vec<u8>,
    written: usize,
    /// Registered for writability: only while output waits for the peer.
    write_interest: bool,
}

impl Conn {
    /// Bytes queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.out.len() - self.written
    }

    /// Writes `frame` now when nothing is queued, else queues it. `false`: drop the connection.
    fn send(&mut self, frame: &[u8]) -> bool {
        if self.queued() > 0 {
            if self.queued() + frame.len() > MAX_QUEUE {
                return false;
            }
            self.out.extend_from_slice(frame);
            return true;
        }
        let rest = loop {
            match self.stream.write(frame) {
                Ok(n) if n == frame.len() => return true,
                Ok(n) => break &frame[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => break frame,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        };
        if rest.len() > MAX_QUEUE {
            return false;
        }
        self.out.clear();
        self.written = 0;
        self.out.extend_from_slice(rest);
        true
    }

    /// One write of the queue. `false` when the connection is broken.
    fn flush(&mut self) -> bool {
        if self.queued() == 0 {
            return true;
        }
        loop {
            match self.stream.write(&self.out[self.written..]) {
                Ok(n) => {
                    self.written += n;
                    if self.written == self.out.len() {
                        if self.out.capacity() > KEEP_OUT {
                            self.out = Vec::new();
                        } else {
                            self.out.clear();
                        }
                        self.written = 0;
                    } else if self.written >= KEEP_OUT && self.written * 2 >= self.out.len() {
                        // Keep the buffer no larger than twice what is queued.
                        self.out.drain(..self.written);
                        self.written = 0;
                    }
                    return true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Registers for writability exactly while something is queued.
    fn update_interest(&mut self, registry: &Registry, token: Token) -> bool {
        let want = self.queued() > 0;
        if want == self.write_interest {
            return true;
        }
        let interest = if want {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        self.write_interest = want;
        registry
            .reregister(&mut self.stream, token, interest)
            .is_ok()
    }
}

/// The slots, and the connections to drop once the current event is handled.
#[derive(Debug)]
pub(crate) struct Conns {
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
    registry: Registry,
    doomed: Vec<usize>,
}

impl Conns {
    pub(crate) fn new(registry: Registry) -> Conns {
        Conns {
            slots: Vec::new(),
            free: Vec::new(),
            registry,
            doomed: Vec::new(),
        }
    }

    /// Registers a freshly accepted connection for reading; its slot number.
    pub(crate) fn insert(&mut self, mut stream: TcpStream) -> io::Result<usize> {
        let index = self.free.pop().unwrap_or(self.slots.len());
        if let Err(e) = self
            .registry
            .register(&mut stream, Token(index), Interest::READABLE)
        {
            if index < self.slots.len() {
                self.free.push(index);
            }
            return Err(e);
        }
        let conn = Conn {
            stream,
            state: State::Handshake,
            carry: Vec::new(),
            read_paused: false,
            topics: Vec::new(),
            peer_closed: false,
            out: Vec::new(),
            written: 0,
            write_interest: false,
        };
        if index == self.slots.len() {
            self.slots.push(Some(conn));
        } else {
            self.slots[index] = Some(conn);
        }
        Ok(index)
    }

    /// The live connection in `index`, if any.
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut Conn> {
        self.slots
            .get_mut(index)
            .and_then(Option::as_mut)
            .filter(|c| c.state != State::Dead)
    }

    /// Sends `frame` to `index` (see [`Conn::send`]); a connection that cannot take it is
    /// marked to be dropped.
    pub(crate) fn send(&mut self, index: usize, frame: &[u8]) {
        let Some(Some(conn)) = self.slots.get_mut(index) else {
            return;
        };
        if conn.state == State::Dead {
            return;
        }
        if !(conn.send(frame) && conn.update_interest(&self.registry, Token(index))) {
            conn.state = State::Dead;
            self.doomed.push(index);
        }
    }

    /// One write of `index`'s queue, then its interest brought up to date; a broken
    /// connection is marked to be dropped.
    pub(crate) fn flush(&mut self, index: usize) {
        let Some(Some(conn)) = self.slots.get_mut(index) else {
            return;
        };
        if conn.state == State::Dead {
            return;
        }
        if !(conn.flush() && conn.update_interest(&self.registry, Token(index))) {
            self.kill(index);
        }
    }

    /// Marks `index` to be dropped at the end of the event.
    pub(crate) fn kill(&mut self, index: usize) {
        if let Some(Some(conn)) = self.slots.get_mut(index) {
            if conn.state != State::Dead {
                conn.state = State::Dead;
                self.doomed.push(index);
            }
        }
    }

    /// Frees the next connection marked to be dropped (closing its socket); its slot number
    /// and topics, for the caller to unsubscribe.
    pub(crate) fn reap(&mut self) -> Option<(usize, Vec<Box<[u8]>>)> {
        loop {
            let index = self.doomed.pop()?;
            if let Some(conn) = self.slots.get_mut(index).and_then(Option::take) {
                self.free.push(index);
                return Some((index, conn.topics));
            }
        }
    }
}
