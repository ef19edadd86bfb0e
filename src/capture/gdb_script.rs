//! `heapvis gdb-script`: a gdb Python script for one build, which appends the
//! board's RAM to a dump at heap changes and writes the capture's sidecar
//! (see [`crate::sidecar`]).
//!
//! Everything the script needs about the build is read here from the ELF, as
//! `analyze` will read it: the RAM bounds (from the same profile, so the
//! snapshot size is the one `analyze` expects), and the functions it breaks at
//! (`gc_alloc`, `gc_collect_start`, `gc_collect_end`, `gc_collect_root`,
//! `m_malloc_fail`). A function the build lacks is left out with a note, or is
//! an error when the capture would be wrong without it. The script's logic is
//! `gdb_capture.py`, a Python file of its own; this fills in its settings.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::firmware::{dwarf, elf, parse_address, SymbolTable};
use crate::pipeline::RamBounds;
use crate::profile::Profile;
use crate::sidecar::Sidecar;

const TEMPLATE: &str = include_str!("gdb_capture.py");

/// What the user chose.
#[derive(Clone, Debug)]
pub struct ScriptOptions {
    /// A snapshot at every `every`-th allocation (MemoryErrors and collections
    /// always have one).
    pub every: u64,
    /// Also a snapshot at the end of each collection's mark phase.
    pub collections: bool,
    /// The dump the script writes (its sidecar goes beside it).
    pub dump: PathBuf,
    /// `target` arguments the script connects with (`extended-remote :3333`);
    /// `None`: gdb is connected already (`-ex 'target remote ...'`).
    pub target: Option<String>,
    /// Start the program under gdb (`run`) rather than continue a target.
    pub run: bool,
    /// Innermost frames named on each line.
    pub frames: u32,
}

/// The script, and what the user should know about it.
#[derive(Clone, Debug)]
pub struct GdbScript {
    /// The script (gdb's Python).
    pub text: String,
    /// What the user should know (a missing symbol, what the sidecar will lack).
    pub notes: Vec<String>,
    /// Bytes each snapshot appends.
    pub snapshot_bytes: u64,
}

/// The settings the script reads (its `CONFIG`).
#[derive(Serialize)]
struct Config {
    dump: String,
    sidecar: String,
    ram_start: u64,
    ram_end: u64,
    address_mask: u64,
    every: u64,
    alloc: String,
    alloc_size_args: [&'static str; 2],
    memory_error: Option<String>,
    memory_error_size_args: [&'static str; 2],
    collect_start: String,
    collect_end: Option<String>,
    collect_root: Option<String>,
    stack_bottom: u64,
    stack_top: u64,
    stack_overflow: &'static str,
    check_symbols: std::collections::BTreeMap<String, u64>,
    target: Option<String>,
    run: bool,
    frames: u32,
}

/// The capture script for the build `elf_path`, read with `profile` (none: as
/// `analyze` derives it) and the RAM bounds the user gave.
pub fn gdb_script(
    elf_path: &Path,
    profile: Option<Profile>,
    ram: &RamBounds,
    options: &ScriptOptions,
) -> Result<GdbScript> {
    let data = elf::read_elf_file(elf_path)?;
    let mut profile = match profile {
        Some(p) => p,
        None => dwarf::derive_profile(&data, elf_path, &Profile::default())
            .map_or_else(|_| Profile::default(), |d| d.profile),
    };
    ram.apply(&mut profile);
    let (symbols, _) = elf::parse(&data, elf_path, &profile)?;
    let (ram_start, ram_end) = ram_bounds(&symbols, &profile, elf_path)?;
    let mut notes = Vec::new();
    let f = functions(&symbols, options.collections, elf_path, &mut notes)?;
    let stack_bottom = ["_sstack", "_ebss"].iter().find_map(|s| symbols.address_of(s)).unwrap_or(ram_start);
    let stack_top = symbols.address_of("_estack").unwrap_or(ram_end);
    let config = Config {
        dump: options.dump.display().to_string(),
        sidecar: Sidecar::path_for(&options.dump).display().to_string(),
        ram_start,
        ram_end,
        address_mask: if is_64(&data) { u64::MAX } else { u64::from(u32::MAX) },
        every: options.every.max(1),
        alloc: f.alloc,
        alloc_size_args: ["n_bytes", "n"],
        memory_error: f.memory_error,
        memory_error_size_args: ["num_bytes", "n"],
        collect_start: f.collect_start,
        collect_end: f.collect_end,
        collect_root: f.collect_root,
        stack_bottom,
        stack_top,
        stack_overflow: "mp_state_ctx.mem.gc_stack_overflow",
        check_symbols: check_symbols(&symbols, &profile),
        target: options.target.clone(),
        run: options.run,
        frames: options.frames,
    };
    let json = serde_json::to_string(&config).map_err(|e| Error::WrongInput {
        path: elf_path.to_path_buf(),
        expected: "settings that serialise",
        found: e.to_string(),
    })?;
    Ok(GdbScript { text: TEMPLATE.replace("@CONFIG@", &json), notes, snapshot_bytes: ram_end - ram_start })
}

/// Where each snapshot starts and ends, as `analyze` will read them.
fn ram_bounds(symbols: &SymbolTable, profile: &Profile, elf_path: &Path) -> Result<(u64, u64)> {
    let bound = |name: &str, what: &'static str| -> Result<u64> {
        parse_address(name).or_else(|| symbols.address_of(name)).ok_or_else(|| Error::MissingSymbol {
            map: elf_path.to_path_buf(),
            symbol: name.to_string(),
            purpose: what,
            hint: "give the RAM bounds with --ram-start and --ram-end (a symbol or an address)".to_string(),
        })
    };
    let names = &profile.symbols;
    let (start, end) = (bound(&names.ram_start, "the start of RAM")?, bound(&names.ram_end, "the end of RAM")?);
    if end <= start {
        return Err(Error::BadRamBounds {
            map: elf_path.to_path_buf(),
            start_symbol: names.ram_start.clone(),
            start,
            end_symbol: names.ram_end.clone(),
            end,
        });
    }
    Ok((start, end))
}

/// The functions the script breaks at, by name.
struct Functions {
    alloc: String,
    collect_start: String,
    memory_error: Option<String>,
    collect_end: Option<String>,
    collect_root: Option<String>,
}

/// The build's functions the script breaks at: the allocator and a
/// collection's start must be there; without the others a part of the
/// capture is missing, said in `notes`.
fn functions(symbols: &SymbolTable, collections: bool, elf_path: &Path, notes: &mut Vec<String>) -> Result<Functions> {
    let function = |name: &str| symbols.address_of(name).map(|_| name.to_string());
    let need = |name: &str, purpose: &'static str| {
        function(name).ok_or_else(|| Error::MissingSymbol {
            map: elf_path.to_path_buf(),
            symbol: name.to_string(),
            purpose,
            hint: "is this a MicroPython or CircuitPython build?".to_string(),
        })
    };
    let alloc = need("gc_alloc", "the allocator the script breaks at")?;
    let collect_start = need("gc_collect_start", "the start of a collection, which the sidecar counts")?;
    let memory_error = function("m_malloc_fail");
    if memory_error.is_none() {
        notes.push("the build has no m_malloc_fail: MemoryErrors will not be in the sidecar".to_string());
    }
    let collect_end =
        if collections { Some(need("gc_collect_end", "the end of a collection's mark phase")?) } else { None };
    let collect_root = collect_end.as_ref().and_then(|_| function("gc_collect_root"));
    if collect_end.is_some() && collect_root.is_none() {
        notes.push("the build has no gc_collect_root: collect_end snapshots take $sp as the stack pointer".to_string());
    }
    Ok(Functions { alloc, collect_start, memory_error, collect_end, collect_root })
}

/// Whether the ELF is of a 64-bit target (its addresses and stack pointer).
fn is_64(data: &[u8]) -> bool {
    use object::Object;
    object::File::parse(data).is_ok_and(|f| f.is_64())
}

/// Symbols gdb must place where the ELF does: the RAM bounds and the
/// allocator (a position-independent build or another ELF would not).
fn check_symbols(symbols: &SymbolTable, profile: &Profile) -> std::collections::BTreeMap<String, u64> {
    [profile.symbols.ram_start.as_str(), profile.symbols.ram_end.as_str()]
        .into_iter()
        .filter(|n| parse_address(n).is_none())
        .filter_map(|n| Some((n.to_string(), symbols.address_of(n)?)))
        .collect()
}
