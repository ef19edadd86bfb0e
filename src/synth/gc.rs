//! A simulation of CircuitPython 3.0's garbage collector (py/gc.c at 619b0ec164)
//! over a RAM image: `gc_alloc` (first fit from the bottom for short-lived objects,
//! from the top for long-lived ones, with the crossover that triggers early
//! collections), `gc_free`, `gc_realloc`, and `gc_collect` (conservative mark from
//! the root section of `mp_state_ctx` and the stack, then the sweep).
//!
//! Snapshots are logged exactly where the firmware calls `gc_log_change` (the
//! breakpoint gdb's `append binary memory` hangs off): in `gc_alloc` before the
//! table is updated, in `gc_free` before the blocks are freed, and in the sweep
//! after each head is freed but before its tails are — so dumps show what real ones
//! show, including MARK states and orphan tails mid-sweep.
//!
//! Alongside the RAM image the simulator keeps its own registry of live objects,
//! updated by the operations rather than read back from the table, which tests use
//! as an independent expectation.
//!
//! A split heap (CircuitPython 9/10) is simulated with blocks numbered across its
//! areas, as the decoder numbers them: the search runs through every area in chain
//! order and never lets an allocation cross from one area into the next; each area
//! has its own tables (and, in CircuitPython, a collect table whose bit is set for
//! every allocation).

use std::collections::BTreeMap;

use crate::decode::{Category, HeapGeometry};

const AT_FREE: u8 = 0;
const AT_HEAD: u8 = 1;
const AT_TAIL: u8 = 2;
const AT_MARK: u8 = 3;

/// One live allocation as the simulator knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TruthBlock {
    pub address: u64,
    pub blocks: u64,
    pub kind: Category,
    pub marked: bool,
    pub has_finaliser: bool,
}

/// Receives every logged snapshot.
pub trait SnapshotSink {
    fn snapshot(&mut self, ram: &[u8], live: &BTreeMap<u64, TruthBlock>);
    /// True once the sink wants no more snapshots.
    fn full(&self) -> bool;
}

pub struct GcSim<'s> {
    pub ram: Vec<u8>,
    pub ram_start: u64,
    pub g: HeapGeometry,
    /// Bytes in a word of the target (4, or 8 on a 64-bit port).
    pub word_bytes: u64,
    first_free_atb: u64,
    last_free_atb: u64,
    lowest_long_lived: u64,
    pub auto_collect: bool,
    /// Root ranges scanned by a collection: (start, end) addresses.
    pub roots: Vec<(u64, u64)>,
    pub live: BTreeMap<u64, TruthBlock>,
    pub sink: &'s mut dyn SnapshotSink,
    pub collections: u64,
    /// A snapshot at every `every`-th heap change, after the first `start_after`.
    pub every: u64,
    pub start_after: u64,
    changes: u64,
    /// Per snapshot taken, its stack pointer and event, when kept.
    pub events: Option<Vec<SimEvent>>,
    /// Take a snapshot when a collection has marked and not yet swept (a
    /// breakpoint at `gc_collect_end`): its MARK bits are what the GC reached.
    pub log_marks: bool,
}

/// What a sidecar line says of a snapshot the simulator took.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimEvent {
    pub sp: Option<u64>,
    pub event: &'static str,
    /// The simulated host time: a heap change every [`SECONDS_PER_CHANGE`].
    pub time: f64,
    /// What an allocation (or a failing one) asked for.
    pub requested_bytes: Option<u64>,
}

/// Host seconds between two heap changes of the simulated board.
pub const SECONDS_PER_CHANGE: f64 = 0.002;

impl<'s> GcSim<'s> {
    pub fn new(
        ram: Vec<u8>,
        ram_start: u64,
        g: HeapGeometry,
        word_bytes: u64,
        weakref_table: bool,
        sink: &'s mut dyn SnapshotSink,
    ) -> Self {
        let mut sim = GcSim {
            ram,
            ram_start,
            g: g.clone(),
            word_bytes,
            first_free_atb: 0,
            last_free_atb: g.pool_blocks() / 4 - 1,
            lowest_long_lived: g.pool_blocks(),
            auto_collect: true,
            roots: Vec::new(),
            live: BTreeMap::new(),
            sink,
            collections: 0,
            every: 1,
            start_after: 0,
            changes: 0,
            events: None,
            log_marks: false,
        };
        // gc_init (and gc_add) clear every area's tables: allocation table, gap
        // byte, finaliser, weakref and collect tables, up to the pool's start at most.
        for a in g.areas() {
            let at = (a.alloc_table_start - ram_start) as usize;
            let wtb = if weakref_table { (a.alloc_table_bytes * 4).div_ceil(8) } else { 0 };
            let ctb = if a.collect_table_start.is_some() { (a.alloc_table_bytes * 4).div_ceil(8) } else { 0 };
            let tables_end = match a.finaliser_table_start {
                Some(f) => f + a.finaliser_table_bytes + wtb + ctb,
                None => a.alloc_table_start + a.alloc_table_bytes + wtb + ctb,
            };
            sim.ram[at..(tables_end.min(a.pool_start) - ram_start) as usize].fill(0);
        }
        sim
    }

    /// The area holding block `block` (of the whole heap).
    fn area_of(&self, block: u64) -> crate::decode::HeapArea {
        self.g.areas().filter(|a| a.first_block <= block).last().unwrap_or(self.g.first)
    }

    fn off(&self, address: u64) -> usize {
        (address - self.ram_start) as usize
    }

    pub fn word(&self, address: u64) -> u64 {
        let o = self.off(address);
        crate::memory::le_word(&self.ram[o..o + self.word_bytes as usize])
    }

    pub fn set_word(&mut self, address: u64, value: u64) {
        let (o, n) = (self.off(address), self.word_bytes as usize);
        self.ram[o..o + n].copy_from_slice(&value.to_le_bytes()[..n]);
    }

    pub fn set_bytes(&mut self, address: u64, bytes: &[u8]) {
        let o = self.off(address);
        self.ram[o..o + bytes.len()].copy_from_slice(bytes);
    }

    /// A heap change: a snapshot, when the cadence takes one, as gdb breaking
    /// at the entry of the firmware's function (`event`) would take it.
    fn log(&mut self, event: &'static str) {
        self.log_asking(event, None);
    }

    /// [`Self::log`], for an event that asked for `requested` bytes.
    fn log_asking(&mut self, event: &'static str, requested_bytes: Option<u64>) {
        self.changes += 1;
        let Some(n) = self.changes.checked_sub(self.start_after + 1) else { return };
        // A capture script takes every MemoryError, whatever its cadence.
        if n % self.every.max(1) != 0 && event != "memory_error" {
            return;
        }
        if !self.sink.full() {
            self.sink.snapshot(&self.ram, &self.live);
            if let Some(events) = &mut self.events {
                // The stack is the second root range, from the stack pointer up.
                let (sp, time) = (self.roots.get(1).map(|r| r.0), self.changes as f64 * SECONDS_PER_CHANGE);
                events.push(SimEvent { sp, event, time, requested_bytes });
            }
        }
    }

    pub fn done(&self) -> bool {
        self.sink.full()
    }

    fn atb_index(&self, block: u64) -> usize {
        let a = self.area_of(block);
        self.off(a.alloc_table_start) + ((block - a.first_block) / 4) as usize
    }

    pub fn kind(&self, block: u64) -> u8 {
        if block >= self.g.pool_blocks() {
            return AT_FREE;
        }
        (self.ram[self.atb_index(block)] >> (2 * (block % 4))) & 3
    }

    fn set_kind(&mut self, block: u64, kind: u8) {
        let i = self.atb_index(block);
        let shift = 2 * (block % 4);
        self.ram[i] = (self.ram[i] & !(3 << shift)) | (kind << shift);
    }

    fn set_ftb(&mut self, block: u64, on: bool) {
        let a = self.area_of(block);
        if let Some(start) = a.finaliser_table_start {
            self.set_bit(start, block - a.first_block, on);
        }
    }

    /// CircuitPython's collect table: set for every allocation (it may hold pointers).
    fn set_ctb(&mut self, block: u64, on: bool) {
        let a = self.area_of(block);
        if let Some(start) = a.collect_table_start {
            self.set_bit(start, block - a.first_block, on);
        }
    }

    fn set_bit(&mut self, table: u64, local_block: u64, on: bool) {
        let i = self.off(table) + (local_block / 8) as usize;
        let bit = 1u8 << (local_block % 8);
        if on {
            self.ram[i] |= bit;
        } else {
            self.ram[i] &= !bit;
        }
    }

    /// Whether blocks `a` and `b` lie in the same area.
    fn same_area(&self, a: u64, b: u64) -> bool {
        self.area_of(a).first_block == self.area_of(b).first_block
    }

    fn addr(&self, block: u64) -> u64 {
        self.g.block_address(block)
    }

    /// py/gc.c `gc_alloc`.
    pub fn alloc(&mut self, n_bytes: u64, has_finaliser: bool, long_lived: bool, kind: Category) -> Option<u64> {
        let bpb = self.g.bytes_per_block;
        let n_blocks = n_bytes.div_ceil(bpb);
        if n_blocks == 0 {
            return None;
        }
        let mut collected = !self.auto_collect;
        let crossover = self.lowest_long_lived;
        let (found, n_free) = loop {
            let mut keep_looking = true;
            let mut n_free = 0u64;
            let mut found = None;
            let atb_len = self.atb_bytes() as i64;
            let (mut i, dir): (i64, i64) =
                if long_lived { (self.last_free_atb as i64, -1) } else { (self.first_free_atb as i64, 1) };
            while keep_looking && i >= self.first_free_atb as i64 && i <= self.last_free_atb as i64 && i < atb_len {
                // A run of free blocks never continues into another area.
                let edge = if dir == 1 { i * 4 } else { i * 4 + 4 };
                if self.g.more_areas.iter().any(|a| a.first_block as i64 == edge) {
                    n_free = 0;
                }
                let a = self.ram[self.atb_index(i as u64 * 4)];
                let mut j: i64 = if dir == -1 { 3 } else { 0 };
                while keep_looking && (0..=3).contains(&j) {
                    if a & (3 << (j * 2)) == 0 {
                        n_free += 1;
                        if n_free >= n_blocks {
                            found = Some((i * 4 + j) as u64);
                            keep_looking = false;
                        }
                    } else {
                        if !collected {
                            let block = (i * 4 + j) as u64;
                            if (dir == 1 && block >= crossover) || (dir == -1 && block < crossover) {
                                keep_looking = false;
                            }
                        }
                        n_free = 0;
                    }
                    j += dir;
                }
                i += dir;
            }
            if let Some(f) = found {
                break (f, n_free);
            }
            if collected {
                // A capture with a sidecar also breaks where the build raises
                // MemoryError (`m_malloc_fail`).
                if self.events.is_some() {
                    self.log_asking("memory_error", Some(n_bytes));
                }
                return None;
            }
            self.collect();
            collected = true;
        };
        let (start, end) = if !long_lived {
            if n_blocks == 1 {
                self.first_free_atb = (found + 1) / 4;
            }
            (found + 1 - n_free, found)
        } else {
            if n_blocks == 1 {
                self.last_free_atb = found.saturating_sub(1) / 4;
            }
            (found, found + n_free - 1)
        };
        self.log_asking("alloc", Some(n_bytes));
        self.set_kind(start, AT_HEAD);
        for b in start + 1..=end {
            self.set_kind(b, AT_TAIL);
        }
        let ptr = self.addr(start);
        if long_lived && start < self.lowest_long_lived {
            self.lowest_long_lived = start;
        }
        let total = (end - start + 1) * bpb;
        let o = self.off(ptr);
        // Zero the bytes past the request (the request itself keeps stale data).
        self.ram[o + n_bytes as usize..o + total as usize].fill(0);
        if has_finaliser {
            self.set_word(ptr, 0);
            self.set_ftb(start, true);
        }
        self.set_ctb(start, true);
        self.live.insert(ptr, TruthBlock { address: ptr, blocks: end - start + 1, kind, marked: false, has_finaliser });
        Some(ptr)
    }

    /// Allocation-table bytes of every area (blocks / 4).
    fn atb_bytes(&self) -> u64 {
        self.g.pool_blocks() / 4
    }

    fn head_block(&self, ptr: u64) -> Option<u64> {
        let b = self.g.block_of(ptr)?;
        (ptr.is_multiple_of(self.g.bytes_per_block) && self.kind(b) == AT_HEAD).then_some(b)
    }

    /// py/gc.c `gc_free`.
    pub fn free(&mut self, ptr: u64) {
        let Some(mut block) = self.head_block(ptr) else {
            return;
        };
        self.set_ftb(block, false);
        self.first_free_atb = self.first_free_atb.min(block / 4);
        self.last_free_atb = self.last_free_atb.max(block / 4);
        self.log("free");
        loop {
            self.set_kind(block, AT_FREE);
            block += 1;
            if self.kind(block) != AT_TAIL {
                break;
            }
        }
        self.live.remove(&ptr);
    }

    pub fn blocks_of(&self, ptr: u64) -> u64 {
        self.live.get(&ptr).map_or(0, |t| t.blocks)
    }

    /// py/gc.c `gc_realloc` (grow in place when the next blocks are free, else move).
    pub fn realloc(&mut self, ptr: u64, n_bytes: u64) -> Option<u64> {
        let block = self.head_block(ptr)?;
        let bpb = self.g.bytes_per_block;
        let have = self.blocks_of(ptr);
        let want = n_bytes.div_ceil(bpb).max(1);
        if want == have {
            return Some(ptr);
        }
        if want < have {
            self.log("realloc");
            for b in block + want..block + have {
                self.set_kind(b, AT_FREE);
            }
            self.first_free_atb = self.first_free_atb.min((block + want) / 4);
            if let Some(t) = self.live.get_mut(&ptr) {
                t.blocks = want;
            }
            return Some(ptr);
        }
        let free_after = self.same_area(block, block + want - 1)
            && (block + have..block + want).all(|b| b < self.g.pool_blocks() && self.kind(b) == AT_FREE);
        if free_after {
            self.log("realloc");
            for b in block + have..block + want {
                self.set_kind(b, AT_TAIL);
            }
            let o = self.off(self.addr(block + have));
            self.ram[o..o + ((want - have) * bpb) as usize].fill(0);
            if let Some(t) = self.live.get_mut(&ptr) {
                t.blocks = want;
            }
            return Some(ptr);
        }
        let t = *self.live.get(&ptr)?;
        let long_lived = block >= self.lowest_long_lived;
        let new = self.alloc(n_bytes, t.has_finaliser, long_lived, t.kind)?;
        let (from, to) = (self.off(ptr), self.off(new));
        let n = (have * bpb) as usize;
        self.ram.copy_within(from..from + n, to);
        self.free(ptr);
        Some(new)
    }

    fn verify(&self, w: u64) -> Option<u64> {
        self.head_block(w)
    }

    /// py/gc.c `gc_collect`: mark from the roots, then sweep.
    pub fn collect(&mut self) {
        self.collections += 1;
        let mut stack: Vec<u64> = Vec::new();
        let roots = self.roots.clone();
        for (lo, hi) in roots {
            let mut a = lo;
            while a + self.word_bytes <= hi {
                let w = self.word(a);
                if let Some(b) = self.verify(w) {
                    self.set_kind(b, AT_MARK);
                    stack.push(b);
                }
                a += self.word_bytes;
            }
        }
        while let Some(b) = stack.pop() {
            if let Some(t) = self.live.get_mut(&self.g.block_address(b)) {
                t.marked = true;
            }
            let mut n = 1;
            while self.kind(b + n) == AT_TAIL {
                n += 1;
            }
            let start = self.addr(b);
            for k in 0..n * self.g.bytes_per_block / self.word_bytes {
                let w = self.word(start + k * self.word_bytes);
                if let Some(c) = self.verify(w) {
                    self.set_kind(c, AT_MARK);
                    stack.push(c);
                }
            }
        }
        if self.log_marks {
            self.log("collect_marked");
        }
        // Sweep, logging after each head is freed (its tails are freed as the loop
        // reaches them).
        let mut free_tail = false;
        for block in 0..self.g.pool_blocks() {
            match self.kind(block) {
                AT_HEAD => {
                    self.set_ftb(block, false);
                    free_tail = true;
                    self.set_kind(block, AT_FREE);
                    let ptr = self.addr(block);
                    self.live.remove(&ptr);
                    self.log("sweep");
                }
                AT_TAIL if free_tail => self.set_kind(block, AT_FREE),
                AT_MARK => {
                    self.set_kind(block, AT_HEAD);
                    free_tail = false;
                    let ptr = self.addr(block);
                    if let Some(t) = self.live.get_mut(&ptr) {
                        t.marked = false;
                    }
                }
                _ => {}
            }
        }
        self.first_free_atb = 0;
        self.last_free_atb = self.atb_bytes() - 1;
    }

    /// Sets an allocation's kind in the registry (an object's role can change, e.g. a
    /// table becoming a map table once a dict points at it).
    pub fn set_truth_kind(&mut self, ptr: u64, kind: Category) {
        if let Some(t) = self.live.get_mut(&ptr) {
            t.kind = kind;
        }
    }

    pub fn lowest_long_lived_block(&self) -> u64 {
        self.lowest_long_lived
    }
}
