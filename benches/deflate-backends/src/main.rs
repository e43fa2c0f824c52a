//! flate2's deflate backends on the compression sockeye does: 4 KiB JSON-like text messages,
//! level 6, 15-bit windows, each message ended with a sync flush (RFC 7692 §7.2.1).
//!
//! `--mode own`: a compressor per connection with context takeover, the connections in turn
//! (the state of 100 compressors does not fit in cache). `--mode shared`: one compressor for
//! every connection, reset and primed with the connection's last 4 KiB before each message, as
//! `sockeye serve --deflate` does by default. `--mode own-mem5`: `own` through zlib-rs' own
//! API at memLevel 5, sockeye's default (flate2 fixes memLevel at 8; zlib-rs builds only).
//!
//! Prints one line: backend, mode, messages, microseconds and compressed bytes per message.
//!
//! ```sh
//! cargo build --release --features zlib-ng --target-dir target/zlib-ng
//! taskset -c 1 target/zlib-ng/release/sockeye-deflate-backends --mode shared
//! ```

use std::time::Instant;

use flate2::{Compress, Compression, FlushCompress};

const LEVEL: u32 = 6;
const MESSAGE: usize = 4096;
/// Distinct messages (prime, so that message and history pairs keep changing).
const DISTINCT: usize = 997;

const BACKEND: &str = if cfg!(feature = "zlib-rs") {
    "zlib-rs"
} else if cfg!(feature = "zlib-ng") {
    "zlib-ng"
} else if cfg!(feature = "zlib") {
    "zlib"
} else if cfg!(feature = "miniz") {
    "miniz_oxide"
} else {
    "none"
};

fn main() {
    let mut mode = String::from("own");
    let mut connections = 100usize;
    let mut rounds = 30usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--mode" => mode = value,
            "--connections" => connections = value.parse().unwrap_or_else(|_| usage("a count")),
            "--rounds" => rounds = value.parse().unwrap_or_else(|_| usage("a count")),
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    let messages = quotes(DISTINCT, MESSAGE);
    let started = Instant::now();
    let (count, bytes) = match mode.as_str() {
        "own" => own(&messages, connections, rounds),
        "shared" => shared(&messages, connections * rounds),
        "own-mem5" => own_mem5(&messages, connections, rounds),
        other => usage(&format!("unknown mode {other}")),
    };
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{BACKEND} {mode} messages {count} us/msg {:.2} bytes/msg {:.1}",
        seconds / count as f64 * 1e6,
        bytes as f64 / count as f64
    );
}

fn usage(why: &str) -> ! {
    eprintln!(
        "sockeye-deflate-backends: {why}\nusage: sockeye-deflate-backends \
         [--mode own|shared|own-mem5] [--connections N] [--rounds N]"
    );
    std::process::exit(2)
}

/// JSON-like quotes, `len` bytes each.
fn quotes(count: usize, len: usize) -> Vec<Vec<u8>> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let symbols = [
        "BTC-USD", "ETH-USD", "SOL-USD", "EUR-USD", "AAPL", "MSFT", "NVDA", "TSLA",
    ];
    (0..count)
        .map(|_| {
            let mut text = String::from("[");
            while text.len() < len {
                let r = next();
                text.push_str(&format!(
                    "{{\"sym\":\"{}\",\"bid\":{}.{:02},\"ask\":{}.{:02},\"size\":{},\"ts\":{}}},",
                    symbols[(r % 8) as usize],
                    100 + r % 900,
                    (r >> 10) % 100,
                    100 + (r >> 20) % 900,
                    (r >> 30) % 100,
                    (r >> 40) % 5000,
                    1_700_000_000_000u64 + (r >> 24) % 1_000_000
                ));
            }
            text.truncate(len);
            text.into_bytes()
        })
        .collect()
}

fn compressor() -> Compress {
    // miniz_oxide takes no window size: its raw streams always use 15 bits.
    #[cfg(not(feature = "miniz"))]
    return Compress::new_with_window_bits(Compression::new(LEVEL), false, 15);
    #[cfg(feature = "miniz")]
    return Compress::new(Compression::new(LEVEL), false);
}

/// Compresses `message` whole with a sync flush; the compressed length.
fn compress(c: &mut Compress, message: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    let before = c.total_in();
    c.compress_vec(message, out, FlushCompress::Sync)
        .expect("compression");
    assert_eq!(
        c.total_in() - before,
        message.len() as u64,
        "room for it all"
    );
    out.len()
}

/// A compressor per connection, the connections in turn: (messages, compressed bytes).
fn own(messages: &[Vec<u8>], connections: usize, rounds: usize) -> (usize, usize) {
    let mut compressors: Vec<Compress> = (0..connections).map(|_| compressor()).collect();
    let mut out = Vec::with_capacity(2 * MESSAGE);
    let (mut count, mut bytes) = (0, 0);
    for _ in 0..rounds {
        for c in &mut compressors {
            bytes += compress(c, &messages[(count * 7) % DISTINCT], &mut out);
            count += 1;
        }
    }
    (count, bytes)
}

/// One compressor, reset and primed with the previous message before each: (messages, bytes).
#[cfg(not(feature = "miniz"))]
fn shared(messages: &[Vec<u8>], total: usize) -> (usize, usize) {
    let mut c = compressor();
    let mut out = Vec::with_capacity(2 * MESSAGE);
    let mut bytes = 0;
    for i in 0..total {
        c.reset();
        c.set_dictionary(&messages[(i * 7 + DISTINCT - 7) % DISTINCT])
            .expect("a dictionary");
        bytes += compress(&mut c, &messages[(i * 7) % DISTINCT], &mut out);
    }
    (total, bytes)
}

#[cfg(feature = "miniz")]
fn shared(_: &[Vec<u8>], _: usize) -> (usize, usize) {
    usage("miniz_oxide has no preset dictionary through flate2")
}

/// `own` through zlib-rs' API at memLevel 5: (messages, compressed bytes).
#[cfg(feature = "zlib-rs")]
fn own_mem5(messages: &[Vec<u8>], connections: usize, rounds: usize) -> (usize, usize) {
    let config = zlib_rs::DeflateConfig {
        level: LEVEL as i32,
        window_bits: -15,
        mem_level: 5,
        ..zlib_rs::DeflateConfig::default()
    };
    let mut compressors: Vec<_> = (0..connections)
        .map(|_| zlib_rs::Deflate::new_with_config(config))
        .collect();
    let mut out = vec![0u8; 2 * MESSAGE];
    let (mut count, mut bytes) = (0, 0);
    for _ in 0..rounds {
        for c in &mut compressors {
            let message = &messages[(count * 7) % DISTINCT];
            let (before_in, before_out) = (c.total_in(), c.total_out());
            c.compress(message, &mut out, zlib_rs::DeflateFlush::SyncFlush)
                .expect("compression");
            assert_eq!(
                c.total_in() - before_in,
                message.len() as u64,
                "room for it all"
            );
            bytes += (c.total_out() - before_out) as usize;
            count += 1;
        }
    }
    (count, bytes)
}

#[cfg(not(feature = "zlib-rs"))]
fn own_mem5(_: &[Vec<u8>], _: usize, _: usize) -> (usize, usize) {
    usage("own-mem5 needs the zlib-rs build")
}
