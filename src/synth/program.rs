//! A CircuitPython program, simulated at the level of the objects it allocates:
//! boot (`mp_init`: `dict_main`, `sys.modules`, `sys.path`), module-level classes
//! and functions (long-lived: type objects, their dicts, bytecode functions, new
//! qstrs in pools and chunks), then a main loop that makes short-lived strings,
//! tuples, bytearrays and instances, keeps some of them (a growing log list, a
//! cache dict — the slow leak that fragments the heap), types REPL lines into the
//! readline history, and calls `gc.collect()` now and then.
//!
//! Objects are laid out as py/obj*.h at 619b0ec164 has them (32-bit, repr C), and
//! every intermediate pointer is kept on the simulated stack while the next
//! allocation runs, as the C code keeps it in a register or local.

use std::collections::HashMap;

use super::gc::GcSim;
use super::image::{qstr_hash, Flavor, Layout, StateMap};
use super::rng::Rng;
use crate::decode::Category;

/// Why the program stopped an operation.
#[derive(Debug, PartialEq, Eq)]
pub enum Halt {
    /// `MemoryError`: no room even after a collection.
    OutOfMemory,
    /// The dump has all the snapshots asked for.
    Done,
}

type Step<T> = Result<T, Halt>;

/// Map slot markers (py/obj.h): empty and deleted.
const MP_OBJ_NULL: u64 = 0;
const MP_OBJ_SENTINEL: u64 = 4;
/// `get_hash_alloc_greater_or_equal_to` in py/map.c.
const HASH_ALLOCS: [u64; 16] = [0, 2, 4, 6, 8, 10, 12, 17, 23, 29, 37, 47, 59, 73, 97, 127];

pub fn small_int(v: i64) -> u64 {
    ((v << 1) | 1) as u32 as u64
}

/// A qstr as an `mp_obj_t` in CircuitPython 3.0's representation (C).
pub fn qstr_obj(id: u64) -> u64 {
    Flavor::CircuitPython3.qstr_obj(id)
}

struct Class {
    address: u64,
    methods: Vec<u64>,
}

pub struct Program<'a, 's> {
    pub gc: GcSim<'s>,
    l: &'a Layout,
    rng: Rng,
    sp: u64,
    stack_bottom: u64,
    qstrs: Vec<String>,
    qstr_ids: HashMap<String, u64>,
    last_pool: u64,
    pool_alloc: u64,
    pool_len: u64,
    chunk: Option<(u64, u64, u64)>, // address, alloc, used
    classes: Vec<Class>,
    log_list: u64,
    cache: u64,
    iteration: u64,
    /// Current flavours: `__main__`'s `mp_module_context_t`, its qstr table (the
    /// names its bytecode refers to by index) and the qstrs in it.
    context: Option<(u64, u64, Vec<u64>)>,
    /// Run the busy main loop ([`Program::iterate_busy`]) instead of the light one.
    pub busy: bool,
    /// The busy loop leaks: `history` is never cut, and `cache` takes a new key
    /// now and then, never dropped.
    pub leak: bool,
    /// MemoryErrors the program caught itself (its bursts).
    pub memory_errors_caught: u64,
}

/// The classes the program defines, with their methods.
pub const CLASSES: [(&str, &[&str]); 5] = [
    ("Sensor", &["__init__", "read", "calibrate"]),
    ("Button", &["__init__", "pressed", "debounce"]),
    ("Logger", &["__init__", "log", "flush", "rotate"]),
    ("Display", &["__init__", "show", "clear"]),
    ("Scheduler", &["__init__", "tick", "add_task"]),
];

/// The functions the program defines at module level.
pub const FUNCTIONS: [&str; 4] = ["setup", "loop_once", "format_reading", "log_value"];

/// Entries in the simulated module's qstr table.
const QSTR_TABLE_LEN: u64 = 64;

impl<'a, 's> Program<'a, 's> {
    pub fn new(gc: GcSim<'s>, l: &'a Layout, seed: u64) -> Self {
        let qstrs = l.rom_qstrs.clone();
        let qstr_ids = qstrs.iter().enumerate().map(|(i, q)| (q.clone(), i as u64)).collect();
        let mut p = Program {
            gc,
            l,
            rng: Rng::new(seed),
            sp: l.stack_top,
            stack_bottom: l.stack_top - l.stack_bytes,
            qstrs,
            qstr_ids,
            last_pool: l.rom_pool,
            pool_alloc: 10,
            pool_len: 0,
            chunk: None,
            classes: Vec::new(),
            log_list: 0,
            cache: 0,
            leak: false,
            memory_errors_caught: 0,
            iteration: 0,
            context: None,
            busy: false,
        };
        p.set_roots();
        p
    }

    fn set_roots(&mut self) {
        let s = self.l.state;
        self.gc.roots = vec![(s, s + self.sm().qstr_last_chunk), (self.sp, self.l.stack_top)];
    }

    /// Keeps `v` alive across the next allocations (a C local on the stack).
    fn push(&mut self, v: u64) {
        let w = self.wb();
        if self.sp - w >= self.stack_bottom {
            self.sp -= w;
            self.gc.set_word(self.sp, v);
            self.set_roots();
        }
    }

    fn depth(&self) -> u64 {
        self.sp
    }

    /// Returns from a frame: the words below stay in RAM as stale data.
    fn pop_to(&mut self, sp: u64) {
        self.sp = sp;
        self.set_roots();
    }

    fn alloc(&mut self, n: u64, finaliser: bool, long_lived: bool, kind: Category) -> Step<u64> {
        if self.gc.done() {
            return Err(Halt::Done);
        }
        let r = self.gc.alloc(n, finaliser, long_lived, kind).ok_or(Halt::OutOfMemory);
        if self.gc.done() {
            return Err(Halt::Done);
        }
        r
    }

    fn qobj(&self, id: u64) -> u64 {
        self.l.flavor.qstr_obj(id)
    }

    fn sm(&self) -> StateMap {
        self.l.state_map
    }

    fn mp(&self) -> bool {
        self.l.flavor.current()
    }

    fn ty(&self, name: &str) -> u64 {
        self.l.type_address(name)
    }

    /// Bytes in a word of the target: struct offsets below are in words.
    fn wb(&self) -> u64 {
        self.gc.word_bytes
    }

    fn w(&mut self, address: u64, words: &[u64]) {
        let w = self.wb();
        for (i, v) in words.iter().enumerate() {
            self.gc.set_word(address + w * i as u64, *v);
        }
    }

    // --- qstrs (py/qstr.c) -------------------------------------------------------

    /// `qstr_from_str`: finds or interns `text`, allocating chunks and pools.
    pub fn intern(&mut self, text: &str) -> Step<u64> {
        if let Some(id) = self.qstr_ids.get(text) {
            return Ok(*id);
        }
        // The stored form: hash, length, text, NUL; MicroPython keeps only text, NUL.
        let n = text.len() as u64 + if self.mp() { 1 } else { 3 };
        let frame = self.depth();
        if let Some((_, alloc, used)) = self.chunk {
            if used + n > alloc {
                // A full chunk is left as it is; its qstrs stay reachable from the pools.
                self.chunk = None;
            }
        }
        if self.chunk.is_none() {
            let al = n.max(128);
            let c = self.alloc(al, false, true, Category::QstrChunk)?;
            let zeros = vec![0u8; al as usize];
            self.gc.set_bytes(c, &zeros);
            self.chunk = Some((c, al, 0));
            let s = self.l.state;
            self.w(s + self.sm().qstr_last_chunk, &[c, al, 0]);
        }
        let (c, al, used) = self.chunk.unwrap_or_default();
        let at = c + used;
        let mut bytes =
            if self.mp() { Vec::new() } else { vec![qstr_hash(text.as_bytes(), 1) as u8, text.len() as u8] };
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(0);
        self.gc.set_bytes(at, &bytes);
        self.chunk = Some((c, al, used + n));
        self.gc.set_word(self.l.state + self.sm().qstr_last_used, used + n);
        self.push(at);
        // qstr_add: a new pool of twice the size when the last one is full.
        if self.pool_len >= self.pool_alloc || self.last_pool == self.l.rom_pool {
            // Every qstr so far lives in an older pool.
            let total_prev = self.qstrs.len() as u64;
            let alloc = self.pool_alloc * 2;
            // MicroPython: two more header words (hashes, lengths) and the two
            // byte arrays after qstrs[], in the same allocation.
            let w = self.wb();
            let bytes = if self.mp() { 6 * w + (w + 2) * alloc } else { 4 * w + w * alloc };
            let pool = self.alloc(bytes, false, true, Category::QstrPool)?;
            let zeros = vec![0u8; bytes as usize];
            self.gc.set_bytes(pool, &zeros);
            self.w(pool, &[self.last_pool, total_prev, alloc, 0]);
            if self.mp() {
                let hashes = pool + 6 * w + w * alloc;
                self.w(pool + 4 * w, &[hashes, hashes + alloc]);
            }
            self.last_pool = pool;
            self.pool_alloc = alloc;
            self.pool_len = 0;
            self.gc.set_word(self.l.state + self.sm().last_pool, pool);
        }
        let w = self.wb();
        if self.mp() {
            let base = self.last_pool + 6 * w;
            self.gc.set_word(base + w * self.pool_len, at);
            let hashes = base + w * self.pool_alloc;
            let entry = [qstr_hash(text.as_bytes(), 1) as u8];
            self.gc.set_bytes(hashes + self.pool_len, &entry);
            self.gc.set_bytes(hashes + self.pool_alloc + self.pool_len, &[text.len() as u8]);
        } else {
            self.gc.set_word(self.last_pool + 4 * w + w * self.pool_len, at);
        }
        self.pool_len += 1;
        self.gc.set_word(self.last_pool + 3 * w, self.pool_len);
        self.pop_to(frame);
        let id = self.qstrs.len() as u64;
        self.qstrs.push(text.to_string());
        self.qstr_ids.insert(text.to_string(), id);
        Ok(id)
    }

    // --- maps and dicts (py/map.c, py/objdict.c) ---------------------------------

    fn key_hash(&self, key: u64) -> u64 {
        if let Some(id) = self.l.flavor.qstr_id(key) {
            self.qstrs.get(id as usize).map_or(id, |q| qstr_hash(q.as_bytes(), 1))
        } else {
            key >> 1
        }
    }

    /// `mp_map_lookup(..., MP_MAP_LOOKUP_ADD_IF_NOT_FOUND)` then store the value.
    /// `map_at` is the address of the `mp_map_t` (bits, alloc, table).
    pub fn map_store(&mut self, map_at: u64, key: u64, value: u64, long_lived: bool) -> Step<()> {
        let w = self.wb();
        let bits = self.gc.word(map_at);
        let used = bits >> 3;
        let alloc = self.gc.word(map_at + w);
        let table = self.gc.word(map_at + 2 * w);
        if let Some(slot) = self.find_slot(table, alloc, key, true) {
            if self.gc.word(slot) == key {
                self.gc.set_word(slot + w, value);
                return Ok(());
            }
        }
        if used + 1 >= alloc {
            let new_alloc = HASH_ALLOCS.iter().copied().find(|a| *a > alloc + 1).unwrap_or(alloc * 2 + 1);
            let frame = self.depth();
            self.push(key);
            self.push(value);
            let new_table = self.alloc(new_alloc * 2 * w, false, long_lived, Category::MapTable)?;
            let zeros = vec![0u8; (new_alloc * 2 * w) as usize];
            self.gc.set_bytes(new_table, &zeros);
            let old: Vec<(u64, u64)> = (0..alloc)
                .map(|i| (self.gc.word(table + 2 * w * i), self.gc.word(table + 2 * w * i + w)))
                .filter(|(k, _)| *k != MP_OBJ_NULL && *k != MP_OBJ_SENTINEL)
                .collect();
            self.w(map_at + w, &[new_alloc, new_table]);
            for (k, v) in &old {
                if let Some(slot) = self.find_slot(new_table, new_alloc, *k, false) {
                    self.w(slot, &[*k, *v]);
                }
            }
            self.gc.set_word(map_at, (bits & 7) | ((old.len() as u64) << 3));
            if table != 0 {
                self.gc.free(table);
            }
            self.pop_to(frame);
            return self.map_store(map_at, key, value, long_lived);
        }
        if let Some(slot) = self.find_slot(table, alloc, key, false) {
            self.w(slot, &[key, value]);
            self.gc.set_word(map_at, (bits & 7) | ((used + 1) << 3));
        }
        Ok(())
    }

    /// Linear probing from the key's hash: the slot holding `key`, or (when
    /// `existing_only` is false) the first empty or deleted slot.
    fn find_slot(&self, table: u64, alloc: u64, key: u64, existing_only: bool) -> Option<u64> {
        if alloc == 0 || table == 0 {
            return None;
        }
        let start = self.key_hash(key) % alloc;
        let mut free = None;
        for i in 0..alloc {
            let slot = table + 2 * self.wb() * ((start + i) % alloc);
            let k = self.gc.word(slot);
            if k == key {
                return Some(slot);
            }
            if (k == MP_OBJ_NULL || k == MP_OBJ_SENTINEL) && free.is_none() {
                free = Some(slot);
            }
            if k == MP_OBJ_NULL {
                break;
            }
        }
        if existing_only {
            None
        } else {
            free
        }
    }

    /// `mp_map_lookup(..., MP_MAP_LOOKUP_REMOVE_IF_FOUND)`: the key becomes the
    /// deleted marker; the value stays in the slot until it is reused.
    pub fn map_delete(&mut self, map_at: u64, key: u64) {
        let w = self.wb();
        let alloc = self.gc.word(map_at + w);
        let table = self.gc.word(map_at + 2 * w);
        if let Some(slot) = self.find_slot(table, alloc, key, true) {
            self.gc.set_word(slot, MP_OBJ_SENTINEL);
            let bits = self.gc.word(map_at);
            self.gc.set_word(map_at, (bits & 7) | (((bits >> 3).saturating_sub(1)) << 3));
        }
    }

    pub fn new_dict(&mut self, n: u64, long_lived: bool) -> Step<u64> {
        let w = self.wb();
        let d = self.alloc(4 * w, false, long_lived, Category::Dict)?;
        let frame = self.depth();
        self.push(d);
        self.w(d, &[self.ty("mp_type_dict"), 1, 0, 0]);
        if n > 0 {
            let t = self.alloc(n * 2 * w, false, long_lived, Category::MapTable)?;
            let zeros = vec![0u8; (n * 2 * w) as usize];
            self.gc.set_bytes(t, &zeros);
            self.w(d + 2 * w, &[n, t]);
        }
        self.pop_to(frame);
        Ok(d)
    }

    // --- objects -----------------------------------------------------------------

    pub fn new_str(&mut self, text: &str) -> Step<u64> {
        let len = text.len() as u64;
        let data = self.alloc(len + 1, false, false, Category::StringData)?;
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(0);
        self.gc.set_bytes(data, &bytes);
        let frame = self.depth();
        self.push(data);
        let s = self.alloc(4 * self.wb(), false, false, Category::Str)?;
        self.w(s, &[self.ty("mp_type_str"), qstr_hash(text.as_bytes(), 2), len, data]);
        self.pop_to(frame);
        Ok(s)
    }

    pub fn new_tuple(&mut self, items: &[u64]) -> Step<u64> {
        let w = self.wb();
        let t = self.alloc(2 * w + w * items.len() as u64, false, false, Category::Tuple)?;
        self.w(t, &[self.ty("mp_type_tuple"), items.len() as u64]);
        self.w(t + 2 * w, items);
        Ok(t)
    }

    pub fn new_bytearray(&mut self, n: u64) -> Step<u64> {
        let data = self.alloc(n, false, false, Category::Unknown)?;
        let bytes: Vec<u8> = (0..n).map(|_| 0x20 + self.rng.below(0x5f) as u8).collect();
        self.gc.set_bytes(data, &bytes);
        let frame = self.depth();
        self.push(data);
        let b = self.alloc(4 * self.wb(), false, false, Category::Bytearray)?;
        self.w(b, &[self.ty("mp_type_bytearray"), b'B' as u64, n, data]);
        self.pop_to(frame);
        Ok(b)
    }

    pub fn new_list(&mut self, alloc: u64, long_lived: bool) -> Step<u64> {
        let w = self.wb();
        let l = self.alloc(4 * w, false, long_lived, Category::Unknown)?;
        self.w(l, &[self.ty("mp_type_list"), 0, 0, 0]);
        let frame = self.depth();
        self.push(l);
        let items = self.alloc(w * alloc, false, long_lived, Category::Unknown)?;
        let zeros = vec![0u8; (w * alloc) as usize];
        self.gc.set_bytes(items, &zeros);
        self.w(l + w, &[alloc, 0, items]);
        self.pop_to(frame);
        Ok(l)
    }

    pub fn list_append(&mut self, list: u64, v: u64) -> Step<()> {
        let w = self.wb();
        let (alloc, len, items) = (self.gc.word(list + w), self.gc.word(list + 2 * w), self.gc.word(list + 3 * w));
        let items = if len >= alloc {
            let frame = self.depth();
            self.push(v);
            let new = self.gc.realloc(items, w * alloc * 2).ok_or(Halt::OutOfMemory)?;
            self.pop_to(frame);
            if self.gc.done() {
                return Err(Halt::Done);
            }
            for i in alloc..alloc * 2 {
                self.gc.set_word(new + w * i, 0);
            }
            self.w(list + w, &[alloc * 2, len, new]);
            new
        } else {
            items
        };
        self.gc.set_word(items + w * len, v);
        self.gc.set_word(list + 2 * w, len + 1);
        Ok(())
    }

    /// `list.pop(k)`: the items after `k` move down one slot.
    pub fn list_pop(&mut self, list: u64, k: u64) {
        let w = self.wb();
        let (len, items) = (self.gc.word(list + 2 * w), self.gc.word(list + 3 * w));
        if k >= len {
            return;
        }
        for j in k..len - 1 {
            let next = self.gc.word(items + w * (j + 1));
            self.gc.set_word(items + w * j, next);
        }
        self.gc.set_word(items + w * (len - 1), 0);
        self.gc.set_word(list + 2 * w, len - 1);
    }

    /// `list.clear()`: back to four slots (`mp_obj_list_clear` → m_renew).
    pub fn list_clear(&mut self, list: u64) {
        let w = self.wb();
        let items = self.gc.word(list + 3 * w);
        if let Some(new) = self.gc.realloc(items, 4 * w) {
            for i in 0..4 {
                self.gc.set_word(new + w * i, 0);
            }
            self.w(list + w, &[4, 0, new]);
        }
    }

    /// A bytecode function: `mp_obj_fun_bc_t` and its bytecode (prelude, code info
    /// with the simple name, opcodes).
    pub fn new_function(&mut self, name: &str) -> Step<u64> {
        let name_q = self.intern(name)?;
        let n_pos = self.rng.range(0, 3);
        let n_state = self.rng.range(2, 12);
        let line_info: Vec<u8> = (0..self.rng.range(1, 6)).map(|_| self.rng.range(1, 0x7f) as u8).collect();
        let mut code = if self.mp() {
            self.packed_prelude(name_q, n_state, n_pos, &line_info)
        } else {
            let src_q = self.qstr_ids.get("code.py").copied().unwrap_or(0);
            let mut code = vec![n_state as u8, 0, 0, n_pos as u8, 0, 0];
            let code_info_size = 1 + 2 + 2 + line_info.len() as u64 + 1;
            code.push(code_info_size as u8);
            code.extend_from_slice(&(name_q as u16).to_le_bytes());
            code.extend_from_slice(&(src_q as u16).to_le_bytes());
            code.extend_from_slice(&line_info);
            code.push(0);
            code.push(0xff); // closure/local list terminator
            code
        };
        let ops = self.rng.range(8, 120);
        code.extend((0..ops).map(|_| self.rng.range(0x10, 0x7f) as u8));
        code.push(0x5b); // RETURN_VALUE
        let bc = self.alloc(code.len() as u64, false, true, Category::Bytecode)?;
        self.gc.set_bytes(bc, &code);
        let frame = self.depth();
        self.push(bc);
        let f = self.alloc(4 * self.wb(), false, true, Category::Function)?;
        if self.mp() {
            // base, context, child_table, bytecode
            let context = self.context.as_ref().map_or(0, |c| c.0);
            self.w(f, &[self.ty("mp_type_fun_bc"), context, 0, bc]);
        } else {
            self.w(f, &[self.ty("mp_type_fun_bc"), self.l.state + self.sm().dict_main, bc, 0]);
        }
        self.pop_to(frame);
        Ok(f)
    }

    /// A current prelude (py/bc.h): the signature packed as `xSSSSEAA`, the size as
    /// `xIIIIIIC`, then the source info: the name as its index in the module's
    /// qstr table (a big-endian base-128 uint), and line-number bytes.
    fn packed_prelude(&mut self, name_q: u64, n_state: u64, n_pos: u64, line_info: &[u8]) -> Vec<u8> {
        let index = self.qstr_table_index(name_q);
        let mut name = vec![(index & 0x7f) as u8];
        let mut rest = index >> 7;
        while rest > 0 {
            name.insert(0, 0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        let n_info = (name.len() + line_info.len()) as u64;
        // n_state - 1 < 16 and n_pos < 4: one signature byte; n_info < 64, no
        // cells: one size byte.
        let mut code = vec![(((n_state - 1) & 0xf) << 3 | (n_pos & 3)) as u8, ((n_info & 0x3f) << 1) as u8];
        code.extend_from_slice(&name);
        code.extend_from_slice(line_info);
        code
    }

    /// `__main__`'s context: `mp_module_context_t` (the module object, then the
    /// constants: qstr table, object table), registered in sys.modules, and its
    /// qstr table of `qstr_short_t`.
    fn main_context(&mut self) -> Step<()> {
        let table = self.alloc(2 * QSTR_TABLE_LEN, false, true, Category::Unknown)?;
        let frame = self.depth();
        self.push(table);
        let context = self.alloc(4 * self.wb(), false, true, Category::Unknown)?;
        self.w(context, &[self.ty("mp_type_module"), self.l.state + self.sm().dict_main, table, 0]);
        self.push(context);
        let main_q = self.qstr_ids.get("__main__").copied().unwrap_or(0);
        self.map_store(self.l.state + self.sm().loaded_modules + self.wb(), self.qobj(main_q), context, true)?;
        self.pop_to(frame);
        self.context = Some((context, table, Vec::new()));
        Ok(())
    }

    /// Where qstr `q` is in the module's qstr table, adding it if it is not yet.
    fn qstr_table_index(&mut self, q: u64) -> u64 {
        let Some((_, table, ids)) = self.context.as_mut() else { return q };
        if let Some(i) = ids.iter().position(|&x| x == q) {
            return i as u64;
        }
        if ids.len() as u64 >= QSTR_TABLE_LEN {
            return 0;
        }
        ids.push(q);
        let (table, i) = (*table, ids.len() as u64 - 1);
        self.gc.set_bytes(table + 2 * i, &(q as u16).to_le_bytes());
        i
    }

    /// A class defined at module level: its locals dict, its methods, and the
    /// `mp_obj_type_t` (15 words) pointing at them.
    pub fn new_class(&mut self, name: &str, methods: &[&str]) -> Step<u64> {
        let frame = self.depth();
        let name_q = self.intern(name)?;
        let locals = self.new_dict(0, true)?;
        self.push(locals);
        let mut funs = Vec::new();
        for m in methods {
            let f = self.new_function(m)?;
            self.push(f);
            let q = self.intern(m)?;
            self.map_store(locals + self.wb(), self.qobj(q), f, true)?;
            funs.push(f);
        }
        let t = self.alloc(15 * self.wb(), false, true, Category::Type)?;
        let print = self.l.flash_start + 0x101;
        let mut words = if self.mp() && self.wb() == 8 {
            // uint16_t flags, uint16_t name, slot indices, in one word; slots.
            vec![self.ty("mp_type_type"), name_q << 16 | 0x0201 << 32, print, print + 0x40]
        } else if self.mp() {
            // uint16_t flags, uint16_t name; slot indices; slots.
            vec![self.ty("mp_type_type"), name_q << 16, 0x0201, print, print + 0x40]
        } else {
            vec![self.ty("mp_type_type"), name_q, print, print + 0x40]
        };
        words.resize(14, 0);
        words.push(locals);
        self.w(t, &words);
        self.pop_to(frame);
        self.classes.push(Class { address: t, methods: funs });
        Ok(t)
    }

    pub fn new_instance(&mut self, class: u64) -> Step<u64> {
        let o = self.alloc(4 * self.wb(), false, false, Category::Instance)?;
        self.w(o, &[class, 0, 0, 0]);
        Ok(o)
    }

    /// A native peripheral object with a finaliser (`busio.I2C(...)` and friends).
    pub fn new_native(&mut self, type_name: &str) -> Step<u64> {
        let n = self.alloc(6 * self.wb(), true, false, Category::Unknown)?;
        let pins = small_int(self.rng.range(0, 40) as i64);
        let address = self.rng.range(0, 255);
        self.w(n, &[self.ty(type_name), pins, address, 0, 0, 0]);
        Ok(n)
    }

    /// A line typed at the REPL, pushed into the readline history.
    pub fn readline(&mut self, line: &str) -> Step<()> {
        let s = self.alloc(line.len() as u64 + 1, false, false, Category::StringData)?;
        let mut b = line.as_bytes().to_vec();
        b.push(0);
        self.gc.set_bytes(s, &b);
        let base = self.l.state + self.sm().readline_hist;
        for i in (1..self.sm().readline_hist_len).rev() {
            let prev = self.gc.word(base + self.wb() * (i - 1));
            self.gc.set_word(base + self.wb() * i, prev);
        }
        self.gc.set_word(base, s);
        Ok(())
    }

    // --- the program ---------------------------------------------------------------

    /// `mp_init` and the module's top level.
    pub fn boot(&mut self) -> Step<()> {
        let s = self.l.state;
        self.w(s + self.sm().last_pool, &[self.l.rom_pool]);
        self.w(s + self.sm().loaded_modules, &[self.ty("mp_type_dict"), 1, 0, 0]);
        self.w(s + self.sm().dict_main, &[self.ty("mp_type_dict"), 1, 0, 0]);
        self.w(s + self.sm().sys_path, &[self.ty("mp_type_list"), 0, 0, 0]);
        self.w(s + self.sm().sys_argv, &[self.ty("mp_type_list"), 0, 0, 0]);
        let g = self.gc.g.clone();
        // The GC state, as gc_init (and gc_add, for a split heap's further areas)
        // leaves it: the first area inside mp_state_ctx, each further one in a
        // struct just before its tables, chained through `next`.
        let m = self.sm();
        let mut area_struct = s;
        let mut areas = g.areas().peekable();
        while let Some(a) = areas.next() {
            let fin = a.finaliser_table_start.unwrap_or(0);
            self.w(area_struct + m.gc_alloc_table_start, &[a.alloc_table_start, a.alloc_table_bytes]);
            self.w(area_struct + m.gc_finaliser_table_start, &[fin]);
            if let Some(wtb) = m.gc_weakref_table_start {
                self.w(area_struct + wtb, &[fin + a.finaliser_table_bytes]);
            }
            if let Some(ctb) = m.gc_collect_table_start {
                self.w(area_struct + ctb, &[a.collect_table_start.unwrap_or(0)]);
            }
            self.w(area_struct + m.gc_pool_start, &[a.pool_start, a.pool_end]);
            if let Some(next) = m.gc_next {
                let following = areas.peek().map_or(0, |n| n.alloc_table_start - m.area_bytes);
                self.w(area_struct + next, &[following]);
                area_struct = following.wrapping_sub(next);
            }
        }
        if !self.mp() {
            // CircuitPython's gc_lowest_long_lived_ptr follows gc_pool_end.
            self.w(s + m.gc_pool_end + 4, &[g.first.pool_end]);
        }

        // mp_obj_dict_init(&dict_main, 1); mp_obj_dict_init(&mp_loaded_modules_dict, 3)
        for (at, n) in [(self.sm().dict_main, 1u64), (self.sm().loaded_modules, 3)] {
            let w = self.wb();
            let t = self.alloc(n * 2 * w, false, false, Category::MapTable)?;
            let zeros = vec![0u8; (n * 2 * w) as usize];
            self.gc.set_bytes(t, &zeros);
            self.w(s + at + 2 * w, &[n, t]);
        }
        let name_q = self.qstr_ids.get("__name__").copied().unwrap_or(0);
        let main_q = self.qstr_ids.get("__main__").copied().unwrap_or(0);
        self.map_store(s + self.sm().dict_main + self.wb(), self.qobj(name_q), self.qobj(main_q), false)?;
        // sys.path = ['', '/', 'lib'] as qstrs; sys.argv = []
        for (at, items) in [(self.sm().sys_path, vec![1u64, 65, 66]), (self.sm().sys_argv, vec![])] {
            let a = self.alloc(4 * self.wb(), false, false, Category::Unknown)?;
            let words: Vec<u64> = (0..4).map(|i| items.get(i).map_or(0, |q| self.qobj(*q))).collect();
            self.w(a, &words);
            self.w(s + at + self.wb(), &[4, items.len() as u64, a]);
        }
        if self.mp() {
            self.main_context()?;
        }
        // import board, busio, digitalio: module objects in sys.modules
        for m in ["board", "busio", "digitalio", "time"] {
            let q = self.intern(m)?;
            let module = self.alloc(2 * self.wb(), false, true, Category::Unknown)?;
            self.w(module, &[self.ty("mp_type_module"), 0]);
            let frame = self.depth();
            self.push(module);
            self.map_store(s + self.sm().loaded_modules + self.wb(), self.qobj(q), module, true)?;
            self.map_store(s + self.sm().dict_main + self.wb(), self.qobj(q), module, true)?;
            self.pop_to(frame);
        }
        for (name, methods) in CLASSES {
            let c = self.new_class(name, methods)?;
            let frame = self.depth();
            self.push(c);
            let q = self.intern(name)?;
            self.map_store(s + self.sm().dict_main + self.wb(), self.qobj(q), c, true)?;
            self.pop_to(frame);
        }
        for f in FUNCTIONS {
            let fun = self.new_function(f)?;
            let frame = self.depth();
            self.push(fun);
            let q = self.intern(f)?;
            self.map_store(s + self.sm().dict_main + self.wb(), self.qobj(q), fun, true)?;
            self.pop_to(frame);
        }
        for (g, t) in
            [("i2c", "busio_i2c_type"), ("led", "digitalio_digitalinout_type"), ("pwm", "pulseio_pwmout_type")]
        {
            let n = self.new_native(t)?;
            let frame = self.depth();
            self.push(n);
            let q = self.intern(g)?;
            self.map_store(s + self.sm().dict_main + self.wb(), self.qobj(q), n, false)?;
            self.pop_to(frame);
        }
        self.log_list = self.new_list(4, false)?;
        let frame = self.depth();
        self.push(self.log_list);
        let q = self.intern("history")?;
        self.map_store(s + self.sm().dict_main + self.wb(), self.qobj(q), self.log_list, false)?;
        self.cache = self.new_dict(0, false)?;
        self.push(self.cache);
        let q = self.intern("cache")?;
        self.map_store(s + self.sm().dict_main + self.wb(), self.qobj(q), self.cache, false)?;
        self.pop_to(frame);
        Ok(())
    }

    /// One pass of the main loop.
    pub fn iterate(&mut self) -> Step<()> {
        self.iteration += 1;
        let i = self.iteration;
        let frame = self.depth();
        let r = if self.busy { self.iterate_busy(i) } else { self.iterate_inner(i) };
        self.pop_to(frame);
        r
    }

    fn iterate_inner(&mut self, i: u64) -> Step<()> {
        let ci = self.rng.below(self.classes.len().max(1) as u64) as usize;
        let class = self.classes.get(ci).map_or(0, |c| c.address);
        let inst = self.new_instance(class)?;
        self.push(inst);
        for _ in 0..self.rng.range(1, 3) {
            let attr = *self.rng.pick(&["value", "direction", "frequency", "duty_cycle", "pull"]);
            let q = self.intern(attr)?;
            let v = if self.rng.chance(60) {
                small_int(self.rng.range(0, 5000) as i64)
            } else {
                let v = self.rng.range(0, 99999);
                let s = self.new_str(&format!("{attr}={v}"))?;
                self.push(s);
                s
            };
            self.map_store(inst + self.wb(), self.qobj(q), v, false)?;
        }
        let reading = format!("reading {i}: {} mV", self.rng.range(0, 3300));
        let s = self.new_str(&reading)?;
        self.push(s);
        let level = small_int(self.rng.range(0, 255) as i64);
        let t = self.new_tuple(&[small_int(i as i64), s, level])?;
        self.push(t);
        if self.rng.chance(15) {
            // A bound method (`sensor.read`), short-lived.
            let methods = self.classes.get(ci).map(|c| c.methods.clone()).unwrap_or_default();
            if !methods.is_empty() {
                let m = *self.rng.pick(&methods);
                let bm = self.alloc(3 * self.wb(), false, false, Category::Unknown)?;
                self.w(bm, &[self.ty("mp_type_bound_meth"), m, inst]);
                self.push(bm);
            }
        }
        if self.rng.chance(40) {
            // Buffers scale with the board: a SAMD51 program reads bigger blocks.
            let scale = (self.l.heap_bytes / 20480).max(1);
            let n = self.rng.range(8, 96 * scale);
            let b = self.new_bytearray(n)?;
            self.push(b);
        }
        if self.rng.chance(35) {
            // The slow leak: every reading kept in a global list.
            self.list_append(self.log_list, s)?;
        }
        if self.rng.chance(30) {
            let key = small_int((i % 40) as i64);
            self.map_store(self.cache + self.wb(), key, inst, false)?;
        }
        if self.rng.chance(10) {
            let key = small_int(self.rng.below(40) as i64);
            self.map_delete(self.cache + self.wb(), key);
        }
        if self.rng.chance(6) {
            let name = format!("attr_{}", self.rng.below(400));
            let q = self.intern(&name)?;
            self.map_store(inst + self.wb(), self.qobj(q), small_int(1), false)?;
        }
        if self.rng.chance(4) {
            let lines =
                ["import gc", "gc.collect()", "print(gc.mem_free())", "sensor.read()", "len(history)", "cache.keys()"];
            let line = self.rng.pick(&lines).to_string();
            self.readline(&line)?;
        }
        if self.rng.chance(2) {
            self.list_clear(self.log_list);
        }
        if self.mp() {
            self.current_objects(i)?;
        }
        if i.is_multiple_of(12) {
            self.gc.collect();
        }
        Ok(())
    }

    /// One pass of a busy main loop, shaped after the real captures of
    /// `../shared/real-heaps.md`: thousands of small objects live, most of them
    /// one block, and a few dozen arrays of 9 to 32 blocks holding a large
    /// share of the bytes, as there. A few readings a pass (a number, its
    /// text, a tuple of them, a short list of samples) go into the global
    /// `history`, which grows to a share of the heap and is then cut in half
    /// (`history = history[-n // 2:]`, a new list); the `cache` dict keeps
    /// instances, readings and windows of dozens of samples, overwritten at
    /// random; each pass also leaves temporaries behind (formatted text,
    /// numbers, bytes, lists short and long) that only a collection frees. The
    /// GC runs when an allocation finds no room, as the firmware's does, and
    /// every 211th pass as `gc.collect()`; every 601st pass a burst of bytes
    /// objects runs into a MemoryError the program catches. So the heap fills
    /// with garbage between collections.
    fn iterate_busy(&mut self, i: u64) -> Step<()> {
        let w = self.wb();
        for _ in 0..self.rng.range(1, 4) {
            let r = self.reading(i)?;
            self.push(r);
            // (Leaking, a third of the readings is kept: a slow leak.)
            if !self.leak || self.rng.chance(33) {
                self.list_append(self.log_list, r)?;
            }
        }
        for _ in 0..self.rng.range(2, 7) {
            // Shares after the real captures' type mix: numbers, text, lists,
            // bytes, tuples.
            let (which, n) = (self.rng.below(20), self.rng.range(1, 48));
            let t = match which {
                0..4 => self.new_number(i + n)?,
                4..9 => self.new_str(&format!("t={i} v={}", n * 2081))?,
                // A list of a few items, now and then of dozens.
                9..15 => self.new_list(
                    match n {
                        ..34 => 1 + n % 4,
                        34..40 => 4 * (n - 29),
                        _ => 36 + 4 * (n - 40),
                    },
                    false,
                )?,
                15 => self.new_bytearray(16 + n * 3)?,
                16..18 if self.mp() => self.new_bytes(8 + n)?,
                18 => self.new_bytearray(80 + n * 9)?,
                _ => self.new_tuple(&[small_int(i as i64), small_int(n as i64)])?,
            };
            self.push(t);
        }
        // `cache[k] = ...` for a key of 120: an overwritten entry leaves a hole
        // wherever it was, which is what fragments a long-running heap. (120
        // keys fit a table of 127 slots; more would need one of 255, 2 to 4 KiB
        // in one piece, which a heap this fragmented seldom has.)
        let fresh = self.leak && self.rng.chance(25);
        let key = match fresh {
            // A key never seen before: the cache grows.
            true => small_int(256 + i as i64),
            false => small_int(self.rng.below(120) as i64),
        };
        let which = match fresh {
            // A new key keeps an instance or a reading: a leak of windows
            // would end the run within a few thousand passes.
            true if self.rng.chance(30) => 0,
            true => 9,
            false => self.rng.below(10),
        };
        let value = match which {
            0..3 => {
                let ci = self.rng.below(self.classes.len().max(1) as u64) as usize;
                self.new_instance(self.classes.get(ci).map_or(0, |c| c.address))?
            }
            // A window of dozens of samples: its item array 9 to 32 blocks,
            // the large arrays that hold half a real heap's bytes.
            3..8 => {
                let n = self.rng.range(20, 72);
                self.samples(i, n)?
            }
            _ => self.reading(i)?,
        };
        self.push(value);
        self.map_store(self.cache + w, key, value, false)?;
        // Readings leave `history` from anywhere in it (`history.pop(k)`), so the
        // survivors, and the holes between them, spread over the heap; now and
        // then the list is cut in half (a new list: `history[-n // 2:]`).
        let len = self.gc.word(self.log_list + 2 * w);
        if self.leak {
            // Nothing leaves `history`.
        } else if len > self.history_cap() && self.rng.chance(3) {
            self.keep_last(len / 2)?;
        } else if len > self.history_cap() * 4 / 5 {
            for _ in 0..self.rng.range(1, 4) {
                let k = self.rng.below(self.gc.word(self.log_list + 2 * w).max(1));
                self.list_pop(self.log_list, k);
            }
        }
        if i.is_multiple_of(211) {
            self.gc.collect();
        }
        // (A leaking program is left to leak, without the burst.)
        if i.is_multiple_of(601) && !self.leak {
            self.burst()?;
        }
        Ok(())
    }

    /// `burst = []; while True: burst.append(bytes(...))` in a `try` that
    /// catches the MemoryError: the burst is dropped and the loop goes on with
    /// what it kept (an uncaught MemoryError is [`Program::recover`]ed from).
    fn burst(&mut self) -> Step<()> {
        let frame = self.depth();
        let burst = self.new_list(4, false)?;
        self.push(burst);
        let caught = loop {
            let inner = self.depth();
            let n = self.rng.range(64, 264);
            if let Err(halt) = self.new_bytes(n).and_then(|b| self.list_append(burst, b)) {
                break halt;
            }
            self.pop_to(inner);
        };
        self.pop_to(frame);
        match caught {
            Halt::OutOfMemory => {
                self.memory_errors_caught += 1;
                Ok(())
            }
            done => Err(done),
        }
    }

    /// How long `history` grows before it is cut: a share of the heap (a reading
    /// is one to a dozen allocations). Its item array then stays under 2 KiB
    /// (32-bit), which a fragmented heap still finds room for when it doubles.
    fn history_cap(&self) -> u64 {
        self.gc.g.pool_blocks() / 16
    }

    /// A sensor reading: its text `"s2,1234,56.789"`, and now and then the
    /// tuple `(t, value, text)`, with the value a long int or a float where the
    /// build boxes them.
    fn reading(&mut self, i: u64) -> Step<u64> {
        let which = self.rng.below(20);
        if which < 5 {
            return self.new_number(i);
        }
        if which < 8 {
            // `[v0, v1, …]`: a few samples.
            let n = self.rng.range(1, 12);
            return self.samples(i, n);
        }
        let (whole, frac) = (self.rng.below(100), self.rng.below(1000));
        let text = self.new_str(&format!("s{},{i},{whole}.{frac:03}", i % 4))?;
        if which < 15 {
            return Ok(text);
        }
        self.push(text);
        let v = self.new_number(i)?;
        self.push(v);
        self.new_tuple(&[small_int(i as i64), v, text])
    }

    /// A list of `n` samples, each a number (boxed or small): built as
    /// `[read() for _ in range(n)]`, its item array sized to fit.
    fn samples(&mut self, i: u64, n: u64) -> Step<u64> {
        let frame = self.depth();
        let list = self.new_list(n.max(1), false)?;
        self.push(list);
        for k in 0..n {
            let v = if self.rng.chance(15) { self.new_number(i + k)? } else { small_int((i + k) as i64 % 512) };
            self.list_append(list, v)?;
        }
        self.pop_to(frame);
        Ok(list)
    }

    /// A number as a script makes them: a boxed float (`mp_obj_float_t`) under
    /// representation A, else a long int (`mp_obj_int_t`: base, the mpz's
    /// bits and length, its digits in a block of their own), or a small int.
    fn new_number(&mut self, i: u64) -> Step<u64> {
        let w = self.wb();
        if self.mp() && self.l.flavor != Flavor::CircuitPython10 && self.rng.chance(40) {
            let f = self.alloc(w + 8, false, false, Category::Unknown)?;
            self.w(f, &[self.ty("mp_type_float")]);
            self.gc.set_bytes(f + 8.max(w), &(i as f64 * 0.37).to_le_bytes());
            return Ok(f);
        }
        if !self.rng.chance(60) {
            return Ok(small_int((i % 1000) as i64));
        }
        let digits = self.alloc(2 * w, false, false, Category::Unknown)?;
        self.w(digits, &[i.wrapping_mul(0x9e37_79b9) & 0xffff_ffff, 1]);
        self.push(digits);
        let n = self.alloc(4 * w, false, false, Category::Unknown)?;
        self.w(n, &[self.ty("mp_type_int"), 2 << 2, 2, digits]);
        Ok(n)
    }

    /// `bytes(n)`: the data in a block of its own, then `mp_obj_str_t`.
    fn new_bytes(&mut self, n: u64) -> Step<u64> {
        let data = self.alloc(n, false, false, Category::Unknown)?;
        let bytes: Vec<u8> = (0..n).map(|k| (k * 7) as u8).collect();
        self.gc.set_bytes(data, &bytes);
        self.push(data);
        let b = self.alloc(4 * self.wb(), false, false, Category::Unknown)?;
        self.w(b, &[self.ty("mp_type_bytes"), 0, n, data]);
        Ok(b)
    }

    /// `history = history[-keep:]`: a new list with the last `keep` items, bound
    /// to the global; the old list and its items are garbage.
    fn keep_last(&mut self, keep: u64) -> Step<()> {
        let w = self.wb();
        let (len, items) = (self.gc.word(self.log_list + 2 * w), self.gc.word(self.log_list + 3 * w));
        let keep = keep.min(len);
        let frame = self.depth();
        self.push(self.log_list);
        let new = self.new_list(keep.max(4), false)?;
        let new_items = self.gc.word(new + 3 * w);
        for k in 0..keep {
            let v = self.gc.word(items + w * (len - keep + k));
            self.gc.set_word(new_items + w * k, v);
        }
        self.gc.set_word(new + 2 * w, keep);
        self.log_list = new;
        let q = self.intern("history")?;
        let s = self.l.state;
        self.map_store(s + self.sm().dict_main + w, self.qobj(q), new, false)?;
        self.pop_to(frame);
        Ok(())
    }

    /// What a current MicroPython script makes besides (the 1.9-era layouts keep
    /// the objects the reference knows): a float, a bytes object, a closure with
    /// its cells, a set, each short-lived and kept on the stack meanwhile.
    fn current_objects(&mut self, i: u64) -> Step<()> {
        let w = self.wb();
        // A float: boxed (`mp_obj_float_t`: base, double) under representation
        // A; representation C makes most floats immediate.
        if self.l.flavor != Flavor::CircuitPython10 && self.rng.chance(50) {
            let f = self.alloc(w + 8, false, false, Category::Unknown)?;
            self.w(f, &[self.ty("mp_type_float")]);
            self.gc.set_bytes(f + 8.max(w), &(i as f64 * 0.1).to_le_bytes());
            self.push(f);
        }
        if self.rng.chance(30) {
            let n = self.rng.range(16, 64);
            let b = self.new_bytes(n)?;
            self.push(b);
        }
        if self.rng.chance(20) {
            // A closure over two variables: each in a cell (`mp_obj_cell_t`).
            let mut cells = Vec::new();
            for v in 0..2 {
                let c = self.alloc(2 * w, false, false, Category::Unknown)?;
                self.w(c, &[self.ty("mp_type_cell"), small_int((i + v) as i64)]);
                self.push(c);
                cells.push(c);
            }
            let fun = self.classes.first().and_then(|c| c.methods.first()).copied().unwrap_or(0);
            let closure = self.alloc(5 * w, false, false, Category::Unknown)?;
            self.w(closure, &[self.ty("mp_type_closure"), fun, 2, cells[0], cells[1]]);
            self.push(closure);
        }
        if self.rng.chance(15) {
            // A set of small ints: `mp_obj_set_t` (base, alloc, used, table).
            let table = self.alloc(4 * w, false, false, Category::Unknown)?;
            let items: Vec<u64> = (0..4).map(|k| small_int((i + k) as i64)).collect();
            self.w(table, &items);
            self.push(table);
            let set = self.alloc(4 * w, false, false, Category::Unknown)?;
            self.w(set, &[self.ty("mp_type_set"), 4, 4, table]);
            self.push(set);
        }
        Ok(())
    }

    /// After a MemoryError the program drops its caches, as a careful script
    /// would; the busy one keeps less of its history each time in a row
    /// (`failures`, from 1) the heap still does not fit.
    pub fn recover(&mut self, failures: u32) {
        if self.leak {
            return; // it frees nothing: the run ends at MemoryError
        }
        if self.busy {
            // `cache.clear(); history = history[-n // 2:]`: half the readings go.
            self.dict_clear(self.cache);
            let len = self.gc.word(self.log_list + 2 * self.wb());
            let _ = self.keep_last(len >> failures.min(16));
            return;
        }
        self.list_clear(self.log_list);
        self.dict_clear(self.cache);
    }

    /// Empties a dict's table in place (`dict.clear()` keeps the table here).
    fn dict_clear(&mut self, dict: u64) {
        let w = self.wb();
        let alloc = self.gc.word(dict + 2 * w);
        let table = self.gc.word(dict + 3 * w);
        for k in 0..alloc {
            self.w(table + 2 * w * k, &[0, 0]);
        }
        self.gc.set_word(dict + w, 1);
    }
}
