//! Roots: words of RAM outside the heap that hold the address of an allocation.
//!
//! Every word-aligned word of RAM outside the heap areas (the VM state, C
//! globals, the stack) that holds the address of a block where an allocation
//! starts is a root edge. The pointer sieve first keeps the candidates, words
//! holding a block-aligned address in the pools; the allocation table then says
//! which are heads.
//!
//! A whole decode sieves all of that RAM. A run decoder ([`crate::incremental`])
//! hands over the snapshot before and its candidates: a stretch of RAM whose
//! bytes did not change holds the same candidates, so only the stretches that
//! changed are sieved again. (Whether a candidate is a head is asked again for
//! every candidate: it depends on this snapshot's allocation table.)

use crate::decode::scan;
use crate::decode::{Decoder, EdgeRow, HeapGeometry};
use crate::memory::{each_differing, Memory, Region};

/// A word of RAM outside the heap holding a block-aligned address in the pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootWord {
    pub address: u64,
    pub value: u64,
    /// An allocation starts at `value`: the word is a root edge.
    pub head: bool,
}

/// The snapshot before, as a root scan can start from it.
pub struct RootsBefore<'a> {
    pub ram: &'a [u8],
    pub geometry: &'a HeapGeometry,
    /// Its candidates, in address order.
    pub words: &'a [RootWord],
}

/// How a decode reports the roots.
pub enum Roots<'a> {
    /// As edge rows in the report's edges (a whole decode).
    Rows,
    /// As [`RootWord`]s in the decode's facts, without rows. With the snapshot
    /// before (same heap geometry), stretches of RAM that did not change since
    /// take their candidates from it.
    Words(Option<RootsBefore<'a>>),
}

/// Bytes compared at a time with the snapshot before: stack frames change in
/// small pieces, and a stretch found changed is sieved whole.
const STRETCH: usize = 64;

impl Decoder<'_> {
    /// The word-aligned RAM ranges outside the heap areas, in address order.
    pub(super) fn root_ranges(&self, g: &HeapGeometry, ram_end: u64) -> Vec<(u64, u64)> {
        let word = self.profile.heap.word_bytes as u64;
        let first = self.firmware.ram_start.div_ceil(word) * word;
        // (gc_init and the GC state both start the heap at its allocation table.)
        let mut heap_ranges: Vec<(u64, u64)> = g.areas().map(|a| (a.alloc_table_start, a.pool_end)).collect();
        heap_ranges.sort_unstable();
        let mut outside = Vec::with_capacity(heap_ranges.len() + 1);
        let mut lo = first;
        for (start, end) in heap_ranges {
            outside.push((lo, start.max(lo)));
            lo = lo.max(end.div_ceil(word) * word);
        }
        outside.push((lo, ram_end));
        outside
    }

    /// Calls `emit` with the candidate root words of `mem`'s RAM, in address
    /// order, each with `head(value)`; from `before` where its stretches of RAM
    /// are unchanged.
    pub(super) fn root_words(
        &self,
        mem: &Memory,
        g: &HeapGeometry,
        before: Option<&RootsBefore>,
        head: impl Fn(u64) -> bool,
        mut emit: impl FnMut(RootWord),
    ) {
        let word = self.profile.heap.word_bytes as u64;
        let bpb = g.bytes_per_block;
        let pools = g.areas().fold((u64::MAX, 0), |(lo, hi), a| (lo.min(a.pool_start), hi.max(a.pool_end)));
        let before = before.filter(|b| b.geometry == g && b.ram.len() == mem.ram.bytes.len());
        let old_ram = before.map(|b| Region::new(self.firmware.ram_start, b.ram));
        let mut old_words = before.map_or(&[][..], |b| b.words).iter().peekable();
        // Only block-aligned addresses in the pools: most RAM words are not.
        let sieve = |bytes: &[u8], at: u64, emit: &mut dyn FnMut(RootWord)| {
            scan::candidates(bytes, word as usize, bpb, pools.0..pools.1, |k, value| {
                emit(RootWord { address: at + k as u64 * word, value, head: head(value) });
            });
        };
        for (lo, hi) in self.root_ranges(g, mem.ram.end()) {
            let len = hi.saturating_sub(lo) / word * word;
            let Some(bytes) = mem.ram.slice(lo, len) else { continue };
            let Some(old) = old_ram.as_ref().and_then(|r| r.slice(lo, len)) else {
                sieve(bytes, lo, &mut emit);
                continue;
            };
            // Stretches in order: a changed run of them is sieved at once, the
            // unchanged bytes between take the candidates they had (re-asking
            // `head`).
            let mut unchanged = |from: usize, to: usize, emit: &mut dyn FnMut(RootWord)| {
                let (from, to) = (lo + from as u64, lo + to as u64);
                while old_words.next_if(|w| w.address < from).is_some() {}
                while let Some(w) = old_words.next_if(|w| w.address < to) {
                    emit(RootWord { head: head(w.value), ..*w });
                }
            };
            let mut changed: Vec<(usize, usize)> = Vec::new();
            each_differing(bytes, old, STRETCH, |from, len| match changed.last_mut() {
                Some((_, to)) if *to == from => *to = from + len,
                _ => changed.push((from, from + len)),
            });
            let mut done = 0;
            for (a, b) in changed {
                unchanged(done, a, &mut emit);
                sieve(&bytes[a..b], lo + a as u64, &mut emit);
                done = b;
            }
            unchanged(done, bytes.len(), &mut emit);
        }
    }

    /// The edge row of a root: the word at `address` holds `to`, where an
    /// allocation starts.
    pub fn root_edge(&self, address: u64, to: u64, g: &HeapGeometry) -> EdgeRow {
        EdgeRow {
            from_address: None,
            from_block: None,
            from_word: None,
            root_address: Some(address),
            root_name: Some(self.root_name(address)),
            to_address: to,
            to_alloc_address: Some(to),
            to_block: g.block_of(to),
            map_key: None,
        }
    }
}
