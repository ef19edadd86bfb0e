//! `heapvis synth`: a synthetic capture for tests, benches and first-time users.

use std::path::PathBuf;

use heapvis::synth::{self, Board, Flavor, SynthConfig, Workload};

use super::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory to write ram.bin, firmware.bin and firmware.map into.
    pub out: PathBuf,
    /// Board to simulate: samd21 (32 KiB RAM, 20 KiB heap) or samd51 (192 KiB, 128 KiB).
    #[arg(long, default_value = "samd21", value_parser = parse_board)]
    pub board: Board,
    /// Firmware to simulate: circuitpython3 (CircuitPython 3.0, the reference's
    /// target), micropython (a current MicroPython's layouts; read it with
    /// `--profile data/profiles/micropython-1.2x-synthetic.toml`), micropython64 (the
    /// same on a 64-bit port: `micropython-1.2x-64bit-synthetic.toml`) or circuitpython10
    /// (a current CircuitPython: split heap, collect table; read it with
    /// `--profile data/profiles/circuitpython-10-synthetic.toml`).
    #[arg(long, default_value = "circuitpython3", value_parser = parse_flavor)]
    pub layout: Flavor,
    /// Snapshots to write (one per heap change).
    #[arg(long, default_value_t = 100)]
    pub snapshots: u64,
    /// Seed of the simulated program.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Bytes the heap array sits past a 16-byte boundary (0, 4, 8, 12; default by seed).
    #[arg(long)]
    pub heap_misalign: Option<u64>,
    /// The simulated program: light (a mostly empty heap, as in the committed
    /// sample) or busy (thousands of small objects, a heap mostly full between
    /// collections, MemoryErrors: like the real boards' captures).
    #[arg(long, default_value = "light", value_parser = parse_workload)]
    pub workload: Workload,
    /// A snapshot at every Nth heap change (default every change, as gdb breaking
    /// on every allocation and free gives; real captures often take every 40th).
    #[arg(long, default_value_t = 1, value_parser = parse_every)]
    pub every: u64,
    /// Heap changes before the first snapshot, as when gdb is attached to a
    /// board that has been running a while.
    #[arg(long, default_value_t = 0)]
    pub start_after: u64,
    /// Also write the capture's sidecar (`ram.events.jsonl`: each snapshot's
    /// stack pointer and event), as a capture script writes it.
    #[arg(long)]
    pub events: bool,
    /// Also take a snapshot at the end of each collection's mark phase (gdb at
    /// `gc_collect_end`), whose MARK bits are what the GC reached.
    #[arg(long)]
    pub log_marks: bool,
    /// The busy program leaks, slowly: its global `history` list is never cut
    /// and its global `cache` dict takes new keys (for trying `heapvis leaks`).
    #[arg(long)]
    pub leak: bool,
}

fn parse_workload(s: &str) -> Result<Workload, String> {
    s.parse()
}

fn parse_every(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_board(s: &str) -> Result<Board, String> {
    s.parse()
}

fn parse_flavor(s: &str) -> Result<Flavor, String> {
    s.parse()
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let mut config = SynthConfig::new(a.board, a.snapshots, a.seed);
    config.flavor = a.layout;
    config.workload = a.workload;
    config.every = a.every;
    config.start_after = a.start_after;
    (config.events, config.log_marks, config.leak) = (a.events, a.log_marks, a.leak);
    if let Some(m) = a.heap_misalign {
        anyhow::ensure!(m % 4 == 0 && m < 16, "--heap-misalign must be 0, 4, 8 or 12, found {m}");
        config.heap_misalign = m;
    }
    let s = synth::write_dir(&config, &a.out)?;
    // The program stops when it keeps running out of memory, as a leaking
    // board does. A capture shorter than asked for is said; one with no
    // snapshot at all is no capture.
    let stopped = format!(
        "the simulated program stopped after {} of the {} snapshot(s) asked for: it kept running out of memory \
         ({} MemoryError(s), {} collection(s))",
        s.snapshots, a.snapshots, s.out_of_memory, s.collections
    );
    anyhow::ensure!(
        s.snapshots > 0,
        "{}: {stopped}. A larger board, a smaller --start-after or no --leak gets further",
        a.out.display()
    );
    if s.snapshots < a.snapshots {
        eprintln!("{}: {stopped}", a.out.display());
    }
    eprintln!(
        "{}: {} snapshot(s) of {} bytes, {} collection(s), {} MemoryError(s)",
        a.out.display(),
        s.snapshots,
        s.snapshot_bytes,
        s.collections,
        s.out_of_memory
    );
    Ok(Outcome::Ok)
}
