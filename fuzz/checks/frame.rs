//! Frame headers: the first byte picks the receiving role (bit 0) and the RSV bits an extension
//! claims (bits 4–6); the rest is the header. A complete header re-encodes to the same bytes, and
//! the answer for any prefix is `Incomplete` or the answer for the whole input.
//!
//! Shared by `fuzz/fuzz_targets/frame.rs` and the seed replay in `tests/fuzz_seeds.rs`.
use sockeye_proto::frame::MAX_HEADER_LEN;
use sockeye_proto::{FrameHeader, Role, Rsv, Status};

/// The invariants, for one input.
pub(crate) fn check(data: &[u8]) {
    let Some((&select, data)) = data.split_first() else {
        return;
    };
    let role = if select & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let rsv = Rsv::from_header_byte(select);
    let full = FrameHeader::decode(data, role, rsv);
    if let Ok(Status::Complete((header, n))) = full {
        assert!(n <= data.len() && n == header.encoded_len());
        let mut out = [0u8; MAX_HEADER_LEN];
        assert_eq!(header.encode(&mut out), n);
        assert_eq!(
            &out[..n],
            &data[..n],
            "minimal encoding is the only encoding"
        );
        assert_eq!(FrameHeader::decode(&out[..n], role, rsv), full);
    }
    for cut in 0..data.len().min(MAX_HEADER_LEN) {
        match FrameHeader::decode(&data[..cut], role, rsv) {
            Ok(Status::Incomplete { .. }) => {}
            prefix => assert_eq!(prefix, full, "prefix of {cut} bytes"),
        }
    }
}
