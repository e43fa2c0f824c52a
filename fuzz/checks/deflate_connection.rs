//! permessage-deflate through a pair of `Connection`s that negotiated it.
//!
//! `data[0]`: bit 0 the receiving role of the arbitrary mode (server or client), bit 1 the mode,
//! bits 2 and 3 `client_no_context_takeover` and `server_no_context_takeover`, bit 4 a
//! compression threshold of 0 instead of 64, bits 5–7 the arbitrary mode's message size limit
//! (64 << n bytes). `data[1]` the window bits of each direction (9 + n % 7, 9 + n / 7 % 7),
//! `data[2]` the size of the pieces bytes arrive in (1 to 256); the rest is a script of
//! messages, three or more bytes each (see `Op`).
//!
//! Round trip (bit 1 clear): each message is sent by the client's or the server's connection,
//! compressed when at least the threshold long, and read by the other's in pieces: what
//! arrives equals what was sent, in order, also when the sender drops its compressor
//! (`release_idle_state`) or forgets its history (`reset_send_context`) between messages, and
//! when the server compresses with a shared compressor (bit 5), then with context takeover
//! through a send history of `[4096, 0, 1, 300, 32 KiB, 1 MiB][data[1] / 49]` bytes.
//!
//! Arbitrary (bit 1 set): each message is a compressed data message (RSV1, in up to four
//! fragments, a ping possibly between them) with an arbitrary payload, or the peer's real
//! compression of a payload with one byte flipped. Every message ends in its event or in a
//! protocol error, and nothing comes after the error. The frames are well formed, so the
//! error is 1007 (invalid data or UTF-8) or 1009 (over the limit), never 1002. The reassembly
//! buffer never holds more than the limit, and the events do not depend on how the bytes are
//! cut.
//!
//! Shared by `fuzz/fuzz_targets/deflate_connection.rs` and the seed replay in
//! `tests/fuzz_seeds.rs`.
use std::time::Instant;

use sockeye_deflate::{DeflateConfig, PerMessageDeflate, SharedCompressor};
use sockeye_proto::connection::write_frame;
use sockeye_proto::extension::{ParamWriter, parse_offers};
use sockeye_proto::{Config, Connection, Event, Extension, Message, OpCode, Role, Rsv};

type Conn = Connection<PerMessageDeflate>;

/// Negotiates permessage-deflate as a client and a server with the same configuration would.
fn negotiate(config: DeflateConfig) -> (PerMessageDeflate, PerMessageDeflate) {
    let mut client = PerMessageDeflate::client(config);
    let mut offer = [0u8; 128];
    let mut writer = ParamWriter::new(&mut offer);
    client.write_offer(&mut writer).unwrap();
    let offer = format!(
        "permessage-deflate{}",
        std::str::from_utf8(writer.as_bytes()).unwrap()
    );
    let mut server = PerMessageDeflate::server(config);
    let mut answer = [0u8; 128];
    let mut writer = ParamWriter::new(&mut answer);
    let offer = parse_offers(&offer).next().unwrap().unwrap();
    assert_eq!(server.accept_offer(&offer, &mut writer), Ok(true));
    let answer = format!(
        "permessage-deflate{}",
        std::str::from_utf8(writer.as_bytes()).unwrap()
    );
    client
        .accept_response(&parse_offers(&answer).next().unwrap().unwrap())
        .unwrap();
    let (c, s) = (client.negotiated().unwrap(), server.negotiated().unwrap());
    assert_eq!((c.send, c.recv), (s.recv, s.send), "{answer}");
    assert_eq!(c.send.max_window_bits, config.client_max_window_bits);
    assert_eq!(s.send.max_window_bits, config.server_max_window_bits);
    assert_eq!(
        c.send.no_context_takeover,
        config.client_no_context_takeover
    );
    assert_eq!(
        s.send.no_context_takeover,
        config.server_no_context_takeover
    );
    (client, server)
}

/// One message of the script: `flags`, a length byte, that many payload bytes (fewer at the
/// end), then, for repeats and flips, one more byte.
struct Op<'a> {
    flags: u8,
    payload: &'a [u8],
    extra: u8,
}

fn ops(mut script: &[u8]) -> impl Iterator<Item = Op<'_>> {
    std::iter::from_fn(move || {
        let [flags, len, rest @ ..] = script else {
            return None;
        };
        let (payload, rest) = rest.split_at(usize::from(*len).min(rest.len()));
        let (extra, rest) = rest.split_first().map_or((0, rest), |(e, r)| (*e, r));
        script = rest;
        Some(Op {
            flags: *flags,
            payload,
            extra,
        })
    })
}

/// An event as an owned (kind, payload): the kinds are `Event`'s first letters.
type Got = (char, Vec<u8>);

fn owned(event: &Event<'_>) -> Got {
    match event {
        Event::Text(text) => ('T', text.as_bytes().to_vec()),
        Event::Binary(bytes) => ('B', bytes.to_vec()),
        Event::Ping(bytes) => ('P', bytes.to_vec()),
        Event::Pong(bytes) => ('O', bytes.to_vec()),
        Event::Close(frame) => ('C', format!("{frame:?}").into_bytes()),
    }
}

/// Reads `wire` in pieces of `piece` bytes: the events, and the error's close code.
fn receive(conn: &mut Conn, wire: &[u8], piece: usize, limit: usize) -> (Vec<Got>, Option<u16>) {
    let (mut pending, mut buf, mut events) = (Vec::new(), Vec::new(), Vec::new());
    let mut error = None;
    for bytes in wire.chunks(piece) {
        pending.extend_from_slice(bytes);
        loop {
            let consumed = match conn.handle_read(&mut pending, &mut buf, Instant::now()) {
                Ok(read) if read.is_blocked() => None,
                Ok(read) => {
                    assert!(
                        error.is_none() || read.event.is_none(),
                        "after the error: {read:?}"
                    );
                    events.extend(read.event.as_ref().map(owned));
                    Some(read.consumed)
                }
                Err(err) => {
                    error = Some(err.close_code().0);
                    Some(pending.len())
                }
            };
            assert!(buf.capacity() <= limit, "{} > {limit}", buf.capacity());
            let Some(consumed) = consumed else { break };
            pending.drain(..consumed);
        }
    }
    assert!(pending.is_empty(), "every message is whole");
    (events, error)
}

fn round_trip(client: &mut Conn, server: &mut Conn, script: &[u8], piece: usize, threshold: usize) {
    let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
    let (mut for_server, mut for_client) = (Vec::new(), Vec::new());
    for op in ops(script) {
        let (from, wire, expected) = if op.flags & 0x80 == 0 {
            (&mut *client, &mut to_server, &mut for_server)
        } else {
            (&mut *server, &mut to_client, &mut for_client)
        };
        // Up to a little over the largest window (32 KiB), so that every window is crossed.
        let times = (usize::from(op.extra) + 1).min((36 << 10) / op.payload.len().max(1));
        let repeated = op.payload.repeat(times);
        let text = String::from_utf8_lossy(&repeated);
        let (msg, len) = match op.flags & 3 {
            0 => (Message::Text(&text), text.len()),
            1 => (Message::Binary(&repeated), repeated.len()),
            2 => (Message::Ping(&op.payload[..op.payload.len().min(125)]), 0),
            _ => (Message::Binary(op.payload), op.payload.len()),
        };
        let start = wire.len();
        from.send(msg, wire).unwrap();
        if !matches!(msg, Message::Ping(_)) {
            let rsv1 = wire[start] & 0x40 != 0;
            assert_eq!(
                rsv1,
                len >= threshold,
                "compressed exactly from the threshold"
            );
        }
        expected.push(owned(&message_event(msg)));
        let ext = from.extension_mut();
        if op.flags & 0x20 != 0 {
            ext.release_idle_state();
            assert!(!ext.has_state().1, "the compressor is freed");
        }
        if op.flags & 0x40 != 0 {
            ext.reset_send_context();
        }
    }
    let limit = Config::default().max_message_size;
    let (events, error) = receive(server, &to_server, piece, limit);
    assert_eq!((events, error), (for_server, None));
    let (events, error) = receive(client, &to_client, piece, limit);
    assert_eq!((events, error), (for_client, None));
}

fn message_event(msg: Message<'_>) -> Event<'_> {
    match msg {
        Message::Text(text) => Event::Text(text),
        Message::Binary(bytes) => Event::Binary(bytes),
        Message::Ping(bytes) => Event::Ping(bytes),
        Message::Pong(bytes) => Event::Pong(bytes),
    }
}

/// The wire of the arbitrary mode's script, as the peer of a `receiver` would send it.
fn arbitrary_wire(peer: &mut PerMessageDeflate, script: &[u8], to_server: bool) -> Vec<u8> {
    let mask = to_server.then_some([0x6d, 0x61, 0x73, 0x6b]);
    let mut wire = Vec::new();
    for op in ops(script) {
        let mut payload = op.payload.to_vec();
        if op.flags & 0x40 != 0 {
            // The peer's real compression, with one byte flipped (or none for a zero flip).
            payload.clear();
            peer.encode(op.payload, &mut payload).unwrap();
            if let Some(byte) = payload.get_mut(usize::from(op.extra)) {
                *byte ^= op.flags & 0x3c;
            }
        }
        let fragments = usize::from((op.flags >> 2) & 3) + 1;
        let size = payload.len().div_ceil(fragments).max(1);
        let pieces: Vec<&[u8]> = if payload.is_empty() {
            vec![&[]]
        } else {
            payload.chunks(size).collect()
        };
        for (i, piece) in pieces.iter().enumerate() {
            let (opcode, rsv) = match (i, op.flags & 1) {
                (0, 0) => (OpCode::Text, Rsv::RSV1),
                (0, _) => (OpCode::Binary, Rsv::RSV1),
                _ => (OpCode::Continuation, Rsv::NONE),
            };
            let start = wire.len();
            write_frame(&mut wire, opcode, rsv, piece, mask);
            if i + 1 < pieces.len() {
                wire[start] &= 0x7f; // FIN clear
            }
            if i == 0 && op.flags & 2 != 0 {
                write_frame(&mut wire, OpCode::Ping, Rsv::NONE, b"mid", mask);
            }
        }
    }
    wire
}

/// The invariants, for one input.
pub(crate) fn check(data: &[u8]) {
    let [select, bits, piece, script @ ..] = data else {
        return;
    };
    let mut deflate = DeflateConfig::default();
    deflate.client_no_context_takeover = select & 4 != 0;
    deflate.server_no_context_takeover = select & 8 != 0;
    deflate.client_max_window_bits = 9 + bits % 7;
    deflate.server_max_window_bits = 9 + bits / 7 % 7;
    deflate.threshold = if select & 16 != 0 { 0 } else { 64 };
    deflate.send_history = [4096, 0, 1, 300, 32 << 10, 1 << 20][usize::from(*bits / 49)];
    let (client_ext, server_ext) = negotiate(deflate);
    let piece = usize::from(*piece) + 1;
    if select & 2 == 0 {
        let warm = usize::from(select >> 6);
        let shared = SharedCompressor::with_warm_streams(warm);
        let server_ext = if select & 0x20 != 0 {
            server_ext.with_shared_compressor(shared.clone())
        } else {
            server_ext
        };
        for (ext, role) in [(&client_ext, Role::Client), (&server_ext, Role::Server)] {
            assert_eq!(ext.role(), role);
            assert!(ext.is_negotiated() && ext.config().threshold == deflate.threshold);
            assert!(format!("{ext:?}").starts_with("PerMessageDeflate"));
            let settings = ext.send_settings().expect("windows of 9 bits and more");
            assert_eq!(settings.threshold, deflate.threshold);
        }
        let mut client = Connection::client(Config::default(), client_ext, 0x5eed);
        let mut server = Connection::server(Config::default(), server_ext);
        round_trip(&mut client, &mut server, script, piece, deflate.threshold);
        assert!(
            shared.len() <= 1 + warm.min(1),
            "one compressor for the one setting, one warm stream for the one connection: \
             {shared:?}"
        );
        return;
    }
    let mut config = Config::default();
    config.max_message_size = 64 << (select >> 5);
    let limit = config.max_message_size;
    let to_server = select & 1 == 0;
    let run = |piece: usize| {
        let (client_ext, server_ext) = negotiate(deflate);
        let (mut peer, mut receiver) = if to_server {
            (client_ext, Connection::server(config, server_ext))
        } else {
            (server_ext, Connection::client(config, client_ext, 0x5eed))
        };
        let wire = arbitrary_wire(&mut peer, script, to_server);
        let (events, error) = receive(&mut receiver, &wire, piece, limit);
        if let Some(code) = error {
            assert!(code == 1007 || code == 1009, "close code {code}");
        } else {
            let data = events.iter().filter(|(kind, _)| *kind != 'P').count();
            assert_eq!(
                data,
                ops(script).count(),
                "one event per message: {events:?}"
            );
        }
        (events, error)
    };
    // Which error ends a message that is both too large and not UTF-8 depends on where its
    // pieces end (the text check runs on each piece's output): whether one does, does not.
    let (cut, whole) = (run(piece), run(usize::MAX));
    assert_eq!((cut.0, cut.1.is_some()), (whole.0, whole.1.is_some()));
}
