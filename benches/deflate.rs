//! permessage-deflate throughput through `PerMessageDeflate`'s `Extension` hooks: compress a
//! whole message (`encode`) and inflate it in one piece (`decode`), in uncompressed MB/s.
//!
//! Cases: JSON-like text and pseudo-random binary with some redundancy; 4 KiB and 64 KiB; window
//! bits 9 and 15; levels 1 and 6. Both directions negotiate no context takeover, so every
//! iteration is one independent message, reset included (with takeover, compressing the same
//! message again would find it in the window and measure nothing real).
//!
//! `deflate/takeover`: context takeover the ways a server can keep it, each message a different
//! stretch of a JSON-like stream, sent round-robin over 1, 4 or 100 connections (128 B, 512 B
//! and 4 KiB): a compressor per connection (`own`), the worker's shared compressor primed with
//! each connection's 4 KiB send history (`history`), the same with 4 warm streams (`warm`, the
//! engine's default: 4 connections taking turns keep one each, 100 get none), and the shared
//! compressor from a fresh context (`fresh`). The wire bytes per message of each are printed.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sockeye_deflate::{DeflateConfig, PerMessageDeflate, SharedCompressor};
use sockeye_proto::Extension;
use sockeye_tests::deflate::negotiate;

const SIZES: [usize; 2] = [4 * 1024, 64 * 1024];
const WINDOWS: [u8; 2] = [9, 15];
const LEVELS: [u32; 2] = [1, 6];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Market-data-like JSON records, one per line.
fn json(len: usize) -> Vec<u8> {
    const SYMBOLS: [&str; 6] = ["BTC-USD", "ETH-USD", "SOL-USD", "EUR-USD", "AAPL", "MSFT"];
    let mut rng = Rng(0x6a73_6f6e);
    let mut out = String::with_capacity(len + 200);
    let mut seq = 1_000_000u64;
    while out.len() < len {
        let r = rng.next();
        seq += 1 + r % 3;
        out.push_str(&format!(
            "{{\"seq\":{seq},\"sym\":\"{}\",\"bid\":{}.{:02},\"ask\":{}.{:02},\"qty\":{},\
             \"side\":\"{}\",\"ts\":{}}}\n",
            SYMBOLS[(r >> 8) as usize % SYMBOLS.len()],
            40_000 + (r >> 16) % 5_000,
            (r >> 32) % 100,
            40_000 + (r >> 20) % 5_000,
            (r >> 40) % 100,
            (r >> 48) % 1_000,
            if r & 1 == 0 { "buy" } else { "sell" },
            1_712_345_678_000 + seq * 7,
        ));
    }
    out.truncate(len);
    out.into_bytes()
}

/// Random bytes where about a third of the stream repeats earlier stretches.
fn binary(len: usize) -> Vec<u8> {
    let mut rng = Rng(0x6269_6e61);
    let mut out = Vec::with_capacity(len + 256);
    while out.len() < len {
        let r = rng.next();
        if out.len() > 256 && r % 3 == 0 {
            let from = (r >> 8) as usize % (out.len() - 64);
            let n = 8 + (r >> 40) as usize % 56;
            for i in 0..n {
                out.push(out[from + i]);
            }
        } else {
            out.extend_from_slice(&rng.next().to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// A negotiated (client, server) pair: `bits` both ways, no context takeover either way.
fn pair(bits: u8, level: u32) -> (PerMessageDeflate, PerMessageDeflate) {
    let mut config = DeflateConfig::default();
    config.server_max_window_bits = bits;
    config.client_max_window_bits = bits;
    config.server_no_context_takeover = true;
    config.client_no_context_takeover = true;
    config.level = level;
    config.threshold = 0;
    negotiate(config, config)
}

fn cases() -> Vec<(String, Vec<u8>, u8, u32)> {
    let mut cases = Vec::new();
    for (kind, make) in [("json", json as fn(usize) -> Vec<u8>), ("binary", binary)] {
        for size in SIZES {
            let data = make(size);
            for bits in WINDOWS {
                for level in LEVELS {
                    let name = format!("{kind}_{}k_w{bits}_l{level}", size / 1024);
                    cases.push((name, data.clone(), bits, level));
                }
            }
        }
    }
    cases
}

fn compress(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate/compress");
    for (name, data, bits, level) in cases() {
        let (_, mut server) = pair(bits, level);
        let mut out = Vec::with_capacity(data.len() + 1024);
        server.encode(&data, &mut out).unwrap();
        println!(
            "{name}: {} -> {} bytes ({:.1}%)",
            data.len(),
            out.len(),
            100.0 * out.len() as f64 / data.len() as f64
        );
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(&name), &data, |b, data| {
            b.iter(|| {
                out.clear();
                black_box(server.encode(black_box(data), &mut out).unwrap());
            });
        });
    }
    group.finish();
}

fn decompress(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate/decompress");
    for (name, data, bits, level) in cases() {
        let (mut client, mut server) = pair(bits, level);
        let mut payload = Vec::new();
        client.encode(&data, &mut payload).unwrap();
        let mut out = Vec::with_capacity(data.len());
        server.decode(&payload, true, &mut out, usize::MAX).unwrap();
        assert_eq!(out, data);
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(&name),
            &payload,
            |b, payload| {
                b.iter(|| {
                    out.clear();
                    server
                        .decode(black_box(payload), true, &mut out, usize::MAX)
                        .unwrap();
                    black_box(out.len());
                });
            },
        );
    }
    group.finish();
}

/// A negotiated server sending with context takeover at level 6, 15 bits: with a compressor of
/// its own, or from `shared` with `history` bytes of send history.
fn takeover_server(shared: Option<&SharedCompressor>, history: u32) -> PerMessageDeflate {
    let mut config = DeflateConfig::default();
    config.threshold = 0;
    config.send_history = history;
    let server = negotiate(config, config).1;
    match shared {
        Some(shared) => server.with_shared_compressor(shared.clone()),
        None => server,
    }
}

fn takeover(c: &mut Criterion) {
    // Prime, so that each of 4 or 100 connections taking turns gets every message in turn
    // (with 1000, one of 100 connections would send the same 10 again and again).
    const MESSAGES: usize = 1009;
    let mut group = c.benchmark_group("deflate/takeover");
    let stream = json(4096 * MESSAGES / 8);
    for size in [128, 512, 4096] {
        // Different stretches of the stream, so that no message repeats the last.
        let messages: Vec<&[u8]> = (0..MESSAGES)
            .map(|i| {
                let at = (i * 7919 * 61) % (stream.len() - size);
                &stream[at..at + size]
            })
            .collect();
        for (how, conns) in [
            ("own", 1),
            ("own", 100),
            ("history", 4),
            ("history", 100),
            ("warm", 4),
            ("warm", 100),
            ("fresh", 100),
        ] {
            // "warm": 4 warm streams, which 4 connections taking turns keep and 100 do not get.
            let shared = SharedCompressor::with_warm_streams(if how == "warm" { 4 } else { 0 });
            let mut servers: Vec<PerMessageDeflate> = (0..conns)
                .map(|_| match how {
                    "own" => takeover_server(None, 0),
                    "history" | "warm" => takeover_server(Some(&shared), 4096),
                    _ => takeover_server(Some(&shared), 0),
                })
                .collect();
            let mut out = Vec::with_capacity(size + 1024);
            let mut wire = 0;
            for (i, message) in messages.iter().enumerate() {
                out.clear();
                servers[i % conns].encode(message, &mut out).unwrap();
                wire += out.len();
            }
            let name = format!("{how}_{conns}_{size}B");
            println!(
                "{name}: {:.1} wire bytes per message",
                wire as f64 / MESSAGES as f64
            );
            group.throughput(Throughput::Elements(1));
            let mut i = 0;
            group.bench_function(BenchmarkId::from_parameter(&name), |b| {
                b.iter(|| {
                    out.clear();
                    let message = messages[i % MESSAGES];
                    black_box(
                        servers[i % conns]
                            .encode(black_box(message), &mut out)
                            .unwrap(),
                    );
                    i += 1;
                });
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    targets = compress, decompress, takeover
}
criterion_main!(benches);
