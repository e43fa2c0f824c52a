#![no_main]
//! Fuzz target: the checks of `fuzz/checks/deflate_connection.rs`.

#[path = "../checks/deflate_connection.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
