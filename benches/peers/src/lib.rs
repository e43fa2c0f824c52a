//! What the peer echo servers share: the command line, the listeners, the worker threads, and
//! (for the two tokio peers) the accept loop.
//!
//! Every peer runs `--workers N` threads, each with its own `SO_REUSEPORT` listener and its own
//! single-threaded event loop, the way sockeye's workers are laid out, so that a comparison at
//! N workers compares engines and not threading models.
//!
//! ```text
//! Options::from_args ─> listen::bind_all ─> one thread per listener ─> the peer's loop
//!                                           (mio Poll, or a current-thread tokio runtime
//!                                            running tokio_serve::accept_loop)
//! ```

pub mod listen;
pub mod options;
pub mod tokio_serve;

pub use options::Options;
