//! Development certificates for the TLS scenarios: a throwaway CA, and a server certificate for
//! `localhost`, 127.0.0.1 and ::1 signed by it.
//!
//! A client verifies the server against the CA (`sockeye load --tls-ca CA
//! --tls-server-name localhost`), as it would in production, rather than trusting a
//! self-signed certificate (webpki refuses a CA certificate used as an end entity). The CA's
//! key is never written, so nothing else can be signed with it. Both keys are ECDSA P-256,
//! the server's written as PKCS#8 with mode 0600. For benchmarks and tests only.
//!
//! `peer-cert --ca FILE --cert FILE --key FILE`

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

const USAGE: &str = "usage: peer-cert --ca FILE --cert FILE --key FILE\n  \
    --ca    where to write the development CA's certificate (PEM), for --tls-ca\n  \
    --cert  where to write the server's certificate for localhost, 127.0.0.1 and ::1 (PEM)\n  \
    --key   where to write the server's private key (PEM, PKCS#8, mode 0600)";

/// The names the server certificate is valid for.
const NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

struct Paths {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn main() {
    let paths = match parse(std::env::args().skip(1)) {
        Ok(Some(paths)) => paths,
        Ok(None) => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("peer-cert: {e}\n{USAGE}");
            process::exit(2);
        }
    };
    if let Err(e) = write_all(&paths) {
        eprintln!("peer-cert: {e}");
        process::exit(1);
    }
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Paths>, String> {
    let (mut ca, mut cert, mut key) = (None, None, None);
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--ca" => &mut ca,
            "--cert" => &mut cert,
            "--key" => &mut key,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other}")),
        };
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        *slot = Some(PathBuf::from(value));
    }
    match (ca, cert, key) {
        (Some(ca), Some(cert), Some(key)) => Ok(Some(Paths { ca, cert, key })),
        _ => Err("--ca, --cert and --key are all needed".to_owned()),
    }
}

/// Formats an rcgen error about `what`.
fn fail(what: &'static str) -> impl Fn(rcgen::Error) -> String {
    move |e| format!("{what}: {e}")
}

fn write_all(paths: &Paths) -> Result<(), String> {
    let ca_key = KeyPair::generate().map_err(fail("the CA key"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(fail("the CA"))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sockeye peers development CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).map_err(fail("the CA"))?;

    let key = KeyPair::generate().map_err(fail("the server key"))?;
    let mut params =
        CertificateParams::new(NAMES.map(str::to_owned).to_vec()).map_err(fail("the server"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .map_err(fail("the server certificate"))?;

    write(&paths.ca, ca.pem().as_bytes(), 0o644)?;
    write(&paths.cert, cert.pem().as_bytes(), 0o644)?;
    write(&paths.key, key.serialize_pem().as_bytes(), 0o600)
}

/// Replaces `path` with `contents`, created with `mode` when it does not exist yet.
fn write(path: &Path, contents: &[u8], mode: u32) -> Result<(), String> {
    let name = path.display();
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("{name}: {e}"))?;
    file.write_all(contents)
        .map_err(|e| format!("{name}: {e}"))?;
    // An existing file keeps its mode through `open`: narrow a key's here.
    if mode & 0o077 == 0 {
        fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Option<Paths>, String> {
        parse(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn arguments() {
        let paths = parse_args(&["--ca", "a", "--cert", "b", "--key", "c"])
            .unwrap()
            .unwrap();
        assert_eq!(
            (paths.ca, paths.cert, paths.key),
            ("a".into(), "b".into(), "c".into())
        );
        assert!(parse_args(&["--help"]).unwrap().is_none());
        assert!(parse_args(&["--ca", "a", "--cert", "b"]).is_err());
        assert!(parse_args(&["--ca"]).is_err());
        assert!(parse_args(&["--nope", "x"]).is_err());
    }

    /// A client that trusts only the CA accepts the server for each of its names, in a TLS
    /// handshake against the peers' own server configuration, with ALPN `http/1.1`.
    #[test]
    fn the_ca_vouches_for_the_server() {
        use std::sync::Arc;

        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, ServerName};
        use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConnection};
        use sockeye_peers::options::TlsFiles;

        let dir = std::env::temp_dir().join(format!("peer-cert-test-{}", process::id()));
        fs::create_dir_all(&dir).unwrap();
        let paths = Paths {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        write_all(&paths).unwrap();
        let server_config = sockeye_peers::tls::server_config(&TlsFiles {
            cert: paths.cert.clone(),
            key: paths.key.clone(),
        })
        .unwrap();
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&paths.ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let key_mode = fs::metadata(&paths.key).unwrap().permissions();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&key_mode) & 0o777,
            0o600
        );

        // *ring* is this project's TLS backend; rustls 0.23.48 deprecates it for lacking a
        // post-quantum key exchange.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut client_config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client_config = Arc::new(client_config);

        for name in NAMES {
            let name = ServerName::try_from(name).unwrap();
            let mut client = ClientConnection::new(Arc::clone(&client_config), name).unwrap();
            let mut server = ServerConnection::new(Arc::clone(&server_config)).unwrap();
            for _ in 0..10 {
                if !client.is_handshaking() && !server.is_handshaking() {
                    break;
                }
                let mut wire = Vec::new();
                while client.wants_write() {
                    client.write_tls(&mut wire).unwrap();
                }
                server.read_tls(&mut wire.as_slice()).unwrap();
                server.process_new_packets().unwrap();
                wire.clear();
                while server.wants_write() {
                    server.write_tls(&mut wire).unwrap();
                }
                client.read_tls(&mut wire.as_slice()).unwrap();
                client.process_new_packets().unwrap();
            }
            assert!(!client.is_handshaking() && !server.is_handshaking());
            assert_eq!(server.alpn_protocol(), Some(&b"http/1.1"[..]));
        }
    }
}
