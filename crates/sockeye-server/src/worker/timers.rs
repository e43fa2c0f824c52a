//! The worker's clock and deadline heap, and what each deadline of a connection does. `now`
//! comes in from the loop (or from a test's virtual clock); nothing here reads the time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use sockeye_proto::{CloseCode, Message, State};

use super::Driver;
use super::conns::{Ending, Link, Phase};
use crate::handler::{Handler, Timeout};
use crate::transport::Transport;

/// A time on the worker's clock: milliseconds since the worker started. The engine's timers need
/// no finer grain, and 8 bytes instead of an `Instant`'s 16 keep an idle connection small.
pub(crate) type Ms = u64;

/// No time set.
pub(crate) const NEVER: Ms = Ms::MAX;

/// `d` in whole milliseconds, rounded up, so that a deadline never fires early.
pub(crate) fn ms(d: Duration) -> Ms {
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
    Ms::try_from(ms).unwrap_or(NEVER)
}

/// How long an unresponsive peer's socket lingers after our close when we do not wait for its
/// answer (idle and message timeouts).
const UNRESPONSIVE_LINGER: Ms = 1000;

/// The clock and the deadline heap.
pub(crate) struct Timers {
    /// (deadline, slot index, generation): 16 bytes per armed connection.
    heap: BinaryHeap<Reverse<(Ms, u32, u32)>>,
    epoch: Instant,
    /// The time of this turn.
    pub(crate) now: Instant,
    /// `now` as milliseconds since `epoch`.
    pub(crate) tick: Ms,
}

impl Timers {
    pub(crate) fn new(epoch: Instant) -> Self {
        Timers {
            heap: BinaryHeap::new(),
            epoch,
            now: epoch,
            tick: 0,
        }
    }

    /// Sets the clock for this turn. It never goes back.
    pub(crate) fn set_now(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
            self.tick = ms_floor(now.duration_since(self.epoch));
        }
    }

    /// The earliest deadline armed.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap
            .peek()
            .map(|Reverse((at, _, _))| self.epoch + Duration::from_millis(*at))
    }

    /// `at` on this clock.
    pub(crate) fn tick_of(&self, at: Instant) -> Ms {
        ms(at.saturating_duration_since(self.epoch))
    }

    fn push(&mut self, at: Ms, idx: usize, generation: u32) {
        self.heap.push(Reverse((at, idx as u32, generation)));
    }

    /// The next entry due at this turn's tick.
    fn pop_due(&mut self) -> Option<(Ms, usize, u32)> {
        let &Reverse((at, idx, generation)) = self.heap.peek()?;
        if at > self.tick {
            return None;
        }
        self.heap.pop();
        Some((at, idx as usize, generation))
    }
}

fn ms_floor(d: Duration) -> Ms {
    Ms::try_from(d.as_millis()).unwrap_or(NEVER)
}

impl<H: Handler, S: Transport> Driver<H, S> {
    /// Arms the connection's timer for its earliest deadline.
    pub(crate) fn schedule(&mut self, idx: usize) {
        let Some(slot) = self.conns.get_mut(idx) else {
            return;
        };
        let config = &self.config;
        let tick = self.timers.tick;
        let next = match slot.phase {
            Phase::Handshake => slot.started.saturating_add(ms(config.handshake_timeout)),
            Phase::Draining | Phase::Lingering => {
                if slot.linger_until == NEVER {
                    slot.linger_until = tick.saturating_add(ms(config.protocol.close_timeout));
                }
                slot.linger_until
            }
            Phase::Open if slot.link.proto.state() != State::Open => {
                // Closing: only the close handshake's deadline is left.
                let protocol = slot.link.proto.poll_timeout();
                protocol.map_or(NEVER, |at| self.timers.tick_of(at))
            }
            Phase::Open => {
                let idle = config.idle_timeout.map(|idle| {
                    let wait = if slot.ping_sent { idle } else { idle / 2 };
                    slot.last_rx.saturating_add(ms(wait))
                });
                let lifetime = config
                    .max_lifetime
                    .map(|life| slot.started.saturating_add(ms(life)));
                let message = config
                    .message_timeout
                    .zip(slot.message_since())
                    .map(|(limit, since)| since.saturating_add(ms(limit)));
                let protocol = slot
                    .link
                    .proto
                    .poll_timeout()
                    .map(|at| self.timers.tick_of(at));
                [protocol, idle, lifetime, message]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(NEVER)
            }
        };
        // A deadline already past fires next tick, never in a loop within this one.
        let next = next.max(tick + 1);
        // One live entry per connection: a later deadline is found when the earlier entry
        // fires; only an earlier one needs a new entry.
        if next != NEVER && next < slot.timer_at {
            slot.timer_at = next;
            let generation = slot.generation;
            self.timers.push(next, idx, generation);
        }
    }

    /// Runs every deadline due at this turn's time.
    pub(crate) fn fire_timers(&mut self) {
        while let Some((at, idx, generation)) = self.timers.pop_due() {
            let Some(slot) = self.conns.live(idx, generation) else {
                continue;
            };
            if slot.timer_at == at {
                slot.timer_at = NEVER;
                self.on_timer(idx);
            }
        }
    }

    fn on_timer(&mut self, idx: usize) {
        let tick = self.timers.tick;
        let Some(slot) = self.conns.get_mut(idx) else {
            return;
        };
        match slot.phase {
            Phase::Handshake => {
                if tick
                    >= slot
                        .started
                        .saturating_add(ms(self.config.handshake_timeout))
                {
                    // Slow-loris: the request never completed.
                    self.app.stats.rejected += 1;
                    return self.remove(idx, None);
                }
            }
            Phase::Draining | Phase::Lingering => {
                if tick >= slot.linger_until {
                    return self.remove(idx, None);
                }
            }
            Phase::Open => {
                if self.open_timer(idx) {
                    return;
                }
            }
        }
        self.schedule(idx);
    }

    /// The deadlines of an open connection, most final first; `true` when the connection went
    /// (or its timer was rearmed already).
    fn open_timer(&mut self, idx: usize) -> bool {
        let now = self.timers.now;
        let tick = self.timers.tick;
        let config = &self.config;
        let Some(slot) = self.conns.get_mut(idx) else {
            return true;
        };
        slot.link.proto.handle_timeout(now);
        if slot.link.proto.is_timed_out() {
            // A close the application asked for ends as unanswered; one the engine started
            // (policy, timer, shutdown) keeps its own reason.
            if matches!(slot.link.ending, None | Some(Ending::Local(_))) {
                slot.link.ending = Some(Ending::Timeout(Timeout::CloseHandshake));
            }
            self.remove(idx, None);
            return true;
        }
        if slot.link.proto.state() != State::Open {
            return false;
        }
        let due = |limit: Option<Duration>, since: Ms| {
            limit.is_some_and(|limit| tick >= since.saturating_add(ms(limit)))
        };
        if due(config.max_lifetime, slot.started) {
            slot.link.close(
                CloseCode::GOING_AWAY,
                "lifetime",
                now,
                Ending::Timeout(Timeout::Lifetime),
            );
            self.flush(idx);
            self.schedule(idx);
            return true;
        }
        if due(config.idle_timeout, slot.last_rx) {
            // The peer is unresponsive: do not wait for its close.
            let why = Ending::Timeout(Timeout::Idle);
            slot.link
                .close(CloseCode::GOING_AWAY, "idle timeout", now, why);
            self.abandon(idx);
            return true;
        }
        if let Some(since) = slot.message_since() {
            if due(config.message_timeout, since) {
                // A message that trickles in holds its buffer: it is refused, and the rest of it
                // not waited for.
                let why = Ending::Timeout(Timeout::Message);
                let code = CloseCode::POLICY_VIOLATION;
                slot.link.close(code, "message timeout", now, why);
                self.abandon(idx);
                return true;
            }
        }
        let half_idle = config.idle_timeout.map(|idle| idle / 2);
        if due(half_idle, slot.last_rx) && !slot.ping_sent {
            slot.ping_sent = true;
            // Idle: give back the compression state that can be rebuilt.
            if let Some(ext) = slot.link.proto.extension_mut() {
                ext.release_idle_state();
            }
            let Link { proto, queue, .. } = &mut slot.link;
            let _ = queue.control(&mut self.io.bufs.cork, |buf| {
                proto.send(Message::Ping(b""), buf)
            });
            self.flush(idx);
        }
        false
    }

    /// Writes the close frame just queued, ends our side and lingers briefly, discarding what
    /// the peer still sends: for a peer we no longer wait for. When the socket does not take
    /// the close frame (and what waits before it) at once, the connection drains it first:
    /// our FIN follows the last byte queued, never goes before it, and a peer that reads
    /// nothing is dropped at the same deadline.
    fn abandon(&mut self, idx: usize) {
        self.flush(idx);
        let tick = self.timers.tick;
        if let Some(slot) = self.conns.get_mut(idx) {
            if slot.phase == Phase::Open {
                if slot.link.queue.is_empty() && !slot.stream.has_pending() {
                    slot.stream.shutdown_write(&mut self.io.bufs.scratch);
                    slot.phase = Phase::Lingering;
                } else {
                    // `after_write` ends our side once the queue is written.
                    slot.phase = Phase::Draining;
                }
                slot.linger_until = tick + UNRESPONSIVE_LINGER;
                if let Some(rx) = slot.rx.take() {
                    self.io.bufs.pool.give(rx.msg);
                }
            }
        }
        self.schedule(idx);
    }
}
