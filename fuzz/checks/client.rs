//! The client role: the server's answer to an upgrade request, then the server's frames.
//!
//! `data[0]`: bit 0 set builds a valid `101` from the bits of `data[2]` (header case, order,
//! list forms, whitespace, a subprotocol and an extension the request offered), which must be
//! accepted, with every strict prefix `Incomplete`; clear, the input itself is the answer.
//! Bit 6 swaps the default limits for tiny ones. `data[1]` is the size of the pieces the
//! frames arrive in (1 to 64 bytes) and the mask seed.
//!
//! An arbitrary answer is judged against an oracle written from RFC 6455 §4.1 over `httparse`:
//! sockeye accepts it exactly when the oracle does, with the same head length, subprotocol and
//! extensions, except where sockeye is stricter on purpose (bare LF line endings, empty lines
//! before the status line, heads over the limits: refused). sockeye takes `HTTP/1.x` for any
//! minor digit `x` (RFC 9112 §2.3): the oracle reads such a head as 1.1.
//!
//! The bytes after the head are the server's frames, fed to a client `Connection` in pieces.
//! Events are the same as when fed whole; text is UTF-8, control payloads at most 125 bytes,
//! messages within the limit, a close frame's code valid on the wire; after a close or an
//! error nothing more comes. Everything the client sends back is a valid masked frame stream:
//! a pong for each ping, then one close frame with the echoed code or the error's.
//!
//! `ClientHandshake`, fed the same bytes in pieces, agrees with `parse_response` on the whole:
//! the same head, subprotocol and leftover bytes, refusing only the extensions a connection
//! without one cannot take, or a head over the limit. It decides on the same piece as
//! `parse_response` over the bytes received so far, with the same error.
//!
//! Shared by `fuzz/fuzz_targets/client.rs` and the seed replay in `tests/fuzz_seeds.rs`.
use std::time::{Duration, Instant};

use sockeye_deflate::{DeflateConfig, PerMessageDeflate};
use sockeye_proto::extension::parse_offers;
use sockeye_proto::handshake::{
    AcceptKey, ClientHandshake, ClientRequest, Limits, OpenError, ResponseError, ServerResponse,
    parse_response,
};
use sockeye_proto::mask::{MaskSource, SeededMasks};
use sockeye_proto::{Config, Connection, Event, HandshakeError, NoExtension, State, Status};

const KEY: &[u8; 24] = b"dGhlIHNhbXBsZSBub25jZQ==";
const PROTOCOLS: &[&str] = &["chat", "v2.sockeye"];
const EXTENSIONS: &[u8] = b"permessage-deflate; client_max_window_bits, x-test";

fn request() -> ClientRequest<'static> {
    ClientRequest {
        protocols: PROTOCOLS,
        extensions: EXTENSIONS,
        ..ClientRequest::new("server.example.com", "/chat", KEY)
    }
}

/// A valid `101` answer to [`request`], varied by the bits of `v`.
fn valid_response(v: u8) -> (Vec<u8>, Option<&'static str>, &'static str) {
    let name = |canonical: &str| match v & 3 {
        0 => canonical.to_owned(),
        1 => canonical.to_ascii_lowercase(),
        _ => canonical.to_ascii_uppercase(),
    };
    let ows = if v & 4 != 0 { " \t" } else { "" };
    let accept = AcceptKey::from_key(KEY);
    let protocol = (v & 8 != 0).then_some(PROTOCOLS[1]);
    let extensions = if v & 16 != 0 { "x-test" } else { "" };
    let mut headers = vec![
        (
            name("Upgrade"),
            ["websocket", "WebSocket"][usize::from((v >> 5) & 1)],
        ),
        (
            name("Connection"),
            ["Upgrade", "keep-alive, upgrade"][usize::from((v >> 6) & 1)],
        ),
        (name("Sec-WebSocket-Accept"), accept.as_str()),
        (name("Server"), "sockeye-fuzz/1"),
    ];
    headers.extend(protocol.map(|p| (name("Sec-WebSocket-Protocol"), p)));
    if !extensions.is_empty() {
        headers.push((name("Sec-WebSocket-Extensions"), extensions));
    }
    if v & 128 != 0 {
        headers.reverse();
    }
    let mut out = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
    for (n, value) in headers {
        out.extend_from_slice(format!("{n}:{ows}{value}{ows}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    (out, protocol, extensions)
}

/// RFC 6455 §4.1 on httparse's reading of the head: `Some` (head length, subprotocol,
/// extensions) when a client must accept it.
fn oracle(data: &[u8]) -> Option<(usize, Option<String>, String)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut res = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = res.parse(data) else {
        return None;
    };
    if res.code != Some(101) || res.version != Some(1) {
        return None;
    }
    let values = |name: &'static str| {
        res.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let list_has = |value: &[u8], token: &str| {
        value
            .split(|&b| b == b',')
            .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    };
    let upgrade = values("upgrade").any(|v| v.eq_ignore_ascii_case(b"websocket"));
    let connection = values("connection").any(|v| list_has(v, "upgrade"));
    let accept: Vec<_> = values("sec-websocket-accept").collect();
    let expected = AcceptKey::from_key(KEY);
    if !upgrade || !connection || accept != [expected.as_bytes().as_slice()] {
        return None;
    }
    let protocol = match values("sec-websocket-protocol").collect::<Vec<_>>()[..] {
        [] => None,
        [p] => Some(PROTOCOLS.iter().find(|o| o.as_bytes() == p)?.to_string()),
        _ => return None,
    };
    let extensions = match values("sec-websocket-extensions").collect::<Vec<_>>()[..] {
        [] => "",
        [e] => std::str::from_utf8(e).ok()?,
        _ => return None,
    };
    let offered: Vec<String> = parse_offers(std::str::from_utf8(EXTENSIONS).unwrap())
        .map(|o| o.unwrap().name().to_owned())
        .collect();
    for ext in parse_offers(extensions) {
        if !offered
            .iter()
            .any(|o| ext.as_ref().is_ok_and(|e| e.name() == o))
        {
            return None;
        }
    }
    Some((len, protocol, extensions.to_owned()))
}

/// Whether sockeye may refuse what the oracle accepts: the stricter grammar it keeps on
/// purpose.
fn stricter_on_purpose(data: &[u8], len: usize, limits: &Limits) -> bool {
    let head = &data[..len];
    let bare_lf = head
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'));
    bare_lf || head.starts_with(b"\r\n") || len > limits.max_head_len
}

/// `ClientHandshake` fed `data` in pieces of `piece` bytes agrees with `whole`, the
/// `parse_response` of all of it.
fn opening(
    data: &[u8],
    limits: &Limits,
    whole: &Result<Status<ServerResponse<'_>>, ResponseError>,
    piece: usize,
) {
    let mut hs = ClientHandshake::new(&request(), NoExtension, Config::default(), seeded())
        .expect("a valid request")
        .with_limits(*limits);
    let mut outcome = Ok(false);
    // The bytes fed before and after the piece that decided (all of them if none did).
    let (mut before, mut fed) = (0, 0);
    let mut decided = false;
    for bytes in data.chunks(piece.max(1)) {
        outcome = hs.receive(bytes);
        if !decided {
            before = fed;
            fed += bytes.len();
            decided = outcome != Ok(false);
        }
        if outcome.is_err() {
            break;
        }
    }
    // It decides on the piece where the whole-head rules first decide, and as they do: the
    // same error, not merely an error.
    if decided {
        assert_eq!(verdict(&data[..before], limits), Ok(false), "decided late");
        let expected = match &outcome {
            Ok(_) | Err(OpenError::Extension(_)) => Ok(true),
            Err(OpenError::Response(e)) => Err(*e),
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(verdict(&data[..fed], limits), expected);
    }
    if let Err(e) = &outcome {
        assert!(!e.to_string().is_empty());
    }
    // A header of empty list elements only (`,`) names no extension: recipients ignore empty
    // elements (RFC 9110 §5.6.1).
    let none = |res: &ServerResponse<'_>| parse_offers(res.extensions).next().is_none();
    match (whole, outcome) {
        (Ok(Status::Complete(res)), Ok(true)) if none(res) => {
            let opened = hs.finish().expect("open");
            assert_eq!(opened.protocol.as_deref(), res.protocol);
            assert_eq!(opened.extensions, res.extensions);
            assert_eq!(opened.leftover, &data[res.head_len..]);
        }
        // A connection without an extension refuses any the server accepted.
        (Ok(Status::Complete(res)), Err(OpenError::Extension(_))) if !none(res) => {}
        (Ok(Status::Incomplete { .. }), Ok(false)) => {
            assert_eq!(hs.finish().err(), Some(OpenError::Incomplete));
        }
        (
            Ok(Status::Incomplete { .. }),
            Err(OpenError::Response(ResponseError::Http(HandshakeError::HeadTooLarge))),
        ) if data.len() > limits.max_head_len => {}
        (Err(_), Err(OpenError::Response(_))) => {}
        (whole, outcome) => panic!("parse_response: {whole:?}; ClientHandshake: {outcome:?}"),
    }
}

/// What a `ClientHandshake` must say once `prefix` has arrived, by the rules for a whole
/// head: `parse_response` of all of it, and a head over the limit while it is incomplete.
fn verdict(prefix: &[u8], limits: &Limits) -> Result<bool, ResponseError> {
    match parse_response(prefix, limits, &request())? {
        Status::Complete(_) => Ok(true),
        Status::Incomplete { .. } if prefix.len() > limits.max_head_len => {
            Err(ResponseError::Http(HandshakeError::HeadTooLarge))
        }
        Status::Incomplete { .. } => Ok(false),
    }
}

/// A connection with permessage-deflate writes its own offer, and takes an answer that
/// accepts it (with the server's choice of parameters from the bits of `v`) in pieces of
/// `piece` bytes.
fn deflate_opening(v: u8, piece: usize) {
    let mut hs = ClientHandshake::new(
        &ClientRequest::new("server.example.com", "/chat", KEY),
        PerMessageDeflate::client(DeflateConfig::default()),
        Config::default(),
        seeded(),
    )
    .expect("a valid request");
    assert_eq!(hs.offer(), "permessage-deflate; client_max_window_bits");
    let params = [
        "",
        "; server_no_context_takeover",
        "; client_max_window_bits=10",
        "; server_max_window_bits=12; client_no_context_takeover",
    ][usize::from(v % 4)];
    let accept = AcceptKey::from_key(KEY);
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Extensions: permessage-deflate{params}\r\n\r\n",
        accept.as_str()
    );
    for bytes in answer.as_bytes().chunks(piece.max(1)) {
        hs.receive(bytes).expect("a valid answer");
    }
    let opened = hs.finish().expect("open");
    assert!(opened.connection.extension().is_negotiated());
    assert_eq!(opened.extensions, format!("permessage-deflate{params}"));
    assert!(opened.leftover.is_empty());
    assert!(format!("{opened:?}").starts_with("Opened"));
}

/// Checks the answer; returns where the frames start when it was accepted.
fn handshake(data: &[u8], limits: &Limits, piece: usize) -> Option<usize> {
    let req = request();
    let ours = parse_response(data, limits, &req);
    opening(data, limits, &ours, piece);
    if let Err(e) = &ours {
        assert!(!e.to_string().is_empty());
    }
    // sockeye's leniency: HTTP/1.x for any minor digit reads as HTTP/1.1.
    let mut as_11 = data.to_vec();
    if let Some(minor @ b'2'..=b'9') = as_11.get_mut(7).filter(|_| data.starts_with(b"HTTP/1.")) {
        *minor = b'1';
    }
    let theirs = oracle(&as_11);
    match (&ours, &theirs) {
        (Ok(Status::Complete(res)), Some((len, protocol, extensions))) => {
            let ServerResponse { head_len, .. } = *res;
            assert_eq!(head_len, *len);
            assert_eq!(res.protocol, protocol.as_deref());
            assert_eq!(res.extensions, extensions);
            Some(head_len)
        }
        (Ok(Status::Complete(res)), None) => panic!("accepted what a client must refuse: {res:?}"),
        (Ok(Status::Incomplete { .. }) | Err(_), Some((len, ..))) => {
            assert!(stricter_on_purpose(data, *len, limits), "refused: {ours:?}");
            None
        }
        (Ok(Status::Incomplete { .. }), None) => {
            assert!(data.len() < limits.max_head_len);
            None
        }
        (Err(err), None) => {
            assert!(!matches!(err, ResponseError::Status(101)));
            None
        }
    }
}

type Outcome = (Vec<String>, Vec<u8>, Option<u16>);

/// Feeds `frames` in pieces of `chunk` bytes to a client connection.
fn drive(frames: &[u8], chunk: usize, config: Config, seed: u64) -> Outcome {
    let now = Instant::now();
    let mut conn = Connection::client(config, NoExtension, seed);
    let (mut pending, mut buf, mut events, mut tx) = (vec![], vec![], vec![], vec![]);
    let mut ended = None;
    for bytes in frames.chunks(chunk) {
        pending.extend_from_slice(bytes);
        loop {
            let read = match conn.handle_read(&mut pending, &mut buf, now) {
                Ok(read) if read.is_blocked() => break,
                Ok(read) => read,
                Err(err) => {
                    assert_eq!(conn.state(), State::Closed);
                    assert!(!err.to_string().is_empty());
                    ended = Some(err.close_code().0);
                    pending.clear();
                    break;
                }
            };
            let consumed = read.consumed;
            if let Some(event) = read.event {
                assert!(ended.is_none(), "an event after the close: {event:?}");
                events.push(judge(event, &config, &mut ended));
            }
            pending.drain(..consumed);
        }
        conn.poll_transmit(&mut tx);
    }
    assert!(!conn.poll_transmit(&mut tx), "all owed frames were taken");
    if ended.is_some() {
        // The client waits a bounded time for the server's FIN.
        let deadline = conn.poll_timeout().expect("a deadline after the close");
        conn.handle_timeout(deadline);
        assert!(conn.state() == State::Closed && conn.is_timed_out());
    }
    (events, tx, ended)
}

/// Checks one event; a close frame ends the stream (with its code, 1005 for none).
fn judge(event: Event<'_>, config: &Config, ended: &mut Option<u16>) -> String {
    match &event {
        Event::Text(text) => {
            assert!(std::str::from_utf8(text.as_bytes()).is_ok());
            assert!(text.len() <= config.max_message_size);
        }
        Event::Binary(bytes) => assert!(bytes.len() <= config.max_message_size),
        Event::Ping(payload) | Event::Pong(payload) => assert!(payload.len() <= 125),
        Event::Close(frame) => {
            assert!(frame.code.is_none_or(|c| c.is_valid_on_wire()), "{frame:?}");
            assert!(frame.reason.len() <= 123);
            *ended = Some(frame.code.map_or(1005, |c| c.0));
        }
    }
    format!("{event:?}")
}

/// Reads what the client sent as the server would: masked frames, pongs echoing the pings
/// received, and a single close frame last.
fn check_sent(outcome: &Outcome) {
    let (events, tx, ended) = outcome;
    let mut server = Connection::server(Config::default(), NoExtension);
    let (mut wire, mut buf, mut got) = (tx.clone(), Vec::new(), Vec::new());
    let mut off = 0;
    while off < wire.len() {
        let read = server
            .handle_read(&mut wire[off..], &mut buf, Instant::now())
            .expect("the client's frames are valid");
        assert!(read.consumed > 0, "a cut frame");
        off += read.consumed;
        got.extend(read.event.map(|e| format!("{e:?}")));
    }
    let pings: Vec<String> = events
        .iter()
        .filter_map(|e| e.strip_prefix("Ping("))
        .map(|p| format!("Pong({p}"))
        .collect();
    let close = got.iter().filter(|e| e.starts_with("Close(")).count();
    assert_eq!(close, usize::from(ended.is_some()), "{got:?}");
    // A client sends no close before the server's or an error, so every ping is answered.
    assert_eq!(
        got[..got.len() - close],
        pings,
        "pongs answer the pings in order"
    );
    if let Some(code) = ended {
        let expected = if *code == 1005 {
            "Close(CloseFrame { code: None".to_owned()
        } else {
            format!("Close(CloseFrame {{ code: Some(CloseCode({code}))")
        };
        assert!(got.last().unwrap().starts_with(&expected), "{got:?}");
    }
}

/// The invariants, for one input.
pub(crate) fn check(data: &[u8]) {
    let [select, piece, rest @ ..] = data else {
        return;
    };
    let limits = Limits::default();
    let start;
    let input;
    if select & 1 != 0 {
        let Some((&variant, frames)) = rest.split_first() else {
            return;
        };
        let (response, protocol, extensions) = valid_response(variant);
        let req = request();
        let res = parse_response(&response, &limits, &req);
        let res = res.unwrap().complete().expect("a valid 101 is accepted");
        assert_eq!((res.head_len, res.protocol), (response.len(), protocol));
        assert_eq!(res.extensions, extensions);
        for cut in 0..response.len() {
            let prefix = parse_response(&response[..cut], &limits, &req);
            assert!(matches!(prefix, Ok(Status::Incomplete { .. })), "{cut}");
        }
        input = [response.as_slice(), frames].concat();
        start = response.len();
        let whole = parse_response(&input, &limits, &req);
        assert!(whole.as_ref().is_ok_and(Status::is_complete));
        opening(&input, &limits, &whole, usize::from(*piece));
        deflate_opening(variant, usize::from(*piece));
    } else {
        input = rest.to_vec();
        let Some(head_len) = handshake(&input, &limits, usize::from(*piece)) else {
            return;
        };
        start = head_len;
    }
    let frames = &input[start..];
    let mut config = Config::default();
    if select & 0x40 != 0 {
        (
            config.max_frame_size,
            config.max_message_size,
            config.max_fragments,
        ) = (64, 100, 3);
    }
    config.close_timeout = Duration::from_millis(250);
    let seed = (u64::from(*piece) << 32) | 0x5eed;
    let chunked = drive(frames, usize::from(piece % 64) + 1, config, seed);
    check_sent(&chunked);
    assert_eq!(chunked, drive(frames, frames.len().max(1), config, seed));
}

/// Masks for the handshakes checked here (any seed: the checks do not depend on the keys).
fn seeded() -> Box<dyn MaskSource> {
    Box::new(SeededMasks::new(1))
}
