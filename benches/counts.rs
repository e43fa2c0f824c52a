//! The code paths of the criterion benches, one at a time, a given number of times: the program
//! that `benches/counts.py` runs under `valgrind --tool=callgrind` to count user-space
//! instructions per operation (the difference of two runs, N and 2N operations, divided by N,
//! so that start-up and set-up cancel out).
//!
//! `cargo bench --bench counts -- PATH N` runs PATH N times; `-- --list` names the paths. Any
//! other arguments (the bench smoke run's `--test`) run every path a few times and check the
//! results.

use std::hint::black_box;
use std::time::Instant;

use sockeye_deflate::{DeflateConfig, PerMessageDeflate, SharedCompressor};
use sockeye_proto::connection::write_frame;
use sockeye_proto::frame::{FrameHeader, OpCode, Rsv};
use sockeye_proto::handshake::{AcceptKey, Limits, parse_request};
use sockeye_proto::mask::apply_mask;
use sockeye_proto::utf8::Utf8Validator;
use sockeye_proto::{Config, Connection, Extension, Message, NoExtension, Role};
use sockeye_tests::deflate::negotiate;
use sockeye_tests::vectors::{BROWSER_REQUEST, utf8_text};

/// One path: its name, what one operation is, and a runner of N operations that returns a
/// checksum of the results (so that nothing is optimized away and the smoke run can check it).
struct Path {
    name: &'static str,
    unit: &'static str,
    run: fn(u64) -> u64,
}

const PATHS: &[Path] = &[
    Path {
        name: "mask-4KiB",
        unit: "4 KiB unmasked",
        run: mask_4k,
    },
    Path {
        name: "frame-decode",
        unit: "header decoded",
        run: frame_decode,
    },
    Path {
        name: "handshake",
        unit: "browser request parsed, accept key computed",
        run: handshake,
    },
    Path {
        name: "utf8-4KiB",
        unit: "4 KiB of mixed text validated",
        run: utf8_4k,
    },
    Path {
        name: "read-16B",
        unit: "16 B masked text frame read by a server connection",
        run: read_16,
    },
    Path {
        name: "send-16B",
        unit: "16 B binary message framed by a server connection",
        run: send_16,
    },
    Path {
        name: "deflate-4KiB",
        unit: "4 KiB JSON-like message compressed (shared compressor, 4 KiB history)",
        run: deflate_4k,
    },
    Path {
        name: "deflate-4KiB-fresh",
        unit: "the same from a fresh context (no history)",
        run: deflate_4k_fresh,
    },
    Path {
        name: "deflate-256B",
        unit: "256 B JSON-like message compressed (shared compressor, history, no warm stream)",
        run: deflate_256,
    },
    Path {
        name: "deflate-256B-warm",
        unit: "the same by a connection holding one of 4 warm streams",
        run: deflate_256_warm,
    },
    Path {
        name: "inflate-4KiB",
        unit: "4 KiB JSON-like message decompressed (context takeover)",
        run: inflate_4k,
    },
];

fn mask_4k(n: u64) -> u64 {
    let mut buf = vec![0x5au8; 4096];
    let mut sum = 0;
    for i in 0..n {
        apply_mask(black_box(&mut buf), black_box((i as u32).to_ne_bytes()), 0);
        sum += 1 + u64::from(buf[4095]);
    }
    sum
}

fn frame_decode(n: u64) -> u64 {
    let mut wire = Vec::new();
    write_frame(
        &mut wire,
        OpCode::Binary,
        Rsv::NONE,
        &[7; 300],
        Some([1, 2, 3, 4]),
    );
    let mut sum = 0;
    for _ in 0..n {
        if let Ok(sockeye_proto::Status::Complete((header, len))) =
            FrameHeader::decode(black_box(&wire), Role::Server, Rsv::NONE)
        {
            sum += header.payload_len + len as u64;
        }
    }
    sum
}

fn handshake(n: u64) -> u64 {
    let mut sum = 0;
    for _ in 0..n {
        if let Ok(sockeye_proto::Status::Complete(request)) =
            parse_request(black_box(BROWSER_REQUEST), &Limits::default())
        {
            sum += AcceptKey::from_key(request.key().as_bytes()).as_str().len() as u64;
        }
    }
    sum
}

fn utf8_4k(n: u64) -> u64 {
    // One- to four-byte characters.
    let text = utf8_text("price €12 — 値段 🐟 ok; ", 4096);
    let mut ok = 0;
    for _ in 0..n {
        let mut v = Utf8Validator::new();
        if v.feed(black_box(&text)).is_ok() && v.finish().is_ok() {
            ok += 1;
        }
    }
    ok
}

fn read_16(n: u64) -> u64 {
    let mut frame = Vec::new();
    write_frame(
        &mut frame,
        OpCode::Text,
        Rsv::NONE,
        b"sixteen bytes!!!",
        Some([9, 8, 7, 6]),
    );
    let mut conn = Connection::server(Config::default(), NoExtension);
    let (mut input, mut message_buf, now) = (frame.clone(), Vec::new(), Instant::now());
    let mut events = 0;
    for _ in 0..n {
        // Unmasked in place: each read gets a fresh copy of the frame.
        input.copy_from_slice(&frame);
        let read = conn
            .handle_read(black_box(&mut input), &mut message_buf, now)
            .expect("a valid frame");
        events += u64::from(read.event.is_some());
    }
    events
}

fn send_16(n: u64) -> u64 {
    let mut conn = Connection::server(Config::default(), NoExtension);
    let mut out = Vec::with_capacity(64);
    let mut bytes = 0;
    for _ in 0..n {
        out.clear();
        conn.send(Message::Binary(black_box(b"sixteen bytes!!!")), &mut out)
            .expect("sent");
        bytes += out.len() as u64;
    }
    bytes
}

/// JSON-like quotes, each message a different one.
fn quotes(count: usize, len: usize) -> Vec<Vec<u8>> {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    (0..count)
        .map(|_| {
            let mut message = Vec::with_capacity(len + 128);
            while message.len() < len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                message.extend_from_slice(
                    format!(
                        "{{\"seq\":{},\"symbol\":\"{}\",\"bid\":{}.{:02},\"size\":{}}},",
                        seed % 100_000,
                        ["SOCK", "EYE", "FISH", "RIVR"][(seed >> 20) as usize % 4],
                        100 + (seed >> 24) % 400,
                        (seed >> 36) % 100,
                        (seed >> 44) % 10_000
                    )
                    .as_bytes(),
                );
            }
            message.truncate(len);
            message
        })
        .collect()
}

/// A negotiated (server, client) pair with context takeover both ways; the server compresses
/// with a shared compressor of `warm` warm streams and `history` bytes of send history.
fn deflate_pair(history: u32, warm: usize) -> (PerMessageDeflate, PerMessageDeflate) {
    let mut config = DeflateConfig::default();
    config.threshold = 0;
    config.send_history = history;
    let (client, server) = negotiate(config, config);
    (
        server.with_shared_compressor(SharedCompressor::with_warm_streams(warm)),
        client,
    )
}

const MESSAGES: usize = 64;

fn deflate_4k(n: u64) -> u64 {
    compress(n, 4096, DeflateConfig::DEFAULT.send_history, 0)
}

fn deflate_4k_fresh(n: u64) -> u64 {
    compress(n, 4096, 0, 0)
}

fn deflate_256(n: u64) -> u64 {
    compress(n, 256, DeflateConfig::DEFAULT.send_history, 0)
}

fn deflate_256_warm(n: u64) -> u64 {
    compress(n, 256, DeflateConfig::DEFAULT.send_history, 4)
}

/// One connection compresses `n` messages of `size` bytes in turn.
fn compress(n: u64, size: usize, history: u32, warm: usize) -> u64 {
    let messages = quotes(MESSAGES, size);
    let (mut server, _) = deflate_pair(history, warm);
    let mut out = Vec::with_capacity(8192);
    let mut bytes = 0;
    for i in 0..n as usize {
        out.clear();
        server
            .encode(black_box(&messages[i % MESSAGES]), &mut out)
            .expect("compressed");
        bytes += out.len() as u64;
    }
    bytes
}

fn inflate_4k(n: u64) -> u64 {
    let messages = quotes(MESSAGES, 4096);
    let history = DeflateConfig::DEFAULT.send_history;
    let (mut server, mut client) = deflate_pair(history, 0);
    // The server's compressed stream, made once outside the counted part (which is the same
    // for N and 2N, so it cancels out); the client decompresses it in order, round after round
    // with its context reset at each round's start.
    let compressed: Vec<Vec<u8>> = messages
        .iter()
        .map(|m| {
            let mut out = Vec::new();
            server.encode(m, &mut out).expect("compressed");
            out
        })
        .collect();
    let mut out = Vec::with_capacity(8192);
    let mut bytes = 0;
    for i in 0..n as usize {
        if i % MESSAGES == 0 {
            client = deflate_pair(history, 0).1;
        }
        out.clear();
        client
            .decode(black_box(&compressed[i % MESSAGES]), true, &mut out, 8192)
            .expect("decompressed");
        bytes += out.len() as u64;
    }
    bytes
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--list" => {
            for path in PATHS {
                println!("{}\t{}", path.name, path.unit);
            }
        }
        [name, n] if PATHS.iter().any(|p| p.name == name) => {
            let path = PATHS.iter().find(|p| p.name == name).expect("found");
            let n: u64 = n.parse().expect("N: a count of operations");
            println!("{} {}", path.name, (path.run)(n));
        }
        _ => {
            // Smoke: each path runs, and twice the operations give twice the checksum.
            for path in PATHS {
                let (one, two) = ((path.run)(MESSAGES as u64), (path.run)(2 * MESSAGES as u64));
                assert!(one > 0 && two > one, "{}: {one}, {two}", path.name);
                // The mask's checksum depends on the keys, and the first compressed messages
                // have no history or warm stream: the others do twice the work for twice the
                // operations.
                let history = path.name.starts_with("deflate-") && !path.name.ends_with("fresh");
                if path.name != "mask-4KiB" && !history {
                    assert_eq!(two, 2 * one, "{}", path.name);
                }
            }
            println!("counts: {} paths ran", PATHS.len());
        }
    }
}
