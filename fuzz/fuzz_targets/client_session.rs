#![no_main]
//! Fuzz target: the checks of `fuzz/checks/client_session.rs`.

#[path = "../checks/client_session.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
