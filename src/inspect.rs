//! A reference-style text report of one snapshot: the heap structure, every
//! allocation and free run in memory order, and the free-space totals, printed the
//! way CircuitPython's `analyze_heap_dump.py --print-heap-structure
//! --print_block_state True` printed them, so numbers can be compared line by line.

use std::fmt::Write as _;

use crate::decode::{alloc_table, Decoder, SnapshotReport};
use crate::error::DecodeError;
use crate::firmware::Firmware;
use crate::memory::Region;

/// The report as text. Unlike the reference, the trailing free run is printed too.
/// It ends with the reference's "Unable to find memory block for string at …"
/// lines (see [`unfound_strings`]); `ram` is the snapshot.
pub fn block_state_report(report: &SnapshotReport, ram: &[u8], firmware: &Firmware, state_name: &str) -> String {
    let g = &report.geometry;
    let bpb = g.bytes_per_block;
    let mut out = String::new();
    let size = firmware.state_bytes.map_or("None".to_string(), |s| s.to_string());
    let _ = writeln!(out, "{state_name} at 0x{:08x} and length {size}", firmware.state_address);
    // The heap array's size from the map, as the reference printed it.
    let _ = writeln!(out, "Total heap length: {}", firmware.heap_bytes);
    let _ = writeln!(out, "ATB length: {}", g.first.alloc_table_bytes);
    let _ = writeln!(out, "Total allocatable: {}", g.pool_bytes());
    let _ = writeln!(out, "FTB length: {}", g.first.finaliser_table_bytes);
    // Allocations and free runs interleaved in memory order.
    let mut items: Vec<(u64, String)> = report
        .blocks
        .iter()
        .map(|b| (b.start_block, format!("0x{:x} {} bytes allocated", b.address, b.blocks * bpb)))
        .collect();
    items.extend(report.free_runs.iter().map(|r| (r.start_block, format!("{} bytes free", r.blocks * bpb))));
    items.sort_by_key(|(block, _)| *block);
    for (_, line) in items {
        let _ = writeln!(out, "{line}");
    }
    let total_free: u64 = report.free_runs.iter().map(|r| r.blocks).sum();
    let longest = report.free_runs.iter().map(|r| r.blocks).max().unwrap_or(0);
    let _ = writeln!(out, "Total free space: {}", total_free * bpb);
    let _ = writeln!(out, "Longest free space: {}", longest * bpb);
    for address in unfound_strings(report, ram, firmware) {
        let _ = writeln!(out, "Unable to find memory block for string at 0x{address:08x}.");
    }
    out
}

/// The string data the reference looked for and did not find, in its order: a
/// `str` object's data pointer (word 3) that is a 16-byte aligned RAM address
/// but not the head of an allocated block. A snapshot logged between the `str`
/// being made and its data being set, or after its data was freed, has one.
pub fn unfound_strings(report: &SnapshotReport, ram: &[u8], firmware: &Firmware) -> Vec<u64> {
    let Some(str_type) = firmware.types.str else { return Vec::new() };
    let mem = Region::new(firmware.ram_start, ram);
    let word = 4; // the reference reads 32-bit words
    let heads: std::collections::BTreeSet<u64> = report.blocks.iter().map(|b| b.address).collect();
    let mut found = Vec::new();
    for b in &report.blocks {
        if b.blocks * report.geometry.bytes_per_block < 4 * word || mem.word(b.address, word as u32) != Some(str_type) {
            continue;
        }
        let Some(data) = b.address.checked_add(3 * word).and_then(|a| mem.word(a, word as u32)) else { continue };
        let in_ram = data > firmware.ram_start && data < firmware.ram_end;
        if data != 0 && in_ram && data % 16 == 0 && !heads.contains(&data) {
            found.push(data);
        }
    }
    found
}

/// What `micropython.mem_info(1)` prints about the heap (py/gc.c `gc_dump_info()`
/// and `gc_dump_alloc_table()` of CircuitPython 3.0 / MicroPython 1.9), for one
/// snapshot, so it can be diffed with a capture of the device's own output: the
/// gc_info figures, then the block map, 64 blocks a line, one letter a block
/// (`.` free, `=` tail, `m` marked, a head by its type: `T` `L` `D` `S` `A` `F` `B`
/// `M`, else `h`), runs of two or more all-free lines as `(N lines all free)`.
/// The `stack:` line is not in a RAM dump and is not printed.
pub fn mem_info(decoder: &Decoder, ram: &[u8]) -> Result<String, DecodeError> {
    // The snapshot's own geometry (every area of a split heap), as the firmware
    // walks it.
    let (g, _) = decoder.geometry_of(ram)?;
    let fw = decoder.firmware;
    let region = Region::new(fw.ram_start, ram);
    let mut tables = Vec::new();
    for a in g.areas() {
        let atb = region.slice(a.alloc_table_start, a.alloc_table_bytes).ok_or(crate::error::ReadError {
            what: "allocation table",
            address: a.alloc_table_start,
            len: a.alloc_table_bytes,
        })?;
        tables.push((atb, a));
    }
    let info = alloc_table::walk_areas(
        tables.iter().map(|(atb, a)| (*atb, a.first_block, a.pool_end - a.pool_start)),
        g.bytes_per_block,
        false,
    )
    .gc_info;
    let word = decoder.profile.heap.word_bytes;
    let letters: Vec<(char, Vec<u64>)> = decoder
        .profile
        .types
        .mem_info_letters
        .iter()
        .map(|(c, names)| {
            (c.chars().next().unwrap_or('h'), names.iter().filter_map(|n| fw.symbols.address_of(n)).collect())
        })
        .collect();
    let mut out = String::new();
    let _ = writeln!(out, "GC: total: {}, used: {}, free: {}", info.total, info.used, info.free);
    let _ = writeln!(
        out,
        " No. of 1-blocks: {}, 2-blocks: {}, max blk sz: {}, max free sz: {}",
        info.num_1block, info.num_2block, info.max_block, info.max_free
    );
    // One map per area, in chain order, as gc_dump_alloc_table() loops over them.
    for (atb, area) in &tables {
        let n = atb.len() as u64 * 4;
        let kind = |b: u64| (atb[(b / 4) as usize] >> (2 * (b % 4))) & 3;
        let prefix = &decoder.profile.types.mem_info_pointer_prefix;
        let _ = write!(out, "GC memory layout; from {prefix}{:x}:", area.pool_start);
        const PER_LINE: u64 = 64;
        let mut bl = 0;
        while bl < n {
            if bl % PER_LINE == 0 {
                let mut bl2 = bl;
                while bl2 < n && kind(bl2) == alloc_table::AT_FREE {
                    bl2 += 1;
                }
                if bl2 - bl >= 2 * PER_LINE {
                    let _ = write!(out, "\n       ({} lines all free)", (bl2 - bl) / PER_LINE);
                    bl = bl2 & !(PER_LINE - 1);
                    if bl >= n {
                        break;
                    }
                }
                let offset = bl * g.bytes_per_block;
                match decoder.profile.types.mem_info_address_digits {
                    5 => {
                        let _ = write!(out, "\n{:05x}: ", offset & 0xfffff);
                    }
                    _ => {
                        let _ = write!(out, "\n{:08x}: ", offset);
                    }
                }
            }
            let c = match kind(bl) {
                alloc_table::AT_FREE => '.',
                alloc_table::AT_TAIL => '=',
                alloc_table::AT_MARK => 'm',
                _ => {
                    let first = region.word(area.pool_start + bl * g.bytes_per_block, word).unwrap_or(0);
                    letters.iter().find(|(_, addrs)| addrs.contains(&first)).map_or('h', |(c, _)| *c)
                }
            };
            out.push(c);
            bl += 1;
        }
        out.push('\n');
    }
    Ok(out)
}
