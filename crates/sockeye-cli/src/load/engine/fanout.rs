//! The phases of a fanout run on one load thread: connect, subscribe (every `sub` answered),
//! the start line, publish through the warmup and the measurement (paced by the loop's timers,
//! or closed loop), then drain (up to [`DRAIN_WAIT`] for the last deliveries) and count the
//! lost tail. The close is the engine's, as in every mode.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Engine, Gate, MAX_POLL, Shared};
use crate::load::client::{Fail, Window};
use crate::load::fanout::Peer;
use crate::load::report::PhaseCode;

/// How long the `ok sub` replies may take, from the first `sub` sent.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long subscribers wait for the last deliveries once publishing stopped.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// How often the drain checks whether every delivery arrived.
const DRAIN_CHECK: Duration = Duration::from_millis(10);

impl Engine<'_> {
    /// Runs the thread's part of a fanout run, up to the close.
    ///
    /// # Errors
    ///
    /// A failure of the thread's poller; connection failures are counted instead.
    pub(super) fn run_fanout(
        &mut self,
        shared: &Shared,
        gate: &mut Gate<'_>,
    ) -> Result<(), String> {
        self.connect_all()?;
        if self.stats.connect_failed == 0 {
            self.subscribe()?;
        }
        let stats = &self.stats;
        if stats.connect_failed + stats.errors + stats.mismatches + stats.fanout.error_replies > 0 {
            shared.abort.store(true, Ordering::Release);
        }
        gate.pass();
        if shared.abort.load(Ordering::Acquire) {
            return Ok(());
        }
        if let Some(setup) = &self.plan.fanout {
            // Every thread waits at once: the subscriptions travel to the other nodes.
            std::thread::sleep(setup.settle);
        }
        let start = *shared.start.get_or_init(Instant::now);
        let published = self.publish_window(start);
        for client in self.clients.iter().flatten() {
            if let Some(peer) = client.peer() {
                peer.record_published(&shared.published);
            }
        }
        shared.stopped.fetch_add(1, Ordering::Release);
        published?;
        self.drain(shared)
    }

    /// Sends every connection's `sub` commands and waits until each is answered, for at most
    /// [`SUBSCRIBE_TIMEOUT`]; connections still waiting then fail.
    fn subscribe(&mut self) -> Result<(), String> {
        self.publish(PhaseCode::Subscribing);
        let Some(setup) = self.plan.fanout.as_ref() else {
            return Ok(());
        };
        for index in 0..self.clients.len() {
            let Some(client) = self.clients[index].as_mut() else {
                continue;
            };
            if let Err(fail) = client.with_peer(|peer, outbox| peer.subscribe(setup, outbox)) {
                self.fail(index, fail);
            }
        }
        let deadline = Instant::now() + SUBSCRIBE_TIMEOUT;
        loop {
            let settled = |c: &Option<crate::load::client::Client>| {
                c.as_ref()
                    .and_then(|c| c.peer())
                    .is_none_or(Peer::is_settled)
            };
            if self.clients.iter().all(settled) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                for index in 0..self.clients.len() {
                    if !settled(&self.clients[index]) {
                        self.fail(index, Fail::SubscribeTimeout);
                    }
                }
                return Ok(());
            }
            self.turn((deadline - now).min(MAX_POLL))?;
            self.publish(PhaseCode::Subscribing);
        }
    }

    /// Publishes from `start` to the end of the measurement window: paced publishes when they
    /// fall due, or the closed loop (its next publishes go out as own copies come back).
    fn publish_window(&mut self, start: Instant) -> Result<(), String> {
        let plan = self.plan;
        let Some(setup) = plan.fanout.as_ref() else {
            return Ok(());
        };
        let count_from = start + plan.warmup;
        let end = count_from + plan.duration;
        self.window = Window {
            count_from,
            end,
            sending: true,
        };
        let publishers = self.share.members.unwrap_or_default().publisher_indices();
        if setup.rate == 0.0 {
            for index in publishers.clone() {
                self.with_publisher(index, |peer, outbox, stats, window| {
                    peer.start_closed_loop(setup, Instant::now(), outbox, stats, window)
                });
            }
        }
        loop {
            let now = Instant::now();
            let phase = if now < count_from {
                PhaseCode::Warmup
            } else {
                PhaseCode::Measuring
            };
            self.publish(phase);
            if now >= end || self.open == 0 {
                break;
            }
            let mut wake = end.min(now + MAX_POLL);
            if setup.rate > 0.0 {
                for index in publishers.clone() {
                    let due = self.with_publisher(index, |peer, outbox, stats, window| {
                        peer.publish_due(setup, start, now, outbox, stats, window)
                    });
                    if let Some(Some(due)) = due {
                        wake = wake.min(due);
                    }
                }
            }
            self.turn(wake.saturating_duration_since(now))?;
        }
        self.window.sending = false;
        Ok(())
    }

    /// Runs `f` on connection `index`'s peer, failing the connection on an error; `None` when
    /// the connection is gone or failed.
    fn with_publisher<T>(
        &mut self,
        index: usize,
        f: impl FnOnce(
            &mut Peer,
            &mut crate::load::client::Outbox<'_>,
            &mut crate::load::report::Stats,
            Window,
        ) -> Result<T, Fail>,
    ) -> Option<T> {
        let window = self.window;
        let stats = &mut self.stats;
        let client = self.clients.get_mut(index)?.as_mut()?;
        match client.with_peer(|peer, outbox| f(peer, outbox, stats, window)) {
            Ok(value) => value,
            Err(fail) => {
                self.fail(index, fail);
                None
            }
        }
    }

    /// Waits up to [`DRAIN_WAIT`] until every thread stopped publishing and each of this
    /// thread's subscriptions got everything published on it, then counts what is missing as
    /// lost (the lost tail).
    fn drain(&mut self, shared: &Shared) -> Result<(), String> {
        let deadline = Instant::now() + DRAIN_WAIT;
        let caught_up = |engine: &Engine<'_>| {
            shared.stopped.load(Ordering::Acquire) == shared.live.len()
                && engine.clients.iter().flatten().all(|c| {
                    c.peer()
                        .is_none_or(|peer| peer.caught_up(&shared.published))
                })
        };
        loop {
            self.publish(PhaseCode::Draining);
            let now = Instant::now();
            if now >= deadline || caught_up(self) {
                break;
            }
            self.turn((deadline - now).min(DRAIN_CHECK))?;
        }
        for client in self.clients.iter().flatten() {
            if let Some(peer) = client.peer() {
                let missing = peer.missing(&shared.published);
                self.stats.fanout.lost += missing;
                self.stats.fanout.lost_tail += missing;
            }
        }
        Ok(())
    }
}
