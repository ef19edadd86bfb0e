//! ELF input: a synthetic build linked into a real ELF file (by gcc, from an
//! assembly file and a linker script that put the flash image and every symbol at
//! their addresses) gives the same tables as firmware.bin with firmware.map.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use heapvis::firmware::map::parse_map;
use heapvis::firmware::{FirmwareFiles, InputPaths};
use heapvis::pipeline::{AnalyzeOptions, Silent};
use heapvis::profile::Profile;
use heapvis::synth::Board;
use heapvis::tables::TableSet;

use crate::common::{capture, session};

/// Links firmware.bin and the map's symbols into `dir/firmware.elf` (64-bit, no
/// debug info).
pub fn link_elf(dir: &Path) {
    write_sources(dir);
    let out = Command::new("gcc")
        .current_dir(dir)
        .args(["-nostdlib", "-static", "-no-pie", "-Wl,-T,link.ld", "-o", "firmware.elf", "fw.s"])
        .output()
        .expect("gcc");
    assert!(out.status.success(), "gcc: {}", String::from_utf8_lossy(&out.stderr));
}

/// The same as a 32-bit ELF with DWARF: tests/support/mp_layout.c compiled with
/// `-g` is linked in, as a real build carries its structs' debug info.
pub fn link_elf_with_dwarf(dir: &Path) {
    link_elf_with_dwarf_of(dir, "tests/support/mp_layout.c");
}

/// The same with the structs of `layout_c` (a file under the repository).
pub fn link_elf_with_dwarf_of(dir: &Path, layout_c: &str) {
    link_elf_with_dwarf_bits(dir, layout_c, 32);
}

/// The same as a 32- or 64-bit ELF (x86, whose DWARF is as a target's).
pub fn link_elf_with_dwarf_bits(dir: &Path, layout_c: &str, bits: u32) {
    write_sources(dir);
    let layout = crate::common::repo().join(layout_c);
    let (m, emulation) = if bits == 64 { ("-m64", "elf_x86_64") } else { ("-m32", "elf_i386") };
    let steps: [Vec<&str>; 3] = [
        vec!["gcc", m, "-c", "fw.s", "-o", "fw.o"],
        vec!["gcc", m, "-g", "-c", layout.to_str().unwrap(), "-o", "layout.o"],
        vec!["ld", "-m", emulation, "-T", "link.ld", "-e", "0", "-o", "firmware.elf", "fw.o", "layout.o"],
    ];
    for step in steps {
        let out = Command::new(step[0]).current_dir(dir).args(&step[1..]).output().expect(step[0]);
        assert!(out.status.success(), "{step:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn write_sources(dir: &Path) {
    let map = std::fs::read_to_string(dir.join("firmware.map")).unwrap();
    let symbols = parse_map(&map);
    let flash_start = symbols.address_of("_sfixed").unwrap();
    let ram_start = symbols.address_of("_srelocate").or_else(|| symbols.address_of("_sdata")).unwrap();
    let ram_end = symbols.address_of("_estack").unwrap();
    let mut s = String::new();
    let _ = writeln!(s, "  .section .flash,\"a\",@progbits\n  .incbin \"firmware.bin\"");
    let _ = writeln!(s, "  .section .ram,\"aw\",@nobits\n  .space {}", ram_end - ram_start);
    for sym in symbols.iter() {
        let (Some(address), true) = (sym.address, sym.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        else {
            continue;
        };
        let _ = writeln!(s, "  .globl {0}\n  .set {0}, 0x{1:x}", sym.name, address);
        if let Some(size) = sym.size {
            let _ = writeln!(s, "  .size {}, {size}", sym.name);
        }
    }
    std::fs::write(dir.join("fw.s"), s).unwrap();
    let script = format!(
        "SECTIONS {{\n  . = 0x{flash_start:x};\n  .flash : {{ *(.flash) }}\n  . = 0x{ram_start:x};\n  .ram (NOLOAD) : {{ *(.ram) }}\n  /DISCARD/ : {{ *(.note*) *(.comment) *(.eh_frame) }}\n}}\n"
    );
    std::fs::write(dir.join("link.ld"), script).unwrap();
}

#[test]
fn elf_input_gives_the_same_tables_as_bin_and_map() {
    let c = capture(Board::Samd21, 150, 16, 0);
    link_elf(c.dir.path());
    let elf_inputs = InputPaths::resolve(&[c.dir.path().join("ram.bin"), c.dir.path().join("firmware.elf")]).unwrap();
    assert!(matches!(elf_inputs.firmware, FirmwareFiles::Elf(_)));
    let options = AnalyzeOptions { tables: TableSet::ALL, ..AnalyzeOptions::default() };
    let (a, b) = (c.dir.path().join("from_map"), c.dir.path().join("from_elf"));
    session(&c.inputs).analyze(&a, &options, &Silent).unwrap();
    let s = session(&elf_inputs);
    // The flash image is rebuilt from the ELF's loadable section, byte for byte.
    assert_eq!(s.firmware.flash, std::fs::read(c.dir.path().join("firmware.bin")).unwrap());
    s.analyze(&b, &options, &Silent).unwrap();
    crate::common::assert_same_tables(&a, &b, &crate::common::DECODED_TABLES, "ELF vs bin+map input");
}

#[test]
fn a_directory_with_an_elf_and_no_map_is_read_through_the_elf() {
    let c = capture(Board::Samd21, 5, 17, 0);
    link_elf(c.dir.path());
    std::fs::remove_file(c.dir.path().join("firmware.map")).unwrap();
    std::fs::remove_file(c.dir.path().join("firmware.bin")).unwrap();
    let out = c.dir.path().join("o");
    let o = Command::new(env!("CARGO_BIN_EXE_heapvis"))
        .arg("analyze")
        .arg(c.dir.path())
        .arg("-q")
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(crate::common::table_files(&out, "allocations").len(), 1);
}

#[test]
fn a_file_that_is_not_elf_is_named() {
    let c = capture(Board::Samd21, 2, 17, 0);
    let o = Command::new(env!("CARGO_BIN_EXE_heapvis"))
        .arg("analyze")
        .arg(c.dir.path().join("ram.bin"))
        .arg(c.dir.path().join("firmware.map"))
        .args(["-q", "-o", "/tmp/never"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("firmware.map") && err.contains("ELF"), "{err}");
}

/// On ARM a Thumb function's symbol has bit 0 set; the map prints it without, and
/// no object starts at an odd address: the reader clears the bit of function
/// symbols (and only of those), so an ELF and its map give the same addresses.
#[test]
fn thumb_function_symbols_lose_their_interworking_bit() {
    use object::write::{Object as WriteObject, Symbol, SymbolSection};
    use object::{Architecture, BinaryFormat, Endianness, SymbolFlags, SymbolKind, SymbolScope};
    let mut obj = WriteObject::new(BinaryFormat::Elf, Architecture::Arm, Endianness::Little);
    let text = obj.add_section(Vec::new(), b".text".to_vec(), object::SectionKind::Text);
    obj.append_section_data(text, &[0u8; 0x100], 4);
    let mut add = |name: &str, value: u64, kind: SymbolKind| {
        obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value,
            size: 4,
            kind,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Section(text),
            flags: SymbolFlags::None,
        });
    };
    add("nlr_pop", 0x51, SymbolKind::Text);
    add("mp_type_odd", 0x61, SymbolKind::Data);
    add("_sfixed", 0, SymbolKind::Data);
    let bytes = obj.write().unwrap();
    let (symbols, _) = heapvis::firmware::elf::parse(&bytes, "arm.o".as_ref(), &Profile::default()).unwrap();
    assert_eq!(symbols.address_of("nlr_pop"), Some(0x50));
    assert_eq!(symbols.address_of("mp_type_odd"), Some(0x61));
}

/// A RAM start given by hand as an address, a little past the real one, still
/// reads the flash image from the ELF's code and constants (its writable data
/// lives in RAM), and the capture check then names the dump's real bounds: on a
/// real MicroPython ELF, this was "loadable sections span 536870928 bytes".
#[test]
fn an_elf_read_with_a_ram_start_off_by_4_is_told_the_real_bounds() {
    let c = capture(Board::Samd21, 6, 18, 0);
    // As a real build: writable data at the start of RAM (initialised .data).
    write_sources(c.dir.path());
    let (fw, ld) = (c.dir.path().join("fw.s"), c.dir.path().join("link.ld"));
    let source = std::fs::read_to_string(&fw).unwrap() + "  .section .data,\"aw\",@progbits\n  .word 1, 2, 3, 4\n";
    std::fs::write(&fw, source).unwrap();
    let script =
        std::fs::read_to_string(&ld).unwrap().replace("  .ram (NOLOAD)", "  .data : { *(.data) }\n  .ram (NOLOAD)");
    std::fs::write(&ld, script).unwrap();
    let out = Command::new("gcc")
        .current_dir(c.dir.path())
        .args(["-nostdlib", "-static", "-no-pie", "-Wl,-T,link.ld", "-o", "firmware.elf", "fw.s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "gcc: {}", String::from_utf8_lossy(&out.stderr));
    let o = Command::new(env!("CARGO_BIN_EXE_heapvis"))
        .arg("analyze")
        .arg(c.dir.path().join("ram.bin"))
        .arg(c.dir.path().join("firmware.elf"))
        .args(["-q", "-o"])
        .arg(c.dir.path().join("o"))
        .args(["--ram-start", "0x20000004"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("pass `--ram-start 0x20000000 --ram-end 0x20008000`"), "{err}");
}
