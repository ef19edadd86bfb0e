//! Parsing a GNU ld map: see `bodies::map_parser`.
#![no_main]

#[path = "../bodies.rs"]
#[allow(dead_code)]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::map_parser(data));
