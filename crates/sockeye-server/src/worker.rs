//! One worker: a mio event loop that owns its listeners, connections, timers and buffers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use sockeye_deflate::{PerMessageDeflate, SendSettings, SharedCompressor};
use sockeye_proto::{CloseCode, Connection, Event, Message, Rsv, State};

use crate::config::ServerConfig;
use crate::conn::{ConnSink, Direct, Ending, Link, Ms, NEVER, Phase, Pool, Slot, ms};
use crate::handle::{Command, Handle, OwnedMessage, SharedStats, Stats};
use crate::handler::{CloseReason, ConnId, Handler, Outbox, Timeout};
use crate::transport::{Input, Scratch, Stream};

pub(crate) const WAKER: Token = Token(usize::MAX);
const LISTENER_BASE: usize = usize::MAX - 64;
/// Capacity the cork buffer keeps between turns (larger ones go to the pool).
const CORK_KEEP: usize = 4 << 20;
/// Connections accepted per listener per loop turn before others get their turn.
const ACCEPT_BUDGET: usize = 256;

pub(crate) struct Worker<H: Handler> {
    pub(crate) index: usize,
    pub(crate) poll: Poll,
    pub(crate) listeners: Vec<TcpListener>,
    pub(crate) commands: Receiver<Command>,
    pub(crate) shared_stats: Arc<SharedStats>,
    pub(crate) handle: Handle,
    pub(crate) handler: H,
    pub(crate) config: ServerConfig,
    pub(crate) slab: Vec<Option<Slot<H::Conn>>>,
    pub(crate) free: Vec<usize>,
    pub(crate) open: usize,
    pub(crate) recv: Vec<u8>,
    pub(crate) cork: Vec<u8>,
    /// The buffers TLS connections read and encrypt in (empty without TLS).
    pub(crate) scratch: Scratch,
    /// Large buffers between uses (reassembly, backlogs, cork).
    pub(crate) pool: Pool,
    pub(crate) stats: Stats,
    /// (deadline, slot index, generation): 16 bytes per armed connection.
    pub(crate) timers: BinaryHeap<Reverse<(Ms, u32, u32)>>,
    /// Connections to read again next turn (budget spent, or reading resumed).
    pub(crate) ready: Vec<(usize, u32)>,
    /// Connections with queued bytes to write at the end of the turn.
    pub(crate) dirty: Vec<usize>,
    pub(crate) accept_pending: bool,
    pub(crate) stopping: Option<Instant>,
    pub(crate) generation: u32,
    pub(crate) now: Instant,
    /// The clock of the connection timers: `now`, as milliseconds since `epoch`.
    pub(crate) tick: Ms,
    pub(crate) epoch: Instant,
    /// One compressor per window size and level for the connections that reset after every
    /// message, and for broadcasts.
    pub(crate) compressor: SharedCompressor,
}

impl<H: Handler> Worker<H> {
    pub(crate) fn run(mut self) -> io::Result<()> {
        for (i, listener) in self.listeners.iter_mut().enumerate() {
            self.poll.registry().register(
                listener,
                Token(LISTENER_BASE + i),
                Interest::READABLE,
            )?;
        }
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if self.ready.is_empty() && !self.accept_pending {
                let epoch = self.epoch;
                let next = self
                    .timers
                    .peek()
                    .map(|Reverse((at, _, _))| epoch + Duration::from_millis(*at));
                // The shutdown deadline is a timer too: without it the loop would sleep until
                // the next connection timer and overrun `shutdown_timeout`.
                [next, self.stopping]
                    .into_iter()
                    .flatten()
                    .min()
                    .map(|at| at.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            self.now = Instant::now();
            self.tick = self.now.duration_since(self.epoch).as_millis() as Ms;
            for event in events.iter() {
                match event.token() {
                    WAKER => self.commands(),
                    Token(t) if t >= LISTENER_BASE => self.accept_pending = true,
                    Token(idx) => {
                        if event.is_writable() {
                            self.writable(idx);
                        }
                        if event.is_read_closed() || event.is_error() {
                            if let Some(slot) = self.slab.get_mut(idx).and_then(Option::as_mut) {
                                slot.read_closed = true;
                            }
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.readable(idx);
                        }
                    }
                }
            }
            if self.accept_pending {
                self.accept();
            }
            for (idx, generation) in std::mem::take(&mut self.ready) {
                if self.slot_generation(idx) == Some(generation) {
                    self.readable(idx);
                }
            }
            self.fire_timers();
            self.flush_dirty();
            self.shared_stats.publish(&self.stats);
            if let Some(deadline) = self.stopping {
                if self.open == 0 {
                    return Ok(());
                }
                if self.now >= deadline {
                    for idx in 0..self.slab.len() {
                        self.remove(idx, Some(CloseReason::Shutdown));
                    }
                    self.shared_stats.publish(&self.stats);
                    return Ok(());
                }
            }
        }
    }

    fn slot_generation(&self, idx: usize) -> Option<u32> {
        self.slab.get(idx)?.as_ref().map(|s| s.generation)
    }

    fn accept(&mut self) {
        self.accept_pending = false;
        if self.stopping.is_some() {
            return;
        }
        for i in 0..self.listeners.len() {
            let mut drained = false;
            for _ in 0..ACCEPT_BUDGET {
                if self.open >= self.config.max_connections {
                    // Accepting pauses; a closing connection resumes it. The kernel's backlog
                    // holds the clients meanwhile.
                    return;
                }
                match self.listeners[i].accept() {
                    Ok((stream, _)) => self.insert(stream),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        drained = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // EMFILE and friends: wait for a connection to close before retrying.
                        log::warn!("worker {}: accept failed: {e}", self.index);
                        return;
                    }
                }
            }
            if !drained {
                // The budget ran out with clients possibly still queued. The listener is
                // edge-triggered and will not announce them again: accept next turn.
                self.accept_pending = true;
            }
        }
    }

    fn insert(&mut self, mut stream: mio::net::TcpStream) {
        // Latency first: frames leave as soon as they are written.
        let _ = stream.set_nodelay(true);
        let idx = self.free.pop().unwrap_or_else(|| {
            self.slab.push(None);
            self.slab.len() - 1
        });
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(idx), interest)
        {
            log::warn!("worker {}: register failed: {e}", self.index);
            self.free.push(idx);
            return;
        }
        self.generation = self.generation.wrapping_add(1) & 0xffff;
        // permessage-deflate is set up at the upgrade, if enabled and offered.
        let proto = Connection::server(self.config.protocol, None);
        let stream = match self.transport(stream) {
            Some(stream) => stream,
            None => {
                self.free.push(idx);
                return;
            }
        };
        self.slab[idx] = Some(Slot::new(stream, self.generation, proto, self.tick));
        self.open += 1;
        self.stats.accepted += 1;
        self.stats.connections_open = self.open as u64;
        self.schedule(idx);
    }

    /// Wraps an accepted socket in TLS when the server terminates TLS.
    fn transport(&mut self, tcp: mio::net::TcpStream) -> Option<Stream> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.config.tls {
            return match tls.session() {
                Ok(session) => Some(Stream::tls(tcp, session)),
                Err(e) => {
                    log::warn!("worker {}: TLS session failed: {e}", self.index);
                    self.stats.tls_errors += 1;
                    None
                }
            };
        }
        Some(Stream::plain(tcp))
    }

    /// Reads and handles what the socket has, within the read budget.
    pub(crate) fn readable(&mut self, idx: usize) {
        let mut drained = false;
        for _ in 0..self.config.read_budget.max(1) {
            let Some(slot) = self.slab.get_mut(idx).and_then(Option::as_mut) else {
                return;
            };
            if slot.read_paused || slot.phase == Phase::Draining {
                return;
            }
            let held = slot.held();
            let (n, short) = match slot.stream.read(&mut self.recv[held..], &mut self.scratch) {
                Ok(Input::Data { len, drained }) => (len, drained),
                Ok(Input::Eof) => return self.eof(idx),
                Ok(Input::Empty) => {
                    drained = true;
                    break;
                }
                Err(e) => return self.fail(idx, &e),
            };
            self.stats.bytes_in += n as u64;
            slot.last_rx = self.tick;
            slot.ping_sent = false;
            if slot.phase == Phase::Lingering {
                continue; // discard until EOF
            }
            slot.restore(&mut self.recv);
            self.process(idx, held + n);
            // The last data and the FIN can share one edge: then a short read does not end
            // the socket's story, and only reading on finds the EOF.
            let peer_closed = self
                .slab
                .get(idx)
                .and_then(Option::as_ref)
                .is_some_and(|slot| slot.read_closed);
            if short && !peer_closed {
                // A short read emptied the socket: the next edge will say when more arrives,
                // so no read that could only return WouldBlock.
                drained = true;
                break;
            }
            if self.slot_generation(idx).is_none() {
                return;
            }
        }
        if let Some(slot) = self.slab.get(idx).and_then(Option::as_ref) {
            if !drained && !slot.read_paused {
                // Budget spent with data possibly left: read again next turn, or the edge
                // that announced it would be lost.
                self.ready.push((idx, slot.generation));
            }
        }
        self.flush(idx);
    }

    /// Handles `recv[..len]` for the connection.
    fn process(&mut self, idx: usize, len: usize) {
        let Some(slot) = self.slab[idx].as_mut() else {
            return;
        };
        let start = match slot.phase {
            Phase::Handshake => match self.handshake(idx, len) {
                Some(start) => start,
                None => return self.flush(idx),
            },
            _ => 0,
        };
        self.frames(idx, start, len);
        self.flush(idx);
    }

    /// Decodes frames in `recv[start..len]` and hands events to the application.
    fn frames(&mut self, idx: usize, start: usize, len: usize) {
        let Worker {
            slab,
            recv,
            cork,
            scratch,
            pool,
            handler,
            handle,
            stats,
            config,
            now,
            index,
            ..
        } = self;
        let Some(slot) = slab[idx].as_mut() else {
            return;
        };
        let id = ConnId::new(*index, idx, slot.generation);
        let mut msg = slot.take_msg();
        if msg.capacity() == 0 {
            // Should a message span reads, it is reassembled in a pooled buffer.
            msg = pool.take();
        }
        let mut off = start;
        while off < len && slot.phase == Phase::Open {
            let read = match slot
                .link
                .proto
                .handle_read(&mut recv[off..len], &mut msg, *now)
            {
                Ok(read) => read,
                Err(err) => {
                    match err.close_code().0 {
                        1007 => stats.protocol_errors_1007 += 1,
                        1009 => stats.protocol_errors_1009 += 1,
                        _ => stats.protocol_errors_1002 += 1,
                    }
                    if let Some(user) = slot.user.take() {
                        closed(handler, stats, user, CloseReason::Protocol(err));
                    }
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
            if matches!(event, Event::Text(_) | Event::Binary(_)) {
                stats.messages_in += 1;
            }
            let mut sink = ConnSink::new(&mut slot.link, cork, &config.backpressure, stats, *now)
                .with_direct(Direct {
                    stream: &mut slot.stream,
                    scratch,
                    pool,
                });
            let mut out = Outbox {
                id,
                sink: &mut sink,
                handle,
            };
            let Some(user) = slot.user.as_mut() else {
                continue;
            };
            match event {
                Event::Text(text) => handler.on_message(user, Message::Text(text), &mut out),
                Event::Binary(bytes) => handler.on_message(user, Message::Binary(bytes), &mut out),
                Event::Ping(payload) => handler.on_ping(user, payload, &mut out),
                Event::Pong(payload) => handler.on_pong(user, payload, &mut out),
                Event::Close(frame) => {
                    // When we started this close (a close call, shutdown, a timer,
                    // backpressure), the peer's frame answers it: report why we closed, as
                    // `remove` does when the peer never answers.
                    let reason = slot.link.ending.map_or(
                        CloseReason::Remote {
                            code: frame.code,
                            reason: frame.reason,
                        },
                        |ending| ending.reason(),
                    );
                    if let Some(user) = slot.user.take() {
                        closed(handler, stats, user, reason);
                    }
                }
            }
        }
        if off < len && slot.phase == Phase::Open && slot.link.proto.state() != State::Closed {
            // At most a frame header or a control frame.
            slot.keep(&recv[off..len]);
        }
        slot.put_msg(msg, pool);
    }

    /// Writes what the connection owes, once; moves what the kernel did not take to its queue.
    pub(crate) fn flush(&mut self, idx: usize) {
        let Some(slot) = self.slab.get_mut(idx).and_then(Option::as_mut) else {
            self.cork.clear();
            return;
        };
        slot.link.poll_transmit(&mut self.cork);
        let result = if slot.link.queue.is_empty() {
            if self.cork.is_empty() {
                // Nothing to say: no write syscall.
                return self.after_write(idx);
            }
            let result = slot.stream.write(&self.cork, &mut self.scratch);
            if let Ok(n) = result {
                self.stats.bytes_out += n as u64;
                slot.link.queue.take_rest(&mut self.cork, n);
            }
            self.cork.clear();
            if self.cork.capacity() == 0 {
                // Its buffer went to the queue: take a pooled one, so that the next large frame
                // needs no fresh allocation.
                self.cork = self.pool.take();
            } else if self.cork.capacity() > CORK_KEEP {
                // A huge message passed through: do not hold its size in the cork for ever.
                let big = std::mem::take(&mut self.cork);
                self.pool.give(big);
            }
            result.map(|_| ())
        } else {
            slot.link.queue.extend_from_slice(&self.cork);
            self.cork.clear();
            slot.link.queue.write_to(
                &mut slot.stream,
                &mut self.scratch,
                &mut self.stats,
                &mut self.pool,
            )
        };
        if let Err(e) = result {
            return self.fail(idx, &e);
        }
        self.after_write(idx);
    }

    fn writable(&mut self, idx: usize) {
        let Some(slot) = self.slab.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if let Err(e) = slot.stream.flush_pending() {
            return self.fail(idx, &e);
        }
        if slot.link.queue.is_empty() {
            return self.after_write(idx);
        }
        if let Err(e) = slot.link.queue.write_to(
            &mut slot.stream,
            &mut self.scratch,
            &mut self.stats,
            &mut self.pool,
        ) {
            return self.fail(idx, &e);
        }
        self.after_write(idx);
    }

    /// Backpressure marks, `on_writable`, and the end of the connection once all is written.
    fn after_write(&mut self, idx: usize) {
        let Worker {
            slab,
            cork,
            handler,
            handle,
            stats,
            config,
            now,
            index,
            ready,
            ..
        } = self;
        let Some(slot) = slab[idx].as_mut() else {
            return;
        };
        let bp = &config.backpressure;
        if !slot.read_paused && slot.link.queue.len() > bp.high_water {
            slot.read_paused = true;
            stats.read_pauses += 1;
        } else if slot.read_paused && slot.link.queue.len() <= bp.low_water {
            slot.read_paused = false;
            ready.push((idx, slot.generation));
            if let Some(user) = slot.user.as_mut() {
                let mut sink = ConnSink::new(&mut slot.link, cork, bp, stats, *now);
                let mut out = Outbox {
                    id: ConnId::new(*index, idx, slot.generation),
                    sink: &mut sink,
                    handle,
                };
                handler.on_writable(user, &mut out);
            }
            if !self.cork.is_empty() {
                return self.flush(idx);
            }
        }
        let Some(slot) = self.slab[idx].as_mut() else {
            return;
        };
        if !slot.link.queue.is_empty() || slot.stream.has_pending() {
            return;
        }
        let finished = match slot.phase {
            Phase::Draining => true,
            Phase::Open => slot.link.proto.state() == State::Closed,
            _ => false,
        };
        if slot.phase == Phase::Open && slot.link.proto.is_close_handshake_done() {
            // Both close frames went through and the peer sends nothing after its own: closing
            // now sends our FIN (the server closes TCP first, RFC 6455 §7.1.1) with no unread
            // bytes to turn it into a reset, and spares a shutdown, a read of the peer's EOF
            // and a linger timer.
            slot.stream.close_notify(&mut self.scratch);
            return self.remove(idx, None);
        }
        if finished {
            // The server closes TCP first (RFC 6455 §7.1.1): send FIN, then read until the
            // peer's EOF so that unread bytes do not turn our close into a reset.
            slot.stream.shutdown_write(&mut self.scratch);
            slot.phase = Phase::Lingering;
            slot.linger_until = NEVER;
            self.schedule(idx);
        }
    }

    /// Ends the connection after a socket or TLS failure.
    fn fail(&mut self, idx: usize, err: &io::Error) {
        #[cfg(feature = "tls")]
        if let Some(tls) = crate::socket::tls_failure(err) {
            self.stats.tls_errors += 1;
            let text = tls.to_string();
            return self.remove(idx, Some(CloseReason::Tls(&text)));
        }
        self.remove(idx, Some(CloseReason::Io(err.kind())));
    }

    fn eof(&mut self, idx: usize) {
        let reason = match self.slab[idx].as_ref().map(|s| s.phase) {
            Some(Phase::Lingering) => None,
            _ => Some(CloseReason::Disconnected),
        };
        self.remove(idx, reason);
    }

    /// Closes the socket and frees the slot; `on_close` runs if the application still holds
    /// the connection (`reason`, or the recorded ending).
    pub(crate) fn remove(&mut self, idx: usize, reason: Option<CloseReason<'_>>) {
        let Some(mut slot) = self.slab.get_mut(idx).and_then(Option::take) else {
            return;
        };
        self.free.push(idx);
        self.open -= 1;
        self.stats.connections_open = self.open as u64;
        if let Some(user) = slot.user.take() {
            // Our own reason for closing wins, but a close call the peer never answered ends
            // as the socket did.
            let reason = match (slot.link.ending, reason) {
                (Some(Ending::Local(_)) | None, reason) => {
                    reason.unwrap_or(CloseReason::Disconnected)
                }
                (Some(ending), _) => ending.reason(),
            };
            closed(&mut self.handler, &mut self.stats, user, reason);
        }
        // Dropping the stream closes the socket, which also removes it from epoll.
        drop(slot);
        if self.stopping.is_none() {
            self.accept_pending = true;
        }
    }

    fn commands(&mut self) {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Send(id, msg)) => {
                    if let Some(idx) = self.live(id) {
                        let _ = self.with_outbox(idx, |_, out| out.send(msg.as_message()));
                    }
                }
                Ok(Command::Close(id, code, reason)) => {
                    if let Some(idx) = self.live(id) {
                        self.with_outbox(idx, |_, out| out.close(code, &reason));
                    }
                }
                Ok(Command::Broadcast(msg)) => self.broadcast(&msg),
                Ok(Command::Shutdown(timeout)) => self.shutdown(timeout),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }

    /// Sends `msg` to every open connection. Receivers that compress it with equal settings
    /// share one compressed payload, compressed once.
    fn broadcast(&mut self, msg: &OwnedMessage) {
        let (text, payload) = match msg {
            OwnedMessage::Text(text) => (true, text.as_bytes()),
            OwnedMessage::Binary(bytes) => (false, bytes.as_slice()),
        };
        let mut compressed: Vec<(SendSettings, Rsv, Vec<u8>)> = Vec::new();
        for idx in 0..self.slab.len() {
            let Some(slot) = self.slab[idx].as_mut() else {
                continue;
            };
            if slot.phase != Phase::Open || slot.user.is_none() {
                continue;
            }
            let settings = slot.link.proto.extension().as_deref();
            let Some(settings) = settings.and_then(PerMessageDeflate::send_settings) else {
                let _ = self.with_outbox(idx, |_, out| out.send(msg.as_message()));
                continue;
            };
            let position = compressed.iter().position(|(s, _, _)| *s == settings);
            let index = position.unwrap_or_else(|| {
                let mut out = Vec::new();
                let rsv = self
                    .compressor
                    .compress_for_broadcast(&settings, payload, &mut out)
                    .unwrap_or(Rsv::NONE);
                compressed.push((settings, rsv, out));
                compressed.len() - 1
            });
            let (_, rsv, frame_payload) = &compressed[index];
            if rsv.is_empty() {
                let _ = self.with_outbox(idx, |_, out| out.send(msg.as_message()));
                continue;
            }
            let admitted = slot.link.admit(
                slot.link.queue.len(),
                &self.config.backpressure,
                &mut self.stats,
                self.now,
            );
            if admitted == Ok(true) {
                // Outside the connection's turn: the frame goes behind its queue.
                let Link { proto, queue, .. } = &mut slot.link;
                let sent =
                    queue.append(|buf| proto.send_encoded_frame(text, *rsv, frame_payload, buf));
                if sent.is_ok() {
                    // The payload did not go through this connection's own compressor.
                    if let Some(ext) = slot.link.proto.extension_mut() {
                        ext.reset_send_context();
                    }
                    self.stats.messages_out += 1;
                }
            }
            if !slot.dirty {
                slot.dirty = true;
                self.dirty.push(idx);
            }
        }
    }

    fn live(&self, id: ConnId) -> Option<usize> {
        let idx = id.index();
        (id.worker() == self.index && self.slot_generation(idx) == Some(id.generation()))
            .then_some(idx)
    }

    /// Runs `f` with an outbox on an open connection whose frames go to its queue, written at
    /// the end of the turn.
    fn with_outbox<R>(
        &mut self,
        idx: usize,
        f: impl FnOnce(&mut H, &mut Outbox<'_>) -> R,
    ) -> Option<R> {
        let slot = self.slab.get_mut(idx)?.as_mut()?;
        if slot.phase != Phase::Open || slot.user.is_none() {
            return None;
        }
        // Frames for a connection outside its own turn go behind its queue.
        let mut behind = std::mem::take(&mut self.cork);
        let mut sink = ConnSink::new(
            &mut slot.link,
            &mut behind,
            &self.config.backpressure,
            &mut self.stats,
            self.now,
        );
        let mut out = Outbox {
            id: ConnId::new(self.index, idx, slot.generation),
            sink: &mut sink,
            handle: &self.handle,
        };
        let result = f(&mut self.handler, &mut out);
        // A large run of frames moves into the queue with its buffer instead of being copied.
        slot.link.queue.take_rest(&mut behind, 0);
        behind.clear();
        self.cork = if behind.capacity() == 0 {
            self.pool.take()
        } else {
            behind
        };
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.push(idx);
        }
        Some(result)
    }

    fn flush_dirty(&mut self) {
        for idx in std::mem::take(&mut self.dirty) {
            if let Some(slot) = self.slab[idx].as_mut() {
                slot.dirty = false;
                self.flush(idx);
                self.schedule(idx);
            }
        }
    }

    fn shutdown(&mut self, timeout: Duration) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(self.now + timeout);
        for mut listener in std::mem::take(&mut self.listeners) {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        for idx in 0..self.slab.len() {
            let Some(slot) = self.slab[idx].as_mut() else {
                continue;
            };
            match slot.phase {
                Phase::Open => {
                    if slot
                        .link
                        .proto
                        .close(CloseCode::GOING_AWAY, "server shutdown", self.now)
                        .is_ok()
                    {
                        slot.link.ending = Some(Ending::Shutdown);
                    }
                    self.flush(idx);
                    self.schedule(idx);
                }
                Phase::Handshake => self.remove(idx, None),
                _ => {}
            }
        }
    }

    /// Arms the connection's timer for its earliest deadline.
    pub(crate) fn schedule(&mut self, idx: usize) {
        let Some(slot) = self.slab.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let config = &self.config;
        let next = match slot.phase {
            Phase::Handshake => slot.started.saturating_add(ms(config.handshake_timeout)),
            Phase::Draining | Phase::Lingering => {
                if slot.linger_until == NEVER {
                    slot.linger_until = self.tick.saturating_add(ms(config.protocol.close_timeout));
                }
                slot.linger_until
            }
            Phase::Open => {
                let idle = config.idle_timeout.map(|idle| {
                    let wait = if slot.ping_sent { idle } else { idle / 2 };
                    slot.last_rx.saturating_add(ms(wait))
                });
                let lifetime = config
                    .max_lifetime
                    .map(|life| slot.started.saturating_add(ms(life)));
                let protocol = slot
                    .link
                    .proto
                    .poll_timeout()
                    .map(|at| ms(at.saturating_duration_since(self.epoch)));
                [protocol, idle, lifetime]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(NEVER)
            }
        };
        // One live entry per connection: a later deadline is found when the earlier entry
        // fires; only an earlier one needs a new entry.
        if next != NEVER && next < slot.timer_at {
            slot.timer_at = next;
            self.timers
                .push(Reverse((next, idx as u32, slot.generation)));
        }
    }

    fn fire_timers(&mut self) {
        while let Some(&Reverse((at, idx, generation))) = self.timers.peek() {
            if at > self.tick {
                break;
            }
            self.timers.pop();
            let idx = idx as usize;
            let Some(slot) = self.slab.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            if slot.generation == generation && slot.timer_at == at {
                slot.timer_at = NEVER;
                self.on_timer(idx);
            }
        }
    }

    fn on_timer(&mut self, idx: usize) {
        let now = self.now;
        let tick = self.tick;
        let Some(slot) = self.slab[idx].as_mut() else {
            return;
        };
        match slot.phase {
            Phase::Handshake => {
                if tick
                    >= slot
                        .started
                        .saturating_add(ms(self.config.handshake_timeout))
                {
                    // Slow-loris: the request never completed.
                    self.stats.rejected += 1;
                    return self.remove(idx, None);
                }
            }
            Phase::Draining | Phase::Lingering => {
                if tick >= slot.linger_until {
                    return self.remove(idx, None);
                }
            }
            Phase::Open => {
                slot.link.proto.handle_timeout(now);
                if slot.link.proto.is_timed_out() {
                    slot.link.ending = Some(Ending::Timeout(Timeout::CloseHandshake));
                    return self.remove(idx, None);
                }
                let closing = slot.link.proto.state() != State::Open;
                if let Some(life) = self.config.max_lifetime {
                    if !closing && tick >= slot.started.saturating_add(ms(life)) {
                        let _ = slot
                            .link
                            .proto
                            .close(CloseCode::GOING_AWAY, "lifetime", now);
                        slot.link.ending = Some(Ending::Timeout(Timeout::Lifetime));
                        self.flush(idx);
                        return self.schedule(idx);
                    }
                }
                if let Some(idle) = self.config.idle_timeout {
                    if tick >= slot.last_rx.saturating_add(ms(idle)) && !closing {
                        let _ = slot
                            .link
                            .proto
                            .close(CloseCode::GOING_AWAY, "idle timeout", now);
                        slot.link.ending = Some(Ending::Timeout(Timeout::Idle));
                        self.flush(idx);
                        // The peer is unresponsive: do not wait for its close.
                        if let Some(slot) = self.slab[idx].as_mut() {
                            slot.stream.shutdown_write(&mut self.scratch);
                            slot.phase = Phase::Lingering;
                            slot.linger_until = tick + 1000;
                        }
                        return self.schedule(idx);
                    }
                    if tick >= slot.last_rx.saturating_add(ms(idle / 2))
                        && !slot.ping_sent
                        && !closing
                    {
                        slot.ping_sent = true;
                        // Idle: give back the compression state that can be rebuilt.
                        if let Some(ext) = slot.link.proto.extension_mut() {
                            ext.release_idle_state();
                        }
                        let _ = slot.link.proto.send(Message::Ping(b""), &mut self.cork);
                        self.flush(idx);
                    }
                }
            }
        }
        self.schedule(idx);
    }
}

/// Counts why a connection ended and tells the application, once.
fn closed<H: Handler>(handler: &mut H, stats: &mut Stats, user: H::Conn, why: CloseReason<'_>) {
    match why {
        CloseReason::Remote { .. } => stats.closed_remote += 1,
        CloseReason::Local(_) => stats.closed_local += 1,
        CloseReason::Protocol(_) => stats.closed_protocol += 1,
        CloseReason::Timeout(_) => stats.closed_timeout += 1,
        CloseReason::Shutdown => stats.closed_shutdown += 1,
        _ => stats.closed_abnormal += 1,
    }
    handler.on_close(user, why);
}
