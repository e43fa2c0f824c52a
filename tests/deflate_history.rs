//! Context takeover through the shared compressor: each message is compressed by the worker's
//! [`SharedCompressor`] primed with the connection's last `send_history` bytes sent, or by a warm
//! stream lent to a connection that sends often, and must decompress on a peer that keeps its
//! window (context takeover), whatever the history size, the window, the message sizes, the
//! order of the connections and the resets in between.

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

/// Bytes no compressor can shrink, so that a back-reference is the only way to send them short.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn a_warm_stream_keeps_the_whole_window_and_is_taken_over() {
    // 128 bytes of history, 400-byte messages: only a context longer than the history can send
    // the same message again in a few bytes.
    let message = noise(400, 7);
    for warm in [0, 1] {
        let shared = SharedCompressor::with_warm_streams(warm);
        let (mut a, mut a_peer) = pair(15, 128, &shared);
        let sizes: Vec<usize> = (0..4)
            .map(|_| send(&mut a, &mut a_peer, &message))
            .collect();
        // The first message goes through the shared compressor (a connection is not yet known
        // to send often), the second takes the warm stream, primed with 128 bytes of history.
        assert!(sizes[0] > 400 && sizes[1] > 250, "{warm}: {sizes:?}");
        if warm == 0 {
            assert!(sizes[2] > 250 && sizes[3] > 250, "history only: {sizes:?}");
            assert_eq!(shared.len(), 1);
            continue;
        }
        assert!(sizes[2] < 40 && sizes[3] < 40, "whole window: {sizes:?}");
        assert_eq!(shared.len(), 2, "the shared compressor and one warm stream");
        assert_eq!(a.has_state(), (false, false), "no compressor of its own");

        // A long message goes through the shared compressor and leaves the stream; the next
        // short one takes a stream again, primed with the history (the long one's tail).
        send(&mut a, &mut a_peer, &noise(2000, 8));
        assert!(send(&mut a, &mut a_peer, &message) > 400, "primed again");
        assert!(send(&mut a, &mut a_peer, &message) < 40, "warm again");

        // Another connection that sends often takes the one warm stream over; `a` must not
        // continue it, and starts again from its history.
        let (mut b, mut b_peer) = pair(15, 128, &shared);
        let other = noise(400, 9);
        for _ in 0..3 {
            send(&mut b, &mut b_peer, &other);
        }
        assert!(send(&mut b, &mut b_peer, &other) < 40, "b holds the stream");
        assert!(send(&mut a, &mut a_peer, &message) > 250, "a lost it");
        assert_eq!(shared.len(), 2, "never more than one warm stream");

        // A broadcast leaves a connection's stream behind too.
        send(&mut b, &mut b_peer, &other);
        b.reset_send_context();
        assert!(
            send(&mut b, &mut b_peer, &other) > 400,
            "fresh after a reset"
        );
    }
}

#[test]
fn connections_that_take_turns_within_the_limit_keep_their_streams() {
    let shared = SharedCompressor::with_warm_streams(3);
    let mut pairs: Vec<_> = (0..3).map(|_| pair(15, 128, &shared)).collect();
    let messages: Vec<Vec<u8>> = (0..3).map(|i| noise(400, 11 + i)).collect();
    let mut last = Vec::new();
    for round in 0..4 {
        last.clear();
        for ((server, client), message) in pairs.iter_mut().zip(&messages) {
            last.push(send(server, client, message));
        }
        assert!(shared.len() <= 4, "round {round}");
    }
    assert!(last.iter().all(|&n| n < 40), "{last:?}");
    // A fourth connection among them compresses every fourth message, less often than the
    // limit: it is served by the shared compressor, primed with its history, while the three
    // keep their streams (nobody who sends more often wants one).
    pairs.push(pair(15, 128, &shared));
    let mut messages = messages;
    messages.push(noise(400, 99));
    for _ in 0..3 {
        last.clear();
        for ((server, client), message) in pairs.iter_mut().zip(&messages) {
            last.push(send(server, client, message));
        }
    }
    assert!(
        last[..3].iter().all(|&n| n < 40) && last[3] > 250,
        "{last:?}"
    );
    assert_eq!(shared.len(), 4, "memory stays bounded");
}

fn messages() -> impl Strategy<Value = Vec<(Vec<u8>, u8, usize)>> {
    // (message, what happens before it: 0-7 nothing, 8 reset_send_context, 9 release,
    // which connection sends it)
    let alphabet = || prop::sample::select(b"abc{}\":, 0123456789".to_vec());
    let text = prop::collection::vec(alphabet(), 0..3000);
    // Most messages short enough for a warm stream (up to 512 bytes).
    let short = prop::collection::vec(alphabet(), 0..600);
    let bytes = prop::collection::vec(any::<u8>(), 0..600);
    prop::collection::vec(
        (
            prop_oneof![1 => text, 3 => short, 1 => bytes],
            0u8..10,
            0usize..3,
        ),
        1..24,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_message_decompresses_with_context_takeover(
        bits in 9u8..=15,
        level in 0u32..=9,
        history in prop::sample::select(vec![0u32, 1, 64, 700, 4096, 40_000]),
        warm in 0usize..3,
        script in messages(),
    ) {
        // Three connections share one compressor and its warm streams, each with its own
        // history: streams are taken, continued, taken over and left behind.
        let shared = SharedCompressor::with_warm_streams(warm);
        let one = || leveled(bits, level, history, &shared);
        let mut pairs = [one(), one(), one()];
        for (message, before, who) in &script {
            let (server, client) = &mut pairs[*who];
            match before {
                8 => server.reset_send_context(),
                9 => server.release_idle_state(),
                _ => {}
            }
            send(server, client, message);
            let cap = (history as usize).min(1 << bits);
            prop_assert!(server.send_history_len() <= cap);
            prop_assert!(shared.len() <= 1 + warm);
        }
    }
}
