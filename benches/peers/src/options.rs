//! The command line every peer takes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process;

/// What a peer is told to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Worker threads, each with its own listener and event loop.
    pub workers: usize,
    /// Serve over TLS with these files (`--tls-cert`, `--tls-key`); plain TCP when `None`.
    pub tls: Option<TlsFiles>,
}

/// The server's certificate chain and its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The chain, the server's certificate first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl Options {
    /// Reads the process arguments; prints the usage and exits on `--help` or a bad argument.
    /// `tls`: whether this peer takes `--tls-cert` and `--tls-key`.
    pub fn from_args(name: &str, tls: bool) -> Options {
        match Options::parse(std::env::args().skip(1), tls) {
            Ok(Some(options)) => options,
            Ok(None) => {
                println!("{}", usage(name, tls));
                process::exit(0);
            }
            Err(e) => {
                eprintln!("{name}: {e}\n{}", usage(name, tls));
                process::exit(2);
            }
        }
    }

    /// Parses arguments; `Ok(None)` asks for the usage. Without `tls` the TLS flags are
    /// unknown arguments.
    ///
    /// # Errors
    ///
    /// An unknown flag, a missing value, a value that does not parse, or only one of
    /// `--tls-cert` and `--tls-key`.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        tls: bool,
    ) -> Result<Option<Options>, String> {
        let mut options = Options {
            addr: SocketAddr::from(([127, 0, 0, 1], 9001)),
            workers: 1,
            tls: None,
        };
        let (mut cert, mut key) = (None, None);
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--tls-cert" if tls => cert = Some(PathBuf::from(value()?)),
                "--tls-key" if tls => key = Some(PathBuf::from(value()?)),
                "--addr" => {
                    let text = value()?;
                    options.addr = text.parse().map_err(|e| format!("--addr {text}: {e}"))?;
                }
                "--workers" => {
                    let text = value()?;
                    options.workers = match text.parse() {
                        Ok(n) if n > 0 => n,
                        _ => return Err(format!("--workers {text}: expected a count above 0")),
                    };
                }
                "-h" | "--help" => return Ok(None),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        options.tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return Err("--tls-cert needs --tls-key".to_owned()),
            (None, Some(_)) => return Err("--tls-key needs --tls-cert".to_owned()),
        };
        Ok(Some(options))
    }
}

fn usage(name: &str, tls: bool) -> String {
    let mut text = format!(
        "usage: {name} [--addr HOST:PORT] [--workers N]{}\n  \
         --addr      where to listen [default: 127.0.0.1:9001]\n  \
         --workers   threads, each with its own SO_REUSEPORT listener and event loop \
         [default: 1]",
        if tls {
            " [--tls-cert FILE --tls-key FILE]"
        } else {
            ""
        }
    );
    if tls {
        text.push_str(
            "\n  --tls-cert  serve wss:// with the certificate chain in FILE (PEM, the server's \
             certificate first)\n  \
             --tls-key   the private key of --tls-cert (PEM)",
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, String> {
        Options::parse(args.iter().map(|a| (*a).to_owned()), false)
    }

    fn parse_tls(args: &[&str]) -> Result<Option<Options>, String> {
        Options::parse(args.iter().map(|a| (*a).to_owned()), true)
    }

    #[test]
    fn defaults_and_flags() {
        let options = parse(&[]).unwrap().unwrap();
        assert_eq!(options.addr.to_string(), "127.0.0.1:9001");
        assert_eq!(options.workers, 1);
        let options = parse(&["--addr", "[::1]:80", "--workers", "4"])
            .unwrap()
            .unwrap();
        assert_eq!(options.addr.to_string(), "[::1]:80");
        assert_eq!(options.workers, 4);
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--workers", "0"]).is_err());
        assert!(parse(&["--addr"]).is_err());
        assert!(parse(&["--nope"]).is_err());
        assert!(options.tls.is_none());
    }

    #[test]
    fn tls_files() {
        assert!(parse_tls(&[]).unwrap().unwrap().tls.is_none());
        let options = parse_tls(&["--tls-cert", "c.pem", "--tls-key", "k.pem"])
            .unwrap()
            .unwrap();
        assert_eq!(
            options.tls,
            Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        assert!(parse_tls(&["--tls-cert", "c.pem"]).is_err());
        assert!(parse_tls(&["--tls-key", "k.pem"]).is_err());
        assert!(parse_tls(&["--tls-cert"]).is_err());
        // A peer without TLS does not take the flags.
        assert!(parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).is_err());
    }
}
