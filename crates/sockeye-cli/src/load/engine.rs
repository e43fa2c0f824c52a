//! One load thread: a `mio` event loop over its share of the connections, run in phases
//! (connect, measure or hold, close), each bounded in time; the fanout phases (subscribe,
//! publish, drain) in [`fanout`].

mod fanout;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use sockeye_deflate::{DeflateConfig, PerMessageDeflate};
use sockeye_proto::handshake::encode_key;

use super::client::{Client, Ctx, Fail, Flow, Opening, Phase, Role, Window};
use super::fanout::{Member, Members, Peer};
use super::payload::Payload;
use super::report::{Live, PhaseCode, Stats};
use super::sys::Entropy;
use super::{Mode, Plan};

/// How long one connection may take from TCP connect to the 101.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for close echoes (and the server's TCP close) at the end.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The longest a poll sleeps, so the progress counters stay fresh.
const MAX_POLL: Duration = Duration::from_millis(200);

/// How often handshakes are checked for the timeout.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// The size of the per-thread read buffer, shared by its connections.
const READ_BUF: usize = 256 * 1024;

/// A thread's share of the run.
#[derive(Debug, Clone, Copy)]
pub(super) struct Share {
    /// Connections this thread opens.
    pub(super) connections: usize,
    /// Handshakes this thread keeps in flight at most.
    pub(super) concurrency: usize,
    /// The id of its first connection (ids are unique across threads).
    pub(super) first_id: u64,
    /// Its subscribers and publishers (fanout runs).
    pub(super) members: Option<Members>,
}

/// What the threads of a run share.
#[derive(Debug)]
pub(super) struct Shared {
    /// Threads at the start line (before the measurement in echo and latency, before the
    /// connects in connect mode).
    pub(super) arrived: AtomicUsize,
    /// Set when a connection failed before the measurement, or a thread could not start: the
    /// threads skip to the close.
    pub(super) abort: AtomicBool,
    /// One progress record per thread.
    pub(super) live: Vec<Live>,
    /// Fanout: the start of the warmup, the same for every thread (set by the first one past
    /// the start line).
    pub(super) start: OnceLock<Instant>,
    /// Fanout: publishes per topic, stored by each publisher when it stops.
    pub(super) published: Vec<AtomicU64>,
    /// Fanout: threads done publishing (their counts are in `published`).
    pub(super) stopped: AtomicUsize,
}

/// Waits at the start line exactly once, on drop at the latest, so that a thread that fails
/// early cannot leave the others waiting; `abort` releases everyone.
struct Gate<'a> {
    shared: &'a Shared,
    passed: bool,
}

impl Gate<'_> {
    fn pass(&mut self) {
        if self.passed {
            return;
        }
        self.passed = true;
        let shared = self.shared;
        shared.arrived.fetch_add(1, Ordering::AcqRel);
        while shared.arrived.load(Ordering::Acquire) < shared.live.len()
            && !shared.abort.load(Ordering::Acquire)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        self.pass();
    }
}

/// Runs thread `index` of the run.
///
/// # Errors
///
/// A setup failure of the thread (poller, entropy); connection failures are counted instead.
pub(super) fn run_thread(
    plan: &Plan,
    share: Share,
    shared: &Shared,
    index: usize,
) -> Result<Stats, String> {
    let mut gate = Gate {
        shared,
        passed: false,
    };
    let live = shared.live.get(index).ok_or("no progress record")?;
    let mut engine = Engine::new(plan, share, live)?;
    match plan.mode {
        Mode::Connect => {
            gate.pass();
            if !shared.abort.load(Ordering::Acquire) {
                engine.connect_all()?;
                engine.hold()?;
            }
        }
        Mode::Echo | Mode::Latency => {
            engine.connect_all()?;
            if engine.stats.connect_failed > 0 {
                shared.abort.store(true, Ordering::Release);
            }
            gate.pass();
            if !shared.abort.load(Ordering::Acquire) {
                engine.measure()?;
            }
        }
        Mode::Fanout => engine.run_fanout(shared, &mut gate)?,
    }
    engine.close_all()?;
    Ok(engine.stats)
}

/// A load thread's state.
#[derive(Debug)]
struct Engine<'a> {
    plan: &'a Plan,
    share: Share,
    live: &'a Live,
    poll: Poll,
    events: Events,
    /// Indexed by token.
    clients: Vec<Option<Client>>,
    /// Connections in `Connecting` or `Handshaking`.
    pending: usize,
    /// Connections in `Open`.
    open: usize,
    /// Tokens served in the last turn that still had bytes to read.
    again: Vec<usize>,
    ready: Vec<(usize, bool)>,
    rbuf: Vec<u8>,
    payload: Payload,
    stats: Stats,
    entropy: Entropy,
    window: Window,
}

impl<'a> Engine<'a> {
    fn new(plan: &'a Plan, share: Share, live: &'a Live) -> Result<Self, String> {
        let poll = Poll::new().map_err(|e| format!("cannot create a poller: {e}"))?;
        let mut entropy = Entropy::open().map_err(|e| e.to_string())?;
        let seed = entropy.next_u64().map_err(|e| e.to_string())?;
        let mut clients = Vec::new();
        clients.resize_with(share.connections, || None);
        Ok(Engine {
            plan,
            share,
            live,
            poll,
            events: Events::with_capacity(1024),
            clients,
            pending: 0,
            open: 0,
            again: Vec::new(),
            ready: Vec::new(),
            rbuf: vec![0; READ_BUF],
            // Fanout runs write their own messages.
            payload: Payload::new(
                if plan.fanout.is_some() { 0 } else { plan.size },
                plan.text,
                plan.deflate.is_some(),
                seed,
            ),
            stats: Stats::new()?,
            entropy,
            window: Window::closed(Instant::now()),
        })
    }

    /// Opens every connection, at most `concurrency` handshakes at a time; returns when each
    /// attempt has succeeded, failed or timed out.
    fn connect_all(&mut self) -> Result<(), String> {
        self.publish(PhaseCode::Connecting);
        let start = Instant::now();
        let mut next = 0;
        let mut last_sweep = start;
        while next < self.share.connections || self.pending > 0 {
            while self.pending < self.share.concurrency && next < self.share.connections {
                self.start_attempt(next)?;
                next += 1;
            }
            if self.pending == 0 {
                continue;
            }
            self.turn(SWEEP_EVERY)?;
            let now = Instant::now();
            if now - last_sweep >= SWEEP_EVERY {
                last_sweep = now;
                self.sweep_handshakes(now);
            }
            self.publish(PhaseCode::Connecting);
        }
        self.stats.connect_time = start.elapsed();
        Ok(())
    }

    fn start_attempt(&mut self, index: usize) -> Result<(), String> {
        let mut random = [0u8; 24];
        self.entropy.fill(&mut random).map_err(|e| e.to_string())?;
        let (nonce, seed) = random.split_at(16);
        let mut nonce16 = [0u8; 16];
        nonce16.copy_from_slice(nonce);
        let mut seed8 = [0u8; 8];
        seed8.copy_from_slice(seed);
        let ext = match &self.plan.deflate {
            Some(offer) => offer.extension(),
            None => PerMessageDeflate::client(DeflateConfig::default()),
        };
        let mut addr = self.plan.addr;
        let (role, size) = match (&self.plan.fanout, self.share.members) {
            (Some(setup), Some(members)) => {
                let member = members.member(index);
                if let (Member::Publisher(_), Some((_, to))) = (member, &setup.publish_to) {
                    addr = *to;
                }
                let peer = Peer::new(setup, member);
                (Role::Fanout(Box::new(peer)), setup.max_message())
            }
            _ => {
                let id = self.share.first_id + index as u64;
                (Role::Echo(Flow::new(id)), self.plan.size)
            }
        };
        let opening = Opening::new(encode_key(nonce16), size, ext, u64::from_le_bytes(seed8));
        let registry = self.poll.registry();
        match Client::connect(
            addr,
            role,
            opening,
            &self.plan.connector,
            registry,
            Token(index),
        ) {
            Ok(client) => {
                self.clients[index] = Some(client);
                self.pending += 1;
            }
            Err(fail) => {
                self.stats.connect_failed += 1;
                self.stats
                    .first_error
                    .get_or_insert_with(|| fail.to_string());
            }
        }
        Ok(())
    }

    fn sweep_handshakes(&mut self, now: Instant) {
        for index in 0..self.clients.len() {
            let expired = self.clients[index].as_ref().is_some_and(|c| {
                matches!(c.phase(), Phase::Connecting | Phase::Handshaking)
                    && now - c.started() >= HANDSHAKE_TIMEOUT
            });
            if expired {
                self.fail(index, Fail::HandshakeTimeout);
            }
        }
    }

    /// Sends the first `in_flight` messages on each connection, then keeps them flowing until
    /// the end of the warmup and the measurement.
    fn measure(&mut self) -> Result<(), String> {
        let start = Instant::now();
        let count_from = start + self.plan.warmup;
        let end = count_from + self.plan.duration;
        self.window = Window {
            count_from,
            end,
            sending: true,
        };
        for index in 0..self.clients.len() {
            let Some(client) = self.clients[index].as_mut() else {
                continue;
            };
            if let Err(fail) = client.send_messages(self.plan.in_flight, &mut self.payload, start) {
                self.fail(index, fail);
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
                return Ok(());
            }
            self.turn((end - now).min(MAX_POLL))?;
        }
    }

    /// Keeps the connections idle for `--hold`, answering pings, and counts those still open.
    fn hold(&mut self) -> Result<(), String> {
        let end = Instant::now() + self.plan.hold;
        loop {
            self.publish(PhaseCode::Holding);
            let now = Instant::now();
            if now >= end {
                break;
            }
            self.turn((end - now).min(MAX_POLL))?;
        }
        self.stats.still_open = self.open as u64;
        Ok(())
    }

    /// Sends a close (1000) on every connection and waits up to [`CLOSE_WAIT`] for the echoes and
    /// the server's TCP close.
    fn close_all(&mut self) -> Result<(), String> {
        let now = Instant::now();
        self.window = Window::closed(now);
        for index in 0..self.clients.len() {
            let Some(client) = self.clients[index].as_mut() else {
                continue;
            };
            let before = client.phase();
            if matches!(before, Phase::Connecting | Phase::Handshaking) {
                self.remove(index);
                continue;
            }
            let result = client.start_close(now);
            self.stats.closing += 1;
            self.account(Some(before), Some(Phase::Closing));
            if let Err(fail) = result {
                self.fail(index, fail);
            }
        }
        let deadline = now + CLOSE_WAIT;
        loop {
            self.publish(PhaseCode::Closing);
            let now = Instant::now();
            if now >= deadline || self.clients.iter().all(Option::is_none) {
                break;
            }
            self.turn((deadline - now).min(MAX_POLL))?;
        }
        for index in 0..self.clients.len() {
            self.remove(index);
        }
        self.publish(PhaseCode::Done);
        Ok(())
    }

    /// One poll and the service of every ready connection.
    fn turn(&mut self, timeout: Duration) -> Result<(), String> {
        let timeout = if self.again.is_empty() {
            timeout
        } else {
            Duration::ZERO
        };
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(format!("poll: {e}")),
        }
        self.ready.clear();
        self.ready.extend(self.events.iter().map(|event| {
            let readable = event.is_readable() || event.is_read_closed() || event.is_error();
            (event.token().0, readable)
        }));
        self.ready
            .extend(self.again.drain(..).map(|index| (index, true)));
        for i in 0..self.ready.len() {
            let (index, readable) = self.ready[i];
            self.serve(index, readable);
        }
        Ok(())
    }

    fn serve(&mut self, index: usize, readable: bool) {
        let Some(Some(client)) = self.clients.get_mut(index) else {
            return;
        };
        let before = client.phase();
        let mut ctx = Ctx {
            payload: &mut self.payload,
            stats: &mut self.stats,
            window: self.window,
            url: &self.plan.url,
            publish_url: self
                .plan
                .fanout
                .as_ref()
                .and_then(|s| s.publish_to.as_ref().map(|(u, _)| u)),
            offer: self.plan.deflate.as_ref().map_or("", |o| o.header()),
            fanout: self.plan.fanout.as_ref(),
        };
        match client.on_ready(readable, &mut self.rbuf, &mut ctx) {
            Ok(turn) => {
                let after = client.phase();
                self.account(Some(before), Some(after));
                if turn.again {
                    self.again.push(index);
                }
                if turn.finished {
                    self.remove(index);
                }
            }
            Err(fail) => {
                let after = client.phase();
                self.account(Some(before), Some(after));
                self.fail(index, fail);
            }
        }
    }

    /// Counts a connection failure by kind and phase, then drops the connection.
    fn fail(&mut self, index: usize, fail: Fail) {
        let Some(client) = self.clients.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        let stats = &mut self.stats;
        match (&fail, client.phase()) {
            (Fail::Mismatch(_), _) => {
                stats.mismatches += 1;
                let text = format!("connection {}: {fail}", self.share.first_id + index as u64);
                stats.first_mismatch.get_or_insert(text);
            }
            (_, Phase::Connecting | Phase::Handshaking) => {
                stats.connect_failed += 1;
                stats.first_error.get_or_insert_with(|| fail.to_string());
            }
            (_, Phase::Open) => {
                stats.errors += 1;
                stats.first_error.get_or_insert_with(|| fail.to_string());
            }
            // A reset or a late protocol error while closing: the run is over for it anyway.
            (_, Phase::Closing) => {}
        }
        client.flush_best_effort();
        self.remove(index);
    }

    /// Drops a connection, counting a completed closing handshake.
    fn remove(&mut self, index: usize) {
        let Some(mut client) = self.clients.get_mut(index).and_then(Option::take) else {
            return;
        };
        if client.phase() == Phase::Closing && client.close_echoed() {
            self.stats.closed_clean += 1;
        }
        self.stats.traffic.add(client.traffic());
        client.deregister(self.poll.registry());
        self.account(Some(client.phase()), None);
    }

    /// Keeps the `pending` and `open` counts in step with a phase change (`None`: gone).
    fn account(&mut self, before: Option<Phase>, after: Option<Phase>) {
        let pending = |p: Option<Phase>| {
            usize::from(matches!(p, Some(Phase::Connecting | Phase::Handshaking)))
        };
        let open = |p: Option<Phase>| usize::from(p == Some(Phase::Open));
        self.pending = self.pending + pending(after) - pending(before);
        self.open = self.open + open(after) - open(before);
    }

    fn publish(&self, phase: PhaseCode) {
        self.live.publish(&self.stats, self.open as u64, phase);
    }
}
