//! The examples of RFC 6455 §5.7, byte for byte, decoded by the role that receives them.
//!
//! For every vector: fed whole it gives the expected events (and owed replies); every strict
//! prefix gives no event and no error; every 2-way and 3-way split, fed like an engine, gives the
//! same events and the same replies as the whole.

use std::time::Instant;

use sockeye_proto::mask::apply_mask_bytewise;
use sockeye_proto::{Config, Connection, NoExtension, Role};
use sockeye_tests::engine::{OwnedEvent, Peer, split_at};

const SEED: u64 = 0x6455;

fn connection(role: Role) -> Connection {
    match role {
        Role::Client => Connection::client(Config::default(), NoExtension, SEED),
        Role::Server => Connection::server(Config::default(), NoExtension),
    }
}

/// Feeds `chunks` to a fresh connection of `role`; returns its events and owed replies.
fn run(role: Role, chunks: &[&[u8]], now: Instant) -> (Vec<OwnedEvent>, Vec<u8>) {
    let mut peer = Peer::new(connection(role));
    for chunk in chunks {
        if let Err(err) = peer.receive(chunk, now) {
            panic!("{role:?}: {err} after {} events", peer.events.len());
        }
    }
    assert!(peer.leftover().is_empty(), "{role:?}: bytes left over");
    peer.transmit();
    (peer.events, peer.wire)
}

/// Where to cut a vector: everywhere for short ones; near both ends and on a stride otherwise.
fn cut_points(len: usize) -> Vec<usize> {
    if len <= 300 {
        return (0..=len).collect();
    }
    let mut points: Vec<usize> = (0..=20).chain(len - 20..=len).collect();
    points.extend((0..len).step_by(len / 37));
    points.sort_unstable();
    points.dedup();
    points
}

/// Checks `wire` as received by `role` against `expected`; returns the owed replies.
fn check_vector(role: Role, wire: &[u8], expected: &[OwnedEvent]) -> Vec<u8> {
    let now = Instant::now();
    let (events, transmit) = run(role, &[wire], now);
    assert_eq!(events, expected, "{role:?} fed whole");

    for k in 0..wire.len() {
        let mut peer = Peer::new(connection(role));
        let result = peer.receive(&wire[..k], now);
        assert_eq!(result, Ok(0), "prefix of {k} of {} bytes", wire.len());
        assert!(peer.events.is_empty(), "prefix {k} gave events");
        assert!(!peer.transmit(), "prefix {k} owed a reply");
    }

    let points = cut_points(wire.len());
    for (n, &a) in points.iter().enumerate() {
        let chunks = split_at(wire, &[a]);
        assert_eq!(
            run(role, &chunks, now),
            (events.clone(), transmit.clone()),
            "split {a}"
        );
        for &b in &points[n..] {
            let chunks = split_at(wire, &[a, b]);
            let got = run(role, &chunks, now);
            assert_eq!(got, (events.clone(), transmit.clone()), "split {a}, {b}");
        }
    }
    transmit
}

fn hello() -> OwnedEvent {
    OwnedEvent::text("Hello")
}

#[test]
fn section_5_7_single_frame_unmasked_text() {
    let wire = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let transmit = check_vector(Role::Client, &wire, &[hello()]);
    assert!(transmit.is_empty());
}

#[test]
fn section_5_7_single_frame_masked_text() {
    let wire = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let transmit = check_vector(Role::Server, &wire, &[hello()]);
    assert!(transmit.is_empty());
}

#[test]
fn section_5_7_fragmented_unmasked_text() {
    let wire = [
        0x01, 0x03, 0x48, 0x65, 0x6c, // "Hel", FIN clear
        0x80, 0x02, 0x6c, 0x6f, // "lo", continuation, FIN set
    ];
    let transmit = check_vector(Role::Client, &wire, &[hello()]);
    assert!(transmit.is_empty());
}

#[test]
fn section_5_7_unmasked_ping_answered_by_a_masked_pong() {
    let wire = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let ping = OwnedEvent::Ping(b"Hello".to_vec());
    let pong = check_vector(Role::Client, &wire, &[ping]);
    // A client masks its pong (§5.3): 8a 85, a key, then "Hello" masked with it.
    assert_eq!(pong.len(), 11, "{pong:02x?}");
    assert_eq!(pong[..2], [0x8a, 0x85]);
    let key: [u8; 4] = pong[2..6].try_into().unwrap();
    let mut payload = pong[6..].to_vec();
    apply_mask_bytewise(&mut payload, key, 0);
    assert_eq!(payload, b"Hello");
    // And a server reads it as the pong it is.
    let (events, _) = run(Role::Server, &[&pong], Instant::now());
    assert_eq!(events, [OwnedEvent::Pong(b"Hello".to_vec())]);
}

#[test]
fn section_5_7_masked_ping_answered_by_an_unmasked_pong() {
    // A server receives pings masked, as every client frame is; the §5.7 ping masked with the
    // key of the masked "Hello" example.
    let wire = [
        0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let ping = OwnedEvent::Ping(b"Hello".to_vec());
    let pong = check_vector(Role::Server, &wire, &[ping]);
    assert_eq!(pong, [0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
}

#[test]
fn section_5_7_masked_pong() {
    let wire = [
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let transmit = check_vector(Role::Server, &wire, &[OwnedEvent::Pong(b"Hello".to_vec())]);
    assert!(transmit.is_empty(), "a pong is not answered");
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

#[test]
fn section_5_7_256_bytes_binary_in_a_single_unmasked_frame() {
    let body = payload(256);
    let mut wire = vec![0x82, 0x7e, 0x01, 0x00];
    wire.extend_from_slice(&body);
    let transmit = check_vector(Role::Client, &wire, &[OwnedEvent::Binary(body)]);
    assert!(transmit.is_empty());
}

#[test]
fn section_5_7_64_kib_binary_in_a_single_unmasked_frame() {
    let body = payload(65536);
    let mut wire = vec![0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00];
    wire.extend_from_slice(&body);
    let transmit = check_vector(Role::Client, &wire, &[OwnedEvent::Binary(body)]);
    assert!(transmit.is_empty());
}
