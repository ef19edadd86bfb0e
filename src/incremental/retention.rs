//! What a run decoder keeps of a snapshot's retention for the next: every
//! allocation's heads, retention key and kind, flat ([`FlatRetention`]); the
//! check that lets the next snapshot carry the retention over
//! ([`carried_retention`]); and the room the `retainers` rows are made in.

use std::sync::Arc;

use super::local_retention::local_retention;
use super::owners::{Changed, KeptOwners, OwnerIds, OwnersIn};
use super::runs::{CarriedRun, CarriedRuns};
use super::{RunDecoder, Slots};
use crate::decode::{Allocation, DecodeFacts, HeapGeometry, SnapshotReport};
use crate::tables::lifetimes::Lifetime;
use crate::retain::owners::KindIds;
use crate::retain::{self, GcRoots, MarkGraph, StartIndex};

/// What the retention needs of every allocation, flat, by allocation index:
/// its heads ([`Slot::heads`], the graph's edges), its retention key and its
/// kind. Kept with the snapshot before, so that the next snapshot copies them
/// for the allocations carried over from it and reads only the slots made
/// again, rather than visiting every boxed slot.
#[derive(Default)]
pub(super) struct FlatRetention {
    pub(super) start: Vec<u32>,
    pub(super) heads: Vec<u32>,
    /// Each allocation's retention, as [`held_key`] gives it: a slot carried
    /// over whose key is the one its allocation had before keeps its
    /// [`AllocationSight::held`] without being visited. (The root names the
    /// keys point at are kept alive by `retention`, so no other name takes
    /// their addresses while the keys are compared.)
    held: Vec<HeldKey>,
    /// Each allocation's kind ([`AllocationSight::kind`]), by its number in
    /// the run's [`KindIds`].
    kinds: Vec<u32>,
    /// The allocations whose kinds name owners: the owners read only their
    /// slots.
    namers: Vec<u32>,
    /// The retention computed from these heads, and the roots' edges it was
    /// computed from (the root's name, the first block of the allocation it
    /// holds): the next snapshot carries it over when its changes reach no
    /// reachable allocation (see [`carried_retention`]).
    pub(super) retention: Option<retain::Retention>,
    pub(super) root_edges: Vec<(Arc<str>, u64)>,
    /// The `retainers` rows made from this retention, and the tables of
    /// `__main__`'s globals they were made with (see [`same_names`]).
    retainers: Option<Arc<Vec<retain::owners::Retained>>>,
    main_tables: Vec<u64>,
    /// The owners the rows were summed from, for the next snapshot's.
    owners: KeptOwners,
}

/// An allocation's retention, comparable from one snapshot to the next:
/// (what holds it: 0 garbage, 1 several roots, 2 a root, 3 an allocation;
/// the root name's address or the holder's first block; its retained bytes).
type HeldKey = (u8, u64, u64);

/// Allocation `i`'s [`HeldKey`] in `retention`.
pub(super) fn held_key(retention: &retain::Retention, i: usize, allocations: &[Allocation]) -> HeldKey {
    use retain::Holder;
    let retained = retention.retained_bytes.get(i).copied().unwrap_or(0);
    match retention.idom.get(i).copied().unwrap_or(Holder::Garbage) {
        Holder::Garbage => (0, 0, 0),
        Holder::Roots => (1, 0, retained),
        Holder::Root(r) => (2, retention.roots.get(r as usize).map_or(0, |n| Arc::as_ptr(n) as *const u8 as u64), retained),
        Holder::Allocation(j) => (3, allocations.get(j as usize).map_or(u64::MAX, |a| a.start_block), retained),
    }
}

impl FlatRetention {
    /// Allocation `i`'s heads (`None` past the last, or when none were kept).
    pub(super) fn of(&self, i: usize) -> Option<&[u32]> {
        let (a, b) = (*self.start.get(i)? as usize, *self.start.get(i + 1)? as usize);
        self.heads.get(a..b)
    }

    /// The heads of `slots`: a slot carried over from the snapshot before (in
    /// one of `runs`) takes its allocation's there from `before`, a run at a
    /// time. Kinds are numbered in `kind_ids`, the run's.
    pub(super) fn refill(
        &mut self,
        slots: &Slots,
        runs: &CarriedRuns,
        before: Option<&FlatRetention>,
        kind_ids: &mut KindIds,
    ) {
        self.start.clear();
        self.heads.clear();
        self.heads.reserve(before.map_or(0, |b| b.heads.len()));
        self.start.push(0);
        self.kinds.clear();
        self.namers.clear();
        let mut i = 0;
        for run in runs.iter() {
            for k in i..run.now as usize {
                self.push_one((k, None), slots, before, kind_ids);
            }
            if !before.is_some_and(|b| self.copy_run(b, run)) {
                run.now_range().zip(run.before_range()).for_each(|(k, j)| self.push_one((k, Some(j)), slots, before, kind_ids));
            }
            i = run.now_range().end;
        }
        (i..slots.len()).for_each(|k| self.push_one((k, None), slots, before, kind_ids));
    }

    /// Allocation `i`'s heads and kind, from the snapshot before's allocation
    /// `j` it carries over, else from its slot.
    fn push_one(&mut self, (i, j): (usize, Option<usize>), slots: &Slots, before: Option<&FlatRetention>, kind_ids: &mut KindIds) {
        let kept = j.and_then(|j| Some((before?.of(j)?, *before?.kinds.get(j)?)));
        let (heads, kind) = match (kept, slots.get(i).and_then(Option::as_ref)) {
            (Some(kept), _) => kept,
            (None, Some(s)) => (s.heads(), kind_ids.id(s.sight.kind)),
            (None, None) => (&[][..], kind_ids.id("unknown")),
        };
        // (Most hold a head or two: pushed, not copied by a call.)
        heads.iter().for_each(|&h| self.heads.push(h));
        self.start.push(self.heads.len() as u32);
        self.kinds.push(kind);
        if kind_ids.names_owners(kind) {
            self.namers.push(i as u32);
        }
    }

    /// Copies `run`'s heads, kinds and namers from `before`; false (having
    /// copied nothing) when `before` does not hold them all.
    fn copy_run(&mut self, before: &FlatRetention, run: &CarriedRun) -> bool {
        let was = run.before_range();
        let (Some(starts), Some(kinds)) = (before.start.get(was.start..=was.end), before.kinds.get(was.clone())) else {
            return false;
        };
        let (first, last) = (starts[0], starts[starts.len() - 1]);
        let Some(heads) = before.heads.get(first as usize..last as usize) else { return false };
        // The heads are copied whole, so each start moves by one offset.
        let base = self.heads.len() as u32;
        self.heads.extend_from_slice(heads);
        self.start.extend(starts[1..].iter().map(|&s| s - first + base));
        self.kinds.extend_from_slice(kinds);
        let (lo, hi) = (before.namers.partition_point(|&n| n < run.before), before.namers.partition_point(|&n| (n as usize) < was.end));
        self.namers.extend(before.namers[lo..hi].iter().map(|&n| n - run.before + run.now));
        true
    }
}

/// The snapshot before's retention, numbered for this snapshot, when this
/// snapshot's changes reach no allocation reachable before; `None` when they
/// may (then the retention is computed afresh).
///
/// The roots holding the same allocations (by first block) as before, and
/// every allocation reachable before still there with the same extent,
/// collect bit and heads (carried over unchanged, or decoded again to the
/// same), the GC reaches the same allocations through the same pointers: the
/// same dominators and retained sizes. A carried-over allocation's heads are
/// those of the snapshot before, and still heads: a change at a block it
/// pointed at would have had it decoded again (its reads are recorded).
/// What changed was unreachable before and is unreachable now. In a capture
/// taken at every heap change, that is about half the snapshots: an
/// allocation not yet stored anywhere, a garbage block freed.
pub(super) fn carried_retention(
    now: RetentionInputs,
    before: RetentionInputs,
    root_edges: &[(Arc<str>, u32)],
    runs: &CarriedRuns,
    into: &mut retain::Retention,
) -> Option<()> {
    let RetentionInputs { allocations, scanned, flat, index } = now;
    let RetentionInputs { allocations: old_allocations, scanned: old_scanned, flat: before, index: old_index } = before;
    let old = before.retention.as_ref()?;
    let start_of = |i: u32| allocations.get(i as usize).map(|a| a.start_block);
    let same_roots = root_edges.len() == before.root_edges.len()
        && root_edges.iter().zip(&before.root_edges).all(|((name, i), (old_name, old_start))| {
            (Arc::ptr_eq(name, old_name) || name == old_name) && start_of(*i) == Some(*old_start)
        });
    if !same_roots {
        return None;
    }
    // Every allocation reachable before and not carried over must be there
    // again, pointing at the same heads.
    let not_carried = runs.gaps_before(old_allocations.len())?.flatten();
    for j in not_carried.filter(|&j| old.reachable.get(j) == Some(&true)) {
        let was = old_allocations.get(j)?;
        let i = index.at(was.start_block)? as usize;
        let same_extent = allocations.get(i)?.blocks == was.blocks;
        let same_scan = scanned.get(i).is_some() && scanned.get(i) == old_scanned.get(j);
        let heads = flat.of(i)?;
        let same_heads = heads == before.of(j)?
            && heads.iter().all(|&b| index.at(b as u64).is_some() == old_index.at(b as u64).is_some());
        if !(same_extent && same_scan && same_heads) {
            return None;
        }
    }
    old.renumber_into(&runs.old_to_new(old_allocations, index)?, allocations.len(), into)
}

/// What a snapshot's retention is computed from, besides its roots: its
/// allocations, which of them the mark phase scans, their heads (and the
/// retention computed, once it is) and the allocations by first block.
#[derive(Clone, Copy)]
pub(super) struct RetentionInputs<'a> {
    pub(super) allocations: &'a [Allocation],
    pub(super) scanned: &'a [bool],
    pub(super) flat: &'a FlatRetention,
    pub(super) index: &'a StartIndex,
}

/// What the `retainers` rows of one snapshot are made in, kept for the next.
#[derive(Default)]
pub(super) struct OwnersRoom {
    names: retain::owners::OwnerNames,
    /// The run's kinds by number.
    kind_ids: KindIds,
    /// The owners' view of the allocations naming owners, emptied: only its
    /// room is kept.
    nodes: Vec<retain::owners::Node<'static>>,
    /// Owners numbered by their names for the run.
    ids: OwnerIds,
}

impl OwnersRoom {
    /// `make` of the snapshot's owners (see [`retain::owners`]), from its
    /// slots and `flat`; `main` are the GC's roots and the tables of
    /// `__main__`'s globals; `index` finds an allocation by its first block.
    fn with_owners<R>(&mut self, from: OwnersFrom, make: impl FnOnce(OwnersIn) -> R) -> R {
        let ((facts, slots), (retention, flat), (roots, main_tables), (g, index)) = from;
        let mut nodes = recycle(std::mem::take(&mut self.nodes));
        let namers = flat.namers.iter().filter_map(|&i| Some((i, slots.get(i as usize)?.as_ref()?)));
        nodes.extend(namers.map(|(i, s)| retain::owners::Node {
            index: i,
            address: s.sight.key(),
            kind: s.sight.kind,
            name: s.sight.name.as_ref(),
            owner: s.sight.owner,
            edges: &s.edges,
        }));
        let at = |address: u64| {
            let block = g.block_of(address).filter(|&b| g.block_address(b) == address)?;
            index.at(block).map(|i| i as usize)
        };
        let heap = retain::owners::Heap {
            allocations: &facts.allocations,
            kinds: &flat.kinds,
            kind_names: &self.kind_ids,
            bytes_per_block: g.bytes_per_block,
            nodes: &nodes,
            at: &at,
            main_tables,
            module_globals_word: roots.module_globals_word,
        };
        let made = make(OwnersIn { retention, heap: &heap, names: &mut self.names, ids: &mut self.ids });
        self.nodes = recycle(nodes);
        made
    }
}

/// What a snapshot's owners are found from: its facts and slots, its
/// retention and flat retention, its GC roots and the tables of `__main__`'s
/// globals, its geometry and its index by first block.
type OwnersFrom<'a> = (
    (&'a DecodeFacts, &'a Slots),
    (&'a retain::Retention, &'a FlatRetention),
    (&'a GcRoots, &'a [u64]),
    (&'a HeapGeometry, &'a StartIndex),
);

/// An empty vector of another lifetime in `v`'s room: what a vector of
/// borrows keeps from one snapshot to the next. (Collected in place: the
/// element types have one layout, so the allocation is reused.)
pub(super) fn recycle<'a, 'b>(mut v: Vec<retain::owners::Node<'a>>) -> Vec<retain::owners::Node<'b>> {
    v.clear();
    v.into_iter().map(|_| unreachable!("emptied")).collect()
}

impl<'f, 'm> RunDecoder<'_, 'f, 'm> {
    /// Computes the retention of the snapshot from `slots` (every allocation's
    /// edges) and the root words `roots` keeps, gives each slot its own, and
    /// puts the snapshot's figures in `report`. With the snapshot before's flat
    /// retention and allocations (when decoded from it), the retention and the
    /// `retainers` rows are carried over where they may be; its rows are taken
    /// from it then. Returns the slots carried over whose retention changed
    /// (sorted), and this snapshot's flat retention.
    pub(super) fn retain(
        &mut self,
        report: &mut SnapshotReport,
        (facts, made): (&DecodeFacts, &[usize]),
        slots: &mut Slots,
        roots: &GcRoots,
        mut with_old: Option<(&mut FlatRetention, &[Allocation])>,
    ) -> (Vec<usize>, FlatRetention) {
        let g = &report.geometry;
        self.spare.index_and_scan(facts, g);
        let mut flat = std::mem::take(&mut self.spare.flat);
        // The retention of the snapshot before the one before: the room this
        // one's is made in when carried over or made where changes reach.
        let mut room = flat.retention.take().unwrap_or_default();
        // The snapshot before's keys, which [`give_held`] makes this one's.
        let before_held = with_old.as_mut().map(|(b, _)| std::mem::take(&mut b.held)).unwrap_or_default();
        let before = with_old.as_ref().map(|(b, _)| &**b);
        flat.refill(slots, &self.spare.runs, before, &mut self.spare.owners.kind_ids);
        let root_edges = self.root_edges(facts, roots, g);
        let spare = &mut self.spare;
        let (scanned, index) = (&spare.scanned[..], &spare.start_index);
        let now = RetentionInputs { allocations: &facts.allocations, scanned, flat: &flat, index };
        let carried = with_old.as_ref().and_then(|(flat, allocations)| {
            let (scanned, index) = (&spare.scanned_before[..], &spare.start_before);
            let before = RetentionInputs { allocations, scanned, flat, index };
            carried_retention(now, before, &root_edges, &spare.runs, &mut room)
        });
        let local = || {
            let (flat, allocations) = with_old.as_ref()?;
            let (scanned, index) = (&spare.scanned_before[..], &spare.start_before);
            let before = RetentionInputs { allocations, scanned, flat, index };
            let local_room = (g.bytes_per_block, &mut spare.local);
            local_retention(now, before, &root_edges, &spare.runs, local_room, &mut room)
        };
        let local = carried.is_none().then(local).flatten();
        let whole = |room: &mut retain::RetentionScratch| {
            let graph = MarkGraph { allocations: &facts.allocations, bytes_per_block: g.bytes_per_block, scanned };
            let heads = |i: usize| flat.of(i).unwrap_or_default();
            graph.retention_of_heads(heads, index, root_edges.iter().cloned(), room)
        };
        // A debug build holds the region's retention to the whole one.
        #[cfg(debug_assertions)]
        if local.is_some() {
            let w = whole(&mut spare.retention);
            let key = |r: &retain::Retention| (r.idom.clone(), r.reachable.clone(), r.retained_bytes.clone(), r.roots.clone());
            assert_eq!(key(&room), key(&w), "the retention made where changes reach is the whole one");
        }
        // What may hold otherwise than before: nothing when carried over,
        // what the region's retention says moved, or anything.
        let (retention, moved, renamed_root) = match (carried, local) {
            (Some(()), _) => (room, Some(Vec::new()), false),
            (None, Some(moved)) => (room, Some(moved.allocations), moved.renamed_root),
            (None, None) => (whole(&mut spare.retention), None, false),
        };
        let start_of = |i: u32| facts.allocations.get(i as usize).map_or(u64::MAX, |a| a.start_block);
        flat.root_edges.clear();
        flat.root_edges.extend(root_edges.into_iter().map(|(name, i)| (name, start_of(i))));
        let held = HeldInputs { retention: &retention, allocations: &facts.allocations, geometry: g, made };
        let changed = give_held(slots, &mut flat, held, &spare.runs, (before_held, moved.as_deref()));
        // (A root renamed changes the owner of all it dominates, not only of
        // what moved: the owners are found whole then.)
        let moved_owners = moved.as_deref().filter(|_| !renamed_root);
        let before = with_old.as_mut().zip(moved_owners).map(|((b, old), moved)| (&mut **b, *old, moved));
        let rows = self.retainers((facts, slots), (&retention, &mut flat), roots, g, before);
        let rows = Arc::new(rows);
        report.retainers = Some(Arc::clone(&rows));
        flat.retainers = Some(rows);
        let (reachable_allocations, garbage_allocations, garbage_bytes) =
            retention.counts(&facts.allocations, g.bytes_per_block);
        report.reachability = Some(retain::Reachability {
            stack_pointer: roots.stack_pointer,
            exact: roots.exact(),
            reachable_allocations,
            garbage_allocations,
            garbage_bytes,
        });
        flat.retention = Some(retention);
        (changed, flat)
    }

    /// The roots' edges of the snapshot: each root word holding a head, named
    /// (the stack by one name for the whole run: keys compare it by address),
    /// and the allocation it holds.
    fn root_edges(&mut self, facts: &DecodeFacts, roots: &GcRoots, g: &HeapGeometry) -> Vec<(Arc<str>, u32)> {
        let stack: Arc<str> = Arc::clone(self.spare.stack.get_or_insert_with(|| Arc::from(retain::STACK)));
        let (decoder, index) = (self.decoder, &self.spare.start_index);
        (facts.root_words.iter().filter(|w| w.head))
            .filter_map(|w| {
                let root = roots.root_of(w.address, || decoder.root_name(w.address), &stack)?;
                Some((root, index.at(g.block_of(w.value)?)?))
            })
            .collect()
    }

    /// The `retainers` rows of the snapshot: from the snapshot `before`'s
    /// owners and rows (with its allocations, and what `moved` since), where
    /// [`same_names`] says the owners' names are the same; else made afresh.
    /// The tables of `__main__`'s globals they are made with are kept in
    /// `flat`.
    fn retainers(
        &mut self,
        (facts, slots): (&DecodeFacts, &Slots),
        (retention, flat): (&retain::Retention, &mut FlatRetention),
        roots: &GcRoots,
        g: &HeapGeometry,
        before: Option<(&mut FlatRetention, &[Allocation], &[u32])>,
    ) -> Vec<retain::owners::Retained> {
        let decoder = self.decoder;
        let main_tables: Vec<u64> = (facts.root_words.iter())
            .filter(|w| w.head && roots.state.contains(&w.address))
            .filter(|w| retain::is_main_table_root(&decoder.root_name(w.address)))
            .map(|w| w.value)
            .collect();
        let spare = &mut self.spare;
        let before = before.filter(|(b, ..)| same_names((flat, b), &main_tables, spare));
        let mut owners = std::mem::take(&mut flat.owners);
        let runs = &spare.runs;
        let from = ((facts, slots), (retention, &*flat), (roots, &main_tables[..]), (g, &spare.start_index));
        let rows = spare.owners.with_owners(from, |o| {
            if let Some((b, allocations, moved)) = before {
                // (The report's share of the rows is most often still held.)
                let rows = b.retainers.take().map(|r| Arc::try_unwrap(r).unwrap_or_else(|r| (*r).clone()));
                let (mut kept, mut rows) = (std::mem::take(&mut b.owners), rows.unwrap_or_default());
                let changed = Changed { runs, moved, allocations, kinds: &b.kinds };
                let o = OwnersIn { retention: o.retention, heap: o.heap, names: &mut *o.names, ids: &mut *o.ids };
                if kept.delta(o, changed, &mut rows).is_some() {
                    owners = kept;
                    return rows;
                }
            }
            owners.whole(o)
        });
        // A debug build holds the rows to those made afresh.
        #[cfg(debug_assertions)]
        spare.owners.with_owners(from, |o| {
            assert_eq!(rows, retain::owners::retainers(o.retention, o.heap, o.names), "the retainers rows kept are made afresh");
        });
        flat.owners = owners;
        flat.main_tables = main_tables;
        rows
    }
}

impl super::Spare {
    /// The snapshot's index by first block and the allocations the mark phase
    /// scans; the snapshot before's are kept for the comparison.
    fn index_and_scan(&mut self, facts: &DecodeFacts, g: &HeapGeometry) {
        std::mem::swap(&mut self.start_index, &mut self.start_before);
        std::mem::swap(&mut self.scanned, &mut self.scanned_before);
        self.scanned.clear();
        self.scanned.extend(facts.collect.iter().map(|c| c.unwrap_or(true)));
        self.start_index.refill(&facts.allocations, g.pool_blocks());
    }
}

/// What gives each allocation its retention: the snapshot's retention, its
/// allocations and geometry, and the allocations decoded again (sorted).
#[derive(Clone, Copy)]
struct HeldInputs<'a> {
    retention: &'a retain::Retention,
    allocations: &'a [Allocation],
    geometry: &'a HeapGeometry,
    made: &'a [usize],
}

/// Keys compared at once between a run and the snapshot before: only the
/// slots of a stretch that differs are visited one by one.
const KEYS_AT_ONCE: usize = 64;

/// Gives each slot whose retention changed its own, and fills `flat.held`;
/// returns the slots carried over whose retention changed (sorted).
/// `before_held` are the keys of the snapshot before, by its allocations.
/// - With the allocations whose retention may have `moved` (none when the
///   retention was carried over from the snapshot before), a run's keys are
///   the ones it had there, moved in place a run at a time: only the
///   allocations between runs and those that moved are visited.
/// - Else every key is made, and a run's keys are compared with the snapshot
///   before's [`KEYS_AT_ONCE`] at a time.
fn give_held(
    slots: &mut Slots,
    flat: &mut FlatRetention,
    held: HeldInputs,
    runs: &CarriedRuns,
    (before_held, moved): (Vec<HeldKey>, Option<&[u32]>),
) -> Vec<usize> {
    let mut giver = HeldGiver { held, several: Arc::from(retain::SEVERAL_ROOTS), made: 0, changed: Vec::new() };
    match moved {
        Some(moved) => giver.moving(slots, flat, runs, (before_held, moved)),
        None => {
            flat.held.clear();
            giver.comparing(slots, flat, runs, &before_held)
        }
    }
    giver.changed
}

/// The key of an allocation not carried over, until it is made.
const NO_KEY: HeldKey = (u8::MAX, 0, 0);

impl HeldGiver<'_> {
    /// [`give_held`] from the snapshot before's keys (`held`, made this
    /// snapshot's in place), where only the allocations between runs and
    /// those that `moved` may differ.
    fn moving(&mut self, slots: &mut Slots, flat: &mut FlatRetention, runs: &CarriedRuns, (mut held, moved): (Vec<HeldKey>, &[u32])) {
        let HeldInputs { retention, allocations, .. } = self.held;
        let (before_len, n) = (held.len(), slots.len());
        super::carry_runs_in_place(runs, &mut held, n, NO_KEY);
        flat.held = held;
        let mut moved = moved.iter().map(|&k| k as usize).peekable();
        let mut i = 0;
        for run in runs.iter() {
            (i..run.now as usize).for_each(|k| self.made_again(k, slots, flat));
            let now = run.now_range();
            if run.before_range().end <= before_len && now.end <= n {
                // Carried over: only what moved is made again.
                while moved.next_if(|&k| k < now.start).is_some() {}
                while let Some(k) = moved.next_if(|&k| k < now.end) {
                    if let Some(key) = flat.held.get_mut(k) {
                        let was = std::mem::replace(key, held_key(retention, k, allocations));
                        let key = *key;
                        self.visit(k, (key, Some(was)), slots);
                    }
                }
                debug_assert!(now.clone().all(|k| flat.held.get(k) == Some(&held_key(retention, k, allocations))));
            } else {
                now.clone().for_each(|k| self.made_again(k, slots, flat));
            }
            i = now.end;
        }
        (i..n).for_each(|k| self.made_again(k, slots, flat));
    }

    /// [`give_held`] with every key made and compared.
    fn comparing(&mut self, slots: &mut Slots, flat: &mut FlatRetention, runs: &CarriedRuns, before_held: &[HeldKey]) {
        let HeldInputs { retention, allocations, .. } = self.held;
        flat.held.extend((0..slots.len()).map(|k| held_key(retention, k, allocations)));
        let keys = &flat.held[..];
        let key = |k: usize| keys.get(k).copied();
        let mut i = 0;
        for run in runs.iter() {
            (i..run.now as usize).for_each(|k| self.visit_key(k, (key(k), None), slots));
            let old = before_held.get(run.before_range());
            let before_of = |k: usize| run.before as usize + (k - run.now as usize);
            for from in run.now_range().step_by(KEYS_AT_ONCE) {
                let to = (from + KEYS_AT_ONCE).min(run.now_range().end);
                let at = from - run.now as usize..to - run.now as usize;
                if old.and_then(|o| o.get(at)) != keys.get(from..to) {
                    (from..to).for_each(|k| self.visit_key(k, (key(k), before_held.get(before_of(k)).copied()), slots));
                }
            }
            i = run.now_range().end;
        }
        (i..slots.len()).for_each(|k| self.visit_key(k, (key(k), None), slots));
    }
}

/// [`give_held`] one allocation at a time.
struct HeldGiver<'a> {
    held: HeldInputs<'a>,
    several: Arc<str>,
    /// How far through `held.made` the allocations visited are.
    made: usize,
    changed: Vec<usize>,
}

impl HeldGiver<'_> {
    /// Allocation `i`'s key made in `flat.held` (which holds a place for
    /// it), and its slot visited.
    fn made_again(&mut self, i: usize, slots: &mut Slots, flat: &mut FlatRetention) {
        let Some(place) = flat.held.get_mut(i) else { return };
        *place = held_key(self.held.retention, i, self.held.allocations);
        let key = *place;
        self.visit(i, (key, None), slots);
    }

    /// [`Self::visit`] for a key that may be missing (`keys` shorter than
    /// the slots: not expected).
    fn visit_key(&mut self, i: usize, (key, was): (Option<HeldKey>, Option<HeldKey>), slots: &mut Slots) {
        if let Some(key) = key {
            self.visit(i, (key, was), slots);
        }
    }

    /// Allocation `i`'s slot given its retention, unless its `key` is the
    /// one its allocation had in the snapshot before (`was`).
    fn visit(&mut self, i: usize, (key, was): (HeldKey, Option<HeldKey>), slots: &mut Slots) {
        let HeldInputs { retention, allocations, geometry: g, made } = self.held;
        while made.get(self.made).is_some_and(|&m| m < i) {
            self.made += 1;
        }
        let was_made = made.get(self.made) == Some(&i);
        if !was_made && was == Some(key) {
            return; // as it was: the slot's retention is still right
        }
        let Some(Some(slot)) = slots.get_mut(i) else { return };
        let address = |j: usize| allocations.get(j).map_or(0, |a| g.block_address(a.start_block));
        if slot.sight.held.as_ref().is_some_and(|h| retention.is_held(i, h, address)) {
            return;
        }
        slot.sight.held = Some(retention.held(i, &self.several, address));
        if !was_made {
            self.changed.push(i);
        }
    }
}

/// Whether the owners of this snapshot go by the names they went by in the
/// snapshot before (`before`), so that only the allocations not carried over
/// and those whose retention moved may have other owners
/// ([`KeptOwners::delta`]): the tables of `__main__`'s globals are the same,
/// and no allocation that names owners (a module, a class, a dict's table:
/// their names, keys and edges name the owners) was decoded again, came or
/// went, in either snapshot.
fn same_names((flat, before): (&FlatRetention, &FlatRetention), main_tables: &[u64], spare: &super::Spare) -> bool {
    let kind_ids = &spare.owners.kind_ids;
    if main_tables != before.main_tables {
        return false;
    }
    let (Some(now_gaps), Some(old_gaps)) = (spare.runs.gaps_now(flat.kinds.len()), spare.runs.gaps_before(before.kinds.len()))
    else {
        return false;
    };
    let names = |kinds: &[u32], i: usize| kinds.get(i).is_none_or(|&k| kind_ids.names_owners(k));
    !old_gaps.flatten().any(|j| names(&before.kinds, j)) && !now_gaps.flatten().any(|i| names(&flat.kinds, i))
}
