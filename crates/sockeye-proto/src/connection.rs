//! The per-connection state machine, for both roles (RFC 6455 §5–§7).
//!
//! # Call order
//!
//! 1. Bytes from the peer: call [`Connection::handle_read`] on the unconsumed input until it
//!    returns neither an event nor consumed bytes, handing each [`Event`] to the application,
//!    and keep `input[consumed..]` (at most a frame header or a control frame, ≤ 139 bytes) in
//!    front of the next read.
//! 2. Application messages: [`Connection::send`] appends frames to the caller's output queue.
//! 3. After each batch: [`Connection::poll_transmit`] appends the replies the protocol owes
//!    (pongs, the close echo or the close that fails the connection) to the same queue.
//! 4. Timers: arm one for [`Connection::poll_timeout`]; when it fires call
//!    [`Connection::handle_timeout`].
//! 5. When [`Connection::state`] is [`State::Closed`] and the queue is written, close the
//!    transport: the server closes TCP first (§7.1.1).
//!
//! States: `Open` → `Closing` (a close frame was sent or received, the handshake is not done)
//! → `Closed`. Nothing is sent after a close frame.

use core::fmt;
use std::time::{Duration, Instant};

use crate::Role;
use crate::close::{CloseCode, CloseFrame};
use crate::error::ProtocolError;
use crate::extension::{Extension, ExtensionError, NoExtension};
use crate::frame::{FrameHeader, MAX_HEADER_LEN, OpCode, Rsv};
use crate::mask::{MaskSource, SeededMasks, apply_mask, extend_masked};
use crate::status::Status;
use crate::utf8::Utf8Validator;

/// Fragments with fewer payload bytes than this count against [`Config::max_fragments`].
pub const SMALL_FRAGMENT: u64 = 64;

/// The most a message buffer reserves ahead of the bytes that arrived, on a frame header's
/// word.
const RESERVE_AHEAD_MAX: usize = 1 << 20;

/// Limits and timeouts of a connection. Sizes above 4 GiB and timeouts above 49 days are
/// capped there: a connection keeps them in 16 bytes.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The largest frame payload accepted, in bytes. Default 16 MiB. A larger frame fails the
    /// connection with 1009 as soon as its header arrives, so a peer cannot announce a huge frame
    /// and make the engine buffer it.
    pub max_frame_size: u64,
    /// The largest message accepted (after decompression), in bytes. Default 16 MiB. Bounds the
    /// reassembly buffer and the output of decompression (a deflate bomb stops here, 1009).
    pub max_message_size: usize,
    /// The most *small* fragments (under [`SMALL_FRAGMENT`] bytes of payload, empty ones
    /// included) one message may arrive in. Default 4096. A fragment costs no memory (the
    /// payloads are appended to one buffer), only the work of one frame: fragments of
    /// `SMALL_FRAGMENT` bytes or more are bounded by the message size (at most one per 64 bytes
    /// of it), so this limit stops what the size cannot, a flood of empty or tiny fragments
    /// (1009 above).
    pub max_fragments: u32,
    /// How long to wait for the peer's close frame after sending ours. Default 5 s. Bounds how
    /// long a peer that never answers a close holds the connection.
    pub close_timeout: Duration,
}

impl Config {
    /// The defaults: 16 MiB frames and messages, 4096 small fragments, 5 s close timeout.
    pub const DEFAULT: Config = Config {
        max_frame_size: 16 << 20,
        max_message_size: 16 << 20,
        max_fragments: 4096,
        close_timeout: Duration::from_secs(5),
    };
}

/// [`Config`] as a connection keeps it: four 32-bit fields instead of 40 bytes.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_frame_size: u32,
    max_message_size: u32,
    max_fragments: u32,
    close_timeout_ms: u32,
}

impl Limits {
    fn new(config: &Config) -> Self {
        let cap = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Limits {
            max_frame_size: cap(config.max_frame_size),
            max_message_size: cap(config.max_message_size as u64),
            max_fragments: config.max_fragments,
            // Rounded up: a close timeout never ends early.
            close_timeout_ms: cap(u64::try_from(
                config.close_timeout.as_nanos().div_ceil(1_000_000),
            )
            .unwrap_or(u64::MAX)),
        }
    }

    fn close_timeout(self) -> Duration {
        Duration::from_millis(u64::from(self.close_timeout_ms))
    }

    fn config(self) -> Config {
        Config {
            max_frame_size: u64::from(self.max_frame_size),
            max_message_size: self.max_message_size as usize,
            max_fragments: self.max_fragments,
            close_timeout: self.close_timeout(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// A close frame was sent or received; the closing handshake is under way.
    Closing,
    /// The closing handshake finished, failed or timed out: write what is queued, then close the
    /// transport.
    Closed,
}

/// Something the peer sent, borrowed from the input or from the caller's message buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole text message, valid UTF-8.
    Text(&'a str),
    /// A whole binary message.
    Binary(&'a [u8]),
    /// A ping; the pong is already queued for [`Connection::poll_transmit`].
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// The peer's close frame; the echo is already queued unless we had sent a close first.
    Close(CloseFrame<'a>),
}

/// A message to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
    /// A ping (at most 125 bytes).
    Ping(&'a [u8]),
    /// An unsolicited pong (at most 125 bytes).
    Pong(&'a [u8]),
}

/// The outcome of one [`Connection::handle_read`] step.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub struct Read<'a> {
    /// Bytes of the input used; the caller drops them.
    pub consumed: usize,
    /// The event completed by this step, if any.
    pub event: Option<Event<'a>>,
}

impl Read<'_> {
    /// Whether the step made no progress: the rest of the input is an incomplete frame (or
    /// empty), so the caller should keep it and wait for more bytes.
    pub fn is_blocked(&self) -> bool {
        self.consumed == 0 && self.event.is_none()
    }
}

/// Why a message could not be sent.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// A close frame was already sent or queued: "the endpoint MUST NOT send any more data
    /// frames after sending a Close frame" (§5.5.1).
    Closed,
    /// A ping or pong payload over 125 bytes (§5.5).
    ControlTooLong(usize),
    /// The extension failed to encode the message.
    Extension(ExtensionError),
    /// A pre-encoded frame with RSV bits no negotiated extension claimed.
    UnclaimedRsv,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("connection is closing"),
            SendError::ControlTooLong(len) => write!(f, "control payload of {len} bytes (max 125)"),
            SendError::Extension(e) => write!(f, "extension: {e}"),
            SendError::UnclaimedRsv => f.write_str("RSV bits not claimed by an extension"),
        }
    }
}

impl std::error::Error for SendError {}

/// The frame whose payload is still arriving.
#[derive(Debug, Clone, Copy)]
struct InFrame {
    /// Payload bytes still to come (frames are at most 4 GiB: see [`Config`]).
    remaining: u32,
    /// The masking key, rotated to line up with the next payload byte.
    mask: Option<[u8; 4]>,
    fin: bool,
}

/// The message being assembled in the caller's buffer.
#[derive(Debug, Clone, Copy)]
struct InMessage {
    text: bool,
    compressed: bool,
    /// Fragments under [`SMALL_FRAGMENT`] bytes so far.
    small_fragments: u32,
    utf8: Utf8Validator,
}

/// A WebSocket connection after the handshake: a sans-IO state machine (see the module docs for
/// the call order).
pub struct Connection<E = NoExtension> {
    role: Role,
    limits: Limits,
    ext: E,
    frame: Option<InFrame>,
    message: Option<InMessage>,
    /// The caller's message buffer holds a delivered message; clear it on the next read.
    delivered: bool,
    close_queued: bool,
    close_flushed: bool,
    close_received: bool,
    failed: bool,
    timed_out: bool,
    deadline: Option<Instant>,
    /// Encoded control frames owed to the peer (empty, and unallocated, most of the time).
    pending: Vec<u8>,
    /// The client's mask keys (`None` for a server).
    masks: Option<Box<dyn MaskSource>>,
}

impl<E: Extension> fmt::Debug for Connection<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl<E: Extension> Connection<E> {
    /// A server-side connection, with `ext` already negotiated (or [`NoExtension`]).
    pub fn server(config: Config, ext: E) -> Self {
        Self::new(Role::Server, config, ext, None)
    }

    /// A client-side connection whose mask keys are predictable from `mask_seed`
    /// ([`SeededMasks`]): for tests, fuzzing and load generation. A client facing real networks
    /// uses [`client_with_masks`](Self::client_with_masks) with a CSPRNG.
    pub fn client(config: Config, ext: E, mask_seed: u64) -> Self {
        Self::client_with_masks(config, ext, Box::new(SeededMasks::new(mask_seed)))
    }

    /// A client-side connection that masks every frame with a key from `masks`.
    pub fn client_with_masks(config: Config, ext: E, masks: Box<dyn MaskSource>) -> Self {
        Self::new(Role::Client, config, ext, Some(masks))
    }

    fn new(role: Role, config: Config, ext: E, masks: Option<Box<dyn MaskSource>>) -> Self {
        Connection {
            role,
            limits: Limits::new(&config),
            ext,
            frame: None,
            message: None,
            delivered: false,
            close_queued: false,
            close_flushed: false,
            close_received: false,
            failed: false,
            timed_out: false,
            deadline: None,
            pending: Vec::new(),
            masks,
        }
    }

    /// This endpoint's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration (with its sizes capped at 4 GiB).
    pub fn config(&self) -> Config {
        self.limits.config()
    }

    /// The extension.
    pub fn extension(&self) -> &E {
        &self.ext
    }

    /// The extension, mutably.
    pub fn extension_mut(&mut self) -> &mut E {
        &mut self.ext
    }

    /// The state of the connection.
    pub fn state(&self) -> State {
        if self.failed || self.timed_out || (self.close_received && self.close_flushed) {
            State::Closed
        } else if self.close_queued || self.close_received {
            State::Closing
        } else {
            State::Open
        }
    }

    /// Whether both close frames went through: the peer's arrived and ours is flushed. The peer
    /// sends nothing after its close frame, so the transport can close at once.
    pub fn is_close_handshake_done(&self) -> bool {
        self.close_received && self.close_flushed && !self.failed
    }

    /// Whether the close timeout expired before the peer answered our close.
    pub fn is_timed_out(&self) -> bool {
        self.timed_out
    }

    /// Whether a message is partly received (its bytes are in the caller's message buffer).
    pub fn is_receiving_message(&self) -> bool {
        self.message.is_some() || self.frame.is_some()
    }

    /// Decodes the next step of `input`: at most one frame header and the payload bytes that
    /// follow it, returning the event it completes.
    ///
    /// `message_buf` is the caller's reassembly buffer for this connection: a message that spans
    /// frames or reads is gathered there (copied once, and unmasked in that copy), and its event
    /// borrows it. A message that arrives whole in one frame in one read is delivered straight
    /// from `input`, unmasked in place, with no copy. Pass the same buffer on every call; it is
    /// cleared at the next call after a delivery.
    ///
    /// Text is validated as it arrives: an invalid byte fails the connection in the call that
    /// sees it, even mid-frame.
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] fails the connection: its close frame is queued for
    /// [`poll_transmit`](Connection::poll_transmit) and the state becomes [`State::Closed`].
    // Forced into the engine's read loop: once the client handshake gave this a second caller,
    // the optimizer kept it (and `step`) out of line, which cost 29 user-space instructions per
    // 16 B echo (`benches/counts.py`, echo-16B-x16: 539 before, 568 after).
    #[inline(always)]
    pub fn handle_read<'b>(
        &mut self,
        input: &'b mut [u8],
        message_buf: &'b mut Vec<u8>,
        now: Instant,
    ) -> Result<Read<'b>, ProtocolError> {
        if self.delivered {
            message_buf.clear();
            self.delivered = false;
        }
        if self.close_received || self.failed {
            // "after receiving a Close frame, the endpoint ... MUST NOT" expect data (§1.4): the
            // rest is ignored.
            return Ok(Read {
                consumed: input.len(),
                event: None,
            });
        }
        match self.step(input, message_buf, now) {
            Ok(read) => Ok(read),
            Err(err) => {
                self.fail(err.close_code(), now);
                Err(err)
            }
        }
    }

    #[inline(always)]
    fn step<'b>(
        &mut self,
        input: &'b mut [u8],
        message_buf: &'b mut Vec<u8>,
        now: Instant,
    ) -> Result<Read<'b>, ProtocolError> {
        let (frame, header_len) = match self.frame {
            Some(frame) => (frame, 0),
            None => {
                if let Some((header, len)) = self.small_frame(input) {
                    return single_frame(header, len, input);
                }
                let decoded = FrameHeader::decode(input, self.role, self.ext.rsv())?;
                let Status::Complete((header, len)) = decoded else {
                    return Ok(Read {
                        consumed: 0,
                        event: None,
                    });
                };
                if header.opcode.is_control() {
                    return self.control(header, len, input, now);
                }
                let total = len as u64 + header.payload_len;
                let whole = header.fin && header.rsv.is_empty() && input.len() as u64 >= total;
                if whole && self.message.is_none() {
                    self.check_frame(&header, 0)?;
                    return single_frame(header, len, input);
                }
                (self.begin_frame(&header, message_buf.len())?, len)
            }
        };
        let available = &mut input[header_len..];
        let n = available
            .len()
            .min(usize::try_from(frame.remaining).unwrap_or(usize::MAX));
        let chunk = &mut available[..n];
        // n <= remaining, a u32.
        let remaining = frame.remaining - n as u32;
        let done = remaining == 0;
        if n > 0 || done {
            self.absorb(chunk, frame.mask, done && frame.fin, remaining, message_buf)?;
        }
        let consumed = header_len + n;
        if !done {
            self.frame = Some(InFrame {
                remaining,
                mask: frame.mask.map(|mut key| {
                    key.rotate_left(n % 4);
                    key
                }),
                fin: frame.fin,
            });
            return Ok(Read {
                consumed,
                event: None,
            });
        }
        self.frame = None;
        if !frame.fin {
            return Ok(Read {
                consumed,
                event: None,
            });
        }
        let message = self.message.take();
        self.delivered = true;
        let bytes: &'b [u8] = message_buf;
        let event = if message.is_some_and(|m| m.text) {
            Event::Text(simdutf8::basic::from_utf8(bytes).map_err(|_| ProtocolError::InvalidUtf8)?)
        } else {
            Event::Binary(bytes)
        };
        Ok(Read {
            consumed,
            event: Some(event),
        })
    }

    /// The frame nearly every message is, recognised from its first two bytes: final, no RSV
    /// bit, text or binary, at most 125 bytes of payload, masked as this role receives, whole
    /// in `input`, within the limits, with no message in progress. `None` leaves the frame to
    /// [`FrameHeader::decode`] and [`check_frame`](Self::check_frame), which accept every
    /// frame this does, with the same header.
    #[inline]
    fn small_frame(&self, input: &[u8]) -> Option<(FrameHeader, usize)> {
        let [b0, b1, rest @ ..] = input else {
            return None;
        };
        let opcode = match b0 {
            0x81 => OpCode::Text,
            0x82 => OpCode::Binary,
            _ => return None,
        };
        let len = usize::from(b1 & 0x7f);
        let masked = b1 & 0x80 != 0;
        let limit = self.limits.max_frame_size.min(self.limits.max_message_size);
        if len > 125 || masked != (self.role == Role::Server) || len as u64 > u64::from(limit) {
            return None;
        }
        if self.message.is_some() {
            return None;
        }
        let (mask, header_len) = if masked {
            (Some(*rest.first_chunk::<4>()?), 6)
        } else {
            (None, 2)
        };
        if input.len() < header_len + len {
            return None;
        }
        let header = FrameHeader {
            fin: true,
            rsv: Rsv::NONE,
            opcode,
            mask,
            payload_len: len as u64,
        };
        Some((header, header_len))
    }

    /// Checks the sequence and size rules for a data frame and records it as the frame in
    /// progress.
    fn begin_frame(
        &mut self,
        header: &FrameHeader,
        buffered: usize,
    ) -> Result<InFrame, ProtocolError> {
        self.check_frame(header, buffered)?;
        let small = u32::from(header.payload_len < SMALL_FRAGMENT);
        match (header.opcode, &mut self.message) {
            (OpCode::Continuation, Some(message)) => {
                if message.small_fragments + small > self.limits.max_fragments {
                    return Err(ProtocolError::TooManyFragments {
                        max: self.limits.max_fragments,
                    });
                }
                message.small_fragments += small;
            }
            (_, message) => {
                *message = Some(InMessage {
                    text: header.opcode == OpCode::Text,
                    compressed: !header.rsv.is_empty(),
                    small_fragments: small,
                    utf8: Utf8Validator::new(),
                });
            }
        }
        let frame = InFrame {
            // Within `max_frame_size` (checked above), which is at most 4 GiB.
            remaining: u32::try_from(header.payload_len).map_err(|_| {
                ProtocolError::FrameTooLarge {
                    len: header.payload_len,
                    max: u64::from(u32::MAX),
                }
            })?,
            mask: header.mask,
            fin: header.fin,
        };
        self.frame = Some(frame);
        Ok(frame)
    }

    /// The rules a data frame must follow given the message in progress.
    #[inline(always)]
    fn check_frame(&self, header: &FrameHeader, buffered: usize) -> Result<(), ProtocolError> {
        match (header.opcode, self.message.is_some()) {
            // "a fragmented message consists of a single frame with the FIN bit clear and an
            // opcode other than 0, followed by zero or more frames with the FIN bit clear and the
            // opcode set to 0" (§5.4).
            (OpCode::Continuation, false) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, true) => {
                return Err(ProtocolError::ExpectedContinuation);
            }
            // Extensions mark the first frame of a message only (RFC 7692 §6.1).
            (OpCode::Continuation, true) if !header.rsv.is_empty() => {
                return Err(ProtocolError::ReservedBits(header.rsv.bits() >> 4));
            }
            _ => {}
        }
        let max_frame = u64::from(self.limits.max_frame_size);
        if header.payload_len > max_frame {
            return Err(ProtocolError::FrameTooLarge {
                len: header.payload_len,
                max: max_frame,
            });
        }
        let compressed = self
            .message
            .map_or(!header.rsv.is_empty(), |m| m.compressed);
        let total = buffered as u64 + header.payload_len;
        let max = u64::from(self.limits.max_message_size);
        if !compressed && total > max {
            return Err(ProtocolError::MessageTooLarge { len: total, max });
        }
        Ok(())
    }

    /// Takes in a piece of the payload of the frame in progress, still masked with `mask` (then
    /// unmasked as it is copied, or in place for the decompressor).
    fn absorb(
        &mut self,
        chunk: &mut [u8],
        mask: Option<[u8; 4]>,
        last: bool,
        remaining: u32,
        message_buf: &mut Vec<u8>,
    ) -> Result<(), ProtocolError> {
        let Some(message) = self.message.as_mut() else {
            return Ok(());
        };
        if message.compressed {
            if let Some(key) = mask {
                apply_mask(chunk, key, 0);
            }
            let before = message_buf.len();
            let max = self.limits.max_message_size as usize;
            self.ext
                .decode(chunk, last, message_buf, max)
                .map_err(|err| match err {
                    ExtensionError::OutputLimit { .. } => ProtocolError::MessageTooLarge {
                        len: message_buf.len() as u64 + 1,
                        max: max as u64,
                    },
                    _ => ProtocolError::InvalidCompressedData,
                })?;
            if message.text {
                utf8_feed(&mut message.utf8, &message_buf[before..])?;
            }
        } else {
            // Room for the rest of the frame at once (within the limits, checked on its
            // header): a large message grows its buffer once instead of doubling it. Up to a
            // bound: the length is the peer's claim, not bytes that arrived.
            message_buf.reserve(chunk.len() + (remaining as usize).min(RESERVE_AHEAD_MAX));
            let before = message_buf.len();
            match mask {
                Some(key) => extend_masked(message_buf, chunk, key, 0),
                None => message_buf.extend_from_slice(chunk),
            }
            if message.text {
                if let Err(e) = utf8_feed(&mut message.utf8, &message_buf[before..]) {
                    // What the message holds stays valid text, as if the piece never came.
                    message_buf.truncate(before);
                    return Err(e);
                }
            }
        }
        if last && message.text {
            message
                .utf8
                .finish()
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(())
    }

    /// Handles a control frame, which must be whole in `input`.
    fn control<'b>(
        &mut self,
        header: FrameHeader,
        header_len: usize,
        input: &'b mut [u8],
        now: Instant,
    ) -> Result<Read<'b>, ProtocolError> {
        if !header.rsv.is_empty() {
            return Err(ProtocolError::ReservedBits(header.rsv.bits() >> 4));
        }
        // A control payload is at most 125 bytes (checked by the decoder).
        let total = header_len + header.payload_len as usize;
        if input.len() < total {
            return Ok(Read {
                consumed: 0,
                event: None,
            });
        }
        let payload = &mut input[header_len..total];
        if let Some(key) = header.mask {
            apply_mask(payload, key, 0);
        }
        let payload: &'b [u8] = payload;
        let event = match header.opcode {
            OpCode::Ping => {
                // "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response
                // ... unless it already received a Close frame" (§5.5.2); none after our close.
                if !self.close_queued {
                    self.queue_control(OpCode::Pong, payload);
                }
                Event::Ping(payload)
            }
            OpCode::Pong => Event::Pong(payload),
            _ => {
                let close = CloseFrame::decode(payload)?;
                self.close_received = true;
                if self.close_queued {
                    // Our close is answered. A server closes TCP now; a client keeps the timer
                    // to bound its wait for the server's FIN (§7.1.1).
                    if self.role == Role::Server {
                        self.deadline = None;
                    }
                } else {
                    // "If an endpoint receives a Close frame and did not previously send a Close
                    // frame, the endpoint MUST send a Close frame in response" (§5.5.1).
                    self.queue_close(close.code, "");
                    if self.role == Role::Client {
                        self.deadline = Some(now + self.limits.close_timeout());
                    }
                }
                Event::Close(close)
            }
        };
        Ok(Read {
            consumed: total,
            event: Some(event),
        })
    }

    fn fail(&mut self, code: CloseCode, now: Instant) {
        self.failed = true;
        self.frame = None;
        self.message = None;
        if !self.close_queued {
            self.queue_close(Some(code), "");
        }
        // A failed server closes TCP at once; a client waits a bounded time for the server to.
        self.deadline = match self.role {
            Role::Server => None,
            Role::Client => Some(now + self.limits.close_timeout()),
        };
    }

    /// Appends `msg` as a frame to `out` (compressed when the extension chooses to). Replies the
    /// protocol owes (pongs) are appended first, so answers keep the order of the frames that
    /// caused them.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] once a close frame is queued; [`SendError::ControlTooLong`] for a
    /// ping or pong over 125 bytes; [`SendError::Extension`] when compression fails.
    pub fn send(&mut self, msg: Message<'_>, out: &mut Vec<u8>) -> Result<(), SendError> {
        if let Some(payload) = self.send_split(msg, out)? {
            out.extend_from_slice(payload);
        }
        Ok(())
    }

    /// Like [`send`](Self::send), but for a data message that goes out as it is (a server's
    /// frame, no extension encoding it) appends only the frame header and returns the payload:
    /// the caller sends those bytes right after `out`, before anything else, with no copy into
    /// `out` (a vectored write). Other messages are appended whole, as `send` does, and `None`
    /// returned.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_split<'m>(
        &mut self,
        msg: Message<'m>,
        out: &mut Vec<u8>,
    ) -> Result<Option<&'m [u8]>, SendError> {
        if self.close_queued {
            return Err(SendError::Closed);
        }
        // Replies owed for frames already read (pongs) leave before what the application sends
        // in answer to later frames.
        self.poll_transmit(out);
        let (opcode, payload) = match msg {
            Message::Text(text) => (OpCode::Text, text.as_bytes()),
            Message::Binary(bytes) => (OpCode::Binary, bytes),
            Message::Ping(bytes) | Message::Pong(bytes) if bytes.len() > 125 => {
                return Err(SendError::ControlTooLong(bytes.len()));
            }
            Message::Ping(bytes) => (OpCode::Ping, bytes),
            Message::Pong(bytes) => (OpCode::Pong, bytes),
        };
        if !opcode.is_control()
            && !self.ext.rsv().is_empty()
            && self.send_encoded(opcode, payload, out)?
        {
            return Ok(None);
        }
        match self.next_mask() {
            // A server's data frame: the payload goes as it is, after its header.
            None if !opcode.is_control() => {
                write_header(out, opcode, Rsv::NONE, payload.len(), None);
                Ok(Some(payload))
            }
            mask => {
                write_frame(out, opcode, Rsv::NONE, payload, mask);
                Ok(None)
            }
        }
    }

    /// Appends a whole data frame whose payload the caller already encoded for this
    /// connection's extension (a broadcast compressed once for many receivers), with `rsv`.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] once a close frame is queued; [`SendError::UnclaimedRsv`] when `rsv`
    /// has bits the negotiated extension did not claim.
    pub fn send_encoded_frame(
        &mut self,
        text: bool,
        rsv: Rsv,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        if self.close_queued {
            return Err(SendError::Closed);
        }
        if !rsv.is_subset_of(self.ext.rsv()) {
            return Err(SendError::UnclaimedRsv);
        }
        self.poll_transmit(out);
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        let mask = self.next_mask();
        write_frame(out, opcode, rsv, payload, mask);
        Ok(())
    }

    /// Checks that a whole, unmasked data frame encoded once for many receivers (a server's
    /// publish) may go to this connection now, with `rsv`: the caller writes those bytes as they
    /// are, after the replies the protocol owes ([`poll_transmit`](Self::poll_transmit)). A
    /// client masks every frame, so only a server's connection takes such frames.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] once a close frame is queued (or for a client);
    /// [`SendError::UnclaimedRsv`] when `rsv` has bits the negotiated extension did not claim.
    pub fn admit_shared_frame(&self, rsv: Rsv) -> Result<(), SendError> {
        if self.close_queued || self.role != Role::Server {
            return Err(SendError::Closed);
        }
        if !rsv.is_subset_of(self.ext.rsv()) {
            return Err(SendError::UnclaimedRsv);
        }
        Ok(())
    }

    /// Lets the extension encode the payload in place in `out`; `false` when it declined.
    fn send_encoded(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, SendError> {
        let start = out.len();
        out.resize(start + MAX_HEADER_LEN, 0);
        let rsv = match self.ext.encode(payload, out) {
            Ok(rsv) if !rsv.is_empty() => rsv,
            result => {
                out.truncate(start);
                return result.map(|_| false).map_err(SendError::Extension);
            }
        };
        let body = start + MAX_HEADER_LEN;
        let header = FrameHeader {
            fin: true,
            rsv,
            opcode,
            mask: self.next_mask(),
            payload_len: (out.len() - body) as u64,
        };
        let mut bytes = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut bytes);
        out.copy_within(body.., start + n);
        out.truncate(out.len() - (MAX_HEADER_LEN - n));
        out[start..start + n].copy_from_slice(&bytes[..n]);
        if let Some(key) = header.mask {
            apply_mask(&mut out[start + n..], key, 0);
        }
        Ok(true)
    }

    /// Starts the closing handshake: queues a close frame with `code` and `reason` (cut to fit
    /// 123 bytes) and arms the close timeout.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] when a close frame was already queued.
    pub fn close(&mut self, code: CloseCode, reason: &str, now: Instant) -> Result<(), SendError> {
        if self.close_queued {
            return Err(SendError::Closed);
        }
        self.queue_close(Some(code), reason);
        if !self.close_received {
            self.deadline = Some(now + self.limits.close_timeout());
        }
        Ok(())
    }

    /// Appends the frames the protocol owes the peer (pongs, close) to `out`; returns whether
    /// anything was appended.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        out.extend_from_slice(&self.pending);
        self.pending.clear();
        if self.close_queued {
            self.close_flushed = true;
        }
        true
    }

    /// Whether frames are owed to the peer.
    pub fn has_pending_transmit(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The instant at which [`handle_timeout`](Connection::handle_timeout) must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Advances the clock: when the close timeout has passed the connection becomes
    /// [`State::Closed`] and [`is_timed_out`](Connection::is_timed_out) turns true.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            self.deadline = None;
            self.timed_out = true;
        }
    }

    fn queue_close(&mut self, code: Option<CloseCode>, reason: &str) {
        let mut payload = [0u8; 125];
        let len = CloseFrame { code, reason }.encode(&mut payload);
        self.queue_control(OpCode::Close, &payload[..len]);
        self.close_queued = true;
    }

    fn queue_control(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = self.next_mask();
        write_frame(&mut self.pending, opcode, Rsv::NONE, payload, mask);
    }

    /// The next mask key in the client role, `None` for the server.
    fn next_mask(&mut self) -> Option<[u8; 4]> {
        self.masks.as_deref_mut().map(MaskSource::next_key)
    }
}

fn utf8_feed(validator: &mut Utf8Validator, bytes: &[u8]) -> Result<(), ProtocolError> {
    validator
        .feed(bytes)
        .map_err(|_| ProtocolError::InvalidUtf8)
}

/// The zero-copy path: a whole unfragmented, uncompressed frame inside `input`.
#[inline]
fn single_frame(
    header: FrameHeader,
    header_len: usize,
    input: &mut [u8],
) -> Result<Read<'_>, ProtocolError> {
    let total = header_len + header.payload_len as usize;
    let payload = &mut input[header_len..total];
    if let Some(key) = header.mask {
        apply_mask(payload, key, 0);
    }
    let payload: &[u8] = payload;
    let event = if header.opcode == OpCode::Text {
        Event::Text(simdutf8::basic::from_utf8(payload).map_err(|_| ProtocolError::InvalidUtf8)?)
    } else {
        Event::Binary(payload)
    };
    Ok(Read {
        consumed: total,
        event: Some(event),
    })
}

/// Appends one whole frame to `out`, masking the payload when `mask` is set.
pub fn write_frame(
    out: &mut Vec<u8>,
    opcode: OpCode,
    rsv: Rsv,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    out.reserve(MAX_HEADER_LEN + payload.len());
    write_header(out, opcode, rsv, payload.len(), mask);
    match mask {
        Some(key) => extend_masked(out, payload, key, 0),
        None => out.extend_from_slice(payload),
    }
}

/// Appends the header of a whole (FIN) frame of `len` payload bytes.
fn write_header(out: &mut Vec<u8>, opcode: OpCode, rsv: Rsv, len: usize, mask: Option<[u8; 4]>) {
    if mask.is_none() && len <= 125 {
        // A server's short frame, the most common: two bytes, as `FrameHeader::encode` writes them.
        out.extend_from_slice(&[0x80 | rsv.bits() | opcode as u8, len as u8]);
        return;
    }
    let header = FrameHeader {
        fin: true,
        rsv,
        opcode,
        mask,
        payload_len: len as u64,
    };
    let mut bytes = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut bytes);
    out.extend_from_slice(&bytes[..n]);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A connection of `role` with the given limits, in the middle of a fragmented message
    /// when `fragmenting`.
    fn connection(
        role: Role,
        max_frame: u64,
        max_message: usize,
        fragmenting: bool,
    ) -> Connection<NoExtension> {
        let config = Config {
            max_frame_size: max_frame,
            max_message_size: max_message,
            ..Config::default()
        };
        let mut conn = match role {
            Role::Server => Connection::server(config, NoExtension),
            Role::Client => Connection::client(config, NoExtension, 7),
        };
        if fragmenting {
            let header = FrameHeader {
                fin: false,
                rsv: Rsv::NONE,
                opcode: OpCode::Binary,
                mask: (role == Role::Server).then_some([1, 2, 3, 4]),
                payload_len: 0,
            };
            let mut frame = [0u8; MAX_HEADER_LEN];
            let n = header.encode(&mut frame);
            let mut message = Vec::new();
            let read = conn
                .handle_read(&mut frame[..n], &mut message, Instant::now())
                .expect("a first fragment");
            assert_eq!((read.consumed, read.event.is_none()), (n, true));
            assert!(conn.message.is_some());
        }
        conn
    }

    #[test]
    fn a_client_s_small_message_takes_the_short_path() {
        let conn = connection(Role::Server, 1 << 20, 1 << 20, false);
        let mut frame = vec![0x82, 0x80 | 16, 9, 8, 7, 6];
        frame.extend_from_slice(&[0u8; 16]);
        let (header, len) = conn.small_frame(&frame).expect("the short path");
        assert_eq!(
            (header.payload_len, header.mask, len),
            (16, Some([9, 8, 7, 6]), 6)
        );
        // Not whole yet: the general path waits for the rest.
        assert!(conn.small_frame(&frame[..21]).is_none());
    }

    #[test]
    fn write_header_writes_what_encode_does() {
        let opcodes = [
            OpCode::Text,
            OpCode::Binary,
            OpCode::Continuation,
            OpCode::Ping,
        ];
        for opcode in opcodes {
            for rsv in [Rsv::NONE, Rsv::RSV1] {
                for len in (0..=130).chain([0xffff, 0x10000]) {
                    for mask in [None, Some([1, 2, 3, 4])] {
                        let header = FrameHeader {
                            fin: true,
                            rsv,
                            opcode,
                            mask,
                            payload_len: len as u64,
                        };
                        let mut encoded = [0u8; MAX_HEADER_LEN];
                        let n = header.encode(&mut encoded);
                        let mut out = vec![0xee];
                        write_header(&mut out, opcode, rsv, len, mask);
                        assert_eq!(out[1..], encoded[..n], "{header:?}");
                    }
                }
            }
        }
    }

    proptest! {
        /// The short path's oracle: every frame it takes, the general path takes too, with the
        /// same header and length, within the limits and the message rules.
        #[test]
        fn the_short_path_takes_only_what_the_general_path_accepts_alike(
            first in prop_oneof![Just(0x81u8), Just(0x82u8), any::<u8>()],
            second in any::<u8>(),
            rest in proptest::collection::vec(any::<u8>(), 0..140),
            server in any::<bool>(),
            max_frame in 0u64..200,
            max_message in 0usize..200,
            fragmenting in any::<bool>(),
        ) {
            let role = if server { Role::Server } else { Role::Client };
            let conn = connection(role, max_frame, max_message, fragmenting);
            let mut input = vec![first, second];
            input.extend_from_slice(&rest);
            if let Some((header, len)) = conn.small_frame(&input) {
                let general = FrameHeader::decode(&input, role, conn.ext.rsv());
                prop_assert_eq!(general, Ok(Status::Complete((header, len))));
                prop_assert!(conn.check_frame(&header, 0).is_ok());
                prop_assert!(header.fin && header.rsv.is_empty() && !header.opcode.is_control());
                prop_assert!(input.len() as u64 >= len as u64 + header.payload_len);
            }
        }
    }
}
