//! TLS read path: `data[0]` picks the piece size the socket hands over (1 to 256 bytes, 0
//! meaning whole), the rest is what a client sends to a wss:// port, run through the worker's
//! own TLS read code with a fresh session. Nothing panics; no plaintext can come out, since
//! bytes that do not finish a key exchange never authenticate a record; a failure is reported
//! as `InvalidData` with the TLS error inside.
//!
//! Shared by `fuzz/fuzz_targets/tls.rs` and the seed replay in `tests/fuzz_seeds.rs`.
use std::io::ErrorKind;
use std::sync::{Arc, OnceLock};

use sockeye_server::TlsSettings;
use sockeye_server::fuzzing::{Outcome, tls_read_path};
use sockeye_server::rustls;

fn config() -> Arc<rustls::ServerConfig> {
    static CONFIG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let settings = TlsSettings::new(cert.pem().into_bytes(), key.serialize_pem().into_bytes());
        settings.build().unwrap()
    });
    Arc::clone(config)
}

/// Runs one input through the read path and checks the invariants.
pub(crate) fn run(data: &[u8]) -> Option<Outcome> {
    let (&piece, input) = data.split_first()?;
    let piece = if piece == 0 {
        input.len()
    } else {
        usize::from(piece)
    };
    let outcome = tls_read_path(config(), input, piece);
    assert_eq!(outcome.plaintext, 0, "plaintext without a handshake");
    if let Some(error) = &outcome.error {
        assert_eq!(error.kind(), ErrorKind::InvalidData, "{error}");
    }
    Some(outcome)
}

/// The invariants, for one input.
pub(crate) fn check(data: &[u8]) {
    run(data);
}
