//! A connection slot of a worker: its socket, protocol state, queues and timers.

use std::io;
use std::time::Instant;

use sockeye_deflate::PerMessageDeflate;
use sockeye_proto::{CloseCode, Connection, Message, SendError as ProtoSendError};

/// The protocol state of a connection: permessage-deflate is negotiated per connection, and
/// costs one pointer where it is not.
pub(crate) type Proto = Connection<Option<Box<PerMessageDeflate>>>;

use crate::config::{Backpressure, BackpressurePolicy};
use crate::handle::Stats;
use crate::handler::{CloseReason, SendError, Sink};
use crate::transport::Stream;

/// Where a connection is in its life, from the worker's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading the upgrade request.
    Handshake,
    /// Upgraded: frames flow.
    Open,
    /// Writing a final answer (HTTP response, refusal); then the write side closes.
    Draining,
    /// Our FIN is sent; reading and discarding until the peer's EOF (or the linger timer).
    Lingering,
}

/// The cause to report in `on_close` when the connection is torn down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Local(CloseCode),
    Timeout(crate::handler::Timeout),
    Shutdown,
    Backpressure,
}

impl Ending {
    /// The reason `on_close` reports for a close we started.
    pub(crate) fn reason(self) -> CloseReason<'static> {
        match self {
            Ending::Local(code) => CloseReason::Local(code),
            Ending::Timeout(timeout) => CloseReason::Timeout(timeout),
            Ending::Shutdown => CloseReason::Shutdown,
            Ending::Backpressure => CloseReason::Backpressure,
        }
    }
}

/// The sending side of a connection: its protocol state, the bytes the kernel has not taken,
/// and why we are closing it.
pub(crate) struct Link {
    pub(crate) proto: Proto,
    /// Bytes the kernel has not taken yet; empty (and unallocated) when the socket keeps up.
    pub(crate) queue: Vec<u8>,
    pub(crate) ending: Option<Ending>,
}

impl Link {
    /// Appends the frames the protocol owes the peer where this connection's frames go now.
    pub(crate) fn poll_transmit(&mut self, cork: &mut Vec<u8>) {
        self.proto.poll_transmit(target(&mut self.queue, cork));
    }

    /// Applies the backpressure policy to a send that finds `buffered` bytes queued: `Ok(true)`
    /// to send, `Ok(false)` to drop it silently, or the error to report.
    pub(crate) fn admit(
        &mut self,
        buffered: usize,
        backpressure: &Backpressure,
        stats: &mut Stats,
        now: Instant,
    ) -> Result<bool, SendError> {
        if buffered <= backpressure.limit {
            return Ok(true);
        }
        stats.backpressure_events += 1;
        match backpressure.policy {
            BackpressurePolicy::Drop => Ok(false),
            BackpressurePolicy::Close(code) => {
                if self.proto.close(code, "backpressure", now).is_ok() {
                    self.ending.get_or_insert(Ending::Backpressure);
                }
                Err(SendError::Closed)
            }
            _ => Err(SendError::Backpressure),
        }
    }
}

/// Where a connection's frames go now: behind its queue when it has a backlog, else into the
/// worker's `cork` buffer (written once at the end of the connection's turn).
fn target<'a>(queue: &'a mut Vec<u8>, cork: &'a mut Vec<u8>) -> &'a mut Vec<u8> {
    if queue.is_empty() { cork } else { queue }
}

/// A time on the worker's clock: milliseconds since the worker started. The engine's timers need
/// no finer grain, and 8 bytes instead of an `Instant`'s 16 keep an idle connection small.
pub(crate) type Ms = u64;

/// No time set.
pub(crate) const NEVER: Ms = Ms::MAX;

/// `d` in whole milliseconds, rounded up, so that a deadline never fires early.
pub(crate) fn ms(d: std::time::Duration) -> Ms {
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
    Ms::try_from(ms).unwrap_or(NEVER)
}

pub(crate) struct Slot<C> {
    pub(crate) stream: Stream,
    pub(crate) generation: u32,
    pub(crate) phase: Phase,
    pub(crate) link: Link,
    pub(crate) user: Option<C>,
    /// Input buffers, allocated only while a connection has bytes to keep between reads.
    pub(crate) rx: Option<Box<Rx>>,
    pub(crate) started: Ms,
    pub(crate) last_rx: Ms,
    /// When a draining or lingering connection is dropped regardless ([`NEVER`] until set).
    pub(crate) linger_until: Ms,
    /// The time of this connection's live entry in the worker's timer heap ([`NEVER`]: none).
    pub(crate) timer_at: Ms,
    pub(crate) ping_sent: bool,
    pub(crate) read_paused: bool,
    /// The peer's FIN (or a socket error) was announced: read to EOF, since no further edge
    /// will come for it.
    pub(crate) read_closed: bool,
    pub(crate) dirty: bool,
}

impl<C> Slot<C> {
    pub(crate) fn new(stream: Stream, generation: u32, proto: Proto, now: Ms) -> Self {
        Slot {
            stream,
            generation,
            phase: Phase::Handshake,
            link: Link {
                proto,
                queue: Vec::new(),
                ending: None,
            },
            user: None,
            rx: None,
            started: now,
            last_rx: now,
            linger_until: NEVER,
            timer_at: NEVER,
            ping_sent: false,
            read_paused: false,
            read_closed: false,
            dirty: false,
        }
    }
}

/// What a connection keeps between reads; most connections, most of the time, keep nothing.
#[derive(Default)]
pub(crate) struct Rx {
    /// Unconsumed input: a partial frame header or control frame, or a partial request head.
    pub(crate) leftover: Vec<u8>,
    /// The reassembly buffer for messages spanning frames or reads.
    pub(crate) msg: Vec<u8>,
}

impl<C> Slot<C> {
    /// How many unconsumed bytes the connection holds.
    pub(crate) fn held(&self) -> usize {
        self.rx.as_ref().map_or(0, |rx| rx.leftover.len())
    }

    /// Moves the unconsumed bytes to the front of `buf`.
    pub(crate) fn restore(&mut self, buf: &mut [u8]) {
        if let Some(rx) = self.rx.as_mut() {
            buf[..rx.leftover.len()].copy_from_slice(&rx.leftover);
            rx.leftover = Vec::new();
            self.tidy();
        }
    }

    /// Keeps `bytes` for the next read.
    pub(crate) fn keep(&mut self, bytes: &[u8]) {
        self.rx
            .get_or_insert_default()
            .leftover
            .extend_from_slice(bytes);
    }

    /// The reassembly buffer, taken out for a read.
    pub(crate) fn take_msg(&mut self) -> Vec<u8> {
        self.rx
            .as_mut()
            .map(|rx| std::mem::take(&mut rx.msg))
            .unwrap_or_default()
    }

    /// Puts the reassembly buffer back if a message is still arriving; an idle connection owns
    /// no receive buffer.
    pub(crate) fn put_msg(&mut self, msg: Vec<u8>) {
        if msg.capacity() > 0 && self.link.proto.is_receiving_message() {
            self.rx.get_or_insert_default().msg = msg;
        } else {
            self.tidy();
        }
    }

    fn tidy(&mut self) {
        if self
            .rx
            .as_ref()
            .is_some_and(|rx| rx.leftover.capacity() == 0 && rx.msg.capacity() == 0)
        {
            self.rx = None;
        }
    }
}

/// Writes the connection's queue until the kernel stops taking bytes; frees it when drained.
pub(crate) fn write_queue(
    stream: &mut Stream,
    queue: &mut Vec<u8>,
    stats: &mut Stats,
) -> io::Result<()> {
    let mut sent = 0;
    while sent < queue.len() {
        let n = stream.write(&queue[sent..])?;
        if n == 0 {
            break;
        }
        sent += n;
    }
    stats.bytes_out += sent as u64;
    if sent == queue.len() {
        // An idle connection owns no send buffer.
        *queue = Vec::new();
    } else {
        queue.drain(..sent);
    }
    Ok(())
}

/// The [`Sink`] behind an `Outbox`: frames go to the worker's cork buffer while the connection
/// has no backlog, else behind its queue.
pub(crate) struct ConnSink<'a> {
    link: &'a mut Link,
    cork: &'a mut Vec<u8>,
    backpressure: &'a Backpressure,
    stats: &'a mut Stats,
    now: Instant,
}

impl<'a> ConnSink<'a> {
    pub(crate) fn new(
        link: &'a mut Link,
        cork: &'a mut Vec<u8>,
        backpressure: &'a Backpressure,
        stats: &'a mut Stats,
        now: Instant,
    ) -> Self {
        ConnSink {
            link,
            cork,
            backpressure,
            stats,
            now,
        }
    }
}

impl Sink for ConnSink<'_> {
    fn send(&mut self, msg: Message<'_>) -> Result<(), SendError> {
        let buffered = self.buffered_amount();
        if !self
            .link
            .admit(buffered, self.backpressure, self.stats, self.now)?
        {
            return Ok(());
        }
        let Link { proto, queue, .. } = &mut *self.link;
        match proto.send(msg, target(queue, self.cork)) {
            Ok(()) => {
                self.stats.messages_out += 1;
                Ok(())
            }
            Err(ProtoSendError::ControlTooLong(_)) => Err(SendError::ControlTooLong),
            Err(_) => Err(SendError::Closed),
        }
    }

    fn close(&mut self, code: CloseCode, reason: &str) {
        if self.link.proto.close(code, reason, self.now).is_ok() {
            self.link.ending.get_or_insert(Ending::Local(code));
        }
    }

    fn buffered_amount(&self) -> usize {
        self.link.queue.len() + self.cork.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_connection_is_small() {
        // The per-connection footprint in the worker's slab (the kernel's socket comes on top).
        let size = size_of::<Option<Slot<()>>>();
        println!(
            "slot: {size} bytes, protocol state: {} bytes",
            size_of::<Proto>()
        );
        // A guard against growth: 208 bytes in release builds with TLS (mio adds a word in
        // debug builds). With a 16-byte timer entry this keeps an idle connection under the
        // 300-byte budget of the engine, application state not included.
        assert!(size <= 224, "slot grew to {size} bytes");
    }
}
