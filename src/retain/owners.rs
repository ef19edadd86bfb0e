//! Top-level owners: who, at the level a Python programmer names things, holds
//! each reachable allocation. An owner is a module global (`__main__.history`,
//! `sensors.cache`), a class attribute (`Sensor.readings`), a root field of
//! the interpreter's state (`mp_state_ctx.vm.mp_loaded_modules_dict.map.table`)
//! or the stack. Each allocation belongs to the nearest owner on its dominator
//! chain: what would be freed with it. Summed per owner and kind, these are the
//! `retainers` table's rows, small enough for every snapshot of a night.

use std::collections::HashMap;
use std::sync::Arc;

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
    let several: Arc<str> = Arc::from(SEVERAL_ROOTS);
    // The name an allocation takes as an owner, if it is one.
    let named = |v: usize| -> Option<Arc<str>> {
        match ret.idom.get(v).copied()? {
            Holder::Root(r) => ret.roots.get(r as usize).cloned(),
            Holder::Roots => Some(Arc::clone(&several)),
            Holder::Allocation(t) => {
                let table = nodes.get(t as usize)?;
                let scope = scopes.get(&table.address)?;
                let key =
                    table.edges.iter().find(|e| e.to_alloc_address == Some(nodes[v].address))?.map_key.as_ref()?;
                Some(Arc::from(format!("{scope}.{key}")))
            }
            Holder::Garbage => None,
        }
    };
    // Per allocation, its owner, found once: a walk up the chain stops at the
    // first allocation whose owner is known.
    let n = nodes.len();
    let mut owner: Vec<Option<Option<Arc<str>>>> = vec![None; n];
    let mut walk = Vec::new();
    for v in 0..n {
        let mut u = v;
        let found = loop {
            if let Some(o) = &owner[u] {
                break o.clone();
            }
            walk.push(u);
            if let Some(name) = named(u) {
                break Some(name);
            }
            match ret.idom.get(u).copied() {
                Some(Holder::Allocation(j)) if (j as usize) < n && walk.len() <= n => u = j as usize,
                _ => break None,
            }
        };
        // Each allocation walked is owned by the first named one above it (the
        // walk stopped there: none below it is named).
        for w in walk.drain(..) {
            owner[w] = Some(found.clone());
        }
    }
    let mut sums: HashMap<(Arc<str>, &'static str), (u64, u64)> = HashMap::new();
    for (v, node) in nodes.iter().enumerate() {
        if !ret.reachable.get(v).copied().unwrap_or(false) {
            continue;
        }
        let Some(Some(o)) = &owner[v] else { continue };
        let e = sums.entry((Arc::clone(o), node.kind)).or_default();
        e.0 += 1;
        e.1 += node.blocks.saturating_mul(bytes_per_block);
    }
    let mut rows: Vec<Retained> = sums
        .into_iter()
        .map(|((owner, kind), (allocations, bytes))| Retained { owner, kind, allocations, bytes })
        .collect();
    rows.sort();
    rows
}

/// Tables holding names, by the table's address: `__main__`'s, a module's
/// globals (named by the module), a class's attributes (named by the class).
fn scopes(nodes: &[Node], main_tables: &[u64], module_globals_word: u32) -> HashMap<u64, Arc<str>> {
    // Dicts first: a module's globals dict, a dict a class points at.
    let mut dicts: HashMap<u64, Arc<str>> = HashMap::new();
    for n in nodes {
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
    let mut tables: HashMap<u64, Arc<str>> = HashMap::new();
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
