//! Inflate: `data[0]` picks the peer's window (bits 0–2: 8 + n), context takeover (bit 3
//! clear) and the output limit (bits 4–7, × 256 bytes); `data[1]` the piece size; the rest is
//! the compressed payload of a message, decoded twice in a row. The output and its buffer's
//! capacity never exceed the limit, and the results do not depend on how the payload is cut.
//!
//! Shared by `fuzz/fuzz_targets/inflate.rs` and the seed replay in `tests/fuzz_seeds.rs`.
use sockeye_deflate::{DeflateConfig, PerMessageDeflate};
use sockeye_proto::extension::{ParamWriter, parse_offers};
use sockeye_proto::{Extension, ExtensionError};

fn decode(
    offer: &str,
    payload: &[u8],
    piece: usize,
    limit: usize,
) -> Vec<Result<Vec<u8>, ExtensionError>> {
    let mut ext = PerMessageDeflate::server(DeflateConfig::default());
    let offer = parse_offers(offer).next().unwrap().unwrap();
    assert_eq!(
        ext.accept_offer(&offer, &mut ParamWriter::new(&mut [0; 128])),
        Ok(true)
    );
    let message = |ext: &mut PerMessageDeflate| {
        let mut out = Vec::new();
        for (i, chunk) in payload.chunks(piece).chain([&[][..]]).enumerate() {
            let fin = i == payload.len().div_ceil(piece);
            let result = ext.decode(chunk, fin, &mut out, limit);
            assert!(
                out.len() <= limit && out.capacity() <= limit,
                "{} > {limit}",
                out.capacity()
            );
            result?;
        }
        Ok(out)
    };
    vec![message(&mut ext), message(&mut ext)]
}

/// The invariants, for one input.
pub(crate) fn check(data: &[u8]) {
    let [select, piece, payload @ ..] = data else {
        return;
    };
    let reset = if select & 8 != 0 {
        "; client_no_context_takeover"
    } else {
        ""
    };
    let offer = format!(
        "permessage-deflate; client_max_window_bits={}{reset}",
        8 + select % 8
    );
    let limit = usize::from(select >> 4) * 256;
    let whole = decode(&offer, payload, payload.len().max(1), limit);
    assert_eq!(
        decode(&offer, payload, usize::from(*piece).max(1), limit),
        whole
    );
}
