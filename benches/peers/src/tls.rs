//! The TLS side of the tokio peers: a rustls server configuration read from PEM files, set up
//! as `sockeye serve --tls-cert` sets up its own: the ring provider, TLS 1.3 and 1.2, ALPN
//! `http/1.1`, no client certificates, rustls' defaults otherwise (its in-memory session
//! cache, two TLS 1.3 tickets per handshake).

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::options::TlsFiles;

/// Reads the certificate chain and the key and builds the configuration every worker shares.
///
/// # Errors
///
/// A file that cannot be read, holds no certificate or no usable key, or a key that does not
/// match the certificate; the message names the file.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let cert_name = files.cert.display();
    let key_name = files.key.display();
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| format!("{cert_name}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{cert_name}: {e}"))?;
    if chain.is_empty() {
        return Err(format!("{cert_name}: no CERTIFICATE in it"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("{key_name}: no usable private key: {e}"))?;
    // *ring* is this project's TLS backend; rustls 0.23.48 deprecates it for lacking a
    // post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("{cert_name}, {key_name}: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
