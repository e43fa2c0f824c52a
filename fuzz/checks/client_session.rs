//! Checks for sockeye-client's `Session`, the core both front ends drive: after a valid
//! answer to its upgrade request (permessage-deflate accepted or not), arbitrary server bytes
//! arrive in pieces of a size the input chooses, with messages sent and a close started between
//! them, then the end of the stream.
//!
//! Input: byte 0 = options (bit 0: offer permessage-deflate, bit 1: the server accepts it,
//! bits 2-7: the piece size), byte 1 = when to send (every Nth piece) and when to close (bit 7),
//! the rest = the server's bytes after its answer.
//!
//! Invariants: no panic; every message is within the limits (data under `MAX`, control payloads
//! at most 125 bytes); nothing after the server's close frame; no message once an error was
//! reported; after the end of the stream the session ends with `Closed` (a closing handshake
//! was seen, or an error ended it) or `Reset` (none was), never by waiting for more; a protocol
//! error leaves a close frame in the output; every byte the session writes after the upgrade
//! is a masked client frame.

use sockeye_client::{CloseCode, DeflateConfig, Error, Message, Options, Session, WsUrl};
use sockeye_proto::handshake::AcceptKey;
use sockeye_proto::{FrameHeader, OpCode, Role, Rsv, Status};

/// The largest message accepted in these runs (small, so that limits are reached).
const MAX: usize = 64 << 10;

pub(crate) fn check(data: &[u8]) {
    let [options, plan, server @ ..] = data else {
        return;
    };
    let offer = options & 1 != 0;
    let accepted = offer && options & 2 != 0;
    let piece = 1 + usize::from(options >> 2) * 37;
    let send_every = usize::from(plan & 0x0f).max(1);
    let close_at = usize::from((plan >> 4) & 0x07);
    let close_early = plan & 0x80 != 0;

    let mut options = Options::default()
        .max_message_size(MAX)
        .close_timeout(std::time::Duration::from_secs(3600));
    if offer {
        options = options.deflate(DeflateConfig::default());
    }
    let url = WsUrl::parse("ws://server.example/feed").expect("a valid URL");
    let mut session = Session::new(&url, &options).expect("valid options");
    let request = String::from_utf8(session.output().to_vec()).expect("an ASCII request");
    let written = session.output().len();
    session.wrote(written);
    let key = request
        .lines()
        .find_map(|line| line.strip_prefix("Sec-WebSocket-Key: "))
        .expect("a key");
    let key: &[u8; 24] = key.as_bytes().try_into().expect("a 24-byte key");
    let extension = if accepted {
        "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    } else {
        ""
    };
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n{extension}\r\n",
        AcceptKey::from_key(key).as_str()
    );
    session.receive(answer.as_bytes()).expect("a valid answer");
    assert!(session.is_open());
    assert_eq!(session.is_compressed(), accepted);

    let mut state = State::default();
    let mut wire = Vec::new();
    for (i, chunk) in server.chunks(piece).enumerate() {
        if state.ended {
            break;
        }
        session.receive(chunk).expect("plain input is always taken");
        state.drain(&mut session);
        if i % send_every == 0 && !state.ended {
            let payload = vec![b'x'; i % 300];
            match session.send(sockeye_proto::Message::Binary(&payload)) {
                Ok(()) | Err(Error::Closed) => {}
                Err(e) => panic!("send: {e}"),
            }
        }
        if close_early && i == close_at && !state.ended {
            match session.close(CloseCode(4000 + i as u16), "fuzz") {
                Ok(()) => state.close_sent = true,
                Err(Error::Closed) => {}
                Err(e) => panic!("close: {e}"),
            }
        }
        take_output(&mut session, &mut wire);
    }
    session.end_of_input();
    for _ in 0..=server.len() + 1 {
        match session.poll_message() {
            Ok(Some(message)) => state.message(&message),
            Ok(None) => panic!("the session waits for more after the end of the stream"),
            Err(Error::Closed) => {
                assert!(state.close_seen || state.ended || session.is_finished());
                break;
            }
            Err(Error::Reset) => {
                assert!(!state.close_seen, "a reset after the server's close frame");
                break;
            }
            Err(Error::Protocol(_)) => {
                state.ended = true;
                assert!(
                    !session.output().is_empty(),
                    "no close frame for a protocol error"
                );
            }
            Err(e) => panic!("after the end of the stream: {e}"),
        }
    }
    take_output(&mut session, &mut wire);
    check_client_frames(&wire);
}

/// What the run saw so far.
#[derive(Default)]
struct State {
    /// The server's close frame was delivered.
    close_seen: bool,
    /// Our close frame went out.
    close_sent: bool,
    /// An error ended the connection.
    ended: bool,
}

impl State {
    /// Takes every message the session has.
    fn drain(&mut self, session: &mut Session) {
        loop {
            match session.poll_message() {
                Ok(Some(message)) => self.message(&message),
                Ok(None) => return,
                Err(Error::Protocol(_)) => {
                    assert!(!self.ended, "an error after the end");
                    assert!(
                        self.close_sent || !session.output().is_empty(),
                        "no close frame for a protocol error"
                    );
                    self.ended = true;
                    return;
                }
                Err(Error::Closed) => {
                    self.ended = true;
                    return;
                }
                Err(e) => panic!("poll_message: {e}"),
            }
        }
    }

    fn message(&mut self, message: &Message) {
        assert!(!self.ended, "a message after an error");
        assert!(!self.close_seen, "a message after the server's close frame");
        match message {
            Message::Text(text) => assert!(text.len() <= MAX),
            Message::Binary(bytes) => assert!(bytes.len() <= MAX),
            Message::Ping(bytes) | Message::Pong(bytes) => assert!(bytes.len() <= 125),
            Message::Close(frame) => {
                if let Some(frame) = frame {
                    assert!(frame.reason.len() <= 123);
                }
                self.close_seen = true;
            }
        }
    }
}

/// Moves the session's output to `wire`.
fn take_output(session: &mut Session, wire: &mut Vec<u8>) {
    wire.extend_from_slice(session.output());
    let n = session.output().len();
    session.wrote(n);
}

/// Every frame the client wrote is masked, well formed, and nothing follows its close frame.
fn check_client_frames(wire: &[u8]) {
    let mut rest = wire;
    let mut closed = false;
    while !rest.is_empty() {
        assert!(!closed, "bytes after the client's close frame");
        let Ok(Status::Complete((header, len))) =
            FrameHeader::decode(rest, Role::Server, Rsv::RSV1)
        else {
            panic!("the client wrote a malformed frame");
        };
        assert!(header.mask.is_some(), "an unmasked client frame");
        let total = len + header.payload_len as usize;
        assert!(total <= rest.len(), "a frame cut short");
        if header.opcode == OpCode::Close {
            closed = true;
        }
        rest = &rest[total..];
    }
}
