//! Reading an ELF and deriving a profile from its DWARF: see `bodies::elf_dwarf`.
#![no_main]

#[path = "../bodies.rs"]
#[allow(dead_code)]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::elf_dwarf(data));
