//! Upgrade requests: strict prefixes of a complete head are `Incomplete`, every refusal is a
//! ready-made HTTP answer, and every accepted request gets a `101` its client accepts, with
//! the first subprotocol it offered selected and extra headers. The request's fields written
//! back by `ClientRequest::encode` (subprotocols, origin, extra headers) parse to the same
//! fields.
//!
//! Shared by `fuzz/fuzz_targets/handshake.rs` and the seed replay in `tests/fuzz_seeds.rs`.
use sockeye_proto::Status;
use sockeye_proto::handshake::{
    ClientRequest, Limits, Request, Response, parse_head, parse_request, parse_response,
};

/// The accepted request answered with its first subprotocol and extra headers: the client's
/// `parse_response` takes it, with that subprotocol.
fn answer_with_protocol(req: &Request<'_>, key: &[u8; 24], limits: &Limits) {
    let protocols: Vec<&str> = req.protocols().collect();
    let Some(first) = protocols.first().copied() else {
        return;
    };
    let headers = [("X-Served-By", "fuzz"), ("Cache-Control", "no-store")];
    let response = Response::new(req)
        .with_protocol(first)
        .expect("an offered protocol")
        .with_headers(&headers);
    assert_eq!(response.protocol(), Some(first));
    let mut out = vec![0u8; response.encoded_len()];
    let n = response.encode(&mut out).unwrap();
    assert_eq!(n, out.len());
    let client = ClientRequest {
        protocols: &protocols,
        ..ClientRequest::new(req.host(), req.path(), key)
    };
    let res = parse_response(&out, limits, &client)
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!((res.head_len, res.protocol), (n, Some(first)));
    if !protocols.contains(&"never-offered") {
        assert!(Response::new(req).with_protocol("never-offered").is_err());
    }
}

/// The request written again by a client (its path, host, subprotocols, origin and one extra
/// header) parses to the same fields.
fn round_trip(req: &Request<'_>, key: &[u8; 24], limits: &Limits) {
    let protocols: Vec<&str> = req.protocols().collect();
    let extra = req
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-extra"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok());
    let headers: Vec<(&str, &str)> = extra.map(|v| ("X-Extra", v)).into_iter().collect();
    let client = ClientRequest {
        protocols: &protocols,
        origin: req.origin(),
        headers: &headers,
        ..ClientRequest::new(req.host(), req.path(), key)
    };
    let mut out = vec![0u8; 2 * limits.max_head_len];
    let Ok(n) = client.encode(&mut out) else {
        // Values the server's grammar takes and a client does not write (obs-text, tabs).
        return;
    };
    let Ok(Status::Complete(again)) = parse_request(&out[..n], limits) else {
        assert!(
            n > limits.max_head_len,
            "{:?}",
            String::from_utf8_lossy(&out[..n])
        );
        return;
    };
    assert_eq!((again.path(), again.host()), (req.path(), req.host()));
    assert_eq!(again.protocols().collect::<Vec<_>>(), protocols);
    assert_eq!(again.origin(), req.origin());
    assert_eq!(again.key().as_bytes(), key);
    if let Some(v) = extra {
        assert_eq!(again.header("x-extra"), Some(v.as_bytes()));
    }
}

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
            answer_with_protocol(&req, &key, &limits);
            round_trip(&req, &key, &limits);
        }
        Ok(Status::Incomplete { .. }) => {
            assert!(data.len() < limits.max_head_len && incomplete(&data[..data.len() / 2]));
            let head = parse_head(data, &limits).map(|s| s.map(|h| h.len()));
            assert!(
                head.is_err() || head.is_ok_and(|s| s.complete().is_none_or(|n| n <= data.len()))
            );
        }
        Err(err) => {
            assert!([400, 403, 405, 426, 431, 500, 505].contains(&err.status()));
            assert!(err.response().starts_with(b"HTTP/1.1 "));
            assert!(!err.to_string().is_empty());
        }
    }
}
