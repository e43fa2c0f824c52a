//! The upgrade handshake: request parsing against `httparse`, the accept key, the 101 response.
//!
//! `handshake/parse` compares like with unlike on purpose: `sockeye` checks every rule of
//! RFC 6455 §4.2.1 (and decodes the key), `sockeye_head` is its grammar-only scan
//! (`parse_head`), and `httparse` only tokenises the head into 32 header slots.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sockeye_proto::handshake::{AcceptKey, Limits, Response, parse_head, parse_request};
use sockeye_tests::vectors::{BROWSER_REQUEST, SEED_REQUEST};

const REQUESTS: [(&str, &[u8]); 2] = [("seed", SEED_REQUEST), ("browser", BROWSER_REQUEST)];

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake/parse");
    for (name, req) in REQUESTS {
        assert!(
            parse_request(req, &Limits::default())
                .unwrap()
                .is_complete()
        );
        let mut headers = [httparse::EMPTY_HEADER; 32];
        assert!(
            httparse::Request::new(&mut headers)
                .parse(req)
                .unwrap()
                .is_complete()
        );

        group.throughput(Throughput::Bytes(req.len() as u64));
        group.bench_with_input(BenchmarkId::new("sockeye", name), req, |b, req| {
            b.iter(|| parse_request(black_box(req), &Limits::default()));
        });
        group.bench_with_input(BenchmarkId::new("sockeye_head", name), req, |b, req| {
            b.iter(|| parse_head(black_box(req), &Limits::default()));
        });
        group.bench_with_input(BenchmarkId::new("httparse", name), req, |b, req| {
            b.iter(|| {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut parsed = httparse::Request::new(&mut headers);
                let status = parsed.parse(black_box(req));
                black_box(&parsed);
                status
            });
        });
    }
    group.finish();
}

fn accept_key(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake/accept_key");
    let key: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";
    assert_eq!(
        AcceptKey::from_key(key).as_str(),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    group.throughput(Throughput::Elements(1));
    group.bench_function("sockeye", |b| {
        b.iter(|| AcceptKey::from_key(black_box(key)))
    });
    group.finish();
}

fn response(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake/response");
    let req = parse_request(SEED_REQUEST, &Limits::default())
        .unwrap()
        .complete()
        .unwrap();
    let mut out = [0u8; 512];
    let len = Response::new(&req)
        .with_protocol("chat")
        .unwrap()
        .encode(&mut out)
        .unwrap();
    group.throughput(Throughput::Bytes(len as u64));
    // Response::new computes the accept key: this is the whole answer, SHA-1 included.
    group.bench_function("sockeye", |b| {
        b.iter(|| {
            let res = Response::new(black_box(&req))
                .with_protocol("chat")
                .unwrap();
            res.encode(&mut out).unwrap()
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    targets = parse, accept_key, response
}
criterion_main!(benches);
