//! The blocking front end: one connection on a `std` TCP stream, for threads that wait.

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use sockeye_proto::CloseCode;

use crate::error::{Error, Phase};
use crate::message::{CloseFrame, Message};
use crate::options::Options;
use crate::session::Session;
use crate::url::WsUrl;

/// A client connection that blocks its thread on every call.
///
/// ```no_run
/// use sockeye_client::{Message, WebSocket};
///
/// let mut ws = WebSocket::connect("ws://127.0.0.1:9001/")?;
/// ws.send(&Message::Text("hello".into()))?;
/// println!("{:?}", ws.recv()?);
/// ws.close(sockeye_client::CloseCode::NORMAL, "done")?;
/// // The server's close frame, then the end of the connection.
/// while !matches!(ws.recv()?, Message::Close(_)) {}
/// # Ok::<(), sockeye_client::Error>(())
/// ```
#[derive(Debug)]
pub struct WebSocket {
    tcp: TcpStream,
    session: Session,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// A write timed out with part of a frame gone: the connection cannot go on.
    broken: bool,
}

impl WebSocket {
    /// Connects to `url` with the default [`Options`].
    ///
    /// # Errors
    ///
    /// See [`connect_with`](Self::connect_with).
    pub fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(url, &Options::default())
    }

    /// Connects to `url` (`ws://` or `wss://`): TCP to each address the host resolves to in
    /// turn, then the TLS and WebSocket handshakes.
    ///
    /// # Errors
    ///
    /// [`Error::Url`], [`Error::Io`] or [`Error::Timeout`] when no address accepts (the last
    /// address's error), [`Error::Tls`], [`Error::Handshake`] when the server refuses the
    /// upgrade, [`Error::Reset`] when it closes during it.
    pub fn connect_with(url: &str, options: &Options) -> Result<Self, Error> {
        let url = WsUrl::parse(url)?;
        // The options are checked before anything goes on the network.
        let session = Session::new(&url, options)?;
        let tcp = connect_tcp(&url, options.connect_timeout)?;
        Self::handshake(tcp, session, options)
    }

    /// Runs the handshakes on a TCP stream the caller opened (through a tunnel, from a given
    /// address) for `url`.
    ///
    /// # Errors
    ///
    /// As [`connect_with`](Self::connect_with), without the connect step.
    pub fn upgrade(tcp: TcpStream, url: &WsUrl, options: &Options) -> Result<Self, Error> {
        Self::handshake(tcp, Session::new(url, options)?, options)
    }

    fn handshake(tcp: TcpStream, session: Session, options: &Options) -> Result<Self, Error> {
        tcp.set_nodelay(true)?;
        let mut ws = WebSocket {
            tcp,
            session,
            read_timeout: None,
            write_timeout: None,
            broken: false,
        };
        let deadline = after(options.handshake_timeout);
        while !ws.session.is_open() {
            ws.write_out(deadline, Phase::Handshake)?;
            let n = ws.read_in(deadline, Phase::Handshake)?;
            if n == 0 {
                return Err(Error::Reset);
            }
            if let Err(e) = ws.session.received(n) {
                let _ = ws.write_out(deadline, Phase::Handshake);
                return Err(e);
            }
        }
        ws.write_out(deadline, Phase::Handshake)?;
        ws.tcp.set_read_timeout(None)?;
        ws.tcp.set_write_timeout(None)?;
        Ok(ws)
    }

    /// The subprotocol the server chose.
    pub fn protocol(&self) -> Option<&str> {
        self.session.protocol()
    }

    /// The server's `Sec-WebSocket-Extensions` answer (empty when none).
    pub fn extensions(&self) -> &str {
        self.session.extensions()
    }

    /// Whether permessage-deflate runs on this connection.
    pub fn is_compressed(&self) -> bool {
        self.session.is_compressed()
    }

    /// The TCP stream (for its addresses or socket options).
    pub fn get_ref(&self) -> &TcpStream {
        &self.tcp
    }

    /// The sans-IO session (TLS details, state).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Makes [`recv`](Self::recv) give up with [`Error::Timeout`] after `timeout` without a
    /// message (`None`, the default: wait as long as it takes). The connection stays usable:
    /// pongs or a close echo the timeout cut short go out with the next call.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// Makes a write give up with [`Error::Timeout`] when it has not finished within `timeout`
    /// (`None`, the default: wait as long as it takes). Part of a frame may have gone: every
    /// later call then returns [`Error::Closed`] (a message is never sent twice).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// Waits for the next message. Pings are answered by themselves (and returned too). The
    /// server's close frame comes as [`Message::Close`], once, its echo already sent; after it,
    /// [`Error::Closed`] once the server ended the connection.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] (the close frame with its code was sent), [`Error::Reset`],
    /// [`Error::Tls`], [`Error::Io`], [`Error::Timeout`] (a read timeout, or a closing
    /// handshake that did not finish in time), [`Error::Closed`].
    pub fn recv(&mut self) -> Result<Message, Error> {
        self.check_usable()?;
        let read_deadline = self.read_timeout.and_then(after);
        loop {
            // Writes (pongs, the close echo) wait no longer than the read may, nor than the
            // closing handshake, nor than the write timeout.
            let close = self.session.poll_timeout();
            let wait = earliest(earliest(read_deadline, close), self.write_deadline());
            match self.session.poll_message() {
                Ok(Some(message)) => {
                    // The message is the caller's now: a write that fails here fails again at
                    // the next call, where it is reported.
                    let _ = self.write_owed(wait, Phase::Write);
                    return Ok(message);
                }
                Ok(None) => self.write_owed(wait, Phase::Write)?,
                Err(e) => {
                    let _ = self.write_owed(wait, Phase::Write);
                    if matches!(e, Error::Closed | Error::Timeout(_) | Error::Protocol(_)) {
                        let _ = self.tcp.shutdown(Shutdown::Both);
                    }
                    return Err(e);
                }
            }
            let n = match self.read_in(earliest(read_deadline, close), Phase::Read) {
                Err(Error::Timeout(_)) if close.is_some_and(|at| Instant::now() >= at) => {
                    self.session.handle_timeout(Instant::now());
                    continue;
                }
                // The socket's timer may fire a hair early: only a deadline that passed counts.
                Err(Error::Timeout(_)) if read_deadline.is_none_or(|at| Instant::now() < at) => {
                    continue;
                }
                other => other?,
            };
            if n == 0 {
                self.session.end_of_input();
            } else if let Err(e) = self.session.received(n) {
                // A TLS failure's alert goes out before the socket is shut.
                let _ = self.write_owed(wait, Phase::Write);
                let _ = self.tcp.shutdown(Shutdown::Both);
                return Err(e);
            }
        }
    }

    /// Sends `message`; a [`Message::Close`] starts the closing handshake (as
    /// [`close`](Self::close)).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after a close frame was sent, [`Error::Send`] for a ping or pong over
    /// 125 bytes, [`Error::Io`] or [`Error::Timeout`] from the socket.
    pub fn send(&mut self, message: &Message) -> Result<(), Error> {
        self.check_usable()?;
        match message.as_proto() {
            Some(msg) => self.session.send(msg)?,
            None => {
                let (code, reason) = close_parts(message);
                self.session.close(code, reason)?;
            }
        }
        self.flush()
    }

    /// Sends a text message.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.check_usable()?;
        self.session.send(sockeye_proto::Message::Text(text))?;
        self.flush()
    }

    /// Sends a binary message.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_binary(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.check_usable()?;
        self.session.send(sockeye_proto::Message::Binary(bytes))?;
        self.flush()
    }

    /// Sends a ping (at most 125 bytes); its pong arrives through [`recv`](Self::recv).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.check_usable()?;
        self.session.send(sockeye_proto::Message::Ping(payload))?;
        self.flush()
    }

    /// Starts the closing handshake with `code` and `reason`. Messages the server sent before
    /// its close frame still arrive through [`recv`](Self::recv), then its
    /// [`Message::Close`].
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when a close frame was already sent, or the socket's error.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.check_usable()?;
        self.session.close(code, reason)?;
        // The close frame waits no longer than the closing handshake may take.
        let wait = earliest(self.session.poll_timeout(), self.write_deadline());
        self.write_out(wait, Phase::Close)
    }

    /// Writes whatever is waiting (replies to pings, the close echo).
    ///
    /// # Errors
    ///
    /// The socket's error, or [`Error::Timeout`] with a write timeout set.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.check_usable()?;
        self.write_out(self.write_deadline(), Phase::Write)
    }

    /// When a write started now must be done.
    fn write_deadline(&self) -> Option<Instant> {
        self.write_timeout.and_then(after)
    }

    /// [`Error::Closed`] once a write timed out part way (what is left of the frame would
    /// otherwise go out with the next call, and a retried message twice).
    fn check_usable(&self) -> Result<(), Error> {
        if self.broken {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Writes the session's output whole, by `deadline`, after a message of the caller's went
    /// into it. Out of time with output left (the socket's timer, or the deadline passed
    /// between writes: a write that runs out of time part way returns the bytes it took), the
    /// connection is broken: the rest of the frame would otherwise go out with the next call.
    fn write_out(&mut self, deadline: Option<Instant>, phase: Phase) -> Result<(), Error> {
        let written = self.write_owed(deadline, phase);
        if matches!(written, Err(Error::Timeout(_))) {
            self.broken = true;
        }
        written
    }

    /// Writes what the session owes the server (pongs, the close echo), by `deadline`. Out
    /// of time, what is left goes with the next call: none of it is the caller's to send again,
    /// so a read timeout that cuts a pong short leaves the connection usable.
    fn write_owed(&mut self, deadline: Option<Instant>, phase: Phase) -> Result<(), Error> {
        while !self.session.output().is_empty() {
            self.tcp.set_write_timeout(left(deadline, phase)?)?;
            match self.tcp.write(self.session.output()) {
                Ok(0) => return Err(Error::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.session.wrote(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(Error::Timeout(phase)),
                Err(e) => return Err(Error::Io(e)),
            }
        }
        Ok(())
    }

    /// Reads once into the session's input, by `deadline`: the bytes read (0 at the end).
    fn read_in(&mut self, deadline: Option<Instant>, phase: Phase) -> Result<usize, Error> {
        loop {
            self.tcp.set_read_timeout(left(deadline, phase)?)?;
            match self.tcp.read(self.session.input()) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(Error::Timeout(phase)),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Err(Error::Reset),
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }
}

/// The code and reason of a close message to send (1000 when it has none).
pub(crate) fn close_parts(message: &Message) -> (CloseCode, &str) {
    match message {
        Message::Close(Some(CloseFrame { code, reason })) => (*code, reason.as_str()),
        _ => (CloseCode::NORMAL, ""),
    }
}

/// Opens TCP to the first of `url`'s addresses that accepts within `timeout`.
fn connect_tcp(url: &WsUrl, timeout: Duration) -> Result<TcpStream, Error> {
    let mut last = None;
    for addr in url.resolve_all()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(tcp) => return Ok(tcp),
            Err(e) if is_timeout(&e) => last = Some(Error::Timeout(Phase::Connect)),
            Err(e) => last = Some(Error::Io(e)),
        }
    }
    Err(last.unwrap_or(Error::Timeout(Phase::Connect)))
}

/// The instant `timeout` from now (`None` when that is too far to count: no deadline).
fn after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The earlier of two deadlines (`None`: none).
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The time left before `deadline` as a socket timeout (`None`: no deadline).
fn left(deadline: Option<Instant>, phase: Phase) -> Result<Option<Duration>, Error> {
    match deadline {
        None => Ok(None),
        Some(at) => match at.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err(Error::Timeout(phase)),
        },
    }
}

/// Whether a socket error is its timeout running out.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
