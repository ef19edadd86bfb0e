//! The fuzz targets' bodies, shared by `fuzz_targets/*.rs` (libFuzzer) and the
//! `fuzz_regressions` test module, which replays the seed corpus and every
//! crash found (`fuzz/regressions/TARGET/`) in `make test`. Nothing may panic.

use std::sync::OnceLock;

use heapvis::decode::{DecodeOptions, Decoder};
use heapvis::firmware::map::parse_map;
use heapvis::firmware::Firmware;
use heapvis::firmware::{dwarf::derive_profile, elf};
use heapvis::incremental::RunDecoder;
use heapvis::profile::Profile;
use heapvis::synth::{simulate_in_memory, Board, Flavor, SynthConfig};
use heapvis::tables::TableSet;

struct Base {
    firmware: Firmware,
    profile: Profile,
    /// The last snapshot of a simulated run: a busy heap.
    snapshot: Vec<u8>,
}

const FLAVORS: [Flavor; 4] =
    [Flavor::CircuitPython3, Flavor::MicroPython, Flavor::MicroPython64, Flavor::CircuitPython10];

fn bases() -> &'static Vec<Base> {
    static BASES: OnceLock<Vec<Base>> = OnceLock::new();
    BASES.get_or_init(|| {
        FLAVORS
            .iter()
            .map(|&flavor| {
                let config = SynthConfig { flavor, ..SynthConfig::new(Board::Samd21, 150, 11) };
                let c = simulate_in_memory(&config).expect("simulate");
                let profile = flavor.profile();
                let firmware = c.layout.firmware(&profile).expect("firmware");
                let size = (c.layout.ram_end - c.layout.ram_start) as usize;
                let snapshot = c.ram[c.ram.len() - size..].to_vec();
                Base { firmware, profile, snapshot }
            })
            .collect()
    })
}

/// One snapshot of each layout (CircuitPython 3.0, current MicroPython 32- and
/// 64-bit, CircuitPython 10's split heap), patched by the input, decoded whole,
/// metrics only, from the snapshot before (the incremental path), and as
/// `mem_info` prints it.
///
/// Input: byte 0 picks the layout, byte 1 the mode; then 8-byte patches, each
/// a little-endian offset (taken modulo the snapshot) and a 4-byte value. Mode
/// bit 0 instead takes the rest of the input as the snapshot's first bytes.
pub fn decode_snapshot(data: &[u8]) {
    let (Some(&pick), Some(&mode)) = (data.first(), data.get(1)) else { return };
    let base = &bases()[pick as usize % FLAVORS.len()];
    let mut snap = base.snapshot.clone();
    let rest = &data[2..];
    if mode & 1 == 1 {
        let n = rest.len().min(snap.len());
        snap[..n].copy_from_slice(&rest[..n]);
    } else {
        for patch in rest.chunks_exact(8) {
            let offset = u32::from_le_bytes([patch[0], patch[1], patch[2], patch[3]]) as usize % snap.len();
            let end = (offset + 4).min(snap.len());
            snap[offset..end].copy_from_slice(&patch[4..4 + (end - offset)]);
        }
    }
    let keep = DecodeOptions { keep_suspect: true, ..DecodeOptions::default() };
    let d = Decoder::new(&base.firmware, &base.profile, keep);
    // The stack pointer from the input too: in range or not.
    let sp = rest.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64);
    let roots = heapvis::retain::GcRoots::new(&base.firmware, &base.profile, sp);
    if let (Ok(mut report), Some(roots)) = (d.decode(0, &snap), roots.as_ref()) {
        heapvis::retain::attach(&mut report, roots);
    }
    let _ = d.infer_object_repr(&snap);
    let _ = heapvis::inspect::mem_info(&d, &snap);
    let metrics = Decoder::new(&base.firmware, &base.profile, DecodeOptions { metrics_only: true, ..keep });
    let _ = metrics.decode(0, &snap);
    let plain = Decoder::new(&base.firmware, &base.profile, DecodeOptions::default());
    // (The default tables: per-snapshot rows take no run decoder.)
    if let Some(mut run) = RunDecoder::new(&plain, TableSet::DEFAULT) {
        let _ = run.prepare(0, &base.snapshot, roots.as_ref());
        let _ = run.prepare(1, &snap, roots.as_ref());
        let _ = run.prepare(2, &base.snapshot, roots.as_ref());
    }
}

/// A GNU ld map as text: parsed, named, and resolved into a firmware build with
/// the default profile.
pub fn map_parser(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let symbols = parse_map(&text);
    let _ = symbols.address_names(0, 1 << 32);
    let _ = Firmware::from_parts(symbols, vec![0; 256], "fuzz.map".as_ref(), &Profile::default());
}

/// An ELF file: its symbols and flash image read, and a profile derived from its
/// DWARF.
pub fn elf_dwarf(data: &[u8]) {
    let profile = Profile::default();
    let _ = elf::parse(data, "fuzz.elf".as_ref(), &profile);
    if let Ok(d) = derive_profile(data, "fuzz.elf".as_ref(), &profile) {
        let _ = elf::load_bytes(data, "fuzz.elf".as_ref(), &d.profile);
    }
}
