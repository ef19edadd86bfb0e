//! `heapvis why ADDRESS`: why one allocation of one snapshot is alive: the
//! shortest path to it from a GC root, its dominators, what it retains.

use heapvis::retain::why::Why;

use super::{open_capture, Outcome, SnapshotArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The allocation: its address, or any address inside it (0x20001230).
    #[arg(value_name = "ADDRESS", value_parser = parse_address)]
    pub address: u64,
    #[command(flatten)]
    pub at: SnapshotArgs,
}

fn parse_address(s: &str) -> Result<u64, String> {
    let t = s.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).map_err(|e| format!("{s}: {e}")),
        None => t.parse().map_err(|e| format!("{s}: {e} (write hex addresses with 0x)")),
    }
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let capture = open_capture(&a.at.input, false)?;
    let index = a.at.one(&capture, "`why` looks at one snapshot; give N or last")?;
    let w = capture.why(index, a.address)?;
    print!("{}", render(index, &w));
    Ok(Outcome::Ok)
}

/// The answer as the command prints it.
fn render(index: u64, w: &Why) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let t = &w.target;
    let _ = writeln!(out, "snapshot {index}: {} at 0x{:08x} ({} bytes)", t.kind, t.address, t.bytes);
    if !w.exact {
        let _ =
            writeln!(out, "(no stack pointer for this snapshot: the whole stack region was scanned, stale frames too)");
    }
    if !w.reachable {
        let _ = writeln!(out, "unreachable: garbage, freed by the next collection");
        return out;
    }
    if let Some(p) = &w.python {
        let _ = writeln!(out, "python: {p}");
    }
    let _ = writeln!(out, "shortest path from a root:");
    for s in &w.path {
        let _ = writeln!(out, "  {:<40} -> {} at 0x{:08x} ({} bytes)", s.name, s.kind, s.address, s.bytes);
    }
    let _ = writeln!(out, "dominators (every path from the roots passes through each):");
    for d in &w.dominators {
        let _ = writeln!(out, "  {d}");
    }
    let _ = writeln!(out, "retains {} bytes in {} allocation(s):", w.retained_bytes, w.retained_allocations);
    for (kind, n, bytes) in &w.retained_by_kind {
        let _ = writeln!(out, "  {kind:<16} {n:>6} allocation(s) {bytes:>8} bytes");
    }
    out
}
