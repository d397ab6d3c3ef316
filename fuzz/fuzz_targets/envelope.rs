//! See `ws_core::fuzz_support::envelope`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ws_core::fuzz_support::envelope(data));
