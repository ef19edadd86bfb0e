//! No input panics: random bytes as a snapshot, as a map, as a flash image, and
//! corrupted real snapshots, all decode to rows or errors.

use heapvis::decode::{DecodeOptions, Decoder};
use heapvis::firmware::{map::parse_map, Firmware};
use heapvis::profile::Profile;
use heapvis::synth::{Board, Layout};
use proptest::prelude::*;

fn firmware(layout: &Layout, flash: Vec<u8>) -> Firmware {
    Firmware::from_parts(parse_map(&layout.map), flash, "firmware.map".as_ref(), &Profile::default()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_as_a_snapshot_never_panic(seed in any::<u64>(), fill in any::<u8>(), density in 0u32..=100) {
        let layout = Layout::new(Board::Samd21, 0, 1);
        let fw = firmware(&layout, layout.flash.clone());
        let profile = Profile::default();
        let d = Decoder::new(&fw, &profile, DecodeOptions::default());
        // Mix of a fill byte, random bytes and pointers into RAM, so links and
        // tables point somewhere plausible as often as nowhere.
        let mut rng = heapvis::synth::rng::Rng::new(seed);
        let ram: Vec<u8> = (0..(layout.ram_end - layout.ram_start) / 4)
            .flat_map(|_| {
                let w = if rng.below(100) < density as u64 {
                    (layout.ram_start + rng.below(layout.ram_end - layout.ram_start)) as u32 & !3
                } else if rng.chance(50) {
                    rng.next_u64() as u32
                } else {
                    u32::from_le_bytes([fill; 4])
                };
                w.to_le_bytes()
            })
            .collect();
        let _ = d.decode(0, &ram);
        let _ = d.decode(0, &ram[..ram.len() / 2]);
        let _ = d.decode(0, &[]);
    }

    #[test]
    fn random_text_as_a_map_never_panics(lines in proptest::collection::vec("[ -~]{0,80}", 0..60)) {
        let text = lines.join("\n");
        let t = parse_map(&text);
        let _ = t.address_names(0, 1 << 20);
        let _ = Firmware::from_parts(t, vec![0; 64], "m.map".as_ref(), &Profile::default());
    }

    #[test]
    fn random_flash_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096), seed in 0u64..4) {
        let layout = Layout::new(Board::Samd21, 0, seed);
        let fw = firmware(&layout, bytes);
        let profile = Profile::default();
        let d = Decoder::new(&fw, &profile, DecodeOptions::default());
        let heapvis::synth::InMemoryCapture { ram, .. } = heapvis::synth::simulate_in_memory(&heapvis::synth::SynthConfig::new(Board::Samd21, 120, seed)).unwrap();
        let size = (layout.ram_end - layout.ram_start) as usize;
        let _ = d.decode(0, &ram[ram.len() - size..]);
    }
}

/// Real snapshots with bytes flipped: qstr pool chains that loop, tables that point
/// anywhere, lengths far too large.
#[test]
fn corrupted_real_snapshots_decode_without_panicking() {
    let config = heapvis::synth::SynthConfig::new(Board::Samd21, 200, 9);
    let heapvis::synth::InMemoryCapture { layout, ram, .. } = heapvis::synth::simulate_in_memory(&config).unwrap();
    let fw = firmware(&layout, layout.flash.clone());
    let profile = Profile::default();
    let d = Decoder::new(&fw, &profile, DecodeOptions::default());
    let size = (layout.ram_end - layout.ram_start) as usize;
    let mut rng = heapvis::synth::rng::Rng::new(3);
    for round in 0..200 {
        let mut snap = ram[ram.len() - size..].to_vec();
        for _ in 0..(1 + round % 50) {
            let at = rng.below(size as u64 - 4) as usize & !3;
            let w = match rng.below(4) {
                0 => 0xffff_ffffu32,
                1 => (layout.ram_start + rng.below(size as u64)) as u32,
                2 => fw.state_address as u32 + 20, // make pools point into the state
                _ => rng.next_u64() as u32,
            };
            snap[at..at + 4].copy_from_slice(&w.to_le_bytes());
        }
        // A qstr pool chain that points at itself.
        let last_pool = fw.state_address as usize - layout.ram_start as usize + 20;
        let pool = u32::from_le_bytes(snap[last_pool..last_pool + 4].try_into().unwrap());
        if pool as u64 > layout.ram_start && (pool as u64) < layout.ram_end {
            let p = (pool as u64 - layout.ram_start) as usize;
            snap[p..p + 4].copy_from_slice(&pool.to_le_bytes());
        }
        let _ = d.decode(round, &snap);
    }
}

/// The same for the current layouts: a split heap (its `next` chain pointed
/// anywhere, at itself, at another area), the collect table, packed preludes and
/// qstr tables, qstr pools with arrays, representation D's 16-byte pairs.
#[test]
fn corrupted_current_layout_snapshots_decode_without_panicking() {
    use heapvis::synth::Flavor;
    for (flavor, repr) in [
        (Flavor::CircuitPython10, None),
        (Flavor::MicroPython, None),
        (Flavor::MicroPython, Some(heapvis::profile::ObjectRepr::D)),
        (Flavor::MicroPython64, None),
    ] {
        let mut config = heapvis::synth::SynthConfig::new(Board::Samd21, 300, 11);
        config.flavor = flavor;
        let heapvis::synth::InMemoryCapture { layout, ram, .. } = heapvis::synth::simulate_in_memory(&config).unwrap();
        let mut profile = flavor.profile();
        if let Some(r) = repr {
            profile.object_repr = r;
        }
        let fw = layout.firmware(&profile).unwrap();
        let d = Decoder::new(&fw, &profile, DecodeOptions::default());
        let size = (layout.ram_end - layout.ram_start) as usize;
        let state = (fw.state_address - layout.ram_start) as usize;
        let mut rng = heapvis::synth::rng::Rng::new(5);
        for round in 0..300u64 {
            let mut snap = ram[ram.len() - size..].to_vec();
            let put = |snap: &mut Vec<u8>, at: usize, w: u32| {
                if at + 4 <= snap.len() {
                    snap[at..at + 4].copy_from_slice(&w.to_le_bytes());
                }
            };
            for _ in 0..(1 + round % 40) {
                let at = rng.below(size as u64 - 4) as usize & !3;
                let w = match rng.below(5) {
                    0 => 0xffff_ffffu32,
                    1 => (layout.ram_start + rng.below(size as u64)) as u32,
                    2 => fw.state_address as u32 + rng.below(64) as u32 * 4,
                    3 => rng.below(0x100) as u32,
                    _ => rng.next_u64() as u32,
                };
                put(&mut snap, at, w);
            }
            // The GC state itself: its area chain and table pointers.
            if let Some(next) = profile.state.gc.next {
                let w = match round % 4 {
                    0 => fw.state_address as u32 + next as u32, // a chain to itself
                    1 => (layout.ram_start + rng.below(size as u64)) as u32,
                    2 => layout.second_region.map_or(0, |r| r.0 as u32 + 4), // a shifted area
                    _ => 0xffff_fff0,
                };
                put(&mut snap, state + next as usize, w);
            }
            if round % 3 == 0 {
                let gc = &profile.state.gc;
                let field = [gc.alloc_table_byte_len, gc.pool_end, gc.collect_table_start.unwrap_or(gc.pool_start)]
                    [(round / 3 % 3) as usize];
                put(&mut snap, state + field as usize, rng.next_u64() as u32);
            }
            let _ = d.decode(round, &snap);
            let _ = heapvis::inspect::mem_info(&d, &snap);
        }
    }
}

/// Pointers read from a snapshot near the top of a 64-bit address space
/// (`vm.last_pool`, the globals' table, each state word in turn) are bounded by
/// checked arithmetic: a debug build (overflow checks on, as CI runs it) must
/// not panic on them.
#[test]
fn pointers_near_the_top_of_a_64_bit_address_space_never_overflow() {
    use heapvis::synth::{simulate_in_memory, Flavor, SynthConfig};
    let config = SynthConfig { flavor: Flavor::MicroPython64, ..SynthConfig::new(Board::Samd21, 60, 3) };
    let c = simulate_in_memory(&config).unwrap();
    let profile = Flavor::MicroPython64.profile();
    let fw = c.layout.firmware(&profile).unwrap();
    let size = (c.layout.ram_end - c.layout.ram_start) as usize;
    let last = c.ram.len() / size - 1;
    let state = (fw.state_address - fw.ram_start) as usize;
    let keep = DecodeOptions { keep_suspect: true, ..DecodeOptions::default() };
    let d = Decoder::new(&fw, &profile, keep);
    let words = fw.state_bytes.unwrap_or(512).min(1024) as usize / 8;
    for high in [u64::MAX, u64::MAX - 7, u64::MAX - 40, 1 << 63] {
        for w in 0..words {
            let mut snap = c.ram[last * size..(last + 1) * size].to_vec();
            snap[state + 8 * w..state + 8 * w + 8].copy_from_slice(&high.to_le_bytes());
            let _ = d.decode(0, &snap);
            let _ = d.infer_object_repr(&snap);
            let _ = heapvis::inspect::mem_info(&d, &snap);
        }
    }
}
