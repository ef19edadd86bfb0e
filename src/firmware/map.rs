//! GNU ld map parser.
//!
//! Follows the reference's reading of a map (tools/analyze_heap_dump.py l. 97–132):
//! symbol lines `0xADDR name`, input sections on one line (`.bss.name 0xADDR 0xSIZE
//! file`) or wrapped over two, linker-script assignments (`0xADDR _srelocate = .`),
//! the `Common symbol` block (sizes only; addresses come from the `COMMON` section
//! later), `.lto_priv.N` suffixes, first address wins on conflicts, debug sections
//! skipped. Where the reference is wrong it is fixed (see README, "Differences"):
//! one-line sections keep their whole name (`.bss.heap.lto_priv.0` is `heap`, not
//! `0`), `.data.NAME` sections count, merged-constant sections (`.rodata.str1.1`)
//! name nothing, LTO common symbols "(symbol from plugin)" keep their size, address 0
//! is an address, and the "Discarded input sections" block is ignored instead of
//! relying on its zero addresses.

use std::path::Path;

use super::symbols::SymbolTable;
use crate::error::{Error, Result};

/// A GNU ld map larger than this is not one (a big firmware's map is tens of MB).
pub const MAX_MAP_BYTES: u64 = 1 << 30;

/// Reads a map file as text, refusing what is not one before reading it whole:
/// a file over [`MAX_MAP_BYTES`], or one whose first 64 KiB hold NUL bytes (a
/// dump or a flash image given in the map's place).
pub fn read_map_file(path: &Path) -> Result<String> {
    let data = super::read_capped(path, MAX_MAP_BYTES, "a GNU ld map")?;
    let head = &data[..data.len().min(64 << 10)];
    if let Some(at) = head.iter().position(|&b| b == 0) {
        return Err(Error::WrongInput {
            path: path.into(),
            expected: "a GNU ld map (text)",
            found: format!("binary data (a NUL byte at offset {at}); were the inputs given in the wrong order?"),
        });
    }
    Ok(String::from_utf8_lossy(&data).into_owned())
}

const SECTION_PREFIXES: [&str; 4] = [".text.", ".rodata.", ".bss.", ".data."];
const SKIP_SECTIONS: [&str; 9] = [
    ".debug_ranges",
    ".debug_frame",
    ".debug_loc",
    ".comment",
    ".debug_str",
    ".debug_line",
    ".debug_abbrev",
    ".debug_info",
    "COMMON",
];

/// Parses `0x…` hex as the map prints it; anything else is not a number here.
fn hex(token: &str) -> Option<u64> {
    let digits = token.strip_prefix("0x").or_else(|| token.strip_prefix("0X"))?;
    u64::from_str_radix(digits, 16).ok()
}

fn is_hex(token: &str) -> bool {
    hex(token).is_some()
}

/// The symbol an input section defines: `.bss.heap.lto_priv.0` → `heap`,
/// `.text.gc_alloc` → `gc_alloc`. `None` for sections that define no named object.
pub fn section_symbol(section: &str) -> Option<&str> {
    let rest = SECTION_PREFIXES.iter().find_map(|p| section.strip_prefix(p))?;
    let rest = match rest.find(".lto_priv.") {
        Some(i) => &rest[..i],
        None => rest,
    };
    // Merged strings/constants (`.rodata.str1.4`, `.rodata.cst8`) are not objects.
    let merged = |p: &str| rest.strip_prefix(p).is_some_and(|t| t.starts_with(|c: char| c.is_ascii_digit()));
    if rest.is_empty() || merged("str") || merged("cst") {
        return None;
    }
    Some(rest)
}

/// Strips LTO's private suffix from a symbol name (`heap.lto_priv.0` → `heap`).
fn plain_name(name: &str) -> &str {
    match name.find(".lto_priv") {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    }
}

#[derive(PartialEq)]
enum Block {
    Preamble,
    Common,
    Discarded,
    Memory,
}

/// Parses the text of a GNU ld map into a symbol table.
pub fn parse_map(text: &str) -> SymbolTable {
    let mut table = SymbolTable::new();
    let mut block = Block::Preamble;
    // A name seen on a line of its own, waiting for its address/size line.
    let mut pending: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        let parts: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with("Common symbol") {
            block = Block::Common;
            pending = None;
            continue;
        }
        if line == "Discarded input sections" {
            block = Block::Discarded;
            pending = None;
            continue;
        }
        if line == "Memory Configuration" || line == "Linker script and memory map" {
            block = Block::Memory;
            pending = None;
            continue;
        }
        match block {
            Block::Discarded => continue,
            Block::Common => match parts.as_slice() {
                [name] => pending = Some(plain_name(name).to_string()),
                [size, ..] if pending.is_some() && is_hex(size) => {
                    let name = pending.take().unwrap_or_default();
                    table.add(&name, None, hex(size));
                }
                [name, size, ..] if is_hex(size) => {
                    table.add(plain_name(name), None, hex(size));
                    pending = None;
                }
                _ => {}
            },
            Block::Preamble | Block::Memory => parse_memory_line(&parts, &mut pending, &mut table),
        }
    }
    table
}

fn parse_memory_line(parts: &[&str], pending: &mut Option<String>, table: &mut SymbolTable) {
    match parts {
        // Wrapped input section: the name alone, then `0xADDR 0xSIZE file`.
        [section] => {
            *pending = section_symbol(section).map(str::to_string);
        }
        [addr, size, _file] if is_hex(addr) && is_hex(size) => {
            if let Some(name) = pending.take() {
                table.add(&name, hex(addr), hex(size));
            }
        }
        // Symbol line: `0xADDR name`.
        [addr, name] if is_hex(addr) && !is_hex(name) => {
            table.add(plain_name(name), hex(addr), None);
            *pending = None;
        }
        // One-line input section: `.bss.name 0xADDR 0xSIZE file`.
        [section, addr, size, _file] if !SKIP_SECTIONS.contains(section) && is_hex(addr) && is_hex(size) => {
            if let Some(name) = section_symbol(section) {
                table.add(name, hex(addr), hex(size));
            }
            *pending = None;
        }
        // Linker-script assignment: `0xADDR name = expression`.
        [addr, name, "=", ..] if is_hex(addr) && *name != "." => {
            table.add(plain_name(name), hex(addr), None);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_names() {
        assert_eq!(section_symbol(".bss.heap.lto_priv.0"), Some("heap"));
        assert_eq!(section_symbol(".text.gc_alloc"), Some("gc_alloc"));
        assert_eq!(section_symbol(".data.foo"), Some("foo"));
        assert_eq!(section_symbol(".rodata.str1.1"), None);
        assert_eq!(section_symbol(".rodata.cst8"), None);
        assert_eq!(section_symbol(".rodata.strtab"), Some("strtab"));
        assert_eq!(section_symbol(".text"), None);
    }
}
