//! wss:// for `sockeye load`: the rustls client configuration from the command line (trusted
//! CA, server name, client certificate), and the verifier behind `--tls-insecure`.
//!
//! Every connection makes a full handshake (session resumption is off), so that connect runs
//! measure what a crowd of new clients costs the server.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use sockeye::server::PemSource;

use super::stream::Connector;
use sockeye_client::WsUrl;

/// TLS options of every mode.
#[derive(Debug, clap::Args)]
pub(super) struct TlsArgs {
    /// Use TLS with a ws:// URL too (wss:// URLs always do).
    #[arg(long)]
    tls: bool,
    /// Trust the CA certificates in FILE (PEM) to sign the server's certificate. Without it
    /// (or --tls-insecure) no certificate is trusted: the system's store is not read.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Accept any server certificate, still checking the handshake signature made with its
    /// key: for test servers only.
    #[arg(long, conflicts_with = "tls_ca")]
    tls_insecure: bool,
    /// The name sent in SNI and checked against the certificate (default: the URL's host).
    #[arg(long, value_name = "NAME")]
    tls_server_name: Option<String>,
    /// Present the certificate chain in FILE (PEM) to servers that ask for a client
    /// certificate.
    #[arg(long, value_name = "FILE", requires = "tls_client_key")]
    tls_client_cert: Option<PathBuf>,
    /// The private key of --tls-client-cert (PEM: PKCS#8, RSA or EC).
    #[arg(long, value_name = "FILE", requires = "tls_client_cert")]
    tls_client_key: Option<PathBuf>,
}

/// The client side of TLS, shared by a run's connections.
#[derive(Debug, Clone)]
pub(super) struct Tls {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl Tls {
    /// A session for a new connection.
    pub(super) fn session(&self) -> Result<ClientConnection, rustls::Error> {
        ClientConnection::new(Arc::clone(&self.config), self.server_name.clone())
    }
}

/// Plain TCP for a ws:// URL, TLS for wss:// or `--tls`.
///
/// # Errors
///
/// A TLS option without TLS, a file that cannot be read or holds no certificate or key, a
/// name that cannot be a server name.
pub(super) fn connector(url: &WsUrl, args: &TlsArgs) -> Result<Connector, String> {
    if !url.secure && !args.tls {
        let given = [
            ("--tls-ca", args.tls_ca.is_some()),
            ("--tls-insecure", args.tls_insecure),
            ("--tls-server-name", args.tls_server_name.is_some()),
            ("--tls-client-cert", args.tls_client_cert.is_some()),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
            return Err(format!("{flag} needs a wss:// URL (or --tls)"));
        }
        return Ok(Connector::plain());
    }
    let name = args.tls_server_name.as_deref().unwrap_or(&url.host);
    let server_name = ServerName::try_from(name.to_owned())
        .map_err(|_| format!("`{name}` is not a TLS server name (a DNS name or an IP address)"))?;
    let provider = Arc::new(crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS configuration refused: {e}"))?;
    let builder = if args.tls_insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
    } else {
        let mut roots = RootCertStore::empty();
        if let Some(path) = &args.tls_ca {
            for cert in certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match (&args.tls_client_cert, &args.tls_client_key) {
        (Some(chain), Some(key)) => builder
            .with_client_auth_cert(certificates(chain)?, private_key(key)?)
            .map_err(|e| format!("{}: {e}", key.display()))?,
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = Resumption::disabled();
    Ok(Connector::tls(Tls {
        config: Arc::new(config),
        server_name,
    }))
}

/// The certificates of a PEM file.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    PemSource::from(path)
        .certificates()
        .map_err(|e| e.to_string())
}

/// The first private key of a PEM file.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PemSource::from(path)
        .private_key()
        .map_err(|e| e.to_string())
}

/// `--tls-insecure`: any certificate is accepted, but the server must still prove that it
/// holds the key of the certificate it sent, so the handshake is exercised in full.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> TlsArgs {
        use clap::{Args as _, FromArgMatches as _};
        let command = TlsArgs::augment_args(clap::Command::new("t"));
        let matches = command
            .try_get_matches_from(std::iter::once("t").chain(line.iter().copied()))
            .expect("valid options");
        TlsArgs::from_arg_matches(&matches).expect("options")
    }

    #[test]
    fn tls_follows_the_scheme_or_the_flag() {
        let ws = WsUrl::parse("ws://127.0.0.1:9001/").expect("url");
        let wss = WsUrl::parse("wss://localhost/").expect("url");
        let insecure = ["--tls-insecure"];
        assert!(!connector(&ws, &args(&[])).expect("plain").is_tls());
        assert!(connector(&wss, &args(&insecure)).expect("wss").is_tls());
        assert!(
            connector(&ws, &args(&["--tls", "--tls-insecure"]))
                .expect("--tls")
                .is_tls()
        );
        let err = connector(&ws, &args(&insecure)).expect_err("TLS option on ws://");
        assert!(err.contains("--tls-insecure needs a wss:// URL"), "{err}");
    }

    #[test]
    fn bad_files_and_names_are_named() {
        let wss = WsUrl::parse("wss://localhost/").expect("url");
        let err = connector(&wss, &args(&["--tls-ca", "/nonexistent/ca.pem"])).expect_err("ca");
        assert!(err.contains("cannot read /nonexistent/ca.pem"), "{err}");
        let name = ["--tls-server-name", "bad name", "--tls-insecure"];
        let err = connector(&wss, &args(&name)).expect_err("name");
        assert!(err.contains("`bad name` is not a TLS server name"), "{err}");
    }
}
