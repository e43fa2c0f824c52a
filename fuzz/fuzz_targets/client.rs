#![no_main]
//! Fuzz target: the checks of `fuzz/checks/client.rs`.

#[path = "../checks/client.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
