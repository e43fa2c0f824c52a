//! The connection driver: everything a worker decides about its connections, over any
//! [`Transport`] and on the clock it is given. The worker's loop feeds it socket events and
//! the time; tests feed it scripted streams and a virtual clock.
//!
//! Reading: a connection's bytes land in the shared receive buffer behind what it kept from its
//! last read, the upgrade request or the frames are handled in place, events go to the
//! handler, and what the handler sent is written at the end of that read ([`Driver::flush`]).

use std::io;
use std::time::Instant;

use sockeye_deflate::SharedCompressor;
use sockeye_proto::{Connection, Event, Message, State};

use super::app::App;
use super::conns::{Conns, Ending, Phase, Slot};
use super::io::Io;
use super::timers::Timers;
use super::topics::Topics;
use crate::config::ServerConfig;
use crate::handle::Handle;
use crate::handler::{CloseReason, ConnId, Handler};
use crate::transport::{Input, Scratch, Transport};

/// A worker's connections and everything they share, over streams of type `S`.
pub(crate) struct Driver<H: Handler, S> {
    pub(crate) conns: Conns<H::Conn, S>,
    pub(crate) timers: Timers,
    pub(crate) io: Io,
    pub(crate) app: App<H>,
    pub(crate) config: ServerConfig,
    /// One compressor per window size, level and `memLevel` for the connections that reset after every
    /// message, and for broadcasts.
    pub(crate) compressor: SharedCompressor,
    /// Connections to read again next turn (budget spent, or reading resumed).
    pub(crate) ready: Vec<(usize, u32)>,
    /// Connections with frames queued outside their turn, written at the turn's end.
    pub(crate) dirty: Vec<usize>,
    /// A connection ended since the loop last looked: accepting may resume.
    pub(crate) freed: bool,
}

impl<H: Handler, S: Transport> Driver<H, S> {
    pub(crate) fn new(
        index: usize,
        handler: H,
        handle: Handle,
        config: ServerConfig,
        scratch: Scratch,
        epoch: Instant,
    ) -> Self {
        Driver {
            conns: Conns::default(),
            timers: Timers::new(epoch),
            io: Io::new(config.recv_buffer, scratch),
            app: App {
                index,
                topics: Topics::new(handle.interest(), index),
                handler,
                handle,
                stats: Default::default(),
            },
            compressor: SharedCompressor::with_warm_streams(
                config.deflate.map_or(0, |d| usize::from(d.warm_streams)),
            ),
            config,
            ready: Vec::new(),
            dirty: Vec::new(),
            freed: false,
        }
    }

    /// The slot of `id`, if that connection is still here.
    pub(crate) fn find(&mut self, id: ConnId) -> Option<usize> {
        if id.worker() != self.app.index {
            return None;
        }
        let idx = id.index();
        self.conns.live(idx, id.generation()).map(|_| idx)
    }

    /// Takes in a new connection; returns its slot.
    pub(crate) fn insert(&mut self, stream: S) -> usize {
        // permessage-deflate is set up at the upgrade, if enabled and offered.
        let proto = Connection::server(self.config.protocol, None);
        let tick = self.timers.tick;
        let idx = self
            .conns
            .insert(|generation| Slot::new(stream, generation, proto, tick));
        self.app.stats.accepted += 1;
        self.app.stats.connections_open = self.conns.open() as u64;
        self.schedule(idx);
        idx
    }

    /// A readiness event of connection `idx`.
    pub(crate) fn event(&mut self, idx: usize, readable: bool, writable: bool, closed: bool) {
        if writable {
            self.writable(idx);
        }
        if closed {
            if let Some(slot) = self.conns.get_mut(idx) {
                slot.read_closed = true;
            }
        }
        if readable || closed {
            self.readable(idx);
            if !self.app.topics.deferred.is_empty() {
                // Its callbacks published: their subscribers on this worker get the messages
                // now, after this read (every publish of the read in one write each), not after
                // every other connection's read of the turn.
                self.publish_deferred();
                self.flush_dirty();
            }
        }
    }

    /// The end of a loop turn: reads what was left for it, fires the timers due, writes what
    /// was queued outside the connections' turns.
    pub(crate) fn end_turn(&mut self) {
        for (idx, generation) in std::mem::take(&mut self.ready) {
            if self.conns.live(idx, generation).is_some() {
                self.readable(idx);
            }
        }
        self.fire_timers();
        self.publish_deferred();
        self.flush_dirty();
    }

    /// Reads and handles what the socket has, within the read budget.
    pub(crate) fn readable(&mut self, idx: usize) {
        let mut drained = false;
        for _ in 0..self.config.read_budget.max(1) {
            let Some(slot) = self.conns.get_mut(idx) else {
                return;
            };
            if slot.read_paused || slot.phase == Phase::Draining {
                return;
            }
            let held = slot.held();
            let recv = &mut self.io.recv[held..];
            let (n, short) = match slot.stream.read(recv, &mut self.io.bufs.scratch) {
                Ok(Input::Data { len, drained }) => (len, drained),
                Ok(Input::Eof) => return self.eof(idx),
                Ok(Input::Empty) => {
                    drained = true;
                    break;
                }
                Err(e) => return self.fail(idx, &e),
            };
            self.app.stats.bytes_in += n as u64;
            slot.last_rx = self.timers.tick;
            slot.ping_sent = false;
            if slot.phase == Phase::Lingering {
                continue; // discard until EOF
            }
            slot.restore(&mut self.io.recv);
            self.process(idx, held + n);
            let Some(slot) = self.conns.get(idx) else {
                return;
            };
            // The last data and the FIN can share one edge: then a short read does not end
            // the socket's story, and only reading on finds the EOF.
            if short && !slot.read_closed {
                // A short read emptied the socket: the next edge will say when more arrives,
                // so no read that could only return WouldBlock.
                drained = true;
                break;
            }
        }
        if let Some(slot) = self.conns.get(idx) {
            if !drained && !slot.read_paused {
                // Budget spent with data possibly left: read again next turn, or the edge
                // that announced it would be lost.
                self.ready.push((idx, slot.generation));
            }
        }
        self.flush(idx);
    }

    /// Handles `recv[..len]` for the connection and writes what it owes.
    fn process(&mut self, idx: usize, len: usize) {
        let Some(slot) = self.conns.get(idx) else {
            return;
        };
        let start = match slot.phase {
            Phase::Handshake => match self.handshake(idx, len) {
                Some(start) => start,
                None => return self.flush(idx),
            },
            _ => 0,
        };
        if self.frames(idx, start, len) {
            self.schedule(idx);
        }
        self.flush(idx);
    }

    /// Decodes frames in `recv[start..len]` and hands events to the application. Returns
    /// whether a message started arriving (a deadline to arm).
    fn frames(&mut self, idx: usize, start: usize, len: usize) -> bool {
        let now = self.timers.now;
        let Some(slot) = self.conns.get_mut(idx) else {
            return false;
        };
        let id = ConnId::new(self.app.index, idx, slot.generation);
        let Io { recv, bufs } = &mut self.io;
        let mut msg = slot.take_msg();
        if msg.capacity() == 0 {
            // Should a message span reads, it is reassembled in a pooled buffer.
            msg = bufs.pool.take();
        }
        let mut off = start;
        while off < len && slot.phase == Phase::Open {
            let read = match slot
                .link
                .proto
                .handle_read(&mut recv[off..len], &mut msg, now)
            {
                Ok(read) => read,
                Err(err) => {
                    self.app.protocol_error(slot.user.take(), err);
                    break;
                }
            };
            off += read.consumed;
            let Some(event) = read.event else {
                if read.consumed == 0 {
                    break;
                }
                continue;
            };
            if let Event::Close(frame) = event {
                // When we started this close (a close call, shutdown, a timer, backpressure),
                // the peer's frame answers it: report why we closed, as `remove` does when the
                // peer never answers.
                let remote = CloseReason::Remote {
                    code: frame.code,
                    reason: frame.reason,
                };
                let reason = slot.link.ending.map_or(remote, |ending| ending.reason());
                if let Some(user) = slot.user.take() {
                    self.app.closed(user, reason);
                }
                continue;
            }
            if matches!(event, Event::Text(_) | Event::Binary(_)) {
                self.app.stats.messages_in += 1;
            }
            let Some(user) = slot.user.as_mut() else {
                continue;
            };
            let stream = Some(&mut slot.stream);
            let bp = &self.config.backpressure;
            self.app
                .with_outbox(id, &mut slot.link, stream, bufs, bp, now, |h, out| {
                    deliver(h, user, event, out);
                });
        }
        if off < len && slot.phase == Phase::Open && slot.link.proto.state() != State::Closed {
            // At most a frame header or a control frame.
            slot.keep(&recv[off..len]);
        }
        slot.put_msg(msg, &mut bufs.pool, self.timers.tick)
    }

    /// Ends the connection after a socket or TLS failure.
    pub(crate) fn fail(&mut self, idx: usize, err: &io::Error) {
        #[cfg(feature = "tls")]
        if let Some(tls) = crate::socket::tls_failure(err) {
            self.app.stats.tls_errors += 1;
            let text = tls.to_string();
            return self.remove(idx, Some(CloseReason::Tls(&text)));
        }
        self.remove(idx, Some(CloseReason::Io(err.kind())));
    }

    fn eof(&mut self, idx: usize) {
        let reason = match self.conns.get(idx).map(|s| s.phase) {
            Some(Phase::Lingering) => None,
            _ => Some(CloseReason::Disconnected),
        };
        self.remove(idx, reason);
    }

    /// Closes the socket and frees the slot; `on_close` runs if the application still holds
    /// the connection (`reason`, or the recorded ending).
    pub(crate) fn remove(&mut self, idx: usize, reason: Option<CloseReason<'_>>) {
        let Some(mut slot) = self.conns.remove(idx) else {
            return;
        };
        self.app.stats.connections_open = self.conns.open() as u64;
        self.app.topics.leave(idx);
        self.app.stats.subscriptions = self.app.topics.subscriptions() as u64;
        if let Some(user) = slot.user.take() {
            // Our own reason for closing wins, but a close call the peer never answered ends
            // as the socket did.
            let reason = match (slot.link.ending, reason) {
                (Some(Ending::Local(_)) | None, reason) => {
                    reason.unwrap_or(CloseReason::Disconnected)
                }
                (Some(ending), _) => ending.reason(),
            };
            self.app.closed(user, reason);
        }
        if let Some(rx) = slot.rx.take() {
            self.io.bufs.pool.give(rx.msg);
        }
        // Dropping the stream closes the socket, which also removes it from epoll.
        drop(slot);
        self.freed = true;
    }
}

/// Hands one event of the peer's to the handler.
fn deliver<H: Handler>(
    handler: &mut H,
    user: &mut H::Conn,
    event: Event<'_>,
    out: &mut crate::Outbox<'_>,
) {
    match event {
        Event::Text(text) => handler.on_message(user, Message::Text(text), out),
        Event::Binary(bytes) => handler.on_message(user, Message::Binary(bytes), out),
        Event::Ping(payload) => handler.on_ping(user, payload, out),
        Event::Pong(payload) => handler.on_pong(user, payload, out),
        // Handled by the caller: it ends the application's part.
        Event::Close(_) => {}
    }
}
