//! Firmware inputs: the link map's symbols, the flash image, and the addresses the
//! decoder needs resolved once per run through the [`Profile`].

pub mod dwarf;
pub mod elf;
pub mod map;
pub mod symbols;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::profile::{Profile, SymbolNames, TypeSymbols};
pub use symbols::{AddressNames, Symbol, SymbolTable};

/// Where a build's symbols and flash contents come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FirmwareFiles {
    /// `firmware.bin` (flash from `_sfixed`) and `firmware.map` (GNU ld map).
    BinMap { flash: PathBuf, map: PathBuf },
    /// `firmware.elf`: symbols from its symbol table, flash from its loadable sections.
    Elf(PathBuf),
}

/// The files of a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputPaths {
    pub ram: PathBuf,
    pub firmware: FirmwareFiles,
}

/// `firmware.bin` and its kin (`firmware-*.bin`): a build's flash image, never a dump.
fn is_firmware_image(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("firmware"))
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok()
        && magic == *b"\x7fELF"
}

impl InputPaths {
    /// `RAM BIN MAP` in the reference's order, `RAM ELF`, or one directory holding
    /// them (`ram.bin` with `firmware.elf`, or with `firmware.bin` and `firmware.map`).
    pub fn resolve(args: &[PathBuf]) -> Result<Self> {
        let need = |p: &PathBuf, what: &'static str| -> Result<()> {
            if p.is_file() {
                Ok(())
            } else {
                Err(Error::MissingInput { path: p.clone(), expected: what })
            }
        };
        match args {
            [dir] if dir.is_dir() => Self::from_dir(dir),
            [ram, flash, map] => {
                need(ram, "a RAM dump")?;
                need(flash, "a flash image")?;
                need(map, "a GNU ld map")?;
                Ok(InputPaths {
                    ram: ram.clone(),
                    firmware: FirmwareFiles::BinMap { flash: flash.clone(), map: map.clone() },
                })
            }
            [ram, elf] => {
                need(ram, "a RAM dump")?;
                need(elf, "the firmware's ELF file")?;
                if !is_elf(elf) {
                    return Err(Error::WrongInput {
                        path: elf.clone(),
                        expected: "the firmware's ELF file",
                        found: "it does not start with \\x7fELF (for firmware.bin, give firmware.map after it)".into(),
                    });
                }
                Ok(InputPaths { ram: ram.clone(), firmware: FirmwareFiles::Elf(elf.clone()) })
            }
            [one] => Err(Error::MissingInput {
                path: one.clone(),
                expected: "a directory holding ram.bin with firmware.elf, or with firmware.bin and firmware.map",
            }),
            _ => Err(Error::MissingInput {
                path: args.first().cloned().unwrap_or_default(),
                expected: "RAM_DUMP FIRMWARE_BIN FIRMWARE_MAP, RAM_DUMP FIRMWARE_ELF, or one directory holding them",
            }),
        }
    }

    /// The file the symbols come from (the map or the ELF), for messages.
    pub fn symbols_file(&self) -> &Path {
        match &self.firmware {
            FirmwareFiles::BinMap { map, .. } => map,
            FirmwareFiles::Elf(elf) => elf,
        }
    }

    fn from_dir(dir: &Path) -> Result<Self> {
        let named = |n: &str| Some(dir.join(n)).filter(|p| p.is_file());
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        let with_ext = |ext: &str| -> Vec<PathBuf> {
            files.iter().filter(|p| p.extension().is_some_and(|e| e == ext)).cloned().collect()
        };
        let one = |mut found: Vec<PathBuf>, what: &'static str| -> Result<PathBuf> {
            match found.len() {
                1 => Ok(found.remove(0)),
                0 => Err(Error::MissingInput { path: dir.to_path_buf(), expected: what }),
                _ => Err(Error::AmbiguousInput {
                    dir: dir.to_path_buf(),
                    what,
                    found: found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
                }),
            }
        };
        let map = named("firmware.map").or_else(|| {
            let maps = with_ext("map");
            (maps.len() == 1).then(|| maps[0].clone())
        });
        let elf = named("firmware.elf").or_else(|| {
            let elfs = with_ext("elf");
            (elfs.len() == 1).then(|| elfs[0].clone())
        });
        let flash = named("firmware.bin");
        let firmware = match (flash, map, elf) {
            (Some(flash), Some(map), _) => FirmwareFiles::BinMap { flash, map },
            (_, _, Some(elf)) => FirmwareFiles::Elf(elf),
            (None, Some(_), None) => {
                return Err(Error::MissingInput { path: dir.join("firmware.bin"), expected: "the flash image" })
            }
            _ => {
                return Err(Error::MissingInput {
                    path: dir.to_path_buf(),
                    expected: "firmware.elf, or firmware.bin with firmware.map",
                })
            }
        };
        // The flash image is never the dump, whichever firmware files are used.
        let ram = match named("ram.bin") {
            Some(p) => p,
            None => {
                one(with_ext("bin").into_iter().filter(|p| !is_firmware_image(p)).collect(), "ram.bin (the RAM dump)")?
            }
        };
        Ok(InputPaths { ram, firmware })
    }
}

/// Addresses of the built-in types the decoder gives kinds to (absent ones are `None`).
#[derive(Clone, Debug, Default)]
pub struct TypeAddresses {
    pub str: Option<u64>,
    pub dict: Option<u64>,
    pub map: Option<u64>,
    pub type_type: Option<u64>,
    pub tuple: Option<u64>,
    pub property: Option<u64>,
    pub bytearray: Option<u64>,
    pub fun_bc: Option<u64>,
    pub module: Option<u64>,
    pub functions: Vec<u64>,
    pub list: Option<u64>,
    pub set: Option<u64>,
    pub frozenset: Option<u64>,
    pub bytes: Option<u64>,
    pub array: Option<u64>,
    pub closure: Option<u64>,
    pub cell: Option<u64>,
    pub int: Option<u64>,
}

/// A firmware build as the decoder sees it: everything resolved, nothing left to fail.
#[derive(Clone, Debug)]
pub struct Firmware {
    pub symbols: SymbolTable,
    pub flash_base: u64,
    pub flash: Vec<u8>,
    pub ram_start: u64,
    pub ram_end: u64,
    pub heap_start: u64,
    pub heap_bytes: u64,
    pub state_address: u64,
    pub state_bytes: Option<u64>,
    pub types: TypeAddresses,
    /// Names for addresses in RAM (`symbol+offset`), then the profile's names for
    /// fields of `mp_state_ctx` (`mp_state_ctx.vm.last_pool`, ...).
    pub ram_names: AddressNames,
    pub state_names: HashMap<String, String>,
    /// Flash address → symbol starting there (type objects and other constants).
    /// Shared, so that the writer's dictionaries can hold a name and find it
    /// by address (see `tables::per_snapshot::RecurringDict`).
    pub flash_names: rustc_hash::FxHashMap<u64, std::sync::Arc<str>>,
    /// Flash address → the kind of an object whose type is there, for the
    /// symbols that name types (see [`crate::decode::kinds`]).
    pub type_kinds: rustc_hash::FxHashMap<u64, &'static str>,
    /// Type symbols the profile names but the map lacks (their kinds cannot be told).
    pub missing_types: Vec<String>,
    /// The port's own GC roots (the profile's `symbols.port_roots`), resolved.
    pub port_roots: Vec<Range<u64>>,
}

/// The ranges `entries` name (a symbol with a size, or `START..END` of symbols
/// or addresses), each within RAM.
fn port_roots(symbols: &SymbolTable, entries: &[String], map: &Path, ram: Range<u64>) -> Result<Vec<Range<u64>>> {
    let bad = |entry: &str, why: String| Error::BadProfile {
        path: map.to_path_buf(),
        message: format!("symbols.port_roots `{entry}`: {why}"),
    };
    let at = |entry: &str, name: &str| {
        parse_address(name.trim())
            .or_else(|| symbols.address_of(name.trim()))
            .ok_or_else(|| bad(entry, format!("no symbol `{}` with an address", name.trim())))
    };
    let mut ranges = Vec::new();
    for entry in entries {
        let range = match entry.split_once("..") {
            Some((a, b)) => at(entry, a)?..at(entry, b)?,
            None => {
                let s = symbols.get(entry.trim()).ok_or_else(|| bad(entry, "no such symbol".into()))?;
                let (Some(a), Some(n)) = (s.address, s.size) else {
                    return Err(bad(entry, "the symbol has no address and size: give START..END".into()));
                };
                a..a.saturating_add(n)
            }
        };
        if range.start >= range.end || range.start < ram.start || range.end > ram.end {
            return Err(bad(entry, format!("0x{:x}..0x{:x} is not a range inside RAM", range.start, range.end)));
        }
        ranges.push(range);
    }
    Ok(ranges)
}

impl Firmware {
    /// Loads the build from whichever files the capture has.
    pub fn load_files(files: &FirmwareFiles, profile: &Profile) -> Result<Self> {
        match files {
            FirmwareFiles::BinMap { flash, map } => Self::load(flash, map, profile),
            FirmwareFiles::Elf(elf) => elf::load(elf, profile),
        }
    }

    pub fn load(flash_path: &Path, map_path: &Path, profile: &Profile) -> Result<Self> {
        let map_text = map::read_map_file(map_path)?;
        let symbols = map::parse_map(&map_text);
        let flash = read_capped(flash_path, MAX_FLASH_BYTES, "a flash image")?;
        let firmware = Self::from_parts(symbols, flash, map_path, profile)?;
        firmware.check_flash_covers_types(flash_path)?;
        Ok(firmware)
    }

    /// The flash image must hold the type objects the map places in flash: a
    /// short or empty `firmware.bin` would leave their blocks without a type.
    fn check_flash_covers_types(&self, flash_path: &Path) -> Result<()> {
        let t = &self.types;
        let flash_end = self.flash_base.saturating_add(self.flash.len() as u64);
        let named = [("str", t.str), ("dict", t.dict), ("type", t.type_type), ("tuple", t.tuple), ("fun_bc", t.fun_bc)];
        // Only types the map puts past the image's start: those below it are
        // not in flash at all (a port whose types are in RAM), not cut off.
        let beyond = named
            .into_iter()
            .filter_map(|(n, a)| a.map(|a| (n, a)))
            .find(|(_, a)| *a >= self.flash_base && *a >= flash_end && *a - self.flash_base < MAX_FLASH_BYTES);
        match beyond {
            Some((name, address)) => Err(Error::WrongInput {
                path: flash_path.to_path_buf(),
                expected: "this build's flash image",
                found: format!(
                    "it holds {} bytes from 0x{:08x}, but the map puts the `{name}` type at 0x{address:08x}, past its end",
                    self.flash.len(),
                    self.flash_base
                ),
            }),
            None => Ok(()),
        }
    }

    /// The build from its map's symbols and its flash image, with `profile`'s
    /// names: RAM, the heap and the interpreter state checked to be where a
    /// snapshot holds them.
    pub fn from_parts(symbols: SymbolTable, flash: Vec<u8>, map_path: &Path, profile: &Profile) -> Result<Self> {
        let names = &profile.symbols;
        let lookup = Lookup { symbols: &symbols, map_path };
        let ram = lookup.ram_bounds(names)?;
        let flash_base = lookup.address(&names.flash_start, "the address where the flash image starts")?;
        let (heap_start, heap_bytes) = lookup.heap(profile, &ram)?;
        let (state_address, state_bytes) = lookup.state(names, &ram)?;
        let (types, missing_types) = type_addresses(&symbols, &profile.types);
        let ram_names = symbols.address_names(ram.start, ram.end);
        let state_names = profile
            .state_root_names()
            .into_iter()
            .map(|(offset, name)| (format!("{}+{}", names.state, offset), name))
            .collect();
        let flash_end = flash_base.saturating_add(flash.len() as u64);
        // Every address a table holds lies in RAM or flash: below 2^63, it is an
        // `int64` exactly (see `tables::per_snapshot::IntColumn`).
        for (what, end) in [("RAM", ram.end), ("the flash image", flash_end)] {
            if end > i64::MAX as u64 {
                return Err(Error::AddressTooHigh { map: map_path.to_path_buf(), what, end });
            }
        }
        let port_roots = port_roots(&symbols, &names.port_roots, map_path, ram.clone())?;
        let flash_names: rustc_hash::FxHashMap<u64, std::sync::Arc<str>> = (symbols.names_by_address().into_iter())
            .filter(|(a, _)| *a >= flash_base && *a < flash_end)
            .map(|(a, name)| (a, std::sync::Arc::from(name)))
            .collect();
        Ok(Firmware {
            symbols,
            flash_base,
            flash,
            ram_start: ram.start,
            ram_end: ram.end,
            heap_start,
            heap_bytes,
            state_address,
            state_bytes,
            types,
            ram_names,
            state_names,
            type_kinds: flash_names
                .iter()
                .filter_map(|(&a, n)| Some((a, crate::decode::kinds::of_type_symbol(n)?)))
                .collect(),
            flash_names,
            missing_types,
            port_roots,
        })
    }

    /// Bytes in one snapshot of the dump (`_estack - _srelocate`).
    pub fn snapshot_bytes(&self) -> u64 {
        self.ram_end - self.ram_start
    }

    /// How the reference names a RAM address: `symbol+offset`, then the profile's
    /// field name when that is a known field of the state (`mp_state_ctx+20` →
    /// `mp_state_ctx.vm.last_pool`), else the address in hex.
    pub fn root_name(&self, address: u64) -> String {
        match self.ram_names.lookup(address) {
            Some((i, off)) => {
                let plain = format!("{}+{}", self.symbols.name_of(i), off);
                self.state_names.get(&plain).cloned().unwrap_or(plain)
            }
            None => format!("0x{address:08x}"),
        }
    }
}

/// The map's symbols, looked up for what the firmware needs of them: a missing
/// one is an error that says what it was needed for.
struct Lookup<'a> {
    symbols: &'a SymbolTable,
    map_path: &'a Path,
}

impl Lookup<'_> {
    fn need(&self, symbol: &str, purpose: &'static str) -> Result<&Symbol> {
        self.symbols.get(symbol).ok_or_else(|| Error::MissingSymbol {
            map: self.map_path.to_path_buf(),
            symbol: symbol.to_string(),
            purpose,
            hint: missing_symbol_hint(self.symbols, symbol, self.map_path),
        })
    }

    /// A symbol's address; an address may stand for a symbol (`--ram-end 0x20040000`).
    fn address(&self, symbol: &str, purpose: &'static str) -> Result<u64> {
        if let Some(a) = parse_address(symbol) {
            return Ok(a);
        }
        self.need(symbol, purpose)?.address.ok_or_else(|| Error::SymbolWithoutAddress {
            map: self.map_path.to_path_buf(),
            symbol: symbol.to_string(),
            purpose,
        })
    }

    /// RAM, from its start and end symbols: each snapshot's bytes.
    fn ram_bounds(&self, names: &SymbolNames) -> Result<Range<u64>> {
        let start = self.address(&names.ram_start, "the start of RAM, where each snapshot begins")?;
        let end = self.address(&names.ram_end, "the end of RAM, which fixes the snapshot size")?;
        if end <= start {
            return Err(Error::BadRamBounds {
                map: self.map_path.to_path_buf(),
                start_symbol: names.ram_start.clone(),
                start,
                end_symbol: names.ram_end.clone(),
                end,
            });
        }
        Ok(start..end)
    }

    /// The heap array's start and size: the profile's name, else its fall-backs
    /// (MicroPython's usual `gc_heap`). When the build has neither but the GC
    /// state is read from each snapshot, the heap symbol is not needed (there
    /// is just no fall-back geometry).
    fn heap(&self, profile: &Profile, ram: &Range<u64>) -> Result<(u64, u64)> {
        let names = &profile.symbols;
        let heap_name = std::iter::once(&names.heap)
            .chain(&names.heap_fallbacks)
            .map(String::as_str)
            .find(|n| self.symbols.get(n).is_some_and(|s| s.address.is_some() && s.size.is_some()));
        let (start, bytes) = match heap_name {
            Some(n) => {
                let s = self.need(n, "the GC heap")?;
                (s.address.unwrap_or(ram.start), s.size.unwrap_or(0))
            }
            None if profile.state.gc.read && self.symbols.get(&names.heap).is_none() => (ram.start, 0),
            None => {
                let _ = self.address(&names.heap, "the GC heap's start")?;
                return Err(Error::SymbolWithoutAddress {
                    map: self.map_path.to_path_buf(),
                    symbol: format!("{} (size)", names.heap),
                    purpose: "the GC heap's size",
                });
            }
        };
        let end = start.saturating_add(bytes);
        if start < ram.start || end > ram.end {
            return Err(Error::HeapOutsideRam {
                map: self.map_path.to_path_buf(),
                symbol: names.heap.clone(),
                start,
                end,
                ram_start: ram.start,
                ram_end: ram.end,
            });
        }
        Ok((start, bytes))
    }

    /// The interpreter state's address and size (if the map gives it), in RAM.
    fn state(&self, names: &SymbolNames, ram: &Range<u64>) -> Result<(u64, Option<u64>)> {
        let purpose = "the interpreter state (qstr pools, root pointers)";
        let size = self.need(&names.state, purpose)?.size;
        let address = self.address(&names.state, purpose)?;
        let end = address.saturating_add(size.unwrap_or(0));
        if address < ram.start || end > ram.end {
            return Err(Error::StateOutsideRam {
                map: self.map_path.to_path_buf(),
                symbol: names.state.clone(),
                address,
                size: size.unwrap_or(0),
                ram_start: ram.start,
                ram_end: ram.end,
            });
        }
        Ok((address, size))
    }
}

/// The addresses of the type objects the decoder compares against, and the
/// names of the required ones the build lacks.
fn type_addresses(symbols: &SymbolTable, t: &TypeSymbols) -> (TypeAddresses, Vec<String>) {
    let mut missing = Vec::new();
    let mut required = |name: &str| {
        let a = symbols.address_of(name);
        if a.is_none() {
            missing.push(name.to_string());
        }
        a
    };
    let types = TypeAddresses {
        str: required(&t.str),
        dict: required(&t.dict),
        map: required(&t.map),
        type_type: required(&t.type_type),
        tuple: required(&t.tuple),
        property: required(&t.property),
        bytearray: required(&t.bytearray),
        fun_bc: required(&t.fun_bc),
        module: required(&t.module),
        functions: t.functions.iter().filter_map(|n| required(n)).collect(),
        list: symbols.address_of(&t.list),
        set: symbols.address_of(&t.set),
        frozenset: symbols.address_of(&t.frozenset),
        bytes: symbols.address_of(&t.bytes),
        array: symbols.address_of(&t.array),
        closure: symbols.address_of(&t.closure),
        cell: symbols.address_of(&t.cell),
        int: symbols.address_of(&t.int),
    };
    (types, missing)
}

/// What to do when a symbol the default (CircuitPython 3.0) profile names is
/// missing: a MicroPython build has `_sdata` and `_etext` instead of
/// `_srelocate` and `_sfixed`, and its layout differs too, so it needs its ELF
/// (whose debug info gives the layout) or a profile derived from it.
fn missing_symbol_hint(symbols: &SymbolTable, symbol: &str, file: &Path) -> String {
    let circuitpython_name = matches!(symbol, "_srelocate" | "_sfixed");
    if !circuitpython_name || symbols.get("_sdata").is_none() {
        return String::new();
    }
    let elf = file.with_extension("elf");
    format!(
        ". This looks like a MicroPython build (it has `_sdata`, not `_srelocate`), whose layout is not the default \
         CircuitPython 3.0 one: pass its ELF (`heapvis analyze ram.bin {elf}`), or derive a profile from it \
         (`heapvis profile {elf} > board.toml`) and pass `--profile board.toml`",
        elf = elf.display()
    )
}

/// A flash image larger than this is not one (the largest MCU flash is a few MiB).
pub const MAX_FLASH_BYTES: u64 = 256 << 20;

/// Reads a whole input file of at most `limit` bytes: a larger one (a dump given
/// in a firmware file's place) is refused before it is read into memory.
pub(crate) fn read_capped(path: &Path, limit: u64, expected: &'static str) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    if len > limit {
        return Err(Error::WrongInput {
            path: path.to_path_buf(),
            expected,
            found: format!(
                "{len} bytes, more than the {limit} such a file can hold; were the inputs given in the wrong order?"
            ),
        });
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// An address written in a symbol's place: `0x` hex (underscores allowed) or
/// decimal digits. Symbol names never start with a digit.
pub fn parse_address(text: &str) -> Option<u64> {
    let t = text.trim().replace('_', "");
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None if t.chars().next().is_some_and(|c| c.is_ascii_digit()) => t.parse().ok(),
        None => None,
    }
}

#[cfg(test)]
mod address_tests {
    use super::parse_address;

    #[test]
    fn addresses_stand_for_symbols() {
        assert_eq!(parse_address("0x2000_0000"), Some(0x2000_0000));
        assert_eq!(parse_address("536870912"), Some(0x2000_0000));
        assert_eq!(parse_address("_estack"), None);
        assert_eq!(parse_address("0xZZ"), None);
    }
}
