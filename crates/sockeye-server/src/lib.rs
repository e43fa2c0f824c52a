//! The sockeye WebSocket engine: per-core `mio` workers serving RFC 6455 connections through
//! the sans-IO core of `sockeye-proto`.
//!
//! With the `tls` feature, the workers terminate TLS themselves ([`TlsConfig`]): wss:// with
//! no proxy in front. What it does not do: HTTP beyond the upgrade and a one-shot plain
//! response, or compression itself (permessage-deflate plugs into the protocol core).
//!
//! ```text
//!  worker thread (one per core, nothing shared on the hot path)
//!  ┌───────────────────────────────────────────────────────────────────────┐
//!  │ SO_REUSEPORT listener ─accept─▶ slab of connections ◀─ timer heap      │
//!  │ socket ─read─▶ shared receive buffer ─▶ Connection::handle_read       │
//!  │                 (partial frame kept)       │ events borrow the buffer  │
//!  │                                            ▼                           │
//!  │                                   Handler::on_message(out)             │
//!  │ socket ◀─one write after each read─ cork ◀─ out.send(..)               │
//!  │        ◀─ one writev: cork + a large message from the caller's bytes   │
//!  │        ◀─ per-connection queue (only what the kernel did not take),    │
//!  │           control frames (pong, close) ahead at the next frame boundary│
//!  │ channel + Waker ◀── Handle (send, close, broadcast, shutdown, stats)   │
//!  └───────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! The worker is a loop over parts (`worker/`): the connection table, the timers, the buffers,
//! the output queue that owns the ordering rule, the application side, and a connection driver
//! that takes the time as an argument, so its decisions are tested on a virtual clock.
//!
//! # Example
//!
//! ```no_run
//! use sockeye_proto::{Message, Request};
//! use sockeye_server::{Accept, Handler, Outbox, Reject, Server, ServerConfig};
//!
//! #[derive(Clone)]
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type Conn = ();
//!     fn on_upgrade(&mut self, _req: &Request<'_>, _accept: &mut Accept<'_>) -> Result<(), Reject> {
//!         Ok(())
//!     }
//!     fn on_message(&mut self, _conn: &mut (), msg: Message<'_>, out: &mut Outbox<'_>) {
//!         let _ = out.send(msg);
//!     }
//! }
//!
//! let config = ServerConfig::new("127.0.0.1:9001".parse().unwrap());
//! Server::bind(config, Echo).unwrap().run().unwrap();
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod handle;
mod handler;
mod proxy;
mod server;
#[cfg(feature = "tls")]
mod sni;
pub mod socket;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tls")]
mod tls_io;
pub mod topics;
mod transport;
mod worker;

pub use config::{Backpressure, BackpressurePolicy, ServerConfig};
pub use error::SetupError;
pub use handle::{Handle, HandleError, OwnedMessage, Receipt, SendOutcome, Stats};
pub use handler::{
    Accept, CloseReason, ConnId, Handler, HttpResponse, Outbox, Reject, SendError, Timeout,
};
#[cfg(feature = "tls")]
pub use rustls;
pub use server::{Running, Server, WorkerPanicked};
#[cfg(feature = "tls")]
pub use tls::{ClientAuth, PemSource, TlsConfig, TlsError, TlsSettings};
pub use topics::{
    Backplane, PublishError, PublishReceipt, PublishReport, SlowConsumer, SubscribeError,
    TopicError,
};
