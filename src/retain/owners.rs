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

/// Whether an allocation of `kind` names owners: a module or a class (whose
/// dict is a scope) or a dict's table (a scope's, or `__main__`'s). Of the
/// others, the owners need only the kind and the extent.
pub fn names_owners(kind: &str) -> bool {
    matches!(kind, "module" | "type" | "dict_table")
}

/// Owner names kept from one snapshot to the next: a global's name
/// (`__main__.history`) is made once, not at every snapshot.
#[derive(Default)]
pub struct OwnerNames {
    main: Option<Arc<str>>,
    several: Option<Arc<str>>,
    /// By the addresses of the scope's and the key's texts, which the entry
    /// holds (so no other text takes those addresses while it is kept).
    joined: FxHashMap<(usize, usize), Joined>,
}

/// A joined name, with the scope's and the key's texts it was made of.
struct Joined {
    _scope: Arc<str>,
    _key: Arc<str>,
    name: Arc<str>,
}

/// Joined names kept at most: past this the cache starts again.
const MAX_JOINED: usize = 1 << 16;

impl OwnerNames {
    fn main(&mut self) -> Arc<str> {
        Arc::clone(self.main.get_or_insert_with(|| Arc::from("__main__")))
    }

    fn several(&mut self) -> Arc<str> {
        Arc::clone(self.several.get_or_insert_with(|| Arc::from(SEVERAL_ROOTS)))
    }

    /// `scope.key`.
    fn joined(&mut self, scope: &Arc<str>, key: &Arc<str>) -> Arc<str> {
        let at = (Arc::as_ptr(scope) as *const u8 as usize, Arc::as_ptr(key) as *const u8 as usize);
        if let Some(j) = self.joined.get(&at) {
            return Arc::clone(&j.name);
        }
        if self.joined.len() >= MAX_JOINED {
            self.joined.clear();
        }
        let name: Arc<str> = Arc::from(format!("{scope}.{key}"));
        self.joined.insert(at, Joined { _scope: Arc::clone(scope), _key: Arc::clone(key), name: Arc::clone(&name) });
        name
    }
}

/// An allocation's owner not yet known, and one held by nobody named.
const UNKNOWN: u32 = u32::MAX;
const NOBODY: u32 = u32::MAX - 1;

/// The rows of one snapshot, sorted by owner and kind. `main_tables` are the
/// tables the root `mp_state_ctx.vm.dict_main.map.table` points at; `nodes`
/// are in address order.
pub fn retainers(
    ret: &Retention,
    nodes: &[Node],
    main_tables: &[u64],
    module_globals_word: u32,
    bytes_per_block: u64,
    kept: &mut OwnerNames,
) -> Vec<Retained> {
    // Owners by index into `names`: an allocation's owner is found once per
    // snapshot, and counted without touching a string.
    let mut names: Vec<Arc<str>> = ret.roots.clone();
    names.push(kept.several());
    let named = named_children(ret, nodes, main_tables, module_globals_word, kept, &mut names);
    let owner = owners(ret, &named);
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

/// Per allocation, the owner it is by itself (an index into `names`, to which
/// it adds the names it makes), [`UNKNOWN`] when it is none: a root's, or a
/// key's of a scope's table whose entry holds it alone (the first of the
/// table's words pointing into it is a value under a key).
fn named_children(
    ret: &Retention,
    nodes: &[Node],
    main_tables: &[u64],
    module_globals_word: u32,
    kept: &mut OwnerNames,
    names: &mut Vec<Arc<str>>,
) -> Vec<u32> {
    let several = names.len() as u32 - 1;
    let mut named: Vec<u32> = ret
        .idom
        .iter()
        .map(|h| match h {
            Holder::Root(r) => *r,
            Holder::Roots => several,
            _ => UNKNOWN,
        })
        .collect();
    named.resize(nodes.len(), UNKNOWN);
    // A child of a scope's table is named by the table's first word into it.
    let mut seen: Vec<bool> = vec![false; nodes.len()];
    let index = by_address(nodes);
    for (t, scope) in scope_tables(nodes, main_tables, module_globals_word, kept.main()) {
        for e in nodes[t].edges {
            let Some(c) = e.to_alloc_address.and_then(&index) else {
                continue;
            };
            if ret.idom.get(c) != Some(&Holder::Allocation(t as u32)) || std::mem::replace(&mut seen[c], true) {
                continue;
            }
            if let Some(key) = &e.map_key {
                names.push(kept.joined(&scope, key));
                named[c] = names.len() as u32 - 1;
            }
        }
    }
    named
}

/// The index of the node at an address: a search when the nodes are in
/// address order (a split heap's areas may not be), else a map.
fn by_address<'a>(nodes: &'a [Node]) -> impl Fn(u64) -> Option<usize> + 'a {
    let sorted = nodes.windows(2).all(|w| w[0].address < w[1].address);
    let map: FxHashMap<u64, usize> =
        if sorted { FxHashMap::default() } else { nodes.iter().enumerate().map(|(i, n)| (n.address, i)).collect() };
    move |a| if sorted { nodes.binary_search_by_key(&a, |n| n.address).ok() } else { map.get(&a).copied() }
}

/// Per allocation, its owner: its own name, else its immediate dominator's
/// owner (dominators come first in the retention's order); [`UNKNOWN`] for
/// garbage.
fn owners(ret: &Retention, named: &[u32]) -> Vec<u32> {
    let mut owner = vec![UNKNOWN; named.len()];
    for &v in &ret.order {
        let v = v as usize;
        let up = match ret.idom.get(v) {
            Some(Holder::Allocation(j)) => owner.get(*j as usize).copied().unwrap_or(NOBODY),
            _ => NOBODY,
        };
        if let Some(o) = owner.get_mut(v) {
            *o = named.get(v).copied().filter(|&k| k != UNKNOWN).unwrap_or(up);
        }
    }
    owner
}

/// Tables holding names, by the table's address: `__main__`'s, a module's
/// globals (named by the module), a class's attributes (named by the class).
pub fn scopes(nodes: &[Node], main_tables: &[u64], module_globals_word: u32) -> FxHashMap<u64, Arc<str>> {
    let main = Arc::from("__main__");
    let tables = scope_tables(nodes, main_tables, module_globals_word, main);
    tables.into_iter().map(|(t, scope)| (nodes[t].address, scope)).collect()
}

/// [`scopes`], by the table's index in `nodes`, `__main__` named by `main`.
fn scope_tables(
    nodes: &[Node],
    main_tables: &[u64],
    module_globals_word: u32,
    main: Arc<str>,
) -> Vec<(usize, Arc<str>)> {
    // Dicts first: a module's globals dict, a dict a class points at.
    let mut dicts: FxHashMap<u64, Arc<str>> = FxHashMap::default();
    // (The kinds whose names, owners and edges are read here are those of
    // `names_owners`: a run decoder fills in only theirs.)
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
    let mut tables = Vec::new();
    for (t, n) in nodes.iter().enumerate().filter(|(_, n)| n.kind == "dict_table") {
        if main_tables.contains(&n.address) {
            tables.push((t, Arc::clone(&main)));
        } else if let Some(scope) = n.owner.and_then(|d| dicts.get(&d)) {
            tables.push((t, Arc::clone(scope)));
        }
    }
    tables
}
