//! TLS termination (wss://) with rustls: certificates, SNI, ALPN, client certificates, reload.
//!
//! The worker drives each TLS connection itself, in the same loop as plain ones, through rustls'
//! unbuffered API: ciphertext is read into a buffer the worker lends, decrypted, and the
//! plaintext put in the worker's shared receive buffer, where frames are parsed as for plain
//! connections. Outgoing frames are corked as usual and encrypted straight into another lent
//! buffer, whose records leave in one write. An idle TLS connection holds no buffer.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::UnbufferedServerConnection;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

/// The rustls configuration the workers use for new connections; clones share it, so a
/// [`reload`](TlsConfig::reload) through any clone reaches every worker. Connections already
/// open keep the certificates they started with.
#[derive(Clone)]
pub struct TlsConfig {
    current: Arc<RwLock<Arc<rustls::ServerConfig>>>,
}

impl TlsConfig {
    /// Serves with `config` (a rustls configuration of your own; ALPN is left as you set it).
    pub fn new(config: Arc<rustls::ServerConfig>) -> Self {
        TlsConfig {
            current: Arc::new(RwLock::new(config)),
        }
    }

    /// Loads the certificates and keys `settings` names.
    pub fn from_settings(settings: &TlsSettings) -> Result<Self, TlsError> {
        Ok(Self::new(settings.build()?))
    }

    /// New handshakes use `config` from now on.
    pub fn reload(&self, config: Arc<rustls::ServerConfig>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
    }

    /// Reloads from `settings` (for example the same files, renewed on disk). On error the
    /// current certificates stay in use.
    pub fn reload_settings(&self, settings: &TlsSettings) -> Result<(), TlsError> {
        self.reload(settings.build()?);
        Ok(())
    }

    /// The configuration new handshakes use.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// A server-side TLS session for a new connection.
    pub(crate) fn session(&self) -> Result<UnbufferedServerConnection, rustls::Error> {
        UnbufferedServerConnection::new(self.current())
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

/// Where the certificates come from: PEM files or PEM bytes.
#[derive(Debug, Clone)]
pub enum PemSource {
    /// A PEM file, read at each (re)load.
    File(PathBuf),
    /// PEM text in memory.
    Bytes(Vec<u8>),
}

impl PemSource {
    /// The certificates in it (a chain, or a CA's), at least one.
    ///
    /// # Errors
    ///
    /// [`TlsError`] when it cannot be read or holds no certificate.
    pub fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let pem = self.read()?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Invalid(format!("{}: {e}", self.name())))?;
        if certs.is_empty() {
            return Err(TlsError::Invalid(format!(
                "{}: no CERTIFICATE in it",
                self.name()
            )));
        }
        Ok(certs)
    }

    /// The first private key in it (PKCS#8, RSA or EC).
    ///
    /// # Errors
    ///
    /// [`TlsError`] when it cannot be read or holds no usable key.
    pub fn private_key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        let pem = self.read()?;
        PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|e| TlsError::Invalid(format!("{}: no usable private key: {e}", self.name())))
    }

    fn read(&self) -> Result<Vec<u8>, TlsError> {
        match self {
            PemSource::File(path) => std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.clone(),
                source,
            }),
            PemSource::Bytes(bytes) => Ok(bytes.clone()),
        }
    }

    fn name(&self) -> String {
        match self {
            PemSource::File(path) => path.display().to_string(),
            PemSource::Bytes(_) => "PEM bytes".to_owned(),
        }
    }
}

impl From<&Path> for PemSource {
    fn from(path: &Path) -> Self {
        PemSource::File(path.to_owned())
    }
}

impl From<PathBuf> for PemSource {
    fn from(path: PathBuf) -> Self {
        PemSource::File(path)
    }
}

impl From<Vec<u8>> for PemSource {
    fn from(bytes: Vec<u8>) -> Self {
        PemSource::Bytes(bytes)
    }
}

/// Whether clients must present a certificate.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Clients may present a certificate; one that does must chain to the CA.
    Optional,
    /// Clients must present a certificate that chains to the CA.
    Required,
}

#[derive(Debug, Clone)]
struct Identity {
    /// `None` for the default certificate (no SNI, or a name no other certificate has).
    name: Option<String>,
    chain: PemSource,
    key: PemSource,
}

/// Certificates, keys and client authentication for [`TlsConfig`]: a default certificate,
/// more certificates chosen by SNI, and optionally a CA for client certificates. TLS 1.2 and
/// 1.3, ALPN `http/1.1`, the ring provider.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    identities: Vec<Identity>,
    client_ca: Option<(PemSource, ClientAuth)>,
}

impl TlsSettings {
    /// Settings with the default certificate chain and its key (PKCS#8, RSA or EC).
    pub fn new(chain: impl Into<PemSource>, key: impl Into<PemSource>) -> Self {
        TlsSettings {
            identities: vec![Identity {
                name: None,
                chain: chain.into(),
                key: key.into(),
            }],
            client_ca: None,
        }
    }

    /// The files the settings read (chains, keys, the client CA), in order: what to watch for
    /// a reload.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        let pems = self.identities.iter().flat_map(|id| [&id.chain, &id.key]);
        pems.chain(self.client_ca.iter().map(|(ca, _)| ca))
            .filter_map(|source| match source {
                PemSource::File(path) => Some(path.as_path()),
                PemSource::Bytes(_) => None,
            })
    }

    /// Adds a certificate served to clients that ask for `server_name` through SNI. A name of
    /// the form `*.example.com` matches one label.
    pub fn with_sni(
        mut self,
        server_name: &str,
        chain: impl Into<PemSource>,
        key: impl Into<PemSource>,
    ) -> Self {
        self.identities.push(Identity {
            name: Some(server_name.to_ascii_lowercase()),
            chain: chain.into(),
            key: key.into(),
        });
        self
    }

    /// Verifies client certificates against the CA certificates in `ca`.
    pub fn with_client_auth(mut self, ca: impl Into<PemSource>, auth: ClientAuth) -> Self {
        self.client_ca = Some((ca.into(), auth));
        self
    }

    /// Reads the files and builds the rustls configuration.
    pub fn build(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(ring_provider());
        let mut resolver = Certificates::default();
        for identity in &self.identities {
            let key = Arc::new(certified_key(&provider, &identity.chain, &identity.key)?);
            match &identity.name {
                None => resolver.default = Some(key),
                Some(name) => resolver.by_name.push((name.clone(), key)),
            }
        }
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Rustls)?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some((source, auth)) => {
                let mut roots = RootCertStore::empty();
                for cert in source.certificates()? {
                    roots.add(cert).map_err(TlsError::Rustls)?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = match auth {
                    ClientAuth::Optional => verifier.allow_unauthenticated(),
                    ClientAuth::Required => verifier,
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError::Invalid(format!("client CA: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn certified_key(
    provider: &CryptoProvider,
    chain: &PemSource,
    key: &PemSource,
) -> Result<CertifiedKey, TlsError> {
    let chain = chain.certificates()?;
    let der = key.private_key()?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", key.name())))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", key.name())))?;
    Ok(certified)
}

/// Picks the certificate by SNI: an exact name, then a one-label wildcard, then the default.
#[derive(Debug, Default)]
struct Certificates {
    default: Option<Arc<CertifiedKey>>,
    by_name: Vec<(String, Arc<CertifiedKey>)>,
}

impl Certificates {
    /// `name` as rustls hands it over: lowercased (the names here are lowercased when added).
    fn find(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let found = name.and_then(|name| {
            let exact = self.by_name.iter().find(|(n, _)| n == name);
            exact
                .or_else(|| {
                    let (_, parent) = name.split_once('.')?;
                    self.by_name
                        .iter()
                        .find(|(n, _)| n.strip_prefix("*.") == Some(parent))
                })
                .map(|(_, key)| Arc::clone(key))
        });
        found.or_else(|| self.default.clone())
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.find(hello.server_name())
    }
}

/// A TLS configuration that could not be loaded.
#[non_exhaustive]
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A certificate, key or CA is malformed, or a key does not match its certificate.
    Invalid(String),
    /// rustls refused the configuration.
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            TlsError::Invalid(what) => write!(f, "invalid TLS material: {what}"),
            TlsError::Rustls(err) => write!(f, "TLS configuration refused: {err}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Read { source, .. } => Some(source),
            TlsError::Rustls(err) => Some(err),
            TlsError::Invalid(_) => None,
        }
    }
}

/// rustls' *ring* provider, the engine's TLS backend. rustls 0.23.48 deprecates it for lacking a
/// post-quantum key exchange; that is acknowledged here, in one place.
#[allow(deprecated)]
pub(crate) fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_names_the_file() {
        let settings = TlsSettings::new(Path::new("/nonexistent/cert.pem"), Vec::new());
        let err = settings.build().unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let settings = TlsSettings::new(b"not pem".to_vec(), b"not pem".to_vec());
        let err = settings.build().unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
    }
}
