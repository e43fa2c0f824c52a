#![no_main]
//! Fuzz target: the checks of `fuzz/checks/inflate.rs`.

#[path = "../checks/inflate.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
