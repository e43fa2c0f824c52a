//! The cross-thread [`Handle`]: commands to workers through a channel and a `mio::Waker`, and
//! the workers' counters.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

use sockeye_proto::{CloseCode, Message};

use crate::handler::ConnId;

/// An owned message for another thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedMessage {
    /// Text.
    Text(String),
    /// Binary.
    Binary(Vec<u8>),
}

impl OwnedMessage {
    pub(crate) fn as_message(&self) -> Message<'_> {
        match self {
            OwnedMessage::Text(text) => Message::Text(text),
            OwnedMessage::Binary(bytes) => Message::Binary(bytes),
        }
    }
}

impl From<Message<'_>> for OwnedMessage {
    fn from(msg: Message<'_>) -> Self {
        match msg {
            Message::Text(text) => OwnedMessage::Text(text.to_owned()),
            Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => {
                OwnedMessage::Binary(bytes.to_vec())
            }
        }
    }
}

#[derive(Debug)]
pub(crate) enum Command {
    Send(ConnId, OwnedMessage),
    Close(ConnId, CloseCode, String),
    Broadcast(Arc<OwnedMessage>),
    Shutdown(Duration),
}

pub(crate) struct Remote {
    pub(crate) tx: Sender<Command>,
    pub(crate) waker: mio::Waker,
    pub(crate) stats: Arc<SharedStats>,
}

/// A cheap, clonable handle to a running server, usable from any thread.
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

struct Inner {
    workers: Vec<Remote>,
    stopping: AtomicBool,
    shutdown_timeout: Duration,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.inner.workers.len())
            .finish_non_exhaustive()
    }
}

/// The server is gone (shut down) or the id names no worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandleError;

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("server is not running")
    }
}

impl std::error::Error for HandleError {}

impl Handle {
    pub(crate) fn new(workers: Vec<Remote>, shutdown_timeout: Duration) -> Self {
        Handle {
            inner: Arc::new(Inner {
                workers,
                stopping: AtomicBool::new(false),
                shutdown_timeout,
            }),
        }
    }

    fn post(&self, worker: usize, command: Command) -> Result<(), HandleError> {
        let remote = self.inner.workers.get(worker).ok_or(HandleError)?;
        remote.tx.send(command).map_err(|_| HandleError)?;
        remote.waker.wake().map_err(|_| HandleError)
    }

    /// Sends a message to one connection (dropped if it has closed meanwhile).
    ///
    /// # Errors
    ///
    /// [`HandleError`] when the server has stopped.
    pub fn send(&self, id: ConnId, msg: Message<'_>) -> Result<(), HandleError> {
        self.post(id.worker(), Command::Send(id, msg.into()))
    }

    /// Starts the closing handshake of one connection.
    ///
    /// # Errors
    ///
    /// [`HandleError`] when the server has stopped.
    pub fn close(&self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), HandleError> {
        self.post(id.worker(), Command::Close(id, code, reason.to_owned()))
    }

    /// Sends a message to every open connection of every worker.
    ///
    /// # Errors
    ///
    /// [`HandleError`] when the server has stopped.
    pub fn broadcast(&self, msg: Message<'_>) -> Result<(), HandleError> {
        let msg = Arc::new(OwnedMessage::from(msg));
        for worker in 0..self.inner.workers.len() {
            self.post(worker, Command::Broadcast(Arc::clone(&msg)))?;
        }
        Ok(())
    }

    /// Shuts down gracefully: stop accepting, close every connection with 1001, wait for the
    /// close handshakes up to the configured shutdown timeout, then the workers return.
    /// Returns at once; [`Server::run`](crate::Server::run) or
    /// [`Running::join`](crate::Running::join) returns when the workers are done.
    pub fn shutdown(&self) {
        if self.inner.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        for worker in 0..self.inner.workers.len() {
            // A worker that already stopped needs no command.
            let _ = self.post(worker, Command::Shutdown(self.inner.shutdown_timeout));
        }
    }

    /// The counters of every worker, added up (each is read without locks).
    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for remote in &self.inner.workers {
            total.add(&remote.stats.read());
        }
        total
    }

    /// The counters of each worker.
    pub fn worker_stats(&self) -> Vec<Stats> {
        self.inner.workers.iter().map(|r| r.stats.read()).collect()
    }
}

macro_rules! stats {
    ($($(#[$doc:meta])* $field:ident,)*) => {
        /// Counters of the engine (per worker or summed), published once per loop turn.
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Stats {
            $($(#[$doc])* pub $field: u64,)*
        }

        impl Stats {
            fn add(&mut self, other: &Stats) {
                $(self.$field += other.$field;)*
            }
        }

        /// The published copy of a worker's counters.
        #[derive(Debug, Default)]
        pub(crate) struct SharedStats {
            $($field: AtomicU64,)*
        }

        impl SharedStats {
            pub(crate) fn publish(&self, stats: &Stats) {
                $(self.$field.store(stats.$field, Ordering::Relaxed);)*
            }

            pub(crate) fn read(&self) -> Stats {
                Stats { $($field: self.$field.load(Ordering::Relaxed),)* }
            }
        }
    };
}

stats! {
    /// Connections open now (upgraded or handshaking).
    connections_open,
    /// TCP connections accepted.
    accepted,
    /// Upgrades completed.
    upgraded,
    /// Handshakes refused (bad request, application reject, handshake timeout).
    rejected,
    /// Plain HTTP requests answered.
    http_requests,
    /// Messages received.
    messages_in,
    /// Messages sent.
    messages_out,
    /// Bytes read from sockets.
    bytes_in,
    /// Bytes written to sockets.
    bytes_out,
    /// Connections closed by the peer's close frame.
    closed_remote,
    /// Connections closed by us (application or handle).
    closed_local,
    /// Connections closed for a protocol error.
    closed_protocol,
    /// Connections closed by a timeout (idle, close handshake, lifetime).
    closed_timeout,
    /// Connections that ended with a socket error or without a close frame.
    closed_abnormal,
    /// Connections closed by shutdown.
    closed_shutdown,
    /// Protocol errors answered with 1002.
    protocol_errors_1002,
    /// Protocol errors answered with 1007 (invalid UTF-8 or compressed data).
    protocol_errors_1007,
    /// Protocol errors answered with 1009 (limits).
    protocol_errors_1009,
    /// Sends refused, dropped or closing for backpressure.
    backpressure_events,
    /// Times reading was paused over the high-water mark.
    read_pauses,
    /// TLS failures: handshakes that failed, bad records, alerts (not a TCP close without
    /// `close_notify`, which ends the stream as over plain TCP).
    tls_errors,
}
