//! The layout profile derived from DWARF: from the CircuitPython 3.0 structs it is
//! exactly the reference's hand-written offsets; on 64-bit it is what the compiler
//! itself says; an ELF with debug info needs no profile; `heapvis profile`'s TOML
//! reads back to the same tables.

use std::path::Path;
use std::process::Command;

use heapvis::firmware::dwarf::derive_profile;
use heapvis::firmware::{FirmwareFiles, InputPaths};
use heapvis::pipeline::{AnalyzeOptions, ProfileSource, Session, Silent};
use heapvis::profile::Profile;
use heapvis::synth::Board;
use heapvis::tables::TableSet;

use crate::common::{capture, repo, session};
use crate::elf::link_elf_with_dwarf;

/// Builds the CircuitPython 3.0 structs (tests/support/mp_layout.c) with gcc.
fn compile(dir: &std::path::Path, args: &[&str], out: &str) -> std::path::PathBuf {
    compile_file(dir, "tests/support/mp_layout.c", args, out)
}

/// Builds one of tests/support/*.c with gcc; returns the output's path.
fn compile_file(dir: &std::path::Path, source: &str, args: &[&str], out: &str) -> std::path::PathBuf {
    let src = repo().join(source);
    let o = Command::new("gcc").current_dir(dir).args(args).arg(&src).arg("-o").arg(out).output().expect("gcc");
    assert!(o.status.success(), "gcc {args:?} {source}: {}", String::from_utf8_lossy(&o.stderr));
    dir.join(out)
}

#[test]
fn the_reference_structs_give_the_reference_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let obj = compile(dir.path(), &["-m32", "-g", "-c"], "l32.o");
    let d = derive_profile(&std::fs::read(&obj).unwrap(), &obj, &Profile::default()).unwrap();
    // Every word of mp_state_ctx gets its member path; the reference's root names
    // are among them, at the reference's offsets.
    let derived_names = d.profile.state_root_names();
    for (offset, name) in Profile::default().state_root_names() {
        assert!(derived_names.contains(&(offset, name.clone())), "{name} at {offset}");
    }
    let mut derived = d.profile.clone();
    derived.state.root_names.clear();
    let expected = Profile { name: d.profile.name.clone(), ..Profile::default() };
    assert_eq!(derived, expected, "DWARF of the 619b0ec164 structs = the reference's figures");
    assert!(d.missing.is_empty(), "{:?}", d.missing);
}

#[test]
fn on_64_bit_the_offsets_are_the_compilers() {
    let dir = tempfile::tempdir().unwrap();
    // A linked program: its DWARF needs no relocation processing (a 64-bit .o keeps
    // its string offsets in RELA relocations).
    let exe = compile(dir.path(), &["-g", "-DPRINT_OFFSETS"], "offsets");
    let obj = exe.clone();
    let out = Command::new(&exe).output().unwrap();
    let n: Vec<u64> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(|v| v.parse().unwrap()).collect();
    let d = derive_profile(&std::fs::read(&obj).unwrap(), &obj, &Profile::default()).unwrap();
    let p = &d.profile;
    let w = n[0];
    assert_eq!(p.heap.word_bytes as u64, w);
    assert_eq!(
        (
            p.state.last_pool,
            p.state.dict_main_table,
            p.state.loaded_modules_table,
            p.state.sys_path_items,
            p.state.readline_hist
        ),
        (n[1], n[2], n[3], n[4], Some(n[5]))
    );
    let o = &p.objects;
    assert_eq!((o.type_name_offset as u64, o.type_name_bytes as u64), (n[6], w));
    let words =
        [o.str_len_word, o.str_data_word, o.instance_table_word, o.fun_bc_bytecode_word, o.qstr_pool_header_words];
    assert_eq!(words.map(|x| x as u64 * w).to_vec(), n[7..12].to_vec());
}

#[test]
fn an_elf_with_debug_info_needs_no_profile() {
    let c = capture(Board::Samd21, 120, 18, 0);
    link_elf_with_dwarf(c.dir.path());
    let inputs =
        InputPaths { ram: c.inputs.ram.clone(), firmware: FirmwareFiles::Elf(c.dir.path().join("firmware.elf")) };
    let s = Session::open_with(&inputs, None).unwrap();
    assert!(
        matches!(&s.profile_source, ProfileSource::Dwarf { missing } if missing.is_empty()),
        "{:?}",
        s.profile_source
    );
    let options = AnalyzeOptions { tables: TableSet::ALL, ..AnalyzeOptions::default() };
    let (a, b) = (c.dir.path().join("map"), c.dir.path().join("elf"));
    session(&c.inputs).analyze(&a, &options, &Silent).unwrap();
    s.analyze(&b, &options, &Silent).unwrap();
    // The same tables, except that DWARF names every word of mp_state_ctx: roots
    // the reference left as `mp_state_ctx+N` now have their member path.
    let same: Vec<&str> = crate::common::DECODED_TABLES.iter().copied().filter(|t| !t.starts_with("edge")).collect();
    crate::common::assert_same_tables(&a, &b, &same, "DWARF-derived vs default profile");
    let sql = format!(
        "select count(*), count(*) filter (where a.root_name is distinct from b.root_name), \
         count(*) filter (where a.root_name is distinct from b.root_name and a.root_name not like 'mp_state_ctx+%'), \
         count(*) filter (where b.root_name = 'mp_state_ctx.mem.gc_pool_start') \
         from '{{d}}/edges/*.parquet' a positional join '{}/edges/*.parquet' b \
         where a.to_address = b.to_address and a.root_address is not distinct from b.root_address",
        b.display()
    );
    let rows = crate::common::duck(&sql, &a);
    let n = |i: usize| rows[0][i].as_u64().unwrap();
    let edges_a = crate::common::duck("select count(*) from '{d}/edges/*.parquet'", &a)[0][0].as_u64().unwrap();
    assert_eq!(n(0), edges_a, "every edge pairs up");
    assert!(n(1) > 0, "some roots got their member path");
    assert_eq!(n(2), 0, "only roots the reference left unnamed were renamed");
    assert!(n(3) > 0, "the GC state's pool_start word is named");
}

#[test]
fn printed_profiles_read_back_to_identical_tables() {
    let c = capture(Board::Samd21, 80, 19, 0);
    link_elf_with_dwarf(c.dir.path());
    let bin = env!("CARGO_BIN_EXE_heapvis");
    let dir = c.dir.path().to_str().unwrap();
    for (k, (source, inputs)) in [
        (None, vec![dir.to_string()]),
        (Some(format!("{dir}/firmware.elf")), vec![format!("{dir}/ram.bin"), format!("{dir}/firmware.elf")]),
    ]
    .into_iter()
    .enumerate()
    {
        let printed = Command::new(bin).arg("profile").args(source.iter()).output().unwrap();
        assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
        let toml = c.dir.path().join("p.toml");
        std::fs::write(&toml, &printed.stdout).unwrap();
        let run = |out: &str, extra: &[&str]| {
            let o = Command::new(bin)
                .arg("analyze")
                .args(&inputs)
                .args(["-q", "--per-snapshot", "-o", out])
                .args(extra)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        };
        // A folder per firmware input: one folder takes the tables of one build.
        let (x, y) = (format!("{dir}/without{k}"), format!("{dir}/with{k}"));
        run(&x, &[]);
        run(&y, &["--profile", toml.to_str().unwrap()]);
        let what = format!("the printed profile ({source:?}) does not read back to the same tables");
        let tables = ["snapshots", "blocks", "edges", "allocations"];
        crate::common::assert_same_tables(Path::new(&x), Path::new(&y), &tables, &what);
    }
}

/// A current MicroPython's structs: the GC state in `mem.area`, the gap byte, the
/// weakref table, qstr pools with hashes and lengths in arrays.
#[test]
fn current_micropython_structs_give_area_offsets_and_array_pools() {
    let dir = tempfile::tempdir().unwrap();
    let exe = compile_file(dir.path(), "tests/support/mp_layout_v1_2x.c", &["-g", "-DPRINT_OFFSETS"], "v1");
    let out = Command::new(&exe).output().unwrap();
    let n: Vec<u64> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(|v| v.parse().unwrap()).collect();
    let d = derive_profile(&std::fs::read(&exe).unwrap(), &exe, &Profile::default()).unwrap();
    let p = &d.profile;
    let gc = &p.state.gc;
    assert!(gc.read);
    assert_eq!(
        (
            gc.alloc_table_start,
            gc.alloc_table_byte_len,
            gc.finaliser_table_start,
            gc.pool_start,
            gc.pool_end,
            p.state.last_pool
        ),
        (n[0], n[1], n[2], n[3], n[4], n[5])
    );
    let w = n[6];
    assert_eq!(p.heap.alloc_table_gap_bytes, 1);
    assert_eq!(p.heap.blocks_per_wtb, 8);
    assert_eq!(p.qstr.pool_format, heapvis::profile::QstrPoolFormat::Arrays);
    assert_eq!((p.qstr.hashes_word.map(|x| x as u64 * w), p.qstr.lengths_word as u64 * w), (Some(n[7]), n[8]));
    assert_eq!(p.objects.qstr_pool_header_words as u64 * w, n[9]);
    assert_eq!((p.qstr.hash_bytes, p.qstr.len_bytes), (1, 1));
    // The type's name is a uint16_t after the 16-bit flags.
    assert_eq!((p.objects.type_name_offset as u64, p.objects.type_name_bytes), (n[10], 2));
}

/// The shipped profile for the simulated MicroPython is the DWARF of its structs
/// plus the three things debug info cannot tell.
#[test]
fn the_micropython_profile_is_its_dwarf_plus_what_dwarf_cannot_tell() {
    let dir = tempfile::tempdir().unwrap();
    let obj = compile_file(dir.path(), "tests/support/mp_layout_v1_2x.c", &["-m32", "-g", "-c"], "v.o");
    let mut derived = derive_profile(&std::fs::read(&obj).unwrap(), &obj, &Profile::default()).unwrap().profile;
    let expected = heapvis::synth::Flavor::MicroPython.profile();
    derived.name = expected.name.clone();
    derived.object_repr = heapvis::profile::ObjectRepr::A;
    derived.symbols.ram_start = "_sdata".into();
    derived.objects.bytecode_qstr_bytes = 0;
    derived.types.mem_info_address_digits = 8;
    assert_eq!(derived, expected);
}

/// Simulates `flavor`, links an ELF with the DWARF of `structs`, and opens it with
/// no profile; checks the derived session decodes to the same tables as the shipped
/// profile, and returns the session and the folder of its tables.
fn elf_session_matches_shipped(
    flavor: heapvis::synth::Flavor,
    structs: &str,
    snapshots: u64,
    seed: u64,
    dir: &std::path::Path,
) -> (Session, std::path::PathBuf) {
    let mut config = heapvis::synth::SynthConfig::new(Board::Samd21, snapshots, seed);
    config.flavor = flavor;
    config.heap_misalign = 0;
    heapvis::synth::write_dir(&config, dir).unwrap();
    let bits = if flavor.word_bytes() == 8 { 64 } else { 32 };
    crate::elf::link_elf_with_dwarf_bits(dir, structs, bits);
    let elf = InputPaths { ram: dir.join("ram.bin"), firmware: FirmwareFiles::Elf(dir.join("firmware.elf")) };
    let s = Session::open_with(&elf, None).unwrap();
    let with_profile = InputPaths::resolve(&[dir.to_path_buf()]).unwrap();
    let shipped = Session::open(&with_profile, flavor.profile()).unwrap();
    let options = AnalyzeOptions { tables: TableSet::ALL, ..AnalyzeOptions::default() };
    let (a, b) = (dir.join("shipped"), dir.join("derived"));
    shipped.analyze(&a, &options, &Silent).unwrap();
    s.analyze(&b, &options, &Silent).unwrap();
    crate::common::assert_same_tables(&a, &b, &crate::common::DECODED_TABLES, "shipped vs derived profile");
    (s, b)
}

/// A current MicroPython's ELF with debug info needs no profile either: DWARF gives
/// the layout, the symbol table the RAM symbol, and the heap the representation.
#[test]
fn a_micropython_elf_with_debug_info_needs_no_profile() {
    let dir = tempfile::tempdir().unwrap();
    let flavor = heapvis::synth::Flavor::MicroPython;
    let (s, _) = elf_session_matches_shipped(flavor, "tests/support/mp_layout_v1_2x.c", 150, 25, dir.path());
    assert_eq!(s.profile.object_repr, heapvis::profile::ObjectRepr::A);
}

/// A current CircuitPython's structs: a split heap (`mem.area.next` first in the
/// area) and the collect table, checked against the compiler's own offsets.
#[test]
fn current_circuitpython_structs_give_the_split_heap_and_collect_table() {
    let dir = tempfile::tempdir().unwrap();
    let exe = compile_file(dir.path(), "tests/support/cp_layout_v10.c", &["-g", "-DPRINT_OFFSETS"], "cp10");
    let out = Command::new(&exe).output().unwrap();
    let n: Vec<u64> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(|v| v.parse().unwrap()).collect();
    let d = derive_profile(&std::fs::read(&exe).unwrap(), &exe, &Profile::default()).unwrap();
    let p = &d.profile;
    let gc = &p.state.gc;
    assert_eq!(
        (
            gc.next,
            gc.alloc_table_start,
            gc.alloc_table_byte_len,
            gc.finaliser_table_start,
            gc.collect_table_start,
            gc.pool_start,
            gc.pool_end
        ),
        (Some(n[0]), n[1], n[2], n[3], Some(n[4]), n[5], n[6])
    );
    assert_eq!((p.heap.blocks_per_ctb, p.heap.blocks_per_wtb, p.heap.alloc_table_gap_bytes), (8, 0, 1));
    assert_eq!(p.state.last_pool, n[8]);
    // The other fields sit at the same distance from `next` in every area.
    assert!(p.validate().is_ok());
}

/// The shipped profile for the simulated CircuitPython 10 is the DWARF of its
/// structs plus representation C and no names in bytecode.
#[test]
fn the_circuitpython_10_profile_is_its_dwarf_plus_what_dwarf_cannot_tell() {
    let dir = tempfile::tempdir().unwrap();
    let obj = compile_file(dir.path(), "tests/support/cp_layout_v10.c", &["-m32", "-g", "-c"], "v.o");
    let mut derived = derive_profile(&std::fs::read(&obj).unwrap(), &obj, &Profile::default()).unwrap().profile;
    let expected = heapvis::synth::Flavor::CircuitPython10.profile();
    derived.name = expected.name.clone();
    assert_eq!(derived.object_repr, heapvis::profile::ObjectRepr::C);
    assert_eq!(derived, expected);
}

/// A current CircuitPython's ELF with debug info needs no profile: the split heap
/// and its collect tables come from DWARF, the representation from the heap.
#[test]
fn a_circuitpython_10_elf_with_debug_info_needs_no_profile() {
    let dir = tempfile::tempdir().unwrap();
    let flavor = heapvis::synth::Flavor::CircuitPython10;
    let (s, tables) = elf_session_matches_shipped(flavor, "tests/support/cp_layout_v10.c", 200, 27, dir.path());
    assert_eq!(s.profile.object_repr, heapvis::profile::ObjectRepr::C);
    assert_eq!(s.profile.state.gc.next, Some(168));
    // Every snapshot's geometry came from the GC state, with both areas.
    let areas = crate::common::duck(
        "select count(*) from '{d}/snapshots/*.parquet' where geometry_source = 'gc_state' and heap_areas = 2",
        &tables,
    );
    assert_eq!(areas, vec![vec![serde_json::json!(200)]]);
}

/// NaN boxing (representation D) is the one representation DWARF shows: a 64-bit
/// `mp_obj_t` on a 32-bit port. The derived profile says so, and is not then
/// second-guessed from the heap.
#[test]
fn a_64_bit_mp_obj_t_on_a_32_bit_port_is_representation_d() {
    let dir = tempfile::tempdir().unwrap();
    for (define, repr) in [("-DNANBOX", heapvis::profile::ObjectRepr::D), ("-DPLAIN", heapvis::profile::ObjectRepr::C)]
    {
        let obj = compile_file(dir.path(), "tests/support/mp_layout_v1_2x.c", &["-m32", "-g", "-c", define], "v.o");
        let d = derive_profile(&std::fs::read(&obj).unwrap(), &obj, &Profile::default()).unwrap();
        assert_eq!(d.profile.object_repr, repr, "{define}");
        assert_eq!(d.profile.obj_bytes(), if repr == heapvis::profile::ObjectRepr::D { 8 } else { 4 });
    }
}

/// In a real build each unit's DWARF describes only the types it uses: the unit
/// defining `mp_state_ctx_t` need not have `mp_obj_str_t` or `mp_obj_fun_bc_t`.
/// Those are found in the other units, and the profile is the same as from one
/// unit holding everything.
#[test]
fn structs_are_found_in_whichever_unit_describes_them() {
    let dir = tempfile::tempdir().unwrap();
    for (define, out) in [("-DSTATE_ONLY", "state.o"), ("-DOBJECTS_ONLY", "objects.o"), ("-DBOTH", "one.o")] {
        compile_file(dir.path(), "tests/support/mp_layout_v1_2x.c", &["-m32", "-g", "-c", define], out);
    }
    let o = Command::new("ld")
        .current_dir(dir.path())
        .args(["-m", "elf_i386", "-e", "0", "-o", "two_units", "state.o", "objects.o"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let derive = |name: &str| {
        let path = dir.path().join(name);
        derive_profile(&std::fs::read(&path).unwrap(), &path, &Profile::default()).unwrap()
    };
    let (two, one) = (derive("two_units"), derive("one.o"));
    assert!(two.missing.iter().all(|m| !m.starts_with("objects.")), "{:?}", two.missing);
    assert_eq!(two.profile.objects, one.profile.objects);
    assert_eq!(Profile { name: one.profile.name.clone(), ..two.profile }, one.profile);
}

/// The profile derived from a real MicroPython build (ports/qemu, nRF51; see its
/// header and the README): it reads, and its derived parts agree with each other
/// (every offset the decoder uses is the member path DWARF names there).
#[test]
fn the_real_micropython_build_profile_is_consistent() {
    let path = repo().join("data/profiles/micropython-1.29-qemu-microbit.toml");
    let p = Profile::from_toml_file(&path).unwrap();
    assert_eq!(
        (p.heap.word_bytes, p.heap.alloc_table_gap_bytes, p.object_repr),
        (4, 1, heapvis::profile::ObjectRepr::A)
    );
    assert_eq!(p.objects.bytecode_prelude, heapvis::profile::BytecodePrelude::Packed);
    assert_eq!((p.symbols.ram_start.as_str(), p.symbols.flash_start.as_str()), ("_sdata", "isr_vector"));
    let at = |name: &str| p.state.root_names.get(name).copied();
    assert_eq!(at("vm.last_pool"), Some(p.state.last_pool));
    assert_eq!(at("vm.dict_main.map.table"), Some(p.state.dict_main_table));
    assert_eq!(at("vm.mp_loaded_modules_dict.map.table"), Some(p.state.loaded_modules_table));
    assert_eq!(at("mem.area.gc_alloc_table_start"), Some(p.state.gc.alloc_table_start));
    assert_eq!(at("mem.area.gc_pool_end"), Some(p.state.gc.pool_end));
    assert_eq!(at("vm.readline_hist[0]"), p.state.readline_hist);
}

/// A 1.9 build's fixed prelude stores the name in two bytes only with persistent
/// code (its loader is in the symbol table, as in CircuitPython 3), else as a
/// base-128 uint (MicroPython 1.9 on most ports).
#[test]
fn fixed_prelude_names_follow_persistent_code() {
    let dir = tempfile::tempdir().unwrap();
    for (args, expected) in [(vec!["-m32", "-g", "-c"], 2), (vec!["-m32", "-g", "-c", "-DNO_PERSISTENT_CODE"], 0)] {
        let obj = compile(dir.path(), &args, "p.o");
        let d = derive_profile(&std::fs::read(&obj).unwrap(), &obj, &Profile::default()).unwrap();
        assert_eq!(d.profile.objects.bytecode_qstr_bytes, expected, "{args:?}");
    }
}

/// The shipped 64-bit MicroPython profile is the DWARF of the same structs built
/// for x86-64 (a linked program: a 64-bit object keeps its DWARF strings in
/// relocations), plus representation A and the RAM symbol; blocks are 32 bytes.
#[test]
fn the_64_bit_micropython_profile_is_its_dwarf_plus_what_dwarf_cannot_tell() {
    let dir = tempfile::tempdir().unwrap();
    let exe = compile_file(dir.path(), "tests/support/mp_layout_v1_2x.c", &["-g", "-DPRINT_OFFSETS"], "mp64");
    let mut derived = derive_profile(&std::fs::read(&exe).unwrap(), &exe, &Profile::default()).unwrap().profile;
    let expected = heapvis::synth::Flavor::MicroPython64.profile();
    assert_eq!((derived.heap.word_bytes, derived.heap.bytes_per_block), (8, 32));
    derived.name = expected.name.clone();
    derived.object_repr = heapvis::profile::ObjectRepr::A;
    derived.symbols.ram_start = "_sdata".into();
    // A derived profile names only symbols the build has: this program has no
    // `_sfixed` (nor `isr_vector`, `_stext`), so its flash starts at its first
    // loadable section, given as an address; the simulator's map has `_sfixed`.
    let first_section = derived.symbols.flash_start.clone();
    assert!(heapvis::firmware::parse_address(&first_section).is_some(), "{first_section}");
    derived.symbols.flash_start = expected.symbols.flash_start.clone();
    assert_eq!(derived, expected);
}

/// A 64-bit MicroPython's ELF with debug info needs no profile: 8-byte words from
/// the ELF, 32-byte blocks from MicroPython's default, the rest from DWARF.
#[test]
fn a_64_bit_micropython_elf_with_debug_info_needs_no_profile() {
    let dir = tempfile::tempdir().unwrap();
    let flavor = heapvis::synth::Flavor::MicroPython64;
    let (s, _) = elf_session_matches_shipped(flavor, "tests/support/mp_layout_v1_2x.c", 150, 26, dir.path());
    assert_eq!((s.profile.heap.word_bytes, s.profile.heap.bytes_per_block), (8, 32));
    assert_eq!(s.profile.object_repr, heapvis::profile::ObjectRepr::A);
}

/// The profile derived from a real CircuitPython 10.1 build (the unix port's
/// coverage variant; see its header and the README): a 64-bit split heap with the
/// collect table, CircuitPython's `0x` before `%p`, its offsets agreeing with the
/// member paths DWARF names.
#[test]
fn the_real_circuitpython_build_profile_is_consistent() {
    let path = repo().join("data/profiles/circuitpython-10.1-unix-coverage-x64.toml");
    let p = Profile::from_toml_file(&path).unwrap();
    assert_eq!((p.heap.word_bytes, p.heap.bytes_per_block, p.heap.blocks_per_ctb), (8, 32, 8));
    assert_eq!(p.types.mem_info_pointer_prefix, "0x");
    let gc = &p.state.gc;
    let at = |name: &str| p.state.root_names.get(name).copied();
    assert_eq!(at("mem.area.next"), gc.next);
    assert_eq!(at("mem.area.gc_collect_table_start"), gc.collect_table_start);
    assert_eq!(at("mem.area.gc_alloc_table_start"), Some(gc.alloc_table_start));
    assert_eq!(at("mem.area.gc_pool_start"), Some(gc.pool_start));
    assert_eq!(at("vm.last_pool"), Some(p.state.last_pool));
    assert_eq!(at("vm.dict_main.map.table"), Some(p.state.dict_main_table));
}

/// CircuitPython (7 and later) prints `%p` with `0x`: the CircuitPython 10 layout
/// says so, and `mem_info` follows.
#[test]
fn circuitpython_prints_its_pool_address_with_0x() {
    let flavor = heapvis::synth::Flavor::CircuitPython10;
    let mut config = heapvis::synth::SynthConfig::new(Board::Samd21, 50, 3);
    config.flavor = flavor;
    let c = heapvis::synth::simulate_in_memory(&config).unwrap();
    let profile = flavor.profile();
    let fw = c.layout.firmware(&profile).unwrap();
    let d = heapvis::decode::Decoder::new(&fw, &profile, heapvis::decode::DecodeOptions::default());
    let size = (c.layout.ram_end - c.layout.ram_start) as usize;
    let text = heapvis::inspect::mem_info(&d, &c.ram[c.ram.len() - size..]).unwrap();
    let layouts: Vec<&str> = text.lines().filter(|l| l.starts_with("GC memory layout; from ")).collect();
    assert_eq!(layouts.len(), 2, "{text}");
    assert!(layouts.iter().all(|l| l.starts_with("GC memory layout; from 0x")), "{layouts:?}");
}
