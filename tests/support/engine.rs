//! Feeding a [`Connection`] the way an IO engine does: keep the unconsumed bytes, append the
//! next read, and call `handle_read` until it is blocked, copying each event out.

use std::time::Instant;

use sockeye_proto::{
    CloseCode, Connection, Event, Extension, Message, NoExtension, ProtocolError, SendError,
};

/// The most bytes `handle_read` may leave unconsumed: a frame header, or a whole control frame
/// (14 + 125), as the call-order docs of `Connection` promise.
pub const MAX_LEFTOVER: usize = 139;

/// An [`Event`] copied out of the buffers it borrowed, so event lists can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedEvent {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping.
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// A close frame: the code (if any) and the reason.
    Close(Option<u16>, String),
}

impl OwnedEvent {
    /// Copies `event`.
    pub fn from_event(event: &Event<'_>) -> Self {
        match event {
            Event::Text(text) => OwnedEvent::Text((*text).to_owned()),
            Event::Binary(bytes) => OwnedEvent::Binary(bytes.to_vec()),
            Event::Ping(bytes) => OwnedEvent::Ping(bytes.to_vec()),
            Event::Pong(bytes) => OwnedEvent::Pong(bytes.to_vec()),
            Event::Close(frame) => {
                OwnedEvent::Close(frame.code.map(|c| c.0), frame.reason.to_owned())
            }
        }
    }

    /// A text event.
    pub fn text(text: &str) -> Self {
        OwnedEvent::Text(text.to_owned())
    }
}

/// One end of a connection with its engine-side buffers: the unconsumed input, the message
/// buffer, the events delivered so far and the bytes it has written towards its peer.
#[derive(Debug)]
pub struct Peer<E: Extension = NoExtension> {
    /// The state machine under test.
    pub conn: Connection<E>,
    leftover: Vec<u8>,
    message_buf: Vec<u8>,
    /// Every event delivered so far, in order.
    pub events: Vec<OwnedEvent>,
    /// The first error `handle_read` returned, if any.
    pub error: Option<ProtocolError>,
    /// Bytes sent or transmitted towards the peer and not yet delivered.
    pub wire: Vec<u8>,
    /// How many `handle_read` calls returned an error (must never exceed one).
    pub errors_seen: usize,
}

impl<E: Extension> Peer<E> {
    /// Wraps a fresh connection.
    pub fn new(conn: Connection<E>) -> Self {
        Peer {
            conn,
            leftover: Vec::new(),
            message_buf: Vec::new(),
            events: Vec::new(),
            error: None,
            wire: Vec::new(),
            errors_seen: 0,
        }
    }

    /// One read's worth of bytes: appends `chunk` to the unconsumed input and calls
    /// `handle_read` until it is blocked or fails. Returns the number of events it delivered.
    ///
    /// Checks the engine contract on the way: every step makes progress or blocks, `consumed`
    /// never exceeds the input, and what is left over fits [`MAX_LEFTOVER`].
    ///
    /// # Errors
    ///
    /// The [`ProtocolError`] of the failing step; it is also kept in [`Peer::error`].
    pub fn receive(&mut self, chunk: &[u8], now: Instant) -> Result<usize, ProtocolError> {
        self.leftover.extend_from_slice(chunk);
        let before = self.events.len();
        let mut start = 0;
        loop {
            let input = &mut self.leftover[start..];
            let len = input.len();
            let read = match self.conn.handle_read(input, &mut self.message_buf, now) {
                Ok(read) => read,
                Err(err) => {
                    self.errors_seen += 1;
                    self.error.get_or_insert(err);
                    self.leftover.clear();
                    return Err(err);
                }
            };
            assert!(read.consumed <= len, "consumed {} of {len}", read.consumed);
            assert!(
                read.consumed > 0 || read.event.is_none(),
                "an event must consume bytes"
            );
            if let Some(event) = &read.event {
                self.events.push(OwnedEvent::from_event(event));
            }
            if read.is_blocked() {
                break;
            }
            start += read.consumed;
        }
        self.leftover.drain(..start);
        assert!(
            self.leftover.len() <= MAX_LEFTOVER,
            "{} bytes left over",
            self.leftover.len()
        );
        Ok(self.events.len() - before)
    }

    /// Feeds `chunks` one read at a time, stopping at the first error.
    ///
    /// # Errors
    ///
    /// The first [`ProtocolError`].
    pub fn receive_all<'c>(
        &mut self,
        chunks: impl IntoIterator<Item = &'c [u8]>,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        for chunk in chunks {
            self.receive(chunk, now)?;
        }
        Ok(())
    }

    /// Bytes received but not consumed yet (a partial header or control frame).
    pub fn leftover(&self) -> &[u8] {
        &self.leftover
    }

    /// Sends `msg` towards the peer.
    ///
    /// # Errors
    ///
    /// What [`Connection::send`] returns.
    pub fn send(&mut self, msg: Message<'_>) -> Result<(), SendError> {
        self.conn.send(msg, &mut self.wire)
    }

    /// Starts the closing handshake.
    ///
    /// # Errors
    ///
    /// What [`Connection::close`] returns.
    pub fn close(&mut self, code: u16, reason: &str, now: Instant) -> Result<(), SendError> {
        self.conn.close(CloseCode(code), reason, now)
    }

    /// Moves the frames the protocol owes into [`Peer::wire`]; whether there were any.
    pub fn transmit(&mut self) -> bool {
        self.conn.poll_transmit(&mut self.wire)
    }

    /// Takes the events delivered so far.
    pub fn take_events(&mut self) -> Vec<OwnedEvent> {
        std::mem::take(&mut self.events)
    }
}

/// The events and the first error from feeding `chunks` to `conn` like an engine.
pub fn feed<'c, E: Extension>(
    conn: Connection<E>,
    chunks: impl IntoIterator<Item = &'c [u8]>,
    now: Instant,
) -> (Vec<OwnedEvent>, Option<ProtocolError>, Connection<E>) {
    let mut peer = Peer::new(conn);
    let _ = peer.receive_all(chunks, now);
    (peer.events, peer.error, peer.conn)
}

/// `bytes` cut at the sorted positions `cuts` (each `<= bytes.len()`).
pub fn split_at<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for &cut in cuts {
        assert!(start <= cut && cut <= bytes.len(), "cuts must be sorted");
        chunks.push(&bytes[start..cut]);
        start = cut;
    }
    chunks.push(&bytes[start..]);
    chunks
}
