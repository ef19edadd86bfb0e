//! The GNU ld map parser on a real-looking map: both input-section forms, COMMON,
//! linker-script assignments, LTO suffixes, conflicts, discarded and debug sections.

use heapvis::firmware::map::parse_map;

const MAP: &str = "\
Archive member included to satisfy reference by file (symbol)

/usr/lib/gcc/arm-none-eabi/7.3.1/thumb/v6-m/libgcc.a(_udivsi3.o)
                              build-feather_m0_express/py/gc.o (__aeabi_uidiv)

Allocating common symbols
Common symbol       size              file

mp_state_ctx        0x1e4             build-feather_m0_express/py/mpstate.o
a_very_long_common_symbol_name
                    0x10              build-feather_m0_express/supervisor/usb.o
lto_state           0x20              build/main.o (symbol from plugin)

Discarded input sections

 .text          0x0000000000000000        0x0 build-feather_m0_express/main.o
 .text.gc_dump_info
                0x0000000000000000       0x2c build-feather_m0_express/py/gc.o

Memory Configuration

Name             Origin             Length             Attributes
FLASH            0x0000000000002000 0x000000000003e000 xr
RAM              0x0000000020000000 0x0000000000008000 xrw

Linker script and memory map

                0x0000000000002000                _sfixed = .
.text           0x0000000000002000    0x2f4a8
 .vectors       0x0000000000002000       0xb4 build/startup_samd21.o
                0x0000000000002000                exception_table
 .text.gc_alloc 0x00000000000020b4      0x1c4 build-feather_m0_express/py/gc.o
                0x00000000000020b4                gc_alloc
 .text.gc_dump_info
                0x0000000000002278       0x2c build-feather_m0_express/py/gc.o
 .rodata.mp_type_dict
                0x0000000000030010       0x68 build-feather_m0_express/py/objdict.o
                0x0000000000030010                mp_type_dict
 .rodata.str1.1 0x0000000000030078      0x1a3 build-feather_m0_express/py/qstr.o
 .rodata.cst8   0x0000000000030220        0x8 build/m.o
                0x0000000020000000                _srelocate = .
 .data.autoreload_delay_ms
                0x0000000020000000        0x4 build-feather_m0_express/supervisor/shared/autoreload.o
 .data.x        0x0000000020000004        0x4 build/x.o
 .bss.heap.lto_priv.0
                0x0000000020000100     0x5000 /tmp/ccXYZ.ltrans0.ltrans.o
 .bss.tiny.lto_priv.3 0x0000000020005100 0x8 /tmp/ccXYZ.ltrans0.ltrans.o
 COMMON         0x0000000020005110      0x1e4 build-feather_m0_express/py/mpstate.o
                0x0000000020005110                mp_state_ctx
 COMMON         0x0000000020005300       0x20 build/main.o
                0x0000000020005300                lto_state
                0x0000000020008000                _estack = (ORIGIN (RAM) + LENGTH (RAM))
                0x0000000020000000                mp_type_dict
.debug_info     0x0000000000000000    0x1f2e3
 .debug_info    0x0000000000000000      0x4d1 build/main.o
";

#[test]
fn linker_assignments_give_ram_and_flash_bounds() {
    let t = parse_map(MAP);
    assert_eq!(t.address_of("_sfixed"), Some(0x2000));
    assert_eq!(t.address_of("_srelocate"), Some(0x2000_0000));
    assert_eq!(t.address_of("_estack"), Some(0x2000_8000));
}

#[test]
fn wrapped_and_one_line_sections_give_address_and_size() {
    let t = parse_map(MAP);
    let heap = t.get("heap").unwrap();
    assert_eq!((heap.address, heap.size), (Some(0x2000_0100), Some(0x5000)));
    let gc_alloc = t.get("gc_alloc").unwrap();
    assert_eq!((gc_alloc.address, gc_alloc.size), (Some(0x20b4), Some(0x1c4)));
    let dump = t.get("gc_dump_info").unwrap();
    assert_eq!((dump.address, dump.size), (Some(0x2278), Some(0x2c)));
    // One-line section with an LTO suffix: the whole name, not the last dotted part.
    let tiny = t.get("tiny").unwrap();
    assert_eq!((tiny.address, tiny.size), (Some(0x2000_5100), Some(8)));
    assert!(t.get("3").is_none() && t.get("0").is_none());
    // .data.NAME sections count too.
    assert_eq!(t.get("autoreload_delay_ms").unwrap().size, Some(4));
    assert_eq!(t.get("x").unwrap().address, Some(0x2000_0004));
}

#[test]
fn common_symbols_get_size_from_the_common_block_and_address_from_bss() {
    let t = parse_map(MAP);
    let s = t.get("mp_state_ctx").unwrap();
    assert_eq!((s.address, s.size), (Some(0x2000_5110), Some(0x1e4)));
    assert_eq!(t.get("a_very_long_common_symbol_name").unwrap().size, Some(0x10));
    // LTO's "(symbol from plugin)" lines still give the size.
    let lto = t.get("lto_state").unwrap();
    assert_eq!((lto.address, lto.size), (Some(0x2000_5300), Some(0x20)));
}

#[test]
fn first_address_wins_and_the_conflict_is_recorded() {
    let t = parse_map(MAP);
    assert_eq!(t.address_of("mp_type_dict"), Some(0x30010));
    assert_eq!(t.conflicts.len(), 1);
    assert_eq!(t.conflicts[0].ignored, 0x2000_0000);
}

#[test]
fn discarded_debug_and_merged_sections_define_nothing() {
    let t = parse_map(MAP);
    // gc_dump_info is discarded at 0 and placed at 0x2278: no conflict, real address.
    assert!(!t.conflicts.iter().any(|c| c.name == "gc_dump_info"));
    for name in ["debug_info", "1", "str1", "cst8", "8", "COMMON", "vectors"] {
        assert!(t.get(name).is_none(), "{name}");
    }
}

#[test]
fn address_names_cover_symbols_in_four_byte_steps() {
    let t = parse_map(MAP);
    let names = t.address_names(0x2000_0000, 0x2000_8000);
    let (i, off) = names.lookup(0x2000_5110 + 20).unwrap();
    assert_eq!((t.name_of(i), off), ("mp_state_ctx", 20));
    let (i, off) = names.lookup(0x2000_0100 + 0x40).unwrap();
    assert_eq!((t.name_of(i), off), ("heap", 0x40));
    assert!(names.lookup(0x2000_7000).is_none());
}
