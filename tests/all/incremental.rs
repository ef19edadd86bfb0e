//! Decoding each snapshot from the one before (the default) gives byte for byte
//! the tables of decoding every snapshot whole (`full_decode`), the default
//! tables and `--per-snapshot`'s: on the simulator's captures, on every
//! firmware flavour, with short runs and with shards, and on captures whose
//! consecutive snapshots were changed at random (pointers, allocation-table
//! bits, roots, the VM's words) and on purpose (a module renamed through its
//! globals' table).

use heapvis::pipeline::{AnalyzeOptions, Silent};
use heapvis::synth::{self, Board, Flavor, SynthConfig, Workload};
use heapvis::tables::TableSet;

use crate::common::{assert_same_tables, capture, session};

/// The tables a default run writes.
const DEFAULT_TABLES: [&str; 7] =
    ["snapshots", "allocations", "edge_history", "qstr_history", "type_histogram", "free_run_histogram", "retainers"];

/// The tables `options` writes, less `symbols` (the build's, either way).
fn tables_written(options: &AnalyzeOptions) -> Vec<String> {
    options.tables.names().into_iter().filter(|t| t != "symbols").collect()
}

/// Analyses `dir` both ways with `options`, and holds the tables the same.
fn same_both_ways(dir: &std::path::Path, options: &AnalyzeOptions, what: &str) {
    same_both_ways_with(dir, options, Flavor::CircuitPython3, what);
}

/// [`same_both_ways`] for a capture of `flavor`; the share of snapshots decoded
/// from the one before.
fn same_both_ways_with(dir: &std::path::Path, options: &AnalyzeOptions, flavor: Flavor, what: &str) -> f64 {
    let (focused, whole) = (dir.join("focused"), dir.join("whole"));
    let share = analyze_both_ways(dir, options, flavor);
    let tables = tables_written(options);
    assert_same_tables(&focused, &whole, &tables.iter().map(String::as_str).collect::<Vec<_>>(), what);
    let _ = std::fs::remove_dir_all(&focused);
    let _ = std::fs::remove_dir_all(&whole);
    share
}

/// Analyses `dir` into `focused` with `options` and into `whole` with every
/// snapshot decoded whole; the share of snapshots the first decoded from the
/// one before.
fn analyze_both_ways(dir: &std::path::Path, options: &AnalyzeOptions, flavor: Flavor) -> f64 {
    let inputs = heapvis::firmware::InputPaths::resolve(&[dir.to_path_buf()]).unwrap();
    let s = heapvis::pipeline::Session::open_with(&inputs, Some(flavor.profile())).unwrap();
    let (focused, whole) = (dir.join("focused"), dir.join("whole"));
    let options = AnalyzeOptions { overwrite: true, ..options.clone() };
    let summary = s.analyze(&focused, &options, &Silent).unwrap();
    s.analyze(&whole, &AnalyzeOptions { full_decode: true, ..options }, &Silent).unwrap();
    summary.focused as f64 / summary.snapshots.max(1) as f64
}

/// Whether the tables of `a` and `b` differ in a byte.
fn tables_differ(a: &std::path::Path, b: &std::path::Path) -> bool {
    DEFAULT_TABLES.iter().any(|t| {
        let files = |d: &std::path::Path| -> Vec<Vec<u8>> {
            let mut f: Vec<_> =
                walk(&d.join(t)).into_iter().chain([d.join(format!("{t}.parquet"))]).filter(|p| p.is_file()).collect();
            f.sort();
            f.iter().map(|p| std::fs::read(p).unwrap()).collect()
        };
        files(a) != files(b)
    })
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir).map(|r| r.filter_map(|e| Some(e.ok()?.path())).collect()).unwrap_or_default()
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
        let options = AnalyzeOptions { tables: TableSet::ALL, ..options };
        same_both_ways(c.dir.path(), &options, &format!("{board:?} shard, every row"));
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

/// A worker takes consecutive runs together and carries its decoder from one
/// to the next: with runs of 5 snapshots, far more than 4 snapshots in 5 are
/// decoded from the one before (a decoder not carried over decodes each run's
/// first snapshot whole), on one thread and on several, and the tables are
/// still those of whole decodes.
#[test]
fn a_worker_carries_its_decoder_across_the_runs_it_takes() {
    let c = capture(Board::Samd51, 300, 8, 0);
    for threads in [1, 3] {
        let options = AnalyzeOptions { run: Some(5), threads: Some(threads), ..AnalyzeOptions::default() };
        let share = same_both_ways_with(c.dir.path(), &options, Flavor::CircuitPython3, &format!("{threads} threads"));
        assert!(share > 0.85, "{threads} threads: only {:.0} % decoded from the snapshot before", share * 100.0);
    }
}

/// Every layout decodes most snapshots of a busy heap from the one before, and
/// gives the tables of whole decodes: the default ones and every row of every
/// snapshot (`--per-snapshot`).
#[test]
fn every_layout_decodes_from_the_snapshot_before() {
    for flavor in [Flavor::CircuitPython3, Flavor::MicroPython, Flavor::CircuitPython10, Flavor::MicroPython64] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SynthConfig::new(Board::Samd51, 150, 5);
        (config.flavor, config.workload, config.start_after) = (flavor, Workload::Busy, 20_000);
        // With the stack pointers: the retention columns are the GC's own.
        config.events = true;
        synth::write_dir(&config, dir.path()).unwrap();
        for tables in [TableSet::DEFAULT, TableSet::ALL] {
            let options = AnalyzeOptions { tables, ..AnalyzeOptions::default() };
            let what = format!("{flavor:?}, {} tables", tables.names().len());
            let share = same_both_ways_with(dir.path(), &options, flavor, &what);
            assert!(share >= 0.9, "{what}: only {:.0} % of snapshots decoded from the one before", share * 100.0);
        }
    }
}

/// What the decoder reads of one allocation for another's rows, by purpose
/// (see `heapvis::decode::reads`), and what reads the qstr pools for all.
const CROSS_READS: [&str; 10] = [
    "instance's class",
    "module globals",
    "globals table",
    "bytecode",
    "function context",
    "module qstr table",
    "str length",
    "pointer target",
    "qstr data",
    "role target",
];

/// The tests above would fail if the decoder dropped a read: with each read
/// left unrecorded in turn, some mutated capture's tables differ from whole
/// decodes.
#[test]
fn a_dropped_read_is_caught() {
    let captures: Vec<_> = LAYOUTS
        .into_iter()
        .enumerate()
        .map(|(k, (flavor, workload, board))| {
            (flavor, mutated_capture(flavor, workload, board, 300, k as u64 + 1, true))
        })
        .collect();
    for site in CROSS_READS {
        // Without the edge tables too: an edge's target is a read of the
        // block it points into, and covers what else is read there.
        let no_edges = TableSet { edge_history: false, ..TableSet::DEFAULT };
        let caught = captures.iter().any(|(flavor, dir)| {
            [TableSet::DEFAULT, no_edges].into_iter().any(|tables| {
                let options =
                    AnalyzeOptions { drop_read: Some(site), run: Some(1000), tables, ..AnalyzeOptions::default() };
                analyze_both_ways(dir.path(), &options, *flavor);
                tables_differ(&dir.path().join("focused"), &dir.path().join("whole"))
            })
        });
        assert!(caught, "dropping the reads for `{site}` went unnoticed");
    }
}

/// Reads and writes of words of the target's size in a snapshot of its RAM.
struct Words {
    ram_start: u64,
    word: u64,
}

impl Words {
    fn at(&self, address: u64) -> std::ops::Range<usize> {
        let o = (address - self.ram_start) as usize;
        o..o + self.word as usize
    }
    fn get(&self, snapshot: &[u8], address: u64) -> u64 {
        snapshot[self.at(address)].iter().rev().fold(0, |v, b| v << 8 | *b as u64)
    }
    fn put(&self, snapshot: &mut [u8], address: u64, value: u64) {
        let r = self.at(address);
        snapshot[r.clone()].copy_from_slice(&value.to_le_bytes()[..r.len()]);
    }
}

/// A capture of `flavor` whose snapshot k is snapshot k-1 with a few random
/// writes: words pointing at blocks or anywhere in the pools, allocation-table
/// bytes, root pointers outside the heap, now and then the VM's words; and
/// writes aimed at what one object's rows read of another: an object's type
/// word pointed at a class (or a class's at `type` or nothing), a class's name,
/// a dict's or instance's table, a string's data and length, a function's
/// bytecode, a bytecode's prelude, a module's globals and their values, a
/// module's qstr table, the qstrs' texts. A `quiet` capture leaves alone what
/// every row reads (the VM's words, the qstr pools) but for a qstr's text now
/// and then: it is mostly decoded from the snapshot before.
pub(crate) fn mutated_capture(
    flavor: Flavor,
    workload: Workload,
    board: Board,
    n: u64,
    seed: u64,
    quiet: bool,
) -> tempfile::TempDir {
    use heapvis::decode::Category;
    let dir = tempfile::tempdir().unwrap();
    let mut config = SynthConfig::new(board, 400, seed);
    (config.flavor, config.workload) = (flavor, workload);
    synth::write_dir(&config, dir.path()).unwrap();
    let inputs = heapvis::firmware::InputPaths::resolve(&[dir.path().to_path_buf()]).unwrap();
    let s = heapvis::pipeline::Session::open_with(&inputs, Some(flavor.profile())).unwrap();
    let decoder = s.decoder(Default::default());
    let size = s.dump.snapshot_bytes() as usize;
    let mut snapshot = s.dump.snapshot(s.dump.count() - 1).unwrap().to_vec();
    let (g, _) = decoder.geometry_of(&snapshot).unwrap();
    let (ram_start, state, types, objects) =
        (s.firmware.ram_start, s.firmware.state_address, &s.firmware.types, &s.profile.objects);
    let w = Words { ram_start, word: s.profile.heap.word_bytes as u64 };
    let (word, bpb) = (w.word, g.bytes_per_block);
    let offset = |address: u64| (address - ram_start) as usize;
    // A module named through its globals: a heap module's globals pointed at a
    // dict whose table's first pair is `__name__`'s from `__main__`'s table. Its
    // name is then read two pointers from the module, and renamed now and then.
    let blocks = decoder.decode(0, &snapshot).unwrap().blocks;
    let module = blocks.iter().find(|b| b.type_address == types.module).expect("a module").address;
    let dict = blocks.iter().find(|b| b.category == Category::Dict).expect("a dict").address;
    let (globals_at, table_at) =
        (module + word * objects.module_globals_word as u64, dict + word * objects.dict_table_word as u64);
    let table = w.get(&snapshot, table_at);
    let main_table = w.get(&snapshot, state + s.profile.state.dict_main_table);
    let main_pairs = blocks.iter().find(|b| b.address == main_table).expect("the main table").blocks * bpb / (2 * word);
    let pair = |snapshot: &[u8], k: u64| {
        (w.get(snapshot, main_table + 2 * word * k), w.get(snapshot, main_table + 2 * word * k + word))
    };
    let name_of_module = |snapshot: &[u8]| {
        decoder.decode(0, snapshot).unwrap().blocks.into_iter().find(|b| b.address == module).and_then(|b| b.name)
    };
    w.put(&mut snapshot, globals_at, dict);
    let mut names = None;
    for k in 0..main_pairs {
        let (key, value) = pair(&snapshot, k);
        w.put(&mut snapshot, table, key);
        w.put(&mut snapshot, table + word, value);
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
    let areas: Vec<_> = g.areas().collect();
    let mut ram = Vec::with_capacity(size * n as usize);
    for _ in 0..n {
        let report = decoder.decode(0, &snapshot).ok();
        let rows = report.as_ref().map(|r| &r.blocks[..]).unwrap_or(&[]);
        let pick = |f: &dyn Fn(&heapvis::decode::BlockRow) -> bool, r: u64| -> Option<(u64, u64)> {
            let b: Vec<_> = rows.iter().filter(|b| f(b)).collect();
            let b = b.get((r % b.len().max(1) as u64) as usize)?;
            Some((b.address, b.blocks * bpb))
        };
        let of_kind = |k: Option<Category>, r: u64| pick(&|b| k.is_none_or(|k| b.category == k), r);
        // The module renamed every tenth snapshot (its links put back, should a
        // random write below have broken them).
        if (ram.len() / size).is_multiple_of(10) {
            let name = if (ram.len() / size).is_multiple_of(20) { main_name } else { other_name };
            w.put(&mut snapshot, globals_at, dict);
            w.put(&mut snapshot, table_at, table);
            w.put(&mut snapshot, table, name_key);
            w.put(&mut snapshot, table + word, name);
        }
        let (mut vm_poke, mut poke) = (None, None);
        for _ in 0..1 + next() % 4 {
            let word_in = |lo: u64, hi: u64, r: u64| lo + (r % ((hi - lo) / word)) * word;
            let pool = &areas[(next() % areas.len() as u64) as usize];
            let block = pool.pool_start + (next() % ((pool.pool_end - pool.pool_start) / bpb)) * bpb;
            let (roll, r1, r2) = (next() % 31, next(), next());
            // Blocks of the qstr pools and of their texts, which every row reads.
            let global = |at: u64| {
                rows.iter().any(|b| {
                    (b.kind == "qstr_pool" || b.kind == "qstr_chunk")
                        && (b.address..b.address + b.blocks * bpb).contains(&at)
                })
            };
            let pool_word = word_in(pool.pool_start, pool.pool_end, next());
            if quiet && (global(pool_word) || matches!(roll, 13 | 28) || (roll == 27 && r2 % 3 != 0)) {
                continue;
            }
            let aimed = |k: Option<Category>, at_word: u64, to: Option<u64>| -> Option<(u64, u64)> {
                let (at, len) = of_kind(k, r1)?;
                (at_word * word + word <= len).then_some((at + at_word * word, to?))
            };
            let class = of_kind(Some(Category::Type), r2).map(|c| c.0);
            let write = match roll {
                // A pointer to a block, somewhere in a pool.
                0..=5 => Some((pool_word, block)),
                // Noise in a pool.
                6..=7 => Some((pool_word, next() & 0xffff_ffff)),
                // Allocations come, go and shrink, as a GC would leave them (a
                // table a GC could not leave is flagged, and tested elsewhere).
                8..=10 => {
                    let b = (next() % ((pool.pool_end - pool.pool_start) / bpb)) as usize;
                    let state = |snapshot: &[u8], b: usize| {
                        snapshot[offset(pool.alloc_table_start) + b / 4] >> (2 * (b % 4)) & 3
                    };
                    let set = |snapshot: &mut Vec<u8>, b: usize, v: u8| {
                        let at = offset(pool.alloc_table_start) + b / 4;
                        snapshot[at] = snapshot[at] & !(3 << (2 * (b % 4))) | v << (2 * (b % 4));
                    };
                    let blocks = ((pool.pool_end - pool.pool_start) / bpb) as usize;
                    let extent = |snapshot: &[u8], b: usize| {
                        (b + 1..blocks).take_while(|&t| state(snapshot, t) == 2).last().unwrap_or(b)
                    };
                    match (state(&snapshot, b), r2 % 3) {
                        // A head: freed whole, or its last block.
                        (1, 0) => (b..=extent(&snapshot, b)).for_each(|t| set(&mut snapshot, t, 0)),
                        (1, 1) => {
                            let e = extent(&snapshot, b);
                            if e > b {
                                set(&mut snapshot, e, 0)
                            }
                        }
                        // A free block: an allocation of a few free blocks.
                        (0, _) => {
                            set(&mut snapshot, b, 1);
                            let tail: Vec<usize> = (b + 1..blocks)
                                .take((r2 % 4) as usize)
                                .take_while(|&t| state(&snapshot, t) == 0)
                                .collect();
                            tail.into_iter().for_each(|t| set(&mut snapshot, t, 2));
                        }
                        _ => {}
                    }
                    None
                }
                // A root pointer below the heap, or above it.
                11 => Some((word_in(ram_start, g.heap_start, next()), block)),
                12 => Some((word_in(g.first.pool_end, ram_start + size as u64, next()), block)),
                // The VM's state (the qstr pool chain, the main dict), or a byte
                // of an allocation table, in this snapshot only.
                13 => {
                    vm_poke = Some((word_in(state, state + 16 * word, next()), block));
                    None
                }
                28 if r2 % 4 == 0 => {
                    poke = Some(pool.alloc_table_start + next() % pool.alloc_table_bytes);
                    None
                }
                // Aimed: a type word at a class, a class's at `type` or nothing.
                14..=15 => aimed(None, 0, class),
                16 => aimed(Some(Category::Type), 0, if r2 % 2 == 0 { types.type_type } else { Some(0) }),
                // A dict's or an instance's table, a string's data and length, a bytecode.
                17 => aimed(Some(Category::Dict), objects.dict_table_word as u64, Some(block)),
                18 => aimed(Some(Category::Instance), objects.instance_table_word as u64, Some(block)),
                19 => aimed(Some(Category::Str), objects.str_data_word as u64, Some(block)),
                20 => aimed(Some(Category::Str), objects.str_len_word as u64, Some(r2 % 40)),
                21 => aimed(Some(Category::Function), objects.fun_bc_bytecode_word as u64, Some(block)),
                // A module's globals, and what a dict's table holds.
                22 => aimed(
                    Some(Category::Unknown),
                    objects.module_globals_word as u64,
                    of_kind(Some(Category::Dict), r2).map(|d| d.0),
                ),
                // The values of a module's globals (its `__name__` among them),
                // two pointers from the module: each becomes the next pair's key.
                23 if r2 % 2 == 0 => {
                    let globals_table =
                        rows.iter().filter(|b| b.type_address == types.module).nth((r1 % 8) as usize).and_then(|m| {
                            let globals = w.get(&snapshot, m.address + word * objects.module_globals_word as u64);
                            let table = rows.iter().find(|b| b.address == globals)?.address;
                            let table = w.get(&snapshot, table + word * objects.dict_table_word as u64);
                            rows.iter().find(|b| b.address == table)
                        });
                    if let Some(t) = globals_table {
                        let pairs = t.blocks * bpb / (2 * word);
                        let keys: Vec<u64> =
                            (0..pairs).map(|k| w.get(&snapshot, t.address + 2 * word * ((k + 1) % pairs))).collect();
                        for (k, key) in keys.into_iter().enumerate() {
                            w.put(&mut snapshot, t.address + 2 * word * k as u64 + word, key);
                        }
                    }
                    None
                }
                // A class's name: another class's.
                24 => {
                    let (o, len) = (objects.type_name_offset as u64, objects.type_name_bytes as usize);
                    if let (Some((a, _)), Some((b, _))) =
                        (of_kind(Some(Category::Type), r1), of_kind(Some(Category::Type), r2))
                    {
                        let name = snapshot[offset(b + o)..offset(b + o) + len].to_vec();
                        snapshot[offset(a + o)..offset(a + o) + len].copy_from_slice(&name);
                    }
                    None
                }
                // A byte of a bytecode's prelude, of a module's qstr table, of a
                // qstr's text.
                25..=27 => {
                    let kind = ["bytecode", "qstr_table", "qstr_chunk"][(roll - 25) as usize];
                    if let Some((at, len)) = pick(&|b| b.kind == kind, r1) {
                        let at = at + r2 % len.min(if kind == "bytecode" { 12 } else { len });
                        snapshot[offset(at)] =
                            if kind == "qstr_table" { (r2 >> 8) as u8 % 32 } else { b'a' + (r2 >> 8) as u8 % 26 };
                    }
                    None
                }
                // What an object's first word points at made a class (its
                // pointers become instances of it), or no longer one.
                29 => of_kind(None, r1).and_then(|(o, _)| {
                    let target = rows.iter().find(|b| b.address == w.get(&snapshot, o))?;
                    Some((target.address, if r2 % 2 == 0 { types.type_type? } else { 0 }))
                }),
                _ => aimed(Some(Category::MapTable), r2 % 8, Some(block)),
            };
            if let Some((at, value)) = write {
                w.put(&mut snapshot, at, value);
            }
        }
        let at = ram.len();
        ram.extend_from_slice(&snapshot);
        if let Some((address, value)) = vm_poke {
            w.put(&mut ram[at..at + size], address, value);
        }
        if let Some(address) = poke {
            ram[at + offset(address)] = next() as u8;
        }
    }
    std::fs::write(dir.path().join("ram.bin"), ram).unwrap();
    dir
}

/// Every layout, its heap as the simulator leaves it: light on the small
/// board, busy (thousands of objects, instances and strings) on the big one.
pub(crate) const LAYOUTS: [(Flavor, Workload, Board); 5] = [
    (Flavor::CircuitPython3, Workload::Light, Board::Samd21),
    (Flavor::CircuitPython3, Workload::Busy, Board::Samd21),
    (Flavor::MicroPython, Workload::Busy, Board::Samd21),
    (Flavor::MicroPython64, Workload::Busy, Board::Samd21),
    (Flavor::CircuitPython10, Workload::Busy, Board::Samd51),
];

#[test]
fn random_changes_between_snapshots_give_the_same_tables() {
    for (k, (flavor, workload, board)) in LAYOUTS.into_iter().enumerate() {
        let dir = mutated_capture(flavor, workload, board, 200, k as u64 + 1, false);
        for (run, tables) in [(None, TableSet::DEFAULT), (Some(7), TableSet::DEFAULT), (None, TableSet::ALL)] {
            let options = AnalyzeOptions { run, tables, ..AnalyzeOptions::default() };
            let what = format!("{flavor:?} {workload:?} mutated, run {run:?}, {} tables", tables.names().len());
            same_both_ways_with(dir.path(), &options, flavor, &what);
        }
    }
}
