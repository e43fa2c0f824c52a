#![no_main]
//! Fuzz target: the checks of `fuzz/checks/upgrade_differential.rs`.

#[path = "../checks/upgrade_differential.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
