//! The worker's TLS code over bytes in memory, for the fuzz targets and the unit tests: the read
//! path of a fresh session fed arbitrary bytes ([`tls_read_path`]), and a session with a real
//! rustls client driven by a script ([`tls_session`], over [`Pair`]).

use std::cell::RefCell;
use std::io::{self, Read as _};
use std::sync::Arc;

use rustls::ClientConnection;
use rustls::pki_types::ServerName;

use super::{Scratch, TlsIo};
use crate::socket::Input;

struct Feed<'a> {
    input: &'a [u8],
    piece: usize,
    written: usize,
}

impl io::Read for Feed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.piece.min(buf.len()).min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl io::Write for Feed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the read path made of the input.
#[derive(Debug)]
pub struct Outcome {
    /// Plaintext bytes read out.
    pub plaintext: usize,
    /// Bytes the session wrote back (handshake messages, alerts).
    pub written: usize,
    /// The error that ended the connection, if any.
    pub error: Option<io::Error>,
}

/// Runs `input` through the worker's TLS read path with a fresh session.
pub fn tls_read_path(config: Arc<rustls::ServerConfig>, input: &[u8], piece: usize) -> Outcome {
    let session =
        rustls::server::UnbufferedServerConnection::new(config).expect("a valid configuration");
    let mut tls = TlsIo::new(session);
    // The worker's buffers outlive its connections: so do the harness's.
    thread_local! {
        static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
    }
    SCRATCH.with_borrow_mut(|scratch| {
        let scratch = scratch.get_or_insert_with(|| Scratch::new(0));
        run(&mut tls, scratch, input, piece)
    })
}

fn run(tls: &mut TlsIo, scratch: &mut Scratch, input: &[u8], piece: usize) -> Outcome {
    let mut feed = Feed {
        input,
        piece: piece.max(1),
        written: 0,
    };
    let mut buf = vec![0; 16 << 10];
    let mut plaintext = 0;
    // Each call consumes input or ends; the bound only guards the harness.
    for _ in 0..=input.len() + 1 {
        match tls.read(&mut feed, &mut buf, scratch) {
            Ok(Input::Data { len, .. }) => plaintext += len,
            // An empty socket: the next piece is the next readiness edge.
            Ok(Input::Empty) if !feed.input.is_empty() => {}
            Ok(Input::Empty | Input::Eof) => break,
            Err(error) => {
                return Outcome {
                    plaintext,
                    written: feed.written,
                    error: Some(error),
                };
            }
        }
    }
    Outcome {
        plaintext,
        written: feed.written,
        error: None,
    }
}

/// Both directions of a connection in memory. The server's side reads at most `piece` bytes
/// per call and its writes take at most `room` bytes per call.
pub(crate) struct Wire {
    pub(crate) to_server: Vec<u8>,
    pub(crate) to_client: Vec<u8>,
    pub(crate) piece: usize,
    pub(crate) room: usize,
}

impl io::Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.to_server.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.piece.min(buf.len()).min(self.to_server.len());
        buf[..n].copy_from_slice(&self.to_server[..n]);
        self.to_server.drain(..n);
        Ok(n)
    }
}

impl io::Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.room.min(buf.len());
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.to_client.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A rustls client and the worker's TLS code, connected by a [`Wire`].
pub(crate) struct Pair {
    pub(crate) client: ClientConnection,
    pub(crate) server: TlsIo,
    pub(crate) wire: Wire,
    pub(crate) scratch: Scratch,
    /// Plaintext the server read.
    pub(crate) got: Vec<u8>,
    /// Plaintext the client read.
    pub(crate) client_got: Vec<u8>,
    /// Bytes the server sent.
    pub(crate) sent: usize,
    pub(crate) server_eof: bool,
    /// The client read the server's close_notify.
    pub(crate) client_eof: bool,
    /// The server's read buffer, kept between turns.
    read_buf: Vec<u8>,
}

impl Pair {
    /// A pair whose handshake is done; the server reads at most `piece` bytes per call.
    ///
    /// # Panics
    ///
    /// When the handshake does not finish.
    pub(crate) fn new(
        server_config: Arc<rustls::ServerConfig>,
        client_config: Arc<rustls::ClientConfig>,
        piece: usize,
    ) -> Self {
        let name = ServerName::try_from("localhost").expect("a valid name");
        let mut pair = Pair {
            client: ClientConnection::new(client_config, name).expect("a client session"),
            server: TlsIo::new(
                rustls::server::UnbufferedServerConnection::new(server_config)
                    .expect("a server session"),
            ),
            wire: Wire {
                to_server: Vec::new(),
                to_client: Vec::new(),
                piece: piece.max(1),
                room: usize::MAX,
            },
            scratch: Scratch::new(0),
            got: Vec::new(),
            client_got: Vec::new(),
            sent: 0,
            server_eof: false,
            client_eof: false,
            read_buf: Vec::new(),
        };
        for _ in 0..100 {
            if !pair.client.is_handshaking() && !pair.client.wants_write() {
                break;
            }
            pair.turn(64 << 10);
        }
        assert!(!pair.client.is_handshaking(), "handshake finished");
        pair
    }

    /// Moves bytes both ways once; the server reads into a buffer of `room` bytes.
    ///
    /// # Panics
    ///
    /// On any error of either side.
    pub(crate) fn turn(&mut self, room: usize) {
        self.try_turn(room).expect("a clean turn");
    }

    /// [`turn`](Self::turn), returning the server's read error (the client's alert, if any,
    /// is then left on the wire for it).
    ///
    /// # Errors
    ///
    /// The server's read error.
    pub(crate) fn try_turn(&mut self, room: usize) -> io::Result<()> {
        while self.client.wants_write() {
            self.client.write_tls(&mut self.wire.to_server)?;
        }
        let mut buf = std::mem::take(&mut self.read_buf);
        buf.resize(room.max(1), 0);
        let result = self.server_reads(&mut buf);
        self.read_buf = buf;
        result?;
        self.client_takes()
    }

    /// The server reads until the wire is empty or the stream ended.
    fn server_reads(&mut self, buf: &mut [u8]) -> io::Result<()> {
        for _ in 0..1 << 20 {
            match self.server.read(&mut self.wire, buf, &mut self.scratch)? {
                Input::Data { len, .. } => self.got.extend_from_slice(&buf[..len]),
                Input::Eof => {
                    self.server_eof = true;
                    break;
                }
                Input::Empty if self.wire.to_server.is_empty() => break,
                Input::Empty => {}
            }
        }
        Ok(())
    }

    /// The client reads what the server wrote.
    fn client_takes(&mut self) -> io::Result<()> {
        self.sent += self.wire.to_client.len();
        let arrived = std::mem::take(&mut self.wire.to_client);
        let mut from_server = &arrived[..];
        while !from_server.is_empty() {
            // A client that read close_notify takes nothing more: bytes after it are an error.
            if self.client.read_tls(&mut from_server)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bytes from the server after its close_notify",
                ));
            }
            self.client
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let mut chunk = [0; 4096];
            loop {
                match self.client.reader().read(&mut chunk) {
                    Ok(0) => {
                        self.client_eof = true;
                        break;
                    }
                    Ok(n) => self.client_got.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Writes `data` through the server as the worker does: what is not taken is offered
    /// again after the pending records are flushed (a writable edge). The socket takes at
    /// most `room` bytes per write.
    ///
    /// # Panics
    ///
    /// When the data cannot all be written.
    pub(crate) fn server_writes(&mut self, data: &[u8], room: usize) {
        self.wire.room = room;
        let mut taken = 0;
        for _ in 0..1 << 20 {
            if taken == data.len() && !self.server.has_pending() {
                break;
            }
            if self.server.has_pending() {
                self.server.flush(&mut self.wire).expect("flush");
            } else {
                taken += self
                    .server
                    .write(&mut self.wire, &data[taken..], &mut self.scratch)
                    .expect("write");
            }
            // The client drains what arrived: the socket has room again.
            self.turn(64 << 10);
        }
        self.wire.room = usize::MAX;
        assert_eq!(taken, data.len());
    }

    /// Nothing held by the connection between turns.
    ///
    /// # Panics
    ///
    /// When a buffer is held.
    pub(crate) fn assert_idle(&self) {
        let s = &self.server;
        assert_eq!(
            (
                s.carried.capacity(),
                s.pending.capacity(),
                s.overflow.capacity()
            ),
            (0, 0, 0),
            "an idle connection holds no buffer"
        );
    }
}

/// Runs a scripted session between a rustls client (`client`, trusting the server's
/// certificate) and the worker's TLS code (`server`), both in memory, and checks it.
///
/// `script[0]`: the bytes per server read (1 to 256; 0 whole), `script[1]`: the bytes the
/// socket takes per server write (64 × n; 0 any). Then steps, a byte each with what they need
/// after it: the client writes `len` bytes (0); a turn with a server read buffer of
/// `16 × (n + 1)` bytes (1); the server writes `len` bytes (2); the client updates its keys (3,
/// four times at most); a byte of what the client sent flips (4: the read fails with
/// `InvalidData`, or waits for the rest of a record made longer, and the session ends); the
/// client sends close_notify (5: the server reads the end after what came before, and the
/// session ends); the server sends close_notify (6: from then on the server reads what the
/// client sends and drops it, without an error whatever it is).
///
/// What the server reads is what the client wrote, in order, and the client gets what the
/// server wrote; between turns the connection holds no buffer.
///
/// # Panics
///
/// When an invariant breaks.
pub fn tls_session(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    script: &[u8],
) {
    let [piece, room, rest @ ..] = script else {
        return;
    };
    let mut steps: &[u8] = rest;
    let piece = if *piece == 0 {
        usize::MAX
    } else {
        usize::from(*piece)
    };
    let room = if *room == 0 {
        usize::MAX
    } else {
        usize::from(*room) * 64
    };
    let mut pair = Pair::new(server, client, piece);
    // What the handshake told the engine: the name the client asked for, no ALPN, no client
    // certificate.
    assert_eq!(pair.server.server_name(), Some("localhost"));
    assert_eq!(pair.server.alpn(), None);
    assert!(pair.server.peer_certificates().is_none());
    let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
    let take = |steps: &mut &[u8]| -> u8 {
        let (&b, rest) = steps.split_first().unwrap_or((&0, &[]));
        *steps = rest;
        b
    };
    let mut server_closed = false;
    let mut key_updates = 0;
    while !steps.is_empty() {
        match take(&mut steps) % 7 {
            0 => {
                let len = usize::from(take(&mut steps)).min(steps.len());
                let (bytes, rest) = steps.split_at(len);
                steps = rest;
                // Repeated to cross the record size (16 KiB): up to 81 times.
                let times = usize::from(take(&mut steps) % 6) * 16 + 1;
                let data = bytes.repeat(times);
                io::Write::write_all(&mut pair.client.writer(), &data).expect("client write");
                // After the server's close_notify, what the client sends is dropped.
                if !server_closed {
                    to_server.extend_from_slice(&data);
                }
            }
            1 => {
                let buf = 16 * (usize::from(take(&mut steps)) + 1);
                pair.turn(buf);
                pair.assert_idle();
            }
            2 if !server_closed => {
                let len = usize::from(take(&mut steps)).min(steps.len());
                let (bytes, rest) = steps.split_at(len);
                steps = rest;
                let times = usize::from(take(&mut steps) % 6) * 16 + 1;
                let data = bytes.repeat(times);
                pair.server_writes(&data, room);
                to_client.extend_from_slice(&data);
                pair.assert_idle();
            }
            // A few: rustls refuses a peer that asks for many in a row (a flood).
            3 if key_updates < 4 => {
                key_updates += 1;
                let _ = pair.client.refresh_traffic_keys();
            }
            4 => {
                while pair.client.wants_write() {
                    pair.client
                        .write_tls(&mut pair.wire.to_server)
                        .expect("client records");
                }
                let pending = pair.wire.to_server.len();
                if pending == 0 {
                    continue;
                }
                let at = usize::from(take(&mut steps)) * 97 % pending;
                pair.wire.to_server[at] ^= 0x20;
                // A flipped byte fails the record that holds it: a header's length or type, a
                // payload's tag. Records before it are read.
                let mut buf = vec![0; 16 << 10];
                let mut error = None;
                for _ in 0..1 << 20 {
                    match pair
                        .server
                        .read(&mut pair.wire, &mut buf, &mut pair.scratch)
                    {
                        Ok(Input::Data { len, .. }) => pair.got.extend_from_slice(&buf[..len]),
                        Ok(Input::Empty) if pair.wire.to_server.is_empty() => break,
                        Ok(Input::Empty) => {}
                        Ok(Input::Eof) => break,
                        Err(e) => {
                            error = Some(e);
                            break;
                        }
                    }
                }
                // Nothing forged comes out: only plaintext from before the flipped byte.
                assert!(
                    to_server.starts_with(&pair.got),
                    "plaintext before the bad record"
                );
                // Without an error, a length was made longer: the record waits for bytes that
                // never come.
                // After the server's close_notify nothing is decrypted, so nothing fails.
                if let Some(error) = error {
                    assert!(!server_closed, "an error after our close_notify: {error}");
                    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
                }
                return;
            }
            5 => {
                pair.client.send_close_notify();
                pair.turn(16 << 10);
                // Before ours, the peer's close_notify is the end; after ours the socket's EOF
                // is (the wire here never ends).
                assert!(
                    pair.server_eof || server_closed,
                    "close_notify read as the end"
                );
                assert_eq!(pair.got, to_server);
                return;
            }
            6 if !server_closed => {
                // What the client sent so far is read first.
                pair.turn(16 << 10);
                pair.server.close_notify(&mut pair.wire, &mut pair.scratch);
                pair.turn(16 << 10);
                server_closed = true;
                assert!(pair.client_eof, "close_notify read by the client");
            }
            _ => {}
        }
    }
    pair.turn(16 << 10);
    assert_eq!(pair.got, to_server, "what the client wrote, in order");
    assert_eq!(
        pair.client_got, to_client,
        "what the server wrote, in order"
    );
    pair.assert_idle();
}
