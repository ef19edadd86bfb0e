//! Stage: each allocation's base kind, from its own first word (a type in
//! flash, a class on the heap, a qstr pool), before any role.

use super::*;

/// Per allocation: its category from its own first word, and that word when
/// it names a type in flash (its base kind). Kept as these columns from the
/// stage to the next snapshot's decode, which takes over the unchanged
/// allocations' a run at a time.
#[derive(Clone, Debug, Default)]
pub struct Kinds {
    pub category: Vec<Category>,
    pub type_addrs: Vec<Option<u64>>,
}

impl Kinds {
    /// `n` unknown kinds, in the scratch's memory.
    pub(super) fn refill(scratch: &mut Scratch, n: usize) -> Self {
        Kinds {
            category: refill(std::mem::take(&mut scratch.kinds), n, Category::Unknown),
            type_addrs: refill(std::mem::take(&mut scratch.type_addrs), n, None),
        }
    }

    /// Whether it holds `n` allocations' kinds.
    pub fn holds(&self, n: usize) -> bool {
        self.category.len() == n && self.type_addrs.len() == n
    }
}

impl Decoder<'_> {
    /// Stage: each allocation's category from its own first word (a type in
    /// flash, a class on the heap, a qstr pool); `type_addrs` gets the flash
    /// words. In a focused decode, the allocations `carried` over already hold
    /// the snapshot before's in `kinds`.
    pub(super) fn base_kinds(
        &self,
        v: &View,
        ram_pools: &[qstr::PoolHeader],
        carried: Option<&[bool]>,
        kinds: &mut Kinds,
    ) {
        for i in 0..kinds.category.len() {
            if carried.is_some_and(|c| c.get(i) == Some(&true)) {
                continue; // the snapshot before's, already in `kinds`
            }
            let _s = v.log.scope(i as u32);
            (kinds.category[i], kinds.type_addrs[i]) = self.base_kind_of(v, i, ram_pools);
        }
    }

    /// Allocation `i`'s category from its own first word, and that word when it
    /// lies in flash.
    pub(super) fn base_kind_of(&self, v: &View, i: usize, ram_pools: &[qstr::PoolHeader]) -> (Category, Option<u64>) {
        let t = &self.firmware.types;
        let is = |opt: Option<u64>, w: u64| opt == Some(w);
        let address = v.addr_of(i);
        let w0 = v.object(i, "own bytes").type_word().unwrap_or(0);
        if ram_pools.iter().any(|p| p.address == address) {
            return (Category::QstrPool, None);
        }
        if w0 != 0 && v.mem.in_flash(w0) {
            let kind = if t.functions.contains(&w0) {
                Category::Function
            } else if is(t.dict, w0) {
                Category::Dict
            } else if is(t.property, w0) {
                Category::Property
            } else if is(t.map, w0) {
                Category::Map
            } else if is(t.type_type, w0) {
                Category::Type
            } else if is(t.tuple, w0) {
                Category::Tuple
            } else if is(t.str, w0) {
                Category::Str
            } else if is(t.bytearray, w0) {
                Category::Bytearray
            } else {
                Category::Unknown
            };
            return (kind, Some(w0));
        }
        // An instance of a class defined at run time: its type is a heap object
        // whose own type is `type`.
        let ti = v.head(w0, "instance's class");
        if ti.is_some_and(|ti| v.object(ti, "instance's class").type_word().is_some_and(|tw| is(t.type_type, tw))) {
            return (Category::Instance, None);
        }
        (Category::Unknown, None)
    }

    /// The kind an allocation has by itself, before any role: from its category
    /// where that says (a qstr pool, an instance of a Python class), else from its
    /// type in flash (see [`kinds`]).
    pub(super) fn base_kind(&self, category: Category, type_address: Option<u64>) -> &'static str {
        match category {
            Category::QstrPool => "qstr_pool",
            Category::Instance => "instance",
            _ => type_address.and_then(|t| self.firmware.type_kinds.get(&t).copied()).unwrap_or("unknown"),
        }
    }
}
