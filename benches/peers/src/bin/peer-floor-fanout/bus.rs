//! Publishes between workers (only with `--workers` above 1): every publish goes to every other
//! worker's inbox as one shared, already encoded `msg` frame, and that worker writes it to its
//! own subscribers of the topic. No worker knows another's subscriptions; a publish nobody
//! elsewhere wants costs each other worker one lock, one push and (when its inbox was empty)
//! one wake-up.
//!
//! Each inbox holds at most [`MAX_PENDING`] publishes; a worker that falls that far behind
//! misses the ones above it (its subscribers see them as lost), so a slow worker cannot make
//! another's memory grow without bound.

use std::mem;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use mio::Waker;

/// Publishes waiting for one worker, at most.
const MAX_PENDING: usize = 1 << 16;

/// One publish as every worker writes it.
#[derive(Debug)]
pub(crate) struct Publish {
    /// The whole `msg TOPIC PAYLOAD` frame.
    pub(crate) frame: Vec<u8>,
    /// Where TOPIC lies in `frame`.
    pub(crate) topic: Range<usize>,
}

impl Publish {
    pub(crate) fn topic(&self) -> &[u8] {
        &self.frame[self.topic.clone()]
    }
}

#[derive(Debug, Default)]
struct Inbox {
    pending: Mutex<Vec<Arc<Publish>>>,
    /// Set by the worker once its poll exists; until then it drains its inbox when it starts.
    waker: OnceLock<Waker>,
}

/// Every worker's inbox.
#[derive(Debug)]
pub(crate) struct Bus {
    inboxes: Vec<Inbox>,
}

impl Bus {
    pub(crate) fn new(workers: usize) -> Bus {
        Bus {
            inboxes: (0..workers).map(|_| Inbox::default()).collect(),
        }
    }

    /// Records worker `me`'s waker (once).
    pub(crate) fn set_waker(&self, me: usize, waker: Waker) {
        let _ = self.inboxes[me].waker.set(waker);
    }

    /// Hands `publish` to every worker but `from`.
    pub(crate) fn send(&self, from: usize, publish: &Arc<Publish>) {
        for (i, inbox) in self.inboxes.iter().enumerate() {
            if i == from {
                continue;
            }
            let was_empty = {
                let mut pending = inbox.pending.lock().unwrap_or_else(PoisonError::into_inner);
                if pending.len() >= MAX_PENDING {
                    continue;
                }
                pending.push(Arc::clone(publish));
                pending.len() == 1
            };
            if let (true, Some(waker)) = (was_empty, inbox.waker.get()) {
                // A failed wake leaves the publishes for the next one.
                let _ = waker.wake();
            }
        }
    }

    /// Moves worker `me`'s pending publishes into `into` (emptied first), oldest first.
    pub(crate) fn take(&self, me: usize, into: &mut Vec<Arc<Publish>>) {
        into.clear();
        let mut pending = self.inboxes[me]
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        mem::swap(&mut *pending, into);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_reach_every_other_worker_in_order_up_to_the_cap() {
        let bus = Bus::new(3);
        for n in 0..3u8 {
            let publish = Arc::new(Publish {
                frame: vec![n, b't'],
                topic: 1..2,
            });
            bus.send(1, &publish);
        }
        let mut got = Vec::new();
        bus.take(1, &mut got);
        assert!(got.is_empty());
        bus.take(0, &mut got);
        let firsts: Vec<u8> = got.iter().map(|p| p.frame[0]).collect();
        assert_eq!(firsts, [0, 1, 2]);
        assert_eq!(got[0].topic(), b"t");
        bus.take(0, &mut got);
        assert!(got.is_empty());
        let publish = Arc::new(Publish {
            frame: Vec::new(),
            topic: 0..0,
        });
        for _ in 0..MAX_PENDING + 10 {
            bus.send(0, &publish);
        }
        bus.take(2, &mut got);
        assert_eq!(got.len(), MAX_PENDING);
    }
}
