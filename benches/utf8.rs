//! UTF-8 validation of text payloads: the incremental validator whole and in 4 KiB reads (which
//! cut code points), against `std::str::from_utf8`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sockeye_proto::utf8::{Utf8Error, Utf8Validator};
use sockeye_tests::vectors::utf8_text;

const SIZES: [(usize, &str); 4] = [
    (125, "125"),
    (1024, "1KiB"),
    (64 * 1024, "64KiB"),
    (1024 * 1024, "1MiB"),
];
const CHUNK: usize = 4096;

/// One to four bytes per code point; 70 bytes long, so 4 KiB reads land inside code points.
const MIXED: &str = "Hello, κόσμε! 日本語のテキスト 🦀🎉 Grüße, ça va? ";

fn incremental(data: &[u8]) -> Result<(), Utf8Error> {
    let mut v = Utf8Validator::new();
    v.feed(data)?;
    v.finish()
}

fn incremental_chunks(data: &[u8]) -> Result<(), Utf8Error> {
    let mut v = Utf8Validator::new();
    for chunk in data.chunks(CHUNK) {
        v.feed(chunk)?;
    }
    v.finish()
}

fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8/validate");
    for (kind, pattern) in [
        ("ascii", "The quick brown fox jumps over the lazy dog. "),
        ("mixed", MIXED),
    ] {
        for (len, size) in SIZES {
            let data = utf8_text(pattern, len);
            assert_eq!(data.len(), len);
            assert!(std::str::from_utf8(&data).is_ok());
            assert_eq!(incremental(&data), Ok(()));
            assert_eq!(incremental_chunks(&data), Ok(()));
            if kind == "mixed" && len > CHUNK {
                let cuts = (CHUNK..len)
                    .step_by(CHUNK)
                    .filter(|&i| (data[i] as i8) < -0x40);
                assert!(
                    cuts.count() > 0,
                    "no 4 KiB read cuts a code point at {size}"
                );
            }

            let param = format!("{kind}-{size}");
            group.throughput(Throughput::Bytes(len as u64));
            group.bench_with_input(BenchmarkId::new("incremental", &param), &data, |b, data| {
                b.iter(|| incremental(black_box(data)));
            });
            group.bench_with_input(
                BenchmarkId::new("incremental_4k_chunks", &param),
                &data,
                |b, data| b.iter(|| incremental_chunks(black_box(data))),
            );
            group.bench_with_input(BenchmarkId::new("std", &param), &data, |b, data| {
                b.iter(|| std::str::from_utf8(black_box(data)).is_ok());
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
    targets = validate
}
criterion_main!(benches);
