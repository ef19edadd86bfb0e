//! The firmware layout as data.
//!
//! Everything that belongs to one firmware build — block size, table densities, object
//! representation, qstr format, struct offsets inside `mp_state_ctx` and the objects
//! the decoder looks into, the symbol names it resolves — lives in [`Profile`]. The
//! decoder reads these numbers and never hard-codes a firmware constant of its own.
//!
//! [`Profile::circuitpython_3_samd`] is the reference's target (CircuitPython 3.0 on
//! SAMD21/SAMD51, commit 619b0ec164). A TOML file can override any field; missing
//! fields keep the default, so a profile file only says what differs.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How `mp_obj_t` encodes immediates (MicroPython's `MICROPY_OBJ_REPR_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectRepr {
    /// small int `(v<<1)|1`, qstr `(i<<2)|2` (`(i<<3)|2` with immediate objects).
    A,
    /// small int `(v<<2)|1`, qstr `(i<<2)|3` (`(i<<3)|3` with immediate objects).
    B,
    /// small int `(v<<1)|1`, qstr `(i<<3)|6` (`(i<<4)|6` with immediate
    /// objects; 30-bit floats in the other slots).
    C,
    /// 64-bit NaN boxing (`mp_obj_t` is a `uint64_t` whatever the pointer size):
    /// top 16 bits 0x0001 a small int `(v<<1)|1`, 0x0002 a qstr `(i<<1)|1`, 0x0003
    /// an immediate object, 0 a pointer, anything else a double.
    D,
}

/// An immediate `mp_obj_t` as the profile's representation decodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Immediate {
    SmallInt(i64),
    Qstr(u64),
    Object(u64),
}

impl ObjectRepr {
    /// `word` as an `mp_obj_t` of this representation. `immediate_objects`:
    /// the build has MicroPython 1.13's immediate objects (`None`, `True`,
    /// `False` in the word itself), which moved every qstr one bit up
    /// (`MICROPY_OBJ_IMMEDIATE_OBJS`, on in every representation but D).
    pub fn decode(self, word: u64, word_bytes: u32, immediate_objects: bool) -> Immediate {
        let q = u32::from(immediate_objects);
        let bits = word_bytes * 8;
        let sign_extend = |v: u64, width: u32| -> i64 {
            let shift = 64 - width;
            ((v << shift) as i64) >> shift
        };
        match self {
            ObjectRepr::A if word & 1 == 1 => Immediate::SmallInt(sign_extend(word, bits) >> 1),
            ObjectRepr::A if word & ((4 << q) - 1) == 2 => Immediate::Qstr(word >> (2 + q)),
            ObjectRepr::B if word & 3 == 1 => Immediate::SmallInt(sign_extend(word, bits) >> 2),
            ObjectRepr::B if word & ((4 << q) - 1) == 3 => Immediate::Qstr(word >> (2 + q)),
            ObjectRepr::C if word & 1 == 1 => Immediate::SmallInt(sign_extend(word, bits) >> 1),
            // MP_OBJ_IS_QSTR in repr C: the top 9 bits clear rule out the float encoding.
            ObjectRepr::C if word & (0xff80_0000 | ((8 << q) - 1)) == 6 && word >> 32 == 0 => {
                Immediate::Qstr(word >> (3 + q))
            }
            ObjectRepr::D if word >> 48 == 1 => Immediate::SmallInt(((word << 16) as i64) >> 17),
            ObjectRepr::D if word >> 48 == 2 => Immediate::Qstr((word as u32 >> 1) as u64),
            _ => Immediate::Object(word),
        }
    }
}

/// Geometry of the GC heap (py/gc.c).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeapLayout {
    /// Bytes in a machine word and in a pointer (4 or 8).
    pub word_bytes: u32,
    /// `MICROPY_BYTES_PER_GC_BLOCK`.
    pub bytes_per_block: u32,
    /// Blocks described by one allocation-table byte (2 bits each).
    pub blocks_per_atb: u32,
    /// Blocks described by one finaliser-table byte; 0 when the build has no finalisers.
    pub blocks_per_ftb: u32,
    /// Blocks described by one weakref-table byte (`MICROPY_PY_WEAKREF`); 0 if none.
    pub blocks_per_wtb: u32,
    /// Bytes between the allocation table and the next table (MicroPython's
    /// `ALLOC_TABLE_GAP_BYTE`, 1 in current versions; 0 in 1.9 / CircuitPython 3).
    pub alloc_table_gap_bytes: u32,
    /// Blocks described by one byte of CircuitPython's collect table
    /// (`MICROPY_ENABLE_SELECTIVE_COLLECT`, CircuitPython 9/10: a set bit means the
    /// block may hold pointers); 0 when the build has none.
    pub blocks_per_ctb: u32,
}

/// Linker symbols the decoder resolves in the map. Any of them may be an address
/// instead (`0x20040000`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SymbolNames {
    /// First RAM address in each snapshot (gdb's `&_srelocate`).
    pub ram_start: String,
    /// End of RAM in each snapshot (gdb's `&_estack`).
    pub ram_end: String,
    /// Address at which `firmware.bin` starts.
    pub flash_start: String,
    /// The array handed to `gc_init` (start and size).
    pub heap: String,
    /// The interpreter state, `mp_state_ctx`.
    pub state: String,
    /// Names tried, in order, when the map has no `heap` symbol with a size
    /// (MicroPython's ports call the array `gc_heap`).
    pub heap_fallbacks: Vec<String>,
    /// What else the port's `gc_collect` scans, outside `mp_state_ctx` and the
    /// stack (`gc_collect_root` on a static array, a driver's buffer): each a
    /// symbol (its whole object) or `START..END` (symbols or addresses).
    pub port_roots: Vec<String>,
}

/// Where the GC keeps its own geometry inside `mp_state_ctx` (`mem.gc_*`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcStateOffsets {
    /// Read the geometry from the GC state in each snapshot (falling back to
    /// `gc_init`'s computation from the heap symbol when it does not add up).
    pub read: bool,
    pub alloc_table_start: u64,
    pub alloc_table_byte_len: u64,
    pub finaliser_table_start: u64,
    pub pool_start: u64,
    pub pool_end: u64,
    /// `mem.area.next`, in split heaps (`MICROPY_GC_SPLIT_HEAP`): the first member
    /// of `mp_state_mem_area_t`, so the other offsets less this one place the
    /// fields inside every further area.
    pub next: Option<u64>,
    /// CircuitPython's `mem.area.gc_collect_table_start` (see `heap.blocks_per_ctb`).
    pub collect_table_start: Option<u64>,
}

impl Default for GcStateOffsets {
    fn default() -> Self {
        // mp_state_mem_t follows mp_state_vm_t (176 bytes into mp_state_ctx on
        // atmel-samd at 619b0ec164, without MICROPY_MEM_STATS).
        GcStateOffsets {
            read: true,
            alloc_table_start: 176,
            alloc_table_byte_len: 180,
            finaliser_table_start: 184,
            pool_start: 188,
            pool_end: 192,
            next: None,
            collect_table_start: None,
        }
    }
}

/// Byte offsets of fields inside `mp_state_ctx` (py/mpstate.h of the build).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateOffsets {
    pub last_pool: u64,
    pub loaded_modules_table: u64,
    pub dict_main_table: u64,
    pub sys_path_items: u64,
    pub sys_argv_items: u64,
    /// `vm.readline_hist[0]` (a port root pointer); `None` when the port has none.
    pub readline_hist: Option<u64>,
    pub readline_hist_len: u32,
    /// The GC's geometry (`mem.gc_alloc_table_start`, …).
    pub gc: GcStateOffsets,
    /// The root range `gc_collect_start` scans (py/gc.c): from `roots_start`
    /// (0 up to MicroPython 1.9 and in CircuitPython 3.0; `thread.dict_locals`
    /// since MicroPython 1.10) up to `roots_end` (`vm.qstr_last_chunk`).
    /// `None`: unknown, and no reachability is computed.
    pub roots_start: u64,
    pub roots_end: Option<u64>,
    /// The words of `mp_state_ctx` by member path (`vm.dict_main.map.table`,
    /// `vm.readline_hist[3]`) and byte offset, as DWARF lists them, to name root
    /// pointers. Empty: the names follow from the offsets above.
    pub root_names: std::collections::BTreeMap<String, u64>,
}

/// Word indices of fields inside heap objects (py/obj*.h of the build).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectLayout {
    /// `mp_obj_type_t.name` (a qstr): its byte offset and size (a `size_t` in 1.9,
    /// a `uint16_t` after `flags` in current MicroPython).
    pub type_name_offset: u32,
    pub type_name_bytes: u32,
    /// `mp_obj_str_t.len`.
    pub str_len_word: u32,
    /// `mp_obj_str_t.data`.
    pub str_data_word: u32,
    /// `mp_obj_dict_t.map.table`.
    pub dict_table_word: u32,
    /// `mp_obj_instance_t.members.table`.
    pub instance_table_word: u32,
    /// `mp_obj_fun_bc_t.bytecode`.
    pub fun_bc_bytecode_word: u32,
    /// Header words of `qstr_pool_t` before `qstrs[]` (prev, total_prev_len, alloc, len).
    pub qstr_pool_header_words: u32,
    /// How a fixed (1.9) prelude stores the name's qstr: 2, a little-endian
    /// `uint16` (`MICROPY_PERSISTENT_CODE`: CircuitPython, ports that import .mpy
    /// files); 0, a base-128 uint (`mp_encode_uint`, other 1.9 builds). Unused with
    /// the packed prelude.
    pub bytecode_qstr_bytes: u32,
    /// How a function's bytecode begins (py/bc.h of the build).
    pub bytecode_prelude: BytecodePrelude,
    /// `mp_obj_fun_bc_t.context` (current versions: the module context).
    pub fun_bc_context_word: u32,
    /// `mp_module_context_t.constants.qstr_table`, when the build's bytecode names
    /// qstrs by their index in that table (`MICROPY_EMIT_BYTECODE_USES_QSTR_TABLE`);
    /// absent when the prelude holds the qstr itself.
    pub context_qstr_table_word: Option<u32>,
    /// `mp_obj_list_t.items`.
    pub list_items_word: u32,
    /// `mp_obj_set_t.set.table`.
    pub set_table_word: u32,
    /// `mp_obj_array_t.items` (bytearray, array).
    pub array_items_word: u32,
    /// `mp_obj_fun_bc_t.child_table` (current versions: the raw code of the
    /// functions defined inside it); absent in 1.9, where word 2 is the bytecode.
    pub fun_bc_child_table_word: Option<u32>,
    /// `mp_obj_exception_t.traceback_data`.
    pub exception_traceback_word: Option<u32>,
    /// `mp_obj_int_t.mpz.dig` (a long int's digits, `MICROPY_LONGINT_IMPL_MPZ`).
    pub int_digits_word: u32,
    /// `mp_obj_module_t.globals`.
    pub module_globals_word: u32,
    /// Words from `mp_map_t.alloc` to `mp_map_t.table` (alloc just before).
    pub map_alloc_words_before_table: u32,
    /// The keys of a map slot that hold no entry: `MP_OBJ_NULL` (never used)
    /// and `MP_OBJ_SENTINEL` (deleted).
    pub map_empty_key: u64,
    pub map_deleted_key: u64,
}

/// The layout of the bytecode prelude, which holds the function's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BytecodePrelude {
    /// MicroPython 1.9 / CircuitPython 3: `n_state`, `n_exc_stack`, four bytes,
    /// then the code info (its size, the name as a fixed-size qstr).
    Fixed,
    /// MicroPython since the prelude was compressed (1.12, so every 1.2x, and
    /// CircuitPython 7+): a packed signature, a packed size (`n_info`, `n_cells`),
    /// then the name as a variable-length uint (a qstr, or an index into the
    /// module context's qstr table).
    Packed,
}

/// Sizes of the qstr data prefix (`MICROPY_QSTR_BYTES_IN_HASH/LEN`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QstrLayout {
    pub hash_bytes: u32,
    pub len_bytes: u32,
    /// How a pool stores each qstr's hash and length.
    pub pool_format: QstrPoolFormat,
    /// With `arrays`: word index in `qstr_pool_t` of `hashes` (absent when the
    /// build has no hashes) and of `lengths`.
    pub hashes_word: Option<u32>,
    pub lengths_word: u32,
    /// Word indices in `qstr_pool_t` of `prev`, `total_prev_len`, `alloc`, `len`.
    pub pool_prev_word: u32,
    pub pool_total_prev_len_word: u32,
    pub pool_alloc_word: u32,
    pub pool_len_word: u32,
}

/// Where a qstr's hash and length live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QstrPoolFormat {
    /// Before the text: hash, length, bytes, NUL (MicroPython 1.9 / CircuitPython 3).
    Prefixed,
    /// In the pool's `hashes` and `lengths` arrays; `qstrs[i]` points at the bare
    /// text (MicroPython 1.20+).
    Arrays,
}

/// Symbols of the built-in types the decoder gives a kind to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TypeSymbols {
    pub str: String,
    pub dict: String,
    pub map: String,
    pub type_type: String,
    pub tuple: String,
    pub property: String,
    pub bytearray: String,
    /// The bytecode function type (its objects point at bytecode).
    pub fun_bc: String,
    /// Module objects (named by their globals' `__name__`).
    pub module: String,
    /// Every function type (bytecode and built-in).
    pub functions: Vec<String>,
    /// Types whose objects own a block of their own (the items of a list, the
    /// table of a set, the data of a bytes object or an array), and the closure
    /// and cell types; looked up quietly, since a build may leave any of them out.
    pub list: String,
    pub set: String,
    pub frozenset: String,
    pub bytes: String,
    pub array: String,
    pub closure: String,
    pub cell: String,
    pub int: String,
    /// The letter `gc_dump_alloc_table()` (`micropython.mem_info(1)`) prints for a
    /// head block whose first word is one of these types; other heads print `h`.
    pub mem_info_letters: Vec<(String, Vec<String>)>,
    /// Hex digits of each block-map line's offset: 5 (masked to 20 bits) in 1.9 /
    /// CircuitPython 3.0, 8 in current MicroPython.
    pub mem_info_address_digits: u32,
    /// What `%p` puts before the pool address in "GC memory layout; from …":
    /// nothing in MicroPython, `0x` in CircuitPython 7 and later.
    pub mem_info_pointer_prefix: String,
}

/// One firmware build's layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub object_repr: ObjectRepr,
    /// MicroPython 1.13 and later (CircuitPython 6 and later): `None`, `True`
    /// and `False` are immediate objects, and qstrs sit one bit higher in an
    /// `mp_obj_t` (see [`ObjectRepr::decode`]). False for CircuitPython 3.0.
    pub immediate_objects: bool,
    pub heap: HeapLayout,
    pub qstr: QstrLayout,
    pub symbols: SymbolNames,
    pub state: StateOffsets,
    pub objects: ObjectLayout,
    pub types: TypeSymbols,
}

impl Default for HeapLayout {
    fn default() -> Self {
        HeapLayout {
            word_bytes: 4,
            bytes_per_block: 16,
            blocks_per_atb: 4,
            blocks_per_ftb: 8,
            blocks_per_wtb: 0,
            alloc_table_gap_bytes: 0,
            blocks_per_ctb: 0,
        }
    }
}

impl Default for SymbolNames {
    fn default() -> Self {
        SymbolNames {
            ram_start: "_srelocate".into(),
            ram_end: "_estack".into(),
            flash_start: "_sfixed".into(),
            heap: "heap".into(),
            state: "mp_state_ctx".into(),
            heap_fallbacks: vec!["gc_heap".into()],
            port_roots: Vec::new(),
        }
    }
}

impl Default for StateOffsets {
    fn default() -> Self {
        // mp_state_ctx_t = { thread (20 bytes with MICROPY_STACK_CHECK), vm, mem } on
        // atmel-samd at 619b0ec164; the reference's "(gdb) p &mp_state_ctx.vm..." figures.
        StateOffsets {
            last_pool: 20,
            loaded_modules_table: 68,
            dict_main_table: 88,
            sys_path_items: 104,
            sys_argv_items: 120,
            readline_hist: Some(128),
            readline_hist_len: 8,
            gc: GcStateOffsets::default(),
            roots_start: 0,
            roots_end: Some(160),
            root_names: Default::default(),
        }
    }
}

impl Default for ObjectLayout {
    fn default() -> Self {
        ObjectLayout {
            type_name_offset: 4,
            type_name_bytes: 4,
            str_len_word: 2,
            str_data_word: 3,
            dict_table_word: 3,
            instance_table_word: 3,
            fun_bc_bytecode_word: 2,
            qstr_pool_header_words: 4,
            bytecode_qstr_bytes: 2,
            bytecode_prelude: BytecodePrelude::Fixed,
            fun_bc_context_word: 1,
            context_qstr_table_word: None,
            list_items_word: 3,
            set_table_word: 3,
            array_items_word: 3,
            fun_bc_child_table_word: None,
            exception_traceback_word: Some(2),
            int_digits_word: 3,
            module_globals_word: 1,
            map_alloc_words_before_table: 1,
            map_empty_key: 0,
            map_deleted_key: 4,
        }
    }
}

impl Default for QstrLayout {
    fn default() -> Self {
        QstrLayout {
            hash_bytes: 1,
            len_bytes: 1,
            pool_format: QstrPoolFormat::Prefixed,
            hashes_word: None,
            lengths_word: 0,
            pool_prev_word: 0,
            pool_total_prev_len_word: 1,
            pool_alloc_word: 2,
            pool_len_word: 3,
        }
    }
}

impl Default for TypeSymbols {
    fn default() -> Self {
        TypeSymbols {
            str: "mp_type_str".into(),
            dict: "mp_type_dict".into(),
            map: "mp_type_map".into(),
            type_type: "mp_type_type".into(),
            tuple: "mp_type_tuple".into(),
            property: "mp_type_property".into(),
            bytearray: "mp_type_bytearray".into(),
            fun_bc: "mp_type_fun_bc".into(),
            module: "mp_type_module".into(),
            functions: ["bc", "builtin_0", "builtin_1", "builtin_2", "builtin_3", "builtin_var"]
                .iter()
                .map(|s| format!("mp_type_fun_{s}"))
                .collect(),
            list: "mp_type_list".into(),
            set: "mp_type_set".into(),
            frozenset: "mp_type_frozenset".into(),
            bytes: "mp_type_bytes".into(),
            array: "mp_type_array".into(),
            closure: "mp_type_closure".into(),
            cell: "mp_type_cell".into(),
            int: "mp_type_int".into(),
            // py/gc.c gc_dump_alloc_table() at 619b0ec164, in its order.
            mem_info_letters: [
                ("T", &["mp_type_tuple"][..]),
                ("L", &["mp_type_list"]),
                ("D", &["mp_type_dict"]),
                ("S", &["mp_type_str", "mp_type_bytes"]),
                ("A", &["mp_type_bytearray", "mp_type_array"]),
                ("F", &["mp_type_float"]),
                ("B", &["mp_type_fun_bc"]),
                ("M", &["mp_type_module"]),
            ]
            .iter()
            .map(|(c, names)| (c.to_string(), names.iter().map(|n| n.to_string()).collect()))
            .collect(),
            mem_info_address_digits: 5,
            mem_info_pointer_prefix: String::new(),
        }
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile::circuitpython_3_samd()
    }
}

/// The profiles shipped in `data/profiles/`, by file name without `.toml`.
const SHIPPED: [(&str, &str); 6] = [
    ("circuitpython-3.0-atmel-samd", include_str!("../data/profiles/circuitpython-3.0-atmel-samd.toml")),
    ("circuitpython-10-synthetic", include_str!("../data/profiles/circuitpython-10-synthetic.toml")),
    (
        "circuitpython-10.1-unix-coverage-x64",
        include_str!("../data/profiles/circuitpython-10.1-unix-coverage-x64.toml"),
    ),
    ("micropython-1.29-qemu-microbit", include_str!("../data/profiles/micropython-1.29-qemu-microbit.toml")),
    ("micropython-1.2x-synthetic", include_str!("../data/profiles/micropython-1.2x-synthetic.toml")),
    ("micropython-1.2x-64bit-synthetic", include_str!("../data/profiles/micropython-1.2x-64bit-synthetic.toml")),
];

/// The shipped profiles, by file name (`data/profiles/NAME.toml`).
pub fn shipped() -> impl Iterator<Item = (&'static str, Profile)> {
    SHIPPED.iter().filter_map(|(name, text)| Some((*name, Profile::from_toml_str(text).ok()?)))
}

/// The shipped profiles' names, each with its file's header comment (what build
/// it describes), a line per comment line.
pub fn shipped_summaries() -> impl Iterator<Item = (&'static str, Vec<&'static str>)> {
    SHIPPED.iter().map(|(name, text)| {
        let about = text.lines().map_while(|l| l.strip_prefix('#')).map(str::trim).collect();
        (*name, about)
    })
}

impl Profile {
    /// CircuitPython 3.0 on atmel-samd (SAMD21 and SAMD51), the reference's target.
    pub fn circuitpython_3_samd() -> Self {
        Profile {
            name: "circuitpython-3.0-atmel-samd".into(),
            object_repr: ObjectRepr::C,
            immediate_objects: false,
            heap: HeapLayout::default(),
            qstr: QstrLayout::default(),
            symbols: SymbolNames::default(),
            state: StateOffsets::default(),
            objects: ObjectLayout::default(),
            types: TypeSymbols::default(),
        }
    }

    /// `--profile`'s argument: a TOML file, or the name of a shipped profile
    /// (`data/profiles/NAME.toml`) when no such file exists.
    pub fn from_file_or_shipped(path: &Path) -> Result<Self> {
        if !path.exists() {
            let name = path.to_string_lossy();
            if let Some((_, shipped)) = shipped().find(|(n, _)| *n == name) {
                return Ok(shipped);
            }
        }
        Self::from_toml_file(path)
    }

    /// Reads a TOML profile; fields it does not mention keep the default.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml_str(&text).map_err(|message| Error::BadProfile { path: path.into(), message })
    }

    pub fn from_toml_str(text: &str) -> std::result::Result<Self, String> {
        let profile: Profile = toml::from_str(text).map_err(|e| e.to_string())?;
        profile.validate()?;
        Ok(profile)
    }

    /// Bytes of an `mp_obj_t`: a pointer, except with NaN boxing (8).
    pub fn obj_bytes(&self) -> u32 {
        if self.object_repr == ObjectRepr::D {
            8
        } else {
            self.heap.word_bytes
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Rejects layouts the decoder cannot work with, so a typo in a profile is one
    /// clear error instead of a division by zero deep in a decode.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let h = &self.heap;
        if h.word_bytes != 4 && h.word_bytes != 8 {
            return Err(format!("heap.word_bytes must be 4 or 8, found {}", h.word_bytes));
        }
        if h.bytes_per_block == 0
            || !h.bytes_per_block.is_power_of_two()
            || !h.bytes_per_block.is_multiple_of(h.word_bytes)
        {
            return Err(format!(
                "heap.bytes_per_block must be a power of two and a multiple of the word size, found {}",
                h.bytes_per_block
            ));
        }
        if h.blocks_per_atb != 4 {
            return Err(format!("heap.blocks_per_atb must be 4 (2 bits per block), found {}", h.blocks_per_atb));
        }
        if h.blocks_per_ftb != 0 && h.blocks_per_ftb != 8 {
            return Err(format!("heap.blocks_per_ftb must be 8 (1 bit per block) or 0, found {}", h.blocks_per_ftb));
        }
        if h.blocks_per_wtb != 0 && h.blocks_per_wtb != 8 {
            return Err(format!("heap.blocks_per_wtb must be 8 (1 bit per block) or 0, found {}", h.blocks_per_wtb));
        }
        if h.blocks_per_ctb != 0 && h.blocks_per_ctb != 8 {
            return Err(format!("heap.blocks_per_ctb must be 8 (1 bit per block) or 0, found {}", h.blocks_per_ctb));
        }
        let gc = &self.state.gc;
        if let Some(next) = gc.next {
            let fields = [gc.alloc_table_start, gc.alloc_table_byte_len, gc.pool_start, gc.pool_end];
            if fields.iter().any(|&f| f < next) {
                return Err("state.gc.next must be the first member of the GC area (below the other offsets)".into());
            }
        }
        if h.alloc_table_gap_bytes > 64 {
            return Err(format!("heap.alloc_table_gap_bytes must be small, found {}", h.alloc_table_gap_bytes));
        }
        if self.objects.bytecode_qstr_bytes > 8 {
            return Err(format!(
                "objects.bytecode_qstr_bytes must be 0 or 2, found {}",
                self.objects.bytecode_qstr_bytes
            ));
        }
        if !(1..=2).contains(&self.qstr.hash_bytes) || !(1..=2).contains(&self.qstr.len_bytes) {
            return Err("qstr.hash_bytes and qstr.len_bytes must be 1 or 2".into());
        }
        if self.state.readline_hist_len > 64 {
            return Err("state.readline_hist_len must be at most 64".into());
        }
        Ok(())
    }

    /// Names the reference gives to root pointers inside `mp_state_ctx`, keyed by
    /// the byte offset of the pointer.
    pub fn state_root_names(&self) -> Vec<(u64, String)> {
        let s = &self.state;
        if !s.root_names.is_empty() {
            let mut names: Vec<(u64, String)> =
                s.root_names.iter().map(|(n, o)| (*o, format!("mp_state_ctx.{n}"))).collect();
            names.sort();
            return names;
        }
        let mut names = vec![
            (s.last_pool, "mp_state_ctx.vm.last_pool".to_string()),
            (s.dict_main_table, "mp_state_ctx.vm.dict_main.map.table".to_string()),
            (s.loaded_modules_table, "mp_state_ctx.vm.mp_loaded_modules_dict.map.table".to_string()),
            (s.sys_path_items, "mp_state_ctx.vm.mp_sys_path_obj.items".to_string()),
            (s.sys_argv_items, "mp_state_ctx.vm.mp_sys_argv_obj.items".to_string()),
        ];
        if let Some(base) = s.readline_hist {
            for i in 0..s.readline_hist_len as u64 {
                names.push((base + i * self.heap.word_bytes as u64, format!("mp_state_ctx.vm.readline_hist[{i}]")));
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_keeps_every_field() {
        let p = Profile::circuitpython_3_samd();
        let back = Profile::from_toml_str(&p.to_toml()).unwrap();
        assert_eq!(p, back);
    }

    #[test]
    fn partial_toml_overrides_only_what_it_names() {
        let p = Profile::from_toml_str("[state]\nlast_pool = 24\n").unwrap();
        assert_eq!(p.state.last_pool, 24);
        assert_eq!(p.state.dict_main_table, 88);
        assert_eq!(p.heap.bytes_per_block, 16);
    }

    #[test]
    fn bad_profiles_are_rejected_with_the_field_named() {
        let e = Profile::from_toml_str("[heap]\nbytes_per_block = 0\n").unwrap_err();
        assert!(e.contains("bytes_per_block"), "{e}");
        let e = Profile::from_toml_str("[heap]\nbogus = 1\n").unwrap_err();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn repr_c_immediates_match_micropython() {
        let r = ObjectRepr::C;
        assert_eq!(r.decode((5 << 1) | 1, 4, false), Immediate::SmallInt(5));
        assert_eq!(r.decode(0xffff_ffff, 4, false), Immediate::SmallInt(-1));
        assert_eq!(r.decode((300 << 3) | 6, 4, false), Immediate::Qstr(300));
        assert_eq!(r.decode(0x2000_0010, 4, false), Immediate::Object(0x2000_0010));
        // Above the qstr range in repr C (top bits set): a boxed float, not a qstr.
        assert_eq!(r.decode(0xff80_0006, 4, false), Immediate::Object(0xff80_0006));
        assert_eq!(ObjectRepr::A.decode((7 << 2) | 2, 4, false), Immediate::Qstr(7));
        assert_eq!(ObjectRepr::B.decode((7 << 2) | 3, 4, false), Immediate::Qstr(7));
    }

    #[test]
    fn immediate_objects_move_qstrs_one_bit_up_as_in_micropython_1_13() {
        // py/obj.h since 1.13: A qstr (q << 3) | 2, None (0 << 3) | 6; B (q << 3) | 3;
        // C (q << 4) | 6 under the mask 0xff80000f.
        let (a, b, c) = (ObjectRepr::A, ObjectRepr::B, ObjectRepr::C);
        assert_eq!(a.decode((675 << 3) | 2, 4, true), Immediate::Qstr(675));
        assert_eq!(a.decode(6, 4, true), Immediate::Object(6));
        assert_eq!(a.decode((675 << 3) | 2, 4, false), Immediate::Qstr(1350), "the old rule reads it twice as high");
        assert_eq!(b.decode((675 << 3) | 3, 4, true), Immediate::Qstr(675));
        assert_eq!(c.decode((675 << 4) | 6, 4, true), Immediate::Qstr(675));
        assert_eq!(c.decode((1 << 4) | 0xe, 4, true), Immediate::Object(0x1e), "an immediate object");
        assert_eq!(a.decode((5 << 1) | 1, 8, true), Immediate::SmallInt(5));
    }

    #[test]
    fn repr_d_immediates_match_micropython() {
        // MP_OBJ_NEW_SMALL_INT(v) = ((v & 0x7fff_ffff_ffff) << 1) | 0x0001_0000_0000_0001.
        let r = ObjectRepr::D;
        assert_eq!(r.decode(0x0001_0000_0000_000b, 4, false), Immediate::SmallInt(5));
        assert_eq!(r.decode(0x0001_ffff_ffff_ffff, 4, false), Immediate::SmallInt(-1));
        // MP_OBJ_NEW_QSTR(q) = (q << 1) | 0x0002_0000_0000_0001.
        assert_eq!(r.decode(0x0002_0000_0000_0259, 4, false), Immediate::Qstr(300));
        assert_eq!(r.decode(0x2000_0010, 4, false), Immediate::Object(0x2000_0010));
        // A double (1.0 is 0x3ff0...) is no qstr, int or pointer the GC follows.
        assert_eq!(r.decode(0x3ff0_0000_0000_0000, 4, false), Immediate::Object(0x3ff0_0000_0000_0000));
        let p = Profile { object_repr: ObjectRepr::D, ..Profile::default() };
        assert_eq!((p.obj_bytes(), p.heap.word_bytes), (8, 4));
    }
}
