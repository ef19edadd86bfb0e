//! The `retainers` rows kept from one snapshot to the next: each allocation's
//! owner, and the sums per owner and kind ([`KeptOwners`]), changed only by the
//! allocations whose owner may differ, where finding every allocation's owner
//! again and summing them all cost a pass over every allocation.
//!
//! An allocation's owner is the nearest name on its dominator chain
//! ([`crate::retain::owners`]). Between two snapshots it can differ only for:
//! - an allocation not carried over (decoded again, or new);
//! - one whose retention moved (the retention's region, made again where
//!   changes reach): the dominators of every other allocation are what they
//!   were, and so are theirs, all outside the region;
//!
//! provided the names are the same: no allocation that names owners (a module,
//! a class, a dict's table) came, went or was decoded again, `__main__`'s
//! tables are the same, and no root holding an allocation outside the region
//! goes by another name (what that allocation dominates would go by it too).
//! [`KeptOwners::delta`]'s caller checks all three. Owners are
//! numbered by their text for the whole run ([`OwnerIds`]), so an owner keeps
//! its number whatever its place among a snapshot's names.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::runs::CarriedRuns;
use crate::decode::Allocation;
use crate::retain::owners::{self, Heap, OwnerNames, Retained};
use crate::retain::{Holder, Retention};

/// No owner: garbage, or held by nothing named.
const NO_OWNER: u32 = u32::MAX;
/// An owner not found yet.
const PENDING: u32 = u32::MAX - 1;
/// Owner texts numbered at most in a run: past it the numbering starts again
/// (hostile input can make a new name at every snapshot, and each owner met
/// keeps a run of sums, one per kind).
const MAX_OWNER_IDS: usize = 1 << 14;

/// Owner names numbered by their text for a whole run.
#[derive(Default)]
pub(super) struct OwnerIds {
    ids: FxHashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
    /// Bumped when the numbering starts again: owners kept under another
    /// generation are numbered otherwise.
    generation: u64,
}

impl OwnerIds {
    fn id(&mut self, name: &Arc<str>) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(Arc::clone(name), id);
        self.names.push(Arc::clone(name));
        id
    }

    /// Starts the numbering again when it is full.
    fn make_room(&mut self) {
        if self.names.len() >= MAX_OWNER_IDS {
            self.ids.clear();
            self.names.clear();
            self.generation += 1;
        }
    }
}

/// One snapshot's owners: per allocation its owner's number in [`OwnerIds`],
/// and what each owner retains of each kind.
#[derive(Default)]
pub(super) struct KeptOwners {
    owner: Vec<u32>,
    /// Per owner number, its run in `sums` ([`NO_OWNER`] for none yet).
    run_of: Vec<u32>,
    /// Per run, `kinds` sums (allocations, bytes), one per kind number.
    sums: Vec<(u64, u64)>,
    kinds: usize,
    /// The [`OwnerIds`] generation the numbers are of; `None` when nothing
    /// is kept.
    generation: Option<u64>,
}

/// What a snapshot's owners are made of: its retention, its allocations as
/// the owners see them, the names kept for the run, and the owners' numbers.
pub(super) struct OwnersIn<'a, 'h> {
    pub(super) retention: &'a Retention,
    pub(super) heap: &'a Heap<'h>,
    pub(super) names: &'a mut OwnerNames,
    pub(super) ids: &'a mut OwnerIds,
}

/// What changed since the snapshot before, whose owners are kept: the
/// allocations carried over (`runs`), those whose retention moved (sorted),
/// and the snapshot before's allocations and kinds.
pub(super) struct Changed<'a> {
    pub(super) runs: &'a CarriedRuns,
    pub(super) moved: &'a [u32],
    pub(super) allocations: &'a [Allocation],
    pub(super) kinds: &'a [u32],
}

impl KeptOwners {
    /// Every allocation's owner found and summed: the snapshot's rows, sorted.
    pub(super) fn whole(&mut self, o: OwnersIn) -> Vec<Retained> {
        let naming = owners::naming(o.retention, o.heap, o.names);
        let owner = owners::owners(o.retention, &naming.named, naming.several);
        o.ids.make_room();
        self.owner.clear();
        self.run_of.clear();
        self.sums.clear();
        self.kinds = o.heap.kind_names.len().max(1);
        self.generation = Some(o.ids.generation);
        // Per name met: its owner number, and the start of its run of sums.
        let mut met: Vec<(u32, usize)> = vec![(PENDING, 0); naming.names.len()];
        let heap = o.heap;
        for ((&by, &kind), a) in owner.iter().zip(heap.kinds).zip(heap.allocations) {
            let Some(m) = met.get_mut(by as usize) else {
                self.owner.push(NO_OWNER);
                continue;
            };
            if m.0 == PENDING {
                let id = o.ids.id(&naming.names[by as usize]);
                *m = (id, self.run_start(id));
            }
            self.owner.push(m.0);
            if let Some(s) = self.sums.get_mut(m.1 + kind as usize).filter(|_| (kind as usize) < self.kinds) {
                *s = (s.0 + 1, s.1.saturating_add(a.blocks.saturating_mul(heap.bytes_per_block)));
            }
        }
        self.owner.resize(heap.allocations.len(), NO_OWNER);
        self.rows_from_sums(o.heap, o.ids)
    }

    /// This snapshot's rows from the snapshot before's owners (`self`, made
    /// this snapshot's) and rows (`rows`, made this snapshot's in place):
    /// the owners found again only for the allocations not carried over and
    /// those whose retention `moved`. `None` (having changed what is kept)
    /// when the owners kept are not of this run's numbering, or do not add up.
    pub(super) fn delta(&mut self, o: OwnersIn, c: Changed, rows: &mut Vec<Retained>) -> Option<()> {
        let full = o.ids.names.len() >= MAX_OWNER_IDS;
        if full || self.generation != Some(o.ids.generation) || self.owner.len() != c.allocations.len() {
            return None;
        }
        let mut touched: Vec<(u32, u32)> = Vec::new();
        // Out with what the allocations gone, and those that moved, held.
        let bpb = o.heap.bytes_per_block;
        let mut take = |kept: &mut Self, j: usize| -> Option<()> {
            let (&id, &kind, a) = (kept.owner.get(j)?, c.kinds.get(j)?, c.allocations.get(j)?);
            touched.push((id, kind));
            kept.change(id, kind, a.blocks.saturating_mul(bpb), false)
        };
        for j in c.runs.gaps_before(self.owner.len())?.flatten() {
            take(self, j)?;
        }
        let moved_before = moved_carried(c.runs, c.moved);
        for (_, j) in moved_before {
            take(self, j)?;
        }
        // Numbered for this snapshot: those not carried over and those that
        // moved are found again, dominators first.
        let n = o.heap.allocations.len();
        super::carry_runs_in_place(c.runs, &mut self.owner, n, PENDING);
        let mut again: Vec<usize> = c.runs.gaps_now(n)?.flatten().collect();
        again.extend(c.moved.iter().map(|&i| i as usize));
        again.sort_unstable();
        again.dedup();
        for &v in &again {
            *self.owner.get_mut(v)? = PENDING;
        }
        let naming = owners::naming(o.retention, o.heap, o.names);
        for &v in &again {
            if self.owner.get(v) == Some(&PENDING) {
                self.find(v, o.retention, &naming, o.ids, again.len())?;
            }
            let (id, kind) = (*self.owner.get(v)?, *o.heap.kinds.get(v)?);
            touched.push((id, kind));
            self.add(id, o.heap, v)?;
        }
        touched.sort_unstable();
        touched.dedup();
        for &(id, kind) in touched.iter().filter(|t| t.0 != NO_OWNER) {
            self.patch(rows, (id, o.heap.kind_names.kind(kind)), o.heap, o.ids)?;
        }
        Some(())
    }

    /// Finds allocation `v`'s owner, and those of the allocations up its
    /// dominator chain whose owners are [`PENDING`] (at most `most` of them).
    fn find(&mut self, v: usize, ret: &Retention, naming: &owners::Naming, ids: &mut OwnerIds, most: usize) -> Option<()> {
        let name = |k: u32, ids: &mut OwnerIds| naming.names.get(k as usize).map(|n| ids.id(n));
        let mut chain = Vec::new();
        let mut at = v;
        let found = loop {
            if chain.len() > most {
                return None; // a cycle: not a dominator tree
            }
            let own = match *ret.idom.get(at)? {
                Holder::Garbage => NO_OWNER,
                Holder::Roots => name(naming.several, ids)?,
                Holder::Root(r) => name(r, ids)?,
                Holder::Allocation(j) => match name(*naming.named.get(at)?, ids) {
                    Some(own) => own,
                    None => match *self.owner.get(j as usize)? {
                        PENDING => {
                            chain.push(at);
                            at = j as usize;
                            continue;
                        }
                        own => own,
                    },
                },
            };
            break own;
        };
        *self.owner.get_mut(at)? = found;
        for k in chain {
            *self.owner.get_mut(k)? = found;
        }
        Some(())
    }

    /// `rows`' row of owner `id` and kind `kind` made what the sums say
    /// (added, changed, or gone at zero).
    fn patch(&self, rows: &mut Vec<Retained>, (id, kind): (u32, &'static str), heap: &Heap, ids: &OwnerIds) -> Option<()> {
        let owner = ids.names.get(id as usize)?;
        let (allocations, bytes) = self.retained(id, kind, heap);
        match (rows.binary_search_by(|r| (&*r.owner, r.kind).cmp(&(&**owner, kind))), allocations) {
            (Ok(i), 0) => drop(rows.remove(i)),
            (Ok(i), _) => (rows[i].allocations, rows[i].bytes) = (allocations, bytes),
            (Err(_), 0) => {}
            (Err(i), _) => rows.insert(i, Retained { owner: Arc::clone(owner), kind, allocations, bytes }),
        }
        Some(())
    }

    /// Allocation `v`'s bytes and kind added to its owner `id`'s sums.
    fn add(&mut self, id: u32, heap: &Heap, v: usize) -> Option<()> {
        let (&kind, a) = (heap.kinds.get(v)?, heap.allocations.get(v)?);
        self.change(id, kind, a.blocks.saturating_mul(heap.bytes_per_block), true)
    }

    /// One allocation of `kind` and `bytes` added to (or taken from) owner
    /// `id`'s sums. `None` when taking what is not there, or past the kinds
    /// the sums are made for.
    fn change(&mut self, id: u32, kind: u32, bytes: u64, add: bool) -> Option<()> {
        if id == NO_OWNER {
            return Some(());
        }
        if kind as usize >= self.kinds {
            return None;
        }
        let start = self.run_start(id);
        let s = self.sums.get_mut(start + kind as usize)?;
        *s = match add {
            true => (s.0 + 1, s.1.saturating_add(bytes)),
            false => (s.0.checked_sub(1)?, s.1.checked_sub(bytes)?),
        };
        Some(())
    }

    /// Where owner `id`'s run of sums starts (made, of zeros, if it had none).
    fn run_start(&mut self, id: u32) -> usize {
        if self.run_of.len() <= id as usize {
            self.run_of.resize(id as usize + 1, NO_OWNER);
        }
        let run = &mut self.run_of[id as usize];
        if *run == NO_OWNER {
            *run = (self.sums.len() / self.kinds) as u32;
            self.sums.resize(self.sums.len() + self.kinds, (0, 0));
        }
        *run as usize * self.kinds
    }

    /// What owner `id` retains of every kind named `kind` (kinds are numbered
    /// by their texts' addresses: two texts may name one kind).
    fn retained(&self, id: u32, kind: &str, heap: &Heap) -> (u64, u64) {
        let Some(&run) = self.run_of.get(id as usize).filter(|&&r| r != NO_OWNER) else { return (0, 0) };
        let of_owner = self.sums.iter().skip(run as usize * self.kinds).take(self.kinds).enumerate();
        let same_kind = of_owner.filter(|(k, _)| heap.kind_names.kind(*k as u32) == kind);
        same_kind.fold((0, 0), |(a, b), (_, s)| (a + s.0, b.saturating_add(s.1)))
    }

    /// The rows of the sums: one per owner and kind named, sorted.
    fn rows_from_sums(&self, heap: &Heap, ids: &OwnerIds) -> Vec<Retained> {
        let runs = self.run_of.iter().enumerate().filter(|(_, &r)| r != NO_OWNER);
        let runs = runs.filter_map(|(id, &run)| Some((ids.names.get(id)?, run as usize * self.kinds)));
        owners::rows_of_sums(runs, (&self.sums, self.kinds), heap.kind_names)
    }
}

/// Of the allocations that `moved` (sorted), those carried over: (their
/// index now, their index in the snapshot before).
fn moved_carried<'a>(runs: &'a CarriedRuns, moved: &'a [u32]) -> impl Iterator<Item = (usize, usize)> + 'a {
    runs.iter().flat_map(move |run| {
        let now = run.now_range();
        let (lo, hi) = (moved.partition_point(|&k| (k as usize) < now.start), moved.partition_point(|&k| (k as usize) < now.end));
        moved[lo..hi].iter().map(move |&k| (k as usize, run.before as usize + (k as usize - now.start)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retain::owners::KindIds;

    /// One snapshot: its allocations (by first block and length), their
    /// kinds and their holders.
    struct Snapshot {
        allocations: Vec<Allocation>,
        kinds: Vec<u32>,
        retention: Retention,
    }

    fn snapshot(extents: &[(u64, u64)], kinds: &[u32], holders: &[Holder], roots: &[&Arc<str>]) -> Snapshot {
        let allocations = extents.iter().map(|&(start_block, blocks)| Allocation { start_block, blocks, marked: false }).collect();
        // Dominators first: an allocation is placed once its holder is.
        let reachable: Vec<bool> = holders.iter().map(|h| *h != Holder::Garbage).collect();
        let (mut order, mut placed) = (Vec::new(), vec![false; holders.len()]);
        while order.len() < reachable.iter().filter(|&&r| r).count() {
            for (v, h) in holders.iter().enumerate() {
                if reachable[v] && !placed[v] && !matches!(h, Holder::Allocation(j) if !placed[*j as usize]) {
                    placed[v] = true;
                    order.push(v as u32);
                }
            }
        }
        let n = holders.len();
        let roots = roots.iter().map(|&r| Arc::clone(r)).collect();
        let retention = Retention { reachable, idom: holders.to_vec(), retained_bytes: vec![0; n], roots, order };
        Snapshot { allocations, kinds: kinds.to_vec(), retention }
    }

    fn heap<'a>(s: &'a Snapshot, kind_names: &'a KindIds, at: &'a dyn Fn(u64) -> Option<usize>) -> Heap<'a> {
        Heap {
            allocations: &s.allocations,
            kinds: &s.kinds,
            kind_names,
            bytes_per_block: 16,
            nodes: &[],
            at,
            main_tables: &[],
            module_globals_word: 1,
        }
    }

    /// A list on the stack and a dict in a global, each holding one more;
    /// then an allocation is made (the stack holds it), one freed, and the
    /// tuple the stack's list held goes to the global's dict, through the
    /// global's string in the second case (its holder found after it). The
    /// rows changed from the snapshot before's are the rows made afresh,
    /// and what they say by hand; leaving out what moved is not.
    #[test]
    fn rows_changed_where_owners_moved_are_the_rows_made_afresh() {
        let (stack, global): (Arc<str>, Arc<str>) = (Arc::from("stack"), Arc::from("g"));
        let mut kind_names = KindIds::default();
        let [list, tuple, dict, str_, bytes] = ["list", "tuple", "dict", "str", "bytes"].map(|k| kind_names.id(k));
        let at = |_: u64| None;
        use Holder::{Allocation as By, Garbage, Root};
        let before = snapshot(
            &[(0, 2), (2, 1), (8, 1), (9, 2), (11, 1)],
            &[list, tuple, dict, str_, bytes],
            &[Root(0), By(0), Root(1), By(2), Garbage],
            &[&stack, &global],
        );
        // The first two carried over, one made at block 3, the next two
        // carried over, the last gone; the roots now listed the other way.
        let mut runs = CarriedRuns::default();
        runs.clear();
        runs.push_run(0, 0, 2);
        runs.push_run(3, 2, 2);
        let extents = [(0, 2), (2, 1), (3, 3), (8, 1), (9, 2)];
        let kinds = [list, tuple, str_, dict, str_];
        let cases: [(&[Holder], &[u32]); 2] = [
            (&[Root(1), By(3), By(0), Root(0), By(3)], &[1]),
            (&[Root(1), By(4), By(0), Root(0), By(3)], &[1, 4]),
        ];
        let by_hand = [("g", "dict", 1, 16), ("g", "str", 1, 32), ("g", "tuple", 1, 16), ("stack", "list", 1, 32), ("stack", "str", 1, 48)];
        for (k, (holders, moved)) in cases.into_iter().enumerate() {
            let now = snapshot(&extents, &kinds, holders, &[&global, &stack]);
            let (mut names, mut ids, mut kept) = (OwnerNames::default(), OwnerIds::default(), KeptOwners::default());
            let old_heap = heap(&before, &kind_names, &at);
            let first = kept.whole(OwnersIn { retention: &before.retention, heap: &old_heap, names: &mut names, ids: &mut ids });
            assert_eq!(first, owners::retainers(&before.retention, &old_heap, &mut names), "case {k}: whole");
            let now_heap = heap(&now, &kind_names, &at);
            let afresh = owners::retainers(&now.retention, &now_heap, &mut names);
            let got: Vec<(&str, &str, u64, u64)> = afresh.iter().map(|r| (&*r.owner, r.kind, r.allocations, r.bytes)).collect();
            assert_eq!(got, by_hand, "case {k}: made afresh");
            for (moved, right) in [(moved, true), (&[][..], false)] {
                let mut kept = KeptOwners::default();
                let o = OwnersIn { retention: &before.retention, heap: &old_heap, names: &mut names, ids: &mut ids };
                let mut rows = kept.whole(o);
                let changed = Changed { runs: &runs, moved, allocations: &before.allocations, kinds: &before.kinds };
                let o = OwnersIn { retention: &now.retention, heap: &now_heap, names: &mut names, ids: &mut ids };
                assert!(kept.delta(o, changed, &mut rows).is_some(), "case {k}: the sums add up");
                assert_eq!(rows == afresh, right, "case {k}: moved {moved:?}");
            }
        }
    }
}
