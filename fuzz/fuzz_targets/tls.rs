#![no_main]
//! Fuzz target: the checks of `fuzz/checks/tls.rs`.

#[path = "../checks/tls.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
