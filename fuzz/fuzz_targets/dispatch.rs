//! See `ws_core::fuzz_support::dispatch`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ws_core::fuzz_support::dispatch(data));
