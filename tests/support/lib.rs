//! Helpers shared by the integration tests and benches of the sockeye workspace.

pub mod autobahn;
pub mod case_client;
pub mod client;
pub mod deflate;
pub mod engine;
pub mod interop;
pub mod json;
pub mod nats;
pub mod pair;
pub mod tls;
pub mod vectors;
pub mod wire;
