//! Heap geometry from the GC's own state in each snapshot (`mp_state_ctx.mem`),
//! with the fall-back to gc_init's computation from the map's heap symbol.

use heapvis::decode::{DecodeOptions, Decoder};
use heapvis::firmware::{map::parse_map, Firmware};
use heapvis::profile::Profile;
use heapvis::synth::{simulate_in_memory, Board, SynthConfig};
use heapvis::DecodeError;

fn allocations(d: &Decoder, ram: &[u8], i: usize, size: usize) -> (Vec<(u64, u64)>, &'static str) {
    let r = d.decode(i as u64, &ram[i * size..(i + 1) * size]).unwrap();
    (r.blocks.iter().map(|b| (b.address, b.blocks)).collect(), r.geometry_source)
}

#[test]
fn the_gc_state_wins_over_a_wrong_heap_symbol() {
    let c = simulate_in_memory(&SynthConfig { heap_misalign: 0, ..SynthConfig::new(Board::Samd21, 300, 21) }).unwrap();
    // A map whose heap symbol is 4 KiB short: gc_init's computation from it is wrong.
    let map = c.layout.map.replace("0x5000 /tmp/ccAbCdEf", "0x4000 /tmp/ccAbCdEf");
    assert_ne!(map, c.layout.map);
    let size = (c.layout.ram_end - c.layout.ram_start) as usize;
    let last = c.truth.len() - 1;
    let truth: Vec<(u64, u64)> = c.truth[last].iter().map(|t| (t.address, t.blocks)).collect();

    let profile = Profile::default();
    let fw = Firmware::from_parts(parse_map(&map), c.layout.flash.clone(), "f.map".as_ref(), &profile).unwrap();
    let d = Decoder::new(&fw, &profile, DecodeOptions::default());
    let (blocks, source) = allocations(&d, &c.ram, last, size);
    assert_eq!(source, "gc_state");
    assert_eq!(blocks, truth);

    // Told not to read the state, the decoder has only the wrong symbol to go by.
    let mut blind = Profile::default();
    blind.state.gc.read = false;
    let d = Decoder::new(&fw, &blind, DecodeOptions::default());
    let (blocks, source) = allocations(&d, &c.ram, last, size);
    assert_eq!(source, "heap_symbol");
    assert_ne!(blocks, truth);
}

/// A snapshot whose GC state does not add up is not one gc_init left: it is
/// suspect (no rows), and decoded on request from the heap symbol, which here is
/// right, so that decode is still the simulator's heap.
#[test]
fn a_snapshot_whose_gc_state_does_not_add_up_is_suspect() {
    let c = simulate_in_memory(&SynthConfig::new(Board::Samd21, 100, 22)).unwrap();
    let profile = Profile::default();
    let fw = c.layout.firmware(&profile).unwrap();
    let d = Decoder::new(&fw, &profile, DecodeOptions::default());
    let size = (c.layout.ram_end - c.layout.ram_start) as usize;
    let mut ram = c.ram.clone();
    let i = 60;
    // gc_pool_end one block short of what the allocation table describes.
    let at = i * size + (fw.state_address - fw.ram_start + profile.state.gc.pool_end) as usize;
    let end = u32::from_le_bytes(ram[at..at + 4].try_into().unwrap());
    ram[at..at + 4].copy_from_slice(&(end - 16).to_le_bytes());
    let err = d.decode(i as u64, &ram[i * size..(i + 1) * size]).unwrap_err();
    assert!(matches!(err, DecodeError::Suspect { check: "GC state", .. }), "{err}");
    assert!(err.status().starts_with("suspect: GC state:"), "{}", err.status());
    assert!(err.to_string().contains(&format!("..0x{:08x}", end - 16)), "the message shows the state read: {err}");

    let keep = Decoder::new(&fw, &profile, DecodeOptions { keep_suspect: true, ..DecodeOptions::default() });
    let r = keep.decode(i as u64, &ram[i * size..(i + 1) * size]).unwrap();
    assert!(r.suspect.as_deref().is_some_and(|s| s.contains("does not add up")));
    assert_eq!(r.geometry_source, "heap_symbol");
    let truth: Vec<(u64, u64)> = c.truth[i].iter().map(|t| (t.address, t.blocks)).collect();
    assert_eq!(r.blocks.iter().map(|b| (b.address, b.blocks)).collect::<Vec<_>>(), truth);
    assert_eq!(allocations(&d, &ram, i + 1, size).1, "gc_state");
}

/// A build without a heap array symbol (a port calling gc_init on linker
/// symbols) decodes from the GC state alone; told not to read the state, heapvis
/// names the symbol it lacks.
#[test]
fn no_heap_symbol_is_fine_when_the_gc_state_is_read() {
    let c = simulate_in_memory(&SynthConfig { heap_misalign: 0, ..SynthConfig::new(Board::Samd21, 120, 26) }).unwrap();
    let map: String = c
        .layout
        .map
        .lines()
        .filter(|l| !l.contains(".bss.heap.lto_priv") && !l.contains("0x5000 /tmp/ccAbCdEf"))
        .map(|l| format!("{l}\n"))
        .collect();
    let symbols = parse_map(&map);
    assert!(symbols.get("heap").is_none());
    let profile = Profile::default();
    let fw = Firmware::from_parts(symbols.clone(), c.layout.flash.clone(), "f.map".as_ref(), &profile).unwrap();
    let d = Decoder::new(&fw, &profile, DecodeOptions::default());
    let size = (c.layout.ram_end - c.layout.ram_start) as usize;
    let last = c.truth.len() - 1;
    let (blocks, source) = allocations(&d, &c.ram, last, size);
    assert_eq!(source, "gc_state");
    assert_eq!(blocks, c.truth[last].iter().map(|t| (t.address, t.blocks)).collect::<Vec<_>>());

    let mut blind = Profile::default();
    blind.state.gc.read = false;
    let err = Firmware::from_parts(symbols, c.layout.flash.clone(), "f.map".as_ref(), &blind).unwrap_err();
    assert!(err.to_string().contains("`heap`"), "{err}");
}
