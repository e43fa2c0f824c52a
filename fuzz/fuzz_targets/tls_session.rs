#![no_main]
//! Fuzz target: the checks of `fuzz/checks/tls_session.rs`.

#[path = "../checks/tls_session.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
