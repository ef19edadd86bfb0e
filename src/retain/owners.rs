//! Top-level owners: who, at the level a Python programmer names things, holds
//! each reachable allocation. An owner is a module global (`__main__.history`,
//! `sensors.cache`), a class attribute (`Sensor.readings`), a root field of
//! the interpreter's state (`mp_state_ctx.vm.mp_loaded_modules_dict.map.table`)
//! or the stack. Each allocation belongs to the nearest owner on its dominator
//! chain: what would be freed with it. Summed per owner and kind, these are the
//! `retainers` table's rows, small enough for every snapshot of a night.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::decode::EdgeRow;

use super::{Holder, Retention, SEVERAL_ROOTS};

/// What the owners need of one allocation.
pub struct Node<'a> {
    pub address: u64,
    pub blocks: u64,
    pub kind: &'static str,
    /// A module's or a class's name.
    pub name: Option<&'a Arc<str>>,
    /// The object it belongs to (a dict for its table).
    pub owner: Option<u64>,
    /// Its pointer edges.
    pub edges: &'a [EdgeRow],
}

/// One row of the `retainers` table for one snapshot: what an owner retains of
/// one kind.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Retained {
    pub owner: Arc<str>,
    pub kind: &'static str,
    pub allocations: u64,
    pub bytes: u64,
}

/// The rows of one snapshot, sorted by owner and kind. `main_tables` are the
/// tables the root `mp_state_ctx.vm.dict_main.map.table` points at.
pub fn retainers(
    ret: &Retention,
    nodes: &[Node],
    main_tables: &[u64],
    module_globals_word: u32,
    bytes_per_block: u64,
) -> Vec<Retained> {
    let scopes = scopes(nodes, main_tables, module_globals_word);
    // Owners by index into `names`: an allocation's owner is found once per
    // snapshot, and counted without touching a string.
    let mut names: Vec<Arc<str>> = ret.roots.clone();
    let several = names.len() as u32;
    names.push(Arc::from(SEVERAL_ROOTS));
    let mut named_at: FxHashMap<(u64, u64), u32> = FxHashMap::default();
    let mut named = |v: usize| -> Option<u32> {
        match ret.idom.get(v).copied()? {
            Holder::Root(r) => Some(r),
            Holder::Roots => Some(several),
            Holder::Allocation(t) => {
                let table = nodes.get(t as usize)?;
                let scope = scopes.get(&table.address)?;
                let to = nodes[v].address;
                if let Some(&k) = named_at.get(&(table.address, to)) {
                    return Some(k);
                }
                let key = table.edges.iter().find(|e| e.to_alloc_address == Some(to))?.map_key.as_ref()?;
                names.push(Arc::from(format!("{scope}.{key}")));
                let k = names.len() as u32 - 1;
                named_at.insert((table.address, to), k);
                Some(k)
            }
            Holder::Garbage => None,
        }
    };
    // Per allocation, its owner: a walk up the chain stops at the first
    // allocation whose owner is known, or at the first named one.
    const UNKNOWN: u32 = u32::MAX;
    const NOBODY: u32 = u32::MAX - 1;
    let n = nodes.len();
    let mut owner = vec![UNKNOWN; n];
    let mut walk = Vec::new();
    for v in 0..n {
        let mut u = v;
        let found = loop {
            if owner[u] != UNKNOWN {
                break owner[u];
            }
            walk.push(u);
            if let Some(k) = named(u) {
                break k;
            }
            match ret.idom.get(u).copied() {
                Some(Holder::Allocation(j)) if (j as usize) < n && walk.len() <= n => u = j as usize,
                _ => break NOBODY,
            }
        };
        // None below the first named one is named (the walk stopped there).
        for w in walk.drain(..) {
            owner[w] = found;
        }
    }
    // (owner, kind) → (allocations, bytes); kinds are static, keyed by address.
    let mut sums: FxHashMap<(u32, usize), (&'static str, u64, u64)> = FxHashMap::default();
    for (v, node) in nodes.iter().enumerate() {
        let o = owner[v];
        if o >= NOBODY || !ret.reachable.get(v).copied().unwrap_or(false) {
            continue;
        }
        let e = sums.entry((o, node.kind.as_ptr() as usize)).or_insert((node.kind, 0, 0));
        e.1 += 1;
        e.2 += node.blocks.saturating_mul(bytes_per_block);
    }
    let mut rows: Vec<Retained> = sums
        .into_iter()
        .map(|((o, _), (kind, allocations, bytes))| Retained {
            owner: Arc::clone(&names[o as usize]),
            kind,
            allocations,
            bytes,
        })
        .collect();
    rows.sort();
    // One row per (owner, kind): two owners may bear one name (two classes
    // named alike, a key bound in two scopes of one name), and the table
    // names owners by their names.
    rows.dedup_by(|later, kept| {
        let same = (&later.owner, later.kind) == (&kept.owner, kept.kind);
        if same {
            kept.allocations += later.allocations;
            kept.bytes += later.bytes;
        }
        same
    });
    rows
}

/// Tables holding names, by the table's address: `__main__`'s, a module's
/// globals (named by the module), a class's attributes (named by the class).
pub fn scopes(nodes: &[Node], main_tables: &[u64], module_globals_word: u32) -> FxHashMap<u64, Arc<str>> {
    // Dicts first: a module's globals dict, a dict a class points at.
    let mut dicts: FxHashMap<u64, Arc<str>> = FxHashMap::default();
    for n in nodes.iter().filter(|n| n.kind == "module" || n.kind == "type") {
        let Some(name) = n.name else { continue };
        for e in n.edges.iter().filter(|e| e.to_is_head) {
            let Some(to) = e.to_alloc_address else { continue };
            if n.kind == "module" && e.from_word == Some(module_globals_word) {
                dicts.insert(to, Arc::clone(name));
            } else if n.kind == "type" {
                dicts.entry(to).or_insert_with(|| Arc::clone(name));
            }
        }
    }
    let mut tables: FxHashMap<u64, Arc<str>> = FxHashMap::default();
    let main: Arc<str> = Arc::from("__main__");
    for n in nodes.iter().filter(|n| n.kind == "dict_table") {
        if main_tables.contains(&n.address) {
            tables.insert(n.address, Arc::clone(&main));
        } else if let Some(scope) = n.owner.and_then(|d| dicts.get(&d)) {
            tables.insert(n.address, Arc::clone(scope));
        }
    }
    tables
}
