//! A worker's subscriptions, and how a publish reaches its subscribers.
//!
//! Each topic (or pattern) a connection of this worker subscribes to has an entry with its
//! members; each connection lists its subscriptions, so that it leaves them all when it ends. A
//! subscription costs one [`Member`] in its entry and one [`Sub`] in its connection's list
//! (16 bytes together); the entry is shared by the topic's subscribers.
//!
//! Delivery, for each subscriber: the frame variant its compression wants (encoded once per
//! publish), the slow-consumer policy, then the frame goes into its queue, by reference unless
//! it is small, and each subscriber is written once after the publisher's read (or, for
//! commands, at the turn's end): every publish staged meanwhile leaves in one vectored write
//! from the shared bytes (at saturation, one system call for many deliveries). A conflating subscriber with nothing queued is written at once instead, so that
//! a second publish in the same turn does not find it behind.

use std::collections::HashMap;
use std::sync::Arc;

use sockeye_deflate::{PerMessageDeflate, SendSettings};
use sockeye_proto::Rsv;

use super::Driver;
use super::Wire;
use super::conns::{Ending, Phase};
use crate::handler::{ConnId, Handler};
use crate::topics::{
    Interest, Publication, PublishReport, SlowConsumer, TopicError, Trie, Variant, matches,
    validate_pattern,
};
use crate::transport::Transport;

/// Frames at least this large wait in a slow subscriber's backlog by reference; smaller ones
/// are copied (cheaper than a chunk and a shared count for a few bytes).
const SHARE_MIN: usize = 256;

/// A subscriber in a topic's entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member {
    slot: u32,
    policy: SlowConsumer,
}

/// A subscription in its connection's list: the entry, and the member's place in it.
#[derive(Debug, Clone, Copy)]
struct Sub {
    entry: u32,
    pos: u32,
}

/// A topic or pattern with subscribers on this worker.
struct Entry {
    name: Box<str>,
    wildcard: bool,
    members: Vec<Member>,
}

/// The subscriptions of one worker's connections.
pub(crate) struct Topics {
    interest: Arc<Interest>,
    worker: usize,
    /// Entry ids by topic or pattern.
    names: HashMap<Box<str>, u32>,
    /// Entries by id (`None`: free, its id in `free`).
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// The ids of the entries with wildcards.
    patterns: Trie<u32>,
    /// Each connection's subscriptions, by slot.
    by_conn: Vec<Vec<Sub>>,
    /// Publishes made by callbacks, for this worker's subscribers after the publisher's read
    /// (or at the end of the turn, for callbacks outside a read).
    pub(crate) deferred: Vec<Arc<Publication>>,
    /// Conflating subscribers that are behind: the newest pending publish of each topic.
    conflated: HashMap<u32, Vec<Arc<Publication>>>,
    /// Per slot, the last publish round it got a copy of: one copy per publish when several
    /// subscriptions match.
    rounds: Vec<u32>,
    round: u32,
    /// The recipients of the publish being delivered (kept for its allocation).
    scratch: Vec<Member>,
    subscriptions: usize,
}

impl Topics {
    pub(crate) fn new(interest: Arc<Interest>, worker: usize) -> Self {
        Topics {
            interest,
            worker,
            names: HashMap::new(),
            entries: Vec::new(),
            free: Vec::new(),
            patterns: Trie::default(),
            by_conn: Vec::new(),
            deferred: Vec::new(),
            conflated: HashMap::new(),
            rounds: Vec::new(),
            round: 0,
            scratch: Vec::new(),
            subscriptions: 0,
        }
    }

    /// Subscriptions held by this worker's connections.
    pub(crate) fn subscriptions(&self) -> usize {
        self.subscriptions
    }

    /// Subscribes the connection in `slot` to `pattern` with `policy`; `Ok(false)` when it
    /// was subscribed already (the policy is updated).
    pub(crate) fn subscribe(
        &mut self,
        slot: usize,
        pattern: &str,
        policy: SlowConsumer,
    ) -> Result<bool, TopicError> {
        let wildcard = validate_pattern(pattern)?;
        let id = match self.names.get(pattern) {
            Some(&id) => id,
            None => self.add_entry(pattern, wildcard),
        };
        if self.by_conn.len() <= slot {
            self.by_conn.resize_with(slot + 1, Vec::new);
        }
        let entry = self.entries[id as usize].as_mut().expect("named entry");
        if let Some(sub) = self.by_conn[slot].iter().find(|s| s.entry == id) {
            entry.members[sub.pos as usize].policy = policy;
            return Ok(false);
        }
        let pos = entry.members.len() as u32;
        entry.members.push(Member {
            slot: slot as u32,
            policy,
        });
        self.by_conn[slot].push(Sub { entry: id, pos });
        self.subscriptions += 1;
        Ok(true)
    }

    /// Unsubscribes the connection in `slot` from `pattern`; `false` when it was not subscribed.
    pub(crate) fn unsubscribe(&mut self, slot: usize, pattern: &str) -> bool {
        let Some(&id) = self.names.get(pattern) else {
            return false;
        };
        let Some(subs) = self.by_conn.get_mut(slot) else {
            return false;
        };
        let Some(at) = subs.iter().position(|s| s.entry == id) else {
            return false;
        };
        let sub = subs.swap_remove(at);
        self.remove_member(sub);
        true
    }

    /// The connection in `slot` ended: it leaves its topics, and its pending messages go.
    pub(crate) fn leave(&mut self, slot: usize) {
        if let Some(subs) = self.by_conn.get_mut(slot) {
            for sub in std::mem::take(subs) {
                self.remove_member(sub);
            }
        }
        if !self.conflated.is_empty() {
            self.conflated.remove(&(slot as u32));
        }
    }

    /// Whether the connection in `slot` has a subscription that matches the literal `topic`.
    pub(crate) fn is_subscribed(&self, slot: usize, topic: &str) -> bool {
        let Some(subs) = self.by_conn.get(slot) else {
            return false;
        };
        subs.iter().any(|sub| {
            let entry = self.entries[sub.entry as usize]
                .as_ref()
                .expect("live entry");
            if entry.wildcard {
                matches(&entry.name, topic)
            } else {
                *entry.name == *topic
            }
        })
    }

    /// Bytes this worker's subscription tables hold (entries, members, lists, names; not the
    /// pending conflated messages).
    #[cfg(test)]
    pub(crate) fn memory(&self) -> usize {
        let names: usize = self
            .names
            .keys()
            .map(|k| k.len() + size_of::<(Box<str>, u32)>() + 1)
            .sum();
        let entries: usize = self
            .entries
            .iter()
            .flatten()
            .map(|e| e.name.len() + e.members.capacity() * size_of::<Member>())
            .sum::<usize>()
            + self.entries.capacity() * size_of::<Option<Entry>>();
        let lists: usize = self
            .by_conn
            .iter()
            .map(|subs| subs.capacity() * size_of::<Sub>())
            .sum::<usize>()
            + self.by_conn.capacity() * size_of::<Vec<Sub>>();
        names + entries + lists + self.rounds.capacity() * size_of::<u32>()
    }

    fn add_entry(&mut self, pattern: &str, wildcard: bool) -> u32 {
        let entry = Entry {
            name: pattern.into(),
            wildcard,
            members: Vec::new(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = Some(entry);
                id
            }
            None => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as u32
            }
        };
        self.names.insert(pattern.into(), id);
        if wildcard {
            *self.patterns.get_or_insert_with(pattern, || id) = id;
        }
        self.interest.add(pattern, wildcard, self.worker);
        id
    }

    /// Takes `sub`'s member out of its entry (the last member moves into its place), and the
    /// entry out when it was the last.
    fn remove_member(&mut self, sub: Sub) {
        self.subscriptions -= 1;
        let entry = self.entries[sub.entry as usize]
            .as_mut()
            .expect("live entry");
        let pos = sub.pos as usize;
        entry.members.swap_remove(pos);
        if let Some(moved) = entry.members.get(pos) {
            // The moved member's own list points at its old place.
            let subs = &mut self.by_conn[moved.slot as usize];
            if let Some(s) = subs.iter_mut().find(|s| s.entry == sub.entry) {
                s.pos = sub.pos;
            }
        }
        if entry.members.is_empty() {
            let entry = self.entries[sub.entry as usize].take().expect("live entry");
            self.names.remove(&entry.name);
            if entry.wildcard {
                self.patterns.remove(&entry.name);
            }
            self.interest
                .remove(&entry.name, entry.wildcard, self.worker);
            self.free.push(sub.entry);
        }
    }

    /// The subscribers of `topic` on this worker, each once (exact subscriptions first, then
    /// patterns; the first subscription found gives the policy).
    fn recipients(&mut self, topic: &str, into: &mut Vec<Member>) {
        let exact = self.names.get(topic).and_then(|&id| {
            let entry = self.entries[id as usize].as_ref()?;
            (!entry.wildcard).then_some(entry)
        });
        if self.patterns.is_empty() {
            if let Some(entry) = exact {
                into.extend_from_slice(&entry.members);
            }
            return;
        }
        self.round = self.round.wrapping_add(1);
        if self.round == 0 {
            // Rounds wrapped: no slot may hold a stale match of the new round.
            self.rounds.iter_mut().for_each(|r| *r = 0);
            self.round = 1;
        }
        let (round, rounds, entries) = (self.round, &mut self.rounds, &self.entries);
        let mut take = |members: &[Member]| {
            for m in members {
                let slot = m.slot as usize;
                if rounds.len() <= slot {
                    rounds.resize(slot + 1, 0);
                }
                if rounds[slot] != round {
                    rounds[slot] = round;
                    into.push(*m);
                }
            }
        };
        if let Some(entry) = exact {
            take(&entry.members);
        }
        self.patterns.for_each_match(topic, |&id| {
            if let Some(entry) = entries[id as usize].as_ref() {
                take(&entry.members);
            }
        });
    }

    /// Keeps `p` as the newest pending message of its topic for the connection in `slot`;
    /// `true` when it replaced an older one.
    fn conflate(&mut self, slot: usize, p: &Arc<Publication>) -> bool {
        let pending = self.conflated.entry(slot as u32).or_default();
        match pending.iter_mut().find(|q| q.topic == p.topic) {
            Some(older) => {
                *older = Arc::clone(p);
                true
            }
            None => {
                pending.push(Arc::clone(p));
                false
            }
        }
    }

    /// Takes the conflated message of `topic` waiting for the connection in `slot`, if any.
    fn take_conflated(&mut self, slot: usize, topic: &str) -> Option<Arc<Publication>> {
        if self.conflated.is_empty() {
            return None;
        }
        let key = slot as u32;
        let pending = self.conflated.get_mut(&key)?;
        let at = pending.iter().position(|q| *q.topic == *topic)?;
        let older = pending.remove(at);
        if pending.is_empty() {
            self.conflated.remove(&key);
        }
        Some(older)
    }

    /// Whether the connection in `slot` has conflated messages waiting.
    pub(crate) fn has_conflated(&self, slot: usize) -> bool {
        !self.conflated.is_empty() && self.conflated.contains_key(&(slot as u32))
    }

    /// Whether `topic` has a conflated message waiting for the connection in `slot`: a newer
    /// one must replace it rather than pass it.
    fn is_conflated(&self, slot: usize, topic: &str) -> bool {
        !self.conflated.is_empty()
            && self
                .conflated
                .get(&(slot as u32))
                .is_some_and(|pending| pending.iter().any(|q| *q.topic == *topic))
    }
}

/// The compressed frames of one publish, by settings, as this worker got them.
#[derive(Default)]
struct Variants(Vec<Variant>);

impl<H: Handler, S: Transport> Driver<H, S> {
    /// Delivers `p` to this worker's subscribers of its topic, and reports what it did when
    /// the publisher asked.
    pub(crate) fn publish(&mut self, p: &Arc<Publication>) {
        let mut recipients = std::mem::take(&mut self.app.topics.scratch);
        self.app.topics.recipients(&p.topic, &mut recipients);
        let mut report = PublishReport::default();
        let mut variants = Variants::default();
        for m in &recipients {
            let policy = Some(m.policy);
            self.deliver(m.slot as usize, policy, p, &mut variants, &mut report);
        }
        recipients.clear();
        self.app.topics.scratch = recipients;
        self.app.stats.publications += 1;
        if let Some(tx) = &p.report {
            let _ = tx.send(report);
        }
    }

    /// Runs the publishes the turn's callbacks made, for this worker's subscribers.
    pub(crate) fn publish_deferred(&mut self) {
        while !self.app.topics.deferred.is_empty() {
            for p in std::mem::take(&mut self.app.topics.deferred) {
                self.publish(&p);
            }
        }
    }

    /// Writes the conflated messages of `idx`, whose queue just emptied.
    pub(crate) fn release_conflated(&mut self, idx: usize) {
        let Some(pending) = self.app.topics.conflated.remove(&(idx as u32)) else {
            return;
        };
        let mut report = PublishReport::default();
        let mut variants = Variants::default();
        for p in &pending {
            let policy = Some(SlowConsumer::Conflate);
            self.deliver(idx, policy, p, &mut variants, &mut report);
            variants.0.clear();
        }
    }

    /// One subscriber's copy of `p`, under the subscription's `policy`; `None` for a
    /// message its publish already admitted (a conflated one), which no limit refuses.
    fn deliver(
        &mut self,
        idx: usize,
        policy: Option<SlowConsumer>,
        p: &Arc<Publication>,
        variants: &mut Variants,
        report: &mut PublishReport,
    ) {
        let limit = self.config.backpressure.limit;
        if policy.is_some_and(|policy| policy != SlowConsumer::Conflate)
            && self.app.topics.is_conflated(idx, &p.topic)
            && (self.conns.get(idx)).is_some_and(|slot| slot.link.queue.len() <= limit)
        {
            if let Some(older) = self.app.topics.take_conflated(idx, &p.topic) {
                // The subscription stopped conflating while a message of this topic waited:
                // that message goes first, so that the topic keeps its order. Its publisher's
                // report already counted it as conflated, so no policy refuses it; it is
                // queued as any message within the limit is. Over the limit it keeps waiting
                // (and leaves when the queue empties), and this newer publish meets its policy
                // over the limit: it is not queued ahead of it either way.
                let mut counted = PublishReport::default();
                self.deliver(idx, None, &older, &mut Variants::default(), &mut counted);
            }
        }
        let now = self.timers.now;
        let Some(slot) = self.conns.get_mut(idx) else {
            return;
        };
        let id = ConnId::new(self.app.index, idx, slot.generation);
        if slot.phase != Phase::Open || p.skip == Some(id) {
            return;
        }
        let ext = slot.link.proto.extension().as_deref();
        let settings = ext.and_then(PerMessageDeflate::send_settings);
        let compressed = settings.and_then(|s| variants.get(s, p, &self.compressor));
        let (frame, rsv): (&Arc<[u8]>, Rsv) = match compressed {
            Some(frame) => (frame, Rsv::RSV1),
            None => (p.frame(), Rsv::NONE),
        };
        if slot.link.proto.admit_shared_frame(rsv).is_err() {
            report.closed += 1;
            return;
        }
        let stats = &mut self.app.stats;
        let queued = slot.link.queue.len();
        let topics = &mut self.app.topics;
        let conflate = policy == Some(SlowConsumer::Conflate);
        if conflate && (queued > 0 || topics.is_conflated(idx, &p.topic)) {
            if topics.conflate(idx, p) {
                stats.conflated += 1;
            }
            report.conflated += 1;
            if queued == 0 {
                // Nothing queued to wait for: the turn's write releases it.
                self.mark_dirty(idx);
            }
            return;
        }
        if let Some(policy) = policy.filter(|_| queued > self.config.backpressure.limit) {
            stats.sends_over_limit += 1;
            match policy {
                SlowConsumer::Drop => {
                    stats.sends_dropped += 1;
                    report.dropped += 1;
                }
                SlowConsumer::Close(code) => {
                    if slot.link.ending.is_none() {
                        stats.backpressure_closes += 1;
                    }
                    slot.link
                        .close(code, "backpressure", now, Ending::Backpressure);
                    report.closed += 1;
                    self.mark_dirty(idx);
                }
                _ => report.refused += 1,
            }
            return;
        }
        let bufs = &mut self.io.bufs;
        slot.link.poll_transmit(&mut bufs.cork);
        let queue = &mut slot.link.queue;
        if conflate {
            // Nothing waits (or it would have been conflated): one write now, from the shared
            // bytes, after any pong owed; what the kernel leaves waits by reference.
            let mut wire = Wire {
                stream: &mut slot.stream,
                scratch: &mut bufs.scratch,
            };
            let sent =
                queue.write_shared(&mut bufs.cork, bufs.raw, frame, &mut wire, &mut bufs.pool);
            stats.bytes_out += sent as u64;
        } else {
            // Staged: the turn's frames for this subscriber leave in one write at its end
            // (every publish the turn ran, in order), after any pong owed.
            if !bufs.cork.is_empty() {
                queue.take_rest(&mut bufs.cork, 0, bufs.raw);
            }
            if frame.len() >= SHARE_MIN {
                queue.push_shared(frame, &mut bufs.pool);
            } else {
                queue.append(&mut bufs.pool, |buf| buf.extend_from_slice(frame));
            }
        }
        bufs.reset_cork();
        if !rsv.is_empty() {
            // The peer's window holds this payload; our compressor's does not.
            if let Some(ext) = slot.link.proto.extension_mut() {
                ext.reset_send_context();
            }
        }
        stats.messages_out += 1;
        report.delivered += 1;
        if !slot.link.queue.is_empty() {
            // Written with the turn's writes (a socket error shows there).
            self.mark_dirty(idx);
        }
    }

    /// Writes connection `idx` at the end of the turn.
    pub(crate) fn mark_dirty(&mut self, idx: usize) {
        if let Some(slot) = self.conns.get_mut(idx) {
            if !slot.dirty {
                slot.dirty = true;
                self.dirty.push(idx);
            }
        }
    }
}

impl Variants {
    fn get(
        &mut self,
        settings: SendSettings,
        p: &Publication,
        compressor: &sockeye_deflate::SharedCompressor,
    ) -> Option<&Arc<[u8]>> {
        let at = match self.0.iter().position(|(s, _)| *s == settings) {
            Some(at) => at,
            None => {
                // One reference per worker and settings, not one per recipient.
                self.0.push((settings, p.compressed(&settings, compressor)));
                self.0.len() - 1
            }
        };
        self.0[at].1.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_costs_under_64_bytes_at_100_000_connections_by_10_topics() {
        let interest = Arc::new(Interest::default());
        let mut topics = Topics::new(Arc::clone(&interest), 0);
        let (conns, per_conn, distinct) = (100_000, 10, 1_000);
        for slot in 0..conns {
            for j in 0..per_conn {
                let topic = format!("prices.{}", (slot * per_conn + j) % distinct);
                assert!(topics.subscribe(slot, &topic, SlowConsumer::Fail).unwrap());
            }
        }
        let subscriptions = conns * per_conn;
        assert_eq!(topics.subscriptions(), subscriptions);
        let per = topics.memory() as f64 / subscriptions as f64;
        println!(
            "{conns} connections x {per_conn} topics ({distinct} distinct): {} bytes, {per:.1} \
             bytes per subscription",
            topics.memory()
        );
        assert!(per <= 64.0, "{per:.1} bytes per subscription");
        // Leaving gives everything back, the interest included.
        for slot in 0..conns {
            topics.leave(slot);
        }
        assert_eq!(topics.subscriptions(), 0);
        assert!(topics.names.is_empty() && topics.patterns.is_empty());
        assert!(interest.workers("prices.1").is_empty());
    }

    #[test]
    fn a_member_moved_by_an_unsubscribe_can_still_leave() {
        let mut topics = Topics::new(Arc::default(), 0);
        for slot in 0..5 {
            topics.subscribe(slot, "t", SlowConsumer::Drop).unwrap();
            topics.subscribe(slot, "u.*", SlowConsumer::Drop).unwrap();
        }
        assert!(!topics.subscribe(3, "t", SlowConsumer::Conflate).unwrap());
        assert!(topics.unsubscribe(0, "t"));
        assert!(!topics.unsubscribe(0, "t"));
        topics.leave(4);
        let mut got = Vec::new();
        topics.recipients("t", &mut got);
        let mut slots: Vec<_> = got.iter().map(|m| m.slot).collect();
        slots.sort_unstable();
        assert_eq!(slots, [1, 2, 3]);
        let conflating: Vec<_> = got
            .iter()
            .filter(|m| m.policy == SlowConsumer::Conflate)
            .map(|m| m.slot)
            .collect();
        assert_eq!(conflating, [3]);
        for slot in 0..4 {
            topics.leave(slot);
        }
        assert_eq!(topics.subscriptions(), 0);
        assert!(topics.entries.iter().all(Option::is_none));
    }
}
