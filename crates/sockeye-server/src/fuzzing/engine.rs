//! A worker's connection driver on a virtual clock, over scripted streams, with a handler that
//! writes down every callback: the engine as a fuzz target drives it, one step at a time.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sockeye_proto::{CloseCode, Message, Request, State};

use super::script::Script;
use crate::config::ServerConfig;
use crate::handle::{Handle, Job, OwnedMessage, SendOutcome, Stats};
use crate::handler::{Accept, CloseReason, ConnId, Handler, Outbox, Reject};
use crate::topics::{Publication, PublishError, PublishReport, SlowConsumer, TopicError};
use crate::transport::Scratch;
use crate::worker::{Driver, Phase};

/// A callback of the handler, as [`Engine::notes`] reports it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// `on_open`.
    Opened,
    /// `on_message`, with the message.
    Message {
        /// A text message (else binary).
        text: bool,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// What became of the echo of that message (when the engine echoes).
    Echoed(SendOutcome),
    /// `on_ping`.
    Ping(Vec<u8>),
    /// `on_pong`.
    Pong(Vec<u8>),
    /// `on_writable`.
    Writable,
    /// `on_close`, with the reason as `Debug` writes it.
    Closed(String),
}

/// Where a connection is, as the driver sees it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Reading the upgrade request.
    Handshake,
    /// Upgraded, no close frame sent or received.
    Open,
    /// Upgraded, the closing handshake under way (or failed).
    Closing,
    /// Writing a final HTTP answer.
    Draining,
    /// Our FIN is sent; waiting for the peer's.
    Lingering,
}

type Log = Arc<Mutex<Vec<(Option<ConnId>, Note)>>>;

/// The handler: accepts every upgrade, writes down every callback, and echoes messages when
/// asked to.
#[derive(Clone)]
struct Witness {
    log: Log,
    echo: bool,
}

impl Witness {
    fn note(&self, conn: Option<ConnId>, note: Note) {
        self.log.lock().unwrap().push((conn, note));
    }
}

impl Handler for Witness {
    type Conn = Option<ConnId>;

    fn on_upgrade(&mut self, _: &Request<'_>, _: &mut Accept<'_>) -> Result<Self::Conn, Reject> {
        Ok(None)
    }

    fn on_open(&mut self, conn: &mut Self::Conn, out: &mut Outbox<'_>) {
        *conn = Some(out.id());
        self.note(*conn, Note::Opened);
    }

    fn on_message(&mut self, conn: &mut Self::Conn, msg: Message<'_>, out: &mut Outbox<'_>) {
        let (text, payload) = match msg {
            Message::Text(text) => (true, text.as_bytes()),
            Message::Binary(bytes) => (false, bytes),
            Message::Ping(_) | Message::Pong(_) => return,
        };
        let payload = payload.to_vec();
        self.note(*conn, Note::Message { text, payload });
        if self.echo {
            let outcome = out.send_outcome(msg);
            self.note(*conn, Note::Echoed(outcome));
        }
    }

    fn on_ping(&mut self, conn: &mut Self::Conn, payload: &[u8], _: &mut Outbox<'_>) {
        self.note(*conn, Note::Ping(payload.to_vec()));
    }

    fn on_pong(&mut self, conn: &mut Self::Conn, payload: &[u8], _: &mut Outbox<'_>) {
        self.note(*conn, Note::Pong(payload.to_vec()));
    }

    fn on_writable(&mut self, conn: &mut Self::Conn, _: &mut Outbox<'_>) {
        self.note(*conn, Note::Writable);
    }

    fn on_close(&mut self, conn: Self::Conn, why: CloseReason<'_>) {
        self.note(conn, Note::Closed(format!("{why:?}")));
    }
}

/// One worker's driver, its virtual clock, and its clients: the other ends of their streams.
/// Clients are numbered from 0 in the order they connect; every step ends the way a loop
/// turn does (reads left over, timers due, deferred writes).
pub struct Engine {
    driver: Driver<Witness, Script>,
    epoch: Instant,
    elapsed: Duration,
    clients: Vec<(ConnId, Script)>,
    log: Log,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("elapsed", &self.elapsed)
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A worker with `config`; its handler echoes every message when `echo` is set.
    pub fn new(config: ServerConfig, echo: bool) -> Self {
        let log = Log::default();
        let witness = Witness {
            log: Arc::clone(&log),
            echo,
        };
        let epoch = Instant::now();
        let handle = Handle::new(Vec::new(), Duration::ZERO);
        let scratch = Scratch::for_server(&config);
        Engine {
            driver: Driver::new(0, witness, handle, config, scratch, epoch),
            epoch,
            elapsed: Duration::ZERO,
            clients: Vec::new(),
            log,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.driver.config
    }

    /// A new connection; returns its client number.
    pub fn connect(&mut self) -> usize {
        let script = Script::default();
        let idx = self.driver.insert(script.clone());
        let generation = self.driver.conns.get(idx).map_or(0, |slot| slot.generation);
        self.clients.push((ConnId::new(0, idx, generation), script));
        self.clients.len() - 1
    }

    /// The number of clients that connected so far.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// The slot of `client`'s connection, while it lasts.
    fn slot(&mut self, client: usize) -> Option<usize> {
        let id = self.clients.get(client)?.0;
        self.driver.find(id)
    }

    fn script(&self, client: usize) -> &Script {
        &self.clients[client].1
    }

    /// A socket event of `client`'s connection (if it lasts), then the turn's end.
    fn edge(&mut self, client: usize, readable: bool, writable: bool, closed: bool) {
        if let Some(idx) = self.slot(client) {
            self.driver.event(idx, readable, writable, closed);
        }
        self.driver.end_turn();
    }

    /// The client sends `bytes`; the readable edge follows.
    pub fn receive(&mut self, client: usize, bytes: &[u8]) {
        self.script(client).peer().inbound.extend(bytes);
        self.edge(client, true, false, false);
    }

    /// The client closes its sending side (its FIN); the edge that announces it follows.
    pub fn hang_up(&mut self, client: usize) {
        self.script(client).peer().eof = true;
        self.edge(client, false, false, true);
    }

    /// The client's socket takes `room` more bytes before it is full (`None`: any number
    /// from now on; `Some(0)`: full now); a writable edge follows unless it is full.
    pub fn room(&mut self, client: usize, room: Option<usize>) {
        let full = {
            let mut peer = self.script(client).peer();
            peer.room = match (room, peer.room) {
                (Some(0), _) => Some(0),
                (Some(more), Some(left)) => Some(left.saturating_add(more)),
                (Some(more), None) => Some(more),
                (None, _) => None,
            };
            peer.room == Some(0)
        };
        if !full {
            self.edge(client, false, true, false);
        }
    }

    /// Writes to the client's socket fail from now on (a reset); the edge follows.
    pub fn break_socket(&mut self, client: usize) {
        self.script(client).peer().broken = true;
        self.edge(client, false, true, true);
    }

    /// Moves the clock on by `by` and runs the turn's end (timers).
    pub fn advance(&mut self, by: Duration) {
        self.elapsed = self.elapsed.saturating_add(by);
        self.driver.timers.set_now(self.epoch + self.elapsed);
        self.driver.end_turn();
    }

    /// The application sends `msg` to the client, outside the connection's turn (as a
    /// `Handle` does); `None` when the connection is not open. The turn ends after it.
    pub fn send(&mut self, client: usize, msg: Message<'_>) -> Option<SendOutcome> {
        let idx = self.slot(client)?;
        let outcome = self
            .driver
            .with_outbox(idx, |_, _, out| out.send_outcome(msg));
        self.driver.end_turn();
        outcome
    }

    /// The application closes the client's connection (as a `Handle` does).
    pub fn close(&mut self, client: usize, code: CloseCode, reason: &str) {
        if let Some(idx) = self.slot(client) {
            self.driver
                .with_outbox(idx, |_, _, out| out.close(code, reason));
        }
        self.driver.end_turn();
    }

    /// A `Handle`'s commands as the worker runs them from its channel, each in a turn of its
    /// own: [`Handle::send`](crate::Handle::send) to the client (`close` unset), or
    /// [`Handle::close`](crate::Handle::close) with `code` and `reason`.
    pub fn command(&mut self, client: usize, msg: Message<'_>, close: Option<(CloseCode, &str)>) {
        let Some(&(id, _)) = self.clients.get(client) else {
            return;
        };
        match close {
            Some((code, reason)) => self.driver.close_id(id, code, reason),
            None => self.driver.send_to(id, &OwnedMessage::from(msg)),
        }
        self.driver.end_turn();
    }

    /// [`Handle::broadcast`](crate::Handle::broadcast): `msg` to every open connection.
    pub fn broadcast(&mut self, msg: Message<'_>) {
        self.driver.broadcast(&OwnedMessage::from(msg));
        self.driver.end_turn();
    }

    /// A job of [`Handle::with_conn`](crate::Handle::with_conn) on the client's connection
    /// that sends `msg` through the outbox it is given; returns whether the job found the
    /// connection.
    pub fn job(&mut self, client: usize, msg: Message<'_>) -> bool {
        let Some(&(id, _)) = self.clients.get(client) else {
            return false;
        };
        let owned = OwnedMessage::from(msg);
        let found = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&found);
        let job: Job = Box::new(move |conn| {
            if let Some((_, out)) = conn {
                seen.store(true, Ordering::Relaxed);
                let _ = out.send(owned.as_message());
            }
        });
        self.driver.run_job(id, job);
        self.driver.end_turn();
        found.load(Ordering::Relaxed)
    }

    /// Subscribes the client to `pattern` with the server's policy; `None` when the
    /// connection is not open.
    pub fn subscribe(&mut self, client: usize, pattern: &str) -> Option<Result<bool, TopicError>> {
        let idx = self.slot(client)?;
        self.driver
            .with_outbox(idx, |_, _, out| out.subscribe(pattern))
    }

    /// Subscribes the client to `pattern` with the slow-consumer `policy` (a conflating
    /// subscription, say); `None` when the connection is not open.
    pub fn subscribe_with(
        &mut self,
        client: usize,
        pattern: &str,
        policy: SlowConsumer,
    ) -> Option<Result<bool, TopicError>> {
        let idx = self.slot(client)?;
        self.driver
            .with_outbox(idx, |_, _, out| out.subscribe_with(pattern, policy))
    }

    /// Unsubscribes the client from `pattern`; `None` when the connection is not open.
    pub fn unsubscribe(&mut self, client: usize, pattern: &str) -> Option<bool> {
        let idx = self.slot(client)?;
        self.driver
            .with_outbox(idx, |_, _, out| out.unsubscribe(pattern))
    }

    /// Publishes `msg` on `topic` (as a `Handle` does) in a turn of its own.
    ///
    /// # Errors
    ///
    /// An invalid topic, or a control message.
    pub fn publish(
        &mut self,
        topic: &str,
        msg: Message<'_>,
    ) -> Result<PublishReport, PublishError> {
        let mut p = Publication::new(topic, msg)?;
        let (tx, rx) = std::sync::mpsc::channel();
        p.report = Some(tx);
        self.driver.publish(&Arc::new(p));
        self.driver.end_turn();
        Ok(rx.try_recv().unwrap_or_default())
    }

    /// The bytes written to the client since the last call.
    pub fn take_written(&mut self, client: usize) -> Vec<u8> {
        std::mem::take(&mut self.script(client).peer().wire)
    }

    /// The bytes the client sent that the server has not read yet.
    pub fn unread(&self, client: usize) -> usize {
        self.script(client).peer().inbound.len()
    }

    /// Whether the server shut its sending side (or closed the socket) for the client.
    pub fn is_shut(&self, client: usize) -> bool {
        self.script(client).peer().shut
    }

    /// The write calls made on the client's socket.
    pub fn write_calls(&self, client: usize) -> usize {
        self.script(client).peer().writes
    }

    /// Where the client's connection is; `None` once it is gone.
    pub fn state(&mut self, client: usize) -> Option<ConnState> {
        let idx = self.slot(client)?;
        let slot = self.driver.conns.get(idx)?;
        Some(match slot.phase {
            Phase::Handshake => ConnState::Handshake,
            Phase::Open if slot.link.proto.state() == State::Open => ConnState::Open,
            Phase::Open => ConnState::Closing,
            Phase::Draining => ConnState::Draining,
            Phase::Lingering => ConnState::Lingering,
        })
    }

    /// The bytes waiting in the client's send queue (0 once the connection is gone).
    pub fn queued(&mut self, client: usize) -> usize {
        let Some(idx) = self.slot(client) else {
            return 0;
        };
        self.driver
            .conns
            .get(idx)
            .map_or(0, |slot| slot.link.queue.len())
    }

    /// The worker's counters.
    pub fn stats(&self) -> &Stats {
        &self.driver.app.stats
    }

    /// The handler's callbacks since the last call, each with its client's number (`None` for
    /// a callback about no known connection, which is a bug).
    pub fn notes(&mut self) -> Vec<(Option<usize>, Note)> {
        let notes = std::mem::take(&mut *self.log.lock().unwrap());
        notes
            .into_iter()
            .map(|(id, note)| {
                let client = id.and_then(|id| self.clients.iter().position(|(c, _)| *c == id));
                (client, note)
            })
            .collect()
    }
}
