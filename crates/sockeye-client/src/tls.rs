//! TLS for `wss://`: which roots to trust, the name to check, a client certificate.

use std::path::Path;
use std::sync::Arc;
#[cfg(feature = "platform-roots")]
use std::sync::OnceLock;

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::Error;

/// Which certificates to trust.
#[derive(Debug, Clone)]
enum Roots {
    /// The platform's store (read once per process).
    #[cfg(feature = "platform-roots")]
    Platform,
    /// These roots only.
    Given(Arc<RootCertStore>),
    /// Any certificate (the handshake signature is still checked): test servers only.
    Insecure,
}

/// TLS settings of `wss://` connections. By default the platform's roots are trusted, the
/// URL's host is sent in SNI and checked against the certificate, and no client certificate
/// is presented.
///
/// ```no_run
/// use sockeye_client::TlsOptions;
///
/// let tls = TlsOptions::ca_file("ca.pem")?
///     .server_name("feed.internal")
///     .client_cert_files("client.pem", "client.key")?;
/// # Ok::<(), sockeye_client::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TlsOptions {
    roots: Roots,
    server_name: Option<String>,
    client_cert: Option<Arc<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>>,
    resumption: bool,
    config: Option<Arc<ClientConfig>>,
}

impl Default for TlsOptions {
    #[cfg(feature = "platform-roots")]
    fn default() -> Self {
        Self::with_roots(Roots::Platform)
    }

    /// Without the `platform-roots` feature no root is trusted until one is given.
    #[cfg(not(feature = "platform-roots"))]
    fn default() -> Self {
        Self::with_roots(Roots::Given(Arc::new(RootCertStore::empty())))
    }
}

impl TlsOptions {
    fn with_roots(roots: Roots) -> Self {
        TlsOptions {
            roots,
            server_name: None,
            client_cert: None,
            resumption: true,
            config: None,
        }
    }

    /// Trusts the roots in `store` only.
    pub fn roots(store: RootCertStore) -> Self {
        Self::with_roots(Roots::Given(Arc::new(store)))
    }

    /// Trusts the CA certificates of the PEM file at `path` only.
    ///
    /// # Errors
    ///
    /// [`Error::Options`] when the file cannot be read or holds no usable certificate.
    pub fn ca_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let mut store = RootCertStore::empty();
        for cert in certificates(path)? {
            store.add(cert).map_err(|e| {
                Error::Options(format!(
                    "{}: not a usable CA certificate: {e}",
                    path.display()
                ))
            })?;
        }
        Ok(Self::roots(store))
    }

    /// Accepts any server certificate, still checking that the server holds its key (the
    /// handshake signature): for test servers only, never for real peers.
    pub fn insecure() -> Self {
        Self::with_roots(Roots::Insecure)
    }

    /// Uses `config` as it is (roots, verifier, client certificate, ALPN and resumption are
    /// then its own; only the server name is still taken from the URL or
    /// [`server_name`](Self::server_name)).
    pub fn config(config: Arc<ClientConfig>) -> Self {
        TlsOptions {
            config: Some(config),
            ..Self::with_roots(Roots::Insecure)
        }
    }

    /// Sends `name` in SNI and checks the certificate against it, instead of the URL's host.
    #[must_use]
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Presents `chain` (leaf first) with its private `key` to servers that ask for a client
    /// certificate.
    #[must_use]
    pub fn client_cert(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.client_cert = Some(Arc::new((chain, key)));
        self
    }

    /// [`client_cert`](Self::client_cert) from PEM files.
    ///
    /// # Errors
    ///
    /// [`Error::Options`] when a file cannot be read, or holds no certificate or no key.
    pub fn client_cert_files(
        self,
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        let chain = certificates(chain.as_ref())?;
        let key_path = key.as_ref();
        let key = PrivateKeyDer::from_pem_file(key_path)
            .map_err(|e| Error::Options(format!("{}: no private key: {e}", key_path.display())))?;
        Ok(self.client_cert(chain, key))
    }

    /// Turns TLS session resumption off (on by default): every connection then makes a full
    /// handshake, as a load generator wants.
    #[must_use]
    pub fn no_resumption(mut self) -> Self {
        self.resumption = false;
        self
    }

    /// The name to send in SNI and to check, for a URL whose host is `host`.
    ///
    /// # Errors
    ///
    /// [`Error::Options`] when it is neither a DNS name nor an IP address.
    pub fn name_for(&self, host: &str) -> Result<ServerName<'static>, Error> {
        let name = self.server_name.as_deref().unwrap_or(host);
        ServerName::try_from(name.to_owned()).map_err(|_| {
            Error::Options(format!(
                "`{name}` is not a TLS server name (a DNS name or an IP address)"
            ))
        })
    }

    /// The rustls configuration these options describe (ALPN `http/1.1`, TLS 1.3 and 1.2, the
    /// ring provider).
    ///
    /// # Errors
    ///
    /// [`Error::Options`] when the platform's store has no usable root or the client
    /// certificate does not match its key.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, Error> {
        if let Some(config) = &self.config {
            return Ok(Arc::clone(config));
        }
        let provider = Arc::new(ring_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| Error::Options(format!("TLS configuration refused: {e}")))?;
        let builder = match &self.roots {
            Roots::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider })),
            Roots::Given(store) => builder.with_root_certificates(Arc::clone(store)),
            #[cfg(feature = "platform-roots")]
            Roots::Platform => builder.with_root_certificates(platform_roots()?),
        };
        let mut config = match self.client_cert.as_deref() {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| Error::Options(format!("client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        if !self.resumption {
            config.resumption = Resumption::disabled();
        }
        Ok(Arc::new(config))
    }
}

/// The platform's roots, loaded on first use.
#[cfg(feature = "platform-roots")]
fn platform_roots() -> Result<Arc<RootCertStore>, Error> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_owned(), ToString::to_string);
                return Err(format!(
                    "no trusted root certificate in the platform's store ({why}): give a CA \
                     with TlsOptions::ca_file"
                ));
            }
            Ok(Arc::new(store))
        })
        .clone()
        .map_err(Error::Options)
}

/// The certificates of a PEM file (at least one).
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let unreadable = |e: rustls::pki_types::pem::Error| {
        Error::Options(format!("cannot read {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    if certs.is_empty() {
        return Err(Error::Options(format!(
            "{}: no certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

/// [`TlsOptions::insecure`]: any certificate is accepted, but the server must still prove that
/// it holds the key of the certificate it sent.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// rustls' *ring* provider, the client's TLS backend. rustls 0.23.48 deprecates it for lacking a
/// post-quantum key exchange; that is acknowledged here, in one place.
#[allow(deprecated)]
pub(crate) fn ring_provider() -> CryptoProvider {
    crypto::ring::default_provider()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_and_names_are_named() {
        let err = TlsOptions::ca_file("/nonexistent/ca.pem").expect_err("missing file");
        assert!(
            err.to_string().contains("cannot read /nonexistent/ca.pem"),
            "{err}"
        );
        let err = TlsOptions::insecure()
            .server_name("bad name")
            .name_for("localhost")
            .expect_err("name");
        assert!(
            err.to_string()
                .contains("`bad name` is not a TLS server name"),
            "{err}"
        );
        let name = TlsOptions::insecure().name_for("127.0.0.1").expect("an IP");
        assert!(matches!(name, ServerName::IpAddress(_)));
    }

    #[test]
    fn configs_carry_alpn_and_resumption() {
        let config = TlsOptions::insecure()
            .no_resumption()
            .client_config()
            .expect("config");
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
        let given = Arc::new(ClientConfig::clone(&config));
        let same = TlsOptions::config(Arc::clone(&given))
            .client_config()
            .expect("as given");
        assert!(Arc::ptr_eq(&given, &same));
    }
}
