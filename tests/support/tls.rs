//! wss for the loopback and interop tests: a test certificate authority and certificates made at
//! test time (rcgen, ECDSA P-256), rustls client configurations that trust such an authority
//! (with a client certificate or without), and the blocking client of [`crate::client`] over a
//! rustls stream.
//!
//! Nothing is read from or written to disk unless a test asks for PEM files (for clients in other
//! languages).

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, StreamOwned, SupportedProtocolVersion,
};
use sockeye::server::{Handle, ServerConfig, Stats, TlsConfig, TlsSettings};

use crate::client::{Client, Pending, Request, TIMEOUT, connect_tcp, test_config};

/// The names the usual test server certificate is valid for: a DNS name and an IP address.
pub const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// The protocol the engine negotiates through ALPN.
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// A client's TLS session over its TCP socket.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// The test WebSocket client over TLS.
pub type WssClient = Client<TlsStream>;

/// A certificate authority made for one test: a self-signed CA certificate and its key.
pub struct Authority {
    key: KeyPair,
    cert: rcgen::Certificate,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

impl Authority {
    /// A new CA with `name` as its common name.
    ///
    /// # Panics
    ///
    /// When rcgen fails (it does not for these parameters).
    pub fn new(name: &str) -> Authority {
        let key = KeyPair::generate().expect("generate the CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        Authority { key, cert }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> &CertificateDer<'static> {
        self.cert.der()
    }

    /// Writes the CA certificate as PEM to `path`; returns the path.
    ///
    /// # Panics
    ///
    /// When the file cannot be written.
    pub fn write_pem(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.pem())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path.to_owned()
    }

    /// A server certificate for `names` (DNS names, or IP addresses as text), signed by this CA.
    pub fn server(&self, names: &[&str]) -> Identity {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate for `name`, signed by this CA.
    pub fn client(&self, name: &str) -> Identity {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Identity {
        let key = KeyPair::generate().expect("generate a key");
        let sans: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(sans).expect("certificate parameters");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("sockeye test"),
        );
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign a certificate");
        Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
            spki_der: key.public_key_der(),
        }
    }
}

/// A certificate and its private key.
#[derive(Debug, Clone)]
pub struct Identity {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
    spki_der: Vec<u8>,
}

impl Identity {
    /// The certificate, PEM bytes (a chain of one).
    pub fn chain_pem(&self) -> Vec<u8> {
        self.cert_pem.clone().into_bytes()
    }

    /// The private key, PKCS#8 PEM bytes.
    pub fn key_pem(&self) -> Vec<u8> {
        self.key_pem.clone().into_bytes()
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Server settings with this certificate as the default one.
    pub fn settings(&self) -> TlsSettings {
        TlsSettings::new(self.chain_pem(), self.key_pem())
    }

    /// The base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo: what Chromium's
    /// `--ignore-certificate-errors-spki-list` takes.
    pub fn spki_sha256_base64(&self) -> String {
        base64(&sha256(&self.spki_der))
    }
}

/// A running server's TLS configuration from `settings`.
///
/// # Panics
///
/// When the settings are refused.
pub fn tls_config(settings: &TlsSettings) -> TlsConfig {
    TlsConfig::from_settings(settings).unwrap_or_else(|e| panic!("TLS settings refused: {e}"))
}

/// [`test_config`] terminating TLS with `tls`.
pub fn tls_test_config(tls: TlsConfig) -> ServerConfig {
    let mut config = test_config();
    config.tls = Some(tls);
    config
}

/// A client configuration trusting `ca` only, offering ALPN `http/1.1`, TLS 1.3 and 1.2, and
/// presenting `identity` when the server asks for a certificate.
pub fn client_config(ca: &Authority, identity: Option<&Identity>) -> Arc<ClientConfig> {
    client_config_with(
        ca,
        identity,
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    )
}

/// [`client_config`] limited to `versions`.
///
/// # Panics
///
/// When rustls refuses the configuration.
pub fn client_config_with(
    ca: &Authority,
    identity: Option<&Identity>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    // *ring* is this project's TLS backend; rustls 0.23.48 deprecates it for lacking a
    // post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).expect("a valid CA certificate");
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("supported protocol versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key_der.clone()));
            builder
                .with_client_auth_cert(vec![id.cert_der.clone()], key)
                .expect("a valid client certificate")
        }
    };
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Arc::new(config)
}

/// Connects to `addr` and completes a TLS handshake for `server_name` (sent as SNI when it is a
/// DNS name). The socket has the read and write timeouts of [`connect_tcp`].
///
/// # Errors
///
/// Connect errors; a TLS failure as `InvalidData` holding the [`rustls::Error`] (see
/// [`tls_failure`]); `UnexpectedEof` when the server closes during the handshake.
pub fn connect_tls(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    server_name: &str,
) -> io::Result<TlsStream> {
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut tcp = connect_tcp(addr)?;
    // `complete_io` returns once the handshake is over; each of its reads is bounded by the
    // socket's timeout, and the loop by a few rounds.
    for _ in 0..8 {
        if !conn.is_handshaking() {
            return Ok(StreamOwned::new(conn, tcp));
        }
        conn.complete_io(&mut tcp)?;
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "the TLS handshake did not finish",
    ))
}

/// Connects over TLS ([`connect_tls`]) and upgrades with `request`.
///
/// # Errors
///
/// What [`connect_tls`] and [`Pending::finish`] return.
pub fn connect_wss(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    server_name: &str,
    request: &Request,
) -> io::Result<WssClient> {
    let stream = connect_tls(addr, config, server_name)?;
    let host = format!("{server_name}:{}", addr.port());
    Pending::send_on(stream, &host, request)?.finish()
}

/// The TLS failure inside an I/O error from rustls, if that is what it is.
pub use sockeye::server::socket::tls_failure;

/// The server's counters once `done` holds for them, looking every few milliseconds for at
/// most [`TIMEOUT`].
///
/// # Panics
///
/// When `done` still does not hold after [`TIMEOUT`], with the last counters.
pub fn stats_when(handle: &Handle, what: &str, done: impl Fn(&Stats) -> bool) -> Stats {
    let started = Instant::now();
    loop {
        let stats = handle.stats();
        if done(&stats) {
            return stats;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "{what}: not within {TIMEOUT:?}: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// SHA-256 through the ring provider of rustls.
fn sha256(data: &[u8]) -> Vec<u8> {
    let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .expect("a TLS 1.3 suite");
    suite.common.hash_provider.hash(data).as_ref().to_vec()
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_the_rfc_4648_vectors() {
        let table = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in table {
            assert_eq!(base64(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn sha256_of_abc() {
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            base64(&sha256(b"abc")),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }
}
