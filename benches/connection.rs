//! The connection state machine in an engine's read loop, and `send`.
//!
//! `handle_read` drives a fresh server connection over a buffer of 1000 masked client frames
//! (unmasked in place, so each iteration gets a fresh copy, made outside the timing);
//! `handle_read` reports frames/s and `handle_read_bytes` the same runs in bytes/s.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
    measurement::WallTime,
};
use sockeye_proto::connection::write_frame;
use sockeye_proto::frame::{OpCode, Rsv};
use sockeye_proto::{Config, Connection, Message, NoExtension, Role};

const FRAMES: usize = 1000;
const TEXT16: &str = "sixteen bytes!!!";

/// `FRAMES` whole masked client frames of `payload`, each with its own key.
fn wire(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut key = 0x37fa_213d_u32;
    for _ in 0..FRAMES {
        key = key.rotate_left(5) ^ 0x9e37_79b9;
        write_frame(
            &mut out,
            opcode,
            Rsv::NONE,
            payload,
            Some(key.to_ne_bytes()),
        );
    }
    out
}

/// The engine loop over one read's worth of bytes; returns the number of events.
fn drive(input: &mut [u8], message_buf: &mut Vec<u8>, now: Instant) -> usize {
    let mut conn = Connection::server(Config::default(), NoExtension);
    let mut offset = 0;
    let mut events = 0;
    loop {
        let read = conn
            .handle_read(&mut input[offset..], message_buf, now)
            .expect("valid frames");
        offset += read.consumed;
        if let Some(event) = read.event {
            black_box(event);
            events += 1;
        } else if read.consumed == 0 {
            break;
        }
    }
    events
}

fn read_cases() -> [(&'static str, Vec<u8>); 2] {
    [
        ("text16", wire(OpCode::Text, TEXT16.as_bytes())),
        ("binary1KiB", wire(OpCode::Binary, &[0xa5; 1024])),
    ]
}

fn bench_reads(group: &mut BenchmarkGroup<'_, WallTime>, bytes: bool) {
    let now = Instant::now();
    let mut message_buf = Vec::new();
    for (case, wire) in read_cases() {
        assert_eq!(drive(&mut wire.clone(), &mut message_buf, now), FRAMES);
        group.throughput(if bytes {
            Throughput::Bytes(wire.len() as u64)
        } else {
            Throughput::Elements(FRAMES as u64)
        });
        group.bench_with_input(BenchmarkId::new("server", case), &wire, |b, wire| {
            b.iter_batched_ref(
                || wire.clone(),
                |input| drive(input, &mut message_buf, now),
                BatchSize::LargeInput,
            );
        });
    }
}

fn handle_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("connection/handle_read");
    bench_reads(&mut group, false);
    group.finish();
    let mut group = c.benchmark_group("connection/handle_read_bytes");
    bench_reads(&mut group, true);
    group.finish();
}

fn send(c: &mut Criterion) {
    let mut group = c.benchmark_group("connection/send");
    group.throughput(Throughput::Elements(1));
    for (name, role) in [("server", Role::Server), ("client", Role::Client)] {
        let mut conn = match role {
            Role::Server => Connection::server(Config::default(), NoExtension),
            Role::Client => Connection::client(Config::default(), NoExtension, 0x5eed),
        };
        let mut out = Vec::with_capacity(FRAMES * (TEXT16.len() + 6));
        let mut sent = 0;
        group.bench_function(BenchmarkId::new(name, "text16"), |b| {
            b.iter(|| {
                if sent == FRAMES {
                    out.clear();
                    sent = 0;
                }
                sent += 1;
                conn.send(Message::Text(black_box(TEXT16)), &mut out)
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    targets = handle_read, send
}
criterion_main!(benches);
