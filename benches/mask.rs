//! In-place (un)masking: the word-wide `apply_mask`, its bytewise twin, and `memcpy` of the same
//! length as the ceiling (one read and one write of every byte, like masking in place). Then a
//! payload masked on its way into another buffer (a client's frame, a server's reassembled
//! message): `extend_masked`'s one pass against a copy followed by `apply_mask` in place.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sockeye_proto::mask::{apply_mask, apply_mask_bytewise, extend_masked};

const SIZES: [usize; 5] = [0, 125, 1024, 64 * 1024, 1024 * 1024];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask/apply");
    for len in SIZES {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let mut fast = data.clone();
        let mut slow = data.clone();
        apply_mask(&mut fast, KEY, 0);
        apply_mask_bytewise(&mut slow, KEY, 0);
        assert_eq!(fast, slow, "len {len}");

        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("fast", len), &len, |b, _| {
            b.iter(|| apply_mask(black_box(&mut fast), black_box(KEY), 0));
        });
        group.bench_with_input(BenchmarkId::new("bytewise", len), &len, |b, _| {
            b.iter(|| apply_mask_bytewise(black_box(&mut slow), black_box(KEY), 0));
        });
        let mut dst = vec![0u8; len];
        group.bench_with_input(BenchmarkId::new("memcpy", len), &len, |b, _| {
            b.iter(|| black_box(&mut dst).copy_from_slice(black_box(&data)));
        });
    }
    group.finish();
}

fn copy(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask/copy");
    for len in SIZES {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let mut expected = data.clone();
        apply_mask_bytewise(&mut expected, KEY, 0);
        let mut out = Vec::with_capacity(len);
        extend_masked(&mut out, &data, KEY, 0);
        assert_eq!(out, expected, "len {len}");

        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("one-pass", len), &len, |b, _| {
            b.iter(|| {
                out.clear();
                extend_masked(black_box(&mut out), black_box(&data), black_box(KEY), 0);
            });
        });
        group.bench_with_input(BenchmarkId::new("copy-then-mask", len), &len, |b, _| {
            b.iter(|| {
                out.clear();
                black_box(&mut out).extend_from_slice(black_box(&data));
                apply_mask(&mut out, black_box(KEY), 0);
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
    targets = apply, copy
}
criterion_main!(benches);
