//! Frame header decoding, as a server receives masked client frames.
//!
//! `unchecked` is the reference floor: the same fields read with no RFC 6455 rule checked and no
//! partial-input handling.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sockeye_proto::frame::{FrameHeader, MAX_HEADER_LEN, OpCode, Rsv};
use sockeye_proto::{Role, Status};

/// (case, payload length): one per length encoding.
const CASES: [(&str, u64); 3] = [("len7", 125), ("len16", 1024), ("len64", 1 << 20)];

fn encoded(payload_len: u64) -> Vec<u8> {
    let header = FrameHeader {
        fin: true,
        rsv: Rsv::NONE,
        opcode: OpCode::Binary,
        mask: Some([0x37, 0xfa, 0x21, 0x3d]),
        payload_len,
    };
    let mut out = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut out);
    out[..n].to_vec()
}

/// The fields of a complete, valid header with no checks: what the rules cost is the difference.
fn decode_unchecked(buf: &[u8]) -> (u64, Option<[u8; 4]>, usize) {
    let short = buf[1] & 0x7f;
    let (len, mut n) = match short {
        126 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 => (
            u64::from_be_bytes(buf[2..10].try_into().unwrap_or_default()),
            10,
        ),
        len => (u64::from(len), 2),
    };
    let mask = if buf[1] & 0x80 != 0 {
        n += 4;
        buf[n - 4..n].try_into().ok()
    } else {
        None
    };
    (len, mask, n)
}

fn decode_header(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame/decode_header");
    group.throughput(Throughput::Elements(1));
    for (case, payload_len) in CASES {
        let bytes = encoded(payload_len);
        let Ok(Status::Complete((header, n))) =
            FrameHeader::decode(&bytes, Role::Server, Rsv::NONE)
        else {
            panic!("{case}: header does not decode");
        };
        assert_eq!((header.payload_len, n), (payload_len, bytes.len()));
        assert_eq!(decode_unchecked(&bytes), (payload_len, header.mask, n));

        group.bench_with_input(BenchmarkId::new("sockeye", case), &bytes, |b, bytes| {
            b.iter(|| FrameHeader::decode(black_box(bytes), Role::Server, Rsv::NONE));
        });
        group.bench_with_input(BenchmarkId::new("unchecked", case), &bytes, |b, bytes| {
            b.iter(|| decode_unchecked(black_box(bytes)));
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
    targets = decode_header
}
criterion_main!(benches);
