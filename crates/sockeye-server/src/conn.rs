//! A connection slot of a worker: its socket, protocol state, queues and timers.

use std::io::{self, IoSlice};
use std::time::Instant;

use sockeye_deflate::PerMessageDeflate;
use sockeye_proto::{CloseCode, Connection, Message, SendError as ProtoSendError};

/// The protocol state of a connection: permessage-deflate is negotiated per connection, and
/// costs one pointer where it is not.
pub(crate) type Proto = Connection<Option<Box<PerMessageDeflate>>>;

use crate::config::{Backpressure, BackpressurePolicy};
use crate::handle::Stats;
use crate::handler::{CloseReason, SendError, Sink};
use crate::transport::{Scratch, Stream};

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
    /// Bytes the kernel has not taken yet; empty (one null pointer) when the socket keeps up.
    pub(crate) queue: Queue,
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
fn target<'a>(queue: &'a mut Queue, cork: &'a mut Vec<u8>) -> &'a mut Vec<u8> {
    match &mut queue.0 {
        Some(backlog) => &mut backlog.buf,
        None => cork,
    }
}

/// Buffers at least this large go back to the worker's [`Pool`] instead of the allocator.
const POOL_MIN: usize = 64 << 10;

/// The most bytes of buffers a worker's pool holds.
const POOL_MAX_BYTES: usize = 16 << 20;

/// Large buffers a worker keeps between uses: the reassembly buffer of a message that spans
/// reads, the backlog of a connection the kernel could not keep up with, the cork after a large
/// message. Handing them on spares the allocator's trips to the kernel (a fresh megabyte costs
/// 256 page faults) for every large message. Bounded: at most 16 MiB per worker.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

impl Pool {
    /// A pooled buffer (empty), or a new empty one.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        match self.bufs.pop() {
            Some(buf) => {
                self.bytes -= buf.capacity();
                buf
            }
            None => Vec::new(),
        }
    }

    /// Keeps `buf` for later if it is large and the pool has room; frees it otherwise.
    pub(crate) fn give(&mut self, mut buf: Vec<u8>) {
        let size = buf.capacity();
        if size >= POOL_MIN && self.bytes + size <= POOL_MAX_BYTES {
            buf.clear();
            self.bytes += size;
            self.bufs.push(buf);
        }
    }
}

/// A remainder at least this large moves into the queue with its buffer instead of being copied.
const MOVE_MIN: usize = 64 << 10;

/// The bytes of a connection the kernel has not taken, in order. Nothing (a null pointer)
/// while the socket keeps up; written from a moving head, so a large backlog is never shifted
/// byte by byte as the kernel takes it piece by piece.
#[derive(Debug, Default)]
pub(crate) struct Queue(Option<Box<Backlog>>);

/// A non-empty backlog: `buf[head..]` waits for the kernel.
#[derive(Debug)]
pub(crate) struct Backlog {
    buf: Vec<u8>,
    head: usize,
}

impl Queue {
    /// Bytes waiting.
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |b| b.buf.len() - b.head)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Appends `bytes` behind what waits.
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match &mut self.0 {
            Some(backlog) => backlog.buf.extend_from_slice(bytes),
            None => {
                self.0 = Some(Box::new(Backlog {
                    buf: bytes.to_vec(),
                    head: 0,
                }));
            }
        }
    }

    /// Appends `bytes` behind what waits, in a pooled buffer if the queue was empty.
    pub(crate) fn extend_pooled(&mut self, pool: &mut Pool, bytes: &[u8]) {
        if self.is_empty() && !bytes.is_empty() {
            let mut buf = pool.take();
            buf.extend_from_slice(bytes);
            self.0 = Some(Box::new(Backlog { buf, head: 0 }));
        } else {
            self.extend_from_slice(bytes);
        }
    }

    /// Runs `f` with the queue's buffer to append frames to, directly behind what waits.
    pub(crate) fn append<R>(&mut self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let backlog = self.0.get_or_insert_with(|| {
            Box::new(Backlog {
                buf: Vec::new(),
                head: 0,
            })
        });
        let result = f(&mut backlog.buf);
        if backlog.head == backlog.buf.len() {
            // Nothing was appended to an empty queue: keep it a null pointer.
            self.0 = None;
        }
        result
    }

    /// Queues `buf[from..]`, the part of a write the kernel did not take. A large remainder
    /// takes `buf`'s allocation along (leaving `buf` empty) instead of being copied.
    pub(crate) fn take_rest(&mut self, buf: &mut Vec<u8>, from: usize) {
        if self.is_empty() && buf.len() - from >= MOVE_MIN {
            self.0 = Some(Box::new(Backlog {
                buf: std::mem::take(buf),
                head: from,
            }));
        } else {
            self.extend_from_slice(&buf[from..]);
        }
    }

    /// Writes what waits until the kernel stops taking bytes; gives the buffer back to `pool`
    /// when drained.
    pub(crate) fn write_to(
        &mut self,
        stream: &mut Stream,
        scratch: &mut Scratch,
        stats: &mut Stats,
        pool: &mut Pool,
    ) -> io::Result<()> {
        let Some(backlog) = self.0.as_mut() else {
            return Ok(());
        };
        // One write: the stream takes less than offered only when the socket is full.
        let n = stream.write(&backlog.buf[backlog.head..], scratch)?;
        stats.bytes_out += n as u64;
        backlog.head += n;
        if backlog.head == backlog.buf.len() {
            // An idle connection owns no send buffer.
            if let Some(backlog) = self.0.take() {
                pool.give(backlog.buf);
            }
        } else if backlog.head >= backlog.buf.len() / 2 {
            // Shift the rest (the smaller part) so the buffer does not grow without bound
            // while frames keep arriving behind it.
            backlog.buf.drain(..backlog.head);
            backlog.head = 0;
        }
        Ok(())
    }
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
    /// an idle connection owns no receive buffer.
    pub(crate) fn put_msg(&mut self, msg: Vec<u8>, pool: &mut Pool) {
        if msg.capacity() > 0 && self.link.proto.is_receiving_message() {
            self.rx.get_or_insert_default().msg = msg;
        } else {
            pool.give(msg);
            self.tidy();
        }
    }

    fn tidy(&mut self) {
        if self
            .rx
            .as_ref()
            .is_some_and(|rx| rx.leftover.is_empty() && rx.msg.capacity() == 0)
        {
            self.rx = None;
        }
    }
}

/// The [`Sink`] behind an `Outbox`: frames go to the worker's cork buffer while the connection
/// has no backlog, else behind its queue.
pub(crate) struct ConnSink<'a> {
    link: &'a mut Link,
    cork: &'a mut Vec<u8>,
    backpressure: &'a Backpressure,
    stats: &'a mut Stats,
    now: Instant,
    /// The socket, for large messages written straight from the caller's bytes.
    direct: Option<Direct<'a>>,
}

/// What a sink needs to write a large message at once: the socket, and the pool for what it
/// does not take.
pub(crate) struct Direct<'a> {
    pub(crate) stream: &'a mut Stream,
    pub(crate) scratch: &'a mut Scratch,
    pub(crate) pool: &'a mut Pool,
}

/// Messages at least this large are written from the caller's bytes, with the frames corked
/// before them, in one vectored write (with nothing queued; over TLS encrypted from where they
/// lie): no copy into the cork, and only what the socket does not take is copied, into the
/// queue.
const DIRECT_MIN: usize = 64 << 10;

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
            direct: None,
        }
    }

    /// Lets large messages go straight to the socket.
    pub(crate) fn with_direct(mut self, direct: Direct<'a>) -> Self {
        self.direct = Some(direct);
        self
    }

    /// Writes a large message's frame straight from `msg`'s bytes when it can; `None` when it
    /// must be encoded into the cork as usual.
    fn send_direct(&mut self, msg: Message<'_>) -> Option<Result<(), ProtoSendError>> {
        let direct = self.direct.as_mut()?;
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
        // The write's error, if any, is the socket's: the bytes wait in the queue and the
        // turn's flush meets the error again and ends the connection.
        let sent = direct
            .stream
            .write_vectored(
                &[IoSlice::new(self.cork), IoSlice::new(payload)],
                direct.scratch,
            )
            .unwrap_or(0);
        self.stats.bytes_out += sent as u64;
        let corked = self.cork.len();
        if sent < corked {
            queue.take_rest(self.cork, sent);
            queue.extend_pooled(direct.pool, payload);
        } else {
            queue.extend_pooled(direct.pool, &payload[sent - corked..]);
        }
        self.cork.clear();
        Some(Ok(()))
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
        let result = match self.send_direct(msg) {
            Some(result) => result,
            None => {
                let Link { proto, queue, .. } = &mut *self.link;
                proto.send(msg, target(queue, self.cork))
            }
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
        // A guard against growth: 192 bytes in release builds with TLS (mio adds a word in
        // debug builds). With a 16-byte timer entry this keeps an idle connection under the
        // 300-byte budget of the engine, application state not included.
        assert!(size <= 224, "slot grew to {size} bytes");
    }

    #[test]
    fn a_large_remainder_moves_into_the_queue_without_a_copy() {
        let mut queue = Queue::default();
        assert!(queue.is_empty());
        let mut cork = vec![7u8; 1 << 20];
        let data = cork.as_ptr();
        queue.take_rest(&mut cork, 1000);
        assert_eq!(queue.len(), (1 << 20) - 1000);
        assert_eq!(cork.capacity(), 0, "the cork gave its buffer away");
        let backlog = queue.0.as_ref().unwrap();
        assert_eq!(backlog.buf.as_ptr(), data);
        assert_eq!(backlog.head, 1000);
        // Frames behind it go to the same buffer.
        queue.extend_from_slice(b"tail");
        assert_eq!(queue.len(), (1 << 20) - 1000 + 4);
    }

    #[test]
    fn a_small_remainder_is_copied_and_the_cork_kept() {
        let mut queue = Queue::default();
        let mut cork = b"hello world".to_vec();
        queue.take_rest(&mut cork, 6);
        assert_eq!(queue.len(), 5);
        assert_eq!(cork, b"hello world", "the cork keeps its buffer");
        queue.take_rest(&mut cork, 0);
        assert_eq!(queue.len(), 16);
        queue.extend_from_slice(b"");
        assert_eq!(queue.len(), 16);
    }

    #[test]
    fn the_pool_keeps_large_buffers_up_to_its_bound() {
        let mut pool = Pool::default();
        pool.give(Vec::with_capacity(POOL_MIN - 1));
        assert_eq!(pool.take().capacity(), 0, "small buffers are not kept");
        let mut big = Vec::with_capacity(1 << 20);
        big.extend_from_slice(b"data");
        let data = big.as_ptr();
        pool.give(big);
        let again = pool.take();
        assert_eq!(again.as_ptr(), data);
        assert!(again.is_empty() && again.capacity() >= 1 << 20);
        for _ in 0..(POOL_MAX_BYTES >> 20) + 4 {
            pool.give(Vec::with_capacity(1 << 20));
        }
        assert!(pool.bytes <= POOL_MAX_BYTES, "{} bytes pooled", pool.bytes);
        let mut kept = 0;
        while pool.take().capacity() > 0 {
            kept += 1;
        }
        assert_eq!(kept, POOL_MAX_BYTES >> 20);
        assert_eq!(pool.bytes, 0);
    }
}
