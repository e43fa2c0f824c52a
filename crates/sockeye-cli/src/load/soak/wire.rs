//! One blocking client connection of the soak: a TCP socket with timeouts, the sockeye-proto
//! client state machine, and the few raw frames the soak writes itself (fragments, protocol
//! violations, a frame cut off by a reset).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sockeye_deflate::PerMessageDeflate;
use sockeye_proto::frame::MAX_HEADER_LEN;
use sockeye_proto::handshake::{ClientHandshake, ClientRequest, encode_key};
use sockeye_proto::mask::{SeededMasks, extend_masked};
use sockeye_proto::{CloseCode, Config, Connection, Event, FrameHeader, Message, OpCode, Rsv};

use super::super::deflate::Offer;
use super::super::sys::Entropy;
use sockeye_client::WsUrl;

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 64 << 10;

/// A message, pong or close received, copied out of the connection's buffers.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Received {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

impl Received {
    /// A short description (kind and length, not the bytes).
    pub(super) fn describe(&self) -> String {
        match self {
            Received::Text(p) => format!("a text message of {} bytes", p.len()),
            Received::Binary(p) => format!("a binary message of {} bytes", p.len()),
            Received::Pong(p) => format!("a pong of {} bytes", p.len()),
            Received::Close(code, reason) => format!("a close {code:?} {reason:?}"),
        }
    }
}

/// An open client connection.
#[derive(Debug)]
pub(super) struct Ws {
    tcp: TcpStream,
    ws: Connection<Option<Box<PerMessageDeflate>>>,
    /// Bytes read and not yet decoded are `rbuf[start..end]`.
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    message: Vec<u8>,
    out: Vec<u8>,
    /// Whether permessage-deflate was negotiated.
    pub(super) compressed: bool,
    /// Masks of the raw frames this module writes itself.
    mask_state: u64,
}

impl Ws {
    /// Connects to `addr`, upgrades (offering `offer` when given) and returns the open
    /// connection. Every read and write of the socket waits at most `timeout`.
    ///
    /// # Errors
    ///
    /// A description of the step that failed.
    pub(super) fn connect(
        addr: SocketAddr,
        url: &WsUrl,
        offer: Option<&Offer>,
        timeout: Duration,
        entropy: &mut Entropy,
    ) -> Result<Ws, String> {
        let mut tcp =
            TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
        tcp.set_read_timeout(Some(timeout))
            .and_then(|()| tcp.set_write_timeout(Some(timeout)))
            .and_then(|()| tcp.set_nodelay(true))
            .map_err(|e| format!("socket options: {e}"))?;
        let mut nonce = [0u8; 16];
        entropy.fill(&mut nonce).map_err(|e| e.to_string())?;
        let key = encode_key(nonce);
        let request = ClientRequest::new(&url.authority, &url.target, &key);
        // The extension writes its own offer; none without one.
        let ext = offer.map(|o| Box::new(o.extension()));
        let mut config = Config::default();
        config.max_message_size = 64 << 20;
        let seed = entropy.next_u64().map_err(|e| e.to_string())?;
        let mut handshake =
            ClientHandshake::new(&request, ext, config, Box::new(SeededMasks::new(seed)))
                .map_err(|e| format!("upgrade request: {e}"))?;
        tcp.write_all(handshake.request())
            .map_err(|e| format!("write the upgrade request: {e}"))?;
        let mut chunk = [0u8; 4096];
        loop {
            let n = tcp
                .read(&mut chunk)
                .map_err(|e| format!("read the upgrade response: {e}"))?;
            if n == 0 {
                return Err("the server closed the connection during the upgrade".into());
            }
            if handshake
                .receive(&chunk[..n])
                .map_err(|e| format!("upgrade response: {e}"))?
            {
                break;
            }
        }
        let opened = handshake
            .finish()
            .map_err(|e| format!("upgrade response: {e}"))?;
        let compressed = opened
            .connection
            .extension()
            .as_deref()
            .is_some_and(PerMessageDeflate::is_negotiated);
        let mut rbuf = opened.leftover;
        let end = rbuf.len();
        rbuf.resize(end.max(READ_CHUNK), 0);
        let mask_state = entropy.next_u64().map_err(|e| e.to_string())?;
        Ok(Ws {
            tcp,
            ws: opened.connection,
            rbuf,
            start: 0,
            end,
            message: Vec::new(),
            out: Vec::new(),
            compressed,
            mask_state,
        })
    }

    /// Sends a whole message (compressed when the extension chooses to).
    ///
    /// # Errors
    ///
    /// A description of the failure.
    pub(super) fn send(&mut self, msg: Message<'_>) -> Result<(), String> {
        self.ws
            .send(msg, &mut self.out)
            .map_err(|e| format!("send: {e}"))?;
        self.flush()
    }

    /// Sends `payload` as a message in `pieces` uncompressed fragments (RSV1 clear, valid on a
    /// compressed connection too), with a ping between the first two when `ping` is given.
    ///
    /// # Errors
    ///
    /// A description of the failure.
    pub(super) fn send_fragmented(
        &mut self,
        text: bool,
        payload: &[u8],
        pieces: usize,
        ping: Option<&[u8]>,
    ) -> Result<(), String> {
        let pieces = pieces.clamp(1, payload.len().max(1));
        let step = payload.len().div_ceil(pieces).max(1);
        let chunks: Vec<&[u8]> = if payload.is_empty() {
            vec![&[]]
        } else {
            payload.chunks(step).collect()
        };
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let opcode = match (i, text) {
                (0, true) => OpCode::Text,
                (0, false) => OpCode::Binary,
                _ => OpCode::Continuation,
            };
            self.raw_frame(i == last, opcode, chunk);
            if i == 0
                && let Some(ping) = ping
            {
                self.raw_frame(true, OpCode::Ping, ping);
            }
        }
        self.flush()
    }

    /// Appends one masked frame, written by hand, to the output.
    pub(super) fn raw_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        let mask = self.next_mask();
        self.raw_frame_with(fin, opcode, payload, Some(mask));
    }

    /// Appends one frame with the given mask (`None`: unmasked, a protocol error from a client).
    pub(super) fn raw_frame_with(
        &mut self,
        fin: bool,
        opcode: OpCode,
        payload: &[u8],
        mask: Option<[u8; 4]>,
    ) {
        let header = FrameHeader {
            fin,
            rsv: Rsv::NONE,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        };
        let mut bytes = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut bytes);
        self.out.extend_from_slice(&bytes[..n]);
        match mask {
            Some(key) => extend_masked(&mut self.out, payload, key, 0),
            None => self.out.extend_from_slice(payload),
        }
    }

    /// Writes the bytes `raw_frame` appended, cut after `keep` bytes when given.
    ///
    /// # Errors
    ///
    /// The write error.
    pub(super) fn flush_cut(&mut self, keep: usize) -> Result<(), String> {
        let keep = keep.min(self.out.len());
        let result = self.tcp.write_all(&self.out[..keep]);
        self.out.clear();
        result.map_err(|e| format!("write: {e}"))
    }

    /// Writes whatever is queued (pongs owed, messages, close frames).
    ///
    /// # Errors
    ///
    /// The write error.
    pub(super) fn flush(&mut self) -> Result<(), String> {
        self.ws.poll_transmit(&mut self.out);
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.tcp.write_all(&self.out);
        self.out.clear();
        result.map_err(|e| format!("write: {e}"))
    }

    /// Waits for the next message, pong or close (server pings are answered on the way).
    ///
    /// # Errors
    ///
    /// A protocol error, the end of the stream, or no byte within the socket's timeout.
    pub(super) fn recv(&mut self) -> Result<Received, String> {
        loop {
            let now = Instant::now();
            let read = self
                .ws
                .handle_read(&mut self.rbuf[self.start..self.end], &mut self.message, now)
                .map_err(|e| format!("protocol error from the server: {e}"))?;
            let consumed = read.consumed;
            let received = match read.event {
                Some(Event::Text(text)) => Some(Received::Text(text.as_bytes().to_vec())),
                Some(Event::Binary(bytes)) => Some(Received::Binary(bytes.to_vec())),
                Some(Event::Pong(bytes)) => Some(Received::Pong(bytes.to_vec())),
                Some(Event::Close(frame)) => Some(Received::Close(
                    frame.code.map(|c| c.0),
                    frame.reason.to_owned(),
                )),
                Some(Event::Ping(_)) => None,
                None if consumed == 0 => {
                    self.fill()?;
                    continue;
                }
                None => None,
            };
            self.start += consumed;
            if self.ws.has_pending_transmit() {
                self.flush()?;
            }
            if let Some(received) = received {
                return Ok(received);
            }
        }
    }

    /// Reads more bytes after the undecoded ones.
    fn fill(&mut self) -> Result<(), String> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.end == self.rbuf.len() {
            self.rbuf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.rbuf.len() - self.end < READ_CHUNK / 4 {
            self.rbuf.resize(self.rbuf.len() + READ_CHUNK, 0);
        }
        match self.tcp.read(&mut self.rbuf[self.end..]) {
            Ok(0) => Err("the server closed the connection".into()),
            Ok(n) => {
                self.end += n;
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err("no answer from the server within the timeout".into())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }

    /// Starts the closing handshake with `code` and `reason`, then waits for the server's close
    /// (which must carry the same code) and the end of the stream.
    ///
    /// # Errors
    ///
    /// Anything but that exchange.
    pub(super) fn close(mut self, code: u16, reason: &str) -> Result<(), String> {
        self.ws
            .close(CloseCode(code), reason, Instant::now())
            .map_err(|e| format!("close: {e}"))?;
        self.flush()?;
        match self.recv()? {
            Received::Close(Some(echoed), _) if echoed == code => {}
            other => return Err(format!("closed with {code}, got back {}", other.describe())),
        }
        self.expect_eof()
    }

    /// Waits for the server's end of the stream, after a close.
    ///
    /// # Errors
    ///
    /// More bytes, or no end within the timeout.
    pub(super) fn expect_eof(&mut self) -> Result<(), String> {
        if self.start != self.end {
            return Err(format!(
                "{} bytes after the close frame",
                self.end - self.start
            ));
        }
        let mut byte = [0u8; 1];
        match self.tcp.read(&mut byte) {
            Ok(0) => Ok(()),
            // The server may reset after its close when our echo crossed its FIN.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
            Ok(_) => Err("bytes after the close handshake".into()),
            Err(e) => Err(format!("waiting for the server to close TCP: {e}")),
        }
    }

    /// Drops the connection with a TCP reset (`SO_LINGER` 0), nothing more sent.
    pub(super) fn reset(self) {
        let _ = socket2::SockRef::from(&self.tcp).set_linger(Some(Duration::ZERO));
    }

    /// Drops the connection with a plain TCP close, no close frame.
    pub(super) fn drop_tcp(self) {
        let _ = self.tcp.shutdown(std::net::Shutdown::Both);
    }

    fn next_mask(&mut self) -> [u8; 4] {
        (super::super::sys::splitmix64(&mut self.mask_state) as u32).to_ne_bytes()
    }
}
