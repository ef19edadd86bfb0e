//! heapvis integration tests: one binary, one module per area.

mod bad_input;
mod capture;
mod cli;
mod common;
mod diff;
mod dwarf;
mod elf;
mod fixtures;
mod fuzz_regressions;
mod gc_state;
mod hostile_dwarf;
mod incremental;
mod map_parser;
mod oracle_parity;
mod output_safety;
mod random_input;
mod render;
mod report;
mod retention;
mod schema;
mod soak;
mod summary;
mod synth_density;
mod synth_truth;
mod tables;
mod wrong_capture;
