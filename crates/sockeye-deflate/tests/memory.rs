//! Measures the resident memory each compression state costs (RSS growth over many instances,
//! read from /proc/self/statm) and checks that state is allocated lazily. The crate docs quote
//! the figures (`cargo test -p sockeye-deflate --test memory -- --nocapture` prints them).

use sockeye_deflate::{DeflateConfig, PerMessageDeflate, SharedCompressor};
use sockeye_proto::Extension;
use sockeye_proto::extension::{ParamWriter, parse_offers};

/// Instances per measurement: enough to rise far above allocator noise.
const COUNT: usize = 200;

fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// A negotiated server extension: both windows `bits`, context takeover unless `reset`.
fn server(bits: u8, level: u32, reset: bool) -> PerMessageDeflate {
    let mut config = DeflateConfig::default();
    config.server_max_window_bits = bits;
    config.client_max_window_bits = bits;
    config.server_no_context_takeover = reset;
    config.level = level;
    config.threshold = 0;
    let mut ext = PerMessageDeflate::server(config);
    let mut buf = [0u8; 128];
    let offer = parse_offers("permessage-deflate; client_max_window_bits")
        .next()
        .unwrap()
        .unwrap();
    assert!(
        ext.accept_offer(&offer, &mut ParamWriter::new(&mut buf))
            .unwrap()
    );
    ext
}

/// Compresses one message and decompresses one, so both states exist.
fn exercise(ext: &mut PerMessageDeflate) {
    let message: Vec<u8> = (0..4000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut out = Vec::with_capacity(8192);
    ext.encode(&message, &mut out).unwrap();
    let mut inflated = Vec::with_capacity(64);
    ext.decode(
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        true,
        &mut inflated,
        64,
    )
    .unwrap();
    assert_eq!(inflated, b"Hello");
}

#[test]
fn state_is_lazy_and_its_resident_size_is_bounded() {
    let idle = PerMessageDeflate::server(DeflateConfig::default());
    assert_eq!(idle.has_state(), (false, false), "unnegotiated: no state");
    let negotiated = server(15, 6, false);
    assert_eq!(
        negotiated.has_state(),
        (false, false),
        "negotiated: still none"
    );
    println!(
        "size_of::<PerMessageDeflate>() = {} bytes",
        size_of_val(&idle)
    );

    for bits in [9, 15] {
        let Some(before) = rss_bytes() else { return };
        let mut all: Vec<PerMessageDeflate> = (0..COUNT).map(|_| server(bits, 6, false)).collect();
        all.iter_mut().for_each(exercise);
        assert!(all.iter().all(|e| e.has_state() == (true, true)));
        let per = (rss_bytes().unwrap_or(before).saturating_sub(before)) / COUNT;
        println!(
            "window {bits:2}: about {} KiB resident per connection (both states)",
            per >> 10
        );
        assert!(per <= 512 << 10, "window {bits}: {per} B per connection");
        all.iter_mut()
            .for_each(PerMessageDeflate::release_idle_state);
        assert!(all.iter().all(|e| !e.has_state().1), "compressor released");
    }

    // With a shared compressor and no context takeover, no compressor per connection.
    let shared = SharedCompressor::new();
    let mut all: Vec<PerMessageDeflate> = (0..COUNT)
        .map(|_| server(15, 6, true).with_shared_compressor(shared.clone()))
        .collect();
    all.iter_mut().for_each(exercise);
    assert!(all.iter().all(|e| !e.has_state().1), "no own compressor");
    assert_eq!(shared.len(), 1, "one shared compressor for one setting");
}
