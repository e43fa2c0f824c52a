//! RFC 7692 (permessage-deflate) through `sockeye_deflate::PerMessageDeflate` and full
//! `sockeye_proto::Connection`s: the §7.2.3 examples byte for byte, the §7 negotiation rules as
//! tables, round trips of random messages in random pieces, a decompression bomb and corrupt data.

use std::time::Instant;

use proptest::prelude::*;
use sockeye_deflate::{DeflateConfig, DirectionParams, PerMessageDeflate};
use sockeye_proto::extension::{ParamWriter, parse_offers};
use sockeye_proto::frame::MAX_HEADER_LEN;
use sockeye_proto::mask::apply_mask;
use sockeye_proto::{
    Config, Connection, Extension, FrameHeader, Message, NegotiationError, OpCode, ProtocolError,
    Rsv,
};
use sockeye_tests::deflate::negotiate;
use sockeye_tests::engine::{OwnedEvent, Peer};

const SEED: u64 = 0x7692;

// ---------------------------------------------------------------------------------------------
// Helpers

fn config(edit: impl FnOnce(&mut DeflateConfig)) -> DeflateConfig {
    let mut config = DeflateConfig::default();
    edit(&mut config);
    config
}

/// The server's answer to a `Sec-WebSocket-Extensions` value: the response parameters of the
/// first offer it accepts, or `None`.
fn server_answer(server: &mut PerMessageDeflate, offers: &str) -> Option<String> {
    let mut buf = [0u8; 128];
    for offer in parse_offers(offers) {
        let Ok(offer) = offer else { continue };
        let mut writer = ParamWriter::new(&mut buf);
        if server.accept_offer(&offer, &mut writer) == Ok(true) {
            return Some(String::from_utf8(writer.as_bytes().to_vec()).unwrap());
        }
    }
    None
}

/// A client connection that received permessage-deflate with default parameters: what the
/// server → client examples of §7.2.3 are fed to (they are unmasked).
fn client_peer(server_no_context_takeover: bool) -> Peer<PerMessageDeflate> {
    let server = config(|c| c.server_no_context_takeover = server_no_context_takeover);
    let (client, _) = negotiate(DeflateConfig::default(), server);
    Peer::new(Connection::client(Config::default(), client, SEED))
}

/// A server extension that compresses every message (threshold 0).
fn server_ext(edit: impl FnOnce(&mut DeflateConfig)) -> PerMessageDeflate {
    let server = config(|c| {
        c.threshold = 0;
        edit(c);
    });
    negotiate(DeflateConfig::default(), server).1
}

fn encode(ext: &mut PerMessageDeflate, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    assert_eq!(ext.encode(message, &mut out), Ok(Rsv::RSV1));
    out
}

/// The frames of one compressed message: `payload` cut at `cuts` (sorted, `<= payload.len()`),
/// RSV1 on the first frame, masked with keys from `mask` (client → server) or unmasked.
fn frames(opcode: OpCode, payload: &[u8], cuts: &[usize], mask: Option<u32>) -> Vec<u8> {
    fragments(opcode, Rsv::RSV1, payload, cuts, mask)
}

/// The frames of one message with `rsv` on the first frame.
fn fragments(
    opcode: OpCode,
    rsv: Rsv,
    payload: &[u8],
    cuts: &[usize],
    mask: Option<u32>,
) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut start = 0;
    let ends = cuts.iter().copied().chain([payload.len()]);
    for (i, end) in ends.enumerate() {
        let piece = &payload[start..end];
        let header = FrameHeader {
            fin: i == cuts.len(),
            rsv: if i == 0 { rsv } else { Rsv::NONE },
            opcode: if i == 0 { opcode } else { OpCode::Continuation },
            mask: mask.map(|m| (m.wrapping_mul(i as u32 + 1)).to_be_bytes()),
            payload_len: piece.len() as u64,
        };
        let mut bytes = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut bytes);
        wire.extend_from_slice(&bytes[..n]);
        let body = wire.len();
        wire.extend_from_slice(piece);
        if let Some(key) = header.mask {
            apply_mask(&mut wire[body..], key, 0);
        }
        start = end;
    }
    wire
}

fn text(s: &str) -> OwnedEvent {
    OwnedEvent::text(s)
}

// ---------------------------------------------------------------------------------------------
// RFC 7692 §7.2.3 examples

const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

#[test]
fn section_7_2_3_1_one_block() {
    // "Hello" in one compressed block, flushed with an empty stored block whose 00 00 ff ff is
    // stripped: f2 48 cd c9 c9 07 00.
    assert_eq!(encode(&mut server_ext(|_| {}), b"Hello"), HELLO);

    // As one frame: c1 07 f2 48 cd c9 c9 07 00.
    let mut peer = client_peer(false);
    peer.receive(
        &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        Instant::now(),
    )
    .unwrap();
    assert_eq!(peer.events, [text("Hello")]);

    // In two fragments of 3 and 4 octets, RSV1 on the first only: 41 03 f2 48 cd, 80 04 c9 c9
    // 07 00. Also fed a byte at a time.
    let wire = [
        0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
    ];
    for chunk in [wire.len(), 1, 2, 5] {
        let mut peer = client_peer(false);
        peer.receive_all(wire.chunks(chunk), Instant::now())
            .unwrap();
        assert_eq!(peer.events, [text("Hello")], "chunks of {chunk}");
    }
}

#[test]
fn section_7_2_3_2_sharing_lz77_sliding_window() {
    // With context takeover the second "Hello" refers back to the first: f2 00 11 00 00.
    let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
    let mut ext = server_ext(|_| {});
    assert_eq!(
        (encode(&mut ext, b"Hello"), encode(&mut ext, b"Hello")),
        (HELLO.to_vec(), second.to_vec())
    );
    // Without it, both compress to the same bytes.
    let mut ext = server_ext(|c| c.server_no_context_takeover = true);
    assert_eq!(
        (encode(&mut ext, b"Hello"), encode(&mut ext, b"Hello")),
        (HELLO.to_vec(), HELLO.to_vec())
    );

    let mut peer = client_peer(false);
    let mut wire = vec![0xc1, 0x07];
    wire.extend_from_slice(&HELLO);
    wire.extend_from_slice(&[0xc1, 0x05]);
    wire.extend_from_slice(&second);
    peer.receive(&wire, Instant::now()).unwrap();
    assert_eq!(peer.events, [text("Hello"), text("Hello")]);

    // A receiver that agreed to no context takeover has forgotten the first message.
    let mut peer = client_peer(true);
    assert_eq!(
        peer.receive(&wire, Instant::now()),
        Err(ProtocolError::InvalidCompressedData)
    );
    assert_eq!(peer.events, [text("Hello")]);
}

#[test]
fn section_7_2_3_3_deflate_block_with_no_compression() {
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(encode(&mut server_ext(|c| c.level = 0), b"Hello"), stored);
    let mut peer = client_peer(false);
    let mut wire = vec![0xc1, 0x0b];
    wire.extend_from_slice(&stored);
    peer.receive(&wire, Instant::now()).unwrap();
    assert_eq!(peer.events, [text("Hello")]);
}

#[test]
fn section_7_2_3_4_deflate_block_with_bfinal_set() {
    // A block with BFINAL set, then one octet of stored-block header bits.
    let wire = [0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    let mut peer = client_peer(false);
    peer.receive(&wire, Instant::now()).unwrap();
    // The decompressor restarts after the final block and keeps the history: the next message
    // may still refer back to "Hello".
    peer.receive(&[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00], Instant::now())
        .unwrap();
    // Leniency: a final block without the trailing octet, then an ordinary message.
    let mut bare = vec![0xc1, 0x07, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    bare.extend_from_slice(&[0xc1, 0x07]);
    bare.extend_from_slice(&HELLO);
    peer.receive(&bare, Instant::now()).unwrap();
    assert_eq!(peer.events, vec![text("Hello"); 4]);
}

#[test]
fn section_7_2_3_5_two_deflate_blocks_in_one_message() {
    let payload = [
        0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    for cuts in [&[][..], &[1], &[6, 8], &[3, 7, 12]] {
        let mut peer = client_peer(false);
        peer.receive(&frames(OpCode::Text, &payload, cuts, None), Instant::now())
            .unwrap();
        assert_eq!(peer.events, [text("Hello")], "{cuts:?}");
    }
}

#[test]
fn section_7_2_3_6_generating_an_empty_fragment() {
    // A sender that flushed "Hello" in a first fragment (keeping that flush's 00 00 ff ff: only
    // the tail of the whole message is stripped) and then learns the message is over sends an
    // empty stored block: the single octet 00.
    let mut wire = vec![0x41, 0x0b];
    wire.extend_from_slice(&HELLO);
    wire.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    wire.extend_from_slice(&[0x80, 0x01, 0x00]);
    let mut peer = client_peer(false);
    peer.receive(&wire, Instant::now()).unwrap();
    assert_eq!(peer.events, [text("Hello")]);
}

#[test]
fn section_7_2_1_empty_message_is_a_single_zero_octet() {
    for takeover in [false, true] {
        let mut ext = server_ext(|c| c.server_no_context_takeover = !takeover);
        assert_eq!(encode(&mut ext, b"Hello"), HELLO);
        assert_eq!(encode(&mut ext, b""), [0x00]);
    }
    let mut peer = client_peer(false);
    peer.receive(&[0xc1, 0x01, 0x00, 0xc2, 0x00], Instant::now())
        .unwrap();
    assert_eq!(peer.events, [text(""), OwnedEvent::Binary(vec![])]);
}

// ---------------------------------------------------------------------------------------------
// RFC 7692 §7 negotiation

#[test]
fn section_7_server_accepts_valid_offers() {
    let default = DeflateConfig::default();
    let cases: &[(&str, DeflateConfig, &str)] = &[
        ("permessage-deflate", default, ""),
        (
            "permessage-deflate; server_no_context_takeover",
            default,
            "; server_no_context_takeover",
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            default,
            "; client_no_context_takeover",
        ),
        (
            "permessage-deflate; server_max_window_bits=10",
            default,
            "; server_max_window_bits=10",
        ),
        (
            "permessage-deflate; server_max_window_bits=\"12\"",
            default,
            "; server_max_window_bits=12",
        ),
        (
            "permessage-deflate; server_max_window_bits=8",
            default,
            "; server_max_window_bits=8",
        ),
        ("permessage-deflate; client_max_window_bits", default, ""),
        ("permessage-deflate; client_max_window_bits=15", default, ""),
        (
            "permessage-deflate; client_max_window_bits=9",
            default,
            "; client_max_window_bits=9",
        ),
        (
            "permessage-deflate; client_max_window_bits=8",
            default,
            "; client_max_window_bits=8",
        ),
        (
            "permessage-deflate;server_no_context_takeover;client_no_context_takeover;\
             server_max_window_bits=9;client_max_window_bits=9",
            default,
            "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; \
             client_max_window_bits=9",
        ),
        // The server's configuration decides what it asks for.
        (
            "permessage-deflate; client_max_window_bits",
            config(|c| {
                c.server_no_context_takeover = true;
                c.client_no_context_takeover = true;
                c.server_max_window_bits = 11;
                c.client_max_window_bits = 10;
            }),
            "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; \
             client_max_window_bits=10",
        ),
        // client_max_window_bits is never answered unless offered (§7.1.2.2: MUST NOT).
        (
            "permessage-deflate",
            config(|c| c.client_max_window_bits = 10),
            "",
        ),
        // A smaller value of the client wins over the configured one.
        (
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
            config(|c| {
                c.server_max_window_bits = 12;
                c.client_max_window_bits = 12;
            }),
            "; server_max_window_bits=10; client_max_window_bits=9",
        ),
        // Several offers, the first ones unacceptable: the first acceptable one is answered.
        (
            "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=7, \
             permessage-deflate; client_no_context_takeover, permessage-deflate",
            default,
            "; client_no_context_takeover",
        ),
        (
            "permessage-deflate; bogus, permessage-deflate; server_max_window_bits=9",
            default,
            "; server_max_window_bits=9",
        ),
    ];
    for (offers, config, want) in cases {
        let mut server = PerMessageDeflate::server(*config);
        assert_eq!(
            server_answer(&mut server, offers).as_deref(),
            Some(*want),
            "{offers}"
        );
        assert_eq!(server.rsv(), Rsv::RSV1);
        // Every answer is one a client offering exactly this would accept.
        let response = format!("permessage-deflate{want}");
        let mut client = PerMessageDeflate::client(DeflateConfig::default());
        client
            .accept_response(&parse_offers(&response).next().unwrap().unwrap())
            .unwrap();
        let (c, s) = (client.negotiated().unwrap(), server.negotiated().unwrap());
        assert_eq!((c.send, c.recv), (s.recv, s.send), "{offers}");
    }
}

#[test]
fn section_7_server_declines_invalid_offers() {
    let invalid = [
        // duplicate
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; client_max_window_bits; client_max_window_bits",
        "permessage-deflate; client_max_window_bits=10; client_max_window_bits",
        // unknown
        "permessage-deflate; x",
        "permessage-deflate; server_max_window_bit=10",
        "permessage-deflate; SERVER_NO_CONTEXT_TAKEOVER",
        // a value on a parameter that has none
        "permessage-deflate; server_no_context_takeover=true",
        "permessage-deflate; client_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=\"\"",
        // a missing value where one is required
        "permessage-deflate; server_max_window_bits",
        // out of range, not a number, empty, leading zero, quoted out of range
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; server_max_window_bits=",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=\"16\"",
        "permessage-deflate; server_max_window_bits=\"\"",
        "permessage-deflate; server_max_window_bits=-9",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits=",
        "permessage-deflate; client_max_window_bits=\"7\"",
        "permessage-deflate; client_max_window_bits=9.0",
        // grammar
        "permessage-deflate; server_max_window_bits=\"10",
        "permessage-deflate; =10",
        // other extensions
        "x-webkit-deflate-frame",
        "permessage-deflat",
    ];
    for offers in invalid {
        let mut server = PerMessageDeflate::server(DeflateConfig::default());
        assert_eq!(server_answer(&mut server, offers), None, "{offers}");
        assert_eq!(server.rsv(), Rsv::NONE, "{offers}");
        // Declined is not failed: a valid offer after it is still accepted (unless an open
        // quote swallows it).
        if offers.matches('"').count() % 2 == 1 {
            continue;
        }
        let offers = format!("{offers}, permessage-deflate");
        assert_eq!(
            server_answer(&mut server, &offers).as_deref(),
            Some(""),
            "{offers}"
        );
    }
    // Once accepted, later offers are declined.
    let mut server = PerMessageDeflate::server(DeflateConfig::default());
    assert!(server_answer(&mut server, "permessage-deflate").is_some());
    assert!(server_answer(&mut server, "permessage-deflate").is_none());
}

#[test]
fn section_7_client_offers_and_checks_the_response() {
    /// (send, recv) as the client sees them, or why the response fails the connection.
    type Agreed = Result<(DirectionParams, DirectionParams), NegotiationError>;

    let offer_of = |config: DeflateConfig| {
        let mut buf = [0u8; 128];
        let mut writer = ParamWriter::new(&mut buf);
        PerMessageDeflate::client(config)
            .write_offer(&mut writer)
            .unwrap();
        String::from_utf8(writer.as_bytes().to_vec()).unwrap()
    };
    assert_eq!(
        offer_of(DeflateConfig::default()),
        "; client_max_window_bits"
    );
    let limited = config(|c| {
        c.server_no_context_takeover = true;
        c.client_no_context_takeover = true;
        c.server_max_window_bits = 10;
        c.client_max_window_bits = 11;
    });
    assert_eq!(
        offer_of(limited),
        "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; \
         client_max_window_bits=11"
    );

    let dir = |max_window_bits, no_context_takeover| DirectionParams {
        max_window_bits,
        no_context_takeover,
    };
    use NegotiationError::*;
    let default = DeflateConfig::default();
    // (client config, response parameters) → (send, recv) or the error
    let cases: &[(DeflateConfig, &str, Agreed)] = &[
        (default, "", Ok((dir(15, false), dir(15, false)))),
        (
            default,
            "; server_no_context_takeover",
            Ok((dir(15, false), dir(15, true))),
        ),
        (
            default,
            "; client_no_context_takeover",
            Ok((dir(15, true), dir(15, false))),
        ),
        (
            default,
            "; server_max_window_bits=9",
            Ok((dir(15, false), dir(9, false))),
        ),
        (
            default,
            "; client_max_window_bits=10",
            Ok((dir(10, false), dir(15, false))),
        ),
        (
            default,
            "; client_max_window_bits=8",
            Ok((dir(8, false), dir(15, false))),
        ),
        (
            limited,
            "; server_no_context_takeover; server_max_window_bits=10",
            Ok((dir(11, true), dir(10, true))),
        ),
        (
            limited,
            "; server_no_context_takeover; server_max_window_bits=8; client_max_window_bits=9",
            Ok((dir(9, true), dir(8, true))),
        ),
        // what the offer did not allow
        (limited, "; server_max_window_bits=10", Err(NotOffered)),
        (limited, "; server_no_context_takeover", Err(NotOffered)),
        (
            limited,
            "; server_no_context_takeover; server_max_window_bits=11",
            Err(NotOffered),
        ),
        (
            limited,
            "; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12",
            Err(NotOffered),
        ),
        // unknown, duplicate, invalid
        (default, "; x", Err(UnknownParameter)),
        (
            default,
            "; server_no_context_takeover; server_no_context_takeover",
            Err(DuplicateParameter),
        ),
        (default, "; client_max_window_bits", Err(InvalidValue)),
        (default, "; server_max_window_bits", Err(InvalidValue)),
        (default, "; server_max_window_bits=16", Err(InvalidValue)),
        (default, "; client_max_window_bits=7", Err(InvalidValue)),
        (default, "; server_no_context_takeover=1", Err(InvalidValue)),
        (default, "; server_max_window_bits=\"1", Err(Malformed)),
    ];
    for (config, response, want) in cases {
        let mut client = PerMessageDeflate::client(*config);
        let header = format!("permessage-deflate{response}");
        let got = client
            .accept_response(&parse_offers(&header).next().unwrap().unwrap())
            .map(|()| {
                let n = client.negotiated().unwrap();
                (n.send, n.recv)
            });
        assert_eq!(got, *want, "{response}");
        assert_eq!(client.rsv() == Rsv::RSV1, want.is_ok(), "{response}");
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips through a client → server connection pair

/// A message from `(text, len, seed, redundancy)`: text mixes ASCII with 2-, 3- and 4-byte
/// characters; binary mixes random bytes with repeats of earlier bytes.
fn message(text: bool, len: usize, seed: u64, redundancy: u8) -> OwnedEvent {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    if text {
        const WORDS: [&str; 8] = [
            "{\"id\":",
            "\"price\"",
            " 1234.5",
            ",",
            "é",
            "漢字",
            "🦀",
            "\n",
        ];
        let mut s = String::with_capacity(len + 4);
        while s.len() < len {
            let r = next();
            if redundancy == 0 && r % 3 == 0 {
                s.push(char::from_u32((r >> 8) as u32 % 0xd000).unwrap_or('x'));
            } else {
                s.push_str(WORDS[(r >> 32) as usize % WORDS.len()]);
            }
        }
        OwnedEvent::Text(s)
    } else {
        let mut bytes = Vec::with_capacity(len);
        while bytes.len() < len {
            let r = next();
            if redundancy > 0 && bytes.len() > 64 && r % 4 < u64::from(redundancy) {
                let from = (r >> 16) as usize % bytes.len();
                let n = ((r >> 40) as usize % 200).min(len - bytes.len());
                for i in 0..n {
                    bytes.push(bytes[from + i % (bytes.len() - from)]);
                }
            } else {
                bytes.push((r >> 24) as u8);
            }
        }
        bytes.truncate(len);
        OwnedEvent::Binary(bytes)
    }
}

fn message_strategy() -> impl Strategy<Value = OwnedEvent> {
    (any::<bool>(), 0usize..=100 * 1024, any::<u64>(), 0u8..3)
        .prop_map(|(text, len, seed, redundancy)| message(text, len, seed, redundancy))
}

/// Sends `messages` from a client to a server, through `client.send` (one frame) or through the
/// client extension and `frames` cut at `cuts` (fragments), delivering the bytes in reads of
/// `reads` sizes (cycled). Returns what the server received.
fn client_to_server(
    client: DeflateConfig,
    server: DeflateConfig,
    messages: &[OwnedEvent],
    cuts: &[Vec<usize>],
    reads: &[usize],
) -> Vec<OwnedEvent> {
    let (client, server) = negotiate(client, server);
    let mut client = Connection::client(Config::default(), client, SEED);
    let mut server = Peer::new(Connection::server(Config::default(), server));
    let mut wire = Vec::new();
    for (i, msg) in messages.iter().enumerate() {
        let (opcode, bytes) = match msg {
            OwnedEvent::Text(s) => (OpCode::Text, s.as_bytes()),
            OwnedEvent::Binary(b) => (OpCode::Binary, b.as_slice()),
            _ => unreachable!(),
        };
        match cuts.get(i).filter(|c| !c.is_empty()) {
            None => match msg {
                OwnedEvent::Text(s) => client.send(Message::Text(s), &mut wire).unwrap(),
                _ => client.send(Message::Binary(bytes), &mut wire).unwrap(),
            },
            Some(cuts) => {
                let mut payload = Vec::new();
                let rsv = client.extension_mut().encode(bytes, &mut payload).unwrap();
                if rsv.is_empty() {
                    payload = bytes.to_vec(); // under the threshold: sent as it is
                }
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (payload.len() + 1)).collect();
                cuts.sort_unstable();
                let key = (SEED as u32).wrapping_add(i as u32);
                wire.extend_from_slice(&fragments(opcode, rsv, &payload, &cuts, Some(key)));
            }
        }
    }
    let mut start = 0;
    for &size in reads.iter().cycle() {
        if start == wire.len() {
            break;
        }
        let end = (start + size.max(1)).min(wire.len());
        server.receive(&wire[start..end], Instant::now()).unwrap();
        start = end;
    }
    assert!(server.leftover().is_empty());
    server.events
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_with_context_takeover(
        messages in prop::collection::vec(message_strategy(), 1..4),
        cuts in prop::collection::vec(prop::collection::vec(any::<usize>(), 0..6), 0..4),
        reads in prop::collection::vec(1usize..20_000, 1..8),
        window in 9u8..=15,
    ) {
        let client = config(|c| { c.threshold = 0; c.client_max_window_bits = window; });
        let server = config(|c| c.server_max_window_bits = window);
        prop_assert_eq!(client_to_server(client, server, &messages, &cuts, &reads), messages);
    }

    #[test]
    fn round_trip_without_context_takeover(
        messages in prop::collection::vec(message_strategy(), 1..4),
        cuts in prop::collection::vec(prop::collection::vec(any::<usize>(), 0..6), 0..4),
        reads in prop::collection::vec(1usize..20_000, 1..8),
        level in 0u32..=9,
    ) {
        let client = config(|c| {
            c.threshold = 0;
            c.level = level;
            c.client_no_context_takeover = true;
        });
        let server = config(|c| c.client_no_context_takeover = true);
        prop_assert_eq!(client_to_server(client, server, &messages, &cuts, &reads), messages);
    }

    #[test]
    fn round_trip_small_messages_in_small_reads(
        messages in prop::collection::vec(
            (any::<bool>(), 0usize..300, any::<u64>(), 0u8..3),
            1..12,
        ),
        cuts in prop::collection::vec(prop::collection::vec(any::<usize>(), 0..4), 0..12),
        reads in prop::collection::vec(1usize..8, 1..8),
    ) {
        let messages: Vec<OwnedEvent> =
            messages.into_iter().map(|(t, len, seed, r)| message(t, len, seed, r)).collect();
        let client = config(|c| c.threshold = 16);
        prop_assert_eq!(
            client_to_server(client, DeflateConfig::default(), &messages, &cuts, &reads),
            messages
        );
    }
}

#[test]
fn server_to_client_round_trip_through_send() {
    let (client, server) = negotiate(DeflateConfig::default(), config(|c| c.threshold = 0));
    let mut server = Peer::new(Connection::server(Config::default(), server));
    let mut client = Peer::new(Connection::client(Config::default(), client, SEED));
    let messages: Vec<OwnedEvent> = (0..20)
        .map(|i| message(i % 2 == 0, i * 997, i as u64, (i % 3) as u8))
        .collect();
    for msg in &messages {
        match msg {
            OwnedEvent::Text(s) => server.send(Message::Text(s)).unwrap(),
            OwnedEvent::Binary(b) => server.send(Message::Binary(b)).unwrap(),
            _ => unreachable!(),
        }
    }
    let wire = std::mem::take(&mut server.wire);
    client
        .receive_all(wire.chunks(1500), Instant::now())
        .unwrap();
    assert_eq!(client.events, messages);
}

// ---------------------------------------------------------------------------------------------
// Limits and corrupt data

/// Feeds `wire` to a fresh server connection like an engine; returns the first error, the
/// close frame it queued and the largest capacity the message buffer reached.
fn server_reads(
    ext: PerMessageDeflate,
    config: Config,
    wire: &mut [u8],
) -> (ProtocolError, Vec<u8>, usize) {
    let mut conn = Connection::server(config, ext);
    let mut msg_buf = Vec::new();
    let mut peak = 0;
    let mut start = 0;
    for end in (0..wire.len())
        .step_by(16 * 1024)
        .skip(1)
        .chain([wire.len()])
    {
        loop {
            let read = conn
                .handle_read(&mut wire[start..end], &mut msg_buf, Instant::now())
                .map(|read| (read.consumed, read.event.is_some()));
            peak = peak.max(msg_buf.capacity());
            match read {
                Ok((0, false)) => break,
                Ok((consumed, event)) => {
                    assert!(!event, "no message may be delivered");
                    start += consumed;
                }
                Err(err) => {
                    let mut close = Vec::new();
                    assert!(conn.poll_transmit(&mut close));
                    return (err, close, peak);
                }
            }
        }
    }
    panic!("no error");
}

#[test]
fn decompression_bomb_stops_at_the_message_limit() {
    const LIMIT: usize = 1 << 20;
    // 100 MiB of zeros deflate to about 100 KB (DEFLATE tops out near 1032:1): a thousandfold
    // over a 1 MiB limit.
    let zeros = vec![0u8; 100 << 20];
    let sender = config(|c| {
        c.level = 9;
        c.client_no_context_takeover = true;
    });
    let (client, _) = negotiate(sender, DeflateConfig::default());
    let mut client = client;
    let mut payload = Vec::new();
    assert_eq!(client.encode(&zeros, &mut payload), Ok(Rsv::RSV1));
    drop(zeros);
    // As one binary frame, and as a text message (zeros are valid UTF-8) in three fragments.
    let binary = frames(OpCode::Binary, &payload, &[], Some(0x1234_5678));
    let third = payload.len() / 3;
    let text = frames(
        OpCode::Text,
        &payload,
        &[third, 2 * third],
        Some(0x1234_5678),
    );
    for mut wire in [binary, text] {
        assert!(wire.len() < 200 * 1024, "{} compressed bytes", wire.len());
        let mut limits = Config::default();
        limits.max_message_size = LIMIT;
        let server = negotiate(sender, DeflateConfig::default()).1;
        let (err, close, peak) = server_reads(server, limits, &mut wire);
        assert!(
            matches!(err, ProtocolError::MessageTooLarge { .. }),
            "{err:?}"
        );
        assert_eq!(err.close_code().0, 1009);
        assert_eq!(close, [0x88, 0x02, 0x03, 0xf1]);
        assert!(peak <= LIMIT, "message buffer grew to {peak} bytes");
    }
}

#[test]
fn corrupt_compressed_data_fails_with_1007() {
    let cases: [(OpCode, Vec<u8>); 3] = [
        (OpCode::Binary, vec![0xff; 8]),
        (OpCode::Text, vec![0x07, 0x00]),
        // Valid DEFLATE, invalid UTF-8 once inflated: the connection's text check after decode.
        (OpCode::Text, {
            let mut ext = negotiate(config(|c| c.threshold = 0), DeflateConfig::default()).0;
            encode(&mut ext, b"\xff\xfe")
        }),
    ];
    for (opcode, payload) in cases {
        let server = negotiate(DeflateConfig::default(), DeflateConfig::default()).1;
        let mut wire = frames(opcode, &payload, &[], Some(0xdead_beef));
        let (err, close, _) = server_reads(server, Config::default(), &mut wire);
        assert_eq!(err.close_code().0, 1007, "{payload:02x?}: {err:?}");
        assert_eq!(close, [0x88, 0x02, 0x03, 0xef]);
    }
}

#[test]
fn rsv1_without_negotiation_or_on_a_continuation_fails_with_1002() {
    let mut wire = frames(OpCode::Text, &HELLO, &[], Some(1));
    let ext = PerMessageDeflate::server(DeflateConfig::default());
    let (err, _, _) = server_reads(ext, Config::default(), &mut wire);
    assert_eq!(err.close_code().0, 1002);

    let server = negotiate(DeflateConfig::default(), DeflateConfig::default()).1;
    let mut wire = frames(OpCode::Text, &HELLO, &[3], Some(1));
    wire[2 + 4 + 3] |= 0x40; // RSV1 on the continuation frame too
    let (err, _, _) = server_reads(server, Config::default(), &mut wire);
    assert_eq!(err.close_code().0, 1002);
}
