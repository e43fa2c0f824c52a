//! Context takeover through the shared compressor: each message is compressed by the worker's
//! [`SharedCompressor`] primed with the connection's last `send_history` bytes sent, and must
//! decompress on a peer that keeps its window (context takeover), whatever the history size,
//! the window, the message sizes and the resets in between.

use proptest::prelude::*;
use sockeye_deflate::{DeflateConfig, PerMessageDeflate, SharedCompressor};
use sockeye_proto::{Extension, Rsv};
use sockeye_tests::deflate::negotiate;

/// A negotiated (server, client) pair: the server sends with `bits` and context takeover, from
/// `shared` with `history` bytes of history.
fn pair(
    bits: u8,
    history: u32,
    shared: &SharedCompressor,
) -> (PerMessageDeflate, PerMessageDeflate) {
    leveled(bits, 6, history, shared)
}

/// The same at compression `level`.
fn leveled(
    bits: u8,
    level: u32,
    history: u32,
    shared: &SharedCompressor,
) -> (PerMessageDeflate, PerMessageDeflate) {
    let mut config = DeflateConfig::default();
    config.level = level;
    config.server_max_window_bits = bits;
    config.threshold = 0;
    config.send_history = history;
    let (client, server) = negotiate(config, config);
    let server = server.with_shared_compressor(shared.clone());
    assert!(!server.negotiated().unwrap().send.no_context_takeover);
    (server, client)
}

/// Sends `message` from `server` to `client`: the compressed payload's size, after checking that
/// the client decompresses it to the message.
fn send(server: &mut PerMessageDeflate, client: &mut PerMessageDeflate, message: &[u8]) -> usize {
    let mut wire = Vec::new();
    assert_eq!(server.encode(message, &mut wire), Ok(Rsv::RSV1));
    let mut got = Vec::new();
    client
        .decode(&wire, true, &mut got, message.len().max(1))
        .unwrap();
    assert_eq!(got, message);
    wire.len()
}

fn quote(seq: u32) -> Vec<u8> {
    format!(
        "{{\"seq\":{seq},\"symbol\":\"SOCK\",\"bid\":{}.{:02},\"ask\":{}.{:02},\"venue\":\"X\"}}",
        100 + seq % 37,
        seq * 7 % 100,
        101 + seq % 41,
        seq * 13 % 100
    )
    .into_bytes()
}

#[test]
fn history_is_referred_to_kept_to_its_size_and_dropped_on_reset() {
    let shared = SharedCompressor::new();
    let (mut server, mut client) = pair(15, 4096, &shared);
    let message = quote(1).repeat(4);
    let first = send(&mut server, &mut client, &message);
    assert_eq!(server.send_history_len(), message.len());
    let again = send(&mut server, &mut client, &message);
    assert!(
        again < first / 4,
        "the second refers to the first: {again} vs {first}"
    );
    assert_eq!(
        server.has_state(),
        (false, false),
        "no compressor of its own"
    );

    // A broadcast left the history behind: the next message starts afresh.
    server.reset_send_context();
    assert_eq!(server.send_history_len(), 0);
    let mut other = quote(2).repeat(4);
    let _ = send(&mut server, &mut client, &other);
    // The history holds the last 4096 bytes sent, across messages.
    for seq in 3..200 {
        other = quote(seq);
        let _ = send(&mut server, &mut client, &other);
        assert!(server.send_history_len() <= 4096);
    }
    assert_eq!(server.send_history_len(), 4096);
    server.release_idle_state();
    assert_eq!(server.send_history_len(), 0);
    let after_idle = send(&mut server, &mut client, &message);
    assert_eq!(after_idle, first, "a fresh context after release");
    assert_eq!(shared.len(), 1);
}

#[test]
fn history_size_zero_and_small_windows() {
    let shared = SharedCompressor::new();
    // (window bits, history) → history kept after a 2000-byte message
    for (bits, history, kept) in [
        (15, 0, 0),
        (9, 4096, 512),
        (15, 100, 100),
        (12, 1 << 20, 2000),
    ] {
        let (mut server, mut client) = pair(bits, history, &shared);
        let message = quote(7).repeat(40)[..2000].to_vec();
        let first = send(&mut server, &mut client, &message);
        assert_eq!(server.send_history_len(), kept, "{bits} {history}");
        let second = send(&mut server, &mut client, &message);
        if kept == 0 {
            assert_eq!(
                second, first,
                "no history: each message from a fresh context"
            );
        } else {
            assert!(second < first, "{bits} {history}: {second} vs {first}");
        }
    }
}

fn messages() -> impl Strategy<Value = Vec<(Vec<u8>, u8)>> {
    // (message, what happens before it: 0-7 nothing, 8 reset_send_context, 9 release)
    let text = prop::collection::vec(
        prop::sample::select(b"abc{}\":, 0123456789".to_vec()),
        0..3000,
    );
    let bytes = prop::collection::vec(any::<u8>(), 0..600);
    prop::collection::vec((prop_oneof![text, bytes], 0u8..10), 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_message_decompresses_with_context_takeover(
        bits in 9u8..=15,
        level in 0u32..=9,
        history in prop::sample::select(vec![0u32, 1, 64, 700, 4096, 40_000]),
        script in messages(),
    ) {
        // Two connections take turns on one shared compressor, each with its own history.
        let shared = SharedCompressor::new();
        let one = || leveled(bits, level, history, &shared);
        let mut pairs = [one(), one()];
        for (i, (message, before)) in script.iter().enumerate() {
            let (server, client) = &mut pairs[i % 2];
            match before {
                8 => server.reset_send_context(),
                9 => server.release_idle_state(),
                _ => {}
            }
            send(server, client, message);
            let cap = (history as usize).min(1 << bits);
            prop_assert!(server.send_history_len() <= cap);
        }
    }
}
