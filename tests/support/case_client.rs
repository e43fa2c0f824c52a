//! A wire-level WebSocket client for tests that look at the frames themselves (the broadcast
//! and topics tests compare the compressed bytes two subscribers receive): sockeye-proto's
//! `ClientHandshake` with permessage-deflate, then the client `Connection` driven by hand, so
//! that each message comes with the bytes that carried it. Applications and the other tests use
//! sockeye-client.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sockeye::deflate::{DeflateConfig, PerMessageDeflate};
use sockeye::proto::handshake::{ClientHandshake, ClientRequest, encode_key};
use sockeye::proto::mask::SeededMasks;
use sockeye::proto::{Config, Connection, Event, Message, State};

/// One connection of the client role.
#[derive(Debug)]
pub struct CaseClient {
    stream: TcpStream,
    conn: Connection<PerMessageDeflate>,
    input: Vec<u8>,
    message: Vec<u8>,
    out: Vec<u8>,
}

/// What a connection ended with.
#[derive(Debug, Default)]
pub struct Ending {
    /// Text messages received (kept only when asked to).
    pub texts: Vec<String>,
    /// Whether the closing handshake finished before the server closed TCP.
    pub closed_cleanly: bool,
}

impl CaseClient {
    /// Connects to `path` and upgrades, offering permessage-deflate.
    ///
    /// # Errors
    ///
    /// Socket errors, and a refused or invalid upgrade (as `InvalidData`).
    pub fn connect(addr: SocketAddr, path: &str, seed: u64) -> io::Result<CaseClient> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut deflate = DeflateConfig::default();
        deflate.threshold = 0;
        // Offer both client parameters, as browsers' peers expect: the server may then ask for a
        // smaller window or no context takeover (Autobahn 13.2, 13.5, 13.6 do).
        deflate.client_no_context_takeover = true;
        let key = encode_key(seed.to_le_bytes().repeat(2).try_into().unwrap_or([7; 16]));
        let host = addr.to_string();
        let mut config = Config::default();
        config.max_message_size = 64 << 20;
        config.max_frame_size = 64 << 20;
        config.max_fragments = 1 << 20;
        let mut handshake = ClientHandshake::new(
            &ClientRequest::new(&host, path, &key),
            PerMessageDeflate::client(deflate),
            config,
            Box::new(SeededMasks::new(seed)),
        )
        .map_err(invalid)?;
        stream.write_all(handshake.request())?;
        let mut buf = [0u8; 4096];
        loop {
            let read = stream.read(&mut buf)?;
            if read == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if handshake.receive(&buf[..read]).map_err(invalid)? {
                break;
            }
        }
        let opened = handshake.finish().map_err(invalid)?;
        Ok(CaseClient {
            stream,
            conn: opened.connection,
            input: opened.leftover,
            message: Vec::new(),
            out: Vec::new(),
        })
    }

    /// Echoes every message back (when `echo`) until the connection closes, within `limit`.
    ///
    /// # Errors
    ///
    /// Socket errors other than the server closing TCP.
    pub fn run(mut self, echo: bool, limit: Duration) -> io::Result<Ending> {
        let deadline = Instant::now() + limit;
        let mut ending = Ending::default();
        let mut buf = vec![0u8; 256 << 10];
        loop {
            self.drain_input(echo, &mut ending);
            self.conn.poll_transmit(&mut self.out);
            if !self.out.is_empty() {
                // A server that already closed makes this fail; the close still ends the case.
                if self.stream.write_all(&self.out).is_err() {
                    return Ok(ending);
                }
                self.out.clear();
            }
            if self.conn.state() == State::Closed {
                ending.closed_cleanly = !self.conn.is_timed_out();
                // The server closes TCP first (RFC 6455 §7.1.1): wait for its FIN.
                self.wait_for_eof(deadline.min(Instant::now() + Duration::from_secs(5)));
                return Ok(ending);
            }
            if Instant::now() >= deadline {
                return Err(io::ErrorKind::TimedOut.into());
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(ending),
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(ending),
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether permessage-deflate was negotiated.
    pub fn deflate(&self) -> bool {
        self.conn.extension().is_negotiated()
    }

    /// Sends one message.
    ///
    /// # Errors
    ///
    /// Socket errors; a refused send as `InvalidData`.
    pub fn send(&mut self, msg: Message<'_>) -> io::Result<()> {
        self.conn.send(msg, &mut self.out).map_err(invalid)?;
        self.stream.write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }

    /// The next text or binary message: its bytes on the wire (the frames that carried it,
    /// still compressed) and its payload.
    ///
    /// # Errors
    ///
    /// Socket errors (a read timeout among them), a protocol error as `InvalidData`.
    pub fn recv_message(&mut self) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let mut buf = vec![0u8; 64 << 10];
        let mut consumed = 0;
        let mut wire = Vec::new();
        loop {
            let now = Instant::now();
            while consumed < self.input.len() {
                let before = self.input[consumed..].to_vec();
                let read = self
                    .conn
                    .handle_read(&mut self.input[consumed..], &mut self.message, now)
                    .map_err(invalid)?;
                consumed += read.consumed;
                let frame_bytes = &before[..read.consumed];
                let payload = match read.event {
                    Some(Event::Text(text)) => Some(text.as_bytes().to_vec()),
                    Some(Event::Binary(bytes)) => Some(bytes.to_vec()),
                    Some(_) => {
                        continue;
                    }
                    None if read.consumed == 0 => break,
                    None => None,
                };
                wire.extend_from_slice(frame_bytes);
                if let Some(payload) = payload {
                    self.input.drain(..consumed);
                    return Ok((wire, payload));
                }
            }
            self.input.drain(..consumed);
            consumed = 0;
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.input.extend_from_slice(&buf[..n]);
        }
    }

    fn drain_input(&mut self, echo: bool, ending: &mut Ending) {
        let mut offset = 0;
        let now = Instant::now();
        while offset < self.input.len() {
            let step = self
                .conn
                .handle_read(&mut self.input[offset..], &mut self.message, now);
            let Ok(read) = step else {
                // The close that fails the connection is queued; nothing more is read.
                offset = self.input.len();
                break;
            };
            offset += read.consumed;
            let reply = match read.event {
                Some(Event::Text(text)) => {
                    if !echo {
                        ending.texts.push(text.to_owned());
                    }
                    echo.then_some(Message::Text(text))
                }
                Some(Event::Binary(bytes)) => echo.then_some(Message::Binary(bytes)),
                Some(_) => None,
                None if read.consumed == 0 => break,
                None => None,
            };
            if let Some(reply) = reply {
                let _ = self.conn.send(reply, &mut self.out);
            }
        }
        self.input.drain(..offset);
    }

    fn wait_for_eof(&mut self, deadline: Instant) {
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

fn invalid(err: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err.to_string())
}
