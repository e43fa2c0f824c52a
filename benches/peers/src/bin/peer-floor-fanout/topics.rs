//! One worker's subscriptions: exact topic -> the connections (slot numbers) subscribed to it.
//!
//! A connection's own list of topics is kept by the caller, who checks it before subscribing
//! (so no topic lists a connection twice) and unsubscribes every topic when the connection
//! goes, before its slot can be reused. Unsubscribing scans the topic's list: a floor keeps
//! the publish path (one lookup, then a slice) and nothing else fast.

use std::collections::HashMap;

#[derive(Debug, Default)]
pub(crate) struct Topics {
    subscribers: HashMap<Box<[u8]>, Vec<usize>>,
}

impl Topics {
    /// Adds `conn` to `topic`; the caller knows it is not there yet.
    pub(crate) fn subscribe(&mut self, topic: &[u8], conn: usize) {
        match self.subscribers.get_mut(topic) {
            Some(list) => list.push(conn),
            None => {
                self.subscribers.insert(topic.into(), vec![conn]);
            }
        }
    }

    /// Removes `conn` from `topic`, and the topic once nobody is left.
    pub(crate) fn unsubscribe(&mut self, topic: &[u8], conn: usize) {
        let Some(list) = self.subscribers.get_mut(topic) else {
            return;
        };
        if let Some(i) = list.iter().position(|&c| c == conn) {
            list.swap_remove(i);
        }
        if list.is_empty() {
            self.subscribers.remove(topic);
        }
    }

    /// The connections subscribed to `topic`, in no particular order.
    pub(crate) fn subscribers(&self, topic: &[u8]) -> &[usize] {
        self.subscribers.get(topic).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_and_unsubscribe() {
        let mut topics = Topics::default();
        topics.subscribe(b"a", 1);
        topics.subscribe(b"a", 2);
        topics.subscribe(b"b", 1);
        let mut a = topics.subscribers(b"a").to_vec();
        a.sort_unstable();
        assert_eq!(a, [1, 2]);
        topics.unsubscribe(b"a", 1);
        topics.unsubscribe(b"a", 7);
        topics.unsubscribe(b"zzz", 1);
        assert_eq!(topics.subscribers(b"a"), [2]);
        topics.unsubscribe(b"a", 2);
        topics.unsubscribe(b"b", 1);
        assert!(topics.subscribers.is_empty());
        assert_eq!(topics.subscribers(b"a"), [] as [usize; 0]);
    }
}
