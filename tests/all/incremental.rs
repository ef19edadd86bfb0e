//! Decoding each snapshot from the one before (the default) gives byte for byte
//! the tables of decoding every snapshot whole (`full_decode`): on the simulator's
//! captures, on every firmware flavour (most fall back to whole decodes), with
//! short runs and with shards, and on captures whose consecutive snapshots were
//! changed at random (pointers, allocation-table bits, roots, the VM's words) and
//! on purpose (a module renamed through its globals' table).

use heapvis::pipeline::{AnalyzeOptions, Silent};
use heapvis::synth::{self, Board, Flavor, SynthConfig};
use heapvis::tables::TableSet;

use crate::common::{assert_same_tables, capture, session};

/// The tables a default run writes.
const DEFAULT_TABLES: [&str; 6] =
    ["snapshots", "allocations", "edge_history", "qstr_history", "type_histogram", "free_run_histogram"];

/// Analyses `dir` both ways with `options`, and holds the tables the same.
fn same_both_ways(dir: &std::path::Path, options: &AnalyzeOptions, what: &str) {
    same_both_ways_with(dir, options, Flavor::CircuitPython3, what)
}

fn same_both_ways_with(dir: &std::path::Path, options: &AnalyzeOptions, flavor: Flavor, what: &str) {
    let inputs = heapvis::firmware::InputPaths::resolve(&[dir.to_path_buf()]).unwrap();
    let s = heapvis::pipeline::Session::open_with(&inputs, Some(flavor.profile())).unwrap();
    let (focused, whole) = (dir.join("focused"), dir.join("whole"));
    s.analyze(&focused, options, &Silent).unwrap();
    s.analyze(&whole, &AnalyzeOptions { full_decode: true, ..options.clone() }, &Silent).unwrap();
    assert_same_tables(&focused, &whole, &DEFAULT_TABLES, what);
    let _ = std::fs::remove_dir_all(&focused);
    let _ = std::fs::remove_dir_all(&whole);
}

#[test]
fn the_tables_are_those_of_whole_decodes() {
    for (board, n, seed) in [(Board::Samd21, 600, 3), (Board::Samd51, 300, 8)] {
        let c = capture(board, n, seed, 0);
        for run in [None, Some(5)] {
            let options = AnalyzeOptions { run, ..AnalyzeOptions::default() };
            same_both_ways(c.dir.path(), &options, &format!("{board:?} seed {seed} run {run:?}"));
        }
        // A shard: primed with the snapshot before it, finished with the one after.
        let options = AnalyzeOptions { selection: "100..250".parse().unwrap(), ..AnalyzeOptions::default() };
        same_both_ways(c.dir.path(), &options, &format!("{board:?} shard"));
        // Only some of the tables.
        let tables = TableSet { edge_history: false, qstr_history: false, ..TableSet::DEFAULT };
        let dir = c.dir.path();
        let s = session(&c.inputs);
        for full_decode in [false, true] {
            let options = AnalyzeOptions { tables, full_decode, ..AnalyzeOptions::default() };
            s.analyze(&dir.join(format!("some-{full_decode}")), &options, &Silent).unwrap();
        }
        let some = ["snapshots", "allocations", "type_histogram", "free_run_histogram"];
        assert_same_tables(&dir.join("some-false"), &dir.join("some-true"), &some, "some tables");
    }
}

#[test]
fn other_flavours_give_the_same_tables_too() {
    for flavor in [Flavor::MicroPython, Flavor::CircuitPython10, Flavor::MicroPython64] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SynthConfig::new(Board::Samd51, 120, 5);
        config.flavor = flavor;
        synth::write_dir(&config, dir.path()).unwrap();
        same_both_ways_with(dir.path(), &AnalyzeOptions::default(), flavor, &format!("{flavor:?}"));
    }
}

/// A capture whose snapshot k is snapshot k-1 with a few random writes: words
/// pointing at blocks or anywhere in the pool, allocation-table bytes, root
/// pointers outside the heap, now and then the VM's words; and writes aimed at
/// what one object's rows read of another: an object's type word pointed at a
/// class (or a class's at `type` or nothing), a dict's or instance's table, a
/// string's data, a function's bytecode, a module's globals.
fn mutated_capture(board: Board, n: u64, seed: u64) -> tempfile::TempDir {
    use heapvis::decode::Category;
    let dir = tempfile::tempdir().unwrap();
    synth::write_dir(&SynthConfig::new(board, 400, seed), dir.path()).unwrap();
    let inputs = heapvis::firmware::InputPaths::resolve(&[dir.path().to_path_buf()]).unwrap();
    let s = session(&inputs);
    let decoder = s.decoder(Default::default());
    let size = s.dump.snapshot_bytes() as usize;
    let mut snapshot = s.dump.snapshot(s.dump.count() - 1).unwrap().to_vec();
    let (g, _) = decoder.geometry_of(&snapshot).unwrap();
    let (ram_start, state, types, objects) =
        (s.firmware.ram_start, s.firmware.state_address, &s.firmware.types, &s.profile.objects);
    let offset = |address: u64| (address - ram_start) as usize;
    let word = |snapshot: &[u8], a: u64| u32::from_le_bytes(snapshot[offset(a)..offset(a) + 4].try_into().unwrap());
    // A module named through its globals (the simulator's have none): a heap
    // module's globals pointed at a dict whose table's first pair is
    // `__name__`'s from `__main__`'s table. Its name is then read two pointers
    // from the module, and renamed now and then below.
    let put =
        |snapshot: &mut Vec<u8>, a: u64, v: u32| snapshot[offset(a)..offset(a) + 4].copy_from_slice(&v.to_le_bytes());
    let blocks = decoder.decode(0, &snapshot).unwrap().blocks;
    let module = blocks.iter().find(|b| b.type_address == types.module).expect("a module").address;
    let dict = blocks.iter().find(|b| b.category == Category::Dict).expect("a dict").address;
    let table = word(&snapshot, dict + 4 * objects.dict_table_word as u64) as u64;
    let main_table = word(&snapshot, state + s.profile.state.dict_main_table) as u64;
    let main_pairs = blocks.iter().find(|b| b.address == main_table).expect("the main table").blocks * 2;
    let pair = |snapshot: &[u8], k: u64| (word(snapshot, main_table + 8 * k), word(snapshot, main_table + 8 * k + 4));
    let name_of_module = |snapshot: &[u8]| {
        decoder.decode(0, snapshot).unwrap().blocks.into_iter().find(|b| b.address == module).and_then(|b| b.name)
    };
    put(&mut snapshot, module + 4, dict as u32);
    let mut names = None;
    for k in 0..main_pairs {
        let (key, value) = pair(&snapshot, k);
        put(&mut snapshot, table, key);
        put(&mut snapshot, table + 4, value);
        if name_of_module(&snapshot).as_deref() == Some("__main__") {
            // Another name: the key of the pair after it (a qstr, like a name).
            names = Some((key, value, pair(&snapshot, (k + 1) % main_pairs).0));
            break;
        }
    }
    let (name_key, main_name, other_name) = names.expect("`__name__` in the main table");
    let mut state_rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state_rng ^= state_rng << 13;
        state_rng ^= state_rng >> 7;
        state_rng ^= state_rng << 17;
        state_rng
    };
    let pool = g.first;
    let blocks = (pool.pool_end - pool.pool_start) / 16;
    let mut ram = Vec::with_capacity(size * n as usize);
    for _ in 0..n {
        let report = decoder.decode(0, &snapshot).ok();
        let of_kind = |k: Option<Category>, r: u64| -> Option<(u64, u64)> {
            let b: Vec<_> = report.as_ref()?.blocks.iter().filter(|b| k.is_none_or(|k| b.category == k)).collect();
            let b = b.get((r % b.len().max(1) as u64) as usize)?;
            Some((b.address, b.blocks * 16))
        };
        // The module renamed every tenth snapshot (its links put back, should a
        // random write below have broken them).
        if (ram.len() / size).is_multiple_of(10) {
            let name = if (ram.len() / size).is_multiple_of(20) { main_name } else { other_name };
            put(&mut snapshot, module + 4, dict as u32);
            put(&mut snapshot, dict + 4 * objects.dict_table_word as u64, table as u32);
            put(&mut snapshot, table, name_key);
            put(&mut snapshot, table + 4, name);
        }
        let mut vm_poke = None;
        for _ in 0..1 + next() % 4 {
            let word_in = |lo: u64, hi: u64, r: u64| lo + (r % ((hi - lo) / 4)) * 4;
            let block = pool.pool_start + (next() % blocks) * 16;
            let (r1, r2) = (next(), next());
            let aimed = |k: Option<Category>, word: u32, to: Option<u64>| -> Option<(u64, u32)> {
                let (at, len) = of_kind(k, r1)?;
                (word as u64 * 4 + 4 <= len).then_some((at + word as u64 * 4, to? as u32))
            };
            let class = of_kind(Some(Category::Type), r2).map(|c| c.0);
            let write = match next() % 25 {
                // A pointer to a block, somewhere in the pool.
                0..=5 => Some((word_in(pool.pool_start, pool.pool_end, next()), block as u32)),
                // Noise in the pool.
                6..=7 => Some((word_in(pool.pool_start, pool.pool_end, next()), next() as u32)),
                // Allocation-table states: allocations come, go and change.
                8..=10 => {
                    let at = pool.alloc_table_start + next() % pool.alloc_table_bytes;
                    snapshot[offset(at)] = next() as u8;
                    None
                }
                // A root pointer below the heap, or above it.
                11 => Some((word_in(ram_start, g.heap_start, next()), block as u32)),
                12 => Some((word_in(pool.pool_end, ram_start + size as u64, next()), block as u32)),
                // The VM's state (the qstr pool chain, the main dict), in this
                // snapshot only.
                13 => {
                    vm_poke = Some((word_in(state, state + 64, next()), block as u32));
                    None
                }
                // Aimed: a type word at a class, a class's at `type` or nothing.
                14..=15 => aimed(None, 0, class),
                16 if r2 % 4 == 0 => {
                    aimed(Some(Category::Type), 0, if r2 % 8 == 0 { types.type_type } else { Some(0) })
                }
                // A dict's or an instance's table, a string's data, a bytecode.
                17 => aimed(Some(Category::Dict), objects.dict_table_word, Some(block)),
                18 => aimed(Some(Category::Instance), objects.instance_table_word, Some(block)),
                19 => aimed(Some(Category::Str), objects.str_data_word, Some(block)),
                20 => aimed(Some(Category::Str), objects.str_len_word, Some(r2 % 40)),
                21 => aimed(Some(Category::Function), objects.fun_bc_bytecode_word, Some(block)),
                // A module's globals, and what a dict's table holds.
                22 => aimed(Some(Category::Unknown), 1, of_kind(Some(Category::Dict), r2).map(|d| d.0)),
                // The values of a module's globals (its `__name__` among them),
                // two pointers from the module.
                23 if r2 % 2 == 0 => {
                    let word = |a: u64| word(&snapshot, a) as u64;
                    let blocks = report.as_ref().map(|r| &r.blocks[..]).unwrap_or(&[]);
                    let modules: Vec<_> = blocks.iter().filter(|b| b.type_address == types.module).collect();
                    let table = modules.get((r1 % modules.len().max(1) as u64) as usize).and_then(|m| {
                        let globals = word(m.address + 4);
                        let table = blocks.iter().find(|b| b.address == globals)?.address;
                        let table = word(table + 4 * objects.dict_table_word as u64);
                        blocks.iter().find(|b| b.address == table)
                    });
                    // Each value becomes the next pair's key (a qstr): a module
                    // named `__main__` gets another name.
                    if let Some(t) = table {
                        let pairs = t.blocks * 2;
                        let keys: Vec<u64> = (0..pairs).map(|k| word(t.address + 8 * ((k + 1) % pairs))).collect();
                        for (k, key) in keys.into_iter().enumerate() {
                            let o = offset(t.address + 8 * k as u64 + 4);
                            snapshot[o..o + 4].copy_from_slice(&(key as u32).to_le_bytes());
                        }
                    }
                    None
                }
                _ => aimed(Some(Category::MapTable), (r2 % 8) as u32, Some(block)),
            };
            if let Some((at, value)) = write {
                let o = offset(at);
                snapshot[o..o + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
        let at = ram.len();
        ram.extend_from_slice(&snapshot);
        if let Some((address, value)) = vm_poke {
            let o = at + offset(address);
            ram[o..o + 4].copy_from_slice(&u32::to_le_bytes(value));
        }
    }
    std::fs::write(dir.path().join("ram.bin"), ram).unwrap();
    dir
}

#[test]
fn random_changes_between_snapshots_give_the_same_tables() {
    for (board, seed) in [(Board::Samd21, 1), (Board::Samd21, 2), (Board::Samd51, 3)] {
        let dir = mutated_capture(board, 300, seed);
        for run in [None, Some(7)] {
            let options = AnalyzeOptions { run, ..AnalyzeOptions::default() };
            same_both_ways(dir.path(), &options, &format!("{board:?} mutated seed {seed} run {run:?}"));
        }
    }
}
