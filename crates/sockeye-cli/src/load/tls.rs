//! wss:// for `sockeye load` and `sockeye connect`: the command line's TLS options (trusted CA,
//! server name, client certificate, `--tls-insecure`) as the client crate's `TlsOptions`.
//!
//! Load runs make a full handshake per connection (session resumption is off), so that connect
//! runs measure what a crowd of new clients costs the server.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ClientConnection;
use rustls::pki_types::ServerName;
use sockeye_client::{TlsOptions, WsUrl};

use super::stream::Connector;

/// TLS options of every mode.
#[derive(Debug, clap::Args)]
pub(crate) struct TlsArgs {
    /// Use TLS with a ws:// URL too (wss:// URLs always do).
    #[arg(long)]
    tls: bool,
    /// Trust only the CA certificates in FILE (PEM) to sign the server's certificate (by
    /// default: the system's trusted roots).
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
    config: Arc<rustls::ClientConfig>,
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
        check_plain(args)?;
        return Ok(Connector::plain());
    }
    let options = options(args)?.no_resumption();
    let server_name = options.name_for(&url.host).map_err(|e| e.to_string())?;
    let config = options.client_config().map_err(|e| e.to_string())?;
    Ok(Connector::tls(Tls {
        config,
        server_name,
    }))
}

impl TlsArgs {
    /// Whether `--tls` asks for TLS on a ws:// URL.
    pub(crate) fn forced(&self) -> bool {
        self.tls
    }
}

/// Refuses TLS options on a plain connection.
///
/// # Errors
///
/// The first TLS option given.
pub(crate) fn check_plain(args: &TlsArgs) -> Result<(), String> {
    let given = [
        ("--tls-ca", args.tls_ca.is_some()),
        ("--tls-insecure", args.tls_insecure),
        ("--tls-server-name", args.tls_server_name.is_some()),
        ("--tls-client-cert", args.tls_client_cert.is_some()),
    ];
    match given.iter().find(|(_, given)| *given) {
        Some((flag, _)) => Err(format!("{flag} needs a wss:// URL (or --tls)")),
        None => Ok(()),
    }
}

/// The client crate's TLS options from the command line.
///
/// # Errors
///
/// A file that cannot be read or holds no certificate or key.
pub(crate) fn options(args: &TlsArgs) -> Result<TlsOptions, String> {
    let mut options = match (&args.tls_ca, args.tls_insecure) {
        (Some(path), _) => TlsOptions::ca_file(path).map_err(|e| e.to_string())?,
        (None, true) => TlsOptions::insecure(),
        (None, false) => TlsOptions::default(),
    };
    if let Some(name) = &args.tls_server_name {
        options = options.server_name(name);
    }
    if let (Some(chain), Some(key)) = (&args.tls_client_cert, &args.tls_client_key) {
        options = options
            .client_cert_files(chain, key)
            .map_err(|e| e.to_string())?;
    }
    Ok(options)
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
