//! Replays every fuzz seed (`fuzz/seeds/<target>/`) and saved crash (`fuzz/regressions/<target>/`)
//! through the invariant checks of the fuzz targets in `fuzz/fuzz_targets/`, on every
//! `cargo test`, so that a fixed crash stays fixed without a fuzzer run.
//!
//! The check functions are copies of the targets' bodies; keep them in step.

use std::fs;
use std::io::ErrorKind;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sockeye_proto::frame::MAX_HEADER_LEN;
use sockeye_proto::handshake::{
    ClientRequest, Limits, Response, parse_head, parse_request, parse_response,
};
use sockeye_proto::{
    Config, Connection, FrameHeader, NoExtension, ProtocolError, Role, Rsv, State, Status,
};

/// `fuzz_targets/handshake.rs`.
fn check_handshake(data: &[u8]) {
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
            let res = parse_response(&out[..n], &limits, &client);
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

/// `fuzz_targets/frame.rs`.
fn check_frame(data: &[u8]) {
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

type Outcome = (Vec<String>, Vec<u8>, Option<ProtocolError>);

/// The driver of `fuzz_targets/connection.rs`.
fn drive(data: &[u8], chunk: usize, config: Config, now: Instant) -> Outcome {
    let mut conn = Connection::server(config, NoExtension);
    let (mut pending, mut buf, mut events, mut tx) = (vec![], vec![], vec![], vec![]);
    for (i, bytes) in data.chunks(chunk).enumerate() {
        pending.extend_from_slice(bytes);
        loop {
            let len = pending.len();
            let read = match conn.handle_read(&mut pending, &mut buf, now) {
                Ok(read) if read.is_blocked() => break,
                Ok(read) => read,
                Err(err) => {
                    let mut close = Vec::new();
                    assert!(conn.state() == State::Closed && conn.poll_transmit(&mut close));
                    assert!(
                        close[..2] == [0x88, 2] && close[2..4] == err.close_code().0.to_be_bytes()
                    );
                    pending.extend_from_slice(&data[((i + 1) * chunk).min(data.len())..]);
                    let after = conn.handle_read(&mut pending, &mut buf, now).unwrap();
                    assert!(after.event.is_none() && !conn.poll_transmit(&mut close));
                    return (events, tx, Some(err));
                }
            };
            assert!(read.consumed <= len);
            events.extend(read.event.map(|event| format!("{event:?}")));
            let consumed = read.consumed;
            pending.drain(..consumed);
            conn.poll_transmit(&mut tx);
        }
        // At most an incomplete header, or an incomplete masked control frame.
        assert!(
            pending.len() < MAX_HEADER_LEN + 125,
            "{} bytes left",
            pending.len()
        );
    }
    (events, tx, None)
}

/// `fuzz_targets/connection.rs`.
fn check_connection(data: &[u8]) {
    let Some((&select, data)) = data.split_first() else {
        return;
    };
    let mut config = Config::default();
    if select & 0x40 != 0 {
        (
            config.max_frame_size,
            config.max_message_size,
            config.max_fragments,
        ) = (64, 100, 3);
    }
    let now = Instant::now();
    let chunked = drive(data, usize::from(select % 64) + 1, config, now);
    assert_eq!(chunked, drive(data, data.len().max(1), config, now));
}

/// The regular files of `dir` (dotfiles such as `.gitkeep` skipped); none when it is missing.
fn files(dir: &Path) -> Vec<PathBuf> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == ErrorKind::NotFound => return Vec::new(),
        Err(err) => panic!("reading {}: {err}", dir.display()),
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .filter(|path| {
            !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort();
    paths
}

/// Runs `check` on every seed and regression of `target`, naming each input that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let seeds = files(&fuzz.join("seeds").join(target));
    assert!(!seeds.is_empty(), "no seeds in fuzz/seeds/{target}/");
    let regressions = files(&fuzz.join("regressions").join(target));
    let failed: Vec<String> = seeds
        .iter()
        .chain(&regressions)
        .filter(|path| {
            let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            catch_unwind(AssertUnwindSafe(|| check(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target} invariants broken by: {failed:#?}"
    );
}

#[test]
fn handshake_seeds_and_regressions() {
    replay("handshake", check_handshake);
}

#[test]
fn frame_seeds_and_regressions() {
    replay("frame", check_frame);
}

#[test]
fn connection_seeds_and_regressions() {
    replay("connection", check_connection);
}

/// The permessage-deflate targets (`fuzz_targets/inflate.rs`, `fuzz_targets/offers.rs`).
mod deflate {
    use sockeye_deflate::{DeflateConfig, PerMessageDeflate};
    use sockeye_proto::extension::{ParamWriter, Params, parse_offers};
    use sockeye_proto::{Extension, ExtensionError};

    use super::replay;

    /// The driver of `fuzz_targets/inflate.rs`.
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

    /// `fuzz_targets/inflate.rs`.
    fn check_inflate(data: &[u8]) {
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

    /// The first offer `server` accepts, with the full response header value
    /// (`fuzz_targets/offers.rs`).
    fn answer<'v>(server: &mut PerMessageDeflate, value: &'v str) -> Option<(Params<'v>, String)> {
        parse_offers(value).flatten().find_map(|offer| {
            let mut buf = [0u8; 128];
            let mut writer = ParamWriter::new(&mut buf);
            let accepted = server.accept_offer(&offer, &mut writer) == Ok(true);
            let params = std::str::from_utf8(writer.as_bytes()).unwrap();
            accepted.then(|| (offer, format!("permessage-deflate{params}")))
        })
    }

    /// `fuzz_targets/offers.rs`.
    fn check_offers(data: &[u8]) {
        let Ok(value) = std::str::from_utf8(data) else {
            return;
        };
        let mut limited = DeflateConfig::default();
        (
            limited.server_no_context_takeover,
            limited.server_max_window_bits,
        ) = (true, 10);
        (
            limited.client_no_context_takeover,
            limited.client_max_window_bits,
        ) = (true, 9);
        for config in [DeflateConfig::default(), limited] {
            let mut server = PerMessageDeflate::server(config);
            let Some((offer, response)) = answer(&mut server, value) else {
                continue;
            };
            let mut client = PerMessageDeflate::client(DeflateConfig::default());
            client
                .accept_response(&parse_offers(&response).next().unwrap().unwrap())
                .unwrap();
            let (c, s) = (client.negotiated().unwrap(), server.negotiated().unwrap());
            assert_eq!((c.send, c.recv), (s.recv, s.send), "{response}");
            let asked = |name| {
                offer
                    .iter()
                    .flatten()
                    .find(|&(n, _)| n == name)
                    .map(|(_, v)| v)
            };
            assert!(asked("server_no_context_takeover").is_none() || s.send.no_context_takeover);
            let bits = asked("server_max_window_bits")
                .flatten()
                .map_or(15, |v| v.parse().unwrap());
            assert!(s.send.max_window_bits <= bits, "{response}");
        }
    }

    #[test]
    fn inflate_seeds_and_regressions() {
        replay("inflate", check_inflate);
    }

    #[test]
    fn offers_seeds_and_regressions() {
        replay("offers", check_offers);
    }
}
