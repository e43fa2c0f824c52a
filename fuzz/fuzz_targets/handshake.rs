#![no_main]
//! Fuzz target: the checks of `fuzz/checks/handshake.rs`.

#[path = "../checks/handshake.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
