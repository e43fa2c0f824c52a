#![no_main]
//! Fuzz target: the checks of `fuzz/checks/offers.rs`.

#[path = "../checks/offers.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
