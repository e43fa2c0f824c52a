//! A worker's driver on a virtual clock, with scripted streams: what the loop does with real
//! sockets and `Instant::now()`, done by hand, so the engine's timing and flow decisions are
//! tested exactly and instantly.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sockeye_proto::connection::write_frame;
use sockeye_proto::{Connection, Event, Message, NoExtension, OpCode, Request, Rsv};

pub(crate) use crate::fuzzing::script::Script;

use crate::config::ServerConfig;
use crate::handle::Handle;
use crate::handler::{Accept, CloseReason, ConnId, Handler, Outbox, Reject};
use crate::transport::Scratch;
use crate::worker::Driver;
use crate::worker::conns::Phase;

/// What the recording handler saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Note {
    Open(ConnId),
    Text(String),
    Binary(usize),
    Writable,
    Close(String),
}

/// A handler that records every callback and echoes messages.
#[derive(Clone, Default)]
pub(crate) struct Recorder {
    pub(crate) notes: Arc<Mutex<Vec<Note>>>,
}

impl Recorder {
    fn note(&self, note: Note) {
        self.notes.lock().unwrap().push(note);
    }
}

impl Handler for Recorder {
    type Conn = ();

    fn on_upgrade(&mut self, _: &Request<'_>, _: &mut Accept<'_>) -> Result<(), Reject> {
        Ok(())
    }

    fn on_open(&mut self, _: &mut (), out: &mut Outbox<'_>) {
        self.note(Note::Open(out.id()));
    }

    fn on_message(&mut self, _: &mut (), msg: Message<'_>, out: &mut Outbox<'_>) {
        if let Message::Text(text) = msg {
            if topic_command(text, out) {
                return;
            }
        }
        match msg {
            Message::Text(text) => self.note(Note::Text(text.to_owned())),
            Message::Binary(bytes) => self.note(Note::Binary(bytes.len())),
            _ => {}
        }
        let _ = out.send(msg);
    }

    fn on_writable(&mut self, _: &mut (), _: &mut Outbox<'_>) {
        self.note(Note::Writable);
    }

    fn on_close(&mut self, _: (), why: CloseReason<'_>) {
        self.note(Note::Close(format!("{why:?}")));
    }
}

/// Runs `sub PATTERN`, `unsub PATTERN`, `pub TOPIC TEXT` and `pubx TOPIC TEXT` (to the others);
/// `false` for other texts, which are echoed.
fn topic_command(text: &str, out: &mut Outbox<'_>) -> bool {
    let mut parts = text.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("sub"), Some(pattern), None) => {
            out.subscribe(pattern).unwrap();
        }
        (Some("unsub"), Some(pattern), None) => {
            out.unsubscribe(pattern);
        }
        (Some("pub"), Some(topic), Some(payload)) => {
            out.publish(topic, Message::Text(payload)).unwrap();
        }
        (Some("pubx"), Some(topic), Some(payload)) => {
            out.publish_to_others(topic, Message::Text(payload))
                .unwrap();
        }
        _ => return false,
    }
    true
}

/// The driver, its clock, and what the handler saw.
pub(crate) struct Sim {
    pub(crate) driver: Driver<Recorder, Script>,
    epoch: Instant,
    /// Virtual time since the start.
    pub(crate) elapsed: Duration,
    notes: Arc<Mutex<Vec<Note>>>,
}

pub(crate) const REQUEST: &[u8] =
    b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

impl Sim {
    pub(crate) fn new(config: ServerConfig) -> Self {
        let recorder = Recorder::default();
        let notes = Arc::clone(&recorder.notes);
        let epoch = Instant::now();
        let handle = Handle::new(Vec::new(), Duration::ZERO);
        let scratch = Scratch::for_server(&config);
        let driver = Driver::new(0, recorder, handle, config, scratch, epoch);
        Sim {
            driver,
            epoch,
            elapsed: Duration::ZERO,
            notes,
        }
    }

    /// A configuration with every timer on and round numbers.
    pub(crate) fn config() -> ServerConfig {
        ServerConfig::new(([127, 0, 0, 1], 0).into())
    }

    /// A new connection; the test keeps the other end of its stream.
    pub(crate) fn connect(&mut self) -> (usize, Script) {
        let script = Script::default();
        let idx = self.driver.insert(script.clone());
        (idx, script)
    }

    /// A new connection, upgraded: the 101 is taken off its wire.
    pub(crate) fn open(&mut self) -> (usize, Script) {
        let (idx, script) = self.connect();
        self.send(idx, &script, REQUEST);
        let wire = std::mem::take(&mut script.peer().wire);
        assert!(wire.starts_with(b"HTTP/1.1 101"), "{wire:?}");
        assert_eq!(self.phase(idx), Some(Phase::Open));
        self.notes();
        (idx, script)
    }

    /// The peer sends `bytes`; the socket's readable edge follows.
    pub(crate) fn send(&mut self, idx: usize, script: &Script, bytes: &[u8]) {
        script.peer().inbound.extend(bytes);
        self.driver.event(idx, true, false, false);
        self.driver.end_turn();
    }

    /// The peer sends a masked frame.
    pub(crate) fn send_frame(
        &mut self,
        idx: usize,
        script: &Script,
        opcode: OpCode,
        payload: &[u8],
    ) {
        self.send(idx, script, &client_frame(true, opcode, payload));
    }

    /// The socket's writable edge, after the peer made `room` bytes of room.
    pub(crate) fn drain(&mut self, idx: usize, script: &Script, room: usize) {
        *script.peer().room.get_or_insert(0) += room;
        self.driver.event(idx, false, true, false);
        self.driver.end_turn();
    }

    /// Moves the virtual clock on by `by` and runs a turn's end (timers).
    pub(crate) fn advance(&mut self, by: Duration) {
        self.elapsed += by;
        self.driver.timers.set_now(self.epoch + self.elapsed);
        self.driver.end_turn();
    }

    /// Moves the clock to `at` after the start.
    pub(crate) fn advance_to(&mut self, at: Duration) {
        assert!(at >= self.elapsed);
        self.advance(at - self.elapsed);
    }

    pub(crate) fn phase(&self, idx: usize) -> Option<Phase> {
        self.driver.conns.get(idx).map(|slot| slot.phase)
    }

    /// The handler's notes since the last call.
    pub(crate) fn notes(&self) -> Vec<Note> {
        std::mem::take(&mut *self.notes.lock().unwrap())
    }

    /// The id of the connection in `idx`.
    pub(crate) fn id(&self, idx: usize) -> ConnId {
        let generation = self.driver.conns.get(idx).unwrap().generation;
        ConnId::new(0, idx, generation)
    }
}

/// A frame from the client (masked).
pub(crate) fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, opcode, Rsv::NONE, payload, Some([1, 2, 3, 4]));
    if !fin {
        out[0] &= 0x7f;
    }
    out
}

/// A frame the server sent, as the client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Got {
    Text(String),
    Binary(usize),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>),
}

/// Takes what the server wrote to `script` and decodes it as the client would.
pub(crate) fn received(script: &Script) -> Vec<Got> {
    let wire = std::mem::take(&mut script.peer().wire);
    decode(wire)
}

/// Decodes what the server wrote so far, leaving it in place (a frame cut at the end is left
/// out).
pub(crate) fn peek(script: &Script) -> Vec<Got> {
    decode(script.peer().wire.clone())
}

pub(crate) fn decode(mut wire: Vec<u8>) -> Vec<Got> {
    let head = wire[..16.min(wire.len())].to_vec();
    let mut client = Connection::client(Default::default(), NoExtension, 7);
    let mut msg = Vec::new();
    let mut got = Vec::new();
    let mut off = 0;
    let now = Instant::now();
    while off < wire.len() {
        let read = client
            .handle_read(&mut wire[off..], &mut msg, now)
            .unwrap_or_else(|e| {
                panic!("the server's frames are valid: {e:?} at {off} ({got:?}) {head:?}")
            });
        off += read.consumed;
        match read.event {
            Some(Event::Text(text)) => got.push(Got::Text(text.to_owned())),
            Some(Event::Binary(bytes)) => got.push(Got::Binary(bytes.len())),
            Some(Event::Ping(p)) => got.push(Got::Ping(p.to_vec())),
            Some(Event::Pong(p)) => got.push(Got::Pong(p.to_vec())),
            Some(Event::Close(frame)) => got.push(Got::Close(frame.code.map(|c| c.0))),
            None if read.consumed == 0 => break,
            None => {}
        }
    }
    got
}
