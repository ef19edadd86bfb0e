//! A layout profile derived from the firmware's DWARF debug info.
//!
//! Every offset the decoder needs is the offset of a named member in a named
//! struct of the build (`mp_state_ctx_t`'s `vm.last_pool`, `mp_obj_str_t`'s `data`,
//! …). gimli reads the DIEs; this module only builds a small tree of structs,
//! typedefs and members and looks paths up in it. Whatever the debug info lacks
//! keeps the base profile's value and is reported, so a partial build still works.

use std::collections::HashMap;
use std::path::Path;

use gimli::{AttributeValue, EndianSlice, RunTimeEndian, UnitOffset};
use object::{Object, ObjectSection};

use crate::error::{Error, Result};
use crate::profile::Profile;

type R<'a> = EndianSlice<'a, RunTimeEndian>;

/// Words of `mp_state_ctx` named at most (a real build has a few hundred).
const MAX_ROOT_NAMES: usize = 4096;
/// Nesting of DIEs read (a real build nests a few levels: unit, struct, member,
/// a nested type or two); deeper ones are an error, not a stack overflow.
const MAX_DIE_DEPTH: u32 = 64;
/// Arrays of arrays (and nested structs) followed when sizing or naming a type.
const MAX_TYPE_DEPTH: u32 = 16;
/// Members and array items visited when naming `mp_state_ctx`'s words: a few
/// thousand in a real build.
const MAX_NAMING_STEPS: u32 = 200_000;

/// The bounds of a walk over a type graph the input controls.
struct Walk {
    depth: u32,
    steps: u32,
}

impl Walk {
    fn new() -> Self {
        Walk { depth: 0, steps: 0 }
    }

    /// Goes one level deeper, if the depth allows it.
    fn enter(&mut self) -> bool {
        self.depth += 1;
        if self.depth > MAX_TYPE_DEPTH {
            self.depth -= 1;
            return false;
        }
        true
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// One more member or item visited, if the budget allows it.
    fn step(&mut self) -> bool {
        self.steps += 1;
        self.steps <= MAX_NAMING_STEPS
    }
}

#[derive(Clone, Debug)]
struct Node {
    tag: gimli::DwTag,
    name: Option<String>,
    ty: Option<UnitOffset>,
    byte_size: Option<u64>,
    member_offset: Option<u64>,
    /// For an array: the element count of its subrange.
    count: Option<u64>,
    children: Vec<UnitOffset>,
}

/// The type graph of one compilation unit.
struct TypeTree {
    nodes: HashMap<UnitOffset, Node>,
    address_size: u64,
}

/// A profile derived from DWARF, with what was found and what kept its default.
#[derive(Clone, Debug)]
pub struct Derived {
    pub profile: Profile,
    pub found: Vec<String>,
    pub missing: Vec<String>,
}

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::BadElf { path: path.into(), message: message.into() }
}

/// Reads a DIE and its children into `nodes`, at most [`MAX_DIE_DEPTH`] deep.
fn walk(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    node: gimli::EntriesTreeNode<R<'_>>,
    nodes: &mut HashMap<UnitOffset, Node>,
    depth: u32,
) -> std::result::Result<UnitOffset, String> {
    if depth > MAX_DIE_DEPTH {
        return Err(format!("DWARF: entries nested more than {MAX_DIE_DEPTH} deep"));
    }
    let e = node.entry();
    let offset = e.offset();
    let mut n = Node {
        tag: e.tag(),
        name: None,
        ty: None,
        byte_size: None,
        member_offset: None,
        count: None,
        children: Vec::new(),
    };
    if let Some(v) = e.attr_value(gimli::DW_AT_name) {
        n.name = dwarf.attr_string(unit, v).ok().map(|s| s.to_string_lossy().into_owned());
    }
    if let Some(AttributeValue::UnitRef(t)) = e.attr_value(gimli::DW_AT_type) {
        n.ty = Some(t);
    }
    n.byte_size = e.attr_value(gimli::DW_AT_byte_size).and_then(|v| v.udata_value());
    n.member_offset = e.attr_value(gimli::DW_AT_data_member_location).and_then(|v| v.udata_value());
    n.count = e
        .attr_value(gimli::DW_AT_count)
        .and_then(|v| v.udata_value())
        .or_else(|| e.attr_value(gimli::DW_AT_upper_bound).and_then(|v| v.udata_value()).map(|u| u + 1));
    let mut children = node.children();
    while let Some(child) = children.next().map_err(|e| format!("DWARF: {e}"))? {
        let c = walk(dwarf, unit, child, nodes, depth + 1)?;
        n.children.push(c);
    }
    nodes.insert(offset, n);
    Ok(offset)
}

impl TypeTree {
    /// Follows typedefs and qualifiers to the type itself.
    fn strip(&self, mut t: UnitOffset) -> Option<&Node> {
        for _ in 0..32 {
            let n = self.nodes.get(&t)?;
            match n.tag {
                gimli::DW_TAG_typedef | gimli::DW_TAG_const_type | gimli::DW_TAG_volatile_type => t = n.ty?,
                _ => return Some(n),
            }
        }
        None
    }

    /// A struct by its typedef or tag name (`mp_state_ctx_t` or `_mp_state_ctx_t`).
    fn find_struct(&self, name: &str) -> Option<&Node> {
        let tagged = format!("_{name}");
        self.nodes.values().find_map(|n| match n.tag {
            gimli::DW_TAG_structure_type if n.name.as_deref() == Some(&tagged) && !n.children.is_empty() => Some(n),
            gimli::DW_TAG_typedef if n.name.as_deref() == Some(name) => {
                self.strip(n.ty?).filter(|s| s.tag == gimli::DW_TAG_structure_type && !s.children.is_empty())
            }
            _ => None,
        })
    }

    fn member<'a>(&'a self, s: &'a Node, name: &str) -> Option<&'a Node> {
        s.children
            .iter()
            .filter_map(|c| self.nodes.get(c))
            .find(|m| m.tag == gimli::DW_TAG_member && m.name.as_deref() == Some(name))
    }

    /// Byte offset of a dotted member path inside struct `root`, and the member.
    fn path(&self, root: &str, path: &str) -> Option<(u64, &Node)> {
        let mut s = self.find_struct(root)?;
        let mut offset = 0;
        let mut last = None;
        for (i, part) in path.split('.').enumerate() {
            if i > 0 {
                s = self.strip(last.and_then(|m: &Node| m.ty)?)?;
            }
            let m = self.member(s, part)?;
            offset += m.member_offset?;
            last = Some(m);
        }
        Some((offset, last?))
    }

    fn size_of_typedef(&self, name: &str) -> Option<u64> {
        let t = self.nodes.values().find(|n| n.tag == gimli::DW_TAG_typedef && n.name.as_deref() == Some(name))?;
        self.strip(t.ty?)?.byte_size
    }

    /// Every word-sized member inside struct node `s` (recursing into nested
    /// structs and into arrays), as (byte offset, dotted path): the names of the
    /// words where root pointers sit. The walk is bounded by `walk` (depth,
    /// nodes visited, names made): a crafted type graph (a struct holding
    /// itself a dozen times) cannot make it exponential.
    fn word_members(
        &self,
        s: &Node,
        base: u64,
        prefix: &str,
        word: u64,
        out: &mut Vec<(u64, String)>,
        walk: &mut Walk,
    ) {
        if !walk.enter() {
            return;
        }
        for m in s.children.iter().filter_map(|c| self.nodes.get(c)) {
            if out.len() >= MAX_ROOT_NAMES || !walk.step() {
                break;
            }
            let (Some(name), Some(offset), Some(ty)) = (m.name.as_deref(), m.member_offset, m.ty) else { continue };
            let path = if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") };
            let (Some(t), Some(at)) = (self.strip(ty), base.checked_add(offset)) else { continue };
            self.word_items(t, at, &path, word, out, walk);
        }
        walk.leave();
    }

    fn word_items(&self, t: &Node, at: u64, path: &str, word: u64, out: &mut Vec<(u64, String)>, walk: &mut Walk) {
        match t.tag {
            gimli::DW_TAG_structure_type => self.word_members(t, at, path, word, out, walk),
            gimli::DW_TAG_array_type => {
                let n = t.children.iter().filter_map(|c| self.nodes.get(c)).find_map(|s| s.count).unwrap_or(0);
                let Some(element) = t.ty.and_then(|e| self.strip(e)) else { return };
                let Some(size) = self.size_of(element) else { return };
                if !walk.enter() {
                    return;
                }
                for i in 0..n.min(256) {
                    let Some(item) = i.checked_mul(size).and_then(|o| at.checked_add(o)) else { break };
                    if out.len() >= MAX_ROOT_NAMES || !walk.step() {
                        break;
                    }
                    self.word_items(element, item, &format!("{path}[{i}]"), word, out, walk);
                }
                walk.leave();
            }
            _ if t.byte_size == Some(word) && at.is_multiple_of(word) && out.len() < MAX_ROOT_NAMES => {
                out.push((at, path.to_string()));
            }
            _ => {}
        }
    }

    /// Bytes of a type (an array's from its element and count), following at
    /// most [`MAX_TYPE_DEPTH`] arrays of arrays (an array may name itself).
    fn size_of(&self, t: &Node) -> Option<u64> {
        let (mut t, mut count) = (t, 1u64);
        for _ in 0..MAX_TYPE_DEPTH {
            if let Some(n) = t.byte_size {
                return n.checked_mul(count);
            }
            if t.tag != gimli::DW_TAG_array_type {
                return None;
            }
            let n = t.children.iter().filter_map(|c| self.nodes.get(c)).find_map(|s| s.count)?;
            count = count.checked_mul(n)?;
            t = self.strip(t.ty?)?;
        }
        None
    }

    fn array_len(&self, member: &Node) -> Option<u64> {
        let a = self.strip(member.ty?)?;
        (a.tag == gimli::DW_TAG_array_type)
            .then(|| a.children.iter().filter_map(|c| self.nodes.get(c)).find_map(|s| s.count))
            .flatten()
    }
}

/// A member found in one unit, with that unit to resolve its type in.
struct Member<'a> {
    tree: &'a TypeTree,
    node: &'a Node,
}

impl Member<'_> {
    fn type_size(&self) -> Option<u64> {
        self.tree.strip(self.node.ty?)?.byte_size
    }

    fn array_len(&self) -> Option<u64> {
        self.tree.array_len(self.node)
    }
}

/// Every unit's types. DWARF describes a type only in the units that use it, so
/// a struct is looked up in the unit defining the interpreter state first, then in
/// the others, in order (a build's structs are the same in every unit).
struct Units<'a> {
    order: Vec<&'a TypeTree>,
}

impl<'a> Units<'a> {
    fn new(trees: &'a [TypeTree], first: &'a TypeTree) -> Self {
        let mut order = vec![first];
        order.extend(trees.iter().filter(|t| !std::ptr::eq(*t, first)));
        Units { order }
    }

    fn path(&self, root: &str, path: &str) -> Option<(u64, Member<'a>)> {
        self.order.iter().find_map(|t| t.path(root, path).map(|(offset, node)| (offset, Member { tree: t, node })))
    }

    fn size_of_typedef(&self, name: &str) -> Option<u64> {
        self.order.iter().find_map(|t| t.size_of_typedef(name))
    }
}

fn load_trees(data: &[u8], path: &Path) -> Result<Vec<TypeTree>> {
    let file = object::File::parse(data).map_err(|e| bad(path, format!("not a readable ELF file: {e}")))?;
    let endian = if file.is_little_endian() { RunTimeEndian::Little } else { RunTimeEndian::Big };
    let load = |id: gimli::SectionId| -> std::result::Result<R<'_>, gimli::Error> {
        let bytes = file.section_by_name(id.name()).and_then(|s| s.data().ok()).unwrap_or(&[]);
        Ok(EndianSlice::new(bytes, endian))
    };
    let dwarf = gimli::Dwarf::load(load).map_err(|e| bad(path, format!("DWARF: {e}")))?;
    let mut trees = Vec::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next().map_err(|e| bad(path, format!("DWARF: {e}")))? {
        let unit = dwarf.unit(header).map_err(|e| bad(path, format!("DWARF: {e}")))?;
        let mut nodes = HashMap::new();
        let mut tree = unit.entries_tree(None).map_err(|e| bad(path, format!("DWARF: {e}")))?;
        let root = tree.root().map_err(|e| bad(path, format!("DWARF: {e}")))?;
        walk(&dwarf, &unit, root, &mut nodes, 0).map_err(|e| bad(path, e))?;
        trees.push(TypeTree { nodes, address_size: unit.header.address_size() as u64 });
    }
    if trees.is_empty() {
        return Err(bad(path, "no DWARF debug info (build with -g, or give a profile with --profile)"));
    }
    Ok(trees)
}

/// Derives a profile from the DWARF in `data` (an ELF file), starting from `base`.
pub fn derive_profile(data: &[u8], path: &Path, base: &Profile) -> Result<Derived> {
    let trees = load_trees(data, path)?;
    // The unit that defines the interpreter state has the structs we need.
    let state_unit = trees.iter().find(|t| t.find_struct("mp_state_ctx_t").is_some()).ok_or_else(|| {
        bad(path, "the debug info has no mp_state_ctx_t; build with -g, or give a profile with --profile")
    })?;
    let word = state_unit.address_size;
    let t = Units::new(&trees, state_unit);
    let mut p = base.clone();
    p.name = format!(
        "derived from the DWARF of {}",
        path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
    );
    let mut found = Vec::new();
    let mut missing = Vec::new();
    // Every word of the interpreter state by its member path, to name roots.
    if let Some(st) = state_unit.find_struct("mp_state_ctx_t") {
        let mut names = Vec::new();
        state_unit.word_members(st, 0, "", word, &mut names, &mut Walk::new());
        // One name a word: the first member at an offset (a struct before its
        // first field).
        names.sort_by_key(|(o, _)| *o);
        names.dedup_by_key(|(o, _)| *o);
        found.push(format!("state.root_names: {} words of mp_state_ctx", names.len()));
        p.state.root_names = names.into_iter().map(|(o, n)| (n, o)).collect();
    }
    p.heap.word_bytes = word as u32;
    found.push(format!("heap.word_bytes = {word} (pointer size)"));

    let member = |root: &str, path: &str| t.path(root, path).map(|(o, _)| o);
    // The GC's root range: `thread.dict_locals` (MicroPython 1.10 on; a 1.9
    // build starts at 0, before words that never hold a heap pointer) up to
    // `vm.qstr_last_chunk`.
    p.state.roots_start = member("mp_state_ctx_t", "thread.dict_locals").unwrap_or(0);
    p.state.roots_end = member("mp_state_ctx_t", "vm.qstr_last_chunk");
    match p.state.roots_end {
        Some(end) => found.push(format!("state.roots = {}..{end}", p.state.roots_start)),
        None => missing.push("state.roots_end".to_string()),
    }
    let mut set = |field: &str, value: Option<u64>, target: &mut u64| match value {
        Some(v) => {
            *target = v;
            found.push(format!("{field} = {v}"));
        }
        None => missing.push(field.to_string()),
    };
    let map_table = member("mp_map_t", "table");
    let dict_map = member("mp_obj_dict_t", "map");
    let dict_table = dict_map.zip(map_table).map(|(a, b)| a + b);
    let list_items = member("mp_obj_list_t", "items");
    let st = "mp_state_ctx_t";
    set("state.last_pool", member(st, "vm.last_pool"), &mut p.state.last_pool);
    set(
        "state.loaded_modules_table",
        member(st, "vm.mp_loaded_modules_dict").zip(dict_table).map(|(a, b)| a + b),
        &mut p.state.loaded_modules_table,
    );
    set(
        "state.dict_main_table",
        member(st, "vm.dict_main").zip(dict_table).map(|(a, b)| a + b),
        &mut p.state.dict_main_table,
    );
    // sys.path and sys.argv only name roots. Current versions keep sys.path in
    // `sys_mutable[]`; the member paths in `state.root_names` name them anyway, so
    // their absence is not worth a note then.
    for (field, path, target) in [
        ("state.sys_path_items", "vm.mp_sys_path_obj", &mut p.state.sys_path_items),
        ("state.sys_argv_items", "vm.mp_sys_argv_obj", &mut p.state.sys_argv_items),
    ] {
        match member(st, path).zip(list_items).map(|(a, b)| a + b) {
            Some(v) => {
                *target = v;
                found.push(format!("{field} = {v}"));
            }
            None if !p.state.root_names.is_empty() => {}
            None => missing.push(field.to_string()),
        }
    }
    match t.path(st, "vm.readline_hist") {
        Some((o, m)) => {
            p.state.readline_hist = Some(o);
            found.push(format!("state.readline_hist = {o}"));
            if let Some(n) = m.array_len() {
                p.state.readline_hist_len = n.min(64) as u32;
            }
        }
        None => {
            p.state.readline_hist = None;
            missing.push("state.readline_hist (the port has none)".to_string());
        }
    }
    // The GC state: `mem.gc_*` in MicroPython 1.9 / CircuitPython 3, `mem.area.gc_*`
    // since the heap became a list of areas (which also brought the gap byte after
    // the allocation table, ALLOC_TABLE_GAP_BYTE).
    let area = t.path(st, "mem.area").is_some();
    let prefix = if area { "mem.area." } else { "mem." };
    let gc_member = |name: &str| member(st, &format!("{prefix}{name}"));
    let gc = &mut p.state.gc;
    let mut all = true;
    for (field, name, target) in [
        ("state.gc.alloc_table_start", "gc_alloc_table_start", &mut gc.alloc_table_start),
        ("state.gc.alloc_table_byte_len", "gc_alloc_table_byte_len", &mut gc.alloc_table_byte_len),
        ("state.gc.pool_start", "gc_pool_start", &mut gc.pool_start),
        ("state.gc.pool_end", "gc_pool_end", &mut gc.pool_end),
    ] {
        match gc_member(name) {
            Some(v) => {
                *target = v;
                found.push(format!("{field} = {v}"));
            }
            None => {
                all = false;
                missing.push(field.to_string());
            }
        }
    }
    match gc_member("gc_finaliser_table_start") {
        Some(v) => {
            gc.finaliser_table_start = v;
            found.push(format!("state.gc.finaliser_table_start = {v}"));
        }
        None => {
            p.heap.blocks_per_ftb = 0;
            found.push("heap.blocks_per_ftb = 0 (no gc_finaliser_table_start)".to_string());
        }
    }
    p.state.gc.read = all;
    if area {
        p.heap.alloc_table_gap_bytes = 1;
        found.push("heap.alloc_table_gap_bytes = 1 (mem.area: a current MicroPython GC)".to_string());
        // The same versions changed the bytecode prelude (names are not read) and
        // print 8-digit offsets in mem_info.
        p.objects.bytecode_qstr_bytes = 0;
        p.types.mem_info_address_digits = 8;
        found.push(
            "objects.bytecode_qstr_bytes = 0, types.mem_info_address_digits = 8 (current MicroPython)".to_string(),
        );
        // CircuitPython (its reload exception) prints `%p` with `0x` since 7.0.
        if t.path(st, "vm.mp_reload_exception").is_some() {
            p.types.mem_info_pointer_prefix = "0x".into();
            found.push("types.mem_info_pointer_prefix = 0x (CircuitPython: vm.mp_reload_exception)".to_string());
        }
        // Split heaps: areas chained through `next`, the first member.
        p.state.gc.next = gc_member("next");
        if let Some(v) = p.state.gc.next {
            found.push(format!("state.gc.next = {v} (a split heap)"));
        }
    }
    // CircuitPython 9/10's collect table (MICROPY_ENABLE_SELECTIVE_COLLECT).
    p.state.gc.collect_table_start = gc_member("gc_collect_table_start");
    if let Some(v) = p.state.gc.collect_table_start {
        p.heap.blocks_per_ctb = 8;
        found.push(format!("state.gc.collect_table_start = {v}, heap.blocks_per_ctb = 8"));
    }
    if gc_member("gc_weakref_table_start").is_some() {
        p.heap.blocks_per_wtb = 8;
        found.push("heap.blocks_per_wtb = 8 (gc_weakref_table_start)".to_string());
    }
    // Qstr pools: hashes and lengths in arrays (current) or before each text (1.9).
    if let Some(lengths) = member("qstr_pool_t", "lengths") {
        p.qstr.pool_format = crate::profile::QstrPoolFormat::Arrays;
        p.qstr.lengths_word = (lengths / word) as u32;
        p.qstr.hashes_word = member("qstr_pool_t", "hashes").map(|h| (h / word) as u32);
        found.push(format!("qstr.pool_format = arrays (lengths at word {})", lengths / word));
    }
    let words = |v: Option<u64>| v.map(|b| b / word);
    let mut set32 = |field: &str, value: Option<u64>, target: &mut u32| match value {
        Some(v) => {
            *target = v as u32;
            found.push(format!("{field} = {v}"));
        }
        None => missing.push(field.to_string()),
    };
    let o = &mut p.objects;

    set32("objects.str_len_word", words(member("mp_obj_str_t", "len")), &mut o.str_len_word);
    set32("objects.str_data_word", words(member("mp_obj_str_t", "data")), &mut o.str_data_word);
    set32("objects.dict_table_word", words(dict_table), &mut o.dict_table_word);
    set32(
        "objects.instance_table_word",
        words(member("mp_obj_instance_t", "members").zip(map_table).map(|(a, b)| a + b)),
        &mut o.instance_table_word,
    );
    set32("objects.fun_bc_bytecode_word", words(member("mp_obj_fun_bc_t", "bytecode")), &mut o.fun_bc_bytecode_word);
    set32("objects.qstr_pool_header_words", words(member("qstr_pool_t", "qstrs")), &mut o.qstr_pool_header_words);
    if let Some(w) = words(member("mp_obj_module_t", "globals")) {
        o.module_globals_word = w as u32;
        found.push(format!("objects.module_globals_word = {w}"));
    }
    if let (Some(alloc), Some(table)) = (member("mp_map_t", "alloc"), member("mp_map_t", "table")) {
        if let Some(w) = words(table.checked_sub(alloc)) {
            o.map_alloc_words_before_table = w as u32;
            found.push(format!("objects.map_alloc_words_before_table = {w}"));
        }
    }
    let q = &mut p.qstr;
    for (field, target) in [
        ("prev", &mut q.pool_prev_word),
        ("total_prev_len", &mut q.pool_total_prev_len_word),
        ("alloc", &mut q.pool_alloc_word),
        ("len", &mut q.pool_len_word),
    ] {
        if let Some(w) = words(member("qstr_pool_t", field)) {
            *target = w as u32;
            found.push(format!("qstr.pool_{field}_word = {w}"));
        }
    }
    if let Some(w) = words(member("mp_obj_fun_bc_t", "child_table")) {
        o.fun_bc_child_table_word = Some(w as u32);
        found.push(format!("objects.fun_bc_child_table_word = {w}"));
    }
    if let Some(w) = words(member("mp_obj_exception_t", "traceback_data")) {
        o.exception_traceback_word = Some(w as u32);
        found.push(format!("objects.exception_traceback_word = {w}"));
    }
    // Functions point at their module context since the bytecode got a packed
    // prelude; its name is then an index into the context's qstr table when the
    // build has one (MICROPY_EMIT_BYTECODE_USES_QSTR_TABLE).
    if let Some(context) = words(member("mp_obj_fun_bc_t", "context")) {
        o.bytecode_prelude = crate::profile::BytecodePrelude::Packed;
        o.fun_bc_context_word = context as u32;
        o.context_qstr_table_word =
            words(t.path("mp_module_context_t", "constants.qstr_table").map(|(offset, _)| offset)).map(|w| w as u32);
        found.push(format!(
            "objects.bytecode_prelude = packed, fun_bc_context_word = {context}, context_qstr_table_word = {:?}",
            o.context_qstr_table_word
        ));
    }
    match t.path("mp_obj_type_t", "name") {
        Some((offset, m)) => {
            p.objects.type_name_offset = offset as u32;
            found.push(format!("objects.type_name_offset = {offset}"));
            if let Some(size) = m.type_size() {
                p.objects.type_name_bytes = size as u32;
                found.push(format!("objects.type_name_bytes = {size}"));
            }
        }
        None => missing.push("objects.type_name_offset".to_string()),
    }
    // NaN boxing (MICROPY_OBJ_REPR_D) is the one representation debug info shows:
    // `mp_obj_t` is a 64-bit integer while pointers are narrower.
    if t.size_of_typedef("mp_obj_t").is_some_and(|n| n == 8 && word < 8) {
        p.object_repr = crate::profile::ObjectRepr::D;
        found.push("object_repr = D (mp_obj_t is 64 bits, pointers 32)".to_string());
    }
    // MICROPY_BYTES_PER_GC_BLOCK's default: four object words (16 bytes on 32-bit
    // ports, 32 on 64-bit ones and with NaN boxing). Not in the debug info itself.
    p.heap.bytes_per_block = 4 * p.obj_bytes();
    found.push(format!("heap.bytes_per_block = {} (MicroPython's default: 4 object words)", p.heap.bytes_per_block));
    if let Some(n) = t.size_of_typedef("qstr_hash_t") {
        p.qstr.hash_bytes = n as u32;
        found.push(format!("qstr.hash_bytes = {n}"));
    }
    if let Some(n) = t.size_of_typedef("qstr_len_t") {
        p.qstr.len_bytes = n as u32;
        found.push(format!("qstr.len_bytes = {n}"));
    }
    // The RAM start symbol: CircuitPython's `_srelocate`, else MicroPython's `_sdata`.
    if let Ok(file) = object::File::parse(data) {
        use object::ObjectSymbol;
        let has = |name: &str| file.symbols().any(|s| s.name() == Ok(name));
        if !has(&p.symbols.ram_start) && has("_sdata") {
            p.symbols.ram_start = "_sdata".into();
            found.push("symbols.ram_start = _sdata (no _srelocate in the symbol table)".to_string());
        }
        // MicroPython 1.13's immediate objects (`None`, `True`, `False` in the
        // word, and qstrs one bit higher) left no `mp_const_none_obj` behind.
        if p.object_repr != crate::profile::ObjectRepr::D {
            p.immediate_objects = !has("mp_const_none_obj");
            found.push(format!(
                "immediate_objects = {} ({} mp_const_none_obj in the symbol table)",
                p.immediate_objects,
                if p.immediate_objects { "no" } else { "an" }
            ));
        }
        // A fixed (1.9) prelude stores names as two bytes only with persistent
        // code (MICROPY_PERSISTENT_CODE: .mpy loading or saving, frozen .mpy),
        // whose functions the symbol table shows; else as a base-128 uint.
        if p.objects.bytecode_prelude == crate::profile::BytecodePrelude::Fixed {
            let persistent = ["mp_raw_code_load", "mp_raw_code_save", "mp_find_frozen_mpy", "mp_frozen_mpy_names"]
                .into_iter()
                .find(|n| has(n));
            p.objects.bytecode_qstr_bytes = if persistent.is_some() { 2 } else { 0 };
            found.push(match persistent {
                Some(n) => format!("objects.bytecode_qstr_bytes = 2 (persistent code: {n})"),
                None => "objects.bytecode_qstr_bytes = 0 (no persistent code: names are uints)".to_string(),
            });
        }
        // The flash image's start, for a firmware.bin read with the map:
        // CircuitPython's `_sfixed`, else the vector table MicroPython's ports
        // put first (`isr_vector`), else `_stext`.
        // A build with none of them (a RISC-V port) gets its lowest loadable
        // section's address: a derived profile names only what the build has.
        if !has(&p.symbols.flash_start) {
            if let Some(name) = ["isr_vector", "_stext"].into_iter().find(|n| has(n)) {
                p.symbols.flash_start = name.into();
                found.push(format!("symbols.flash_start = {name} (no _sfixed in the symbol table)"));
            } else if let Some(base) = lowest_loadable_address(&file) {
                p.symbols.flash_start = format!("0x{base:08x}");
                found.push(format!(
                    "symbols.flash_start = 0x{base:08x} (no _sfixed, isr_vector or _stext: the first loadable section)"
                ));
            }
        }
    }
    p.validate().map_err(|m| bad(path, format!("derived profile is not usable: {m}")))?;
    Ok(Derived { profile: p, found, missing })
}

/// The lowest address of a loadable section with contents (code or data).
fn lowest_loadable_address(file: &object::File) -> Option<u64> {
    use object::{Object, ObjectSection, SectionKind};
    file.sections()
        .filter(|s| matches!(s.kind(), SectionKind::Text | SectionKind::Data | SectionKind::ReadOnlyData))
        .filter(|s| s.size() > 0)
        .map(|s| s.address())
        .min()
}
