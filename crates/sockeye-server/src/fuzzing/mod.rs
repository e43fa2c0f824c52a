//! Entry points for the fuzz targets in `fuzz/`, not for applications: hidden from the docs,
//! with no stability promise.
//!
//! - [`Engine`]: a worker's connection driver on a virtual clock over scripted streams, stepped
//!   by the `driver` target; the engine's own tests share its scripted stream (`script`).
//! - `tls_read_path` (feature `tls`): the worker's TLS read path over bytes in memory, for the
//!   `tls` target.

mod engine;
pub(crate) mod script;

#[cfg(feature = "tls")]
pub use crate::tls_io::fuzzing::{Outcome, tls_read_path, tls_session};
pub use engine::{ConnState, Engine, Note};
