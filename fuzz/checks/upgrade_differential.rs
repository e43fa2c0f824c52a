//! The request head scanner against `httparse`: the input is a request head (and whatever
//! follows it). Where sockeye's `parse_head` finds a complete head, httparse must find the same
//! head: the same length, method, path, version, and header names and values in order. Where
//! `parse_request` accepts an upgrade, its head is that head. Where httparse finds a complete
//! head that lies inside the grammar sockeye implements (see `in_scope`), sockeye must accept
//! it too.
//!
//! Out of scope, because sockeye is stricter on purpose (it refuses these, httparse takes them):
//! - bare LF line endings (RFC 9112 §2.2 lets a recipient accept them; sockeye answers 400);
//! - empty lines before the request line (RFC 9112 §2.2 "SHOULD ignore"; sockeye refuses);
//! - request targets with bytes outside visible ASCII (httparse takes UTF-8 obs-text);
//! - heads over `Limits::max_head_len` (431) or with more than `Limits::max_headers` lines.
//!
//! One leniency of sockeye's, on purpose: `HTTP/1.x` with any minor digit is accepted, where
//! httparse knows only 1.0 and 1.1 (RFC 9112 §2.3: a recipient of a higher minor version
//! "SHOULD process the message as if it were in the highest minor version within that major
//! version to which the recipient is conformant"). Such a head is compared with httparse's
//! view of the same bytes with the minor digit set to 1, so every other field is still checked.
//!
//! Shared by `fuzz/fuzz_targets/upgrade_differential.rs` and the seed replay in
//! `tests/fuzz_seeds.rs`.
use sockeye_proto::Status;
use sockeye_proto::handshake::{Head, Limits, parse_head, parse_request};

/// A head as httparse sees it: length, method, path, minor version, headers.
type Parsed = (usize, String, String, u8, Vec<(String, Vec<u8>)>);

fn httparse_head(data: &[u8], max_headers: usize) -> Option<Parsed> {
    let mut headers = vec![httparse::EMPTY_HEADER; max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = req.parse(data) else {
        return None;
    };
    let fields = req.headers.iter();
    Some((
        len,
        req.method?.to_owned(),
        req.path?.to_owned(),
        req.version?,
        fields
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect(),
    ))
}

fn sockeye_view(head: &Head<'_>, minor: u8) -> Parsed {
    (
        head.len(),
        head.method.to_owned(),
        head.path.to_owned(),
        minor,
        head.headers()
            .map(|(n, v)| (n.to_owned(), v.to_vec()))
            .collect(),
    )
}

/// Whether a head httparse accepted stays inside what sockeye implements: CRLF line endings
/// only, no empty lines in front, a visible-ASCII target, and within the limits.
fn in_scope(data: &[u8], parsed: &Parsed, limits: &Limits) -> bool {
    let (len, _, path, _, headers) = parsed;
    let head = &data[..*len];
    let crlf_only = head
        .iter()
        .enumerate()
        .all(|(i, &b)| b != b'\n' || (i > 0 && head[i - 1] == b'\r'));
    crlf_only
        && !head.starts_with(b"\r\n")
        && path.bytes().all(|b| (0x21..0x7f).contains(&b))
        && *len <= limits.max_head_len
        && headers.len() <= limits.max_headers
}

/// The invariants, for one input.
pub(crate) fn check(data: &[u8]) {
    let limits = Limits::default();
    let theirs = httparse_head(data, limits.max_headers);
    let ours = parse_head(data, &limits);
    match &ours {
        Ok(Status::Complete(head)) if head.minor_version > 1 => {
            // The documented leniency: compare with the head httparse can read.
            let version_at = head.method.len() + 1 + head.path.len() + 1;
            assert_eq!(&data[version_at..version_at + 7], b"HTTP/1.");
            let mut as_11 = data.to_vec();
            as_11[version_at + 7] = b'1';
            let theirs = httparse_head(&as_11, limits.max_headers);
            assert_eq!(Some(sockeye_view(head, 1)), theirs, "HTTP/1.x as 1.1");
        }
        Ok(Status::Complete(head)) => {
            let view = sockeye_view(head, head.minor_version);
            assert_eq!(Some(view), theirs, "a head sockeye accepts");
        }
        _ => {
            if let Some(parsed) = theirs.as_ref().filter(|p| in_scope(data, p, &limits)) {
                panic!("sockeye refuses a head in scope: {ours:?}, httparse: {parsed:?}");
            }
        }
    }
    if let Ok(Status::Complete(req)) = parse_request(data, &limits) {
        let Ok(Status::Complete(head)) = ours else {
            panic!("an upgrade whose head parse_head refuses: {ours:?}");
        };
        assert_eq!(*req.head(), head);
        assert_eq!(Some(req.host().as_bytes()), head.header("host"));
    }
}
