//! The retention of a snapshot made again only where its changes reach.
//!
//! An allocation's dominators are decided by the paths from the roots to it.
//! The paths to an allocation that no changed pointer leads to (a pointer
//! one snapshot has and the other has not, of an allocation or a root) are
//! the same paths in both snapshots, so its dominators are too. So only the
//! allocations reachable from a changed pointer's target, in either
//! snapshot's graph (the *region*), may be held otherwise; in a capture taken
//! at every heap change that is a handful: a new object and what it points
//! at, the object a stack slot let go, the item a list gained.
//!
//! The region's dominators are those of a small graph: the region, the roots,
//! and for each allocation outside it that points into it, the chain of its
//! dominators (which lie outside the region, and are known), as a path from
//! the roots. Every path into the region then enters it through an
//! allocation whose own dominators are exactly what they are in the whole
//! graph, which is all the region's dominators depend on. The rest of the
//! retention is the snapshot before's, numbered anew; retained sizes are
//! summed again over the whole tree.
//!
//! A region larger than a share of the heap (a root let go of a large
//! structure) is not worth it: the retention is then computed whole.

use std::sync::Arc;

use super::retention::RetentionInputs;
use super::runs::CarriedRuns;
use crate::retain::dominators::{dominators_into, Dominators, Graph, Scratch, NONE};
use crate::retain::{number_root, root_number, Holder, Retention};

/// The roots' edges: a root's name, the allocation it holds (by index).
type RootEdges<'a> = &'a [(Arc<str>, u32)];

/// The room the region's retention is made in, kept from one snapshot to the
/// next.
#[derive(Default)]
pub(super) struct LocalRoom {
    /// Per pool block: reached from a changed pointer's target.
    seen: Vec<bool>,
    /// The blocks `seen` marks, to clear them after.
    reached: Vec<u64>,
    stack: Vec<u64>,
    /// Per allocation (this snapshot's index): its node in the small graph.
    node_of: Vec<u32>,
    /// Per node of the small graph past the roots: its allocation; and
    /// whether it is in the region.
    allocation_of: Vec<u32>,
    in_region: Vec<bool>,
    edges: Vec<(u32, u32)>,
    graph: Graph,
    scratch: Scratch,
    dominators: Dominators,
}

/// The region may hold at most this share of the allocations (1 in ...).
const MOST_REGION_SHARE: usize = 4;

/// The retention of `now` from `before`'s, made again only for the region its
/// changes reach (see the module's notes), in `into`'s room; and the
/// allocations whose retention may differ from what their allocations had
/// before ([`Moved`]); `None` (and `into` left undefined) when the snapshot
/// before has none, the runs are out of order, or the region is too large.
/// `root_edges` are this snapshot's (a root's name, the allocation it holds).
pub(super) fn local_retention(
    now: RetentionInputs,
    before: RetentionInputs,
    root_edges: RootEdges,
    runs: &CarriedRuns,
    (bytes_per_block, room): (u64, &mut LocalRoom),
    into: &mut Retention,
) -> Option<Moved> {
    let old = before.flat.retention.as_ref()?;
    let n = now.allocations.len();
    let seeds = seeds(now, before, old, root_edges, runs)?;
    let region = reach(now, before, seeds, room, n / MOST_REGION_SHARE + 16);
    let result = region.and_then(|region| {
        let names = root_names(root_edges);
        let old_to_new = runs.old_to_new(before.allocations, now.index)?;
        let inputs = Inputs { now, before, old, old_to_new: &old_to_new, runs };
        let first = build_graph(&inputs, (root_edges, &names), &region, room)?;
        dominators_into(&room.graph, &mut room.scratch, &mut room.dominators);
        assemble(&inputs, (names, first), room, (bytes_per_block, into))
    });
    // The room's marks cleared for the next snapshot.
    for &b in &room.reached {
        room.seen[b as usize] = false;
    }
    for &v in &room.allocation_of {
        if let Some(x) = room.node_of.get_mut(v as usize) {
            *x = NONE;
        }
    }
    result
}

/// What the small graph and the retention are made from.
struct Inputs<'a> {
    now: RetentionInputs<'a>,
    before: RetentionInputs<'a>,
    old: &'a Retention,
    /// Per allocation of the snapshot before, the allocation at its first
    /// block now ([`NONE`]: none).
    old_to_new: &'a [u32],
    /// The allocations carried over from the snapshot before.
    runs: &'a CarriedRuns,
}

/// The first blocks the changed pointers lead to: of each allocation not
/// carried over, the heads it has in one snapshot and not the other (all of
/// them, in both, when its collect bit changed); the heads before of an
/// allocation gone; the allocations a root holds in one snapshot and not the
/// other. (A carried-over allocation's heads are those of the snapshot
/// before, and still heads: a change at a block it points at has it decoded
/// again.)
///
/// Only the pointers of an allocation reachable before are seeds. One that
/// was not (an allocation made where none was, or garbage) changes nothing if
/// nothing reachable holds it now; and if something does, the first changed
/// pointer on the path to it is one of a reachable allocation's, or a root's,
/// so [`reach`] comes to it and follows its pointers. (A copy made before
/// anything holds it, as `gc_realloc` makes one, then seeds nothing.)
fn seeds(now: RetentionInputs, before: RetentionInputs, old: &Retention, root_edges: RootEdges, runs: &CarriedRuns) -> Option<Vec<u64>> {
    let mut seeds = Vec::new();
    let reachable_before = |j: usize| old.reachable.get(j).copied().unwrap_or(true);
    for i in runs.gaps_now(now.allocations.len())?.flatten() {
        let a = now.allocations.get(i)?;
        let Some(j) = before.index.at(a.start_block).map(|j| j as usize).filter(|&j| reachable_before(j)) else {
            continue;
        };
        let (heads, old_heads) = (now.flat.of(i)?, before.flat.of(j)?);
        if now.scanned.get(i) != before.scanned.get(j) {
            seeds.extend(heads.iter().chain(old_heads).map(|&b| b as u64));
        } else if heads != old_heads {
            differing(heads, old_heads, &mut seeds);
        }
    }
    for j in runs.gaps_before(before.allocations.len())?.flatten().filter(|&j| reachable_before(j)) {
        let a = before.allocations.get(j)?;
        if now.index.at(a.start_block).is_none() {
            seeds.extend(before.flat.of(j)?.iter().map(|&b| b as u64));
        }
    }
    // The roots' edges, by name and first block, in one snapshot only.
    let mut new: Vec<(&str, u64)> =
        root_edges.iter().filter_map(|(name, i)| Some((&**name, now.allocations.get(*i as usize)?.start_block))).collect();
    let mut old: Vec<(&str, u64)> = before.flat.root_edges.iter().map(|(name, b)| (&**name, *b)).collect();
    new.sort_unstable();
    old.sort_unstable();
    let (mut x, mut y) = (new.iter().peekable(), old.iter().peekable());
    loop {
        match (x.peek(), y.peek()) {
            (Some(a), Some(b)) if a == b => {
                x.next();
                y.next();
            }
            (Some(a), Some(b)) if a < b => seeds.push(x.next()?.1),
            (Some(_), Some(_)) | (None, Some(_)) => seeds.push(y.next()?.1),
            (Some(_), None) => seeds.push(x.next()?.1),
            (None, None) => break,
        }
    }
    Some(seeds)
}

/// Adds to `seeds` the heads in one of `a` and `b` and not in the other. A
/// pointer in both leads where it led, so it is not a seed: a list's item
/// array that gained or lost an item (the heap's longest, in a program that
/// keeps a history) seeds that item, not the 1,300 the array holds. What the
/// two share at the start and at the end is skipped at once; the rest is
/// compared sorted, since removing an item moves the ones after it.
fn differing(a: &[u32], b: &[u32], seeds: &mut Vec<u64>) {
    const FEW_HEADS: usize = 16;
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let suffix = a.iter().rev().zip(b.iter().rev()).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[..a.len() - suffix], &b[..b.len() - suffix]);
    if a.len() + b.len() <= FEW_HEADS {
        // A few: all of them, which is what differs and perhaps a little more.
        seeds.extend(a.iter().chain(b).map(|&h| h as u64));
        return;
    }
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_unstable();
    b.sort_unstable();
    let (mut x, mut y) = (a.iter().peekable(), b.iter().peekable());
    loop {
        let one = match (x.peek(), y.peek()) {
            (Some(p), Some(q)) if p == q => {
                x.next();
                y.next();
                continue;
            }
            (Some(p), Some(q)) if p < q => x.next(),
            (Some(_), Some(_)) | (None, Some(_)) => y.next(),
            (Some(_), None) => x.next(),
            (None, None) => break,
        };
        seeds.extend(one.map(|&h| h as u64));
    }
}

/// The allocations of this snapshot reached from `seeds` (first blocks)
/// through either snapshot's pointers, by index; `None` past `most` reached.
fn reach(now: RetentionInputs, before: RetentionInputs, seeds: Vec<u64>, room: &mut LocalRoom, most: usize) -> Option<Vec<u32>> {
    let pool = now.index.len().max(before.index.len());
    if room.seen.len() != pool {
        room.seen = vec![false; pool];
    }
    room.stack.clear();
    room.stack.extend(seeds);
    room.reached.clear();
    let mut region = Vec::new();
    let mut too_many = false;
    while let Some(b) = room.stack.pop() {
        let Some(seen) = room.seen.get_mut(b as usize) else { continue };
        if *seen {
            continue;
        }
        *seen = true;
        room.reached.push(b);
        // A pointer's successors in either snapshot (the same ones for an
        // allocation carried over), when the collect bit lets the GC scan it.
        let (i, j) = (now.index.at(b), before.index.at(b));
        if let Some(i) = i {
            region.push(i);
            if region.len() > most {
                too_many = true;
                break;
            }
            if now.scanned.get(i as usize) != Some(&false) {
                room.stack.extend(now.flat.of(i as usize).unwrap_or_default().iter().map(|&h| h as u64));
            }
        }
        if let Some(j) = j {
            if before.scanned.get(j as usize) != Some(&false) {
                room.stack.extend(before.flat.of(j as usize).unwrap_or_default().iter().map(|&h| h as u64));
            }
        }
    }
    (!too_many).then_some(region)
}

/// The roots' names in the order the edges first name them, as the whole
/// retention numbers them.
fn root_names(root_edges: RootEdges) -> Vec<Arc<str>> {
    let mut names: Vec<Arc<str>> = Vec::new();
    for (name, _) in root_edges {
        number_root(&mut names, Arc::clone(name));
    }
    names
}

/// The small graph in `room.graph`: node 0 the roots' root, then one node a
/// root (`names`), then the region's allocations and the chains of
/// dominators of the allocations pointing into it. Returns the number of the
/// first allocation's node; `None` when the snapshot before's retention does
/// not say what holds an allocation outside the region (not expected).
/// (`room.seen` marks the region's first blocks: every head is checked
/// against it in one pass, and only a head into the region is looked up.)
fn build_graph(
    inputs: &Inputs,
    (root_edges, names): (RootEdges, &[Arc<str>]),
    region: &[u32],
    room: &mut LocalRoom,
) -> Option<u32> {
    let now = inputs.now;
    let n = now.allocations.len();
    if room.node_of.len() < n {
        room.node_of.resize(n, NONE);
    }
    let first = 1 + names.len() as u32;
    room.allocation_of.clear();
    room.in_region.clear();
    room.edges.clear();
    room.edges.extend((1..first).map(|r| (0, r)));
    for &i in region {
        let node = first + room.allocation_of.len() as u32;
        *room.node_of.get_mut(i as usize)? = node;
        room.allocation_of.push(i);
        room.in_region.push(true);
    }
    let root_of = |name: &Arc<str>| root_number(names, name).map(|r| 1 + r as u32);
    for (name, i) in root_edges {
        if let Some(to) = region_node(room, *i, first) {
            room.edges.push((root_of(name)?, to));
        }
    }
    let mut chains = Chains { inputs, names, first };
    let (start, heads) = (&now.flat.start, &now.flat.heads);
    for (at, &b) in heads.iter().enumerate() {
        if !room.seen.get(b as usize).copied().unwrap_or(false) {
            continue;
        }
        let Some(v) = now.index.at(b as u64) else { continue };
        let Some(to) = region_node(room, v, first) else { continue };
        // The allocation whose heads hold this one.
        let u = start.partition_point(|&s| s as usize <= at).checked_sub(1)?;
        if u >= n || now.scanned.get(u) == Some(&false) {
            continue;
        }
        if let Some(from) = chains.node(u as u32, room)? {
            room.edges.push((from, to));
        }
    }
    let nodes = first as usize + room.allocation_of.len();
    room.graph.refill(nodes, &room.edges);
    Some(first)
}

/// Allocation `i`'s node, when it is in the region.
fn region_node(room: &LocalRoom, i: u32, first: u32) -> Option<u32> {
    let node = *room.node_of.get(i as usize)?;
    (node != NONE && room.in_region.get((node - first) as usize) == Some(&true)).then_some(node)
}

/// The dominator chains of allocations outside the region, added to the
/// small graph as they are needed.
struct Chains<'a> {
    inputs: &'a Inputs<'a>,
    names: &'a [Arc<str>],
    first: u32,
}

impl Chains<'_> {
    /// Allocation `u`'s node: in the region, or outside it with its chain of
    /// dominators from the snapshot before added (each a tree edge, down from
    /// a root or the roots' root); `Some(None)` for garbage outside the
    /// region (it reaches nothing); `None` when the retention before does not
    /// hold it (not expected).
    fn node(&mut self, u: u32, room: &mut LocalRoom) -> Option<Option<u32>> {
        if room.node_of[u as usize] != NONE {
            return Some(Some(room.node_of[u as usize]));
        }
        if self.holder(u)? == Holder::Garbage {
            return Some(None);
        }
        // Up the chain to a node already in the graph, or a root.
        let start = room.allocation_of.len();
        let mut at = u;
        let parent = loop {
            let node = self.first + room.allocation_of.len() as u32;
            room.node_of[at as usize] = node;
            room.allocation_of.push(at);
            room.in_region.push(false);
            match self.holder(at)? {
                Holder::Allocation(k) if room.node_of[k as usize] != NONE => break room.node_of[k as usize],
                Holder::Allocation(k) => at = k,
                Holder::Root(r) => break self.root(r)?,
                Holder::Roots => break 0,
                Holder::Garbage => return None,
            }
        };
        // Tree edges down the chain just added.
        let mut up = parent;
        for k in (start..room.allocation_of.len()).rev() {
            let node = self.first + k as u32;
            room.edges.push((up, node));
            up = node;
        }
        Some(Some(room.node_of[u as usize]))
    }

    /// What held allocation `u` (this snapshot's index) in the snapshot
    /// before, numbered for this snapshot.
    fn holder(&self, u: u32) -> Option<Holder> {
        let Inputs { now, before, .. } = *self.inputs;
        let j = before.index.at(now.allocations.get(u as usize)?.start_block)?;
        self.holder_before(j)
    }

    /// What held allocation `j` of the snapshot before, numbered for this
    /// snapshot.
    fn holder_before(&self, j: u32) -> Option<Holder> {
        Some(match *self.inputs.old.idom.get(j as usize)? {
            Holder::Allocation(k) => match *self.inputs.old_to_new.get(k as usize)? {
                NONE => return None,
                i => Holder::Allocation(i),
            },
            other => other,
        })
    }

    /// Root `r` of the retention before, as a node of the small graph.
    fn root(&self, r: u32) -> Option<u32> {
        let name = self.inputs.old.roots.get(r as usize)?;
        root_number(self.names, name).map(|k| 1 + k as u32)
    }
}

/// What may be held otherwise than before.
pub(super) struct Moved {
    /// This snapshot's allocations (sorted) whose retention may differ from
    /// the one their allocations had in the snapshot before, of those carried
    /// over (the others are given theirs again anyway): the region's, those
    /// whose retained bytes changed (a dominator of the region's) and those
    /// held by a root named by another text. Every other allocation carried
    /// over is held as before, by the same, retaining as much.
    pub(super) allocations: Vec<u32>,
    /// Whether a root holding an allocation outside the region is named by
    /// another text: what that allocation dominates is held as before, but
    /// its owner ([`crate::retain::owners`]) goes by the root's name.
    pub(super) renamed_root: bool,
}

/// Retained sizes compared at once between a run and the snapshot before.
const RETAINED_AT_ONCE: usize = 64;

/// The retention: the snapshot before's outside the region (numbered anew),
/// the small graph's dominators in it, retained sizes summed again; and the
/// allocations whose retention [`Moved`].
fn assemble(
    inputs: &Inputs,
    (names, first): (Vec<Arc<str>>, u32),
    room: &LocalRoom,
    (bytes_per_block, next): (u64, &mut Retention),
) -> Option<Moved> {
    let (now, old) = (inputs.now, inputs.old);
    let chains = Chains { inputs, names: &names, first };
    next.reset(now.allocations.len());
    // A reachable allocation's own bytes, as it is found reachable: what
    // [`sum_retained`] adds up.
    let own_bytes = |i: u32| Some(now.allocations.get(i as usize)?.blocks.saturating_mul(bytes_per_block));
    let mut moved: Vec<u32> = (room.allocation_of.iter().zip(&room.in_region).filter(|(_, &r)| r).map(|(&i, _)| i)).collect();
    let mut renamed_root = false;
    // Each root of the retention before: its number now, and whether it is
    // named by the same text (the keys compare names by address).
    let mut root_now = Vec::with_capacity(old.roots.len());
    for (r, name) in old.roots.iter().enumerate() {
        let now_r = chains.root(r as u32).map(|k| k - 1);
        let same = now_r.and_then(|k| names.get(k as usize)).is_some_and(|now| Arc::ptr_eq(name, now));
        root_now.push((now_r, same));
    }
    // Outside the region, as before.
    for &j in &old.order {
        let i = *inputs.old_to_new.get(j as usize)?;
        if i == NONE || region_node(room, i, first).is_some() {
            continue;
        }
        next.idom[i as usize] = match chains.holder_before(j)? {
            Holder::Root(r) => {
                let (now_r, same) = *root_now.get(r as usize)?;
                if !same {
                    moved.push(i);
                    renamed_root = true;
                }
                Holder::Root(now_r?)
            }
            other => other,
        };
        next.reachable[i as usize] = true;
        next.retained_bytes[i as usize] = own_bytes(i)?;
        next.order.push(i);
    }
    // The region, dominators first.
    let d = &room.dominators;
    for &h in d.order.iter().filter(|&&h| h >= first) {
        let k = (h - first) as usize;
        if !room.in_region[k] {
            continue;
        }
        let i = room.allocation_of[k];
        next.idom[i as usize] = match d.idom[h as usize] {
            NONE => continue,
            0 => Holder::Roots,
            r if r < first => Holder::Root(r - 1),
            a => Holder::Allocation(room.allocation_of[(a - first) as usize]),
        };
        next.reachable[i as usize] = true;
        next.retained_bytes[i as usize] = own_bytes(i)?;
        next.order.push(i);
    }
    sum_retained(next)?;
    // Of the allocations carried over (the others are given their retention
    // again anyway), the dominators of what changed retain otherwise:
    // compared a stretch at a time, and one at a time where a stretch differs.
    for run in inputs.runs.iter() {
        let (Some(now), Some(was)) = (next.retained_bytes.get(run.now_range()), old.retained_bytes.get(run.before_range())) else {
            return None;
        };
        for (k, (a, b)) in now.chunks(RETAINED_AT_ONCE).zip(was.chunks(RETAINED_AT_ONCE)).enumerate().filter(|(_, (a, b))| a != b) {
            let from = run.now + (k * RETAINED_AT_ONCE) as u32;
            moved.extend(a.iter().zip(b).zip(from..).filter(|((x, y), _)| x != y).map(|(_, i)| i));
        }
    }
    moved.sort_unstable();
    moved.dedup();
    next.roots = names;
    Some(Moved { allocations: moved, renamed_root })
}

/// Each reachable allocation's bytes (its own, to start with) added to its
/// dominator's, last first.
fn sum_retained(next: &mut Retention) -> Option<()> {
    for &v in next.order.iter().rev() {
        if let Holder::Allocation(up) = next.idom[v as usize] {
            let add = next.retained_bytes[v as usize];
            let up = next.retained_bytes.get_mut(up as usize)?;
            *up = up.saturating_add(add);
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::differing;

    fn seeds_of(a: &[u32], b: &[u32]) -> Vec<u64> {
        let mut seeds = Vec::new();
        differing(a, b, &mut seeds);
        seeds.sort_unstable();
        seeds
    }

    #[test]
    fn only_the_heads_one_list_has_and_the_other_has_not_are_seeds() {
        // Long lists (an item array): an item appended, one removed from the
        // middle (the rest moved down), both at once, a repeat dropped.
        let items: Vec<u32> = (100..140).collect();
        let with = |f: &dyn Fn(&mut Vec<u32>)| {
            let mut v = items.clone();
            f(&mut v);
            v
        };
        assert_eq!(seeds_of(&with(&|v| v.push(7)), &items), vec![7]);
        assert_eq!(seeds_of(&with(&|v| v.retain(|&h| h != 103)), &items), vec![103]);
        assert_eq!(
            seeds_of(
                &with(&|v| {
                    v.retain(|&h| h != 103);
                    v.push(7);
                }),
                &items
            ),
            vec![7, 103]
        );
        assert_eq!(seeds_of(&with(&|v| v.insert(20, 120)), &items), vec![120]);
        assert!(seeds_of(&items, &items).is_empty());
        // Reversed, it holds the same heads: no pointer changed.
        assert!(seeds_of(&with(&|v| v.reverse()), &items).is_empty());
        // Short ones: what differs, and perhaps a little more.
        for (a, b, differ) in [(&[7, 9, 4, 5][..], &[7, 3, 9, 4][..], &[3, 5][..]), (&[], &[6, 1], &[1, 6])] {
            let seeds = seeds_of(a, b);
            assert!(differ.iter().all(|h| seeds.contains(&(*h as u64))), "{a:?} {b:?}: {seeds:?}");
            assert!(seeds.iter().all(|&h| a.contains(&(h as u32)) || b.contains(&(h as u32))));
        }
        assert!(seeds_of(&[5, 1, 5], &[5, 1, 5]).is_empty());
    }
}
