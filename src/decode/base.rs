//! Stage: each allocation's base kind, from its own first word (a type in
//! flash, a class on the heap, a qstr pool), before any role.

use super::*;

/// Per allocation: its category from its own first word, and that word when
/// it names a type in flash (its base kind).
pub(super) struct Kinds {
    pub(super) category: Vec<Category>,
    pub(super) type_addrs: Vec<Option<u64>>,
}

impl Kinds {
    /// `n` unknown kinds, in the scratch's memory.
    pub(super) fn refill(scratch: &mut Scratch, n: usize) -> Self {
        Kinds {
            category: refill(std::mem::take(&mut scratch.kinds), n, Category::Unknown),
            type_addrs: refill(std::mem::take(&mut scratch.type_addrs), n, None),
        }
    }

    /// The base kinds as a list, in `into`'s memory.
    pub(super) fn base(&self, mut into: Vec<BaseKind>) -> Vec<BaseKind> {
        into.clear();
        into.extend(
            self.category.iter().zip(&self.type_addrs).map(|(&kind, &type_address)| BaseKind { kind, type_address }),
        );
        into
    }
}

impl Decoder<'_> {
    /// Stage: each allocation's category from its own first word (a type in
    /// flash, a class on the heap, a qstr pool), or as the snapshot before had
    /// it when a focused decode `known`s it; `type_addrs` gets the flash words.
    pub(super) fn base_kinds(
        &self,
        v: &View,
        ram_pools: &[qstr::PoolHeader],
        known: Option<&[Option<BaseKind>]>,
        kinds: &mut Kinds,
    ) {
        for i in 0..kinds.category.len() {
            (kinds.category[i], kinds.type_addrs[i]) = match known.and_then(|k| k[i]) {
                Some(k) => (k.kind, k.type_address),
                None => {
                    let _s = v.log.scope(i as u32);
                    self.base_kind_of(v, i, ram_pools)
                }
            };
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
