//! One worker: a `mio` loop over parts that each own one concern.
//!
//! | part | concern |
//! |---|---|
//! | this file | the loop: poll, accept, dispatch socket events and commands, shutdown |
//! | [`driver`] | the connection driver: reading, events to the handler, teardown, on any [`Transport`] and on the clock it is given |
//! | [`upgrade`] | the handshake phase: the upgrade request, `on_upgrade`, plain HTTP |
//! | [`flush`] | the writing side: a turn's write, the writable edge, backpressure marks, the end of a connection |
//! | [`output`] | a connection's queue, control lane and the cork: the one ordering rule |
//! | [`conns`] | the slab of connections, free list and generations |
//! | [`timers`] | the clock and deadline heap, and what each deadline does |
//! | [`io`] | the receive buffer, cork, pool and TLS scratch |
//! | [`app`] | the handler, the handle, the counters; the one place an `Outbox` is built |
//! | [`commands`] | what other threads ask: send, close, broadcast, shutdown |
//! | [`topics`] | the worker's subscriptions, and a publish's delivery to its subscribers |
//!
//! The data path of one connection's turn, as the code has it:
//!
//! ```text
//!  readable edge ─▶ read (≤ read_budget times, until a short read)
//!        socket ─read─▶ recv buffer [leftover | new bytes] ─▶ handshake or handle_read
//!                                              │ events borrow the buffer
//!                                              ▼
//!                          Handler::on_message(out) ─ out.send ─▶ cork (or behind the queue)
//!                                                    ─ large ──▶ one writev: cork + payload
//!        after each read: one write of the cork; what the kernel leaves ─▶ the queue
//!  writable edge ─▶ the queue's rest (control frames at the next frame boundary)
//!  commands (Handle) ─▶ frames into the queue ─▶ one write per connection at the turn's end
//!  publish (a command, or a callback's after its read) ─▶ each subscriber's queue, by reference
//!        ─▶ one vectored write per subscriber after that read (commands: at the turn's end)
//!  turn's end ─▶ reads left over from the budget, timers due, those writes
//! ```

use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use std::sync::atomic::Ordering;

use crate::handle::{Command, SharedStats, Signal};
use crate::handler::Handler;
use crate::transport::{Scratch, Stream, Transport};

mod app;
mod commands;
mod conns;
mod driver;
mod flush;
mod io;
mod output;
mod timers;
mod topics;
mod upgrade;

#[cfg(test)]
mod tests;

pub(crate) use conns::Phase;
pub(crate) use driver::Driver;

pub(crate) const WAKER: Token = Token(usize::MAX);
const LISTENER_BASE: usize = usize::MAX - 64;
/// Connections accepted per listener per loop turn before others get their turn.
const ACCEPT_BUDGET: usize = 256;

/// A stream with the worker's scratch buffers: what [`output`] writes to.
pub(crate) struct Wire<'a, S> {
    pub(crate) stream: &'a mut S,
    pub(crate) scratch: &'a mut Scratch,
}

impl<S: Transport> output::Sock for Wire<'_, S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.write(buf, self.scratch)
    }

    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        self.stream.write_vectored(bufs, self.scratch)
    }
}

/// The loop of one worker thread.
pub(crate) struct Worker<H: Handler> {
    pub(crate) poll: Poll,
    pub(crate) listeners: Vec<TcpListener>,
    pub(crate) commands: Receiver<Command>,
    pub(crate) shared_stats: Arc<SharedStats>,
    pub(crate) signal: Arc<Signal>,
    pub(crate) driver: Driver<H, Stream>,
    /// A listener announced clients not yet accepted.
    pub(crate) accept_pending: bool,
    /// Shutting down: the time the workers stop regardless.
    pub(crate) stopping: Option<Instant>,
}

impl<H: Handler> Worker<H> {
    pub(crate) fn run(mut self) -> std::io::Result<()> {
        for (i, listener) in self.listeners.iter_mut().enumerate() {
            let token = Token(LISTENER_BASE + i);
            self.poll
                .registry()
                .register(listener, token, Interest::READABLE)?;
        }
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            self.driver.timers.set_now(Instant::now());
            for event in events.iter() {
                match event.token() {
                    WAKER => self.commands(),
                    Token(t) if t >= LISTENER_BASE => self.accept_pending = true,
                    Token(idx) => {
                        let closed = event.is_read_closed() || event.is_error();
                        let (readable, writable) = (event.is_readable(), event.is_writable());
                        self.driver.event(idx, readable, writable, closed);
                    }
                }
            }
            if std::mem::take(&mut self.driver.freed) && self.stopping.is_none() {
                self.accept_pending = true;
            }
            if self.accept_pending {
                self.accept();
            }
            self.driver.end_turn();
            self.shared_stats.publish(&self.driver.app.stats);
            if self.stopped() {
                return Ok(());
            }
        }
    }

    /// How long the next poll may sleep: not past the next deadline.
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.driver.ready.is_empty() || self.accept_pending {
            return Some(Duration::ZERO);
        }
        // The shutdown deadline is a timer too: without it the loop would sleep until the next
        // connection timer and overrun `shutdown_timeout`.
        [self.driver.timers.next(), self.stopping]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Whether a shutdown is complete: every connection gone, or the deadline passed (then
    /// the rest are dropped).
    fn stopped(&mut self) -> bool {
        let Some(deadline) = self.stopping else {
            return false;
        };
        if self.driver.conns.open() == 0 {
            return true;
        }
        if self.driver.timers.now < deadline {
            return false;
        }
        for idx in 0..self.driver.conns.capacity() {
            self.driver.remove(idx, Some(crate::CloseReason::Shutdown));
        }
        self.shared_stats.publish(&self.driver.app.stats);
        true
    }

    fn accept(&mut self) {
        self.accept_pending = false;
        if self.stopping.is_some() {
            return;
        }
        for i in 0..self.listeners.len() {
            let mut drained = false;
            for _ in 0..ACCEPT_BUDGET {
                if self.driver.conns.open() >= self.driver.config.max_connections {
                    // Accepting pauses; a closing connection resumes it. The kernel's backlog
                    // holds the clients meanwhile.
                    return;
                }
                match self.listeners[i].accept() {
                    Ok((stream, _)) => self.insert(stream),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        drained = true;
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // EMFILE and friends: wait for a connection to close before retrying.
                        log::warn!("worker {}: accept failed: {e}", self.driver.app.index);
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

    fn insert(&mut self, tcp: mio::net::TcpStream) {
        // Latency first: frames leave as soon as they are written.
        let _ = tcp.set_nodelay(true);
        let Some(stream) = self.transport(tcp) else {
            return;
        };
        let idx = self.driver.insert(stream);
        let interest = Interest::READABLE | Interest::WRITABLE;
        let Some(slot) = self.driver.conns.get_mut(idx) else {
            return;
        };
        if let Err(e) = self
            .poll
            .registry()
            .register(slot.stream.tcp_mut(), Token(idx), interest)
        {
            log::warn!("worker {}: register failed: {e}", self.driver.app.index);
            self.driver.remove(idx, None);
        }
    }

    /// Wraps an accepted socket in TLS when the server terminates TLS.
    fn transport(&mut self, tcp: mio::net::TcpStream) -> Option<Stream> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.driver.config.tls {
            return match tls.session() {
                Ok(session) => Some(Stream::tls(tcp, session)),
                Err(e) => {
                    log::warn!("worker {}: TLS session failed: {e}", self.driver.app.index);
                    self.driver.app.stats.tls_errors += 1;
                    None
                }
            };
        }
        Some(Stream::plain(tcp))
    }

    fn commands(&mut self) {
        // Cleared before draining: a command sent from now on wakes the loop again.
        self.signal.woken.store(false, Ordering::Release);
        let shutdown = self.signal.shutdown_ms.load(Ordering::Acquire);
        if shutdown != u64::MAX {
            self.shutdown(Duration::from_millis(shutdown));
        }
        loop {
            match self.commands.try_recv() {
                Ok(Command::Send(id, msg)) => self.driver.send_to(id, &msg),
                Ok(Command::Close(id, code, reason)) => self.driver.close_id(id, code, &reason),
                Ok(Command::Run(id, job)) => self.driver.run_job(id, job),
                Ok(Command::Broadcast(msg)) => self.driver.broadcast(&msg),
                Ok(Command::Publish(p)) => self.driver.publish(&p),
                #[cfg(feature = "fault-injection")]
                Ok(Command::Panic) => panic!("injected fault in worker {}", self.driver.app.index),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }

    fn shutdown(&mut self, timeout: Duration) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(self.driver.timers.now + timeout);
        for mut listener in std::mem::take(&mut self.listeners) {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.driver.shutdown();
    }
}
