//! ELF input: the symbol table gives names, addresses and sizes, the loadable
//! sections give the flash contents, so a build needs no `.bin` and no map.
//!
//! Parsing is the `object` crate's (bounds-checked, no panics on malformed files).
//! Every size that comes from the file is capped by the file's real length.

use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

use super::{Firmware, SymbolTable};
use crate::error::{Error, Result};
use crate::profile::Profile;

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::BadElf { path: path.into(), message: message.into() }
}

/// An ELF larger than this is not a firmware build (one with full debug info is
/// tens to hundreds of MB).
pub const MAX_ELF_BYTES: u64 = 2 << 30;

/// Reads an ELF file whole, refusing one over [`MAX_ELF_BYTES`] before reading it.
pub fn read_elf_file(path: &Path) -> Result<Vec<u8>> {
    super::read_capped(path, MAX_ELF_BYTES, "a firmware ELF file")
}

/// Reads `path` and resolves the build through `profile`.
pub fn load(path: &Path, profile: &Profile) -> Result<Firmware> {
    let data = read_elf_file(path)?;
    load_bytes(&data, path, profile)
}

/// The same from the file's bytes, already read (`path` names it in errors).
pub fn load_bytes(data: &[u8], path: &Path, profile: &Profile) -> Result<Firmware> {
    let (symbols, flash) = parse(data, path, profile)?;
    Firmware::from_parts(symbols, flash, path, profile)
}

/// Symbols (in table order, `.lto_priv.N` stripped) and the flash image from
/// `_sfixed` (or the profile's flash symbol) to the end of the last loadable
/// section below RAM.
pub fn parse(data: &[u8], path: &Path, profile: &Profile) -> Result<(SymbolTable, Vec<u8>)> {
    let file = object::File::parse(data).map_err(|e| bad(path, format!("not a readable ELF file: {e}")))?;
    let arm = file.architecture() == object::Architecture::Arm;
    let mut symbols = SymbolTable::new();
    for sym in file.symbols() {
        if sym.is_undefined() || matches!(sym.kind(), SymbolKind::Section | SymbolKind::File) {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        if name.is_empty() || name.starts_with('$') {
            continue; // ARM mapping symbols ($t, $d) name no object
        }
        let name = name.find(".lto_priv").filter(|i| *i > 0).map_or(name, |i| &name[..i]);
        let size = (sym.size() > 0).then_some(sym.size());
        // A Thumb function's symbol has bit 0 set (the interworking bit); its code,
        // and the address the linker map prints, start one byte lower.
        let thumb = arm && sym.kind() == SymbolKind::Text && sym.address() & 1 == 1;
        symbols.add(name, Some(sym.address() & !(thumb as u64)), size);
    }
    // The RAM start may be given as an address (`--ram-start 0x20000000`).
    let ram_start =
        super::parse_address(&profile.symbols.ram_start).or_else(|| symbols.address_of(&profile.symbols.ram_start));
    // Loadable sections with contents, below RAM: the flash image.
    let mut pieces: Vec<(u64, &[u8])> = Vec::new();
    for section in file.sections() {
        // Code and constants: writable data lives in RAM (its initial image in
        // flash is not at its address), so it is no part of the image, even when
        // a RAM start given by hand lies past its start.
        let loadable =
            matches!(section.kind(), SectionKind::Text | SectionKind::ReadOnlyData | SectionKind::ReadOnlyString);
        if !loadable || section.size() == 0 {
            continue;
        }
        let address = section.address();
        if ram_start.is_some_and(|r| address >= r) {
            continue;
        }
        let bytes = section.data().map_err(|e| bad(path, format!("section {:?}: {e}", section.name())))?;
        pieces.push((address, bytes));
    }
    let base = match symbols.address_of(&profile.symbols.flash_start) {
        Some(b) => b,
        None => {
            let b = pieces.iter().map(|p| p.0).min().ok_or_else(|| bad(path, "no loadable section below RAM"))?;
            symbols.add(&profile.symbols.flash_start, Some(b), None);
            b
        }
    };
    let end = pieces.iter().map(|(a, b)| a.saturating_add(b.len() as u64)).max().unwrap_or(base);
    let span = end.saturating_sub(base);
    // The image is placed by address: its span may not exceed what the file holds
    // by more than a gap-filling factor, or a bogus address would cost gigabytes.
    if span > (data.len() as u64).saturating_mul(4).max(1 << 20) {
        return Err(bad(
            path,
            format!("loadable sections span {span} bytes from 0x{base:08x}, far more than the file holds"),
        ));
    }
    let mut flash = vec![0u8; span as usize];
    for (address, bytes) in pieces {
        let Some(offset) = address.checked_sub(base) else { continue };
        let o = offset as usize;
        if let Some(dst) = flash.get_mut(o..o + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
    Ok((symbols, flash))
}
