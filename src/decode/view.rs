//! One snapshot as the decoding stages read it: which allocation covers each
//! block, the allocations' bytes and words read through the tracked memory
//! (see [`super::reads`]), and the finaliser and collect tables.

use super::*;

pub(super) const NO_ALLOC: u32 = u32::MAX;

/// Per-snapshot lookup from block number to the allocation covering it.
pub(super) struct Heap<'a> {
    pub(super) g: HeapGeometry,
    pub(super) allocs: &'a [Allocation],
    pub(super) owner: Vec<u32>,
}

impl Heap<'_> {
    /// Index of the allocation whose head is exactly `address`.
    pub(super) fn head(&self, address: u64) -> Option<usize> {
        let b = self.g.block_of(address)?;
        if address != self.g.block_address(b) {
            return None;
        }
        let i = *self.owner.get(b as usize)?;
        (i != NO_ALLOC && self.allocs.get(i as usize)?.start_block == b).then_some(i as usize)
    }

    /// Index of the allocation covering `address` at any offset.
    pub(super) fn containing(&self, address: u64) -> Option<usize> {
        let b = self.g.block_of(address)?;
        let i = *self.owner.get(b as usize)?;
        (i != NO_ALLOC).then_some(i as usize)
    }
}

/// One snapshot as the decoding stages read it: its memory and allocations,
/// with the lookups every stage makes.
pub(super) struct View<'a> {
    pub(super) mem: &'a Memory<'a>,
    /// Where the reads are recorded, when they are.
    pub(super) log: &'a ReadLog,
    pub(super) heap: &'a Heap<'a>,
    pub(super) word: u64,
    /// Bytes of an `mp_obj_t` (a word, or 8 with NaN boxing on 32-bit).
    pub(super) obj_bytes: u64,
    /// Where the fields of the firmware's structs are.
    pub(super) objects: &'a ObjectLayout,
}

impl<'a> View<'a> {
    pub(super) fn addr_of(&self, i: usize) -> u64 {
        self.heap.g.block_address(self.heap.allocs[i].start_block)
    }

    /// Allocation `i`'s bytes (empty if they lie outside the snapshot), read
    /// for `what` (see [`reads`]).
    pub(super) fn bytes_of(&self, i: usize, what: &'static str) -> &'a [u8] {
        let a = self.heap.allocs[i];
        let g = &self.heap.g;
        let (address, len) = (g.block_address(a.start_block), a.blocks * g.bytes_per_block);
        // The pools are in RAM: no need to look in flash.
        if let Some(t) = &self.mem.tracker {
            t.record(address, len, what);
        }
        self.mem.ram.slice(address, len).unwrap_or(&[])
    }

    /// Index of the allocation whose head is exactly `address`, looked up for `what`.
    pub(super) fn head(&self, address: u64, what: &'static str) -> Option<usize> {
        self.mem.note_lookup(address, what);
        self.heap.head(address)
    }

    /// Index of the allocation covering `address`, looked up for `what`.
    pub(super) fn containing(&self, address: u64, what: &'static str) -> Option<usize> {
        self.mem.note_lookup(address, what);
        self.heap.containing(address)
    }

    /// Allocation `i` as one of the firmware's structs, its bytes and what its
    /// fields point at read for `what`.
    pub(super) fn object(&self, i: usize, what: &'static str) -> Struct<'_, 'a> {
        Struct { v: self, data: self.bytes_of(i, what), what }
    }

    /// Word `k` of `data`.
    pub(super) fn word_at(&self, data: &[u8], k: u64) -> Option<u64> {
        data.get((k * self.word) as usize..((k + 1) * self.word) as usize).map(crate::memory::le_word)
    }

    /// `mp_obj_t` number `k` of `data`.
    pub(super) fn obj_at(&self, data: &[u8], k: u64) -> Option<u64> {
        let n = self.obj_bytes;
        data.get((k * n) as usize..((k + 1) * n) as usize).map(crate::memory::le_word)
    }
}

/// Per pool block, the index of the allocation covering it ([`NO_ALLOC`]:
/// none), in `reuse`'s memory.
pub(super) fn owners(allocs: &[Allocation], pool_blocks: u64, reuse: Vec<u32>) -> Vec<u32> {
    let mut owner = refill(reuse, pool_blocks as usize, NO_ALLOC);
    let n = owner.len();
    for (i, a) in allocs.iter().enumerate() {
        // A slice filled, not a block at a time: most allocations are a block
        // or two, and the per-block bounds checks were most of the cost.
        let from = usize::try_from(a.start_block).unwrap_or(n).min(n);
        let to = usize::try_from(a.start_block.saturating_add(a.blocks)).unwrap_or(n).clamp(from, n);
        owner[from..to].fill(i as u32);
    }
    owner
}

/// [`owners`] of `allocs` from `before`, the index of the walk `stretches`
/// were carried from ([`super::kept_walk::Stretch`]): a stretch's blocks are
/// filled again, and outside them an allocation keeps its blocks, its index
/// moved by the allocations the stretches before it added. `before` of
/// another length is filled whole.
pub(super) fn owners_carried(
    allocs: &[Allocation],
    pool_blocks: u64,
    mut before: Vec<u32>,
    stretches: &[super::kept_walk::Stretch],
) -> Vec<u32> {
    let n = before.len();
    if n as u64 != pool_blocks {
        return owners(allocs, pool_blocks, before);
    }
    let block = |b: u64| usize::try_from(b).unwrap_or(n).min(n);
    let (mut at, mut shift) = (0usize, 0i64);
    for s in stretches {
        let (from, to) = (block(s.from).max(at), block(s.to).max(at));
        shift_indices(&mut before[at..from], shift);
        before[from..to].fill(NO_ALLOC);
        let first = allocs.partition_point(|a| a.start_block < s.from);
        for (i, a) in allocs.iter().enumerate().skip(first).take_while(|(_, a)| a.start_block < s.to) {
            let (lo, hi) = (block(a.start_block), block(a.start_block.saturating_add(a.blocks)));
            before[lo..hi.max(lo)].fill(i as u32);
        }
        shift += s.more;
        at = to;
    }
    shift_indices(&mut before[at..], shift);
    before
}

/// Adds `shift` to each index of `owner` but [`NO_ALLOC`].
fn shift_indices(owner: &mut [u32], shift: i64) {
    if shift == 0 {
        return;
    }
    let by = shift as u32; // two's complement: wrapping_add subtracts
    for x in owner.iter_mut() {
        *x = if *x == NO_ALLOC { NO_ALLOC } else { x.wrapping_add(by) };
    }
}

/// A table of a few bits a block, one per area, by the area's first block: the
/// finaliser and collect tables.
pub(super) struct BitTables<'m> {
    pub(super) areas: Vec<(u64, &'m [u8])>,
    /// Blocks a byte: 8, one bit each, for every build so far (the profile's).
    pub(super) per_byte: u64,
}

impl<'m> BitTables<'m> {
    pub(super) fn new(per_byte: u32) -> Self {
        BitTables { areas: Vec::new(), per_byte: per_byte.clamp(1, 8) as u64 }
    }

    /// The bit of each of `allocs` (by first block), in order, as [`Self::bit`]
    /// gives it: one area's table of a bit a block (every build but a split
    /// heap's) read in one pass, without finding the area each time.
    /// Each is appended to `out` as `f` makes it: by `extend`, whose loop
    /// checks no capacity per bit, and without a look at all when no table is
    /// there (MicroPython has no collect table).
    pub(super) fn each_bit<T: Clone>(&self, allocs: &[Allocation], out: &mut Vec<T>, f: impl Fn(Option<bool>) -> T) {
        match self.areas.as_slice() {
            [] => out.resize(out.len() + allocs.len(), f(None)),
            [(first, t)] if self.per_byte == 8 => out.extend(allocs.iter().map(|a| {
                f(a.start_block.checked_sub(*first).map(|b| t.get((b >> 3) as usize).is_some_and(|x| x >> (b & 7) & 1 == 1)))
            })),
            _ => out.extend(allocs.iter().map(|a| f(self.bit(a.start_block)))),
        }
    }

    /// Block `b`'s bit, `None` when no area's table covers it.
    pub(super) fn bit(&self, b: u64) -> Option<bool> {
        let &(first, t) = match self.areas.as_slice() {
            [one] if one.0 <= b => one,
            areas => areas.iter().rev().find(|(first, _)| *first <= b)?,
        };
        let b = b - first;
        if self.per_byte == 8 {
            // Every build so far: a shift, not a division.
            return Some(t.get((b >> 3) as usize).is_some_and(|byte| (byte >> (b & 7)) & 1 == 1));
        }
        let shift = (b % self.per_byte) * (8 / self.per_byte);
        Some(t.get((b / self.per_byte) as usize).is_some_and(|byte| (byte >> shift) & 1 == 1))
    }
}

/// An allocation read as one of the firmware's structs (`mp_obj_dict_t`,
/// `mp_obj_str_t`, `mp_obj_fun_bc_t`, ...): each field at the word the profile
/// gives ([`ObjectLayout`]), and the allocation a pointer field points at.
pub(super) struct Struct<'v, 'a> {
    v: &'v View<'a>,
    data: &'a [u8],
    /// What the allocations its fields point at are looked up for.
    what: &'static str,
}

impl Struct<'_, '_> {
    /// The same struct, what its fields point at looked up for `what`.
    pub(super) fn targets_for(self, what: &'static str) -> Self {
        Struct { what, ..self }
    }

    /// Word `k`.
    pub(super) fn word(&self, k: u32) -> Option<u64> {
        self.v.word_at(self.data, k as u64)
    }

    /// The allocation whose head word `k` points at.
    pub(super) fn points_at(&self, k: u32) -> Option<usize> {
        self.word(k).and_then(|p| self.head_of(p))
    }

    /// The allocation whose head is `p`, a word read from this struct.
    pub(super) fn head_of(&self, p: u64) -> Option<usize> {
        self.v.head(p, self.what)
    }

    /// A pointer field the build may not have.
    fn points_at_opt(&self, k: Option<u32>) -> Option<usize> {
        k.and_then(|k| self.points_at(k))
    }

    /// Its words after the first (a closure's, searched for cells), at most `max`.
    pub(super) fn words_after_first(&self, max: u64) -> impl Iterator<Item = u64> + '_ {
        (1..(self.data.len() as u64 / self.v.word).min(max)).filter_map(|k| self.v.word_at(self.data, k))
    }

    /// The first word: a type, in flash or on the heap.
    pub(super) fn type_word(&self) -> Option<u64> {
        self.word(0)
    }

    /// A dict's (or a module's globals') `map.table`.
    pub(super) fn dict_table(&self) -> Option<usize> {
        self.points_at(self.v.objects.dict_table_word)
    }

    /// An instance's `members.table`.
    pub(super) fn instance_table(&self) -> Option<usize> {
        self.points_at(self.v.objects.instance_table_word)
    }

    /// A str's or a bytes object's data.
    pub(super) fn str_data(&self) -> Option<usize> {
        self.points_at(self.v.objects.str_data_word)
    }

    /// A str's length in bytes.
    pub(super) fn str_len(&self) -> Option<u64> {
        self.word(self.v.objects.str_len_word)
    }

    /// A bytecode function's bytecode.
    pub(super) fn fun_bytecode(&self) -> Option<usize> {
        self.points_at(self.v.objects.fun_bc_bytecode_word)
    }

    /// A bytecode function's `context` word (a module's context, or its globals).
    pub(super) fn fun_context_word(&self) -> Option<u64> {
        self.word(self.v.objects.fun_bc_context_word)
    }

    /// The allocation a bytecode function's `context` points at.
    pub(super) fn fun_context(&self) -> Option<usize> {
        self.points_at(self.v.objects.fun_bc_context_word)
    }

    /// A bytecode function's table of inner functions' raw code (current MicroPython).
    pub(super) fn fun_child_table(&self) -> Option<usize> {
        self.points_at_opt(self.v.objects.fun_bc_child_table_word)
    }

    /// A module's globals dict.
    pub(super) fn module_globals(&self) -> Option<usize> {
        self.points_at(self.v.objects.module_globals_word)
    }

    /// A module context's `constants.qstr_table` (current MicroPython).
    pub(super) fn module_qstr_table(&self) -> Option<usize> {
        self.points_at_opt(self.v.objects.context_qstr_table_word)
    }

    /// A list's items.
    pub(super) fn list_items(&self) -> Option<usize> {
        self.points_at(self.v.objects.list_items_word)
    }

    /// A set's table.
    pub(super) fn set_table(&self) -> Option<usize> {
        self.points_at(self.v.objects.set_table_word)
    }

    /// A bytearray's or an array's items.
    pub(super) fn array_items(&self) -> Option<usize> {
        self.points_at(self.v.objects.array_items_word)
    }

    /// A long int's digits.
    pub(super) fn int_digits(&self) -> Option<usize> {
        self.points_at(self.v.objects.int_digits_word)
    }

    /// An exception's traceback data.
    pub(super) fn exception_traceback(&self) -> Option<usize> {
        self.points_at_opt(self.v.objects.exception_traceback_word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bit_in_one_pass_is_each_block_looked_up() {
        let table: Vec<u8> = (0..16u8).map(|k| k.wrapping_mul(37) ^ 0x5a).collect();
        let allocs: Vec<Allocation> =
            (0..160).step_by(3).map(|b| Allocation { start_block: b, blocks: 1, marked: false }).collect();
        let areas = [vec![(8, &table[..])], vec![(0, &table[..8]), (64, &table[8..])], vec![]];
        for areas in areas {
            let t = BitTables { areas, per_byte: 8 };
            let mut got = Vec::new();
            t.each_bit(&allocs, &mut got, |bit| bit);
            let want: Vec<Option<bool>> = allocs.iter().map(|a| t.bit(a.start_block)).collect();
            assert_eq!(got, want);
            assert!(t.areas.is_empty() || got.contains(&Some(true)) && got.contains(&Some(false)));
        }
    }
}
