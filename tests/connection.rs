//! The connection state machine end to end: a client and a server `Pair` on a virtual clock
//! (echo, the closing handshake, the close timeout), the table of protocol errors, fail-fast
//! UTF-8, and where events borrow their bytes from.

use std::time::{Duration, Instant};

use sockeye_proto::frame::OpCode;
use sockeye_proto::{
    CloseCode, Config, Connection, Event, Message, NoExtension, ProtocolError, SendError, State,
};
use sockeye_tests::engine::{OwnedEvent, Peer, split_at};
use sockeye_tests::pair::Pair;
use sockeye_tests::wire::{client_frame, close_payload, concat, frame, raw_client_frame};

fn server() -> Connection {
    Connection::server(Config::default(), NoExtension)
}

fn text(t: &str) -> OwnedEvent {
    OwnedEvent::text(t)
}

// ---------------------------------------------------------------------------------------------
// Messages through the pair

#[test]
fn echo_text_and_binary_both_ways() {
    let big_text = "0123456789abcdé€😀".repeat(3000); // > 65535 bytes: a 64-bit length
    let big_binary: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
    let texts = ["", "Hello", "héllo wörld €😀", big_text.as_str()];
    let binaries: [&[u8]; 3] = [&[], &[0, 1, 2, 255], &big_binary];
    for chunk in [usize::MAX, 1, 2, 3, 7, 139, 4096] {
        let mut pair = Pair::new(Config::default()).with_chunk(chunk);
        for t in texts {
            pair.client.send(Message::Text(t)).unwrap();
        }
        for b in binaries {
            pair.client.send(Message::Binary(b)).unwrap();
        }
        assert_eq!(pair.client.wire[1] & 0x80, 0x80, "client frames are masked");
        pair.pump();
        let expected: Vec<OwnedEvent> = texts
            .iter()
            .map(|t| text(t))
            .chain(binaries.iter().map(|b| OwnedEvent::Binary(b.to_vec())))
            .collect();
        let got = pair.server.take_events();
        assert_eq!(got, expected, "client -> server, chunk {chunk}");

        // The server echoes every message back.
        for event in &got {
            let msg = match event {
                OwnedEvent::Text(t) => Message::Text(t),
                OwnedEvent::Binary(b) => Message::Binary(b),
                other => panic!("unexpected {other:?}"),
            };
            pair.server.send(msg).unwrap();
        }
        assert_eq!(
            pair.server.wire[1] & 0x80,
            0,
            "server frames are not masked"
        );
        pair.pump();
        assert_eq!(
            pair.client.take_events(),
            expected,
            "server -> client, chunk {chunk}"
        );
        assert_eq!((pair.client.error, pair.server.error), (None, None));
        assert_eq!(pair.client.conn.state(), State::Open);
        assert_eq!(pair.server.conn.state(), State::Open);
    }
}

#[test]
fn pings_are_answered_by_pongs_both_ways() {
    let mut pair = Pair::new(Config::default()).with_chunk(3);
    pair.client.send(Message::Ping(b"from client")).unwrap();
    pair.server.send(Message::Ping(b"from server")).unwrap();
    pair.pump();
    assert_eq!(
        pair.server.take_events(),
        [
            OwnedEvent::Ping(b"from client".to_vec()),
            OwnedEvent::Pong(b"from server".to_vec())
        ]
    );
    assert_eq!(
        pair.client.take_events(),
        [
            OwnedEvent::Ping(b"from server".to_vec()),
            OwnedEvent::Pong(b"from client".to_vec())
        ]
    );
    assert_eq!(
        pair.client.send(Message::Ping(&[0; 126])),
        Err(SendError::ControlTooLong(126))
    );
    assert_eq!(
        pair.server.send(Message::Pong(&[0; 200])),
        Err(SendError::ControlTooLong(200))
    );
}

// ---------------------------------------------------------------------------------------------
// The closing handshake

#[test]
fn close_initiated_by_the_client() {
    let mut pair = Pair::new(Config::default()).with_chunk(1);
    let now = pair.now();
    pair.client.close(1000, "bye", now).unwrap();
    assert_eq!(pair.client.conn.state(), State::Closing);
    assert_eq!(
        pair.client.conn.poll_timeout(),
        Some(now + Config::default().close_timeout)
    );
    assert!(pair.client.transmit());
    pair.deliver_to_server();
    assert_eq!(
        pair.server.take_events(),
        [OwnedEvent::Close(Some(1000), "bye".into())]
    );
    assert_eq!(
        pair.server.conn.state(),
        State::Closing,
        "echo not yet sent"
    );

    // The server echoes the code (§5.5.1) and is then done.
    assert!(pair.server.transmit());
    assert_eq!(pair.server.wire, [0x88, 0x02, 0x03, 0xe8]);
    assert_eq!(pair.server.conn.state(), State::Closed);
    assert_eq!(pair.server.conn.poll_timeout(), None);

    pair.deliver_to_client();
    assert_eq!(
        pair.client.take_events(),
        [OwnedEvent::Close(Some(1000), String::new())]
    );
    assert_eq!(pair.client.conn.state(), State::Closed);
    assert!(!pair.client.conn.is_timed_out());
    assert!(!pair.client.transmit(), "no second close");
    assert_eq!((pair.client.error, pair.server.error), (None, None));
}

#[test]
fn close_initiated_by_the_server() {
    let mut pair = Pair::new(Config::default());
    let now = pair.now();
    pair.server.close(1001, "going", now).unwrap();
    assert!(pair.server.transmit());
    assert_eq!(
        pair.server.wire,
        [0x88, 0x07, 0x03, 0xe9, b'g', b'o', b'i', b'n', b'g']
    );
    assert_eq!(pair.server.conn.state(), State::Closing);
    pair.deliver_to_client();
    assert_eq!(
        pair.client.take_events(),
        [OwnedEvent::Close(Some(1001), "going".into())]
    );
    assert_eq!(pair.client.conn.state(), State::Closing);
    assert!(pair.client.transmit());
    assert_eq!(
        pair.client.wire[..2],
        [0x88, 0x82],
        "masked echo of the code"
    );
    assert_eq!(pair.client.conn.state(), State::Closed);

    pair.deliver_to_server();
    assert_eq!(
        pair.server.take_events(),
        [OwnedEvent::Close(Some(1001), String::new())]
    );
    assert_eq!(pair.server.conn.state(), State::Closed);
    assert_eq!(pair.server.conn.poll_timeout(), None);
    assert!(!pair.server.transmit());
}

#[test]
fn an_empty_close_is_echoed_empty() {
    let mut peer = Peer::new(server());
    peer.receive(&client_frame(true, OpCode::Close, &[]), Instant::now())
        .unwrap();
    assert_eq!(peer.events, [OwnedEvent::Close(None, String::new())]);
    assert!(peer.transmit());
    assert_eq!(peer.wire, [0x88, 0x00]);
    assert_eq!(peer.conn.state(), State::Closed);
}

#[test]
fn nothing_can_be_sent_after_a_close() {
    let mut pair = Pair::new(Config::default());
    let now = pair.now();
    pair.client.close(1000, "", now).unwrap();
    for msg in [
        Message::Text("late"),
        Message::Binary(b"late"),
        Message::Ping(b"late"),
        Message::Pong(b"late"),
    ] {
        assert_eq!(pair.client.send(msg), Err(SendError::Closed), "{msg:?}");
    }
    assert_eq!(
        pair.client.close(1000, "again", now),
        Err(SendError::Closed)
    );
    pair.pump();
    // The side that received the close cannot send either, nor close a second time.
    assert_eq!(
        pair.server.send(Message::Text("late")),
        Err(SendError::Closed)
    );
    assert_eq!(pair.server.close(1000, "", now), Err(SendError::Closed));
    assert_eq!(pair.client.conn.state(), State::Closed);
    assert_eq!(pair.server.conn.state(), State::Closed);
}

#[test]
fn send_split_leaves_a_data_payload_to_the_caller() {
    let payload: Vec<u8> = (0..70_000u32).map(|i| (i * 13) as u8).collect();
    let mut server = server();
    // A ping owed to the peer goes first, then the header; the payload is the caller's to
    // write next, and the bytes together are exactly the frames `send` makes.
    let mut input = client_frame(true, OpCode::Ping, b"p");
    let mut msg = Vec::new();
    let now = Instant::now();
    let read = server.handle_read(&mut input, &mut msg, now).unwrap();
    assert!(matches!(read.event, Some(Event::Ping(b"p"))));
    let mut out = Vec::new();
    let rest = server
        .send_split(Message::Binary(&payload), &mut out)
        .unwrap();
    assert_eq!(rest, Some(&payload[..]));
    out.extend_from_slice(&payload);
    assert_eq!(
        out,
        concat(&[
            frame(true, OpCode::Pong, b"p", None),
            frame(true, OpCode::Binary, &payload, None),
        ])
    );
    // Control frames are sent whole.
    let mut out = Vec::new();
    assert_eq!(server.send_split(Message::Ping(b"x"), &mut out), Ok(None));
    assert_eq!(out, frame(true, OpCode::Ping, b"x", None));
    // A client masks its payload, so it cannot leave it to the caller.
    let mut client = Connection::client(Config::default(), NoExtension, 7);
    let mut out = Vec::new();
    assert_eq!(client.send_split(Message::Text("hi"), &mut out), Ok(None));
    assert_eq!(out.len(), 2 + 4 + 2);
    // After a close, nothing.
    server.close(CloseCode(1000), "", now).unwrap();
    assert_eq!(
        server.send_split(Message::Text("late"), &mut Vec::new()),
        Err(SendError::Closed)
    );
}

#[test]
fn no_pong_is_queued_after_our_close() {
    let mut pair = Pair::new(Config::default());
    let now = pair.now();
    pair.server.close(1000, "", now).unwrap();
    pair.client.send(Message::Ping(b"late ping")).unwrap();
    pair.deliver_to_server();
    assert_eq!(
        pair.server.take_events(),
        [OwnedEvent::Ping(b"late ping".to_vec())]
    );
    assert!(pair.server.transmit());
    assert_eq!(
        pair.server.wire,
        [0x88, 0x02, 0x03, 0xe8],
        "the close alone, no pong after it"
    );
    assert!(!pair.server.conn.has_pending_transmit());
}

#[test]
fn close_timeout_when_the_peer_never_answers() {
    for timeout in [Config::default().close_timeout, Duration::from_millis(250)] {
        let mut config = Config::default();
        config.close_timeout = timeout;
        let mut pair = Pair::new(config);
        let start = pair.now();
        assert_eq!(pair.server.conn.poll_timeout(), None, "no timer while open");
        pair.server.close(1000, "", start).unwrap();
        assert!(pair.server.transmit());
        // The client never answers: its bytes are never delivered.
        assert_eq!(pair.server.conn.poll_timeout(), Some(start + timeout));

        pair.advance(timeout - Duration::from_millis(1));
        pair.handle_timeouts();
        assert_eq!(pair.server.conn.state(), State::Closing, "{timeout:?}");
        assert!(!pair.server.conn.is_timed_out());
        assert_eq!(pair.server.conn.poll_timeout(), Some(start + timeout));

        pair.advance(Duration::from_millis(1));
        pair.handle_timeouts();
        assert_eq!(pair.server.conn.state(), State::Closed, "{timeout:?}");
        assert!(pair.server.conn.is_timed_out());
        assert_eq!(pair.server.conn.poll_timeout(), None);
        assert_eq!(
            pair.client.conn.state(),
            State::Open,
            "the client saw nothing"
        );
    }
}

#[test]
fn answered_close_does_not_time_out() {
    let mut pair = Pair::new(Config::default());
    let now = pair.now();
    pair.server.close(1000, "", now).unwrap();
    pair.pump();
    assert_eq!(pair.server.conn.state(), State::Closed);
    pair.advance(Duration::from_secs(60));
    pair.handle_timeouts();
    assert!(!pair.server.conn.is_timed_out());
}

// ---------------------------------------------------------------------------------------------
// Protocol errors

struct Row {
    name: &'static str,
    config: Config,
    bytes: Vec<u8>,
    error: ProtocolError,
    code: u16,
}

fn row(name: &'static str, bytes: Vec<u8>, error: ProtocolError, code: u16) -> Row {
    Row {
        name,
        config: Config::default(),
        bytes,
        error,
        code,
    }
}

fn limited(mut row: Row, set: impl FnOnce(&mut Config)) -> Row {
    set(&mut row.config);
    row
}

fn error_rows() -> Vec<Row> {
    use ProtocolError::*;
    let mut rows = vec![
        row(
            "unmasked client frame",
            vec![0x81, 0x05, b'H', b'e', b'l', b'l', b'o'],
            MaskMismatch { masked: false },
            1002,
        ),
        row(
            "RSV1 without extension",
            raw_client_frame(0xc1, b"Hello"),
            ReservedBits(0b100),
            1002,
        ),
        row(
            "RSV2",
            raw_client_frame(0xa2, b"x"),
            ReservedBits(0b010),
            1002,
        ),
        row(
            "RSV3 on a ping",
            raw_client_frame(0x99, b"x"),
            ReservedBits(0b001),
            1002,
        ),
        row(
            "ping with 126 bytes",
            client_frame(true, OpCode::Ping, &[b'p'; 126]),
            ControlTooLong(126),
            1002,
        ),
        row(
            "fragmented ping",
            client_frame(false, OpCode::Ping, b"x"),
            FragmentedControl,
            1002,
        ),
        row(
            "continuation without start",
            client_frame(true, OpCode::Continuation, b"x"),
            UnexpectedContinuation,
            1002,
        ),
        row(
            "new text frame inside a fragmented message",
            concat(&[
                client_frame(false, OpCode::Text, b"Hel"),
                client_frame(true, OpCode::Text, b"lo"),
            ]),
            ExpectedContinuation,
            1002,
        ),
        row(
            "new binary frame inside a fragmented message, after a ping",
            concat(&[
                client_frame(false, OpCode::Binary, b"Hel"),
                client_frame(true, OpCode::Ping, b""),
                client_frame(false, OpCode::Binary, b"lo"),
            ]),
            ExpectedContinuation,
            1002,
        ),
        row(
            "close with 1-byte payload",
            client_frame(true, OpCode::Close, &[0x03]),
            CloseTooShort,
            1002,
        ),
        row(
            "close reason invalid UTF-8",
            client_frame(true, OpCode::Close, &close_payload(1000, b"ok\xff")),
            InvalidUtf8,
            1007,
        ),
        row(
            "invalid UTF-8 text in one frame",
            client_frame(true, OpCode::Text, b"ab\xc3\x28cd"),
            InvalidUtf8,
            1007,
        ),
        row(
            "invalid UTF-8 text across fragments",
            concat(&[
                client_frame(false, OpCode::Text, b"a\xe2\x82"),
                client_frame(true, OpCode::Continuation, b"\x28"),
            ]),
            InvalidUtf8,
            1007,
        ),
        row(
            "text ending inside a code point",
            concat(&[
                client_frame(false, OpCode::Text, b"a\xe2\x82"),
                client_frame(true, OpCode::Continuation, b""),
            ]),
            InvalidUtf8,
            1007,
        ),
        row(
            "64-bit length with the top bit set",
            vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
            LengthOverflow,
            1002,
        ),
        row(
            "16-bit length not minimal",
            vec![0x82, 0xfe, 0x00, 0x7d, 1, 2, 3, 4],
            NonMinimalLength,
            1002,
        ),
        limited(
            row(
                "frame over max_frame_size",
                client_frame(true, OpCode::Binary, &[0; 1001]),
                FrameTooLarge {
                    len: 1001,
                    max: 1000,
                },
                1009,
            ),
            |c| c.max_frame_size = 1000,
        ),
        limited(
            row(
                "single frame over max_message_size",
                client_frame(true, OpCode::Text, b"eleven char"),
                MessageTooLarge { len: 11, max: 10 },
                1009,
            ),
            |c| c.max_message_size = 10,
        ),
        limited(
            row(
                "fragmented message over max_message_size",
                concat(&[
                    client_frame(false, OpCode::Binary, &[1; 6]),
                    client_frame(true, OpCode::Continuation, &[2; 6]),
                ]),
                MessageTooLarge { len: 12, max: 10 },
                1009,
            ),
            |c| c.max_message_size = 10,
        ),
        limited(
            row(
                "more fragments than max_fragments",
                concat(&[
                    client_frame(false, OpCode::Text, b"a"),
                    client_frame(false, OpCode::Continuation, b"b"),
                    client_frame(false, OpCode::Continuation, b"c"),
                    client_frame(true, OpCode::Continuation, b"d"),
                ]),
                TooManyFragments { max: 3 },
                1009,
            ),
            |c| c.max_fragments = 3,
        ),
    ];
    for op in (0x3..=0x7).chain(0xb..=0xf) {
        rows.push(row(
            "reserved opcode",
            raw_client_frame(0x80 | op, b""),
            ReservedOpCode(op),
            1002,
        ));
    }
    for code in [1004, 1005, 1006, 1015, 1016, 2999, 999, 5000, 0, 65535] {
        rows.push(row(
            "close code not allowed on the wire",
            client_frame(true, OpCode::Close, &close_payload(code, b"")),
            InvalidCloseCode(code),
            1002,
        ));
    }
    rows
}

#[test]
fn protocol_error_table() {
    let now = Instant::now();
    let valid_text = client_frame(true, OpCode::Text, b"after");
    let valid_ping = client_frame(true, OpCode::Ping, b"after");
    for row in error_rows() {
        let name = format!(
            "{} ({:02x?}..)",
            row.name,
            &row.bytes[..row.bytes.len().min(8)]
        );
        assert_eq!(row.error.close_code().0, row.code, "{name}");
        let [hi, lo] = row.code.to_be_bytes();
        let whole: [&[u8]; 1] = [&row.bytes];
        let bytewise: Vec<&[u8]> = row.bytes.chunks(1).collect();
        for (how, chunks) in [("whole", &whole[..]), ("byte by byte", &bytewise[..])] {
            let mut peer = Peer::new(Connection::server(row.config, NoExtension));
            let result = peer.receive_all(chunks.iter().copied(), now);
            assert_eq!(result, Err(row.error), "{name}, {how}");
            let before = peer.take_events();
            assert!(
                before.iter().all(|e| matches!(e, OwnedEvent::Ping(_))),
                "{name}, {how}: {before:?}"
            );
            assert_eq!(peer.conn.state(), State::Closed, "{name}, {how}");
            assert!(peer.transmit(), "{name}, {how}: no close queued");
            // A ping before the error is answered first; the close comes last.
            let close_at = peer.wire.len() - 4;
            assert_eq!(peer.wire[close_at..], [0x88, 0x02, hi, lo], "{name}, {how}");
            let pongs: Vec<u8> = before
                .iter()
                .filter_map(|e| match e {
                    OwnedEvent::Ping(p) => Some(frame(true, OpCode::Pong, p, None)),
                    _ => None,
                })
                .flatten()
                .collect();
            assert_eq!(peer.wire[..close_at], pongs, "{name}, {how}");

            // After an error nothing more is delivered or owed.
            peer.receive(&valid_text, now).unwrap();
            peer.receive(&valid_ping, now).unwrap();
            assert!(
                peer.events.is_empty(),
                "{name}, {how}: events after the error"
            );
            assert!(!peer.transmit(), "{name}, {how}: reply after the error");
            assert_eq!(peer.errors_seen, 1, "{name}, {how}");
        }
    }
}

#[test]
fn limits_accept_exactly_the_maximum() {
    let mut config = Config::default();
    config.max_frame_size = 1000;
    config.max_message_size = 12;
    config.max_fragments = 3;
    let frame_at_limit = client_frame(true, OpCode::Binary, &[7; 12]);
    let fragments_at_limit = concat(&[
        client_frame(false, OpCode::Text, b"four"),
        client_frame(false, OpCode::Continuation, b"four"),
        client_frame(true, OpCode::Continuation, b"four"),
    ]);
    let mut peer = Peer::new(Connection::server(config, NoExtension));
    peer.receive(&frame_at_limit, Instant::now()).unwrap();
    peer.receive(&fragments_at_limit, Instant::now()).unwrap();
    assert_eq!(
        peer.events,
        [OwnedEvent::Binary(vec![7; 12]), text("fourfourfour")]
    );

    let mut config = Config::default();
    config.max_frame_size = 1000;
    let mut peer = Peer::new(Connection::server(config, NoExtension));
    peer.receive(
        &client_frame(true, OpCode::Binary, &[1; 1000]),
        Instant::now(),
    )
    .unwrap();
    assert_eq!(peer.events, [OwnedEvent::Binary(vec![1; 1000])]);
}

// ---------------------------------------------------------------------------------------------
// UTF-8 as the bytes arrive

#[test]
fn invalid_utf8_fails_in_the_read_that_holds_it() {
    let now = Instant::now();
    // A text frame announcing 100 bytes: 6 bytes of header, then only 4 of payload arrive.
    for bad in [
        &b"ab\xffc"[..],
        b"a\xc3\x28b",
        b"\xed\xa0",
        b"\xf4\x90",
        b"ok\xc0",
    ] {
        let mut payload = bad.to_vec();
        payload.resize(100, b'x');
        let frame = client_frame(true, OpCode::Text, &payload);
        let first = 6 + bad.len();
        let mut conn = server();
        let mut input = frame[..first].to_vec();
        let mut message_buf = Vec::new();
        let result = conn.handle_read(&mut input, &mut message_buf, now);
        assert_eq!(result, Err(ProtocolError::InvalidUtf8), "{bad:02x?}");
        assert_eq!(conn.state(), State::Closed);
    }

    // In the second fragment, before its end arrives.
    let stream = concat(&[
        client_frame(false, OpCode::Text, b"fine"),
        client_frame(true, OpCode::Continuation, &[b'\x80'; 50]),
    ]);
    let mut peer = Peer::new(server());
    assert_eq!(
        peer.receive(&stream[..10 + 6 + 1], now),
        Err(ProtocolError::InvalidUtf8)
    );
}

#[test]
fn an_invalid_piece_never_joins_the_gathered_message() {
    // The continuation is unmasked as it is copied into the message buffer and checked there:
    // a piece with an invalid byte is taken back out, so the buffer holds only checked text.
    let now = Instant::now();
    let mut input = concat(&[
        client_frame(false, OpCode::Text, b"fine"),
        client_frame(true, OpCode::Continuation, b"ok\xffzz"),
    ]);
    let mut conn = server();
    let mut message_buf = Vec::new();
    let first = conn.handle_read(&mut input, &mut message_buf, now).unwrap();
    assert_eq!((first.consumed, first.event), (10, None));
    assert_eq!(message_buf, b"fine");
    let result = conn.handle_read(&mut input[10..], &mut message_buf, now);
    assert_eq!(result, Err(ProtocolError::InvalidUtf8));
    assert_eq!(message_buf, b"fine");
}

#[test]
fn a_code_point_may_straddle_fragments_and_reads() {
    // "a€b😀!" with € (e2 82 ac) cut across two fragments, 😀 (f0 9f 98 80) across three, and a
    // ping between fragments in the middle of a code point.
    let stream = concat(&[
        client_frame(false, OpCode::Text, b"a\xe2"),
        client_frame(false, OpCode::Continuation, b"\x82\xacb\xf0"),
        client_frame(true, OpCode::Ping, b"mid"),
        client_frame(false, OpCode::Continuation, b"\x9f\x98"),
        client_frame(true, OpCode::Continuation, b"\x80!"),
    ]);
    let expected = [OwnedEvent::Ping(b"mid".to_vec()), text("a€b😀!")];
    let now = Instant::now();
    for a in 0..=stream.len() {
        for b in a..=stream.len() {
            let mut peer = Peer::new(server());
            let result = peer.receive_all(split_at(&stream, &[a, b]), now);
            assert_eq!(result, Ok(()), "split {a}, {b}");
            assert_eq!(peer.events, expected, "split {a}, {b}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Zero copy

/// Whether `inner` lies within `outer`.
fn within(inner: &[u8], outer: std::ops::Range<*const u8>) -> bool {
    let inner = inner.as_ptr_range();
    outer.start <= inner.start && inner.end <= outer.end
}

#[test]
fn a_whole_frame_is_delivered_from_the_input() {
    let now = Instant::now();
    for (opcode, payload) in [(OpCode::Text, &b"Hello"[..]), (OpCode::Binary, &[9; 300])] {
        // Two frames in one read: each event points into its own frame of the input.
        let mut input = concat(&[
            client_frame(true, opcode, payload),
            client_frame(true, opcode, payload),
        ]);
        let half = input.len() / 2;
        let mut message_buf = Vec::new();
        let mut conn = server();
        let (first, second) = input.split_at_mut(half);
        for part in [first, second] {
            let range = part.as_ptr_range();
            let read = conn.handle_read(part, &mut message_buf, now).unwrap();
            assert_eq!(read.consumed, half);
            let bytes = match read.event {
                Some(Event::Text(t)) => t.as_bytes(),
                Some(Event::Binary(b)) => b,
                other => panic!("{other:?}"),
            };
            assert_eq!(bytes, payload);
            assert!(within(bytes, range), "{opcode:?} copied out of the input");
        }
        assert!(message_buf.is_empty(), "nothing was copied");
    }
}

#[test]
fn a_message_spanning_frames_or_reads_is_delivered_from_the_message_buffer() {
    let now = Instant::now();
    let fragmented = concat(&[
        client_frame(false, OpCode::Text, b"Hel"),
        client_frame(true, OpCode::Continuation, b"lo"),
    ]);
    let whole = client_frame(true, OpCode::Text, b"Hello");
    // Fragmented in one read; and one frame in two reads.
    for chunks in [vec![&fragmented[..]], vec![&whole[..8], &whole[8..]]] {
        let mut conn = server();
        let mut message_buf = Vec::new();
        let mut seen = None;
        for chunk in chunks {
            let mut input = chunk.to_vec();
            let input_range = input.as_ptr_range();
            let mut start = 0;
            loop {
                let read = conn
                    .handle_read(&mut input[start..], &mut message_buf, now)
                    .unwrap();
                if let Some(event) = &read.event {
                    let Event::Text(t) = event else {
                        panic!("{event:?}")
                    };
                    assert_eq!(*t, "Hello");
                    assert!(!within(t.as_bytes(), input_range.clone()));
                    seen = Some(t.as_bytes().as_ptr_range());
                }
                if read.is_blocked() {
                    break;
                }
                start += read.consumed;
            }
        }
        let seen = seen.expect("no event");
        // The read after the delivery cleared the buffer (keeping its allocation): compare with
        // its capacity.
        let buf = message_buf.as_ptr()..message_buf.as_ptr().wrapping_add(message_buf.capacity());
        assert!(
            buf.start <= seen.start && seen.end <= buf.end,
            "not in the message buffer"
        );
    }
}

#[test]
fn the_message_buffer_is_reused_after_delivery() {
    let now = Instant::now();
    let stream = concat(&[
        client_frame(false, OpCode::Binary, b"one"),
        client_frame(true, OpCode::Continuation, b"111"),
        client_frame(false, OpCode::Text, b"two"),
        client_frame(true, OpCode::Continuation, b"222"),
    ]);
    for cut in 0..=stream.len() {
        let mut peer = Peer::new(server());
        peer.receive_all(split_at(&stream, &[cut]), now).unwrap();
        assert_eq!(
            peer.events,
            [OwnedEvent::Binary(b"one111".to_vec()), text("two222")],
            "cut {cut}"
        );
    }
}
