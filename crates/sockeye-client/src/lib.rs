//! A WebSocket client on the sockeye-proto core: `ws://` and `wss://` (rustls, the platform's
//! roots or given ones, SNI, client certificates), subprotocols, extra headers,
//! permessage-deflate, connect, handshake and close timeouts.
//!
//! Two front ends share one core without I/O ([`Session`]):
//! - [`WebSocket`] blocks its thread on a `std` TCP stream;
//! - `AsyncWebSocket` (feature `tokio`) is a `Stream` of messages and a `Sink` for them, as
//!   with tokio-tungstenite.
//!
//! The `Sec-WebSocket-Key` and every mask key come from ChaCha20 seeded by the operating
//! system once per connection: RFC 6455 §5.3 wants masks nobody on the path can predict.
//!
//! ```no_run
//! use sockeye_client::{DeflateConfig, Message, Options, WebSocket};
//!
//! let options = Options::default()
//!     .protocol("chat")
//!     .header("Authorization", "Bearer 6f1c")
//!     .deflate(DeflateConfig::default());
//! let mut ws = WebSocket::connect_with("wss://example.com/chat", &options)?;
//! ws.send_text("hello")?;
//! match ws.recv()? {
//!     Message::Text(text) => println!("{text}"),
//!     other => println!("{other:?}"),
//! }
//! # Ok::<(), sockeye_client::Error>(())
//! ```
//!
//! What it does not do: HTTP proxies, redirects, cookies beyond the headers given, and
//! sending one message in several fragments (messages go out whole).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod blocking;
mod error;
pub mod io;
mod message;
#[cfg(feature = "tokio")]
mod nonblocking;
mod options;
mod random;
mod session;
mod tls;
mod url;

pub use blocking::WebSocket;
pub use error::{Error, Phase};
pub use message::{CloseFrame, Message};
#[cfg(feature = "tokio")]
pub use nonblocking::AsyncWebSocket;
pub use options::Options;
pub use rustls;
pub use session::Session;
pub use sockeye_deflate::DeflateConfig;
pub use sockeye_proto::CloseCode;
pub use tls::TlsOptions;
pub use url::{UrlError, WsUrl};
