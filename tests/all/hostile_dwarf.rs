//! Crafted DWARF cannot crash or hang the profile derivation: types that hold
//! themselves and deep nesting end in bounded time, with an error or a profile,
//! and `heapvis profile` on such an ELF exits 2 with one line or 0.

use std::time::{Duration, Instant};

use gimli::write::{AttributeValue, DwarfUnit, EndianVec, Sections, UnitEntryId};
use heapvis::firmware::dwarf::derive_profile;
use heapvis::profile::Profile;

/// An x86 ELF object holding `unit`'s DWARF.
fn elf_with(mut unit: DwarfUnit) -> Vec<u8> {
    let mut sections = Sections::new(EndianVec::new(gimli::LittleEndian));
    unit.write(&mut sections).unwrap();
    let mut obj =
        object::write::Object::new(object::BinaryFormat::Elf, object::Architecture::I386, object::Endianness::Little);
    sections
        .for_each(|id, data| -> gimli::write::Result<()> {
            let s = obj.add_section(Vec::new(), id.name().as_bytes().to_vec(), object::SectionKind::Debug);
            obj.set_section_data(s, data.slice().to_vec(), 1);
            Ok(())
        })
        .unwrap();
    obj.write().unwrap()
}

fn new_unit() -> DwarfUnit {
    DwarfUnit::new(gimli::Encoding { format: gimli::Format::Dwarf32, version: 4, address_size: 4 })
}

fn named(unit: &mut DwarfUnit, parent: UnitEntryId, tag: gimli::DwTag, name: &str) -> UnitEntryId {
    let id = unit.unit.add(parent, tag);
    unit.unit.get_mut(id).set(gimli::DW_AT_name, AttributeValue::String(name.as_bytes().to_vec()));
    id
}

fn member(unit: &mut DwarfUnit, parent: UnitEntryId, name: &str, ty: UnitEntryId, offset: u64) {
    let m = named(unit, parent, gimli::DW_TAG_member, name);
    let e = unit.unit.get_mut(m);
    e.set(gimli::DW_AT_type, AttributeValue::UnitRef(ty));
    e.set(gimli::DW_AT_data_member_location, AttributeValue::Udata(offset));
}

/// `_mp_state_ctx_t` with the members `fill` adds.
fn state_struct(fill: impl FnOnce(&mut DwarfUnit, UnitEntryId)) -> Vec<u8> {
    let mut unit = new_unit();
    let root = unit.unit.root();
    let st = named(&mut unit, root, gimli::DW_TAG_structure_type, "_mp_state_ctx_t");
    unit.unit.get_mut(st).set(gimli::DW_AT_byte_size, AttributeValue::Udata(64));
    fill(&mut unit, st);
    elf_with(unit)
}

/// Derives within `limit`, without a panic, whatever the outcome.
fn derive_within(elf: &[u8], limit: Duration, what: &str) -> Result<Profile, String> {
    let started = Instant::now();
    let outcome = derive_profile(elf, "crafted.elf".as_ref(), &Profile::default());
    assert!(started.elapsed() < limit, "{what}: took {:?}", started.elapsed());
    outcome.map(|d| d.profile).map_err(|e| e.to_string())
}

#[test]
fn a_struct_holding_itself_a_dozen_times_is_named_in_bounded_time() {
    let elf = state_struct(|unit, st| {
        let int = named(unit, unit.unit.root(), gimli::DW_TAG_base_type, "int");
        unit.unit.get_mut(int).set(gimli::DW_AT_byte_size, AttributeValue::Udata(4));
        member(unit, st, "word", int, 0);
        for i in 0..12 {
            member(unit, st, &format!("self{i}"), st, 4 + 4 * i);
        }
    });
    // Exponential before (12^depth member visits); bounded now.
    let _ = derive_within(&elf, Duration::from_secs(10), "12 members of its own type");
}

#[test]
fn an_array_of_itself_is_sized_in_bounded_time() {
    let elf = state_struct(|unit, st| {
        let root = unit.unit.root();
        let array = unit.unit.add(root, gimli::DW_TAG_array_type);
        unit.unit.get_mut(array).set(gimli::DW_AT_type, AttributeValue::UnitRef(array));
        let range = unit.unit.add(array, gimli::DW_TAG_subrange_type);
        unit.unit.get_mut(range).set(gimli::DW_AT_count, AttributeValue::Udata(1000));
        member(unit, st, "items", array, 0);
        member(unit, st, "more", array, 8);
    });
    let _ = derive_within(&elf, Duration::from_secs(10), "an array whose element type is itself");
}

#[test]
fn twenty_thousand_nested_structs_are_an_error_not_a_stack_overflow() {
    // (gimli's writer recurses per level: it gets a large stack of its own.)
    let build = std::thread::Builder::new().stack_size(1 << 30).spawn(|| {
        let mut unit = new_unit();
        let mut parent = unit.unit.root();
        for i in 0..20_000 {
            parent = named(&mut unit, parent, gimli::DW_TAG_structure_type, &format!("s{i}"));
        }
        elf_with(unit)
    });
    let elf = build.unwrap().join().unwrap();
    let err = derive_within(&elf, Duration::from_secs(10), "20,000 nested structs").unwrap_err();
    assert!(err.contains("nested more than"), "{err}");
    // The command says so on one line, exit 2.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.elf");
    std::fs::write(&path, &elf).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heapvis")).arg("profile").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("deep.elf") && stderr.contains("nested"), "{stderr}");
}
