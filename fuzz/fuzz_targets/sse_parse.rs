//! Fuzz target: see `switchyard::fuzz_checks::sse_parse` for the property it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard::fuzz_checks::sse_parse(data));
