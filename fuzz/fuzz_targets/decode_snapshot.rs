//! Decoding one snapshot of each layout: see `bodies::decode_snapshot`.
#![no_main]

#[path = "../bodies.rs"]
#[allow(dead_code)]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::decode_snapshot(data));
