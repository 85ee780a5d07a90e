//! Fuzz target: see `switchyard::fuzz_checks::decoder_limits` for the property it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard::fuzz_checks::decoder_limits(data));
