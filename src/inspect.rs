//! A reference-style text report of one snapshot: the heap structure, every
//! allocation and free run in memory order, and the free-space totals, printed the
//! way CircuitPython's `analyze_heap_dump.py --print-heap-structure
//! --print_block_state True` printed them, so numbers can be compared line by line.

use std::fmt::Write as _;

use crate::decode::SnapshotReport;
use crate::firmware::Firmware;

/// The report as text. Unlike the reference, the trailing free run is printed too.
pub fn block_state_report(report: &SnapshotReport, firmware: &Firmware, state_name: &str) -> String {
    let g = &report.geometry;
    let bpb = g.bytes_per_block;
    let mut out = String::new();
    let size = firmware.state_bytes.map_or("None".to_string(), |s| s.to_string());
    let _ = writeln!(out, "{state_name} at 0x{:08x} and length {size}", firmware.state_address);
    let _ = writeln!(out, "Total heap length: {}", g.heap_bytes);
    let _ = writeln!(out, "ATB length: {}", g.alloc_table_bytes);
    let _ = writeln!(out, "Total allocatable: {}", g.pool_end - g.pool_start);
    let _ = writeln!(out, "FTB length: {}", g.finaliser_table_bytes);
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
    out
}
