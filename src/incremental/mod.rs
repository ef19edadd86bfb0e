//! Decoding a run of consecutive snapshots, each from the one before it.
//!
//! A soak test's consecutive snapshots differ by an allocation or two, yet a full
//! decode reads, classifies and diffs every object of the heap each time. A
//! [`RunDecoder`] keeps what it decoded of the snapshot before, allocation by
//! allocation (base kind, role, lifetime row, edges, share of the type histogram,
//! the blocks its rows read, and with `--per-snapshot` its `blocks` and
//! `strings` rows: [`object_rows`]), and for the next snapshot:
//! 1. reads the allocation table and pairs each allocation with the previous
//!    snapshot's at the same block: one with the same extent, table bits and
//!    bytes is unchanged; the others (new, gone, resized, written to) changed;
//! 2. decodes again ([`plan`]) the changed allocations and those whose rows read
//!    a changed block. What a row read is not a rule kept here: the decoder
//!    records every read as it makes the row ([`crate::decode::reads`]), and an
//!    index of which allocations read each block finds them without visiting
//!    every allocation. The roles objects give one another are kept in a book
//!    ([`crate::decode::GiftBook`]): only the gifts of the allocations decoded
//!    again are given again, and an allocation whose role changed is made
//!    again too;
//! 3. carries the other allocations' rows over as they were, and diffs only the
//!    ones made again into the lifetime changes and the type histogram.
//!
//! Reads made for every row (the qstr pools, the VM's words outside the heap)
//! must be unchanged, or the snapshot is decoded whole; so is the first
//! snapshot a decoder meets (a worker carries its decoder over the runs it
//! takes together: [`RunDecoder::into_next_run`]), one whose geometry changed,
//! and one whose change reaches more than half of the heap. The roots (RAM
//! outside the heap) are sieved again only where their bytes changed
//! ([`crate::decode::roots`]), and diffed word by word. The tables are the same either way: the tests hold them byte for byte
//! against whole decodes on every layout, and show that dropping a recorded read
//! breaks that; `analyze --full-decode` turns this off.

use crate::decode::stages::Stage;
use crate::decode::{
    Allocation, Category, DecodeCache, DecodeFacts, Decoder, EdgeRow, Focus, HeapGeometry, Kinds, PlanInput, QstrRow,
    Role, Roles, RootWord, Roots, RootsBefore, SnapshotReport, StringRow,
};
use crate::firmware::Firmware;
use crate::memory::same_bytes;
use crate::retain::{GcRoots, RetentionScratch, StartIndex};
use crate::tables::lifetimes::{self, AllocationSight, Changes, EdgeKey, Lifetime, LifetimeChanges};
use crate::tables::summaries::TypeCounts;
use crate::tables::{Prepared, PreparedOutcome, TableSet};
use std::sync::Arc;

mod local_retention;
mod object_rows;
mod owners;
mod pairing;
mod retention;
mod runs;
use pairing::{PairIn, Side};
use runs::CarriedRuns;
use retention::{FlatRetention, OwnersRoom};

/// A change reaching more than one in this many of the heap's allocations (plus
/// a few) is decoded in full: following it would cost more than it saves.
const MAX_FOCUS_SHARE: usize = 2;
const FOCUS_SLACK: usize = 8;

/// Makes the slots of the allocations decoded again, from the decode's rows
/// (one per allocation decoded, in allocation order, each followed by its
/// edges).
struct SlotMaker<'a, 'e, 'f> {
    fw: &'f Firmware,
    texts: &'a [(u64, &'a Arc<str>)],
    rows: std::slice::Iter<'a, crate::decode::BlockRow>,
    /// The decode's string rows, in allocation order too (at most one an
    /// allocation), when slots keep their per-snapshot rows.
    strings: Option<std::iter::Peekable<std::slice::Iter<'a, StringRow>>>,
    edges: std::vec::Drain<'e, EdgeRow>,
    facts: &'a DecodeFacts,
    /// The allocations whose slots were made.
    made: Vec<usize>,
}

impl SlotMaker<'_, '_, '_> {
    /// Allocation `i`'s slot from its row (none when it has no row).
    fn make(&mut self, i: usize, slots: &mut Slots) {
        let start = self.facts.allocations.get(i).map(|a| a.start_block);
        let Some(b) = self.rows.next().filter(|b| Some(b.start_block) == start) else {
            slots.push(None);
            return;
        };
        let count = self.edges.as_slice().iter().take_while(|e| e.from_address == Some(b.address)).count();
        let edges: Vec<EdgeRow> = self.edges.by_ref().take(count).collect();
        let sight = AllocationSight::of(b, |block| lifetimes::text_of(self.texts, block), self.fw);
        let rows = self.strings.as_mut().map(|strings| {
            let string = strings.next_if(|s| s.block == b.address).cloned();
            Box::new(object_rows::ObjectRows { block: b.clone(), string })
        });
        self.made.push(i);
        // Its reads, then its heads, in one vector: counted first, so that
        // it is allocated once.
        let reads = || self.facts.reads.as_ref().map(|r| r.of(i)).into_iter().flatten();
        let heads = || edges.iter().filter(|e| e.to_is_head()).filter_map(|e| u32::try_from(e.to_block?).ok());
        let mut words = Vec::with_capacity(reads().count() + heads().count());
        words.extend(reads());
        let heads_from = words.len();
        words.extend(heads());
        slots.push(Some(Box::new(Slot { sight, edges, words, heads_from, group: usize::MAX, rows })));
    }
}

/// What one allocation of the snapshot before decoded to.
#[derive(Clone, Debug)]
struct Slot {
    sight: AllocationSight,
    /// Its pointer edges, in word order.
    edges: Vec<EdgeRow>,
    /// The blocks its rows read (see [`crate::decode::reads::Reads`]), then
    /// from `heads_from` on the first blocks of the allocations whose heads
    /// its words hold (what the GC follows): one allocation for both.
    words: Vec<u32>,
    heads_from: usize,
    /// Its group in the type histogram ([`TypeCounts`]).
    group: usize,
    /// Its per-snapshot rows, when they are wanted ([`object_rows`]).
    rows: Option<Box<object_rows::ObjectRows>>,
}

impl Slot {
    /// The blocks its rows read.
    fn reads(&self) -> &[u32] {
        self.words.get(..self.heads_from).unwrap_or_default()
    }

    /// The first blocks of the allocations whose heads its words hold.
    fn heads(&self) -> &[u32] {
        self.words.get(self.heads_from..).unwrap_or_default()
    }
}

/// Slots are boxed: most move on from one snapshot to the next unchanged.
type Slots = Vec<Option<Box<Slot>>>;

/// The bytes of the snapshot before: in the run's mapped window, or copied
/// out of it when the decoder goes on to the next run (another window).
enum Ram<'m> {
    Mapped(&'m [u8]),
    Copied(Box<[u8]>),
}

impl std::ops::Deref for Ram<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Ram::Mapped(ram) => ram,
            Ram::Copied(ram) => ram,
        }
    }
}

/// The snapshot before, as far as the next decode needs it.
struct Previous<'f, 'm> {
    ram: Ram<'m>,
    geometry: HeapGeometry,
    allocations: Vec<Allocation>,
    finaliser: Vec<bool>,
    collect: Vec<Option<bool>>,
    base: Kinds,
    roles: Roles,
    /// Per allocation; an unchanged allocation takes its slot on to the next snapshot.
    slots: Slots,
    /// Candidate roots, in address order (see [`crate::decode::roots`]).
    root_words: Vec<RootWord>,
    /// Which allocations read each block, from their slots.
    read_by: ReadBy,
    /// Qstrs, sorted by key.
    qstrs: Vec<QstrRow>,
    /// The `qstrs` rows of the last whole decode, in its order, when they
    /// are wanted ([`object_rows`]).
    qstr_rows: Vec<QstrRow>,
    /// Start blocks of the allocations holding qstr texts, sorted.
    qstr_chunks: Vec<u64>,
    /// Pool blocks read for every row, sorted, and RAM outside the pools read
    /// so (address ranges): a change there takes a whole decode.
    global_blocks: Vec<u32>,
    outside: Vec<(u64, u64)>,
    types: TypeCounts<'f>,
    /// Its allocations' heads, retention keys and kinds, when its retention
    /// was computed.
    flat: FlatRetention,
    /// A focused decode may start from this snapshot.
    usable: bool,
}

impl<'f> Previous<'f, '_> {
    /// This snapshot with its bytes copied: what outlives its run's window.
    fn copied(self) -> Previous<'f, 'static> {
        Previous {
            ram: Ram::Copied(self.ram.to_vec().into_boxed_slice()),
            geometry: self.geometry,
            allocations: self.allocations,
            finaliser: self.finaliser,
            collect: self.collect,
            base: self.base,
            roles: self.roles,
            slots: self.slots,
            root_words: self.root_words,
            read_by: self.read_by,
            qstrs: self.qstrs,
            qstr_rows: self.qstr_rows,
            qstr_chunks: self.qstr_chunks,
            global_blocks: self.global_blocks,
            outside: self.outside,
            types: self.types,
            flat: self.flat,
            usable: self.usable,
        }
    }
}

/// Decodes and prepares the snapshots of one run, in order (one per worker and
/// run), each from the one before when it can; a worker that goes on to the
/// next run keeps it ([`RunDecoder::into_next_run`]).
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
    scanned: Vec<bool>,
    start_index: StartIndex,
    /// The snapshot before's `start_index` and `scanned`.
    start_before: StartIndex,
    scanned_before: Vec<bool>,
    retention: RetentionScratch,
    /// The room of a retention made again only where changes reach.
    local: local_retention::LocalRoom,
    owners: OwnersRoom,
    /// The allocations paired with the snapshot before's (see [`plan`]).
    paired: CarriedRuns,
    /// The allocations whose slots are carried over from the snapshot before:
    /// those paired, less those decoded again.
    runs: CarriedRuns,
    /// The flat retention of the snapshot before the one before, for its room.
    flat: FlatRetention,
    /// The stack root's name.
    stack: Option<Arc<str>>,
}

impl<'d, 'f, 'm> RunDecoder<'d, 'f, 'm> {
    /// `None` when the tables need nothing past the allocation tables, or
    /// the decoder cannot decode from the snapshot before.
    pub fn new(decoder: &'d Decoder<'f>, set: TableSet) -> Option<Self> {
        let mut cache = DecodeCache::default();
        cache.carry_walk();
        Self::applies(decoder, set).then(|| RunDecoder {
            decoder,
            firmware: decoder.firmware,
            set,
            cache,
            prev: None,
            spare: Spare::default(),
            last_focused: false,
        })
    }

    /// This decoder for the run that follows its run (in another window of
    /// the dump): the last snapshot is copied out of its window, so the next
    /// run's first snapshot is decoded from it rather than whole.
    pub fn into_next_run(self) -> RunDecoder<'d, 'f, 'static> {
        let RunDecoder { decoder, firmware, set, cache, prev, spare, last_focused } = self;
        RunDecoder { decoder, firmware, set, cache, prev: prev.map(Previous::copied), spare, last_focused }
    }

    /// Whether a run decoder can serve `set` with `decoder` (see [`RunDecoder::new`]).
    pub fn applies(decoder: &Decoder, set: TableSet) -> bool {
        let wanted = set.lifetimes().any() || set.type_histogram || set.object_rows();
        wanted && decoder.supports_focus()
    }

    /// Keeps the time spent per stage from now on (see [`crate::decode::stages`]).
    pub fn time_stages(&mut self) {
        self.cache.time_stages();
    }

    fn lap(&mut self, stage: Stage) {
        if let Some(t) = &mut self.cache.stage_times {
            t.lap(stage);
        }
    }

    /// The time spent per stage so far, when kept.
    pub fn stage_times(&self) -> Option<&crate::decode::stages::StageTimes> {
        self.cache.stage_times.as_ref()
    }

    /// Whether the last snapshot prepared was decoded from the one before it
    /// (rather than whole, or not at all).
    pub fn last_focused(&self) -> bool {
        self.last_focused
    }

    /// Decodes snapshot `index` and prepares it for the writer, as
    /// [`crate::tables::Preparer::prepare`] does with a full decode.
    /// With `roots`, each allocation's retention is computed from them (see
    /// [`crate::retain`]).
    pub fn prepare(&mut self, index: u64, ram: &'m [u8], roots: Option<&GcRoots>) -> PreparedOutcome<'f> {
        let decoder = self.decoder;
        let mut prev = self.prev.take();
        let mut reuse = std::mem::take(&mut self.spare.reuse);
        let mut paired = std::mem::take(&mut self.spare.paired);
        paired.clear();
        let spare_focus = std::mem::take(&mut self.spare.focus);
        // The snapshot before's kinds and roles, which a plan makes this
        // one's in place (handing back the spare focus's room for them).
        let mut kinds_before = prev.as_mut().map(|p| (std::mem::take(&mut p.base), std::mem::take(&mut p.roles)));
        let mut planned = false;
        let before = prev.as_ref().map(|p| RootsBefore { ram: &p.ram, geometry: &p.geometry, words: &p.root_words });
        let decoded = decoder.decode_focused(index, ram, &mut self.cache, Roots::Words(before), |cur| {
            let p = prev.as_ref().filter(|p| p.usable)?;
            let (base, roles) = kinds_before.as_mut()?;
            let focus = plan(decoder, (p, base, roles), cur, (&mut reuse, &mut paired), spare_focus);
            planned = focus.is_some();
            focus
        });
        if let (Some(p), Some((base, roles))) = (prev.as_mut(), kinds_before) {
            (p.base, p.roles) = (base, roles);
        }
        let (mut report, mut facts) = match decoded {
            Ok(d) => d,
            Err(e) => {
                // The next snapshot is diffed against the last one decoded;
                // not planned from it, if this plan took its kinds and roles
                // (they went with the failed decode).
                if let Some(p) = prev.as_mut().filter(|_| planned) {
                    p.usable = false;
                }
                self.last_focused = false;
                self.prev = prev;
                return Err(e);
            }
        };
        let focus = facts.focus.take();
        self.last_focused = focus.is_some();
        // Carried over: the allocations paired, less those decoded again.
        match &focus {
            Some(f) => paired.split_into(&f.derive, &mut self.spare.runs),
            None => self.spare.runs.clear(),
        }
        self.spare.paired = paired;
        let (mut slots, made) = self.slots(&mut report, &facts, prev.as_mut());
        // Retention changes reach allocations carried over unchanged: their rows go too.
        self.lap(Stage::Diff);
        let mut before = prev.as_mut().map(|p| std::mem::take(&mut p.flat));
        // Only a decode from the snapshot before keeps the heap's geometry.
        let old = prev.as_ref().filter(|_| focus.is_some()).map(|p| &p.allocations[..]);
        let (held_changed, flat) = match roots {
            Some(r) => self.retain(&mut report, (&facts, &made), &mut slots, r, before.as_mut().zip(old)),
            None => (Vec::new(), FlatRetention::default()),
        };
        if let Some(room) = before {
            self.spare.flat = room;
        }
        self.lap(Stage::Retention);
        let want = self.set.lifetimes();
        // The qstrs' rows: a focused decode lists none, the pools being as
        // the last whole decode listed them.
        let qstr_rows = match prev.as_mut().filter(|_| focus.is_some()) {
            _ if !self.set.qstrs => Vec::new(),
            Some(p) => std::mem::take(&mut p.qstr_rows),
            None => report.qstrs.clone(),
        };
        let step = match prev {
            // A decoder's first snapshot goes whole.
            None => self.first_changes(&mut report, &facts, &mut slots),
            Some(p) => self.changes_since(p, &mut report, &facts, &mut slots, (&made, &held_changed), focus.is_some()),
        };
        let type_groups = if self.set.type_histogram { step.types.groups() } else { Vec::new() };
        let mut read_by = step.read_by;
        read_by.fit(report.geometry.pool_blocks());
        let added: Vec<usize> = if focus.is_some() { made } else { (0..slots.len()).collect() };
        for i in added {
            if let (Some(a), Some(Some(s))) = (facts.allocations.get(i), slots.get(i)) {
                read_by.add(a.start_block, s.reads());
            }
        }
        let (qstrs, types, carried) = (step.qstrs, step.types, step.carried);
        let kept = Kept { slots, read_by, qstrs, qstr_rows, types, carried, flat };
        self.keep_previous(ram, &report, facts, kept);
        self.lap(Stage::Diff);
        match self.prev.as_ref().filter(|_| self.set.object_rows()) {
            Some(p) => object_rows::fill(&mut report, p, decoder, self.set),
            None => (report.blocks, report.strings) = (Vec::new(), Vec::new()),
        }
        // The report waits for the writer with its run: only what it holds.
        report.free_runs.shrink_to_fit();
        self.spare.reuse = reuse;
        self.spare.focus = focus.unwrap_or_default();
        Ok(Prepared::new(report, want.any().then_some(step.changes), type_groups))
    }

    /// This snapshot's slots, carried over from the snapshot before (the
    /// runs in `spare.runs`) or made from the rows decoded; and the indices of
    /// those made. A run's slots are moved over together.
    fn slots(&mut self, report: &mut SnapshotReport, facts: &DecodeFacts, prev: Option<&mut Previous<'f, 'm>>) -> (Slots, Vec<usize>) {
        let texts = lifetimes::texts_by_block(&report.strings);
        let mut all_edges = std::mem::take(&mut report.edges);
        let mut slots: Slots = std::mem::take(&mut self.spare.slots);
        slots.reserve(facts.allocations.len());
        let runs = &mut self.spare.runs;
        let mut no_slots = Vec::new();
        let prev_slots = prev.map_or(&mut no_slots, |p| &mut p.slots);
        // A snapshot decoded from has every slot (else it is not usable): a
        // check, so that a run never names a slot that is not there.
        let all_there = |r: &runs::CarriedRun| prev_slots.get(r.before_range()).is_some_and(|s| s.iter().all(Option::is_some));
        if !runs.iter().all(all_there) {
            runs.clear();
        }
        let mut maker = SlotMaker {
            fw: self.firmware,
            texts: &texts,
            rows: report.blocks.iter(),
            strings: object_rows::kept_for(self.set).then(|| report.strings.iter().peekable()),
            edges: all_edges.drain(..),
            facts,
            made: Vec::with_capacity(report.blocks.len()),
        };
        let mut moved = 0;
        for run in runs.iter() {
            (moved..run.now as usize).for_each(|i| maker.make(i, &mut slots));
            slots.extend(prev_slots[run.before_range()].iter_mut().map(Option::take));
            moved = run.now_range().end;
        }
        (moved..facts.allocations.len()).for_each(|i| maker.make(i, &mut slots));
        let made = std::mem::take(&mut maker.made);
        drop(maker);
        self.cache.recycle_edges(all_edges);
        (slots, made)
    }

    /// The lifetime changes of a decoder's first snapshot: everything in it.
    fn first_changes(&self, report: &mut SnapshotReport, facts: &DecodeFacts, slots: &mut Slots) -> Step<'f> {
        let want = self.set.lifetimes();
        let sights = lifetimes::sorted_unique(slots.iter().flatten().map(|s| s.sight.clone()).collect());
        let mut edges: Vec<EdgeRow> = slots.iter().flatten().flat_map(|s| s.edges.iter().cloned()).collect();
        let roots = facts.root_words.iter().filter(|w| w.head);
        edges.extend(roots.map(|w| self.decoder.root_edge(w.address, w.value, &report.geometry)));
        let qstrs = lifetimes::sorted_unique(std::mem::take(&mut report.qstrs));
        let changes = LifetimeChanges::new(
            Changes::all(keep(want.allocations, sights)),
            Changes::all(keep(want.edges, lifetimes::sorted_unique(edges))),
            Changes::all(keep(want.qstrs, qstrs.clone())),
            collecting(report),
        );
        let types = count_types(slots, report.geometry.bytes_per_block, self.firmware);
        Step { changes, types, qstrs, read_by: ReadBy::default(), carried: None }
    }

    /// The lifetime changes since the snapshot before (`p`): between its slots
    /// not carried over and this one's `made`, its roots and this one's, its
    /// qstrs and this one's (listed only in a whole decode). `p`'s vectors go
    /// back to the decode cache.
    fn changes_since(
        &mut self,
        p: Previous<'f, 'm>,
        report: &mut SnapshotReport,
        facts: &DecodeFacts,
        slots: &mut Slots,
        (made, held_changed): (&[usize], &[usize]),
        focused: bool,
    ) -> Step<'f> {
        let want = self.set.lifetimes();
        // The index follows the slots: out with those not carried over, in with
        // those made (all of them, after a whole decode).
        let mut read_by = p.read_by;
        if focused {
            for (a, s) in p.allocations.iter().zip(&p.slots) {
                if let Some(s) = s {
                    read_by.remove(a.start_block, s.reads());
                }
            }
        } else {
            read_by.clear();
        }
        // The previous snapshot's slots not carried over, by address.
        let old = by_address(p.slots.iter().flatten().map(|s| &**s).collect());
        let (mut allocations, mut edges) = diff_slots(&old, slots, made);
        if !held_changed.is_empty() {
            allocations.0.extend(held_changed.iter().filter_map(|&i| Some(slots.get(i)?.as_ref()?.sight.clone())));
            allocations.0.sort_by_key(|s| s.key());
        }
        diff_roots(self.decoder, &report.geometry, &p.root_words, &facts.root_words, &mut edges.0, &mut edges.1);
        let (qstr_changes, qstrs) = if focused {
            (Changes::partial(Vec::new(), Vec::new()), p.qstrs)
        } else {
            let q = lifetimes::sorted_unique(std::mem::take(&mut report.qstrs));
            (Changes::between(&p.qstrs, &q), q)
        };
        let bpb = report.geometry.bytes_per_block;
        let types = if focused {
            update_types(p.types, &old, slots, made, bpb, self.firmware)
        } else {
            count_types(slots, bpb, self.firmware)
        };
        let changes = LifetimeChanges::new(
            keep_changes(want.allocations, Changes::partial(allocations.0, allocations.1)),
            keep_changes(want.edges, Changes::partial(edges.0, edges.1)),
            keep_changes(want.qstrs, qstr_changes),
            collecting(report),
        );
        let carried = focused.then_some((p.qstr_chunks, p.global_blocks, p.outside));
        // The snapshot before is done with: its vectors serve the next.
        let mut old_slots = p.slots;
        old_slots.clear();
        self.spare.slots = old_slots;
        self.cache.recycle(DecodeFacts {
            allocations: p.allocations,
            finaliser: p.finaliser,
            collect: p.collect,
            base: p.base,
            roles: p.roles,
            focus: None,
            root_words: p.root_words,
            reads: None,
        });
        Step { changes, types, qstrs, read_by, carried }
    }

    /// Keeps what the next snapshot starts from. The chunks holding qstr texts
    /// are found from the qstrs when they were decoded, else they are as they
    /// were; so are the global reads of the whole decode that listed them (a
    /// focused decode reads just the qstrs it names).
    fn keep_previous(&mut self, ram: &'m [u8], report: &SnapshotReport, mut facts: DecodeFacts, kept: Kept<'f>) {
        let mut reads = facts.reads.take().unwrap_or_default();
        let qstr_chunks = match kept.carried {
            Some((chunks, global_blocks, outside)) => {
                reads.carry_global(global_blocks, outside);
                chunks
            }
            None => qstr_chunks(&report.geometry, &kept.qstrs),
        };
        let usable = report.notes.is_empty() && reads.complete && kept.slots.iter().all(Option::is_some);
        self.prev = Some(Previous {
            ram: Ram::Mapped(ram),
            geometry: report.geometry.clone(),
            allocations: facts.allocations,
            finaliser: facts.finaliser,
            collect: facts.collect,
            base: facts.base,
            roles: facts.roles,
            slots: kept.slots,
            root_words: facts.root_words,
            read_by: kept.read_by,
            qstrs: kept.qstrs,
            qstr_rows: kept.qstr_rows,
            qstr_chunks,
            global_blocks: reads.global_blocks,
            outside: reads.outside,
            types: kept.types,
            flat: kept.flat,
            usable,
        });
    }
}

/// What the global reads of a snapshot before carry: the qstr chunks, the pool
/// blocks and the RAM outside the pools read for every row.
type CarriedGlobals = (Vec<u64>, Vec<u32>, Vec<(u64, u64)>);

/// A snapshot's lifetime changes, and what the next snapshot needs of them.
struct Step<'f> {
    changes: LifetimeChanges,
    types: TypeCounts<'f>,
    qstrs: Vec<QstrRow>,
    read_by: ReadBy,
    /// After a focused decode, the global reads carried over.
    carried: Option<CarriedGlobals>,
}

/// What [`RunDecoder::keep_previous`] keeps besides the decode's facts.
struct Kept<'f> {
    slots: Slots,
    flat: FlatRetention,
    read_by: ReadBy,
    qstrs: Vec<QstrRow>,
    qstr_rows: Vec<QstrRow>,
    types: TypeCounts<'f>,
    carried: Option<CarriedGlobals>,
}

/// Whether the snapshot was taken during a collection.
fn collecting(report: &SnapshotReport) -> bool {
    report.marked_blocks > 0 || report.orphan_tail_blocks > 0
}

/// The type histogram of the snapshot before (`types`) with the allocations
/// not carried over (`old`) taken out and those `made` put in (in the group of
/// the one they replace, when it is the same).
fn update_types<'f>(
    mut types: TypeCounts<'f>,
    old: &[&Slot],
    slots: &mut Slots,
    made: &[usize],
    bytes_per_block: u64,
    fw: &'f Firmware,
) -> TypeCounts<'f> {
    for o in old {
        types.remove(o.group, o.sight.blocks() * bytes_per_block);
    }
    for &i in made {
        let Some(s) = slots.get_mut(i).and_then(Option::as_mut) else { continue };
        let at = old.binary_search_by_key(&s.sight.key(), |o| o.sight.key()).ok();
        s.group = match at.map(|k| old[k]).filter(|o| same_group(o, s)) {
            Some(o) => o.group,
            None => types.group(s.sight.kind, s.sight.type_address, s.sight.class.as_ref(), fw),
        };
        types.add(s.group, s.sight.blocks() * bytes_per_block);
    }
    types
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

/// The start blocks of the allocations holding qstrs' texts (in RAM), sorted.
fn qstr_chunks(g: &HeapGeometry, qstrs: &[QstrRow]) -> Vec<u64> {
    let mut chunks: Vec<u64> = qstrs.iter().filter_map(|r| g.block_of(r.chunk?)).collect();
    chunks.sort_unstable();
    chunks.dedup();
    chunks
}

/// Per pool block, the start blocks of the allocations whose rows read it: what
/// [`plan`] asks to find what a change reaches without visiting every slot.
#[derive(Default)]
struct ReadBy(Vec<Vec<u32>>);

impl ReadBy {
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

    /// The start blocks of the allocations that read `a`'s blocks.
    fn reading(&self, a: &Allocation) -> impl Iterator<Item = u32> + '_ {
        let (start, end) = (a.start_block as usize, a.start_block.saturating_add(a.blocks) as usize);
        self.0.get(start.min(self.0.len())..end.min(self.0.len())).unwrap_or(&[]).iter().flatten().copied()
    }
}

/// What to decode again in `cur`, given the snapshot before (`p`, whose kinds
/// and roles are `base_before` and `roles_before`), or `None` for a full
/// decode. Fills `reuse`: per allocation of `cur`, the unchanged one of `p` it
/// continues. A focus takes the kinds and roles before, made this snapshot's,
/// and leaves the spare focus's room for them in their place.
fn plan(
    decoder: &Decoder,
    (p, base_before, roles_before): (&Previous, &mut Kinds, &mut Roles),
    cur: &PlanInput,
    (reuse, paired): (&mut Vec<Option<usize>>, &mut CarriedRuns),
    spare: Focus,
) -> Option<Focus> {
    let g = cur.geometry;
    paired.clear();
    if p.geometry != *g || p.ram.len() != cur.ram.len() || !same_outside(decoder, p, cur.ram) {
        return None;
    }
    let h = &decoder.profile.heap;
    let spans = g.table_spans(h.blocks_per_ftb, h.blocks_per_ctb);
    let inp = PairIn { ram_start: decoder.firmware.ram_start, geometry: g, spans: &spans };
    let before = Side { ram: &p.ram, allocations: &p.allocations, finaliser: &p.finaliser, collect: &p.collect };
    let now = Side { ram: cur.ram, allocations: cur.allocations, finaliser: cur.finaliser, collect: cur.collect };
    let pairing = pairing::pair(inp, before, now, reuse, std::mem::take(paired));
    let n = cur.allocations.len();
    let limit = n / MAX_FOCUS_SHARE + FOCUS_SLACK;
    if pairing.dirty.len() > limit || p.global_blocks.iter().any(|&b| pairing.changed.contains(b as u64)) {
        return None;
    }
    let before_len = p.allocations.len();
    if !base_before.holds(before_len) || !roles_before.holds(before_len) {
        return None; // (not expected: the decode makes them so)
    }
    let Focus { derive: mut focus, mut carried, mut base, mut roles, mut qstr_chunks, mut regive } = spare;
    focus.clear();
    focus.resize(n, false);
    for &i in &pairing.dirty {
        focus[i] = true;
    }
    // The unchanged allocations whose rows read a changed block.
    let old = &p.allocations;
    let changed_extents =
        pairing.replaced.iter().map(|&j| &old[j]).chain(pairing.dirty.iter().map(|&i| &cur.allocations[i]));
    let mut reached = Vec::new();
    for a in changed_extents {
        for s in p.read_by.reading(a) {
            let Some(&i) = cur.owner.get(s as usize) else { continue };
            let i = i as usize;
            if cur.allocations.get(i).is_some_and(|c| c.start_block == s as u64) && reuse[i].is_some() && !focus[i] {
                focus[i] = true;
                reached.push(i);
            }
        }
        if pairing.dirty.len() + reached.len() > limit {
            return None;
        }
    }
    // What the unchanged allocations were, a run at a time; those a change
    // reaches are decoded again, from nothing known.
    let runs = &pairing.runs;
    carried_mask(runs, before_len, (&mut carried, n));
    std::mem::swap(&mut base, base_before);
    std::mem::swap(&mut roles, roles_before);
    carry_runs_in_place(runs, &mut base.category, n, Category::Unknown);
    carry_runs_in_place(runs, &mut base.type_addrs, n, None);
    carry_runs_in_place(runs, &mut roles.category, n, Category::Unknown);
    carry_runs_in_place(runs, &mut roles.detail, n, (Role::None, None));
    *paired = pairing.runs;
    for &i in &reached {
        if let Some(c) = carried.get_mut(i) {
            *c = false;
        }
    }
    qstr_chunks.clear();
    qstr_chunks.extend_from_slice(&p.qstr_chunks);
    // The gifts of roles that go: those of the allocations gone or changed,
    // and of those decoded again.
    regive.clear();
    regive.extend(pairing.replaced.iter().filter_map(|&j| Some(old.get(j)?.start_block)));
    regive.extend(reached.iter().filter_map(|&i| Some(cur.allocations.get(i)?.start_block)));
    Some(Focus { derive: focus, carried, base, roles, qstr_chunks, regive })
}

/// `into` made `n` long, holding per allocation of `runs` what `was` holds
/// for the allocation it continues, and `empty` for the others: a column of
/// the snapshot before carried over, a run at a time (a copy of its bytes).
/// Written once each, in order: `empty` up to a run, then the run's. Only
/// the runs [`carried_mask`] marks are carried (those within `was` and `n`).
fn carry_runs<T: Copy>(runs: &CarriedRuns, was: &[T], (into, n): (&mut Vec<T>, usize), empty: T) {
    into.clear();
    into.reserve(n);
    for run in runs_within(runs, was.len(), n) {
        let (now, Some(was)) = (run.now_range(), was.get(run.before_range())) else { continue };
        if now.start < into.len() {
            // Out of order (a pairing keeps the order: not expected).
            into.resize(into.len().max(now.end), empty);
            if let Some(to) = into.get_mut(now) {
                to.copy_from_slice(was);
            }
            continue;
        }
        into.resize(now.start, empty);
        into.extend_from_slice(was);
    }
    into.resize(n, empty);
}

/// [`carry_runs`] done in place: `column`, the snapshot before's, made this
/// snapshot's. Only what moves is moved (a change near the heap's end moves
/// little), in one buffer, where a copy reads one and writes another whole.
///
/// The runs are in order in both snapshots, so a run moving to a lower index
/// lands only on places whose values were moved already or are not carried,
/// when the runs are moved first to last; and one moving higher likewise when
/// they are moved last to first. Out of order (not expected), it copies.
fn carry_runs_in_place<T: Copy>(runs: &CarriedRuns, column: &mut Vec<T>, n: usize, empty: T) {
    if !runs.ordered() {
        let was = std::mem::take(column);
        return carry_runs(runs, &was, (column, n), empty);
    }
    let before_len = column.len();
    if n > before_len {
        column.resize(n, empty);
    }
    let within = || runs_within(runs, before_len, n);
    for run in within().filter(|r| r.now < r.before) {
        column.copy_within(run.before_range(), run.now as usize);
    }
    for run in within().rev().filter(|r| r.now > r.before) {
        column.copy_within(run.before_range(), run.now as usize);
    }
    let mut end = 0;
    for run in within() {
        column.get_mut(end..run.now as usize).into_iter().flatten().for_each(|v| *v = empty);
        end = run.now_range().end;
    }
    column.truncate(n);
    column.get_mut(end..).into_iter().flatten().for_each(|v| *v = empty);
}

/// `into` made `n` long: per allocation, whether [`carry_runs`] carries it
/// (a run of `runs` continues it, within `before_len` and `n`).
fn carried_mask(runs: &CarriedRuns, before_len: usize, (into, n): (&mut Vec<bool>, usize)) {
    into.clear();
    into.resize(n, false);
    for run in runs_within(runs, before_len, n) {
        if let Some(to) = into.get_mut(run.now_range()) {
            to.fill(true);
        }
    }
}

/// The runs whose allocations are within `before_len` in the snapshot before
/// and `n` in this one (every run of a pairing of the two).
fn runs_within(runs: &CarriedRuns, before_len: usize, n: usize) -> impl DoubleEndedIterator<Item = &runs::CarriedRun> {
    runs.iter().filter(move |r| r.before_range().end <= before_len && r.now_range().end <= n)
}

/// Whether the RAM outside the pools that the snapshot before read for every
/// row holds the same bytes in `ram`.
fn same_outside(decoder: &Decoder, p: &Previous, ram: &[u8]) -> bool {
    let ram_start = decoder.firmware.ram_start;
    p.outside.iter().all(|&(s, e)| {
        let (Some(s), Some(e)) = (s.checked_sub(ram_start), e.checked_sub(ram_start)) else { return false };
        let r = s as usize..e as usize;
        matches!((ram.get(r.clone()), p.ram.get(r)), (Some(x), Some(y)) if same_bytes(x, y))
    })
}

#[cfg(test)]
mod tests {
    use super::runs::CarriedRuns;
    use super::{carried_mask, carry_runs, carry_runs_in_place};

    /// Each allocation's value carried one at a time, as the runs say (a run
    /// not wholly in `was` or in `n` carries nothing).
    fn carried_one_by_one(runs: &CarriedRuns, was: &[u32], n: usize) -> Vec<Option<u32>> {
        let mut into = vec![None; n];
        for run in runs.iter().filter(|r| r.before_range().end <= was.len() && r.now_range().end <= n) {
            for (i, j) in run.now_range().zip(run.before_range()) {
                into[i] = Some(was[j]);
            }
        }
        into
    }

    #[test]
    fn runs_carry_their_values_and_leave_the_rest_empty() {
        let was: Vec<u32> = (100..110).collect();
        let cases: [&[(u32, u32, u32)]; 5] = [
            &[(1, 0, 3), (5, 4, 2)],
            &[],
            &[(0, 0, 10)],
            &[(6, 7, 2), (1, 0, 2)], // out of order: both still carried
            &[(2, 8, 4), (0, 0, 1)], // the first past `was`: none of it carried
        ];
        for (k, pairs) in cases.iter().enumerate() {
            let mut runs = CarriedRuns::default();
            runs.clear();
            pairs.iter().for_each(|&(now, before, len)| runs.push_run(now, before, len));
            for n in [0, 3, 8, 12] {
                let (mut into, mut mask) = (vec![7; 2], vec![true; 3]);
                carry_runs(&runs, &was, (&mut into, n), 0);
                carried_mask(&runs, was.len(), (&mut mask, n));
                let got: Vec<Option<u32>> = into.iter().zip(&mask).map(|(&v, &m)| m.then_some(v)).collect();
                assert_eq!(got, carried_one_by_one(&runs, &was, n), "case {k}, {n} allocations");
                assert!(into.iter().zip(&mask).all(|(&v, &m)| m || v == 0), "the others hold `empty`");
                let mut in_place = was.clone();
                carry_runs_in_place(&runs, &mut in_place, n, 0);
                assert_eq!(in_place, into, "case {k}, {n} allocations, in place");
            }
        }
    }

    /// In place, the runs of random pairings (allocations kept, dropped and
    /// made, so runs move both ways in one snapshot) carry what a copy does.
    #[test]
    fn carrying_in_place_moves_what_a_copy_carries() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        for case in 0..2000 {
            let before_len = next(40) as u32;
            let (mut runs, mut now, mut before) = (CarriedRuns::default(), 0u32, 0u32);
            runs.clear();
            while before < before_len {
                // Some dropped, some made, then some kept.
                before += next(3) as u32;
                now += next(3) as u32;
                let len = (next(6) as u32).min(before_len.saturating_sub(before));
                runs.push_run(now, before, len);
                (now, before) = (now + len, before + len);
            }
            let was: Vec<u32> = (1000..1000 + before_len).collect();
            for n in [now + next(3) as u32, now.saturating_sub(next(3) as u32)] {
                let mut copied = vec![9; 3];
                carry_runs(&runs, &was, (&mut copied, n as usize), 0);
                let mut in_place = was.clone();
                carry_runs_in_place(&runs, &mut in_place, n as usize, 0);
                assert_eq!(in_place, copied, "case {case}: {} allocations before, {n} now", was.len());
            }
        }
    }
}
