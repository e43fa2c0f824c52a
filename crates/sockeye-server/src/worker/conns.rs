//! The connection table: a slab of slots, a free list, and a generation per slot, so that an
//! id outlives its connection harmlessly: a stale id compares unequal for the life of the
//! process.

use std::time::Instant;

use sockeye_deflate::PerMessageDeflate;
use sockeye_proto::{CloseCode, Connection};

use super::io::Pool;
use super::output::Queue;
use super::timers::{Ms, NEVER};
use crate::config::{Backpressure, BackpressurePolicy};
use crate::handle::Stats;
use crate::handler::{CloseReason, SendError, Timeout};

/// The protocol state of a connection: permessage-deflate is negotiated per connection, and
/// costs one pointer where it is not.
pub(crate) type Proto = Connection<Option<Box<PerMessageDeflate>>>;

/// Where a connection is in its life, from the worker's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading the upgrade request.
    Handshake,
    /// Upgraded: frames flow.
    Open,
    /// Writing a final answer (HTTP response, refusal, or the close frame to a peer no longer
    /// waited for); then the write side closes.
    Draining,
    /// Our FIN is sent; reading and discarding until the peer's EOF (or the linger timer).
    Lingering,
}

/// The cause to report in `on_close` when the connection is torn down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Local(CloseCode),
    Timeout(Timeout),
    Shutdown,
    Backpressure,
    Panic,
}

impl Ending {
    /// The reason `on_close` reports for a close we started.
    pub(crate) fn reason(self) -> CloseReason<'static> {
        match self {
            Ending::Local(code) => CloseReason::Local(code),
            Ending::Timeout(timeout) => CloseReason::Timeout(timeout),
            Ending::Shutdown => CloseReason::Shutdown,
            Ending::Backpressure => CloseReason::Backpressure,
            Ending::Panic => CloseReason::HandlerPanic,
        }
    }
}

/// The sending side of a connection: its protocol state, the bytes the kernel has not taken,
/// and why we are closing it.
pub(crate) struct Link {
    pub(crate) proto: Proto,
    /// Bytes the kernel has not taken yet; empty (one null pointer) when the socket keeps up.
    pub(crate) queue: Queue,
    pub(crate) ending: Option<Ending>,
}

impl Link {
    /// Moves the frames the protocol owes the peer (pongs, close) where control frames go now.
    #[inline]
    pub(crate) fn poll_transmit(&mut self, cork: &mut Vec<u8>) {
        if self.proto.has_pending_transmit() {
            let Link { proto, queue, .. } = self;
            queue.control(cork, |buf| proto.poll_transmit(buf));
        }
    }

    /// Starts the closing handshake with `code`, recording why.
    pub(crate) fn close(&mut self, code: CloseCode, reason: &str, now: Instant, why: Ending) {
        if self.proto.close(code, reason, now).is_ok() {
            self.ending.get_or_insert(why);
        }
    }

    /// Applies the backpressure policy to a send that finds `buffered` bytes queued: `Ok(true)`
    /// to send, `Ok(false)` to drop it silently, or the error to report.
    #[inline]
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
        stats.sends_over_limit += 1;
        match backpressure.policy {
            BackpressurePolicy::Drop => {
                stats.sends_dropped += 1;
                Ok(false)
            }
            BackpressurePolicy::Close(code) => {
                if self.ending.is_none() {
                    stats.backpressure_closes += 1;
                }
                self.close(code, "backpressure", now, Ending::Backpressure);
                Err(SendError::Closed)
            }
            _ => Err(SendError::Backpressure),
        }
    }
}

/// One connection: its stream, protocol state, buffers it holds between reads, and clocks.
pub(crate) struct Slot<C, S> {
    pub(crate) stream: S,
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

/// What a connection keeps between reads; most connections, most of the time, keep nothing.
pub(crate) struct Rx {
    /// Unconsumed input: a partial frame header or control frame, or a partial request head.
    pub(crate) leftover: Vec<u8>,
    /// The reassembly buffer for messages spanning frames or reads.
    pub(crate) msg: Vec<u8>,
    /// When the message now arriving started ([`NEVER`]: none is).
    pub(crate) since: Ms,
}

impl Default for Rx {
    fn default() -> Self {
        Rx {
            leftover: Vec::new(),
            msg: Vec::new(),
            since: NEVER,
        }
    }
}

impl<C, S> Slot<C, S> {
    pub(crate) fn new(stream: S, generation: u32, proto: Proto, now: Ms) -> Self {
        Slot {
            stream,
            generation,
            phase: Phase::Handshake,
            link: Link {
                proto,
                queue: Queue::default(),
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

    /// How many unconsumed bytes the connection holds.
    pub(crate) fn held(&self) -> usize {
        self.rx.as_ref().map_or(0, |rx| rx.leftover.len())
    }

    /// Moves the unconsumed bytes to the front of `buf`.
    pub(crate) fn restore(&mut self, buf: &mut [u8]) {
        if let Some(rx) = self.rx.as_mut() {
            buf[..rx.leftover.len()].copy_from_slice(&rx.leftover);
            // Cleared, not freed: a read that ends inside a frame header again keeps its rest
            // here with no new allocation. The turn's `put_msg` frees what stays empty.
            rx.leftover.clear();
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

    /// Puts the reassembly buffer back if a message is still arriving, else gives it to `pool`:
    /// an idle connection owns no receive buffer. Returns whether a message started arriving
    /// in this read (at `now`).
    pub(crate) fn put_msg(&mut self, msg: Vec<u8>, pool: &mut Pool, now: Ms) -> bool {
        if self.link.proto.is_receiving_message() {
            let rx = self.rx.get_or_insert_default();
            rx.msg = msg;
            let started = rx.since == NEVER;
            if started {
                rx.since = now;
            }
            return started;
        }
        pool.give(msg);
        if let Some(rx) = self.rx.as_mut() {
            rx.since = NEVER;
            if rx.leftover.is_empty() && rx.msg.capacity() == 0 {
                self.rx = None;
            }
        }
        false
    }

    /// When the message now arriving started, if one is.
    pub(crate) fn message_since(&self) -> Option<Ms> {
        self.rx
            .as_ref()
            .map(|rx| rx.since)
            .filter(|&since| since != NEVER)
    }
}

/// The slab of a worker's connections.
pub(crate) struct Conns<C, S> {
    slab: Vec<Option<Slot<C, S>>>,
    /// Free slots, each with the generation its next connection gets.
    free: Vec<(u32, u32)>,
    open: usize,
    /// The generation of a slot's first connection (raised in tests, to reach the wrap).
    first_generation: u32,
}

impl<C, S> Default for Conns<C, S> {
    fn default() -> Self {
        Conns {
            slab: Vec::new(),
            free: Vec::new(),
            open: 0,
            first_generation: 0,
        }
    }
}

impl<C, S> Conns<C, S> {
    /// Connections in the table.
    pub(crate) fn open(&self) -> usize {
        self.open
    }

    /// One past the highest slot index in use.
    pub(crate) fn capacity(&self) -> usize {
        self.slab.len()
    }

    /// Starts every new slot at `generation`: tests reach the generation's wrap with few
    /// connections.
    #[cfg(test)]
    pub(crate) fn start_generations_at(&mut self, generation: u32) {
        self.first_generation = generation;
    }

    /// Puts a connection in a free slot: `make` gets the slot's generation. Returns the index.
    pub(crate) fn insert(&mut self, make: impl FnOnce(u32) -> Slot<C, S>) -> usize {
        let (idx, generation) = match self.free.pop() {
            Some((idx, generation)) => (idx as usize, generation),
            None => {
                self.slab.push(None);
                (self.slab.len() - 1, self.first_generation)
            }
        };
        self.slab[idx] = Some(make(generation));
        self.open += 1;
        idx
    }

    pub(crate) fn get(&self, idx: usize) -> Option<&Slot<C, S>> {
        self.slab.get(idx)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, idx: usize) -> Option<&mut Slot<C, S>> {
        self.slab.get_mut(idx)?.as_mut()
    }

    /// The slot at `idx` if it still holds the connection of `generation`.
    pub(crate) fn live(&mut self, idx: usize, generation: u32) -> Option<&mut Slot<C, S>> {
        self.get_mut(idx)
            .filter(|slot| slot.generation == generation)
    }

    /// Takes the connection out; its slot is free again with the next generation. A slot whose
    /// generation would wrap is retired instead: an id is never handed out twice.
    pub(crate) fn remove(&mut self, idx: usize) -> Option<Slot<C, S>> {
        let slot = self.slab.get_mut(idx)?.take()?;
        self.open -= 1;
        if let Some(next) = slot.generation.checked_add(1) {
            self.free.push((idx as u32, next));
        }
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Stream;

    #[test]
    fn an_idle_connection_is_small() {
        // The per-connection footprint in the worker's slab (the kernel's socket comes on top).
        let size = size_of::<Option<Slot<(), Stream>>>();
        println!(
            "slot: {size} bytes, protocol state: {} bytes",
            size_of::<Proto>()
        );
        // A guard against growth: 192 bytes in release builds with TLS (mio adds a word in
        // debug builds). With a 16-byte timer entry this keeps an idle connection under the
        // 300-byte budget of the engine, application state not included.
        assert!(size <= 224, "slot grew to {size} bytes");
    }
}
