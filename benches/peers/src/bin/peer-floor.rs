//! The floor: the least work any WebSocket engine can do per message on this kernel.
//!
//! A raw `mio` loop per worker. It reads the upgrade request only as far as
//! `Sec-WebSocket-Key`, answers 101, then echoes frames with no validation at all: decode the
//! header, unmask the payload while copying it out, write back an unmasked frame with the same
//! first byte (FIN, RSV, opcode). Pings get a pong, pongs are dropped, a close is echoed and the
//! socket closed once it is written. No UTF-8 check, no reassembly, no limits beyond a cap on a
//! frame's length (so a stray length cannot allocate the machine).
//!
//! Per worker one receive buffer; per connection the bytes of an unfinished frame (only when a
//! frame straddles reads) and the bytes not yet written. One write per connection per turn, and
//! a read that fills less than the buffer is taken to have drained the socket (once the peer
//! has closed its side, reading goes on to the end of the stream).
//!
//! `peer-floor [--addr HOST:PORT] [--workers N]`

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpListener as StdListener;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use sockeye_peers::Options;
use sockeye_peers::listen::run_workers;
use sockeye_peers::wire::{
    Header, MAX_HEAD, OP_CLOSE, OP_PING, OP_PONG, head_end, push_frame, upgrade_response,
};

/// The worker's receive buffer.
const RECV_BUFFER: usize = 256 * 1024;
/// The longest frame echoed; a longer announced length closes the connection.
const MAX_FRAME: usize = 64 << 20;
/// Unwritten bytes above which a connection is not read until the peer catches up.
const HIGH_WATER: usize = 4 << 20;
/// A buffer larger than this is freed, not kept, once emptied.
const KEEP_OUT: usize = 64 * 1024;
const LISTENER: Token = Token(usize::MAX);

fn main() {
    let options = Options::from_args("peer-floor", false);
    run_workers("peer-floor", options.addr, options.workers, |listener| {
        Worker::new(listener)?.run()
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the end of the upgrade request.
    Handshake,
    /// Echoing frames.
    Open,
    /// The close echo is queued; the socket closes once it is written.
    Closing,
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    state: State,
    /// An unfinished request head or frame, carried to the next read.
    carry: Vec<u8>,
    /// Bytes to write, from `written` on.
    out: Vec<u8>,
    written: usize,
    /// Reading stopped at the high-water mark; the socket may hold more.
    read_paused: bool,
    /// Registered for writability: only while output waits for the peer.
    write_interest: bool,
    /// The peer has finished sending: read on to the end of the stream, since a short read
    /// no longer means that no event will come (the last edge announced the end already).
    peer_closed: bool,
}

#[derive(Debug)]
struct Worker {
    poll: Poll,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    buf: Vec<u8>,
}

impl Worker {
    fn new(listener: StdListener) -> io::Result<Worker> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Worker {
            poll,
            listener,
            conns: Vec::new(),
            free: Vec::new(),
            buf: vec![0; RECV_BUFFER],
        })
    }

    fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in &events {
                if event.token() == LISTENER {
                    self.accept();
                } else {
                    let readable =
                        event.is_readable() || event.is_read_closed() || event.is_error();
                    let closed = event.is_read_closed() || event.is_error();
                    self.turn(event.token().0, readable, closed);
                }
            }
        }
    }

    fn accept(&mut self) {
        loop {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                // WouldBlock, or out of descriptors: wait for the next readiness.
                Err(_) => return,
            };
            if stream.set_nodelay(true).is_err() {
                continue;
            }
            let index = self.free.pop().unwrap_or(self.conns.len());
            if self
                .poll
                .registry()
                .register(&mut stream, Token(index), Interest::READABLE)
                .is_err()
            {
                self.free.push(index);
                continue;
            }
            let conn = Conn {
                stream,
                state: State::Handshake,
                carry: Vec::new(),
                out: Vec::new(),
                written: 0,
                read_paused: false,
                write_interest: false,
                peer_closed: false,
            };
            if index == self.conns.len() {
                self.conns.push(Some(conn));
            } else {
                self.conns[index] = Some(conn);
            }
        }
    }

    /// Reads what arrived, echoes it, and writes once; drops the connection when it is done.
    /// `closed`: the event says the peer has finished sending.
    fn turn(&mut self, index: usize, readable: bool, closed: bool) {
        let Some(Some(conn)) = self.conns.get_mut(index) else {
            return;
        };
        conn.peer_closed |= closed;
        let mut keep = true;
        if readable || conn.read_paused {
            keep = conn.read(&mut self.buf);
        }
        if keep && conn.written < conn.out.len() {
            keep = conn.flush();
        }
        // A write that took the output under the high-water mark releases reading; the socket
        // may hold data that no new event will announce.
        while keep && conn.read_paused && conn.out.len() - conn.written < HIGH_WATER {
            keep = conn.read(&mut self.buf);
            if keep && conn.written < conn.out.len() {
                keep = conn.flush();
            }
        }
        let want_write = conn.written < conn.out.len();
        if keep && want_write != conn.write_interest {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let registry = self.poll.registry();
            keep = registry
                .reregister(&mut conn.stream, Token(index), interest)
                .is_ok();
            conn.write_interest = want_write;
        }
        if !keep || (conn.state == State::Closing && conn.out.is_empty()) {
            self.conns[index] = None;
            self.free.push(index);
        }
    }
}

impl Conn {
    /// Reads until the socket is drained (a short read, or the end of the stream once the peer
    /// has closed) or the output is over the high-water mark. `false` when the connection is
    /// finished.
    fn read(&mut self, buf: &mut [u8]) -> bool {
        loop {
            if self.out.len() - self.written >= HIGH_WATER {
                self.read_paused = true;
                return true;
            }
            self.read_paused = false;
            match self.stream.read(buf) {
                Ok(0) => return false,
                Ok(n) => {
                    if !self.absorb(&mut buf[..n]) {
                        return false;
                    }
                    if (n < buf.len() && !self.peer_closed) || self.state == State::Closing {
                        return true;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Handles freshly read bytes. `false` when the connection is to be dropped.
    fn absorb(&mut self, data: &mut [u8]) -> bool {
        match self.state {
            State::Handshake => self.handshake(data),
            State::Closing => true,
            State::Open if self.carry.is_empty() => {
                let Some(used) = self.echo_frames(data) else {
                    return false;
                };
                self.carry.extend_from_slice(&data[used..]);
                true
            }
            State::Open => {
                let mut carry = std::mem::take(&mut self.carry);
                carry.extend_from_slice(data);
                let Some(used) = self.echo_frames(&mut carry) else {
                    return false;
                };
                carry.drain(..used);
                if carry.is_empty() && carry.capacity() > KEEP_OUT {
                    carry = Vec::new();
                }
                self.carry = carry;
                true
            }
        }
    }

    /// Collects the request head; once it is whole, answers 101 and echoes what followed it.
    fn handshake(&mut self, data: &[u8]) -> bool {
        let searched = self.carry.len();
        self.carry.extend_from_slice(data);
        let Some(end) = head_end(&self.carry, searched) else {
            return self.carry.len() <= MAX_HEAD;
        };
        let mut rest = self.carry.split_off(end);
        let head = std::mem::take(&mut self.carry);
        let Some(response) = upgrade_response(&head) else {
            return false;
        };
        if !self.respond(response) {
            return false;
        }
        self.state = State::Open;
        if rest.is_empty() {
            return true;
        }
        let Some(used) = self.echo_frames(&mut rest) else {
            return false;
        };
        rest.drain(..used);
        self.carry = rest;
        true
    }

    /// Writes the 101 straight away (the output is empty before it); what the socket does not
    /// take waits in the output.
    fn respond(&mut self, mut response: Vec<u8>) -> bool {
        match self.stream.write(&response) {
            Ok(n) => response.drain(..n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => response.drain(..0),
            Err(_) => return false,
        };
        if !response.is_empty() {
            self.out = response;
        }
        true
    }

    /// Echoes every whole frame at the start of `data`; returns the bytes used, or `None` when
    /// the connection is to be dropped (a frame over the length cap).
    fn echo_frames(&mut self, data: &mut [u8]) -> Option<usize> {
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
            match frame.first & 0x0F {
                OP_PONG => continue,
                OP_PING => push_frame(
                    &mut self.out,
                    (frame.first & 0xF0) | OP_PONG,
                    frame.mask,
                    payload,
                ),
                OP_CLOSE => {
                    push_frame(&mut self.out, frame.first, frame.mask, payload);
                    self.state = State::Closing;
                    break;
                }
                _ => push_frame(&mut self.out, frame.first, frame.mask, payload),
            }
        }
        Some(pos)
    }

    /// One write of the pending output. `false` when the connection is broken.
    fn flush(&mut self) -> bool {
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
                    }
                    return true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}
