//! sockeye: a zero-copy WebSocket server engine.
//!
//! This facade re-exports the protocol core ([`proto`]) and the engine ([`server`]).

pub use sockeye_proto as proto;
pub use sockeye_server as server;
