//! Who holds what: reachability from the GC's roots, immediate dominators and
//! retained sizes, for one snapshot.
//!
//! The graph is the one the firmware's mark phase walks (py/gc.c): its roots
//! are the words of `mp_state_ctx`'s root range and of the stack from the stack
//! pointer to its top; from a reachable allocation, every word holding the
//! address of an allocation's head is followed (with a collect table, only in
//! the blocks whose bit says they hold pointers). Each root field (and the
//! stack) is a node of its own under one super-root, so an allocation held by
//! one field alone is dominated by that field.
//!
//! The retained size of an allocation is what would be freed if it went: its
//! bytes and those of every allocation it dominates.

pub mod why;
crate::internal! {
    dominators;
    owners;
}

use std::ops::Range;
use std::sync::Arc;

use crate::decode::{Allocation, EdgeRow};
use crate::firmware::Firmware;
use crate::profile::Profile;
use dominators::{dominators_into, Dominators, Graph, NONE};

/// Where the GC looks for roots in one snapshot: `mp_state_ctx`'s root range,
/// and the stack from the stack pointer to its top.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcRoots {
    /// `mp_state_ctx`'s root range.
    pub state: Range<u64>,
    /// The stack scanned: from the stack pointer (else its bottom) to its top.
    pub stack: Range<u64>,
    /// The stack pointer, from the capture's sidecar.
    pub stack_pointer: Option<u64>,
    /// `mp_obj_module_t.globals` (a word index): owners are named through it.
    pub module_globals_word: u32,
    /// What else the port's `gc_collect` scans (the profile's `port_roots`).
    pub port: Vec<Range<u64>>,
}

/// The name of the stack's root.
pub const STACK: &str = "stack";

/// The GC's roots of each snapshot of a capture.
#[derive(Clone, Copy)]
pub struct RootsOf<'a> {
    /// The build.
    pub firmware: &'a Firmware,
    /// Its layout.
    pub profile: &'a Profile,
    /// The capture's sidecar: each snapshot's stack pointer.
    pub sidecar: Option<&'a crate::sidecar::Sidecar>,
}

impl RootsOf<'_> {
    /// Snapshot `index`'s roots, its stack pointer from the sidecar.
    pub fn of(&self, index: u64) -> Option<GcRoots> {
        let sp = self.sidecar.and_then(|s| s.get(index)).and_then(|e| e.sp);
        GcRoots::new(self.firmware, self.profile, sp)
    }
}

impl GcRoots {
    /// The roots of a snapshot whose stack pointer is `sp` (`None`: unknown, and
    /// the whole stack region, from `_sstack` or `_ebss` up, is scanned: an
    /// over-approximation, stale frames below the stack pointer hold old
    /// pointers). `None` when the profile has no root range or the build no
    /// `_estack`.
    pub fn new(fw: &Firmware, profile: &Profile, sp: Option<u64>) -> Option<GcRoots> {
        let s = &profile.state;
        let state = fw.state_address.checked_add(s.roots_start)?..fw.state_address.checked_add(s.roots_end?)?;
        let top = fw.symbols.address_of("_estack")?.min(fw.ram_end);
        let bottom = fw.symbols.address_of("_sstack").or_else(|| fw.symbols.address_of("_ebss"))?;
        // A stack pointer outside the stack region is not believed.
        let sp = sp.filter(|&sp| sp >= bottom && sp <= top);
        let module_globals_word = profile.objects.module_globals_word;
        let port = fw.port_roots.clone();
        Some(GcRoots { state, stack: sp.unwrap_or(bottom)..top, stack_pointer: sp, module_globals_word, port })
    }

    /// Whether the GC scans the word at `address` as a root.
    pub fn scans(&self, address: u64) -> bool {
        self.state.contains(&address) || self.stack.contains(&address) || self.port.iter().any(|r| r.contains(&address))
    }

    /// Whether the roots are the GC's own (the stack pointer is known).
    pub fn exact(&self) -> bool {
        self.stack_pointer.is_some()
    }

    /// The root a word at `address` belongs to, named by `name` in the state
    /// (its field) or [`STACK`]; `None` when the GC does not scan it.
    pub fn root_of(&self, address: u64, name: impl FnOnce() -> Arc<str>, stack: &Arc<str>) -> Option<Arc<str>> {
        if self.state.contains(&address) || self.port.iter().any(|r| r.contains(&address)) {
            Some(name())
        } else if self.stack.contains(&address) {
            Some(Arc::clone(stack))
        } else {
            None
        }
    }
}

/// What the tables say of an allocation's retention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// Whether the GC's roots reach it.
    pub reachable: bool,
    /// The immediate dominator when it is an allocation.
    pub holder_address: Option<u64>,
    /// The immediate dominator when it is a root (its name), or `roots` when
    /// several roots hold it, none through another.
    pub holder_root: Option<Arc<str>>,
    /// Null for garbage.
    pub retained_bytes: Option<u64>,
}

/// The name of the holder of what several roots hold.
pub const SEVERAL_ROOTS: &str = "roots";

impl Retention {
    /// Whether `held` is allocation `i`'s retention (without making it).
    pub fn is_held(&self, i: usize, held: &Held, address: impl Fn(usize) -> u64) -> bool {
        let reachable = self.reachable.get(i).copied().unwrap_or(false);
        let retained = reachable.then(|| self.retained_bytes.get(i).copied().unwrap_or(0));
        if held.reachable != reachable || held.retained_bytes != retained {
            return false;
        }
        let same_root = |name: &Arc<str>| held.holder_root.as_ref().is_some_and(|h| Arc::ptr_eq(h, name) || h == name);
        match self.idom.get(i).copied().unwrap_or(Holder::Garbage) {
            Holder::Garbage => held.holder_address.is_none() && held.holder_root.is_none(),
            Holder::Roots => held.holder_address.is_none() && held.holder_root.as_deref() == Some(SEVERAL_ROOTS),
            Holder::Root(r) => held.holder_address.is_none() && self.roots.get(r as usize).is_some_and(same_root),
            Holder::Allocation(j) => held.holder_root.is_none() && held.holder_address == Some(address(j as usize)),
        }
    }

    /// Allocation `i`'s retention; `address` gives an allocation's address.
    pub fn held(&self, i: usize, several: &Arc<str>, address: impl Fn(usize) -> u64) -> Held {
        let reachable = self.reachable.get(i).copied().unwrap_or(false);
        let (holder_address, holder_root) = match self.idom.get(i).copied().unwrap_or(Holder::Garbage) {
            Holder::Garbage => (None, None),
            Holder::Roots => (None, Some(Arc::clone(several))),
            Holder::Root(r) => (None, self.roots.get(r as usize).cloned()),
            Holder::Allocation(j) => (Some(address(j as usize)), None),
        };
        let retained_bytes = reachable.then(|| self.retained_bytes.get(i).copied().unwrap_or(0));
        Held { reachable, holder_address, holder_root, retained_bytes }
    }

    /// Allocations reachable, allocations that are garbage and their bytes.
    pub fn counts(&self, allocations: &[Allocation], bytes_per_block: u64) -> (u64, u64, u64) {
        let reachable = self.reachable.iter().filter(|r| **r).count() as u64;
        // Garbage counted and summed in one pass, branch-free.
        let (garbage, garbage_blocks) =
            allocations.iter().zip(&self.reachable).fold((0u64, 0u64), |(n, blocks), (a, &r)| {
                let g = u64::from(!r);
                (n + g, blocks.saturating_add(a.blocks * g))
            });
        (reachable, garbage, garbage_blocks.saturating_mul(bytes_per_block))
    }
}

/// One snapshot's figures of its retention, for the `snapshots` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reachability {
    /// The stack pointer, when the sidecar gives it.
    pub stack_pointer: Option<u64>,
    /// Whether the stack was scanned from the stack pointer (else its whole region).
    pub exact: bool,
    /// Allocations the roots reach.
    pub reachable_allocations: u64,
    /// Allocations nothing reaches: garbage the next collection frees.
    pub garbage_allocations: u64,
    /// Their bytes.
    pub garbage_bytes: u64,
}

/// Computes a whole decode's retention into `report` (see [`of_rows`]).
pub fn attach(report: &mut crate::decode::SnapshotReport, roots: &GcRoots) {
    if report.metrics_only {
        return; // no rows: nothing to compute from
    }
    let bpb = report.geometry.bytes_per_block;
    let allocations = allocations_of(&report.blocks);
    let retention = of_rows(&report.blocks, &allocations, bpb, &report.edges, roots);
    let (reachable_allocations, garbage_allocations, garbage_bytes) = retention.counts(&allocations, bpb);
    report.reachability = Some(Reachability {
        stack_pointer: roots.stack_pointer,
        exact: roots.exact(),
        reachable_allocations,
        garbage_allocations,
        garbage_bytes,
    });
    let nodes = nodes_of_rows(report);
    let main_tables = main_tables_of_rows(report, roots);
    let mut kind_names = owners::KindIds::default();
    let kinds: Vec<u32> = report.blocks.iter().map(|b| kind_names.id(b.kind)).collect();
    let addresses: Vec<u64> = report.blocks.iter().map(|b| b.address).collect();
    let at = owners::by_address(&addresses);
    let heap = owners::Heap {
        allocations: &allocations,
        kinds: &kinds,
        kind_names: &kind_names,
        bytes_per_block: bpb,
        nodes: &nodes,
        at: &at,
        main_tables: &main_tables,
        module_globals_word: roots.module_globals_word,
    };
    report.retainers = Some(Arc::new(owners::retainers(&retention, &heap, &mut owners::OwnerNames::default())));
    report.retention = Some(retention);
}

/// The allocations of a whole decode's block rows.
fn allocations_of(blocks: &[crate::decode::BlockRow]) -> Vec<Allocation> {
    blocks.iter().map(|b| Allocation { start_block: b.start_block, blocks: b.blocks, marked: b.marked }).collect()
}

/// The allocations of a whole decode that name owners ([`owners::Node`]).
pub fn nodes_of_rows(report: &crate::decode::SnapshotReport) -> Vec<owners::Node<'_>> {
    // Heap edges come grouped by the allocation holding them.
    let mut spans: rustc_hash::FxHashMap<u64, (usize, usize)> = Default::default();
    for (k, e) in report.edges.iter().enumerate() {
        if let Some(from) = e.from_address {
            spans.entry(from).and_modify(|s| s.1 = k + 1).or_insert((k, k + 1));
        }
    }
    let namers = report.blocks.iter().enumerate().filter(|(_, b)| owners::names_owners(b.kind));
    namers
        .map(|(i, b)| {
            let (a, z) = spans.get(&b.address).copied().unwrap_or((0, 0));
            owners::Node {
                index: i as u32,
                address: b.address,
                kind: b.kind,
                name: b.name.as_ref(),
                owner: b.owner,
                edges: &report.edges[a..z],
            }
        })
        .collect()
}

/// The tables `mp_state_ctx.vm.dict_main.map.table` points at in a whole decode.
pub fn main_tables_of_rows(report: &crate::decode::SnapshotReport, roots: &GcRoots) -> Vec<u64> {
    report
        .edges
        .iter()
        .filter(|e| e.root_address.is_some_and(|a| roots.state.contains(&a)))
        .filter(|e| e.root_name.as_deref().is_some_and(is_main_table_root))
        .map(|e| e.to_address)
        .collect()
}

/// Whether a root field is `__main__`'s globals table.
pub fn is_main_table_root(name: &str) -> bool {
    name.ends_with("dict_main.map.table")
}

/// The retention of a snapshot decoded whole: its blocks in allocation order,
/// its edges (heap pointers and the root words outside the heap).
pub fn of_rows(
    blocks: &[crate::decode::BlockRow],
    allocations: &[Allocation],
    bytes_per_block: u64,
    edges: &[EdgeRow],
    roots: &GcRoots,
) -> Retention {
    let scanned: Vec<bool> = blocks.iter().map(|b| b.collect.unwrap_or(true)).collect();
    let graph = MarkGraph { allocations, bytes_per_block, scanned: &scanned };
    let pool_blocks = allocations.last().map_or(0, |a| a.start_block + 1);
    let index = StartIndex::new(allocations, pool_blocks);
    let heads = edges.iter().filter(|e| e.to_is_head());
    let heap = heads.clone().filter_map(|e| Some((index.at(e.from_block?)?, index.at(e.to_block?)?)));
    let stack: Arc<str> = Arc::from(STACK);
    let root_words = heads.filter_map(|e| {
        let name = || e.root_name.clone().unwrap_or_else(|| Arc::from(""));
        Some((roots.root_of(e.root_address?, name, &stack)?, index.at(e.to_block?)?))
    });
    graph.retention(heap, root_words)
}

/// What holds an allocation: its immediate dominator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Holder {
    /// Nothing: it is garbage, waiting for the next collection.
    Garbage,
    /// Several roots, none through another.
    Roots,
    /// One root (its index in [`Retention::roots`]).
    Root(u32),
    /// Another allocation (its index).
    Allocation(u32),
}

/// Reachability and dominators of one snapshot's allocations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Retention {
    /// Per allocation: the GC would keep it.
    pub reachable: Vec<bool>,
    /// Per allocation: its immediate dominator.
    pub idom: Vec<Holder>,
    /// Per allocation: the bytes freed if it went (0 when unreachable).
    pub retained_bytes: Vec<u64>,
    /// The roots: a root field's name, or `stack`.
    pub roots: Vec<Arc<str>>,
    /// The reachable allocations, each after its immediate dominator.
    pub order: Vec<u32>,
}

impl Retention {
    /// This retention for the allocations of the next snapshot (`now` of
    /// them): `new_of` gives, per allocation here, the allocation at its
    /// first block there (none when not below `now`). For a snapshot whose
    /// changes reach no reachable allocation, the GC's graph is the same
    /// graph, numbered anew. `None` when a reachable allocation has no
    /// allocation there (the caller checked it has, so that is a bug, and the
    /// caller computes the retention afresh).
    pub fn renumbered(&self, new_of: &[u32], now: usize) -> Option<Retention> {
        let mut next = Retention::default();
        self.renumber_into(new_of, now, &mut next)?;
        Some(next)
    }

    /// [`Self::renumbered`], made in `next`'s room (its contents replaced).
    pub fn renumber_into(&self, new_of: &[u32], now: usize, next: &mut Retention) -> Option<()> {
        let at = |j: u32| new_of.get(j as usize).copied().filter(|&i| (i as usize) < now);
        next.reset(now);
        next.roots.clone_from(&self.roots);
        // In the allocations' order (the new numbers rise with the old, but
        // where an allocation came or went): reads and writes in sequence.
        let old = self.reachable.iter().zip(&self.idom).zip(&self.retained_bytes);
        for (j, ((&reachable, &idom), &retained)) in old.enumerate().filter(|(_, ((&r, _), _))| r) {
            // (`at` keeps `i` below `now`, the columns' length.)
            let i = at(j as u32)? as usize;
            next.reachable[i] = reachable;
            next.retained_bytes[i] = retained;
            next.idom[i] = match idom {
                Holder::Allocation(k) => Holder::Allocation(at(k)?),
                other => other,
            };
        }
        next.order.extend(self.order.iter().filter_map(|&j| at(j)));
        (next.order.len() == self.order.len()).then_some(())
    }

    /// Emptied for `n` allocations, none of them reachable, in its own room.
    pub fn reset(&mut self, n: usize) {
        self.reachable.clear();
        self.reachable.resize(n, false);
        self.idom.clear();
        self.idom.resize(n, Holder::Garbage);
        self.retained_bytes.clear();
        self.retained_bytes.resize(n, 0);
        self.roots.clear();
        self.order.clear();
    }
}

/// One snapshot's heap as the mark phase sees it.
pub struct MarkGraph<'a> {
    /// The allocations, by first block.
    pub allocations: &'a [Allocation],
    /// Bytes per block.
    pub bytes_per_block: u64,
    /// Per allocation: the mark phase scans its words (false where a collect
    /// table says the block holds no pointers).
    pub scanned: &'a [bool],
}

/// Which allocation starts at each pool block: a lookup per pointer, where a
/// search would cost a dozen steps.
#[derive(Default)]
pub struct StartIndex(Vec<u32>);

impl StartIndex {
    /// The index of `allocations` (by first block) in a pool of `pool_blocks`.
    pub fn new(allocations: &[Allocation], pool_blocks: u64) -> Self {
        let mut index = StartIndex(Vec::new());
        index.refill(allocations, pool_blocks);
        index
    }

    /// Makes this the index of `allocations`, in its own room.
    pub fn refill(&mut self, allocations: &[Allocation], pool_blocks: u64) {
        self.0.clear();
        self.0.resize(pool_blocks as usize, NONE);
        for (i, a) in allocations.iter().enumerate() {
            if let Some(slot) = self.0.get_mut(a.start_block as usize) {
                *slot = i as u32;
            }
        }
    }

    /// The pool blocks indexed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no block is indexed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The allocation starting at `block`.
    pub fn at(&self, block: u64) -> Option<u32> {
        self.0.get(usize::try_from(block).ok()?).copied().filter(|&i| i != NONE)
    }
}

/// The room [`MarkGraph::retention_in`] works in, kept from one snapshot to
/// the next: a snapshot's retention then allocates only what it returns.
#[derive(Default)]
pub struct RetentionScratch {
    edges: Vec<(u32, u32)>,
    graph: Graph,
    scratch: dominators::Scratch,
    dominators: Dominators,
    retained: Vec<u64>,
}

impl MarkGraph<'_> {
    /// Reachability and dominators, from `heap` pointers (the allocation holding
    /// one and the allocation whose head it holds, by index) and `roots` (a
    /// root's name, and the allocation whose head it holds).
    pub fn retention(
        &self,
        heap: impl Iterator<Item = (u32, u32)>,
        roots: impl Iterator<Item = (Arc<str>, u32)>,
    ) -> Retention {
        self.retention_in(heap, roots, &mut RetentionScratch::default())
    }

    /// [`Self::retention`], working in `room`.
    pub fn retention_in(
        &self,
        heap: impl Iterator<Item = (u32, u32)>,
        roots: impl Iterator<Item = (Arc<str>, u32)>,
        room: &mut RetentionScratch,
    ) -> Retention {
        let n = self.allocations.len();
        let (names, first) = root_rows(roots, n, room);
        for (a, b) in heap {
            if (a as usize) < n && (b as usize) < n && self.scanned.get(a as usize).copied().unwrap_or(true) {
                room.edges.push((first + a, first + b));
            }
        }
        room.graph.refill(first as usize + n, &room.edges);
        self.dominated(names, first, room)
    }

    /// [`Self::retention_in`], each allocation's pointers its `heads` (the
    /// first blocks of the allocations they point at, found in `index`): the
    /// graph's rows are filled straight from them, in the order
    /// [`Graph::refill`] gives (each row's edges last first), without an edge
    /// list.
    pub fn retention_of_heads<'h>(
        &self,
        heads: impl Fn(usize) -> &'h [u32],
        index: &StartIndex,
        roots: impl Iterator<Item = (Arc<str>, u32)>,
        room: &mut RetentionScratch,
    ) -> Retention {
        let n = self.allocations.len();
        let (names, first) = root_rows(roots, n, room);
        // Node 0's and the roots' rows, then the allocations' after them.
        room.graph.refill_rows(first as usize, first as usize + n, &room.edges);
        for i in 0..n {
            let scanned = self.scanned.get(i).copied().unwrap_or(true);
            let targets = heads(i).iter().rev().filter(|_| scanned).filter_map(|&b| index.at(b as u64));
            room.graph.push_row(targets.filter(|&j| (j as usize) < n).map(|j| first + j));
        }
        self.dominated(names, first, room)
    }

    /// The retention from the graph in `room` (node 0 the super-root, then the
    /// `names`' roots, the allocations from `first` on).
    fn dominated(&self, names: Vec<Arc<str>>, first: u32, room: &mut RetentionScratch) -> Retention {
        dominators_into(&room.graph, &mut room.scratch, &mut room.dominators);
        let d = &room.dominators;
        let holder = |node: u32| match node {
            NONE => Holder::Garbage,
            0 => Holder::Roots,
            r if r < first => Holder::Root(r - 1),
            a => Holder::Allocation(a - first),
        };
        let allocation_idom = &d.idom[first as usize..];
        // A dominator comes before what it dominates: sum backwards.
        let retained = &mut room.retained;
        retained.clear();
        retained.resize(first as usize, 0);
        retained.extend(self.allocations.iter().map(|a| a.blocks.saturating_mul(self.bytes_per_block)));
        for &v in d.order.iter().skip(1).rev() {
            let up = d.idom[v as usize];
            if up != NONE {
                retained[up as usize] = retained[up as usize].saturating_add(retained[v as usize]);
            }
        }
        let reachable: Vec<bool> = allocation_idom.iter().map(|&i| i != NONE).collect();
        let retained_bytes = reachable.iter().zip(&retained[first as usize..]).map(|(&r, &b)| if r { b } else { 0 });
        let order = d.order.iter().filter_map(|&v| v.checked_sub(first)).collect();
        Retention {
            order,
            retained_bytes: retained_bytes.collect(),
            reachable,
            idom: allocation_idom.iter().map(|&i| holder(i)).collect(),
            roots: names,
        }
    }
}

/// Root `name`'s number among `names` (a retention's roots).
pub fn root_number(names: &[Arc<str>], name: &Arc<str>) -> Option<usize> {
    // Names are mostly shared: the pointer is checked before the text.
    names.iter().position(|x| Arc::ptr_eq(x, name) || x == name)
}

/// Root `name`'s number among `names`, added last when it is not there: the
/// order roots are met in numbers them, in a retention made whole or not.
pub fn number_root(names: &mut Vec<Arc<str>>, name: Arc<str>) -> usize {
    root_number(names, &name).unwrap_or_else(|| {
        names.push(name);
        names.len() - 1
    })
}

/// Numbers the roots' names (node 1 on, in order met) and puts their edges
/// in `room.edges` (emptied first), each to an allocation numbered after the
/// roots, then the super-root's (node 0) to each root; returns the names and
/// the number of the first allocation's node. Edges to an allocation past the
/// `n`th are dropped.
fn root_rows(
    roots: impl Iterator<Item = (Arc<str>, u32)>,
    n: usize,
    room: &mut RetentionScratch,
) -> (Vec<Arc<str>>, u32) {
    let mut names: Vec<Arc<str>> = Vec::new();
    room.edges.clear();
    for (name, to) in roots {
        if to as usize >= n {
            continue;
        }
        let r = number_root(&mut names, name);
        room.edges.push((1 + r as u32, to));
    }
    let first = 1 + names.len() as u32;
    for e in room.edges.iter_mut() {
        e.1 += first;
    }
    room.edges.extend((1..first).map(|r| (0, r)));
    (names, first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(start_block: u64, blocks: u64) -> Allocation {
        Allocation { start_block, blocks, marked: false }
    }

    /// Reachable allocations counted, garbage counted and its bytes summed.
    #[test]
    fn counts_are_the_reachable_the_garbage_and_its_bytes() {
        let allocations = [alloc(0, 1), alloc(1, 2), alloc(3, 3), alloc(6, 1)];
        let ret = Retention { reachable: vec![true, false, false, true], ..Retention::default() };
        // Garbage: 2 + 3 blocks of 16 bytes.
        assert_eq!(ret.counts(&allocations, 16), (2, 2, 80));
        let none = Retention { reachable: vec![false; 4], ..Retention::default() };
        assert_eq!(none.counts(&allocations, 16), (0, 4, 112));
    }

    /// The graph filled from each allocation's heads is the one built from an
    /// edge list, to the order of each row: the same retention, order too.
    #[test]
    fn a_retention_from_heads_is_the_one_from_edges() {
        use crate::synth::rng::Rng;
        for seed in 0..300 {
            let mut rng = Rng::new(seed);
            let n = rng.range(1, 60) as usize;
            let allocations: Vec<Allocation> = (0..n as u64).map(|k| alloc(2 * k, 1 + k % 2)).collect();
            let index = StartIndex::new(&allocations, 2 * n as u64 + 4);
            // Heads: first blocks of allocations, some not a head (odd), some past the pool.
            let heads: Vec<Vec<u32>> =
                (0..n).map(|_| (0..rng.below(4)).map(|_| rng.below(2 * n as u64 + 6) as u32).collect()).collect();
            let scanned: Vec<bool> = (0..n).map(|_| !rng.chance(10)).collect();
            let names: Vec<Arc<str>> =
                ["stack", "mp_state_ctx.vm.dict_main.map.table", "other"].map(Arc::from).to_vec();
            let roots: Vec<(Arc<str>, u32)> = (0..rng.range(1, 6))
                .map(|_| (names[rng.below(3) as usize].clone(), rng.below(n as u64 + 2) as u32))
                .collect();
            let g = MarkGraph { allocations: &allocations, bytes_per_block: 16, scanned: &scanned };
            let idx = &index;
            let pairs = (0..n).flat_map(|i| heads[i].iter().filter_map(move |&b| Some((i as u32, idx.at(b as u64)?))));
            let from_edges = g.retention(pairs, roots.iter().cloned());
            let from_heads = g.retention_of_heads(
                |i| &heads[i][..],
                &index,
                roots.iter().cloned(),
                &mut RetentionScratch::default(),
            );
            assert_eq!(from_heads, from_edges, "seed {seed}");
        }
    }

    /// A hand-built heap: `__main__`'s table (0) holds a list (1) whose items (2)
    /// hold two strs (3, 4); str 4's data (5) is also held by the stack; a
    /// cycle of two (6, 7) hangs from nothing.
    #[test]
    fn a_hand_built_heap() {
        let allocations =
            [alloc(0, 4), alloc(4, 1), alloc(5, 2), alloc(7, 1), alloc(8, 1), alloc(9, 3), alloc(12, 1), alloc(13, 1)];
        let scanned = [true; 8];
        let g = MarkGraph { allocations: &allocations, bytes_per_block: 16, scanned: &scanned };
        // By allocation index.
        let heap = [(0, 1), (1, 2), (2, 3), (2, 4), (4, 5), (6, 7), (7, 6)];
        let main: Arc<str> = Arc::from("mp_state_ctx.vm.dict_main.map.table");
        let stack: Arc<str> = Arc::from("stack");
        let roots = [(main.clone(), 0), (stack.clone(), 5), (stack.clone(), 100)];
        let r = g.retention(heap.into_iter(), roots.into_iter());
        assert_eq!(r.roots, vec![main, stack]);
        assert_eq!(r.reachable, [true, true, true, true, true, true, false, false]);
        use Holder::*;
        // The data (5) is held by the stack and through str 4: by two roots.
        let expected = [Root(0), Allocation(0), Allocation(1), Allocation(2), Allocation(2), Roots, Garbage, Garbage];
        assert_eq!(r.idom, expected);
        // By hand: the table 64 + list 16 + items 32 + strs 16 + 16; the data (48)
        // is not retained by the table (the stack holds it too).
        assert_eq!(r.retained_bytes, [144, 80, 64, 16, 16, 48, 0, 0]);
    }

    /// The next snapshot of the hand-built heap: a new allocation nothing
    /// holds yet (block 6, between the list and its items) and a garbage
    /// block gone (13). Carried over, the retention is the one computed afresh.
    #[test]
    fn a_retention_renumbered_for_the_next_snapshot_is_the_one_computed_afresh() {
        let before =
            [alloc(0, 4), alloc(4, 1), alloc(5, 1), alloc(7, 1), alloc(8, 1), alloc(9, 3), alloc(12, 1), alloc(13, 1)];
        let after =
            [alloc(0, 4), alloc(4, 1), alloc(5, 1), alloc(6, 1), alloc(7, 1), alloc(8, 1), alloc(9, 3), alloc(12, 1)];
        let main: Arc<str> = Arc::from("mp_state_ctx.vm.dict_main.map.table");
        let stack: Arc<str> = Arc::from("stack");
        let retention = |allocations: &[Allocation], heap: &[(u32, u32)], data: u32| {
            let scanned = vec![true; allocations.len()];
            let g = MarkGraph { allocations, bytes_per_block: 16, scanned: &scanned };
            g.retention(heap.iter().copied(), [(main.clone(), 0), (stack.clone(), data)].into_iter())
        };
        let old = retention(&before, &[(0, 1), (1, 2), (2, 3), (2, 4), (4, 5), (6, 7), (7, 6)], 5);
        // The same pointers, by index in the next snapshot; the new block (3)
        // points at the list; the cycle's survivor (7) points at nothing.
        let fresh = retention(&after, &[(0, 1), (1, 2), (2, 4), (2, 5), (5, 6), (3, 1)], 6);
        let new_of = |after: &[Allocation]| {
            let index = StartIndex::new(after, 14);
            before.iter().map(|a| index.at(a.start_block).unwrap_or(u32::MAX)).collect::<Vec<u32>>()
        };
        let carried = old.renumbered(&new_of(&after), after.len()).expect("all reachable ones are there");
        assert_eq!(carried.reachable, fresh.reachable);
        assert_eq!(carried.idom, fresh.idom);
        assert_eq!(carried.retained_bytes, fresh.retained_bytes);
        assert_eq!(carried.roots, fresh.roots);
        assert_eq!(carried.reachable, [true, true, true, false, true, true, true, false]);
        // The order is the snapshot before's, renumbered: a dominator first.
        for (k, &v) in carried.order.iter().enumerate() {
            if let Holder::Allocation(d) = carried.idom[v as usize] {
                assert!(carried.order[..k].contains(&d), "{v} before its dominator {d}");
            }
        }
        // A reachable allocation gone: nothing to carry over.
        assert_eq!(old.renumbered(&new_of(&after[..4]), 4), None);
    }

    #[test]
    fn blocks_the_collect_table_says_hold_no_pointers_are_not_followed() {
        let allocations = [alloc(0, 1), alloc(1, 1), alloc(2, 1)];
        let scanned = [true, false, true];
        let g = MarkGraph { allocations: &allocations, bytes_per_block: 16, scanned: &scanned };
        let r = g.retention([(0, 1), (1, 2)].into_iter(), [(Arc::from("stack"), 0)].into_iter());
        assert_eq!(StartIndex::new(&allocations, 3).at(2), Some(2));
        assert_eq!(StartIndex::new(&allocations, 3).at(9), None);
        assert_eq!(r.reachable, [true, true, false]);
        assert_eq!(r.retained_bytes, [32, 16, 0]);
    }
}
