//! Which workers have subscribers for what: the one table shared between threads.
//!
//! A worker changes it only when its first subscription to a topic (or pattern) arrives and
//! when its last one leaves, not on every subscribe; a publisher reads it once per publish to
//! send one command to each worker concerned. A publish racing a worker's first subscription
//! may miss that worker: a subscription counts for the publishes that start after it.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use super::{Backplane, Trie};

/// The workers interested in each topic and pattern.
#[derive(Default)]
pub(crate) struct Interest {
    table: RwLock<Table>,
    /// Told when the whole node's interest in a topic or pattern starts or ends.
    backplane: OnceLock<Arc<dyn Backplane>>,
}

#[derive(Default)]
struct Table {
    exact: HashMap<Box<str>, Workers>,
    patterns: Trie<Workers>,
}

/// Words of a worker set: 4096 workers at most (the worker bits of a `ConnId`).
const SET_WORDS: usize = (1 << crate::handler::WORKER_BITS) / 64;

/// A set of worker indexes.
#[derive(Default, Clone)]
struct Workers(Vec<u64>);

impl Workers {
    fn insert(&mut self, worker: usize) {
        let (word, bit) = (worker / 64, worker % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    fn remove(&mut self, worker: usize) {
        if let Some(word) = self.0.get_mut(worker / 64) {
            *word &= !(1 << (worker % 64));
        }
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    fn add_to(&self, set: &mut [u64; SET_WORDS]) {
        for (into, word) in set.iter_mut().zip(&self.0) {
            *into |= word;
        }
    }
}

impl Interest {
    /// Joins the node to other nodes: set once, before the workers start.
    pub(crate) fn set_backplane(&self, backplane: Arc<dyn Backplane>) -> bool {
        self.backplane.set(backplane).is_ok()
    }

    pub(crate) fn backplane(&self) -> Option<&Arc<dyn Backplane>> {
        self.backplane.get()
    }

    /// Worker `worker` has its first subscription to `pattern` (a topic, or a pattern with
    /// wildcards when `wildcard`).
    pub(crate) fn add(&self, pattern: &str, wildcard: bool, worker: usize) {
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        let workers = if wildcard {
            table.patterns.get_or_insert_with(pattern, Workers::default)
        } else {
            table.exact.entry(pattern.into()).or_default()
        };
        let first = workers.is_empty();
        workers.insert(worker);
        if first {
            // Under the lock: the backplane hears the node's changes in the order they happen.
            if let Some(backplane) = self.backplane.get() {
                backplane.interest(pattern, true);
            }
        }
    }

    /// Worker `worker` has no subscription to `pattern` left.
    pub(crate) fn remove(&self, pattern: &str, wildcard: bool, worker: usize) {
        let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
        if wildcard {
            if let Some(workers) = table.patterns.get_mut(pattern) {
                workers.remove(worker);
                if workers.is_empty() {
                    table.patterns.remove(pattern);
                    self.last_left(pattern);
                }
            }
        } else if let Some(workers) = table.exact.get_mut(pattern) {
            workers.remove(worker);
            if workers.is_empty() {
                table.exact.remove(pattern);
                self.last_left(pattern);
            }
        }
    }

    fn last_left(&self, pattern: &str) {
        if let Some(backplane) = self.backplane.get() {
            backplane.interest(pattern, false);
        }
    }

    /// The workers with a subscription that matches the literal `topic`, in increasing order.
    pub(crate) fn workers(&self, topic: &str) -> Vec<usize> {
        // On the stack: a publish allocates only its answer.
        let mut set = [0u64; SET_WORDS];
        {
            let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(workers) = table.exact.get(topic) {
                workers.add_to(&mut set);
            }
            if !table.patterns.is_empty() {
                table
                    .patterns
                    .for_each_match(topic, |workers| workers.add_to(&mut set));
            }
        }
        let mut out = Vec::new();
        for (i, &word) in set.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                let bit = word.trailing_zeros() as usize;
                out.push(i * 64 + bit);
                word &= word - 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_follow_first_and_last_subscriptions() {
        let interest = Interest::default();
        interest.add("a.b", false, 1);
        interest.add("a.*", true, 3);
        interest.add("a.>", true, 70);
        assert_eq!(interest.workers("a.b"), vec![1, 3, 70]);
        assert_eq!(interest.workers("a.c"), vec![3, 70]);
        assert_eq!(interest.workers("a.c.d"), vec![70]);
        assert_eq!(interest.workers("b"), Vec::<usize>::new());
        interest.remove("a.*", true, 3);
        interest.remove("a.b", false, 1);
        assert_eq!(interest.workers("a.b"), vec![70]);
        interest.remove("a.>", true, 70);
        assert!(interest.workers("a.b.c").is_empty());
        let table = interest.table.read().unwrap();
        assert!(table.exact.is_empty() && table.patterns.is_empty());
    }
}
