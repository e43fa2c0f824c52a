//! One connection of a fanout run: its subscriptions and their checks, and a publisher's
//! publishes (closed loop, or paced by the engine's timers).

use core::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::command::{self, Reply};
use super::sequence::{Arrival, Sequence};
use super::stamp::{SEQ_LIMIT, STAMP_LEN, Stamp};
use super::topics::TopicSet;
use super::{Member, Setup};
use crate::load::client::{Ctx, Fail, Outbox, Window};
use crate::load::report::Stats;

/// Publishes one publisher sends at most per turn of the loop when it is behind its rate.
const MAX_BURST: u64 = 64;

/// Bytes a publisher may have queued before a paced publish is skipped instead of queued.
const MAX_BACKLOG: usize = 4 << 20;

/// How a delivery is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Invalid {
    Binary,
    Unexpected(String),
    NotSubscribed(String),
    Length { topic: String, len: usize },
    Stamp(String),
    Publisher { topic: String, publisher: usize },
    Filler(String),
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Binary => f.write_str("a binary message"),
            Invalid::Unexpected(text) => write!(f, "an unexpected message {text:?}"),
            Invalid::NotSubscribed(topic) => write!(f, "a delivery on {topic}, not subscribed"),
            Invalid::Length { topic, len } => write!(f, "a {len}-byte payload on {topic}"),
            Invalid::Stamp(topic) => write!(f, "a delivery on {topic} without a valid stamp"),
            Invalid::Publisher { topic, publisher } => {
                write!(f, "a delivery on {topic} stamped by publisher {publisher}")
            }
            Invalid::Filler(topic) => write!(f, "a delivery on {topic} with corrupt filler"),
        }
    }
}

/// One connection of a fanout run.
#[derive(Debug)]
pub(crate) struct Peer {
    member: Member,
    /// What it subscribes to, and the sequence of each.
    subscribed: TopicSet,
    seen: Vec<Sequence>,
    /// `ok sub` and `error` replies so far.
    acked: usize,
    refused: usize,
    publisher: Option<Publisher>,
    line: String,
}

/// The publishing side of a publisher's connection.
#[derive(Debug)]
struct Publisher {
    index: usize,
    topics: TopicSet,
    /// The next sequence number on each topic (= publishes so far).
    next_seq: Vec<u64>,
    /// The slot of the next publish.
    turn: usize,
    /// Paced publishes due so far, sent or skipped.
    scheduled: u64,
    /// Seconds between paced publishes, and before the first one.
    interval: f64,
    offset: f64,
}

impl Peer {
    /// Connection `member` of a run.
    pub(crate) fn new(setup: &Setup, member: Member) -> Self {
        let subscribed = TopicSet::subscribed(member, setup);
        let publisher = match member {
            Member::Subscriber(_) => None,
            Member::Publisher(index) => {
                let topics = TopicSet::published(member, setup);
                let interval = if setup.rate > 0.0 {
                    1.0 / (setup.rate * topics.count as f64)
                } else {
                    0.0
                };
                Some(Publisher {
                    index,
                    topics,
                    next_seq: vec![0; topics.count],
                    turn: 0,
                    scheduled: 0,
                    interval,
                    offset: interval * index as f64 / setup.publishers as f64,
                })
            }
        };
        Peer {
            member,
            subscribed,
            seen: vec![Sequence::default(); subscribed.count],
            acked: 0,
            refused: 0,
            publisher,
            line: String::new(),
        }
    }

    /// Whether it publishes (else it subscribes).
    pub(crate) fn is_publisher(&self) -> bool {
        matches!(self.member, Member::Publisher(_))
    }

    /// The connection's id in reports: subscribers first, then publishers.
    fn id(member: Member, setup: &Setup) -> u64 {
        match member {
            Member::Subscriber(i) => i as u64,
            Member::Publisher(p) => (setup.subscribers + p) as u64,
        }
    }

    /// Sends its `sub` commands.
    ///
    /// # Errors
    ///
    /// When a command cannot be queued.
    pub(crate) fn subscribe(&mut self, setup: &Setup, outbox: &mut Outbox<'_>) -> Result<(), Fail> {
        for slot in 0..self.subscribed.count {
            command::write_sub(&mut self.line, &setup.prefix, self.subscribed.topic(slot));
            outbox.send_text(&self.line)?;
        }
        Ok(())
    }

    /// Whether every `sub` was answered (`ok` or `error`).
    pub(crate) fn is_settled(&self) -> bool {
        self.acked + self.refused >= self.subscribed.count
    }

    /// Whether every message published on its topics arrived (or was counted lost), given the
    /// publishes per topic.
    pub(crate) fn caught_up(&self, published: &[AtomicU64]) -> bool {
        self.missing(published) == 0
    }

    /// The lost tail: messages published on its topics after the last one it got.
    pub(crate) fn missing(&self, published: &[AtomicU64]) -> u64 {
        let total = |slot: usize| published[self.subscribed.topic(slot)].load(Ordering::Relaxed);
        self.seen
            .iter()
            .enumerate()
            .map(|(slot, seen)| seen.missing(total(slot)))
            .sum()
    }

    /// Stores its publishes per topic (a publisher's, at the end of publishing).
    pub(crate) fn record_published(&self, published: &[AtomicU64]) {
        if let Some(p) = &self.publisher {
            for (slot, &n) in p.next_seq.iter().enumerate() {
                published[p.topics.topic(slot)].store(n, Ordering::Relaxed);
            }
        }
    }

    /// Starts the closed loop: `--in-flight` publishes.
    ///
    /// # Errors
    ///
    /// When a publish cannot be queued.
    pub(crate) fn start_closed_loop(
        &mut self,
        setup: &Setup,
        now: Instant,
        outbox: &mut Outbox<'_>,
        stats: &mut Stats,
        window: Window,
    ) -> Result<(), Fail> {
        let Some(p) = self.publisher.as_mut() else {
            return Ok(());
        };
        for _ in 0..setup.in_flight {
            p.publish(setup, now, outbox, &mut self.line, stats, window)?;
        }
        Ok(())
    }

    /// Sends the paced publishes due by `now` (at most [`MAX_BURST`]); returns when the next one
    /// is due (`None` for a subscriber).
    ///
    /// # Errors
    ///
    /// When a publish cannot be queued.
    pub(crate) fn publish_due(
        &mut self,
        setup: &Setup,
        start: Instant,
        now: Instant,
        outbox: &mut Outbox<'_>,
        stats: &mut Stats,
        window: Window,
    ) -> Result<Option<Instant>, Fail> {
        let Some(p) = self.publisher.as_mut() else {
            return Ok(None);
        };
        for _ in 0..MAX_BURST {
            let due = start + Duration::from_secs_f64(p.offset + p.scheduled as f64 * p.interval);
            if due > now {
                return Ok(Some(due));
            }
            p.scheduled += 1;
            if outbox.backlog() > MAX_BACKLOG {
                stats.fanout.skipped += 1;
                continue;
            }
            p.publish(setup, now, outbox, &mut self.line, stats, window)?;
        }
        Ok(Some(now))
    }

    /// Handles a text message from the server.
    ///
    /// # Errors
    ///
    /// When the closed loop's next publish cannot be queued.
    pub(crate) fn on_text(
        &mut self,
        text: &str,
        now: Instant,
        outbox: &mut Outbox<'_>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), Fail> {
        let Some(setup) = ctx.fanout else {
            return Ok(());
        };
        let index = |topic: &str| command::topic_index(topic, &setup.prefix, setup.topics);
        match command::parse_reply(text) {
            Reply::Msg { topic, payload } => match self.check(setup, topic, payload) {
                Ok((slot, stamp)) => self.on_delivery(slot, stamp, now, outbox, ctx)?,
                Err(invalid) => self.count_invalid(invalid, ctx.stats, setup),
            },
            Reply::OkSub(topic) if index(topic).and_then(|t| self.subscribed.slot(t)).is_some() => {
                self.acked += 1;
            }
            Reply::Error(reason) => {
                self.refused += 1;
                let stats = &mut *ctx.stats;
                stats.fanout.error_replies += 1;
                stats.first_error.get_or_insert_with(|| {
                    let id = Peer::id(self.member, setup);
                    format!("connection {id}: the server replied `error {reason}`")
                });
            }
            Reply::OkSub(_) | Reply::Other => {
                let text: String = text.chars().take(64).collect();
                self.count_invalid(Invalid::Unexpected(text), ctx.stats, setup);
            }
        }
        Ok(())
    }

    /// Counts a binary message (the protocol has none).
    pub(crate) fn on_binary(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(setup) = ctx.fanout {
            self.count_invalid(Invalid::Binary, ctx.stats, setup);
        }
    }

    /// The slot and stamp of a delivery that is what the publisher sent.
    fn check(&self, setup: &Setup, topic: &str, payload: &str) -> Result<(usize, Stamp), Invalid> {
        let owned = || topic.chars().take(64).collect::<String>();
        let index = command::topic_index(topic, &setup.prefix, setup.topics);
        let Some((t, slot)) = index.and_then(|t| Some((t, self.subscribed.slot(t)?))) else {
            return Err(Invalid::NotSubscribed(owned()));
        };
        if payload.len() != setup.size {
            let len = payload.len();
            return Err(Invalid::Length {
                topic: owned(),
                len,
            });
        }
        let stamp = Stamp::decode(payload.as_bytes()).ok_or_else(|| Invalid::Stamp(owned()))?;
        if stamp.publisher != t % setup.publishers {
            let publisher = stamp.publisher;
            return Err(Invalid::Publisher {
                topic: owned(),
                publisher,
            });
        }
        if payload.as_bytes()[STAMP_LEN..] != *setup.filler.as_bytes() {
            return Err(Invalid::Filler(owned()));
        }
        Ok((slot, stamp))
    }

    fn on_delivery(
        &mut self,
        slot: usize,
        stamp: Stamp,
        now: Instant,
        outbox: &mut Outbox<'_>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), Fail> {
        let stats = &mut *ctx.stats;
        match self.seen[slot].accept(stamp.seq) {
            Arrival::New { lost } => stats.fanout.lost += lost,
            Arrival::Duplicated => {
                stats.fanout.duplicated += 1;
                return Ok(());
            }
            Arrival::OutOfOrder => {
                stats.fanout.out_of_order += 1;
                return Ok(());
            }
        }
        let Some(setup) = ctx.fanout else {
            return Ok(());
        };
        let window = ctx.window;
        if let Some(p) = self.publisher.as_mut() {
            // Its own copy (closed loop): that publish is done, the next one goes out.
            if window.sending && now < window.end {
                p.publish(setup, now, outbox, &mut self.line, stats, window)?;
            }
            return Ok(());
        }
        stats.verified += 1;
        let age = stamp.age(setup.nanos(now));
        let sent_at = now.checked_sub(Duration::from_nanos(age));
        if sent_at.is_some_and(|at| at >= window.count_from && at < window.end) {
            stats.fanout.deliveries += 1;
            Stats::record(&mut stats.fanout.latency, Duration::from_nanos(age));
        }
        Ok(())
    }

    fn count_invalid(&self, invalid: Invalid, stats: &mut Stats, setup: &Setup) {
        stats.mismatches += 1;
        stats.first_mismatch.get_or_insert_with(|| {
            format!("connection {}: {invalid}", Peer::id(self.member, setup))
        });
    }
}

impl Publisher {
    /// Publishes the next message, on the next topic in turn.
    fn publish(
        &mut self,
        setup: &Setup,
        now: Instant,
        outbox: &mut Outbox<'_>,
        line: &mut String,
        stats: &mut Stats,
        window: Window,
    ) -> Result<(), Fail> {
        let slot = self.turn;
        self.turn = (self.turn + 1) % self.topics.count;
        let seq = self.next_seq[slot];
        if seq >= SEQ_LIMIT {
            return Ok(());
        }
        self.next_seq[slot] += 1;
        let stamp = Stamp {
            publisher: self.index,
            seq,
            time: setup.nanos(now),
        }
        .encode();
        let stamp = core::str::from_utf8(&stamp).unwrap_or_default();
        command::write_pub(
            line,
            &setup.prefix,
            self.topics.topic(slot),
            stamp,
            &setup.filler,
        );
        outbox.send_text(line)?;
        if now >= window.count_from && now < window.end {
            stats.fanout.publishes += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::fanout::tests::setup;

    #[test]
    fn deliveries_are_checked() {
        let s = setup(4, 4, 2, 2, 0.0);
        let peer = Peer::new(&s, Member::Subscriber(1)); // topics 2 and 3
        let stamp = |publisher, seq| {
            let stamp = Stamp {
                publisher,
                seq,
                time: 0,
            }
            .encode();
            String::from_utf8(stamp.to_vec()).unwrap()
        };
        let good = format!("{}abcd", stamp(1, 7));
        assert_eq!(
            peer.check(&s, "t3", &good).map(|(slot, st)| (slot, st.seq)),
            Ok((1, 7))
        );
        let t = || "t3".to_owned();
        let table = [
            ("t1", good.clone(), Invalid::NotSubscribed("t1".into())),
            ("t03", good.clone(), Invalid::NotSubscribed("t03".into())),
            (
                "t3",
                format!("{good}x"),
                Invalid::Length {
                    topic: t(),
                    len: 21,
                },
            ),
            (
                "t3",
                format!("{}abcd", stamp(0, 7)),
                Invalid::Publisher {
                    topic: t(),
                    publisher: 0,
                },
            ),
            ("t3", format!("{}abce", stamp(1, 7)), Invalid::Filler(t())),
            (
                "t3",
                format!("~{}abcd", &stamp(1, 7)[1..]),
                Invalid::Stamp(t()),
            ),
        ];
        for (topic, payload, invalid) in table {
            assert_eq!(
                peer.check(&s, topic, &payload),
                Err(invalid),
                "{topic} {payload}"
            );
        }
    }
}
