//! The allocation-table walk carried from one snapshot to the next.
//!
//! A heap change rewrites a few bytes of the allocation table, yet the walk
//! ([`super::alloc_table`]) visits every block. A [`KeptWalk`] keeps the table
//! it walked and what the walk gave, and walks again only the stretches around
//! the bytes that differ: each from the HEAD before the change to the HEAD
//! after it (or an area's bounds). Nothing of the walk carries across a HEAD —
//! an allocation and a free run end there, and py/gc.c `gc_info()` closes both
//! its running lengths — so such a stretch's share of the walk is the walk of
//! the stretch alone: the share the old table's stretch gave is taken out, the
//! new one's put in. `gc_info`'s two maxima are kept as counts of every length
//! met, so that taking a stretch out can lower them.
//!
//! The kept walk holds its own copy of the tables it walked, so it is right
//! for any next snapshot, adjacent or not; a snapshot whose areas differ in
//! place or size is walked whole.

use super::alloc_table::{unpack, walk_states_with, Allocation, FreeRun, GcInfo, Maxima, TableWalk, AT_HEAD};

/// An area of the heap as the walk reads it: its allocation table, its first
/// block (numbered across the heap), its pool's bytes.
pub type AreaTable<'a> = (&'a [u8], u64, u64);

/// How many times each length was met, and the largest met.
#[derive(Clone, Debug, Default)]
struct Lengths {
    count: Vec<u32>,
    largest: u64,
}

impl Lengths {
    /// Room for lengths up to `most` (an area's blocks).
    fn new(most: usize) -> Self {
        Lengths { count: vec![0; most + 1], largest: 0 }
    }

    fn add(&mut self, len: u64) {
        if let Some(c) = self.count.get_mut(len as usize) {
            *c = c.saturating_add(1);
            self.largest = self.largest.max(len);
        }
    }

    fn remove(&mut self, len: u64) {
        if let Some(c) = self.count.get_mut(len as usize) {
            *c = c.saturating_sub(1);
        }
        // The largest gone: the next one down (a rare walk over the counts).
        while self.largest > 0 && self.count.get(self.largest as usize).is_none_or(|&c| c == 0) {
            self.largest -= 1;
        }
    }
}

/// Both lengths' counts, taking in (or, `out`, taking out) what a walk meets.
struct Counting<'a> {
    block: &'a mut Lengths,
    free: &'a mut Lengths,
    out: bool,
}

impl Maxima for Counting<'_> {
    fn block(&mut self, len: u64) {
        if self.out {
            self.block.remove(len)
        } else {
            self.block.add(len)
        }
    }
    fn free(&mut self, len: u64) {
        if self.out {
            self.free.remove(len)
        } else {
            self.free.add(len)
        }
    }
}

/// A walk of a snapshot's allocation tables, kept to walk the next one's from.
#[derive(Clone, Debug)]
pub struct KeptWalk {
    /// Each area's table as walked, first block and pool bytes.
    areas: Vec<(Vec<u8>, u64, u64)>,
    bytes_per_block: u64,
    want_rows: bool,
    /// The walk, every area's together; `gc_info`'s used and free in blocks,
    /// without `total` or the maxima (see [`KeptWalk::result`]).
    walk: TableWalk,
    block_lengths: Lengths,
    free_lengths: Lengths,
    /// Blocks walked again to make this walk from the one before (all of them
    /// for a walk made whole).
    pub rewalked: u64,
    /// This walk's number, counting the walks kept in a row; the number of
    /// the walk it was carried from (none when made whole), and the stretches
    /// walked again then ([`Stretch`], in block order). What is kept beside a
    /// walk, such as the owners' index, follows it through these.
    pub generation: u64,
    pub carried_from: Option<u64>,
    pub stretches: Vec<Stretch>,
}

/// Blocks `from..to` (numbered across the heap) walked again, and how many
/// more allocations start there now than before (fewer: negative). The
/// allocations before `from` and from `to` on are those of the walk before,
/// in the same order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stretch {
    pub from: u64,
    pub to: u64,
    pub more: i64,
}

impl KeptWalk {
    /// The walk of `areas`: from `kept` (the walk of the snapshot before, or
    /// of any other) where its areas are these, else whole. Returns the walk as
    /// [`super::alloc_table::walk_areas`] gives it (its allocations listed in
    /// `room`, emptied first) and what to keep for the next.
    pub fn walk(
        kept: Option<KeptWalk>,
        areas: &[AreaTable],
        bytes_per_block: u64,
        want_rows: bool,
        room: Vec<Allocation>,
    ) -> (TableWalk, KeptWalk) {
        let generation = kept.as_ref().map_or(0, |k| k.generation.wrapping_add(1));
        let mut kept = match kept.filter(|k| k.fits(areas, bytes_per_block, want_rows)) {
            Some(mut k) => {
                k.carried_from = Some(k.generation);
                k.walk_changes(areas);
                k
            }
            None => KeptWalk::whole(areas, bytes_per_block, want_rows),
        };
        kept.generation = generation;
        (kept.result(room), kept)
    }

    /// Whether `areas` lie where this walk's did, with as many blocks.
    fn fits(&self, areas: &[AreaTable], bytes_per_block: u64, want_rows: bool) -> bool {
        let same = |(t, first, pool): &AreaTable, (kt, kfirst, kpool): &(Vec<u8>, u64, u64)| {
            t.len() == kt.len() && first == kfirst && pool == kpool
        };
        // Areas in block order, none overlapping the next: the lists are in
        // block order, and a stretch's items are found by searching them.
        let in_order = areas.windows(2).all(|w| w[0].1.saturating_add(w[0].0.len() as u64 * 4) <= w[1].1);
        in_order
            && self.bytes_per_block == bytes_per_block
            && self.want_rows == want_rows
            && self.areas.len() == areas.len()
            && areas.iter().zip(&self.areas).all(|(a, k)| same(a, k))
    }

    /// Every area walked, its lengths counted.
    fn whole(areas: &[AreaTable], bytes_per_block: u64, want_rows: bool) -> Self {
        let most = areas.iter().map(|(t, _, _)| t.len().saturating_mul(4)).max().unwrap_or(0);
        let mut kept = KeptWalk {
            areas: areas.iter().map(|&(t, first, pool)| (t.to_vec(), first, pool)).collect(),
            bytes_per_block,
            want_rows,
            walk: TableWalk::default(),
            block_lengths: Lengths::new(most),
            free_lengths: Lengths::new(most),
            rewalked: 0,
            generation: 0,
            carried_from: None,
            stretches: Vec::new(),
        };
        let mut states = Vec::new();
        for &(table, first_block, _) in areas {
            unpack(table, &mut states);
            let share = kept.share(&states, false);
            kept.rewalked += states.len() as u64;
            add_counts(&mut kept.walk, &share, false);
            let at = |b: u64| b.saturating_add(first_block);
            let allocations = share.allocations.iter().map(|a| Allocation { start_block: at(a.start_block), ..*a });
            kept.walk.allocations.extend(allocations);
            let runs = share.free_runs.iter().map(|r| FreeRun { start_block: at(r.start_block), ..*r });
            kept.walk.free_runs.extend(runs);
        }
        kept
    }

    /// The walk of `states`, its lengths taken in (or `out`).
    fn share(&mut self, states: &[u8], out: bool) -> TableWalk {
        let mut counting = Counting { block: &mut self.block_lengths, free: &mut self.free_lengths, out };
        walk_states_with(states, self.want_rows, Vec::new(), &mut counting)
    }

    /// This walk made the walk of `areas` (which [`Self::fits`]), stretch by
    /// stretch, the last first so that the lists' earlier places hold.
    fn walk_changes(&mut self, areas: &[AreaTable]) {
        self.rewalked = 0;
        self.stretches.clear();
        let (mut old_states, mut new_states) = (Vec::new(), Vec::new());
        for (k, &(table, first_block, _)) in areas.iter().enumerate().rev() {
            let old_table = std::mem::take(&mut self.areas[k].0);
            for (from, to) in stretches(&old_table, table).into_iter().rev() {
                // The bytes holding the stretch's blocks, and where in them it lies.
                let bytes = from / 4..to.div_ceil(4);
                let skip = from - bytes.start * 4;
                unpack(&old_table[bytes.clone()], &mut old_states);
                unpack(&table[bytes], &mut new_states);
                let old = self.share(&old_states[skip..skip + (to - from)], true);
                let new = self.share(&new_states[skip..skip + (to - from)], false);
                add_counts(&mut self.walk, &old, true);
                add_counts(&mut self.walk, &new, false);
                let (lo, hi) = (first_block + from as u64, first_block + to as u64);
                self.rewalked += (to - from) as u64;
                let more = new.allocations.len() as i64 - old.allocations.len() as i64;
                self.stretches.push(Stretch { from: lo, to: hi, more });
                let allocations = new.allocations.iter().map(|a| Allocation { start_block: a.start_block + lo, ..*a });
                splice_from(&mut self.walk.allocations, |a| a.start_block, (lo, hi), allocations);
                let runs = new.free_runs.iter().map(|r| FreeRun { start_block: r.start_block + lo, ..*r });
                splice_from(&mut self.walk.free_runs, |r| r.start_block, (lo, hi), runs);
            }
            let mut copy = old_table;
            copy.copy_from_slice(table);
            self.areas[k].0 = copy;
        }
        self.stretches.reverse();
    }

    /// The walk as the caller gets it: `gc_info` in bytes, with the heap's
    /// total and the maxima; the allocations copied into `room`.
    fn result(&self, mut room: Vec<Allocation>) -> TableWalk {
        let bpb = self.bytes_per_block;
        let w = &self.walk;
        let gc_info = GcInfo {
            total: self.areas.iter().map(|a| a.2).fold(0u64, u64::saturating_add),
            used: w.gc_info.used.saturating_mul(bpb),
            free: w.gc_info.free.saturating_mul(bpb),
            max_free: self.free_lengths.largest,
            max_block: self.block_lengths.largest,
            ..w.gc_info
        };
        room.clear();
        room.extend_from_slice(&w.allocations);
        TableWalk {
            allocations: room,
            free_runs: w.free_runs.clone(),
            gc_info,
            marked_blocks: w.marked_blocks,
            orphan_tail_blocks: w.orphan_tail_blocks,
            orphan_tail_runs: w.orphan_tail_runs,
        }
    }
}

/// Adds (or, `out`, takes out) a stretch's counts to a walk's.
fn add_counts(walk: &mut TableWalk, share: &TableWalk, out: bool) {
    let f = |a: &mut u64, b: u64| *a = if out { a.saturating_sub(b) } else { a.saturating_add(b) };
    let (g, s) = (&mut walk.gc_info, &share.gc_info);
    f(&mut g.used, s.used);
    f(&mut g.free, s.free);
    f(&mut g.num_1block, s.num_1block);
    f(&mut g.num_2block, s.num_2block);
    f(&mut walk.marked_blocks, share.marked_blocks);
    f(&mut walk.orphan_tail_blocks, share.orphan_tail_blocks);
    f(&mut walk.orphan_tail_runs, share.orphan_tail_runs);
}

/// `list`'s items starting in blocks `lo..hi` (it is in block order) replaced
/// by `with`.
fn splice_from<T>(list: &mut Vec<T>, start: impl Fn(&T) -> u64, (lo, hi): (u64, u64), with: impl Iterator<Item = T>) {
    let a = list.partition_point(|x| start(x) < lo);
    let b = a + list[a..].partition_point(|x| start(x) < hi);
    list.splice(a..b, with);
}

/// Bytes compared at a time between the two tables.
const CHUNK: usize = 16;

/// The stretches of blocks to walk again where `new` differs from `old` (the
/// same length): from the last HEAD before a differing chunk's blocks (or the
/// table's start) to the first HEAD after them (or its end), overlapping
/// stretches joined. A bound is found in `old`, which equals `new` outside the
/// differing chunks; a bound found inside another differing chunk lies inside
/// the joined stretch, so the joined bounds are HEADs in both tables. A search
/// back stops at the stretch before's end, and a chunk inside that stretch is
/// passed over: each block is looked at a bounded number of times.
fn stretches(old: &[u8], new: &[u8]) -> Vec<(usize, usize)> {
    let blocks = old.len() * 4;
    let head = |b: usize| old.get(b / 4).is_some_and(|byte| (byte >> (2 * (b % 4))) & 3 == AT_HEAD);
    let mut out: Vec<(usize, usize)> = Vec::new();
    let chunks = old.chunks(CHUNK).zip(new.chunks(CHUNK)).enumerate();
    // (Compared inline: a `memcmp` call per 16 bytes was 1% of a busy run.)
    for (k, _) in chunks.filter(|(_, (a, b))| !crate::memory::same_bytes(a, b)) {
        let (c0, c1) = (k * CHUNK * 4, ((k + 1) * CHUNK * 4).min(blocks));
        let floor = out.last().map_or(0, |l| l.1);
        if c1 <= floor {
            continue; // within the stretch before
        }
        let to = (c1..blocks).find(|&b| head(b)).unwrap_or(blocks);
        match (floor.min(c0)..c0).rev().find(|&b| head(b)) {
            Some(from) if out.last().is_none_or(|l| from >= l.1) => out.push((from, to)),
            None if out.is_empty() => out.push((0, to)),
            _ => {
                if let Some(last) = out.last_mut() {
                    last.1 = last.1.max(to);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::alloc_table::{walk_areas, AT_FREE, AT_MARK, AT_TAIL};
    use super::super::view::{owners, owners_carried};
    use super::*;

    /// Packs block states four to a byte, first block in the low bits.
    fn atb(states: &[u8]) -> Vec<u8> {
        states.chunks(4).map(|c| c.iter().enumerate().fold(0u8, |b, (i, s)| b | (s << (2 * i)))).collect()
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    /// A heap-like table: allocations of a few blocks between free runs, now
    /// and then a MARK or an orphan tail.
    fn heap_states(rng: &mut Rng, blocks: usize) -> Vec<u8> {
        let mut s = Vec::with_capacity(blocks);
        while s.len() < blocks {
            let head = match rng.below(20) {
                0 => AT_MARK,
                1 => AT_TAIL,
                2..=6 => AT_FREE,
                _ => AT_HEAD,
            };
            s.push(head);
            let tails = if head == AT_FREE { rng.below(9) } else { rng.below(4) };
            let fill = if head == AT_FREE { AT_FREE } else { AT_TAIL };
            s.extend(std::iter::repeat_n(fill, tails as usize));
        }
        s.truncate(blocks);
        s
    }

    /// Changes like a GC's between two snapshots: an allocation made in a free
    /// run, one freed, one grown; sometimes many at once, far apart.
    fn mutate(rng: &mut Rng, s: &mut [u8]) {
        let most = if rng.below(8) == 0 { 40 } else { 3 };
        for _ in 0..1 + rng.below(most) {
            let at = rng.below(s.len() as u64) as usize;
            let len = (1 + rng.below(6) as usize).min(s.len() - at);
            match rng.below(4) {
                0 => s[at..at + len].fill(AT_FREE),
                1 => {
                    s[at] = AT_HEAD;
                    s[at + 1..at + len].fill(AT_TAIL);
                }
                2 => s[at] = [AT_FREE, AT_HEAD, AT_TAIL, AT_MARK][rng.below(4) as usize],
                _ => s[at..at + len].fill(AT_TAIL),
            }
        }
    }

    #[test]
    fn a_walk_carried_from_the_one_before_is_the_whole_walk() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut carried_blocks = (0u64, 0u64);
        for _ in 0..300 {
            // One to three areas of 4 to 2,000 blocks each.
            let mut areas: Vec<Vec<u8>> = (0..1 + rng.below(3))
                .map(|_| {
                    let blocks = 4 * (1 + rng.below(500)) as usize;
                    heap_states(&mut rng, blocks)
                })
                .collect();
            let mut kept = None;
            let mut owner = Vec::new();
            let want_rows = rng.below(5) != 0;
            for step in 0..30 {
                if step > 0 {
                    let k = rng.below(areas.len() as u64) as usize;
                    mutate(&mut rng, &mut areas[k]);
                }
                let tables: Vec<Vec<u8>> = areas.iter().map(|s| atb(s)).collect();
                let mut first = 0u64;
                let spec: Vec<AreaTable> = tables
                    .iter()
                    .map(|t| {
                        let a = (&t[..], first, t.len() as u64 * 4 * 16);
                        first += t.len() as u64 * 4;
                        a
                    })
                    .collect();
                let before = kept.take();
                let before_generation = before.as_ref().map(|k: &KeptWalk| k.generation);
                let (walk, next) = KeptWalk::walk(before, &spec, 16, want_rows, Vec::new());
                assert_eq!(walk, walk_areas(spec.iter().copied(), 16, want_rows), "step {step}");
                // The owners' index followed through the stretches is the one made whole.
                assert_eq!(step > 0, next.carried_from.is_some() && next.carried_from == before_generation);
                let whole = owners(&walk.allocations, first, Vec::new());
                owner = match next.carried_from {
                    Some(_) => owners_carried(&walk.allocations, first, std::mem::take(&mut owner), &next.stretches),
                    None => owners(&walk.allocations, first, std::mem::take(&mut owner)),
                };
                assert_eq!(owner, whole, "step {step}");
                if step > 0 {
                    carried_blocks.0 += next.rewalked;
                    carried_blocks.1 += first;
                }
                kept = Some(next);
            }
        }
        // Carried, a walk goes over a small part of the table.
        assert!(carried_blocks.0 * 3 < carried_blocks.1, "{carried_blocks:?}");
    }

    #[test]
    fn a_walk_whose_areas_moved_is_made_whole() {
        let t = atb(&[AT_HEAD, AT_TAIL, AT_FREE, AT_FREE]);
        let (_, kept) = KeptWalk::walk(None, &[(&t[..], 0, 64)], 16, true, Vec::new());
        let (w, kept) = KeptWalk::walk(Some(kept), &[(&t[..], 4, 64)], 16, true, Vec::new());
        assert_eq!(kept.rewalked, 4);
        assert_eq!(w.allocations[0].start_block, 4);
        let (_, kept) = KeptWalk::walk(Some(kept), &[(&t[..], 4, 64)], 16, true, Vec::new());
        assert_eq!(kept.rewalked, 0, "the same table again walks nothing");
    }

    #[test]
    fn a_stretch_runs_from_head_to_head() {
        // 192 free blocks (three chunks of 64) but HEADs at 10, 70, 100, 140;
        // a block of the second chunk (64..128) becomes a HEAD: the stretch
        // runs from the HEAD before that chunk to the first one after it.
        let mut states = vec![AT_FREE; 192];
        for b in [10, 70, 100, 140] {
            states[b] = AT_HEAD;
        }
        let old = atb(&states);
        states[90] = AT_HEAD;
        assert_eq!(stretches(&old, &atb(&states)), vec![(10, 140)]);
        // A change in the first chunk too: one stretch from the start.
        states[3] = AT_TAIL;
        assert_eq!(stretches(&old, &atb(&states)), vec![(0, 140)]);
        // In the first and the last chunk only: two stretches.
        states[90] = AT_FREE;
        states[150] = AT_HEAD;
        assert_eq!(stretches(&old, &atb(&states)), vec![(0, 70), (100, 192)]);
        let lengths = {
            let mut l = Lengths::new(8);
            [3, 5, 5].into_iter().for_each(|n| l.add(n));
            l.remove(5);
            assert_eq!(l.largest, 5, "one 5 is left");
            l.remove(5);
            l
        };
        assert_eq!(lengths.largest, 3);
    }
}
