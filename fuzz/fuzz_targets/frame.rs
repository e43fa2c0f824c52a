#![no_main]
//! Fuzz target: the checks of `fuzz/checks/frame.rs`.

#[path = "../checks/frame.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
