//! A hand-built heap, every figure computed by hand: a dict and its table in a
//! 2 KiB heap, a ROM qstr pool, flash placed above 0x40000 (where the reference's
//! `word < 0x40000` test would miss the dict's type).

use heapvis::decode::{Category, DecodeOptions, Decoder};
use heapvis::firmware::{Firmware, SymbolTable};
use heapvis::profile::Profile;

const RAM: u64 = 0x2000_0000;
const FLASH: u64 = 0x8_0000;

fn put(ram: &mut [u8], address: u64, words: &[u32]) {
    for (i, w) in words.iter().enumerate() {
        let o = (address - RAM) as usize + 4 * i;
        ram[o..o + 4].copy_from_slice(&w.to_le_bytes());
    }
}

/// The hand-built firmware: RAM 0x20000000..+`ram`, heap at +0x100 of `heap`
/// bytes, mp_type_dict and mp_type_str in flash, a ROM qstr pool.
fn firmware(ram: u64, heap: u64) -> Firmware {
    let mut symbols = SymbolTable::new();
    symbols.add("_sfixed", Some(FLASH), None);
    symbols.add("_srelocate", Some(RAM), None);
    symbols.add("_estack", Some(RAM + ram), None);
    symbols.add("mp_state_ctx", Some(RAM), Some(0xa0));
    symbols.add("heap", Some(RAM + 0x100), Some(heap));
    symbols.add("mp_type_dict", Some(FLASH + 0x10), Some(0x38));
    symbols.add("mp_type_str", Some(FLASH + 0x48), Some(0x38));
    symbols.add("mp_type_module", Some(FLASH + 0x80), Some(0x38));
    // Flash: the dict type at +0x10, a ROM qstr pool at +0x100 with 3 entries, the
    // third ("foo") stored at +0x200 as hash, length, bytes, NUL.
    let mut flash = vec![0u8; 0x300];
    // Qstrs 2, 3 and 4: "foo", "__name__", "mymod".
    let pool: [u32; 9] = [0, 0, 10, 5, 0, 0, (FLASH + 0x200) as u32, (FLASH + 0x210) as u32, (FLASH + 0x220) as u32];
    for (i, w) in pool.iter().enumerate() {
        flash[0x100 + 4 * i..0x104 + 4 * i].copy_from_slice(&w.to_le_bytes());
    }
    flash[0x200..0x206].copy_from_slice(&[0x5a, 3, b'f', b'o', b'o', 0]);
    flash[0x210..0x21b].copy_from_slice(&[0x11, 8, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_', 0]);
    flash[0x220..0x228].copy_from_slice(&[0x22, 5, b'm', b'y', b'm', b'o', b'd', 0]);
    Firmware::from_parts(symbols, flash, "fixture.map".as_ref(), &Profile::default()).unwrap()
}

/// The default profile, told that these hand-built heaps have no GC state in
/// `mp_state_ctx` (their geometry is gc_init's from the heap symbol): with a
/// state to read, a snapshot whose state does not add up is suspect.
fn without_gc_state(mut profile: Profile) -> Profile {
    profile.state.gc.read = false;
    profile
}

#[test]
fn hand_built_heap_decodes_to_hand_computed_rows() {
    let profile = without_gc_state(Profile::default());
    let fw = firmware(0x1000, 0x800);

    // gc_init(0x20000100, 0x20000900): 2048 bytes → 2048*8/524 = 31 ATB bytes,
    // 124 blocks, FTB (124+7)/8 = 16 bytes, pool 1984 bytes from 0x20000900-0x7c0.
    let decoder = Decoder::new(&fw, &profile, DecodeOptions::default());
    let g = decoder.geometry.clone().unwrap();
    assert_eq!((g.first.alloc_table_bytes, g.first.finaliser_table_bytes, g.pool_blocks()), (31, 16, 124));
    assert_eq!(g.first.pool_start, 0x2000_0140);

    let mut ram = vec![0u8; 0x1000];
    // Allocation table: block 0 HEAD (the dict), block 1 HEAD + block 2 TAIL (its table).
    ram[0x100] = 0b10_01_01;
    // Finaliser bit on block 0.
    ram[0x100 + 31] = 1;
    // The dict: type, map bits (used 1), alloc 2, table.
    put(&mut ram, 0x2000_0140, &[(FLASH + 0x10) as u32, 1 << 3, 2, 0x2000_0150]);
    // The table: key qstr 2 ("foo") → the dict itself; second slot empty.
    put(&mut ram, 0x2000_0150, &[(2 << 3) | 6, 0x2000_0140, 0, 0]);
    // mp_state_ctx: vm.last_pool (+20) is the ROM pool; dict_main's table (+88) is ours.
    put(&mut ram, RAM + 20, &[(FLASH + 0x100) as u32]);
    put(&mut ram, RAM + 88, &[0x2000_0150]);

    let r = decoder.decode(0, &ram).unwrap();
    let blocks: Vec<(u64, u64, Category, bool)> =
        r.blocks.iter().map(|b| (b.address, b.blocks, b.category, b.has_finaliser)).collect();
    assert_eq!(blocks, vec![(0x2000_0140, 1, Category::Dict, true), (0x2000_0150, 2, Category::MapTable, false)]);
    assert_eq!(r.blocks[0].type_address, Some(FLASH + 0x10));
    assert_eq!(fw.flash_names.get(&(FLASH + 0x10)).map(|t| &**t), Some("mp_type_dict"));
    // One free run: blocks 3..124.
    assert_eq!(r.free_runs.len(), 1);
    assert_eq!((r.free_runs[0].start_block, r.free_runs[0].blocks), (3, 121));
    let i = r.gc_info;
    assert_eq!((i.total, i.used, i.free), (1984, 48, 121 * 16));
    assert_eq!((i.max_free, i.num_1block, i.num_2block, i.max_block), (121, 1, 1, 2));
    // Edges: dict word 3 → table; table word 1 → dict, under key "foo".
    type Edge<'a> = (Option<u64>, Option<u32>, u64, Option<&'a str>);
    let edges: Vec<Edge> = r
        .edges
        .iter()
        .filter(|e| e.from_address.is_some())
        .map(|e| (e.from_address, e.from_word, e.to_address, e.map_key.as_deref()))
        .collect();
    assert_eq!(
        edges,
        vec![(Some(0x2000_0140), Some(3), 0x2000_0150, None), (Some(0x2000_0150), Some(1), 0x2000_0140, Some("foo"))]
    );
    // Root: the state's dict_main table pointer, by the reference's name.
    let roots: Vec<(&str, u64)> =
        r.edges.iter().filter_map(|e| Some((e.root_name.as_deref()?, e.to_address))).collect();
    assert_eq!(roots, vec![("mp_state_ctx.vm.dict_main.map.table", 0x2000_0150)]);
}

/// `micropython.mem_info(1)`'s block map, written out by hand for two heaps.
#[test]
fn mem_info_block_map_by_hand() {
    let profile = Profile::default();
    // The 2 KiB heap above: a dict (D), its table (h, first word a qstr), a tail.
    let fw = firmware(0x1000, 0x800);
    let d = Decoder::new(&fw, &profile, DecodeOptions::default());
    let mut ram = vec![0u8; 0x1000];
    ram[0x100] = 0b10_01_01;
    put(&mut ram, 0x2000_0140, &[(FLASH + 0x10) as u32, 1 << 3, 2, 0x2000_0150]);
    put(&mut ram, 0x2000_0150, &[(2 << 3) | 6, 0x2000_0140, 0, 0]);
    let expected = format!(
        "GC: total: 1984, used: 48, free: 1936\n No. of 1-blocks: 1, 2-blocks: 1, max blk sz: 2, max free sz: 121\nGC memory layout; from 20000140:\n00000: Dh={}\n00400: {}\n",
        ".".repeat(61),
        ".".repeat(60)
    );
    assert_eq!(heapvis::inspect::mem_info(&d, &ram).unwrap(), expected);

    // An 8 KiB heap: 8192*8/524 = 125 ATB bytes, 500 blocks, pool from
    // 0x20002100 - 8000 = 0x200001c0. One str (S) and one marked head with a tail
    // (m=) at block 2; blocks 4..500 free: the line at 64 starts a run of 436 free
    // blocks, six whole lines, so the map resumes at line 448 (0x1c00).
    let fw = firmware(0x3000, 0x2000);
    let d = Decoder::new(&fw, &profile, DecodeOptions::default());
    let g = d.geometry.clone().unwrap();
    assert_eq!((g.first.alloc_table_bytes, g.first.pool_start), (125, 0x2000_01c0));
    let mut ram = vec![0u8; 0x3000];
    ram[0x100] = 0b10_11_00_01; // block 0 HEAD, 1 FREE, 2 MARK, 3 TAIL
    put(&mut ram, 0x2000_01c0, &[(FLASH + 0x48) as u32, 0, 0, 0]);
    let text = heapvis::inspect::mem_info(&d, &ram).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Free: block 1 and blocks 4..500, 497 blocks. Used: the str and the tail; the
    // MARK counts nowhere (gc_info says it "shouldn't happen").
    assert_eq!(lines[0], "GC: total: 8000, used: 32, free: 7952");
    // gc_info's length counter: the str is a 1-block; the MARK leaves the counter
    // at 0 (reset by block 1), so its tail counts as another 1-block. No HEAD
    // closes the free run after block 1, so max free is all 497 blocks.
    assert_eq!(lines[1], " No. of 1-blocks: 2, 2-blocks: 0, max blk sz: 1, max free sz: 497");
    assert_eq!(lines[2], "GC memory layout; from 200001c0:");
    assert_eq!(lines[3], format!("00000: S.m={}", ".".repeat(60)));
    assert_eq!(lines[4], "       (6 lines all free)");
    assert_eq!(lines[5], format!("01c00: {}", ".".repeat(52)));
    assert_eq!(lines.len(), 6);
}

/// A current MicroPython's formats, by hand: a gap byte after the allocation table,
/// a RAM qstr pool whose hashes and lengths are arrays (and whose `total_prev_len`
/// shares a word with `is_sorted`), object representation A.
#[test]
fn current_micropython_formats_by_hand() {
    let mut profile = Profile::default();
    profile.object_repr = heapvis::profile::ObjectRepr::A;
    profile.heap.alloc_table_gap_bytes = 1;
    profile.state.gc.read = false;
    profile.qstr.pool_format = heapvis::profile::QstrPoolFormat::Arrays;
    profile.qstr.hashes_word = Some(4);
    profile.qstr.lengths_word = 5;
    profile.objects.qstr_pool_header_words = 6;
    let fw = firmware(0x3000, 0x2000);
    let d = Decoder::new(&fw, &profile, DecodeOptions::default());
    // (8192 - 1) * 8 / 524 = 125 ATB bytes, the FTB after one gap byte, 500 blocks.
    let g = d.geometry.clone().unwrap();
    assert_eq!(
        (g.first.alloc_table_bytes, g.first.finaliser_table_start, g.first.pool_start),
        (125, Some(RAM + 0x100 + 126), 0x2000_01c0)
    );

    let mut ram = vec![0u8; 0x3000];
    ram[0x100] = 0b10_01_01_01; // blocks 0, 1, 2 HEAD, 3 TAIL
    ram[0x101] = 0b10_01; // block 4 HEAD, 5 TAIL
    put(&mut ram, 0x2000_01c0, &[(FLASH + 0x10) as u32, 1 << 3, 1, 0x2000_01d0]); // dict
    put(&mut ram, 0x2000_01d0, &[(5 << 2) | 2, 0x2000_01c0]); // its table: qstr 5 -> the dict
                                                              // The pool: prev NULL, total_prev_len 5 with is_sorted set, alloc 2, len 1,
                                                              // hashes, lengths, qstrs[0].
    put(&mut ram, 0x2000_01e0, &[0, 5 | 1 << 31, 2, 1, 0x2000_0200, 0x2000_0208, 0x2000_0210]);
    put(&mut ram, 0x2000_0200, &[0x77, 0, 5, 0]);
    ram[0x210..0x215].copy_from_slice(b"hello");
    put(&mut ram, RAM + 20, &[0x2000_01e0]);

    let r = d.decode(0, &ram).unwrap();
    let kinds: Vec<(u64, Category)> = r.blocks.iter().map(|b| (b.address, b.category)).collect();
    assert_eq!(
        kinds,
        vec![
            (0x2000_01c0, Category::Dict),
            (0x2000_01d0, Category::MapTable),
            (0x2000_01e0, Category::QstrPool),
            (0x2000_0200, Category::QstrChunk)
        ]
    );
    assert_eq!(r.qstrs.len(), 1);
    let q = &r.qstrs[0];
    assert_eq!(
        (q.id, &*q.text, q.hash, q.length, q.address, q.chunk),
        (5, "hello", 0x77, 5, 0x2000_0210, Some(0x2000_0200))
    );
    let key = r.edges.iter().find(|e| e.from_address == Some(0x2000_01d0)).and_then(|e| e.map_key.as_deref());
    assert_eq!(key, Some("hello"));
}

/// A module is named by its globals' `__name__`: module → globals dict → table.
#[test]
fn modules_are_named_by_their_globals() {
    let profile = without_gc_state(Profile::default());
    let fw = firmware(0x1000, 0x800);
    let d = Decoder::new(&fw, &profile, DecodeOptions::default());
    let mut ram = vec![0u8; 0x1000];
    ram[0x100] = 0b01_01_01; // blocks 0, 1, 2: module, dict, table
    put(&mut ram, 0x2000_0140, &[(FLASH + 0x80) as u32, 0x2000_0150]);
    put(&mut ram, 0x2000_0150, &[(FLASH + 0x10) as u32, 1 << 3, 2, 0x2000_0160]);
    // (__name__ -> "mymod") as qstr objects in representation C.
    put(&mut ram, 0x2000_0160, &[(3 << 3) | 6, (4 << 3) | 6]);
    put(&mut ram, RAM + 20, &[(FLASH + 0x100) as u32]); // vm.last_pool: the ROM pool
    let r = d.decode(0, &ram).unwrap();
    let module = &r.blocks[0];
    assert_eq!(module.name.as_deref(), Some("mymod"));
    assert_eq!(fw.flash_names.get(&module.type_address.unwrap()).map(|t| &**t), Some("mp_type_module"));
}

/// A 64-bit port, by hand: 8-byte words, 32-byte blocks, representation A. Every
/// figure below follows from gc_init and the struct layouts with 8-byte fields.
#[test]
fn a_64_bit_heap_by_hand() {
    const RAM64: u64 = 0x5555_0000_0000;
    const FLASH64: u64 = 0x5554_0000_0000;
    let mut symbols = SymbolTable::new();
    symbols.add("_sfixed", Some(FLASH64), None);
    symbols.add("_srelocate", Some(RAM64), None);
    symbols.add("_estack", Some(RAM64 + 0x2000), None);
    symbols.add("mp_state_ctx", Some(RAM64), Some(0x140));
    symbols.add("heap", Some(RAM64 + 0x200), Some(0x1000));
    symbols.add("mp_type_dict", Some(FLASH64 + 0x10), Some(0x70));
    let mut flash = vec![0u8; 0x300];
    let pool: [u64; 7] = [0, 0, 10, 3, 0, 0, FLASH64 + 0x200];
    for (i, w) in pool.iter().enumerate() {
        flash[0x100 + 8 * i..0x108 + 8 * i].copy_from_slice(&w.to_le_bytes());
    }
    flash[0x200..0x206].copy_from_slice(&[0x5a, 3, b'f', b'o', b'o', 0]);
    let mut profile = Profile::default();
    profile.heap.word_bytes = 8;
    profile.heap.bytes_per_block = 32;
    profile.object_repr = heapvis::profile::ObjectRepr::A;
    profile.state.gc.read = false;
    profile.state.last_pool = 40; // after five 8-byte thread fields
    profile.state.dict_main_table = 176;
    profile.state.readline_hist = None;
    let fw = Firmware::from_parts(symbols, flash, "fixture64.map".as_ref(), &profile).unwrap();
    let d = Decoder::new(&fw, &profile, DecodeOptions::default());
    // 4096 bytes: 4096*8 / (8 + 4 + 8*4*32) = 31 ATB bytes, 124 blocks of 32 bytes,
    // the pool's 3968 bytes ending at the heap's end, FTB (124+7)/8 = 16 bytes.
    let g = d.geometry.clone().unwrap();
    assert_eq!((g.first.alloc_table_bytes, g.pool_blocks(), g.first.finaliser_table_bytes), (31, 124, 16));
    assert_eq!(g.first.pool_start, RAM64 + 0x200 + 4096 - 3968);

    let mut ram = vec![0u8; 0x2000];
    let put64 = |ram: &mut Vec<u8>, at: u64, words: &[u64]| {
        for (i, w) in words.iter().enumerate() {
            let o = (at - RAM64) as usize + 8 * i;
            ram[o..o + 8].copy_from_slice(&w.to_le_bytes());
        }
    };
    ram[0x200] = 0b01_01; // blocks 0 and 1 HEAD
    let (dict, table) = (g.first.pool_start, g.first.pool_start + 32);
    put64(&mut ram, dict, &[FLASH64 + 0x10, 1 << 3, 2, table]);
    put64(&mut ram, table, &[(2 << 2) | 2, dict, 0, 0]); // "foo" (qstr 2, repr A) -> the dict
    put64(&mut ram, RAM64 + 40, &[FLASH64 + 0x100]);
    put64(&mut ram, RAM64 + 176, &[table]);
    let r = d.decode(0, &ram).unwrap();
    let kinds: Vec<(u64, u64, Category)> = r.blocks.iter().map(|b| (b.address, b.blocks, b.category)).collect();
    assert_eq!(kinds, vec![(dict, 1, Category::Dict), (table, 1, Category::MapTable)]);
    assert_eq!((r.gc_info.used, r.gc_info.free, r.gc_info.max_free), (64, 122 * 32, 122));
    let edges: Vec<(u64, u32, u64, Option<&str>)> = r
        .edges
        .iter()
        .filter_map(|e| Some((e.from_address?, e.from_word?, e.to_address, e.map_key.as_deref())))
        .collect();
    assert_eq!(edges, vec![(dict, 3, table, None), (table, 1, dict, Some("foo"))]);
    let roots: Vec<(&str, u64)> =
        r.edges.iter().filter_map(|e| Some((e.root_name.as_deref()?, e.to_address))).collect();
    assert_eq!(roots, vec![("mp_state_ctx.vm.dict_main.map.table", table)]);
}

/// A split heap by hand (`MICROPY_GC_SPLIT_HEAP`): the first area's state inside
/// mp_state_ctx, a second area's struct elsewhere in RAM, chained through `next`.
/// Blocks are numbered across the areas; gc_info and mem_info add them up as
/// py/gc.c loops over them.
#[test]
fn a_split_heap_by_hand() {
    let mut profile = Profile::default();
    profile.state.gc.next = Some(172); // the area's first member; the others follow at 176..
    let fw = firmware(0x1000, 0x100);
    let d = Decoder::new(&fw, &profile, DecodeOptions::default());
    let mut ram = vec![0u8; 0x1000];
    // Area 1: ATB at +0x200 (2 bytes, 8 blocks), FTB right after, pool +0x280..+0x300.
    put(&mut ram, RAM + 172, &[0x2000_0400, 0x2000_0200, 2, 0x2000_0202, 0x2000_0280, 0x2000_0300]);
    // Area 2's struct at +0x400: next NULL, ATB +0x430 (1 byte, 4 blocks), FTB, pool.
    put(&mut ram, 0x2000_0400, &[0, 0x2000_0430, 1, 0x2000_0431, 0x2000_0440, 0x2000_0480]);
    ram[0x200] = 0b10_01_00_01; // area 1: block 0 HEAD, 1 FREE, 2 HEAD, 3 TAIL
    ram[0x430] = 0b01; // area 2: its block 0 (block 8 of the heap) HEAD
                       // A dict in area 1 whose table is in area 2; the table maps "foo" to area 1's
                       // two-block allocation.
    put(&mut ram, 0x2000_0280, &[(FLASH + 0x10) as u32, 1 << 3, 1, 0x2000_0440]);
    put(&mut ram, 0x2000_0440, &[(2 << 3) | 6, 0x2000_02a0]);
    put(&mut ram, RAM + 20, &[(FLASH + 0x100) as u32]); // vm.last_pool: the ROM pool

    let r = d.decode(0, &ram).unwrap();
    assert_eq!(r.geometry_source, "gc_state");
    assert_eq!(r.geometry.more_areas.len(), 1);
    let blocks: Vec<(u64, u64, u64, Category)> =
        r.blocks.iter().map(|b| (b.address, b.start_block, b.blocks, b.category)).collect();
    assert_eq!(
        blocks,
        vec![
            (0x2000_0280, 0, 1, Category::Dict),
            (0x2000_02a0, 2, 2, Category::Unknown),
            (0x2000_0440, 8, 1, Category::MapTable),
        ]
    );
    let runs: Vec<(u64, u64)> = r.free_runs.iter().map(|f| (f.start_block, f.blocks)).collect();
    assert_eq!(runs, vec![(1, 1), (4, 4), (9, 3)]);
    type Edge<'a> = (Option<u64>, Option<u64>, u64, Option<&'a str>);
    let edges: Vec<Edge> =
        r.edges.iter().map(|e| (e.from_address, e.root_address, e.to_address, e.map_key.as_deref())).collect();
    assert_eq!(
        edges,
        vec![
            (Some(0x2000_0280), None, 0x2000_0440, None),
            (Some(0x2000_0440), None, 0x2000_02a0, Some("foo")),
            // The GC state's own pool_start words point at each pool's first block.
            (None, Some(RAM + 188), 0x2000_0280, None),
            (None, Some(0x2000_0410), 0x2000_0440, None),
        ]
    );
    // gc_info: 12 blocks in all; used 0, 2-3 and 8; runs end at each area's end,
    // so the largest free run is area 1's four, not 4 + 3.
    let i = r.gc_info;
    assert_eq!((i.total, i.used, i.free), (192, 64, 128));
    assert_eq!((i.num_1block, i.num_2block, i.max_block, i.max_free), (2, 1, 2, 4));
    let expected =
        "GC: total: 192, used: 64, free: 128\n No. of 1-blocks: 2, 2-blocks: 1, max blk sz: 2, max free sz: 4\n\
                    GC memory layout; from 20000280:\n00000: D.h=....\n\
                    GC memory layout; from 20000440:\n00000: h...\n";
    assert_eq!(heapvis::inspect::mem_info(&d, &ram).unwrap(), expected);

    // A `next` that leads nowhere sensible: the first area alone, and a note.
    put(&mut ram, RAM + 172, &[0x2000_0900]);
    let r = d.decode(0, &ram).unwrap();
    assert!(r.geometry.more_areas.is_empty());
    assert_eq!(r.blocks.len(), 1 + 1); // area 1's two allocations; the table is not seen
    assert!(r.notes.iter().any(|n| n.contains("0x20000900") && n.contains("left out")), "{:?}", r.notes);
    // A chain that loops back to itself ends at the overlap.
    put(&mut ram, RAM + 172, &[0x2000_0400]);
    put(&mut ram, 0x2000_0400, &[0x2000_0400]);
    let r = d.decode(0, &ram).unwrap();
    assert_eq!(r.geometry.more_areas.len(), 1);
    assert!(r.notes.iter().any(|n| n.contains("left out")), "{:?}", r.notes);
}

/// Representation D (NaN boxing) by hand: `mp_obj_t` is 8 bytes on a 32-bit port,
/// so a map table is pairs of 16 bytes; keys are a qstr `(q<<1)|0x0002…1` and a
/// small int `(v<<1)|0x0001…1`; a pointer is its low word.
#[test]
fn representation_d_map_tables_by_hand() {
    let profile = without_gc_state(Profile { object_repr: heapvis::profile::ObjectRepr::D, ..Profile::default() });
    let fw = firmware(0x1000, 0x800);
    let d = Decoder::new(&fw, &profile, DecodeOptions::default());
    let mut ram = vec![0u8; 0x1000];
    ram[0x100] = 0b00_10_01_01; // block 0 HEAD (the dict), 1 HEAD + 2 TAIL (its table)
    put(&mut ram, 0x2000_0140, &[(FLASH + 0x10) as u32, 2 << 3, 2, 0x2000_0150]);
    // Two pairs: "foo" -> the dict, 7 -> the dict (64-bit words, low half first).
    put(&mut ram, 0x2000_0150, &[5, 0x0002_0000, 0x2000_0140, 0, 15, 0x0001_0000, 0x2000_0140, 0]);
    put(&mut ram, RAM + 20, &[(FLASH + 0x100) as u32]);
    let r = d.decode(0, &ram).unwrap();
    let kinds: Vec<(u64, Category)> = r.blocks.iter().map(|b| (b.address, b.category)).collect();
    assert_eq!(kinds, vec![(0x2000_0140, Category::Dict), (0x2000_0150, Category::MapTable)]);
    let edges: Vec<(u64, u32, u64, Option<&str>)> = r
        .edges
        .iter()
        .filter_map(|e| Some((e.from_address?, e.from_word?, e.to_address, e.map_key.as_deref())))
        .collect();
    assert_eq!(
        edges,
        vec![
            (0x2000_0140, 3, 0x2000_0150, None),
            (0x2000_0150, 2, 0x2000_0140, Some("foo")),
            (0x2000_0150, 6, 0x2000_0140, Some("7")),
        ]
    );
}
