//! Sequence accounting of one publisher's stream on one topic, as one subscriber sees it.
//!
//! The publisher numbers its publishes on the topic 0, 1, 2, ... and the server must deliver
//! them in that order, each once. With `last` the highest number seen so far, an arrival `seq`
//! is:
//!
//! | arrival           | counted as                         |
//! |-------------------|------------------------------------|
//! | `seq == last + 1` | in order                           |
//! | `seq > last + 1`  | in order, `seq - last - 1` lost    |
//! | `seq == last`     | duplicated                         |
//! | `seq < last`      | out of order                       |
//!
//! (before anything arrived, `last + 1` is 0). A late arrival that fills a gap is counted out
//! of order and its number stays counted as lost. At the end, what was published after `last`
//! is the lost tail.

/// What one arrival was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arrival {
    /// A new message, `lost` numbers skipped before it (0 when it was the next one).
    New {
        /// Numbers between the last one seen and this one.
        lost: u64,
    },
    /// The last number seen, again.
    Duplicated,
    /// A number below the last one seen.
    OutOfOrder,
}

/// The stream's state: the numbers below `next` arrived or were counted lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Sequence {
    next: u64,
}

impl Sequence {
    /// Accounts for the arrival of number `seq`.
    pub(super) fn accept(&mut self, seq: u64) -> Arrival {
        if seq >= self.next {
            let lost = seq - self.next;
            self.next = seq + 1;
            return Arrival::New { lost };
        }
        if seq + 1 == self.next {
            Arrival::Duplicated
        } else {
            Arrival::OutOfOrder
        }
    }

    /// The lost tail once `published` messages were published: those after the last one seen.
    pub(super) fn missing(&self, published: u64) -> u64 {
        published.saturating_sub(self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_classified() {
        use Arrival::{Duplicated, New, OutOfOrder};
        // (arrivals, what each was, then the lost tail after 10 publishes)
        let table: [(&[u64], &[Arrival], u64); 6] = [
            (&[0, 1, 2], &[New { lost: 0 }; 3], 7),
            (&[], &[], 10),
            (&[3, 4], &[New { lost: 3 }, New { lost: 0 }], 5),
            (
                &[0, 0, 1, 1],
                &[New { lost: 0 }, Duplicated, New { lost: 0 }, Duplicated],
                8,
            ),
            (
                &[0, 2, 1],
                &[New { lost: 0 }, New { lost: 1 }, OutOfOrder],
                7,
            ),
            (
                &[5, 9, 5, 9],
                &[New { lost: 5 }, New { lost: 3 }, OutOfOrder, Duplicated],
                0,
            ),
        ];
        for (arrivals, expected, tail) in table {
            let mut sequence = Sequence::default();
            let got: Vec<Arrival> = arrivals.iter().map(|&seq| sequence.accept(seq)).collect();
            assert_eq!(got, expected, "{arrivals:?}");
            assert_eq!(sequence.missing(10), tail, "{arrivals:?}");
        }
    }

    #[test]
    fn the_tail_never_goes_negative() {
        let mut sequence = Sequence::default();
        sequence.accept(20);
        assert_eq!(sequence.missing(10), 0);
        assert_eq!(sequence.missing(21), 0);
        assert_eq!(sequence.missing(25), 4);
    }
}
