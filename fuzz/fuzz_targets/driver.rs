#![no_main]
//! Fuzz target: the checks of `fuzz/checks/driver.rs`.

#[path = "../checks/driver.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
