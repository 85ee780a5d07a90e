//! Fuzz target: see `switchyard::fuzz_checks::http_request` for the property it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard::fuzz_checks::http_request(data));
