//! Which target memory each part of a decode read, recorded as it reads.
//!
//! A run decoder ([`crate::incremental`]) carries an allocation's rows over to
//! the next snapshot when nothing they were made from changed. What they were made
//! from is not a rule written beside the decoder: every read of RAM goes through
//! [`crate::memory::Memory`] (or a lookup of the allocation covering an address),
//! and with a [`ReadLog`] attached each read is written down for the consumer it
//! is made for:
//! - an allocation (its block row, edges, strings and names are being made);
//! - [`GLOBAL`]: a read shared by every row (the qstr pools, the VM's words). A
//!   change there takes a whole decode. Reads made outside any scope count as
//!   global, so a read a stage forgets to scope costs speed, never correctness;
//! - [`UNTRACKED`]: stages that run whole for every snapshot and whose results
//!   are compared with the snapshot before's (the allocation table walk, the
//!   finaliser and collect bits, the roles objects give one another, the roots).
//!
//! [`ReadLog::finish`] turns the reads into [`Reads`]: per allocation the blocks
//! it depends on (an allocation by its first block, or a free block), the global
//! pool blocks, and the RAM outside the pools read globally.

use std::cell::{Cell, RefCell};

use crate::decode::{Allocation, HeapGeometry};

/// The consumer of reads whose change takes a whole decode.
pub const GLOBAL: u32 = u32::MAX;
/// The consumer of reads made by stages that run whole for every snapshot.
pub const UNTRACKED: u32 = u32::MAX - 1;

/// Reads kept per decode at most: past it the decode is not one a run decoder
/// may start from (see [`Reads::complete`]).
const MAX_READS: usize = 1 << 22;

/// Blocks [`ReadLog::finish`] visits at most (reads of long stretches of free
/// blocks, on a hostile snapshot): past it, as past [`MAX_READS`].
const MAX_FINISH_STEPS: u64 = 1 << 26;

#[derive(Clone, Copy, Debug)]
struct Read {
    consumer: u32,
    address: u64,
    len: u64,
}

/// The room a log's reads are written in, kept from one decode to the next
/// (a busy heap's snapshot makes thousands).
#[derive(Debug, Default)]
pub struct ReadRoom(Vec<Read>);

/// The reads of one decode, as they are made.
#[derive(Debug)]
pub struct ReadLog {
    reads: RefCell<Vec<Read>>,
    consumer: Cell<u32>,
    overflowed: Cell<bool>,
    /// A test's way to show a dropped read is caught: reads made for this
    /// purpose are not written down.
    drop_site: Option<&'static str>,
}

/// Where reads go: a log, and the consumer they are pinned to (else the log's
/// current one).
#[derive(Clone, Copy, Debug)]
pub struct Tracker<'a> {
    pub log: &'a ReadLog,
    pub pinned: Option<u32>,
}

impl Tracker<'_> {
    /// Writes down a read of `len` bytes at `address`, made for `what`.
    #[inline]
    pub fn record(&self, address: u64, len: u64, what: &'static str) {
        let log = self.log;
        let consumer = self.pinned.unwrap_or_else(|| log.consumer.get());
        if consumer == UNTRACKED || log.drop_site == Some(what) {
            return;
        }
        let mut reads = log.reads.borrow_mut();
        if reads.len() >= MAX_READS {
            log.overflowed.set(true);
            return;
        }
        reads.push(Read { consumer, address, len });
    }
}

/// Restores the log's consumer when dropped.
pub struct Scope<'a> {
    log: &'a ReadLog,
    before: u32,
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        self.log.consumer.set(self.before);
    }
}

impl ReadLog {
    /// A log writing its reads in `room` (emptied first).
    pub fn new(drop_site: Option<&'static str>, room: ReadRoom) -> Self {
        let mut reads = room.0;
        reads.clear();
        ReadLog {
            reads: RefCell::new(reads),
            consumer: Cell::new(GLOBAL),
            overflowed: Cell::new(false),
            drop_site,
        }
    }

    /// Reads until the scope ends are made for `consumer` (an allocation's
    /// index, [`GLOBAL`] or [`UNTRACKED`]).
    pub fn scope(&self, consumer: u32) -> Scope<'_> {
        let before = self.consumer.replace(consumer);
        Scope { log: self, before }
    }

    /// The reads, by consumer and block, for the heap `g` whose allocations are
    /// `allocs` and whose blocks' allocations are `owner`; the log's room goes
    /// back to `room`.
    pub fn finish(self, (g, allocs, owner): (&HeapGeometry, &[Allocation], &[u32]), ram: (u64, u64), room: &mut ReadRoom) -> Reads {
        let mut deps: Vec<u64> = Vec::new();
        let mut global_blocks = Vec::new();
        let mut outside = Vec::new();
        let mut complete = !self.overflowed.get();
        let mut steps = 0u64;
        let reads = self.reads.into_inner();
        for r in &reads {
            let Some(end) = r.address.checked_add(r.len.max(1)) else { continue };
            if r.address >= ram.1 || end <= ram.0 {
                continue; // flash: the same for every snapshot
            }
            let mut a = r.address.max(ram.0);
            let end = end.min(ram.1);
            while a < end {
                steps += 1;
                if steps > MAX_FINISH_STEPS {
                    complete = false;
                    break;
                }
                let Some(b) = g.block_of(a) else {
                    // RAM outside the pools: up to the next pool, or the read's end.
                    let next = g.areas().map(|p| p.pool_start).filter(|&s| s > a).min().unwrap_or(end).min(end);
                    outside.push((a, next));
                    a = next;
                    continue;
                };
                let (dep, past) = match owner.get(b as usize).filter(|&&i| i != u32::MAX) {
                    Some(&i) => {
                        let al = allocs[i as usize];
                        (al.start_block, g.block_address(al.start_block + al.blocks))
                    }
                    None => (b, g.block_address(b + 1)),
                };
                let Ok(dep) = u32::try_from(dep) else { break };
                if r.consumer == GLOBAL {
                    global_blocks.push(dep);
                } else if allocs.get(r.consumer as usize).is_none_or(|c| c.start_block != dep as u64)
                    && deps.last() != Some(&pack(r.consumer, dep))
                {
                    // (A row's reads come together, and often read one
                    // allocation word after word: those repeats go at once.)
                    deps.push(pack(r.consumer, dep));
                }
                if past <= a {
                    break;
                }
                a = past;
            }
        }
        // (Packed, the pairs sort as plain integers, in the pairs' order.)
        deps.sort_unstable();
        deps.dedup();
        let deps = deps.into_iter().map(|d| ((d >> 32) as u32, d as u32)).collect();
        global_blocks.sort_unstable();
        global_blocks.dedup();
        room.0 = reads;
        Reads { deps, global_blocks, outside: merge_ranges(outside), complete }
    }
}

/// A (consumer, block) pair as one integer ordered as the pair is.
fn pack(consumer: u32, block: u32) -> u64 {
    (consumer as u64) << 32 | block as u64
}

/// Address ranges sorted and merged where they touch or overlap.
fn merge_ranges(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// What a decode read, by consumer (see the module doc).
#[derive(Clone, Debug, Default)]
pub struct Reads {
    /// (allocation index, block it read), sorted: a block is an allocation's
    /// first block, or a free block. An allocation's reads of itself are left out.
    pub deps: Vec<(u32, u32)>,
    /// Pool blocks read for everything, sorted, in the same terms.
    pub global_blocks: Vec<u32>,
    /// RAM outside the pools read for everything, as merged address ranges.
    pub outside: Vec<(u64, u64)>,
    /// Every read was written down.
    pub complete: bool,
}

impl Reads {
    /// Adds the global reads of a decode before this one (still unchanged).
    pub fn carry_global(&mut self, blocks: Vec<u32>, outside: Vec<(u64, u64)>) {
        // Both sorted, and this decode's mostly among those carried: a merge.
        let mine = std::mem::take(&mut self.global_blocks);
        let mut merged = Vec::with_capacity(blocks.len() + mine.len());
        let (mut a, mut b) = (blocks.into_iter().peekable(), mine.into_iter().peekable());
        while let Some(x) = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if y < x => b.next(),
            (Some(_), _) => a.next(),
            (None, _) => b.next(),
        } {
            if merged.last() != Some(&x) {
                merged.push(x);
            }
        }
        self.global_blocks = merged;
        if !self.outside.iter().all(|r| outside.contains(r)) {
            self.outside.extend(outside);
            self.outside = merge_ranges(std::mem::take(&mut self.outside));
        } else {
            self.outside = outside;
        }
    }

    /// The blocks allocation `i` read (sorted).
    pub fn of(&self, i: usize) -> impl Iterator<Item = u32> + '_ {
        let i = i as u32;
        let from = self.deps.partition_point(|&(c, _)| c < i);
        self.deps[from..].iter().take_while(move |&&(c, _)| c == i).map(|&(_, b)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> HeapGeometry {
        use crate::decode::HeapArea;
        let area = HeapArea {
            alloc_table_start: 0x1000,
            alloc_table_bytes: 4,
            finaliser_table_start: None,
            finaliser_table_bytes: 0,
            collect_table_start: None,
            pool_start: 0x1010,
            pool_end: 0x1110,
            first_block: 0,
        };
        HeapGeometry::from_area(&area, 16)
    }

    #[test]
    fn reads_become_blocks_by_allocation() {
        let g = geometry();
        // Allocation 0 at blocks 0..3, allocation 1 at block 5; the rest free.
        let allocs = [
            Allocation { start_block: 0, blocks: 3, marked: false },
            Allocation { start_block: 5, blocks: 1, marked: false },
        ];
        let mut owner = vec![u32::MAX; 16];
        owner[..3].fill(0);
        owner[5] = 1;
        let log = ReadLog::new(Some("dropped"), ReadRoom::default());
        let t = Tracker { log: &log, pinned: None };
        {
            let _s = log.scope(1);
            t.record(0x1010 + 20, 4, "a word in the middle of allocation 0");
            t.record(0x1010 + 16 * 5, 16, "its own bytes");
            t.record(0x1010 + 16 * 7, 20, "two free blocks");
            t.record(0x1010 + 16 * 9, 4, "dropped");
        }
        {
            let _s = log.scope(UNTRACKED);
            t.record(0x1010, 4, "untracked");
        }
        t.record(0x1004, 8, "outside the pool, global");
        t.record(0x1000, 4, "outside the pool, global");
        Tracker { log: &log, pinned: Some(GLOBAL) }.record(0x1010 + 16 * 4, 1, "a free block, global");
        t.record(0x8000_0000, 4, "flash");
        let reads = log.finish((&g, &allocs, &owner), (0x1000, 0x2000), &mut ReadRoom::default());
        assert_eq!(reads.deps, vec![(1, 0), (1, 7), (1, 8)]);
        assert_eq!(reads.of(1).collect::<Vec<_>>(), vec![0, 7, 8]);
        assert_eq!(reads.of(0).count(), 0);
        assert_eq!(reads.global_blocks, vec![4]);
        assert_eq!(reads.outside, vec![(0x1000, 0x100c)]);
        assert!(reads.complete);
    }
}

#[cfg(test)]
mod carry_tests {
    use super::*;

    #[test]
    fn carried_global_reads_merge_with_this_decodes() {
        let mut r = Reads { global_blocks: vec![2, 5, 9], outside: vec![(10, 20)], ..Reads::default() };
        r.carry_global(vec![1, 2, 7, 9, 12], vec![(0, 4), (10, 20)]);
        assert_eq!(r.global_blocks, vec![1, 2, 5, 7, 9, 12]);
        assert_eq!(r.outside, vec![(0, 4), (10, 20)]);
        let mut r = Reads { outside: vec![(3, 8)], ..Reads::default() };
        r.carry_global(vec![], vec![(0, 4)]);
        assert_eq!(r.outside, vec![(0, 8)]);
    }
}
