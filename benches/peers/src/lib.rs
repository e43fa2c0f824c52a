//! What the peer servers share: the command line, the listeners, the worker threads, (for the
//! two tokio peers) the accept loop, and (for the two floors, `peer-floor` and
//! `peer-floor-fanout`) the minimal WebSocket wire code.
//!
//! The tokio peers also serve `wss://` with `--tls-cert FILE --tls-key FILE` (tokio-rustls,
//! the ring provider); `peer-cert` writes a development CA and a certificate for `localhost`
//! signed by it.
//!
//! Every peer runs `--workers N` threads, each with its own `SO_REUSEPORT` listener and its own
//! single-threaded event loop, the way sockeye's workers are laid out, so that a comparison at
//! N workers compares engines and not threading models.
//!
//! ```text
//! Options::from_args ─> listen::bind_all ─> one thread per listener ─> the peer's loop
//!                                           (mio Poll, or a current-thread tokio runtime
//!                                            running tokio_serve::accept_loop, which makes
//!                                            the TLS handshake in each connection's task)
//! ```

pub mod listen;
pub mod options;
pub mod tls;
pub mod tokio_serve;
pub mod wire;

pub use options::Options;
