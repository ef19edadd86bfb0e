//! The allocation-table walk: allocations, free runs and the firmware's `gc_info`.
//!
//! Two readings of the same two-bit states are kept side by side on purpose:
//! allocations and free runs as the reference splits them (HEAD or MARK starts an
//! allocation, TAIL extends one, FREE ends it; a TAIL after FREE — logged mid-sweep
//! — belongs to nothing), and the counters exactly as py/gc.c `gc_info()` computes
//! them, so the `snapshots` table can be held against `micropython.mem_info()`.

pub const AT_FREE: u8 = 0;
pub const AT_HEAD: u8 = 1;
pub const AT_TAIL: u8 = 2;
pub const AT_MARK: u8 = 3;

/// One allocation: `blocks` blocks from `start_block`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    pub start_block: u64,
    pub blocks: u64,
    /// The head was in the MARK state (snapshot taken during a collection).
    pub marked: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreeRun {
    pub start_block: u64,
    pub blocks: u64,
}

/// `gc_info_t` as py/gc.c fills it: bytes for total/used/free, blocks for
/// max_free/max_block, counts for num_1block/num_2block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcInfo {
    pub total: u64,
    pub used: u64,
    pub free: u64,
    pub max_free: u64,
    pub num_1block: u64,
    pub num_2block: u64,
    pub max_block: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableWalk {
    pub allocations: Vec<Allocation>,
    pub free_runs: Vec<FreeRun>,
    pub gc_info: GcInfo,
    pub marked_blocks: u64,
    pub orphan_tail_blocks: u64,
    /// Runs of orphan tail blocks. A GC leaves at most one, where its sweep is
    /// (it frees a head, then that head's tails); more say the table is not one
    /// a GC wrote.
    pub orphan_tail_runs: u64,
}

/// The states of every block, one byte each: both walks below read each state
/// several times, and a flat array is cheaper than shifting the packed table.
pub(super) fn unpack(atb: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(atb.len() * 4);
    for b in atb {
        out.extend_from_slice(&[b & 3, (b >> 2) & 3, (b >> 4) & 3, b >> 6]);
    }
}

thread_local! {
    /// Each thread's buffer for [`unpack`]: a table is unpacked for every
    /// snapshot, and a fresh kilobyte-sized buffer each time cost more than the
    /// unpacking (large requests make glibc's malloc tidy its free lists).
    static STATES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Length of the run of state `k` starting at `i`. Heaps are mostly long runs of
/// free blocks (and of tails): eight states are compared at once.
#[inline]
fn run_len(states: &[u8], i: usize, k: u8) -> usize {
    let rest = &states[i..];
    let eight = u64::from_ne_bytes([k; 8]);
    let mut n = 0;
    for chunk in rest.chunks_exact(8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else { break };
        if u64::from_ne_bytes(bytes) != eight {
            break;
        }
        n += 8;
    }
    n + rest[n..].iter().position(|&s| s != k).unwrap_or(rest.len() - n)
}

/// Walks the first `atb.len() * 4` blocks. `bytes_per_block` scales gc_info's byte
/// figures; `pool_bytes` is gc_info's `total`. Runs of FREE and TAIL blocks are
/// taken whole: a heap is mostly long runs.
///
/// One pass makes both readings: the reference's allocations and free runs, and
/// py/gc.c `gc_info()` (CircuitPython 3.0 / MicroPython 1.9) exactly, including
/// its treatment of MARK (counted nowhere) and of a TAIL after FREE (a free run is
/// only closed by a HEAD or the end). The firmware's loop goes block by block;
/// inside a run of FREE or TAIL blocks its end-of-block check sees the same state
/// next and does nothing, so only a step's last block matters.
pub fn walk(atb: &[u8], bytes_per_block: u64, pool_bytes: u64, want_rows: bool) -> TableWalk {
    walk_into(atb, bytes_per_block, pool_bytes, want_rows, Vec::new())
}

/// [`walk`], listing the allocations in `allocations` (emptied first): a run
/// decoder hands back the vector of the snapshot before, to save allocating one.
fn walk_into(
    atb: &[u8],
    bytes_per_block: u64,
    pool_bytes: u64,
    want_rows: bool,
    allocations: Vec<Allocation>,
) -> TableWalk {
    STATES.with_borrow_mut(|states| {
        unpack(atb, states);
        walk_states(states, bytes_per_block, pool_bytes, want_rows, allocations)
    })
}

/// Where a walk reports the two running lengths py/gc.c `gc_info()` holds
/// against its maxima, each time it does: a whole walk keeps the largest, a
/// walk carried to the next snapshot counts them all (see [`super::kept_walk`]).
pub(super) trait Maxima {
    /// An allocation's length, counted where an allocation may end.
    fn block(&mut self, len: u64);
    /// The free length, where a HEAD (or the end) closes it.
    fn free(&mut self, len: u64);
}

/// The largest of each length: what `gc_info()` reports.
#[derive(Default)]
struct Largest {
    block: u64,
    free: u64,
}

impl Maxima for Largest {
    #[inline]
    fn block(&mut self, len: u64) {
        self.block = self.block.max(len);
    }
    #[inline]
    fn free(&mut self, len: u64) {
        self.free = self.free.max(len);
    }
}

/// [`walk_into`] on the unpacked states, gc_info's maxima those of
/// [`Largest`].
fn walk_states(
    states: &[u8],
    bytes_per_block: u64,
    pool_bytes: u64,
    want_rows: bool,
    allocations: Vec<Allocation>,
) -> TableWalk {
    let mut largest = Largest::default();
    let mut w = walk_states_with(states, want_rows, allocations, &mut largest);
    let info = &mut w.gc_info;
    info.total = pool_bytes;
    info.used *= bytes_per_block;
    info.free *= bytes_per_block;
    (info.max_block, info.max_free) = (largest.block, largest.free);
    w
}

/// The walk of `states`, its `gc_info` in blocks without `total` or the
/// maxima: the lengths go to `maxima`. A walk of a stretch that starts at a
/// HEAD (or an area's start) and ends before one (or at the area's end) is
/// that stretch's share of the whole walk: nothing carries across a HEAD.
pub(super) fn walk_states_with(
    states: &[u8],
    want_rows: bool,
    mut allocations: Vec<Allocation>,
    maxima: &mut impl Maxima,
) -> TableWalk {
    let n = states.len();
    allocations.clear();
    let mut w = TableWalk { allocations, ..TableWalk::default() };
    if want_rows {
        // A guess that saves most regrowing: a heap holds allocations of a few
        // blocks on average, separated by fewer free runs.
        w.allocations.reserve(n / 4);
        w.free_runs.reserve(n / 32);
    }
    let mut current: Option<Allocation> = None;
    let mut info = GcInfo::default();
    // gc_info's running lengths: of the allocation, of the free space.
    let (mut len, mut len_free) = (0u64, 0u64);
    let mut i = 0;
    while i < n {
        let k = states[i];
        if k != AT_TAIL {
            if let Some(a) = current.take() {
                if want_rows {
                    w.allocations.push(a);
                }
            }
        }
        let step = match k {
            AT_FREE => {
                let run = run_len(states, i, AT_FREE);
                if want_rows {
                    w.free_runs.push(FreeRun { start_block: i as u64, blocks: run as u64 });
                }
                info.free += run as u64;
                len_free += run as u64;
                len = 0;
                run
            }
            AT_TAIL => {
                let run = run_len(states, i, AT_TAIL);
                match current.as_mut() {
                    Some(a) => a.blocks += run as u64,
                    None => {
                        w.orphan_tail_blocks += run as u64;
                        w.orphan_tail_runs += 1;
                    }
                }
                info.used += run as u64;
                len += run as u64;
                run
            }
            _ => {
                if k == AT_MARK {
                    w.marked_blocks += 1;
                } else {
                    info.used += 1;
                    len = 1;
                }
                current = Some(Allocation { start_block: i as u64, blocks: 1, marked: k == AT_MARK });
                1
            }
        };
        i += step;
        // The firmware's end-of-block check, on the step's last block.
        let finish = i >= n;
        let next = if finish { AT_FREE } else { states[i] };
        if finish || next == AT_FREE || next == AT_HEAD {
            match len {
                1 => info.num_1block += 1,
                2 => info.num_2block += 1,
                _ => {}
            }
            maxima.block(len);
            if finish || next == AT_HEAD {
                maxima.free(len_free);
                len_free = 0;
            }
        }
    }
    if let Some(a) = current {
        if want_rows {
            w.allocations.push(a);
        }
    }
    w.gc_info = info;
    w
}

/// Walks every area of a split heap, `(table, first block, pool bytes)` each in
/// chain order: blocks are numbered across the heap, and gc_info adds the areas up
/// as py/gc.c `gc_info()` does (counts and bytes summed, runs never crossing from
/// one area into the next, the largest run over all).
pub fn walk_areas<'a>(
    areas: impl IntoIterator<Item = (&'a [u8], u64, u64)>,
    bytes_per_block: u64,
    want_rows: bool,
) -> TableWalk {
    walk_areas_into(areas, bytes_per_block, want_rows, Vec::new())
}

/// [`walk_areas`], listing the allocations in `allocations` (emptied first).
pub fn walk_areas_into<'a>(
    areas: impl IntoIterator<Item = (&'a [u8], u64, u64)>,
    bytes_per_block: u64,
    want_rows: bool,
    allocations: Vec<Allocation>,
) -> TableWalk {
    let mut all = TableWalk::default();
    let mut allocations = Some(allocations);
    for (n, (atb, first_block, pool_bytes)) in areas.into_iter().enumerate() {
        let w = walk_into(atb, bytes_per_block, pool_bytes, want_rows, allocations.take().unwrap_or_default());
        if n == 0 {
            all = w;
            continue;
        }
        all.allocations
            .extend(w.allocations.iter().map(|a| Allocation { start_block: a.start_block + first_block, ..*a }));
        all.free_runs.extend(w.free_runs.iter().map(|r| FreeRun { start_block: r.start_block + first_block, ..*r }));
        all.marked_blocks += w.marked_blocks;
        all.orphan_tail_blocks += w.orphan_tail_blocks;
        all.orphan_tail_runs += w.orphan_tail_runs;
        let (a, b) = (&mut all.gc_info, w.gc_info);
        a.total += b.total;
        a.used += b.used;
        a.free += b.free;
        a.max_free = a.max_free.max(b.max_free);
        a.num_1block += b.num_1block;
        a.num_2block += b.num_2block;
        a.max_block = a.max_block.max(b.max_block);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs block states four to a byte, first block in the low bits.
    fn atb(states: &[u8]) -> Vec<u8> {
        states.chunks(4).map(|c| c.iter().enumerate().fold(0u8, |b, (i, s)| b | (s << (2 * i)))).collect()
    }

    /// py/gc.c `gc_info()` (CircuitPython 3.0 / MicroPython 1.9) as the firmware
    /// runs it, one block at a time: the model [`walk`]'s figures are held to.
    fn gc_info_block_by_block(states: &[u8], bytes_per_block: u64, pool_bytes: u64) -> GcInfo {
        let mut info = GcInfo { total: pool_bytes, ..GcInfo::default() };
        let (mut len, mut len_free) = (0u64, 0u64);
        for (block, &kind) in states.iter().enumerate() {
            match kind {
                AT_FREE => {
                    info.free += 1;
                    len_free += 1;
                    len = 0;
                }
                AT_HEAD => {
                    info.used += 1;
                    len = 1;
                }
                AT_TAIL => {
                    info.used += 1;
                    len += 1;
                }
                _ => {}
            }
            let finish = block + 1 == states.len();
            let next = if finish { AT_FREE } else { states[block + 1] };
            if finish || next == AT_FREE || next == AT_HEAD {
                match len {
                    1 => info.num_1block += 1,
                    2 => info.num_2block += 1,
                    _ => {}
                }
                info.max_block = info.max_block.max(len);
            }
            if finish || next == AT_HEAD {
                info.max_free = info.max_free.max(len_free);
                len_free = 0;
            }
        }
        info.used *= bytes_per_block;
        info.free *= bytes_per_block;
        info
    }

    #[test]
    fn one_pass_gives_the_gc_info_of_the_firmwares_loop() {
        // Random tables, every state likely, in runs of every length.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let mut states = Vec::new();
            let blocks = 4 * (1 + next() % 40) as usize;
            while states.len() < blocks {
                let k = (next() % 4) as u8;
                let run = 1 + (next() % 12) as usize;
                states.extend(std::iter::repeat_n(k, run.min(blocks - states.len())));
            }
            let w = walk(&atb(&states), 16, blocks as u64 * 16, true);
            assert_eq!(w.gc_info, gc_info_block_by_block(&states, 16, blocks as u64 * 16), "{states:?}");
        }
    }

    #[test]
    fn walk_by_hand() {
        // H T F F | H H T T | F F F F | M T T F
        let t = atb(&[1, 2, 0, 0, 1, 1, 2, 2, 0, 0, 0, 0, 3, 2, 2, 0]);
        let w = walk(&t, 16, 256, true);
        let allocs: Vec<_> = w.allocations.iter().map(|a| (a.start_block, a.blocks, a.marked)).collect();
        assert_eq!(allocs, vec![(0, 2, false), (4, 1, false), (5, 3, false), (12, 3, true)]);
        let runs: Vec<_> = w.free_runs.iter().map(|r| (r.start_block, r.blocks)).collect();
        assert_eq!(runs, vec![(2, 2), (8, 4), (15, 1)]);
        assert_eq!(w.marked_blocks, 1);
        // gc_info: MARK counts nowhere; used = 2+1+3 + 2 tails after the mark = 8 blocks.
        let g = w.gc_info;
        assert_eq!((g.used, g.free), (8 * 16, 7 * 16));
        assert_eq!(g.num_1block, 1);
        // H T before F, and the two tails after the mark (len restarts at 0 on FREE).
        assert_eq!(g.num_2block, 2);
        assert_eq!(g.max_block, 3);
        // Free runs closed by a HEAD: 2 (before H at 4), 4 (before M? no: M is not HEAD,
        // so the run of 4 stays open through M T T F and ends at the finish as 5).
        assert_eq!(g.max_free, 5);
    }

    #[test]
    fn orphan_tails_after_free_belong_to_nothing() {
        let t = atb(&[1, 0, 2, 2]);
        let w = walk(&t, 16, 64, true);
        assert_eq!(w.allocations.len(), 1);
        assert_eq!(w.orphan_tail_blocks, 2);
        assert_eq!(w.free_runs, vec![FreeRun { start_block: 1, blocks: 1 }]);
        // gc_info counts the orphan tails as used, and the free run is not closed by them.
        assert_eq!(w.gc_info.used, 3 * 16);
        assert_eq!(w.gc_info.max_free, 1);
    }

    #[test]
    fn areas_add_up_and_runs_stop_at_an_area_end() {
        // Area 1: H T F F (4 blocks); area 2: F F H F. The free run at the end of
        // area 1 and the one at the start of area 2 are two runs, not one of 4.
        let (a1, a2) = (atb(&[1, 2, 0, 0]), atb(&[0, 0, 1, 0]));
        let w = walk_areas([(&a1[..], 0, 64), (&a2[..], 4, 64)], 16, true);
        let allocs: Vec<_> = w.allocations.iter().map(|a| (a.start_block, a.blocks)).collect();
        assert_eq!(allocs, vec![(0, 2), (6, 1)]);
        let runs: Vec<_> = w.free_runs.iter().map(|r| (r.start_block, r.blocks)).collect();
        assert_eq!(runs, vec![(2, 2), (4, 2), (7, 1)]);
        let g = w.gc_info;
        assert_eq!((g.total, g.used, g.free), (128, 3 * 16, 5 * 16));
        assert_eq!((g.num_1block, g.num_2block, g.max_block, g.max_free), (1, 1, 2, 2));
    }

    #[test]
    fn runs_are_counted_whatever_their_length_and_alignment() {
        for len in [0usize, 1, 7, 8, 9, 15, 16, 17, 40] {
            for start in 0..9 {
                let mut states = vec![AT_HEAD; start];
                states.extend(std::iter::repeat_n(AT_FREE, len));
                states.push(AT_TAIL);
                states.extend(std::iter::repeat_n(AT_FREE, 3));
                assert_eq!(run_len(&states, start, AT_FREE), len, "len {len} at {start}");
            }
        }
        assert_eq!(run_len(&[AT_FREE; 20], 3, AT_FREE), 17);
    }

    #[test]
    fn empty_and_full_tables() {
        let w = walk(&[0, 0], 16, 128, true);
        assert_eq!(w.free_runs, vec![FreeRun { start_block: 0, blocks: 8 }]);
        assert_eq!(w.gc_info.max_free, 8);
        assert_eq!(w.gc_info.free, 128);
        let w = walk(&atb(&[1, 2, 2, 2]), 16, 64, true);
        assert_eq!(w.gc_info.max_block, 4);
        assert_eq!(w.gc_info.max_free, 0);
    }
}
