//! sockeye: a zero-copy WebSocket server engine.
//!
//! This facade re-exports the protocol core ([`proto`]) and the engine ([`server`]), and holds
//! the demo page of `sockeye serve` ([`demo`]).

pub mod demo;

pub use sockeye_deflate as deflate;
pub use sockeye_proto as proto;
pub use sockeye_server as server;
