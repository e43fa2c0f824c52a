//! A TLS session after the handshake: a rustls client and the worker's TLS code in memory
//! (`sockeye_server::fuzzing::tls_session`), driven by the input. `data[0]` bit 0 picks TLS 1.2
//! instead of 1.3; the rest is the session's script: the server's read and write sizes, then
//! plaintext both ways in records of every size, key updates, a flipped byte (the record that
//! holds it is refused with `InvalidData`, the ones before it read), close_notify either way.
//! What each side reads is what the other wrote, in order, and an idle connection holds no
//! buffer.
//!
//! Shared by `fuzz/fuzz_targets/tls_session.rs` and the seed replay in `tests/fuzz_seeds.rs`.
use std::sync::{Arc, OnceLock};

use sockeye_server::TlsSettings;
use sockeye_server::fuzzing::tls_session;
use sockeye_server::rustls;

/// The server's configuration and a client configuration per version, trusting its
/// certificate; made once.
fn configs(tls12: bool) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    type Configs = (Arc<rustls::ServerConfig>, [Arc<rustls::ClientConfig>; 2]);
    static CONFIGS: OnceLock<Configs> = OnceLock::new();
    let (server, clients) = CONFIGS.get_or_init(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let settings = TlsSettings::new(cert.pem().into_bytes(), key.serialize_pem().into_bytes());
        let server = settings.build().unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let client = |version: &'static rustls::SupportedProtocolVersion| {
            let config =
                rustls::ClientConfig::builder_with_provider(server.crypto_provider().clone())
                    .with_protocol_versions(&[version])
                    .unwrap()
                    .with_root_certificates(roots.clone())
                    .with_no_client_auth();
            Arc::new(config)
        };
        let clients = [
            client(&rustls::version::TLS13),
            client(&rustls::version::TLS12),
        ];
        (server, clients)
    });
    (Arc::clone(server), Arc::clone(&clients[usize::from(tls12)]))
}

/// The invariants, for one input.
pub(crate) fn check(data: &[u8]) {
    let Some((&select, script)) = data.split_first() else {
        return;
    };
    let (server, client) = configs(select & 1 != 0);
    tls_session(server, client, script);
}
