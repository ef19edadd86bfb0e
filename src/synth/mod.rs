//! Synthetic dumps: a simulated CircuitPython 3.0 board running a program, with gdb
//! appending RAM to `ram.bin` at every heap change, plus the build's `firmware.bin`
//! and `firmware.map`. Realistic enough for the reference analyser to run on, and
//! the source of the tests' independent expectations (the simulator's own registry
//! of live objects).

crate::internal! {
    gc;
    image;
    program;
    rng;
}

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::decode::{HeapArea, HeapGeometry};
use crate::error::{Error, Result};
crate::internal_use!(gc::SimEvent, gc::TruthBlock, image::Layout);
use program::{Halt, Program};

#[derive(Clone, Debug, PartialEq, Eq)]
/// What to simulate: the board, the firmware, the program and the capture.
pub struct SynthConfig {
    /// Which board: its RAM and heap.
    pub board: Board,
    /// Which firmware's layouts and formats to simulate.
    pub flavor: Flavor,
    /// Snapshots to write.
    pub snapshots: u64,
    /// The seed of the simulated program: the same seed, the same bytes.
    pub seed: u64,
    /// Bytes the heap array sits past a 16-byte boundary (0, 4, 8 or 12).
    pub heap_misalign: u64,
    /// What the simulated program does.
    pub workload: Workload,
    /// A snapshot at every `every`-th heap change (1: every change, as gdb
    /// breaking on every allocation and free gives; collections count each
    /// block they free as a change).
    pub every: u64,
    /// Heap changes before the first snapshot (gdb attached to a board that has
    /// been running for a while): benches start on a heap already busy.
    pub start_after: u64,
    /// Write the capture's sidecar (`ram.events.jsonl`: each snapshot's stack
    /// pointer and event), as the capture script does.
    pub events: bool,
    /// Also take a snapshot when a collection has marked and not swept (gdb at
    /// `gc_collect_end`): its MARK bits are what the GC reached.
    pub log_marks: bool,
    /// The busy program leaks, through its global `history` list (never cut)
    /// and its global `cache` dict (new keys, never dropped).
    pub leak: bool,
}

impl SynthConfig {
    /// A light program on `board`, `snapshots` snapshots, one per heap change.
    pub fn new(board: Board, snapshots: u64, seed: u64) -> Self {
        SynthConfig {
            board,
            flavor: Flavor::CircuitPython3,
            snapshots,
            seed,
            heap_misalign: 4 * (seed % 2),
            workload: Workload::Light,
            every: 1,
            start_after: 0,
            events: false,
            log_marks: false,
            leak: false,
        }
    }
}

/// A board the simulator can build for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Board {
    /// A SAMD21 (as the Circuit Playground Express): 32 KiB of RAM, a 20 KiB heap.
    Samd21,
    /// A SAMD51 (as the Metro M4): 192 KiB of RAM, a 128 KiB heap.
    Samd51,
}

/// Which firmware the simulator builds: its struct layouts and data formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// CircuitPython 3.0 (commit 619b0ec164), the reference's target: repr C,
    /// qstrs prefixed with hash and length, the GC state in `mem`.
    CircuitPython3,
    /// A current MicroPython (1.2x): repr A, qstr pools with hash and length
    /// arrays, the GC state in `mem.area`, a gap byte after the allocation table,
    /// a weakref table, the type name as a 16-bit field.
    MicroPython,
    /// A current MicroPython on a 64-bit port: the MicroPython flavour with 8-byte
    /// words and 32-byte blocks (`MICROPY_BYTES_PER_GC_BLOCK` = 4 words).
    MicroPython64,
    /// A current CircuitPython (9.x/10.x): MicroPython 1.2x's formats with repr C,
    /// a split heap (a second area added at run time, chained from `mem.area.next`),
    /// the selective-collect table after the finaliser table, no weakref table.
    CircuitPython10,
}

/// The program the simulated board runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// A few hundred objects and a collection every twelfth pass: a heap that
    /// stays mostly empty (the committed sample and most tests).
    Light,
    /// A heap like the real captures of busy boards: thousands of small objects,
    /// mostly full between collections, MemoryErrors (see `Program::iterate_busy`).
    Busy,
}

impl std::str::FromStr for Workload {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "light" => Ok(Workload::Light),
            "busy" => Ok(Workload::Busy),
            other => Err(format!("unknown workload {other:?}: light or busy")),
        }
    }
}

/// What a run of the simulator produced besides the files.
#[derive(Clone, Debug, Default)]
pub struct SynthSummary {
    /// Snapshots written.
    pub snapshots: u64,
    /// Bytes per snapshot.
    pub snapshot_bytes: u64,
    /// Collections the program ran.
    pub collections: u64,
    /// MemoryErrors it met.
    pub out_of_memory: u64,
    /// Per snapshot, its stack pointer and event (with [`SynthConfig::events`]).
    pub events: Vec<SimEvent>,
}

/// Snapshots kept in memory with the simulator's registry at each (for tests).
#[derive(Default)]
pub struct MemorySink {
    /// The snapshots, one after the other.
    pub ram: Vec<u8>,
    /// Per snapshot, every allocation as the simulator made it.
    pub truth: Vec<Vec<TruthBlock>>,
}

impl gc::SnapshotSink for MemorySink {
    fn snapshot(&mut self, ram: &[u8], live: &BTreeMap<u64, TruthBlock>) {
        self.ram.extend_from_slice(ram);
        self.truth.push(live.values().copied().collect());
    }
    fn full(&self) -> bool {
        false
    }
}

struct FileSink {
    out: BufWriter<File>,
    error: Option<std::io::Error>,
}

impl gc::SnapshotSink for FileSink {
    fn snapshot(&mut self, ram: &[u8], _live: &BTreeMap<u64, TruthBlock>) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(ram) {
                self.error = Some(e);
            }
        }
    }
    fn full(&self) -> bool {
        self.error.is_some()
    }
}

/// Counts snapshots for any sink.
struct Counted<'a> {
    inner: &'a mut dyn gc::SnapshotSink,
    limit: u64,
    count: u64,
}

impl gc::SnapshotSink for Counted<'_> {
    fn snapshot(&mut self, ram: &[u8], live: &BTreeMap<u64, TruthBlock>) {
        if self.count < self.limit {
            self.inner.snapshot(ram, live);
            self.count += 1;
        }
    }
    fn full(&self) -> bool {
        self.count >= self.limit || self.inner.full()
    }
}

/// Runs the simulation, handing every snapshot to `sink`.
pub fn simulate(config: &SynthConfig, layout: &Layout, sink: &mut dyn gc::SnapshotSink) -> Result<SynthSummary> {
    let heap_layout = layout.flavor.heap_layout();
    let mut g = HeapGeometry::from_gc_init(layout.heap_start, layout.heap_bytes, &heap_layout)
        .map_err(|e| Error::Synth(e.to_string()))?;
    if let Some((start, bytes)) = layout.second_region {
        // gc_add: the area's struct first, then gc_setup_area over the rest.
        let area_bytes = layout.state_map.area_bytes;
        let second = HeapGeometry::from_gc_init(start + area_bytes, bytes - area_bytes, &heap_layout)
            .map_err(|e| Error::Synth(e.to_string()))?;
        g.more_areas.push(HeapArea { first_block: g.pool_blocks(), ..second.first });
    }
    // Power-on RAM is not zero: fill it with a seed-dependent pattern of small bytes.
    let mut r = rng::Rng::new(config.seed ^ 0x5eed);
    let ram: Vec<u8> = (0..layout.ram_end - layout.ram_start).map(|_| (r.below(4) * 0x11) as u8).collect();
    let mut ram = ram;
    // .bss is zeroed by the startup code; the stack is not.
    let bss_start = (layout.heap_start - layout.ram_start) as usize & !0xff;
    let stack_start = (layout.stack_top - layout.stack_bytes - layout.ram_start) as usize;
    ram[bss_start.min(stack_start)..stack_start].fill(0);
    let mut counted = Counted { inner: sink, limit: config.snapshots, count: 0 };
    let sim = gc::GcSim::new(
        ram,
        layout.ram_start,
        g,
        layout.flavor.word_bytes(),
        heap_layout.blocks_per_wtb > 0,
        &mut counted,
    );
    let mut sim = sim;
    sim.every = config.every.max(1);
    sim.start_after = config.start_after;
    sim.events = config.events.then(Vec::new);
    sim.log_marks = config.log_marks;
    let mut program = Program::new(sim, layout, config.seed);
    program.busy = config.workload == Workload::Busy;
    program.leak = config.leak;
    let mut summary = SynthSummary { snapshot_bytes: layout.ram_end - layout.ram_start, ..Default::default() };
    match program.boot() {
        Ok(()) | Err(Halt::Done) => {}
        Err(Halt::OutOfMemory) => return Err(Error::Synth("the program does not fit in the heap at boot".into())),
    }
    let mut failures_in_a_row = 0;
    // Every iteration allocates, so it logs; the cap only guards against a bug.
    let changes = config.start_after.saturating_add(config.snapshots.saturating_mul(config.every.max(1)));
    for _ in 0..changes.saturating_mul(4) + 1000 {
        if program.gc.done() {
            break;
        }
        match program.iterate() {
            Ok(()) => failures_in_a_row = 0,
            Err(Halt::Done) => break,
            Err(Halt::OutOfMemory) => {
                summary.out_of_memory += 1;
                failures_in_a_row += 1;
                if failures_in_a_row > 3 {
                    break;
                }
                program.recover(failures_in_a_row);
            }
        }
    }
    summary.out_of_memory += program.memory_errors_caught;
    summary.collections = program.gc.collections;
    summary.events = program.gc.events.take().unwrap_or_default();
    drop(program);
    summary.snapshots = counted.count;
    Ok(summary)
}

/// Simulates in memory, keeping the registry of live objects at every snapshot.
pub fn simulate_in_memory(config: &SynthConfig) -> Result<InMemoryCapture> {
    let layout = Layout::with_flavor(config.board, config.heap_misalign, config.seed, config.flavor);
    let mut sink = MemorySink::default();
    let summary = simulate(config, &layout, &mut sink)?;
    Ok(InMemoryCapture { layout, ram: sink.ram, truth: sink.truth, summary })
}

/// A capture held in memory, with the simulator's registry at every snapshot.
pub struct InMemoryCapture {
    /// The firmware's layout.
    pub layout: Layout,
    /// All snapshots, back to back, as `ram.bin` would hold them.
    pub ram: Vec<u8>,
    /// Live allocations at each snapshot, by address.
    pub truth: Vec<Vec<TruthBlock>>,
    /// What was simulated.
    pub summary: SynthSummary,
}

/// Writes `ram.bin`, `firmware.bin` and `firmware.map` into `dir`.
pub fn write_dir(config: &SynthConfig, dir: &Path) -> Result<SynthSummary> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let layout = Layout::with_flavor(config.board, config.heap_misalign, config.seed, config.flavor);
    let write = |name: &str, bytes: &[u8]| -> Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))
    };
    write("firmware.bin", &layout.flash)?;
    write("firmware.map", layout.map.as_bytes())?;
    let ram_path = dir.join("ram.bin");
    let file = File::create(&ram_path).map_err(|e| Error::io(&ram_path, e))?;
    let mut sink = FileSink { out: BufWriter::with_capacity(1 << 20, file), error: None };
    let summary = simulate(config, &layout, &mut sink)?;
    if let Some(e) = sink.error.take() {
        return Err(Error::io(&ram_path, e));
    }
    sink.out.flush().map_err(|e| Error::io(&ram_path, e))?;
    if config.events {
        write_sidecar(&crate::sidecar::Sidecar::path_for(&ram_path), &summary.events, config.log_marks)?;
    }
    Ok(summary)
}

/// The sidecar of the snapshots the simulator took, one JSON line each.
/// The first line also says which events the simulator logs (`watched`): a
/// MemoryError it does not log is not there, one it logs is.
fn write_sidecar(path: &Path, events: &[SimEvent], log_marks: bool) -> Result<()> {
    let mut text = String::new();
    let mut watched = vec!["alloc", "free", "realloc", "sweep", "memory_error"];
    if log_marks {
        watched.push("collect_marked");
    }
    let watched = format!(", \"watched\": {}", serde_json::json!(watched));
    for (k, e) in events.iter().enumerate() {
        let sp = e.sp.map_or("null".to_string(), |sp| sp.to_string());
        let asked = e.requested_bytes.map(|n| format!(", \"requested_bytes\": {n}")).unwrap_or_default();
        let watched = if k == 0 { watched.as_str() } else { "" };
        text.push_str(&format!(
            "{{\"snapshot\": {k}, \"time\": {:.3}, \"sp\": {sp}, \"event\": \"{}\"{asked}{watched}}}\n",
            e.time, e.event
        ));
    }
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}
