//! The profile a build's debug info gives: each field of [`Profile`] that the
//! build's types decide, set from the offset of a named member (found in the
//! type trees [`super`] reads) or from its symbol table, in stages: the
//! interpreter state's words, the GC's state, object layouts, qstr pools, type
//! names and representation, and the symbols. Whatever the build lacks keeps
//! the base profile's value and is listed as missing.

use std::path::Path;

use object::{Object, ObjectSymbol};

use super::{bad, load_trees, lowest_loadable_address, TypeTree, Units, Walk};
use crate::error::Result;
use crate::profile::{BytecodePrelude, ObjectRepr, Profile, QstrPoolFormat};

/// The interpreter state's struct: the unit that defines it has the structs
/// the profile needs.
const STATE: &str = "mp_state_ctx_t";

/// Where a derived figure goes in the profile.
type U64Field = fn(&mut Profile) -> &mut u64;
type U32Field = fn(&mut Profile) -> &mut u32;

/// A profile derived from DWARF, with what was found and what kept its default.
#[derive(Clone, Debug)]
pub struct Derived {
    pub profile: Profile,
    pub found: Vec<String>,
    pub missing: Vec<String>,
}

/// Derives a profile from the DWARF in `data` (an ELF file), starting from `base`.
pub fn derive_profile(data: &[u8], path: &Path, base: &Profile) -> Result<Derived> {
    let trees = load_trees(data, path)?;
    let state_unit = trees.iter().find(|t| t.find_struct(STATE).is_some()).ok_or_else(|| {
        bad(path, "the debug info has no mp_state_ctx_t; build with -g, or give a profile with --profile")
    })?;
    let mut d = Derivation::new(base, path, &trees, state_unit);
    d.root_names(state_unit);
    d.state_words();
    d.gc_state();
    d.object_words();
    d.qstr_pool_words();
    d.types();
    if let Ok(file) = object::File::parse(data) {
        d.symbols(&file);
    }
    let Derivation { p, found, missing, .. } = d;
    p.validate().map_err(|m| bad(path, format!("derived profile is not usable: {m}")))?;
    Ok(Derived { profile: p, found, missing })
}

/// A profile being derived, and the notes on what was found and what was not.
struct Derivation<'a> {
    p: Profile,
    found: Vec<String>,
    missing: Vec<String>,
    t: Units<'a>,
    /// The target's pointer size in bytes.
    word: u64,
}

impl<'a> Derivation<'a> {
    fn new(base: &Profile, path: &Path, trees: &'a [TypeTree], state_unit: &'a TypeTree) -> Self {
        let mut p = base.clone();
        let file = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        p.name = format!("derived from the DWARF of {file}");
        let word = state_unit.address_size;
        Derivation { p, found: Vec::new(), missing: Vec::new(), t: Units::new(trees, state_unit), word }
    }

    /// The offset of member `path` (dotted) of struct `root`.
    fn member(&self, root: &str, path: &str) -> Option<u64> {
        self.t.path(root, path).map(|(o, _)| o)
    }

    /// The same in words.
    fn member_words(&self, root: &str, path: &str) -> Option<u64> {
        self.member(root, path).map(|b| b / self.word)
    }

    /// Notes `field` as found (`= value`) or missing; returns the value.
    fn note(&mut self, field: &str, value: Option<u64>) -> Option<u64> {
        match value {
            Some(v) => self.found.push(format!("{field} = {v}")),
            None => self.missing.push(field.to_string()),
        }
        value
    }

    fn found(&mut self, note: String) {
        self.found.push(note);
    }

    /// Every word of the interpreter state by its member path, to name roots;
    /// and the word size.
    fn root_names(&mut self, state_unit: &TypeTree) {
        if let Some(st) = state_unit.find_struct(STATE) {
            let mut names = Vec::new();
            state_unit.word_members(st, 0, "", self.word, &mut names, &mut Walk::new());
            // One name a word: the first member at an offset (a struct before its
            // first field).
            names.sort_by_key(|(o, _)| *o);
            names.dedup_by_key(|(o, _)| *o);
            self.found(format!("state.root_names: {} words of mp_state_ctx", names.len()));
            self.p.state.root_names = names.into_iter().map(|(o, n)| (n, o)).collect();
        }
        self.p.heap.word_bytes = self.word as u32;
        self.found(format!("heap.word_bytes = {} (pointer size)", self.word));
    }

    /// The words of the interpreter state the decoder reads: the GC's root
    /// range, the qstr pools, the module and `__main__` dicts, `sys.path` and
    /// `sys.argv`, the REPL history.
    fn state_words(&mut self) {
        // The GC's root range: `thread.dict_locals` (MicroPython 1.10 on; a 1.9
        // build starts at 0, before words that never hold a heap pointer) up to
        // `vm.qstr_last_chunk`.
        self.p.state.roots_start = self.member(STATE, "thread.dict_locals").unwrap_or(0);
        self.p.state.roots_end = self.member(STATE, "vm.qstr_last_chunk");
        match self.p.state.roots_end {
            Some(end) => self.found(format!("state.roots = {}..{end}", self.p.state.roots_start)),
            None => self.missing.push("state.roots_end".to_string()),
        }
        let dict_table = self.dict_table();
        let in_dict = |at: Option<u64>| at.zip(dict_table).map(|(a, b)| a + b);
        if let Some(v) = self.note("state.last_pool", self.member(STATE, "vm.last_pool")) {
            self.p.state.last_pool = v;
        }
        let loaded = in_dict(self.member(STATE, "vm.mp_loaded_modules_dict"));
        if let Some(v) = self.note("state.loaded_modules_table", loaded) {
            self.p.state.loaded_modules_table = v;
        }
        if let Some(v) = self.note("state.dict_main_table", in_dict(self.member(STATE, "vm.dict_main"))) {
            self.p.state.dict_main_table = v;
        }
        self.sys_lists();
        self.readline_history();
    }

    /// The offset of a dict's table: its map's, within the dict.
    fn dict_table(&self) -> Option<u64> {
        self.member("mp_obj_dict_t", "map").zip(self.member("mp_map_t", "table")).map(|(a, b)| a + b)
    }

    /// sys.path and sys.argv only name roots. Current versions keep sys.path in
    /// `sys_mutable[]`; the member paths in `state.root_names` name them anyway,
    /// so their absence is not worth a note then.
    fn sys_lists(&mut self) {
        let list_items = self.member("mp_obj_list_t", "items");
        let lists: [(&str, &str, U64Field); 2] = [
            ("state.sys_path_items", "vm.mp_sys_path_obj", |p| &mut p.state.sys_path_items),
            ("state.sys_argv_items", "vm.mp_sys_argv_obj", |p| &mut p.state.sys_argv_items),
        ];
        for (field, path, target) in lists {
            match self.member(STATE, path).zip(list_items).map(|(a, b)| a + b) {
                Some(v) => {
                    *target(&mut self.p) = v;
                    self.found(format!("{field} = {v}"));
                }
                None if !self.p.state.root_names.is_empty() => {}
                None => self.missing.push(field.to_string()),
            }
        }
    }

    fn readline_history(&mut self) {
        match self.t.path(STATE, "vm.readline_hist") {
            Some((o, m)) => {
                self.p.state.readline_hist = Some(o);
                self.found(format!("state.readline_hist = {o}"));
                if let Some(n) = m.array_len() {
                    self.p.state.readline_hist_len = n.min(64) as u32;
                }
            }
            None => {
                self.p.state.readline_hist = None;
                self.missing.push("state.readline_hist (the port has none)".to_string());
            }
        }
    }

    /// The GC state: `mem.gc_*` in MicroPython 1.9 / CircuitPython 3,
    /// `mem.area.gc_*` since the heap became a list of areas (which also brought
    /// the gap byte after the allocation table, ALLOC_TABLE_GAP_BYTE).
    fn gc_state(&mut self) {
        let area = self.t.path(STATE, "mem.area").is_some();
        let prefix = if area { "mem.area." } else { "mem." };
        let gc_member = |d: &Self, name: &str| d.member(STATE, &format!("{prefix}{name}"));
        let mut all = true;
        let fields: [(&str, &str, U64Field); 4] = [
            ("state.gc.alloc_table_start", "gc_alloc_table_start", |p| &mut p.state.gc.alloc_table_start),
            ("state.gc.alloc_table_byte_len", "gc_alloc_table_byte_len", |p| &mut p.state.gc.alloc_table_byte_len),
            ("state.gc.pool_start", "gc_pool_start", |p| &mut p.state.gc.pool_start),
            ("state.gc.pool_end", "gc_pool_end", |p| &mut p.state.gc.pool_end),
        ];
        for (field, name, target) in fields {
            match self.note(field, gc_member(self, name)) {
                Some(v) => *target(&mut self.p) = v,
                None => all = false,
            }
        }
        match gc_member(self, "gc_finaliser_table_start") {
            Some(v) => {
                self.p.state.gc.finaliser_table_start = v;
                self.found(format!("state.gc.finaliser_table_start = {v}"));
            }
            None => {
                self.p.heap.blocks_per_ftb = 0;
                self.found("heap.blocks_per_ftb = 0 (no gc_finaliser_table_start)".to_string());
            }
        }
        self.p.state.gc.read = all;
        if area {
            self.heap_areas(gc_member(self, "next"));
        }
        // CircuitPython 9/10's collect table (MICROPY_ENABLE_SELECTIVE_COLLECT).
        self.p.state.gc.collect_table_start = gc_member(self, "gc_collect_table_start");
        if let Some(v) = self.p.state.gc.collect_table_start {
            self.p.heap.blocks_per_ctb = 8;
            self.found(format!("state.gc.collect_table_start = {v}, heap.blocks_per_ctb = 8"));
        }
        if gc_member(self, "gc_weakref_table_start").is_some() {
            self.p.heap.blocks_per_wtb = 8;
            self.found("heap.blocks_per_wtb = 8 (gc_weakref_table_start)".to_string());
        }
    }

    /// What the versions with `mem.area` changed besides; `next` is the area
    /// member chaining a split heap.
    fn heap_areas(&mut self, next: Option<u64>) {
        self.p.heap.alloc_table_gap_bytes = 1;
        self.found("heap.alloc_table_gap_bytes = 1 (mem.area: a current MicroPython GC)".to_string());
        // The same versions changed the bytecode prelude (names are not read) and
        // print 8-digit offsets in mem_info.
        self.p.objects.bytecode_qstr_bytes = 0;
        self.p.types.mem_info_address_digits = 8;
        self.found("objects.bytecode_qstr_bytes = 0, types.mem_info_address_digits = 8 (current MicroPython)".to_string());
        // CircuitPython (its reload exception) prints `%p` with `0x` since 7.0.
        if self.t.path(STATE, "vm.mp_reload_exception").is_some() {
            self.p.types.mem_info_pointer_prefix = "0x".into();
            self.found("types.mem_info_pointer_prefix = 0x (CircuitPython: vm.mp_reload_exception)".to_string());
        }
        // Split heaps: areas chained through `next`, the first member.
        self.p.state.gc.next = next;
        if let Some(v) = next {
            self.found(format!("state.gc.next = {v} (a split heap)"));
        }
    }

    /// Where objects keep what the decoder reads, in words.
    fn object_words(&mut self) {
        // Qstr pools: hashes and lengths in arrays (current) or before each text (1.9).
        if let Some(lengths) = self.member("qstr_pool_t", "lengths") {
            self.p.qstr.pool_format = QstrPoolFormat::Arrays;
            self.p.qstr.lengths_word = (lengths / self.word) as u32;
            self.p.qstr.hashes_word = self.member_words("qstr_pool_t", "hashes").map(|w| w as u32);
            self.found(format!("qstr.pool_format = arrays (lengths at word {})", lengths / self.word));
        }
        let word = self.word;
        let words = move |v: Option<u64>| v.map(|b| b / word);
        let instance_table = self.member("mp_obj_instance_t", "members").zip(self.member("mp_map_t", "table"));
        let required: [(&str, Option<u64>, U32Field); 6] = [
            ("objects.str_len_word", self.member_words("mp_obj_str_t", "len"), |p| &mut p.objects.str_len_word),
            ("objects.str_data_word", self.member_words("mp_obj_str_t", "data"), |p| &mut p.objects.str_data_word),
            ("objects.dict_table_word", words(self.dict_table()), |p| &mut p.objects.dict_table_word),
            ("objects.instance_table_word", words(instance_table.map(|(a, b)| a + b)), |p| {
                &mut p.objects.instance_table_word
            }),
            ("objects.fun_bc_bytecode_word", self.member_words("mp_obj_fun_bc_t", "bytecode"), |p| {
                &mut p.objects.fun_bc_bytecode_word
            }),
            ("objects.qstr_pool_header_words", self.member_words("qstr_pool_t", "qstrs"), |p| {
                &mut p.objects.qstr_pool_header_words
            }),
        ];
        for (field, value, target) in required {
            if let Some(w) = self.note(field, value) {
                *target(&mut self.p) = w as u32;
            }
        }
        if let Some(w) = self.member_words("mp_obj_module_t", "globals") {
            self.p.objects.module_globals_word = w as u32;
            self.found(format!("objects.module_globals_word = {w}"));
        }
        if let (Some(alloc), Some(table)) = (self.member("mp_map_t", "alloc"), self.member("mp_map_t", "table")) {
            if let Some(w) = words(table.checked_sub(alloc)) {
                self.p.objects.map_alloc_words_before_table = w as u32;
                self.found(format!("objects.map_alloc_words_before_table = {w}"));
            }
        }
    }

    /// The words of a qstr pool's header, and the optional object words.
    fn qstr_pool_words(&mut self) {
        let header: [(&str, U32Field); 4] = [
            ("prev", |p| &mut p.qstr.pool_prev_word),
            ("total_prev_len", |p| &mut p.qstr.pool_total_prev_len_word),
            ("alloc", |p| &mut p.qstr.pool_alloc_word),
            ("len", |p| &mut p.qstr.pool_len_word),
        ];
        for (field, target) in header {
            if let Some(w) = self.member_words("qstr_pool_t", field) {
                *target(&mut self.p) = w as u32;
                self.found(format!("qstr.pool_{field}_word = {w}"));
            }
        }
        if let Some(w) = self.member_words("mp_obj_fun_bc_t", "child_table") {
            self.p.objects.fun_bc_child_table_word = Some(w as u32);
            self.found(format!("objects.fun_bc_child_table_word = {w}"));
        }
        if let Some(w) = self.member_words("mp_obj_exception_t", "traceback_data") {
            self.p.objects.exception_traceback_word = Some(w as u32);
            self.found(format!("objects.exception_traceback_word = {w}"));
        }
        // Functions point at their module context since the bytecode got a packed
        // prelude; its name is then an index into the context's qstr table when the
        // build has one (MICROPY_EMIT_BYTECODE_USES_QSTR_TABLE).
        if let Some(context) = self.member_words("mp_obj_fun_bc_t", "context") {
            let qstr_table = self.member_words("mp_module_context_t", "constants.qstr_table").map(|w| w as u32);
            let o = &mut self.p.objects;
            o.bytecode_prelude = BytecodePrelude::Packed;
            o.fun_bc_context_word = context as u32;
            o.context_qstr_table_word = qstr_table;
            self.found(format!(
                "objects.bytecode_prelude = packed, fun_bc_context_word = {context}, context_qstr_table_word = {qstr_table:?}"
            ));
        }
    }

    /// A type's name, the object representation, the block size, and the
    /// sizes of a qstr's hash and length.
    fn types(&mut self) {
        match self.t.path("mp_obj_type_t", "name") {
            Some((offset, m)) => {
                self.p.objects.type_name_offset = offset as u32;
                self.found(format!("objects.type_name_offset = {offset}"));
                if let Some(size) = m.type_size() {
                    self.p.objects.type_name_bytes = size as u32;
                    self.found(format!("objects.type_name_bytes = {size}"));
                }
            }
            None => self.missing.push("objects.type_name_offset".to_string()),
        }
        // NaN boxing (MICROPY_OBJ_REPR_D) is the one representation debug info shows:
        // `mp_obj_t` is a 64-bit integer while pointers are narrower.
        if self.t.size_of_typedef("mp_obj_t").is_some_and(|n| n == 8 && self.word < 8) {
            self.p.object_repr = ObjectRepr::D;
            self.found("object_repr = D (mp_obj_t is 64 bits, pointers 32)".to_string());
        }
        // MICROPY_BYTES_PER_GC_BLOCK's default: four object words (16 bytes on 32-bit
        // ports, 32 on 64-bit ones and with NaN boxing). Not in the debug info itself.
        self.p.heap.bytes_per_block = 4 * self.p.obj_bytes();
        let bytes = self.p.heap.bytes_per_block;
        self.found(format!("heap.bytes_per_block = {bytes} (MicroPython's default: 4 object words)"));
        if let Some(n) = self.t.size_of_typedef("qstr_hash_t") {
            self.p.qstr.hash_bytes = n as u32;
            self.found(format!("qstr.hash_bytes = {n}"));
        }
        if let Some(n) = self.t.size_of_typedef("qstr_len_t") {
            self.p.qstr.len_bytes = n as u32;
            self.found(format!("qstr.len_bytes = {n}"));
        }
    }

    /// What the symbol table says: the RAM and flash start symbols, immediate
    /// objects, and how a fixed prelude stores names.
    fn symbols(&mut self, file: &object::File) {
        let has = |name: &str| file.symbols().any(|s| s.name() == Ok(name));
        // The RAM start symbol: CircuitPython's `_srelocate`, else MicroPython's `_sdata`.
        if !has(&self.p.symbols.ram_start) && has("_sdata") {
            self.p.symbols.ram_start = "_sdata".into();
            self.found("symbols.ram_start = _sdata (no _srelocate in the symbol table)".to_string());
        }
        // MicroPython 1.13's immediate objects (`None`, `True`, `False` in the
        // word, and qstrs one bit higher) left no `mp_const_none_obj` behind.
        if self.p.object_repr != ObjectRepr::D {
            let immediate = !has("mp_const_none_obj");
            self.p.immediate_objects = immediate;
            let article = if immediate { "no" } else { "an" };
            self.found(format!("immediate_objects = {immediate} ({article} mp_const_none_obj in the symbol table)"));
        }
        // A fixed (1.9) prelude stores names as two bytes only with persistent
        // code (MICROPY_PERSISTENT_CODE: .mpy loading or saving, frozen .mpy),
        // whose functions the symbol table shows; else as a base-128 uint.
        if self.p.objects.bytecode_prelude == BytecodePrelude::Fixed {
            let persistent = ["mp_raw_code_load", "mp_raw_code_save", "mp_find_frozen_mpy", "mp_frozen_mpy_names"]
                .into_iter()
                .find(|n| has(n));
            self.p.objects.bytecode_qstr_bytes = if persistent.is_some() { 2 } else { 0 };
            self.found(match persistent {
                Some(n) => format!("objects.bytecode_qstr_bytes = 2 (persistent code: {n})"),
                None => "objects.bytecode_qstr_bytes = 0 (no persistent code: names are uints)".to_string(),
            });
        }
        self.flash_start(file, &has);
    }

    /// The flash image's start, for a firmware.bin read with the map:
    /// CircuitPython's `_sfixed`, else the vector table MicroPython's ports put
    /// first (`isr_vector`), else `_stext`. A build with none of them (a RISC-V
    /// port) gets its lowest loadable section's address: a derived profile
    /// names only what the build has.
    fn flash_start(&mut self, file: &object::File, has: &dyn Fn(&str) -> bool) {
        if has(&self.p.symbols.flash_start) {
            return;
        }
        if let Some(name) = ["isr_vector", "_stext"].into_iter().find(|n| has(n)) {
            self.p.symbols.flash_start = name.into();
            self.found(format!("symbols.flash_start = {name} (no _sfixed in the symbol table)"));
        } else if let Some(base) = lowest_loadable_address(file) {
            self.p.symbols.flash_start = format!("0x{base:08x}");
            self.found(format!(
                "symbols.flash_start = 0x{base:08x} (no _sfixed, isr_vector or _stext: the first loadable section)"
            ));
        }
    }
}
