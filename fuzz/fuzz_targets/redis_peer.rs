//! See `ws_core::fuzz_support::redis_peer_input`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ws_core::fuzz_support::redis_peer_input(data));
