//! The application side of a worker: the handler, the handle, the counters, and the one place
//! an [`Outbox`] is built.

use std::time::Instant;

use sockeye_proto::{CloseCode, Message, SendError as ProtoSendError};

use super::Wire;
use super::conns::{Ending, Link};
use super::io::Bufs;
use crate::config::Backpressure;
use crate::handle::{Handle, Stats};
use crate::handler::{CloseReason, ConnId, Handler, Outbox, SendError, Sink};
use crate::transport::Transport;

/// What the application gave the worker, and what the worker tells it.
pub(crate) struct App<H> {
    /// This worker's index (the first part of its connections' ids).
    pub(crate) index: usize,
    pub(crate) handler: H,
    pub(crate) handle: Handle,
    pub(crate) stats: Stats,
}

impl<H: Handler> App<H> {
    /// Runs `f` with an [`Outbox`] for connection `id`: its frames go where the connection's
    /// frames go now ([`super::output`]); with its `stream`, a large message may leave at once
    /// from the caller's bytes.
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
    ) -> R {
        let App {
            handler,
            handle,
            stats,
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
        };
        let mut out = Outbox {
            id,
            sink: &mut sink,
            handle,
        };
        f(handler, &mut out)
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
        self.handler.on_close(user, why);
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
}

impl<S: Transport> ConnSink<'_, S> {
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
    fn send(&mut self, msg: Message<'_>) -> Result<(), SendError> {
        let buffered = self.buffered_amount();
        if !self
            .link
            .admit(buffered, self.backpressure, self.stats, self.now)?
        {
            return Ok(());
        }
        // Replies owed for frames already read leave before what the application sends now.
        self.link.poll_transmit(self.cork);
        let result = match msg {
            Message::Ping(_) | Message::Pong(_) => {
                let Link { proto, queue, .. } = &mut *self.link;
                queue.control(self.cork, |buf| proto.send(msg, buf))
            }
            _ => match self.send_direct(msg) {
                Some(result) => result,
                None => {
                    let Link { proto, queue, .. } = &mut *self.link;
                    proto.send(msg, queue.data(self.cork))
                }
            },
        };
        match result {
            Ok(()) => {
                self.stats.messages_out += 1;
                Ok(())
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
}
