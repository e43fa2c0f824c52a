//! The cross-thread [`Handle`]: commands to workers through a channel and a `mio::Waker`, and
//! the workers' counters.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

use sockeye_proto::{CloseCode, Message};

use crate::handler::{ConnId, Outbox};
use crate::topics::{
    Forwarded, Interest, Publication, PublishError, PublishReceipt, PublishReport, SlowConsumer,
    SubscribeError, validate_pattern,
};

/// An owned message for another thread.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedMessage {
    /// Text.
    Text(String),
    /// Binary.
    Binary(Vec<u8>),
    /// A ping (a control frame: at most 125 bytes, it leaves ahead of queued data).
    Ping(Vec<u8>),
    /// An unsolicited pong (a control frame, as a ping).
    Pong(Vec<u8>),
}

impl OwnedMessage {
    pub(crate) fn as_message(&self) -> Message<'_> {
        match self {
            OwnedMessage::Text(text) => Message::Text(text),
            OwnedMessage::Binary(bytes) => Message::Binary(bytes),
            OwnedMessage::Ping(bytes) => Message::Ping(bytes),
            OwnedMessage::Pong(bytes) => Message::Pong(bytes),
        }
    }
}

impl From<Message<'_>> for OwnedMessage {
    fn from(msg: Message<'_>) -> Self {
        match msg {
            Message::Text(text) => OwnedMessage::Text(text.to_owned()),
            Message::Binary(bytes) => OwnedMessage::Binary(bytes.to_vec()),
            Message::Ping(bytes) => OwnedMessage::Ping(bytes.to_vec()),
            Message::Pong(bytes) => OwnedMessage::Pong(bytes.to_vec()),
        }
    }
}

/// Code to run on a connection's worker: given the connection's state and an outbox, or
/// `None` when the connection is gone.
pub(crate) type Job = Box<dyn FnOnce(Option<(&mut dyn Any, &mut Outbox<'_>)>) + Send>;

pub(crate) enum Command {
    Send(ConnId, OwnedMessage),
    Close(ConnId, CloseCode, String),
    Run(ConnId, Job),
    Broadcast(Arc<OwnedMessage>),
    Publish(Arc<Publication>),
    #[cfg(feature = "fault-injection")]
    Panic,
}

/// The sending end of a worker's command channel, and its counters.
pub(crate) struct Remote {
    pub(crate) tx: SyncSender<Command>,
    pub(crate) waker: mio::Waker,
    pub(crate) stats: Arc<SharedStats>,
    pub(crate) signal: Arc<Signal>,
}

/// What a worker is told besides its commands.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    /// Set by senders, cleared by the worker before it drains its channel: one wake (an
    /// `eventfd` write) per batch of commands instead of one per command.
    pub(crate) woken: AtomicBool,
    /// Shut down, with this many milliseconds for the close handshakes (`u64::MAX`: not).
    pub(crate) shutdown_ms: AtomicU64,
    /// The worker's thread ended (returned, or died of a panic).
    pub(crate) gone: AtomicBool,
}

impl Signal {
    pub(crate) fn new() -> Self {
        Signal {
            woken: AtomicBool::new(false),
            shutdown_ms: AtomicU64::new(u64::MAX),
            gone: AtomicBool::new(false),
        }
    }
}

impl Remote {
    fn wake(&self) -> Result<(), HandleError> {
        if !self.signal.woken.swap(true, Ordering::AcqRel) {
            self.waker.wake().map_err(|_| HandleError::Stopped)?;
        }
        Ok(())
    }
}

/// A cheap, clonable handle to a running server, usable from any thread.
///
/// # Ordering
///
/// Frames for one connection leave in the order its worker runs the sends: sends from the
/// connection's callbacks in its turn, and sends from a `Handle` when the worker takes the
/// command from its channel (commands from one thread are taken in the order they were made).
/// A `Handle` send the worker ran before a callback's reply leaves before that reply, even while
/// it waits in the connection's queue; a `Handle` send made while the worker is running the
/// connection's callback leaves after what the callback sent. Control frames (pings, pongs,
/// closes) leave ahead of queued data, at the next frame boundary.
///
/// # A full channel
///
/// Each worker takes commands from a bounded channel
/// ([`ServerConfig::command_queue`](crate::ServerConfig::command_queue), 65 536 by default).
/// When it is full, sends fail at once with [`HandleError::Full`] (nothing is queued, nothing
/// blocks): the worker is behind, and the caller decides whether to retry, drop or slow down.
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

struct Inner {
    workers: Vec<Remote>,
    /// Which workers have subscribers for which topics.
    interest: Arc<Interest>,
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

/// Why a [`Handle`] could not pass a command on.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleError {
    /// The server (or the connection's worker) has stopped, or the id names no worker.
    Stopped,
    /// The worker's command channel is full: it is behind. Nothing was queued.
    Full,
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandleError::Stopped => "server is not running",
            HandleError::Full => "the worker's command channel is full",
        })
    }
}

impl std::error::Error for HandleError {}

/// What became of a send made with [`Handle::send_tracked`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// The message is queued for the connection (in its cork or queue, or already written).
    Queued,
    /// Refused: the connection's queue is over its limit (policy `Fail`).
    Backpressure,
    /// Dropped silently over the limit (policy `Drop`).
    Dropped,
    /// The connection is closing (a close frame was sent or received).
    Closed,
    /// No such connection: it ended (or the id is stale).
    NoConnection,
    /// A ping or pong payload over 125 bytes.
    ControlTooLong,
}

/// The outcome of a tracked send, to wait for.
#[derive(Debug)]
pub struct Receipt(Receiver<SendOutcome>);

impl Receipt {
    /// Waits for the worker to run the send.
    pub fn wait(self) -> SendOutcome {
        // A worker that stops drops the command: nothing reaches the connection.
        self.0.recv().unwrap_or(SendOutcome::NoConnection)
    }

    /// Waits at most `timeout`; `None` when the worker has not run the send yet.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<SendOutcome> {
        match self.0.recv_timeout(timeout) {
            Ok(outcome) => Some(outcome),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(SendOutcome::NoConnection),
        }
    }
}

impl Handle {
    pub(crate) fn new(workers: Vec<Remote>, shutdown_timeout: Duration) -> Self {
        Handle {
            inner: Arc::new(Inner {
                workers,
                interest: Arc::default(),
                stopping: AtomicBool::new(false),
                shutdown_timeout,
            }),
        }
    }

    fn post(&self, worker: usize, command: Command) -> Result<(), HandleError> {
        let remote = self.inner.workers.get(worker).ok_or(HandleError::Stopped)?;
        if remote.signal.gone.load(Ordering::Acquire) {
            return Err(HandleError::Stopped);
        }
        remote.tx.try_send(command).map_err(|e| match e {
            TrySendError::Full(_) => HandleError::Full,
            TrySendError::Disconnected(_) => HandleError::Stopped,
        })?;
        remote.wake()
    }

    /// Sends a message to one connection: fire and forget. The outcome (queued, refused by
    /// backpressure, connection gone) is not reported: [`send_tracked`](Self::send_tracked)
    /// reports it, [`with_conn`](Self::with_conn) runs code where it is known.
    ///
    /// # Errors
    ///
    /// [`HandleError::Stopped`] when the server has stopped, [`HandleError::Full`] when the
    /// worker's command channel is full.
    pub fn send(&self, id: ConnId, msg: Message<'_>) -> Result<(), HandleError> {
        self.post(id.worker(), Command::Send(id, msg.into()))
    }

    /// Sends a message to one connection and reports what became of it.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_tracked(&self, id: ConnId, msg: Message<'_>) -> Result<Receipt, HandleError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let msg = OwnedMessage::from(msg);
        let job: Job = Box::new(move |conn| {
            let outcome = match conn {
                None => SendOutcome::NoConnection,
                Some((_, out)) => out.send_outcome(msg.as_message()),
            };
            let _ = tx.send(outcome);
        });
        self.post(id.worker(), Command::Run(id, job))?;
        Ok(Receipt(rx))
    }

    /// Runs `f` on connection `id`'s worker with its state and an [`Outbox`], as a callback
    /// runs: send with outcomes, read [`Outbox::buffered_amount`], close. `C` is the handler's
    /// [`Conn`](crate::Handler::Conn) type. When the connection is gone (or `C` is another
    /// type), `f` is dropped without running: a channel sender it owns is dropped then, which
    /// tells the caller.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn with_conn<C, F>(&self, id: ConnId, f: F) -> Result<(), HandleError>
    where
        C: 'static,
        F: FnOnce(&mut C, &mut Outbox<'_>) + Send + 'static,
    {
        let job: Job = Box::new(move |conn| {
            if let Some((state, out)) = conn {
                match state.downcast_mut::<C>() {
                    Some(state) => f(state, out),
                    None => log::error!("with_conn: the connection's state is not of that type"),
                }
            }
        });
        self.post(id.worker(), Command::Run(id, job))
    }

    /// Starts the closing handshake of one connection.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn close(&self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), HandleError> {
        self.post(id.worker(), Command::Close(id, code, reason.to_owned()))
    }

    /// Sends a message to every open connection of every live worker (a worker that stopped
    /// is skipped).
    ///
    /// # Errors
    ///
    /// [`HandleError::Stopped`] when no worker is running; [`HandleError::Full`] when a live
    /// worker's channel is full (the others still get the message).
    pub fn broadcast(&self, msg: Message<'_>) -> Result<(), HandleError> {
        let msg = Arc::new(OwnedMessage::from(msg));
        let mut result = Err(HandleError::Stopped);
        for worker in 0..self.inner.workers.len() {
            match self.post(worker, Command::Broadcast(Arc::clone(&msg))) {
                Ok(()) => result = result.or(Ok(())),
                Err(HandleError::Full) => result = Err(HandleError::Full),
                Err(_) => {}
            }
        }
        result
    }

    /// Subscribes connection `id` to `pattern` (a topic, or a pattern with the wildcards `*`
    /// and `>`: see [`Outbox::subscribe_with`]), with `policy` for when it cannot keep up. Runs
    /// on the connection's worker; a connection that is gone by then is not subscribed.
    ///
    /// # Errors
    ///
    /// [`SubscribeError::Topic`] for an invalid pattern (checked here, at once); otherwise as
    /// [`send`](Self::send).
    pub fn subscribe(
        &self,
        id: ConnId,
        pattern: &str,
        policy: SlowConsumer,
    ) -> Result<(), SubscribeError> {
        validate_pattern(pattern)?;
        let pattern = pattern.to_owned();
        let job: Job = Box::new(move |conn| {
            if let Some((_, out)) = conn {
                let _ = out.subscribe_with(&pattern, policy);
            }
        });
        Ok(self.post(id.worker(), Command::Run(id, job))?)
    }

    /// Unsubscribes connection `id` from `pattern` (as it was subscribed: a pattern is left by
    /// its own text, not by a topic it matches).
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe).
    pub fn unsubscribe(&self, id: ConnId, pattern: &str) -> Result<(), SubscribeError> {
        validate_pattern(pattern)?;
        let pattern = pattern.to_owned();
        let job: Job = Box::new(move |conn| {
            if let Some((_, out)) = conn {
                out.unsubscribe(&pattern);
            }
        });
        Ok(self.post(id.worker(), Command::Run(id, job))?)
    }

    /// Publishes `msg` to every subscriber of `topic`, on every worker: the frame is encoded
    /// once here and shared; one command goes to each worker that has subscribers. The outcome
    /// is not reported ([`publish_tracked`](Self::publish_tracked) reports it). See
    /// [the ordering rules](crate::topics).
    ///
    /// # Errors
    ///
    /// [`PublishError::Topic`] for a topic that is not a valid literal topic (no wildcards),
    /// [`PublishError::NotData`] for a ping or pong, [`PublishError::TooLarge`] for a payload
    /// over what the server's backplane carries (nothing delivered), [`PublishError::Handle`]
    /// with [`HandleError::Full`] when a worker's channel was full (the others got the message).
    pub fn publish(&self, topic: &str, msg: Message<'_>) -> Result<(), PublishError> {
        let p = Publication::new(topic, msg)?;
        self.dispatch(p, None).map(drop)
    }

    /// Publishes to every subscriber of `topic` but connection `skip` (a chat room's sender).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    pub fn publish_excluding(
        &self,
        topic: &str,
        msg: Message<'_>,
        skip: ConnId,
    ) -> Result<(), PublishError> {
        let mut p = Publication::new(topic, msg)?;
        p.skip = Some(skip);
        self.dispatch(p, None).map(drop)
    }

    /// Publishes, and reports what the publish did at each subscriber: delivered, refused,
    /// dropped or conflated by a slow-consumer policy, closed; and the workers it could not
    /// reach. Publishers that do not ask pay nothing for this.
    ///
    /// # Errors
    ///
    /// [`PublishError::Topic`] and [`PublishError::NotData`] as [`publish`](Self::publish); a
    /// full channel is reported in [`PublishReport::workers_missed`] instead.
    pub fn publish_tracked(
        &self,
        topic: &str,
        msg: Message<'_>,
    ) -> Result<PublishReceipt, PublishError> {
        let mut p = Publication::new(topic, msg)?;
        let (tx, rx) = mpsc::channel();
        p.report = Some(tx);
        let (posted, missed) = self.dispatch(p, None)?;
        let report = PublishReport {
            workers_missed: missed,
            ..PublishReport::default()
        };
        Ok(PublishReceipt::new(rx, posted, report))
    }

    /// Refuses a local publish that the backplane could not carry to the other nodes.
    pub(crate) fn admit(&self, p: &Publication) -> Result<(), PublishError> {
        if p.remote {
            return Ok(());
        }
        let limit = self
            .inner
            .interest
            .backplane()
            .and_then(|b| b.max_payload(p.is_text()));
        match limit {
            Some(max) if p.payload().len() > max => Err(PublishError::TooLarge {
                len: p.payload().len(),
                max,
            }),
            _ => Ok(()),
        }
    }

    /// Sends `p` to each worker with subscribers for its topic: worker `local.0` (the caller's
    /// own, in a callback) gets it in `local.1`, run at the end of its turn. Returns the workers
    /// reached and missed; an untracked publish fails with `Full` when any was full.
    pub(crate) fn dispatch(
        &self,
        p: Publication,
        mut local: Option<(usize, &mut Vec<Arc<Publication>>)>,
    ) -> Result<(usize, u64), PublishError> {
        self.admit(&p)?;
        let workers = self.inner.interest.workers(&p.topic);
        let tracked = p.report.is_some();
        let p = Arc::new(p);
        let (mut posted, mut missed, mut full) = (0, 0, false);
        for worker in workers {
            if let Some((me, deferred)) = local.as_mut() {
                if *me == worker {
                    deferred.push(Arc::clone(&p));
                    posted += 1;
                    continue;
                }
            }
            match self.post(worker, Command::Publish(Arc::clone(&p))) {
                Ok(()) => posted += 1,
                Err(e) => {
                    missed += 1;
                    full |= e == HandleError::Full;
                }
            }
        }
        if !p.remote {
            if let Some(backplane) = self.inner.interest.backplane() {
                backplane.forward(Forwarded(p));
            }
        }
        if full && !tracked {
            return Err(PublishError::Handle(HandleError::Full));
        }
        Ok((posted, missed))
    }

    pub(crate) fn interest(&self) -> Arc<Interest> {
        Arc::clone(&self.inner.interest)
    }

    /// Shuts down gracefully: stop accepting, close every connection with 1001, wait for the
    /// close handshakes up to the configured shutdown timeout, then the workers return.
    /// Returns at once; [`Server::run`](crate::Server::run) or
    /// [`Running::join`](crate::Running::join) returns when the workers are done. Never
    /// refused by a full channel.
    pub fn shutdown(&self) {
        if self.inner.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        let ms = u64::try_from(self.inner.shutdown_timeout.as_millis()).unwrap_or(u64::MAX - 1);
        for remote in &self.inner.workers {
            remote.signal.shutdown_ms.store(ms, Ordering::Release);
            // A worker that already stopped needs no wake.
            let _ = remote.waker.wake();
        }
    }

    /// Makes worker `worker` panic outside any callback, as an engine bug would: for tests of
    /// what a dead worker costs (feature `fault-injection`, never in a release build of the
    /// binary).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn inject_worker_panic(&self, worker: usize) -> Result<(), HandleError> {
        self.post(worker, Command::Panic)
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

            /// Every counter with its name, in declaration order (for exporting them).
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($field), self.$field),)*]
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

            /// A worker whose thread ended holds no connection.
            pub(crate) fn worker_gone(&self) {
                self.connections_open.store(0, Ordering::Relaxed);
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
    /// Sends that found the connection's queue over its backpressure limit (each one: refused
    /// with policy `Fail`, dropped with `Drop`, or closing the connection with `Close`).
    sends_over_limit,
    /// Sends dropped silently by the backpressure policy `Drop`.
    sends_dropped,
    /// Connections closed by the backpressure policy `Close`.
    backpressure_closes,
    /// Panics of the application's callbacks, each contained to its connection.
    handler_panics,
    /// Times reading was paused over the high-water mark.
    read_pauses,
    /// Publishes this worker ran for its subscribers (one per publish with subscribers here).
    publications,
    /// Subscriptions held now.
    subscriptions,
    /// Pending messages of conflating subscribers replaced by a newer one of their topic.
    conflated,
    /// TLS failures: handshakes that failed, bad records, alerts (not a TCP close without
    /// `close_notify`, which ends the stream as over plain TCP).
    tls_errors,
}
