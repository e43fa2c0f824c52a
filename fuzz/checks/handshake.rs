//! Upgrade requests: strict prefixes of a complete head are `Incomplete`, every refusal is a
//! ready-made HTTP answer, and every accepted request gets a `101` its client accepts.
//!
//! Shared by `fuzz/fuzz_targets/handshake.rs` and the seed replay in `tests/fuzz_seeds.rs`.
use sockeye_proto::Status;
use sockeye_proto::handshake::{ClientRequest, Limits, Response, parse_head, parse_request};

/// The invariants, for one input.
pub(crate) fn check(data: &[u8]) {
    let limits = Limits::default();
    let incomplete = |b| matches!(parse_request(b, &limits), Ok(Status::Incomplete { .. }));
    match parse_request(data, &limits) {
        Ok(Status::Complete(req)) => {
            let len = req.head_len();
            assert!(
                len <= data.len() && incomplete(&data[..len - 1]) && incomplete(&data[..len / 2])
            );
            let head = parse_head(data, &limits).unwrap().complete().unwrap();
            assert_eq!(head.len(), len);
            let key: [u8; 24] = req.key().as_bytes().try_into().unwrap();
            let mut out = [0u8; 1024];
            let n = Response::new(&req).encode(&mut out).unwrap();
            let client = ClientRequest::new(req.host(), req.path(), &key);
            let res = sockeye_proto::handshake::parse_response(&out[..n], &limits, &client);
            let res = res.unwrap().complete().unwrap();
            assert_eq!((res.head_len, res.protocol, res.extensions), (n, None, ""));
        }
        Ok(Status::Incomplete { .. }) => {
            assert!(data.len() < limits.max_head_len && incomplete(&data[..data.len() / 2]));
        }
        Err(err) => {
            assert!([400, 403, 405, 426, 431, 500, 505].contains(&err.status()));
            assert!(err.response().starts_with(b"HTTP/1.1 "));
        }
    }
}
