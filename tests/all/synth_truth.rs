//! The decoder against the simulator's own registry of live objects: every
//! allocation, its size, its kind and its MARK state at every snapshot, and the
//! gc_info figures recomputed from the registry.

use heapvis::decode::{Category, DecodeOptions, Decoder};
use heapvis::profile::Profile;
use heapvis::synth::{simulate_in_memory, Board, SynthConfig};

fn check(board: Board, snapshots: u64, seed: u64, misalign: u64) {
    check_flavor(board, snapshots, seed, misalign, heapvis::synth::Flavor::CircuitPython3);
}

fn check_flavor(board: Board, snapshots: u64, seed: u64, misalign: u64, flavor: heapvis::synth::Flavor) {
    let mut config = SynthConfig::new(board, snapshots, seed);
    config.heap_misalign = misalign;
    config.flavor = flavor;
    let heapvis::synth::InMemoryCapture { layout, ram, truth, summary } = simulate_in_memory(&config).unwrap();
    assert_eq!(summary.snapshots, snapshots);
    assert!(summary.collections > 0, "the case runs a collection");
    let profile = flavor.profile();
    let fw = layout.firmware(&profile).unwrap();
    let decoder = Decoder::new(&fw, &profile, DecodeOptions::default());
    let size = (layout.ram_end - layout.ram_start) as usize;
    let mut checked_gc_info = 0;
    for (i, live) in truth.iter().enumerate() {
        let r = decoder.decode(i as u64, &ram[i * size..(i + 1) * size]).unwrap();
        let ours: Vec<(u64, u64, bool)> = r.blocks.iter().map(|b| (b.address, b.blocks, b.marked)).collect();
        let expected: Vec<(u64, u64, bool)> = live.iter().map(|t| (t.address, t.blocks, t.marked)).collect();
        assert_eq!(ours, expected, "snapshot {i}: allocations");
        for (b, t) in r.blocks.iter().zip(live) {
            // A map table, string or bytecode is one because something points at it;
            // one about to be freed (its owner already moved on) is just memory.
            // (Stale copies on the stack or in other state words do not count: only
            // the globals' tables and the readline history give a role.)
            let gives_role = |n: &str| {
                n.ends_with("dict_main.map.table")
                    || n.ends_with("mp_loaded_modules_dict.map.table")
                    || n.contains("readline_hist[")
            };
            let referenced = r.edges.iter().any(|e| {
                e.to_address == b.address
                    && (e.from_address.is_some() || e.root_name.as_deref().is_some_and(gives_role))
            });
            let role =
                matches!(t.kind, Category::MapTable | Category::StringData | Category::Bytecode | Category::QstrChunk);
            if !(role && !referenced && b.category == Category::Unknown) {
                assert_eq!(b.category, t.kind, "snapshot {i}: kind of 0x{:08x}", b.address);
            }
            assert_eq!(b.has_finaliser, t.has_finaliser, "snapshot {i}: finaliser bit of 0x{:08x}", b.address);
            // The simulated CircuitPython sets the collect bit of every allocation.
            assert_eq!(
                b.collect,
                (profile.heap.blocks_per_ctb > 0).then_some(true),
                "collect bit of 0x{:08x}",
                b.address
            );
        }
        // gc_info from the registry where it is unambiguous (no MARK, no orphan tails).
        if r.marked_blocks == 0 && r.orphan_tail_blocks == 0 {
            let bpb = r.geometry.bytes_per_block;
            let pool = r.geometry.pool_blocks();
            let used: u64 = live.iter().map(|t| t.blocks).sum();
            assert_eq!(r.gc_info.used, used * bpb, "snapshot {i}: used");
            assert_eq!(r.gc_info.free, (pool - used) * bpb, "snapshot {i}: free");
            assert_eq!(r.gc_info.total, pool * bpb);
            // Free runs between allocations, area by area: a run ends at its area's end.
            let mut gaps = Vec::new();
            for area in r.geometry.areas() {
                let end = area.first_block + area.blocks(bpb);
                let mut next = area.first_block;
                for t in live {
                    let b = r.geometry.block_of(t.address).unwrap();
                    if (area.first_block..end).contains(&b) {
                        gaps.push(b - next);
                        next = b + t.blocks;
                    }
                }
                gaps.push(end - next);
            }
            assert_eq!(r.gc_info.max_free, gaps.iter().copied().max().unwrap_or(0), "snapshot {i}: max_free");
            let ones = live.iter().filter(|t| t.blocks == 1).count() as u64;
            let twos = live.iter().filter(|t| t.blocks == 2).count() as u64;
            assert_eq!((r.gc_info.num_1block, r.gc_info.num_2block), (ones, twos), "snapshot {i}: 1/2-block counts");
            assert_eq!(r.gc_info.max_block, live.iter().map(|t| t.blocks).max().unwrap_or(0));
            checked_gc_info += 1;
        }
    }
    assert!(checked_gc_info > truth.len() / 2);
    // Functions are named from their bytecode (the fixed prelude's qstr, or the
    // packed prelude's index into the module's qstr table): every name is one the
    // program gave, and each module-level function is seen by name.
    let allowed: Vec<&str> = heapvis::synth::program::FUNCTIONS
        .iter()
        .copied()
        .chain(heapvis::synth::program::CLASSES.iter().flat_map(|(_, m)| m.iter().copied()))
        .collect();
    let last = decoder.decode(truth.len() as u64 - 1, &ram[(truth.len() - 1) * size..]).unwrap();
    let names: Vec<&str> =
        last.blocks.iter().filter(|b| b.category == Category::Function).filter_map(|b| b.name.as_deref()).collect();
    assert_eq!(
        names.len(),
        last.blocks.iter().filter(|b| b.category == Category::Function).count(),
        "unnamed functions"
    );
    assert!(names.iter().all(|n| allowed.contains(n)), "{names:?}");
    for f in heapvis::synth::program::FUNCTIONS {
        assert!(names.contains(&f), "{f} not found by name in {names:?}");
    }
    // Every kind the simulator makes shows up.
    let last = truth.last().unwrap();
    for k in [
        Category::Str,
        Category::StringData,
        Category::Dict,
        Category::MapTable,
        Category::Instance,
        Category::Type,
        Category::Function,
        Category::Bytecode,
        Category::QstrPool,
        Category::QstrChunk,
        Category::Tuple,
    ] {
        assert!(truth.iter().any(|s| s.iter().any(|t| t.kind == k)), "{k:?} never allocated");
    }
    assert!(!last.is_empty());
}

#[test]
fn samd21_decodes_exactly_what_the_simulator_allocated() {
    check(Board::Samd21, 700, 5, 0);
}

#[test]
fn samd51_decodes_exactly_what_the_simulator_allocated() {
    check(Board::Samd51, 500, 6, 4);
}

/// The firmware rounds the heap's end down to a block before sizing the tables
/// (gc_init); the reference does not, and on a SAMD51 heap starting 8 bytes past a
/// block boundary it computes 2001 allocation-table bytes and a pool 64 bytes off.
/// heapvis follows the firmware, so it still sees every object where it is.
#[test]
fn geometry_follows_gc_init_where_the_reference_is_off_by_one_atb_byte() {
    check(Board::Samd51, 400, 7, 8);
    let c = crate::common::capture(Board::Samd51, 30, 7, 8);
    let s = crate::common::session(&c.inputs);
    let g = s.decoder(DecodeOptions::default()).geometry.unwrap();
    assert_eq!(g.first.alloc_table_bytes, 2000);
    assert_eq!(g.first.pool_end, (g.heap_start + g.heap_bytes) & !15);
    let Some(facts) = crate::common::oracle_facts(&c.inputs, c.dir.path(), "synth_truth::geometry_follows_gc_init")
    else {
        return;
    };
    let structure: Vec<&str> =
        facts[0]["heap_structure"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(structure.contains(&"ATB length: 2001"), "{structure:?}");
}

/// A current MicroPython's layouts (gap byte, weakref table, GC state in
/// `mem.area`, qstr pools with arrays, representation A): every allocation, kind
/// and gc_info figure at every snapshot, read with the shipped profile.
#[test]
fn micropython_layout_decodes_exactly_what_the_simulator_allocated() {
    let flavor = heapvis::synth::Flavor::MicroPython;
    let shipped = crate::common::repo().join("data/profiles/micropython-1.2x-synthetic.toml");
    assert_eq!(Profile::from_toml_file(&shipped).unwrap(), flavor.profile());
    check_flavor(Board::Samd21, 600, 23, 0, flavor);
    check_flavor(Board::Samd51, 400, 24, 4, flavor);
}

/// A current CircuitPython's layouts: a split heap of two areas (blocks numbered
/// across them, runs and allocations never crossing from one into the other), the
/// selective-collect table after the finaliser table, representation C: every
/// allocation, kind and gc_info figure at every snapshot, with the shipped profile.
#[test]
fn circuitpython_10_split_heap_decodes_exactly_what_the_simulator_allocated() {
    let flavor = heapvis::synth::Flavor::CircuitPython10;
    let shipped = crate::common::repo().join("data/profiles/circuitpython-10-synthetic.toml");
    assert_eq!(Profile::from_toml_file(&shipped).unwrap(), flavor.profile());
    for (board, snapshots, seed) in [(Board::Samd21, 600, 31), (Board::Samd51, 400, 32)] {
        check_flavor(board, snapshots, seed, 0, flavor);
        // Both areas hold allocations at some point (long-lived ones come from the top).
        let mut config = SynthConfig::new(board, snapshots, seed);
        config.flavor = flavor;
        let c = simulate_in_memory(&config).unwrap();
        let (second, _) = c.layout.second_region.unwrap();
        assert!(c.truth.iter().flatten().any(|t| t.address > second), "{board:?}: nothing in the second area");
        assert!(c.truth.iter().flatten().any(|t| t.address < second), "{board:?}: nothing in the first area");
    }
}

/// A current MicroPython on a 64-bit port: 8-byte words and 32-byte blocks, the
/// struct offsets of the test structs built for x86-64. Every allocation, kind,
/// name and gc_info figure at every snapshot, with the shipped profile.
#[test]
fn micropython_64_bit_layout_decodes_exactly_what_the_simulator_allocated() {
    let flavor = heapvis::synth::Flavor::MicroPython64;
    let p = flavor.profile();
    assert_eq!((p.heap.word_bytes, p.heap.bytes_per_block), (8, 32));
    check_flavor(Board::Samd21, 600, 41, 0, flavor);
    check_flavor(Board::Samd51, 400, 42, 0, flavor);
}
