//! Helpers shared by the integration tests and benches of the sockeye workspace.

pub mod vectors;
