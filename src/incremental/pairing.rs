//! Pairing a snapshot's allocations with the snapshot before's.
//!
//! An allocation is unchanged when the snapshot before has one at the same
//! block with the same extent, table bits and bytes. Rather than visiting every
//! allocation, the pairing first finds the blocks where anything an allocation
//! is made of could differ ([`dirty_blocks`]): the pool bytes written, and the
//! blocks whose allocation, finaliser or collect table bytes changed. Between
//! those blocks both snapshots hold the same allocations, in the same order, so
//! each stretch is one run carried over whole, found by two binary searches;
//! only the allocations meeting a dirty block are compared one by one.

use std::ops::Range;

use super::runs::CarriedRuns;
use crate::decode::{Allocation, HeapGeometry, Table, TableSpan};
use crate::memory::each_differing;

/// Pool blocks, a bit each.
#[derive(Clone)]
pub(super) struct BlockSet(Vec<u64>);

impl BlockSet {
    pub(super) fn new(blocks: u64) -> Self {
        BlockSet(vec![0; blocks.div_ceil(64) as usize])
    }

    fn insert_block(&mut self, b: u64) {
        if let Some(w) = self.0.get_mut((b / 64) as usize) {
            *w |= 1 << (b % 64);
        }
    }

    /// Inserts `blocks` (those past the set's end are left out).
    fn insert_range(&mut self, blocks: Range<u64>) {
        let end = blocks.end.min(self.0.len() as u64 * 64);
        for b in blocks.start..end {
            self.insert_block(b);
        }
    }

    fn insert(&mut self, a: &Allocation) {
        self.insert_range(a.start_block..a.start_block.saturating_add(a.blocks));
    }

    pub(super) fn contains(&self, block: u64) -> bool {
        self.0.get((block / 64) as usize).is_some_and(|w| w >> (block % 64) & 1 == 1)
    }

    /// Whether a block of `start..start + len` is in the set (or lies past its end).
    fn any_in(&self, start: u64, len: u64) -> bool {
        let end = start.saturating_add(len);
        if end.div_ceil(64) > self.0.len() as u64 {
            return true;
        }
        (start..end).any(|b| self.contains(b))
    }

    /// The set's blocks as maximal ranges, in order.
    fn ranges(&self) -> Vec<Range<u64>> {
        let mut out: Vec<Range<u64>> = Vec::new();
        for (k, &w) in self.0.iter().enumerate() {
            let mut bits = w;
            while bits != 0 {
                let b = k as u64 * 64 + u64::from(bits.trailing_zeros());
                bits &= bits - 1;
                match out.last_mut() {
                    Some(r) if r.end == b => r.end += 1,
                    _ => out.push(b..b + 1),
                }
            }
        }
        out
    }
}

/// The pool blocks whose bytes differ between `ram` and `before` (snapshots of
/// the same geometry `g`; RAM starting at `ram_start`), found 64 bytes at a
/// time where a longer stretch differs ([`each_differing`]): a whole pool
/// costs about what reading it does, where comparing each allocation's bytes
/// on its own cost a call per allocation.
pub(super) fn written_blocks(ram_start: u64, g: &HeapGeometry, ram: &[u8], before: &[u8]) -> BlockSet {
    const CHUNK: usize = 64;
    let mut set = BlockSet::new(g.pool_blocks());
    let bpb = g.bytes_per_block.max(1) as usize;
    for area in g.areas() {
        let Some(start) = area.pool_start.checked_sub(ram_start) else { continue };
        let r = start as usize..(start as usize).saturating_add((area.pool_end - area.pool_start) as usize);
        let (Some(x), Some(y)) = (ram.get(r.clone()), before.get(r)) else {
            // Outside the snapshot: every block counts as written.
            set.insert_range(area.first_block..area.first_block.saturating_add(area.blocks(g.bytes_per_block)));
            continue;
        };
        // Within a stretch that differs, the blocks that do.
        let mark = |set: &mut BlockSet, from: usize, len: usize| {
            for b in from / bpb..(from + len).div_ceil(bpb) {
                let r = b * bpb..((b + 1) * bpb).min(x.len());
                if x.get(r.clone()) != y.get(r) {
                    set.insert_block(area.first_block + b as u64);
                }
            }
        };
        each_differing(x, y, CHUNK, |from, len| mark(&mut set, from, len));
    }
    set
}

/// `written` with the blocks whose allocation or bits may differ because a
/// table byte describing them changed (`spans`, in RAM from `ram_start`): the
/// byte's blocks, and for the allocation table the block before them too, since
/// an allocation ends at the first block after it that is not its tail. A table
/// outside the snapshot makes its blocks dirty.
fn dirty_blocks(ram_start: u64, spans: &[TableSpan], (ram, before): (&[u8], &[u8]), written: &BlockSet) -> BlockSet {
    let mut set = written.clone();
    for t in spans {
        let per = t.blocks_per_byte;
        let before_too = u64::from(t.table == Table::Allocation);
        let mut mark = |k: u64| {
            let first = t.first_block.saturating_add(k.saturating_mul(per));
            set.insert_range(first.saturating_sub(before_too)..first.saturating_add(per));
        };
        let at = t.address.checked_sub(ram_start).and_then(|s| {
            let r = usize::try_from(s).ok()?..usize::try_from(s.checked_add(t.bytes)?).ok()?;
            Some((ram.get(r.clone())?, before.get(r)?))
        });
        let Some((x, y)) = at else {
            // (Not expected: the decode read every table from the snapshot.
            // Marked as one range, which the set bounds.)
            let end = t.first_block.saturating_add(t.bytes.saturating_mul(per));
            set.insert_range(t.first_block.saturating_sub(before_too)..end);
            continue;
        };
        if x == y {
            continue;
        }
        for (k, (a, b)) in x.iter().zip(y).enumerate() {
            if a != b {
                mark(k as u64);
            }
        }
    }
    set
}

/// One snapshot as the pairing sees it: its RAM, allocations and their
/// finaliser and collect bits.
#[derive(Clone, Copy)]
pub(super) struct Side<'a> {
    pub(super) ram: &'a [u8],
    pub(super) allocations: &'a [Allocation],
    pub(super) finaliser: &'a [bool],
    pub(super) collect: &'a [Option<bool>],
}

/// The allocations of a snapshot paired with the snapshot before's.
pub(super) struct Pairing {
    /// Indices of `now`'s allocations that are new or changed.
    pub(super) dirty: Vec<usize>,
    /// Indices of the previous snapshot's allocations that are gone or changed.
    pub(super) replaced: Vec<usize>,
    /// The blocks of both.
    pub(super) changed: BlockSet,
    /// The unchanged allocations (those `reuse` names), as runs.
    pub(super) runs: CarriedRuns,
    /// Every allocation was compared, the stretches between dirty blocks not
    /// agreeing (never expected: the tests hold it to false).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) compared_each: bool,
}

/// What the pairing works from: the heap's geometry and tables, and where the
/// snapshots' RAM starts.
#[derive(Clone, Copy)]
pub(super) struct PairIn<'a> {
    pub(super) ram_start: u64,
    pub(super) geometry: &'a HeapGeometry,
    pub(super) spans: &'a [TableSpan],
}

/// Pairs `now`'s allocations with `before`'s: an allocation with the same
/// extent, table bits and bytes is unchanged (`reuse` says which one it
/// continues). Stretches between dirty blocks are taken a run at a time; should
/// the two snapshots not agree on one (they always do when the tables are as
/// read), every allocation is compared instead.
pub(super) fn pair(inp: PairIn, before: Side, now: Side, reuse: &mut Vec<Option<usize>>, runs: CarriedRuns) -> Pairing {
    let written = written_blocks(inp.ram_start, inp.geometry, now.ram, before.ram);
    let dirty = dirty_blocks(inp.ram_start, inp.spans, (now.ram, before.ram), &written);
    let mut p = Pairer::new(inp.geometry, before, now, &written, reuse, runs);
    let (old, cur) = (before.allocations, now.allocations);
    let (mut i, mut j) = (0, 0);
    for r in dirty.ranges() {
        let ends_before = |a: &Allocation| a.start_block.saturating_add(a.blocks) <= r.start;
        let (ci, oj) = (i + cur[i..].partition_point(ends_before), j + old[j..].partition_point(ends_before));
        if !p.clean(i..ci, j..oj) {
            return p.each(0, 0);
        }
        let starts_before = |a: &Allocation| a.start_block < r.end;
        (i, j) = (ci + cur[ci..].partition_point(starts_before), oj + old[oj..].partition_point(starts_before));
        p.window(ci..i, oj..j);
    }
    if !p.clean(i..cur.len(), j..old.len()) {
        return p.each(0, 0);
    }
    p.out
}

/// [`pair`] under way.
struct Pairer<'a> {
    before: Side<'a>,
    now: Side<'a>,
    written: &'a BlockSet,
    reuse: &'a mut Vec<Option<usize>>,
    out: Pairing,
}

impl<'a> Pairer<'a> {
    fn new(
        g: &HeapGeometry,
        before: Side<'a>,
        now: Side<'a>,
        written: &'a BlockSet,
        reuse: &'a mut Vec<Option<usize>>,
        mut runs: CarriedRuns,
    ) -> Self {
        runs.clear();
        reuse.clear();
        reuse.resize(now.allocations.len(), None);
        let changed = BlockSet::new(g.pool_blocks());
        let out = Pairing { dirty: Vec::new(), replaced: Vec::new(), changed, runs, compared_each: false };
        Pairer { before, now, written, reuse, out }
    }

    /// Pairs the stretch `now` with `before` as one run; false when they do
    /// not hold the same allocations.
    fn clean(&mut self, now: Range<usize>, before: Range<usize>) -> bool {
        let (Some(a), Some(b)) = (self.now.allocations.get(now.clone()), self.before.allocations.get(before.clone()))
        else {
            return false;
        };
        if a.len() != b.len() || a.first() != b.first() || a.last() != b.last() {
            return false;
        }
        if let Some(r) = self.reuse.get_mut(now.clone()) {
            r.iter_mut().zip(before.clone()).for_each(|(r, j)| *r = Some(j));
        }
        self.out.runs.push_run(now.start as u32, before.start as u32, now.len() as u32);
        true
    }

    /// Pairs the allocations of `now` with those of `before` one by one.
    fn window(&mut self, now: Range<usize>, before: Range<usize>) {
        let old = self.before.allocations;
        let mut j = before.start;
        for i in now {
            let Some(a) = self.now.allocations.get(i) else { break };
            while let Some(o) = old.get(j).filter(|o| j < before.end && o.start_block < a.start_block) {
                self.replace(j, o);
                j += 1;
            }
            if let Some(o) = old.get(j).filter(|o| j < before.end && o.start_block == a.start_block) {
                j += 1;
                if self.unchanged((i, a), (j - 1, o)) {
                    continue;
                }
                self.replace(j - 1, o);
            }
            self.out.dirty.push(i);
            self.out.changed.insert(a);
        }
        for (k, o) in old.iter().enumerate().take(before.end).skip(j) {
            self.replace(k, o);
        }
    }

    /// Whether allocation `i` continues allocation `j` of the snapshot before
    /// unchanged; if so, it is paired.
    fn unchanged(&mut self, (i, a): (usize, &Allocation), (j, o): (usize, &Allocation)) -> bool {
        let (b, n) = (&self.before, &self.now);
        let bits = b.finaliser.get(j) == n.finaliser.get(i) && b.collect.get(j) == n.collect.get(i);
        if !(o == a && bits && !self.written.any_in(a.start_block, a.blocks)) {
            return false;
        }
        if let Some(r) = self.reuse.get_mut(i) {
            *r = Some(j);
        }
        self.out.runs.push(i as u32, j as u32);
        true
    }

    fn replace(&mut self, j: usize, o: &Allocation) {
        self.out.replaced.push(j);
        self.out.changed.insert(o);
    }

    /// Every allocation compared (from allocation `i` of now and `j` before).
    fn each(mut self, i: usize, j: usize) -> Pairing {
        let (runs, changed) = (std::mem::take(&mut self.out.runs), BlockSet::new(self.out.changed.0.len() as u64 * 64));
        self.out = Pairing { dirty: Vec::new(), replaced: Vec::new(), changed, runs, compared_each: true };
        self.out.runs.clear();
        self.reuse.iter_mut().for_each(|r| *r = None);
        self.window(i..self.now.allocations.len(), j..self.before.allocations.len());
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::alloc_table::walk;
    use crate::decode::HeapArea;
    use crate::synth::rng::Rng;

    /// Two areas: 96 blocks with finaliser and collect tables, then 64 without.
    fn two_areas() -> HeapGeometry {
        let first = HeapArea {
            alloc_table_start: 0x100,
            alloc_table_bytes: 24,
            finaliser_table_start: Some(0x118),
            finaliser_table_bytes: 12,
            collect_table_start: Some(0x124),
            pool_start: 0x140,
            pool_end: 0x140 + 16 * 96,
            first_block: 0,
        };
        let mut g = HeapGeometry::from_area(&first, 16);
        g.more_areas.push(HeapArea {
            alloc_table_start: 0x800,
            alloc_table_bytes: 16,
            finaliser_table_start: None,
            finaliser_table_bytes: 0,
            collect_table_start: None,
            pool_start: 0x840,
            pool_end: 0x840 + 16 * 64,
            first_block: 96,
        });
        g
    }

    /// A snapshot's allocations (every area walked) and their bits, as the
    /// decoder reads them.
    fn side_of(g: &HeapGeometry, ram: &[u8]) -> (Vec<Allocation>, Vec<bool>, Vec<Option<bool>>) {
        let mut allocations = Vec::new();
        for a in g.areas() {
            let atb = &ram[a.alloc_table_start as usize..(a.alloc_table_start + a.alloc_table_bytes) as usize];
            let w = walk(atb, 16, a.pool_end - a.pool_start, true);
            allocations.extend(w.allocations.iter().map(|x| Allocation { start_block: x.start_block + a.first_block, ..*x }));
        }
        let bit = |table: Option<u64>, b: u64| table.map(|t| ram[t as usize + (b / 8) as usize] >> (b % 8) & 1 == 1);
        let f = g.first;
        let finaliser = allocations.iter().map(|a| a.start_block < 96 && bit(f.finaliser_table_start, a.start_block) == Some(true));
        let collect = allocations.iter().map(|a| if a.start_block < 96 { bit(f.collect_table_start, a.start_block) } else { None });
        (allocations.clone(), finaliser.collect(), collect.collect())
    }

    /// Random table bytes and pool bytes, heads, tails, free and marked blocks
    /// mixed (orphan tails included).
    fn random_ram(rng: &mut Rng, g: &HeapGeometry) -> Vec<u8> {
        let mut ram = vec![0u8; 0x840 + 16 * 64];
        for a in g.areas() {
            for b in 0..a.alloc_table_bytes * 4 {
                let state = [1, 2, 2, 2, 0, 0, 3, 1, 2, 2][rng.below(10) as usize];
                ram[(a.alloc_table_start + b / 4) as usize] |= state << (2 * (b % 4));
            }
            (a.pool_start..a.pool_end).step_by(4).for_each(|x| ram[x as usize] = rng.below(256) as u8);
        }
        (0x118..0x130).for_each(|x| ram[x] = rng.below(256) as u8);
        ram
    }

    /// A few changes of the kinds a heap change makes: a block's table state,
    /// a finaliser or collect bit, a pool byte.
    fn change(rng: &mut Rng, g: &HeapGeometry, ram: &mut [u8]) {
        for _ in 0..rng.range(1, 4) {
            let area = if rng.chance(70) { g.first } else { g.more_areas[0] };
            match rng.below(4) {
                0 | 1 => {
                    let b = rng.below(area.alloc_table_bytes * 4);
                    let at = (area.alloc_table_start + b / 4) as usize;
                    ram[at] = ram[at] & !(3 << (2 * (b % 4))) | (rng.below(4) as u8) << (2 * (b % 4));
                }
                2 => ram[0x118 + rng.below(24) as usize] ^= 1 << rng.below(8),
                _ => ram[(area.pool_start + rng.below(area.pool_end - area.pool_start)) as usize] ^= 0x40,
            }
        }
    }

    #[test]
    fn pairing_between_dirty_blocks_is_pairing_every_allocation() {
        let g = two_areas();
        let spans = g.table_spans(8, 8);
        let inp = PairIn { ram_start: 0, geometry: &g, spans: &spans };
        let mut runs_taken = 0;
        for seed in 0..3000 {
            let mut rng = Rng::new(seed);
            let before = random_ram(&mut rng, &g);
            let mut now = before.clone();
            change(&mut rng, &g, &mut now);
            let (b, n) = (side_of(&g, &before), side_of(&g, &now));
            let sb = Side { ram: &before, allocations: &b.0, finaliser: &b.1, collect: &b.2 };
            let sn = Side { ram: &now, allocations: &n.0, finaliser: &n.1, collect: &n.2 };
            let (mut fast_reuse, mut each_reuse) = (Vec::new(), Vec::new());
            let fast = pair(inp, sb, sn, &mut fast_reuse, CarriedRuns::default());
            let written = written_blocks(0, &g, &now, &before);
            let each = Pairer::new(&g, sb, sn, &written, &mut each_reuse, CarriedRuns::default()).each(0, 0);
            assert_eq!(fast_reuse, each_reuse, "seed {seed}");
            assert_eq!((&fast.dirty, &fast.replaced), (&each.dirty, &each.replaced), "seed {seed}");
            let runs = |p: &Pairing| p.runs.iter().copied().collect::<Vec<_>>();
            assert_eq!(runs(&fast), runs(&each), "seed {seed}");
            assert!((0..160).all(|k| fast.changed.contains(k) == each.changed.contains(k)), "seed {seed}");
            assert!(!fast.compared_each, "seed {seed}: the stretches between dirty blocks agree");
            runs_taken += fast.runs.iter().filter(|r| r.len > 1).count();
        }
        assert!(runs_taken > 3000, "most pairings carry runs over: {runs_taken}");
    }

    #[test]
    fn written_blocks_are_the_blocks_whose_bytes_differ() {
        // 99 blocks of 16 bytes: 24 stretches of 64 bytes, then 48 bytes.
        const BLOCKS: u64 = 99;
        let area = HeapArea {
            alloc_table_start: 0x100,
            alloc_table_bytes: 32,
            finaliser_table_start: None,
            finaliser_table_bytes: 0,
            collect_table_start: None,
            pool_start: 0x120,
            pool_end: 0x120 + 16 * BLOCKS,
            first_block: 0,
        };
        let g = HeapGeometry::from_area(&area, 16);
        let before = vec![0u8; 0x120 + 16 * BLOCKS as usize];
        let mut ram = before.clone();
        // A byte of block 5, the first of block 64, the last byte of block 98
        // (in the pool's tail, past the last whole 64 bytes), nothing around
        // them.
        ram[0x120 + 16 * 5 + 3] = 1;
        ram[0x120 + 16 * 64] = 1;
        ram[0x120 + 16 * BLOCKS as usize - 1] = 1;
        let set = written_blocks(0, &g, &ram, &before);
        let written: Vec<u64> = (0..BLOCKS).filter(|&b| set.contains(b)).collect();
        assert_eq!(written, vec![5, 64, 98]);
        assert_eq!(set.ranges(), vec![5..6, 64..65, 98..99]);
        assert!(set.any_in(4, 2) && !set.any_in(6, 30) && set.any_in(98, 1));
        assert!(set.any_in(98, 100), "past the end counts as written");
        // Every byte of the pool counts.
        for at in 0..16 * BLOCKS as usize {
            let mut ram = before.clone();
            ram[0x120 + at] = 0x80;
            let set = written_blocks(0, &g, &ram, &before);
            let written: Vec<u64> = (0..BLOCKS).filter(|&b| set.contains(b)).collect();
            assert_eq!(written, vec![at as u64 / 16]);
        }
    }
}
