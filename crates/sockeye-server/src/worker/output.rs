//! A connection's outgoing bytes, and the one rule for the order they leave in.
//!
//! # The ordering rule
//!
//! Bytes for a connection sit in one of three places, and leave in this order:
//!
//! 1. **The backlog** ([`Queue`]): what earlier writes could not hand to the kernel. While it
//!    holds anything, new data frames go behind it, never around it.
//! 2. **The control lane** (inside the backlog): pongs, pings and close frames that arrive while
//!    a backlog exists. They do not wait behind the data: they leave at the backlog's next frame
//!    boundary, after at most the rest of one partly written frame. A close frame also discards
//!    the data behind that boundary, since nothing may follow a close (RFC 6455 §5.5.1).
//! 3. **The cork**: the worker's buffer for the frames of the connection whose turn it is, while
//!    it has no backlog. Data and control frames go there in the order they are made and leave
//!    in one write at the end of the turn; a large message leaves from the caller's bytes right
//!    behind the corked frames in one vectored write ([`Queue::write_direct`]). What the kernel
//!    does not take becomes the backlog.
//!
//! So data frames leave in send order; control frames leave in their own order, never later
//! than the next frame boundary; frames never interleave inside a frame.
//!
//! # Shared frames
//!
//! A published frame goes to many connections. Where one of them has a backlog, the frame waits
//! in it by reference ([`Queue::push_shared`]): the backlog is then a chain of chunks, the
//! connection's own bytes and shared frames in order, written by one vectored write. Shared
//! chunks are data frames only; control frames live in the connection's own bytes or on the
//! control lane.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;

use super::io::Pool;

/// Where bytes go: the socket, or a fake one in tests.
pub(crate) trait Sock {
    /// Writes `buf` once: the bytes taken, fewer (0 too) when the socket is full.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Writes `bufs` in order as one write takes them.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
}

/// A remainder at least this large moves into the queue with its buffer instead of being copied.
const MOVE_MIN: usize = 64 << 10;

/// Chunks handed to one vectored write at most (the kernel takes up to 1024).
const MAX_SLICES: usize = 64;

/// Whole frames shared by many connections' queues (a publish).
pub(crate) type Shared = Arc<[u8]>;

/// A piece of a backlog: the connection's own bytes, or a shared frame.
#[derive(Debug)]
enum Chunk {
    Owned(Vec<u8>),
    Shared(Shared),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(buf) => buf,
            Chunk::Shared(frame) => frame,
        }
    }
}

/// The bytes of a connection the kernel has not taken, in order. Nothing (a null pointer) while
/// the socket keeps up; written from a moving head, so a large backlog is never shifted byte by
/// byte as the kernel takes it piece by piece.
#[derive(Debug, Default)]
pub(crate) struct Queue(Option<Box<Backlog>>);

/// A non-empty backlog (empty only while [`Pool`] keeps it for reuse).
#[derive(Debug)]
pub(crate) struct Backlog {
    /// `cur[head..]` waits: whole frames, except that the first may be partly written already
    /// (and the very first bytes may be an HTTP response, before any frame).
    cur: Chunk,
    head: usize,
    /// A frame boundary of `cur`: where a frame starts (or its end). Moved forward lazily, only
    /// when a control frame needs the boundary at or after `head`.
    edge: usize,
    /// Control frames waiting for the next boundary; a partly written one keeps its rest here.
    control: Vec<u8>,
    /// The end of the last control frame in `cur` (control frames that were corked in order
    /// with data): the control lane waits until it is written, so that control frames keep
    /// their order among themselves.
    floor: usize,
    /// Whole data frames behind `cur`, in order.
    rest: VecDeque<Chunk>,
    /// The bytes in `rest`, but for its last chunk when that is owned (it grows in place).
    rest_len: usize,
}

/// A recycled backlog keeps a buffer of at most this many bytes.
const SPARE_BUF_MAX: usize = 16 << 10;

impl Default for Backlog {
    fn default() -> Self {
        Backlog {
            cur: Chunk::Owned(Vec::new()),
            head: 0,
            edge: 0,
            control: Vec::new(),
            floor: 0,
            rest: VecDeque::new(),
            rest_len: 0,
        }
    }
}

impl Backlog {
    /// Empties an emptied backlog for reuse, keeping a small buffer; returns a buffer too large
    /// to keep (then the backlog is not kept either).
    pub(crate) fn reset(&mut self) -> Option<Vec<u8>> {
        (self.head, self.edge, self.floor, self.rest_len) = (0, 0, 0, 0);
        self.control.clear();
        if !self.rest.is_empty() {
            self.rest.clear();
        }
        match std::mem::replace(&mut self.cur, Chunk::Owned(Vec::new())) {
            Chunk::Owned(mut buf) if buf.capacity() <= SPARE_BUF_MAX => {
                buf.clear();
                self.cur = Chunk::Owned(buf);
                (self.control.capacity() > SPARE_BUF_MAX).then(Vec::new)
            }
            Chunk::Owned(buf) => Some(buf),
            Chunk::Shared(_) => (self.control.capacity() > SPARE_BUF_MAX).then(Vec::new),
        }
    }

    fn new(buf: Vec<u8>, head: usize, edge: usize) -> Box<Self> {
        let mut backlog = Box::new(Backlog {
            cur: Chunk::Owned(buf),
            head,
            edge,
            control: Vec::new(),
            floor: 0,
            rest: VecDeque::new(),
            rest_len: 0,
        });
        backlog.note_control(edge);
        backlog
    }

    /// A backlog of the shared `frame`, of which `head` bytes are written.
    fn shared(frame: &Shared, head: usize) -> Box<Self> {
        let edge = if head == 0 { 0 } else { frame.len() };
        Box::new(Backlog {
            cur: Chunk::Shared(Arc::clone(frame)),
            head,
            edge,
            control: Vec::new(),
            floor: 0,
            rest: VecDeque::new(),
            rest_len: 0,
        })
    }

    fn cur(&self) -> &[u8] {
        self.cur.bytes()
    }

    /// Bytes waiting, control frames included.
    fn len(&self) -> usize {
        let last = match self.rest.back() {
            Some(Chunk::Owned(buf)) => buf.len(),
            _ => 0,
        };
        self.cur().len() - self.head + self.control.len() + self.rest_len + last
    }

    /// Raises the floor past the control frames in `cur[from..]` (`from` a frame boundary).
    fn note_control(&mut self, mut from: usize) {
        let mut floor = self.floor;
        let cur = self.cur.bytes();
        while from < cur.len() {
            let end = from + frame_len(&cur[from..]);
            if is_control(cur[from]) {
                floor = end;
            }
            from = end;
        }
        self.floor = floor;
    }

    /// The first frame boundary at or after `head` where control frames may go: not before the
    /// control frames already in `cur`.
    fn boundary(&mut self) -> usize {
        self.edge = boundary_at(self.cur.bytes(), self.edge, self.head.max(self.floor));
        self.edge
    }

    fn is_done(&self) -> bool {
        self.head == self.cur().len() && self.control.is_empty() && self.rest.is_empty()
    }

    /// The buffer whole frames are appended to: the end of the backlog, owned.
    fn tail(&mut self) -> &mut Vec<u8> {
        if self.rest.is_empty() {
            if let Chunk::Owned(buf) = &mut self.cur {
                return buf;
            }
        }
        if !matches!(self.rest.back(), Some(Chunk::Owned(_))) {
            self.rest.push_back(Chunk::Owned(Vec::new()));
        }
        match self.rest.back_mut() {
            Some(Chunk::Owned(buf)) => buf,
            _ => unreachable!("an owned chunk was just pushed"),
        }
    }

    /// Appends the whole frames of `bytes` (from the frame boundary `from` on: before it, the
    /// rest of a frame or an HTTP response), in order.
    fn append_frames(&mut self, bytes: &[u8], from: usize) {
        if self.rest.is_empty() && matches!(self.cur, Chunk::Owned(_)) {
            let at = self.cur().len();
            self.tail().extend_from_slice(bytes);
            self.note_control(at + from);
            return;
        }
        if bytes.get(from..).is_some_and(has_control) {
            // Control frames corked in order with data must stay in `cur`, where the floor
            // sees them: copy the chain into one buffer (a rare case: it takes a backlog with
            // shared frames and control frames corked behind it in one turn).
            self.flatten();
            let at = self.cur().len();
            self.tail().extend_from_slice(bytes);
            self.note_control(at + from);
            return;
        }
        self.tail().extend_from_slice(bytes);
    }

    /// Queues the shared `frame` behind everything else.
    fn push_shared(&mut self, frame: &Shared) {
        if let Some(Chunk::Owned(buf)) = self.rest.back() {
            // No longer the last chunk: its length counts now.
            self.rest_len += buf.len();
        }
        self.rest_len += frame.len();
        self.rest.push_back(Chunk::Shared(Arc::clone(frame)));
    }

    /// Takes the first chunk of `rest`.
    fn pop_rest(&mut self) -> Option<Chunk> {
        let chunk = self.rest.pop_front()?;
        let last_owned = self.rest.is_empty() && matches!(chunk, Chunk::Owned(_));
        if !last_owned {
            self.rest_len -= chunk.bytes().len();
        }
        Some(chunk)
    }

    /// Copies the chain into one owned buffer, keeping the head, boundary and floor.
    fn flatten(&mut self) {
        let edge = self.boundary();
        let mut buf = Vec::with_capacity(self.len());
        buf.extend_from_slice(&self.cur()[self.head..]);
        while let Some(chunk) = self.pop_rest() {
            buf.extend_from_slice(chunk.bytes());
        }
        self.edge = edge - self.head;
        self.floor = self.floor.saturating_sub(self.head);
        self.head = 0;
        self.cur = Chunk::Owned(buf);
    }

    /// Accounts for `n` bytes written as `[cur[head..edge], control, cur[edge..], rest...]`
    /// (without the control lane's slice when it is empty).
    fn advance(&mut self, mut n: usize, pool: &mut Pool) {
        let front = self.cur().len() - self.head + self.control.len();
        let k = n.min(front);
        if self.control.is_empty() {
            self.head += k;
        } else {
            self.advance_around_control(k);
        }
        n -= k;
        while self.head == self.cur().len() && self.control.is_empty() {
            let Some(next) = self.pop_rest() else {
                break;
            };
            if let Chunk::Owned(buf) = std::mem::replace(&mut self.cur, next) {
                pool.give(buf);
            }
            // Shared chunks and the chunks behind `cur` hold no control frames.
            (self.head, self.edge, self.floor) = (0, 0, 0);
            let k = n.min(self.cur().len());
            self.head = k;
            n -= k;
        }
    }

    /// Accounts for `n` bytes written as `[cur[head..edge], control, cur[edge..]]`.
    fn advance_around_control(&mut self, mut n: usize) {
        let first = self.edge - self.head;
        if n <= first {
            self.head += n;
            return;
        }
        self.head = self.edge;
        n -= first;
        let control = n.min(self.control.len());
        self.control.drain(..control);
        self.head += n - control;
    }

    /// Drops the data after the frame being written: a close frame is on the control lane.
    fn truncate_at_boundary(&mut self) {
        let edge = self.boundary();
        match &mut self.cur {
            Chunk::Owned(buf) => buf.truncate(edge),
            Chunk::Shared(_) if edge == 0 => {
                self.cur = Chunk::Owned(Vec::new());
                (self.head, self.edge) = (0, 0);
            }
            Chunk::Shared(_) => {}
        }
        self.rest.clear();
        self.rest_len = 0;
    }

    /// Shifts the unwritten rest of an owned `cur` to the front, keeping the boundary.
    fn compact(&mut self) {
        let edge = self.boundary();
        let head = self.head;
        if let Chunk::Owned(buf) = &mut self.cur {
            buf.drain(..head);
            self.edge = edge - head;
            self.floor = self.floor.saturating_sub(head);
            self.head = 0;
        }
    }

    /// One write of what waits, in order: returns the bytes taken and the bytes offered.
    fn write_once(&mut self, sock: &mut impl Sock) -> io::Result<(usize, usize)> {
        if self.control.is_empty() && self.rest.is_empty() {
            let rest = &self.cur()[self.head..];
            return Ok((sock.write(rest)?, rest.len()));
        }
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(MAX_SLICES);
        let edge = if self.control.is_empty() {
            self.head
        } else {
            self.boundary()
        };
        let cur = self.cur.bytes();
        slices.push(IoSlice::new(&cur[self.head..edge]));
        if !self.control.is_empty() {
            slices.push(IoSlice::new(&self.control));
        }
        slices.push(IoSlice::new(&cur[edge..]));
        for chunk in self.rest.iter().take(MAX_SLICES - slices.len()) {
            slices.push(IoSlice::new(chunk.bytes()));
        }
        let offered = slices.iter().map(|s| s.len()).sum();
        Ok((sock.write_vectored(&slices)?, offered))
    }
}

impl Queue {
    /// Bytes waiting, control frames included.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |b| b.len())
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Where data frames go now: behind the backlog, or into the turn's `cork`.
    #[inline]
    pub(crate) fn data<'a>(&'a mut self, cork: &'a mut Vec<u8>) -> &'a mut Vec<u8> {
        match &mut self.0 {
            Some(backlog) => backlog.tail(),
            None => cork,
        }
    }

    /// Queues the shared data `frame` behind what waits, by reference (staged for the turn's
    /// write when nothing waits).
    pub(crate) fn push_shared(&mut self, frame: &Shared, pool: &mut Pool) {
        match &mut self.0 {
            Some(backlog) => backlog.push_shared(frame),
            None => {
                let mut backlog = pool.backlog();
                backlog.cur = Chunk::Shared(Arc::clone(frame));
                self.0 = Some(backlog);
            }
        }
    }

    /// Appends the control frames `f` writes: into the `cork` with no backlog (they leave with
    /// the turn's frames, in order), else onto the control lane. A close frame there discards
    /// the data behind the frame being written.
    #[inline]
    pub(crate) fn control<R>(
        &mut self,
        cork: &mut Vec<u8>,
        f: impl FnOnce(&mut Vec<u8>) -> R,
    ) -> R {
        let Some(backlog) = self.0.as_mut() else {
            return f(cork);
        };
        let start = backlog.control.len();
        let result = f(&mut backlog.control);
        if has_close(&backlog.control[start..]) {
            backlog.truncate_at_boundary();
        }
        result
    }

    /// Runs `f` with the backlog's buffer (made if need be, from `pool`) to append whole data
    /// frames to, behind what waits: frames made outside the connection's turn.
    pub(crate) fn append<R>(&mut self, pool: &mut Pool, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let backlog = self.0.get_or_insert_with(|| pool.backlog());
        let result = f(backlog.tail());
        if backlog.is_done() {
            // Nothing was appended to an empty queue: keep it a null pointer.
            if let Some(backlog) = self.0.take() {
                pool.recycle(backlog);
            }
        }
        result
    }

    /// Queues `buf[from..]`, the part of a write the kernel did not take (`buf[..raw]` is not
    /// frames: an HTTP response). A large remainder takes `buf`'s allocation along (leaving
    /// `buf` empty) instead of being copied.
    pub(crate) fn take_rest(&mut self, buf: &mut Vec<u8>, from: usize, raw: usize) {
        if from == buf.len() {
            return;
        }
        let edge = boundary_at(buf, raw, from);
        match &mut self.0 {
            Some(backlog) => backlog.append_frames(&buf[from..], edge - from),
            None if buf.len() - from >= MOVE_MIN => {
                self.0 = Some(Backlog::new(std::mem::take(buf), from, edge));
            }
            None => self.0 = Some(Backlog::new(buf[from..].to_vec(), 0, edge - from)),
        }
    }

    /// Writes the turn's `cork` (whose first `raw` bytes are not frames) behind what waits,
    /// once; what the kernel does not take waits in the queue. Returns the bytes written. The
    /// cork is left for the caller to clear.
    pub(crate) fn flush(
        &mut self,
        cork: &mut Vec<u8>,
        raw: usize,
        sock: &mut impl Sock,
        pool: &mut Pool,
    ) -> io::Result<usize> {
        if let Some(backlog) = self.0.as_mut() {
            if !cork.is_empty() {
                backlog.append_frames(cork, raw.min(cork.len()));
            }
            return self.write(sock, pool);
        }
        if cork.is_empty() {
            // Nothing to say: no write syscall.
            return Ok(0);
        }
        let n = sock.write(cork)?;
        self.take_rest(cork, n, raw);
        Ok(n)
    }

    /// Writes `cork` and then `payload` (the rest of the cork's last frame) in one vectored
    /// write, with no backlog; what the kernel does not take waits in the queue. The cork is
    /// left for the caller to clear. A socket error is not returned: the bytes wait, and the
    /// next write meets the error again.
    pub(crate) fn write_direct(
        &mut self,
        cork: &mut Vec<u8>,
        raw: usize,
        payload: &[u8],
        sock: &mut impl Sock,
        pool: &mut Pool,
    ) -> usize {
        debug_assert!(self.is_empty(), "a direct write with a backlog");
        let sent = sock
            .write_vectored(&[IoSlice::new(cork), IoSlice::new(payload)])
            .unwrap_or(0);
        let corked = cork.len();
        if sent < corked {
            self.take_rest(cork, sent, raw);
            self.append(pool, |buf| buf.extend_from_slice(payload));
        } else if sent < corked + payload.len() {
            let rest = &payload[sent - corked..];
            let mut buf = pool.take();
            buf.extend_from_slice(rest);
            let end = buf.len();
            self.0 = Some(Backlog::new(buf, 0, end));
        }
        sent
    }

    /// Writes `cork` and then the shared whole `frame` in one vectored write, with no backlog;
    /// what the kernel does not take of the frame waits in the queue by reference. As
    /// [`write_direct`](Self::write_direct) otherwise.
    pub(crate) fn write_shared(
        &mut self,
        cork: &mut Vec<u8>,
        raw: usize,
        frame: &Shared,
        sock: &mut impl Sock,
        pool: &mut Pool,
    ) -> usize {
        debug_assert!(self.is_empty(), "a direct write with a backlog");
        let sent = if cork.is_empty() {
            sock.write(frame)
        } else {
            sock.write_vectored(&[IoSlice::new(cork), IoSlice::new(frame)])
        }
        .unwrap_or(0);
        let corked = cork.len();
        if sent < corked {
            self.take_rest(cork, sent, raw);
            self.push_shared(frame, pool);
        } else if sent < corked + frame.len() {
            self.0 = Some(Backlog::shared(frame, sent - corked));
        }
        sent
    }

    /// Writes what waits: the rest of the frame being written, the control lane, then the data
    /// behind, in one write, or in as many as it takes while the socket takes all it is
    /// offered (a write offers at most [`MAX_SLICES`] chunks, and a socket that took them all
    /// announces no edge for the rest). Gives the buffer back to `pool` when all is written.
    pub(crate) fn write(&mut self, sock: &mut impl Sock, pool: &mut Pool) -> io::Result<usize> {
        let mut written = 0;
        while let Some(backlog) = self.0.as_mut() {
            let (n, offered) = backlog.write_once(sock)?;
            written += n;
            backlog.advance(n, pool);
            if backlog.is_done() {
                // An idle connection owns no send buffer.
                if let Some(backlog) = self.0.take() {
                    pool.recycle(backlog);
                }
            } else if matches!(backlog.cur, Chunk::Owned(_))
                && backlog.head > 0
                && backlog.head >= backlog.cur().len() / 2
            {
                // Shift the rest (the smaller part) so the buffer does not grow without bound
                // while frames keep arriving behind it.
                backlog.compact();
            }
            if n < offered {
                // The socket is full: its writable edge will say when it takes more.
                break;
            }
        }
        Ok(written)
    }
}

/// The first frame boundary at or after `pos`, walking whole frames from the boundary `from`.
/// `bytes` holds at least the header of each frame walked (the last frame's payload may lie
/// beyond its end, as in a direct write).
fn boundary_at(bytes: &[u8], mut from: usize, pos: usize) -> usize {
    while from < pos {
        from += frame_len(&bytes[from..]);
    }
    from
}

/// The length of the server frame (unmasked, or masked) starting `bytes`, header included.
fn frame_len(bytes: &[u8]) -> usize {
    let Some(&second) = bytes.get(1) else {
        // Not a frame: treat the rest as one.
        return bytes.len().max(1);
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    let (header, len) = match second & 0x7f {
        126 if bytes.len() >= 4 => (4, u64::from(u16::from_be_bytes([bytes[2], bytes[3]]))),
        127 if bytes.len() >= 10 => {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[2..10]);
            (10, u64::from_be_bytes(word))
        }
        126 | 127 => return bytes.len().max(1),
        len => (2, u64::from(len)),
    };
    header + mask + usize::try_from(len).unwrap_or(usize::MAX - header - mask)
}

/// Whether a frame whose first byte is `first` is a control frame.
fn is_control(first: u8) -> bool {
    first & 0x08 != 0
}

/// Whether the whole frames in `frames` include a control frame.
fn has_control(frames: &[u8]) -> bool {
    let mut at = 0;
    while at < frames.len() {
        if is_control(frames[at]) {
            return true;
        }
        at += frame_len(&frames[at..]);
    }
    false
}

/// Whether the whole frames in `control` include a close frame.
fn has_close(control: &[u8]) -> bool {
    let mut at = 0;
    while at < control.len() {
        if control[at] & 0x0f == 0x8 {
            return true;
        }
        at += frame_len(&control[at..]);
    }
    false
}

#[cfg(test)]
mod tests {
    use sockeye_proto::connection::write_frame;
    use sockeye_proto::{OpCode, Rsv};

    use super::*;

    /// A socket that takes at most `take` bytes per write, refuses everything while `full`, or
    /// fails.
    #[derive(Default)]
    struct Fake {
        wire: Vec<u8>,
        take: Option<usize>,
        full: bool,
        fail: bool,
        writes: usize,
    }

    impl Sock for Fake {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.writes += 1;
            if self.fail {
                return Err(io::ErrorKind::ConnectionReset.into());
            }
            let mut room = if self.full {
                0
            } else {
                self.take.unwrap_or(usize::MAX)
            };
            let mut n = 0;
            for buf in bufs {
                let k = buf.len().min(room);
                self.wire.extend_from_slice(&buf[..k]);
                room -= k;
                n += k;
            }
            Ok(n)
        }
    }

    fn frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, opcode, Rsv::NONE, payload, None);
        out
    }

    /// Splits a server byte stream into (opcode, payload) frames.
    fn frames(mut wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !wire.is_empty() {
            let len = frame_len(wire);
            let header = len - payload_len(wire);
            out.push((wire[0] & 0x0f, wire[header..len].to_vec()));
            wire = &wire[len..];
        }
        out
    }

    fn payload_len(bytes: &[u8]) -> usize {
        match bytes[1] & 0x7f {
            126 => usize::from(u16::from_be_bytes([bytes[2], bytes[3]])),
            127 => u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
            n => usize::from(n),
        }
    }

    fn data(n: u8, len: usize) -> Vec<u8> {
        frame(OpCode::Binary, &vec![n; len])
    }

    #[test]
    fn frame_lengths_cover_every_header_size() {
        for len in [0, 1, 125, 126, 65_535, 65_536, 200_000] {
            let f = data(1, len);
            assert_eq!(frame_len(&f), f.len(), "payload {len}");
        }
        let mut masked = Vec::new();
        write_frame(
            &mut masked,
            OpCode::Text,
            Rsv::NONE,
            b"hi",
            Some([1, 2, 3, 4]),
        );
        assert_eq!(frame_len(&masked), masked.len());
        assert_eq!(frame_len(&[0x81]), 1, "a cut header never stalls a walk");
    }

    #[test]
    fn the_cork_leaves_in_one_write_and_the_rest_is_queued_in_order() {
        let mut queue = Queue::default();
        let mut pool = Pool::default();
        let mut cork = [data(1, 10), data(2, 300), data(3, 10)].concat();
        let all = cork.clone();
        let mut sock = Fake {
            take: Some(50),
            ..Fake::default()
        };
        assert_eq!(queue.flush(&mut cork, 0, &mut sock, &mut pool).unwrap(), 50);
        cork.clear();
        assert_eq!(queue.len(), all.len() - 50);
        while !queue.is_empty() {
            queue.write(&mut sock, &mut pool).unwrap();
        }
        assert_eq!(sock.wire, all);
        assert_eq!(queue.write(&mut sock, &mut pool).unwrap(), 0);
    }

    #[test]
    fn an_empty_cork_and_queue_make_no_write() {
        let mut sock = Fake::default();
        let n = Queue::default()
            .flush(&mut Vec::new(), 0, &mut sock, &mut Pool::default())
            .unwrap();
        assert_eq!((n, sock.writes), (0, 0));
    }

    #[test]
    fn a_pong_overtakes_queued_data_at_the_next_frame_boundary() {
        for take in [1, 7, 100, 1000, 5000] {
            let mut queue = Queue::default();
            let mut pool = Pool::default();
            let mut cork: Vec<u8> = (0..20).flat_map(|i| data(i, 1000)).collect();
            let mut sock = Fake {
                take: Some(take),
                ..Fake::default()
            };
            queue.flush(&mut cork, 0, &mut sock, &mut pool).unwrap();
            cork.clear();
            let pong = frame(OpCode::Pong, b"keepalive");
            queue.control(&mut cork, |buf| buf.extend_from_slice(&pong));
            assert!(
                cork.is_empty(),
                "with a backlog, control frames skip the cork"
            );
            // More data behind: it stays behind the pong.
            queue.data(&mut cork).extend_from_slice(&data(20, 10));
            while !queue.is_empty() {
                queue.write(&mut sock, &mut pool).unwrap();
            }
            let got = frames(&sock.wire);
            let before = (take / 1002) + 1;
            assert_eq!(got.len(), 22, "take {take}");
            let at = got.iter().position(|(op, _)| *op == 0xA).unwrap();
            assert!(at <= before, "take {take}: pong after {at} frames");
            let order: Vec<u8> = got
                .iter()
                .filter(|(op, _)| *op == 0x2)
                .map(|(_, p)| p[0])
                .collect();
            assert_eq!(order, (0..=20).collect::<Vec<u8>>(), "data keeps its order");
        }
    }

    #[test]
    fn a_close_goes_after_the_partly_written_frame_and_drops_the_data_behind() {
        let mut queue = Queue::default();
        let mut pool = Pool::default();
        let mut cork: Vec<u8> = (0..10).flat_map(|i| data(i, 1000)).collect();
        let mut sock = Fake {
            take: Some(1500),
            ..Fake::default()
        };
        queue.flush(&mut cork, 0, &mut sock, &mut pool).unwrap();
        cork.clear();
        let pong = frame(OpCode::Pong, b"");
        let close = frame(OpCode::Close, &[0x03, 0xe9]);
        queue.control(&mut cork, |buf| buf.extend_from_slice(&pong));
        queue.control(&mut cork, |buf| buf.extend_from_slice(&close));
        assert_eq!(queue.len(), 2 * 1004 - 1500 + pong.len() + close.len());
        while !queue.is_empty() {
            queue.write(&mut sock, &mut pool).unwrap();
        }
        let got = frames(&sock.wire);
        let ops: Vec<u8> = got.iter().map(|(op, _)| *op).collect();
        assert_eq!(ops, [0x2, 0x2, 0xA, 0x8]);
    }

    #[test]
    fn a_control_frame_cut_by_the_kernel_is_finished_before_anything_else() {
        let mut queue = Queue::default();
        let mut pool = Pool::default();
        let mut cork = data(1, 100);
        let mut sock = Fake {
            take: Some(3),
            ..Fake::default()
        };
        queue.flush(&mut cork, 0, &mut sock, &mut pool).unwrap();
        cork.clear();
        let ping = frame(OpCode::Ping, b"0123456789");
        queue.control(&mut cork, |buf| buf.extend_from_slice(&ping));
        queue.data(&mut cork).extend_from_slice(&data(2, 5));
        let mut writes = 0;
        while !queue.is_empty() {
            queue.write(&mut sock, &mut pool).unwrap();
            writes += 1;
            if writes == 36 {
                // Mid-ping: a pong arrives; it waits for the ping to finish.
                let pong = frame(OpCode::Pong, b"x");
                queue.control(&mut cork, |buf| buf.extend_from_slice(&pong));
            }
        }
        let ops: Vec<u8> = frames(&sock.wire).iter().map(|(op, _)| *op).collect();
        assert_eq!(ops, [0x2, 0x9, 0xA, 0x2]);
    }

    #[test]
    fn control_frames_keep_their_order_among_themselves() {
        let mut queue = Queue::default();
        let mut pool = Pool::default();
        // A ping corked with data (in order), then a backlog: later control frames wait for it.
        let mut cork = [data(1, 100), frame(OpCode::Ping, b"1"), data(2, 100)].concat();
        let mut sock = Fake {
            take: Some(10),
            ..Fake::default()
        };
        queue.flush(&mut cork, 0, &mut sock, &mut pool).unwrap();
        cork.clear();
        queue.control(&mut cork, |buf| {
            buf.extend_from_slice(&frame(OpCode::Ping, b"2"))
        });
        while !queue.is_empty() {
            queue.write(&mut sock, &mut pool).unwrap();
        }
        let got: Vec<(u8, Vec<u8>)> = frames(&sock.wire);
        let ops: Vec<u8> = got.iter().map(|(op, _)| *op).collect();
        assert_eq!(
            ops,
            [0x2, 0x9, 0x9, 0x2],
            "ping 2 overtakes data 2, not ping 1"
        );
        assert_eq!((&got[1].1[..], &got[2].1[..]), (&b"1"[..], &b"2"[..]));
    }

    #[test]
    fn an_http_response_in_front_is_not_read_as_frames() {
        let response = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
        let mut queue = Queue::default();
        let mut pool = Pool::default();
        let mut cork = [response.clone(), data(1, 50)].concat();
        let mut sock = Fake {
            take: Some(10),
            ..Fake::default()
        };
        queue
            .flush(&mut cork, response.len(), &mut sock, &mut pool)
            .unwrap();
        cork.clear();
        let pong = frame(OpCode::Pong, b"");
        queue.control(&mut cork, |buf| buf.extend_from_slice(&pong));
        while !queue.is_empty() {
            queue.write(&mut sock, &mut pool).unwrap();
        }
        assert_eq!(&sock.wire[..response.len()], &response[..]);
        let ops: Vec<u8> = frames(&sock.wire[response.len()..])
            .iter()
            .map(|(op, _)| *op)
            .collect();
        assert_eq!(
            ops,
            [0xA, 0x2],
            "the pong waits for the response, then overtakes"
        );
    }

    #[test]
    fn a_refusing_socket_keeps_everything_and_a_failing_one_reports() {
        let mut queue = Queue::default();
        let mut pool = Pool::default();
        let mut cork = data(1, 10);
        let mut sock = Fake {
            full: true,
            ..Fake::default()
        };
        assert_eq!(queue.flush(&mut cork, 0, &mut sock, &mut pool).unwrap(), 0);
        assert_eq!(queue.len(), 12);
        sock.fail = true;
        let err = queue.write(&mut sock, &mut pool).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(queue.len(), 12, "nothing is lost on an error");
    }

    #[test]
    fn a_direct_write_queues_what_the_kernel_leaves_of_both_parts() {
        for take in [0, 5, 20, 1000, 70_000, usize::MAX] {
            let mut queue = Queue::default();
            let mut pool = Pool::default();
            let payload = vec![9u8; 70_000];
            let mut cork = data(1, 10);
            let mut big = frame(OpCode::Binary, &payload);
            big.truncate(big.len() - payload.len());
            cork.extend_from_slice(&big);
            let mut sock = Fake {
                take: Some(take),
                ..Fake::default()
            };
            let sent = queue.write_direct(&mut cork, 0, &payload, &mut sock, &mut pool);
            assert_eq!(sent, sock.wire.len());
            let pong = frame(OpCode::Pong, b"");
            queue.control(&mut cork, |buf| buf.extend_from_slice(&pong));
            if queue.is_empty() {
                cork.clear();
                continue;
            }
            sock.take = Some(999);
            while !queue.is_empty() {
                queue.write(&mut sock, &mut pool).unwrap();
            }
            let ops: Vec<u8> = frames(&sock.wire).iter().map(|(op, _)| *op).collect();
            let expected: &[u8] = if take == 0 {
                &[0xA, 0x2, 0x2]
            } else if take < 12 {
                &[0x2, 0xA, 0x2]
            } else {
                &[0x2, 0x2, 0xA]
            };
            assert_eq!(ops, expected, "take {take}");
        }
    }

    #[test]
    fn a_large_remainder_moves_into_the_queue_without_a_copy() {
        let mut queue = Queue::default();
        let mut cork: Vec<u8> = (0..64).flat_map(|i| data(i, 4000)).collect();
        let len = cork.len();
        let ptr = cork.as_ptr();
        queue.take_rest(&mut cork, 1000, 0);
        assert_eq!(queue.len(), len - 1000);
        assert_eq!(cork.capacity(), 0, "the cork gave its buffer away");
        let backlog = queue.0.as_ref().unwrap();
        assert_eq!((backlog.cur().as_ptr(), backlog.head), (ptr, 1000));
    }

    #[test]
    fn a_small_remainder_is_copied_and_the_cork_kept() {
        let mut queue = Queue::default();
        let mut cork = data(1, 20);
        queue.take_rest(&mut cork, 6, 0);
        assert_eq!(queue.len(), 16);
        assert_eq!(cork.len(), 22, "the cork keeps its buffer");
    }

    fn shared(n: u8, len: usize) -> Shared {
        Arc::from(data(n, len))
    }

    /// A backlog of `own` bytes, nothing written yet.
    fn backlogged(own: &[u8], pool: &mut Pool) -> (Queue, Fake) {
        let mut queue = Queue::default();
        let mut sock = Fake {
            full: true,
            ..Fake::default()
        };
        queue.flush(&mut own.to_vec(), 0, &mut sock, pool).unwrap();
        sock.full = false;
        (queue, sock)
    }

    #[test]
    fn shared_frames_wait_by_reference_in_order_with_owned_ones() {
        for take in [1, 3, 7, 100, 1000, 5000, usize::MAX] {
            let mut pool = Pool::default();
            let (mut queue, mut sock) = backlogged(&data(0, 300), &mut pool);
            let mut expected = data(0, 300);
            let frames: Vec<Shared> = (1..=6).map(|i| shared(i, 200 * usize::from(i))).collect();
            for (i, frame) in frames.iter().enumerate() {
                queue.push_shared(frame, &mut pool);
                expected.extend_from_slice(frame);
                if i % 2 == 1 {
                    let own = data(100 + i as u8, 50);
                    queue.data(&mut Vec::new()).extend_from_slice(&own);
                    expected.extend_from_slice(&own);
                }
            }
            assert_eq!(queue.len(), expected.len(), "take {take}");
            assert!(
                frames.iter().all(|f| Arc::strong_count(f) == 2),
                "not copied"
            );
            sock.take = Some(take);
            let mut writes = 0;
            while !queue.is_empty() {
                let before = queue.len();
                let n = queue.write(&mut sock, &mut pool).unwrap();
                assert_eq!(queue.len(), before - n, "take {take}");
                writes += 1;
                assert!(writes < 100_000);
            }
            assert_eq!(sock.wire, expected, "take {take}");
            assert!(frames.iter().all(|f| Arc::strong_count(f) == 1), "released");
        }
    }

    #[test]
    fn a_socket_that_takes_all_it_is_offered_gets_more_chunks_than_one_write_holds() {
        let mut pool = Pool::default();
        let (mut queue, mut sock) = backlogged(&data(0, 300), &mut pool);
        let mut expected = data(0, 300);
        for i in 0..MAX_SLICES * 2 {
            let frame = shared(i as u8, 300);
            queue.push_shared(&frame, &mut pool);
            expected.extend_from_slice(&frame);
            let own = data(i as u8, 20);
            queue.data(&mut Vec::new()).extend_from_slice(&own);
            expected.extend_from_slice(&own);
        }
        // No writable edge comes for a socket that was never full: one call writes it all.
        sock.writes = 0;
        let n = queue.write(&mut sock, &mut pool).unwrap();
        assert_eq!((n, queue.is_empty()), (expected.len(), true));
        assert_eq!(sock.wire, expected);
        assert!(sock.writes > 1, "{} writes", sock.writes);
        // A socket that fills stops the writes until its edge.
        let (mut queue, mut sock) = backlogged(&data(0, 300), &mut pool);
        for i in 0..MAX_SLICES * 2 {
            queue.push_shared(&shared(i as u8, 300), &mut pool);
        }
        (sock.take, sock.writes) = (Some(1000), 0);
        let n = queue.write(&mut sock, &mut pool).unwrap();
        assert_eq!((n, sock.writes), (1000, 1));
    }

    #[test]
    fn a_pong_overtakes_shared_frames_at_the_next_boundary() {
        for take in [1, 150, 305, 306, 450, 713] {
            let mut pool = Pool::default();
            let (mut queue, mut sock) = backlogged(&data(0, 100), &mut pool);
            for i in 1..=3 {
                queue.push_shared(&shared(i, 200), &mut pool);
            }
            sock.take = Some(take);
            queue.write(&mut sock, &mut pool).unwrap();
            let pong = frame(OpCode::Pong, b"p");
            queue.control(&mut Vec::new(), |buf| buf.extend_from_slice(&pong));
            sock.take = Some(usize::MAX);
            while !queue.is_empty() {
                queue.write(&mut sock, &mut pool).unwrap();
            }
            let got = frames(&sock.wire);
            let ops: Vec<u8> = got.iter().map(|(op, _)| *op).collect();
            let data_before = ops.iter().position(|&op| op == 0xA).unwrap();
            // Frame 0 (102 bytes) and three of 204: the pong follows the frames started.
            let in_progress = [0, 102, 306, 510]
                .iter()
                .filter(|&&start| start < take)
                .count();
            assert_eq!(data_before, in_progress, "take {take}: {ops:?}");
            assert_eq!(ops.len(), 5);
        }
    }

    #[test]
    fn a_close_drops_the_shared_frames_behind_the_frame_in_progress() {
        let mut pool = Pool::default();
        let frame_a = shared(1, 200);
        let mut queue = Queue::default();
        let mut sock = Fake {
            take: Some(50),
            ..Fake::default()
        };
        queue.write_shared(&mut Vec::new(), 0, &frame_a, &mut sock, &mut pool);
        assert_eq!(queue.len(), 204 - 50, "the rest waits by reference");
        assert_eq!(Arc::strong_count(&frame_a), 2);
        let frame_b = shared(2, 200);
        queue.push_shared(&frame_b, &mut pool);
        let close = frame(OpCode::Close, &[0x03, 0xe8]);
        queue.control(&mut Vec::new(), |buf| buf.extend_from_slice(&close));
        assert_eq!(Arc::strong_count(&frame_b), 1, "dropped: behind the close");
        sock.take = None;
        while !queue.is_empty() {
            queue.write(&mut sock, &mut pool).unwrap();
        }
        let ops: Vec<u8> = frames(&sock.wire).iter().map(|(op, _)| *op).collect();
        assert_eq!(ops, [0x2, 0x8]);
    }

    #[test]
    fn control_frames_corked_behind_shared_frames_keep_their_place() {
        let mut pool = Pool::default();
        let (mut queue, mut sock) = backlogged(&data(0, 100), &mut pool);
        queue.push_shared(&shared(1, 300), &mut pool);
        // A turn's cork with a ping in order with data, behind the shared frame.
        let mut cork = [data(2, 10), frame(OpCode::Ping, b"1"), data(3, 10)].concat();
        queue
            .flush(
                &mut cork,
                0,
                &mut Fake {
                    full: true,
                    ..Fake::default()
                },
                &mut pool,
            )
            .unwrap();
        queue.control(&mut Vec::new(), |buf| {
            buf.extend_from_slice(&frame(OpCode::Ping, b"2"))
        });
        sock.take = Some(9);
        while !queue.is_empty() {
            queue.write(&mut sock, &mut pool).unwrap();
        }
        let got = frames(&sock.wire);
        let ops: Vec<u8> = got.iter().map(|(op, _)| *op).collect();
        assert_eq!(
            ops,
            [0x2, 0x2, 0x2, 0x9, 0x9, 0x2],
            "ping 2 waits for ping 1"
        );
        assert_eq!((&got[3].1[..], &got[4].1[..]), (&b"1"[..], &b"2"[..]));
    }

    mod model {
        //! Random chains of owned frames, shared frames, control frames and short writes,
        //! checked against the ordering rule.

        use proptest::prelude::*;

        use super::*;

        #[derive(Debug, Clone)]
        enum Op {
            Own(usize),
            Shared(usize),
            Pong,
            Close,
            Write(usize),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0usize..400).prop_map(Op::Own),
                4 => (0usize..400).prop_map(Op::Shared),
                1 => Just(Op::Pong),
                1 => Just(Op::Close),
                4 => (0usize..700).prop_map(Op::Write),
            ]
        }

        proptest! {
            #[test]
            fn the_ordering_rule_holds(first in 1usize..300, ops in prop::collection::vec(op(), 1..60)) {
                let mut pool = Pool::default();
                // Data frames carry their number in every payload byte (frame 0 is the first).
                let (mut queue, mut sock) = backlogged(&data(0, first), &mut pool);
                let mut next = 1u8;
                let mut pongs = 0u8;
                let mut closed = false;
                let mut held = Vec::new();
                for op in ops {
                    if queue.is_empty() && !closed {
                        // Written out: a fresh backlog, as after a short write.
                        sock.full = true;
                        queue.flush(&mut data(next, 3), 0, &mut sock, &mut pool).unwrap();
                        sock.full = false;
                        next += 1;
                    }
                    match op {
                        Op::Own(len) if !closed => {
                            queue.data(&mut Vec::new()).extend_from_slice(&data(next, len));
                            next += 1;
                        }
                        Op::Shared(len) if !closed => {
                            let frame = shared(next, len);
                            queue.push_shared(&frame, &mut pool);
                            held.push(frame);
                            next += 1;
                        }
                        Op::Pong if !closed => {
                            let pong = frame(OpCode::Pong, &[pongs]);
                            queue.control(&mut Vec::new(), |b| b.extend_from_slice(&pong));
                            pongs += 1;
                        }
                        Op::Close if !closed => {
                            let close = frame(OpCode::Close, &[0x03, 0xe8]);
                            queue.control(&mut Vec::new(), |b| b.extend_from_slice(&close));
                            closed = true;
                        }
                        Op::Write(take) => {
                            sock.take = Some(take);
                            let before = queue.len();
                            let n = queue.write(&mut sock, &mut pool).unwrap();
                            prop_assert_eq!(queue.len(), before - n);
                        }
                        _ => {}
                    }
                    if next > 250 {
                        break;
                    }
                }
                sock.take = None;
                while !queue.is_empty() {
                    queue.write(&mut sock, &mut pool).unwrap();
                }
                let got = frames(&sock.wire);
                let mut last_data = None;
                let mut last_pong = None;
                let mut saw_close = false;
                for (op, payload) in &got {
                    prop_assert!(!saw_close, "nothing after the close");
                    match op {
                        0x2 => {
                            let n = payload.first().copied();
                            prop_assert!(payload.iter().all(|&b| Some(b) == n), "a frame intact");
                            if let Some(n) = n {
                                prop_assert!(last_data.is_none_or(|l| l < n), "data in order");
                                last_data = Some(n);
                            }
                        }
                        0xA => {
                            prop_assert!(last_pong.is_none_or(|l| l + 1 == payload[0]), "pongs in order");
                            last_pong = Some(payload[0]);
                        }
                        0x8 => saw_close = true,
                        _ => prop_assert!(false, "unexpected opcode {}", op),
                    }
                }
                prop_assert_eq!(saw_close, closed);
                prop_assert_eq!(last_pong.map_or(0, |p| p + 1), pongs, "every pong");
                if !closed {
                    // Nothing dropped without a close: every data frame arrived.
                    let datas = got.iter().filter(|(op, _)| *op == 0x2).count();
                    prop_assert_eq!(datas, usize::from(next));
                }
                drop(queue);
                prop_assert!(held.iter().all(|f| Arc::strong_count(f) == 1), "shared frames released");
            }
        }
    }
}
