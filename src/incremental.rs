//! Decoding a run of consecutive snapshots, each from the one before it.
//!
//! A soak test's consecutive snapshots differ by an allocation or two, yet a full
//! decode reads, classifies and diffs every object of the heap each time. A
//! [`RunDecoder`] keeps what it decoded of the snapshot before, allocation by
//! allocation (base kind, lifetime row, edges, share of the type histogram), and
//! for the next snapshot:
//! 1. reads the allocation table and pairs each allocation with the previous
//!    snapshot's at the same block: one with the same extent, table bits and
//!    bytes is unchanged; the others (new, gone, resized, written to) changed;
//! 2. decodes again only what could differ ([`plan`]): the changed allocations;
//!    what they point to, now and before (the roles, texts and names they give);
//!    what points into their blocks (a pointer's target, an instance's class, a
//!    function's bytecode are read there); the targets of those whose first word
//!    points there (their own kind, and so the roles they give, may change); and
//!    the modules pointing at those (a module's name is read through its globals
//!    and their table, two pointers away). Nothing else a decode says of an
//!    allocation reads any further;
//!    the sources of a change are looked up in an index of which allocations
//!    point into each block, kept with the slots, not found by visiting them all;
//! 3. carries the other allocations' rows over as they were, and diffs only the
//!    ones made again into the lifetime changes and the type histogram.
//!
//! The roots (RAM outside the heap) are sieved again only where their bytes
//! changed ([`crate::decode::roots`]), and diffed word by word. What a decode reads that is not tracked this way
//! (the heap's geometry, the VM's words, the qstr pools and their texts) must be
//! unchanged, or the snapshot is decoded in full; so is a run's first snapshot,
//! and one whose change reaches more than half of the heap. The tables are
//! the same either way: the tests hold them byte for byte against full decodes,
//! and `analyze --full-decode` turns this off.

use crate::decode::{
    Allocation, BaseKind, Category, DecodeCache, DecodeFacts, Decoder, EdgeRow, Focus, HeapGeometry, PlanInput,
    QstrRow, RootWord, Roots, RootsBefore,
};
use crate::firmware::Firmware;
use crate::memory::same_bytes;
use crate::tables::lifetimes::{self, AllocationSight, Changes, EdgeKey, Lifetime, LifetimeChanges};
use crate::tables::summaries::TypeCounts;
use crate::tables::{Prepared, PreparedOutcome, TableSet};

/// A change reaching more than one in this many of the heap's allocations (plus
/// a few) is decoded in full: following it would cost more than it saves.
const MAX_FOCUS_SHARE: usize = 2;
const FOCUS_SLACK: usize = 8;

/// What one allocation of the snapshot before decoded to.
#[derive(Clone, Debug)]
struct Slot {
    sight: AllocationSight,
    /// Its pointer edges, in word order.
    edges: Vec<EdgeRow>,
    /// The pool blocks they point into (what [`plan`] follows), compact.
    targets: Vec<u32>,
    /// Its group in the type histogram ([`TypeCounts`]).
    group: usize,
    /// The pool block its first word points into: its kind may depend on it.
    first_target: Option<u32>,
}

/// Slots are boxed: most move on from one snapshot to the next unchanged.
type Slots = Vec<Option<Box<Slot>>>;

/// The snapshot before, as far as the next decode needs it.
struct Previous<'f, 'm> {
    ram: &'m [u8],
    geometry: HeapGeometry,
    allocations: Vec<Allocation>,
    finaliser: Vec<bool>,
    base: Vec<BaseKind>,
    /// Per allocation; an unchanged allocation takes its slot on to the next snapshot.
    slots: Slots,
    /// Candidate roots, in address order (see [`crate::decode::roots`]).
    root_words: Vec<RootWord>,
    /// Which allocations point into each block, from their slots.
    pointed_by: PointedBy,
    /// Qstrs, sorted by key.
    qstrs: Vec<QstrRow>,
    /// Start blocks of the allocations holding qstr texts, sorted.
    qstr_chunks: Vec<u64>,
    /// Start blocks of the qstr pools and of those chunks, sorted: a change there
    /// takes a full decode.
    qstr_blocks: Vec<u64>,
    vm: Option<Vec<u64>>,
    types: TypeCounts<'f>,
    /// A focused decode may start from this snapshot.
    usable: bool,
}

/// Decodes and prepares the snapshots of one run, in order (one per worker and
/// run), each from the one before when it can.
pub struct RunDecoder<'d, 'f, 'm> {
    decoder: &'d Decoder<'f>,
    firmware: &'f Firmware,
    set: TableSet,
    cache: DecodeCache,
    prev: Option<Previous<'f, 'm>>,
    /// Working vectors kept from one snapshot to the next (see [`Spare`]).
    spare: Spare,
    /// The last snapshot prepared was decoded from the one before it.
    last_focused: bool,
}

/// Per-allocation vectors a snapshot needs and the next can refill: allocating
/// them afresh for every snapshot costs as much as a good part of the work.
#[derive(Default)]
struct Spare {
    reuse: Vec<Option<usize>>,
    focus: Focus,
    slots: Slots,
}

impl<'d, 'f, 'm> RunDecoder<'d, 'f, 'm> {
    /// `None` when the tables or the firmware need every snapshot decoded whole:
    /// per-snapshot rows (blocks, edges, qstrs, strings), nothing past the
    /// allocation tables, or a layout whose reads are not tracked.
    pub fn new(decoder: &'d Decoder<'f>, set: TableSet) -> Option<Self> {
        Self::applies(decoder, set).then(|| RunDecoder {
            decoder,
            firmware: decoder.firmware,
            set,
            cache: DecodeCache::default(),
            prev: None,
            spare: Spare::default(),
            last_focused: false,
        })
    }

    /// Whether a run decoder can serve `set` with `decoder` (see [`RunDecoder::new`]).
    pub fn applies(decoder: &Decoder, set: TableSet) -> bool {
        let whole_rows = set.blocks || set.edges || set.qstrs || set.strings;
        let wanted = set.lifetimes().any() || set.type_histogram;
        wanted && !whole_rows && decoder.supports_focus()
    }

    /// Whether the last snapshot prepared was decoded from the one before it
    /// (rather than whole, or not at all).
    pub fn last_focused(&self) -> bool {
        self.last_focused
    }

    /// Decodes snapshot `index` and prepares it for the writer, as
    /// [`crate::tables::Preparer::prepare`] does with a full decode.
    pub fn prepare(&mut self, index: u64, ram: &'m [u8]) -> PreparedOutcome<'f> {
        let decoder = self.decoder;
        let vm = decoder.vm_words(ram);
        let mut prev = self.prev.take();
        let mut reuse = std::mem::take(&mut self.spare.reuse);
        let spare_focus = std::mem::take(&mut self.spare.focus);
        let before = prev.as_ref().map(|p| RootsBefore { ram: p.ram, geometry: &p.geometry, words: &p.root_words });
        let decoded = decoder.decode_focused(index, ram, &mut self.cache, Roots::Words(before), |cur| {
            let p = prev.as_ref().filter(|p| p.usable)?;
            plan(decoder, p, cur, vm.as_deref()?, &mut reuse, spare_focus)
        });
        let (mut report, facts) = match decoded {
            Ok(d) => d,
            Err(e) => {
                // The next snapshot is diffed against the last one decoded.
                self.last_focused = false;
                self.prev = prev;
                return Err(e);
            }
        };
        let focus = facts.focus;
        self.last_focused = focus.is_some();
        let carried = |i: usize| -> Option<usize> {
            let f = focus.as_ref()?;
            (!f.derive.get(i).copied().unwrap_or(true)).then(|| reuse.get(i).copied().flatten()).flatten()
        };

        // This snapshot's slots: carried over, or made from the rows decoded.
        let fw = self.firmware;
        let texts = lifetimes::texts_by_block(&report.strings);
        let mut heap_edges = std::mem::take(&mut report.edges).into_iter();
        let mut rows = report.blocks.iter();
        let mut slots: Slots = std::mem::take(&mut self.spare.slots);
        slots.reserve(facts.allocations.len());
        let mut made: Vec<usize> = Vec::with_capacity(report.blocks.len());
        for (i, a) in facts.allocations.iter().enumerate() {
            let from_prev = carried(i).and_then(|j| prev.as_mut()?.slots.get_mut(j)?.take());
            if let Some(slot) = from_prev {
                slots.push(Some(slot));
                continue;
            }
            // Rows come in allocation order, one per allocation decoded.
            let Some(b) = rows.next().filter(|b| b.start_block == a.start_block) else {
                slots.push(None);
                continue;
            };
            let count = heap_edges.as_slice().iter().take_while(|e| e.from_address == Some(b.address)).count();
            let edges: Vec<EdgeRow> = heap_edges.by_ref().take(count).collect();
            let sight = AllocationSight::of(b, |block| lifetimes::text_of(&texts, block), fw);
            made.push(i);
            let g = &report.geometry;
            let targets = edges.iter().filter_map(|e| u32::try_from(g.block_of(e.to_address)?).ok()).collect();
            let first_target = edges
                .first()
                .filter(|e| e.from_word == Some(0))
                .and_then(|e| u32::try_from(g.block_of(e.to_address)?).ok());
            slots.push(Some(Box::new(Slot { sight, edges, targets, group: usize::MAX, first_target })));
        }
        drop(texts);

        let bpb = report.geometry.bytes_per_block;
        let want = self.set.lifetimes();
        let collecting = report.marked_blocks > 0 || report.orphan_tail_blocks > 0;
        let new_qstrs = focus.is_none().then(|| lifetimes::sorted_unique(std::mem::take(&mut report.qstrs)));
        let mut pointed_by = PointedBy::default();
        let (changes, types, qstrs, carried_qstr_blocks) = match prev.take() {
            // A run's first snapshot goes whole.
            None => {
                let sights = lifetimes::sorted_unique(slots.iter().flatten().map(|s| s.sight.clone()).collect());
                let mut edges: Vec<EdgeRow> = slots.iter().flatten().flat_map(|s| s.edges.iter().cloned()).collect();
                let roots = facts.root_words.iter().filter(|w| w.head);
                edges.extend(roots.map(|w| decoder.root_edge(w.address, w.value, &report.geometry)));
                let qstrs = new_qstrs.unwrap_or_default();
                let changes = LifetimeChanges::new(
                    Changes::all(keep(want.allocations, sights)),
                    Changes::all(keep(want.edges, lifetimes::sorted_unique(edges))),
                    Changes::all(keep(want.qstrs, qstrs.clone())),
                    collecting,
                );
                (changes, count_types(&mut slots, bpb, fw), qstrs, None)
            }
            Some(p) => {
                // The index follows the slots: out with those not carried over,
                // in with those made (all of them, after a whole decode).
                pointed_by = p.pointed_by;
                if focus.is_some() {
                    for (a, s) in p.allocations.iter().zip(&p.slots) {
                        if let Some(s) = s {
                            pointed_by.remove(a.start_block, &s.targets);
                        }
                    }
                } else {
                    pointed_by.clear();
                }
                // The previous snapshot's slots not carried over, by address.
                let old = by_address(p.slots.iter().flatten().map(|s| &**s).collect());
                let (allocations, mut edges) = diff_slots(&old, &slots, &made);
                diff_roots(decoder, &report.geometry, &p.root_words, &facts.root_words, &mut edges.0, &mut edges.1);
                let (qstr_changes, qstrs) = match new_qstrs {
                    Some(q) => (Changes::between(&p.qstrs, &q), q),
                    None => (Changes::partial(Vec::new(), Vec::new()), p.qstrs),
                };
                let types = match &focus {
                    // Out with the allocations not carried over, in with those made
                    // (in the group of the one they replace, when it is the same).
                    Some(_) => {
                        let mut types = p.types;
                        for o in &old {
                            types.remove(o.group, o.sight.blocks() * bpb);
                        }
                        for &i in &made {
                            let Some(s) = slots.get_mut(i).and_then(Option::as_mut) else { continue };
                            let at = old.binary_search_by_key(&s.sight.key(), |o| o.sight.key()).ok();
                            s.group = match at.map(|k| old[k]).filter(|o| same_group(o, s)) {
                                Some(o) => o.group,
                                None => types.group(s.sight.kind, s.sight.type_address, s.sight.class.as_ref(), fw),
                            };
                            types.add(s.group, s.sight.blocks() * bpb);
                        }
                        types
                    }
                    None => count_types(&mut slots, bpb, fw),
                };
                let changes = LifetimeChanges::new(
                    keep_changes(want.allocations, Changes::partial(allocations.0, allocations.1)),
                    keep_changes(want.edges, Changes::partial(edges.0, edges.1)),
                    keep_changes(want.qstrs, qstr_changes),
                    collecting,
                );
                let carried = focus.is_some().then_some((p.qstr_chunks, p.qstr_blocks));
                // The snapshot before is done with: its vectors serve the next.
                let mut old_slots = p.slots;
                old_slots.clear();
                self.spare.slots = old_slots;
                self.cache.recycle(DecodeFacts {
                    allocations: p.allocations,
                    finaliser: p.finaliser,
                    base: p.base,
                    focus: None,
                    root_words: p.root_words,
                });
                (changes, types, qstrs, carried)
            }
        };
        let type_groups = if self.set.type_histogram { types.groups() } else { Vec::new() };
        pointed_by.fit(report.geometry.pool_blocks());
        let (mut made_now, mut all) = (made.iter().copied(), 0..slots.len());
        let added: &mut dyn Iterator<Item = usize> = if focus.is_some() { &mut made_now } else { &mut all };
        for i in added {
            if let (Some(a), Some(Some(s))) = (facts.allocations.get(i), slots.get(i)) {
                pointed_by.add(a.start_block, &s.targets);
            }
        }

        // What the next snapshot starts from. The qstr pools' blocks are found from
        // the qstrs when they were decoded, else they are as they were.
        let tracked = match carried_qstr_blocks {
            Some(c) => Some(c),
            None => qstr_blocks(decoder, &report.geometry, &facts.allocations, &facts.base, &qstrs),
        };
        let usable = report.geometry.more_areas.is_empty()
            && report.notes.is_empty()
            && vm.is_some()
            && tracked.is_some()
            && slots.iter().all(Option::is_some);
        let (qstr_chunks, qstr_blocks) = tracked.unwrap_or_default();
        self.prev = Some(Previous {
            ram,
            geometry: report.geometry.clone(),
            allocations: facts.allocations,
            finaliser: facts.finaliser,
            base: facts.base,
            slots,
            root_words: facts.root_words,
            pointed_by,
            qstrs,
            qstr_chunks,
            qstr_blocks,
            vm,
            types,
            usable,
        });
        report.blocks = Vec::new();
        report.strings = Vec::new();
        // The report waits for the writer with its run: only what it holds.
        report.free_runs.shrink_to_fit();
        self.spare.reuse = reuse;
        self.spare.focus = focus.unwrap_or_default();
        Ok(Prepared::new(report, want.any().then_some(changes), type_groups))
    }
}

fn keep<T>(wanted: bool, rows: Vec<T>) -> Vec<T> {
    if wanted {
        rows
    } else {
        Vec::new()
    }
}

fn keep_changes<T: Lifetime>(wanted: bool, changes: Changes<T>) -> Changes<T> {
    if wanted {
        changes
    } else {
        Changes::partial(Vec::new(), Vec::new())
    }
}

/// Whether two slots fall in one group of the type histogram.
fn same_group(a: &Slot, b: &Slot) -> bool {
    a.sight.kind == b.sight.kind && a.sight.type_address == b.sight.type_address && a.sight.class == b.sight.class
}

/// The type histogram of `slots`, each given its group.
fn count_types<'f>(slots: &mut [Option<Box<Slot>>], bytes_per_block: u64, fw: &'f Firmware) -> TypeCounts<'f> {
    let mut types = TypeCounts::default();
    for s in slots.iter_mut().flatten() {
        s.group = types.group(s.sight.kind, s.sight.type_address, s.sight.class.as_ref(), fw);
        types.add(s.group, s.sight.blocks() * bytes_per_block);
    }
    types
}

/// `slots` sorted by address. They come in allocation order, which is address
/// order but across the areas of a split heap.
fn by_address(mut slots: Vec<&Slot>) -> Vec<&Slot> {
    if !slots.is_sorted_by_key(|s| s.sight.key()) {
        slots.sort_by_key(|s| s.sight.key());
    }
    slots
}

/// Allocation rows and gone addresses, heap edge rows and gone keys, each sorted
/// by key: between the previous snapshot's slots that were not carried over
/// (`old`, by address) and this one's made anew (`made`, indices into `new`).
#[allow(clippy::type_complexity)]
fn diff_slots(
    old: &[&Slot],
    new: &[Option<Box<Slot>>],
    made: &[usize],
) -> ((Vec<AllocationSight>, Vec<u64>), (Vec<EdgeRow>, Vec<<EdgeRow as Lifetime>::Key>)) {
    let new = by_address(made.iter().filter_map(|&i| new.get(i)?.as_deref()).collect());
    let (mut rows, mut gone, mut edge_rows, mut edge_gone) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut old, mut new) = (old.iter().copied().peekable(), new.into_iter().peekable());
    loop {
        let (o, n) = (old.peek().map(|o| o.sight.key()), new.peek().map(|n| n.sight.key()));
        match (o, n) {
            (Some(a), Some(b)) if a == b => {
                let (Some(o), Some(n)) = (old.next(), new.next()) else { break };
                if o.sight != n.sight {
                    rows.push(n.sight.clone());
                }
                let edges = Changes::between(&o.edges, &n.edges);
                edge_rows.extend(edges.rows);
                edge_gone.extend(edges.gone);
            }
            (Some(a), b) if b.is_none_or(|b| a < b) => {
                let Some(o) = old.next() else { break };
                gone.push(a);
                edge_gone.extend(o.edges.iter().map(|e| e.key()));
            }
            (_, Some(_)) => {
                let Some(n) = new.next() else { break };
                rows.push(n.sight.clone());
                edge_rows.extend(n.edges.iter().cloned());
            }
            _ => break,
        }
    }
    ((rows, gone), (edge_rows, edge_gone))
}

/// Adds the root edges of `new` that `old` lacks to `rows`, and the keys of
/// those it lost to `gone`, each in key order: `old` and `new` are candidate
/// roots in address order, and an edge is a head candidate (its row follows from
/// its address and value).
fn diff_roots(
    decoder: &Decoder,
    g: &HeapGeometry,
    old: &[RootWord],
    new: &[RootWord],
    rows: &mut Vec<EdgeRow>,
    gone: &mut Vec<<EdgeRow as Lifetime>::Key>,
) {
    let (mut old, mut new) = (old.iter().filter(|w| w.head).peekable(), new.iter().filter(|w| w.head).peekable());
    loop {
        match (old.peek(), new.peek()) {
            (Some(o), Some(n)) if o.address == n.address => {
                if o.value != n.value {
                    gone.push(EdgeKey::root(o.address, o.value));
                    rows.push(decoder.root_edge(n.address, n.value, g));
                }
                old.next();
                new.next();
            }
            (Some(o), n) if n.is_none_or(|n| o.address < n.address) => {
                gone.push(EdgeKey::root(o.address, o.value));
                old.next();
            }
            (_, Some(n)) => {
                rows.push(decoder.root_edge(n.address, n.value, g));
                new.next();
            }
            _ => break,
        }
    }
}

/// The start blocks of the allocations holding RAM qstrs' texts, and those with
/// the qstr pools added, both sorted; `None` when a qstr in RAM lies outside an
/// allocation (its text could change unseen).
fn qstr_blocks(
    decoder: &Decoder,
    g: &HeapGeometry,
    allocations: &[Allocation],
    base: &[BaseKind],
    qstrs: &[QstrRow],
) -> Option<(Vec<u64>, Vec<u64>)> {
    let (fw, q) = (decoder.firmware, &decoder.profile.qstr);
    let header = (q.hash_bytes + q.len_bytes) as u64;
    let mut chunks = Vec::new();
    for r in qstrs.iter().filter(|r| r.address >= fw.ram_start && r.address < fw.ram_end) {
        let block = g.block_of(r.chunk?)?;
        let i = allocations.binary_search_by_key(&block, |a| a.start_block).ok()?;
        let end = g.block_address(block + allocations[i].blocks);
        if r.address.checked_add(header + r.length)? > end {
            return None;
        }
        chunks.push(block);
    }
    chunks.sort_unstable();
    chunks.dedup();
    let pools = allocations.iter().zip(base).filter(|(_, k)| k.kind == Category::QstrPool).map(|(a, _)| a.start_block);
    let mut blocks: Vec<u64> = chunks.iter().copied().chain(pools).collect();
    blocks.sort_unstable();
    blocks.dedup();
    Some((chunks, blocks))
}

/// Pool blocks, a bit each.
struct BlockSet(Vec<u64>);

impl BlockSet {
    fn new(blocks: u64) -> Self {
        BlockSet(vec![0; blocks.div_ceil(64) as usize])
    }

    fn insert(&mut self, a: &Allocation) {
        for b in a.start_block..a.start_block.saturating_add(a.blocks) {
            match self.0.get_mut((b / 64) as usize) {
                Some(w) => *w |= 1 << (b % 64),
                None => break,
            }
        }
    }

    fn insert_block(&mut self, b: u64) {
        if let Some(w) = self.0.get_mut((b / 64) as usize) {
            *w |= 1 << (b % 64);
        }
    }

    fn contains(&self, block: u64) -> bool {
        self.0.get((block / 64) as usize).is_some_and(|w| w >> (block % 64) & 1 == 1)
    }
}

/// Per pool block, the start blocks of the allocations pointing into it, once
/// per pointer (so that removing one slot's targets takes out just its own): what
/// [`plan`] asks to find the sources of a change without visiting every slot.
#[derive(Default)]
struct PointedBy(Vec<Vec<u32>>);

impl PointedBy {
    /// Empties the index, keeping its vectors.
    fn clear(&mut self) {
        self.0.iter_mut().for_each(Vec::clear);
    }

    /// Sized for `blocks` pool blocks.
    fn fit(&mut self, blocks: u64) {
        self.0.resize_with(blocks as usize, Vec::new);
    }

    fn add(&mut self, source: u64, targets: &[u32]) {
        let Ok(source) = u32::try_from(source) else { return };
        for &b in targets {
            if let Some(list) = self.0.get_mut(b as usize) {
                list.push(source);
            }
        }
    }

    fn remove(&mut self, source: u64, targets: &[u32]) {
        let Ok(source) = u32::try_from(source) else { return };
        for &b in targets {
            if let Some(list) = self.0.get_mut(b as usize) {
                if let Some(k) = list.iter().position(|&s| s == source) {
                    list.swap_remove(k);
                }
            }
        }
    }

    /// The start blocks of the allocations pointing into `a`'s blocks.
    fn pointing_into(&self, a: &Allocation) -> impl Iterator<Item = u32> + '_ {
        let (start, end) = (a.start_block as usize, a.start_block.saturating_add(a.blocks) as usize);
        self.0.get(start.min(self.0.len())..end.min(self.0.len())).unwrap_or(&[]).iter().flatten().copied()
    }
}

/// What to decode again in `cur`, given the snapshot before (`p`), or `None` for
/// a full decode. Fills `reuse`: per allocation of `cur`, the unchanged one of
/// `p` it continues.
fn plan(
    decoder: &Decoder,
    p: &Previous,
    cur: &PlanInput,
    vm: &[u64],
    reuse: &mut Vec<Option<usize>>,
    spare: Focus,
) -> Option<Focus> {
    let g = cur.geometry;
    if p.geometry != *g || !g.more_areas.is_empty() || p.ram.len() != cur.ram.len() || p.vm.as_deref() != Some(vm) {
        return None;
    }
    let (ram_start, bpb, n) = (decoder.firmware.ram_start, g.bytes_per_block, cur.allocations.len());
    let bytes = |ram: &'_ [u8], a: &Allocation| -> Option<usize> {
        let start = g.block_address(a.start_block).checked_sub(ram_start)? as usize;
        let end = start.checked_add(a.blocks.checked_mul(bpb)? as usize)?;
        (end <= ram.len()).then_some(start)
    };
    let same_bytes = |a: &Allocation| -> bool {
        let Some(start) = bytes(cur.ram, a) else { return false };
        let len = (a.blocks * bpb) as usize;
        match (cur.ram.get(start..start + len), p.ram.get(start..start + len)) {
            (Some(x), Some(y)) => same_bytes(x, y),
            _ => false,
        }
    };

    // Pair the allocations with the previous snapshot's, block by block.
    let mut changed = BlockSet::new(g.pool_blocks());
    let mut dirty: Vec<usize> = Vec::new();
    let mut replaced: Vec<usize> = Vec::new();
    reuse.clear();
    reuse.resize(n, None);
    let old = &p.allocations;
    let mut j = 0;
    for (i, a) in cur.allocations.iter().enumerate() {
        while let Some(o) = old.get(j).filter(|o| o.start_block < a.start_block) {
            replaced.push(j);
            changed.insert(o);
            j += 1;
        }
        if let Some(o) = old.get(j).filter(|o| o.start_block == a.start_block) {
            if o == a && p.finaliser.get(j) == cur.finaliser.get(i) && same_bytes(a) {
                reuse[i] = Some(j);
                j += 1;
                continue;
            }
            replaced.push(j);
            changed.insert(o);
            j += 1;
        }
        dirty.push(i);
        changed.insert(a);
    }
    for (k, o) in old.iter().enumerate().skip(j) {
        replaced.push(k);
        changed.insert(o);
    }
    let limit = n / MAX_FOCUS_SHARE + FOCUS_SLACK;
    if dirty.len() > limit || replaced.iter().any(|&j| p.qstr_blocks.binary_search(&old[j].start_block).is_ok()) {
        return None;
    }

    // What the change reaches (see the module doc): the changed allocations;
    // what they point to, now and before (the roles, texts and names they give);
    // what points into their blocks (a pointer's target, an instance's class, a
    // function's bytecode are read there); the targets of those whose first word
    // points there (their own kind, and so the roles they give, may change); and
    // the modules pointing at those (a module's name is read two pointers away).
    let owner_of = |address: u64| -> Option<usize> {
        let i = *cur.owner.get(g.block_of(address)? as usize)?;
        (i != u32::MAX).then_some(i as usize)
    };
    let owner_of_block = |b: u32| -> Option<usize> {
        let i = *cur.owner.get(b as usize)?;
        (i != u32::MAX).then_some(i as usize)
    };
    let slot = |i: usize| reuse[i].and_then(|j| p.slots.get(j)?.as_ref());
    let Focus { derive: mut focus, mut known, mut qstr_chunks } = spare;
    focus.clear();
    focus.resize(n, false);
    for &i in &dirty {
        focus[i] = true;
    }
    let mut reached = dirty.len();
    let mut mark = |i: usize, focus: &mut Vec<bool>| {
        if !focus[i] {
            focus[i] = true;
            reached += 1;
        }
    };
    let mut targets = Vec::with_capacity(64);
    for &i in &dirty {
        let a = &cur.allocations[i];
        if let Some(start) = bytes(cur.ram, a) {
            let data = &cur.ram[start..start + (a.blocks * bpb) as usize];
            decoder.pointers_in(data, bpb, |w| targets.extend(owner_of(w)));
        }
    }
    for &j in &replaced {
        if let Some(s) = p.slots.get(j).and_then(Option::as_ref) {
            targets.extend(s.targets.iter().filter_map(|&b| owner_of_block(b)));
        }
    }
    // Unchanged allocations pointing into the blocks of `extents` (their edges
    // are the previous snapshot's), among those `pick` takes, each once.
    let mut seen = BlockSet::new(g.pool_blocks());
    let mut sources = |extents: &[&Allocation], focus: &[bool], pick: &dyn Fn(usize) -> bool| {
        let mut found = Vec::new();
        for a in extents {
            for s in p.pointed_by.pointing_into(a) {
                let Some(i) = owner_of_block(s).filter(|&i| cur.allocations[i].start_block == s as u64) else {
                    continue;
                };
                if reuse[i].is_some() && !focus[i] && !seen.contains(s as u64) && pick(i) {
                    seen.insert_block(s as u64);
                    found.push(i);
                }
            }
        }
        found
    };
    let changed_extents: Vec<&Allocation> =
        replaced.iter().map(|&j| &old[j]).chain(dirty.iter().map(|&i| &cur.allocations[i])).collect();
    let pointing = sources(&changed_extents, &focus, &|_| true);
    let mut reach: Vec<&Allocation> = Vec::with_capacity(pointing.len());
    for &i in &pointing {
        reach.push(&cur.allocations[i]);
        let Some(s) = slot(i) else { continue };
        if s.first_target.is_some_and(|b| changed.contains(b as u64)) {
            targets.extend(s.targets.iter().filter_map(|&b| owner_of_block(b)));
        }
    }
    for i in pointing {
        mark(i, &mut focus);
    }
    let module = decoder.firmware.types.module;
    let is_module =
        |i: usize| module.is_some() && reuse[i].and_then(|j| p.base.get(j)).is_some_and(|b| b.type_address == module);
    for i in sources(&reach, &focus, &is_module) {
        mark(i, &mut focus);
    }
    for i in targets {
        mark(i, &mut focus);
    }
    if reached > limit {
        return None;
    }
    known.clear();
    known.extend((0..n).map(|i| if focus[i] { None } else { reuse[i].and_then(|j| p.base.get(j).copied()) }));
    qstr_chunks.clear();
    qstr_chunks.extend_from_slice(&p.qstr_chunks);
    Some(Focus { derive: focus, known, qstr_chunks })
}
