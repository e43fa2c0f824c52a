//! The writing side of the driver: a connection's turn ends in one write of what it owes
//! ([`super::output`] keeps the order), the socket's writable edge writes its backlog, and the
//! backpressure marks, `on_writable` and the end of the connection follow from what is left.

use super::Driver;
use super::Wire;
use super::conns::Phase;
use crate::handler::{ConnId, Handler, Outbox};
use crate::transport::Transport;
use sockeye_proto::State;

impl<H: Handler, S: Transport> Driver<H, S> {
    /// Writes what the connection owes, once; what the kernel does not take waits in its queue.
    pub(crate) fn flush(&mut self, idx: usize) {
        let bufs = &mut self.io.bufs;
        let Some(slot) = self.conns.get_mut(idx) else {
            bufs.reset_cork();
            return;
        };
        slot.link.poll_transmit(&mut bufs.cork);
        let mut wire = Wire {
            stream: &mut slot.stream,
            scratch: &mut bufs.scratch,
        };
        let result = slot
            .link
            .queue
            .flush(&mut bufs.cork, bufs.raw, &mut wire, &mut bufs.pool);
        bufs.reset_cork();
        match result {
            Ok(n) => self.app.stats.bytes_out += n as u64,
            Err(e) => return self.fail(idx, &e),
        }
        self.after_write(idx);
    }

    /// The socket can take more: its pending TLS records, then its backlog.
    pub(crate) fn writable(&mut self, idx: usize) {
        let bufs = &mut self.io.bufs;
        let Some(slot) = self.conns.get_mut(idx) else {
            return;
        };
        if let Err(e) = slot.stream.flush_pending() {
            return self.fail(idx, &e);
        }
        let mut wire = Wire {
            stream: &mut slot.stream,
            scratch: &mut bufs.scratch,
        };
        match slot.link.queue.write(&mut wire, &mut bufs.pool) {
            Ok(n) => self.app.stats.bytes_out += n as u64,
            Err(e) => return self.fail(idx, &e),
        }
        self.after_write(idx);
    }

    /// Backpressure marks, `on_writable`, and the end of the connection once all is written.
    fn after_write(&mut self, idx: usize) {
        if self.app.topics.has_conflated(idx)
            && self.conns.get(idx).is_some_and(|s| s.link.queue.is_empty())
        {
            // Its queue emptied: the newest message of each conflated topic goes now.
            self.release_conflated(idx);
        }
        let now = self.timers.now;
        let Some(slot) = self.conns.get_mut(idx) else {
            return;
        };
        let bp = &self.config.backpressure;
        let queued = slot.link.queue.len();
        if !slot.read_paused && queued > bp.high_water {
            slot.read_paused = true;
            self.app.stats.read_pauses += 1;
        } else if slot.read_paused && queued <= bp.low_water {
            slot.read_paused = false;
            self.ready.push((idx, slot.generation));
            if let Some(user) = slot.user.as_mut() {
                let id = ConnId::new(self.app.index, idx, slot.generation);
                let bufs = &mut self.io.bufs;
                self.app.with_outbox(
                    id,
                    &mut slot.link,
                    None::<&mut S>,
                    bufs,
                    bp,
                    now,
                    |h, out| {
                        h.on_writable(user, out);
                    },
                );
            }
            if !self.io.bufs.cork.is_empty() || slot.link.proto.has_pending_transmit() {
                return self.flush(idx);
            }
        }
        if !slot.link.queue.is_empty() || slot.stream.has_pending() {
            return;
        }
        let finished = match slot.phase {
            Phase::Draining => true,
            Phase::Open => slot.link.proto.state() == State::Closed,
            _ => false,
        };
        if slot.phase == Phase::Open && slot.link.proto.is_close_handshake_done() {
            // Both close frames went through and the peer sends nothing after its own: closing
            // now sends our FIN (the server closes TCP first, RFC 6455 §7.1.1) with no unread
            // bytes to turn it into a reset, and spares a shutdown, a read of the peer's EOF
            // and a linger timer.
            slot.stream.close_notify(&mut self.io.bufs.scratch);
            return self.remove(idx, None);
        }
        if finished {
            // The server closes TCP first (RFC 6455 §7.1.1): send FIN, then read until the
            // peer's EOF so that unread bytes do not turn our close into a reset.
            slot.stream.shutdown_write(&mut self.io.bufs.scratch);
            if slot.phase == Phase::Draining {
                // Draining reads nothing: the edges of what arrived meanwhile are spent, so
                // lingering starts with a read, or those bytes would wait for the peer's FIN.
                self.ready.push((idx, slot.generation));
            }
            slot.phase = Phase::Lingering;
            slot.linger_until = super::timers::NEVER;
            self.schedule(idx);
        }
    }

    /// Runs `f` with an outbox on an open connection outside its turn (a command from another
    /// thread): its frames wait in its queue, written at the end of the turn.
    pub(crate) fn with_outbox<R>(
        &mut self,
        idx: usize,
        f: impl FnOnce(&mut H, &mut H::Conn, &mut Outbox<'_>) -> R,
    ) -> Option<R> {
        let now = self.timers.now;
        let slot = self.conns.get_mut(idx)?;
        if slot.phase != Phase::Open {
            return None;
        }
        let user = slot.user.as_mut()?;
        let id = ConnId::new(self.app.index, idx, slot.generation);
        let bp = &self.config.backpressure;
        let bufs = &mut self.io.bufs;
        let result = self.app.with_outbox(
            id,
            &mut slot.link,
            None::<&mut S>,
            bufs,
            bp,
            now,
            |h, out| f(h, user, out),
        );
        self.stage(idx);
        result
    }

    /// Moves what was corked for `idx` outside its turn into its queue (moved, not copied, when
    /// large), to be written at the end of the turn with whatever else it gets meanwhile.
    pub(crate) fn stage(&mut self, idx: usize) {
        let bufs = &mut self.io.bufs;
        let Some(slot) = self.conns.get_mut(idx) else {
            bufs.reset_cork();
            return;
        };
        slot.link.poll_transmit(&mut bufs.cork);
        slot.link.queue.take_rest(&mut bufs.cork, 0, bufs.raw);
        bufs.reset_cork();
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.push(idx);
        }
    }

    pub(crate) fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &idx in &dirty {
            if let Some(slot) = self.conns.get_mut(idx) {
                slot.dirty = false;
                self.flush(idx);
                // Writing moves no deadline of an open connection; a close (from a command or a
                // policy) or the end of the connection does.
                let settled = self.conns.get(idx).is_none_or(|slot| {
                    slot.phase == Phase::Open && slot.link.proto.state() == State::Open
                });
                if !settled {
                    self.schedule(idx);
                }
            }
        }
        // Kept for its allocation: a worker that publishes stages every turn.
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }
}
