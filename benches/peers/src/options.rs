//! The command line every peer takes.

use std::net::SocketAddr;
use std::process;

/// What a peer is told to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Worker threads, each with its own listener and event loop.
    pub workers: usize,
}

impl Options {
    /// Reads the process arguments; prints the usage and exits on `--help` or a bad argument.
    pub fn from_args(name: &str) -> Options {
        match Options::parse(std::env::args().skip(1)) {
            Ok(Some(options)) => options,
            Ok(None) => {
                println!("{}", usage(name));
                process::exit(0);
            }
            Err(e) => {
                eprintln!("{name}: {e}\n{}", usage(name));
                process::exit(2);
            }
        }
    }

    /// Parses arguments; `Ok(None)` asks for the usage.
    ///
    /// # Errors
    ///
    /// An unknown flag, a missing value or a value that does not parse.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
        let mut options = Options {
            addr: SocketAddr::from(([127, 0, 0, 1], 9001)),
            workers: 1,
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            // A TLS variant adds `--tls-cert FILE` and `--tls-key FILE` here.
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
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
        Ok(Some(options))
    }
}

fn usage(name: &str) -> String {
    format!(
        "usage: {name} [--addr HOST:PORT] [--workers N]\n  \
         --addr     where to listen [default: 127.0.0.1:9001]\n  \
         --workers  threads, each with its own SO_REUSEPORT listener and event loop [default: 1]"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, String> {
        Options::parse(args.iter().map(|a| (*a).to_owned()))
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
    }
}
