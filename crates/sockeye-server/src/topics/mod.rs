//! Topics: publish/subscribe across workers.
//!
//! A connection subscribes to topics (from its callbacks through [`Outbox`](crate::Outbox), or
//! from any thread through [`Handle`](crate::Handle) by its id); a publish reaches every
//! subscriber of its topic on every worker. Topic names follow the NATS subject syntax
//! (`prices.EUR.USD`), and subscriptions may use its wildcards (`prices.*.USD`, `prices.>`), so
//! that a broker can carry the same topics between machines.
//!
//! # How a publish travels
//!
//! ```text
//!  publish(topic, msg) ── encode the frame once (header + payload, one allocation)
//!        │                 Interest: which workers have a subscription that matches
//!        ├──▶ worker A: one command ─▶ its subscribers: exact topic, then matching patterns
//!        └──▶ worker B: one command ─▶   each one's queue: the frame, by reference
//!                                     then one vectored write per subscriber, from the shared
//!                                        frames of every publish staged since its last write
//! ```
//!
//! The frame is shared by every worker and recipient (reference-counted, never copied per
//! recipient; frames under 256 bytes are copied, which costs less than a reference).
//! A publish from a callback reaches the publishing connection itself at once (in order with
//! what the callback sends), the other subscribers on its worker right after the publisher's read,
//! and the other workers through their command channels.
//!
//! # permessage-deflate
//!
//! A publish is compressed at most once per distinct compression setting (window bits, level),
//! by the first worker that needs it, and that payload is shared by every subscriber with those
//! settings: subscribers without context takeover cost nothing more. A subscriber whose
//! compressor keeps its context (the RFC 7692 default) also gets the shared payload, and its own
//! compressor forgets its history afterwards (the peer's window now holds bytes our compressor
//! never saw), so the next message sent to it alone compresses as a first message does. That is
//! the default because the alternative, compressing every publish once per such subscriber,
//! costs a compression per recipient; a feed that wants context takeover's ratio for direct
//! sends should send its publishes uncompressed (a threshold) or use no context takeover.
//!
//! # Ordering
//!
//! - At each subscriber, the messages of one publisher on one topic arrive in publish order
//!   (commands from one thread are taken in order; a callback's publishes run in the order
//!   made).
//! - Between publishers there is no order: two threads publishing on one topic interleave
//!   differently at different subscribers on different workers.
//! - A publish and a send to the same connection from the same thread (a [`Handle`]) arrive in
//!   the order they were made. From a callback, a publish reaches its own connection in order
//!   with the callback's sends.
//! - Latest-value conflation ([`SlowConsumer::Conflate`]) keeps the order of each topic but not
//!   across topics: a conflated message leaves when its subscriber's queue empties, after what
//!   was queued meanwhile on other topics. A subscription changed from conflating to another
//!   policy while a message of its topic waits queues that message ahead of the next publish
//!   while the queue is within the limit (no policy refuses it: its publish already counted it
//!   as conflated); over the limit, it keeps waiting for the queue to empty, and the newer
//!   publish meets the new policy over the limit. Either way the topic keeps its order and the
//!   queue its bound.
//!
//! # Across nodes
//!
//! A [`Backplane`] (NATS: the `sockeye-nats` crate) carries publishes between servers: each node
//! tells the broker which topics and patterns it has local subscribers for, forwards its local
//! publishes once, and delivers what other nodes publish through the same path as a local
//! publish. Delivery across nodes is at most once; see [`Backplane`].
//!
//! [`Handle`]: crate::Handle

mod backplane;
mod interest;
mod publication;
mod subject;

pub use backplane::{Backplane, Forwarded, Ingress};

pub(crate) use interest::Interest;
pub(crate) use publication::{Publication, Variant};
pub use subject::TopicError;
pub(crate) use subject::Trie;
pub use subject::{matches, validate_pattern, validate_topic};

use std::fmt;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use sockeye_proto::CloseCode;

use crate::handle::HandleError;

/// What a publish does for a subscriber whose socket cannot keep up.
///
/// `Fail`, `Drop` and `Close` apply when the subscriber's queue is over the backpressure limit
/// ([`Backpressure::limit`](crate::Backpressure::limit)), as for a direct send. `Conflate`
/// applies as soon as anything is queued: the subscriber keeps only the newest pending message
/// of each topic, written when its queue empties.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowConsumer {
    /// The subscriber misses the message; the publish reports it as refused.
    Fail,
    /// The subscriber misses the message; the publish reports it as dropped.
    Drop,
    /// The subscriber is closed with this code (1008 policy, 1013 try again later).
    Close(CloseCode),
    /// Latest-value conflation: a quote feed's subscriber gets the last price, not a queue of
    /// stale ones.
    Conflate,
}

impl Default for SlowConsumer {
    /// `Fail`, as the default backpressure policy of direct sends.
    fn default() -> Self {
        SlowConsumer::Fail
    }
}

/// Why a publish was refused before reaching any worker.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishError {
    /// The topic is not a valid literal topic name.
    Topic(TopicError),
    /// Only text and binary messages are published (not pings or pongs).
    NotData,
    /// The server is not running, or a worker's channel was full. With `Full`, the workers whose
    /// channel had room got the message.
    Handle(HandleError),
    /// The payload is over what the server's [`Backplane`] carries to other nodes (a broker's
    /// maximum payload): nothing was delivered, here or elsewhere.
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The backplane's limit.
        max: usize,
    },
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Topic(e) => write!(f, "bad topic: {e}"),
            PublishError::NotData => f.write_str("only text and binary messages are published"),
            PublishError::Handle(e) => e.fmt(f),
            PublishError::TooLarge { len, max } => write!(
                f,
                "a payload of {len} bytes is over the {max} bytes the backplane carries to other \
                 nodes"
            ),
        }
    }
}

impl std::error::Error for PublishError {}

impl From<TopicError> for PublishError {
    fn from(e: TopicError) -> Self {
        PublishError::Topic(e)
    }
}

impl From<HandleError> for PublishError {
    fn from(e: HandleError) -> Self {
        PublishError::Handle(e)
    }
}

/// What a publish did, added up over the workers.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Subscribers the message was written or queued for.
    pub delivered: u64,
    /// Subscribers over their limit with [`SlowConsumer::Fail`].
    pub refused: u64,
    /// Subscribers over their limit with [`SlowConsumer::Drop`].
    pub dropped: u64,
    /// Subscribers behind with [`SlowConsumer::Conflate`]: the message waits as their latest
    /// value of the topic (a newer one may still replace it).
    pub conflated: u64,
    /// Subscribers that were closing (or were closed by [`SlowConsumer::Close`]).
    pub closed: u64,
    /// Workers with subscribers that did not get the publish (their channel was full, or they
    /// stopped).
    pub workers_missed: u64,
}

impl PublishReport {
    pub(crate) fn add(&mut self, other: &PublishReport) {
        self.delivered += other.delivered;
        self.refused += other.refused;
        self.dropped += other.dropped;
        self.conflated += other.conflated;
        self.closed += other.closed;
        self.workers_missed += other.workers_missed;
    }
}

/// The outcome of a [`Handle::publish_tracked`](crate::Handle::publish_tracked), to wait for.
///
/// Do not wait for it inside a callback: the worker running the callback may be one of those
/// that still have to run the publish.
#[derive(Debug)]
pub struct PublishReceipt {
    parts: Receiver<PublishReport>,
    /// Workers that still owe their part.
    pending: usize,
    report: PublishReport,
}

impl PublishReceipt {
    pub(crate) fn new(
        parts: Receiver<PublishReport>,
        pending: usize,
        report: PublishReport,
    ) -> Self {
        PublishReceipt {
            parts,
            pending,
            report,
        }
    }

    /// Waits until every worker with subscribers has run the publish.
    pub fn wait(mut self) -> PublishReport {
        while self.pending > 0 {
            match self.parts.recv() {
                Ok(part) => self.take(&part),
                // A worker that stopped dropped the command.
                Err(_) => self.miss_rest(),
            }
        }
        self.report
    }

    /// Waits at most `timeout`; `None` when some worker has not run the publish yet.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<PublishReport> {
        let deadline = std::time::Instant::now() + timeout;
        while self.pending > 0 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.parts.recv_timeout(left) {
                Ok(part) => self.take(&part),
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => self.miss_rest(),
            }
        }
        Some(self.report)
    }

    fn take(&mut self, part: &PublishReport) {
        self.report.add(part);
        self.pending -= 1;
    }

    fn miss_rest(&mut self) {
        self.report.workers_missed += self.pending as u64;
        self.pending = 0;
    }
}

/// Why [`Handle::subscribe`](crate::Handle::subscribe) or
/// [`Handle::unsubscribe`](crate::Handle::unsubscribe) was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeError {
    /// Not a valid topic or pattern.
    Topic(TopicError),
    /// The command could not reach the connection's worker.
    Handle(HandleError),
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubscribeError::Topic(e) => write!(f, "bad topic: {e}"),
            SubscribeError::Handle(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SubscribeError {}

impl From<TopicError> for SubscribeError {
    fn from(e: TopicError) -> Self {
        SubscribeError::Topic(e)
    }
}

impl From<HandleError> for SubscribeError {
    fn from(e: HandleError) -> Self {
        SubscribeError::Handle(e)
    }
}
