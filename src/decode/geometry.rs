//! Heap geometry: where the allocation table, the finaliser table and the pool sit.
//!
//! Computed the way the firmware's `gc_init(start, end)` does (py/gc.c): the end is
//! rounded down to a block boundary first, then the table lengths follow from the
//! remaining size. The reference used the unaligned size (see README, "Differences").
//!
//! A split heap (`MICROPY_GC_SPLIT_HEAP`: current CircuitPython, some MicroPython
//! ports) has further areas, each with its own tables and pool, chained through
//! `mem.area.next`. Their blocks are numbered after the first area's, in chain
//! order, so one block number names one block of the whole heap.

use std::ops::Range;

use crate::error::DecodeError;
use crate::memory::Region;
use crate::profile::{GcStateOffsets, HeapLayout};

/// The heap: its first area, and any further areas of a split heap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeapGeometry {
    /// Where the heap starts (its first allocation table) and its length up to the
    /// first pool's end.
    pub heap_start: u64,
    pub heap_bytes: u64,
    /// The first area, numbered from block 0.
    pub first: HeapArea,
    pub bytes_per_block: u64,
    /// The areas after the first (`mem.area.next`, …), in chain order.
    pub more_areas: Vec<HeapArea>,
}

/// Which of an area's tables a [`TableSpan`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Allocation,
    Finaliser,
    Collect,
}

/// One of an area's tables: `bytes` bytes at `address`, describing
/// `blocks_per_byte` blocks a byte from the area's `first_block`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableSpan {
    pub table: Table,
    pub address: u64,
    pub bytes: u64,
    pub first_block: u64,
    pub blocks_per_byte: u64,
}

/// One area of the heap: its tables and its pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapArea {
    pub alloc_table_start: u64,
    pub alloc_table_bytes: u64,
    pub finaliser_table_start: Option<u64>,
    pub finaliser_table_bytes: u64,
    /// CircuitPython's collect table (CTB), 8 blocks per byte, when the build has one.
    pub collect_table_start: Option<u64>,
    pub pool_start: u64,
    pub pool_end: u64,
    /// Number of the area's first block in the whole heap.
    pub first_block: u64,
}

impl HeapGeometry {
    /// What `gc_init(heap_start, heap_start + heap_bytes)` sets up.
    pub fn from_gc_init(heap_start: u64, heap_bytes: u64, layout: &HeapLayout) -> Result<Self, DecodeError> {
        let bpb = layout.bytes_per_block as u64;
        let per_atb = layout.blocks_per_atb as u64;
        let end = heap_start.saturating_add(heap_bytes) & !(bpb - 1);
        let gap = layout.alloc_table_gap_bytes as u64;
        let total = end.saturating_sub(heap_start).saturating_sub(gap);
        let (per_ftb, per_wtb, per_ctb) =
            (layout.blocks_per_ftb as u64, layout.blocks_per_wtb as u64, layout.blocks_per_ctb as u64);
        // T = A * (1 + ATB/FTB + ATB/WTB + ATB/CTB + ATB * block), in bits, as
        // gc_setup_area (CircuitPython's sums bits per block: the same for 4 and 8).
        let atb = if per_ftb > 0 || per_wtb > 0 || per_ctb > 0 {
            let tables = (8 * per_atb).checked_div(per_ftb).unwrap_or(0)
                + (8 * per_atb).checked_div(per_wtb).unwrap_or(0)
                + (8 * per_atb).checked_div(per_ctb).unwrap_or(0);
            total * 8 / (8 + tables + 8 * per_atb * bpb)
        } else {
            total / (1 + 8 / 2 * bpb)
        };
        let ftb = if per_ftb > 0 { (atb * per_atb).div_ceil(per_ftb) } else { 0 };
        if atb == 0 {
            return Err(DecodeError::HeapTooSmall { bytes: heap_bytes });
        }
        let pool_bytes = atb * per_atb * bpb;
        // After the allocation table and its gap: finaliser, weakref, collect tables.
        let wtb = (atb * per_atb).checked_div(per_wtb).map_or(0, |_| (atb * per_atb).div_ceil(per_wtb));
        Ok(HeapGeometry {
            heap_start,
            heap_bytes,
            first: HeapArea {
                alloc_table_start: heap_start,
                alloc_table_bytes: atb,
                finaliser_table_start: (per_ftb > 0).then_some(heap_start + atb + gap),
                finaliser_table_bytes: ftb,
                collect_table_start: (per_ctb > 0).then_some(heap_start + atb + gap + ftb + wtb),
                pool_start: end - pool_bytes,
                pool_end: end,
                first_block: 0,
            },
            bytes_per_block: bpb,
            more_areas: Vec::new(),
        })
    }

    /// A heap whose first area is `area` (numbered from block 0), without more.
    pub fn from_area(area: &HeapArea, bytes_per_block: u64) -> Self {
        HeapGeometry {
            heap_start: area.alloc_table_start,
            heap_bytes: area.pool_end - area.alloc_table_start,
            first: HeapArea { first_block: 0, ..*area },
            bytes_per_block,
            more_areas: Vec::new(),
        }
    }

    /// Every area's tables, each area's allocation table first, then its
    /// finaliser and collect tables when the build has them (`per_ftb` and
    /// `per_ctb`: the profile's blocks a byte, 0 for none).
    pub fn table_spans(&self, per_ftb: u32, per_ctb: u32) -> Vec<TableSpan> {
        let mut spans = Vec::with_capacity(3 * (1 + self.more_areas.len()));
        for a in self.areas() {
            let span = |table, address, bytes, per_byte: u32| TableSpan {
                table,
                address,
                bytes,
                first_block: a.first_block,
                blocks_per_byte: u64::from(per_byte.clamp(1, 8)),
            };
            spans.push(span(Table::Allocation, a.alloc_table_start, a.alloc_table_bytes, 4));
            if let Some(start) = a.finaliser_table_start {
                spans.push(span(Table::Finaliser, start, a.finaliser_table_bytes, per_ftb));
            }
            if let Some(start) = a.collect_table_start {
                let bytes = a.blocks(self.bytes_per_block).div_ceil(u64::from(per_ctb.clamp(1, 8)));
                spans.push(span(Table::Collect, start, bytes, per_ctb));
            }
        }
        spans
    }

    /// Every area, the first one first.
    pub fn areas(&self) -> impl Iterator<Item = HeapArea> + '_ {
        std::iter::once(self.first).chain(self.more_areas.iter().copied())
    }

    /// Blocks in every pool.
    pub fn pool_blocks(&self) -> u64 {
        self.areas().map(|a| a.blocks(self.bytes_per_block)).sum()
    }

    /// Bytes in every pool (gc_info's `total`).
    pub fn pool_bytes(&self) -> u64 {
        self.areas().map(|a| a.pool_end - a.pool_start).sum()
    }

    /// Address of block `block` of the whole heap.
    #[inline]
    pub fn block_address(&self, block: u64) -> u64 {
        if self.more_areas.is_empty() {
            return self.first.pool_start + block * self.bytes_per_block;
        }
        self.address_in_more_areas(block)
    }

    #[cold]
    fn address_in_more_areas(&self, block: u64) -> u64 {
        let area = self.more_areas.iter().rev().find(|a| a.first_block <= block);
        match area {
            Some(a) => a.pool_start + (block - a.first_block) * self.bytes_per_block,
            None => self.first.pool_start + block * self.bytes_per_block,
        }
    }

    /// The block (of the whole heap) holding `address`, if it lies in a pool.
    #[inline]
    pub fn block_of(&self, address: u64) -> Option<u64> {
        if address >= self.first.pool_start && address < self.first.pool_end {
            return Some((address - self.first.pool_start) / self.bytes_per_block);
        }
        if self.more_areas.is_empty() {
            return None;
        }
        self.block_in_more_areas(address)
    }

    #[cold]
    fn block_in_more_areas(&self, address: u64) -> Option<u64> {
        let a = self.more_areas.iter().find(|a| address >= a.pool_start && address < a.pool_end)?;
        Some(a.first_block + (address - a.pool_start) / self.bytes_per_block)
    }
}

impl HeapArea {
    pub fn blocks(&self, bytes_per_block: u64) -> u64 {
        (self.pool_end - self.pool_start) / bytes_per_block
    }
}

/// The words of one GC area's state (`mp_state_ctx.mem` or a further
/// `mp_state_mem_area_t`) that give its geometry, as read from a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AreaState {
    pub alloc_table_start: u64,
    pub alloc_table_byte_len: u64,
    pub finaliser_table_start: Option<u64>,
    pub collect_table_start: Option<u64>,
    pub pool_start: u64,
    pub pool_end: u64,
}

impl AreaState {
    /// Reads the state whose offsets count from `base`; `None` if a word lies
    /// outside `ram`.
    pub fn read(ram: &Region, base: u64, gc: &GcStateOffsets, heap: &HeapLayout) -> Option<Self> {
        let at = |o: u64| ram.word(base.checked_add(o)?, heap.word_bytes);
        Some(AreaState {
            alloc_table_start: at(gc.alloc_table_start)?,
            alloc_table_byte_len: at(gc.alloc_table_byte_len)?,
            finaliser_table_start: if heap.blocks_per_ftb > 0 { Some(at(gc.finaliser_table_start)?) } else { None },
            collect_table_start: match (heap.blocks_per_ctb > 0, gc.collect_table_start) {
                (true, Some(o)) => Some(at(o)?),
                _ => None,
            },
            pool_start: at(gc.pool_start)?,
            pool_end: at(gc.pool_end)?,
        })
    }

    /// The area these words describe, if they add up as `gc_init` leaves them:
    /// tables and pool inside `ram`, the pool as long as the table describes,
    /// each table after the one before it.
    pub fn area(&self, ram: &Range<u64>, heap: &HeapLayout, first_block: u64) -> Option<HeapArea> {
        let (atb, atb_len, pool_start, pool_end) =
            (self.alloc_table_start, self.alloc_table_byte_len, self.pool_start, self.pool_end);
        let bpb = heap.bytes_per_block as u64;
        let blocks = atb_len.checked_mul(heap.blocks_per_atb as u64)?;
        let table_len = |per: u32| if per > 0 { blocks.div_ceil(per as u64) } else { 0 };
        let (ftb_len, wtb_len, ctb_len) =
            (table_len(heap.blocks_per_ftb), table_len(heap.blocks_per_wtb), table_len(heap.blocks_per_ctb));
        let after_atb = atb.checked_add(atb_len)?.checked_add(heap.alloc_table_gap_bytes as u64)?;
        let tables_end = after_atb.checked_add(ftb_len)?.checked_add(wtb_len)?.checked_add(ctb_len)?;
        let ok = atb_len > 0
            && atb >= ram.start
            && pool_start % bpb == 0
            && pool_end > pool_start
            && pool_end <= ram.end
            && blocks.checked_mul(bpb) == Some(pool_end - pool_start)
            && tables_end <= pool_start
            && self.finaliser_table_start.is_none_or(|f| f == after_atb)
            && self
                .collect_table_start
                .is_none_or(|c| c >= after_atb && c.checked_add(ctb_len).is_some_and(|e| e <= pool_start));
        ok.then_some(HeapArea {
            alloc_table_start: atb,
            alloc_table_bytes: atb_len,
            finaliser_table_start: self.finaliser_table_start,
            finaliser_table_bytes: ftb_len,
            collect_table_start: self.collect_table_start,
            pool_start,
            pool_end,
            first_block,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samd21_heap_matches_gc_init_by_hand() {
        // 20480-byte heap at 0x20000a40: 20480*8/524 = 312 ATB bytes, 1248 blocks,
        // FTB (1248+7)/8 = 156 bytes, pool 19968 bytes ending at the heap end.
        let g = HeapGeometry::from_gc_init(0x2000_0a40, 20480, &HeapLayout::default()).unwrap();
        assert_eq!(g.first.alloc_table_bytes, 312);
        assert_eq!(g.first.finaliser_table_bytes, 156);
        assert_eq!(g.first.finaliser_table_start, Some(0x2000_0a40 + 312));
        assert_eq!(g.pool_blocks(), 1248);
        assert_eq!(g.first.pool_end, 0x2000_0a40 + 20480);
        assert_eq!(g.first.pool_start, 0x2000_0a40 + 20480 - 19968);
    }

    #[test]
    fn unaligned_end_is_rounded_down_first() {
        // 131072 bytes at ...8: the firmware sees 131064 bytes, so 2000 ATB bytes
        // (the reference computes 2001 from the unaligned size).
        let g = HeapGeometry::from_gc_init(0x2000_1008, 131072, &HeapLayout::default()).unwrap();
        assert_eq!(g.first.pool_end, 0x2002_1000);
        assert_eq!(g.first.alloc_table_bytes, 2000);
        assert_eq!(g.first.pool_start, 0x2002_1000 - 2000 * 64);
    }

    #[test]
    fn current_micropython_leaves_a_gap_byte_after_the_allocation_table() {
        // gc_setup_area with ALLOC_TABLE_GAP_BYTE = 1 and finalisers, 8192 bytes:
        // (8192 - 1) * 8 / (8 + 4 + 512) = 125, FTB (500 + 7) / 8 = 63 bytes after
        // the gap, pool 8000 bytes at the end.
        let layout = HeapLayout { alloc_table_gap_bytes: 1, ..HeapLayout::default() };
        let g = HeapGeometry::from_gc_init(0x2000_0000, 8192, &layout).unwrap();
        assert_eq!(g.first.alloc_table_bytes, 125);
        assert_eq!(g.first.finaliser_table_start, Some(0x2000_0000 + 125 + 1));
        assert_eq!(g.first.finaliser_table_bytes, 63);
        assert_eq!(g.first.pool_start, 0x2000_2000 - 8000);
        // With weakrefs too: (8191) * 8 / (8 + 4 + 4 + 512) = 124.
        let layout = HeapLayout { alloc_table_gap_bytes: 1, blocks_per_wtb: 8, ..HeapLayout::default() };
        assert_eq!(HeapGeometry::from_gc_init(0x2000_0000, 8192, &layout).unwrap().first.alloc_table_bytes, 124);
    }

    #[test]
    fn circuitpython_10_puts_the_collect_table_after_the_finaliser_table() {
        // gc_setup_area with finalisers and selective collect, 8192 bytes:
        // 132 bits a block, (8192 - 1) * 8 / 132 = 496 blocks, 124 ATB bytes; FTB and
        // CTB 62 bytes each after the gap, pool 7936 bytes at the end.
        let layout = HeapLayout { alloc_table_gap_bytes: 1, blocks_per_ctb: 8, ..HeapLayout::default() };
        let g = HeapGeometry::from_gc_init(0x2000_0000, 8192, &layout).unwrap();
        assert_eq!((g.first.alloc_table_bytes, g.first.finaliser_table_bytes), (124, 62));
        assert_eq!(g.first.finaliser_table_start, Some(0x2000_0000 + 125));
        assert_eq!(g.first.collect_table_start, Some(0x2000_0000 + 125 + 62));
        assert_eq!(g.first.pool_start, 0x2000_2000 - 7936);
    }

    #[test]
    fn blocks_are_numbered_across_areas() {
        let layout = HeapLayout::default();
        let mut g = HeapGeometry::from_gc_init(0x2000_0000, 4096, &layout).unwrap();
        let second = HeapGeometry::from_gc_init(0x2000_4000, 2048, &layout).unwrap();
        let first_blocks = g.pool_blocks();
        g.more_areas.push(HeapArea { first_block: first_blocks, ..second.first });
        assert_eq!(g.pool_blocks(), first_blocks + second.pool_blocks());
        assert_eq!(g.pool_bytes(), (first_blocks + second.pool_blocks()) * 16);
        assert_eq!(g.block_address(first_blocks), second.first.pool_start);
        assert_eq!(g.block_of(second.first.pool_start + 40), Some(first_blocks + 2));
        assert_eq!(g.block_of(g.first.pool_start + 16), Some(1));
        assert_eq!(g.block_of(second.first.alloc_table_start), None);
        assert_eq!(g.block_of(0x2000_2000), None);
    }

    #[test]
    fn tiny_heaps_are_an_error_not_a_panic() {
        assert!(HeapGeometry::from_gc_init(0x2000_0000, 10, &HeapLayout::default()).is_err());
        assert!(HeapGeometry::from_gc_init(u64::MAX - 4, 100, &HeapLayout::default()).is_err());
    }
}
