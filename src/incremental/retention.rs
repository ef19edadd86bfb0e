//! What a run decoder keeps of a snapshot's retention for the next: every
//! allocation's heads, retention key and kind, flat ([`FlatRetention`]); the
//! check that lets the next snapshot carry the retention over
//! ([`carried_retention`]); and the room the `retainers` rows are made in.

use std::sync::Arc;

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
    start: Vec<u32>,
    heads: Vec<u32>,
    /// Each allocation's retention, as [`held_key`] gives it: a slot carried
    /// over whose key is the one its allocation had before keeps its
    /// [`AllocationSight::held`] without being visited.
    held: Vec<HeldKey>,
    /// The root names the keys point at, kept alive with them (so no other
    /// name takes their addresses while the keys are compared).
    roots: Vec<Arc<str>>,
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
    retention: Option<retain::Retention>,
    root_edges: Vec<(Arc<str>, u64)>,
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
    fn of(&self, i: usize) -> Option<&[u32]> {
        let (a, b) = (*self.start.get(i)? as usize, *self.start.get(i + 1)? as usize);
        self.heads.get(a..b)
    }

    /// The heads of `slots`: a slot carried over from allocation `j` of the
    /// snapshot before (`came_from`) takes that one's from `before`.
    /// Kinds are numbered in `kind_ids`, the run's.
    fn refill(&mut self, slots: &Slots, came_from: &[Option<u32>], before: Option<&FlatRetention>, kind_ids: &mut KindIds) {
        self.start.clear();
        self.heads.clear();
        self.heads.reserve(before.map_or(0, |b| b.heads.len()));
        self.start.push(0);
        self.kinds.clear();
        self.namers.clear();
        let unknown = kind_ids.id("unknown");
        for (i, slot) in slots.iter().enumerate() {
            let j = came_from.get(i).copied().flatten().map(|j| j as usize);
            let kept = j.and_then(|j| Some((before?.of(j)?, *before?.kinds.get(j)?)));
            let (heads, kind) = match (kept, slot) {
                (Some(kept), _) => kept,
                (None, Some(s)) => (&s.heads[..], kind_ids.id(s.sight.kind)),
                (None, None) => (&[][..], unknown),
            };
            // (Most hold a head or two: pushed, not copied by a call.)
            heads.iter().for_each(|&h| self.heads.push(h));
            self.start.push(self.heads.len() as u32);
            self.kinds.push(kind);
            if kind_ids.names_owners(kind) {
                self.namers.push(i as u32);
            }
        }
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
    came_from: &[Option<u32>],
    carried_old: &mut Vec<bool>,
) -> Option<retain::Retention> {
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
    carried_old.clear();
    carried_old.resize(old_allocations.len(), false);
    for &j in came_from.iter().flatten() {
        *carried_old.get_mut(j as usize)? = true;
    }
    // Every allocation reachable before and not carried over must be there
    // again, pointing at the same heads.
    let changed_reachable = (0..old_allocations.len()).filter(|&j| !carried_old[j] && old.reachable.get(j) == Some(&true));
    for j in changed_reachable {
        let was = &old_allocations[j];
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
    old.renumbered(old_allocations, index, allocations.len())
}

/// What a snapshot's retention is computed from, besides its roots: its
/// allocations, which of them the mark phase scans, their heads (and the
/// retention computed, once it is) and the allocations by first block.
#[derive(Clone, Copy)]
pub(super) struct RetentionInputs<'a> {
    allocations: &'a [Allocation],
    scanned: &'a [bool],
    flat: &'a FlatRetention,
    index: &'a StartIndex,
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
}

impl OwnersRoom {
    /// The `retainers` rows of the snapshot (see [`retain::owners`]), from its
    /// slots and `flat`; `main` are the GC's roots and the tables of
    /// `__main__`'s globals; `index` finds an allocation by its first block.
    fn rows(
        &mut self,
        (facts, slots): (&DecodeFacts, &Slots),
        (retention, flat): (&retain::Retention, &FlatRetention),
        (roots, main_tables): (&GcRoots, &[u64]),
        g: &HeapGeometry,
        index: &StartIndex,
    ) -> Vec<retain::owners::Retained> {
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
        let rows = retain::owners::retainers(retention, &heap, &mut self.names);
        self.nodes = recycle(nodes);
        rows
    }
}

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
    /// puts the snapshot's figures in `report`. Returns the slots carried over
    /// whose retention changed (sorted).
    pub(super) fn retain(
        &mut self,
        report: &mut SnapshotReport,
        (facts, made): (&DecodeFacts, &[usize]),
        slots: &mut Slots,
        roots: &GcRoots,
        with_old: Option<(&FlatRetention, &[Allocation])>,
    ) -> (Vec<usize>, FlatRetention) {
        let before = with_old.map(|(b, _)| b);
        let g = &report.geometry;
        let spare = &mut self.spare;
        // The snapshot before's index and scan flags, kept for the comparison.
        std::mem::swap(&mut spare.start_index, &mut spare.start_before);
        std::mem::swap(&mut spare.scanned, &mut spare.scanned_before);
        spare.scanned.clear();
        spare.scanned.extend(facts.collect.iter().map(|c| c.unwrap_or(true)));
        let graph =
            MarkGraph { allocations: &facts.allocations, bytes_per_block: g.bytes_per_block, scanned: &spare.scanned };
        spare.start_index.refill(&facts.allocations, g.pool_blocks());
        let index = &spare.start_index;
        let mut flat = std::mem::take(&mut spare.flat);
        flat.refill(slots, &spare.came_from, before, &mut spare.owners.kind_ids);
        let flat_heads = &flat;
        let heap = (0..slots.len()).flat_map(|i| {
            let heads = flat_heads.of(i).unwrap_or_default();
            heads.iter().filter_map(move |&b| Some((i as u32, index.at(b as u64)?)))
        });
        // One name for the stack for the whole run: keys compare it by address.
        let stack: Arc<str> = Arc::clone(spare.stack.get_or_insert_with(|| Arc::from(retain::STACK)));
        let decoder = self.decoder;
        let root_edges: Vec<(Arc<str>, u32)> = (facts.root_words.iter().filter(|w| w.head))
            .filter_map(|w| {
                let root = roots.root_of(w.address, || decoder.root_name(w.address), &stack)?;
                Some((root, index.at(g.block_of(w.value)?)?))
            })
            .collect();
        let (scanned, index) = (&spare.scanned[..], &spare.start_index);
        let now = RetentionInputs { allocations: &facts.allocations, scanned, flat: &flat, index };
        let carried = with_old.and_then(|(flat, allocations)| {
            let (scanned, index) = (&spare.scanned_before[..], &spare.start_before);
            let before = RetentionInputs { allocations, scanned, flat, index };
            carried_retention(now, before, &root_edges, &spare.came_from, &mut spare.carried_old)
        });
        let retention = match carried {
            Some(r) => r,
            None => graph.retention_in(heap, root_edges.iter().cloned(), &mut spare.retention),
        };
        let start_of = |i: u32| facts.allocations.get(i as usize).map_or(u64::MAX, |a| a.start_block);
        flat.root_edges.clear();
        flat.root_edges.extend(root_edges.into_iter().map(|(name, i)| (name, start_of(i))));
        let several: Arc<str> = Arc::from(retain::SEVERAL_ROOTS);
        let address = |j: usize| facts.allocations.get(j).map_or(0, |a| g.block_address(a.start_block));
        flat.held.clear();
        flat.roots.clone_from(&retention.roots);
        let mut changed = Vec::new();
        let mut made = made.iter().peekable();
        for (i, slot) in slots.iter_mut().enumerate() {
            let key = held_key(&retention, i, &facts.allocations);
            flat.held.push(key);
            let was_made = made.next_if_eq(&&i).is_some();
            let j = spare.came_from.get(i).copied().flatten();
            let before_key = j.and_then(|j| before?.held.get(j as usize));
            if !was_made && before_key == Some(&key) {
                continue; // as it was: the slot's retention is still right
            }
            let Some(slot) = slot else { continue };
            if slot.sight.held.as_ref().is_some_and(|h| retention.is_held(i, h, address)) {
                continue;
            }
            slot.sight.held = Some(retention.held(i, &several, address));
            if !was_made {
                changed.push(i);
            }
        }
        let decoder = self.decoder;
        let main_tables: Vec<u64> = facts
            .root_words
            .iter()
            .filter(|w| w.head && roots.state.contains(&w.address))
            .filter(|w| retain::is_main_table_root(&decoder.root_name(w.address)))
            .map(|w| w.value)
            .collect();
        let spare = &mut self.spare;
        let (tables, index) = ((roots, &main_tables[..]), &spare.start_index);
        report.retainers = Some(spare.owners.rows((facts, slots), (&retention, &flat), tables, g, index));
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
}
