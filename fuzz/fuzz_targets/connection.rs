#![no_main]
//! Fuzz target: the checks of `fuzz/checks/connection.rs`.

#[path = "../checks/connection.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
