//! Fuzz target: see `switchyard::fuzz_checks::newline_framing` for the property it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard::fuzz_checks::newline_framing(data));
