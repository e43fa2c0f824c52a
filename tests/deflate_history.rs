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
    with_mem_level(
        bits,
        level,
        DeflateConfig::default().mem_level,
        history,
        shared,
    )
}

/// The same with zlib's `mem_level`.
fn with_mem_level(
    bits: u8,
    level: u32,
    mem_level: u8,
    history: u32,
    shared: &SharedCompressor,
) -> (PerMessageDeflate, PerMessageDeflate) {
    let mut config = DeflateConfig::default();
    config.level = level;
    config.mem_level = mem_level;
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
        // short one takes a stream again, primed with the history: the long one's last 128
        // bytes, which it repeats.
        let long = noise(2000, 8);
        send(&mut a, &mut a_peer, &long);
        let next = [&long[long.len() - 128..], &noise(272, 10)[..]].concat();
        let primed = send(&mut a, &mut a_peer, &next);
        assert!((250..330).contains(&primed), "primed again: {primed}");
        assert!(send(&mut a, &mut a_peer, &next) < 40, "warm again");

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

#[test]
fn a_connection_that_ends_or_resets_gives_its_stream_back() {
    let shared = SharedCompressor::with_warm_streams(2);
    let (mut b, mut b_peer) = pair(15, 128, &shared);
    let (mut a, mut a_peer) = pair(15, 128, &shared);
    let (bm, am) = (noise(400, 21), noise(400, 22));
    // b takes a stream, then a (the more recent one).
    for _ in 0..2 {
        send(&mut b, &mut b_peer, &bm);
    }
    for _ in 0..2 {
        send(&mut a, &mut a_peer, &am);
    }
    assert!(send(&mut a, &mut a_peer, &am) < 40);
    for end in ["drop", "reset"] {
        // a gives its stream back; c, a new frequent sender, takes that one rather than b's,
        // the least recently used of those still held.
        if end == "drop" {
            drop(a);
        } else {
            a.reset_send_context();
        }
        let (mut c, mut c_peer) = pair(15, 128, &shared);
        let cm = noise(400, 23);
        for _ in 0..2 {
            send(&mut c, &mut c_peer, &cm);
        }
        assert!(
            send(&mut c, &mut c_peer, &cm) < 40,
            "{end}: c holds a stream"
        );
        assert!(
            send(&mut b, &mut b_peer, &bm) < 40,
            "{end}: b kept its stream"
        );
        assert_eq!(shared.len(), 3);
        // The next round ends c the other way; its peer receives nothing more.
        a = c;
    }
}

#[test]
fn a_stream_taken_over_takes_the_new_holders_window() {
    // x (15 bits) holds the one stream; y (9 bits: a 512-byte window) takes it over and repeats
    // bytes it sent more than 512 bytes back, which only a 15-bit compressor would refer to.
    let shared = SharedCompressor::with_warm_streams(1);
    let (mut x, mut x_peer) = pair(15, 128, &shared);
    let (mut y, mut y_peer) = pair(9, 128, &shared);
    let (xm, y1, y2) = (noise(400, 41), noise(400, 42), noise(400, 43));
    for _ in 0..2 {
        send(&mut x, &mut x_peer, &xm);
    }
    send(&mut y, &mut y_peer, &y1);
    send(&mut y, &mut y_peer, &y2);
    // The stream is now a 9-bit compressor. (This decompressor reads references up to 32 KiB
    // back whatever the window agreed, so decoding alone would not tell; zlib's would refuse.)
    let debug = format!("{shared:?}");
    assert!(debug.contains("warm_streams: [(9, 6, 5)]"), "{debug}");
    send(&mut y, &mut y_peer, &y1);
    send(&mut y, &mut y_peer, &y2);
}

#[test]
fn a_connection_moved_to_another_shared_compressor_never_continues_a_stream_there() {
    let (one, two) = (
        SharedCompressor::with_warm_streams(1),
        SharedCompressor::with_warm_streams(1),
    );
    let (mut c, mut c_peer) = pair(15, 128, &one);
    let (mut d, mut d_peer) = pair(15, 128, &two);
    let (cm, dm) = (noise(400, 31), noise(400, 32));
    for _ in 0..3 {
        send(&mut c, &mut c_peer, &cm);
        send(&mut d, &mut d_peer, &dm);
    }
    let mut c = c.with_shared_compressor(two.clone());
    // Each decodes right (`send` checks), whatever the tokens each compressor gave.
    for _ in 0..3 {
        send(&mut c, &mut c_peer, &cm);
        send(&mut d, &mut d_peer, &dm);
    }
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
        mem_level in 1u8..=9,
        history in prop::sample::select(vec![0u32, 1, 64, 700, 4096, 40_000]),
        warm in 0usize..3,
        script in messages(),
    ) {
        // Three connections share one compressor and its warm streams, each with its own
        // history, window and level: streams are taken, continued, taken over (from a
        // connection with other settings too) and left behind.
        let shared = SharedCompressor::with_warm_streams(warm);
        let one = |i: u8| {
            let (bits, level) = ((bits - i).max(9), (level + u32::from(i)) % 10);
            with_mem_level(bits, level, mem_level.saturating_sub(i).max(1), history, &shared)
        };
        let mut pairs = [one(0), one(1), one(2)];
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
            prop_assert!(shared.len() <= 3 + warm, "one per setting and the warm streams");
        }
    }
}
