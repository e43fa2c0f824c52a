//! The worker's buffers: the shared receive buffer, the cork, the pool of large buffers and
//! the TLS scratch space. Connections borrow them for their turn and own none while idle.

use super::output::Backlog;
use crate::transport::Scratch;

/// Capacity the cork keeps between turns (larger ones go to the pool).
const CORK_KEEP: usize = 4 << 20;

/// Buffers at least this large go back to the worker's [`Pool`] instead of the allocator.
const POOL_MIN: usize = 64 << 10;

/// The most bytes of buffers a worker's pool holds.
const POOL_MAX_BYTES: usize = 16 << 20;

/// Emptied backlogs kept for reuse, at most (each with a buffer of at most 16 KiB).
const SPARE_BACKLOGS: usize = 256;

/// Every buffer of a worker.
pub(crate) struct Io {
    /// The shared receive buffer: each read lands here (behind a connection's leftover) and
    /// frames are decoded in place.
    pub(crate) recv: Vec<u8>,
    /// What the sending side borrows.
    pub(crate) bufs: Bufs,
}

/// The buffers a connection's sending side borrows for its turn.
pub(crate) struct Bufs {
    /// The frames of the connection whose turn it is (see [`super::output`]).
    pub(crate) cork: Vec<u8>,
    /// How many bytes at the cork's start are not frames (an HTTP response).
    pub(crate) raw: usize,
    /// The buffers TLS connections read and encrypt in (empty without TLS).
    pub(crate) scratch: Scratch,
    /// Large buffers between uses.
    pub(crate) pool: Pool,
}

impl Io {
    pub(crate) fn new(recv_buffer: usize, scratch: Scratch) -> Self {
        Io {
            recv: vec![0; recv_buffer],
            bufs: Bufs {
                cork: Vec::new(),
                raw: 0,
                scratch,
                pool: Pool::default(),
            },
        }
    }
}

impl Bufs {
    /// Empties the cork after a turn's write, keeping a buffer of sensible size.
    pub(crate) fn reset_cork(&mut self) {
        self.cork.clear();
        self.raw = 0;
        if self.cork.capacity() == 0 {
            // Its buffer went to a queue: take a pooled one, so that the next large frame needs
            // no fresh allocation.
            self.cork = self.pool.take();
        } else if self.cork.capacity() > CORK_KEEP {
            // A huge message passed through: do not hold its size in the cork for ever.
            let big = std::mem::take(&mut self.cork);
            self.pool.give(big);
        }
    }
}

/// Large buffers a worker keeps between uses: the reassembly buffer of a message that spans
/// reads, the backlog of a connection the kernel could not keep up with, the cork after a large
/// message. Handing them on spares the allocator's trips to the kernel (a fresh megabyte costs
/// 256 page faults) for every large message. Bounded: at most 16 MiB per worker.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
    /// Emptied backlogs with a small buffer, for the next connection that needs one: a publish
    /// stages a frame in every subscriber's queue each turn, and would otherwise allocate two
    /// blocks per subscriber per turn.
    // Boxed: a queue holds its backlog as a box, and takes this one as it is.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Backlog>>,
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

    /// An empty backlog: a recycled one when there is one.
    pub(crate) fn backlog(&mut self) -> Box<Backlog> {
        self.spare.pop().unwrap_or_default()
    }

    /// Keeps an emptied backlog for reuse when its buffer is small and the pool has room.
    pub(crate) fn recycle(&mut self, mut backlog: Box<Backlog>) {
        match backlog.reset() {
            Some(buf) => self.give(buf),
            None if self.spare.len() < SPARE_BACKLOGS => self.spare.push(backlog),
            None => {}
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

#[cfg(test)]
mod tests {
    use super::*;

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
