use std::fmt;
use std::io;
use std::net::SocketAddr;

/// An error setting up the server: which address or option, and why.
#[non_exhaustive]
#[derive(Debug)]
pub enum SetupError {
    /// A listening socket could not be created, configured or bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The step that failed (`socket`, `SO_REUSEPORT`, `bind`, `listen`, ...).
        step: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The configuration is inconsistent.
    Config(&'static str),
    /// The event loop could not be created or a worker thread could not start.
    Io(io::Error),
    /// A worker died of a panic while running (from [`Server::run`](crate::Server::run)).
    Worker(crate::WorkerPanicked),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Bind { addr, step, source } => {
                write!(f, "cannot listen on {addr}: {step} failed: {source}")
            }
            SetupError::Config(what) => write!(f, "invalid configuration: {what}"),
            SetupError::Io(err) => write!(f, "cannot start the engine: {err}"),
            SetupError::Worker(err) => write!(f, "the engine failed: {err}"),
        }
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SetupError::Bind { source, .. } => Some(source),
            SetupError::Io(err) => Some(err),
            SetupError::Worker(err) => Some(err),
            SetupError::Config(_) => None,
        }
    }
}

impl From<io::Error> for SetupError {
    fn from(err: io::Error) -> Self {
        SetupError::Io(err)
    }
}
