//! Who subscribes and publishes where: subscriber i takes the K topics `(i*K + j) % T`, publisher
//! p the topics `p, p+P, p+2P, ...` below T.

use super::{Member, Setup};

/// Topics `first + j * step (mod total)` for `j < count`, distinct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TopicSet {
    first: usize,
    step: usize,
    /// How many topics.
    pub(super) count: usize,
    total: usize,
}

impl TopicSet {
    /// The topics `member` publishes on: a publisher's own, none for a subscriber.
    pub(super) fn published(member: Member, setup: &Setup) -> TopicSet {
        let total = setup.topics;
        match member {
            Member::Publisher(p) => TopicSet {
                first: p,
                step: setup.publishers,
                count: (total - p).div_ceil(setup.publishers),
                total,
            },
            Member::Subscriber(_) => TopicSet {
                first: 0,
                step: 1,
                count: 0,
                total,
            },
        }
    }

    /// The topics `member` subscribes to: a subscriber's K; a publisher's own in the closed
    /// loop, none when paced.
    pub(super) fn subscribed(member: Member, setup: &Setup) -> TopicSet {
        let total = setup.topics;
        match member {
            Member::Subscriber(i) => TopicSet {
                first: (i % total) * setup.per_subscriber % total,
                step: 1,
                count: setup.per_subscriber,
                total,
            },
            Member::Publisher(_) if setup.rate == 0.0 => TopicSet::published(member, setup),
            Member::Publisher(_) => TopicSet::published(Member::Subscriber(0), setup),
        }
    }

    /// The topic in `slot` (below `count`).
    pub(super) fn topic(&self, slot: usize) -> usize {
        (self.first + slot * self.step) % self.total
    }

    /// The slot of `topic` in the set.
    pub(super) fn slot(&self, topic: usize) -> Option<usize> {
        let distance = (topic + self.total - self.first) % self.total;
        let slot = distance / self.step;
        (distance % self.step == 0 && slot < self.count).then_some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::fanout::tests::setup;

    fn topics(set: TopicSet) -> Vec<usize> {
        (0..set.count).map(|slot| set.topic(slot)).collect()
    }

    #[test]
    fn subscribers_take_k_distinct_topics() {
        let s = setup(10, 5, 2, 2, 0.0);
        // (subscriber, its topics)
        let table: [(usize, &[usize]); 4] =
            [(0, &[0, 1]), (1, &[2, 3]), (2, &[4, 0]), (7, &[4, 0])];
        for (i, expected) in table {
            let set = TopicSet::subscribed(Member::Subscriber(i), &s);
            assert_eq!(TopicSet::published(Member::Subscriber(i), &s).count, 0);
            assert_eq!(topics(set), expected, "{i}");
            for t in 0..5 {
                let slot = set.slot(t);
                assert_eq!(slot.map(|j| set.topic(j)), slot.map(|_| t), "{i} {t}");
                assert_eq!(slot.is_some(), expected.contains(&t), "{i} {t}");
            }
        }
    }

    #[test]
    fn publishers_own_every_pth_topic() {
        let closed = setup(1, 7, 1, 3, 0.0);
        let paced = setup(1, 7, 1, 3, 100.0);
        // (publisher, its topics)
        let table: [(usize, &[usize]); 3] = [(0, &[0, 3, 6]), (1, &[1, 4]), (2, &[2, 5])];
        for (p, expected) in table {
            let own = TopicSet::published(Member::Publisher(p), &closed);
            assert_eq!(topics(own), expected, "{p}");
            for t in 0..7 {
                assert_eq!(own.slot(t).is_some(), expected.contains(&t), "{p} {t}");
            }
            // Closed-loop publishers subscribe to their own topics; paced ones to none.
            assert_eq!(TopicSet::subscribed(Member::Publisher(p), &closed), own);
            assert_eq!(TopicSet::published(Member::Publisher(p), &paced), own);
            assert_eq!(TopicSet::subscribed(Member::Publisher(p), &paced).count, 0);
        }
    }
}
