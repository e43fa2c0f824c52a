//! The application side of a worker: the handler, the handle, the counters, and the one place
//! an [`Outbox`] is built.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use sockeye_proto::{CloseCode, Message, ProtocolError, SendError as ProtoSendError};

use super::Wire;
use super::conns::{Ending, Link};
use super::io::Bufs;
use super::topics::Topics;
use crate::config::{Backpressure, BackpressurePolicy};
use crate::handle::{Handle, Stats};
use crate::handler::{CloseReason, ConnId, Handler, Outbox, SendError, Sink};
use crate::topics::{Publication, PublishError, SlowConsumer, TopicError};
use crate::transport::Transport;

/// What the application gave the worker, and what the worker tells it.
pub(crate) struct App<H> {
    /// This worker's index (the first part of its connections' ids).
    pub(crate) index: usize,
    pub(crate) handler: H,
    pub(crate) handle: Handle,
    pub(crate) stats: Stats,
    /// The subscriptions of this worker's connections.
    pub(crate) topics: Topics,
}

impl<H: Handler> App<H> {
    /// Runs `f` with an [`Outbox`] for connection `id`: its frames go where the connection's
    /// frames go now ([`super::output`]); with its `stream`, a large message may leave at once
    /// from the caller's bytes. `None` when `f` panicked: the connection is closing with 1011.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn with_outbox<S: Transport, R>(
        &mut self,
        id: ConnId,
        link: &mut Link,
        stream: Option<&mut S>,
        bufs: &mut Bufs,
        backpressure: &Backpressure,
        now: Instant,
        f: impl FnOnce(&mut H, &mut Outbox<'_>) -> R,
    ) -> Option<R> {
        let App {
            handler,
            handle,
            stats,
            topics,
            ..
        } = self;
        let Bufs {
            cork,
            raw,
            scratch,
            pool,
        } = bufs;
        let mut sink = ConnSink {
            link,
            cork,
            raw: *raw,
            backpressure,
            stats,
            now,
            direct: stream.map(|stream| Wire { stream, scratch }),
            pool,
            topics,
        };
        let mut out = Outbox {
            id,
            sink: &mut sink,
            handle,
        };
        // A callback is a fault boundary: a panic costs its connection only (closed with
        // 1011, `on_close` with `HandlerPanic`), never the worker.
        match panic::catch_unwind(AssertUnwindSafe(|| f(handler, &mut out))) {
            Ok(result) => Some(result),
            Err(payload) => {
                report_panic(sink.stats, self.index, Some(id), &payload);
                let why = Ending::Panic;
                sink.link
                    .close(CloseCode::INTERNAL_ERROR, "internal error", now, why);
                None
            }
        }
    }

    /// Counts a protocol error by its close code and ends the application's part.
    pub(crate) fn protocol_error(&mut self, user: Option<H::Conn>, err: ProtocolError) {
        let stats = &mut self.stats;
        match err.close_code().0 {
            1007 => stats.protocol_errors_1007 += 1,
            1009 => stats.protocol_errors_1009 += 1,
            _ => stats.protocol_errors_1002 += 1,
        }
        if let Some(user) = user {
            self.closed(user, CloseReason::Protocol(err));
        }
    }

    /// Counts why a connection ended and tells the application, once.
    pub(crate) fn closed(&mut self, user: H::Conn, why: CloseReason<'_>) {
        let stats = &mut self.stats;
        match why {
            CloseReason::Remote { .. } => stats.closed_remote += 1,
            CloseReason::Local(_) => stats.closed_local += 1,
            CloseReason::Protocol(_) => stats.closed_protocol += 1,
            CloseReason::Timeout(_) => stats.closed_timeout += 1,
            CloseReason::Shutdown => stats.closed_shutdown += 1,
            _ => stats.closed_abnormal += 1,
        }
        let handler = &mut self.handler;
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| handler.on_close(user, why)))
        {
            report_panic(&mut self.stats, self.index, None, &payload);
        }
    }

    /// Runs a callback that has no connection yet (`on_upgrade`, `on_http`): `None` when it
    /// panicked (counted and logged).
    pub(crate) fn guard<R>(&mut self, f: impl FnOnce(&mut H) -> R) -> Option<R> {
        let handler = &mut self.handler;
        match panic::catch_unwind(AssertUnwindSafe(|| f(handler))) {
            Ok(result) => Some(result),
            Err(payload) => {
                report_panic(&mut self.stats, self.index, None, &payload);
                None
            }
        }
    }
}

/// Counts and logs a panic of the application's callback.
fn report_panic(
    stats: &mut Stats,
    worker: usize,
    id: Option<ConnId>,
    payload: &Box<dyn Any + Send>,
) {
    stats.handler_panics += 1;
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)");
    match id {
        Some(id) => log::error!("worker {worker}: handler panicked on {id:?}: {text}"),
        None => log::error!("worker {worker}: handler panicked: {text}"),
    }
}

/// Messages at least this large are written from the caller's bytes, with the frames corked
/// before them, in one vectored write (with nothing queued; over TLS encrypted from where they
/// lie): no copy into the cork, and only what the socket does not take is copied, into the
/// queue.
const DIRECT_MIN: usize = 64 << 10;

/// The [`Sink`] behind an `Outbox`.
struct ConnSink<'a, S> {
    link: &'a mut Link,
    cork: &'a mut Vec<u8>,
    raw: usize,
    backpressure: &'a Backpressure,
    stats: &'a mut Stats,
    now: Instant,
    /// The socket, for large messages written straight from the caller's bytes.
    direct: Option<Wire<'a, S>>,
    pool: &'a mut super::io::Pool,
    topics: &'a mut Topics,
}

impl<S: Transport> ConnSink<'_, S> {
    /// Sends with a backlog: data behind it, control frames (and the replies owed) on the
    /// control lane.
    fn send_behind(&mut self, msg: Message<'_>) -> Result<(), ProtoSendError> {
        self.link.poll_transmit(self.cork);
        let Link { proto, queue, .. } = &mut *self.link;
        match msg {
            Message::Ping(_) | Message::Pong(_) => {
                queue.control(self.cork, |buf| proto.send(msg, buf))
            }
            _ => proto.send(msg, queue.data(self.cork)),
        }
    }

    /// Writes a large message's frame straight from `msg`'s bytes when it can; `None` when it
    /// must be encoded into the cork as usual.
    fn send_direct(&mut self, msg: Message<'_>) -> Option<Result<(), ProtoSendError>> {
        let wire = self.direct.as_mut()?;
        let len = match msg {
            Message::Text(text) => text.len(),
            Message::Binary(bytes) => bytes.len(),
            Message::Ping(_) | Message::Pong(_) => return None,
        };
        if len < DIRECT_MIN || !self.link.queue.is_empty() {
            return None;
        }
        let Link { proto, queue, .. } = &mut *self.link;
        let payload = match proto.send_split(msg, self.cork) {
            Ok(Some(payload)) => payload,
            Ok(None) => return Some(Ok(())),
            Err(e) => return Some(Err(e)),
        };
        let sent = queue.write_direct(self.cork, self.raw, payload, wire, self.pool);
        self.stats.bytes_out += sent as u64;
        self.cork.clear();
        self.raw = 0;
        Some(Ok(()))
    }
}

impl<S: Transport> Sink for ConnSink<'_, S> {
    fn send(&mut self, msg: Message<'_>) -> Result<bool, SendError> {
        let buffered = self.buffered_amount();
        if !self
            .link
            .admit(buffered, self.backpressure, self.stats, self.now)?
        {
            return Ok(false);
        }
        let result = if self.link.queue.is_empty() {
            // No backlog: every frame goes to the cork in order, the replies the protocol owes
            // first (`send` appends them).
            match self.send_direct(msg) {
                Some(result) => result,
                None => self.link.proto.send(msg, self.cork),
            }
        } else {
            self.send_behind(msg)
        };
        match result {
            Ok(()) => {
                self.stats.messages_out += 1;
                Ok(true)
            }
            Err(ProtoSendError::ControlTooLong(_)) => Err(SendError::ControlTooLong),
            Err(_) => Err(SendError::Closed),
        }
    }

    fn close(&mut self, code: CloseCode, reason: &str) {
        self.link.close(code, reason, self.now, Ending::Local(code));
    }

    fn buffered_amount(&self) -> usize {
        self.link.queue.len() + self.cork.len()
    }

    fn subscribe(
        &mut self,
        id: ConnId,
        pattern: &str,
        policy: Option<SlowConsumer>,
    ) -> Result<bool, TopicError> {
        let policy = policy.unwrap_or(match self.backpressure.policy {
            BackpressurePolicy::Drop => SlowConsumer::Drop,
            BackpressurePolicy::Close(code) => SlowConsumer::Close(code),
            _ => SlowConsumer::Fail,
        });
        let added = self.topics.subscribe(id.index(), pattern, policy)?;
        self.stats.subscriptions = self.topics.subscriptions() as u64;
        Ok(added)
    }

    fn unsubscribe(&mut self, id: ConnId, pattern: &str) -> bool {
        let removed = self.topics.unsubscribe(id.index(), pattern);
        self.stats.subscriptions = self.topics.subscriptions() as u64;
        removed
    }

    fn is_subscribed(&self, id: ConnId, topic: &str) -> bool {
        self.topics.is_subscribed(id.index(), topic)
    }

    fn publish(
        &mut self,
        id: ConnId,
        handle: &Handle,
        mut p: Publication,
    ) -> Result<(), PublishError> {
        // This connection has its copy (or asked for none): the worker's delivery skips it.
        p.skip = Some(id);
        let local = Some((id.worker(), &mut self.topics.deferred));
        handle.dispatch(p, local).map(drop)
    }
}
