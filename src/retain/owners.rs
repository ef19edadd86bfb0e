//! Top-level owners: who, at the level a Python programmer names things, holds
//! each reachable allocation. An owner is a module global (`__main__.history`,
//! `sensors.cache`), a class attribute (`Sensor.readings`), a root field of
//! the interpreter's state (`mp_state_ctx.vm.mp_loaded_modules_dict.map.table`)
//! or the stack. Each allocation belongs to the nearest owner on its dominator
//! chain: what would be freed with it. Summed per owner and kind, these are the
//! `retainers` table's rows, small enough for every snapshot of a night.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::decode::{Allocation, EdgeRow};

use super::{Holder, Retention, SEVERAL_ROOTS};

/// What the owners need of an allocation whose kind names owners
/// ([`names_owners`]).
pub struct Node<'a> {
    /// Its index among the snapshot's allocations.
    pub index: u32,
    pub address: u64,
    pub kind: &'static str,
    /// A module's or a class's name.
    pub name: Option<&'a Arc<str>>,
    /// The object it belongs to (a dict for its table).
    pub owner: Option<u64>,
    /// Its pointer edges.
    pub edges: &'a [EdgeRow],
}

/// What the owners need of one snapshot's allocations: every one's kind and
/// extent, and the few whose kinds name owners in full.
pub struct Heap<'a> {
    /// Per allocation: its extent.
    pub allocations: &'a [Allocation],
    /// Per allocation: its kind, by its number in `kind_names`.
    pub kinds: &'a [u32],
    pub kind_names: &'a KindIds,
    pub bytes_per_block: u64,
    /// The allocations that name owners, by index.
    pub nodes: &'a [Node<'a>],
    /// The index of the allocation whose head is at an address.
    pub at: &'a dyn Fn(u64) -> Option<usize>,
    /// The tables `mp_state_ctx.vm.dict_main.map.table` points at.
    pub main_tables: &'a [u64],
    /// `mp_obj_module_t.globals` (a word index).
    pub module_globals_word: u32,
}

/// Kinds by number, numbered as first met: sums per owner and kind then go in
/// an array, not a map. (A run's kinds are the few the decoder names.)
#[derive(Default)]
pub struct KindIds {
    /// By the kind's address: kinds are static texts.
    ids: FxHashMap<usize, u32>,
    kinds: Vec<&'static str>,
    /// Per kind: whether it names owners ([`names_owners`]).
    namers: Vec<bool>,
}

impl KindIds {
    /// `kind`'s number.
    pub fn id(&mut self, kind: &'static str) -> u32 {
        let next = self.kinds.len() as u32;
        let id = *self.ids.entry(kind.as_ptr() as usize).or_insert(next);
        if id == next {
            self.kinds.push(kind);
            self.namers.push(names_owners(kind));
        }
        id
    }

    /// Whether the kind numbered `id` names owners.
    pub fn names_owners(&self, id: u32) -> bool {
        self.namers.get(id as usize).copied().unwrap_or(false)
    }

    /// The kind numbered `id` (`unknown` for none).
    pub fn kind(&self, id: u32) -> &'static str {
        self.kinds.get(id as usize).copied().unwrap_or("unknown")
    }

    /// How many kinds are numbered.
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }
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

/// An allocation's owner not yet known, one held by nobody named, and a
/// scope table's child whose entry names no key.
const UNKNOWN: u32 = u32::MAX;
const NOBODY: u32 = u32::MAX - 1;
const UNNAMED: u32 = u32::MAX - 2;

/// The rows of one snapshot, sorted by owner and kind.
pub fn retainers(ret: &Retention, heap: &Heap, kept: &mut OwnerNames) -> Vec<Retained> {
    let naming = naming(ret, heap, kept);
    let owner = owners(ret, &naming.named, naming.several);
    rows(&owner, heap, &naming.names)
}

/// The names owners go by in one snapshot, and which allocations are named
/// by themselves. Owners are numbered by their index in `names` (an
/// allocation's owner is found once per snapshot, and counted without
/// touching a string): the retention's roots first, then what several roots
/// hold (`several`), then the names of scope tables' children.
pub struct Naming {
    pub names: Vec<Arc<str>>,
    pub several: u32,
    /// Per allocation, its name as a scope table's child (see
    /// [`named_children`]); a number past `names` for none.
    pub named: Vec<u32>,
}

/// The [`Naming`] of the snapshot whose retention is `ret`.
pub fn naming(ret: &Retention, heap: &Heap, kept: &mut OwnerNames) -> Naming {
    let mut names: Vec<Arc<str>> = ret.roots.clone();
    names.push(kept.several());
    let several = names.len() as u32 - 1;
    let named = named_children(ret, heap, kept, &mut names);
    Naming { names, several, named }
}

/// The rows of the allocations whose owners are `owner` (by number in
/// `names`; a number past them counts for no one), sorted by owner and kind.
pub fn rows(owner: &[u32], heap: &Heap, names: &[Arc<str>]) -> Vec<Retained> {
    // Per owner met, a run of sums (allocations, bytes), one per kind.
    let kinds = heap.kind_names.len().max(1);
    let mut run_of: Vec<u32> = vec![UNKNOWN; names.len()];
    let mut sums: Vec<(u64, u64)> = Vec::new();
    for ((&o, &kind), a) in owner.iter().zip(heap.kinds).zip(heap.allocations) {
        let Some(run) = run_of.get_mut(o as usize) else { continue }; // garbage, or held by no name
        if *run == UNKNOWN {
            *run = (sums.len() / kinds) as u32;
            sums.resize(sums.len() + kinds, (0, 0));
        }
        if let Some(s) = sums.get_mut(*run as usize * kinds + kind as usize) {
            s.0 += 1;
            s.1 += a.blocks.saturating_mul(heap.bytes_per_block);
        }
    }
    let runs = run_of.iter().enumerate().filter(|(_, &r)| r != UNKNOWN);
    rows_of_sums(runs.map(|(o, &run)| (&names[o], run as usize * kinds)), (&sums, kinds), heap.kind_names)
}

/// The rows of sums kept per owner, each owner's a run of `kinds` sums
/// (allocations, bytes), one per kind number: `runs` gives each owner's name
/// and where its run starts in `sums`. Sorted by owner and kind.
pub fn rows_of_sums<'a>(
    runs: impl Iterator<Item = (&'a Arc<str>, usize)>,
    (sums, kinds): (&[(u64, u64)], usize),
    kind_names: &KindIds,
) -> Vec<Retained> {
    let mut rows = Vec::new();
    for (owner, start) in runs {
        let of_owner = sums.iter().skip(start).take(kinds).enumerate();
        rows.extend(of_owner.filter(|(_, s)| s.0 > 0).map(|(k, &(allocations, bytes))| Retained {
            owner: Arc::clone(owner),
            kind: kind_names.kind(k as u32),
            allocations,
            bytes,
        }));
    }
    // (Unstable: rows equal in every field are interchangeable.)
    rows.sort_unstable();
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

/// Per allocation, the owner it is by itself as a scope table's child (an
/// index into `names`, to which it adds the names it makes), else
/// [`UNKNOWN`] (or [`UNNAMED`]): a key's of a scope's table whose entry holds
/// it alone (the first of the table's words pointing into it is a value under
/// a key).
fn named_children(ret: &Retention, heap: &Heap, kept: &mut OwnerNames, names: &mut Vec<Arc<str>>) -> Vec<u32> {
    let mut named: Vec<u32> = vec![UNKNOWN; heap.allocations.len()];
    for (t, scope) in scope_tables(heap.nodes, heap.main_tables, heap.module_globals_word, kept.main()) {
        let table = &heap.nodes[t];
        for e in table.edges {
            let Some(c) = e.to_alloc_address.and_then(heap.at) else {
                continue;
            };
            if ret.idom.get(c) != Some(&Holder::Allocation(table.index)) || named[c] != UNKNOWN {
                continue;
            }
            named[c] = match &e.map_key {
                Some(key) => {
                    names.push(kept.joined(&scope, key));
                    names.len() as u32 - 1
                }
                None => UNNAMED,
            };
        }
    }
    named
}

/// The index of the node at an address: a search when the addresses are in
/// order (a split heap's areas may not be), else a map.
pub fn by_address(addresses: &[u64]) -> impl Fn(u64) -> Option<usize> + '_ {
    let sorted = addresses.windows(2).all(|w| w[0] < w[1]);
    let map: FxHashMap<u64, usize> =
        if sorted { FxHashMap::default() } else { addresses.iter().enumerate().map(|(i, &a)| (a, i)).collect() };
    move |a| if sorted { addresses.binary_search(&a).ok() } else { map.get(&a).copied() }
}

/// Per allocation, its owner: a root's when a root holds it, its own name as
/// a scope's child, else its immediate dominator's owner (dominators come
/// first in the retention's order); [`UNKNOWN`] for garbage. `several` is the
/// name of what several roots hold.
pub fn owners(ret: &Retention, named: &[u32], several: u32) -> Vec<u32> {
    let mut owner = vec![UNKNOWN; named.len()];
    for &v in &ret.order {
        let v = v as usize;
        let own = match ret.idom.get(v) {
            Some(Holder::Root(r)) => *r,
            Some(Holder::Roots) => several,
            Some(Holder::Allocation(j)) => match named.get(v).copied().unwrap_or(UNKNOWN) {
                UNKNOWN | UNNAMED => owner.get(*j as usize).copied().unwrap_or(NOBODY),
                name => name,
            },
            _ => NOBODY,
        };
        if let Some(o) = owner.get_mut(v) {
            *o = own;
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
        for e in n.edges.iter().filter(|e| e.to_is_head()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Four allocations held by three roots, two of them named alike; two of
    /// the kinds are named alike too (distinct texts of one name).
    #[test]
    fn owners_and_kinds_of_one_name_make_one_row_in_name_order() {
        let (a1, a2, b): (Arc<str>, Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("a"), Arc::from("b"));
        let list_too: &'static str = String::from("list").leak();
        let mut kind_names = KindIds::default();
        let kinds = [kind_names.id("list"), kind_names.id(list_too), kind_names.id("dict"), kind_names.id("tuple")];
        assert_eq!(kind_names.len(), 4, "the two lists are numbered apart");
        let ret = Retention {
            reachable: vec![true; 5],
            idom: vec![Holder::Root(0), Holder::Root(1), Holder::Root(2), Holder::Allocation(2), Holder::Garbage],
            retained_bytes: vec![0; 5],
            roots: vec![b, a2, a1],
            order: vec![0, 1, 2, 3],
        };
        let alloc = |start_block, blocks| Allocation { start_block, blocks, marked: false };
        let allocations = [alloc(0, 1), alloc(1, 2), alloc(3, 4), alloc(7, 1), alloc(8, 1)];
        let heap = Heap {
            allocations: &allocations,
            kinds: &[kinds[2], kinds[0], kinds[1], kinds[3], kinds[0]],
            kind_names: &kind_names,
            bytes_per_block: 16,
            nodes: &[],
            at: &|_| None,
            main_tables: &[],
            module_globals_word: 1,
        };
        let rows = retainers(&ret, &heap, &mut OwnerNames::default());
        let got: Vec<(&str, &str, u64, u64)> =
            rows.iter().map(|r| (&*r.owner, r.kind, r.allocations, r.bytes)).collect();
        // Root 0 ("b") holds a dict; root 1 ("a") a list of 2 blocks; root 2
        // ("a" again) a list of 4 blocks and, through it, a tuple. The
        // garbage list counts for no one.
        assert_eq!(got, [("a", "list", 2, 96), ("a", "tuple", 1, 16), ("b", "dict", 1, 16)]);
    }
}
